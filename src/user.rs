//! User names as they reach us from PAM or the command line, checked before they name a file,
//! and the canonical account behind them.
//!
//! Every record, lock, lock-out count and trust grant is keyed on the account's canonical name
//! (NSS `pw_name`), never on the string PAM was handed: a directory that matches names
//! case-insensitively (SSSD/AD, LDAP) or accepts `alice@domain` would otherwise give one
//! account several records, and an alias without a record would skip the second factor.
#![forbid(unsafe_code)]

use std::fmt;

/// Longest user name accepted. Linux itself allows 32 bytes locally; directory services allow
/// more, but a record path (`<name>.toml`, its temp file) must stay far below NAME_MAX (255).
pub const MAX_LEN: usize = 128;

/// A user name that is safe to use as a file name in the store.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserName(String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserNameError {
    Empty,
    TooLong {
        len: usize,
    },
    /// `/`, NUL, a control character: would escape or confuse a path or a log line.
    ForbiddenChar {
        what: &'static str,
    },
    /// Starts with `.` (hidden/temporary files, `..`) or `-` (looks like an option).
    ForbiddenStart,
}

impl fmt::Display for UserNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "the user name is empty"),
            Self::TooLong { len } => {
                write!(
                    f,
                    "the user name is {len} bytes long; at most {MAX_LEN} are accepted"
                )
            }
            Self::ForbiddenChar { what } => write!(f, "the user name contains {what}"),
            Self::ForbiddenStart => write!(f, "the user name starts with '.' or '-'"),
        }
    }
}

impl std::error::Error for UserNameError {}

impl UserName {
    pub fn parse(name: &str) -> Result<Self, UserNameError> {
        if name.is_empty() {
            return Err(UserNameError::Empty);
        }
        if name.len() > MAX_LEN {
            return Err(UserNameError::TooLong { len: name.len() });
        }
        if name.starts_with('.') || name.starts_with('-') {
            return Err(UserNameError::ForbiddenStart);
        }
        for c in name.chars() {
            let what = match c {
                '/' => "'/'",
                '\0' => "a NUL byte",
                c if c.is_control() => "a control character",
                _ => continue,
            };
            return Err(UserNameError::ForbiddenChar { what });
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One passwd entry, as NSS returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// The passwd database (NSS in the module and CLI, a table in unit tests).
pub trait Directory {
    fn by_name(&self, name: &str) -> Result<Option<Entry>, String>;
    fn by_uid(&self, uid: u32) -> Result<Option<Entry>, String>;
}

/// The system's passwd database through NSS (getpwnam_r/getpwuid_r): files, LDAP, SSSD alike.
pub struct Nss;

impl Directory for Nss {
    fn by_name(&self, name: &str) -> Result<Option<Entry>, String> {
        not_found_is_none(nix::unistd::User::from_name(name))
    }

    fn by_uid(&self, uid: u32) -> Result<Option<Entry>, String> {
        not_found_is_none(nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)))
    }
}

/// getpwnam_r(3): ENOENT, ESRCH, EBADF and EPERM are ways some NSS modules say "no such
/// user"; every other error is a lookup that failed (the caller denies either way).
fn not_found_is_none(
    found: nix::Result<Option<nix::unistd::User>>,
) -> Result<Option<Entry>, String> {
    use nix::errno::Errno;
    match found {
        Ok(user) => Ok(user.map(Entry::from)),
        Err(Errno::ENOENT | Errno::ESRCH | Errno::EBADF | Errno::EPERM) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

impl From<nix::unistd::User> for Entry {
    fn from(user: nix::unistd::User) -> Self {
        Self {
            name: user.name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        }
    }
}

/// An account whose name is canonical: the name it was given is the one NSS reports, and no
/// other passwd entry owns its uid first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub name: UserName,
    pub uid: u32,
    pub gid: u32,
}

/// Why a user name does not name one canonical account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountError {
    BadName(UserNameError),
    Unknown {
        given: String,
    },
    /// NSS answered for another spelling (case-insensitive directory, `user@domain`).
    Alias {
        given: String,
        canonical: String,
    },
    /// Two passwd entries share a uid: one account with two names and two records.
    SharedUid {
        name: String,
        uid: u32,
        first: String,
    },
    Lookup {
        given: String,
        error: String,
    },
}

impl fmt::Display for AccountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadName(e) => write!(f, "invalid user name: {e}"),
            Self::Unknown { given } => write!(
                f,
                "user '{given}' is not in the passwd database (NSS); twofold only serves accounts it can resolve"
            ),
            Self::Alias { given, canonical } => write!(
                f,
                "user name '{given}' is an alias of the account '{canonical}' (the directory matches names loosely); \
                 log in as '{canonical}': twofold keys every record on the canonical name"
            ),
            Self::SharedUid { name, uid, first } => write!(
                f,
                "account '{name}' shares uid {uid} with '{first}': one uid with two names would have two records; \
                 give each account its own uid"
            ),
            Self::Lookup { given, error } => write!(
                f,
                "cannot look up user '{given}' in the passwd database: {error} (is the directory service reachable?)"
            ),
        }
    }
}

impl std::error::Error for AccountError {}

impl Account {
    /// Resolves `given` to its canonical account; anything but an exact, unambiguous match
    /// is an error (the caller denies).
    pub fn resolve(directory: &impl Directory, given: &str) -> Result<Self, AccountError> {
        let name = UserName::parse(given).map_err(AccountError::BadName)?;
        let lookup = |error| AccountError::Lookup {
            given: given.to_owned(),
            error,
        };
        let entry =
            directory
                .by_name(given)
                .map_err(lookup)?
                .ok_or_else(|| AccountError::Unknown {
                    given: given.to_owned(),
                })?;
        if entry.name != given {
            return Err(AccountError::Alias {
                given: given.to_owned(),
                canonical: entry.name,
            });
        }
        match directory.by_uid(entry.uid).map_err(lookup)? {
            Some(owner) if owner.name == entry.name => {}
            Some(owner) => {
                return Err(AccountError::SharedUid {
                    name: entry.name,
                    uid: entry.uid,
                    first: owner.name,
                });
            }
            None => {
                return Err(lookup(format!(
                    "uid {} of '{given}' does not resolve back to a name",
                    entry.uid
                )));
            }
        }
        Ok(Self {
            name,
            uid: entry.uid,
            gid: entry.gid,
        })
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A passwd table for unit tests; `loose` matches names case-insensitively, as SSSD with
    /// `case_sensitive = false` does.
    pub struct Table {
        pub entries: Vec<Entry>,
        pub loose: bool,
        pub broken: bool,
    }

    impl Table {
        pub fn with(names: &[&str]) -> Self {
            let entries = names
                .iter()
                .zip(1000..)
                .map(|(name, uid)| {
                    let uid = if *name == "root" { 0 } else { uid };
                    Entry {
                        name: (*name).to_owned(),
                        uid,
                        gid: uid,
                    }
                })
                .collect();
            Self {
                entries,
                loose: false,
                broken: false,
            }
        }
    }

    impl Directory for Table {
        fn by_name(&self, name: &str) -> Result<Option<Entry>, String> {
            if self.broken {
                return Err("directory server down".into());
            }
            let hit = |e: &&Entry| match self.loose {
                true => e
                    .name
                    .eq_ignore_ascii_case(name.split('@').next().unwrap_or(name)),
                false => e.name == name,
            };
            Ok(self.entries.iter().find(hit).cloned())
        }
        fn by_uid(&self, uid: u32) -> Result<Option<Entry>, String> {
            Ok(self.entries.iter().find(|e| e.uid == uid).cloned())
        }
    }

    #[test]
    fn only_the_canonical_name_resolves() {
        let mut table = Table::with(&["alice", "bob"]);
        assert_eq!(
            Account::resolve(&table, "alice").unwrap().name.as_str(),
            "alice"
        );
        table.loose = true;
        for alias in ["ALICE", "Alice", "alice@example.com"] {
            assert_eq!(
                Account::resolve(&table, alias),
                Err(AccountError::Alias {
                    given: alias.into(),
                    canonical: "alice".into()
                })
            );
        }
        assert!(matches!(
            Account::resolve(&table, "carol"),
            Err(AccountError::Unknown { .. })
        ));
        table.entries.push(Entry {
            name: "toor".into(),
            uid: 1000,
            gid: 0,
        });
        assert!(matches!(
            Account::resolve(&table, "toor"),
            Err(AccountError::SharedUid { .. })
        ));
        table.broken = true;
        assert!(matches!(
            Account::resolve(&table, "alice"),
            Err(AccountError::Lookup { .. })
        ));
        assert!(matches!(
            Account::resolve(&table, "../x"),
            Err(AccountError::BadName(_))
        ));
    }

    #[test]
    fn accepts_ordinary_and_directory_names() {
        for ok in [
            "alice",
            "bob.smith",
            "svc_backup",
            "alice@example.com",
            "EXAMPLE\\bob",
            "a..b",
        ] {
            assert_eq!(UserName::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_names_that_could_escape_the_store() {
        assert_eq!(UserName::parse(""), Err(UserNameError::Empty));
        assert_eq!(UserName::parse(".."), Err(UserNameError::ForbiddenStart));
        assert_eq!(
            UserName::parse(".hidden"),
            Err(UserNameError::ForbiddenStart)
        );
        assert_eq!(UserName::parse("-rf"), Err(UserNameError::ForbiddenStart));
        assert!(matches!(
            UserName::parse("../etc/x"),
            Err(UserNameError::ForbiddenStart)
        ));
        assert!(matches!(
            UserName::parse("a/b"),
            Err(UserNameError::ForbiddenChar { .. })
        ));
        assert!(matches!(
            UserName::parse("a\0b"),
            Err(UserNameError::ForbiddenChar { .. })
        ));
        assert!(matches!(
            UserName::parse("a\nb"),
            Err(UserNameError::ForbiddenChar { .. })
        ));
        let long = "x".repeat(300);
        assert_eq!(
            UserName::parse(&long),
            Err(UserNameError::TooLong { len: 300 })
        );
        assert!(UserName::parse(&"x".repeat(MAX_LEN)).is_ok());
    }
}
