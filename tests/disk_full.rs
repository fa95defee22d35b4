//! A disk that fills up midway must not leave a half-written file (secure_file's exclusive
//! creation, as the CLI's `--png`, `--svg` and `codes --output` use it). The disk is an 8 KiB
//! tmpfs in a private mount namespace; the writer is `twofold-test-worker full-disk`. Needs
//! root (mount) and `unshare` (util-linux). Moved here from a unit test in src/secure_file.rs
//! whose worker was a `#[test]` of its own.

mod common;

use common::{require_root, require_tool, worker};

#[test]
fn a_failed_write_removes_the_half_written_file() {
    require_root();
    require_tool("unshare", "util-linux");
    let dir = tempfile::tempdir().unwrap();
    let script = r#"mount -t tmpfs -o size=8k twofold-full "$1" && shift && exec "$@""#;
    let writer = worker::command("full-disk", &[dir.path().to_str().unwrap()]);
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(dir.path())
        .arg(writer.get_program())
        .args(writer.get_args())
        .output()
        .expect("run unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("the write failed and left no file"),
        "{stdout}{stderr}"
    );
}
