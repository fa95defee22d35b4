//! syslog, facility authpriv: what happened, to whom, from where (the line itself is made by
//! [`twofold_wire::syslog`], as the module makes its own). Never a secret or a code:
//! callers pass only names, outcomes and error descriptions (which never quote secrets).
#![forbid(unsafe_code)]

use std::io::Write;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::time::{SystemTime, UNIX_EPOCH};

pub use twofold_wire::syslog::{Level, SOCKETS, fields};

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
    let now = SystemTime::now().duration_since(UNIX_EPOCH);
    let message = twofold_wire::syslog::message(
        ident,
        level,
        std::process::id(),
        now.map_or(0, |d| d.as_secs()),
        line,
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

/// One line about one login: `TEXT; user="…" service="…" rhost="…"`, the text escaped so that
/// it cannot pose as one of the quoted fields after it ([`twofold_wire::syslog::event`]).
pub fn event(ident: &str, level: Level, text: &str, fields: &str) {
    send(ident, level, &twofold_wire::syslog::event(text, fields));
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
