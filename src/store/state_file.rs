//! `<user>.state`: the user's hot login state ([`HotState`]) in two fixed slots of one
//! preallocated file, so that an accepted login is one in-place write and one `fdatasync`,
//! with no rename and no directory sync.
//!
//! Layout: `STATE_BYTES` bytes, slot 0 at offset 0 and slot 1 at `SLOT_BYTES` (each slot in its
//! own 4 KiB block, so a torn write of one never touches the other). A slot is
//!
//! ```text
//! magic "TFSTATE1" | seq u64 LE | epoch u64 LE | len u32 LE | SHA-256(header ‖ payload) | payload
//! ```
//!
//! A write goes to the slot that does not hold the current state, with the next sequence
//! number; a reader takes the valid slot (magic, length, checksum) of the record's epoch with
//! the highest sequence. A crash mid-write leaves a slot that fails its checksum, and the
//! other slot (the state before that login) wins. The epoch ties the slots to one version of
//! the record: every full rewrite of the record picks a new random epoch and writes its first
//! slot (and makes it durable) before the record that names it, so slots of an older record
//! (its backup-code positions, its lock-out) never apply to a newer one. That first slot goes
//! beside the slot of the record still on disk, never over it, so a rewrite that dies before
//! its rename leaves the old record readable however many times it happens.
//!
//! The record names its epoch on its first line (`hot_state_epoch = "<16 hex>"`): a record
//! without it is read as it stands (the layout before this file existed).
#![forbid(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, OFlag, openat};
use nix::sys::stat::Mode;

use sha2::{Digest, Sha256};

use super::StoreError;
use super::hot_state::HotState;
use crate::secure_file::{Expect, OpenError, Owner, Problem, check_open_file};

/// Bytes per slot: one file-system block.
pub(super) const SLOT_BYTES: usize = 4096;
/// The whole file: two slots.
pub(super) const STATE_BYTES: usize = 2 * SLOT_BYTES;
const MAGIC: &[u8; 8] = b"TFSTATE1";
const HEADER: usize = 8 + 8 + 8 + 4;
const SUM: usize = 32;
const EPOCH_KEY: &str = "hot_state_epoch = \"";

/// A state file: owned by `owner`, private, one name, exactly two slots.
pub(super) fn state_file(owner: u32) -> Expect {
    Expect {
        what: "login state file",
        owner: Owner::Uid(owner),
        forbidden_mode: 0o077,
        max_bytes: STATE_BYTES as u64,
        single_link: true,
    }
}

/// The epoch a record file names on its first line, and the record's text after it.
pub(super) fn split_epoch(bytes: &[u8]) -> (Option<u64>, &[u8]) {
    let Some(rest) = bytes.strip_prefix(EPOCH_KEY.as_bytes()) else {
        return (None, bytes);
    };
    let parsed = rest
        .get(..18)
        .filter(|tail| tail.ends_with(b"\"\n"))
        .and_then(|tail| std::str::from_utf8(&tail[..16]).ok())
        .and_then(|hex| u64::from_str_radix(hex, 16).ok());
    match parsed {
        Some(epoch) => (Some(epoch), &rest[18..]),
        // Not ours: left in place, so the record parser refuses the unknown key.
        None => (None, bytes),
    }
}

/// The first line of a record file whose hot state lives in slots of `epoch`.
pub(super) fn epoch_line(epoch: u64) -> String {
    format!("{EPOCH_KEY}{epoch:016x}\"\n")
}

/// A fresh random epoch.
pub(super) fn new_epoch() -> Result<u64, StoreError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Io {
        path: PathBuf::from("/dev/urandom"),
        action: "draw a random epoch from",
        source: io::Error::other(e.to_string()),
    })?;
    Ok(u64::from_le_bytes(bytes))
}

/// One valid slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    index: usize,
    seq: u64,
    epoch: u64,
}

/// An open state file (read and write) and what its slots held when it was read.
pub(super) struct StateFile {
    file: File,
    path: PathBuf,
    whole: bool,
    slots: [Option<(Slot, HotState)>; 2],
}

impl StateFile {
    /// Opens and checks the state file (as [`crate::secure_file::open_checked`] would: no
    /// links, no FIFO, owner, mode, exact size) and reads both slots.
    pub(super) fn open(path: &Path, owner: u32) -> Result<Self, OpenError> {
        Self::open_at(AT_FDCWD, path, path, owner)
    }

    /// [`StateFile::open`] for `name` in the directory `dir` (held open: `twofold list`);
    /// `path` names the file in messages.
    pub(super) fn open_at<P: ?Sized + nix::NixPath>(
        dir: BorrowedFd<'_>,
        name: &P,
        path: &Path,
        owner: u32,
    ) -> Result<Self, OpenError> {
        let expect = state_file(owner);
        let flags = OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let file = File::from(openat(dir, name, flags, Mode::empty()).map_err(|errno| {
            let problem = match errno {
                Errno::ENOENT => Problem::Missing,
                Errno::ELOOP => Problem::Symlink,
                Errno::ENXIO => Problem::NotRegular { kind: "a FIFO" },
                e => Problem::Io {
                    action: "opened",
                    source: e.into(),
                },
            };
            OpenError {
                what: expect.what,
                path: path.to_owned(),
                problem,
            }
        })?);
        check_open_file(&file, path, &expect)?;
        let mut bytes = vec![0u8; STATE_BYTES];
        let read = read_full(&file, &mut bytes).map_err(|source| OpenError {
            what: expect.what,
            path: path.to_owned(),
            problem: Problem::Io {
                action: "read",
                source,
            },
        })?;
        let whole = read == STATE_BYTES;
        let slots = match whole {
            true => [0, 1].map(|index| decode_slot(&bytes, index)),
            false => [None, None], // short: never a whole state file
        };
        Ok(Self {
            file,
            path: path.to_owned(),
            whole,
            slots,
        })
    }

    /// The newest state of `epoch`, if a slot holds one.
    pub(super) fn current(&self, epoch: u64) -> Option<&HotState> {
        self.current_slot(epoch).map(|(_, hot)| hot)
    }

    fn current_slot(&self, epoch: u64) -> Option<&(Slot, HotState)> {
        self.slots
            .iter()
            .flatten()
            .filter(|(slot, _)| slot.epoch == epoch)
            .max_by_key(|(slot, _)| slot.seq)
    }

    /// Writes `hot` as the newest state of `epoch` over the slot that does not hold that
    /// epoch's current state, and makes it durable with one `fdatasync` (the file's size and
    /// blocks never change, so no metadata needs to reach the disk).
    pub(super) fn write(&mut self, epoch: u64, hot: &HotState) -> Result<(), StoreError> {
        self.write_beside(Some(epoch), epoch, hot)
    }

    /// Writes `hot` as the first state of a new `epoch`, over the slot that does not hold the
    /// newest state of `live` (the epoch the record on disk names, if any). Never "the older
    /// slot": after a rewrite that died between its slot and its record, the newer slot is
    /// that orphan, and the older one is all the live record has.
    pub(super) fn write_beside(
        &mut self,
        live: Option<u64>,
        epoch: u64,
        hot: &HotState,
    ) -> Result<(), StoreError> {
        let keep = live.and_then(|live| self.current_slot(live).map(|(slot, _)| slot.index));
        let index = match keep {
            Some(i) => 1 - i,
            None => self.oldest_index(),
        };
        let seq = self
            .slots
            .iter()
            .flatten()
            .map(|(slot, _)| slot.seq)
            .max()
            .unwrap_or(0)
            .wrapping_add(1);
        let slot = Slot { index, seq, epoch };
        let bytes = encode_slot(&slot, hot)?;
        let offset = (index * SLOT_BYTES) as u64;
        let io = |action: &'static str| {
            let path = self.path.clone();
            move |source| StoreError::Io {
                path,
                action,
                source,
            }
        };
        self.file
            .write_all_at(&bytes, offset)
            .map_err(io("write"))?;
        self.file.sync_data().map_err(io("fdatasync"))?;
        self.slots[index] = Some((slot, hot.clone()));
        Ok(())
    }

    /// The slot to write when neither holds the epoch: an invalid one, else the older.
    fn oldest_index(&self) -> usize {
        match &self.slots {
            [None, _] => 0,
            [_, None] => 1,
            [Some((a, _)), Some((b, _))] => usize::from(b.seq < a.seq),
        }
    }

    /// Whether the file had its full size when read (a shorter one is never written into:
    /// the write would change its size, which one `fdatasync` of the data must not rely on).
    pub(super) fn is_whole(&self) -> bool {
        self.whole
    }
}

/// The bytes of a new state file whose first slot holds `hot` for `epoch`.
pub(super) fn fresh_file(epoch: u64, hot: &HotState) -> Result<Vec<u8>, StoreError> {
    let slot = Slot {
        index: 0,
        seq: 1,
        epoch,
    };
    let mut bytes = encode_slot(&slot, hot)?;
    bytes.resize(STATE_BYTES, 0);
    Ok(bytes)
}

fn encode_slot(slot: &Slot, hot: &HotState) -> Result<Vec<u8>, StoreError> {
    let payload = hot.to_bytes();
    if payload.is_empty() || HEADER + SUM + payload.len() > SLOT_BYTES {
        return Err(StoreError::Io {
            path: PathBuf::from("<login state>"),
            action: "fit the login state into one slot of",
            source: io::Error::other(format!("{} bytes", payload.len())),
        });
    }
    let mut bytes = Vec::with_capacity(HEADER + SUM + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&slot.seq.to_le_bytes());
    bytes.extend_from_slice(&slot.epoch.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let sum = checksum(&bytes, &payload);
    bytes.extend_from_slice(&sum);
    bytes.extend_from_slice(&payload);
    Ok(bytes)
}

/// Slot `index` of a whole file, if it is valid.
fn decode_slot(file: &[u8], index: usize) -> Option<(Slot, HotState)> {
    let bytes = &file[index * SLOT_BYTES..(index + 1) * SLOT_BYTES];
    let header = &bytes[..HEADER];
    if !header.starts_with(MAGIC) {
        return None;
    }
    let word = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap_or([0; 8]));
    let len = u32::from_le_bytes(header[24..28].try_into().ok()?) as usize;
    let payload = bytes.get(HEADER + SUM..HEADER + SUM + len)?;
    if bytes[HEADER..HEADER + SUM] != checksum(header, payload) {
        return None;
    }
    let slot = Slot {
        index,
        seq: word(8),
        epoch: word(16),
    };
    Some((slot, HotState::from_bytes(payload)?))
}

fn checksum(header: &[u8], payload: &[u8]) -> [u8; SUM] {
    let mut hash = Sha256::new();
    hash.update(header);
    hash.update(payload);
    hash.finalize().into()
}

fn read_full(file: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_line_round_trips_and_nothing_else_is_taken_for_it() {
        let text = format!("{}version = 1\n", epoch_line(0xdead_beef));
        assert_eq!(
            split_epoch(text.as_bytes()),
            (Some(0xdead_beef), &b"version = 1\n"[..])
        );
        for other in ["version = 1\n", "hot_state_epoch = \"xyz\"\nversion = 1\n"] {
            assert_eq!(split_epoch(other.as_bytes()), (None, other.as_bytes()));
        }
    }

    #[test]
    fn a_torn_or_flipped_slot_is_invalid_and_the_other_wins() {
        let mut hot = HotState::default();
        let mut bytes = fresh_file(7, &hot).unwrap();
        let second = Slot {
            index: 1,
            seq: 2,
            epoch: 7,
        };
        hot = HotState::from_bytes(b"last_step = 5").unwrap();
        let slot = encode_slot(&second, &hot).unwrap();
        bytes[SLOT_BYTES..SLOT_BYTES + slot.len()].copy_from_slice(&slot);
        assert_eq!(decode_slot(&bytes, 1).unwrap().1, hot);
        for cut in [1, HEADER, slot.len() - 1] {
            let mut torn = bytes.clone();
            torn[SLOT_BYTES + cut..SLOT_BYTES + slot.len()].fill(0);
            assert!(decode_slot(&torn, 1).is_none(), "cut at {cut}");
            assert!(decode_slot(&torn, 0).is_some());
        }
        bytes[SLOT_BYTES + HEADER + SUM] ^= 1;
        assert!(decode_slot(&bytes, 1).is_none());
    }

    /// Two rewrites in a row that each die between their slot and their record (a killed
    /// `key rotate`, run again and killed again): the record's own slot survives both.
    #[test]
    fn a_new_epoch_never_overwrites_the_live_records_slot() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alice.state");
        let hot = HotState::from_bytes(b"last_step = 5").unwrap();
        std::fs::write(&path, fresh_file(1, &hot).unwrap()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let owner = nix::unistd::getuid().as_raw();
        let live = 1;
        for orphan in [2, 3, 4] {
            let mut state = StateFile::open(&path, owner).unwrap();
            state.write_beside(Some(live), orphan, &hot).unwrap();
            let again = StateFile::open(&path, owner).unwrap();
            assert_eq!(again.current(live), Some(&hot), "after orphan {orphan}");
            assert_eq!(again.current(orphan), Some(&hot));
        }
        // A record without an epoch (or none at all) has no slot to keep: the older goes.
        let mut state = StateFile::open(&path, owner).unwrap();
        state.write_beside(None, 5, &hot).unwrap();
        let again = StateFile::open(&path, owner).unwrap();
        assert_eq!((again.current(live), again.current(4)), (None, Some(&hot)));
    }
}
