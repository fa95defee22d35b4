//! Every account the passwd database can list, through NSS enumeration (setpwent/getpwent, as
//! `getent passwd` does it): local files, LDAP, SSSD alike — the same accounts logins resolve.
//! The one listing behind `twofold list`, `import --all` and the home store's listing; a
//! single account is looked up with [`crate::user::Nss`] instead.
//!
//! Enumeration runs `/usr/bin/getent passwd` rather than calling getpwent(3): libc's
//! enumeration keeps global state (not thread-safe, so only callable through raw FFI) and neither nix nor
//! the standard library wraps it; getent is part of every glibc system (libc-bin). A directory
//! that does not allow enumeration (SSSD's default `enumerate = false`) lists only its cached
//! users: callers that know groups (policy) add their members.
//!
//! [`Snapshot`] keeps one enumeration to answer the lookups of [`Account::resolve`] for a run
//! over many names (`twofold list`), instead of one NSS lookup per name.
#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::process::Command;

use crate::user::{Directory, Entry, Nss};

/// Absolute: the CLI runs as root, and `PATH` is not ours to trust.
pub const GETENT: &str = "/usr/bin/getent";

/// One passwd entry as NSS enumerates it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    pub shell: String,
}

impl PasswdEntry {
    /// An account a person logs in with: uid 0 or a regular uid (1000 up to, not including,
    /// nobody's 65534) with a shell that is not `nologin` or `false`.
    pub fn is_login_account(&self) -> bool {
        let regular = self.uid == 0 || (1000..65534).contains(&self.uid);
        let shell = self.shell.as_str();
        regular && !shell.is_empty() && !shell.ends_with("nologin") && !shell.ends_with("false")
    }
}

/// Why the accounts could not be listed.
#[derive(Debug)]
pub enum ListError {
    /// getent could not be started.
    Run(std::io::Error),
    /// getent ended with an error (the words say how).
    Failed(String),
}

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Run(e) => write!(
                f,
                "cannot list the accounts: running {GETENT} failed: {e} (install libc-bin)"
            ),
            Self::Failed(why) => write!(
                f,
                "cannot list the accounts: {GETENT} passwd {why} (is the directory service reachable?)"
            ),
        }
    }
}

impl std::error::Error for ListError {}

/// Every account NSS lists, in its order, each name once.
pub fn all() -> Result<Vec<PasswdEntry>, ListError> {
    Ok(parse(&enumerate()?))
}

/// `getent passwd` as it printed it: every account NSS lists, in its order.
pub fn enumerate() -> Result<String, ListError> {
    let output = Command::new(GETENT)
        .arg("passwd")
        .output()
        .map_err(ListError::Run)?;
    if !output.status.success() {
        return Err(ListError::Failed(format!("ended with {}", output.status)));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `getent passwd` output: `name:password:uid:gid:gecos:home:shell` lines. Lines that do not
/// parse are skipped; a name listed twice (files and LDAP) keeps its first entry, the one
/// logins resolve.
pub fn parse(text: &str) -> Vec<PasswdEntry> {
    let mut entries: Vec<PasswdEntry> = Vec::new();
    let mut seen = HashSet::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        let [name, _, uid, gid, _, home, shell] = fields[..] else {
            continue;
        };
        let (Ok(uid), Ok(gid)) = (uid.parse(), gid.parse()) else {
            continue;
        };
        if name.is_empty() || !seen.insert(name) {
            continue;
        }
        entries.push(PasswdEntry {
            name: name.to_owned(),
            uid,
            gid,
            home: PathBuf::from(home),
            shell: shell.to_owned(),
        });
    }
    entries
}

/// The passwd database as one enumeration saw it, for many lookups in one run. Each name and
/// each uid answers with its first entry, as getpwnam and getpwuid walk the sources in the
/// same order. Where the enumeration may not hold every account (`complete` false: see
/// [`crate::nsswitch`]) or a line did not parse, a name or uid it lacks is looked up in NSS.
pub struct Snapshot {
    names: HashMap<String, Entry>,
    uids: HashMap<u32, Entry>,
    complete: bool,
}

impl Snapshot {
    /// The entries of `getent passwd` output `text`; `complete` when the sources enumerate
    /// every account.
    pub fn new(text: &str, complete: bool) -> Self {
        let mut snapshot = Self {
            names: HashMap::new(),
            uids: HashMap::new(),
            complete,
        };
        for line in text.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            let entry = match fields[..] {
                [name, _, uid, gid, _, _, _] if !name.is_empty() => {
                    uid.parse().and_then(|uid| Ok((name, uid, gid.parse()?)))
                }
                _ => {
                    // A line we cannot read may be the entry a lookup would find.
                    snapshot.complete = false;
                    continue;
                }
            };
            let Ok((name, uid, gid)) = entry else {
                snapshot.complete = false;
                continue;
            };
            let entry = Entry {
                name: name.to_owned(),
                uid,
                gid,
            };
            snapshot.uids.entry(uid).or_insert_with(|| entry.clone());
            snapshot.names.entry(entry.name.clone()).or_insert(entry);
        }
        snapshot
    }

    /// No enumeration at all: every lookup goes to NSS, as [`Nss`] does.
    pub fn empty() -> Self {
        Self::new("", false)
    }
}

impl Directory for Snapshot {
    fn by_name(&self, name: &str) -> Result<Option<Entry>, String> {
        match self.names.get(name) {
            Some(entry) => Ok(Some(entry.clone())),
            None if self.complete => Ok(None),
            None => Nss.by_name(name),
        }
    }

    fn by_uid(&self, uid: u32) -> Result<Option<Entry>, String> {
        match self.uids.get(&uid) {
            Some(entry) => Ok(Some(entry.clone())),
            None if self.complete => Ok(None),
            None => Nss.by_uid(uid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::{Account, AccountError};

    #[test]
    fn a_snapshot_resolves_as_the_lookups_would() {
        let text = "root:x:0:0:root:/root:/bin/bash\n\
                    alice:x:5001:5001::/home/alice:/bin/sh\n\
                    alice:x:5009:5009::/elsewhere:/bin/sh\n\
                    toor:x:0:0::/root:/bin/sh\n\
                    bob:x:5002:100::/home/bob:/bin/sh\n";
        let snapshot = Snapshot::new(text, true);
        let alice = Account::resolve(&snapshot, "alice").unwrap();
        assert_eq!((alice.uid, alice.gid), (5001, 5001));
        assert_eq!(Account::resolve(&snapshot, "bob").unwrap().gid, 100);
        assert!(matches!(
            Account::resolve(&snapshot, "toor"),
            Err(AccountError::SharedUid { .. })
        ));
        assert!(matches!(
            Account::resolve(&snapshot, "carol-twofold-none"),
            Err(AccountError::Unknown { .. })
        ));
    }

    #[test]
    fn names_missing_from_a_partial_snapshot_are_looked_up() {
        // root is not in the text: where the sources may not enumerate it, NSS is asked.
        let partial = Snapshot::new("alice:x:5001:5001::/:/bin/sh\n", false);
        assert_eq!(Account::resolve(&partial, "root").unwrap().uid, 0);
        let complete = Snapshot::new("alice:x:5001:5001::/:/bin/sh\n", true);
        assert!(Account::resolve(&complete, "root").is_err());
        // A line that does not parse may be the one a lookup finds.
        let odd = Snapshot::new("alice:x:5001:5001::/:/bin/sh\nweird line\n", true);
        assert_eq!(Account::resolve(&odd, "root").unwrap().uid, 0);
        assert_eq!(Account::resolve(&Snapshot::empty(), "root").unwrap().uid, 0);
    }

    #[test]
    fn lines_parse_into_entries_first_name_wins() {
        let text = "root:x:0:0:root:/root:/bin/bash\n\
                    daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
                    alice:*:5001:5001:Alice A:/home/alice:/bin/sh\n\
                    alice:x:9:9::/elsewhere:/bin/sh\n\
                    broken line\n\
                    bad:x:uid:1::/:/bin/sh\n\
                    :x:7:7::/:/bin/sh\n";
        let entries = parse(text);
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["root", "daemon", "alice"]);
        let alice = &entries[2];
        assert_eq!((alice.uid, alice.gid), (5001, 5001));
        assert_eq!(alice.home, PathBuf::from("/home/alice"));
        assert_eq!(alice.shell, "/bin/sh");
    }

    #[test]
    fn login_accounts_are_root_and_regular_uids_with_a_shell() {
        let entry = |uid, shell: &str| PasswdEntry {
            name: "x".into(),
            uid,
            gid: uid,
            home: PathBuf::from("/"),
            shell: shell.into(),
        };
        assert!(entry(0, "/bin/bash").is_login_account());
        assert!(entry(1000, "/bin/sh").is_login_account());
        assert!(entry(5001, "/usr/bin/zsh").is_login_account());
        assert!(!entry(999, "/bin/sh").is_login_account());
        assert!(!entry(65534, "/bin/sh").is_login_account());
        assert!(!entry(1000, "/usr/sbin/nologin").is_login_account());
        assert!(!entry(1000, "/bin/false").is_login_account());
        assert!(!entry(1000, "").is_login_account());
    }

    #[test]
    fn this_system_lists_root() {
        // getent is part of glibc's libc-bin: every system the CLI runs on has it.
        let all = all().unwrap();
        assert!(
            all.iter().any(|e| e.name == "root" && e.uid == 0),
            "{all:?}"
        );
    }
}
