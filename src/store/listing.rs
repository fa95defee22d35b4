//! Reading every record of the system store at once (`twofold list`): the directory is opened
//! once and every file is opened relative to it, with the checks a single read makes
//! ([`crate::secure_file::open_checked_at`], [`StateFile::open_at`]: no links, no FIFO,
//! owner, mode, size, checked on the descriptor), so nothing on the way is looked up again
//! for each of 100 000 users. Nothing is written, so the sealing keys are never looked at
//! for a re-seal, as a write would.
#![forbid(unsafe_code)]

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};

use nix::dir::Dir;
use nix::fcntl::{AT_FDCWD, OFlag, openat};
use nix::sys::stat::Mode;

use super::file::FileStore;
use super::on_disk::record_file;
use super::state_file::StateFile;
use super::{Listing, StoreError};
use crate::record::Record;
use crate::secure_file::{Problem, open_checked_at};
use crate::user::UserName;

/// The store directory, held open, and the users it held when it was read.
pub struct StoreListing<'a> {
    store: &'a FileStore,
    dir: OwnedFd,
    users: Vec<UserName>,
}

// Here rather than in file.rs, so that the listing depends on the store and not both ways.
impl FileStore {
    /// Every record in the store, by user name order: `*.toml` files whose names are valid
    /// user names (temp files start with `.` and are skipped). A record that cannot be read
    /// is returned as its error, so one broken file does not hide the others.
    pub fn users(&self) -> Result<Listing, StoreError> {
        let listing = self.listing()?;
        let read = |user: &UserName| Some((user.clone(), listing.read(user).transpose()?));
        Ok(listing.users().iter().filter_map(read).collect())
    }

    /// The store's records for one listing: the directory held open, its users by name order,
    /// each read relative to it ([`StoreListing::read`], callable from several threads).
    pub fn listing(&self) -> Result<StoreListing<'_>, StoreError> {
        StoreListing::open(self)
    }
}

impl<'a> StoreListing<'a> {
    /// Opens the store directory (checked as every read checks it, then again on the open
    /// descriptor) and reads its `<user>.toml` names, in name order.
    pub(super) fn open(store: &'a FileStore) -> Result<Self, StoreError> {
        store.check_dir()?;
        let io = |action| {
            move |errno: nix::Error| StoreError::Io {
                path: store.dir().to_owned(),
                action,
                source: errno.into(),
            }
        };
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let dir =
            File::from(openat(AT_FDCWD, store.dir(), flags, Mode::empty()).map_err(io("open"))?);
        let meta = dir.metadata().map_err(|source| StoreError::Io {
            path: store.dir().to_owned(),
            action: "inspect",
            source,
        })?;
        store.check_dir_meta(&meta)?;
        let dir = OwnedFd::from(dir);
        let mut entries =
            Dir::openat(dir.as_fd(), ".", flags, Mode::empty()).map_err(io("list"))?;
        let mut users = Vec::new();
        for entry in entries.iter() {
            let entry = entry.map_err(io("list"))?;
            let Some(user) = entry
                .file_name()
                .to_str()
                .ok()
                .and_then(|n| n.strip_suffix(".toml"))
                .and_then(|n| UserName::parse(n).ok())
            else {
                continue;
            };
            users.push(user);
        }
        users.sort();
        Ok(Self { store, dir, users })
    }

    /// The users whose record files were there, by name order.
    pub fn users(&self) -> &[UserName] {
        &self.users
    }

    /// `user`'s record as the logins left it (its state file merged in), `None` when it was
    /// removed since the directory was read; an error exactly as a single read reports it.
    pub fn read(&self, user: &UserName) -> Result<Option<Record>, StoreError> {
        let store = self.store;
        let path = store.record_path(user);
        let name = format!("{user}.toml");
        let expect = record_file(store.owner());
        let contents = match open_checked_at(self.dir.as_fd(), &name, &path, &expect) {
            Ok(contents) => contents,
            Err(e) if matches!(e.problem, Problem::Missing) => return Ok(None),
            Err(e) => return Err(StoreError::File(e)),
        };
        let found = store.found(user, &path, &contents.bytes, |epoch| {
            let name = format!("{user}.state");
            let path = store.state_path(user);
            let opened = StateFile::open_at(self.dir.as_fd(), name.as_str(), &path, store.owner());
            store.open_state(user, epoch, opened)
        })?;
        Ok(Some(found.merged()))
    }
}
