//! Admin lifecycle through the real PAM library and the real CLI: backup codes, lock-out,
//! trusted hosts, disable/enable, reset, unlock, list/status JSON.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::{Env, SECRET, backup_codes_in, oathtool, wait_for_fresh_step, zbarimg};

const ACCEPTED: &str = "pamtester: successfully authenticated";
const AUTH_ERR: &str = "pamtester: Authentication failure";
const IGNORED_ALONE: &str = "pamtester: Permission denied";

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

fn ok(env: &Env, args: &[&str]) -> String {
    let out = env.run(args);
    assert!(
        out.status.success(),
        "twofold {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn json(env: &Env, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(env, args)).expect("valid JSON")
}

#[test]
fn backup_code_works_once_and_few_left_are_announced() {
    let env = Env::new("[backup_codes]\ncount = 3");
    env.service("tf", "", &[]);
    let codes = env.enroll_with_codes("daemon", SECRET);
    assert_eq!(codes.len(), 3, "enroll shows the codes once");
    let first = env.pamtester("tf", "daemon", &codes[0]);
    assert_eq!(first.verdict(), ACCEPTED, "{}", first.stderr);
    assert!(
        first.stdout.contains("2 backup codes left"),
        "{}",
        first.stdout
    );
    assert_eq!(
        env.pamtester("tf", "daemon", &codes[0]).verdict(),
        AUTH_ERR,
        "used twice"
    );
    // Typed without the dash, too.
    assert_eq!(
        env.pamtester("tf", "daemon", &codes[1].replace('-', ""))
            .verdict(),
        ACCEPTED
    );
    assert_eq!(
        json(&env, &["status", "daemon", "--json"])["backup_codes_left"],
        1
    );
    // Only hashes are stored.
    let record = fs::read_to_string(env.record("daemon")).unwrap();
    for code in &codes {
        assert!(!record.contains(code.as_str()) && !record.contains(&code.replace('-', "")));
    }
}

#[test]
fn regenerated_codes_replace_the_old_ones_and_can_be_deleted() {
    let env = Env::new("[backup_codes]\ncount = 4");
    env.service("tf", "", &[]);
    let old = env.enroll_with_codes("daemon", SECRET);
    let file = env.dir.path().join("codes.txt");
    ok(
        &env,
        &[
            "codes",
            "daemon",
            "--regenerate",
            "--yes",
            "--output",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let new = backup_codes_in(&fs::read_to_string(&file).unwrap());
    assert_eq!(new.len(), 4);
    assert_eq!(
        env.pamtester("tf", "daemon", &old[0]).verdict(),
        AUTH_ERR,
        "old codes revoked"
    );
    assert_eq!(env.pamtester("tf", "daemon", &new[0]).verdict(), ACCEPTED);
    assert!(ok(&env, &["codes", "daemon"]).contains("3 unused backup codes"));
    ok(&env, &["codes", "daemon", "--delete"]);
    assert_eq!(env.pamtester("tf", "daemon", &new[1]).verdict(), AUTH_ERR);
    assert_eq!(
        json(&env, &["status", "daemon", "--json"])["backup_codes_left"],
        0
    );
    // Regenerated onto the terminal.
    let shown = backup_codes_in(&ok(&env, &["codes", "daemon", "--regenerate", "--yes"]));
    assert_eq!(shown.len(), 4);
}

#[test]
fn lockout_refuses_even_the_right_code_until_unlock() {
    let env = Env::new("");
    env.service("tf", "", &[]);
    env.enroll("daemon", SECRET);
    wait_for_fresh_step(8);
    let code = oathtool(SECRET, 0);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        assert_eq!(env.pamtester("tf", "daemon", wrong).verdict(), AUTH_ERR);
    }
    let status = json(&env, &["status", "daemon", "--json"]);
    assert_eq!(status["locked"], true, "{status}");
    assert_eq!(status["failures"], 5);
    let locked = env.pamtester("tf", "daemon", &code);
    assert_eq!(locked.verdict(), AUTH_ERR);
    assert!(locked.stderr.contains("locked"), "{}", locked.stderr);
    assert!(
        !locked.stderr.contains("Verification code:"),
        "not even asked"
    );
    assert!(ok(&env, &["list"]).contains("enabled, locked until"));

    ok(&env, &["unlock", "daemon"]);
    assert_eq!(json(&env, &["status", "daemon", "--json"])["locked"], false);
    assert_eq!(env.pamtester("tf", "daemon", &code).verdict(), ACCEPTED);
}

#[test]
fn lockout_expires_by_itself() {
    // Each refused login also waits out PAM's 2 s failure delay: the lock must outlast that.
    let env = Env::new("[lockout]\nmax_failures = 2\nlock_seconds = 8");
    env.service("tf", "", &[]);
    env.enroll("daemon", SECRET);
    wait_for_fresh_step(12);
    let code = oathtool(SECRET, 0);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..2 {
        assert_eq!(env.pamtester("tf", "daemon", wrong).verdict(), AUTH_ERR);
    }
    let until = env.load("daemon").unwrap().locked_until.expect("locked");
    assert_eq!(
        env.pamtester("tf", "daemon", &code).verdict(),
        AUTH_ERR,
        "still locked"
    );
    let wait = (until + 1).saturating_sub(common::now() as i64).max(0) as u64;
    std::thread::sleep(std::time::Duration::from_secs(wait));
    let fresh = oathtool(SECRET, 0);
    assert_eq!(env.pamtester("tf", "daemon", &fresh).verdict(), ACCEPTED);
    assert_eq!(env.load("daemon").unwrap().failures, 0);
}

#[test]
fn trusted_host_skips_the_code_other_hosts_do_not() {
    let env = Env::new("[trust]\ndays = 7\nservices = [\"tf\"]");
    env.service("tf", "", &[]);
    env.enroll("daemon", SECRET);
    wait_for_fresh_step(3);
    let code = oathtool(SECRET, 0);
    let first = env.pamtester_with("tf", "daemon", &["rhost=192.0.2.7"], &[&code, "y"]);
    assert_eq!(first.verdict(), ACCEPTED, "{}", first.stderr);
    assert!(
        first.stderr.contains(
            "Trust the computer you are connecting from (192.0.2.7) for 7 days, without asking for a code? [y/N]"
        ),
        "{}",
        first.stderr
    );

    let trusted = env.pamtester_with("tf", "daemon", &["rhost=192.0.2.7"], &[]);
    assert_eq!(trusted.verdict(), ACCEPTED, "{}", trusted.stderr);
    assert!(
        !trusted.stderr.contains("Verification code:"),
        "not asked: {}",
        trusted.stderr
    );

    let other = env.pamtester_with("tf", "daemon", &["rhost=198.51.100.1"], &[]);
    assert_eq!(other.verdict(), AUTH_ERR);
    assert!(other.stderr.contains("Verification code:"));
    // A local login (no remote host) is always asked, and never offered trust.
    let local = env.pamtester("tf", "daemon", "");
    assert!(local.stderr.contains("Verification code:") && !local.stderr.contains("Trust this"));

    assert!(ok(&env, &["trust", "daemon", "--list"]).contains("192.0.2.7"));
    assert_eq!(
        json(&env, &["status", "daemon", "--json"])["trusted_hosts"][0]["host"],
        "192.0.2.7"
    );
    ok(&env, &["trust", "daemon", "--clear"]);
    let cleared = env.pamtester_with("tf", "daemon", &["rhost=192.0.2.7"], &[]);
    assert_eq!(cleared.verdict(), AUTH_ERR, "asked again after --clear");
}

#[test]
fn trust_is_off_by_default() {
    let env = Env::new("");
    env.service("tf", "", &[]);
    env.enroll("daemon", SECRET);
    wait_for_fresh_step(3);
    let result = env.pamtester_with(
        "tf",
        "daemon",
        &["rhost=192.0.2.7"],
        &[&oathtool(SECRET, 0), "y"],
    );
    assert_eq!(result.verdict(), ACCEPTED);
    assert!(!result.stderr.contains("Trust the computer"));
    assert!(env.load("daemon").unwrap().trusted.is_empty());
}

#[test]
fn disabled_user_is_not_asked_unless_required() {
    let env = Env::new("");
    env.service("alone", "", &[]);
    env.service("nullok", "nullok", &[]);
    env.enroll("daemon", SECRET);
    ok(&env, &["disable", "daemon"]);
    assert_eq!(
        json(&env, &["status", "daemon", "--json"])["state"],
        "disabled"
    );
    let skipped = env.pamtester("nullok", "daemon", "");
    assert_eq!(skipped.verdict(), ACCEPTED);
    assert!(!skipped.stderr.contains("Verification code:"));
    assert_eq!(
        env.pamtester("alone", "daemon", "").verdict(),
        IGNORED_ALONE
    );

    env.write_policy("[policy]\nrequire = \"all\"");
    let denied = env.pamtester("nullok", "daemon", "");
    assert_eq!(denied.verdict(), AUTH_ERR);
    assert!(denied.stderr.contains("turned off"), "{}", denied.stderr);

    ok(&env, &["enable", "daemon"]);
    wait_for_fresh_step(3);
    let secret_kept = env.pamtester("nullok", "daemon", &oathtool(SECRET, 0));
    assert_eq!(secret_kept.verdict(), ACCEPTED);
}

#[test]
fn reset_then_enroll_again() {
    const NEW_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    let env = Env::new("");
    env.service("tf", "", &["auth required pam_permit.so"]);
    env.enroll("daemon", SECRET);
    // No terminal to confirm on: refused without --yes.
    let out = env.run(&["reset", "daemon"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--yes"), "{}", text(&out.stderr));
    assert!(env.record("daemon").exists());

    ok(&env, &["reset", "daemon", "--yes"]);
    assert!(!env.record("daemon").exists());
    assert_eq!(
        json(&env, &["status", "daemon", "--json"])["enrolled"],
        false
    );
    assert_eq!(
        env.pamtester("tf", "daemon", "").verdict(),
        ACCEPTED,
        "not enrolled: ignored"
    );

    env.enroll("daemon", NEW_SECRET);
    // A record too broken to read can still be reset, or replaced with --force.
    fs::write(env.record("bin"), "garbage").unwrap();
    ok(&env, &["reset", "bin", "--yes"]);
    assert!(!env.record("bin").exists());
    fs::write(env.record("bin"), "garbage").unwrap();
    ok(
        &env,
        &["enroll", "bin", "--no-verify", "--qr", "none", "--force"],
    );
    assert!(env.load("bin").is_some());
    wait_for_fresh_step(3);
    assert_eq!(
        env.pamtester("tf", "daemon", &oathtool(SECRET, 0))
            .verdict(),
        AUTH_ERR
    );
    assert_eq!(
        env.pamtester("tf", "daemon", &oathtool(NEW_SECRET, 0))
            .verdict(),
        ACCEPTED
    );
}

#[test]
fn list_shows_states_and_required_users_without_enrollment() {
    let env = Env::new("[policy]\nrequire = \"groups\"\ngroups = [\"root\"]");
    env.enroll("daemon", SECRET);
    env.enroll("bin", SECRET);
    ok(&env, &["disable", "bin"]);
    let list = json(&env, &["list", "--json"]);
    let rows = list.as_array().unwrap();
    let row = |user: &str| rows.iter().find(|r| r["user"] == user).cloned();
    let daemon = row("daemon").unwrap();
    assert_eq!(
        (daemon["state"].as_str(), daemon["required"].as_bool()),
        (Some("enabled"), Some(false))
    );
    assert_eq!(daemon["backup_codes_left"], 10);
    assert_eq!(row("bin").unwrap()["state"], "disabled");
    // root is in group root, which policy requires, and has not enrolled.
    let root = row("root").expect("required but not enrolled users are listed");
    assert_eq!(
        (root["enrolled"].as_bool(), root["required"].as_bool()),
        (Some(false), Some(true))
    );

    let table = ok(&env, &["list"]);
    assert!(table.starts_with("USER"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("root") && l.contains("not enrolled")),
        "{table}"
    );

    // A broken record is reported, the others still listed, and the exit status says so.
    fs::write(env.record("sys"), "garbage").unwrap();
    fs::set_permissions(env.record("sys"), fs::Permissions::from_mode(0o600)).unwrap();
    let out = env.run(&["list", "--json"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("sys.toml is malformed"),
        "{}",
        text(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        rows.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["enrolled"] == true)
            .count(),
        2
    );
}

#[test]
fn qr_shows_the_existing_enrollment_again() {
    let env = Env::new("");
    let first = ok(
        &env,
        &[
            "enroll",
            "daemon",
            "--secret",
            SECRET,
            "--no-verify",
            "--qr",
            "none",
        ],
    );
    let uri = first
        .lines()
        .find_map(|l| l.strip_prefix("URI: "))
        .unwrap()
        .to_owned();
    let png = env.dir.path().join("again.png");
    let again = ok(&env, &["qr", "daemon", "--png", png.to_str().unwrap()]);
    assert!(again.contains(&format!("URI: {uri}")));
    assert_eq!(zbarimg(&png), uri);
    let out = env.run(&["qr", "bin"]);
    assert!(!out.status.success() && text(&out.stderr).contains("not enrolled"));
}

#[test]
fn admin_actions_are_logged_with_who_did_them() {
    let env = Env::new("");
    env.enroll("daemon", SECRET);
    let run = |args: &[&str]| {
        let (bin, policy) = (common::twofold_bin(), env.policy());
        let mut argv = vec![bin.to_str().unwrap(), "--config", policy.to_str().unwrap()];
        argv.extend(args);
        let (result, lines) = env.logged(&argv, "");
        assert!(result.success, "{args:?}: {}", result.stderr);
        assert_eq!(lines.len(), 1, "{args:?}: {lines:?}");
        lines[0].clone()
    };
    for (args, what) in [
        (
            &["disable", "daemon"][..],
            "daemon: 2FA disabled (secret kept); by root",
        ),
        (
            &["enable", "daemon"][..],
            "daemon: 2FA enabled again; by root",
        ),
        (
            &["unlock", "daemon"][..],
            "daemon: lock-out cleared (was not locked); by root",
        ),
        (
            &["codes", "daemon", "--delete"][..],
            "daemon: 10 backup codes deleted; by root",
        ),
        (
            &["trust", "daemon", "--clear"][..],
            "daemon: 0 trusted hosts forgotten; by root",
        ),
        (
            &["qr", "daemon", "--qr", "none"][..],
            "daemon: QR code of the existing enrollment shown; by root",
        ),
        (
            &["reset", "daemon", "--yes"][..],
            "daemon: 2FA reset (record removed); by root",
        ),
    ] {
        let line = run(args);
        // authpriv.notice = 10 * 8 + 5.
        assert!(
            line.starts_with("<85>") && line.contains("twofold["),
            "{line}"
        );
        assert!(line.contains(what), "{args:?}: {line}");
    }
}

/// A grant earned on one service is not honoured on another with the same PAM_RHOST (a web
/// service may take its "remote host" from a header), and services outside `[trust] services`
/// (default: sshd alone) are never offered trust.
#[test]
fn trust_is_bound_to_the_service_that_earned_it() {
    let env = Env::new("[trust]\ndays = 7\nservices = [\"tf\", \"web\"]");
    env.service("tf", "", &[]);
    env.service("web", "", &[]);
    env.enroll("daemon", SECRET);
    wait_for_fresh_step(5);
    let first = env.pamtester_with(
        "tf",
        "daemon",
        &["rhost=192.0.2.7"],
        &[&oathtool(SECRET, 0), "y"],
    );
    assert_eq!(first.verdict(), ACCEPTED, "{}", first.stderr);
    let web = env.pamtester_with("web", "daemon", &["rhost=192.0.2.7"], &[]);
    assert_eq!(web.verdict(), AUTH_ERR, "{}", web.stderr);
    assert!(web.stderr.contains("Verification code:"), "{}", web.stderr);
    let grant = &env.load("daemon").unwrap().trusted[0];
    assert_eq!(grant.service.as_deref(), Some("tf"));

    // The default: only sshd's PAM_RHOST is trusted, so "tf" is never offered trust.
    env.write_policy("[trust]\ndays = 7");
    let again = env.pamtester_with(
        "tf",
        "daemon",
        &["rhost=192.0.2.7"],
        &[&oathtool(SECRET, 30), "y"],
    );
    assert!(
        again.stderr.contains("Verification code:"),
        "{}",
        again.stderr
    );
    assert!(
        !again.stderr.contains("Trust the computer"),
        "{}",
        again.stderr
    );
}
