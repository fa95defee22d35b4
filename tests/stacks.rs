//! The stacks an admin sets up, with the real programs: sshd (password + code, key + code),
//! sudo and su. Throwaway users with real passwords (pam_unix), codes from oathtool, a pty
//! driver playing the person at the keyboard. Everything made is removed afterwards.

mod common;

use std::fs;
use std::process::Command;

use common::sshd::{Sshd, TempUser};
use common::{Env, SECRET, module, oathtool, terminal, wait_for_fresh_step};

const PASSWORD: &str = "s3cret-Pw";

fn user_with_password() -> TempUser {
    let user = TempUser::new();
    user.set_password(PASSWORD);
    user
}

fn twofold_line(env: &Env) -> String {
    format!(
        "auth required {} config={}",
        module(),
        env.policy().display()
    )
}

/// Plays a dialog on a pty: (prompt regex, answer) pairs; returns (exit status, transcript).
fn dialog(command: &[String], steps: &[(&str, &str)]) -> (i64, String) {
    let mut args = Vec::new();
    for (expect, send) in steps {
        args.extend(["--step", expect, send]);
    }
    let report = terminal(&args, command);
    (
        report["status"].as_i64().unwrap_or(-1),
        report["after"].as_str().unwrap_or_default().to_owned(),
    )
}

#[test]
fn ssh_password_then_code() {
    let env = Env::new("");
    let server = Sshd::start(
        &format!("auth required pam_unix.so\n{}", twofold_line(&env)),
        "",
    );
    let user = user_with_password();
    env.enroll(&user.name, SECRET);
    let ssh = server.ssh_args(
        &user.name,
        &["-o", "NumberOfPasswordPrompts=1"],
        "echo stack-ok",
    );

    wait_for_fresh_step(10);
    let code = oathtool(SECRET, 0);
    let (status, out) = dialog(
        &ssh,
        &[("[Pp]assword:", PASSWORD), ("Verification code: ", &code)],
    );
    assert_eq!(status, 0, "{out}\n{}", server.log());
    assert!(out.contains("stack-ok"), "{out}");

    let (status, out) = dialog(
        &ssh,
        &[("[Pp]assword:", PASSWORD), ("Verification code: ", &code)],
    );
    assert_ne!(status, 0, "replayed code accepted: {out}");
    assert!(!out.contains("stack-ok"));
    let (status, _) = dialog(
        &ssh,
        &[
            ("[Pp]assword:", PASSWORD),
            ("Verification code: ", "000000"),
        ],
    );
    assert_ne!(status, 0, "wrong code accepted");
    let (status, _) = dialog(
        &ssh,
        &[
            ("[Pp]assword:", "wrong"),
            ("Verification code: ", &oathtool(SECRET, 30)),
        ],
    );
    assert_ne!(status, 0, "wrong password accepted");
}

#[test]
fn ssh_key_then_code() {
    let env = Env::new("");
    let keys = tempfile::Builder::new()
        .prefix("twofold-keys-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let key = keys.path().join("id_ed25519");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let user = TempUser::new(); // no password: the key is the first factor
    env.enroll(&user.name, SECRET);
    fs::copy(key.with_extension("pub"), keys.path().join(&user.name)).unwrap();
    let config = format!(
        "PubkeyAuthentication yes\nAuthenticationMethods publickey,keyboard-interactive\nAuthorizedKeysFile {}/%u",
        keys.path().display()
    );
    // twofold alone in the PAM stack: sshd asks for the key first, then the code.
    let server = Sshd::start(&twofold_line(&env), &config);
    let key_arg = key.display().to_string();
    let with_key = server.ssh_args(
        &user.name,
        &[
            "-i",
            &key_arg,
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "NumberOfPasswordPrompts=1",
        ],
        "echo key-ok",
    );
    wait_for_fresh_step(10);
    let code = oathtool(SECRET, 0);
    let (status, out) = dialog(&with_key, &[("Verification code: ", &code)]);
    assert_eq!(status, 0, "{out}\n{}", server.log());
    assert!(out.contains("key-ok"));
    // The key alone is not enough, nor is a code without the key.
    let (status, _) = dialog(&with_key, &[("Verification code: ", "000000")]);
    assert_ne!(status, 0);
    let without_key = server.ssh_args(
        &user.name,
        &[
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "NumberOfPasswordPrompts=1",
        ],
        "echo key-ok",
    );
    let (status, out) = dialog(
        &without_key,
        &[("Verification code: ", &oathtool(SECRET, 30))],
    );
    assert_ne!(status, 0, "{out}");
}

/// A sudoers drop-in giving `user` sudo through PAM service `service`; removed on drop.
struct SudoRule {
    file: std::path::PathBuf,
    pam_file: std::path::PathBuf,
}

impl SudoRule {
    fn new(user: &str, stack: &str) -> Self {
        common::require_tool("sudo", "sudo");
        let service = format!("twofold-sudo-{user}");
        let pam_file = std::path::PathBuf::from("/etc/pam.d").join(&service);
        assert!(!pam_file.exists());
        fs::write(
            &pam_file,
            format!("{stack}\naccount required pam_permit.so\nsession required pam_permit.so\n"),
        )
        .unwrap();
        // sudoers' pam_service picks the PAM service: no existing file is touched. No mail to
        // root about the deliberately failed attempts (an MTA is installed for the invite tests).
        let file = std::path::PathBuf::from("/etc/sudoers.d").join(format!("twofold-test-{user}"));
        let rule = format!(
            "Defaults:{user} pam_service={service}, timestamp_timeout=0, passwd_tries=1, lecture=never, !mail_badpass, !mail_no_user, !mail_always\n{user} ALL=(ALL) ALL\n"
        );
        fs::write(&file, rule).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&file, fs::Permissions::from_mode(0o440)).unwrap();
        Self { file, pam_file }
    }
}

impl Drop for SudoRule {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.file);
        let _ = fs::remove_file(&self.pam_file);
    }
}

#[test]
fn sudo_asks_for_password_then_code() {
    let env = Env::new("");
    let user = user_with_password();
    env.enroll(&user.name, SECRET);
    let _rule = SudoRule::new(
        &user.name,
        &format!("auth required pam_unix.so\n{}", twofold_line(&env)),
    );
    // No `sudo -p`: with it sudo shows its own prompt for every question, the code's too.
    let sudo: Vec<String> = ["runuser", "-u", &user.name, "--", "sudo", "id", "-u"]
        .map(String::from)
        .to_vec();
    wait_for_fresh_step(10);
    let code = oathtool(SECRET, 0);
    let (status, out) = dialog(
        &sudo,
        &[
            (r"\[sudo\] password for", PASSWORD),
            ("Verification code: ", &code),
        ],
    );
    assert_eq!(status, 0, "{out}");
    assert!(out.lines().any(|l| l.trim() == "0"), "ran as root: {out}");
    let (status, out) = dialog(
        &sudo,
        &[
            (r"\[sudo\] password for", PASSWORD),
            ("Verification code: ", &code),
        ],
    );
    assert_ne!(status, 0, "replay: {out}");
    let (status, _) = dialog(
        &sudo,
        &[
            (r"\[sudo\] password for", PASSWORD),
            ("Verification code: ", "000000"),
        ],
    );
    assert_ne!(status, 0);
}

#[test]
fn su_asks_for_password_then_code() {
    let env = Env::new("");
    let user = user_with_password();
    env.enroll(&user.name, SECRET);
    // su's own service name, in this test's pam_wrapper directory: /etc/pam.d/su is untouched.
    fs::write(
        env.services().join("su"),
        format!(
            "auth required pam_unix.so\n{}\naccount required pam_permit.so\nsession required pam_permit.so\n",
            twofold_line(&env)
        ),
    )
    .unwrap();
    let su = env.pam_argv(None, &["su", &user.name, "-c", "id -un"]);
    wait_for_fresh_step(10);
    let code = oathtool(SECRET, 0);
    let (status, out) = dialog(
        &su,
        &[("[Pp]assword: ", PASSWORD), ("Verification code: ", &code)],
    );
    assert_eq!(status, 0, "{out}");
    assert!(out.contains(&user.name), "{out}");
    let (status, _) = dialog(
        &su,
        &[
            ("[Pp]assword: ", PASSWORD),
            ("Verification code: ", "000000"),
        ],
    );
    assert_ne!(status, 0);
}

/// Key + code, where the key user has no 2FA yet: enroll-at-login sees the key in
/// SSH_AUTH_INFO_0 and enrolls. Without `AuthenticationMethods publickey,...` twofold would be
/// the only factor, and whoever knows the user name would be shown a QR code: refused.
#[test]
fn ssh_key_enrolls_at_login_only_after_the_key() {
    let env = Env::new("[policy]\nrequire = \"all\"\n[backup_codes]\ncount = 0");
    let keys = tempfile::Builder::new()
        .prefix("twofold-keys-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let key = keys.path().join("id_ed25519");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let user = TempUser::new();
    fs::copy(key.with_extension("pub"), keys.path().join(&user.name)).unwrap();
    let key_arg = key.display().to_string();
    let options = [
        "-i",
        &key_arg,
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "NumberOfPasswordPrompts=1",
    ];

    // Keyboard-interactive alone: no first factor, so no enrollment (and no login); the user
    // is told only that 2FA is unavailable (a prompt: sshd shows nothing else for sure).
    let alone = Sshd::start(
        &twofold_line(&env),
        &format!(
            "PubkeyAuthentication no\nAuthenticationMethods keyboard-interactive\nAuthorizedKeysFile {}/%u",
            keys.path().display()
        ),
    );
    let report = terminal(
        &["--step", "Press Enter to close. ", ""],
        &alone.ssh_args(&user.name, &options, "echo key-ok"),
    );
    let after = report["after"].as_str().unwrap_or_default();
    assert_ne!(report["status"], 0, "{report:#}");
    assert!(
        after.contains("Two-factor authentication is unavailable"),
        "{after}"
    );
    assert!(
        !after.contains("type this key") && !after.contains("key-ok"),
        "{after}"
    );
    assert!(
        env.load(&user.name).is_none(),
        "enrolled without a first factor"
    );
    drop(alone);

    // Key first, then enroll-at-login in the same session.
    let server = Sshd::start(
        &twofold_line(&env),
        &format!(
            "PubkeyAuthentication yes\nAuthenticationMethods publickey,keyboard-interactive\nAuthorizedKeysFile {}/%u",
            keys.path().display()
        ),
    );
    wait_for_fresh_step(10);
    let report = terminal(&[], &server.ssh_args(&user.name, &options, "echo key-ok"));
    assert_eq!(report["status"], 0, "{report:#}\n{}", server.log());
    assert!(
        report["after"].as_str().unwrap().contains("key-ok"),
        "{report:#}"
    );
    assert!(env.load(&user.name).unwrap().is_enabled());
}
