//! Whether syslog takes twofold's lines: the sockets src/log.rs tries, in its order,
//! connected to as a datagram or stream socket. Nothing is sent.
#![forbid(unsafe_code)]

use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;

use super::finding::{Area, Finding, Severity};

use pam_twofold::log::SOCKETS;

fn accepts(path: &Path) -> bool {
    let datagram = UnixDatagram::unbound().and_then(|s| s.connect(path));
    datagram.is_ok() || UnixStream::connect(path).is_ok()
}

pub fn check() -> Finding {
    match SOCKETS.iter().map(Path::new).find(|p| accepts(p)) {
        Some(path) => Finding::new(
            Area::Syslog,
            Severity::Info,
            "syslog-ok",
            "syslog accepts connections; twofold's lines go there (facility authpriv)",
            "",
        )
        .in_file(path),
        None => Finding::new(
            Area::Syslog,
            Severity::Warning,
            "syslog-unreachable",
            format!(
                "no syslog socket accepts a connection ({}): what the module and the CLI log (denials, lock-outs, admin commands) is lost",
                SOCKETS.join(", ")
            ),
            "start the system logger (rsyslog, systemd-journald) so that /dev/log exists",
        ),
    }
}
