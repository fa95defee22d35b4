//! pam_oath's users file (`/etc/users.oath`), one token per line:
//!
//! ```text
//! # type      user   pin  secret (hex)                              counter last-otp last-time
//! HOTP        alice  -    3132333435363738393031323334353637383930  4       338314   2026-11-22T23:07:47L
//! HOTP/T30    bob    -    3132333435363738393031323334353637383930  0       387432   2026-11-22T23:07:47L
//! HOTP/T30/8  carol  -    3132333435363738393031323334353637383930
//! ```
//!
//! Types: `HOTP` or `HOTP/E` (counter based), `HOTP/T<seconds>` (time based), each optionally
//! followed by `/<digits>`. pam_oath writes the counter of the last code used, that code and
//! the login time (local time, `L`) after every login; before the first login only the counter
//! is there and the code at that counter is still unused (seen with the real pam_oath).
#![forbid(unsafe_code)]

use std::collections::HashMap;

use super::{ImportError, Imported};
use crate::otp::{self, Algorithm, DIGITS_RANGE, PERIOD_RANGE, Secret};
use crate::policy::MAX_WINDOW;
use crate::record::Kind;

/// pam_oath writes its login time in local time. Without the zone, the step of the last code
/// is looked for within the widest span of UTC offsets.
const LOCAL_TIME_SPAN_SECONDS: i64 = 14 * 3600;

/// One user's line, parsed.
#[derive(Debug)]
pub struct Entry {
    pub line: usize,
    pub user: String,
    pub token: Result<Imported, ImportError>,
}

/// A line that is not about any user (blank, comment) is left out; a line too broken to name a
/// user is returned as an error for `user` "?".
pub fn parse(bytes: &[u8], now: i64) -> Result<Vec<Entry>, ImportError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ImportError::file("the file is not text (not UTF-8)"))?;
    let mut entries: Vec<Entry> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() || fields[0].starts_with('#') {
            continue;
        }
        let user = fields.get(1).copied().unwrap_or("?").to_owned();
        let token = parse_line(&fields, now).map_err(|message| ImportError::at(number, message));
        entries.push(Entry {
            line: number,
            user,
            token,
        });
    }
    // One token per user in twofold: a user on several lines (pam_oath tries each) is not
    // guessed at.
    let mut lines_of: HashMap<String, Vec<usize>> = HashMap::new();
    for entry in &entries {
        lines_of
            .entry(entry.user.clone())
            .or_default()
            .push(entry.line);
    }
    for entry in &mut entries {
        let lines = &lines_of[&entry.user];
        if lines.len() < 2 {
            continue;
        }
        let others: Vec<String> = lines
            .iter()
            .filter(|l| **l != entry.line)
            .map(ToString::to_string)
            .collect();
        entry.token = Err(ImportError::at(
            entry.line,
            format!(
                "{} is also on line {}; twofold keeps one token per user, so none of them is imported",
                entry.user,
                others.join(", ")
            ),
        ));
    }
    Ok(entries)
}

fn parse_line(fields: &[&str], now: i64) -> Result<Imported, String> {
    if fields.len() < 4 {
        return Err("expected: type user pin secret [counter [last-otp [last-time]]]".into());
    }
    if fields.len() > 7 {
        return Err("too many fields".into());
    }
    let (kind, period, digits) = parse_type(fields[0])?;
    let notes = pin_note(fields[2]).into_iter().collect();
    let secret = parse_hex_secret(fields[3])?;
    let counter = parse_counter(fields.get(4).copied())?;
    let (last_otp, last_time) = parse_last_login(&fields[5.min(fields.len())..], digits)?;
    let used = last_otp.is_some() || last_time.is_some();
    let mut token = Imported {
        secret,
        kind,
        algorithm: Algorithm::SHA1,
        digits,
        period,
        counter: None,
        last_step: None,
        window: None,
        drift_steps: 0,
        scratch_codes: Vec::new(),
        notes,
    };
    match kind {
        Kind::Hotp => {
            // The counter field is the last code used once there was a login, else the next.
            token.counter = Some(if used {
                counter.checked_add(1).ok_or("the counter is too large")?
            } else {
                counter
            });
        }
        Kind::Totp => {
            token.last_step = last_used_step(&token, last_otp, last_time, now);
        }
    }
    Ok(token)
}

/// What becomes of the PIN field (`-` none, `+` checked elsewhere, else a PIN).
fn pin_note(field: &str) -> Option<String> {
    match field {
        "-" => None,
        "+" => Some("PIN checked by another module there (+); not carried over".into()),
        _ => Some(
            "the pam_oath PIN is not carried over: twofold asks for the code alone (the password comes from the stack)".into(),
        ),
    }
}

/// The counter field (0 when absent), within what a record can hold.
fn parse_counter(field: Option<&str>) -> Result<u64, String> {
    let counter: u64 = match field {
        Some(c) => c.parse().map_err(|_| "the counter is not a number")?,
        None => 0,
    };
    if counter > crate::record::MAX_COUNTER {
        return Err(format!(
            "the counter is beyond {}",
            crate::record::MAX_COUNTER
        ));
    }
    Ok(counter)
}

/// The optional last code (digits) and last login time after the counter.
fn parse_last_login<'a>(
    fields: &[&'a str],
    digits: u8,
) -> Result<(Option<&'a str>, Option<i64>), String> {
    let (mut last_otp, mut last_time) = (None, None);
    for field in fields {
        if field.bytes().all(|b| b.is_ascii_digit()) && last_otp.is_none() && last_time.is_none() {
            if field.len() != usize::from(digits) {
                return Err(format!("the last code is not {digits} digits"));
            }
            last_otp = Some(*field);
        } else if last_time.is_none() {
            last_time = Some(parse_time(field)?);
        } else {
            return Err("unexpected field after the last login time".into());
        }
    }
    Ok((last_otp, last_time))
}

/// `HOTP`, `HOTP/E`, `HOTP/T30`, `HOTP/T60/8`, `HOTP/E/8`, `HOTP/8`.
fn parse_type(field: &str) -> Result<(Kind, u32, u8), String> {
    let unknown = || {
        format!(
            "unknown token type {field:?} (expected HOTP, HOTP/E or HOTP/T30, optionally /6, /7 or /8)"
        )
    };
    let mut parts = field.split('/');
    if parts.next() != Some("HOTP") {
        return Err(unknown());
    }
    let (mut kind, mut period, mut digits) = (Kind::Hotp, 30, 6);
    let mut digits_seen = false;
    for (i, part) in parts.enumerate() {
        if i >= 2 || digits_seen {
            return Err(unknown());
        }
        if i == 0 && part == "E" {
            continue;
        }
        if let Some(seconds) = part.strip_prefix('T').filter(|_| i == 0) {
            period = seconds.parse().map_err(|_| unknown())?;
            if !PERIOD_RANGE.contains(&period) {
                return Err(format!(
                    "time step {period} s is outside what twofold supports ({} to {} seconds)",
                    PERIOD_RANGE.start(),
                    PERIOD_RANGE.end()
                ));
            }
            kind = Kind::Totp;
            continue;
        }
        digits = part.parse().map_err(|_| unknown())?;
        if !DIGITS_RANGE.contains(&digits) {
            return Err(format!("{digits} digits (twofold supports 6, 7 or 8)"));
        }
        digits_seen = true;
    }
    Ok((kind, period, digits))
}

fn parse_hex_secret(field: &str) -> Result<Secret, String> {
    Secret::from_hex(field).map_err(|e| e.to_string())
}

/// `2026-11-22T23:07:47L` (pam_oath: local time) or with `Z` (UTC) → Unix time read as UTC.
fn parse_time(field: &str) -> Result<i64, String> {
    let bad = || "the last login time is not YYYY-MM-DDTHH:MM:SS".to_string();
    let body = field
        .strip_suffix('L')
        .or_else(|| field.strip_suffix('Z'))
        .unwrap_or(field);
    let b = body.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |range: std::ops::Range<usize>| -> Result<i64, String> {
        body[range].parse::<i64>().map_err(|_| bad())
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return Err(bad());
    }
    Ok(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The step of the last code pam_oath accepted: where `last_otp` matches near the login time
/// (latest match, never beyond now + the widest window), else the latest step the login time
/// can stand for. Every code up to it is refused here.
fn last_used_step(
    token: &Imported,
    last_otp: Option<&str>,
    last_time: Option<i64>,
    now: i64,
) -> Option<u64> {
    let time = last_time?;
    let period = i64::from(token.period);
    let now_step = now.max(0) / period;
    let latest = ((time + LOCAL_TIME_SPAN_SECONDS) / period).min(now_step + i64::from(MAX_WINDOW));
    let earliest = (time - LOCAL_TIME_SPAN_SECONDS) / period - i64::from(MAX_WINDOW);
    if let Some(code) = last_otp {
        let matched = (earliest.max(0)..=latest.max(0)).rev().find(|step| {
            let step = *step as u64;
            otp::hotp(&token.secret, token.algorithm, token.digits, step).as_str() == code
        });
        if let Some(step) = matched {
            return Some(step as u64);
        }
    }
    u64::try_from(latest.min(now_step)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "3132333435363738393031323334353637383930";
    const NOW: i64 = 1_795_388_867; // 2026-11-22T23:07:47Z

    fn one(text: &str) -> Result<Imported, ImportError> {
        let mut entries = parse(text.as_bytes(), NOW).unwrap();
        assert_eq!(entries.len(), 1);
        entries.remove(0).token
    }

    #[test]
    fn types_digits_and_periods() {
        let t = one(&format!("HOTP/T30/8 carol - {KEY}")).unwrap();
        assert_eq!(
            (t.kind, t.period, t.digits, t.last_step),
            (Kind::Totp, 30, 8, None)
        );
        let t = one(&format!("HOTP/T60 carol - {KEY}")).unwrap();
        assert_eq!((t.kind, t.period, t.digits), (Kind::Totp, 60, 6));
        let t = one(&format!("HOTP/E/7 carol - {KEY} 9")).unwrap();
        assert_eq!((t.kind, t.counter, t.digits), (Kind::Hotp, Some(9), 7));
        assert_eq!(parse_time("2026-11-22T23:07:47L"), Ok(NOW));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
    }

    #[test]
    fn a_used_counter_or_code_is_carried_over_as_used() {
        // As pam_oath wrote it after a login with counter 3 (RFC 4226 code 969429).
        let t = one(&format!(
            "HOTP\troot\t-\t{KEY}\t3\t969429\t2026-11-22T23:07:47L"
        ))
        .unwrap();
        assert_eq!(t.counter, Some(4));
        // Never used: the counter's own code is still good.
        let t = one(&format!("HOTP root - {KEY} 0")).unwrap();
        assert_eq!(t.counter, Some(0));
        // TOTP: the step whose code was used.
        let secret = Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
        let step = (NOW / 30) as u64 - 1;
        let code = otp::hotp(&secret, Algorithm::SHA1, 6, step);
        let line = format!(
            "HOTP/T30 bob - {KEY} 0 {} 2026-11-22T23:07:47L",
            code.as_str()
        );
        assert_eq!(one(&line).unwrap().last_step, Some(step));
        // Time only: conservatively up to now.
        let line = format!("HOTP/T30 bob - {KEY} 0 2026-11-22T23:07:47L");
        assert_eq!(one(&line).unwrap().last_step, Some((NOW / 30) as u64));
    }

    #[test]
    fn bad_lines_are_reported_by_number_and_the_rest_kept() {
        let text = format!(
            "# comment\n\nHOTP alice - {KEY}\nHOTP bob - 31323Z\nTOTP carol - {KEY}\nHOTP/T30 dave - {KEY} x\nHOTP erin - abc\nHOTP/T30/9 frank - {KEY}\nHOTP gina\nHOTP alice - {KEY} 5\nHOTP/T30 hank - {KEY} 0 12 2026\n"
        );
        let entries = parse(text.as_bytes(), NOW).unwrap();
        let result: Vec<(usize, &str, String)> = entries
            .iter()
            .map(|e| {
                (
                    e.line,
                    e.user.as_str(),
                    e.token
                        .as_ref()
                        .map(|_| "ok".to_string())
                        .unwrap_or_else(|e| e.to_string()),
                )
            })
            .collect();
        let expect = [
            (3, "alice", "line 3: alice is also on line 10"),
            (4, "bob", "line 4: the secret is not hexadecimal"),
            (5, "carol", "line 5: unknown token type"),
            (6, "dave", "line 6: the counter is not a number"),
            (7, "erin", "line 7: the secret is not hexadecimal"),
            (8, "frank", "line 8: 9 digits"),
            (9, "gina", "line 9: expected: type user pin secret"),
            (10, "alice", "line 10: alice is also on line 3"),
            (11, "hank", "line 11: the last code is not 6 digits"),
        ];
        assert_eq!(result.len(), expect.len(), "{result:?}");
        for ((line, user, got), (want_line, want_user, want)) in result.iter().zip(expect) {
            assert_eq!((*line, *user), (want_line, want_user));
            assert!(got.starts_with(want), "{got} / {want}");
            assert!(!got.contains("3132"), "secret echoed: {got}");
        }
        assert!(parse(&[0xff], NOW).is_err());
    }
}
