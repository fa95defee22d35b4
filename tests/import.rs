//! Migration: files written by the real `google-authenticator` program and pam_oath users
//! files imported with the real CLI, then logins through the real PAM library with codes from
//! `oathtool`. Also HOTP enrollment and clock-drift learning end to end.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::sshd::TempUser;
use common::{Env, SECRET, oathtool, require_tool, wait_for_fresh_step};

const ACCEPTED: &str = "pamtester: successfully authenticated";
const AUTH_ERR: &str = "pamtester: Authentication failure";

/// Runs the real `google-authenticator` non-interactively (it wants a terminal) with `flags`,
/// writing `file`.
fn google_authenticator(file: &Path, flags: &str) -> String {
    require_tool("google-authenticator", "libpam-google-authenticator");
    require_tool("script", "bsdutils");
    let command = format!(
        "google-authenticator {flags} -f -Q NONE -s {}",
        file.display()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("echo -1 | script -qc '{command}' /dev/null"))
        .output()
        .unwrap();
    assert!(file.exists(), "google-authenticator wrote nothing: {out:?}");
    fs::read_to_string(file).unwrap()
}

fn hotp_code(secret_b32: &str, counter: u64, digits: u8) -> String {
    let (digits, counter) = (digits.to_string(), counter.to_string());
    oath_hex(secret_b32, &["-b", "-d", &digits, "-c", &counter])
}

/// `oathtool EXTRA… KEY` (hex unless EXTRA has `-b`).
fn oath_hex(hex: &str, extra: &[&str]) -> String {
    require_tool("oathtool", "oathtool");
    let out = Command::new("oathtool")
        .args(extra)
        .arg(hex)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `twofold import google-authenticator ARGS…` with this env's policy.
fn import_ga(env: &Env, args: &[&str]) -> std::process::Output {
    let mut argv = vec!["import", "google-authenticator"];
    argv.extend_from_slice(args);
    env.run(&argv)
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

fn status(env: &Env, user: &str) -> serde_json::Value {
    let out = env.run(&["status", user, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The bytes, mode and modification time of a file: "never modified" means all three.
fn fingerprint(path: &Path) -> (Vec<u8>, u32, i64, i64) {
    let meta = fs::metadata(path).unwrap();
    (
        fs::read(path).unwrap(),
        meta.mode(),
        meta.mtime(),
        meta.mtime_nsec(),
    )
}

#[test]
fn google_authenticator_totp_file_keeps_working_and_is_left_untouched() {
    let env = Env::new("");
    env.service("tf", "", &[]);
    let file = env.dir.path().join("ga-totp");
    let content = google_authenticator(&file, "-t -d -r 3 -R 30 -w 3 -e 5");
    let secret = content.lines().next().unwrap().to_owned();
    let scratch: Vec<&str> = content.lines().filter(|l| l.len() == 8).collect();
    assert_eq!(scratch.len(), 5, "{content}");
    let before = fingerprint(&file);

    // daemon has no file in its home: nothing to import, and the exit status says so.
    let out = import_ga(&env, &["--user", "daemon", "--dry-run"]).status;
    assert!(!out.success());
    // Dry run: says what would happen, writes nothing.
    let file_arg = file.to_str().unwrap();
    let out = import_ga(&env, &["--user", "daemon", "-n", file_arg]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("daemon: would import: TOTP"), "{stdout}");
    assert!(
        stdout.contains("1 would be imported, 0 skipped, 0 failed"),
        "{stdout}"
    );
    assert!(!env.record("daemon").exists());

    let out = import_ga(&env, &["--user", "daemon", file_arg]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("daemon: imported: TOTP SHA1 6 digits 30 s, window ±1, 5 backup codes"),
        "{stdout}"
    );
    assert!(
        stdout.contains("RATE_LIMIT 3 per 30 s not carried over"),
        "{stdout}"
    );
    let record = fs::read_to_string(env.record("daemon")).unwrap();
    for code in &scratch {
        assert!(
            !record.contains(code),
            "scratch codes are stored hashed only"
        );
    }

    wait_for_fresh_step(5);
    let code = oathtool(&secret, 0);
    assert_eq!(env.pamtester("tf", "daemon", &code).verdict(), ACCEPTED);
    assert_eq!(
        env.pamtester("tf", "daemon", &code).verdict(),
        AUTH_ERR,
        "replay"
    );
    assert_eq!(
        env.pamtester("tf", "daemon", scratch[2]).verdict(),
        ACCEPTED
    );
    assert_eq!(
        env.pamtester("tf", "daemon", scratch[2]).verdict(),
        AUTH_ERR,
        "scratch code used up"
    );
    assert_eq!(status(&env, "daemon")["backup_codes_left"], 4);
    assert_eq!(fingerprint(&file), before, "the source is never modified");

    // A second import keeps the record; --force replaces it.
    let out = import_ga(&env, &["--user", "daemon", file_arg]);
    assert!(
        text(&out.stdout).contains("daemon: skipped: already enrolled"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(status(&env, "daemon")["backup_codes_left"], 4);
    let out = import_ga(&env, &["--user", "daemon", "--force", file_arg]);
    assert!(out.status.success());
    assert_eq!(status(&env, "daemon")["backup_codes_left"], 5);
    assert_eq!(fingerprint(&file), before);
}

#[test]
fn google_authenticator_hotp_file_and_time_skew_carry_over() {
    let env = Env::new("");
    env.service("tf", "", &[]);
    let file = env.dir.path().join("ga-hotp");
    let content = google_authenticator(&file, "-c -r 3 -R 30 -w 3 -e 5");
    assert!(content.contains("\" HOTP_COUNTER 1"), "{content}");
    let secret = content.lines().next().unwrap().to_owned();
    let before = fingerprint(&file);
    let out = import_ga(&env, &["--user", "daemon", file.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("HOTP SHA1 6 digits, next counter 1, look-ahead 2"),
        "{stdout}"
    );
    assert_eq!(status(&env, "daemon")["kind"], "hotp");

    let c1 = hotp_code(&secret, 1, 6);
    assert_eq!(env.pamtester("tf", "daemon", &c1).verdict(), ACCEPTED);
    assert_eq!(
        env.pamtester("tf", "daemon", &c1).verdict(),
        AUTH_ERR,
        "counter 1 used"
    );
    // google-authenticator's WINDOW_SIZE 3: counters 2..=4 are accepted, 6 is too far.
    assert_eq!(
        env.pamtester("tf", "daemon", &hotp_code(&secret, 6, 6))
            .verdict(),
        AUTH_ERR
    );
    assert_eq!(
        env.pamtester("tf", "daemon", &hotp_code(&secret, 4, 6))
            .verdict(),
        ACCEPTED
    );
    assert_eq!(
        env.pamtester("tf", "daemon", &hotp_code(&secret, 3, 6))
            .verdict(),
        AUTH_ERR,
        "skipped counters are gone"
    );
    assert_eq!(status(&env, "daemon")["counter"], 5);
    assert_eq!(fingerprint(&file), before);

    // A TOTP file whose token runs 6 steps (3 minutes) ahead, as pam_google_authenticator
    // learned it: TIME_SKEW carries over.
    let skewed = env.dir.path().join("ga-skew");
    let content = google_authenticator(&skewed, "-t -d -r 3 -R 30 -w 3 -e 1");
    let secret = content.lines().next().unwrap().to_owned();
    fs::set_permissions(&skewed, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(
        &skewed,
        content.replace("\" TOTP_AUTH\n", "\" TOTP_AUTH\n\" TIME_SKEW 6\n"),
    )
    .unwrap();
    let out = import_ga(&env, &["--user", "bin", skewed.to_str().unwrap()]);
    assert!(
        text(&out.stdout).contains("clock drift +6 steps (+3 min)"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(status(&env, "bin")["drift_steps"], 6);
    wait_for_fresh_step(5);
    // The token's code, 6 steps ahead, works at once: the offset was carried over (the
    // server's own code would work too: a learned offset never shuts the real clock out).
    assert_eq!(
        env.pamtester("tf", "bin", &oathtool(&secret, 180))
            .verdict(),
        ACCEPTED
    );
    assert_eq!(status(&env, "bin")["drift_steps"], 6);
}

#[test]
fn google_authenticator_all_scans_homes_and_trusts_only_the_owners_file() {
    let env = Env::new("");
    env.service("tf", "", &[]);
    let homes = env.dir.path().join("homes");
    fs::create_dir(&homes).unwrap();
    let good = TempUser::with_home(&homes);
    let planted = TempUser::with_home(&homes);
    let linked = TempUser::with_home(&homes);
    let good_file = good.home().join(".google_authenticator");
    let content = google_authenticator(&good_file, "-t -d -r 3 -R 30 -w 3 -e 2");
    chown(&good_file, &good.name);
    // A file in planted's home that another user owns (they know its secret).
    let planted_file = planted.home().join(".google_authenticator");
    google_authenticator(&planted_file, "-t -d -r 3 -R 30 -w 3 -e 2");
    chown(&planted_file, "nobody");
    // A symlink to a file elsewhere.
    symlink(&good_file, linked.home().join(".google_authenticator")).unwrap();

    let out = import_ga(&env, &["--all", "--dry-run"]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("{}: would import", good.name)),
        "{stdout}"
    );
    assert!(!env.record(&good.name).exists(), "dry run");

    let out = import_ga(&env, &["--all"]);
    let stdout = text(&out.stdout);
    assert!(!out.status.success(), "some users failed: exit status 1");
    assert!(
        stdout.contains(&format!("{}: imported", good.name)),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{}: failed", planted.name))
            && stdout.contains("owned by uid 65534"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{}: failed", linked.name)) && stdout.contains("symbolic link"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Summary:") && stdout.contains("failed."),
        "{stdout}"
    );
    assert!(!env.record(&planted.name).exists() && !env.record(&linked.name).exists());

    let secret = content.lines().next().unwrap();
    wait_for_fresh_step(5);
    assert_eq!(
        env.pamtester("tf", &good.name, &oathtool(secret, 0))
            .verdict(),
        ACCEPTED
    );
}

fn chown(path: &Path, user: &str) {
    assert!(
        Command::new("chown")
            .arg(user)
            .arg(path)
            .status()
            .unwrap()
            .success()
    );
}

/// A users.oath file (root, 0600) with `lines`.
fn users_oath(env: &Env, lines: &[String]) -> PathBuf {
    let path = env.dir.path().join("users.oath");
    fs::write(&path, lines.join("\n") + "\n").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    path
}

const KEY1: &str = "3132333435363738393031323334353637383930";
const KEY2: &str = "00112233445566778899aabbccddeeff00112233";
const KEY3: &str = "deadbeefcafebabe0123456789abcdef01234567";
const KEY4: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c";

#[test]
fn oath_users_file_totp_eight_digits_hotp_and_used_codes() {
    let env = Env::new("");
    env.service("tf", "", &[]);
    wait_for_fresh_step(8);
    // bin's TOTP code of this step was already used with pam_oath (as pam_oath writes it:
    // counter, last code, local time).
    let used_now = oath_hex(KEY4, &["--totp"]);
    let local_now = String::from_utf8(
        Command::new("date")
            .arg("+%Y-%m-%dT%H:%M:%SL")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let used_counter = oath_hex(KEY3, &["-c", "4"]);
    let path = users_oath(
        &env,
        &[
            "# twofold import test".into(),
            format!("HOTP/T30 daemon - {KEY1}"),
            format!("HOTP/T30/8 sys - {KEY2}"),
            format!("HOTP\tsync\t-\t{KEY3}\t4\t{used_counter}\t2026-11-22T23:07:47L"),
            format!("HOTP/T30 bin - {KEY4} 0 {used_now} {}", local_now.trim()),
        ],
    );
    let before = fingerprint(&path);
    let out = env.run(&["import", "oath", path.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("4 imported, 0 skipped, 0 failed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("sync: imported: HOTP SHA1 6 digits, next counter 5"),
        "{stdout}"
    );

    assert_eq!(
        env.pamtester("tf", "daemon", &oath_hex(KEY1, &["--totp"]))
            .verdict(),
        ACCEPTED
    );
    assert_eq!(
        env.pamtester("tf", "sys", &oath_hex(KEY2, &["--totp", "-d", "8"]))
            .verdict(),
        ACCEPTED
    );
    assert_eq!(
        env.pamtester("tf", "sync", &used_counter).verdict(),
        AUTH_ERR,
        "used with pam_oath"
    );
    assert_eq!(
        env.pamtester("tf", "sync", &oath_hex(KEY3, &["-c", "5"]))
            .verdict(),
        ACCEPTED
    );
    assert_eq!(
        env.pamtester("tf", "bin", &used_now).verdict(),
        AUTH_ERR,
        "used with pam_oath"
    );
    assert_eq!(
        fingerprint(&path),
        before,
        "the users file is never modified"
    );
}

#[test]
fn malformed_sources_are_reported_by_line_and_the_rest_imported() {
    let env = Env::new("");
    env.service("tf", "", &[]);
    let path = users_oath(
        &env,
        &[
            format!("HOTP/T30 daemon - {KEY1}"),
            format!("HOTP/T30 bin - {}", &KEY2[..15]),
            format!("HOTP/T30 sys - {}zz", &KEY3[..38]),
            format!("TOTP sync - {KEY4}"),
            format!("HOTP/T30 games - {KEY1}"),
            format!("HOTP games - {KEY2} 3"),
            "HOTP/T30 man".into(),
            format!("HOTP/T30 no-such-user-tf - {KEY1}"),
        ],
    );
    let out = env.run(&["import", "oath", path.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    for want in [
        "daemon: imported",
        "bin: failed: line 2: the secret is not hexadecimal",
        "sys: failed: line 3: the secret is not hexadecimal",
        "sync: failed: line 4: unknown token type",
        "games: failed: line 5: games is also on line 6",
        "games: failed: line 6: games is also on line 5",
        "man: failed: line 7: expected: type user pin secret",
        "no-such-user-tf: failed: user 'no-such-user-tf' is not in the passwd database",
        "1 imported, 0 skipped, 7 failed",
    ] {
        assert!(stdout.contains(want), "{want:?} in\n{stdout}");
    }
    for secret in [KEY1, KEY2, KEY3, KEY4] {
        assert!(
            !stdout.contains(&secret[..12]),
            "a secret was echoed:\n{stdout}"
        );
    }
    assert!(env.record("daemon").exists() && !env.record("games").exists());

    // google-authenticator files: truncated, bad base32, unknown option, not a file.
    let dir = env.dir.path();
    let full = google_authenticator(&dir.join("ga"), "-t -d -r 3 -R 30 -w 3 -e 3");
    let cases: [(&str, String, &str); 4] = [
        ("truncated", full[..10].to_owned(), "failed: line 1 of"),
        (
            "bad-base32",
            full.replacen(&full[..4], "0189", 1),
            "the secret is not valid base32",
        ),
        (
            "unknown",
            full.replace("\" TOTP_AUTH\n", "\" TOTP_AUTH\n\" SOMETHING_NEW 7\n"),
            "imported",
        ),
        ("cut-scratch", full[..full.len() - 4].to_owned(), "imported"),
    ];
    for (name, content, want) in cases {
        let file = dir.join(name);
        fs::write(&file, &content).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        let out = import_ga(&env, &["--user", "bin", "--force", file.to_str().unwrap()]);
        let stdout = text(&out.stdout);
        assert!(stdout.contains(want), "{name}: {stdout}");
        assert!(
            !stdout.contains(&full[..12]),
            "{name}: secret echoed: {stdout}"
        );
        if name == "unknown" {
            assert!(
                stdout.contains("unknown option \"SOMETHING_NEW\" ignored"),
                "{stdout}"
            );
        }
        if name == "cut-scratch" {
            assert!(
                stdout.contains("2 backup codes")
                    && stdout.contains("neither an option nor a scratch code"),
                "{stdout}"
            );
        }
    }
    let fifo = dir.join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let out = import_ga(&env, &["--user", "bin", fifo.to_str().unwrap()]);
    assert!(
        text(&out.stdout).contains("not a regular file"),
        "{}",
        text(&out.stdout)
    );
    let loose = dir.join("loose");
    fs::write(&loose, &full).unwrap();
    fs::set_permissions(&loose, fs::Permissions::from_mode(0o666)).unwrap();
    let out = import_ga(&env, &["--user", "bin", loose.to_str().unwrap()]);
    assert!(
        text(&out.stdout).contains("writable by group or others"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn hotp_enrollment_for_a_hardware_token() {
    let env = Env::new("");
    env.service("tf", "", &[]);
    let out = env
        .twofold(&[
            "enroll",
            "daemon",
            "--hotp",
            "--counter",
            "7",
            "--secret-hex",
            KEY1,
            "--qr",
            "none",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            // The token was pressed twice before: it shows counter 9's code.
            let code = oath_hex(KEY1, &["-c", "9"]);
            child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("{code}\n").as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("counter-based"), "{stdout}");
    assert_eq!(status(&env, "daemon")["counter"], 10);
    assert_eq!(
        env.pamtester("tf", "daemon", &oath_hex(KEY1, &["-c", "9"]))
            .verdict(),
        AUTH_ERR
    );
    assert_eq!(
        env.pamtester("tf", "daemon", &oath_hex(KEY1, &["-c", "10"]))
            .verdict(),
        ACCEPTED
    );
    let out = env.run(&["qr", "daemon", "--qr", "none"]);
    assert!(
        text(&out.stdout).contains("otpauth://hotp/"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn clock_drift_is_learned_shown_and_reset() {
    let env = Env::new("");
    env.service("tf", "", &[]);
    env.enroll("daemon", SECRET);
    wait_for_fresh_step(10);
    // A token 10 steps ahead, as learning leaves it (learning itself, paced like real time, is
    // tested in tests/drift_attack.rs).
    env.change("daemon", |r| r.drift_steps = 10);
    let s = status(&env, "daemon");
    assert_eq!(
        (s["drift_steps"].as_i64(), s["drift_seconds"].as_i64()),
        (Some(10), Some(300))
    );
    let human = text(&env.run(&["status", "daemon"]).stdout);
    assert!(human.contains("+10 steps (+5 min) learned"), "{human}");
    assert_eq!(
        env.pamtester("tf", "daemon", &oathtool(SECRET, 330))
            .verdict(),
        ACCEPTED
    );

    let out = env.run(&["unlock", "daemon", "--reset-drift"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(status(&env, "daemon")["drift_steps"], 0);
    assert_eq!(
        env.pamtester("tf", "daemon", &oathtool(SECRET, 360))
            .verdict(),
        AUTH_ERR
    );
}

/// A user writes their own google-authenticator file: `WINDOW_SIZE 100` (±50 steps) and a
/// `TIME_SKEW` of 3000 steps (25 hours) must not widen what this site's policy accepts.
#[test]
fn imported_windows_and_skews_are_held_to_the_policy() {
    let env = Env::new("");
    env.service("tf", "", &[]);
    let file = env.dir.path().join("ga-wide");
    fs::write(
        &file,
        format!("{SECRET}\n\" WINDOW_SIZE 100\n\" TIME_SKEW 3000\n\" TOTP_AUTH\n"),
    )
    .unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    let out = import_ga(&env, &["--user", "daemon", file.to_str().unwrap()]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(said.contains("narrowed to 1"), "{said}");
    assert!(said.contains("not carried over"), "{said}");
    let s = status(&env, "daemon");
    assert_eq!(s["drift_steps"], 0, "{s}");
    // Five steps away: inside the file's ±50, outside the policy's ±1.
    wait_for_fresh_step(5);
    let far = env.pamtester("tf", "daemon", &oathtool(SECRET, -150));
    assert_eq!(far.verdict(), AUTH_ERR, "{}", far.stderr);
    let now = env.pamtester("tf", "daemon", &oathtool(SECRET, 0));
    assert_eq!(now.verdict(), ACCEPTED, "{}", now.stderr);
}
