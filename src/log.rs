//! syslog, facility authpriv: what happened, to whom, from where. Never a secret or a code:
//! callers pass only names, outcomes and error descriptions (which never quote secrets).
#![forbid(unsafe_code)]

use std::io::Write;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::time::{SystemTime, UNIX_EPOCH};

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

/// Sends one line to syslog under `ident` (`pam_twofold` for the module, `twofold` for the
/// CLI). Logging must never change an authentication result, so failures are swallowed.
pub fn send(ident: &str, level: Level, line: &str) {
    let _ = try_send(ident, level, line);
}

/// [`send`], saying why the line could not be sent (no syslog socket, logger not running):
/// the CLI warns its user, whose change would otherwise leave no trace.
///
/// Written here rather than with a syslog crate: this is the one thing the PAM module itself
/// logs with, and it stays small (a date formatting library was most of the crate's size).
pub fn try_send(ident: &str, level: Level, line: &str) -> Result<(), String> {
    let message = format!(
        "<{}>{} {ident}[{}]: {}",
        FACILITY_AUTHPRIV | level.severity(),
        timestamp(SystemTime::now()),
        std::process::id(),
        sanitize(line)
    );
    let mut last = String::from("no syslog socket (/dev/log) exists");
    for path in SOCKETS {
        let datagram = UnixDatagram::unbound().and_then(|s| s.send_to(message.as_bytes(), path));
        match datagram {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            // A stream socket (EPROTOTYPE): frames end with NUL, as rsyslog reads them.
            Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE) => {
                let mut framed = message.clone().into_bytes();
                framed.push(0);
                let sent = UnixStream::connect(path).and_then(|mut s| s.write_all(&framed));
                return sent.map_err(|e| format!("{path}: {e}"));
            }
            Err(e) => last = format!("{path}: {e}"),
        }
    }
    Err(last)
}

/// RFC 3164's `Mmm dd hh:mm:ss`, in UTC (as the syslog crate wrote it before: local time is
/// not safely known in a multi-threaded host process).
fn timestamp(now: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, of_day) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    format!(
        "{} {day:02} {:02}:{:02}:{:02}",
        MONTHS[(month - 1) as usize],
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// `key="value"` pairs for the end of a log line. Every value is quoted and escaped as Rust
/// escapes a string (`"` and `\` and control characters), so a value such as an rhost of
/// `10.1.1.1 user=root` stays one field and cannot pose as another.
pub fn fields(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{key}={value:?}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One line about one login: `TEXT; user="…" service="…" rhost="…"`. The text may carry
/// values from records or PAM items (an alias, a record's account); it is escaped so that it
/// never holds an unescaped `"`, and so cannot pose as one of the quoted fields after it.
pub fn event(ident: &str, level: Level, text: &str, fields: &str) {
    send(ident, level, &format!("{}; {fields}", escape_text(text)));
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

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| format!("uid {uid}"), |u| u.name)
}

/// Who is running an admin command, for the audit line: the user, the kernel's login uid
/// (who logged in, kept across sudo and su) and SUDO_USER when they differ.
pub fn actor() -> String {
    let name = user_name(nix::unistd::getuid().as_raw());
    let mut actor = name.clone();
    let login = std::fs::read_to_string("/proc/self/loginuid")
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .filter(|uid| *uid != u32::MAX)
        .map(user_name);
    if let Some(login) = login.filter(|l| *l != name) {
        actor.push_str(&format!(", logged in as {login}"));
    }
    if let Ok(sudo_user) = std::env::var("SUDO_USER") {
        if !sudo_user.is_empty() && sudo_user != name {
            actor.push_str(&format!(", via sudo from {sudo_user}"));
        }
    }
    actor
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_rfc_3164_in_utc() {
        let at =
            |secs| super::timestamp(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
        assert_eq!(at(0), "Jan 01 00:00:00");
        assert_eq!(at(1_796_295_466), "Dec 03 10:57:46");
        assert_eq!(at(1_709_251_199), "Feb 29 23:59:59");
        assert_eq!(at(951_872_523), "Mar 01 01:02:03");
    }

    #[test]
    fn values_are_quoted_so_they_cannot_forge_fields() {
        assert_eq!(
            super::fields(&[("user", "alice"), ("rhost", "10.1.1.1 user=root\"x")]),
            r#"user="alice" rhost="10.1.1.1 user=root\"x""#
        );
    }

    #[test]
    fn event_text_cannot_pose_as_a_field() {
        let text = r#"x'; code accepted; user="root" rhost="203.0.113.9"; '"#;
        let line = format!(
            "{}; {}",
            super::escape_text(text),
            super::fields(&[("rhost", "-")])
        );
        assert_eq!(line.matches("rhost=\"").count(), 1, "{line}");
        assert!(!line.contains(r#"user="root""#), "{line}");
        assert_eq!(super::escape_text("a\\b\nc"), r"a\\b\nc");
    }

    #[test]
    fn control_characters_cannot_forge_lines() {
        assert_eq!(super::sanitize("user=a\nb\x1b[2J"), "user=a?b?[2J");
    }
}
