//! Attack review (branch review-14): each test asserts the secure behaviour and fails on the
//! code as it was reviewed.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::sshd::TempUser;
use common::{Env, SECRET, home_env};

/// A user owns their home-store record and writes `last_used = i64::MAX` into it: the
/// admin's `twofold list` (every user) and `twofold status` must not crash on it.
#[test]
fn a_hostile_time_in_a_home_record_does_not_crash_the_admin_cli() {
    let (env, user) = home_env();
    env.enroll(&user.name, SECRET);
    let record = user.home().join(".config/twofold/totp.toml");
    let text = fs::read_to_string(&record).unwrap();
    // Put the key before any table header so it stays top-level.
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with("last_used"))
        .map(String::from)
        .collect();
    lines.insert(1, "last_used = 9223372036854775807".into());
    fs::write(&record, lines.join("\n") + "\n").unwrap();
    for args in [
        vec!["list"],
        vec!["status", user.name.as_str()],
        vec!["list", "--json"],
    ] {
        let out = env.run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked") && out.status.code() != Some(101),
            "{args:?}: {stderr}"
        );
    }
}

/// Fleet, `offline = "cache"`: the phone of `daemon` is stolen and an admin runs
/// `twofold reset daemon` on host A. Host B still has its offline copy of the old record; a
/// thief with the password and the stolen phone who can make B lose the database logs in on
/// B with the revoked secret — for as long as B trusts its copy. A revocation cannot reach a
/// copy while the database is down (SECURITY.md), so copies are trusted for `cache_max_age`
/// only: an old copy is refused, and `reset` tells the admin about the copies.
#[test]
fn an_offline_copy_older_than_cache_max_age_is_not_used() {
    use common::oathtool;
    use common::postgres::Postgres;
    let pg = Postgres::start();
    let admin = Env::new("");
    fs::write(
        admin.policy(),
        format!(
            "[store]\ndir = \"{}\"\nkeys_dir = \"{keys}\"\nagent_socket = \"{agent}\"\nkind = \"postgres\"\nurl = \"{}\"\noffline = \"cache\"\ncache_dir = \"{}\"\n",
            admin.store().display(),
            pg.socket_url(),
            admin.dir.path().join("cache").display(),
            keys = admin.keys().display(),
            agent = admin.agent_socket().display()
        ),
    )
    .unwrap();
    let b = Env::new("");
    let cache = b.dir.path().join("cache");
    fs::write(
        b.policy(),
        format!(
            "[store]\ndir = \"{}\"\nkeys_dir = \"{keys}\"\nagent_socket = \"{agent}\"\nkind = \"postgres\"\nurl = \"{}\"\noffline = \"cache\"\ncache_dir = \"{}\"\n",
            b.store().display(),
            pg.socket_url(),
            cache.display(),
            keys = b.keys().display(),
            agent = b.agent_socket().display()
        ),
    )
    .unwrap();
    b.service("tf", "", &[]);
    let (_admin_agent, _b_agent) = (admin.start_agent(), b.start_agent());
    assert!(admin.run(&["db", "init"]).status.success());
    assert!(b.run(&["db", "init"]).status.success());
    admin.enroll("daemon", SECRET);
    common::wait_for_fresh_step(12);
    // daemon logs in on B once: B keeps a copy.
    let first = b.pamtester("tf", "daemon", &oathtool(SECRET, -30));
    assert!(first.success, "{}", first.stderr);
    // Phone stolen: the admin resets daemon (on host A), and is told about the copies.
    let reset = admin.run(&["reset", "daemon", "--yes"]);
    assert!(reset.status.success());
    assert!(
        String::from_utf8_lossy(&reset.stdout).contains("cache_max_age"),
        "{}",
        String::from_utf8_lossy(&reset.stdout)
    );
    // B's copy is older than cache_max_age (default one day) when B loses the database.
    let copy = cache.join("daemon.toml");
    let aged = std::process::Command::new("touch")
        .args(["-d", "2 days ago"])
        .arg(&copy)
        .status()
        .unwrap();
    assert!(aged.success());
    pg.stop();
    let (thief, log) = b.pamtester_logged("tf", "daemon", &oathtool(SECRET, 0));
    pg.start_again();
    assert!(
        !thief.success,
        "the revoked secret was accepted from host B's old offline copy: {}",
        thief.verdict()
    );
    assert!(
        log.iter().any(|l| l.contains("older than cache_max_age")),
        "{log:?}"
    );
}

/// `twofold generate-docs DIR` runs as root at install time. A local user who planted
/// `DIR/completions` (or `man1`) as a directory of their own gets root's new files in a
/// directory they control: they swap `twofold.bash` for their own script, which the admin then
/// installs into bash-completion (run by every shell, root's included). A subdirectory that
/// is not root's (or this process's) must be refused, like a link.
#[test]
fn generate_docs_refuses_a_subdirectory_another_user_planted() {
    let dir = tempfile::Builder::new()
        .prefix("twofold-docs-")
        .tempdir_in("/var/tmp")
        .unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o1777)).unwrap();
    let planted = dir.path().join("completions");
    let status = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--", "mkdir"])
        .arg(&planted)
        .status()
        .unwrap();
    assert!(status.success());
    let out = std::process::Command::new(common::twofold_bin())
        .arg("generate-docs")
        .arg(dir.path())
        .output()
        .unwrap();
    let written = planted.join("twofold.bash").exists();
    assert!(
        !out.status.success() && !written,
        "root wrote twofold.bash into a directory owned by nobody: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The user writes terminal escape sequences into their home-store record (`issuer`); the
/// admin's `twofold status USER` must not send them to the admin's terminal (ESC ] 0 sets
/// the window title here; OSC 52 would write the admin's clipboard, CSI sequences can hide
/// or rewrite what the admin reads).
#[test]
fn record_text_does_not_reach_the_admins_terminal_raw() {
    let (env, user) = home_env();
    env.enroll(&user.name, SECRET);
    let record = user.home().join(".config/twofold/totp.toml");
    let text = fs::read_to_string(&record).unwrap();
    let hostile: String = text
        .lines()
        .map(|l| {
            if l.starts_with("issuer = ") {
                "issuer = \"host\\u001b]0;owned\\u0007\\u001b[2J\"".to_owned()
            } else {
                l.to_owned()
            }
        })
        .map(|l| l + "\n")
        .collect();
    fs::write(&record, hostile).unwrap();
    // The record is refused (a record with control characters in its text is malformed), and
    // nothing of it reaches the terminal raw.
    let out = env.run(&["status", &user.name]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("control characters"), "{stderr}");
    assert!(
        !out.stdout.contains(&0x1b) && !out.stderr.contains(&0x1b),
        "raw ESC in status output: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Home store: the user writes `account = "..."` into their own record. The refusal quotes
/// that value into the syslog line unescaped, ahead of the real fields: the user forges
/// `user="root" ... rhost="203.0.113.9"` (fail2ban-style parsers take the first `rhost=`).
#[test]
fn a_user_owned_record_cannot_forge_log_fields() {
    let (env, user) = home_env();
    env.enroll(&user.name, SECRET);
    let record = user.home().join(".config/twofold/totp.toml");
    let text = fs::read_to_string(&record).unwrap();
    let hostile: String = text
        .lines()
        .map(|l| {
            if l.starts_with("account = ") {
                r#"account = "x'; code accepted; user=\"root\" service=\"sshd\" rhost=\"203.0.113.9\"; '""#.to_owned()
            } else {
                l.to_owned()
            }
        })
        .map(|l| l + "\n")
        .collect();
    fs::write(&record, hostile).unwrap();
    let (_, lines) = env.pamtester_logged("tf", &user.name, "123456");
    let line = lines.join("\n");
    assert!(
        line.matches("rhost=\"").count() <= 1 && !line.contains(r#"user="root""#),
        "forged fields in syslog: {line}"
    );
}

/// Home store: an account whose home is a shared root-owned directory that its group may
/// write (as Debian's `mail` has /var/mail, root:mail 2775). twofold rightly refuses it, but
/// tells the admin to `chown UID DIR; chmod 700 DIR`: pasted, that hands a shared system
/// directory to a service account and locks everyone else out of it. A home that root owns
/// is fine to twofold; the hint must not ask to give it away.
#[test]
fn the_home_store_never_suggests_giving_a_shared_root_directory_to_the_user() {
    let (env, _user) = home_env();
    let shared = env.dir.path().join("spool");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o2775)).unwrap();
    let user = TempUser::new();
    let status = std::process::Command::new("usermod")
        .args(["-d"])
        .arg(&shared)
        .arg(&user.name)
        .status()
        .unwrap();
    assert!(status.success());
    let out = env.run(&["status", &user.name]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused: {stderr}");
    assert!(
        !stderr.contains("then chown"),
        "the hint asks to chown a shared root-owned directory to the user: {stderr}"
    );
}
