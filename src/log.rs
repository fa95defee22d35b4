//! syslog, facility authpriv: what happened, to whom, from where. Never a secret or a code:
//! callers pass only names, outcomes and error descriptions (which never quote secrets).
#![forbid(unsafe_code)]

use syslog::{Facility, Formatter3164};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
}

/// Sends one line to syslog under `ident` (`pam_twofold` for the module, `twofold` for the
/// CLI). Logging must never change an authentication result, so failures are swallowed.
pub fn send(ident: &str, level: Level, line: &str) {
    let _ = try_send(ident, level, line);
}

/// [`send`], saying why the line could not be sent (no syslog socket, logger not running):
/// the CLI warns its user, whose change would otherwise leave no trace.
pub fn try_send(ident: &str, level: Level, line: &str) -> Result<(), String> {
    let formatter = Formatter3164 {
        facility: Facility::LOG_AUTHPRIV,
        hostname: None,
        process: ident.to_owned(),
        pid: std::process::id(),
    };
    let mut logger = syslog::unix(formatter).map_err(|e| e.to_string())?;
    let line = sanitize(line);
    match level {
        Level::Debug => logger.debug(line),
        Level::Info => logger.info(line),
        Level::Notice => logger.notice(line),
        Level::Warning => logger.warning(line),
        Level::Error => logger.err(line),
    }
    .map_err(|e| e.to_string())
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
