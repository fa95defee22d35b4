//! `[store] kind = "home"`: records in ~/.config/twofold, written as the user (files end up
//! owned by them), read without following links, refused when loose or not theirs — through
//! the real CLI and the real PAM library.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

use common::sshd::TempUser;
use common::{SECRET, home_env, oathtool, wait_for_fresh_step};

const ACCEPTED: &str = "pamtester: successfully authenticated";
const AUTH_ERR: &str = "pamtester: Authentication failure";
const UNAVAILABLE: &str = "pamtester: Authentication service cannot retrieve authentication info";

fn uid_of(user: &TempUser) -> u32 {
    fs::metadata(user.home()).unwrap().uid()
}

#[test]
fn records_live_in_the_home_owned_by_the_user() {
    let (env, user) = home_env();
    env.enroll(&user.name, SECRET);
    let dir = user.home().join(".config/twofold");
    let record = dir.join("totp.toml");
    let uid = uid_of(&user);
    assert_ne!(uid, 0);
    for path in [&dir, &record, &dir.join("totp.lock")] {
        let meta = fs::metadata(path).unwrap();
        assert_eq!(meta.uid(), uid, "{} written as the user", path.display());
        assert_eq!(meta.mode() & 0o077, 0, "{} private", path.display());
    }
    wait_for_fresh_step(3);
    let code = oathtool(SECRET, 0);
    assert_eq!(env.pamtester("tf", &user.name, &code).verdict(), ACCEPTED);
    assert_eq!(
        env.pamtester("tf", &user.name, &code).verdict(),
        AUTH_ERR,
        "replay"
    );
    assert_eq!(
        fs::metadata(&record).unwrap().uid(),
        uid,
        "still the user's after a login"
    );
    let status = env.run(&["status", &user.name, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["state"], "enabled");
    let list = env.run(&["list", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .any(|r| r["user"] == user.name.as_str())
    );
    assert!(env.run(&["reset", &user.name, "--yes"]).status.success());
    assert!(!record.exists());
}

#[test]
fn tampered_home_records_are_refused_and_nothing_outside_is_touched() {
    let (env, user) = home_env();
    env.enroll(&user.name, SECRET);
    let dir = user.home().join(".config/twofold");
    let record = dir.join("totp.toml");
    let good = fs::read(&record).unwrap();
    // A root-only file standing in for /etc/shadow (which other tests' users change).
    let target = env.dir.path().join("root-only");
    fs::write(&target, "root:secret\n").unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
    let reset = || {
        let _ = fs::remove_file(&record);
        fs::write(&record, &good).unwrap();
        std::process::Command::new("chown")
            .arg(&user.name)
            .arg(&record)
            .status()
            .unwrap();
        fs::set_permissions(&record, fs::Permissions::from_mode(0o600)).unwrap();
    };
    type Tamper<'a> = (&'a str, Box<dyn Fn() + 'a>);
    let cases: Vec<Tamper> = vec![
        (
            "loose mode",
            Box::new(|| fs::set_permissions(&record, fs::Permissions::from_mode(0o644)).unwrap()),
        ),
        (
            "owned by root",
            Box::new(|| std::os::unix::fs::chown(&record, Some(0), Some(0)).unwrap()),
        ),
        (
            "symlink to a root-only file",
            Box::new(|| {
                fs::remove_file(&record).unwrap();
                symlink(&target, &record).unwrap();
            }),
        ),
        (
            "world-writable dir",
            Box::new(|| fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap()),
        ),
    ];
    for (what, tamper) in cases {
        reset();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        tamper();
        let result = env.pamtester("tf", &user.name, "123456");
        assert_eq!(result.verdict(), UNAVAILABLE, "{what}: {}", result.stderr);
        // An admin command refuses too, and writes nothing through the link.
        assert!(!env.run(&["unlock", &user.name]).status.success(), "{what}");
    }
    let untouched = fs::read_to_string(&target).unwrap();
    assert_eq!(
        untouched, "root:secret\n",
        "nothing written through the link"
    );
    assert_eq!(fs::metadata(&target).unwrap().uid(), 0);

    // The twofold directory itself replaced by a link to somewhere else.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    let elsewhere = user.home().join("elsewhere");
    fs::rename(&dir, &elsewhere).unwrap();
    symlink(&elsewhere, &dir).unwrap();
    assert_eq!(
        env.pamtester("tf", &user.name, "123456").verdict(),
        UNAVAILABLE
    );
}

/// The user owns their home record and could ask a root login process for 256 MiB and 16
/// argon2 passes per try (seconds of CPU each): costs above twofold's own are refused.
#[test]
fn a_user_cannot_choose_the_backup_code_cost_of_their_own_record() {
    let (env, user) = home_env();
    env.enroll(&user.name, SECRET);
    let record = user.home().join(".config/twofold/totp.toml");
    let text = fs::read_to_string(&record).unwrap();
    assert!(text.contains("m_cost = 19456"), "{text}");
    let costly = text
        .replace("m_cost = 19456", "m_cost = 262144")
        .replace("t_cost = 2", "t_cost = 16");
    fs::write(&record, costly).unwrap();
    let (result, log) = env.pamtester_logged("tf", &user.name, "1234-5678");
    assert_eq!(result.verdict(), UNAVAILABLE, "{}", result.stderr);
    assert!(log.iter().any(|l| l.contains("argon2 cost")), "{log:?}");
}
