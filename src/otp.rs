//! HOTP (RFC 4226) and TOTP (RFC 6238) verification: drift window, replay refusal, constant time.
//!
//! The HMAC and dynamic truncation come from totp-rs; this file decides which time steps are
//! tried, compares in constant time, and reports the matched step so the caller can store it.
#![forbid(unsafe_code)]

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Longest answer looked at. Anything longer is refused before it is copied or parsed.
pub const MAX_INPUT_LEN: usize = 64;

/// HMAC hash function. SHA1 is what every authenticator app supports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    #[default]
    SHA1,
    SHA256,
    SHA512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SHA1 => "SHA1",
            Self::SHA256 => "SHA256",
            Self::SHA512 => "SHA512",
        }
    }

    fn to_totp_rs(self) -> totp_rs::Algorithm {
        match self {
            Self::SHA1 => totp_rs::Algorithm::SHA1,
            Self::SHA256 => totp_rs::Algorithm::SHA256,
            Self::SHA512 => totp_rs::Algorithm::SHA512,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How codes are computed for one enrollment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TotpParams {
    pub algorithm: Algorithm,
    pub digits: u8,
    pub period: u32,
}

impl Default for TotpParams {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::SHA1,
            digits: 6,
            period: 30,
        }
    }
}

pub const DIGITS_RANGE: std::ops::RangeInclusive<u8> = 6..=8;
pub const PERIOD_RANGE: std::ops::RangeInclusive<u32> = 10..=300;

impl TotpParams {
    /// Checks values an authenticator app can work with; returns what is wrong otherwise.
    pub fn validate(&self) -> Result<(), String> {
        if !DIGITS_RANGE.contains(&self.digits) {
            return Err(format!("digits = {} (must be 6, 7 or 8)", self.digits));
        }
        if !PERIOD_RANGE.contains(&self.period) {
            return Err(format!(
                "period = {} (must be 10 to 300 seconds)",
                self.period
            ));
        }
        Ok(())
    }
}

/// A shared HMAC key. Wiped from memory on drop; never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

/// What is wrong with a secret an admin typed or a record holds. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretError {
    Empty,
    NotBase32,
    NotHex,
    /// Under 80 bits: weaker than anything an app or google-authenticator-libpam produces.
    TooShort {
        bits: usize,
    },
    TooLong {
        bits: usize,
    },
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "the secret is empty"),
            Self::NotBase32 => write!(
                f,
                "the secret is not valid base32 (letters A-Z and digits 2-7)"
            ),
            Self::NotHex => write!(
                f,
                "the secret is not hexadecimal (an even number of digits 0-9 and letters a-f)"
            ),
            Self::TooShort { bits } => write!(
                f,
                "the secret has {bits} bits; at least {} are required",
                Secret::MIN_BYTES * 8
            ),
            Self::TooLong { bits } => write!(
                f,
                "the secret has {bits} bits; at most {} are accepted",
                Secret::MAX_BYTES * 8
            ),
        }
    }
}

impl std::error::Error for SecretError {}

impl Secret {
    /// 80 bits: google-authenticator-libpam's secrets, accepted so they can be imported.
    pub const MIN_BYTES: usize = 10;
    /// 160 bits, RFC 4226's recommendation; what `twofold enroll` generates.
    pub const GENERATED_BYTES: usize = 20;
    /// SHA512's block size; longer keys are hashed by HMAC anyway.
    pub const MAX_BYTES: usize = 128;

    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, SecretError> {
        let bytes = Zeroizing::new(bytes);
        match bytes.len() {
            0 => Err(SecretError::Empty),
            n if n < Self::MIN_BYTES => Err(SecretError::TooShort { bits: n * 8 }),
            n if n > Self::MAX_BYTES => Err(SecretError::TooLong { bits: n * 8 }),
            _ => Ok(Self(bytes)),
        }
    }

    /// Parses base32 as admins paste it: any case, spaces or dashes between groups, `=` padding.
    pub fn from_base32(text: &str) -> Result<Self, SecretError> {
        let mut clean = Zeroizing::new(String::with_capacity(text.len()));
        for c in text.chars() {
            match c {
                ' ' | '\t' | '-' => {}
                'a'..='z' | 'A'..='Z' | '2'..='7' => clean.push(c.to_ascii_uppercase()),
                '=' => {}
                _ => return Err(SecretError::NotBase32),
            }
        }
        // Padding is only allowed at the end.
        if text.trim_end().trim_end_matches('=').contains('=') {
            return Err(SecretError::NotBase32);
        }
        if clean.is_empty() {
            return Err(SecretError::Empty);
        }
        // A length of 1, 3 or 6 (mod 8) cannot come from whole bytes.
        if matches!(clean.len() % 8, 1 | 3 | 6) {
            return Err(SecretError::NotBase32);
        }
        let decoded =
            totp_rs::Secret::try_from_base32(clean.as_str()).map_err(|_| SecretError::NotBase32)?;
        Self::from_bytes(decoded.as_bytes().to_vec())
    }

    /// Parses a hexadecimal key (hardware token seed files, pam_oath's users file).
    pub fn from_hex(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(SecretError::Empty);
        }
        if text.len() % 2 != 0 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SecretError::NotHex);
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| SecretError::NotHex)?;
        Self::from_bytes(bytes)
    }

    /// Canonical form: uppercase RFC 4648 base32 without padding, as apps expect in a URI.
    pub fn to_base32(&self) -> Zeroizing<String> {
        let secret = totp_rs::Secret::from(self.0.to_vec());
        Zeroizing::new(secret.to_base32().trim_end_matches('=').to_owned())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn bits(&self) -> usize {
        self.0.len() * 8
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base32())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Zeroizing::new(String::deserialize(deserializer)?);
        // The message names the problem, never the value.
        Secret::from_base32(&text).map_err(serde::de::Error::custom)
    }
}

/// Why an answer was not even compared. Says nothing about the right code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeInputError {
    Empty,
    TooLong,
    NotDigits,
    WrongLength,
}

impl fmt::Display for CodeInputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "empty answer",
            Self::TooLong => "answer too long",
            Self::NotDigits => "answer has characters other than digits and spaces",
            Self::WrongLength => "answer has the wrong number of digits",
        })
    }
}

/// Normalises what the user typed: ASCII spaces and tabs are dropped (apps show `123 456`),
/// then exactly `digits` ASCII digits must remain. Unicode digits are refused.
pub fn normalize_code(input: &[u8], digits: u8) -> Result<Zeroizing<String>, CodeInputError> {
    if input.len() > MAX_INPUT_LEN {
        return Err(CodeInputError::TooLong);
    }
    let mut code = Zeroizing::new(String::with_capacity(input.len()));
    for &b in input {
        match b {
            b' ' | b'\t' => {}
            b'0'..=b'9' => code.push(char::from(b)),
            _ => return Err(CodeInputError::NotDigits),
        }
    }
    if code.is_empty() {
        return Err(CodeInputError::Empty);
    }
    if code.len() != usize::from(digits) {
        return Err(CodeInputError::WrongLength);
    }
    Ok(code)
}

/// What an answer at the prompt can be, judged by its shape alone.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// `digits` digits: a code from the app.
    Totp(Zeroizing<String>),
    /// 8 digits (`1234-5678` or `12345678`): a backup code.
    Backup(Zeroizing<String>),
    /// 8 digits when codes are 8 digits long too: try the app's code first.
    TotpOrBackup(Zeroizing<String>),
}

/// Sorts an answer into an app code or a backup code (see [`Answer`]). Spaces and tabs are
/// dropped; one `-` is allowed only as a backup code's middle (`1234-5678`).
pub fn parse_answer(input: &[u8], digits: u8) -> Result<Answer, CodeInputError> {
    if input.len() > MAX_INPUT_LEN {
        return Err(CodeInputError::TooLong);
    }
    let mut code = Zeroizing::new(String::with_capacity(input.len()));
    let mut dash_at = None;
    for &b in input {
        match b {
            b' ' | b'\t' => {}
            b'0'..=b'9' => code.push(char::from(b)),
            b'-' if dash_at.is_none() => dash_at = Some(code.len()),
            _ => return Err(CodeInputError::NotDigits),
        }
    }
    let backup = crate::backup::CODE_DIGITS;
    match (dash_at, code.len()) {
        (_, 0) => Err(CodeInputError::Empty),
        (Some(4), n) if n == backup => Ok(Answer::Backup(code)),
        (Some(_), _) => Err(CodeInputError::NotDigits),
        (None, n) if n == usize::from(digits) && n == backup => Ok(Answer::TotpOrBackup(code)),
        (None, n) if n == usize::from(digits) => Ok(Answer::Totp(code)),
        (None, n) if n == backup => Ok(Answer::Backup(code)),
        (None, _) => Err(CodeInputError::WrongLength),
    }
}

/// Result of comparing a well-formed code against the steps around now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Matched this time step, which is later than any accepted before.
    Accepted { step: u64 },
    /// Like `Accepted`, but the step is only in the window around this server's own clock,
    /// not in the one around the learned clock offset: the token shows real time, so the
    /// offset is wrong (taught by stolen codes, or the phone's clock was set right since).
    /// The caller accepts the code and forgets the offset.
    AcceptedAtServerTime { step: u64 },
    /// Matched only a step at or before the last accepted one: a replay.
    Replayed,
    /// Matched no step in the window.
    Wrong,
}

/// The time step a Unix time falls in.
pub fn time_step(now: u64, period: u32) -> u64 {
    now / u64::from(period.max(1))
}

fn hotp_generator(secret: &Secret, algorithm: Algorithm, digits: u8) -> totp_rs::Totp {
    // A "TOTP" with 1-second steps and no skew is plain HOTP: time == counter. The lengths and
    // digits were validated by the caller; build_noncompliant only skips the 128-bit minimum,
    // which 80-bit google-authenticator secrets need.
    totp_rs::Builder::new()
        .with_algorithm(algorithm.to_totp_rs())
        .with_digits(digits)
        .with_skew(0)
        .with_step_duration(1)
        .with_secret(secret.as_bytes().to_vec())
        .build_noncompliant()
}

/// HOTP value for one counter, as the zero-padded digit string an app shows.
pub fn hotp(secret: &Secret, algorithm: Algorithm, digits: u8, counter: u64) -> Zeroizing<String> {
    Zeroizing::new(
        hotp_generator(secret, algorithm, digits)
            .generate(counter)
            .to_string(),
    )
}

/// TOTP value at a Unix time (for enrollment checks and tests; logins use [`verify_totp`]).
pub fn totp(secret: &Secret, params: TotpParams, now: u64) -> Zeroizing<String> {
    hotp(
        secret,
        params.algorithm,
        params.digits,
        time_step(now, params.period),
    )
}

/// Checks `code` (already normalised) against every step within `window` of now.
///
/// Every step of the window is computed and compared in constant time whatever the answer, so
/// the time taken says nothing about which step (if any) matched. A step at or before
/// `last_step` is never accepted. If several steps match, the earliest acceptable one is
/// returned, so later codes stay usable.
pub fn verify_totp(
    secret: &Secret,
    params: TotpParams,
    code: &str,
    now: u64,
    window: u8,
    last_step: Option<u64>,
) -> Verdict {
    verify_totp_with_drift(secret, params, code, now, 0, window, last_step)
}

/// [`verify_totp`] for a token whose clock runs `drift` steps off this server's: codes are
/// looked for in the window centred on the token's idea of now, and also in the window around
/// this server's own clock, so that a wrong offset (an attacker's, or one the user has since
/// fixed on the phone) never shuts out the user's real code. A match only in the latter is
/// [`Verdict::AcceptedAtServerTime`].
///
/// Both windows are computed in full whatever the answer. Replay protection spans both: a
/// step at or before `last_step` is never accepted, whichever window it falls in.
pub fn verify_totp_with_drift(
    secret: &Secret,
    params: TotpParams,
    code: &str,
    now: u64,
    drift: i64,
    window: u8,
    last_step: Option<u64>,
) -> Verdict {
    let generator = hotp_generator(secret, params.algorithm, params.digits);
    let server = time_step(now, params.period);
    let learned = window_around(shifted(server, drift), window);
    // Without an offset the two windows are one: compute it once.
    let real = (drift != 0).then(|| window_around(server, window));
    let mut accepted: Option<u64> = None;
    let mut replayed = false;
    for step in learned.clone().chain(real.into_iter().flatten()) {
        // totp-rs parses `code` and compares the two tokens in constant time.
        let matches = generator.check(code, step).is_some();
        let fresh = last_step.is_none_or(|l| step > l);
        match (matches, fresh) {
            // The earliest fresh match, so later codes stay usable.
            (true, true) => accepted = Some(accepted.map_or(step, |a| a.min(step))),
            (true, false) => replayed = true,
            _ => {}
        }
    }
    match accepted {
        Some(step) if learned.contains(&step) => Verdict::Accepted { step },
        Some(step) => Verdict::AcceptedAtServerTime { step },
        None if replayed => Verdict::Replayed,
        None => Verdict::Wrong,
    }
}

/// The steps within `window` of `center`, clipped to `u64` (no wrap at either end).
fn window_around(center: u64, window: u8) -> std::ops::RangeInclusive<u64> {
    center.saturating_sub(u64::from(window))..=center.saturating_add(u64::from(window))
}

/// `step + offset`, kept within `u64`.
pub fn shifted(step: u64, offset: i64) -> u64 {
    if offset < 0 {
        step.saturating_sub(offset.unsigned_abs())
    } else {
        step.saturating_add(offset.unsigned_abs())
    }
}

/// The clock offset (in steps from this server's clock, within `±max`) at which `code` is
/// right, skipping the offsets in `already_tried` (the windows that just failed). The smallest
/// offset wins; every offset is computed whatever the answer, so timing says nothing.
pub fn find_offset(
    secret: &Secret,
    params: TotpParams,
    code: &str,
    now: u64,
    already_tried: &[std::ops::RangeInclusive<i64>],
    max: i64,
) -> Option<(i64, u64)> {
    let generator = hotp_generator(secret, params.algorithm, params.digits);
    let current = time_step(now, params.period);
    // `max` comes from the policy (a few hundred steps); the bound keeps `-max` in range.
    let max = max.clamp(0, i64::MAX);
    let mut found: Option<(i64, u64)> = None;
    for offset in -max..=max {
        let step = shifted(current, offset);
        let matches = generator.check(code, step).is_some();
        let closer = found.is_none_or(|(best, _)| offset.unsigned_abs() < best.unsigned_abs());
        let tried = already_tried.iter().any(|r| r.contains(&offset));
        if matches && closer && !tried {
            found = Some((offset, step));
        }
    }
    found
}

/// Checks an HOTP `code` against counters `counter ..= counter + look_ahead` (a token pressed
/// without logging in runs ahead). Returns the matched counter; the next expected one is the
/// matched one plus one. All counters are computed whatever the answer.
pub fn verify_hotp(
    secret: &Secret,
    algorithm: Algorithm,
    digits: u8,
    code: &str,
    counter: u64,
    look_ahead: u8,
) -> Option<u64> {
    let generator = hotp_generator(secret, algorithm, digits);
    let mut matched = None;
    // Never u64::MAX: the next counter must be able to move past an accepted code, or the
    // same code would log in again and again.
    let last = counter
        .saturating_add(u64::from(look_ahead))
        .min(u64::MAX - 1);
    for value in counter..=last {
        if generator.check(code, value).is_some() && matched.is_none() {
            matched = Some(value);
        }
    }
    matched
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ascii_secret(s: &str) -> Secret {
        Secret::from_bytes(s.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn a_counter_at_the_end_of_its_range_accepts_nothing() {
        let secret = ascii_secret("12345678901234567890");
        let at_max = hotp(&secret, Algorithm::SHA1, 6, u64::MAX);
        assert_eq!(
            verify_hotp(&secret, Algorithm::SHA1, 6, &at_max, u64::MAX, 10),
            None
        );
        assert_eq!(
            verify_hotp(&secret, Algorithm::SHA1, 6, &at_max, u64::MAX - 3, 10),
            None
        );
        let before = hotp(&secret, Algorithm::SHA1, 6, u64::MAX - 1);
        assert_eq!(
            verify_hotp(&secret, Algorithm::SHA1, 6, &before, u64::MAX - 3, 10),
            Some(u64::MAX - 1)
        );
    }

    /// RFC 4226 appendix D: HOTP-SHA1, 6 digits, counters 0..9.
    #[test]
    fn rfc4226_vectors() {
        let secret = ascii_secret("12345678901234567890");
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, want) in expected.iter().enumerate() {
            assert_eq!(
                hotp(&secret, Algorithm::SHA1, 6, counter as u64).as_str(),
                *want
            );
        }
    }

    /// RFC 6238 appendix B: all three algorithms, 8 digits, 30 s period.
    #[test]
    fn rfc6238_vectors() {
        let sha1 = ascii_secret("12345678901234567890");
        let sha256 = ascii_secret("12345678901234567890123456789012");
        let sha512 =
            ascii_secret("1234567890123456789012345678901234567890123456789012345678901234");
        let table: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (time, c1, c256, c512) in table {
            for (secret, algorithm, want) in [
                (&sha1, Algorithm::SHA1, c1),
                (&sha256, Algorithm::SHA256, c256),
                (&sha512, Algorithm::SHA512, c512),
            ] {
                let params = TotpParams {
                    algorithm,
                    digits: 8,
                    period: 30,
                };
                assert_eq!(
                    totp(secret, params, time).as_str(),
                    want,
                    "{algorithm} at {time}"
                );
                assert_eq!(
                    verify_totp(secret, params, want, time, 0, None),
                    Verdict::Accepted { step: time / 30 }
                );
            }
        }
    }

    fn sample() -> (Secret, TotpParams) {
        (
            Secret::from_base32("JBSWY3DPEHPK3PXP").unwrap(),
            TotpParams::default(),
        )
    }

    #[test]
    fn window_accepts_neighbours_only() {
        let (s, p) = sample();
        let now = 1_700_000_000;
        let step = time_step(now, 30);
        for offset in [-1i64, 0, 1] {
            let t = (now as i64 + offset * 30) as u64;
            let code = totp(&s, p, t);
            assert_eq!(
                verify_totp(&s, p, &code, now, 1, None),
                Verdict::Accepted {
                    step: (step as i64 + offset) as u64
                }
            );
        }
        for offset in [-10i64, -2, 2, 10] {
            let code = totp(&s, p, (now as i64 + offset * 30) as u64);
            assert_eq!(
                verify_totp(&s, p, &code, now, 1, None),
                Verdict::Wrong,
                "offset {offset}"
            );
        }
        // window 0: only the current step.
        let prev = totp(&s, p, now - 30);
        assert_eq!(verify_totp(&s, p, &prev, now, 0, None), Verdict::Wrong);
    }

    #[test]
    fn replayed_and_older_steps_are_refused() {
        let (s, p) = sample();
        let now = 1_700_000_000;
        let step = time_step(now, 30);
        let code = totp(&s, p, now);
        assert_eq!(
            verify_totp(&s, p, &code, now, 1, Some(step)),
            Verdict::Replayed
        );
        assert_eq!(
            verify_totp(&s, p, &code, now, 1, Some(step + 5)),
            Verdict::Replayed
        );
        let earlier = totp(&s, p, now - 30);
        assert_eq!(
            verify_totp(&s, p, &earlier, now, 1, Some(step)),
            Verdict::Replayed
        );
        let next = totp(&s, p, now + 30);
        assert_eq!(
            verify_totp(&s, p, &next, now, 1, Some(step)),
            Verdict::Accepted { step: step + 1 }
        );
    }

    #[test]
    fn a_learned_offset_never_shuts_out_the_real_code() {
        let (s, p) = sample();
        let now = 1_700_000_010;
        let step = time_step(now, 30);
        let at = |offset: i64| hotp(&s, p.algorithm, p.digits, shifted(step, offset));
        let verify =
            |code: &str, drift, last| verify_totp_with_drift(&s, p, code, now, drift, 1, last);
        // -20 steps taught by stolen codes; the attacker logged in with the last of them.
        let last = Some(step - 18);
        assert_eq!(
            verify(&at(0), -20, last),
            Verdict::AcceptedAtServerTime { step },
            "the user's real code"
        );
        assert_eq!(
            verify(&at(1), -20, last),
            Verdict::AcceptedAtServerTime { step: step + 1 }
        );
        assert_eq!(verify(&at(0), -20, Some(step)), Verdict::Replayed, "once");
        // The learned window is judged as before, replay included.
        assert_eq!(
            verify(&at(-19), -20, None),
            Verdict::Accepted { step: step - 19 }
        );
        assert_eq!(verify(&at(-19), -20, last), Verdict::Replayed);
        assert_eq!(
            verify(&at(-10), -20, last),
            Verdict::Wrong,
            "in neither window"
        );
        assert_eq!(verify(&at(2), -20, last), Verdict::Wrong);
        // Replay protection spans both windows: once the token's code 20 steps ahead was
        // used, every code of the server's own window is behind the last step.
        assert_eq!(
            verify(&at(20), 20, None),
            Verdict::Accepted { step: step + 20 }
        );
        assert_eq!(verify(&at(0), 20, Some(step + 20)), Verdict::Replayed);
        // Overlapping windows: a step in both is plain Accepted.
        assert_eq!(verify(&at(0), 1, None), Verdict::Accepted { step });
        assert_eq!(
            verify(&at(-1), 1, None),
            Verdict::AcceptedAtServerTime { step: step - 1 }
        );
        // No offset: one window, never AcceptedAtServerTime.
        assert_eq!(
            verify(&at(-1), 0, None),
            Verdict::Accepted { step: step - 1 }
        );
    }

    #[test]
    fn hostile_offsets_and_windows_stay_in_range() {
        let (s, p) = sample();
        let now = 1_700_000_010;
        let step = time_step(now, 30);
        let code = totp(&s, p, now);
        for drift in [i64::MIN, i64::MIN + 1, i64::MAX] {
            assert_eq!(
                verify_totp_with_drift(&s, p, &code, now, drift, u8::MAX, None),
                Verdict::AcceptedAtServerTime { step },
                "drift {drift}"
            );
        }
        assert_eq!(window_around(u64::MAX, 3), u64::MAX - 3..=u64::MAX);
        assert_eq!(window_around(1, 3), 0..=4);
        assert_eq!(shifted(5, i64::MIN), 0);
        assert_eq!(shifted(u64::MAX - 1, i64::MAX), u64::MAX);
        // A near-epoch clock with a far offset: both ends clip, nothing wraps.
        let early = totp(&s, p, 0);
        assert_eq!(
            verify_totp_with_drift(&s, p, &early, 0, i64::MIN, 3, None),
            Verdict::Accepted { step: 0 }
        );
        // find_offset: hostile "already tried" ranges and bounds.
        let ahead = totp(&s, p, now + 90);
        let everything = [i64::MIN..=i64::MAX];
        assert_eq!(find_offset(&s, p, &ahead, now, &everything, 20), None);
        assert_eq!(
            find_offset(&s, p, &ahead, now, &[], 20),
            Some((3, step + 3))
        );
        assert_eq!(find_offset(&s, p, &ahead, now, &[-1..=1], i64::MIN), None);
    }

    #[test]
    fn clock_near_epoch_does_not_underflow() {
        let (s, p) = sample();
        let code = totp(&s, p, 0);
        assert_eq!(
            verify_totp(&s, p, &code, 0, 3, None),
            Verdict::Accepted { step: 0 }
        );
    }

    #[test]
    fn input_is_normalised_strictly() {
        assert_eq!(normalize_code(b"123456", 6).unwrap().as_str(), "123456");
        assert_eq!(normalize_code(b" 123 456\t", 6).unwrap().as_str(), "123456");
        assert_eq!(normalize_code(b"", 6), Err(CodeInputError::Empty));
        assert_eq!(normalize_code(b"   ", 6), Err(CodeInputError::Empty));
        assert_eq!(
            normalize_code(b"12345", 6),
            Err(CodeInputError::WrongLength)
        );
        assert_eq!(
            normalize_code(b"1234567", 6),
            Err(CodeInputError::WrongLength)
        );
        assert_eq!(normalize_code(b"12345a", 6), Err(CodeInputError::NotDigits));
        assert_eq!(normalize_code(b"+12345", 6), Err(CodeInputError::NotDigits));
        assert_eq!(
            normalize_code("١٢٣٤٥٦".as_bytes(), 6),
            Err(CodeInputError::NotDigits)
        );
        assert_eq!(
            normalize_code(&[b'1'; 10_000], 6),
            Err(CodeInputError::TooLong)
        );
        assert_eq!(normalize_code(b"12345678", 8).unwrap().as_str(), "12345678");
    }

    #[test]
    fn answers_are_sorted_by_shape() {
        let totp = |s: &str| Answer::Totp(Zeroizing::new(s.into()));
        let backup = |s: &str| Answer::Backup(Zeroizing::new(s.into()));
        assert_eq!(parse_answer(b"123 456", 6), Ok(totp("123456")));
        assert_eq!(parse_answer(b"1234-5678", 6), Ok(backup("12345678")));
        assert_eq!(parse_answer(b"12345678", 6), Ok(backup("12345678")));
        assert_eq!(parse_answer(b" 1234 - 5678 ", 6), Ok(backup("12345678")));
        assert_eq!(
            parse_answer(b"12345678", 8),
            Ok(Answer::TotpOrBackup(Zeroizing::new("12345678".into())))
        );
        assert_eq!(parse_answer(b"1234-5678", 8), Ok(backup("12345678")));
        assert_eq!(
            parse_answer(b"123-45678", 6),
            Err(CodeInputError::NotDigits)
        );
        assert_eq!(
            parse_answer(b"1234--5678", 6),
            Err(CodeInputError::NotDigits)
        );
        assert_eq!(
            parse_answer(b"1234567", 6),
            Err(CodeInputError::WrongLength)
        );
        assert_eq!(parse_answer(b"-", 6), Err(CodeInputError::Empty));
        assert_eq!(parse_answer(b"12a456", 6), Err(CodeInputError::NotDigits));
        assert_eq!(parse_answer(&[b'1'; 100], 6), Err(CodeInputError::TooLong));
    }

    #[test]
    fn base32_is_normalised_like_admins_paste_it() {
        let canonical = Secret::from_base32("JBSWY3DPEHPK3PXP").unwrap();
        for pasted in [
            "jbsw y3dp ehpk 3pxp",
            "JBSW-Y3DP-EHPK-3PXP",
            "JBSWY3DPEHPK3PXP======",
        ] {
            assert_eq!(Secret::from_base32(pasted).unwrap(), canonical, "{pasted}");
        }
        assert_eq!(canonical.to_base32().as_str(), "JBSWY3DPEHPK3PXP");
        assert_eq!(canonical.bits(), 80);
        assert_eq!(Secret::from_base32(""), Err(SecretError::Empty));
        assert_eq!(Secret::from_base32("JBSW1Y3D"), Err(SecretError::NotBase32));
        assert_eq!(
            Secret::from_base32("JB=SWY3DP"),
            Err(SecretError::NotBase32)
        );
        assert_eq!(
            Secret::from_base32("JBSWY3DP"),
            Err(SecretError::TooShort { bits: 40 })
        );
        assert_eq!(format!("{canonical:?}"), "Secret([redacted])");
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Whatever the clock, window and last step: a code from step `s` is accepted
            /// exactly when `s` is in the window and after the last step, and what is
            /// accepted is always a fresh step in the window whose code it is.
            #[test]
            fn window_and_replay(
                key in proptest::collection::vec(any::<u8>(), 10..40),
                now in 0u64..4_000_000_000,
                offset in -12i64..=12,
                window in 0u8..=10,
                last_back in proptest::option::of(0u64..30),
            ) {
                let secret = Secret::from_bytes(key).unwrap();
                let params = TotpParams::default();
                let current = time_step(now, 30);
                let step = current as i64 + offset;
                prop_assume!(step >= 0);
                let step = step as u64;
                let code = hotp(&secret, params.algorithm, params.digits, step);
                let last = last_back.map(|b| current.saturating_sub(b));
                let verdict = verify_totp(&secret, params, &code, now, window, last);
                let in_window = step + u64::from(window) >= current && step <= current + u64::from(window);
                let fresh = last.is_none_or(|l| step > l);
                match verdict {
                    Verdict::Accepted { step: got } => {
                        prop_assert!(got + u64::from(window) >= current && got <= current + u64::from(window));
                        prop_assert!(last.is_none_or(|l| got > l));
                        prop_assert_eq!(hotp(&secret, params.algorithm, params.digits, got), code.clone());
                        // The earliest fresh match: never later than the code's own step.
                        if in_window && fresh {
                            prop_assert!(got <= step);
                        }
                    }
                    Verdict::Replayed | Verdict::Wrong => prop_assert!(!(in_window && fresh)),
                    Verdict::AcceptedAtServerTime { .. } => prop_assert!(false, "no offset, one window"),
                }
                if in_window && !fresh {
                    // Its own step is used up: a replay, unless (1 in a million) the same
                    // digits are also a fresh step's code.
                    let replay_or_collision = matches!(verdict, Verdict::Replayed | Verdict::Accepted { .. });
                    prop_assert!(replay_or_collision);
                }
            }

            /// With a learned offset: a code from step `s` is accepted exactly when `s` is in
            /// the window around the offset or around this server's clock, and after the last
            /// step; `AcceptedAtServerTime` exactly when the match lies only in the latter.
            #[test]
            fn both_windows_and_replay(
                key in proptest::collection::vec(any::<u8>(), 10..40),
                now in 0u64..4_000_000_000,
                drift in -400i64..=400,
                offset in -420i64..=420,
                window in 0u8..=5,
                last_back in proptest::option::of(-30i64..30),
            ) {
                let secret = Secret::from_bytes(key).unwrap();
                let params = TotpParams::default();
                let current = time_step(now, 30);
                let step = shifted(current, offset);
                let code = hotp(&secret, params.algorithm, params.digits, step);
                let last = last_back.map(|b| shifted(current, b));
                let verdict = verify_totp_with_drift(&secret, params, &code, now, drift, window, last);
                let learned = window_around(shifted(current, drift), window);
                let real = window_around(current, window);
                let fresh = |s: u64| last.is_none_or(|l| s > l);
                let right = |s: u64| hotp(&secret, params.algorithm, params.digits, s) == code;
                match verdict {
                    Verdict::Accepted { step: got } => {
                        prop_assert!(learned.contains(&got) && fresh(got) && right(got));
                    }
                    Verdict::AcceptedAtServerTime { step: got } => {
                        prop_assert!(drift != 0);
                        prop_assert!(real.contains(&got) && !learned.contains(&got));
                        prop_assert!(fresh(got) && right(got));
                    }
                    Verdict::Replayed | Verdict::Wrong => {
                        let in_a_window = learned.contains(&step) || real.contains(&step);
                        prop_assert!(!(in_a_window && fresh(step)));
                    }
                }
            }

            /// Any bytes: a normalised code is exactly `digits` ASCII digits, or an error.
            #[test]
            fn normalised_input_has_the_right_shape(input in proptest::collection::vec(any::<u8>(), 0..80), digits in 6u8..=8) {
                if let Ok(code) = normalize_code(&input, digits) {
                    prop_assert_eq!(code.len(), usize::from(digits));
                    prop_assert!(code.bytes().all(|b| b.is_ascii_digit()));
                }
            }
        }
    }
}
