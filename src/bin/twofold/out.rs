//! Standard output and error without panics.
//!
//! `println!` panics when the reader has gone away (`twofold list | head -1`: EPIPE, since Rust
//! ignores SIGPIPE). A reader that had enough is no error: report text (tables, confirmations,
//! progress lines) goes through [`print`], which drops the rest quietly once the pipe is closed;
//! the command still finishes its work and its exit status says how that went. Text that is
//! the only copy of something (a new key, backup codes) goes through [`essential`] instead,
//! where a closed pipe is an error the caller words.
#![forbid(unsafe_code)]

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::CliError;

/// Set once a write met a closed pipe: everything after it is dropped unwritten.
static CLOSED: AtomicBool = AtomicBool::new(false);

fn stdout_error(source: io::Error) -> CliError {
    CliError::Io {
        what: "write to standard output".into(),
        source,
    }
}

/// Report text; a closed pipe ends the output, not the command. Other write errors (a full
/// disk behind `>`) are errors.
pub fn print(args: fmt::Arguments<'_>) -> Result<(), CliError> {
    if CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut out = io::stdout().lock();
    report(out.write_fmt(args).and_then(|()| out.flush()))
}

/// The result of writing report text by other means (a `BufWriter` over stdout), judged as
/// [`print`] judges it.
pub fn report(result: io::Result<()>) -> Result<(), CliError> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        other => other.map_err(stdout_error),
    }
}

/// Text that must reach the reader: any failure, a pipe closed earlier included, is returned.
pub fn essential(bytes: &[u8]) -> io::Result<()> {
    if CLOSED.load(Ordering::Relaxed) {
        return Err(io::ErrorKind::BrokenPipe.into());
    }
    let mut out = io::stdout().lock();
    out.write_all(bytes).and_then(|()| out.flush())
}

/// A line on standard error. If even that is gone there is no one left to tell.
pub fn warn(args: fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "twofold: {args}");
}
