//! The system store (the default): one root-owned file per user, `<dir>/<user>.toml`.
//!
//! Reads are bounded and refuse anything that is not a plain, private, root-owned file.
//! Three files per user: `<user>.toml` (the record), `<user>.state` (the login state, see
//! [`super::state_file`]) and `<user>.lock`. Every change locks `<user>.lock` and reads both
//! files; a login that only moves the login state (replay step, counter, failures, a used
//! backup code) writes one slot of `<user>.state` in place with one `fdatasync`. Any other
//! change writes the new epoch's state slot (durable), then the record: temp file, fsync,
//! rename over the record, fsync the directory. The lock lives in its own file because rename
//! gives the record a new inode: a lock on the record itself would protect nothing after the
//! first write. A crash at any point leaves the state before or after the change.
#![forbid(unsafe_code)]

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::Flock;

use super::hot_state::HotState;
use super::on_disk::{decode_bytes, lock_open_error, lock_open_file, record_file};
use super::sealing::Sealing;
use super::state_file::{StateFile, epoch_line, fresh_file, new_epoch, split_epoch};
use super::{Change, Locked, Put, Replace, Store, StoreError, put_locked, update_locked};
use crate::record::Record;
use crate::secure_file::{OpenError, Problem, open_checked};
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

    /// The key the user's record is sealed under (`None`: clear, or no record), read without
    /// any key (`twofold key status` and `rotate`).
    pub fn sealed_under(&self, user: &UserName) -> Result<Option<String>, StoreError> {
        self.check_dir()?;
        match open_checked(&self.record_path(user), &record_file(self.owner)) {
            Ok(contents) => Ok(super::sealing::sealed_under(&contents.bytes)),
            Err(e) if matches!(e.problem, Problem::Missing) => Ok(None),
            Err(e) => Err(StoreError::File(e)),
        }
    }

    pub(super) fn check_dir(&self) -> Result<(), StoreError> {
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
        self.check_dir_meta(&meta)
    }

    /// The directory's own checks on what lstat or fstat said of it: a directory, ours, 0700.
    pub(super) fn check_dir_meta(&self, meta: &fs::Metadata) -> Result<(), StoreError> {
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

    pub(super) fn state_path(&self, user: &UserName) -> PathBuf {
        self.dir.join(format!("{user}.state"))
    }

    pub(super) fn owner(&self) -> u32 {
        self.owner
    }

    /// The user's record as the logins left it: the record file merged with its state file.
    fn read_at(&self, user: &UserName) -> Result<Option<Record>, StoreError> {
        Ok(self.read_found(user)?.map(|found| found.merged()))
    }

    /// The record file (read as [`crate::secure_file::open_checked`] reads a trusted file: no
    /// links, no blocking on a FIFO, checked on the descriptor, bounded) and, if it names an
    /// epoch, its state file. A record whose state file is missing or holds no valid slot of
    /// its epoch is an error: read without it, a code already used would be open again.
    fn read_found(&self, user: &UserName) -> Result<Option<Found>, StoreError> {
        let path = self.record_path(user);
        let contents = match open_checked(&path, &record_file(self.owner)) {
            Ok(contents) => contents,
            Err(e) if matches!(e.problem, Problem::Missing) => return Ok(None),
            Err(e) => return Err(StoreError::File(e)),
        };
        let mut found = self.found(user, &path, &contents.bytes, |epoch| {
            self.open_state(
                user,
                epoch,
                StateFile::open(&self.state_path(user), self.owner),
            )
        })?;
        found.reseal = self.sealing.would_seal(split_epoch(&contents.bytes).1);
        Ok(Some(found))
    }

    /// What the record file `bytes` (read from `path`) holds, with the state file of the epoch
    /// it names, opened by `open_state`.
    pub(super) fn found(
        &self,
        user: &UserName,
        path: &Path,
        bytes: &[u8],
        open_state: impl FnOnce(u64) -> Result<StateFile, StoreError>,
    ) -> Result<Found, StoreError> {
        let (epoch, text) = split_epoch(bytes);
        let stored = decode_bytes(text, path, user, &self.sealing)?;
        let state = epoch.map(open_state).transpose()?;
        Ok(Found {
            stored,
            epoch,
            state,
            reseal: false,
        })
    }

    /// The state file `opened` for `user`'s record of `epoch`: missing, or without a valid slot
    /// of that epoch, it is an error.
    pub(super) fn open_state(
        &self,
        user: &UserName,
        epoch: u64,
        opened: Result<StateFile, OpenError>,
    ) -> Result<StateFile, StoreError> {
        let lost = |problem: &str| StoreError::StateLost {
            user: user.to_string(),
            state: self.state_path(user),
            problem: problem.to_owned(),
        };
        let state = match opened {
            Ok(state) => state,
            Err(e) if matches!(e.problem, Problem::Missing) => return Err(lost("is missing")),
            Err(e) => return Err(StoreError::File(e)),
        };
        match state.current(epoch) {
            Some(_) => Ok(state),
            None => Err(lost(
                "holds no valid state of the record (torn, corrupt, or another record's)",
            )),
        }
    }

    /// Writes `record` after a locked read that found `found`: a change of login state only
    /// goes to the state file in place (one flush); anything else rewrites the record, and so
    /// does a write of the record as it was (re-sealing: `key rotate`, `seal-all`) or of a
    /// clear record that a key now exists for.
    fn write(
        &self,
        user: &UserName,
        found: Option<Found>,
        record: &Record,
    ) -> Result<(), StoreError> {
        let whole = found
            .as_ref()
            .is_some_and(|f| f.reseal || f.merged() == *record);
        match found {
            Some(Found {
                stored,
                epoch: Some(epoch),
                state: Some(mut state),
                ..
            }) if !whole => match HotState::change_of(&stored, record) {
                Some(hot) => state.write(epoch, &hot),
                None => self.rewrite(user, Some(state), Some(epoch), record),
            },
            Some(found) => self.rewrite(user, found.state, found.epoch, record),
            None => self.rewrite(user, None, None, record),
        }
    }

    /// A whole new record under a new epoch: first the epoch's state (durable), then the
    /// record that names it (temp file, fsync, rename, fsync directory). A crash between the
    /// two leaves the old record, whose own epoch's slot (of `live`, the epoch it names) was
    /// not touched.
    fn rewrite(
        &self,
        user: &UserName,
        state: Option<StateFile>,
        live: Option<u64>,
        record: &Record,
    ) -> Result<(), StoreError> {
        let epoch = new_epoch()?;
        let hot = HotState::of(record);
        let state = state.or_else(|| StateFile::open(&self.state_path(user), self.owner).ok());
        match state {
            Some(mut state) if state.is_whole() => state.write_beside(live, epoch, &hot)?,
            // None yet (or not one to trust): a new file, in place before the record names it.
            _ => {
                let tmp = self.dir.join(format!(".{user}.state.tmp"));
                self.replace(&tmp, &self.state_path(user), &fresh_file(epoch, &hot)?)?;
            }
        }
        let text = self
            .sealing
            .encode(record, user)
            .map_err(|error| StoreError::Sealed {
                user: user.to_string(),
                error,
            })?;
        let mut bytes = epoch_line(epoch).into_bytes();
        bytes.extend_from_slice(text.as_bytes());
        let tmp = self.dir.join(format!(".{user}.toml.tmp"));
        self.replace(&tmp, &self.record_path(user), &bytes)
    }

    /// Puts `bytes` at `path` atomically and durably: write `tmp`, fsync, rename, fsync the
    /// directory.
    fn replace(&self, tmp: &Path, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        // One temp name per user and file: writers of one user are serialised by the lock,
        // so a file there now was left by a writer that died (kill -9, power loss) and can
        // go. Names start with '.': never a user's record.
        match fs::remove_file(tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StoreError::Io {
                    path: tmp.to_owned(),
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
            .open(tmp)
            .map_err(io_err("create", tmp))?;
        let written = file
            .write_all(bytes)
            .map_err(io_err("write", tmp))
            .and_then(|()| file.sync_all().map_err(io_err("fsync", tmp)))
            .and_then(|()| fs::rename(tmp, path).map_err(io_err("rename into place", path)));
        if let Err(e) = written {
            let _ = fs::remove_file(tmp);
            return Err(e);
        }
        self.sync_dir()
    }

    /// Removes the record, then its state file: the record's removal is made durable first,
    /// so a crash can leave a state file without a record (harmless, replaced by the next
    /// enrollment), never a record without its state.
    fn remove_files(&self, user: &UserName) -> Result<(), StoreError> {
        self.remove_at(&self.record_path(user))?;
        let state = self.state_path(user);
        match fs::remove_file(&state) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io {
                path: state,
                action: "remove",
                source,
            }),
        }
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

/// What a locked read found: the record as its file holds it, the epoch it names, and its
/// open state file.
pub(super) struct Found {
    stored: Record,
    epoch: Option<u64>,
    state: Option<StateFile>,
    /// The record is clear and the store would seal it now.
    reseal: bool,
}

impl Found {
    /// The record as the logins left it.
    pub(super) fn merged(&self) -> Record {
        let mut record = self.stored.clone();
        if let (Some(epoch), Some(state)) = (self.epoch, &self.state) {
            if let Some(hot) = state.current(epoch) {
                hot.apply(&mut record);
            }
        }
        record
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
        let (found, view) = match self.read_found(user) {
            Ok(found) => {
                let view = found.as_ref().map(Found::merged);
                (found, Ok(view))
            }
            Err(e) => (None, Err(e)),
        };
        let (out, change) = decide(view)?;
        match change {
            Change::Nothing => {}
            Change::Write(record) => self.write(user, found, &record)?,
            Change::Remove => self.remove_files(user)?,
        }
        Ok(out)
        // _guard drops here: the lock is released only after the new record is durable.
    }
}

impl Store for FileStore {
    fn load(&self, user: &UserName) -> Result<Option<Record>, StoreError> {
        self.check_dir()?;
        self.read_at(user)
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
        let existed = fs::symlink_metadata(self.record_path(user)).is_ok();
        self.remove_files(user)?;
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

    /// A login that moves only the login state leaves the record file alone.
    #[test]
    fn a_login_writes_the_state_file_only() {
        let dir = private_dir();
        let store = FileStore::new(dir.path());
        store
            .put(&alice(), &contract::record(&alice(), 1), Replace::No)
            .unwrap();
        let record_text = fs::read(dir.path().join("alice.toml")).unwrap();
        let state_len = fs::metadata(dir.path().join("alice.state")).unwrap().len();
        for step in 1..5u64 {
            store
                .update(&alice(), |r| r.as_mut().unwrap().last_step = Some(step))
                .unwrap();
            assert_eq!(
                fs::read(dir.path().join("alice.toml")).unwrap(),
                record_text
            );
            let got = store.load(&alice()).unwrap().unwrap().last_step;
            assert_eq!(got, Some(step));
        }
        let meta = fs::metadata(dir.path().join("alice.state")).unwrap();
        assert_eq!((meta.len(), meta.mode() & 0o777), (state_len, 0o600));
    }

    /// A state file deleted, truncated or spoilt never reads as "no code used": the record
    /// is refused until an admin restores or replaces it.
    #[test]
    fn a_lost_state_file_refuses_the_record_until_replaced() {
        type Spoil = fn(&Path);
        let spoils: [Spoil; 4] = [
            |p| fs::remove_file(p).unwrap(),
            |p| fs::write(p, b"").unwrap(),
            |p| {
                fs::remove_file(p).unwrap();
                let mode = nix::sys::stat::Mode::from_bits_truncate(0o600);
                nix::unistd::mkfifo(p, mode).unwrap();
            },
            |p| {
                let mut bytes = fs::read(p).unwrap();
                bytes.iter_mut().for_each(|b| *b ^= 0x55);
                fs::write(p, bytes).unwrap();
            },
        ];
        for spoil in spoils {
            let dir = private_dir();
            let store = FileStore::new(dir.path());
            store
                .put(&alice(), &contract::record(&alice(), 1), Replace::No)
                .unwrap();
            store
                .update(&alice(), |r| r.as_mut().unwrap().last_step = Some(77))
                .unwrap();
            spoil(&dir.path().join("alice.state"));
            let err = store.load(&alice()).unwrap_err();
            let fifo = err.to_string().contains("a FIFO");
            assert!(matches!(err, StoreError::StateLost { .. }) || fifo, "{err}");
            assert!(store.update(&alice(), |_| ()).is_err());
            let fresh = contract::record(&alice(), 2);
            assert_eq!(
                store.put(&alice(), &fresh, Replace::Yes).unwrap(),
                Put::Written
            );
            assert_eq!(store.load(&alice()).unwrap(), Some(fresh));
        }
    }

    /// A record written before the state file existed reads as it is and moves to the new
    /// layout at its first write.
    #[test]
    fn a_record_of_the_old_layout_moves_over_at_its_first_write() {
        let dir = private_dir();
        let mut old = contract::record(&alice(), 1);
        old.last_step = Some(40);
        let path = dir.path().join("alice.toml");
        fs::write(&path, old.to_toml().as_bytes()).unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o600)).unwrap();
        let store = FileStore::new(dir.path());
        assert_eq!(store.load(&alice()).unwrap(), Some(old.clone()));
        store
            .update(&alice(), |r| r.as_mut().unwrap().last_step = Some(41))
            .unwrap();
        assert!(dir.path().join("alice.state").exists());
        old.last_step = Some(41);
        assert_eq!(store.load(&alice()).unwrap(), Some(old));
        assert!(store.remove(&alice()).unwrap());
        assert!(!dir.path().join("alice.state").exists());
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
