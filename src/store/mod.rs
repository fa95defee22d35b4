//! Where records live. One trait ([`Store`]), one error ([`StoreError`]), and the stores the
//! `[store]` settings ([`settings`]) can name, chosen by [`AnyStore::from_settings`]:
//!
//! - [`file`]: the system store (default), one root-owned file per user;
//! - [`home`]: each user's `~/.config/twofold/totp.toml`, touched as that user;
//! - [`agent`]: one PostgreSQL database shared by many hosts (fleet mode), reached through
//!   the local agent (`twofold agent`), which alone links the database client and TLS.
//!
//! The stores know nothing of the policy: they get their settings. Every kind returns only a
//! record that is the user's own ([`AnyStore`] checks it).
#![forbid(unsafe_code)]

pub mod agent;
#[cfg(test)]
mod contract;
pub mod file;
pub mod home;
mod hot_state;
mod listing;
pub mod offline;
mod on_disk;
mod reseal;
pub mod sealing;
pub mod settings;
mod state_file;
pub mod wire;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

pub use agent::AgentStore;
pub use file::FileStore;
pub use home::HomeStore;
pub use listing::StoreListing;
pub use settings::{DEFAULT_DIR, StoreSection};

use crate::record::{Record, RecordError};
use crate::secure_file::{OpenError, Problem};
use crate::user::UserName;
use settings::StoreKind;

/// Records are a few hundred bytes; anything above this is refused before it is read.
pub const MAX_RECORD_BYTES: u64 = 64 * 1024;
/// How long a login waits for another login or admin command on the same user.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Storage of per-user records. Every change holds the user's exclusive lock from reading the
/// record to writing it: `update` runs `change` on the current record and persists the result
/// if it differs, so check-and-update (a code's step, a counter) is one atomic step; `put`
/// stores a whole new record; `remove` deletes one.
pub trait Store {
    fn load(&self, user: &UserName) -> Result<Option<Record>, StoreError>;
    fn update<T>(
        &self,
        user: &UserName,
        change: impl FnOnce(&mut Option<Record>) -> T,
    ) -> Result<T, StoreError>;
    /// Deletes the user's record under the lock without reading it, so that an admin can
    /// reset a record that is broken. Returns whether there was one.
    fn remove(&self, user: &UserName) -> Result<bool, StoreError>;

    /// Stores `record` as the user's, under one lock: with [`Replace::No`] only if there is
    /// none (one found is kept, one that cannot be read is an error); with [`Replace::Yes`]
    /// whatever is there, a record that cannot be read included. The one writer behind
    /// enrolling, importing and migrating.
    ///
    /// This default serves stores that can always read what they hold (the test fakes); the
    /// file, home and PostgreSQL stores replace an unreadable record too.
    fn put(&self, user: &UserName, record: &Record, replace: Replace) -> Result<Put, StoreError> {
        self.update(user, |slot| put_into(slot, record, replace))
    }
}

/// Whether [`Store::put`] may replace what is there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replace {
    /// Only if the user has no record.
    No,
    /// Whatever is there: another record, or one that cannot be read (`--force`).
    Yes,
}

impl From<bool> for Replace {
    fn from(force: bool) -> Self {
        if force { Self::Yes } else { Self::No }
    }
}

/// What [`Store::put`] did (or, from [`Put::decide`], would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Written,
    /// The same record was there already.
    Unchanged,
    /// Another record was there and stays ([`Replace::No`]).
    Kept,
}

impl Put {
    /// The rule of [`Store::put`], on what the store holds for the user or why it could not
    /// be read: for a dry run, and for every store's `put`.
    pub fn decide(
        found: Result<Option<Record>, StoreError>,
        record: &Record,
        replace: Replace,
    ) -> Result<Self, StoreError> {
        match found {
            Ok(existing) => Ok(Self::over(existing.as_ref(), record, replace)),
            Err(e) if replace == Replace::Yes && e.is_about_the_record() => Ok(Self::Written),
            Err(e) => Err(e),
        }
    }

    /// The rule over a record that was read (or none).
    fn over(existing: Option<&Record>, record: &Record, replace: Replace) -> Self {
        match (existing, replace) {
            (Some(existing), _) if existing == record => Self::Unchanged,
            (Some(_), Replace::No) => Self::Kept,
            _ => Self::Written,
        }
    }
}

/// [`Store::put`] on a record the store could read.
fn put_into(slot: &mut Option<Record>, record: &Record, replace: Replace) -> Put {
    let put = Put::over(slot.as_ref(), record, replace);
    if put == Put::Written {
        *slot = Some(record.clone());
    }
    put
}

/// What a store writes after a locked read.
enum Change {
    Nothing,
    // Boxed: a record is large, and the other outcomes are nothing.
    Write(Box<Record>),
    Remove,
}

/// A store that can run a step under one user's lock: read (a read that failed included),
/// decide, write. The file, home and PostgreSQL stores implement it, and their
/// [`Store::update`] and [`Store::put`] are written once on it.
trait Locked {
    /// Under `user`'s lock: reads the record, lets `decide` say what to write, writes it, and
    /// returns what `decide` returned.
    fn locked<T>(
        &self,
        user: &UserName,
        decide: impl FnOnce(Result<Option<Record>, StoreError>) -> Result<(T, Change), StoreError>,
    ) -> Result<T, StoreError>;
}

/// [`Store::update`] on a [`Locked`] store: a record that cannot be read is an error.
fn update_locked<T>(
    store: &impl Locked,
    user: &UserName,
    change: impl FnOnce(&mut Option<Record>) -> T,
) -> Result<T, StoreError> {
    store.locked(user, |found| {
        let before = found?;
        let mut after = before.clone();
        let out = change(&mut after);
        let then = match after {
            _ if after == before => Change::Nothing,
            Some(record) => Change::Write(Box::new(record)),
            None => Change::Remove,
        };
        Ok((out, then))
    })
}

/// [`Store::put`] on a [`Locked`] store: the read, the decision and the write under one lock.
fn put_locked(
    store: &impl Locked,
    user: &UserName,
    record: &Record,
    replace: Replace,
) -> Result<Put, StoreError> {
    store.locked(user, |found| {
        let put = Put::decide(found, record, replace)?;
        let then = match put {
            Put::Written => Change::Write(Box::new(record.clone())),
            Put::Unchanged | Put::Kept => Change::Nothing,
        };
        Ok((put, then))
    })
}

/// Said when the store's owner does not match a process that is not root: the fix is to run
/// as root, never to hand the store (every user's secret) to that uid.
const NOT_ROOT: &str = "the system store is root's and only root may read it: run twofold as \
     root (sudo); never change the store's owner or mode to make this work";

/// The system store expects its owner to be the process's own uid (root in production): a
/// process that is not root must be told to run as root, not to chown the store to itself.
/// (The home store runs as root and expects the user's uid: its hints name that uid.)
fn not_root(expected_uid: u32) -> bool {
    expected_uid != 0 && expected_uid == nix::unistd::geteuid().as_raw()
}

/// What went wrong with the store; each message names the path and what an admin can do.
#[derive(Debug)]
pub enum StoreError {
    DirMissing {
        dir: PathBuf,
    },
    DirNotDirectory {
        dir: PathBuf,
    },
    DirInsecure {
        dir: PathBuf,
        uid: u32,
        mode: u32,
        expected_uid: u32,
    },
    /// A record or lock file that is not what it must be (link, FIFO, owner, mode, size), or
    /// could not be read: see [`crate::secure_file::open_checked`].
    File(OpenError),
    Malformed {
        path: PathBuf,
        error: RecordError,
    },
    LockTimeout {
        path: PathBuf,
    },
    /// Home store: the user has no passwd entry (so no home directory).
    NoHome {
        user: String,
    },
    /// Home store: the filesystem identity could not be switched to the user's.
    PrivilegeDrop {
        uid: u32,
    },
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
    /// PostgreSQL store: the server could not be reached or did not answer in time.
    DbUnreachable {
        server: String,
        reason: String,
    },
    /// PostgreSQL store: the server answered with an error, or the setup is wrong.
    Db {
        server: String,
        problem: String,
    },
    /// Fleet mode: the local agent cannot be reached or did not answer in time.
    AgentDown {
        socket: PathBuf,
        reason: String,
    },
    /// Fleet mode: whoever answers on the agent's socket is not to be trusted (not root, or
    /// speaking another protocol version).
    AgentRefused {
        socket: PathBuf,
        problem: String,
    },
    /// Fleet mode: the agent finds the `[store]` settings wrong (the url rules).
    Settings {
        problem: String,
    },
    /// PostgreSQL store: a stored record does not parse.
    DbRecord {
        user: String,
        error: RecordError,
    },
    /// Home store: a directory on the way to the user's record belongs to someone else or
    /// others may write it, so they could plant or swap the record.
    HomeDirInsecure {
        dir: PathBuf,
        uid: u32,
        mode: u32,
        user: String,
        /// Whether root may own it (the home itself may be root's).
        root_ok: bool,
    },
    /// A sealed record whose key is missing or does not open it (see [`sealing`]).
    Sealed {
        user: String,
        error: sealing::SealError,
    },
    /// System store: the record keeps its login state in a state file (replay step,
    /// failures) that is missing or unreadable; read without it, a used code would be open
    /// again, so the user's logins are refused.
    StateLost {
        user: String,
        state: PathBuf,
        problem: String,
    },
    /// The record found under `user` names another account (a store that folds case), or
    /// asks for more than a record of its kind may (a user-owned file's backup-code cost).
    Refused {
        user: String,
        problem: String,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused { user, problem } => {
                write!(f, "the record of user '{user}' is refused: {problem}")
            }
            Self::StateLost {
                user,
                state,
                problem,
            } => write!(
                f,
                "the login state file {} of user '{user}' {problem}, while the record says it \
                 holds the user's replay step: logins of '{user}' are refused (fail closed, a \
                 used code could work again). Restore the file from a backup taken with the \
                 record, or enroll the user again (twofold enroll --force {user})",
                state.display()
            ),
            Self::Sealed { user, error } => write!(
                f,
                "the record of user '{user}' is refused (fail closed, never read in clear): {error}"
            ),
            Self::HomeDirInsecure {
                dir,
                uid,
                mode,
                user,
                root_ok,
            } => write!(
                f,
                "{} (owned by uid {uid}, mode {mode:04o}) is on the way to {user:?}'s home-store \
                 record, and {}; others could plant or swap the record there, so twofold \
                 refuses it. Keep such accounts out of 2FA, or use the system store \
                 ([store] kind = \"system\"); do not hand a shared directory to the user",
                dir.display(),
                if *root_ok {
                    "it is neither the user's nor root's, or others may write it"
                } else {
                    "it is not the user's, or others may write it"
                }
            ),
            Self::DirMissing { dir } => write!(
                f,
                "store directory {} does not exist (create it: install -d -m 700 -o root {0})",
                dir.display()
            ),
            Self::DirNotDirectory { dir } => {
                write!(
                    f,
                    "store path {} is not a directory (symlinks are refused)",
                    dir.display()
                )
            }
            Self::DirInsecure {
                dir,
                uid,
                mode,
                expected_uid,
            } if not_root(*expected_uid) => write!(
                f,
                "store directory {} is owned by uid {uid} with mode {mode:04o}, and this process runs as uid {expected_uid}: {NOT_ROOT}",
                dir.display()
            ),
            Self::DirInsecure {
                dir,
                uid,
                mode,
                expected_uid,
            } => write!(
                f,
                "store directory {} is owned by uid {uid} with mode {mode:04o}; it must be owned by uid {expected_uid} with mode 0700 (check who changed it, then chown {expected_uid} {0}; chmod 700 {0})",
                dir.display()
            ),
            Self::File(OpenError {
                what,
                path,
                problem: Problem::WrongOwner { uid, owner },
            }) if not_root(owner.fix_uid()) => write!(
                f,
                "{what} {} is owned by uid {uid}, and this process runs as uid {}: {NOT_ROOT}",
                path.display(),
                owner.fix_uid()
            ),
            Self::File(e) => write!(f, "{e}"),
            Self::Malformed { path, error } => {
                write!(f, "record {} is malformed: {error}", path.display())
            }
            Self::LockTimeout { path } => write!(
                f,
                "could not lock {} within {} s: another login or twofold command holds it",
                path.display(),
                LOCK_TIMEOUT.as_secs()
            ),
            Self::NoHome { user } => {
                write!(
                    f,
                    "user '{user}' is not in the passwd database, so has no home store"
                )
            }
            Self::PrivilegeDrop { uid } => write!(
                f,
                "cannot switch the filesystem identity to uid {uid} to use the home store"
            ),
            Self::Io {
                path,
                action,
                source,
            } => {
                write!(f, "cannot {action} {}: {source}", path.display())
            }
            Self::DbUnreachable { server, reason } => write!(
                f,
                "PostgreSQL store: {server} unreachable: {reason} (fail closed; check the server and [store] url)"
            ),
            Self::Db { server, problem } => write!(f, "PostgreSQL store: {server}: {problem}"),
            Self::AgentDown { socket, reason } => write!(
                f,
                "PostgreSQL store: the twofold agent at {} is unreachable: {reason} (fail closed; \
                 start it: systemctl start twofold-agent, or `twofold agent` as root)",
                socket.display()
            ),
            Self::AgentRefused { socket, problem } => write!(
                f,
                "PostgreSQL store: refused the agent at {}: {problem} (fail closed)",
                socket.display()
            ),
            Self::Settings { problem } => write!(
                f,
                "PostgreSQL store: [store] settings refused by the agent: {problem} (fix the policy)"
            ),
            Self::DbRecord { user, error } => write!(
                f,
                "PostgreSQL store: the record of {user} is malformed: {error} (fix it, or `twofold reset {user}`)"
            ),
        }
    }
}

impl StoreError {
    /// Whether the error is about the stored record itself (its file or its text), not the
    /// store's directory, lock or server: writing a new record over it repairs it.
    fn is_about_the_record(&self) -> bool {
        matches!(
            self,
            Self::File(_)
                | Self::Malformed { .. }
                | Self::DbRecord { .. }
                | Self::Refused { .. }
                | Self::Sealed { .. }
                | Self::StateLost { .. }
        )
    }
}

impl StoreError {
    /// Whether the fleet store could not be reached (the agent or its database): the only
    /// case in which `offline = "cache"` may use this host's copy. A refusal (a certificate
    /// that fails verification, an agent that is not root's) never is.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::DbUnreachable { .. } | Self::AgentDown { .. })
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::File(e) => Some(e),
            Self::Malformed { error, .. } | Self::DbRecord { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Every user in a store with their record, or why it could not be read.
pub type Listing = Vec<(UserName, Result<Record, StoreError>)>;

/// The store the policy names: the system store (default) or the users' homes.
#[derive(Debug, Clone)]
pub enum AnyStore {
    System(FileStore),
    Home(HomeStore),
    /// Fleet mode through the local agent. Boxed: it holds its connection and settings.
    Postgres(Box<AgentStore>),
}

impl AnyStore {
    /// The store `[store]` names, from settings that passed [`settings::check_settings`].
    pub fn from_settings(settings: &StoreSection) -> Self {
        match settings.kind {
            StoreKind::System => {
                Self::System(FileStore::new(&settings.dir).with_sealing(settings.sealing()))
            }
            StoreKind::Home => Self::Home(HomeStore),
            StoreKind::Postgres => Self::Postgres(Box::new(AgentStore::from_settings(settings))),
        }
    }

    /// The store for admin commands and self-service: in fleet mode, changes are refused while
    /// the database is unreachable instead of landing in this host's offline copy alone
    /// ([`AgentStore::without_offline_changes`]).
    pub fn without_offline_changes(self) -> Self {
        match self {
            Self::Postgres(store) => Self::Postgres(Box::new(store.without_offline_changes())),
            other => other,
        }
    }

    /// [`AnyStore::from_settings`] for a caller holding a whole policy (anything that lends
    /// its `[store]` settings).
    pub fn from_policy(policy: &impl AsRef<StoreSection>) -> Self {
        Self::from_settings(policy.as_ref())
    }

    /// Makes sure records can be written (the system store's directory); the home store
    /// creates each user's directory on the first write.
    pub fn create_dir(&self) -> Result<(), StoreError> {
        match self {
            Self::System(store) => store.create_dir(),
            Self::Home(_) => Ok(()),
            // The schema is `twofold db init`'s job; the offline copies need their directory.
            Self::Postgres(store) => store.cache().map_or(Ok(()), FileStore::create_dir),
        }
    }

    /// Every enrolled user with their record, or why it could not be read.
    pub fn users(&self) -> Result<Listing, StoreError> {
        match self {
            Self::System(store) => store.users(),
            Self::Postgres(store) => store.users(),
            Self::Home(store) => Ok(home_accounts()?
                .into_iter()
                .filter(|user| store.may_have_record(user))
                .filter_map(|user| match store.load(&user) {
                    Ok(Some(record)) => Some((user, Ok(record))),
                    Ok(None) => None,
                    Err(e) => Some((user, Err(e))),
                })
                .collect()),
        }
    }
}

/// Every account NSS lists (a record may be in any of their homes).
fn home_accounts() -> Result<Vec<UserName>, StoreError> {
    let all = crate::accounts::all().map_err(|e| StoreError::Io {
        path: PathBuf::from(crate::accounts::GETENT),
        action: "list the accounts with",
        source: match e {
            crate::accounts::ListError::Run(e) => e,
            crate::accounts::ListError::Failed(why) => io::Error::other(why),
        },
    })?;
    Ok(all
        .into_iter()
        .filter_map(|entry| UserName::parse(&entry.name).ok())
        .collect())
}

fn refused(user: &UserName) -> impl Fn(String) -> StoreError + '_ {
    move |problem| StoreError::Refused {
        user: user.to_string(),
        problem,
    }
}

impl Store for AnyStore {
    /// Every kind of store returns only a record that is `user`'s own (see
    /// [`Record::check_account`]).
    fn load(&self, user: &UserName) -> Result<Option<Record>, StoreError> {
        let record = match self {
            Self::System(store) => store.load(user),
            Self::Home(store) => store.load(user),
            Self::Postgres(store) => store.load(user),
        }?;
        if let Some(record) = &record {
            record.check_account(user.as_str()).map_err(refused(user))?;
        }
        Ok(record)
    }

    /// As [`Store::update`]; a record found under another account's name is left untouched
    /// and refused, and a record written without its account gets it.
    fn update<T>(
        &self,
        user: &UserName,
        change: impl FnOnce(&mut Option<Record>) -> T,
    ) -> Result<T, StoreError> {
        let owned = |slot: &mut Option<Record>| -> Result<T, String> {
            if let Some(record) = slot.as_ref() {
                record.check_account(user.as_str())?;
            }
            let out = change(slot);
            if let Some(record) = slot.as_mut() {
                record.account.get_or_insert_with(|| user.to_string());
            }
            Ok(out)
        };
        let result = match self {
            Self::System(store) => store.update(user, owned),
            Self::Home(store) => store.update(user, owned),
            Self::Postgres(store) => store.update(user, owned),
        }?;
        result.map_err(refused(user))
    }

    /// As [`Store::remove`]; a record that names another account (a case-folding store) is
    /// not removed under this name. A record that cannot be read at all is removed (that is
    /// what `reset` is for).
    fn remove(&self, user: &UserName) -> Result<bool, StoreError> {
        let found = match self {
            Self::System(store) => store.load(user),
            Self::Home(store) => store.load(user),
            Self::Postgres(store) => store.load(user),
        };
        if let Ok(Some(record)) = found {
            record.check_account(user.as_str()).map_err(refused(user))?;
        }
        match self {
            Self::System(store) => store.remove(user),
            Self::Home(store) => store.remove(user),
            Self::Postgres(store) => store.remove(user),
        }
    }

    /// As [`Store::put`], the record written with its account. Without replacing, a record
    /// found under another account's name is refused as by [`AnyStore::update`]; replacing
    /// writes over it like over any record that cannot be used.
    fn put(&self, user: &UserName, record: &Record, replace: Replace) -> Result<Put, StoreError> {
        let mut record = record.clone();
        record.account.get_or_insert_with(|| user.to_string());
        match (self, replace) {
            (_, Replace::No) => self.update(user, |slot| put_into(slot, &record, replace)),
            (Self::System(store), Replace::Yes) => store.put(user, &record, replace),
            (Self::Home(store), Replace::Yes) => store.put(user, &record, replace),
            (Self::Postgres(store), Replace::Yes) => store.put(user, &record, replace),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::contract::{self, Subject};
    use super::*;

    /// `AnyStore` adds the account rules on top of the store it holds, and keeps the contract.
    #[test]
    fn any_store_over_the_file_store_keeps_the_store_contract() {
        let dir = file::tests::private_dir();
        let open = || AnyStore::System(FileStore::new(dir.path()));
        let spoil = |user: &UserName| file::tests::spoil_text(dir.path(), user);
        contract::run_all(&Subject {
            open: &open,
            user: UserName::parse("alice").unwrap(),
            spoil: &spoil,
        });
    }

    #[test]
    fn a_record_of_another_account_is_refused_unless_replaced() {
        let dir = file::tests::private_dir();
        let (alice, bob) = (
            UserName::parse("alice").unwrap(),
            UserName::parse("bob").unwrap(),
        );
        // bob's record under alice's name (a store that folds case, a copied file).
        FileStore::new(dir.path())
            .put(&alice, &contract::record(&bob, 1), Replace::No)
            .unwrap();
        let store = AnyStore::System(FileStore::new(dir.path()));
        let refused = |r: Result<Put, StoreError>| matches!(r, Err(StoreError::Refused { .. }));
        assert!(matches!(
            store.load(&alice),
            Err(StoreError::Refused { .. })
        ));
        assert!(refused(store.put(
            &alice,
            &contract::record(&alice, 2),
            Replace::No
        )));
        let mine = contract::record(&alice, 2);
        assert_eq!(
            store.put(&alice, &mine, Replace::Yes).unwrap(),
            Put::Written
        );
        assert_eq!(store.load(&alice).unwrap(), Some(mine));
    }

    #[test]
    fn put_writes_the_account_into_a_record_without_one() {
        let dir = file::tests::private_dir();
        let alice = UserName::parse("alice").unwrap();
        let mut bare = contract::record(&alice, 1);
        bare.account = None;
        let store = AnyStore::System(FileStore::new(dir.path()));
        for replace in [Replace::No, Replace::Yes] {
            store.remove(&alice).unwrap();
            assert_eq!(store.put(&alice, &bare, replace).unwrap(), Put::Written);
            let stored = store.load(&alice).unwrap().unwrap();
            assert_eq!(stored.account.as_deref(), Some("alice"), "{replace:?}");
        }
    }

    #[test]
    fn put_decides_by_what_was_found() {
        let alice = UserName::parse("alice").unwrap();
        let (mine, other) = (contract::record(&alice, 1), contract::record(&alice, 2));
        let broken = || {
            Err(StoreError::Malformed {
                path: "/x".into(),
                error: RecordError::Empty,
            })
        };
        let unreachable = || {
            Err(StoreError::DbUnreachable {
                server: "db".into(),
                reason: "down".into(),
            })
        };
        for (found, replace, expected) in [
            (Ok(None), Replace::No, Some(Put::Written)),
            (Ok(Some(mine.clone())), Replace::No, Some(Put::Unchanged)),
            (Ok(Some(other.clone())), Replace::No, Some(Put::Kept)),
            (Ok(Some(other.clone())), Replace::Yes, Some(Put::Written)),
            (Ok(Some(mine.clone())), Replace::Yes, Some(Put::Unchanged)),
            (broken(), Replace::No, None),
            (broken(), Replace::Yes, Some(Put::Written)),
            // Not the record's fault: never a reason to write over it.
            (unreachable(), Replace::Yes, None),
        ] {
            let got = Put::decide(found, &mine, replace).ok();
            assert_eq!(got, expected, "{replace:?}");
        }
        assert_eq!(Replace::from(true), Replace::Yes);
        assert_eq!(Replace::from(false), Replace::No);
    }
}
