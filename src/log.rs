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
    let formatter = Formatter3164 {
        facility: Facility::LOG_AUTHPRIV,
        hostname: None,
        process: ident.to_owned(),
        pid: std::process::id(),
    };
    let Ok(mut logger) = syslog::unix(formatter) else {
        return;
    };
    let line = sanitize(line);
    let _ = match level {
        Level::Debug => logger.debug(line),
        Level::Info => logger.info(line),
        Level::Notice => logger.notice(line),
        Level::Warning => logger.warning(line),
        Level::Error => logger.err(line),
    };
}

/// Control characters (from a user or host name) could forge extra log lines.
fn sanitize(line: &str) -> String {
    line.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Who is running an admin command, for the audit line: the sudo caller if any, else the uid.
pub fn actor() -> String {
    let uid = nix::unistd::getuid();
    let name = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid {uid}"));
    match std::env::var("SUDO_USER") {
        Ok(sudo_user) if !sudo_user.is_empty() => format!("{name} (via sudo from {sudo_user})"),
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_cannot_forge_lines() {
        assert_eq!(super::sanitize("user=a\nb\x1b[2J"), "user=a?b?[2J");
    }
}
