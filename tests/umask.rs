//! secure_file's new files get their mode whatever the umask (0600 private, 0644 public).
//! The umask belongs to the whole process, so this check is a test target of its own without
//! libtest's harness (`harness = false` in Cargo.toml): `main` runs alone in its process, and
//! no other test sees the umask changed. Moved here from a unit test in src/secure_file.rs
//! whose child process was a `#[test]` of its own. Any user; the unit and library tier.

use std::fs;
use std::os::unix::fs::MetadataExt;

use nix::sys::stat::Mode;
use pam_twofold::secure_file::{Access, write_new};

const SECRET: &[u8] = b"otpauth://totp/x:y?secret=JBSWY3DPEHPK3PXP";

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("the_mode_does_not_depend_on_the_umask: test");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (umask, access, expected) in [
        (0o000, Access::Private, 0o600),
        (0o000, Access::Public, 0o644),
        (0o077, Access::Public, 0o644),
        (0o777, Access::Private, 0o600),
    ] {
        nix::sys::stat::umask(Mode::from_bits_truncate(umask));
        let path = dir.path().join(format!("{umask:o}-{access:?}"));
        write_new(&path, SECRET, access).unwrap();
        let mode = fs::symlink_metadata(&path).unwrap().mode() & 0o7777;
        assert_eq!(mode, expected, "umask {umask:03o}, {access:?}");
    }
    println!("test the_mode_does_not_depend_on_the_umask ... ok");
}
