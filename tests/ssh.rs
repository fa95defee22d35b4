//! The real thing end to end: OpenSSH's sshd on 127.0.0.1 with the module in a PAM service of
//! its own, a real `ssh` client on a pty (pexpect), a throwaway user.

mod common;

use common::sshd::{Sshd, TempUser};
use common::{Env, module, terminal, wait_for_fresh_step};

const PASSWORD: &str = "correct-horse-7";

#[test]
fn ssh_first_login_enrolls_from_the_qr_code_then_asks_for_codes() {
    let env =
        Env::new("[policy]\nrequire = \"all\"\nissuer = \"tf-ssh\"\n[backup_codes]\ncount = 2");
    // The password first (a wrong one ends the stack), then twofold: enroll-at-login happens
    // only after the password was proven.
    let stack = format!(
        "auth requisite pam_unix.so\nauth required {} config={}",
        module(),
        env.policy().display()
    );
    let server = Sshd::start(&stack, "");
    let alice = TempUser::new();
    alice.set_password(PASSWORD);
    let command = "echo twofold-ssh-ok";

    // Someone with the user name but not the password: no QR code, nothing stored.
    let ssh = server.ssh_args(&alice.name, &["-o", "NumberOfPasswordPrompts=1"], command);
    let report = terminal(
        &["--password", "wrong-password", "--step", "xyzzy-never", ""],
        &ssh,
    );
    assert_ne!(report["status"], 0, "{report:#}");
    let after = report["after"].as_str().unwrap();
    assert!(
        !after.contains("type this key") && !after.contains("twofold-ssh-ok"),
        "{after}"
    );
    assert!(env.load(&alice.name).is_none());

    // First login: the QR code is drawn in the ssh client's terminal.
    let png = env.dir.path().join("ssh-screen.png");
    wait_for_fresh_step(12);
    let ssh = server.ssh_args(&alice.name, &[], command);
    let report = terminal(
        &["--password", PASSWORD, "--png", png.to_str().unwrap()],
        &ssh,
    );
    assert_eq!(report["status"], 0, "{report:#}\n{}", server.log());
    let secret = report["secret"].as_str().expect("key shown");
    let uri = format!(
        "otpauth://totp/tf-ssh:{}?secret={secret}&issuer=tf-ssh",
        alice.name
    );
    assert_eq!(
        report["decoded"],
        uri.as_str(),
        "QR read off the ssh client's screen: {report:#}"
    );
    let after = report["after"].as_str().unwrap();
    assert!(after.contains("twofold-ssh-ok"), "the command ran: {after}");
    assert_eq!(
        common::backup_codes_in(after).len(),
        2,
        "backup codes shown once: {after}"
    );
    assert!(env.load(&alice.name).unwrap().is_enabled());

    // Later logins ask for a code; the next step's code works.
    let report = terminal(
        &[
            "--password",
            PASSWORD,
            "--code-login",
            "--secret",
            secret,
            "--offset",
            "30",
        ],
        &ssh,
    );
    assert_eq!(report["status"], 0, "{report:#}");
    assert!(report["after"].as_str().unwrap().contains("twofold-ssh-ok"));

    // Another user who never gets the code right: refused, nothing stored.
    let bob = TempUser::new();
    bob.set_password(PASSWORD);
    // One keyboard-interactive attempt: otherwise the client starts over (a new QR code).
    let ssh = server.ssh_args(&bob.name, &["-o", "NumberOfPasswordPrompts=1"], command);
    let report = terminal(&["--password", PASSWORD, "--wrong", "3"], &ssh);
    assert_ne!(report["status"], 0, "{report:#}");
    assert!(!report["after"].as_str().unwrap().contains("twofold-ssh-ok"));
    assert!(env.load(&bob.name).is_none());
}
