//! Where records live: the system store, one root-owned file per user.
//!
//! Reads are bounded and refuse anything that is not a plain, private, root-owned file.
//! Every change is: lock `<user>.lock`, read, change, write a temp file, fsync, rename over the
//! record, fsync the directory, unlock. The lock lives in its own file because rename gives the
//! record a new inode: a lock on the record itself would protect nothing after the first write.
//! A crash at any point leaves the old record or the new one, never a mix.
#![forbid(unsafe_code)]

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use zeroize::Zeroizing;

use crate::record::{Record, RecordError};
use crate::user::UserName;

/// Records are a few hundred bytes; anything above this is refused before it is read.
pub const MAX_RECORD_BYTES: u64 = 64 * 1024;
/// How long a login waits for another login or admin command on the same user.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// Default place of the system store.
pub const DEFAULT_DIR: &str = "/var/lib/twofold/users";

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
    Symlink {
        path: PathBuf,
    },
    NotRegular {
        path: PathBuf,
        kind: &'static str,
    },
    WrongOwner {
        path: PathBuf,
        uid: u32,
        expected_uid: u32,
    },
    LooseMode {
        path: PathBuf,
        mode: u32,
    },
    TooLarge {
        path: PathBuf,
        size: u64,
    },
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
            Self::Symlink { path } => {
                write!(
                    f,
                    "record {} is a symbolic link; refusing to follow it",
                    path.display()
                )
            }
            Self::NotRegular { path, kind } => {
                write!(f, "record {} is {kind}, not a regular file", path.display())
            }
            Self::WrongOwner {
                path,
                uid,
                expected_uid,
            } if not_root(*expected_uid) => write!(
                f,
                "record {} is owned by uid {uid}, and this process runs as uid {expected_uid}: {NOT_ROOT}",
                path.display()
            ),
            Self::WrongOwner {
                path,
                uid,
                expected_uid,
            } => write!(
                f,
                "record {} is owned by uid {uid}, expected uid {expected_uid} (check who changed it, then chown {expected_uid} {0})",
                path.display()
            ),
            Self::LooseMode { path, mode } => write!(
                f,
                "record {} has mode {mode:04o}; group and others must have no access (chmod 600 {0})",
                path.display()
            ),
            Self::TooLarge { path, size } => write!(
                f,
                "record {} is {size} bytes, over the {MAX_RECORD_BYTES}-byte limit",
                path.display()
            ),
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
            Self::Malformed { error, .. } | Self::DbRecord { error, .. } => Some(error),
            _ => None,
        }
    }
}

fn kind_of(file_type: fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// The descriptor's metadata, if it is a regular file owned by `owner`.
fn owned_regular_file(file: &File, path: &Path, owner: u32) -> Result<fs::Metadata, StoreError> {
    let path = path.to_owned();
    let meta = file.metadata().map_err(|source| StoreError::Io {
        path: path.clone(),
        action: "stat",
        source,
    })?;
    if !meta.file_type().is_file() {
        return Err(StoreError::NotRegular {
            path,
            kind: kind_of(meta.file_type()),
        });
    }
    if meta.uid() != owner {
        return Err(StoreError::WrongOwner {
            path,
            uid: meta.uid(),
            expected_uid: owner,
        });
    }
    Ok(meta)
}

/// Checks a record file on its open descriptor — regular, owned by `owner`, no access for
/// group or others, within the size cap — then reads and parses it. Used by both stores, so
/// the rules a record must meet are written once.
pub(crate) fn read_open_record(file: File, path: &Path, owner: u32) -> Result<Record, StoreError> {
    let path = path.to_owned();
    let meta = owned_regular_file(&file, &path, owner)?;
    if meta.mode() & 0o077 != 0 {
        return Err(StoreError::LooseMode {
            path,
            mode: meta.mode() & 0o7777,
        });
    }
    if meta.len() > MAX_RECORD_BYTES {
        return Err(StoreError::TooLarge {
            path,
            size: meta.len(),
        });
    }
    // Exactly the size fstat gave, plus one byte to notice growth: no reallocation ever
    // leaves a copy of the secret behind, and no record costs more than its own size.
    let expected = meta.len() as usize;
    let mut text = Zeroizing::new(Vec::with_capacity(expected + 1));
    file.take(expected as u64 + 1)
        .read_to_end(&mut text)
        .map_err(|source| StoreError::Io {
            path: path.clone(),
            action: "read",
            source,
        })?;
    if text.len() > expected {
        return Err(StoreError::Io {
            path,
            action: "read (it grew while being read)",
            source: std::io::Error::other("file changed"),
        });
    }
    Record::parse(&text).map_err(|error| StoreError::Malformed { path, error })
}

/// Checks a lock file on its open descriptor (regular, owned by `owner`) and takes the
/// exclusive lock. Polls rather than blocks: a stuck holder costs a login a bounded time
/// (LOCK_TIMEOUT), never a hang.
pub(crate) fn lock_open_file(
    file: File,
    path: PathBuf,
    owner: u32,
) -> Result<Flock<File>, StoreError> {
    owned_regular_file(&file, &path, owner)?;
    let deadline = Instant::now() + LOCK_TIMEOUT;
    let mut pause = Duration::from_micros(500);
    let mut file = file;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(guard) => return Ok(guard),
            Err((f, Errno::EWOULDBLOCK | Errno::EINTR)) => {
                if Instant::now() >= deadline {
                    return Err(StoreError::LockTimeout { path });
                }
                file = f;
                sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err((_, errno)) => {
                return Err(StoreError::Io {
                    path,
                    action: "lock",
                    source: errno.into(),
                });
            }
        }
    }
}

/// Every user in a store with their record, or why it could not be read.
pub type Listing = Vec<(UserName, Result<Record, StoreError>)>;

/// Records as files `<dir>/<user>.toml`, owned by `owner` (root in production).
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
    owner: u32,
}

impl FileStore {
    /// A store whose files must belong to the user this process runs as (root for the module
    /// in sshd, sudo, login; root for the admin CLI).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            owner: nix::unistd::geteuid().as_raw(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn record_path(&self, user: &UserName) -> PathBuf {
        self.dir.join(format!("{user}.toml"))
    }

    fn lock_path(&self, user: &UserName) -> PathBuf {
        self.dir.join(format!("{user}.lock"))
    }

    /// Creates the store directory (mode 0700) if it is missing. Only the CLI calls this:
    /// the module never creates anything it would then have to trust.
    pub fn create_dir(&self) -> Result<(), StoreError> {
        match fs::symlink_metadata(&self.dir) {
            Ok(_) => self.check_dir(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = self.dir.parent() {
                    fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                        path: parent.to_owned(),
                        action: "create directory",
                        source,
                    })?;
                }
                fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&self.dir)
                    .map_err(|source| StoreError::Io {
                        path: self.dir.clone(),
                        action: "create directory",
                        source,
                    })?;
                self.check_dir()
            }
            Err(source) => Err(StoreError::Io {
                path: self.dir.clone(),
                action: "inspect",
                source,
            }),
        }
    }

    /// Every record in the store, by user name order: `*.toml` files whose names are valid
    /// user names (temp files start with `.` and are skipped). A record that cannot be read
    /// is returned as its error, so one broken file does not hide the others.
    pub fn users(&self) -> Result<Listing, StoreError> {
        self.check_dir()?;
        let entries = fs::read_dir(&self.dir).map_err(|source| StoreError::Io {
            path: self.dir.clone(),
            action: "list",
            source,
        })?;
        let mut users = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| StoreError::Io {
                path: self.dir.clone(),
                action: "list",
                source,
            })?;
            let name = entry.file_name();
            let Some(user) = name.to_str().and_then(|n| n.strip_suffix(".toml")) else {
                continue;
            };
            let Ok(user) = UserName::parse(user) else {
                continue;
            };
            let path = self.record_path(&user);
            let record = match self.read_at(&path) {
                Ok(Some(record)) => Ok(record),
                Ok(None) => continue, // removed meanwhile
                Err(e) => Err(e),
            };
            users.push((user, record));
        }
        users.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(users)
    }

    fn check_dir(&self) -> Result<(), StoreError> {
        let meta = match fs::symlink_metadata(&self.dir) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::DirMissing {
                    dir: self.dir.clone(),
                });
            }
            Err(source) => {
                return Err(StoreError::Io {
                    path: self.dir.clone(),
                    action: "inspect",
                    source,
                });
            }
        };
        if !meta.is_dir() {
            return Err(StoreError::DirNotDirectory {
                dir: self.dir.clone(),
            });
        }
        if meta.uid() != self.owner || meta.mode() & 0o077 != 0 {
            return Err(StoreError::DirInsecure {
                dir: self.dir.clone(),
                uid: meta.uid(),
                mode: meta.mode() & 0o7777,
                expected_uid: self.owner,
            });
        }
        Ok(())
    }

    /// Opens without following links and without blocking (a FIFO must not hang a login),
    /// then checks type, owner, mode and size on the open descriptor, never on the path.
    fn read_at(&self, path: &Path) -> Result<Option<Record>, StoreError> {
        let open = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path);
        let file = match open {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(StoreError::Symlink {
                    path: path.to_owned(),
                });
            }
            Err(source) => {
                return Err(StoreError::Io {
                    path: path.to_owned(),
                    action: "open",
                    source,
                });
            }
        };
        read_open_record(file, path, self.owner).map(Some)
    }

    fn write_at(&self, user: &UserName, path: &Path, record: &Record) -> Result<(), StoreError> {
        let text = record.to_toml();
        // One temp name per user: writers of one user are serialised by the lock, so a file
        // there now was left by a writer that died (kill -9, power loss) and can go. Names
        // start with '.': never a user's record.
        let tmp = self.dir.join(format!(".{user}.toml.tmp"));
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StoreError::Io {
                    path: tmp,
                    action: "remove stale temp file",
                    source,
                });
            }
        }
        let io_err = |action: &'static str, path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io {
                path,
                action,
                source,
            }
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        let written = file
            .write_all(text.as_bytes())
            .map_err(io_err("write", &tmp))
            .and_then(|()| file.sync_all().map_err(io_err("fsync", &tmp)))
            .and_then(|()| fs::rename(&tmp, path).map_err(io_err("rename into place", path)));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.sync_dir()
    }

    fn remove_at(&self, path: &Path) -> Result<(), StoreError> {
        match fs::remove_file(path) {
            Ok(()) => self.sync_dir(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io {
                path: path.to_owned(),
                action: "remove",
                source,
            }),
        }
    }

    /// Makes a rename or unlink durable: without it a crash can bring the old entry back.
    fn sync_dir(&self) -> Result<(), StoreError> {
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|source| StoreError::Io {
                path: self.dir.clone(),
                action: "fsync directory",
                source,
            })
    }

    fn lock(&self, user: &UserName) -> Result<Flock<File>, StoreError> {
        let path = self.lock_path(user);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|source| match source.raw_os_error() {
                Some(libc::ELOOP) => StoreError::Symlink { path: path.clone() },
                _ => StoreError::Io {
                    path: path.clone(),
                    action: "open lock file",
                    source,
                },
            })?;
        lock_open_file(file, path, self.owner)
    }
}

impl Store for FileStore {
    fn load(&self, user: &UserName) -> Result<Option<Record>, StoreError> {
        self.check_dir()?;
        self.read_at(&self.record_path(user))
    }

    fn update<T>(
        &self,
        user: &UserName,
        change: impl FnOnce(&mut Option<Record>) -> T,
    ) -> Result<T, StoreError> {
        self.check_dir()?;
        let _guard = self.lock(user)?;
        let path = self.record_path(user);
        let before = self.read_at(&path)?;
        let mut after = before.clone();
        let out = change(&mut after);
        if after != before {
            match &after {
                Some(record) => self.write_at(user, &path, record)?,
                None => self.remove_at(&path)?,
            }
        }
        Ok(out)
        // _guard drops here: the lock is released only after the new record is durable.
    }

    fn remove(&self, user: &UserName) -> Result<bool, StoreError> {
        self.check_dir()?;
        let _guard = self.lock(user)?;
        let path = self.record_path(user);
        let existed = fs::symlink_metadata(&path).is_ok();
        self.remove_at(&path)?;
        Ok(existed)
    }
}

/// The store the policy names: the system store (default) or the users' homes.
#[derive(Debug, Clone)]
pub enum AnyStore {
    System(FileStore),
    Home(crate::home_store::HomeStore),
    // Boxed: its connection is large, and the other stores are a path or nothing.
    Postgres(Box<crate::pg_store::PgStore>),
}

impl AnyStore {
    pub fn from_policy(policy: &crate::policy::Policy) -> Self {
        match policy.store.kind {
            crate::policy::StoreKind::System => Self::System(FileStore::new(&policy.store.dir)),
            crate::policy::StoreKind::Home => Self::Home(crate::home_store::HomeStore),
            crate::policy::StoreKind::Postgres => Self::Postgres(Box::new(
                crate::pg_store::PgStore::from_settings(&policy.store),
            )),
        }
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
            Self::Home(store) => Ok(crate::home_store::local_users()
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
}
