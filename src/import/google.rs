//! google-authenticator-libpam's per-user file (`~/.google_authenticator`), as its
//! `google-authenticator` program writes it:
//!
//! ```text
//! BASE32SECRET              line 1: the shared secret
//! " RATE_LIMIT 3 30 …       option lines start with a double quote
//! " WINDOW_SIZE 17
//! " DISALLOW_REUSE 5666…    time steps already used
//! " TOTP_AUTH               time based; or " HOTP_COUNTER n (next counter) for counter based
//! " STEP_SIZE 30
//! " TIME_SKEW -2            learned clock offset, in steps
//! 12345678                  scratch codes: 8 digits, first digit 1-9
//! ```
//!
//! What a key means follows pam_google_authenticator.c: HOTP when HOTP_COUNTER > 0, the TOTP
//! window runs from -(w-1)/2 to w/2 steps, the HOTP window is w counters from HOTP_COUNTER.
#![forbid(unsafe_code)]

use zeroize::Zeroizing;

use super::{ImportError, Imported};
use crate::backup::{CODE_DIGITS, MAX_CODES};
use crate::otp::{Algorithm, PERIOD_RANGE, Secret};
use crate::record::{Kind, MAX_DRIFT_STEPS};

/// google-authenticator-libpam's own bounds for WINDOW_SIZE.
const WINDOW_SIZE_RANGE: std::ops::RangeInclusive<u32> = 1..=100;

#[derive(Default)]
struct Options {
    totp_auth: bool,
    hotp_counter: Option<u64>,
    window_size: Option<u32>,
    step_size: Option<u32>,
    time_skew: Option<i64>,
    disallow_reuse: Option<Vec<u64>>,
}

/// Parses one file's bytes. Problems that make the token unusable are errors; lines that can
/// be left out (an unknown option, a broken scratch code) become notes and the rest is kept.
pub fn parse(bytes: &[u8]) -> Result<Imported, ImportError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ImportError::file("the file is not text (not UTF-8)"))?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().unwrap_or_default().trim();
    if first.is_empty() {
        return Err(ImportError::at(1, "no secret (the first line is empty)"));
    }
    let secret = Secret::from_base32(first).map_err(|e| ImportError::at(1, e.to_string()))?;

    let mut options = Options::default();
    let mut seen_options: Vec<String> = Vec::new();
    let mut scratch_codes: Vec<Zeroizing<String>> = Vec::new();
    let mut notes = Vec::new();
    for (index, line) in lines.enumerate() {
        let number = index + 2;
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(option) = trimmed.strip_prefix('"') {
            let mut words = option.split_whitespace();
            let name = words.next().unwrap_or_default();
            let values: Vec<&str> = words.collect();
            if seen_options.iter().any(|n| n == name) {
                // pam_google_authenticator reads the first occurrence only.
                notes.push(format!(
                    "line {number}: option {name} repeated; the first one is used"
                ));
                continue;
            }
            seen_options.push(name.to_owned());
            read_option(name, &values, number, &mut options, &mut notes)?;
            continue;
        }
        if trimmed.len() == CODE_DIGITS
            && trimmed.bytes().all(|b| b.is_ascii_digit())
            && !trimmed.starts_with('0')
        {
            if scratch_codes.iter().any(|c| c.as_str() == trimmed) {
                notes.push(format!("line {number}: scratch code repeated; kept once"));
            } else if scratch_codes.len() == MAX_CODES {
                notes.push(format!(
                    "line {number}: more than {MAX_CODES} scratch codes; the rest are left out"
                ));
            } else {
                scratch_codes.push(Zeroizing::new(trimmed.to_owned()));
            }
            continue;
        }
        notes.push(format!(
            "line {number}: neither an option nor a scratch code (8 digits); skipped"
        ));
    }
    into_token(secret, options, scratch_codes, notes)
}

fn number<T: std::str::FromStr>(
    name: &str,
    values: &[&str],
    line: usize,
) -> Result<T, ImportError> {
    match values {
        [value] => value
            .parse()
            .map_err(|_| ImportError::at(line, format!("{name} value is not a valid number"))),
        _ => Err(ImportError::at(line, format!("{name} needs one number"))),
    }
}

fn step_size(values: &[&str], line: usize) -> Result<u32, ImportError> {
    let step: u32 = number("STEP_SIZE", values, line)?;
    if !PERIOD_RANGE.contains(&step) {
        return Err(ImportError::at(
            line,
            format!(
                "STEP_SIZE {step} is outside what twofold supports ({} to {} seconds)",
                PERIOD_RANGE.start(),
                PERIOD_RANGE.end()
            ),
        ));
    }
    Ok(step)
}

/// DISALLOW_REUSE: the time steps already used.
fn used_steps(values: &[&str], line: usize) -> Result<Vec<u64>, ImportError> {
    values
        .iter()
        .map(|v| v.parse::<u64>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ImportError::at(line, "DISALLOW_REUSE lists something other than time steps"))
}

/// RATE_LIMIT is checked, then noted as not carried over.
fn rate_limit_note(values: &[&str], line: usize) -> Result<String, ImportError> {
    let numbers = values
        .iter()
        .map(|v| v.parse::<u64>())
        .collect::<Result<Vec<_>, _>>()
        .ok()
        .filter(|n| n.len() >= 2 && n[0] > 0 && n[1] > 0)
        .ok_or_else(|| ImportError::at(line, "RATE_LIMIT needs a count and seconds"))?;
    Ok(format!(
        "line {line}: RATE_LIMIT {} per {} s not carried over; the policy's [lockout] applies",
        numbers[0], numbers[1]
    ))
}

fn read_option(
    name: &str,
    values: &[&str],
    line: usize,
    options: &mut Options,
    notes: &mut Vec<String>,
) -> Result<(), ImportError> {
    match name {
        "TOTP_AUTH" => options.totp_auth = true,
        "HOTP_COUNTER" => {
            let counter: u64 = number(name, values, line)?;
            if counter > crate::record::MAX_COUNTER {
                return Err(ImportError::at(
                    line,
                    format!("HOTP_COUNTER beyond {}", crate::record::MAX_COUNTER),
                ));
            }
            options.hotp_counter = Some(counter);
        }
        "WINDOW_SIZE" => {
            let size: u32 = number(name, values, line)?;
            if !WINDOW_SIZE_RANGE.contains(&size) {
                return Err(ImportError::at(line, "WINDOW_SIZE must be 1 to 100"));
            }
            options.window_size = Some(size);
        }
        "STEP_SIZE" => options.step_size = Some(step_size(values, line)?),
        "TIME_SKEW" => {
            let skew: i64 = number(name, values, line)?;
            if skew.unsigned_abs() > MAX_DRIFT_STEPS.unsigned_abs() {
                return Err(ImportError::at(
                    line,
                    format!("TIME_SKEW beyond {MAX_DRIFT_STEPS} steps either way"),
                ));
            }
            options.time_skew = Some(skew);
        }
        "DISALLOW_REUSE" => options.disallow_reuse = Some(used_steps(values, line)?),
        "RATE_LIMIT" => notes.push(rate_limit_note(values, line)?),
        "RESETTING_TIME_SKEW" => notes.push(format!(
            "line {line}: a clock-drift adjustment in progress is not carried over"
        )),
        _ => notes.push(format!(
            "line {line}: unknown option {name:?} ignored (as google-authenticator-libpam does)"
        )),
    }
    Ok(())
}

fn into_token(
    secret: Secret,
    options: Options,
    scratch_codes: Vec<Zeroizing<String>>,
    mut notes: Vec<String>,
) -> Result<Imported, ImportError> {
    let period = options.step_size.unwrap_or(30);
    // pam_google_authenticator: counter based when HOTP_COUNTER > 0, whatever else is set.
    let hotp_counter = options.hotp_counter.filter(|c| *c > 0);
    let kind = match (hotp_counter, options.totp_auth) {
        (Some(_), totp) => {
            if totp {
                notes.push("TOTP_AUTH ignored: HOTP_COUNTER makes the token counter based (as in google-authenticator-libpam)".into());
            }
            Kind::Hotp
        }
        (None, true) => Kind::Totp,
        (None, false) => {
            return Err(ImportError::file(
                "neither TOTP_AUTH nor HOTP_COUNTER: google-authenticator-libpam accepts no code from this file",
            ));
        }
    };
    let mut token = Imported {
        secret,
        kind,
        algorithm: Algorithm::SHA1,
        digits: 6,
        period,
        counter: hotp_counter,
        last_step: None,
        window: None,
        drift_steps: 0,
        scratch_codes,
        notes: Vec::new(),
    };
    match kind {
        Kind::Totp => {
            // Steps -(w-1)/2 ..= w/2 there; ±w/2 here covers them all.
            token.window = options.window_size.map(|w| (w / 2) as u8);
            token.drift_steps = options.time_skew.unwrap_or(0);
            match options.disallow_reuse {
                Some(used) => token.last_step = used.into_iter().max(),
                None => notes.push(
                    "codes could be used twice there (no DISALLOW_REUSE); twofold never accepts a code twice".into(),
                ),
            }
        }
        Kind::Hotp => {
            // Counters c ..= c+w-1 there.
            token.window = options.window_size.map(|w| (w - 1) as u8);
            if options.time_skew.is_some_and(|s| s != 0) {
                notes.push("TIME_SKEW ignored: the token is counter based".into());
            }
        }
    }
    token.notes = notes;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOTP_FILE: &str = "XBK7XTH4SH42FNROQYKP4CYBMQ\n\" RATE_LIMIT 3 30\n\" WINDOW_SIZE 3\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n81155789\n62819310\n79588384\n";

    #[test]
    fn a_file_from_the_real_program_maps_to_a_totp_token() {
        let token = parse(TOTP_FILE.as_bytes()).unwrap();
        assert_eq!(token.kind, Kind::Totp);
        assert_eq!((token.digits, token.period, token.window), (6, 30, Some(1)));
        assert_eq!(token.secret.bits(), 128);
        assert_eq!(token.scratch_codes.len(), 3);
        assert_eq!(token.last_step, None);
        assert!(
            token.notes.iter().any(|n| n.contains("RATE_LIMIT")),
            "{:?}",
            token.notes
        );
    }

    #[test]
    fn hotp_skew_reuse_and_step_size_carry_over() {
        let hotp = "ZOAEGHTWSKGDLGZ3G3EY622ZHE\n\" WINDOW_SIZE 5\n\" HOTP_COUNTER 7\n74877772\n";
        let token = parse(hotp.as_bytes()).unwrap();
        assert_eq!(
            (token.kind, token.counter, token.window),
            (Kind::Hotp, Some(7), Some(4))
        );

        let totp = "ZOAEGHTWSKGDLGZ3G3EY622ZHE\n\" STEP_SIZE 60\n\" TIME_SKEW -3\n\" DISALLOW_REUSE 100 105 103\n\" TOTP_AUTH\n\" WINDOW_SIZE 17\n";
        let token = parse(totp.as_bytes()).unwrap();
        assert_eq!(
            (
                token.period,
                token.drift_steps,
                token.last_step,
                token.window
            ),
            (60, -3, Some(105), Some(8))
        );
    }

    #[test]
    fn broken_files_say_which_line_and_never_echo_the_secret() {
        let cases: [(&str, &str); 8] = [
            ("", "line 1"),
            (
                "NOT!BASE32\n\" TOTP_AUTH\n",
                "line 1: the secret is not valid base32",
            ),
            ("XBK7XTH4\n\" TOTP_AUTH\n", "line 1"),
            (
                "XBK7XTH4SH42FNROQYKP4CYBMQ\n\" WINDOW_SIZE x\n\" TOTP_AUTH\n",
                "line 2: WINDOW_SIZE",
            ),
            (
                "XBK7XTH4SH42FNROQYKP4CYBMQ\n\" TOTP_AUTH\n\" DISALLOW_REUSE 5 x\n",
                "line 3",
            ),
            (
                "XBK7XTH4SH42FNROQYKP4CYBMQ\n12345678\n",
                "neither TOTP_AUTH nor HOTP_COUNTER",
            ),
            (
                "XBK7XTH4SH42FNROQYKP4CYBMQ\n\" TOTP_AUTH\n\" TIME_SKEW 999999\n",
                "line 3: TIME_SKEW",
            ),
            (
                // i64::MIN: `abs` would wrap to a negative number and pass the bound.
                "XBK7XTH4SH42FNROQYKP4CYBMQ\n\" TOTP_AUTH\n\" TIME_SKEW -9223372036854775808\n",
                "line 3: TIME_SKEW",
            ),
        ];
        for (text, want) in cases {
            let err = parse(text.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(!err.contains("XBK7"), "{err}");
        }
        assert!(parse(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn skippable_lines_become_notes_and_the_rest_is_kept() {
        // Truncated last scratch code, an unknown option, a duplicate code.
        let text =
            "XBK7XTH4SH42FNROQYKP4CYBMQ\n\" TOTP_AUTH\n\" FANCY_NEW 1\n81155789\n81155789\n8115";
        let token = parse(text.as_bytes()).unwrap();
        assert_eq!(token.scratch_codes.len(), 1);
        let notes = token.notes.join("\n");
        assert!(
            notes.contains("line 3: unknown option \"FANCY_NEW\""),
            "{notes}"
        );
        assert!(notes.contains("line 5: scratch code repeated"), "{notes}");
        assert!(
            notes.contains("line 6: neither an option nor a scratch code"),
            "{notes}"
        );
    }
}
