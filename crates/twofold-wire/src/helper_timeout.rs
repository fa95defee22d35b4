//! How long the module waits for its login helper (`helper_timeout=SECONDS` on the PAM line),
//! read by the module and checked by the helper's own argument parser and `twofold check`, so
//! that all three take the same values.
//!
//! The wait is counted from each frame the module sends (the request, an answer) to the next
//! one the helper sends; the time a person takes to type at a prompt is the application's, not
//! the helper's, and never counts. A helper that takes longer (a directory that hangs, a disk
//! that stops answering) is killed and the login denied, so `sudo` or `login` never waits for
//! ever on it.

use alloc::string::String;

use crate::text;

/// Without `helper_timeout=`: long enough for NSS or the fleet agent to give up first.
pub const DEFAULT_SECONDS: u32 = 60;
/// The most `helper_timeout=` takes: an hour.
pub const MAX_SECONDS: u32 = 3600;

/// The wait `args` ask for, in seconds; why it is refused, in words for the syslog line.
pub fn helper_timeout<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<u32, String> {
    // A bare `helper_timeout` is refused here, not ignored: the helper refuses it too.
    let mut given = args
        .into_iter()
        .filter(|a| a.split('=').next() == Some("helper_timeout"))
        .map(|a| a.strip_prefix("helper_timeout=").unwrap_or(""));
    let seconds = match given.next() {
        None => return Ok(DEFAULT_SECONDS),
        Some(value) => parse_seconds(value)?,
    };
    match given.next() {
        None => Ok(seconds),
        Some(_) => Err("helper_timeout= is given twice".into()),
    }
}

/// One `helper_timeout=` value: whole seconds, 1 to [`MAX_SECONDS`].
pub fn parse_seconds(value: &str) -> Result<u32, String> {
    let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    match value.parse::<u32>() {
        Ok(n) if digits && (1..=MAX_SECONDS).contains(&n) => Ok(n),
        // text!, not format!: see crate::text.
        _ => Err(text!(
            "helper_timeout={value} is not a number of seconds from 1 to {MAX_SECONDS}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn without_the_argument_the_default_holds() {
        assert_eq!(helper_timeout(["debug", "nullok"]), Ok(DEFAULT_SECONDS));
    }

    #[test]
    fn whole_seconds_in_range_are_taken() {
        assert_eq!(helper_timeout(["helper_timeout=1"]), Ok(1));
        assert_eq!(helper_timeout(["debug", "helper_timeout=3600"]), Ok(3600));
    }

    #[test]
    fn anything_else_is_refused_with_the_range() {
        for bad in [
            "0",
            "3601",
            "",
            "-5",
            "+5",
            "1.5",
            "5s",
            " 5",
            "99999999999",
        ] {
            let arg = format!("helper_timeout={bad}");
            let err = helper_timeout([arg.as_str()]).unwrap_err();
            assert!(err.contains("from 1 to 3600"), "{bad}: {err}");
        }
        let bare = helper_timeout(["helper_timeout"]).unwrap_err();
        assert!(bare.contains("from 1 to 3600"), "{bare}");
        assert_eq!(helper_timeout(["helper_timeouts=5"]), Ok(DEFAULT_SECONDS));
        let twice = helper_timeout(["helper_timeout=5", "helper_timeout=6"]);
        assert_eq!(twice, Err("helper_timeout= is given twice".into()));
    }
}
