//! `twofold-login`: the login helper pam_twofold.so starts for each call (never run by hand).
//! Its stdin and stdout are one end of the module's socket pair; it runs one login
//! ([`pam_twofold::relay::login::serve`]) and exits. It runs with the rights of the process
//! that loaded the module (root in sshd, sudo, su, login), no more.
#![forbid(unsafe_code)]

use std::os::fd::RawFd;
use std::process::ExitCode;

fn main() -> ExitCode {
    close_inherited_fds();
    let mut input = std::io::stdin().lock();
    let mut output = std::io::stdout().lock();
    match pam_twofold::relay::login::serve(&mut input, &mut output) {
        Ok(()) => ExitCode::SUCCESS,
        // The module denies when it gets no verdict, and logs why; nothing to add here.
        Err(_) => ExitCode::FAILURE,
    }
}

/// Descriptors the host process left open without close-on-exec (sshd's connection, sudo's
/// terminal) are none of the helper's business: closed before anything else runs.
fn close_inherited_fds() {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<RawFd> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // The directory's own descriptor is among them and already closed: EBADF, harmless.
        let _ = nix::unistd::close(fd);
    }
}
