//! Where records live. One trait ([`Store`]), one error ([`StoreError`]), and the stores the
//! `[store]` settings ([`settings`]) can name, chosen by [`AnyStore::from_settings`]:
//!
//! - [`file`]: the system store (default), one root-owned file per user;
//! - [`home`]: each user's `~/.config/twofold/totp.toml`, touched as that user;
//! - [`postgres`]: one database shared by many hosts (fleet mode).
//!
//! The stores know nothing of the policy: they get their settings. Every kind returns only a
//! record that is the user's own ([`AnyStore`] checks it).
#![forbid(unsafe_code)]

pub mod file;
pub mod home;
mod on_disk;
pub mod postgres;
pub mod settings;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

pub use file::FileStore;
pub use home::HomeStore;
pub use postgres::PgStore;
pub use settings::{DEFAULT_DIR, StoreSection};

use crate::record::{Record, RecordError};
use crate::secure_file::{OpenError, Problem};
use crate::user::UserName;
use settings::StoreKind;

/// Records are a few hundred bytes; anything above this is refused before it is read.
pub const MAX_RECORD_BYTES: u64 = 64 * 1024;
/// How long a login waits for another login or admin command on the same user.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Storage of per-user records. `update` is the only way to change one: it runs `change` on
/// the current record under the user's exclusive lock and persists the result if it differs,
/// so check-and-update (a code's step, a counter) is one atomic step.
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
    /// PostgreSQL store: a stored record does not parse.
    DbRecord {
        user: String,
        error: RecordError,
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
            Self::DbRecord { user, error } => write!(
                f,
                "PostgreSQL store: the record of {user} is malformed: {error} (fix it, or `twofold reset {user}`)"
            ),
        }
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
    // Boxed: its connection is large, and the other stores are a path or nothing.
    Postgres(Box<PgStore>),
}

impl AnyStore {
    /// The store `[store]` names, from settings that passed [`settings::check_settings`].
    pub fn from_settings(settings: &StoreSection) -> Self {
        match settings.kind {
            StoreKind::System => Self::System(FileStore::new(&settings.dir)),
            StoreKind::Home => Self::Home(HomeStore),
            StoreKind::Postgres => Self::Postgres(Box::new(PgStore::from_settings(settings))),
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
            Self::Home(store) => Ok(home::local_users()
                .into_iter()
                .filter_map(|user| match store.load(&user) {
                    Ok(Some(record)) => Some((user, Ok(record))),
                    Ok(None) => None,
                    Err(e) => Some((user, Err(e))),
                })
                .collect()),
        }
    }
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

    fn remove(&self, user: &UserName) -> Result<bool, StoreError> {
        match self {
            Self::System(store) => store.remove(user),
            Self::Home(store) => store.remove(user),
            Self::Postgres(store) => store.remove(user),
        }
    }
}
