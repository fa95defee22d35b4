//! Migration from other PAM OTP modules: google-authenticator-libpam's `~/.google_authenticator`
//! ([`google`]) and pam_oath's `/etc/users.oath` ([`oath`]). Parsers only read text; each
//! user's result is an [`Imported`] token that becomes a twofold [`Record`]. Sources are never
//! written to.
#![forbid(unsafe_code)]

pub mod google;
pub mod oath;

use std::fmt;

use zeroize::Zeroizing;

use crate::backup::{self, BackupError, KdfCost};
use crate::otp::{Algorithm, Secret};
use crate::record::{FORMAT_VERSION, Kind, Record, State};
use crate::secure_file::{Expect, Owner, open_checked};
use crate::user::UserName;

/// Largest source file read (a google-authenticator file is a few hundred bytes; a users.oath
/// line under 200).
pub const MAX_SOURCE_BYTES: u64 = 1024 * 1024;

/// A token as another module kept it, in twofold's terms.
#[derive(Debug)]
pub struct Imported {
    pub secret: Secret,
    pub kind: Kind,
    pub algorithm: Algorithm,
    pub digits: u8,
    pub period: u32,
    /// HOTP: the next counter the token will show.
    pub counter: Option<u64>,
    /// TOTP: the latest step already used there (codes up to it are refused here).
    pub last_step: Option<u64>,
    /// The source's own window, in twofold's terms; `None` follows the policy.
    pub window: Option<u8>,
    pub drift_steps: i64,
    /// Single-use codes (google-authenticator's scratch codes), 8 digits each.
    pub scratch_codes: Vec<Zeroizing<String>>,
    /// What was not carried over or was dropped, for the admin (line numbered where it helps).
    pub notes: Vec<String>,
}

/// Why a source (or one line of it) cannot be imported. Never quotes a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub line: Option<usize>,
    pub message: String,
}

impl ImportError {
    pub fn at(line: usize, message: impl Into<String>) -> Self {
        Self {
            line: Some(line),
            message: message.into(),
        }
    }

    pub fn file(message: impl Into<String>) -> Self {
        Self {
            line: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ImportError {}

impl Imported {
    /// Holds what the source file asked for to this site's policy: a user-written
    /// `WINDOW_SIZE 100` must not become a window of ±50, nor a `TIME_SKEW` of hours get past
    /// `[totp] max_drift`. Each change is added to the notes the admin is shown.
    pub fn clamp_to(&mut self, policy: &crate::policy::Policy) {
        let limit = match self.kind {
            Kind::Totp => policy.totp.window,
            Kind::Hotp => policy.hotp.window,
        };
        if let Some(window) = self.window.filter(|w| *w > limit) {
            let (what, key) = match self.kind {
                Kind::Totp => ("window ±", "[totp] window"),
                Kind::Hotp => ("look-ahead ", "[hotp] window"),
            };
            self.notes.push(format!(
                "{what}{window} narrowed to {limit} ({key}; raise it there to allow more)"
            ));
            self.window = Some(limit);
        }
        let max_steps = i64::from(policy.totp.max_drift / self.period.max(1));
        if self.drift_steps.unsigned_abs() > max_steps.unsigned_abs() {
            self.notes.push(format!(
                "clock drift {} not carried over: beyond [totp] max_drift ({} s); it is learned \
                 again if the token is within that",
                crate::drift::describe(self.drift_steps, self.period),
                policy.totp.max_drift
            ));
            self.drift_steps = 0;
        }
    }

    /// One line for the admin: what the user gets in twofold.
    pub fn summary(&self) -> String {
        let mut parts = vec![match self.kind {
            Kind::Totp => format!(
                "TOTP {} {} digits {} s",
                self.algorithm, self.digits, self.period
            ),
            Kind::Hotp => format!(
                "HOTP {} {} digits, next counter {}",
                self.algorithm,
                self.digits,
                self.counter.unwrap_or(0)
            ),
        }];
        if let Some(window) = self.window {
            parts.push(match self.kind {
                Kind::Totp => format!("window ±{window}"),
                Kind::Hotp => format!("look-ahead {window}"),
            });
        }
        if self.last_step.is_some() {
            parts.push("last used code refused".into());
        }
        if self.drift_steps != 0 {
            parts.push(format!(
                "clock drift {}",
                crate::drift::describe(self.drift_steps, self.period)
            ));
        }
        let n = self.scratch_codes.len();
        parts.push(format!("{n} backup code{}", if n == 1 { "" } else { "s" }));
        parts.join(", ")
    }

    /// The twofold record, enabled, with the scratch codes hashed (that is the slow part:
    /// one argon2id run per code).
    pub fn into_record(
        self,
        user: &UserName,
        issuer: &str,
        now: i64,
        cost: KdfCost,
    ) -> Result<Record, BackupError> {
        let backup_codes = if self.scratch_codes.is_empty() {
            None
        } else {
            Some(backup::hash_codes(&self.scratch_codes, cost)?)
        };
        Ok(Record {
            version: FORMAT_VERSION,
            state: State::Enabled,
            pending_until: None,
            secret: self.secret,
            algorithm: self.algorithm,
            digits: self.digits,
            period: self.period,
            issuer: issuer.to_owned(),
            label: user.to_string(),
            account: Some(user.to_string()),
            created: now,
            last_step: self.last_step,
            last_used: None,
            failures: 0,
            locked_until: None,
            kind: self.kind,
            counter: self.counter,
            window: self.window,
            drift_steps: self.drift_steps,
            drift_trial: None,
            backup_codes,
            trusted: Vec::new(),
        })
    }
}

/// An import source: owned by `owner` (someone else could have planted a secret they know),
/// nobody else may have changed it, one name only (a hard link to someone else's file is
/// theirs), at most [`MAX_SOURCE_BYTES`]. Readable by others is allowed but noted.
fn source_file(owner: Owner) -> Expect {
    Expect {
        what: "import source",
        owner,
        forbidden_mode: 0o022,
        max_bytes: MAX_SOURCE_BYTES,
        single_link: true,
    }
}

/// Reads a source file the way every trusted file is read ([`open_checked`]: no link at its
/// end, no blocking on a FIFO, bounded). Returns the bytes and notes (e.g. other users could
/// read the secret).
pub fn read_source(
    path: &std::path::Path,
    owner: Owner,
) -> Result<(Zeroizing<Vec<u8>>, Vec<String>), ImportError> {
    let contents = open_checked(path, &source_file(owner))
        .map_err(|e| ImportError::file(format!("it {}", e.problem)))?;
    let mut notes = Vec::new();
    if contents.mode & 0o044 != 0 {
        notes.push(format!(
            "the source is readable by group or others (mode {:04o}): treat its secret as exposed",
            contents.mode
        ));
    }
    Ok((contents.bytes, notes))
}
