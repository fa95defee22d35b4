//! The sealed box: a record's secret material encrypted with XChaCha20-Poly1305 (RustCrypto's
//! `chacha20poly1305`; no cryptography is written here) under a 256-bit key from
//! [`crate::keys`], with a random 24-byte nonce per write.
//!
//! In a record it is the `[sealed]` table:
//!
//! ```toml
//! [sealed]
//! key = "3f9a1c2e7b4d5a60"   # the key's id: /etc/twofold/keys/3f9a1c2e7b4d5a60.key
//! nonce = "<48 hex digits>"  # random, new on every write
//! data = "<hex>"             # ciphertext and 16-byte tag
//! ```
//!
//! The associated data binds the box to its purpose, the record format version and the
//! canonical account the store holds it under: `twofold sealed record\0v1\0alice`. A box moved
//! to another user's record (or row), or read by a build of another format, does not open,
//! whatever the record's other fields say.
#![forbid(unsafe_code)]

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::keys::{Key, KeyId, hex, unhex_into};

/// What the associated data says the box is for.
const PURPOSE: &str = "twofold sealed record";
const NONCE_BYTES: usize = 24;
/// The sealed data never needs more (a secret and ten backup-code hashes are ~1 KB).
const MAX_DATA_HEX: usize = 32 * 1024;

/// The `[sealed]` table of a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedBox {
    pub key: String,
    pub nonce: String,
    pub data: String,
}

/// Why a box did not open. Says nothing about what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenFailure {
    /// The fields are not what a box holds (bad id, nonce length, hex).
    Malformed(String),
    /// The tag did not verify: another key, another account, or a changed byte.
    Refused { key: String },
}

impl fmt::Display for OpenFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(problem) => write!(f, "the [sealed] table is malformed: {problem}"),
            Self::Refused { key } => write!(
                f,
                "the sealed secret does not open with key {key}: the record was changed or moved \
                 from another account, or that key file is not the one it was sealed with \
                 (restore the record, or `twofold reset` the user)"
            ),
        }
    }
}

fn associated_data(account: &str, version: u32) -> Vec<u8> {
    format!("{PURPOSE}\0v{version}\0{account}").into_bytes()
}

impl SealedBox {
    /// The id of the key that opens it.
    pub fn key_id(&self) -> Result<KeyId, OpenFailure> {
        KeyId::parse(&self.key).ok_or_else(|| OpenFailure::Malformed("`key` is no key id".into()))
    }

    /// Seals `plain` for `account`'s record of format `version`.
    pub fn seal(key: &Key, account: &str, version: u32, plain: &[u8]) -> Result<Self, String> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|e| e.to_string())?;
        let aad = associated_data(account, version);
        let data = cipher(key)
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .map_err(|_| "encryption failed".to_owned())?;
        Ok(Self {
            key: key.id.to_string(),
            nonce: hex(&nonce).to_string(),
            data: hex(&data).to_string(),
        })
    }

    /// Opens the box with `key` as `account`'s record of format `version`.
    pub fn open(
        &self,
        key: &Key,
        account: &str,
        version: u32,
    ) -> Result<Zeroizing<Vec<u8>>, OpenFailure> {
        let mut nonce = [0u8; NONCE_BYTES];
        if !unhex_into(&self.nonce, &mut nonce) {
            return Err(OpenFailure::Malformed(
                "`nonce` is not 48 hex digits".into(),
            ));
        }
        if self.data.len() > MAX_DATA_HEX || self.data.len() % 2 != 0 {
            return Err(OpenFailure::Malformed("`data` has a wrong length".into()));
        }
        let mut data = vec![0u8; self.data.len() / 2];
        if !unhex_into(&self.data, &mut data) {
            return Err(OpenFailure::Malformed("`data` is not hex".into()));
        }
        let aad = associated_data(account, version);
        cipher(key)
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &data,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| OpenFailure::Refused {
                key: self.key.clone(),
            })
    }
}

fn cipher(key: &Key) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(key.bytes().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &[u8] = b"secret = \"JBSWY3DPEHPK3PXP\"";

    fn sealed() -> (Key, SealedBox) {
        let key = Key::generate(1).unwrap();
        let sealed = SealedBox::seal(&key, "alice", 1, PLAIN).unwrap();
        (key, sealed)
    }

    #[test]
    fn opens_for_its_account_and_version_only() {
        let (key, sealed) = sealed();
        assert_eq!(sealed.open(&key, "alice", 1).unwrap().as_slice(), PLAIN);
        assert_eq!(sealed.key_id().unwrap(), key.id);
        for (account, version) in [("bob", 1), ("alice", 2), ("Alice", 1), ("alice\0", 1)] {
            let err = sealed.open(&key, account, version).unwrap_err();
            assert!(
                matches!(err, OpenFailure::Refused { .. }),
                "{account} {version}"
            );
        }
        let other = Key::generate(1).unwrap();
        assert!(sealed.open(&other, "alice", 1).is_err(), "another key");
        let again = SealedBox::seal(&key, "alice", 1, PLAIN).unwrap();
        assert_ne!(again.nonce, sealed.nonce, "a fresh nonce per seal");
        assert!(!sealed.data.contains(hex(PLAIN).as_str()));
    }

    /// Every hex digit of nonce and data, changed, makes the box refuse to open.
    #[test]
    fn tampering_with_any_field_is_refused() {
        let (key, sealed) = sealed();
        let flip = |s: &str, i: usize| {
            let mut b = s.as_bytes().to_vec();
            b[i] = if b[i] == b'0' { b'1' } else { b'0' };
            String::from_utf8(b).unwrap()
        };
        for i in 0..sealed.nonce.len() {
            let t = SealedBox {
                nonce: flip(&sealed.nonce, i),
                ..sealed.clone()
            };
            assert!(t.open(&key, "alice", 1).is_err(), "nonce {i}");
        }
        for i in 0..sealed.data.len() {
            let t = SealedBox {
                data: flip(&sealed.data, i),
                ..sealed.clone()
            };
            assert!(t.open(&key, "alice", 1).is_err(), "data {i}");
        }
        for broken in [
            SealedBox {
                data: sealed.data[..sealed.data.len() - 2].into(),
                ..sealed.clone()
            },
            SealedBox {
                data: String::new(),
                ..sealed.clone()
            },
            SealedBox {
                nonce: "zz".into(),
                ..sealed.clone()
            },
            SealedBox {
                data: format!("{}x", sealed.data),
                ..sealed.clone()
            },
        ] {
            assert!(broken.open(&key, "alice", 1).is_err());
        }
        let renamed = SealedBox {
            key: "not-an-id".into(),
            ..sealed
        };
        assert!(renamed.key_id().is_err());
    }
}
