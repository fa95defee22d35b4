//! Backup (recovery) codes: 8 random digits, shown once as `1234-5678`, stored only as
//! argon2id hashes. One salt per batch, so checking an answer costs one KDF run however many
//! codes remain; the cost is paid only for answers shaped like a backup code.
#![forbid(unsafe_code)]

use std::fmt;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Digits in a backup code.
pub const CODE_DIGITS: usize = 8;
/// Most codes one batch may hold (policy and record both).
pub const MAX_CODES: usize = 50;
const SALT_BYTES: usize = 16;
const HASH_BYTES: usize = 32;

/// argon2id cost. The default follows OWASP's password-storage guidance (19 MiB, 2 passes):
/// tens of milliseconds per login that uses a code, 10^8 guesses offline for a stolen file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfCost {
    pub m_cost: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

impl KdfCost {
    pub const DEFAULT: Self = Self {
        m_cost: 19 * 1024,
        t_cost: 2,
        p_cost: 1,
    };
    /// Bounds a record may ask for: a corrupt file must not make a login allocate gigabytes.
    const MAX_M_COST: u32 = 256 * 1024;
    const MAX_T_COST: u32 = 16;
    const MAX_P_COST: u32 = 4;
}

/// The stored form: `[backup_codes]` in a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupCodes {
    /// Always "argon2id"; named so the format can change without guessing.
    pub kdf: String,
    pub m_cost: u32,
    pub t_cost: u32,
    pub p_cost: u32,
    /// Hex.
    pub salt: String,
    /// Hex argon2id outputs of the unused codes.
    pub hashes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupError {
    Random(String),
    Invalid(String),
}

impl fmt::Display for BackupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Random(e) => write!(f, "the system random number generator failed: {e}"),
            Self::Invalid(e) => write!(f, "backup codes: {e}"),
        }
    }
}

impl std::error::Error for BackupError {}

/// A fresh batch: the codes to show once, and what to store.
pub struct NewCodes {
    /// Formatted `1234-5678`; wiped on drop.
    pub shown: Vec<Zeroizing<String>>,
    pub stored: BackupCodes,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

fn random_bytes(buf: &mut [u8]) -> Result<(), BackupError> {
    getrandom::fill(buf).map_err(|e| BackupError::Random(e.to_string()))
}

fn kdf(code: &str, salt: &[u8], cost: KdfCost) -> Result<Zeroizing<[u8; HASH_BYTES]>, BackupError> {
    let params = argon2::Params::new(cost.m_cost, cost.t_cost, cost.p_cost, Some(HASH_BYTES))
        .map_err(|e| BackupError::Invalid(e.to_string()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; HASH_BYTES]);
    argon
        .hash_password_into(code.as_bytes(), salt, &mut *out)
        .map_err(|e| BackupError::Invalid(e.to_string()))?;
    Ok(out)
}

/// `12345678` → `1234-5678`.
pub fn format_code(digits: &str) -> Zeroizing<String> {
    Zeroizing::new(format!("{}-{}", &digits[..4], &digits[4..]))
}

/// Generates `count` distinct codes from the OS RNG (uniform: rejection sampling).
pub fn generate(count: usize, cost: KdfCost) -> Result<NewCodes, BackupError> {
    if count > MAX_CODES {
        return Err(BackupError::Invalid(format!("at most {MAX_CODES} codes")));
    }
    let mut digits: Vec<Zeroizing<String>> = Vec::with_capacity(count);
    while digits.len() < count {
        let mut raw = [0u8; 4];
        random_bytes(&mut raw)?;
        let value = u32::from_le_bytes(raw);
        // 4_200_000_000 is the largest multiple of 10^8 below 2^32.
        if value >= 4_200_000_000 {
            continue;
        }
        let code = Zeroizing::new(format!("{:08}", value % 100_000_000));
        if !digits.contains(&code) {
            digits.push(code);
        }
    }
    let stored = hash_codes(&digits, cost)?;
    Ok(NewCodes {
        shown: digits.iter().map(|d| format_code(d)).collect(),
        stored,
    })
}

/// Hashes codes that already exist (8 digits each, e.g. google-authenticator-libpam's scratch
/// codes being imported) into a stored batch with a fresh salt.
pub fn hash_codes(digits: &[Zeroizing<String>], cost: KdfCost) -> Result<BackupCodes, BackupError> {
    if digits.len() > MAX_CODES {
        return Err(BackupError::Invalid(format!("at most {MAX_CODES} codes")));
    }
    if let Some(bad) = digits
        .iter()
        .position(|d| d.len() != CODE_DIGITS || !d.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(BackupError::Invalid(format!(
            "code {} is not {CODE_DIGITS} digits",
            bad + 1
        )));
    }
    let mut salt = [0u8; SALT_BYTES];
    random_bytes(&mut salt)?;
    let hashes = digits
        .iter()
        .map(|d| kdf(d, &salt, cost).map(|h| hex(&*h)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(BackupCodes {
        kdf: "argon2id".into(),
        m_cost: cost.m_cost,
        t_cost: cost.t_cost,
        p_cost: cost.p_cost,
        salt: hex(&salt),
        hashes,
    })
}

impl BackupCodes {
    pub fn remaining(&self) -> usize {
        self.hashes.len()
    }

    fn cost(&self) -> KdfCost {
        KdfCost {
            m_cost: self.m_cost,
            t_cost: self.t_cost,
            p_cost: self.p_cost,
        }
    }

    /// Checks what a record holds, so a corrupt file is reported instead of trusted.
    pub fn validate(&self) -> Result<(), String> {
        if self.kdf != "argon2id" {
            return Err(format!(
                "backup_codes.kdf = {:?} (only \"argon2id\" is known)",
                self.kdf
            ));
        }
        if self.m_cost > KdfCost::MAX_M_COST
            || self.t_cost > KdfCost::MAX_T_COST
            || self.p_cost > KdfCost::MAX_P_COST
        {
            return Err("backup_codes cost parameters are out of range".into());
        }
        if self.hashes.len() > MAX_CODES {
            return Err(format!("more than {MAX_CODES} backup codes"));
        }
        if unhex(&self.salt).is_none_or(|s| s.len() < 8) {
            return Err("backup_codes.salt is not hex of at least 8 bytes".into());
        }
        if self
            .hashes
            .iter()
            .any(|h| unhex(h).is_none_or(|b| b.len() != HASH_BYTES))
        {
            return Err("a backup_codes hash is not 32 bytes of hex".into());
        }
        Ok(())
    }

    /// For records their user can write (the home store): the user must not choose what a
    /// root login process spends on a try (a record may ask for 256 MiB and 16 passes), so
    /// nothing above the cost twofold itself writes is accepted.
    pub fn check_user_owned_cost(&self) -> Result<(), String> {
        let (cost, max) = (self.cost(), KdfCost::DEFAULT);
        if cost.m_cost > max.m_cost || cost.t_cost > max.t_cost || cost.p_cost > max.p_cost {
            return Err(format!(
                "its backup codes ask for an argon2 cost above twofold's own (m_cost {}, \
                 t_cost {}, p_cost {}); a user-owned record may not: make new codes with \
                 `twofold codes --regenerate`",
                max.m_cost, max.t_cost, max.p_cost
            ));
        }
        Ok(())
    }

    /// If `digits` (exactly 8 ASCII digits) is one of the unused codes, removes it and returns
    /// true. Every stored hash is compared in constant time.
    pub fn consume(&mut self, digits: &str) -> Result<bool, BackupError> {
        if self.hashes.is_empty() {
            return Ok(false);
        }
        let salt = unhex(&self.salt).ok_or_else(|| BackupError::Invalid("bad salt".into()))?;
        let hash = kdf(digits, &salt, self.cost())?;
        let mut found = None;
        for (i, stored) in self.hashes.iter().enumerate() {
            let stored = unhex(stored).unwrap_or_default();
            if bool::from(stored.ct_eq(&hash[..])) && found.is_none() {
                found = Some(i);
            }
        }
        Ok(match found {
            Some(i) => {
                self.hashes.remove(i);
                true
            }
            None => false,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Cheap parameters so unit tests stay fast; production uses `KdfCost::DEFAULT`.
    pub(crate) const CHEAP: KdfCost = KdfCost {
        m_cost: 64,
        t_cost: 1,
        p_cost: 1,
    };

    #[test]
    fn codes_work_once_and_are_stored_hashed() {
        let new = generate(10, CHEAP).unwrap();
        assert_eq!(new.shown.len(), 10);
        let mut stored = new.stored.clone();
        stored.validate().unwrap();
        for shown in &new.shown {
            assert_eq!(shown.len(), 9);
            assert_eq!(&shown[4..5], "-");
            let digits = shown.replace('-', "");
            assert!(!stored.hashes.iter().any(|h| h.contains(&digits)));
            assert!(!stored.salt.contains(&digits));
        }
        let first = new.shown[0].replace('-', "");
        assert!(stored.consume(&first).unwrap());
        assert_eq!(stored.remaining(), 9);
        assert!(!stored.consume(&first).unwrap(), "used twice");
        assert!(
            !stored.consume("00000000").unwrap()
                || new.shown.iter().any(|s| s.as_str() == "0000-0000")
        );
    }

    #[test]
    fn default_cost_round_trips() {
        let new = generate(1, KdfCost::DEFAULT).unwrap();
        let mut stored = new.stored;
        assert_eq!(stored.m_cost, 19 * 1024);
        assert!(stored.consume(&new.shown[0].replace('-', "")).unwrap());
    }

    #[test]
    fn corrupt_batches_are_reported() {
        let good = generate(2, CHEAP).unwrap().stored;
        let mut bad = good.clone();
        bad.kdf = "md5".into();
        assert!(bad.validate().is_err());
        let mut bad = good.clone();
        bad.m_cost = u32::MAX;
        assert!(bad.validate().is_err());
        let mut bad = good.clone();
        bad.hashes[0] = "zz".into();
        assert!(bad.validate().is_err());
        let mut bad = good;
        bad.salt = "abc".into();
        assert!(bad.validate().is_err());
    }
}
