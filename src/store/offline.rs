//! Fleet mode's offline copies (`[store] offline = "cache"`): this host's copy of each record
//! the database last gave it, in a local file store the module reads and writes itself, so
//! the copies work when the agent or the database does not.
//!
//! A copy is used only when the fleet store cannot be reached (never when it refuses: a TLS
//! certificate that fails verification is not an outage), only for a user who has one, and
//! for a plain read only while it is younger than `cache_max_age`: a reset, disable or new
//! backup codes on the database never reach a copy.
#![forbid(unsafe_code)]

use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, SystemTime};

use super::file::FileStore;
use super::{Change, Locked, Store, StoreError};
use crate::log::{self, Level};
use crate::record::Record;
use crate::user::UserName;

/// This host's copies and how old one may be.
#[derive(Debug, Clone)]
pub struct OfflineCopies {
    files: FileStore,
    max_age: Duration,
}

impl OfflineCopies {
    pub fn new(files: FileStore, max_age: Duration) -> Self {
        Self { files, max_age }
    }

    pub fn files(&self) -> &FileStore {
        &self.files
    }

    /// After the database answered: the copy follows it (`None`: no record).
    pub fn refresh(&self, user: &UserName, record: &Option<Record>) {
        if let Err(e) = self.files.update(user, |slot| *slot = record.clone()) {
            log::send(
                "pam_twofold",
                Level::Warning,
                &format!("offline copy of {user} not updated: {e}"),
            );
        }
    }

    pub fn remove(&self, user: &UserName) {
        let _ = self.files.remove(user);
    }

    /// The user's copy for a read while `unreachable` stands, if there is a fresh one.
    pub fn load(&self, user: &UserName, unreachable: &StoreError) -> Option<Record> {
        if !self.is_fresh(user) {
            return None;
        }
        let record = self.files.load(user).ok().flatten()?;
        notice(user, unreachable);
        Some(record)
    }

    /// A step under the user's lock on the copy (this host's replay protection), never for a
    /// user without one: only a copy proves the user's state; without one, `unreachable`
    /// stands (fail closed).
    pub(super) fn locked<T>(
        &self,
        user: &UserName,
        unreachable: StoreError,
        decide: impl FnOnce(Result<Option<Record>, StoreError>) -> Result<(T, Change), StoreError>,
    ) -> Result<T, StoreError> {
        // A copy's age is the time this host last heard from the database about the user;
        // a write made here while it is unreachable (replay step, a wrong code) is no news
        // from the database, so it must not make an old copy young again.
        let heard = self.is_fresh(user).then(|| self.written_at(user)).flatten();
        let Some(heard) = heard else {
            return Err(unreachable);
        };
        let out = self.files.locked(user, |found| match found {
            Ok(Some(copy)) => decide(Ok(Some(copy))).map(|(out, change)| (Some(out), change)),
            Ok(None) => Ok((None, Change::Nothing)),
            Err(e) => Err(e),
        });
        self.keep_age(user, heard);
        match out? {
            Some(out) => {
                notice(user, &unreachable);
                Ok(out)
            }
            None => Err(unreachable),
        }
    }

    /// When the copy was last written from the database's answer (its mtime).
    fn written_at(&self, user: &UserName) -> Option<SystemTime> {
        std::fs::symlink_metadata(self.files.record_path(user))
            .and_then(|m| m.modified())
            .ok()
    }

    /// Puts the copy's mtime back to `heard` after an offline write. Failing that, the copy
    /// is removed: fail closed rather than leave a copy that looks newer than it is.
    fn keep_age(&self, user: &UserName, heard: SystemTime) {
        let path = self.files.record_path(user);
        let kept = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&path)
            .and_then(|file| file.set_modified(heard));
        if kept.is_err() && self.written_at(user).is_some_and(|at| at != heard) {
            let _ = self.files.remove(user);
        }
    }

    /// Whether the copy was written within `cache_max_age`; an old one says so in syslog.
    fn is_fresh(&self, user: &UserName) -> bool {
        let age = self
            .written_at(user)
            .and_then(|written| written.elapsed().ok());
        let fresh = age.is_some_and(|age| age <= self.max_age);
        if !fresh && age.is_some() {
            log::send(
                "pam_twofold",
                Level::Warning,
                &format!(
                    "PostgreSQL store unreachable, and this host's copy of {user:?} is older than \
                     cache_max_age ({} s): not used (fail closed)",
                    self.max_age.as_secs()
                ),
            );
        }
        fresh
    }
}

fn notice(user: &UserName, e: &StoreError) {
    log::send(
        "pam_twofold",
        Level::Warning,
        &format!("{e}; using this host's offline copy of {user} (offline = \"cache\")"),
    );
}
