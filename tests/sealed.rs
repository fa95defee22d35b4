//! Secrets sealed at rest (src/seal.rs, src/keys.rs, `twofold key`), through the real PAM
//! library with oathtool codes: sealed records accept and refuse as before; a copy of the
//! store without the key is useless (denied, no secret in it); a record moved to another user
//! is denied even with its account field edited; rotation racing logins and killed at random
//! points loses nothing; a fleet's database dump holds no secret.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::postgres::Postgres;
use common::{Env, SECRET, oathtool, twofold_bin, wait_for_fresh_step};

const ACCEPTED: &str = "pamtester: successfully authenticated";
const AUTH_ERR: &str = "pamtester: Authentication failure";
/// SECRET's bytes: "Hello!" then DE AD BE EF, twice.
const RAW: &[u8] = b"Hello!\xde\xad\xbe\xef";

fn ok(env: &Env, args: &[&str]) -> String {
    let out = env.run(args);
    assert!(
        out.status.success(),
        "twofold {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn status(env: &Env) -> serde_json::Value {
    serde_json::from_str(&ok(env, &["key", "status", "--json"])).unwrap()
}

fn current_key(env: &Env) -> String {
    let status = status(env);
    let keys = status["keys"].as_array().unwrap();
    let current = keys
        .iter()
        .find(|k| k["current"] == true)
        .expect("a current key");
    current["id"].as_str().unwrap().to_owned()
}

/// A host with its own key and `daemon` enrolled (sealed from the start).
fn sealed_host() -> Env {
    let env = Env::new("");
    env.service("tf", "", &[]);
    ok(&env, &["key", "init"]);
    env.enroll("daemon", SECRET);
    env
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// No file under `dir` holds the secret, in base32 or raw.
fn assert_no_secret_in(dir: &std::path::Path) {
    for entry in fs::read_dir(dir).unwrap() {
        let bytes = fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !contains(&bytes, SECRET.as_bytes()) && !contains(&bytes, &SECRET.as_bytes()[..16])
        );
        assert!(!contains(&bytes, RAW));
    }
}

#[test]
fn sealed_records_accept_once_and_refuse_wrong_codes() {
    let env = sealed_host();
    let text = fs::read_to_string(env.record("daemon")).unwrap();
    assert!(
        text.contains("[sealed]") && !text.contains("secret ="),
        "{text}"
    );
    assert_no_secret_in(&env.store());
    let mode = fs::metadata(env.keys()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    wait_for_fresh_step(3);
    let code = oathtool(SECRET, 0);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_eq!(env.pamtester("tf", "daemon", wrong).verdict(), AUTH_ERR);
    assert_eq!(env.pamtester("tf", "daemon", &code).verdict(), ACCEPTED);
    assert_eq!(
        env.pamtester("tf", "daemon", &code).verdict(),
        AUTH_ERR,
        "replay"
    );
    let status = status(&env);
    assert_eq!(
        (status["clear"].as_u64(), status["unreadable"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(status["keys"][0]["records"], 1);
}

#[test]
fn a_clear_record_is_sealed_on_its_next_write_and_by_seal_all() {
    let env = Env::new("");
    env.service("tf", "", &[]);
    env.enroll("daemon", SECRET);
    env.enroll("bin", SECRET);
    assert!(
        fs::read_to_string(env.record("daemon"))
            .unwrap()
            .contains("secret =")
    );
    ok(&env, &["key", "init"]);
    wait_for_fresh_step(3);
    assert_eq!(
        env.pamtester("tf", "daemon", &oathtool(SECRET, 0))
            .verdict(),
        ACCEPTED
    );
    assert!(
        fs::read_to_string(env.record("daemon"))
            .unwrap()
            .contains("[sealed]")
    );
    assert_eq!(status(&env)["clear"], 1, "bin is still clear");
    assert!(ok(&env, &["key", "seal-all"]).contains("1 record(s) sealed"));
    assert_eq!(status(&env)["clear"], 0);
    assert_no_secret_in(&env.store());
}

#[test]
fn a_copy_without_the_key_is_denied_and_works_once_the_key_is_imported() {
    let a = sealed_host();
    let id = current_key(&a);
    let b = Env::new("");
    b.service("tf", "", &[]);
    for entry in fs::read_dir(a.store()).unwrap() {
        let path = entry.unwrap().path();
        fs::copy(&path, b.store().join(path.file_name().unwrap())).unwrap();
    }
    assert_no_secret_in(&b.store());
    wait_for_fresh_step(4);
    let (result, log) = b.pamtester_logged("tf", "daemon", &oathtool(SECRET, 0));
    assert_ne!(result.verdict(), ACCEPTED);
    let log = log.join("\n");
    assert!(log.contains(&id) && log.contains("key import"), "{log}");

    let file = a.dir.path().join("fleet.key");
    ok(&a, &["key", "export", file.to_str().unwrap()]);
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !a.run(&["key", "export", file.to_str().unwrap()])
            .status
            .success(),
        "exclusive"
    );
    assert!(ok(&b, &["key", "import", file.to_str().unwrap()]).contains(&id));
    wait_for_fresh_step(4);
    assert_eq!(
        b.pamtester("tf", "daemon", &oathtool(SECRET, 0)).verdict(),
        ACCEPTED
    );
}

#[test]
fn a_record_moved_to_another_user_is_denied_even_with_its_account_edited() {
    let env = sealed_host();
    let text = fs::read_to_string(env.record("daemon")).unwrap();
    for planted in [
        text.clone(),
        text.replace("account = \"daemon\"", "account = \"bin\""),
    ] {
        fs::write(env.record("bin"), &planted).unwrap();
        fs::set_permissions(env.record("bin"), fs::Permissions::from_mode(0o600)).unwrap();
        wait_for_fresh_step(3);
        let (result, log) = env.pamtester_logged("tf", "bin", &oathtool(SECRET, 0));
        assert_ne!(result.verdict(), ACCEPTED, "{log:?}");
    }
    let (_, log) = env.pamtester_logged("tf", "bin", &oathtool(SECRET, 0));
    assert!(log.join("\n").contains("does not open"), "{log:?}");
}

fn spawn_login(env: &Env, user: &str, code: &str) -> std::process::Child {
    let mut child = env
        .pamtester_command("tf", user)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let _ = child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{code}\n").as_bytes());
    child
}

#[test]
fn rotate_while_32_logins_race_accepts_once_and_leaves_every_record_readable() {
    let env = sealed_host();
    env.enroll("bin", SECRET);
    let old = current_key(&env);
    wait_for_fresh_step(12);
    let code = oathtool(SECRET, 0);
    let logins: Vec<_> = (0..32)
        .map(|i| spawn_login(&env, ["daemon", "bin"][i % 2], &code))
        .collect();
    let rotate = env.twofold(&["key", "rotate"]).output().unwrap();
    assert!(
        rotate.status.success(),
        "{}",
        String::from_utf8_lossy(&rotate.stderr)
    );
    let accepted = logins
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .filter(|o| {
            let said = [&o.stdout[..], &o.stderr[..]].concat();
            String::from_utf8_lossy(&said).contains(ACCEPTED)
        })
        .count();
    assert_eq!(accepted, 2, "once per user");
    let status = status(&env);
    assert_eq!(status["unreadable"], 0);
    let keys = status["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{status}");
    assert_ne!(keys[0]["id"], old.as_str());
    assert_eq!(keys[0]["records"], 2);
    assert_eq!(
        env.pamtester("tf", "daemon", &code).verdict(),
        AUTH_ERR,
        "replay after rotate"
    );
}

#[test]
fn rotate_killed_at_random_points_then_run_again_loses_nothing() {
    let env = sealed_host();
    for user in ["bin", "sys", "sync", "games", "man", "lp", "mail"] {
        env.enroll(user, SECRET);
    }
    for trial in 0..20u64 {
        let mut child = Command::new(twofold_bin())
            .arg("--config")
            .arg(env.policy())
            .args(["key", "rotate"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let delay = (common::now().wrapping_mul(2_654_435_761) ^ (trial * 7919)) % 40;
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        assert_eq!(
            status(&env)["unreadable"],
            0,
            "trial {trial}, after {delay} ms"
        );
    }
    ok(&env, &["key", "rotate"]);
    let status = status(&env);
    assert_eq!(
        (status["unreadable"].as_u64(), status["clear"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(status["keys"].as_array().unwrap().len(), 1, "{status}");
    wait_for_fresh_step(3);
    assert_eq!(
        env.pamtester("tf", "mail", &oathtool(SECRET, 0)).verdict(),
        ACCEPTED
    );
}

#[test]
fn fleet_two_hosts_with_the_fleet_key_and_a_dump_without_secrets() {
    let pg = Postgres::start();
    let host = || {
        let env = Env::new("");
        let text = format!(
            "[store]\nkind = \"postgres\"\nurl = \"{}\"\nkeys_dir = \"{}\"\nagent_socket = \"{}\"\n",
            pg.socket_url(),
            env.keys().display(),
            env.agent_socket().display()
        );
        fs::write(env.policy(), text).unwrap();
        env.service("tf", "", &[]);
        let agent = env.start_agent();
        (env, agent)
    };
    let ((a, _a_agent), (b, _b_agent)) = (host(), host());
    ok(&a, &["db", "init"]);
    ok(&a, &["key", "init"]);
    a.enroll("daemon", SECRET);
    wait_for_fresh_step(4);
    let (result, log) = b.pamtester_logged("tf", "daemon", &oathtool(SECRET, 0));
    assert_ne!(result.verdict(), ACCEPTED, "host B has no fleet key yet");
    assert!(log.join("\n").contains(&current_key(&a)), "{log:?}");
    let file = a.dir.path().join("fleet.key");
    ok(&a, &["key", "export", file.to_str().unwrap()]);
    ok(&b, &["key", "import", file.to_str().unwrap()]);
    wait_for_fresh_step(4);
    let code = oathtool(SECRET, 0);
    assert_eq!(b.pamtester("tf", "daemon", &code).verdict(), ACCEPTED);
    assert_eq!(
        a.pamtester("tf", "daemon", &code).verdict(),
        AUTH_ERR,
        "replay on host A"
    );
    let dump = pg.pg_dump();
    assert!(dump.contains("[sealed]"), "the dump holds the row");
    assert!(!dump.contains(SECRET) && !dump.contains(&SECRET[..16]));
    assert!(!contains(dump.as_bytes(), RAW));
}
