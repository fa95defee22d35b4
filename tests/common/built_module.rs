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
            None => built_with(&[], "pam-relay"),
        })
        .clone()
}

/// The module built with the relay's test-only `features` too, into a target dir `dir` of
/// their own under CARGO_TARGET_TMPDIR (the shipped build never has them).
pub fn built_with(features: &[&str], dir: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join(dir);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--release", "--locked", "--manifest-path"])
        .arg(root.join("crates/pam-relay/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target);
    let mut features = features.to_vec();
    if cfg!(feature = "root-tests") {
        features.push("root-tests");
    }
    if !features.is_empty() {
        command.args(["--features", &features.join(",")]);
    }
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("cargo build (crates/pam-relay): {e}"));
    assert!(status.success(), "building crates/pam-relay failed");
    target.join("release/libpam_twofold.so")
}
