//! The per-user record: one versioned TOML file, the only place a user's 2FA state lives.
//!
//! Format (version 1), every key required unless marked optional:
//!
//! ```toml
//! version = 1
//! state = "enabled"          # or "disabled": keep the secret, stop asking; or "pending":
//!                            # sent by `twofold invite --with-qr`, not yet confirmed
//! pending_until = 1700604800 # pending only (required there): after this Unix time the pending
//!                            # enrollment counts for nothing (the user is not enrolled)
//! secret = "BASE32..."       # shared HMAC key, RFC 4648 base32 without padding
//! algorithm = "SHA1"         # SHA1 | SHA256 | SHA512
//! digits = 6                 # 6..8
//! period = 30                # seconds per step
//! issuer = "host.example"    # shown in the authenticator app
//! label = "alice"            # account name shown in the app
//! account = "alice"          # optional: the canonical account (NSS pw_name) this record is for;
//!                            # a record found under another name is refused (case-folding
//!                            # file systems and databases map `Alice` onto `alice`)
//! created = 1700000000       # Unix time of activation
//! last_step = 56666666       # optional: highest accepted time step (replay protection)
//! last_used = 1700000123     # optional: Unix time of the last accepted code
//! failures = 2               # optional: consecutive wrong codes
//! locked_until = 1700000900  # optional: no code is checked before this Unix time
//! kind = "hotp"              # optional: "totp" (default) or "hotp" (RFC 4226, counter based)
//! counter = 12               # HOTP only (required there): the next counter value expected
//! window = 3                 # optional: this user's window, instead of the policy's
//! drift_steps = -4           # optional: learned clock offset of the user's token, in steps
//!
//! [drift_trial]              # optional: codes seen at one offset outside the window so far
//! offset = -4                # steps from this server's clock
//! step = 56666662            # the step the last of them matched
//! seen = 2                   # how many in a row
//! at = 1700000100            # Unix time of the last one
//!
//! [backup_codes]             # optional: unused backup codes, hashed (see src/backup.rs)
//! kdf = "argon2id"
//! m_cost = 19456
//! t_cost = 2
//! p_cost = 1
//! salt = "hex"
//! hashes = ["hex", ...]
//!
//! [sealed]                   # instead of `secret` and `[backup_codes]` once a key exists:
//! key = "3f9a1c2e7b4d5a60"   # the key file /etc/twofold/keys/<key>.key (see src/keys.rs)
//! nonce = "<48 hex>"         # XChaCha20-Poly1305, associated data binds account + version
//! data = "<hex>"             # the sealed `secret` and `[backup_codes]` (src/seal.rs,
//!                            # src/store/sealing.rs); this struct always holds them opened
//!
//! [[trusted]]                # optional, repeated: hosts that skip the code until `expires`
//! host = "192.0.2.7"         # PAM_RHOST as the application gave it
//! service = "sshd"           # the PAM service that earned it; a grant without one is void
//! key = "SHA256:…"           # optional: the SSH keys that login proved; then needed again
//! granted = 1700000000
//! expires = 1700604800
//! ```
#![forbid(unsafe_code)]

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::backup::BackupCodes;
use crate::otp::{Algorithm, Secret, TotpParams};

/// The format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Most trusted hosts kept per user; the oldest grant goes first.
pub const MAX_TRUSTED_HOSTS: usize = 16;
/// Longest host name kept (PAM_RHOST can be anything the application passes).
const MAX_HOST_LEN: usize = 255;
/// Largest per-user window accepted in a record (google-authenticator-libpam's own limit is
/// 100 codes; HOTP look-ahead counts forward only).
pub const MAX_RECORD_WINDOW: u8 = 100;
/// Largest clock offset a record may hold, in steps: google-authenticator-libpam searches 25
/// hours' worth of 30 s steps, so an imported TIME_SKEW is never larger than this.
pub const MAX_DRIFT_STEPS: i64 = 25 * 60 * 2;

/// Highest HOTP counter a record may hold: far beyond any token's life, and far enough from
/// `u64::MAX` that the counter can always move on past an accepted code.
pub const MAX_COUNTER: u64 = i64::MAX as u64;

/// How codes are counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// RFC 6238: the counter is the time step (every app; the default).
    #[default]
    Totp,
    /// RFC 4226: the counter moves by one per code (hardware tokens, `enroll --hotp`).
    Hotp,
}

impl Kind {
    fn is_totp(&self) -> bool {
        *self == Kind::Totp
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::Hotp => "hotp",
        }
    }
}

/// Codes that matched one clock offset beyond the window, in a row: after enough of them the
/// offset is learned (see `crate::drift`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftTrial {
    pub offset: i64,
    pub step: u64,
    pub seen: u8,
    pub at: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Every login asks for a code.
    Enabled,
    /// An admin switched 2FA off; the secret is kept so it can be switched on again.
    Disabled,
    /// Sent to the user (`twofold invite --with-qr`) and not confirmed yet: the first right
    /// code at a login turns it on; after `pending_until` it counts as no enrollment at all.
    Pending,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
            Self::Pending => "pending",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub version: u32,
    pub state: State,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_until: Option<i64>,
    pub secret: Secret,
    pub algorithm: Algorithm,
    pub digits: u8,
    pub period: u32,
    pub issuer: String,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub created: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<i64>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<i64>,
    #[serde(default, skip_serializing_if = "Kind::is_totp")]
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<u8>,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub drift_steps: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_trial: Option<DriftTrial>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_codes: Option<BackupCodes>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted: Vec<TrustedHost>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

/// A remote host whose logins skip the code until `expires`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedHost {
    pub host: String,
    /// The PAM service the grant was earned on; it counts for that service alone. Grants
    /// written before services were recorded have none and count for nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The SSH key fingerprints (comma-separated) the login that earned it proved, where sshd
    /// exposed them: the grant then counts only for logins with the same keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub granted: i64,
    pub expires: i64,
}

impl TrustedHost {
    /// In force at `now` under a policy of `days` (which an admin may have shortened since
    /// the grant); a grant without its service is void.
    pub fn in_force(&self, now: i64, days: u32) -> bool {
        let span = i64::from(days).saturating_mul(86_400);
        days > 0
            && self.service.is_some()
            && now < self.expires
            && now < self.granted.saturating_add(span)
    }
}

/// Why a record's text was refused. Never quotes the file (it holds the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    Empty,
    NotUtf8,
    /// TOML syntax or a field of the wrong type/value, with the line it was found on.
    Invalid {
        line: Option<usize>,
        message: String,
    },
    UnsupportedVersion {
        found: i64,
    },
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "the file is empty"),
            Self::NotUtf8 => write!(f, "the file is not UTF-8 text"),
            Self::Invalid {
                line: Some(line),
                message,
            } => write!(f, "line {line}: {message}"),
            Self::Invalid {
                line: None,
                message,
            } => write!(f, "{message}"),
            Self::UnsupportedVersion { found } => write!(
                f,
                "format version {found} is not supported by this twofold (it reads version {FORMAT_VERSION})"
            ),
        }
    }
}

impl std::error::Error for RecordError {}

/// Why a record that did not parse may be fine after all (a newer format), or is missing its
/// version; `None` when the version is ours and the parse error itself is the problem.
fn version_problem(text: &str) -> Option<RecordError> {
    #[derive(Deserialize)]
    struct VersionOnly {
        version: Option<toml::Value>,
    }
    let peek: VersionOnly = toml::from_str(text).ok()?;
    match peek.version {
        Some(toml::Value::Integer(v)) if v == i64::from(FORMAT_VERSION) => None,
        Some(toml::Value::Integer(v)) => Some(RecordError::UnsupportedVersion { found: v }),
        _ => Some(RecordError::Invalid {
            line: None,
            message: "missing or non-integer `version`".into(),
        }),
    }
}

/// Turns a toml error into line + message without the source snippet toml's `Display` adds.
pub(crate) fn describe_toml_error(text: &str, err: &toml::de::Error) -> (Option<usize>, String) {
    let line = err
        .span()
        .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
    (line, err.message().trim().to_owned())
}

impl Record {
    pub fn params(&self) -> TotpParams {
        TotpParams {
            algorithm: self.algorithm,
            digits: self.digits,
            period: self.period,
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.state == State::Enabled
    }

    /// A pending enrollment whose time has not run out at `now`.
    pub fn is_pending_at(&self, now: i64) -> bool {
        self.state == State::Pending && self.pending_until.is_some_and(|until| now < until)
    }

    /// Whether a login at `now` asks this record for a code: enabled, or pending in time.
    pub fn takes_codes_at(&self, now: i64) -> bool {
        self.is_enabled() || self.is_pending_at(now)
    }

    /// A pending enrollment whose time ran out: it counts as no enrollment.
    pub fn is_expired_pending(&self, now: i64) -> bool {
        self.state == State::Pending && !self.is_pending_at(now)
    }

    /// The first right code confirmed a pending enrollment: 2FA is on from now on.
    pub fn confirm_pending(&mut self) {
        if self.state == State::Pending {
            self.state = State::Enabled;
            self.pending_until = None;
        }
    }

    /// The end of a lock-out still in force at `now`.
    pub fn locked_at(&self, now: i64) -> Option<i64> {
        self.locked_until.filter(|until| *until > now)
    }

    /// Clears the lock-out and the failure count (`twofold unlock`; a lock that ran out).
    pub fn clear_lockout(&mut self) {
        self.locked_until = None;
        self.failures = 0;
    }

    /// One more consecutive wrong code; at `max_failures` (0: never) the second factor locks
    /// for `lock_seconds` from `now`.
    pub fn note_failure(&mut self, now: i64, max_failures: u32, lock_seconds: u32) {
        self.failures = self.failures.saturating_add(1);
        if max_failures > 0 && self.failures >= max_failures {
            self.locked_until = Some(now.saturating_add(i64::from(lock_seconds)));
        }
    }

    /// A code passed at `now`: the failure count starts over.
    pub fn note_success(&mut self, now: i64) {
        self.failures = 0;
        self.last_used = Some(now);
    }

    pub fn backup_codes_left(&self) -> usize {
        self.backup_codes.as_ref().map_or(0, BackupCodes::remaining)
    }

    /// Whether `host` may skip the code at `now` on `service`. A grant counts only on the
    /// service that earned it, and only while both its own expiry and the current policy
    /// (`days`, which an admin may have shortened) allow it.
    pub fn trusts(
        &self,
        host: &str,
        service: &str,
        key: Option<&str>,
        now: i64,
        days: u32,
    ) -> bool {
        self.trusted.iter().any(|t| {
            t.host == host
                && t.service.as_deref() == Some(service)
                && t.key.as_deref() == key
                && t.in_force(now, days)
        })
    }

    /// Trusts `host` on `service` for `days` from `now`, dropping expired grants and the
    /// oldest beyond the cap.
    pub fn trust(&mut self, host: &str, service: &str, key: Option<&str>, now: i64, days: u32) {
        self.trusted.retain(|t| {
            !(t.host == host && t.service.as_deref() == Some(service) && t.key.as_deref() == key)
                && t.expires > now
        });
        let printable =
            |s: &str| !s.is_empty() && s.len() <= MAX_HOST_LEN && !s.chars().any(char::is_control);
        if !printable(host) || !printable(service) || !key.is_none_or(printable) {
            return;
        }
        self.trusted.push(TrustedHost {
            host: host.to_owned(),
            service: Some(service.to_owned()),
            key: key.map(str::to_owned),
            granted: now,
            expires: now.saturating_add(i64::from(days).saturating_mul(86_400)),
        });
        self.trusted.sort_by_key(|t| t.granted);
        while self.trusted.len() > MAX_TRUSTED_HOSTS {
            self.trusted.remove(0);
        }
    }

    /// Refuses a record found under another account's name: a file system or database that
    /// folds case would otherwise hand `alice`'s record to a login as `Alice`.
    pub fn check_account(&self, user: &str) -> Result<(), String> {
        match &self.account {
            Some(account) if account != user => Err(format!(
                "the record belongs to account '{account}', not '{user}' (does the store fold \
                 case? keep it on a case-sensitive file system or database)"
            )),
            _ => Ok(()),
        }
    }

    /// Text fields are printed to admins' terminals and written into log lines: a record a
    /// user may write (the home store) must not carry terminal escapes or line breaks there.
    fn validate_text(&self) -> Result<(), String> {
        let mut fields = vec![
            ("issuer", self.issuer.as_str()),
            ("label", self.label.as_str()),
        ];
        fields.extend(self.account.as_deref().map(|a| ("account", a)));
        for grant in &self.trusted {
            fields.push(("trusted.host", grant.host.as_str()));
            fields.extend(grant.service.as_deref().map(|s| ("trusted.service", s)));
            fields.extend(grant.key.as_deref().map(|k| ("trusted.key", k)));
        }
        match fields
            .iter()
            .find(|(_, text)| text.chars().any(char::is_control))
        {
            Some((name, _)) => Err(format!("`{name}` holds control characters")),
            None => Ok(()),
        }
    }

    /// The HOTP/TOTP fields agree with `kind` and stay within bounds.
    fn validate_counting(&self) -> Result<(), String> {
        match (self.kind, self.counter) {
            (Kind::Hotp, None) => return Err("kind = \"hotp\" needs a `counter`".into()),
            (Kind::Totp, Some(_)) => {
                return Err("`counter` belongs to kind = \"hotp\" records only".into());
            }
            _ => {}
        }
        if self.kind == Kind::Hotp && (self.drift_steps != 0 || self.drift_trial.is_some()) {
            return Err("clock drift belongs to kind = \"totp\" records only".into());
        }
        if self.counter.is_some_and(|c| c > MAX_COUNTER) {
            return Err(format!("counter beyond {MAX_COUNTER}"));
        }
        if let Some(window) = self.window.filter(|w| *w > MAX_RECORD_WINDOW) {
            return Err(format!("window = {window} (at most {MAX_RECORD_WINDOW})"));
        }
        let offsets = [
            Some(self.drift_steps),
            self.drift_trial.as_ref().map(|t| t.offset),
        ];
        // unsigned_abs: `i64::MIN.abs()` wraps to itself (and passed) or panics.
        if offsets
            .into_iter()
            .flatten()
            .any(|o| o.unsigned_abs() > MAX_DRIFT_STEPS.unsigned_abs())
        {
            return Err(format!(
                "drift_steps beyond {MAX_DRIFT_STEPS} steps either way"
            ));
        }
        Ok(())
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, RecordError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(RecordError::Empty);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| RecordError::NotUtf8)?;
        let invalid = |err: toml::de::Error| {
            let (line, message) = describe_toml_error(text, &err);
            RecordError::Invalid { line, message }
        };
        // One parse for a current record. Only when that fails is the version looked at, to
        // tell "written by a newer twofold" from "broken" (the peek skips every other key, so
        // the secret is not copied into a table that would not be wiped).
        let record: Record = match toml::from_str(text) {
            Ok(record) => record,
            Err(err) => return Err(version_problem(text).unwrap_or_else(|| invalid(err))),
        };
        if record.version != FORMAT_VERSION {
            return Err(RecordError::UnsupportedVersion {
                found: i64::from(record.version),
            });
        }
        let invalid = |message| RecordError::Invalid {
            line: None,
            message,
        };
        record.params().validate().map_err(invalid)?;
        record.validate_text().map_err(invalid)?;
        record.validate_counting().map_err(invalid)?;
        if (record.state == State::Pending) != record.pending_until.is_some() {
            return Err(invalid(
                "`pending_until` belongs to state = \"pending\" records, and they need one".into(),
            ));
        }
        if let Some(codes) = &record.backup_codes {
            codes.validate().map_err(invalid)?;
        }
        Ok(record)
    }

    /// The file's text. Holds the secret, so it is wiped when dropped.
    pub fn to_toml(&self) -> Zeroizing<String> {
        // Serialising plain strings and integers into TOML cannot fail.
        Zeroizing::new(toml::to_string(self).expect("record serialises to TOML"))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Record {
        Record {
            version: FORMAT_VERSION,
            state: State::Enabled,
            pending_until: None,
            secret: Secret::from_base32("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").unwrap(),
            algorithm: Algorithm::SHA1,
            digits: 6,
            period: 30,
            issuer: "host".into(),
            label: "alice".into(),
            account: Some("alice".into()),
            created: 1_700_000_000,
            last_step: Some(56_666_666),
            last_used: None,
            failures: 0,
            locked_until: None,
            kind: Kind::Totp,
            counter: None,
            window: None,
            drift_steps: 0,
            drift_trial: None,
            backup_codes: None,
            trusted: Vec::new(),
        }
    }

    #[test]
    fn round_trips() {
        let record = sample();
        let text = record.to_toml();
        assert!(text.contains("version = 1"));
        assert!(!text.contains("last_used"));
        assert_eq!(Record::parse(text.as_bytes()).unwrap(), record);
    }

    #[test]
    fn round_trips_with_every_optional_part() {
        let mut record = sample();
        record.failures = 3;
        record.locked_until = Some(1_700_000_900);
        record.backup_codes = Some(
            crate::backup::generate(2, crate::backup::tests::CHEAP)
                .unwrap()
                .stored,
        );
        record.trust("192.0.2.7", "sshd", None, 1_700_000_000, 7);
        let text = record.to_toml();
        assert!(
            text.contains("[backup_codes]") && text.contains("[[trusted]]"),
            "{}",
            *text
        );
        assert_eq!(Record::parse(text.as_bytes()).unwrap(), record);
    }

    #[test]
    fn hotp_and_drift_fields_round_trip_and_are_checked() {
        let mut totp = sample();
        totp.window = Some(4);
        totp.drift_steps = -7;
        totp.drift_trial = Some(DriftTrial {
            offset: 3,
            step: 56_666_670,
            seen: 1,
            at: 1_700_000_100,
        });
        let text = totp.to_toml();
        assert!(!text.contains("kind"), "TOTP stays the implied default");
        assert_eq!(Record::parse(text.as_bytes()).unwrap(), totp);

        let mut hotp = sample();
        hotp.kind = Kind::Hotp;
        hotp.counter = Some(12);
        hotp.last_step = None;
        let text = hotp.to_toml();
        assert!(text.contains("kind = \"hotp\"") && text.contains("counter = 12"));
        assert_eq!(Record::parse(text.as_bytes()).unwrap(), hotp);

        for (from, to, complaint) in [
            ("counter = 12", "", "needs a `counter`"),
            ("kind = \"hotp\"", "drift_steps = 2", "hotp"),
            ("counter = 12", "counter = 12\nwindow = 200", "window"),
            ("counter = 12", "counter = 12\ndrift_steps = 1", "drift"),
        ] {
            let broken = text.replace(from, to);
            let err = Record::parse(broken.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(complaint), "{to}: {err}");
        }
        let far = sample()
            .to_toml()
            .replace("version = 1", "version = 1\ndrift_steps = 99999");
        assert!(Record::parse(far.as_bytes()).is_err());
    }

    #[test]
    fn offsets_of_any_size_beyond_the_limit_are_refused() {
        let good = sample().to_toml();
        let with = |extra: &str| good.replacen("version = 1", &format!("version = 1\n{extra}"), 1);
        let trial =
            |offset: i64| format!("[drift_trial]\noffset = {offset}\nstep = 1\nseen = 1\nat = 0");
        for value in [
            i64::MIN,
            i64::MIN + 1,
            -MAX_DRIFT_STEPS - 1,
            MAX_DRIFT_STEPS + 1,
            i64::MAX,
        ] {
            for text in [
                with(&format!("drift_steps = {value}")),
                format!("{}\n{}\n", *good, trial(value)),
            ] {
                let err = Record::parse(text.as_bytes()).unwrap_err().to_string();
                assert!(err.contains("drift_steps beyond"), "{value}: {err}");
            }
        }
        for value in [-MAX_DRIFT_STEPS, MAX_DRIFT_STEPS] {
            let record = Record::parse(with(&format!("drift_steps = {value}")).as_bytes()).unwrap();
            assert_eq!(record.drift_steps, value);
            let text = format!("{}\n{}\n", *good, trial(value));
            assert_eq!(
                Record::parse(text.as_bytes())
                    .unwrap()
                    .drift_trial
                    .unwrap()
                    .offset,
                value
            );
        }
    }

    #[test]
    fn corrupt_backup_code_parameters_are_refused_on_read() {
        let mut record = sample();
        record.backup_codes = Some(
            crate::backup::generate(1, crate::backup::tests::CHEAP)
                .unwrap()
                .stored,
        );
        let text = record.to_toml().replace("m_cost = 64", "m_cost = 4000000");
        let err = Record::parse(text.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("cost"), "{err}");
    }

    #[test]
    fn trust_follows_service_expiry_policy_and_cap() {
        let mut record = sample();
        let now = 1_700_000_000;
        record.trust("a", "sshd", None, now, 7);
        assert!(record.trusts("a", "sshd", None, now + 86_400, 7));
        assert!(
            !record.trusts("a", "cockpit", None, now, 7),
            "another service"
        );
        assert!(!record.trusts("b", "sshd", None, now, 7));
        assert!(
            !record.trusts("a", "sshd", None, now + 7 * 86_400, 7),
            "expired"
        );
        assert!(
            !record.trusts("a", "sshd", None, now + 2 * 86_400, 1),
            "policy shortened to 1 day"
        );
        assert!(
            !record.trusts("a", "sshd", None, now, 0),
            "trust turned off"
        );
        for i in 0..40 {
            record.trust(&format!("h{i}"), "sshd", None, now + i, 7);
        }
        assert_eq!(record.trusted.len(), MAX_TRUSTED_HOSTS);
        assert!(
            record.trusts("h39", "sshd", None, now + 100, 7)
                && !record.trusts("h0", "sshd", None, now + 100, 7)
        );
        record.trust("bad\nhost", "sshd", None, now, 7);
        assert!(!record.trusted.iter().any(|t| t.host.contains('\n')));
        // A grant from before services were recorded is void; hostile times do not overflow.
        record.trusted = vec![
            TrustedHost {
                host: "old".into(),
                service: None,
                key: None,
                granted: now,
                expires: now + 86_400,
            },
            TrustedHost {
                host: "max".into(),
                service: Some("sshd".into()),
                key: None,
                granted: i64::MAX,
                expires: i64::MAX,
            },
        ];
        assert!(!record.trusts("old", "sshd", None, now, 7));
        assert!(record.trusts("max", "sshd", None, now, 365));
        record.trust("late", "sshd", None, i64::MAX - 5, 365);
    }

    #[test]
    fn a_grant_with_ssh_keys_counts_for_those_keys_alone() {
        let mut record = sample();
        let now = 1_700_000_000;
        record.trust("10.0.0.1", "sshd", Some("SHA256:a"), now, 7);
        assert!(record.trusts("10.0.0.1", "sshd", Some("SHA256:a"), now, 7));
        assert!(
            !record.trusts("10.0.0.1", "sshd", Some("SHA256:b"), now, 7),
            "another key"
        );
        assert!(
            !record.trusts("10.0.0.1", "sshd", None, now, 7),
            "no key shown"
        );
        record.trust("10.0.0.2", "sshd", None, now, 7);
        assert!(!record.trusts("10.0.0.2", "sshd", Some("SHA256:a"), now, 7));
        let text = record.to_toml();
        let back = Record::parse(text.as_bytes()).unwrap();
        assert!(back.trusts("10.0.0.1", "sshd", Some("SHA256:a"), now, 7));
    }

    #[test]
    fn lockout_bookkeeping() {
        let mut record = sample();
        record.note_failure(100, 2, 60);
        assert_eq!((record.failures, record.locked_until), (1, None));
        record.note_failure(100, 2, 60);
        assert_eq!((record.failures, record.locked_until), (2, Some(160)));
        assert_eq!(record.locked_at(159), Some(160));
        assert_eq!(record.locked_at(160), None);
        record.clear_lockout();
        assert_eq!((record.failures, record.locked_until), (0, None));
        record.note_failure(i64::MAX, 1, 60);
        assert_eq!(record.locked_until, Some(i64::MAX), "saturates");
        record.note_success(200);
        assert_eq!((record.failures, record.last_used), (0, Some(200)));
        let mut never = sample();
        for _ in 0..10 {
            never.note_failure(100, 0, 60);
        }
        assert_eq!(never.locked_until, None, "max_failures = 0 never locks");
    }

    #[test]
    fn control_characters_in_text_fields_are_refused() {
        let good = sample().to_toml();
        for (from, to) in [
            (
                "issuer = \"host\"",
                "issuer = \"host\\u001b]0;owned\\u0007\"",
            ),
            ("label = \"alice\"", "label = \"al\\nice\""),
            ("account = \"alice\"", "account = \"alice\\r\""),
        ] {
            assert!(good.contains(from), "{from}");
            let err = Record::parse(good.replace(from, to).as_bytes()).unwrap_err();
            assert!(err.to_string().contains("control characters"), "{err}");
        }
    }

    #[test]
    fn a_record_is_refused_under_another_account_name() {
        let record = sample();
        assert!(record.check_account("alice").is_ok());
        let err = record.check_account("Alice").unwrap_err();
        assert!(err.contains("'alice'") && err.contains("case"), "{err}");
        let legacy = Record {
            account: None,
            ..sample()
        };
        assert!(
            legacy.check_account("Alice").is_ok(),
            "records before the field"
        );
    }

    #[test]
    fn refuses_bad_text_without_quoting_it() {
        let good = sample().to_toml();
        assert_eq!(Record::parse(b""), Err(RecordError::Empty));
        assert_eq!(Record::parse(b" \n"), Err(RecordError::Empty));
        assert_eq!(
            Record::parse(&[0xff, 0xfe, b'a']),
            Err(RecordError::NotUtf8)
        );
        assert!(matches!(
            Record::parse(b"version = = 1"),
            Err(RecordError::Invalid { .. })
        ));
        let future = good.replace("version = 1", "version = 2");
        assert_eq!(
            Record::parse(future.as_bytes()),
            Err(RecordError::UnsupportedVersion { found: 2 })
        );
        let unknown = format!("{}\nextra = true\n", good.as_str());
        let err = Record::parse(unknown.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("extra"), "{err}");
        let bad_digits = good.replace("digits = 6", "digits = 12");
        assert!(Record::parse(bad_digits.as_bytes()).is_err());
        // A broken secret is reported without echoing it.
        let bad_secret = good.replace("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", "NOT!BASE32SECRETVALUE");
        let err = Record::parse(bad_secret.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("base32") && !err.contains("NOT!BASE32"),
            "{err}"
        );
        assert!(!format!("{:?}", sample()).contains("JBSW"));
    }
}
