//! The system store (the default): one root-owned file per user, `<dir>/<user>.toml`.
//!
//! Reads are bounded and refuse anything that is not a plain, private, root-owned file.
//! Every change is: lock `<user>.lock`, read, change, write a temp file, fsync, rename over the
//! record, fsync the directory, unlock. The lock lives in its own file because rename gives the
//! record a new inode: a lock on the record itself would protect nothing after the first write.
//! A crash at any point leaves the old record or the new one, never a mix.
#![forbid(unsafe_code)]

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::Flock;

use super::on_disk::{decode_record, lock_open_error, lock_open_file, record_file};
use super::sealing::Sealing;
use super::{Change, Listing, Locked, Put, Replace, Store, StoreError, put_locked, update_locked};
use crate::record::Record;
use crate::secure_file::open_checked;
use crate::user::UserName;

/// Records as files `<dir>/<user>.toml`, owned by `owner` (root in production).
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
    owner: u32,
    sealing: Sealing,
}

impl FileStore {
    /// A store whose files must belong to the user this process runs as (root for the module
    /// in sshd, sudo, login; root for the admin CLI).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            owner: nix::unistd::geteuid().as_raw(),
            sealing: Sealing::off(),
        }
    }

    /// The same store, sealing what it writes and opening what it reads with `sealing`.
    pub fn with_sealing(self, sealing: Sealing) -> Self {
        Self { sealing, ..self }
    }

    pub fn sealing(&self) -> &Sealing {
        &self.sealing
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
            let record = match self.read_at(&path, &user) {
                Ok(Some(record)) => Ok(record),
                Ok(None) => continue, // removed meanwhile
                Err(e) => Err(e),
            };
            users.push((user, record));
        }
        users.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(users)
    }

    /// The key the user's record is sealed under (`None`: clear, or no record), read without
    /// any key (`twofold key status` and `rotate`).
    pub fn sealed_under(&self, user: &UserName) -> Result<Option<String>, StoreError> {
        self.check_dir()?;
        match open_checked(&self.record_path(user), &record_file(self.owner)) {
            Ok(contents) => Ok(super::sealing::sealed_under(&contents.bytes)),
            Err(e) if matches!(e.problem, crate::secure_file::Problem::Missing) => Ok(None),
            Err(e) => Err(StoreError::File(e)),
        }
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

    /// The record at `path`, read as [`crate::secure_file::open_checked`] reads a trusted
    /// file: no links, no blocking on a FIFO, checked on the descriptor, bounded.
    fn read_at(&self, path: &Path, user: &UserName) -> Result<Option<Record>, StoreError> {
        let read = open_checked(path, &record_file(self.owner));
        decode_record(read, path, user, &self.sealing)
    }

    fn write_at(&self, user: &UserName, path: &Path, record: &Record) -> Result<(), StoreError> {
        let text = self
            .sealing
            .encode(record, user)
            .map_err(|error| StoreError::Sealed {
                user: user.to_string(),
                error,
            })?;
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
            .map_err(|source| lock_open_error(&path, source))?;
        lock_open_file(file, path, self.owner)
    }
}

impl Locked for FileStore {
    fn locked<T>(
        &self,
        user: &UserName,
        decide: impl FnOnce(Result<Option<Record>, StoreError>) -> Result<(T, Change), StoreError>,
    ) -> Result<T, StoreError> {
        self.check_dir()?;
        let _guard = self.lock(user)?;
        let path = self.record_path(user);
        let (out, change) = decide(self.read_at(&path, user))?;
        match change {
            Change::Nothing => {}
            Change::Write(record) => self.write_at(user, &path, &record)?,
            Change::Remove => self.remove_at(&path)?,
        }
        Ok(out)
        // _guard drops here: the lock is released only after the new record is durable.
    }
}

impl Store for FileStore {
    fn load(&self, user: &UserName) -> Result<Option<Record>, StoreError> {
        self.check_dir()?;
        self.read_at(&self.record_path(user), user)
    }

    fn update<T>(
        &self,
        user: &UserName,
        change: impl FnOnce(&mut Option<Record>) -> T,
    ) -> Result<T, StoreError> {
        update_locked(self, user, change)
    }

    fn put(&self, user: &UserName, record: &Record, replace: Replace) -> Result<Put, StoreError> {
        put_locked(self, user, record, replace)
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

#[cfg(test)]
pub(crate) mod tests {
    use std::fs::Permissions;
    use std::os::unix::fs::{PermissionsExt, symlink};
    use std::sync::mpsc;
    use std::time::Duration;

    use super::super::contract::{self, Subject};
    use super::*;

    /// A store directory as the store wants it: this process's, mode 0700.
    pub(crate) fn private_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), Permissions::from_mode(0o700)).unwrap();
        dir
    }

    /// The user's record file made unparseable, in place.
    pub(crate) fn spoil_text(dir: &Path, user: &UserName) {
        fs::write(dir.join(format!("{user}.toml")), "version = 1\nsecret = [").unwrap();
    }

    fn alice() -> UserName {
        UserName::parse("alice").unwrap()
    }

    #[test]
    fn the_file_store_keeps_the_store_contract() {
        let dir = private_dir();
        let open = || FileStore::new(dir.path());
        let spoil = |user: &UserName| spoil_text(dir.path(), user);
        contract::run_all(&Subject {
            open: &open,
            user: alice(),
            spoil: &spoil,
        });
    }

    /// Unreadable because the file is not one the store trusts, not because of its text.
    #[test]
    fn the_file_store_keeps_the_contract_with_a_record_others_can_read() {
        let dir = private_dir();
        let open = || FileStore::new(dir.path());
        let spoil = |user: &UserName| {
            let path = dir.path().join(format!("{user}.toml"));
            fs::set_permissions(path, Permissions::from_mode(0o644)).unwrap();
        };
        contract::run_all(&Subject {
            open: &open,
            user: alice(),
            spoil: &spoil,
        });
    }

    #[test]
    fn a_planted_link_is_replaced_by_a_record_and_its_target_left_alone() {
        let (dir, elsewhere) = (private_dir(), tempfile::tempdir().unwrap());
        let target = elsewhere.path().join("victim");
        fs::write(&target, "theirs").unwrap();
        let path = dir.path().join("alice.toml");
        symlink(&target, &path).unwrap();
        let store = FileStore::new(dir.path());
        let mine = contract::record(&alice(), 1);
        assert!(matches!(store.load(&alice()), Err(StoreError::File(_))));
        assert!(store.put(&alice(), &mine, Replace::No).is_err());
        assert_eq!(
            store.put(&alice(), &mine, Replace::Yes).unwrap(),
            Put::Written
        );
        assert!(fs::symlink_metadata(&path).unwrap().is_file());
        assert_eq!(fs::read_to_string(&target).unwrap(), "theirs");
        assert_eq!(store.load(&alice()).unwrap(), Some(mine));
    }

    #[test]
    fn a_fifo_in_place_of_a_record_or_lock_does_not_hang() {
        for name in ["alice.toml", "alice.lock"] {
            let dir = private_dir();
            let fifo = dir.path().join(name);
            nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
            let (tx, rx) = mpsc::channel();
            let store = FileStore::new(dir.path());
            std::thread::spawn(move || {
                let _ = tx.send(store.update(&alice(), |_| ()).map_err(|e| e.to_string()));
            });
            let result = rx.recv_timeout(Duration::from_secs(10)).expect("hung");
            assert!(result.unwrap_err().contains("a FIFO"), "{name}");
        }
    }

    #[test]
    fn records_are_private_files_in_a_private_directory() {
        let dir = private_dir();
        let store = FileStore::new(dir.path());
        store
            .put(&alice(), &contract::record(&alice(), 1), Replace::No)
            .unwrap();
        let meta = fs::metadata(dir.path().join("alice.toml")).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");

        fs::set_permissions(dir.path(), Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(
            store.load(&alice()),
            Err(StoreError::DirInsecure { mode: 0o755, .. })
        ));
    }
}
