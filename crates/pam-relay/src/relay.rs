//! One call: check the login helper file, start it on a socket pair, send the [`Start`],
//! relay its prompts to the application's conversation, take its [`Verdict`], reap it.
#![forbid(unsafe_code)]

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::ffi::CStr;
use core::fmt;

use twofold_wire::frame::{self, FromHelper, Message, Start, ToHelper};
use twofold_wire::helper_file;
use zeroize::Zeroizing;

use crate::ctext::CText;
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

/// Why there is no verdict: every one denies.
#[derive(Debug)]
pub enum RelayError {
    /// The helper file is missing or not safe to run as root.
    Helper { path: String, problem: String },
    /// It could not be started.
    Spawn { path: String, error: IoError },
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
            Self::Helper { path, problem } => write!(
                f,
                "cannot use the login helper {path}: {problem} (reinstall twofold, or fix \
                 helper= on the PAM line)"
            ),
            Self::Spawn { path, error } => write!(
                f,
                "cannot start the login helper {path}: {error} (reinstall twofold)"
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

/// The helper named by `helper=` among the module's arguments, or the default.
pub fn helper_path(args: &[String]) -> Result<String, RelayError> {
    helper_file::helper_path(args.iter().map(String::as_str))
        .map(str::to_string)
        .map_err(|(path, problem)| RelayError::Helper {
            path: path.to_string(),
            problem,
        })
}

/// One call: start the helper, relay, reap it.
pub fn run(
    helper: &str,
    start: &Start,
    converse: &mut Converse<'_>,
) -> Result<Verdict, RelayError> {
    helper_file::check_helper(helper.as_bytes(), sys::lstat).map_err(|problem| {
        RelayError::Helper {
            path: helper.to_string(),
            problem,
        }
    })?;
    let spawn_error = |error| RelayError::Spawn {
        path: helper.to_string(),
        error,
    };
    let (ours, theirs) = sys::socket_pair().map_err(spawn_error)?;
    let path = CText::new(helper.as_bytes()).ok_or(spawn_error(IoError::Os(libc::EINVAL)))?;
    let child = sys::spawn(path.as_c_str(), &theirs, &helper_environment()).map_err(spawn_error)?;
    // A copy of the helper's end left open here would hide its exit.
    drop(theirs);
    let talked = talk(&ours, start, converse);
    // Closing our end ends a helper still waiting for us; then it is reaped. A host that reaps
    // its children itself (SIGCHLD handler, SIG_IGN) leaves no status: the verdict decides.
    drop(ours);
    let status = sys::reap(child);
    talked.map_err(|error| RelayError::NoVerdict {
        path: helper.to_string(),
        error,
        status,
    })
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

fn send(socket: &Fd, message: &impl Message) -> Result<(), IoError> {
    sys::send_all(socket, &message.encode()?)
}

fn receive<M: Message>(socket: &Fd) -> Result<M, IoError> {
    let mut header = [0u8; 4];
    sys::read_exact(socket, &mut header)?;
    let mut body = Zeroizing::new(vec![0u8; frame::body_len(header)?]);
    sys::read_exact(socket, &mut body)?;
    Ok(M::decode(&body)?)
}

fn talk(socket: &Fd, start: &Start, converse: &mut Converse<'_>) -> Result<Verdict, IoError> {
    send(socket, start)?;
    loop {
        match receive::<FromHelper>(socket)? {
            FromHelper::Prompt { style, text } => {
                let reply = match converse(style, &text) {
                    Ok(answer) => ToHelper::Answer(answer),
                    Err(why) => ToHelper::Failed(why),
                };
                send(socket, &reply)?;
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
