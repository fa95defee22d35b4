//! What a setuid program must not inherit from its caller, undone with safe calls (nix):
//! core dumps (RLIMIT_CORE 0, not dumpable), a umask or file-size limit that could spoil a
//! write, signals that could stop a change half-way, and root's power over the caller's
//! files (an `--output` file is created with the caller's filesystem identity).
//!
//! What needs no code: glibc runs a setuid program in secure mode (LD_PRELOAD,
//! LD_LIBRARY_PATH, MALLOC_* and friends are ignored), Rust's runtime opens /dev/null on a
//! closed stdin/stdout/stderr before `main`, and ignores SIGPIPE (a closed pipe is an error,
//! not a death). The environment is cleared in `main` through [`crate::sys`].
#![forbid(unsafe_code)]

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::stat::{Mode, umask};
use nix::unistd::{Gid, Uid, getgid, getuid, setfsgid, setfsuid};

use crate::error::SelfError;

/// Signals the caller can send (they share our real uid) that would otherwise end or stop
/// the helper in the middle of a change; held back while one is in flight.
const HELD: [Signal; 7] = [
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTSTP,
    Signal::SIGHUP,
    Signal::SIGTERM,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
];

/// Refuses to run without root's effective uid (not installed setuid root, or started under
/// `no_new_privs`), then makes the process safe to hold secrets and write records.
pub fn start() -> Result<(), SelfError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(SelfError::NotSetuid);
    }
    umask(Mode::from_bits_truncate(0o077));
    let limit = |resource, soft, hard| {
        setrlimit(resource, soft, hard).map_err(|e| SelfError::Harden {
            what: "set a resource limit",
            source: e,
        })
    };
    // No core file of a process holding secrets, whatever the caller's limit.
    limit(Resource::RLIMIT_CORE, 0, 0)?;
    // A record write cut short by a tiny limit is refused anyway (temp file + rename), but
    // an ordinary limit should not make it fail: raise the soft limits to the hard ones.
    for resource in [Resource::RLIMIT_FSIZE, Resource::RLIMIT_NOFILE] {
        let (_, hard) = getrlimit(resource).map_err(|e| SelfError::Harden {
            what: "read a resource limit",
            source: e,
        })?;
        limit(resource, hard, hard)?;
    }
    nix::sys::prctl::set_dumpable(false).map_err(|e| SelfError::Harden {
        what: "make the process non-dumpable",
        source: e,
    })?;
    // A write over RLIMIT_FSIZE fails with EFBIG instead of killing us half-way.
    let mut xfsz = SigSet::empty();
    xfsz.add(Signal::SIGXFSZ);
    xfsz.thread_block().map_err(|e| SelfError::Harden {
        what: "block SIGXFSZ",
        source: e,
    })
}

/// While alive, the signals in [`HELD`] wait: a change and the report of what it did (new
/// backup codes shown once) are not cut in two by Ctrl-C, Ctrl-Z or a `kill` from the caller.
/// SIGKILL cannot be held; the store's writes are atomic, so it leaves the old record or the
/// new one.
pub struct HoldSignals {
    previous: SigSet,
}

impl HoldSignals {
    pub fn new() -> Result<Self, SelfError> {
        let mut held = SigSet::empty();
        HELD.iter().for_each(|s| held.add(*s));
        let previous =
            held.thread_swap_mask(SigmaskHow::SIG_BLOCK)
                .map_err(|e| SelfError::Harden {
                    what: "hold signals",
                    source: e,
                })?;
        Ok(Self { previous })
    }
}

impl Drop for HoldSignals {
    fn drop(&mut self) {
        let _ = self.previous.thread_set_mask();
    }
}

/// While alive, files are opened, created and removed with the caller's uid and gid
/// (setfsuid/setfsgid): a path the caller names is touched with their rights, never root's.
pub struct AsCaller {
    uid: Uid,
    gid: Gid,
}

impl AsCaller {
    pub fn enter() -> Result<Self, SelfError> {
        let (uid, gid) = (getuid(), getgid());
        // Group first: once the filesystem uid is not root, the gid cannot change.
        let gid_before = setfsgid(gid);
        let uid_before = setfsuid(uid);
        let back = Self {
            uid: uid_before,
            gid: gid_before,
        };
        // setfsuid reports the previous value, not errors: read it back to be sure.
        if setfsuid(Uid::from_raw(u32::MAX)) != uid || setfsgid(Gid::from_raw(u32::MAX)) != gid {
            drop(back);
            return Err(SelfError::DropPrivileges);
        }
        Ok(back)
    }
}

impl Drop for AsCaller {
    fn drop(&mut self) {
        setfsuid(self.uid);
        setfsgid(self.gid);
        // Changing the filesystem uid resets the dumpable flag from fs.suid_dumpable.
        let _ = nix::sys::prctl::set_dumpable(false);
    }
}
