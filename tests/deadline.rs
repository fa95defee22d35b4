//! `[policy] enroll_deadline` through the real PAM library: before the day a required user
//! without 2FA is offered the enrollment and may put it off (the login goes on, logged); on
//! the day and after, enrollment is mandatory. The module reads the real clock, so the days
//! are far in the future, today (UTC) and far in the past.

mod common;

use common::sshd::TempUser;
use common::{Env, now};
use serde_json::Value;

const FUTURE: &str = "2999-12-31";
const PAST: &str = "2000-01-01";

fn policy(deadline: &str, enroll_at_login: bool) -> String {
    format!(
        "[policy]\nrequire = \"all\"\nenroll_at_login = {enroll_at_login}\nenroll_deadline = \"{deadline}\""
    )
}

/// Today's date in UTC, `YYYY-MM-DD`.
fn today() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%F"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Days left before FUTURE, counted as the module counts them.
fn days_to_future() -> u64 {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", FUTURE, "+%s"])
        .output()
        .unwrap();
    let starts: u64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (starts - now()).div_ceil(86_400)
}

#[test]
fn before_the_deadline_the_enrollment_may_be_put_off() {
    let env = Env::new(&policy(FUTURE, true));
    env.service_after_password("tf", "");
    let (result, log) = env.logged(&["pamtester", "-v", "tf", "daemon", "authenticate"], "n");
    assert!(result.success, "{}{}", result.stdout, result.stderr);
    let days = days_to_future();
    assert!(
        result
            .stdout
            .contains(&format!("on {FUTURE} ({days} days left)")),
        "{}",
        result.stdout
    );
    assert!(
        result.stderr.contains("Set it up now? [Y/n]"),
        "{}",
        result.stderr
    );
    assert!(!result.stdout.contains("QR code"), "{}", result.stdout);
    assert!(
        log.iter()
            .any(|l| l.contains("enrollment put off") && l.contains("daemon")),
        "{log:?}"
    );
    assert!(env.load("daemon").is_none());
}

#[test]
fn before_the_deadline_yes_shows_the_enrollment_and_it_must_then_finish() {
    let env = Env::new(&policy(FUTURE, true));
    env.service_after_password("tf", "");
    let result = env.pamtester_with("tf", "daemon", &[], &["y", "", "x", "x", "x"]);
    assert!(
        result.stdout.contains("Scan this QR code"),
        "{}",
        result.stdout
    );
    assert!(!result.success, "three wrong first codes");
    assert!(env.load("daemon").is_none());
}

#[test]
fn before_the_deadline_without_enroll_at_login_the_login_goes_on_and_says_when() {
    let env = Env::new(&policy(FUTURE, false));
    env.service_after_password("tf", "");
    let result = env.pamtester("tf", "daemon", "");
    assert!(result.success, "{}{}", result.stdout, result.stderr);
    assert!(
        result.stdout.contains("Ask your administrator"),
        "{}",
        result.stdout
    );
}

#[test]
fn on_the_deadline_day_and_after_it_enrollment_is_mandatory() {
    for day in [today(), PAST.to_owned()] {
        // Enroll-at-login on: the QR code comes at once, no way to put it off.
        let env = Env::new(&policy(&day, true));
        env.service_after_password("tf", "");
        let result = env.pamtester_with("tf", "daemon", &[], &["n", "n", "n"]);
        assert!(!result.success, "{day}: {}", result.stdout);
        assert!(
            result.stdout.contains("Scan this QR code"),
            "{}",
            result.stdout
        );
        assert!(
            !result.stderr.contains("Set it up now"),
            "{}",
            result.stderr
        );
        // Off: denied.
        let env = Env::new(&policy(&day, false));
        env.service_after_password("tf", "");
        let (result, log) = env.logged(&["pamtester", "-v", "tf", "daemon", "authenticate"], "");
        assert!(
            !result.success,
            "{day}: not enrolled, past the deadline, let in"
        );
        assert!(
            log.iter()
                .any(|l| l.contains("required by policy but not enrolled")),
            "{log:?}"
        );
    }
}

fn listed(env: &Env, user: &str) -> Value {
    let out = env.run(&["list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.into_iter()
        .find(|r| r["user"] == user)
        .unwrap_or_else(|| panic!("{user} not listed"))
}

#[test]
fn list_and_status_show_who_is_missing_and_the_days_left() {
    let user = TempUser::new();
    let env = Env::new(&policy(FUTURE, true));
    let row = listed(&env, &user.name);
    assert_eq!(row["state"], "not enrolled");
    assert_eq!(row["days_left"], days_to_future());
    assert_eq!(row["enroll_deadline"], FUTURE);
    let table = String::from_utf8_lossy(&env.run(&["list"]).stdout).into_owned();
    let line = table.lines().find(|l| l.starts_with(&user.name)).unwrap();
    assert!(
        line.contains(&format!("not enrolled, {} days left", days_to_future())),
        "{line}"
    );

    env.write_policy(&policy(PAST, true));
    let row = listed(&env, &user.name);
    assert_eq!(row["days_left"], Value::Null);
    let status = String::from_utf8_lossy(&env.run(&["status", &user.name]).stdout).into_owned();
    assert!(
        status.contains(&format!("deadline {PAST} passed")),
        "{status}"
    );

    // Enrolled users have no days left to count.
    env.enroll(&user.name, common::SECRET);
    assert_eq!(listed(&env, &user.name)["days_left"], Value::Null);
}

#[test]
fn a_bad_deadline_is_a_policy_error_that_denies() {
    let env = Env::new("[policy]\nrequire = \"all\"\nenroll_deadline = \"2030-02-30\"");
    env.service_after_password("tf", "");
    let result = env.pamtester("tf", "daemon", "n");
    assert!(!result.success);
    let out = env.run(&["list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("YYYY-MM-DD"));
}
