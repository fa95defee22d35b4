//! What the two file stores (system and home) share: the rules a record file and a lock file
//! must meet, reading a record, and taking the per-user lock with a bounded wait.
#![forbid(unsafe_code)]

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use zeroize::Zeroizing;

use super::{LOCK_TIMEOUT, MAX_RECORD_BYTES, StoreError};
use crate::record::Record;

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
