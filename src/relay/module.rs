//! The module's side of a call: checks the login helper, starts it on a socket pair, sends
//! the [`Start`], relays its prompts to the application's conversation and returns its
//! [`Verdict`]. Everything the module links is here, in [`super::wire`] and in src/pam.rs:
//! the login itself (policy, store, codes, QR codes) lives in the helper's process, so that an
//! sshd or sudo process that loads the module stays small (issue 21, docs/design.md).
#![forbid(unsafe_code)]

use std::ffi::CString;
use std::fmt;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
#[cfg(feature = "root-tests")]
use std::os::unix::ffi::OsStringExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawn};
use nix::sys::signal::SigSet;
use nix::sys::socket::{MsgFlags, send};
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use zeroize::Zeroizing;

use super::helper_file;
use super::wire::{FromHelper, Start, ToHelper};

/// The application's conversation: (PAM message style, text) → the answer, or why it failed.
pub type Converse<'a> = dyn FnMut(i32, &str) -> Result<Option<Zeroizing<Vec<u8>>>, String> + 'a;

/// What the helper decided.
pub struct Verdict {
    /// The PAM return code.
    pub code: i32,
    /// New PAM_AUTHTOK, for the modules after this line.
    pub authtok: Option<Zeroizing<Vec<u8>>>,
    /// For the next twofold line (`split_code`).
    pub keep: Option<Zeroizing<Vec<u8>>>,
}

/// Why there is no verdict: every one denies.
#[derive(Debug)]
pub enum RelayError {
    /// The helper file is missing or not safe to run as root.
    Helper { path: PathBuf, problem: String },
    /// It could not be started.
    Spawn { path: PathBuf, error: io::Error },
    /// It ended, or the socket broke, before its verdict.
    NoVerdict {
        path: PathBuf,
        error: io::Error,
        status: Option<WaitStatus>,
    },
}

impl fmt::Display for RelayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Helper { path, problem } => write!(
                f,
                "cannot use the login helper {}: {problem} (reinstall twofold, or fix helper= \
                 on the PAM line)",
                path.display()
            ),
            Self::Spawn { path, error } => write!(
                f,
                "cannot start the login helper {}: {error} (reinstall twofold)",
                path.display()
            ),
            Self::NoVerdict {
                path,
                error,
                status,
            } => {
                write!(
                    f,
                    "the login helper {} gave no verdict: {error}",
                    path.display()
                )?;
                match status {
                    Some(WaitStatus::Exited(_, code)) => write!(f, " (exit status {code})"),
                    Some(WaitStatus::Signaled(_, signal, _)) => write!(f, " (killed by {signal})"),
                    _ => Ok(()),
                }
            }
        }
    }
}

/// The helper named by `helper=` among the module's arguments, or the default.
pub fn helper_path(args: &[String]) -> Result<PathBuf, RelayError> {
    helper_file::helper_path(args).map_err(|(path, problem)| RelayError::Helper { path, problem })
}

/// Whether `path` is safe to start with the host's rights ([`helper_file::check_helper`]).
pub fn check_helper(path: &Path) -> Result<(), RelayError> {
    helper_file::check_helper(path).map_err(|problem| RelayError::Helper {
        path: path.to_owned(),
        problem,
    })
}

/// Writes that never raise SIGPIPE in the host process (sshd, sudo) when the helper is gone.
struct NoSigpipe<'a>(&'a UnixStream);

impl Write for NoSigpipe<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        send(self.0.as_raw_fd(), buf, MsgFlags::MSG_NOSIGNAL).map_err(io::Error::from)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One call: start the helper, relay, reap it. `converse` is the application's conversation
/// (message style, text) → answer.
pub fn run(
    helper: &Path,
    start: &Start,
    converse: &mut Converse<'_>,
) -> Result<Verdict, RelayError> {
    check_helper(helper)?;
    let spawn_error = |error| RelayError::Spawn {
        path: helper.to_owned(),
        error,
    };
    // Both ends above 2 (std duplicates from 3 up): in a host whose 0-2 are closed, neither the
    // host's stray output nor the dup2s below can meet the socket. The first pair is closed at
    // the end of the block: a copy of the helper's end left open here would hide its exit.
    let (ours, theirs) = {
        let (ours, theirs) = UnixStream::pair().map_err(spawn_error)?;
        (
            ours.try_clone().map_err(spawn_error)?,
            theirs.try_clone().map_err(spawn_error)?,
        )
    };
    let child = spawn(helper, &theirs).map_err(|e| spawn_error(e.into()))?;
    drop(theirs);
    let talked = talk(&ours, start, converse);
    // Closing our end ends a helper still waiting for us; then it is reaped. A host that reaps
    // its children itself (SIGCHLD handler, SIG_IGN) leaves no status: the verdict decides.
    drop(ours);
    let status = reap(child);
    talked.map_err(|error| RelayError::NoVerdict {
        path: helper.to_owned(),
        error,
        status,
    })
}

/// posix_spawn (no fork of a large host): the socket as stdin and stdout, /dev/null as
/// stderr, default signal handling, an empty signal mask, a process group of its own (keys
/// such as Ctrl-C at a sudo prompt signal the foreground group, not the helper), and an
/// environment of its own ([`helper_environment`]).
fn spawn(helper: &Path, theirs: &UnixStream) -> nix::Result<Pid> {
    let path = CString::new(helper.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let socket = theirs.as_raw_fd();
    let mut actions = PosixSpawnFileActions::init()?;
    actions.add_dup2(socket, 0)?;
    actions.add_dup2(socket, 1)?;
    actions.add_open(2, c"/dev/null", OFlag::O_WRONLY, Mode::empty())?;
    let mut attr = PosixSpawnAttr::init()?;
    attr.set_flags(
        PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK
            | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF
            | PosixSpawnFlags::POSIX_SPAWN_SETPGROUP,
    )?;
    attr.set_sigmask(&SigSet::empty())?;
    attr.set_sigdefault(&SigSet::all())?;
    attr.set_pgroup(Pid::from_raw(0))?;
    posix_spawn(
        path.as_c_str(),
        &actions,
        &attr,
        &[path.as_c_str()],
        &helper_environment(),
    )
}

/// The helper reads no variable, and a setuid host (sudo, su) may carry the user's: it gets
/// a PATH and nothing else. (Not even the host's, which a multi-threaded host may be changing.)
#[cfg(not(feature = "root-tests"))]
fn helper_environment() -> Vec<CString> {
    vec![CString::from(c"PATH=/usr/sbin:/usr/bin:/sbin:/bin")]
}

/// Test builds only (never shipped): the root tier's PAM runs preload pam_wrapper and
/// nss_wrapper (tests/common), whose variables the login's NSS lookups need in the helper too.
#[cfg(feature = "root-tests")]
fn helper_environment() -> Vec<CString> {
    let mut env = vec![CString::from(c"PATH=/usr/sbin:/usr/bin:/sbin:/bin")];
    let wanted = |name: &[u8]| {
        name == b"LD_PRELOAD" || name.starts_with(b"NSS_WRAPPER_") || name.starts_with(b"LOOSE_")
    };
    for (name, value) in std::env::vars_os() {
        if wanted(name.as_bytes()) {
            let mut pair = name.into_vec();
            pair.push(b'=');
            pair.extend(value.into_vec());
            env.extend(CString::new(pair).ok());
        }
    }
    env
}

/// Waits for the helper, through interrupting signals; None once another waiter took it.
fn reap(child: Pid) -> Option<WaitStatus> {
    loop {
        match waitpid(child, None) {
            Err(Errno::EINTR) => continue,
            Ok(status) => return Some(status),
            Err(_) => return None,
        }
    }
}

fn talk(socket: &UnixStream, start: &Start, converse: &mut Converse<'_>) -> io::Result<Verdict> {
    let mut input: &UnixStream = socket;
    start.send(&mut NoSigpipe(socket))?;
    loop {
        match FromHelper::receive(&mut input)? {
            FromHelper::Prompt { style, text } => {
                let reply = match converse(style, &text) {
                    Ok(answer) => ToHelper::Answer(answer),
                    Err(why) => ToHelper::Failed(why),
                };
                reply.send(&mut NoSigpipe(socket))?;
            }
            FromHelper::Done {
                code,
                authtok,
                keep,
            } => {
                return Ok(Verdict {
                    code,
                    authtok,
                    keep,
                });
            }
        }
    }
}
