//! The optional "home" store (`[store] kind = "home"`): each user's record in
//! `~/.config/twofold/totp.toml`, owned by the user, for sites used to per-user files.
//!
//! Every file operation runs with the filesystem identity of that user (setfsuid/setfsgid,
//! which are per-thread and drop root's file capabilities while in force), so root's power is
//! never used inside a directory the user controls. Below the home directory nothing is
//! followed through a symbolic link: each directory is opened with O_NOFOLLOW relative to
//! its parent, and type, owner and mode are checked on the open descriptors.
//!
//! Limits, by design of per-user files: the user can read their own secret and edit their own
//! replay and lock-out state; a home that is not mounted (encrypted until login, automount)
//! looks like "not enrolled". The system store has neither problem and is the default.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, OFlag, openat, renameat};
use nix::sys::stat::{Mode, mkdirat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, User, setfsgid, setfsuid, unlinkat};

use super::on_disk::{lock_open_error, lock_open_file, parse_record, record_file};
use super::{Change, Locked, Put, Replace, Store, StoreError, put_locked, update_locked};
use crate::record::Record;
use crate::secure_file::open_checked_at;
use crate::user::UserName;

const CONFIG: &str = ".config";
const DIR: &str = "twofold";
const RECORD: &str = "totp.toml";
const LOCK: &str = "totp.lock";
const TEMP: &str = ".totp.toml.tmp";

/// Records in the users' home directories.
#[derive(Debug, Clone, Default)]
pub struct HomeStore;

/// While alive, this thread touches files as `uid`/`gid`; dropping it restores the previous
/// filesystem identity.
struct AsUser {
    uid: Uid,
    gid: Gid,
}

impl AsUser {
    fn enter(uid: Uid, gid: Gid) -> Result<Self, StoreError> {
        // Group first: once the uid is not root any more, changing the gid is not allowed.
        let previous_gid = setfsgid(gid);
        let previous_uid = setfsuid(uid);
        let previous = Self {
            uid: previous_uid,
            gid: previous_gid,
        };
        // setfsuid reports the previous value, not errors: read back to be sure it took.
        let now_uid = setfsuid(Uid::from_raw(u32::MAX));
        let now_gid = setfsgid(Gid::from_raw(u32::MAX));
        if now_uid != uid || now_gid != gid {
            drop(previous);
            return Err(StoreError::PrivilegeDrop { uid: uid.as_raw() });
        }
        Ok(previous)
    }
}

impl Drop for AsUser {
    fn drop(&mut self) {
        setfsuid(self.uid);
        setfsgid(self.gid);
    }
}

fn io_error<'a>(path: &'a Path, action: &'static str) -> impl Fn(Errno) -> StoreError + 'a {
    move |errno| StoreError::Io {
        path: path.to_owned(),
        action,
        source: errno.into(),
    }
}

/// As [`io_error`] for a directory on the way to the record: a link (or a file) there is
/// refused, not followed.
fn dir_error<'a>(path: &'a Path, action: &'static str) -> impl Fn(Errno) -> StoreError + 'a {
    move |errno| match errno {
        Errno::ELOOP | Errno::ENOTDIR => StoreError::DirNotDirectory {
            dir: path.to_owned(),
        },
        _ => io_error(path, action)(errno),
    }
}

/// One user's place: identity and paths.
struct Place {
    user: String,
    uid: Uid,
    gid: Gid,
    home: PathBuf,
}

impl Place {
    fn of(user: &UserName) -> Result<Self, StoreError> {
        let account = User::from_name(user.as_str())
            .map_err(|e| StoreError::Io {
                path: PathBuf::from("/etc/passwd"),
                action: "look up the user in",
                source: e.into(),
            })?
            .ok_or_else(|| StoreError::NoHome {
                user: user.to_string(),
            })?;
        // The home of the account NSS names, never of an alias's spelling of it.
        if account.name != user.as_str() {
            return Err(StoreError::Refused {
                user: user.to_string(),
                problem: format!("the name is an alias of the account '{}'", account.name),
            });
        }
        Ok(Self {
            user: account.name,
            uid: account.uid,
            gid: account.gid,
            home: account.dir,
        })
    }

    fn dir(&self) -> PathBuf {
        self.home.join(CONFIG).join(DIR)
    }

    fn record(&self) -> PathBuf {
        self.dir().join(RECORD)
    }

    /// Checks a directory on its descriptor: a directory, owned by the user (or root, for
    /// the home itself), not writable by group or others.
    fn check_dir(&self, fd: &OwnedFd, path: &Path, root_ok: bool) -> Result<(), StoreError> {
        let meta = File::from(fd.try_clone().map_err(|e| StoreError::Io {
            path: path.to_owned(),
            action: "inspect",
            source: e,
        })?)
        .metadata()
        .map_err(|source| StoreError::Io {
            path: path.to_owned(),
            action: "stat",
            source,
        })?;
        if !meta.is_dir() {
            return Err(StoreError::DirNotDirectory {
                dir: path.to_owned(),
            });
        }
        let owner_ok = meta.uid() == self.uid.as_raw() || (root_ok && meta.uid() == 0);
        if !owner_ok || meta.mode() & 0o022 != 0 {
            return Err(StoreError::HomeDirInsecure {
                dir: path.to_owned(),
                uid: meta.uid(),
                mode: meta.mode() & 0o7777,
                user: self.user.clone(),
                root_ok,
            });
        }
        Ok(())
    }

    /// Opens ~/.config/twofold, creating the missing parts (mode 0700) when `create`.
    /// `Ok(None)`: it does not exist and was not to be created.
    fn open_dir(&self, create: bool) -> Result<Option<OwnedFd>, StoreError> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        // The home path itself comes from the passwd database and may pass through links.
        // A home that is not there (not mounted, never created) holds no record.
        let home = match nix::fcntl::open(&self.home, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if !create => return Ok(None),
            Err(e) => return Err(dir_error(&self.home, "open home directory")(e)),
        };
        self.check_dir(&home, &self.home, true)?;
        let mut parent = home;
        let mut path = self.home.clone();
        for name in [CONFIG, DIR] {
            path.push(name);
            let opened = openat(&parent, name, flags | OFlag::O_NOFOLLOW, Mode::empty());
            let fd = match opened {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if create => {
                    mkdirat(&parent, name, Mode::from_bits_truncate(0o700))
                        .map_err(dir_error(&path, "create directory"))?;
                    openat(&parent, name, flags | OFlag::O_NOFOLLOW, Mode::empty())
                        .map_err(dir_error(&path, "open"))?
                }
                Err(Errno::ENOENT) => return Ok(None),
                Err(e) => return Err(dir_error(&path, "open")(e)),
            };
            self.check_dir(&fd, &path, false)?;
            parent = fd;
        }
        Ok(Some(parent))
    }

    fn read(&self, dir: &OwnedFd) -> Result<Option<Record>, StoreError> {
        let path = self.record();
        let expect = record_file(self.uid.as_raw());
        let record = parse_record(open_checked_at(dir.as_fd(), RECORD, &path, &expect), &path)?;
        if let Some(codes) = record.as_ref().and_then(|r| r.backup_codes.as_ref()) {
            codes
                .check_user_owned_cost()
                .map_err(|problem| StoreError::Refused {
                    user: self.user.clone(),
                    problem,
                })?;
        }
        Ok(record)
    }

    fn lock(&self, dir: &OwnedFd) -> Result<Flock<File>, StoreError> {
        let path = self.dir().join(LOCK);
        let flags = OFlag::O_RDWR
            | OFlag::O_CREAT
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_CLOEXEC;
        let file = File::from(
            openat(dir, LOCK, flags, Mode::from_bits_truncate(0o600))
                .map_err(|errno| lock_open_error(&path, errno.into()))?,
        );
        lock_open_file(file, path, self.uid.as_raw())
    }

    fn write(&self, dir: &OwnedFd, record: &Record) -> Result<(), StoreError> {
        let tmp_path = self.dir().join(TEMP);
        match unlinkat(dir, TEMP, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(io_error(&tmp_path, "remove stale temp file")(e)),
        }
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mut file = File::from(
            openat(dir, TEMP, flags, Mode::from_bits_truncate(0o600))
                .map_err(io_error(&tmp_path, "create"))?,
        );
        let text = record.to_toml();
        let written = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|source| StoreError::Io {
                path: tmp_path.clone(),
                action: "write",
                source,
            })
            .and_then(|()| {
                renameat(dir, TEMP, dir, RECORD).map_err(io_error(&tmp_path, "rename into place"))
            });
        if let Err(e) = written {
            let _ = unlinkat(dir, TEMP, UnlinkatFlags::NoRemoveDir);
            return Err(e);
        }
        self.sync(dir)
    }

    /// Unlinks the record, durably; returns whether there was one.
    fn remove(&self, dir: &OwnedFd) -> Result<bool, StoreError> {
        match unlinkat(dir, RECORD, UnlinkatFlags::NoRemoveDir) {
            Ok(()) => self.sync(dir).map(|()| true),
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(io_error(&self.record(), "remove")(e)),
        }
    }

    fn sync(&self, dir: &OwnedFd) -> Result<(), StoreError> {
        let dup = dir
            .as_fd()
            .try_clone_to_owned()
            .map_err(|source| StoreError::Io {
                path: self.dir(),
                action: "fsync directory",
                source,
            })?;
        File::from(dup).sync_all().map_err(|source| StoreError::Io {
            path: self.dir(),
            action: "fsync directory",
            source,
        })
    }
}

impl Locked for HomeStore {
    fn locked<T>(
        &self,
        user: &UserName,
        decide: impl FnOnce(Result<Option<Record>, StoreError>) -> Result<(T, Change), StoreError>,
    ) -> Result<T, StoreError> {
        let place = Place::of(user)?;
        let _as_user = AsUser::enter(place.uid, place.gid)?;
        let dir = place
            .open_dir(true)?
            .ok_or_else(|| StoreError::DirMissing { dir: place.dir() })?;
        let _lock = place.lock(&dir)?;
        let (out, change) = decide(place.read(&dir))?;
        match change {
            Change::Nothing => {}
            Change::Write(record) => place.write(&dir, &record)?,
            Change::Remove => {
                place.remove(&dir)?;
            }
        }
        Ok(out)
    }
}

impl Store for HomeStore {
    fn load(&self, user: &UserName) -> Result<Option<Record>, StoreError> {
        let place = Place::of(user)?;
        let _as_user = AsUser::enter(place.uid, place.gid)?;
        match place.open_dir(false)? {
            Some(dir) => place.read(&dir),
            None => Ok(None),
        }
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
        let place = Place::of(user)?;
        let _as_user = AsUser::enter(place.uid, place.gid)?;
        let Some(dir) = place.open_dir(false)? else {
            return Ok(false);
        };
        let _lock = place.lock(&dir)?;
        place.remove(&dir)
    }
}

impl HomeStore {
    /// Whether anything lies where `user`'s record would be: a cheap look (no link followed,
    /// nothing trusted) that lets a listing skip the many accounts (system ones, shared
    /// homes) that never enrolled, before the checked read of those that may have.
    pub fn may_have_record(&self, user: &UserName) -> bool {
        Place::of(user).is_ok_and(|place| std::fs::symlink_metadata(place.record()).is_ok())
    }

    /// Where `user`'s record is (for messages and listings).
    pub fn record_path(&self, user: &UserName) -> Result<PathBuf, StoreError> {
        Ok(Place::of(user)?.record())
    }
}
