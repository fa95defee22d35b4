//! One call: check the login helper file, start it on a socket pair, send the [`Start`],
//! relay its prompts to the application's conversation, take its [`Verdict`], reap it.
#![forbid(unsafe_code)]

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::ffi::CStr;
use core::fmt;

use twofold_wire::frame::{self, FromHelper, Message, Start, ToHelper};
use twofold_wire::syslog::Level;
use twofold_wire::{helper_file, helper_timeout, text};
use zeroize::Zeroizing;

use crate::ctext::CText;
use crate::log;
use crate::os_error::{Ended, IoError};
use crate::sys::{self, Fd};

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

/// The helper this line starts, and how long it may take to send each frame.
pub struct Helper {
    pub path: String,
    pub timeout_seconds: u32,
}

impl Helper {
    /// As `helper=` and `helper_timeout=` among the module's arguments say, or the defaults.
    pub fn from_args(args: &[String]) -> Result<Self, RelayError> {
        let path = helper_file::helper_path(args.iter().map(String::as_str))
            .map(str::to_string)
            .map_err(|(path, problem)| RelayError::Helper {
                path: path.to_string(),
                problem,
            })?;
        let timeout_seconds = helper_timeout::helper_timeout(args.iter().map(String::as_str))
            .map_err(RelayError::Argument)?;
        Ok(Self {
            path,
            timeout_seconds,
        })
    }

    /// When the next frame is due, counted from now.
    fn deadline(&self) -> u64 {
        sys::deadline_in(u64::from(self.timeout_seconds).saturating_mul(1000))
    }
}

/// Why there is no verdict: every one denies.
#[derive(Debug)]
pub enum RelayError {
    /// A module argument about the helper is wrong.
    Argument(String),
    /// The helper file is missing or not safe to run as root.
    Helper { path: String, problem: String },
    /// It could not be started.
    Spawn { path: String, error: IoError },
    /// It sent nothing for `seconds`, so it was killed.
    Hung { path: String, seconds: u32 },
    /// It ended, or the socket broke, before its verdict.
    NoVerdict {
        path: String,
        error: IoError,
        status: Option<Ended>,
    },
}

impl fmt::Display for RelayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Argument(problem) => write!(f, "{problem} (fix the PAM line)"),
            Self::Helper { path, problem } => write!(
                f,
                "cannot use the login helper {path}: {problem} (reinstall twofold, or fix \
                 helper= on the PAM line)"
            ),
            Self::Spawn { path, error } => write!(
                f,
                "cannot start the login helper {path}: {error} (reinstall twofold)"
            ),
            Self::Hung { path, seconds } => write!(
                f,
                "the login helper {path} sent nothing for {seconds} s and was killed (a name \
                 service, store or disk that does not answer? raise helper_timeout= on the PAM \
                 line only if it is that slow)"
            ),
            Self::NoVerdict {
                path,
                error,
                status,
            } => {
                write!(f, "the login helper {path} gave no verdict: {error}")?;
                match status {
                    Some(Ended::Exited(code)) => write!(f, " (exit status {code})"),
                    Some(Ended::Signaled(signal)) => write!(f, " (killed by {signal})"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// One call: start the helper, relay, reap it.
pub fn run(
    helper: &Helper,
    start: &Start,
    converse: &mut Converse<'_>,
) -> Result<Verdict, RelayError> {
    let path = &helper.path;
    helper_file::check_helper(path.as_bytes(), sys::lstat).map_err(|problem| {
        RelayError::Helper {
            path: path.clone(),
            problem,
        }
    })?;
    let spawn_error = |error| RelayError::Spawn {
        path: path.clone(),
        error,
    };
    let (ours, theirs) = sys::socket_pair().map_err(spawn_error)?;
    let c_path = CText::new(path.as_bytes()).ok_or(spawn_error(IoError::Os(libc::EINVAL)))?;
    let env = helper_environment();
    let pid = sys::spawn(c_path.as_c_str(), &theirs, &env).map_err(spawn_error)?;
    let child = sys::Child::new(pid);
    // A copy of the helper's end left open here would hide its exit.
    drop(theirs);
    let talked = talk(&ours, helper, start, converse);
    // Hung, or talking nonsense: it is not left running as root. (One that hung up has ended.)
    if talked.as_ref().is_err_and(|e| *e != IoError::Eof) {
        child.kill_group();
    }
    // Closing our end ends a helper still waiting for us; then it is reaped. A host that reaps
    // its children itself (SIGCHLD handler, SIG_IGN) leaves no status: the verdict decides.
    drop(ours);
    let status = reap(&child, path);
    talked.map_err(|error| match error {
        IoError::TimedOut => RelayError::Hung {
            path: path.clone(),
            seconds: helper.timeout_seconds,
        },
        error => RelayError::NoVerdict {
            path: path.clone(),
            error,
            status,
        },
    })
}

/// How long a helper may take to end after its last frame (or after SIGKILL) before it is
/// left to the host: one stuck in the kernel (a disk that does not answer) cannot be killed.
const REAP_GRACE_MS: u64 = 5_000;

/// Waits for the helper to end, at most [`REAP_GRACE_MS`]; one still running then is killed
/// and waited for once more as long. Its end, if known.
fn reap(child: &sys::Child, path: &str) -> Option<Ended> {
    if let sys::Reaped::Ended(status) = child.reap_by(sys::deadline_in(REAP_GRACE_MS)) {
        return status;
    }
    child.kill_group();
    if let sys::Reaped::Ended(status) = child.reap_by(sys::deadline_in(REAP_GRACE_MS)) {
        return status;
    }
    let line = text!(
        "the login helper {path} did not end, even killed, within {} s; not waited for \
         (stuck on a disk or network file system?)",
        2 * REAP_GRACE_MS / 1000
    );
    log::send(Level::Warning, &line);
    None
}

const PATH: &CStr = c"PATH=/usr/sbin:/usr/bin:/sbin:/bin";

/// The helper reads no variable, and a setuid host (sudo, su) may carry the user's: it gets
/// a PATH and nothing else. (Not even the host's, which a multi-threaded host may be changing.)
#[cfg(not(feature = "root-tests"))]
fn helper_environment() -> Vec<CText> {
    vec![CText::from(PATH)]
}

/// Test builds only (never shipped): the root tier's PAM runs preload pam_wrapper and
/// nss_wrapper (tests/common), whose variables the login's NSS lookups need in the helper too.
#[cfg(feature = "root-tests")]
fn helper_environment() -> Vec<CText> {
    let mut env = vec![CText::from(PATH)];
    env.extend(sys::inherited_environment(|name| {
        name == b"LD_PRELOAD" || name.starts_with(b"NSS_WRAPPER_") || name.starts_with(b"LOOSE_")
    }));
    env
}

/// One frame, all of it sent by `deadline` (a helper that takes nothing blocks no host).
fn send(socket: &Fd, message: &impl Message, deadline: u64) -> Result<(), IoError> {
    sys::send_all_by(socket, &message.encode()?, deadline)
}

/// The next frame, whole by `deadline`.
fn receive<M: Message>(socket: &Fd, deadline: u64) -> Result<M, IoError> {
    let mut header = [0u8; 4];
    sys::read_exact_by(socket, &mut header, deadline)?;
    let mut body = Zeroizing::new(vec![0u8; frame::body_len(header)?]);
    sys::read_exact_by(socket, &mut body, deadline)?;
    Ok(M::decode(&body)?)
}

/// The helper has `helper.timeout_seconds` from each frame the module starts to send to take
/// it and send its next one; time in the conversation (a person typing) is the application's
/// and is not counted.
fn talk(
    socket: &Fd,
    helper: &Helper,
    start: &Start,
    converse: &mut Converse<'_>,
) -> Result<Verdict, IoError> {
    let mut deadline = helper.deadline();
    send(socket, start, deadline)?;
    loop {
        match receive::<FromHelper>(socket, deadline)? {
            FromHelper::Prompt { style, text } => {
                let reply = match converse(style, &text) {
                    Ok(answer) => ToHelper::Answer(answer),
                    Err(why) => ToHelper::Failed(why),
                };
                deadline = helper.deadline();
                send(socket, &reply, deadline)?;
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
