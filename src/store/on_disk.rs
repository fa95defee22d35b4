//! What the two file stores (system and home) share: the rules a record file and a lock file
//! must meet, reading a record through [`crate::secure_file`], and taking the per-user lock
//! with a bounded wait.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::sealing::{Sealing, Unreadable};
use super::{LOCK_TIMEOUT, MAX_RECORD_BYTES, StoreError};
use crate::record::Record;
use crate::secure_file::{Contents, Expect, OpenError, Owner, Problem, check_open_file};
use crate::user::UserName;

/// A record: owned by `owner` (root, or the user in the home store), private, small.
pub(super) fn record_file(owner: u32) -> Expect {
    Expect {
        what: "record",
        owner: Owner::Uid(owner),
        forbidden_mode: 0o077,
        max_bytes: MAX_RECORD_BYTES,
        single_link: false,
    }
}

const LOCK_FILE: &str = "lock file";

/// A lock file: a regular file owned by `owner`; its mode and (empty) content do not matter.
fn lock_file(owner: u32) -> Expect {
    Expect {
        what: LOCK_FILE,
        owner: Owner::Uid(owner),
        forbidden_mode: 0,
        max_bytes: u64::MAX,
        single_link: false,
    }
}

/// The record from an [`open_checked`](crate::secure_file::open_checked) of its file: `None`
/// when there is no file.
pub(super) fn parse_record(
    read: Result<Contents, OpenError>,
    path: &Path,
) -> Result<Option<Record>, StoreError> {
    match read {
        Ok(contents) => {
            Record::parse(&contents.bytes)
                .map(Some)
                .map_err(|error| StoreError::Malformed {
                    path: path.to_owned(),
                    error,
                })
        }
        Err(OpenError {
            problem: Problem::Missing,
            ..
        }) => Ok(None),
        Err(e) => Err(StoreError::File(e)),
    }
}

/// A record's text, stored as `user`'s, opened with `sealing`'s keys if it is sealed.
pub(super) fn decode_bytes(
    bytes: &[u8],
    path: &Path,
    user: &UserName,
    sealing: &Sealing,
) -> Result<Record, StoreError> {
    sealing.decode(bytes, user).map_err(|e| match e {
        Unreadable::Record(error) => StoreError::Malformed {
            path: path.to_owned(),
            error,
        },
        Unreadable::Seal(error) => StoreError::Sealed {
            user: user.to_string(),
            error,
        },
    })
}

/// Why a lock file could not be opened: a link planted there is named as one.
pub(super) fn lock_open_error(path: &Path, source: io::Error) -> StoreError {
    let problem = match source.raw_os_error() {
        Some(libc::ELOOP) => Problem::Symlink,
        _ => Problem::Io {
            action: "opened",
            source,
        },
    };
    StoreError::File(OpenError {
        what: LOCK_FILE,
        path: path.to_owned(),
        problem,
    })
}

/// Checks a lock file on its open descriptor (regular, owned by `owner`) and takes the
/// exclusive lock. Polls rather than blocks: a stuck holder costs a login a bounded time
/// (LOCK_TIMEOUT), never a hang.
pub(super) fn lock_open_file(
    file: File,
    path: PathBuf,
    owner: u32,
) -> Result<Flock<File>, StoreError> {
    check_open_file(&file, &path, &lock_file(owner)).map_err(StoreError::File)?;
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
