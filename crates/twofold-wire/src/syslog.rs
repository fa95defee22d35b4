//! One syslog line (RFC 3164, facility authpriv), as every twofold program writes it: the
//! module through its own socket calls, the rest through src/log.rs. Only the text is made
//! here; never a secret or a code goes in (callers pass names, outcomes and error words).

use alloc::string::String;
use alloc::vec::Vec;

/// Where the system logger listens, in the order glibc's and the syslog crate's clients try.
pub const SOCKETS: [&str; 3] = ["/dev/log", "/var/run/syslog", "/var/run/log"];
/// LOG_AUTHPRIV: readable by root only on Debian (/var/log/auth.log).
const FACILITY_AUTHPRIV: u8 = 10 << 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
}

impl Level {
    fn severity(self) -> u8 {
        match self {
            Self::Error => 3,
            Self::Warning => 4,
            Self::Notice => 5,
            Self::Info => 6,
            Self::Debug => 7,
        }
    }
}

/// `<PRI>Mmm dd hh:mm:ss IDENT[PID]: LINE`, the line's control characters replaced (a user or
/// host name could otherwise forge extra lines). `epoch_secs`: now, in seconds since 1970.
pub fn message(ident: &str, level: Level, pid: u32, epoch_secs: u64, line: &str) -> String {
    crate::text!(
        "<{}>{} {ident}[{pid}]: {}",
        FACILITY_AUTHPRIV | level.severity(),
        timestamp(epoch_secs),
        sanitize(line)
    )
}

/// RFC 3164's `Mmm dd hh:mm:ss`, in UTC (local time is not safely known in a multi-threaded
/// host process).
pub fn timestamp(secs: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, of_day) = (secs / 86_400, secs % 86_400);
    let (month, day) = month_and_day(days).unwrap_or((1, 1));
    let name = usize::try_from(month.saturating_sub(1))
        .ok()
        .and_then(|m| MONTHS.get(m))
        .unwrap_or(&"Jan");
    crate::text!(
        "{name} {day:02} {:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// Month (1-12) and day of month of `days` since 1970-01-01: Howard Hinnant's
/// civil_from_days, checked (though nothing overflows for any u64 of seconds / 86 400).
fn month_and_day(days: u64) -> Option<(u64, u64)> {
    let day_of_era = days.checked_add(719_468)? % 146_097;
    let year_of_era = day_of_era
        .checked_sub(day_of_era / 1460)?
        .checked_add(day_of_era / 36_524)?
        .checked_sub(day_of_era / 146_096)?
        / 365;
    let year_start = year_of_era
        .checked_mul(365)?
        .checked_add(year_of_era / 4)?
        .checked_sub(year_of_era / 100)?;
    let day_of_year = day_of_era.checked_sub(year_start)?;
    let mp = day_of_year.checked_mul(5)?.checked_add(2)? / 153;
    let month_start = mp.checked_mul(153)?.checked_add(2)? / 5;
    let day = day_of_year.checked_sub(month_start)?.checked_add(1)?;
    let month = if mp < 10 {
        mp.checked_add(3)?
    } else {
        mp.checked_sub(9)?
    };
    Some((month, day))
}

/// A field's value is cut to this many bytes as written (escaped), the text of an event to
/// [`MAX_TEXT`]: a user name of several KiB (anyone can send one to sshd) would otherwise push
/// the line past the logger's limit (rsyslog: 8 KiB) and the fields after it, the remote host
/// among them, out of the log.
pub const MAX_VALUE: usize = 256;
pub const MAX_TEXT: usize = 1024;

/// `key="value"` pairs for the end of a log line. Every value is quoted and escaped as Rust
/// escapes a string (`"` and `\` and control characters), so a value such as an rhost of
/// `10.1.1.1 user=root` stays one field and cannot pose as another. A value that escapes to
/// more than [`MAX_VALUE`] bytes is cut, and a field of its own after it, outside any quotes
/// where no value can forge it, gives its real length: `user="aaa…" user_bytes="5000"`.
/// (Quoted as every field is: the unquoted event text, whose `"` are escaped, cannot forge
/// a quoted field either.)
pub fn fields(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| field(key, value))
        .collect::<Vec<_>>()
        .join(" ")
}

fn field(key: &str, value: &str) -> String {
    // No escape is shorter than its character: a start of MAX_VALUE bytes escapes to enough.
    let start = start_of(value, MAX_VALUE);
    let escaped = crate::text!("{start:?}");
    let inner = escaped
        .strip_prefix('"')
        .and_then(|e| e.strip_suffix('"'))
        .unwrap_or_default();
    if start.len() == value.len() && inner.len() <= MAX_VALUE {
        return crate::text!("{key}=\"{inner}\"");
    }
    let shown = whole_escapes(inner, MAX_VALUE);
    crate::text!("{key}=\"{shown}…\" {key}_bytes=\"{}\"", value.len())
}

/// One line about one login: `TEXT; user="…" service="…" rhost="…"`. The text may carry
/// values from records or PAM items (an alias, a record's account); it is escaped so that it
/// never holds an unescaped `"`, and so cannot pose as one of the quoted fields after it. A
/// text that escapes to more than [`MAX_TEXT`] bytes is cut (`…[N bytes]`), so the fields
/// always follow.
pub fn event(text: &str, fields: &str) -> String {
    let start = start_of(text, MAX_TEXT);
    let escaped = escape_text(start);
    if start.len() == text.len() && escaped.len() <= MAX_TEXT {
        return crate::text!("{escaped}; {fields}");
    }
    let shown = whole_escapes(&escaped, MAX_TEXT);
    crate::text!("{shown}…[{} bytes]; {fields}", text.len())
}

/// The longest start of `text` of at most `max` bytes that ends on a character.
fn start_of(text: &str, max: usize) -> &str {
    let end = (0..=max.min(text.len()))
        .rev()
        .find(|i| text.is_char_boundary(*i));
    text.get(..end.unwrap_or(0)).unwrap_or_default()
}

/// The longest start of `escaped` within `max` bytes made of whole escapes and characters:
/// an escape is never cut in half, so no backslash is left to pair with what follows it.
fn whole_escapes(escaped: &str, max: usize) -> &str {
    let mut end = 0usize;
    let mut rest = escaped;
    while let Some(token) = first_token(rest) {
        if end.saturating_add(token) > max {
            break;
        }
        end = end.saturating_add(token);
        rest = rest.get(token..).unwrap_or_default();
    }
    escaped.get(..end).unwrap_or_default()
}

/// The length in bytes of the first escape (`\u{…}` or `\` and one character) or character
/// of `escaped`; `None` when it is empty.
fn first_token(escaped: &str) -> Option<usize> {
    let mut chars = escaped.chars();
    let first = chars.next()?;
    if first != '\\' {
        return Some(first.len_utf8());
    }
    match chars.next() {
        Some('u') => escaped.find('}').map(|close| close.saturating_add(1)),
        Some(c) => Some(c.len_utf8().saturating_add(1)),
        None => Some(1),
    }
}

/// `"` and `\` escaped, control characters written as escapes.
fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

/// Control characters (from a user or host name) could forge extra log lines.
fn sanitize(line: &str) -> String {
    line.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc_3164_in_utc() {
        assert_eq!(timestamp(0), "Jan 01 00:00:00");
        assert_eq!(timestamp(1_796_295_466), "Dec 03 10:57:46");
        assert_eq!(timestamp(1_709_251_199), "Feb 29 23:59:59");
        assert_eq!(timestamp(951_872_523), "Mar 01 01:02:03");
        // The far future is still a date of the form (no overflow on the way).
        assert_eq!(timestamp(u64::MAX).len(), "Jan 01 00:00:00".len());
        assert_eq!(
            message("pam_twofold", Level::Error, 42, 0, "a\nb"),
            "<83>Jan 01 00:00:00 pam_twofold[42]: a?b"
        );
    }

    #[test]
    fn values_are_quoted_so_they_cannot_forge_fields() {
        assert_eq!(
            fields(&[("user", "alice"), ("rhost", "10.1.1.1 user=root\"x")]),
            r#"user="alice" rhost="10.1.1.1 user=root\"x""#
        );
    }

    #[test]
    fn event_text_cannot_pose_as_a_field() {
        let text = r#"x'; code accepted; user="root" rhost="203.0.113.9"; '"#;
        let line = event(text, &fields(&[("rhost", "-")]));
        assert_eq!(line.matches("rhost=\"").count(), 1, "{line}");
        assert!(!line.contains(r#"user="root""#), "{line}");
        assert_eq!(escape_text("a\\b\nc"), r"a\\b\nc");
    }

    #[test]
    fn long_values_and_texts_are_cut_so_every_field_stays_in_the_line() {
        let long = "a".repeat(5000);
        let line = event(&long, &fields(&[("user", &long), ("rhost", "203.0.113.9")]));
        assert!(line.len() < 2 * MAX_TEXT, "{} bytes", line.len());
        assert!(
            line.ends_with(r#"a…" user_bytes="5000" rhost="203.0.113.9""#),
            "{line}"
        );
        assert!(line.starts_with(&"a".repeat(MAX_TEXT)), "{line}");
        assert!(line.contains("…[5000 bytes]; user=\""), "{line}");
        // Cut on a character, and escapes whole: a run of backslash-quote pairs (each escaped
        // to four bytes) still closes its quotes.
        let wide = "é".repeat(MAX_VALUE);
        let field = fields(&[("user", &wide)]);
        assert!(field.ends_with("é…\" user_bytes=\"512\""), "{field}");
        let nasty = "\\\"".repeat(MAX_VALUE);
        let field = fields(&[("user", &nasty), ("rhost", "x")]);
        assert!(
            field.ends_with(r#"\\\"…" user_bytes="512" rhost="x""#),
            "{field}"
        );
        // The limit is on the line, after escaping: control characters (six bytes each as
        // `\u{1b}`) are cut between escapes, never inside one.
        let control = "\x1b".repeat(5000);
        let line = event(&control, &fields(&[("user", &control), ("rhost", "h")]));
        assert!(
            line.len() < MAX_TEXT + MAX_VALUE + 64,
            "{} bytes",
            line.len()
        );
        assert!(
            line.contains(r#"\u{1b}…[5000 bytes]; user="\u{1b}"#),
            "{line}"
        );
        assert!(
            line.ends_with(r#"\u{1b}…" user_bytes="5000" rhost="h""#),
            "{line}"
        );
        let few = "\x1b".repeat(MAX_VALUE / 4);
        let field = fields(&[("user", &few)]);
        assert!(field.ends_with(r#"\u{1b}…" user_bytes="64""#), "{field}");
        // A value that only looks cut is told apart: no length field follows it.
        let posing = fields(&[("user", "root…\" user_bytes=\"5000\"")]);
        assert_eq!(posing, r#"user="root…\" user_bytes=\"5000\"""#);
        // At the limit nothing is cut.
        let exact = "b".repeat(MAX_VALUE);
        assert_eq!(
            fields(&[("user", &exact)]),
            alloc::format!("user=\"{exact}\"")
        );
    }

    #[test]
    fn control_characters_cannot_forge_lines() {
        assert_eq!(sanitize("user=a\nb\x1b[2J"), "user=a?b?[2J");
    }
}
