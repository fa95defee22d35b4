//! What the helper must not take over from the process that loaded the module. su, sudo's
//! own PAM call, twofold-self and polkit's helper are setuid root: their caller chose their
//! real uid, resource limits, umask and working directory, and the helper inherits all of it
//! through posix_spawn. Left alone, that would let someone with the password but not the phone
//! guess codes without the guesses counting (attack review 3, finding 1): a file-size limit
//! just above a success's state write and below a failure's (which adds the lock) cuts every
//! failing write short and ends the helper, so a wrong code is denied but never counted; a
//! CPU limit does the same to the backup-code hashing that only wrong codes reach. And the
//! caller, sharing the real uid, could stop the helper while it holds the user's lock
//! (finding 2).
//!
//! So with root's effective uid the helper becomes root through and through (no caller may
//! signal it), and raises every limit that is below what a login needs. If any of that fails it
//! refuses to run (the module then denies, with a syslog line from here). Without root's
//! effective uid (a screen locker, as the user) there is nothing to take back: the caller is
//! the only user the helper can act for.
#![forbid(unsafe_code)]

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::stat::{Mode, umask};
use nix::unistd::{Gid, Uid, chdir, geteuid, getresuid, setgroups, setresgid, setresuid};

const MIB: u64 = 1 << 20;

/// The least of each limit a login's work needs, far above what it uses (records and state
/// files are a few KiB, the backup-code hashing a few MiB and well under a second). A limit
/// at least this high stays as it is: only a lower one, which a login could meet, is raised.
const FLOORS: [(Resource, u64); 6] = [
    (Resource::RLIMIT_FSIZE, 64 * MIB),
    (Resource::RLIMIT_CPU, 60),
    (Resource::RLIMIT_DATA, 1024 * MIB),
    (Resource::RLIMIT_AS, 1024 * MIB),
    (Resource::RLIMIT_STACK, 8 * MIB),
    (Resource::RLIMIT_NOFILE, 64),
];

/// Takes back what a setuid host's caller set; the error says what could not be done.
pub fn start() -> Result<(), String> {
    if !geteuid().is_root() {
        return Ok(());
    }
    become_root()?;
    for (resource, floor) in FLOORS {
        at_least(resource, floor)?;
    }
    // No core file of a process holding secrets.
    setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(|e| format!("cannot set RLIMIT_CORE ({e})"))?;
    umask(Mode::from_bits_truncate(0o077));
    chdir("/").map_err(|e| format!("cannot change to / ({e})"))
}

/// Root as real and saved uid and gid too, without the caller's groups, when the host was a
/// setuid program: a process whose real uid is the caller's can be signalled (stopped while
/// it holds a lock, killed half-way) by the caller.
fn become_root() -> Result<(), String> {
    let ids = getresuid().map_err(|e| format!("cannot read the user ids ({e})"))?;
    if ids.real.is_root() && ids.saved.is_root() {
        return Ok(());
    }
    let fail = |what: &'static str| move |e: nix::Error| format!("cannot {what} ({e})");
    setgroups(&[]).map_err(fail("drop the caller's supplementary groups"))?;
    let (gid, uid) = (Gid::from_raw(0), Uid::from_raw(0));
    setresgid(gid, gid, gid).map_err(fail("take group id 0 as real and saved"))?;
    setresuid(uid, uid, uid).map_err(fail("take user id 0 as real and saved"))
}

/// Raises `resource`'s soft limit to `floor` if it is lower (and the hard one with it).
fn at_least(resource: Resource, floor: u64) -> Result<(), String> {
    let (soft, hard) =
        getrlimit(resource).map_err(|e| format!("cannot read {resource:?} ({e})"))?;
    if soft >= floor {
        return Ok(());
    }
    setrlimit(resource, floor, hard.max(floor))
        .map_err(|e| format!("cannot raise {resource:?} from {soft} to {floor} ({e})"))
}
