//! The built module under the real Linux-PAM library (pam_wrapper + pamtester), codes from
//! oathtool. Each test has its own policy, store and PAM service directory; the users are
//! existing system accounts (records live only in the test's temp store).

mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::process::Stdio;

use common::{Env, PamResult, SECRET, oathtool, wait_for_fresh_step};

const ACCEPTED: &str = "pamtester: successfully authenticated";
const AUTH_ERR: &str = "pamtester: Authentication failure";
const IGNORED_ALONE: &str = "pamtester: Permission denied";
const UNAVAILABLE: &str = "pamtester: Authentication service cannot retrieve authentication info";
const SERVICE_ERR: &str = "pamtester: Error in service module";

fn enrolled(user: &str) -> Env {
    let env = Env::new("");
    env.service("tf", "", &[]);
    env.enroll(user, SECRET);
    env
}

#[test]
fn oathtool_code_is_accepted_once() {
    let env = enrolled("daemon");
    wait_for_fresh_step(3);
    let code = oathtool(SECRET, 0);
    let first = env.pamtester("tf", "daemon", &code);
    assert_eq!(first.verdict(), ACCEPTED, "{}", first.stderr);
    assert!(
        first.stderr.contains("Verification code:"),
        "{}",
        first.stderr
    );
    let replay = env.pamtester("tf", "daemon", &code);
    assert_eq!(replay.verdict(), AUTH_ERR, "{}", replay.stderr);
    assert!(replay.stderr.contains("Invalid verification code."));
    // The record keeps the accepted step.
    assert!(env.load("daemon").unwrap().last_step.is_some());
}

#[test]
fn wrong_code_is_refused_and_only_counted() {
    let env = enrolled("daemon");
    wait_for_fresh_step(3);
    let code = oathtool(SECRET, 0);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let before = env.load("daemon").unwrap();
    assert_eq!(env.pamtester("tf", "daemon", wrong).verdict(), AUTH_ERR);
    let after = env.load("daemon").unwrap();
    assert_eq!((after.failures, after.last_step), (1, None));
    assert_eq!(after.secret, before.secret);
    assert_eq!(env.pamtester("tf", "daemon", &code).verdict(), ACCEPTED);
    assert_eq!(
        env.load("daemon").unwrap().failures,
        0,
        "a good code resets the count"
    );
}

#[test]
fn previous_step_is_accepted_ten_steps_away_is_not() {
    let env = enrolled("daemon");
    wait_for_fresh_step(3);
    assert_eq!(
        env.pamtester("tf", "daemon", &oathtool(SECRET, 300))
            .verdict(),
        AUTH_ERR
    );
    assert_eq!(
        env.pamtester("tf", "daemon", &oathtool(SECRET, -300))
            .verdict(),
        AUTH_ERR
    );
    assert_eq!(
        env.pamtester("tf", "daemon", &oathtool(SECRET, -30))
            .verdict(),
        ACCEPTED
    );
    // The current code is still fresh (its step is later than the one just used).
    assert_eq!(
        env.pamtester("tf", "daemon", &oathtool(SECRET, 0))
            .verdict(),
        ACCEPTED
    );
}

#[test]
fn spaces_are_stripped_from_the_answer() {
    let env = enrolled("daemon");
    wait_for_fresh_step(3);
    let code = oathtool(SECRET, 0);
    let spaced = format!(" {} {} ", &code[..3], &code[3..]);
    assert_eq!(env.pamtester("tf", "daemon", &spaced).verdict(), ACCEPTED);
}

#[test]
fn hostile_answers_are_refused_without_a_crash() {
    let env = enrolled("daemon");
    let long = "7".repeat(10_000);
    for answer in ["abcdef", "12345a", "١٢٣٤٥٦", "", long.as_str()] {
        let result = env.pamtester("tf", "daemon", answer);
        assert_eq!(
            result.verdict(),
            AUTH_ERR,
            "answer {:?}: {}",
            &answer[..answer.len().min(12)],
            result.stderr
        );
    }
    // None of them touched the record: the right code still works.
    wait_for_fresh_step(3);
    assert_eq!(
        env.pamtester("tf", "daemon", &oathtool(SECRET, 0))
            .verdict(),
        ACCEPTED
    );
}

#[test]
fn required_user_without_record_is_denied() {
    let env = Env::new("[policy]\nrequire = \"all\"\nenroll_at_login = false");
    // Even with a permissive module after it, a required module's failure denies.
    env.service("tf", "", &["auth required pam_permit.so"]);
    let result = env.pamtester("tf", "daemon", "");
    assert_eq!(result.verdict(), AUTH_ERR, "{}", result.stderr);
    assert!(result.stderr.contains("not set up"), "{}", result.stderr);
    assert!(!result.stderr.contains("Verification code:"));
}

#[test]
fn not_required_user_without_record_is_ignored_or_passes_with_nullok() {
    let env = Env::new("");
    env.service("alone", "", &[]);
    env.service("stacked", "", &["auth required pam_permit.so"]);
    env.service("nullok", "nullok", &[]);
    // PAM_IGNORE: alone in a stack it cannot pass; the rest of the stack decides.
    assert_eq!(
        env.pamtester("alone", "daemon", "").verdict(),
        IGNORED_ALONE
    );
    assert_eq!(env.pamtester("stacked", "daemon", "").verdict(), ACCEPTED);
    assert_eq!(env.pamtester("nullok", "daemon", "").verdict(), ACCEPTED);
}

#[test]
fn group_policy_uses_the_system_groups() {
    let env =
        Env::new("[policy]\nrequire = \"groups\"\ngroups = [\"root\"]\nenroll_at_login = false");
    env.service("tf", "", &["auth required pam_permit.so"]);
    // root is in group root: required, not enrolled, denied. daemon is not: the stack decides.
    assert_eq!(env.pamtester("tf", "root", "").verdict(), AUTH_ERR);
    assert_eq!(env.pamtester("tf", "daemon", "").verdict(), ACCEPTED);
    // A user the system does not know cannot be judged against groups.
    assert_ne!(
        env.pamtester("tf", "no-such-user-tf", "").verdict(),
        ACCEPTED
    );
}

#[test]
fn unreadable_records_fail_closed() {
    let env = Env::new("");
    env.service("tf", "nullok", &["auth required pam_permit.so"]);
    let record = env.record("daemon");
    type MakeBadRecord<'a> = Box<dyn Fn() + 'a>;
    let cases: Vec<(&str, MakeBadRecord)> = vec![
        (
            "malformed",
            Box::new(|| fs::write(&record, "version = 1\nsecret = [").unwrap()),
        ),
        ("empty", Box::new(|| fs::write(&record, "").unwrap())),
        (
            "100 MB",
            Box::new(|| {
                // Sparse: refused by its size before a byte is read.
                fs::File::create(&record)
                    .unwrap()
                    .set_len(100 << 20)
                    .unwrap();
                fs::set_permissions(&record, fs::Permissions::from_mode(0o600)).unwrap();
            }),
        ),
        (
            "huge",
            Box::new(|| fs::write(&record, vec![b'#'; 200_000]).unwrap()),
        ),
        (
            "loose mode",
            Box::new(|| {
                env.enroll("daemon", SECRET);
                fs::set_permissions(&record, fs::Permissions::from_mode(0o644)).unwrap();
            }),
        ),
        (
            "symlink",
            Box::new(|| {
                let target = env.dir.path().join("elsewhere.toml");
                fs::write(&target, "").unwrap();
                symlink(&target, &record).unwrap();
            }),
        ),
        ("directory", Box::new(|| fs::create_dir(&record).unwrap())),
        (
            "fifo",
            Box::new(|| {
                let ok = std::process::Command::new("mkfifo")
                    .arg(&record)
                    .status()
                    .unwrap()
                    .success();
                assert!(ok);
            }),
        ),
    ];
    for (what, make) in cases {
        let _ = fs::remove_file(&record);
        let _ = fs::remove_dir(&record);
        fs::set_permissions(env.store(), fs::Permissions::from_mode(0o700)).unwrap();
        make();
        let result = env.pamtester("tf", "daemon", "123456");
        assert_eq!(result.verdict(), UNAVAILABLE, "{what}: {}", result.stderr);
    }
}

#[test]
fn missing_or_loose_store_directory_fails_closed() {
    let env = Env::new("");
    env.service("tf", "nullok", &[]);
    fs::set_permissions(env.store(), fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(env.pamtester("tf", "daemon", "").verdict(), UNAVAILABLE);
    fs::remove_dir(env.store()).unwrap();
    assert_eq!(env.pamtester("tf", "daemon", "").verdict(), UNAVAILABLE);
}

#[test]
fn configuration_mistakes_deny() {
    let env = Env::new("");
    env.service("typo", "nulok", &["auth required pam_permit.so"]);
    assert_eq!(env.pamtester("typo", "daemon", "").verdict(), SERVICE_ERR);
    env.write_policy("[policy]\nrequire = \"everybody\"");
    env.service("badpolicy", "nullok", &["auth required pam_permit.so"]);
    assert_eq!(
        env.pamtester("badpolicy", "daemon", "").verdict(),
        SERVICE_ERR
    );
    // A policy path named explicitly must exist.
    fs::remove_file(env.policy()).unwrap();
    assert_eq!(
        env.pamtester("badpolicy", "daemon", "").verdict(),
        SERVICE_ERR
    );
}

/// Moving the policy file aside must not switch 2FA off: the module's default path, missing,
/// denies everyone through it (here /etc/twofold is hidden behind an empty tmpfs).
#[test]
fn a_missing_default_policy_fails_closed() {
    let env = Env::new("");
    fs::write(
        env.services().join("default"),
        format!("auth required {} nullok\n", common::module()),
    )
    .unwrap();
    let sink = common::SyslogSink::new(&env);
    let inner = env.pam_argv(
        Some(sink.dir()),
        &["pamtester", "-v", "default", "daemon", "authenticate"],
    );
    let out = std::process::Command::new("unshare")
        .args(["--mount", "sh", "-c"])
        .arg("if [ -d /etc/twofold ]; then mount -t tmpfs twofold-none /etc/twofold; fi; exec \"$@\"")
        .arg("sh")
        .args(&inner)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(SERVICE_ERR), "{stderr}");
    let log = sink.drain();
    assert!(
        log.iter()
            .any(|l| l.contains("/etc/twofold/twofold.toml does not exist")
                && l.contains("fails closed")),
        "{log:?}"
    );
}

/// Every value in a log line is quoted: an rhost (or user name) cannot forge another field.
#[test]
fn log_fields_are_quoted_so_values_cannot_forge_fields() {
    let env = enrolled("daemon");
    let (_, log) = env.logged(
        &[
            "pamtester",
            "-v",
            "-I",
            "rhost=10.1.1.1 user=root",
            "tf",
            "daemon",
            "authenticate",
        ],
        "000000",
    );
    let line = log
        .iter()
        .find(|l| l.contains("denied"))
        .expect("a denial line");
    assert!(line.contains(r#"user="daemon""#), "{line}");
    assert!(line.contains(r#"rhost="10.1.1.1 user=root""#), "{line}");
    assert!(!line.contains(" user=root "), "{line}");
}

/// Anyone can send sshd a user name of several KiB. Its log lines are cut to fit the logger
/// (rsyslog takes 8 KiB), so the fields after the name, the remote host among them, are
/// always there, and a field of its own says how long the name was.
#[test]
fn a_huge_user_name_cannot_push_the_remote_host_out_of_the_log() {
    let env = enrolled("daemon");
    let name = "x".repeat(5000);
    let (result, log) = env.logged(
        &[
            "pamtester",
            "-v",
            "-I",
            "rhost=203.0.113.9",
            "tf",
            &name,
            "authenticate",
        ],
        "000000",
    );
    assert!(!result.success, "{}", result.stderr);
    assert!(!log.is_empty(), "no syslog line");
    for line in &log {
        assert!(line.len() < 2048, "a line of {} bytes: {line}", line.len());
        assert!(line.contains(r#"rhost="203.0.113.9""#), "{line}");
    }
    assert!(
        log.iter().any(|l| l.contains("…\" user_bytes=\"5000\" ")),
        "no line says the name was cut: {log:?}"
    );
}

/// The module exports the two hooks it implements and nothing else: libpam asks a module for
/// the account, session and password hooks too when it has them.
#[test]
fn only_the_auth_hooks_are_exported() {
    common::require_tool("nm", "binutils");
    let out = std::process::Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(common::module_path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut hooks: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|name| name.starts_with("pam_sm_"))
        .map(str::to_owned)
        .collect();
    hooks.sort();
    assert_eq!(hooks, ["pam_sm_authenticate", "pam_sm_setcred"]);
}

#[test]
fn custom_prompt_reaches_the_user() {
    let env = Env::new("");
    env.enroll("daemon", SECRET);
    env.service("tf", "[prompt=One-time code: ]", &[]);
    let result = env.pamtester("tf", "daemon", "000000");
    assert!(
        result.stderr.contains("One-time code: "),
        "{}",
        result.stderr
    );
}

/// Starts `logins` pamtester processes for one user, answers them all with `answer` as close
/// together as possible, and returns how many were let in.
fn race(env: &Env, user: &str, answer: &str, logins: usize) -> usize {
    // All start and wait at the prompt, then get their answers as close together as possible.
    let children: Vec<_> = (0..logins)
        .map(|_| {
            let mut child = env
                .pamtester_command("tf", user)
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            (child.stdin.take().unwrap(), child)
        })
        .collect();
    let mut waiting = Vec::new();
    for (mut stdin, child) in children {
        use std::io::Write;
        let _ = stdin.write_all(format!("{answer}\n").as_bytes());
        waiting.push(child);
    }
    waiting
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .filter(|o| o.status.success())
        .count()
}

#[test]
fn racing_logins_accept_a_code_exactly_once() {
    // The 15 losers count as failures: lock-out off so the second round is not locked.
    let env = Env::new("[lockout]\nmax_failures = 0");
    env.service("tf", "", &[]);
    env.enroll("daemon", SECRET);
    for round in 0..2 {
        wait_for_fresh_step(8);
        let successes = race(&env, "daemon", &oathtool(SECRET, 30 * round), 16);
        assert_eq!(
            successes, 1,
            "round {round}: one code accepted {successes} times"
        );
    }
}

#[test]
fn racing_wrong_codes_are_all_counted() {
    let env = Env::new("[lockout]\nmax_failures = 0");
    env.service("tf", "", &[]);
    env.enroll("daemon", SECRET);
    wait_for_fresh_step(8);
    let code = oathtool(SECRET, 0);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_eq!(race(&env, "daemon", wrong, 16), 0);
    assert_eq!(env.load("daemon").unwrap().failures, 16, "no lost update");
}

#[test]
fn syslog_says_who_and_why_and_never_the_code() {
    let env = enrolled("daemon");
    wait_for_fresh_step(3);
    let code = oathtool(SECRET, 0);
    let (first, accepted) = env.pamtester_logged("tf", "daemon", &code);
    assert_eq!(first.verdict(), ACCEPTED);
    let (_, replayed) = env.pamtester_logged("tf", "daemon", &code);
    fs::write(
        env.record("daemon"),
        "version = 1\nstate = \"enabled\"\nsecret = \n",
    )
    .unwrap();
    let (broken, malformed) = env.pamtester_logged("tf", "daemon", &code);
    assert_eq!(broken.verdict(), UNAVAILABLE);

    let one = |lines: &[String], what: &str| -> String {
        assert_eq!(lines.len(), 1, "{what}: {lines:?}");
        lines[0].clone()
    };
    let accepted = one(&accepted, "accepted");
    // Facility authpriv (10), severity info (6): <86>.
    assert!(accepted.starts_with("<86>"), "{accepted}");
    assert!(accepted.contains("pam_twofold["), "{accepted}");
    assert!(
        accepted.contains(r#"code accepted; user="daemon" service="tf" rhost="-""#),
        "{accepted}"
    );
    let replayed = one(&replayed, "replayed");
    assert!(
        replayed.contains(r#"code already used (replay) (1 consecutive failures); user="daemon""#),
        "{replayed}"
    );
    let malformed = one(&malformed, "malformed");
    let path = env.record("daemon");
    assert!(
        malformed.contains(&format!("record {} is malformed: line 3", path.display())),
        "{malformed}"
    );
    assert!(malformed.starts_with("<83>"), "authpriv.err: {malformed}");
    for line in [accepted, replayed, malformed] {
        assert!(
            !line.contains(&code) && !line.contains(SECRET) && !line.contains("JBSW"),
            "{line}"
        );
    }
}

/// A throwaway user whose password is s3cret, checked by the real pam_unix.
fn user_with_password() -> common::sshd::TempUser {
    let user = common::sshd::TempUser::new();
    user.set_password("s3cret");
    user
}

/// The shipped single-prompt stack (pam.d-examples/vpn) with this build's module and policy.
fn vpn_stack(env: &Env, name: &str, split_args: &str) {
    let module = format!("{} config={}", common::module(), env.policy().display());
    let shipped =
        fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/pam.d-examples/vpn")).unwrap();
    let mut text = String::new();
    for line in shipped.lines().filter(|l| l.starts_with("auth")) {
        let line = line.replace("pam_twofold.so", &module);
        let line = line.replace("split_code", &format!("split_code {split_args}"));
        text.push_str(&line);
        text.push('\n');
    }
    assert_eq!(
        text.matches(&module).count(),
        2,
        "two twofold lines: {text}"
    );
    fs::write(env.services().join(name), text).unwrap();
}

#[test]
fn split_code_stack_asks_once_and_judges_the_code_after_the_password() {
    let user = user_with_password();
    let env = Env::new("");
    env.enroll(&user.name, SECRET);
    vpn_stack(&env, "vpn", "");
    wait_for_fresh_step(8);
    let code = oathtool(SECRET, 0);
    // A wrong password with the right code: refused, and the code was not even judged, so
    // it still works with the right password.
    let wrong_password = env.pamtester("vpn", &user.name, &format!("wrong{code}"));
    assert_eq!(
        wrong_password.verdict(),
        AUTH_ERR,
        "{}",
        wrong_password.stderr
    );
    assert_eq!(
        env.load(&user.name).unwrap().last_step,
        None,
        "code not judged"
    );
    let good = env.pamtester("vpn", &user.name, &format!("s3cret{code}"));
    assert_eq!(good.verdict(), ACCEPTED, "{}", good.stderr);
    assert_eq!(
        good.stderr
            .matches("Password & verification code: ")
            .count(),
        1,
        "{}",
        good.stderr
    );
    assert!(
        !good.stderr.contains("\nPassword: "),
        "asked once: {}",
        good.stderr
    );
    // The right password with a wrong code, or with no code: refused.
    assert_eq!(
        env.pamtester("vpn", &user.name, "s3cret000000").verdict(),
        AUTH_ERR
    );
    assert_eq!(
        env.pamtester("vpn", &user.name, "s3cret").verdict(),
        AUTH_ERR
    );
}

/// Without the password nothing is counted or revealed: the attack review locked users and
/// told enrolled from unenrolled accounts with wrong password + wrong code.
#[test]
fn split_code_stack_counts_and_reveals_nothing_without_the_password() {
    let enrolled = user_with_password();
    let unenrolled = user_with_password();
    let env = Env::new("[policy]\nrequire = \"all\"");
    env.enroll(&enrolled.name, SECRET);
    vpn_stack(&env, "vpn", "");
    let mut shown = Vec::new();
    // (pam_unix itself tells unknown users apart: that is its oracle, not ours.)
    for (name, tries) in [(&enrolled.name, 6), (&unenrolled.name, 2)] {
        for _ in 0..tries {
            let out = env.pamtester("vpn", name, "guess123456");
            assert_eq!(out.verdict(), AUTH_ERR, "{name}: {}", out.stderr);
            shown.push(format!("{}{}", out.stdout, out.stderr).replace(name.as_str(), "USER"));
        }
    }
    assert!(
        shown.windows(2).all(|w| w[0] == w[1]),
        "the same for every user: {shown:#?}"
    );
    assert!(!shown[0].contains("verification code."), "{}", shown[0]);
    let record = env.load(&enrolled.name).unwrap();
    assert_eq!(
        (record.failures, record.locked_until),
        (0, None),
        "nothing counted"
    );
    assert!(env.load(&unenrolled.name).is_none(), "nothing enrolled");
    wait_for_fresh_step(5);
    let good = env.pamtester(
        "vpn",
        &enrolled.name,
        &format!("s3cret{}", oathtool(SECRET, 0)),
    );
    assert_eq!(good.verdict(), ACCEPTED, "not locked: {}", good.stderr);
}

/// A required user without 2FA enrolls in the judging line, after the password, and that
/// first login goes through (the password reached pam_unix).
#[test]
fn split_code_stack_enrolls_after_the_password_and_lets_the_first_login_in() {
    let user = user_with_password();
    let env = Env::new("[policy]\nrequire = \"all\"\n[backup_codes]\ncount = 0");
    vpn_stack(&env, "vpn", "");
    wait_for_fresh_step(10);
    let argv = env.pam_argv(
        None,
        &["pamtester", "-v", "vpn", &user.name, "authenticate"],
    );
    let report = common::terminal(&["--password", "s3cret"], &argv);
    assert_eq!(report["status"], 0, "{report:#}");
    assert!(
        report["secret"].as_str().is_some_and(|s| s.len() == 32),
        "{report:#}"
    );
    assert!(env.load(&user.name).unwrap().is_enabled());
}

#[test]
fn use_first_pass_takes_the_code_from_the_applications_password() {
    let user = user_with_password();
    let env = Env::new("");
    env.enroll(&user.name, SECRET);
    // The application supplies password+code as PAM_AUTHTOK (here pam_wrapper's pam_set_items,
    // from the environment, as a VPN server would).
    let set_items = common::pam_wrapper_module("pam_set_items.so");
    vpn_stack(&env, "vpn-inner", "use_first_pass");
    let inner = fs::read_to_string(env.services().join("vpn-inner")).unwrap();
    fs::write(
        env.services().join("vpn"),
        format!("auth required {}\n{inner}", set_items.display()),
    )
    .unwrap();
    wait_for_fresh_step(8);
    let run = |authtok: &str| {
        let token = format!("PAM_AUTHTOK={authtok}");
        let argv = env.pam_argv(
            None,
            &[
                "env",
                &token,
                "pamtester",
                "-v",
                "vpn",
                &user.name,
                "authenticate",
            ],
        );
        let out = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, _) = run(&format!("wrong{}", oathtool(SECRET, 0)));
    assert!(!ok, "wrong password");
    let (ok, stderr) = run(&format!("s3cret{}", oathtool(SECRET, 0)));
    assert!(
        ok,
        "the code was not used up by the wrong password: {stderr}"
    );
    assert!(
        !stderr.contains("code:") && !stderr.contains("Password:"),
        "nothing asked: {stderr}"
    );
    let (ok, _) = run("s3cret");
    assert!(!ok, "no code at the end");
}

#[test]
fn forward_pass_is_refused_with_a_pointer_to_the_safe_stack() {
    let user = user_with_password();
    let env = Env::new("");
    env.enroll(&user.name, SECRET);
    env.service(
        "tf",
        "forward_pass",
        &["auth required pam_unix.so use_first_pass"],
    );
    let (out, log) =
        env.pamtester_logged("tf", &user.name, &format!("s3cret{}", oathtool(SECRET, 0)));
    assert!(!out.success);
    assert!(
        log.iter()
            .any(|l| l.contains("forward_pass") && l.contains("split_code")),
        "{log:?}"
    );
}

#[test]
fn hostile_user_names_are_refused() {
    let env = Env::new("[policy]\nrequire = \"all\"");
    env.service("tf", "nullok", &["auth required pam_permit.so"]);
    let long = "x".repeat(300);
    for user in [long.as_str(), "../../etc/shadow", ".hidden", "-rf", "a/b"] {
        let result = env.pamtester("tf", user, "123456");
        assert_eq!(
            result.verdict(),
            "pamtester: User not known to the underlying authentication module",
            "{user}: {}",
            result.stderr
        );
    }
    assert_eq!(
        fs::read_dir(env.store()).unwrap().count(),
        0,
        "nothing created"
    );
}

#[test]
fn clock_going_backwards_is_refused_with_a_clear_syslog_line() {
    let env = enrolled("daemon");
    // The record says a later step was already used: as after the clock was turned back.
    let future = common::now() / 30 + 100;
    let store = pam_twofold::FileStore::new(env.store());
    let user = pam_twofold::UserName::parse("daemon").unwrap();
    pam_twofold::Store::update(&store, &user, |r| {
        r.as_mut().unwrap().last_step = Some(future)
    })
    .unwrap();
    wait_for_fresh_step(3);
    let (result, lines) = env.pamtester_logged("tf", "daemon", &oathtool(SECRET, 0));
    assert_eq!(result.verdict(), AUTH_ERR, "{lines:?}");
    let clear = |l: &String| {
        l.contains("system clock is behind the last accepted code") && l.contains("check NTP")
    };
    assert!(lines.iter().any(clear), "{lines:?}");
    assert_eq!(
        env.load("daemon").unwrap().failures,
        0,
        "not counted against the user"
    );
}

/// The code is judged for the moment the answer arrives (window 0, so one step boundary
/// decides): a slow user's current code is accepted, and the code of the moment the prompt
/// went out is refused once its step has passed.
#[test]
fn a_code_is_judged_when_the_answer_arrives() {
    let env = Env::new("[totp]\nwindow = 0\nmax_drift = 0");
    env.enroll("daemon", SECRET);
    env.service("tf", "", &[]);
    let answer_late = |code_at_prompt: bool| -> PamResult {
        // Start with 3-5 s left in the step, answer after the next step began.
        loop {
            let left = 30 - common::now() % 30;
            if (3..=5).contains(&left) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let early = oathtool(SECRET, 0);
        let mut child = env
            .pamtester_command("tf", "daemon")
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_secs(7));
        let code = if code_at_prompt {
            early
        } else {
            oathtool(SECRET, 0)
        };
        let mut stdin = child.stdin.take().unwrap();
        let _ = std::io::Write::write_all(&mut stdin, format!("{code}\n").as_bytes());
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        PamResult {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    let slow = answer_late(false);
    assert_eq!(
        slow.verdict(),
        ACCEPTED,
        "the current code, typed slowly: {}",
        slow.stderr
    );
    let stale = answer_late(true);
    assert_eq!(
        stale.verdict(),
        AUTH_ERR,
        "the prompt's code after its step: {}",
        stale.stderr
    );
}

/// A counter-based token at the end of the counter's range: the counter cannot move past an
/// accepted code, so no code is accepted at all (the record is refused), instead of one code
/// logging in again and again.
#[test]
fn a_hotp_counter_at_its_end_never_accepts_a_code_twice() {
    let env = enrolled("daemon");
    let path = env.record("daemon");
    let text = fs::read_to_string(&path).unwrap();
    fs::write(
        &path,
        text.replacen(
            "version = 1",
            "version = 1\nkind = \"hotp\"\ncounter = 18446744073709551615",
            1,
        ),
    )
    .unwrap();
    let secret = pam_twofold::otp::Secret::from_base32(SECRET).unwrap();
    let code =
        pam_twofold::otp::hotp(&secret, pam_twofold::otp::Algorithm::SHA1, 6, u64::MAX).to_string();
    for attempt in 1..=2 {
        let result = env.pamtester("tf", "daemon", &code);
        assert!(!result.success, "attempt {attempt}: {}", result.stderr);
    }
}
