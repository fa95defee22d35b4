//! scripts/install.sh and scripts/uninstall.sh, into a staging root (DESTDIR) as a packager
//! would run them: what lands where, with which modes, and what uninstall keeps.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script(name: &str, root: &Path, args: &[&str]) -> Output {
    Command::new("bash")
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("scripts")
                .join(name),
        )
        .args(args)
        .env("DESTDIR", root)
        .env("MODULE", common::module_path())
        .env("HELPER", common::helper_path())
        .env("CLI", common::twofold_bin())
        .env("SELF", env!("CARGO_BIN_EXE_twofold-self"))
        .output()
        .unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// The directory holding this system's pam_unix.so, as install.sh detects it.
fn system_module_dir() -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", "command -v dpkg-architecture >/dev/null && echo /lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/security || dirname $(find /lib /lib64 /usr/lib /usr/lib64 -name pam_unix.so -path '*security*' 2>/dev/null | head -n 1)"])
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

#[test]
fn install_places_everything_with_safe_modes_and_uninstall_keeps_records() {
    let root = tempfile::Builder::new()
        .prefix("twofold-destdir-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let r = root.path();
    let out = script("install.sh", r, &["--no-build"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let module = r
        .join(system_module_dir().strip_prefix("/").unwrap())
        .join("pam_twofold.so");
    let cli = r.join("usr/local/bin/twofold");
    assert_eq!(mode(&module), 0o644);
    assert_eq!(mode(&cli), 0o755);
    // The login helper, where the module looks for it whatever PREFIX is.
    let login = r.join("usr/libexec/twofold/twofold-login");
    assert_eq!(mode(&login), 0o755);
    assert_eq!(mode(login.parent().unwrap()), 0o755);
    // Self-service: setuid root, with its own PAM service (install.sh's only /etc/pam.d file).
    let helper = r.join("usr/local/bin/twofold-self");
    let service = r.join("etc/pam.d/twofold-self");
    assert_eq!(mode(&helper), 0o4755);
    assert_eq!(mode(&service), 0o644);
    let stack = fs::read_to_string(&service).unwrap();
    assert!(stack.contains("pam_unix.so") && stack.contains("pam_twofold.so"));
    assert_eq!(mode(&r.join("var/lib/twofold/users")), 0o700);
    // Fleet mode's agent unit runs the installed command.
    let unit = r.join("lib/systemd/system/twofold-agent.service");
    assert_eq!(mode(&unit), 0o644);
    let unit = fs::read_to_string(&unit).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/twofold agent"),
        "{unit}"
    );
    assert_eq!(mode(&r.join("etc/twofold/twofold.toml")), 0o644);
    for doc in [
        "usr/local/share/man/man1/twofold.1",
        "usr/local/share/man/man8/pam_twofold.8",
        "usr/local/share/man/man1/twofold-self.1",
        "usr/local/share/bash-completion/completions/twofold",
        "usr/local/share/zsh/site-functions/_twofold",
        "usr/local/share/fish/vendor_completions.d/twofold.fish",
        "usr/local/share/doc/twofold/pam.d-examples/sshd",
        "usr/local/share/doc/twofold/pam.d-examples/cockpit",
        "usr/share/cockpit/twofold/manifest.json",
        "usr/share/cockpit/twofold/index.html",
        "usr/share/cockpit/twofold/twofold.js",
        "usr/share/cockpit/twofold/twofold.css",
    ] {
        assert!(r.join(doc).is_file(), "{doc} missing");
    }
    let man = fs::read_to_string(r.join("usr/local/share/man/man1/twofold.1")).unwrap();
    assert!(
        man.contains(".TH twofold 1") && man.contains("enroll"),
        "man page"
    );
    let version = Command::new(&cli).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("twofold "));
    // The installed default policy is valid: every key commented out means the defaults.
    let status = Command::new(&cli)
        .args(["--config"])
        .arg(r.join("etc/twofold/twofold.toml"))
        .args(["status", "root", "--json"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&status.stderr).contains("policy file"),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );

    // Installing again keeps an admin's policy.
    fs::write(
        r.join("etc/twofold/twofold.toml"),
        "[policy]\nrequire = \"all\"\n",
    )
    .unwrap();
    assert!(script("install.sh", r, &["--no-build"]).status.success());
    assert_eq!(
        fs::read_to_string(r.join("etc/twofold/twofold.toml")).unwrap(),
        "[policy]\nrequire = \"all\"\n"
    );

    // Uninstall refuses while a PAM stack names the module.
    fs::create_dir_all(r.join("etc/pam.d")).unwrap();
    fs::write(r.join("etc/pam.d/sshd"), "auth required pam_twofold.so\n").unwrap();
    fs::write(r.join("var/lib/twofold/users/alice.toml"), "kept").unwrap();
    let refused = script("uninstall.sh", r, &[]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("etc/pam.d/sshd"));
    assert!(module.exists());

    fs::remove_file(r.join("etc/pam.d/sshd")).unwrap();
    let removed = script("uninstall.sh", r, &[]);
    assert!(removed.status.success());
    let said = String::from_utf8_lossy(&removed.stdout);
    for gone in [&module, &cli] {
        assert!(
            said.contains(&format!("removed {}\n", gone.display())),
            "{said}"
        );
    }
    assert!(!said.contains("alice.toml"), "{said}");
    assert!(!module.exists() && !cli.exists());
    assert!(
        !r.join("lib/systemd/system/twofold-agent.service").exists(),
        "agent unit removed"
    );
    assert!(
        !helper.exists() && !service.exists(),
        "self-service removed"
    );
    assert!(
        !r.join("usr/share/cockpit/twofold").exists(),
        "Cockpit page removed"
    );
    assert!(
        r.join("var/lib/twofold/users/alice.toml").exists(),
        "records kept"
    );
    assert!(r.join("etc/twofold/twofold.toml").exists(), "policy kept");
    let purged = script("uninstall.sh", r, &["--purge"]);
    assert!(purged.status.success());
    let said = String::from_utf8_lossy(&purged.stdout);
    for gone in [
        "etc/twofold/twofold.toml",
        "etc/twofold",
        "var/lib/twofold/users/alice.toml",
        "var/lib/twofold",
    ] {
        let line = format!("removed {}\n", r.join(gone).display());
        assert!(said.contains(&line), "--purge lists {gone}: {said}");
    }
    assert!(!r.join("var/lib/twofold").exists() && !r.join("etc/twofold").exists());
}
