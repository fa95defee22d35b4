//! `twofold invite` with a real MTA: Debian's exim4 delivers into /var/mail/USER (local
//! delivery, started by the test through the sendmail interface, synchronously with `-odi`),
//! the mail is read as a mail client reads it (Python's `email`), the attached QR code is
//! decoded with zbarimg, and the logins go through the real PAM library.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::sshd::TempUser;
use common::{Env, backup_codes_in, oathtool, terminal, wait_for_fresh_step, zbarimg};
use serde_json::Value;

const POLICY: &str = "[policy]\nrequire = \"all\"\nissuer = \"tf-test\"\n[backup_codes]\ncount = 3";
const PYTHON: &str = "/usr/bin/python3";

/// A user's mailbox, emptied (and the MTA's queue cleared of mail to them) when dropped.
struct Mailbox {
    user: String,
}

impl Mailbox {
    fn of(user: &TempUser) -> Self {
        Self {
            user: user.name.clone(),
        }
    }

    fn path(&self) -> PathBuf {
        Path::new("/var/mail").join(&self.user)
    }

    /// Every message, as tests/helpers/read_mbox.py reads it; attachments land in `dir`.
    fn read(&self, dir: &Path) -> Vec<Value> {
        let helper = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers/read_mbox.py");
        let out = Command::new(PYTHON)
            .arg(helper)
            .arg(self.path())
            .arg(dir)
            .output()
            .expect("run read_mbox.py");
        assert!(
            out.status.success(),
            "read_mbox.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        report["messages"].as_array().unwrap().clone()
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.path());
        let queued = Command::new("exiqgrep")
            .args(["-i", "-r", &format!("^{}@", self.user)])
            .output();
        if let Ok(out) = queued {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("exim4").args(["-Mrm", id]).output();
            }
        }
    }
}

/// An env whose mail goes to the local exim synchronously, and a user with a home (exim's
/// local delivery changes into it) under a world-traversable directory.
fn mail_env(policy: &str) -> (Env, TempUser, Mailbox) {
    common::require_tool("exim4", "exim4-daemon-light");
    assert!(
        Path::new(PYTHON).exists(),
        "{PYTHON} is missing: apt-get install python3"
    );
    let env = Env::new("");
    let sendmail = env.dir.path().join("sendmail-now");
    fs::write(
        &sendmail,
        "#!/bin/sh\nexec /usr/sbin/sendmail -odi \"$@\"\n",
    )
    .unwrap();
    fs::set_permissions(&sendmail, fs::Permissions::from_mode(0o755)).unwrap();
    env.write_policy(&format!(
        "{policy}\n[mail]\nsendmail = \"{}\"\n",
        sendmail.display()
    ));
    env.service_after_password("tf", "");
    let homes = env.dir.path().join("home");
    fs::create_dir(&homes).unwrap();
    fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&homes, fs::Permissions::from_mode(0o755)).unwrap();
    let user = TempUser::with_home(&homes);
    let mailbox = Mailbox::of(&user);
    (env, user, mailbox)
}

fn invite(env: &Env, args: &[&str]) -> (bool, String, String) {
    let out = env.run(&[&["invite"], args].concat());
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn status(env: &Env, user: &str) -> Value {
    let out = env.run(&["status", user, "--json"]);
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A six-digit code that is not `secret`'s within two steps of now.
fn wrong_code(secret: &str) -> String {
    let near: Vec<String> = [-60, -30, 0, 30, 60]
        .iter()
        .map(|o| oathtool(secret, *o))
        .collect();
    (0..20)
        .map(|n| format!("{:06}", n * 111_111 % 1_000_000))
        .find(|c| !near.contains(c))
        .unwrap()
}

/// The mail of a `--with-qr` invitation: checks its form, returns the secret its QR code holds.
fn secret_from_qr_mail(mail: &Value, user: &str) -> String {
    // exim qualifies a local address with the host's name.
    let to = mail["to"].as_str().unwrap();
    assert!(to == user || to.starts_with(&format!("{user}@")), "{to}");
    assert!(mail["subject"].as_str().unwrap().contains(user), "{mail:#}");
    assert!(
        mail["date"].as_str().unwrap().ends_with("+0000"),
        "{mail:#}"
    );
    assert!(mail["message_id"].as_str().unwrap().starts_with('<'));
    let attachments = mail["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 1, "{mail:#}");
    let png = &attachments[0];
    assert_eq!(png["filename"], format!("twofold-{user}.png"));
    assert_eq!(png["content_type"], "image/png");
    assert_eq!(png["disposition"], "attachment", "not inline");
    let uri = zbarimg(Path::new(png["path"].as_str().unwrap()));
    let prefix = format!("otpauth://totp/tf-test:{user}?secret=");
    assert!(uri.starts_with(&prefix), "{uri}");
    let secret = uri[prefix.len()..].split('&').next().unwrap().to_owned();
    assert_eq!(secret.len(), 32, "{uri}");
    // The key as text too, in groups of four.
    let grouped: Vec<String> = secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let text = mail["text"].as_str().unwrap();
    assert!(text.contains(&grouped.join(" ")), "{text}");
    assert!(text.contains("Google Authenticator") && text.contains("Backup codes"));
    secret
}

#[test]
fn a_qr_invitation_is_delivered_and_its_first_code_at_login_turns_2fa_on() {
    let (env, user, mailbox) = mail_env(POLICY);
    let name = user.name.as_str();
    let (ok, stdout, stderr) = invite(&env, &[name, "--with-qr"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains(&format!("{name}: invitation sent to {name}")));
    let mails = mailbox.read(env.dir.path());
    assert_eq!(mails.len(), 1);
    let secret = secret_from_qr_mail(&mails[0], name);

    let shown = status(&env, name);
    assert_eq!(shown["state"], "pending", "{shown:#}");
    assert!(shown["pending_expires"].is_string());
    let text = String::from_utf8_lossy(&env.run(&["status", name]).stdout).into_owned();
    assert!(text.contains("pending (expires "), "{text}");

    // A wrong code does not turn it on.
    let result = env.pamtester_with("tf", name, &[], &[&wrong_code(&secret)]);
    assert!(!result.success, "{}", result.stdout);
    let record = env.load(name).unwrap();
    assert_eq!(
        (status(&env, name)["state"].clone(), record.failures),
        ("pending".into(), 1)
    );

    // The first right code logs in, turns 2FA on and shows the backup codes once.
    wait_for_fresh_step(8);
    let code = oathtool(&secret, 0);
    let result = env.pamtester_with("tf", name, &[], &[&code, ""]);
    assert!(result.success, "{}{}", result.stdout, result.stderr);
    assert!(result.stdout.contains("now set up"), "{}", result.stdout);
    assert_eq!(backup_codes_in(&result.stdout).len(), 3);
    let record = env.load(name).unwrap();
    assert!(record.is_enabled() && record.pending_until.is_none());
    assert_eq!(record.backup_codes_left(), 3);

    // That code is used up.
    let replay = env.pamtester_with("tf", name, &[], &[&code]);
    assert!(!replay.success, "the confirming code worked twice");
}

#[test]
fn an_expired_pending_enrollment_does_not_log_in_and_can_be_sent_again() {
    let (env, user, mailbox) =
        mail_env(&POLICY.replace("[policy]\n", "[policy]\nenroll_at_login = false\n"));
    let name = user.name.as_str();
    assert!(invite(&env, &[name, "--with-qr"]).0);
    let old = secret_from_qr_mail(&mailbox.read(env.dir.path())[0], name);

    // Its time runs out.
    let mut record = env.load(name).unwrap();
    record.pending_until = Some(common::now() as i64 - 1);
    fs::write(env.record(name), record.to_toml().as_bytes()).unwrap();
    let text = String::from_utf8_lossy(&env.run(&["status", name]).stdout).into_owned();
    assert!(text.contains("invitation expired"), "{text}");

    wait_for_fresh_step(8);
    let (result, log) = env.logged(
        &["pamtester", "-v", "tf", name, "authenticate"],
        &oathtool(&old, 0),
    );
    assert!(!result.success, "an expired invitation's code logged in");
    assert!(
        log.iter()
            .any(|l| l.contains("required by policy but not enrolled")),
        "{log:?}"
    );

    // A new invitation replaces the expired one, with a new secret.
    let (ok, _, stderr) = invite(&env, &[name, "--with-qr"]);
    assert!(ok, "{stderr}");
    let mails = mailbox.read(env.dir.path());
    assert_eq!(mails.len(), 2);
    assert_ne!(secret_from_qr_mail(&mails[1], name), old);
    assert_eq!(status(&env, name)["state"], "pending");
}

#[test]
fn an_invitation_without_qr_holds_no_secret_and_the_next_login_enrolls() {
    let (env, user, mailbox) = mail_env(POLICY);
    let name = user.name.as_str();
    let (ok, _, stderr) = invite(&env, &[name, "--deadline", "2999-12-31"]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("[policy] enroll_deadline"), "{stderr}");
    let mails = mailbox.read(env.dir.path());
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail["attachments"].as_array().unwrap().len(), 0);
    let text = mail["text"].as_str().unwrap();
    for needle in [
        "holds no secret",
        "Duo Mobile",
        "2999-12-31",
        "Backup codes",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    let raw = mail["raw"].as_str().unwrap();
    assert!(
        !raw.contains("otpauth") && !raw.contains("secret="),
        "{raw}"
    );
    let base32_run = raw
        .split(|c: char| !matches!(c, 'A'..='Z' | '2'..='7'))
        .map(str::len)
        .max()
        .unwrap();
    assert!(base32_run < 16, "something like a key in the mail: {raw}");
    assert!(env.load(name).is_none(), "no record before the login");

    // The next login shows the QR code and enrolls.
    wait_for_fresh_step(10);
    let argv = env.pam_argv(None, &["pamtester", "-v", "tf", name, "authenticate"]);
    let report = terminal(&[], &argv);
    assert_eq!(report["status"], 0, "{report:#}");
    assert!(env.load(name).unwrap().is_enabled());
    // Enrolled users are not invited again.
    let (ok, stdout, _) = invite(&env, &[name]);
    assert!(ok && stdout.contains("already set up"), "{stdout}");
    assert_eq!(mailbox.read(env.dir.path()).len(), 1);
}

#[test]
fn header_injection_in_mail_to_is_refused_before_anything_happens() {
    let (env, user, mailbox) = mail_env(POLICY);
    let name = user.name.as_str();
    for evil in [
        "x@example.org\nBcc: eve@example.org",
        "x@example.org\r\nSubject: hi",
        "Eve <eve@example.org>",
        "-oQ/tmp/x",
    ] {
        let mail_to = format!("--mail-to={evil}");
        let (ok, stdout, stderr) = invite(&env, &[name, "--with-qr", &mail_to]);
        assert!(!ok, "{evil:?} accepted: {stdout}");
        assert!(stderr.contains("refusing mail address"), "{stderr}");
        assert!(
            !stderr.contains("\nBcc"),
            "the address is quoted escaped: {stderr}"
        );
    }
    assert!(env.load(name).is_none(), "no pending enrollment was made");
    assert!(!mailbox.path().exists(), "no mail was sent");
    let (ok, _, stderr) = invite(&env, &[name, "root", "--mail-to", "x@example.org"]);
    assert!(!ok && stderr.contains("one user"), "{stderr}");
}

#[test]
fn a_failing_sendmail_is_an_error_and_withdraws_the_pending_enrollment() {
    let (env, user, _mailbox) = mail_env(POLICY);
    let name = user.name.as_str();
    for (sendmail, says) in [
        ("/bin/false", "refused the mail"),
        ("/nonexistent/sendmail", "exim4-daemon-light"),
    ] {
        env.write_policy(&format!("{POLICY}\n[mail]\nsendmail = \"{sendmail}\"\n"));
        let out = env.run(&["invite", name, "--with-qr"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert!(stderr.contains("1 invitation not sent"), "{stderr}");
        assert!(env.load(name).is_none(), "pending enrollment left behind");
    }
}

#[test]
fn invitations_without_qr_need_a_login_that_enrolls() {
    let (env, user, mailbox) = mail_env("[policy]\nrequire = \"none\"");
    let (ok, _, stderr) = invite(&env, &[&user.name]);
    assert!(!ok && stderr.contains("does not require 2FA"), "{stderr}");
    assert!(!mailbox.path().exists());
}
