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
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawn};
use nix::sys::signal::SigSet;
use nix::sys::socket::{MsgFlags, send};
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use zeroize::Zeroizing;

use super::wire::{FromHelper, Start, ToHelper};

/// Where the package installs the helper; `helper=` on the PAM line names another.
pub const DEFAULT_HELPER: &str = "/usr/libexec/twofold/twofold-login";

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
    let mut named = args.iter().filter_map(|a| a.strip_prefix("helper="));
    let path = PathBuf::from(named.next().unwrap_or(DEFAULT_HELPER));
    match named.next() {
        None => Ok(path),
        Some(_) => Err(RelayError::Helper {
            path,
            problem: "helper= is given twice".into(),
        }),
    }
}

/// Root runs it with root's rights: it and its directory must be root's and writable by no one
/// else, and it is not reached through a symbolic link.
pub fn check_helper(path: &Path) -> Result<(), RelayError> {
    let refuse = |problem: String| RelayError::Helper {
        path: path.to_owned(),
        problem,
    };
    if !path.is_absolute() {
        return Err(refuse("not an absolute path".into()));
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    for (what, file) in [("its directory", dir), ("it", path)] {
        let meta = std::fs::symlink_metadata(file).map_err(|e| refuse(format!("{e}")))?;
        if meta.file_type().is_symlink() {
            return Err(refuse(format!("{what} is a symbolic link")));
        }
        if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
            return Err(refuse(format!(
                "{what} must belong to root and be writable by no one else (owner uid {}, mode {:o})",
                meta.uid(),
                meta.mode() & 0o7777
            )));
        }
    }
    Ok(())
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
    let (ours, theirs) = UnixStream::pair().map_err(spawn_error)?;
    let child = spawn(helper, theirs).map_err(|e| spawn_error(e.into()))?;
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
/// stderr, default signal handling and an empty signal mask. The environment is the host's, as
/// the module's was in-process: a setuid host (sudo, su) runs it with AT_SECURE, so the loader
/// drops LD_* there as it did for the host.
fn spawn(helper: &Path, theirs: UnixStream) -> nix::Result<Pid> {
    let path = CString::new(helper.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    // Above 2, so that the dup2s below always make a new descriptor (without close-on-exec).
    let socket = fcntl(&theirs, FcntlArg::F_DUPFD_CLOEXEC(3))?;
    let mut actions = PosixSpawnFileActions::init()?;
    actions.add_dup2(socket, 0)?;
    actions.add_dup2(socket, 1)?;
    actions.add_open(2, c"/dev/null", OFlag::O_WRONLY, Mode::empty())?;
    let mut attr = PosixSpawnAttr::init()?;
    attr.set_flags(
        PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF,
    )?;
    attr.set_sigmask(&SigSet::empty())?;
    attr.set_sigdefault(&SigSet::all())?;
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(name, value)| {
            let mut pair = name.into_vec();
            pair.push(b'=');
            pair.extend(value.into_vec());
            CString::new(pair).ok()
        })
        .collect();
    let spawned = posix_spawn(path.as_c_str(), &actions, &attr, &[path.as_c_str()], &env);
    let _ = nix::unistd::close(socket);
    spawned
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_names_the_helper_once() {
        assert_eq!(helper_path(&[]).unwrap(), Path::new(DEFAULT_HELPER));
        let args = ["debug".to_owned(), "helper=/opt/a".into()];
        assert_eq!(helper_path(&args).unwrap(), Path::new("/opt/a"));
        let twice = ["helper=/opt/a".to_owned(), "helper=/opt/b".into()];
        assert!(helper_path(&twice).is_err());
    }

    #[test]
    fn a_relative_or_missing_helper_is_refused_before_anything_runs() {
        for path in ["twofold-login", "/nonexistent/twofold-login"] {
            let err = check_helper(Path::new(path)).unwrap_err();
            assert!(matches!(err, RelayError::Helper { .. }), "{path}: {err}");
        }
    }
}
