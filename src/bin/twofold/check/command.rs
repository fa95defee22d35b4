//! Runs a system tool for `check` with a time limit: a hung `sshd -T` or `chronyc` must not
//! hang the check.
#![forbid(unsafe_code)]

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(10);

/// `program args`, its output, or why it could not run (not installed, timed out).
pub fn run(program: &str, args: &[&str]) -> Result<Output, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() < LIMIT => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} did not finish within {LIMIT:?}"));
            }
        }
    }
    child
        .wait_with_output()
        .map_err(|e| format!("cannot read what {program} printed: {e}"))
}

/// Whether `program` is on PATH (or an absolute path that exists).
pub fn exists(program: &str) -> bool {
    if program.starts_with('/') {
        return std::path::Path::new(program).is_file();
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}
