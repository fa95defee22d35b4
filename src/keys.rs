//! Sealing keys: one file per key, `<keys_dir>/<id>.key` (default `/etc/twofold/keys`),
//! root's, mode 0600, in a directory that is root's and 0700. The keys never sit beside the
//! records: a copy of the store (a backup, a dump, a disk image) holds ciphertext only.
//!
//! Key file format (text, hand-parsed so the key never passes through a TOML value that is
//! not wiped):
//!
//! ```text
//! # twofold sealing key ...comments...
//! id = 3f9a1c2e7b4d5a60          # 16 hex digits, random; named in sealed records
//! created = 1700000000           # ordering: the newest key seals new writes
//! key = <64 hex digits>          # 256 bits from the OS RNG
//! ```
//!
//! The key new records are sealed under (the "current" key) is the one with the highest
//! `created`: creating or importing a key makes it current in one rename, so a crash leaves
//! either the old or the new key current, never none.
#![forbid(unsafe_code)]

use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::secure_file::{self, Access, CreateError, Expect, OpenError, Owner, Problem};

/// Where the host's keys live unless `[store] keys_dir` says otherwise.
pub const DEFAULT_KEYS_DIR: &str = "/etc/twofold/keys";
/// Key files are ~200 bytes; anything larger is refused before it is read.
const MAX_KEY_FILE_BYTES: u64 = 4096;
const KEY_BYTES: usize = 32;
const ID_BYTES: usize = 8;

/// A key's name: 16 lowercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(String);

impl KeyId {
    pub fn parse(text: &str) -> Option<Self> {
        let ok = text.len() == ID_BYTES * 2
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A 256-bit sealing key. Wiped on drop; `Debug` shows the id only.
#[derive(Clone)]
pub struct Key {
    pub id: KeyId,
    pub created: i64,
    bytes: Zeroizing<[u8; KEY_BYTES]>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({}, [redacted])", self.id)
    }
}

impl Key {
    /// A new key and id from the OS RNG.
    pub fn generate(created: i64) -> Result<Self, KeyError> {
        let mut bytes = Zeroizing::new([0u8; KEY_BYTES]);
        let mut id = [0u8; ID_BYTES];
        getrandom::fill(bytes.as_mut())
            .and_then(|()| getrandom::fill(&mut id))
            .map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self {
            id: KeyId(hex(&id).to_string()),
            created,
            bytes,
        })
    }

    pub fn bytes(&self) -> &[u8; KEY_BYTES] {
        &self.bytes
    }

    /// The key file's text (holds the key: wiped on drop).
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "# twofold sealing key: whoever holds it and a copy of the records can mint every\n\
             # user's codes. Keep it root's, mode 0600; move it only with `twofold key export`\n\
             # and `twofold key import`, never beside the records or in their backups.\n\
             id = {}\ncreated = {}\nkey = {}\n",
            self.id,
            self.created,
            hex(self.bytes.as_ref()).as_str()
        ))
    }

    /// Parses a key file's text; the message never quotes the file.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())?;
        let (mut id, mut created, mut key) = (None, None, None);
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, value) = line
                .split_once('=')
                .map(|(n, v)| (n.trim(), v.trim()))
                .ok_or("a line is not `name = value`")?;
            let slot = match name {
                "id" => &mut id,
                "created" => &mut created,
                "key" => &mut key,
                _ => return Err(format!("unknown field `{name}`")),
            };
            if slot.replace(value).is_some() {
                return Err(format!("`{name}` appears twice"));
            }
        }
        let id = id
            .and_then(KeyId::parse)
            .ok_or("`id` missing or not 16 hex digits")?;
        let created = created
            .and_then(|c| c.parse::<i64>().ok())
            .ok_or("`created` missing or not a number")?;
        let mut bytes = Zeroizing::new([0u8; KEY_BYTES]);
        key.filter(|k| unhex_into(k, bytes.as_mut()))
            .ok_or("`key` missing or not 64 hex digits")?;
        Ok(Self { id, created, bytes })
    }
}

/// Lowercase hex of `bytes` (wiped on drop: it may be a key).
pub fn hex(bytes: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(bytes.len() * 2));
    for b in bytes {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

/// Fills `out` from exactly `out.len() * 2` hex digits; false if `text` is anything else.
pub fn unhex_into(text: &str, out: &mut [u8]) -> bool {
    let digits = text.as_bytes();
    if digits.len() != out.len() * 2 {
        return false;
    }
    let value = |d: u8| (d as char).to_digit(16).map(|v| v as u8);
    for (i, pair) in digits.chunks(2).enumerate() {
        match (value(pair[0]), value(pair[1])) {
            (Some(hi), Some(lo)) => out[i] = hi << 4 | lo,
            _ => return false,
        }
    }
    true
}

/// What went wrong with the keys; each message names the file and the fix.
#[derive(Debug)]
pub enum KeyError {
    /// A record is sealed under a key this host does not hold.
    Missing {
        id: KeyId,
        path: PathBuf,
    },
    DirInsecure {
        dir: PathBuf,
        uid: u32,
        mode: u32,
    },
    NotDirectory {
        dir: PathBuf,
    },
    File(OpenError),
    Malformed {
        path: PathBuf,
        problem: String,
    },
    /// A key with this id is here already.
    Exists {
        id: KeyId,
    },
    Create(CreateError),
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
    Random(String),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing { id, path } => write!(
                f,
                "sealing key {id} is not on this host ({} missing): copy it from a host that \
                 has it (`twofold key export FILE` there, `twofold key import FILE` here); \
                 records sealed under it are refused until then",
                path.display()
            ),
            Self::DirInsecure { dir, uid, mode } => write!(
                f,
                "key directory {} is owned by uid {uid} with mode {mode:04o}; it must be root's \
                 with mode 0700 (chown root {0}; chmod 700 {0}, after checking who changed it)",
                dir.display()
            ),
            Self::NotDirectory { dir } => write!(
                f,
                "key directory {} is not a directory (symlinks are refused)",
                dir.display()
            ),
            Self::File(e) => write!(f, "{e}"),
            Self::Malformed { path, problem } => write!(
                f,
                "key file {} is malformed: {problem} (restore it from `twofold key export` output)",
                path.display()
            ),
            Self::Exists { id } => write!(f, "key {id} is already on this host"),
            Self::Create(e) => write!(f, "{e}"),
            Self::Io {
                path,
                action,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
            Self::Random(e) => write!(f, "the OS random number generator failed: {e}"),
        }
    }
}

impl std::error::Error for KeyError {}

/// The key files in one directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyring {
    dir: PathBuf,
    owner: u32,
}

impl Keyring {
    /// Keys in `dir`, which (like its files) must belong to this process's user: root.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            owner: nix::unistd::geteuid().as_raw(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path_of(&self, id: &KeyId) -> PathBuf {
        self.dir.join(format!("{id}.key"))
    }

    fn expect(&self) -> Expect {
        Expect {
            what: "key file",
            owner: Owner::Uid(self.owner),
            forbidden_mode: 0o077,
            max_bytes: MAX_KEY_FILE_BYTES,
            single_link: true,
        }
    }

    /// Whether the directory exists; an error if it exists but others could read or swap keys.
    fn check_dir(&self) -> Result<bool, KeyError> {
        let meta = match fs::symlink_metadata(&self.dir) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(self.io("inspect", source)),
        };
        if !meta.is_dir() {
            return Err(KeyError::NotDirectory {
                dir: self.dir.clone(),
            });
        }
        if meta.uid() != self.owner || meta.mode() & 0o077 != 0 {
            return Err(KeyError::DirInsecure {
                dir: self.dir.clone(),
                uid: meta.uid(),
                mode: meta.mode() & 0o7777,
            });
        }
        Ok(true)
    }

    fn io(&self, action: &'static str, source: io::Error) -> KeyError {
        KeyError::Io {
            path: self.dir.clone(),
            action,
            source,
        }
    }

    /// The key named `id`, read through [`secure_file::open_checked`].
    pub fn load(&self, id: &KeyId) -> Result<Key, KeyError> {
        let path = self.path_of(id);
        let missing = || KeyError::Missing {
            id: id.clone(),
            path: path.clone(),
        };
        if !self.check_dir()? {
            return Err(missing());
        }
        let contents = match secure_file::open_checked(&path, &self.expect()) {
            Ok(contents) => contents,
            Err(OpenError {
                problem: Problem::Missing,
                ..
            }) => return Err(missing()),
            Err(e) => return Err(KeyError::File(e)),
        };
        let key = Key::parse(&contents.bytes).map_err(|problem| KeyError::Malformed {
            path: path.clone(),
            problem,
        })?;
        if &key.id != id {
            return Err(KeyError::Malformed {
                path,
                problem: format!("it holds key {}, not {id}", key.id),
            });
        }
        Ok(key)
    }

    /// Every key here, oldest first (none if the directory does not exist).
    pub fn list(&self) -> Result<Vec<Key>, KeyError> {
        if !self.check_dir()? {
            return Ok(Vec::new());
        }
        let entries = fs::read_dir(&self.dir).map_err(|e| self.io("list", e))?;
        let mut keys = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.io("list", e))?;
            let name = entry.file_name();
            let id = name
                .to_str()
                .and_then(|n| n.strip_suffix(".key"))
                .and_then(KeyId::parse);
            if let Some(id) = id {
                keys.push(self.load(&id)?);
            }
        }
        keys.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        Ok(keys)
    }

    /// The key new writes are sealed under: the newest. `None` without any key.
    pub fn current(&self) -> Result<Option<Key>, KeyError> {
        Ok(self.list()?.pop())
    }

    /// Creates the directory (0700) and its parents if missing. CLI only.
    pub fn create_dir(&self) -> Result<(), KeyError> {
        if self.check_dir()? {
            return Ok(());
        }
        if let Some(parent) = self.dir.parent() {
            fs::create_dir_all(parent).map_err(|e| self.io("create directory", e))?;
        }
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| self.io("create directory", e))?;
        self.check_dir().map(|_| ())
    }

    /// A `created` stamp that makes a new key the newest even within one second.
    pub fn next_created(&self, now: i64) -> Result<i64, KeyError> {
        let newest = self.list()?.iter().map(|k| k.created).max();
        Ok(newest.map_or(now, |n| now.max(n.saturating_add(1))))
    }

    /// Adds `key`: written to a temp file (exclusive, 0600, flushed), then renamed into
    /// place and the directory flushed, so the key appears whole or not at all.
    pub fn add(&self, key: &Key) -> Result<(), KeyError> {
        self.create_dir()?;
        let path = self.path_of(&key.id);
        if fs::symlink_metadata(&path).is_ok() {
            return Err(KeyError::Exists { id: key.id.clone() });
        }
        let tmp = self.dir.join(format!(".{}.key.tmp", key.id));
        let _ = fs::remove_file(&tmp); // left by a run that died; the id is ours
        secure_file::write_new(&tmp, key.to_text().as_bytes(), Access::Private)
            .map_err(KeyError::Create)?;
        fs::rename(&tmp, &path).map_err(|e| self.io("rename a key into", e))?;
        self.sync()
    }

    /// Deletes key `id` (after every record left it).
    pub fn remove(&self, id: &KeyId) -> Result<(), KeyError> {
        match fs::remove_file(self.path_of(id)) {
            Ok(()) => self.sync(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io("remove a key from", e)),
        }
    }

    fn sync(&self) -> Result<(), KeyError> {
        File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| self.io("fsync", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn ring() -> (tempfile::TempDir, Keyring) {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::new(dir.path().join("keys"));
        (dir, ring)
    }

    #[test]
    fn a_key_file_round_trips_and_never_shows_the_key_in_debug() {
        let key = Key::generate(7).unwrap();
        let back = Key::parse(key.to_text().as_bytes()).unwrap();
        assert_eq!((&back.id, back.created), (&key.id, 7));
        assert_eq!(back.bytes(), key.bytes());
        assert!(!format!("{key:?}").contains(hex(key.bytes()).as_str()));
    }

    #[test]
    fn malformed_key_files_are_refused_without_quoting_them() {
        let key = Key::generate(1).unwrap();
        let text = key.to_text();
        let secret = hex(key.bytes());
        for broken in [
            text.replace("key = ", "key = 0"),
            text.replace("id = ", "id = x"),
            format!("{}\nkey = {}\n", text.as_str(), secret.as_str()),
            format!("{}\nextra = 1\n", text.as_str()),
            text.replace("created = 1", "created = soon"),
        ] {
            let err = Key::parse(broken.as_bytes()).unwrap_err();
            assert!(!err.contains(secret.as_str()), "{err}");
        }
    }

    #[test]
    fn the_newest_key_is_current_and_ids_must_match_their_file() {
        let (_dir, ring) = ring();
        assert!(ring.current().unwrap().is_none(), "no directory: no key");
        let old = Key::generate(ring.next_created(100).unwrap()).unwrap();
        ring.add(&old).unwrap();
        let new = Key::generate(ring.next_created(100).unwrap()).unwrap();
        assert_eq!(new.created, 101, "same second: still newer");
        ring.add(&new).unwrap();
        assert_eq!(ring.current().unwrap().unwrap().id, new.id);
        assert!(matches!(ring.add(&new), Err(KeyError::Exists { .. })));
        let mode = fs::metadata(ring.path_of(&new.id)).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A key file renamed to another id is refused.
        fs::rename(
            ring.path_of(&old.id),
            ring.dir().join("0000000000000000.key"),
        )
        .unwrap();
        let err = ring.load(&KeyId::parse("0000000000000000").unwrap());
        assert!(matches!(err, Err(KeyError::Malformed { .. })), "{err:?}");
        ring.remove(&KeyId::parse("0000000000000000").unwrap())
            .unwrap();
        let missing = ring.load(&old.id).unwrap_err().to_string();
        assert!(missing.contains(old.id.as_str()) && missing.contains("key import"));
    }

    #[test]
    fn an_open_key_directory_is_refused() {
        let (_dir, ring) = ring();
        ring.add(&Key::generate(1).unwrap()).unwrap();
        fs::set_permissions(ring.dir(), fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(ring.list(), Err(KeyError::DirInsecure { .. })));
    }
}
