//! Why a call to the system failed, in the words std would have used (the module's log lines
//! read as they did before it left std: `No such file or directory (os error 2)`).
#![forbid(unsafe_code)]

use twofold_wire::frame::FrameError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoError {
    /// errno.
    Os(i32),
    /// The peer closed the socket before a whole frame came.
    Eof,
    /// The peer took no more bytes.
    WriteZero,
    /// The peer sent nothing by the deadline.
    TimedOut,
    Frame(FrameError),
}

impl From<FrameError> for IoError {
    fn from(e: FrameError) -> Self {
        Self::Frame(e)
    }
}

/// How the helper ended, as waitpid reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    Exited(i32),
    Signaled(&'static str),
}

/// The name of signal `number`, if it is one of the classic ones.
pub fn signal_name(number: i32) -> Option<&'static str> {
    const NAMES: [(i32, &str); 31] = [
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGILL, "SIGILL"),
        (libc::SIGTRAP, "SIGTRAP"),
        (libc::SIGABRT, "SIGABRT"),
        (libc::SIGBUS, "SIGBUS"),
        (libc::SIGFPE, "SIGFPE"),
        (libc::SIGKILL, "SIGKILL"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGSEGV, "SIGSEGV"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGPIPE, "SIGPIPE"),
        (libc::SIGALRM, "SIGALRM"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGSTKFLT, "SIGSTKFLT"),
        (libc::SIGCHLD, "SIGCHLD"),
        (libc::SIGCONT, "SIGCONT"),
        (libc::SIGSTOP, "SIGSTOP"),
        (libc::SIGTSTP, "SIGTSTP"),
        (libc::SIGTTIN, "SIGTTIN"),
        (libc::SIGTTOU, "SIGTTOU"),
        (libc::SIGURG, "SIGURG"),
        (libc::SIGXCPU, "SIGXCPU"),
        (libc::SIGXFSZ, "SIGXFSZ"),
        (libc::SIGVTALRM, "SIGVTALRM"),
        (libc::SIGPROF, "SIGPROF"),
        (libc::SIGWINCH, "SIGWINCH"),
        (libc::SIGIO, "SIGIO"),
        (libc::SIGPWR, "SIGPWR"),
        (libc::SIGSYS, "SIGSYS"),
    ];
    NAMES
        .iter()
        .find(|(n, _)| *n == number)
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_std_wrote_them() {
        for code in [libc::ENOENT, libc::EACCES, libc::EINVAL, libc::EPIPE] {
            let ours = IoError::Os(code).to_string();
            assert_eq!(ours, std::io::Error::from_raw_os_error(code).to_string());
        }
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        let mut empty: &[u8] = &[];
        let std_eof = std::io::Read::read_exact(&mut empty, &mut [0u8; 1]).unwrap_err();
        assert_eq!(IoError::Eof.to_string(), std_eof.to_string(), "{eof}");
        assert_eq!(signal_name(libc::SIGKILL), Some("SIGKILL"));
        assert_eq!(signal_name(libc::SIGRTMIN() + 1), None);
    }
}
