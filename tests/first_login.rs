//! Enroll at login through the real PAM library: a person at a terminal (pexpect on a pty)
//! reads the QR code and key from the login itself, answers with the oathtool code.

mod common;

use common::{Env, terminal, wait_for_fresh_step};

const POLICY: &str = "[policy]\nrequire = \"all\"\nissuer = \"tf-test\"\n[backup_codes]\ncount = 3";

fn pamtester(env: &Env, user: &str) -> Vec<String> {
    env.pam_argv(None, &["pamtester", "-v", "tf", user, "authenticate"])
}

#[test]
fn first_login_shows_a_scannable_qr_and_activates_with_the_first_code() {
    let env = Env::new(POLICY);
    env.service_after_password("tf", "");
    let png = env.dir.path().join("seen.png");
    wait_for_fresh_step(10);
    let report = terminal(
        &["--png", png.to_str().unwrap()],
        &pamtester(&env, "daemon"),
    );
    assert_eq!(report["status"], 0, "{report:#}");
    let secret = report["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 32);
    let uri = format!("otpauth://totp/tf-test:daemon?secret={secret}&issuer=tf-test");
    assert_eq!(
        report["decoded"],
        uri.as_str(),
        "the QR drawn in the terminal decodes to the URI"
    );
    let shown = report["shown"].as_str().unwrap();
    assert!(
        shown.contains("\nTwo-factor authentication is required"),
        "{shown}"
    );
    let after = report["after"].as_str().unwrap();
    assert!(
        after.contains("now set up") && after.contains("successfully authenticated"),
        "{after}"
    );
    assert_eq!(common::backup_codes_in(after).len(), 3, "{after}");

    let record = env.load("daemon").expect("active record");
    assert!(record.is_enabled());
    assert_eq!(record.secret.to_base32().as_str(), secret);
    assert_eq!(record.backup_codes_left(), 3);

    // The second login asks for a code, and the next step's code from the app works.
    let report = terminal(
        &["--code-login", "--secret", secret, "--offset", "30"],
        &pamtester(&env, "daemon"),
    );
    assert_eq!(report["status"], 0, "{report:#}");
    assert!(
        report["after"]
            .as_str()
            .unwrap()
            .contains("successfully authenticated")
    );
}

#[test]
fn three_wrong_first_codes_leave_nothing_behind() {
    let env = Env::new(POLICY);
    env.service_after_password("tf", "");
    let report = terminal(&["--wrong", "3"], &pamtester(&env, "daemon"));
    assert_ne!(report["status"], 0, "{report:#}");
    let after = report["after"].as_str().unwrap();
    assert!(after.contains("Nothing was set up"), "{after}");
    assert!(after.contains("Authentication failure"), "{after}");
    assert!(!env.record("daemon").exists());
    assert_eq!(
        std::fs::read_dir(env.store())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".toml")
            })
            .count(),
        0
    );

    // One wrong code, then the right one.
    wait_for_fresh_step(10);
    let report = terminal(&["--wrong", "1"], &pamtester(&env, "daemon"));
    assert_eq!(report["status"], 0, "{report:#}");
    assert!(env.load("daemon").is_some());
}

#[test]
fn two_first_logins_at_once_keep_exactly_one_enrollment() {
    let env = Env::new(POLICY);
    env.service_after_password("tf", "");
    let barrier = env.dir.path().join("barrier");
    std::fs::create_dir(&barrier).unwrap();
    wait_for_fresh_step(15);
    let args = ["--barrier", barrier.to_str().unwrap(), "--parties", "2"];
    let reports: Vec<serde_json::Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| terminal(&args, &pamtester(&env, "daemon"))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners: Vec<_> = reports.iter().filter(|r| r["status"] == 0).collect();
    assert_eq!(winners.len(), 1, "{reports:#?}");
    let loser = reports.iter().find(|r| r["status"] != 0).unwrap();
    assert!(
        loser["after"].as_str().unwrap().contains("another login"),
        "{loser:#}"
    );
    let record = env.load("daemon").unwrap();
    assert_eq!(
        record.secret.to_base32().as_str(),
        winners[0]["secret"].as_str().unwrap()
    );
}

#[test]
fn enroll_at_login_can_be_turned_off() {
    let env = Env::new("[policy]\nrequire = \"all\"\nenroll_at_login = false");
    env.service_after_password("tf", "");
    let result = env.pamtester("tf", "daemon", "");
    assert_eq!(result.verdict(), "pamtester: Authentication failure");
    assert!(
        result
            .stderr
            .contains("Ask your administrator to enroll you"),
        "{}",
        result.stderr
    );
    assert!(!result.stdout.contains("QR"));
}

#[test]
fn nothing_secret_reaches_syslog_in_a_full_set_of_logins() {
    // Enrollment at login, a code, a replay, wrong codes up to the lock, an admin unlock,
    // a backup code, malformed input: every line the module and the CLI logged is checked.
    let env = Env::new(
        "[policy]\nrequire = \"all\"\nissuer = \"tf-test\"\n[backup_codes]\ncount = 3\n[lockout]\nmax_failures = 3",
    );
    env.service_after_password("tf", "");
    let sink = common::SyslogSink::new(&env);
    let logged_pamtester = |answer: &str| {
        let argv = env.pam_argv(
            Some(sink.dir()),
            &["pamtester", "-v", "tf", "daemon", "authenticate"],
        );
        let out = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                let _ = c
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(format!("{answer}\n").as_bytes());
                c.wait_with_output()
            })
            .unwrap();
        out.status.success()
    };
    wait_for_fresh_step(15);
    let argv = env.pam_argv(
        Some(sink.dir()),
        &["pamtester", "-v", "tf", "daemon", "authenticate"],
    );
    let report = terminal(&[], &argv);
    assert_eq!(report["status"], 0, "{report:#}");
    let secret = report["secret"].as_str().unwrap().to_owned();
    let backup = common::backup_codes_in(report["after"].as_str().unwrap());
    assert_eq!(backup.len(), 3);

    let code = common::oathtool(&secret, 30);
    assert!(logged_pamtester(&code));
    assert!(!logged_pamtester(&code), "replay");
    let wrong = ["000000", "111111", "222222"]
        .into_iter()
        .filter(|w| *w != common::oathtool(&secret, 0) && *w != code)
        .collect::<Vec<_>>();
    for w in &wrong {
        assert!(!logged_pamtester(w));
    }
    assert!(!logged_pamtester("abc"), "malformed");
    // Unlock through the CLI, its audit line captured too.
    let (bin, policy) = (common::twofold_bin(), env.policy());
    let unlock = env.pam_argv(
        Some(sink.dir()),
        &[
            bin.to_str().unwrap(),
            "--config",
            policy.to_str().unwrap(),
            "unlock",
            "daemon",
        ],
    );
    assert!(
        std::process::Command::new(&unlock[0])
            .args(&unlock[1..])
            .status()
            .unwrap()
            .success()
    );
    assert!(logged_pamtester(&backup[0]), "backup code");

    let lines = sink.drain();
    assert!(lines.len() >= 8, "{lines:#?}");
    let lower = secret.to_lowercase();
    for line in &lines {
        for needle in [
            secret.as_str(),
            lower.as_str(),
            &secret[..16],
            code.as_str(),
        ] {
            assert!(!line.contains(needle), "{needle} in {line}");
        }
        for b in &backup {
            assert!(
                !line.contains(b.as_str()) && !line.contains(&b.replace('-', "")),
                "backup code in {line}"
            );
        }
        for w in &wrong {
            assert!(!line.contains(w), "typed code in {line}");
        }
    }
    println!(
        "syslog: {} lines from a full set of logins, none with a secret or a code",
        lines.len()
    );
}

/// A stack where twofold runs first (or alone) shows no first factor: whoever knows a user
/// name would otherwise be shown a QR code and enroll the account for themselves.
#[test]
fn enroll_at_login_is_refused_without_a_first_factor() {
    let env = Env::new(POLICY);
    env.service("alone", "", &[]);
    env.service(
        "before-password",
        "",
        &[&format!(
            "auth requisite {} passdb=/nonexistent",
            common::pam_wrapper_module("pam_matrix.so").display()
        )],
    );
    for service in ["alone", "before-password"] {
        let (result, log) = env.pamtester_logged(service, "daemon", "123456");
        assert!(!result.success, "{service}: {}", result.stderr);
        let shown = format!("{}{}", result.stdout, result.stderr);
        assert!(
            !shown.contains("otpauth") && !shown.contains("type this key"),
            "{service}: a key was shown: {shown}"
        );
        assert!(!env.record("daemon").exists(), "{service}: enrolled");
        assert!(
            log.iter()
                .any(|l| l.contains("enroll-at-login refused: no first factor")),
            "{service}: {log:?}"
        );
    }
}
