//! A record's text as the stores keep it: sealed (the secret and the backup-code hashes in a
//! [`SealedBox`] under the host's current key) or, without a key or with `[store] seal =
//! false`, clear. Reads take either; a sealed record is read with the key it names, and a
//! missing or wrong key refuses the record (never a clear-text fallback).
//!
//! A sealed record is a record without `secret` and `[backup_codes]`, plus `[sealed]` (see
//! [`crate::seal`]); the box holds a small TOML document of those two fields. The other
//! fields (state, replay step, lock-out) stay readable for `twofold list` and change on every
//! login; each write seals anew with a fresh nonce.
#![forbid(unsafe_code)]

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::backup::BackupCodes;
use crate::keys::{KeyError, KeyId, Keyring};
use crate::otp::Secret;
use crate::record::{FORMAT_VERSION, Record, RecordError};
use crate::seal::{OpenFailure, SealedBox};
use crate::user::UserName;

/// The first line of a sealed record file, for an admin who opens one.
const HEADER: &str = "# twofold record: the secret and backup codes are sealed under the key \
     named in [sealed] (see `twofold key status`)\n";
/// Stands in for the secret while the rest of a sealed record is parsed; never stored.
const PLACEHOLDER: &str = "AAAAAAAAAAAAAAAA";

/// What the box holds.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Secrets {
    secret: Secret,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backup_codes: Option<BackupCodes>,
}

/// How a store seals what it writes and opens what it reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealing {
    keys: Option<Keyring>,
    seal_writes: bool,
}

/// Why a record could not be sealed or opened.
#[derive(Debug)]
pub enum SealError {
    Key(KeyError),
    Open(OpenFailure),
    /// A sealed record was found where no key directory is configured.
    NoKeyring {
        key: String,
    },
    Random(String),
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key(e) => write!(f, "{e}"),
            Self::Open(e) => write!(f, "{e}"),
            Self::NoKeyring { key } => write!(
                f,
                "the record is sealed under key {key}, and this store reads no keys"
            ),
            Self::Random(e) => write!(f, "no nonce: the OS random number generator failed: {e}"),
        }
    }
}

/// A record that could not be read: its text, or its seal.
#[derive(Debug)]
pub enum Unreadable {
    Record(RecordError),
    Seal(SealError),
}

impl Sealing {
    /// Neither seals nor opens (test stores, and stores built without a policy).
    pub fn off() -> Self {
        Self {
            keys: None,
            seal_writes: false,
        }
    }

    /// Opens with the keys in `keyring`; seals writes under its newest key if `seal_writes`.
    pub fn new(keyring: Keyring, seal_writes: bool) -> Self {
        Self {
            keys: Some(keyring),
            seal_writes,
        }
    }

    /// Whether writes are sealed (when a key exists).
    pub fn seals_writes(&self) -> bool {
        self.keys.is_some() && self.seal_writes
    }

    pub fn keyring(&self) -> Option<&Keyring> {
        self.keys.as_ref()
    }

    /// Whether a record stored as `bytes` must be written whole to be as this store writes
    /// records: it is clear, and a key to seal it under exists now. (A login that changes only
    /// the login state then rewrites the record once, and seals it.)
    pub(super) fn would_seal(&self, bytes: &[u8]) -> bool {
        let clear = std::str::from_utf8(bytes).is_ok_and(|text| !is_sealed(text));
        clear
            && self.seals_writes()
            && self
                .keys
                .as_ref()
                .is_some_and(|keys| matches!(keys.current(), Ok(Some(_))))
    }

    /// The record in `bytes`, stored as `user`'s.
    pub fn decode(&self, bytes: &[u8], user: &UserName) -> Result<Record, Unreadable> {
        let text =
            std::str::from_utf8(bytes).map_err(|_| Unreadable::Record(RecordError::NotUtf8))?;
        if !is_sealed(text) {
            return Record::parse(bytes).map_err(Unreadable::Record);
        }
        let invalid = |message: String| {
            Unreadable::Record(RecordError::Invalid {
                line: None,
                message,
            })
        };
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| invalid(e.message().into()))?;
        if table.contains_key("secret") || table.contains_key("backup_codes") {
            return Err(invalid(
                "a sealed record holds a clear `secret` or `[backup_codes]`".into(),
            ));
        }
        let sealed: SealedBox = table
            .remove("sealed")
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| invalid("`[sealed]` needs key, nonce and data".into()))?;
        match table.get("version").and_then(toml::Value::as_integer) {
            Some(v) if v == i64::from(FORMAT_VERSION) => {}
            Some(found) => {
                return Err(Unreadable::Record(RecordError::UnsupportedVersion {
                    found,
                }));
            }
            None => return Err(invalid("missing or non-integer `version`".into())),
        }
        let secrets = self.open(&sealed, user).map_err(Unreadable::Seal)?;
        table.insert("secret".into(), PLACEHOLDER.into());
        let rest = toml::to_string(&table).map_err(|e| invalid(e.to_string()))?;
        let mut record = Record::parse(rest.as_bytes()).map_err(Unreadable::Record)?;
        if let Some(codes) = &secrets.backup_codes {
            codes.validate().map_err(invalid)?;
        }
        record.secret = secrets.secret;
        record.backup_codes = secrets.backup_codes;
        Ok(record)
    }

    fn open(&self, sealed: &SealedBox, user: &UserName) -> Result<Secrets, SealError> {
        let id = sealed.key_id().map_err(SealError::Open)?;
        let keyring = self.keys.as_ref().ok_or_else(|| SealError::NoKeyring {
            key: id.to_string(),
        })?;
        let key = keyring.load(&id).map_err(SealError::Key)?;
        let plain = sealed
            .open(&key, user.as_str(), FORMAT_VERSION)
            .map_err(SealError::Open)?;
        let text = std::str::from_utf8(&plain).map_err(|_| refused(&id))?;
        toml::from_str(text).map_err(|_| refused(&id))
    }

    /// The text to store for `user`: sealed under the newest key if this store seals and a
    /// key exists, else clear.
    pub fn encode(&self, record: &Record, user: &UserName) -> Result<Zeroizing<String>, SealError> {
        let key = match (&self.keys, self.seal_writes) {
            (Some(keyring), true) => keyring.current().map_err(SealError::Key)?,
            _ => None,
        };
        let Some(key) = key else {
            return Ok(record.to_toml());
        };
        let secrets = Secrets {
            secret: record.secret.clone(),
            backup_codes: record.backup_codes.clone(),
        };
        let plain = Zeroizing::new(toml::to_string(&secrets).expect("secrets serialise to TOML"));
        let sealed = SealedBox::seal(&key, user.as_str(), FORMAT_VERSION, plain.as_bytes())
            .map_err(SealError::Random)?;
        // The shell never holds the secret: the table built from it may be copied unwiped.
        let mut shell = record.clone();
        shell.secret = Secret::from_base32(PLACEHOLDER).expect("placeholder is base32");
        shell.backup_codes = None;
        let mut table = toml::Table::try_from(&shell).expect("record serialises to TOML");
        table.remove("secret");
        table.insert(
            "sealed".into(),
            toml::Value::try_from(&sealed).expect("box serialises to TOML"),
        );
        let body = toml::to_string(&table).expect("table serialises to TOML");
        Ok(Zeroizing::new(format!("{HEADER}{body}")))
    }
}

fn refused(id: &KeyId) -> SealError {
    SealError::Open(OpenFailure::Refused {
        key: id.to_string(),
    })
}

/// Whether a record's text is sealed: it has a `[sealed]` table (the writer puts it on a
/// line of its own; a `sealed` key in any other form is an unknown field to the clear parser).
fn is_sealed(text: &str) -> bool {
    text.lines().any(|line| line.trim() == "[sealed]")
}

/// The id of the key a stored record's text is sealed under, `None` for a clear record,
/// read without any key (for `twofold key status` and `rotate`).
pub fn sealed_under(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Peek {
        sealed: SealedBox,
    }
    let text = std::str::from_utf8(bytes).ok()?;
    if !is_sealed(text) {
        return None;
    }
    toml::from_str::<Peek>(text).ok().map(|p| p.sealed.key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Key;
    use crate::record::tests::sample;

    fn sealing() -> (tempfile::TempDir, Sealing) {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::new(dir.path().join("keys"));
        ring.add(&Key::generate(1).unwrap()).unwrap();
        (dir, Sealing::new(ring, true))
    }

    fn alice() -> UserName {
        UserName::parse("alice").unwrap()
    }

    fn with_codes() -> Record {
        let mut record = sample();
        record.backup_codes = Some(
            crate::backup::generate(2, crate::backup::tests::CHEAP)
                .unwrap()
                .stored,
        );
        record
    }

    #[test]
    fn a_sealed_record_round_trips_and_shows_no_secret() {
        let (_dir, sealing) = sealing();
        let record = with_codes();
        let text = sealing.encode(&record, &alice()).unwrap();
        assert!(text.starts_with("# twofold record") && text.contains("[sealed]"));
        let hashes = &record.backup_codes.as_ref().unwrap().hashes;
        for clear in [
            record.secret.to_base32().as_str(),
            "JBSWY3DP",
            hashes[0].as_str(),
        ] {
            assert!(!text.contains(clear), "{clear} in {}", *text);
        }
        assert_eq!(sealing.decode(text.as_bytes(), &alice()).unwrap(), record);
        let key = sealing.keyring().unwrap().current().unwrap().unwrap();
        assert_eq!(sealed_under(text.as_bytes()), Some(key.id.to_string()));
        assert_eq!(sealed_under(record.to_toml().as_bytes()), None);
    }

    #[test]
    fn clear_records_still_read_and_are_written_clear_without_a_key_or_when_told() {
        let (dir, sealing) = sealing();
        let record = sample();
        let clear = record.to_toml();
        assert_eq!(sealing.decode(clear.as_bytes(), &alice()).unwrap(), record);
        let off = Sealing::new(Keyring::new(dir.path().join("keys")), false);
        assert_eq!(*off.encode(&record, &alice()).unwrap(), *clear);
        let keyless = Sealing::new(Keyring::new(dir.path().join("none")), true);
        assert_eq!(*keyless.encode(&record, &alice()).unwrap(), *clear);
    }

    #[test]
    fn a_sealed_record_is_refused_under_another_name_or_without_its_key() {
        let (dir, sealing) = sealing();
        let text = sealing.encode(&with_codes(), &alice()).unwrap();
        let bob = UserName::parse("bob").unwrap();
        // Even with the account field edited to match, the box is bound to alice.
        let moved = text.replace("account = \"alice\"", "account = \"bob\"");
        let err = sealing.decode(moved.as_bytes(), &bob).unwrap_err();
        assert!(matches!(
            err,
            Unreadable::Seal(SealError::Open(OpenFailure::Refused { .. }))
        ));
        let elsewhere = Sealing::new(Keyring::new(dir.path().join("other")), true);
        match elsewhere.decode(text.as_bytes(), &alice()) {
            Err(Unreadable::Seal(e)) => {
                let id = sealed_under(text.as_bytes()).unwrap();
                assert!(e.to_string().contains(&id), "{e}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Sealing::off().decode(text.as_bytes(), &alice()),
            Err(Unreadable::Seal(SealError::NoKeyring { .. }))
        ));
    }

    #[test]
    fn a_sealed_record_with_clear_secrets_or_a_changed_box_is_refused() {
        let (_dir, sealing) = sealing();
        let text = sealing.encode(&sample(), &alice()).unwrap();
        let planted = text.replace("[sealed]", "secret = \"JBSWY3DPEHPK3PXP\"\n[sealed]");
        assert!(sealing.decode(planted.as_bytes(), &alice()).is_err());
        let future = text.replace("version = 1", "version = 2");
        assert!(matches!(
            sealing.decode(future.as_bytes(), &alice()),
            Err(Unreadable::Record(RecordError::UnsupportedVersion {
                found: 2
            }))
        ));
        for field in ["key", "nonce", "data"] {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{field} = ")))
                .unwrap();
            let changed = line.replacen('"', "\"0", 1);
            let broken = text.replace(line, &changed);
            assert!(
                sealing.decode(broken.as_bytes(), &alice()).is_err(),
                "{field}"
            );
            let dropped = text.replace(line, "");
            assert!(
                sealing.decode(dropped.as_bytes(), &alice()).is_err(),
                "{field}"
            );
        }
    }
}
