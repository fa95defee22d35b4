//! Time as the login sees it: a trait, so tests fix the clock (and set it before 1970), and
//! the one way twofold writes a Unix time for people.
#![forbid(unsafe_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch; negative if the system clock is set before 1970.
pub trait Clock {
    fn now(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
        }
    }
}

/// A clock that always says the same time: the one fake clock of the unit tests and of
/// tests/ (which re-export it from tests/common/fake.rs).
#[derive(Clone, Copy, Debug)]
pub struct FixedClock(pub i64);

impl Clock for FixedClock {
    fn now(&self) -> i64 {
        self.0
    }
}

/// Unix time as RFC 3339 (UTC), for log lines and messages. Never panics: times come from
/// records a user may write (the home store), and humantime cannot write years after 9999.
pub fn format_time(secs: i64) -> String {
    /// 9999-12-31T23:59:59Z.
    const LAST_WRITABLE: u64 = 253_402_300_799;
    match u64::try_from(secs) {
        Ok(s) if s <= LAST_WRITABLE => {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(s)).to_string()
        }
        Ok(_) => format!("{secs} (after 9999)"),
        Err(_) => format!("{secs} (before 1970)"),
    }
}

#[cfg(test)]
mod tests {
    use super::format_time;

    #[test]
    fn any_time_can_be_written() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert!(format_time(i64::MAX).contains("after 9999"));
        assert!(format_time(i64::MIN).contains("before 1970"));
        assert_eq!(format_time(253_402_300_799), "9999-12-31T23:59:59Z");
    }
}
