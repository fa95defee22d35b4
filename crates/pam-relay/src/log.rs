//! The module's syslog lines (facility authpriv, ident `pam_twofold`), made by
//! [`twofold_wire::syslog`] as every twofold program makes them. Logging never changes a
//! verdict: a line that cannot be sent is dropped.
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicBool, Ordering};

use twofold_wire::syslog::{self, Level, SOCKETS};

use crate::sys;

pub const IDENT: &str = "pam_twofold";

pub fn send(level: Level, line: &str) {
    let message = syslog::message(IDENT, level, sys::pid(), sys::now(), line);
    sys::syslog(message.as_bytes(), &SOCKETS);
}

/// One line about one login, its fields quoted ([`syslog::event`]).
pub fn event(level: Level, text: &str, fields: &str) {
    send(level, &syslog::event(text, fields));
}

/// The panic handler's line, once: a panic while logging it (no memory) must not recurse.
pub fn panicked() {
    static LOGGED: AtomicBool = AtomicBool::new(false);
    if !LOGGED.swap(true, Ordering::SeqCst) {
        send(
            Level::Error,
            "internal error (panic) in pam_twofold; the process ends, authentication denied",
        );
    }
}

/// No unwinding without std: a panic (there is no panic path in practice: no indexing, no
/// unchecked arithmetic, no unwrap) logs one line if it can and ends the host process, which
/// fails closed (SECURITY.md, "The login helper the module starts").
#[cfg(not(test))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    panicked();
    sys::abort()
}
