//! `twofold-self` as users meet it (root tier): a real non-root user runs the real setuid
//! binary, which authenticates them through the real Linux-PAM library and the `twofold-self`
//! stack (pam_unix with a real password in /etc/shadow, then the module). pam_wrapper cannot
//! serve here: a setuid program ignores LD_PRELOAD.
//!
//! Nothing on the host's /etc changes: each run is in a private mount namespace where an
//! overlay over /etc adds `pam.d/twofold-self` and `twofold/twofold.toml` (the test's policy,
//! its store in a temp dir), and /run holds a syslog socket of the test's. The binary is
//! copied to a dir under /tmp (not nosuid here), owned by root, mode 4755; the user runs it
//! through `setpriv --reuid --regid --init-groups`, answering prompts on standard input.
//! Logins the tests compare against go through pam_wrapper + pamtester as elsewhere. The
//! harness (`World`) is tests/common/self_service.rs.
mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::sshd::TempUser;
use common::{Env, SECRET, oathtool, wait_for_fresh_step};
use pam_twofold::record::State;
use pam_twofold::{Store, UserName};

use common::self_service::{PASSWORD, World, finish, ok, refused, text, until_key};

#[test]
fn each_action_works_with_real_codes_and_is_logged_as_the_user() {
    let world = World::new("[trust]\ndays = 7\n");
    wait_for_fresh_step(12);
    // enroll: password only (not enrolled, not required), then the first code of the key.
    let (child, out, key) = until_key(&world, &["enroll"], &[PASSWORD]);
    let (success, rest) = finish(child, out, &[&oathtool(&key, 0)]);
    assert!(success, "{rest}");
    let shown = common::backup_codes_in(&rest);
    assert_eq!(shown.len(), 10, "{rest}");
    let record = world.record().expect("enrolled");
    assert_eq!(record.secret.to_base32().as_str(), key);
    assert_eq!(record.state, State::Enabled);
    assert!(world.logged().contains("enrolled (self-service)"));

    // codes --regenerate: the next step's code (the first one was used to confirm).
    let out = world.run(&["codes", "--regenerate"], &[PASSWORD, &oathtool(&key, 30)]);
    let codes = common::backup_codes_in(&ok(&out));
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|c| !shown.contains(c)), "new codes");
    assert_eq!(world.record().unwrap().backup_codes_left(), 10);

    // trust --forget / --all, with backup codes from here on (TOTP steps are spent).
    world.plant_trust(&["192.0.2.1", "192.0.2.2", "192.0.2.3"]);
    ok(&world.run(&["trust", "--forget", "192.0.2.2"], &[PASSWORD, &codes[0]]));
    let hosts: Vec<_> = world
        .record()
        .unwrap()
        .trusted
        .iter()
        .map(|t| t.host.clone())
        .collect();
    assert_eq!(hosts, ["192.0.2.1", "192.0.2.3"]);
    assert!(ok(&world.run(&["trust"], &[])).contains("192.0.2.3"));
    ok(&world.run(&["trust", "--all"], &[PASSWORD, &codes[1]]));
    assert!(world.record().unwrap().trusted.is_empty());

    // disable keeps the secret; enable needs only the password then (no code is asked).
    ok(&world.run(&["disable"], &[PASSWORD, &codes[2]]));
    let record = world.record().unwrap();
    assert_eq!(record.state, State::Disabled);
    assert_eq!(record.secret.to_base32().as_str(), key);
    ok(&world.run(&["enable"], &[PASSWORD]));
    assert_eq!(world.record().unwrap().state, State::Enabled);

    // codes --delete, then status.
    ok(&world.run(&["codes", "--delete"], &[PASSWORD, &codes[3]]));
    assert_eq!(world.record().unwrap().backup_codes_left(), 0);
    let status = ok(&world.run(&["status"], &[]));
    assert!(
        status.contains(": on") && status.contains("Backup codes left: 0"),
        "{status}"
    );

    let log = world.logged();
    for what in [
        "new backup codes",
        "forgot trusted computer 192.0.2.2",
        "forgot every",
        "turned off",
        "turned on",
        "backup codes deleted",
    ] {
        assert!(log.contains(what), "{what} not logged:\n{log}");
    }
    assert!(log.contains(&format!("by=\"{}\"", world.name())), "{log}");
    assert!(log.contains("twofold-self"), "{log}");
}

#[test]
fn a_wrong_password_or_code_changes_nothing() {
    let world = World::new("");
    let codes = world.admin_enroll();
    world.plant_trust(&["192.0.2.9"]);
    wait_for_fresh_step(5);
    let good = oathtool(SECRET, 0);
    let changes: [&[&str]; 6] = [
        &["disable"],
        &["codes", "--delete"],
        &["codes", "--regenerate"],
        &["trust", "--all"],
        &["trust", "--forget", "192.0.2.9"],
        &["new-phone"],
    ];
    for args in changes {
        // A wrong password stops the stack before the module: not even a failure is counted.
        let before = world.record_bytes();
        let out = refused(&world.run(args, &["not-the-password", &good]));
        assert!(out.contains("nothing was changed"), "{out}");
        assert_eq!(
            world.record_bytes(),
            before,
            "{args:?} with a wrong password"
        );
        // A wrong code: refused, counted like a wrong code at a login, nothing else.
        let before = world.record().unwrap();
        refused(&world.run(args, &[PASSWORD, "000000"]));
        let mut after = world.record().unwrap();
        assert_eq!(after.failures, before.failures + 1, "{args:?}");
        after.failures = before.failures;
        assert_eq!(after, before, "{args:?} with a wrong code");
        // A used backup code does not work twice.
        world
            .store()
            .update(&UserName::parse(world.name()).unwrap(), |r| {
                if let Some(r) = r {
                    r.failures = 0;
                }
            })
            .unwrap();
    }
    // The right ones still work afterwards.
    ok(&world.run(&["disable"], &[PASSWORD, &codes[0]]));
    assert_eq!(world.record().unwrap().state, State::Disabled);
}

#[test]
fn the_code_used_to_authenticate_cannot_be_replayed_at_a_login() {
    let world = World::new("");
    let codes = world.admin_enroll();
    wait_for_fresh_step(5);
    let code = oathtool(SECRET, 0);
    ok(&world.run(&["trust", "--all"], &[PASSWORD, &code]));
    assert!(!world.login(&code), "the same TOTP code logged in again");
    ok(&world.run(&["trust", "--all"], &[PASSWORD, &codes[0]]));
    assert!(
        !world.login(&codes[0]),
        "the same backup code logged in again"
    );
    assert!(world.login(&codes[1]));
}

/// Builds a preload library that leaves a mark if it is ever loaded.
fn marker_library(dir: &Path, mark: &Path) -> PathBuf {
    common::require_tool("cc", "gcc");
    let src = dir.join("mark.c");
    fs::write(
        &src,
        format!(
            "#include <stdio.h>\n__attribute__((constructor)) static void m(void) {{ FILE *f = fopen(\"{}\", \"w\"); if (f) fclose(f); }}\n",
            mark.display()
        ),
    )
    .unwrap();
    let lib = dir.join("libmark.so");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .status()
        .unwrap();
    assert!(status.success());
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&lib, fs::Permissions::from_mode(0o755)).unwrap();
    lib
}

#[test]
fn a_user_cannot_reach_another_users_record() {
    let world = World::new("");
    let victim = TempUser::new();
    world.env.enroll_with_codes(&victim.name, SECRET);
    let victim_record = || world.env.stored(&victim.name);
    let before = victim_record();
    world.admin_enroll();

    // Arguments: no command takes a user, a policy or a store.
    for args in [
        &["disable", &victim.name][..],
        &["--config", "/tmp/x.toml", "disable"],
        &["--user", &victim.name, "disable"],
        &["status", &victim.name],
    ] {
        let out = world.run(args, &[PASSWORD, "000000"]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    }

    // The environment: names, paths, a preload, a hostile policy and store.
    let evil = tempfile::Builder::new()
        .prefix("evil-")
        .tempdir_in("/tmp")
        .unwrap();
    let mark = evil.path().join("loaded");
    let lib = marker_library(evil.path(), &mark);
    fs::write(
        evil.path().join("twofold.toml"),
        "[self_service]\nallow = []\n",
    )
    .unwrap();
    let victim_home = victim.home();
    let lib_s = lib.display().to_string();
    let evil_policy = evil.path().join("twofold.toml").display().to_string();
    let vars = [
        ("USER", victim.name.as_str()),
        ("LOGNAME", victim.name.as_str()),
        ("SUDO_USER", victim.name.as_str()),
        ("HOME", victim_home.to_str().unwrap()),
        ("LD_PRELOAD", lib_s.as_str()),
        ("LD_LIBRARY_PATH", evil.path().to_str().unwrap()),
        ("PATH", evil.path().to_str().unwrap()),
        ("TWOFOLD_CONFIG", evil_policy.as_str()),
        ("TWOFOLD_USER", victim.name.as_str()),
        ("LANG", "xx_XX.UTF-8"),
        ("NLSPATH", evil.path().to_str().unwrap()),
    ];
    wait_for_fresh_step(5);
    let out = world.run_env(&["disable"], &[PASSWORD, &oathtool(SECRET, 0)], &vars);
    ok(&out);
    assert_eq!(
        world.record().unwrap().state,
        State::Disabled,
        "the caller's own record"
    );
    assert_eq!(victim_record(), before, "the victim's record");
    assert!(
        !mark.exists(),
        "LD_PRELOAD was honoured by the setuid helper"
    );

    // --output: a link to root's file or the victim's record, a dir the user cannot write.
    let target = world.env.record(&victim.name);
    let link = evil.path().join("link");
    symlink(&target, &link).unwrap();
    let root_file = evil.path().join("root-owned");
    fs::write(&root_file, "root's\n").unwrap();
    let shut = evil.path().join("shut");
    fs::create_dir(&shut).unwrap();
    fs::set_permissions(&shut, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(evil.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    let codes_before = world.record().unwrap();
    for path in [
        link.clone(),
        root_file.clone(),
        shut.join("codes.txt"),
        PathBuf::from("/etc/twofold-codes"),
    ] {
        let out = refused(&world.run(
            &["codes", "--regenerate", "--output", path.to_str().unwrap()],
            &[PASSWORD, "000000"],
        ));
        assert!(out.contains("nothing was changed"), "{out}");
    }
    assert_eq!(victim_record(), before);
    assert_eq!(fs::read_to_string(&root_file).unwrap(), "root's\n");
    assert!(!shut.join("codes.txt").exists() && !Path::new("/etc/twofold-codes").exists());
    assert_eq!(
        world.record().unwrap().backup_codes,
        codes_before.backup_codes,
        "no code was asked"
    );

    // A file the user may create: theirs, 0600.
    let mine = evil.path().join("mine.txt");
    wait_for_fresh_step(5);
    ok(&world.run(
        &["codes", "--regenerate", "--output", mine.to_str().unwrap()],
        &[PASSWORD, &oathtool(SECRET, 30)],
    ));
    let meta = fs::metadata(&mine).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (world.uid, 0o600));
    assert_eq!(
        common::backup_codes_in(&fs::read_to_string(&mine).unwrap()).len(),
        10
    );
    assert_eq!(victim_record(), before);
}

#[test]
fn signals_during_a_change_leave_the_old_record_or_the_new() {
    let world = World::new("");
    let codes = world.admin_enroll();
    let before = world.record().unwrap();
    // Interrupted while the new phone's code is awaited: nothing changes.
    for (signal, code) in ["INT", "TERM", "HUP", "KILL"].into_iter().zip(&codes) {
        let (child, out, _key) = until_key(&world, &["new-phone"], &[PASSWORD, code]);
        // The user signals it (same real uid): `unshare`, `sh`, `setpriv` and `env` all
        // exec, so the child's pid is the helper's.
        let kill = Command::new("setpriv")
            .args([
                &format!("--reuid={}", world.uid),
                &format!("--regid={}", world.gid),
            ])
            .args([
                "--init-groups",
                "kill",
                &format!("-{signal}"),
                &child.id().to_string(),
            ])
            .status()
            .unwrap();
        assert!(kill.success(), "the user may signal their own helper");
        let (success, _) = finish(child, out, &[]);
        assert!(!success, "{signal}");
        let mut after = world.record().unwrap();
        assert_eq!(after.secret, before.secret, "{signal}");
        assert_eq!(
            (after.state, &after.trusted),
            (before.state, &before.trusted)
        );
        // Only the backup code used to authenticate is gone.
        after.backup_codes = before.backup_codes.clone();
        after.last_used = before.last_used;
        assert_eq!(after, before, "{signal}");
    }
}

#[test]
fn concurrent_self_service_and_logins_lose_no_update() {
    let world = World::new("");
    let codes = world.admin_enroll();
    world.plant_trust(&["192.0.2.1", "192.0.2.2"]);
    wait_for_fresh_step(10);
    let self_code = oathtool(SECRET, 0);
    std::thread::scope(|s| {
        let changes = s.spawn(|| {
            let a = world.run(&["trust", "--forget", "192.0.2.1"], &[PASSWORD, &self_code]);
            let b = world.run(&["codes"], &[]);
            (a, b)
        });
        let world = &world;
        let logins: Vec<_> = codes[..6]
            .iter()
            .map(|code| s.spawn(move || world.login(code)))
            .collect();
        for login in logins {
            assert!(login.join().unwrap(), "a backup code login failed");
        }
        let (a, _) = changes.join().unwrap();
        ok(&a);
    });
    let record = world.record().unwrap();
    assert_eq!(
        record.backup_codes_left(),
        4,
        "every used backup code stays used"
    );
    let hosts: Vec<_> = record.trusted.iter().map(|t| t.host.as_str()).collect();
    assert_eq!(hosts, ["192.0.2.2"]);
    assert!(!world.login(&self_code));
}

#[test]
fn a_policy_that_forbids_an_action_is_obeyed() {
    let world = World::new("[self_service]\nallow = [\"status\", \"codes\"]\n");
    world.admin_enroll();
    let before = world.record_bytes();
    wait_for_fresh_step(5);
    let code = oathtool(SECRET, 0);
    for args in [
        &["disable"][..],
        &["new-phone"],
        &["trust", "--all"],
        &["enroll"],
    ] {
        let out = refused(&world.run(args, &[PASSWORD, &code]));
        assert!(out.contains("does not let users"), "{out}");
        assert!(
            !out.contains("Password"),
            "asked for a password first: {out}"
        );
    }
    assert_eq!(world.record_bytes(), before);
    assert!(world.logged().contains("refused"));
    ok(&world.run(&["codes"], &[]));

    // Required users cannot turn 2FA off, whatever `allow` says.
    world.set_policy("[policy]\nrequire = \"all\"\n");
    let out = refused(&world.run(&["disable"], &[PASSWORD, &code]));
    assert!(out.contains("requires 2FA for you"), "{out}");
    assert_eq!(world.record().unwrap().state, State::Enabled);

    // Groups: a user in none of them is refused everything.
    world.set_policy("[self_service]\ngroups = [\"root\"]\n");
    let out = refused(&world.run(&["status"], &[]));
    assert!(out.contains("[self_service] groups"), "{out}");
}

/// A `[[rule]]` that skips the code on every service also covers `twofold-self`: the password
/// alone would then move 2FA to the attacker's phone. Every change is refused, before any
/// password is asked; `status` still works.
#[test]
fn a_skip_rule_covering_self_service_refuses_changes_on_the_password_alone() {
    let world = World::new("");
    world.admin_enroll();
    world.set_policy(&format!(
        "[[rule]]\nname = \"no-code-for-them\"\nuser = [\"{}\"]\naction = \"skip\"\n",
        world.name()
    ));
    let before = world.record_bytes();
    for args in [
        &["new-phone"][..],
        &["disable"],
        &["codes", "--regenerate"],
        &["trust", "--all"],
    ] {
        let out = refused(&world.run(args, &[PASSWORD, "", ""]));
        assert!(out.contains("rule \"no-code-for-them\""), "{args:?}: {out}");
        assert!(!out.contains("Password"), "asked for a password: {out}");
    }
    assert_eq!(world.record_bytes(), before);
    ok(&world.run(&["status"], &[]));

    // The same rule limited to sshd leaves self-service asking for the code.
    world.set_policy(&format!(
        "[[rule]]\nname = \"ssh-only\"\nservice = [\"sshd\"]\nuser = [\"{}\"]\naction = \"skip\"\n",
        world.name()
    ));
    wait_for_fresh_step(5);
    let out = ok(&world.run(&["disable"], &[PASSWORD, &oathtool(SECRET, 0)]));
    assert!(!out.is_empty());
    assert_eq!(world.record().unwrap().state, State::Disabled);
}

#[test]
fn a_locked_out_user_cannot_unlock_themselves() {
    let world = World::new("[lockout]\nmax_failures = 2\nlock_seconds = 600\n");
    let codes = world.admin_enroll();
    assert!(!world.login("000000"));
    assert!(!world.login("000001"));
    let locked = world.record().unwrap();
    assert!(locked.locked_until.is_some());
    wait_for_fresh_step(5);
    let status = ok(&world.run(&["status"], &[]));
    assert!(status.contains("Locked until"), "{status}");
    for (args, code) in [
        (&["disable"][..], oathtool(SECRET, 0)),
        (&["codes", "--regenerate"], codes[0].clone()),
        (&["new-phone"], oathtool(SECRET, 30)),
    ] {
        refused(&world.run(args, &[PASSWORD, &code]));
        let after = world.record().unwrap();
        assert_eq!(after.locked_until, locked.locked_until, "{args:?}");
        assert_eq!(after.secret, locked.secret);
        assert_eq!(after.backup_codes, locked.backup_codes);
    }
}

#[test]
fn new_phone_keeps_the_old_secret_until_the_new_one_is_confirmed() {
    let world = World::new("");
    let codes = world.admin_enroll();
    wait_for_fresh_step(15);
    // Wrong confirming codes: the old secret stays, with a login in between.
    let (child, out, key) = until_key(&world, &["new-phone"], &[PASSWORD, &oathtool(SECRET, 0)]);
    assert_ne!(key, SECRET);
    assert!(
        world.login(&oathtool(SECRET, 30)),
        "the old phone stopped working early"
    );
    let (success, rest) = finish(child, out, &["111111", "222222", "333333"]);
    assert!(!success, "{rest}");
    assert_eq!(world.record().unwrap().secret.to_base32().as_str(), SECRET);

    // Confirmed: the new secret replaces the old; backup codes stay.
    let (child, out, key) = until_key(&world, &["new-phone"], &[PASSWORD, &codes[0]]);
    let (success, rest) = finish(child, out, &[&oathtool(&key, 0)]);
    assert!(success, "{rest}");
    let record = world.record().unwrap();
    assert_eq!(record.secret.to_base32().as_str(), key);
    assert_eq!(record.backup_codes_left(), 9);
    assert!(world.logged().contains("new phone"));
    std::thread::sleep(Duration::from_millis(10));
    assert!(
        !world.login(&oathtool(SECRET, 60)),
        "the old phone still works"
    );
    assert!(world.login(&oathtool(&key, 30)));
}

#[test]
fn works_with_the_home_store() {
    let homes = tempfile::Builder::new()
        .prefix("homes-")
        .tempdir_in("/tmp")
        .unwrap();
    fs::set_permissions(homes.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let user = TempUser::with_home(homes.path());
    let env = Env::new("[store]\nkind = \"home\"\n");
    // Env::new put a [store] dir first; a home-store policy of its own replaces it.
    fs::write(env.policy(), "[store]\nkind = \"home\"\n").unwrap();
    let world = World::with(env, user);
    world.admin_enroll();
    let record = world.user.home().join(".config/twofold/totp.toml");
    assert!(record.exists());
    wait_for_fresh_step(5);
    ok(&world.run(&["disable"], &[PASSWORD, &oathtool(SECRET, 0)]));
    let text = fs::read_to_string(&record).unwrap();
    assert!(text.contains("disabled"), "{text}");
    assert_eq!(
        fs::metadata(&record).unwrap().uid(),
        world.uid,
        "still the user's file"
    );
}

#[test]
fn without_the_setuid_bit_it_refuses_and_says_why() {
    let world = World::new("");
    fs::set_permissions(world.bin(), fs::Permissions::from_mode(0o755)).unwrap();
    let out = refused(&world.run(&["status"], &[]));
    assert!(out.contains("setuid root"), "{out}");
}

/// The lines of `--json` output, each parsed.
fn events(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `--json` (what the Cockpit page speaks) changes how things are shown, not what is asked:
/// the same PAM questions as prompt events, a wrong code refused and counted the same way,
/// new codes as one event, and a status limited to what `[self_service]` allows.
#[test]
fn json_mode_asks_the_same_questions_and_changes_nothing_else() {
    let world = World::new("[self_service]\nallow = [\"status\", \"codes\", \"enroll\"]\n");
    let old_codes = world.admin_enroll();

    let status = world.run(&["--json", "status"], &[]);
    ok(&status);
    let status = events(&status);
    assert_eq!(status.len(), 1, "{status:?}");
    let mine = &status[0]["status"];
    assert_eq!(mine["user"], world.name());
    assert_eq!(mine["state"], "enabled");
    assert_eq!(mine["backup_codes_left"], old_codes.len());
    assert_eq!(
        mine["allowed"],
        serde_json::json!(["status", "enroll", "codes"])
    );

    // A wrong code: refused after the same two questions, counted as at a login.
    let before = world.record().unwrap();
    let out = world.run(&["--json", "codes", "--regenerate"], &[PASSWORD, "000000"]);
    refused(&out);
    let prompts: Vec<_> = events(&out)
        .into_iter()
        .filter_map(|e| e.get("prompt").cloned())
        .collect();
    assert_eq!(prompts.len(), 2, "{prompts:?}");
    assert!(prompts.iter().all(|p| p["hidden"] == true), "{prompts:?}");
    assert_eq!(world.record().unwrap().failures, before.failures + 1);

    // Password and a backup code: the new codes come as one event, and they are the ones
    // that now work.
    let done = world.run(
        &["--json", "codes", "--regenerate"],
        &[PASSWORD, &old_codes[0]],
    );
    ok(&done);
    let shown: Vec<String> = events(&done)
        .iter()
        .find_map(|e| e.get("codes").cloned())
        .and_then(|c| serde_json::from_value(c).ok())
        .unwrap_or_else(|| panic!("no codes event: {}", text(&done)));
    assert_eq!(shown.len(), world.record().unwrap().backup_codes_left());
    assert!(!world.login(&old_codes[1]), "the old batch still works");
    assert!(world.login(&shown[0]));
    assert!(
        world.logged().contains("new backup codes"),
        "{}",
        world.logged()
    );
}

/// Without /etc/pam.d/twofold-self libpam would use its `other` service (on Debian the
/// password alone): the helper refuses instead, and changes nothing.
#[test]
fn without_its_pam_service_it_refuses_instead_of_falling_back() {
    let world = World::new("");
    let codes = world.admin_enroll();
    fs::remove_file(world.root.path().join("upper/pam.d/twofold-self")).unwrap();
    let before = world.record_bytes();
    let out = refused(&world.run(&["codes", "--regenerate"], &[PASSWORD]));
    assert!(out.contains("/etc/pam.d/twofold-self is missing"), "{out}");
    assert_eq!(world.record_bytes(), before);
    assert!(world.login(&codes[0]), "the old codes still work");
}
