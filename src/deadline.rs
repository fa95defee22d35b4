//! `[policy] enroll_deadline`: the day from which a required user must have 2FA. Until then
//! a required user without it may skip the enrollment at login (see `login::grace`).
//!
//! A day starts at 00:00 UTC: the module has no reliable local time zone (it runs inside
//! sshd, sudo, cron… each with its own TZ), and one rule for every host of a fleet is easier
//! to explain than one per host.
#![forbid(unsafe_code)]

use std::fmt;

use serde::Deserialize;

const DAY: i64 = 86_400;

/// A calendar day, `YYYY-MM-DD`, and the Unix time it starts (00:00 UTC).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Deadline {
    day: String,
    starts: i64,
}

impl Deadline {
    /// Parses `YYYY-MM-DD` (a real day of a year from 1970 to 9999).
    pub fn parse(text: &str) -> Result<Self, String> {
        let shaped = text.len() == 10
            && text.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                _ => b.is_ascii_digit(),
            });
        let refused =
            || format!("{text:?} is not a date: write it as YYYY-MM-DD, e.g. \"2030-01-31\"");
        if !shaped {
            return Err(refused());
        }
        let time = humantime::parse_rfc3339(&format!("{text}T00:00:00Z")).map_err(|_| refused())?;
        let starts = time
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| refused())?
            .as_secs();
        Ok(Self {
            day: text.to_owned(),
            starts: i64::try_from(starts).map_err(|_| refused())?,
        })
    }

    /// The day as written, `YYYY-MM-DD`.
    pub fn day(&self) -> &str {
        &self.day
    }

    /// Days left before the deadline at `now` (a part of a day counts as one), or `None` from
    /// 00:00 UTC of the deadline on: then enrollment is mandatory.
    pub fn days_left(&self, now: i64) -> Option<u32> {
        let seconds = self.starts.checked_sub(now).filter(|s| *s > 0)?;
        u32::try_from((seconds + DAY - 1) / DAY).ok()
    }
}

impl TryFrom<String> for Deadline {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text)
    }
}

impl fmt::Display for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.day)
    }
}

/// "1 day" / "12 days".
pub fn days_text(days: u32) -> String {
    format!("{days} day{}", if days == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_strictly() {
        let d = Deadline::parse("2030-01-31").unwrap();
        assert_eq!((d.day(), d.starts), ("2030-01-31", 1_896_048_000));
        assert!(Deadline::parse("2024-02-29").is_ok(), "leap day");
        for bad in [
            "2023-02-29",
            "2030-13-01",
            "2030-1-31",
            "31.01.2030",
            "2030-01-31T00:00:00Z",
            "",
            "1969-12-31",
            "２０３０-01-31",
        ] {
            let err = Deadline::parse(bad).unwrap_err();
            assert!(err.contains("YYYY-MM-DD"), "{bad}: {err}");
        }
    }

    #[test]
    fn days_left_count_started_days_and_end_at_midnight_utc() {
        let d = Deadline::parse("2030-01-31").unwrap();
        assert_eq!(d.days_left(d.starts - 1), Some(1));
        assert_eq!(d.days_left(d.starts - DAY), Some(1));
        assert_eq!(d.days_left(d.starts - DAY - 1), Some(2));
        assert_eq!(d.days_left(d.starts), None, "the day itself is mandatory");
        assert_eq!(d.days_left(d.starts + 5 * DAY), None);
        assert_eq!(d.days_left(i64::MIN), None);
        assert_eq!(days_text(1), "1 day");
        assert_eq!(days_text(3), "3 days");
    }
}
