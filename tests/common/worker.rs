//! Starting `twofold-test-worker` (tests/worker/twofold_test_worker.rs), the worker program of
//! the race and crash tests, and releasing racing workers together. Only in test tiers whose
//! feature builds the worker (`test-worker`).
#![allow(dead_code)]

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// `twofold-test-worker ROLE ARGS...` (not started yet).
pub fn command(role: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_twofold-test-worker"));
    cmd.arg(role).args(args);
    cmd
}

/// Waits until `n` workers said "ready" in `sync` (within `limit`), then says "go".
pub fn release(sync: &Path, n: usize, limit: Duration, poll: Duration) {
    let deadline = Instant::now() + limit;
    while fs::read_dir(sync).unwrap().count() < n {
        assert!(Instant::now() < deadline, "workers did not start");
        std::thread::sleep(poll);
    }
    fs::write(sync.join("go"), "").unwrap();
}
