//! `twofold-login`: the login helper pam_twofold.so starts for each call (never run by hand).
//! Its stdin and stdout are one end of the module's socket pair; it runs one login
//! ([`pam_twofold::relay::login::serve`]) and exits. It runs with the rights of the process
//! that loaded the module (root in sshd, sudo, su, login), no more.
#![forbid(unsafe_code)]

mod harden;

use std::fs::File;
use std::io::{stdin, stdout};
use std::os::fd::{AsFd, RawFd};
use std::process::ExitCode;

use pam_twofold::log::Level;

fn main() -> ExitCode {
    close_inherited_fds();
    if let Err(why) = harden::start() {
        // Before the request is read: nothing was judged, nothing counted.
        let line = format!("login helper: {why}; authentication denied");
        pam_twofold::log::send(pam_twofold::relay::login::IDENT, Level::Error, &line);
        return ExitCode::FAILURE;
    }
    // Secrets pass through here: no core dump of them, and no debugger of the same uid (a
    // screen locker runs this as the user).
    let _ = nix::sys::prctl::set_dumpable(false);
    // Unbuffered, so that no library buffer keeps a copy of an answer or of the verdict's
    // password (the frames are built whole, wiped, and written at once).
    let (Ok(input), Ok(output)) = (
        stdin().as_fd().try_clone_to_owned(),
        stdout().as_fd().try_clone_to_owned(),
    ) else {
        return ExitCode::FAILURE;
    };
    let (mut input, mut output) = (File::from(input), File::from(output));
    match pam_twofold::relay::login::serve(&mut input, &mut output) {
        Ok(()) => ExitCode::SUCCESS,
        // The module denies when it gets no verdict, and logs why; nothing to add here.
        Err(_) => ExitCode::FAILURE,
    }
}

/// Descriptors the host process left open without close-on-exec (sshd's connection, sudo's
/// terminal) are none of the helper's business: closed before anything else runs. Without
/// /proc (a chroot), every number up to the descriptor limit.
fn close_inherited_fds() {
    let listed: Option<Vec<RawFd>> = std::fs::read_dir("/proc/self/fd").ok().map(|entries| {
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect()
    });
    let fds = listed.unwrap_or_else(|| {
        let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(1024, |(soft, _)| soft.min(65_536));
        (3..RawFd::try_from(limit).unwrap_or(1024)).collect()
    });
    for fd in fds.into_iter().filter(|fd| *fd > 2) {
        // The listing's own descriptor is among them and already closed: EBADF, harmless.
        let _ = nix::unistd::close(fd);
    }
}
