//! The PAM module under test: crates/pam-relay (a `no_std` cdylib in a workspace of its own,
//! so `cargo test` does not build it), built here once per test program, in release as it
//! ships, into a target dir of its own under this run's CARGO_TARGET_TMPDIR (cargo holds the
//! lock of the main one while tests run). Root-tier builds add the relay's `root-tests`
//! feature (the helper gets pam_wrapper's and nss_wrapper's variables). A test program run
//! without cargo (scripts/container-test.sh, in a container without it) is given the built
//! file in TWOFOLD_TEST_MODULE.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Builds (once) and returns `libpam_twofold.so`.
pub fn module_path() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| match std::env::var_os("TWOFOLD_TEST_MODULE") {
            Some(given) => PathBuf::from(given),
            None => build(),
        })
        .clone()
}

fn build() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pam-relay");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--release", "--locked", "--manifest-path"])
        .arg(root.join("crates/pam-relay/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target);
    if cfg!(feature = "root-tests") {
        command.args(["--features", "root-tests"]);
    }
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("cargo build (crates/pam-relay): {e}"));
    assert!(status.success(), "building crates/pam-relay failed");
    target.join("release/libpam_twofold.so")
}
