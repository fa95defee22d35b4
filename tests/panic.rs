//! A panic in the login costs that login, never the host process: a login helper built with
//! the test-only `test-panic` feature panics inside the login path for one user; the helper
//! catches it and answers with a denial, the module (the one every root test loads) relays it,
//! the real libpam gets PAM_SERVICE_ERR, pamtester carries on to report it, and syslog says
//! what happened. The module itself is `no_std` and aborts on a panic (SECURITY.md): the second
//! test forces one in a test-only build of it.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::{Env, SECRET, oathtool, wait_for_fresh_step};

#[test]
fn a_panic_in_the_login_path_denies_and_the_host_carries_on() {
    common::require_root();
    // Its own target dir: the shipped build never has the feature.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-panic-build");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .args([
            "build",
            "--bin",
            "twofold-login",
            "--locked",
            "--features",
            "test-panic",
            "--target-dir",
        ])
        .arg(&target)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(
        built.success(),
        "building the test-panic login helper failed"
    );
    let module = common::module_path();
    let helper = target.join("debug/twofold-login");

    let env = Env::new("");
    env.enroll("daemon", SECRET);
    let line = format!(
        "auth required {} helper={} config={}\n",
        module.display(),
        helper.display(),
        env.policy().display()
    );
    fs::write(env.services().join("tf"), line).unwrap();

    let (result, lines) = env.pamtester_logged("tf", "twofold-test-panic", "");
    assert_eq!(
        result.verdict(),
        "pamtester: Error in service module",
        "{}",
        result.stderr
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("internal error (panic) in pam_twofold; authentication denied")),
        "{lines:?}"
    );

    // The same module goes on working for everybody else.
    wait_for_fresh_step(3);
    let result = env.pamtester("tf", "daemon", &oathtool(SECRET, 0));
    assert_eq!(result.verdict(), "pamtester: successfully authenticated");
}

/// The module itself is `no_std` and cannot unwind: a panic there (the relay has no panic path
/// in practice; the test-only `test-panic` feature of crates/pam-relay forces one) logs one
/// line and aborts the host process. Fail closed: even on a `sufficient` line before
/// pam_permit, where a returned error would let the stack go on to succeed, no one gets in.
#[test]
fn a_panic_in_the_module_ends_the_host_process_and_lets_no_one_in() {
    common::require_root();
    let module = common::built_module::built_with(&["test-panic"], "pam-relay-test-panic");
    let env = Env::new("");
    let line = format!(
        "auth sufficient {} helper={} config={}\nauth required pam_permit.so\n",
        module.display(),
        common::helper_path().display(),
        env.policy().display()
    );
    fs::write(env.services().join("tf"), line).unwrap();

    let (result, lines) = env.pamtester_logged("tf", "twofold-test-panic-module", "");
    assert!(!result.success, "{}", result.stderr);
    assert!(
        !result.verdict().contains("successfully authenticated"),
        "{}",
        result.stderr
    );
    assert!(
        lines.iter().any(|l| l.contains(
            "internal error (panic) in pam_twofold; the process ends, authentication denied"
        )),
        "{lines:?}"
    );
}
