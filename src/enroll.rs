//! Enrollment pieces shared by `twofold enroll` and (later) enroll-at-login: new secrets, the
//! `otpauth://` URI that apps scan, and activating a record through the one store writer.
#![forbid(unsafe_code)]

use std::fmt;

use zeroize::Zeroizing;

use crate::backup::{self, BackupCodes, KdfCost, NewCodes};
use crate::otp::{Secret, TotpParams};
use crate::record::{FORMAT_VERSION, Record, State};
use crate::store::{Put, Replace, Store, StoreError};
use crate::user::UserName;

/// A batch of `count` backup codes, or none for 0.
pub fn new_backup_codes(count: u32) -> Result<Option<NewCodes>, EnrollError> {
    if count == 0 {
        return Ok(None);
    }
    backup::generate(count as usize, KdfCost::DEFAULT)
        .map(Some)
        .map_err(|e| EnrollError::Random(e.to_string()))
}

#[derive(Debug)]
pub enum EnrollError {
    Random(String),
    AlreadyEnrolled { user: UserName },
    Store(StoreError),
}

impl fmt::Display for EnrollError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Random(e) => write!(f, "the system random number generator failed: {e}"),
            Self::AlreadyEnrolled { user } => write!(
                f,
                "{user} is already enrolled; use --force to replace the existing secret"
            ),
            Self::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for EnrollError {}

/// A fresh 160-bit secret from the kernel's CSPRNG.
pub fn new_secret() -> Result<Secret, EnrollError> {
    let mut bytes = Zeroizing::new(vec![0u8; Secret::GENERATED_BYTES]);
    getrandom::fill(&mut bytes).map_err(|e| EnrollError::Random(e.to_string()))?;
    Secret::from_bytes(bytes.to_vec()).map_err(|e| EnrollError::Random(e.to_string()))
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The Key URI every authenticator app understands:
/// `otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=…&algorithm=…&digits=…&period=…`, or for a
/// counter-based token (`hotp_counter`) `otpauth://hotp/…&counter=N` without the period.
/// Parameters are always written out: some apps get non-defaults wrong when they are implied.
pub fn otpauth_uri(
    issuer: &str,
    account: &str,
    secret: &Secret,
    params: TotpParams,
    hotp_counter: Option<u64>,
) -> Zeroizing<String> {
    let issuer = encode_component(issuer);
    let (kind, moving) = match hotp_counter {
        Some(counter) => ("hotp", format!("counter={counter}")),
        None => ("totp", format!("period={}", params.period)),
    };
    Zeroizing::new(format!(
        "otpauth://{kind}/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm={alg}&digits={digits}&{moving}",
        account = encode_component(account),
        secret = secret.to_base32().as_str(),
        alg = params.algorithm,
        digits = params.digits,
    ))
}

/// The secret in groups of four, for typing it into an app by hand.
pub fn grouped_secret(secret: &Secret) -> Zeroizing<String> {
    let plain = secret.to_base32();
    let mut out = Zeroizing::new(String::with_capacity(plain.len() * 5 / 4 + 1));
    for (i, c) in plain.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// A new, enabled record. `confirmed_step` is the step of the code that proved the app works
/// (it counts as used); `None` when activation was not verified (`--no-verify`). That code is
/// no login: `last_used` stays empty until the first one, which is how a login tells that the
/// stored step is the enrollment's (src/login/verify.rs).
pub fn new_record(
    user: &UserName,
    issuer: &str,
    secret: Secret,
    params: TotpParams,
    now: i64,
    confirmed_step: Option<u64>,
    backup_codes: Option<BackupCodes>,
) -> Record {
    Record {
        version: FORMAT_VERSION,
        state: State::Enabled,
        secret,
        algorithm: params.algorithm,
        digits: params.digits,
        period: params.period,
        issuer: issuer.to_owned(),
        label: user.to_string(),
        account: Some(user.to_string()),
        created: now,
        last_step: confirmed_step,
        last_used: None,
        failures: 0,
        locked_until: None,
        kind: crate::record::Kind::Totp,
        counter: None,
        window: None,
        drift_steps: 0,
        drift_trial: None,
        backup_codes,
        trusted: Vec::new(),
    }
}

/// Stores `record` as the user's, atomically ([`Store::put`]). Without `replace`, an existing
/// enrollment (one that appeared while the user was scanning, too) is kept and reported; with
/// it, whatever is there is replaced, a record too broken to read included.
pub fn activate(
    store: &impl Store,
    user: &UserName,
    record: Record,
    replace: bool,
) -> Result<(), EnrollError> {
    let replace = Replace::from(replace);
    match store.put(user, &record, replace) {
        Ok(Put::Written) => Ok(()),
        Ok(Put::Unchanged) if replace == Replace::Yes => Ok(()),
        Ok(Put::Unchanged | Put::Kept) => Err(EnrollError::AlreadyEnrolled { user: user.clone() }),
        Err(e) => Err(EnrollError::Store(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otp::Algorithm;

    #[test]
    fn uri_has_every_parameter_and_encodes_names() {
        let secret = Secret::from_base32("JBSWY3DPEHPK3PXP").unwrap();
        let params = TotpParams {
            algorithm: Algorithm::SHA256,
            digits: 8,
            period: 60,
        };
        let uri = otpauth_uri("Example Corp", "alice@corp", &secret, params, None);
        assert_eq!(
            uri.as_str(),
            "otpauth://totp/Example%20Corp:alice%40corp?secret=JBSWY3DPEHPK3PXP&issuer=Example%20Corp&algorithm=SHA256&digits=8&period=60"
        );
        let uri = otpauth_uri("h", "bob", &secret, params, Some(7));
        assert_eq!(
            uri.as_str(),
            "otpauth://hotp/h:bob?secret=JBSWY3DPEHPK3PXP&issuer=h&algorithm=SHA256&digits=8&counter=7"
        );
    }

    #[test]
    fn secrets_are_fresh_and_160_bits() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert_eq!(a.bits(), 160);
        assert_ne!(a, b);
        assert_eq!(grouped_secret(&a).len(), 32 + 7);
    }
}
