//! Fleet mode: two "hosts" (two PAM service directories, each with its own policy) sharing one
//! real PostgreSQL server started by the test. Logins through the real PAM library with
//! `oathtool` codes; racing logins through the library's public login path in separate
//! processes (`twofold-test-worker fleet-login`, as in tests/hardening.rs).

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::agent::Agent;
use common::postgres::{PASSWORD, PLAIN_DB, Postgres};
use common::{Env, SECRET, oathtool, wait_for_fresh_step, worker};
use pam_twofold::otp::{self, Secret, TotpParams};

const ACCEPTED: &str = "pamtester: successfully authenticated";
const AUTH_ERR: &str = "pamtester: Authentication failure";
const UNAVAILABLE: &str = "pamtester: Authentication service cannot retrieve authentication info";
const SERVICE_ERR: &str = "pamtester: Error in service module";

/// A host: its own policy (store = the shared database), PAM services and fleet agent.
struct Host {
    env: Env,
    agent: Agent,
}

impl std::ops::Deref for Host {
    type Target = Env;
    fn deref(&self) -> &Env {
        &self.env
    }
}

/// `env` with its agent started (its policy names `agent_socket`, see [`agent_line`]).
fn with_agent(env: Env) -> Host {
    let agent = env.start_agent();
    Host { env, agent }
}

/// The `[store]` line that sends `env`'s logins to its own agent.
fn agent_line(env: &Env) -> String {
    format!("agent_socket = \"{}\"\n", env.agent_socket().display())
}

fn host(store_lines: &str, extra: &str) -> Host {
    let env = Env::new("");
    let text = format!(
        "[store]\ndir = \"{}\"\nkeys_dir = \"{keys}\"\n{agent}{store_lines}\n\n{extra}\n",
        env.store().display(),
        keys = env.keys().display(),
        agent = agent_line(&env)
    );
    fs::write(env.policy(), text).unwrap();
    env.service("tf", "", &[]);
    with_agent(env)
}

fn socket_host(pg: &Postgres, extra: &str) -> Host {
    host(
        &format!("kind = \"postgres\"\nurl = \"{}\"", pg.socket_url()),
        extra,
    )
}

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

#[test]
fn one_enrollment_and_one_replay_step_across_two_hosts() {
    let pg = Postgres::start();
    let a = socket_host(&pg, "");
    let b = socket_host(&pg, "");
    // Before `db init` the module fails closed and says what to do.
    let (result, log) = a.pamtester_logged("tf", "daemon", "123456");
    assert_eq!(result.verdict(), UNAVAILABLE);
    assert!(log.join("\n").contains("run `twofold db init`"), "{log:?}");

    assert!(ok(&a, &["db", "init"]).contains("created"));
    assert!(
        ok(&b, &["db", "init"]).contains("nothing changed"),
        "idempotent"
    );
    a.enroll("daemon", SECRET);
    let status: serde_json::Value =
        serde_json::from_str(&ok(&b, &["status", "daemon", "--json"])).unwrap();
    assert_eq!(status["state"], "enabled", "enrolled once, seen on host B");
    assert!(!a.record("daemon").exists(), "nothing in the local files");

    wait_for_fresh_step(8);
    let code = oathtool(SECRET, 0);
    assert_eq!(a.pamtester("tf", "daemon", &code).verdict(), ACCEPTED);
    assert_eq!(
        b.pamtester("tf", "daemon", &code).verdict(),
        AUTH_ERR,
        "the code used on host A is refused on host B"
    );
    assert_eq!(a.pamtester("tf", "daemon", &code).verdict(), AUTH_ERR);
    assert_eq!(
        b.pamtester("tf", "daemon", &oathtool(SECRET, 30)).verdict(),
        ACCEPTED
    );
    let list = ok(&b, &["list", "--json"]);
    assert!(list.contains("\"daemon\""), "{list}");
}

#[test]
fn lockout_counts_across_hosts_and_unlock_anywhere() {
    let pg = Postgres::start();
    let a = socket_host(&pg, "[lockout]\nmax_failures = 4");
    let b = socket_host(&pg, "[lockout]\nmax_failures = 4");
    ok(&a, &["db", "init"]);
    a.enroll("daemon", SECRET);
    wait_for_fresh_step(8);
    let wrong = if oathtool(SECRET, 0) == "000000" {
        "111111"
    } else {
        "000000"
    };
    for env in [&a, &b, &a, &b] {
        assert_eq!(env.pamtester("tf", "daemon", wrong).verdict(), AUTH_ERR);
    }
    let status: serde_json::Value =
        serde_json::from_str(&ok(&a, &["status", "daemon", "--json"])).unwrap();
    assert_eq!(
        (status["failures"].as_u64(), status["locked"].as_bool()),
        (Some(4), Some(true))
    );
    assert_eq!(
        a.pamtester("tf", "daemon", &oathtool(SECRET, 0)).verdict(),
        AUTH_ERR,
        "locked on every host"
    );
    ok(&b, &["unlock", "daemon"]);
    assert_eq!(
        a.pamtester("tf", "daemon", &oathtool(SECRET, 0)).verdict(),
        ACCEPTED
    );
}

#[test]
fn database_down_denies_with_a_clear_line_and_comes_back() {
    let pg = Postgres::start();
    let a = socket_host(&pg, "");
    let cached = {
        // Same database, offline = "cache" (copies in the host's own directory).
        let env = Env::new("");
        let text = format!(
            "[store]\ndir = \"{store}\"\nkeys_dir = \"{keys}\"\n{agent}kind = \"postgres\"\nurl = \"{}\"\noffline = \"cache\"\ncache_dir = \"{cache}\"\n",
            pg.socket_url(),
            agent = agent_line(&env),
            keys = env.keys().display(),
            store = env.store().display(),
            cache = env.dir.path().join("cache").display()
        );
        fs::write(env.policy(), text).unwrap();
        env.service("tf", "", &[]);
        with_agent(env)
    };
    ok(&a, &["db", "init"]);
    ok(&cached, &["db", "init"]); // creates the cache directory
    a.enroll("daemon", SECRET);
    wait_for_fresh_step(12);
    // One login on the caching host leaves its copy.
    assert_eq!(
        cached
            .pamtester("tf", "daemon", &oathtool(SECRET, -30))
            .verdict(),
        ACCEPTED
    );

    pg.stop();
    let (result, log) = a.pamtester_logged("tf", "daemon", &oathtool(SECRET, 0));
    assert_eq!(result.verdict(), UNAVAILABLE, "fail closed");
    let log = log.join("\n");
    assert!(
        log.contains("PostgreSQL store")
            && log.contains("unreachable")
            && log.contains("fail closed"),
        "{log}"
    );
    // A user with no local copy is denied on the caching host too.
    let (result, _) = cached.pamtester_logged("tf", "bin", "123456");
    assert_eq!(result.verdict(), UNAVAILABLE);
    // The caching host checks the code against its copy, and says so.
    let (result, log) = cached.pamtester_logged("tf", "daemon", &oathtool(SECRET, 0));
    assert_eq!(result.verdict(), ACCEPTED, "{log:?}");
    assert!(log.join("\n").contains("offline copy"), "{log:?}");
    assert_eq!(
        cached
            .pamtester("tf", "daemon", &oathtool(SECRET, 0))
            .verdict(),
        AUTH_ERR,
        "replays refused on this host even offline"
    );

    pg.start_again();
    let status: serde_json::Value =
        serde_json::from_str(&ok(&a, &["status", "daemon", "--json"])).unwrap();
    assert_eq!(status["state"], "enabled", "nothing corrupted");
    assert_eq!(
        a.pamtester("tf", "daemon", &oathtool(SECRET, 30)).verdict(),
        ACCEPTED,
        "back to normal"
    );
}

#[test]
fn a_server_that_does_not_answer_is_given_up_on_after_the_timeout() {
    let pg = Postgres::start();
    let a = socket_host(&pg, "");
    ok(&a, &["db", "init"]);
    a.enroll("daemon", SECRET);
    fs::write(
        a.policy(),
        fs::read_to_string(a.policy())
            .unwrap()
            .replace("kind = \"postgres\"", "kind = \"postgres\"\ntimeout = 2"),
    )
    .unwrap();
    pg.freeze(true);
    let started = Instant::now();
    let (result, log) = a.pamtester_logged("tf", "daemon", &oathtool(SECRET, 0));
    let waited = started.elapsed();
    pg.freeze(false);
    assert_eq!(result.verdict(), UNAVAILABLE, "fail closed");
    let log = log.join("\n");
    // A pooled connection (the enrollment left one) times out on its statement; a new one
    // on connecting.
    assert!(
        log.contains("no answer within 2s") || log.contains("no connection within 2s"),
        "{log}"
    );
    // Not a speed check: the login must end instead of hanging with the server.
    assert!(waited < Duration::from_secs(30), "{waited:?}");
    wait_for_fresh_step(8);
    assert_eq!(
        a.pamtester("tf", "daemon", &oathtool(SECRET, 0)).verdict(),
        ACCEPTED,
        "thawed"
    );
}

#[test]
fn tcp_with_a_password_file_and_migration_both_ways() {
    let pg = Postgres::start();
    let a = Env::new("");
    let password = a.dir.path().join("db.password");
    fs::write(&password, format!("{PASSWORD}\n")).unwrap();
    fs::set_permissions(&password, fs::Permissions::from_mode(0o600)).unwrap();
    // Loopback without TLS: sslmode=disable says so (the server has no certificate).
    let text = format!(
        "[store]\ndir = \"{}\"\nkeys_dir = \"{keys}\"\n{agent}kind = \"postgres\"\nurl = \"{}?sslmode=disable\"\npassword_file = \"{}\"\n",
        a.store().display(),
        pg.tcp_url("localhost"),
        password.display(),
        keys = a.keys().display(),
        agent = agent_line(&a)
    );
    fs::write(a.policy(), &text).unwrap();
    a.service("tf", "", &[]);
    let a = with_agent(a);
    ok(&a, &["db", "init"]);

    // Local records (a host before fleet mode) go to the database, idempotently.
    let local = Env::new("");
    local.enroll("daemon", SECRET);
    local.enroll("bin", SECRET);
    let dir = local.store();
    let dir = dir.to_str().unwrap();
    let first = ok(&a, &["migrate", "--to", "postgres", "--dir", dir]);
    assert!(first.contains("2 copied"), "{first}");
    let again = ok(&a, &["migrate", "--to", "postgres", "--dir", dir]);
    assert!(again.contains("0 copied, 2 already the same"), "{again}");
    wait_for_fresh_step(8);
    assert_eq!(
        a.pamtester("tf", "daemon", &oathtool(SECRET, 0)).verdict(),
        ACCEPTED,
        "TCP, password from the file"
    );
    // Now the database differs from the local file: kept unless --force.
    let differs = ok(&a, &["migrate", "--to", "postgres", "--dir", dir]);
    assert!(differs.contains("daemon: kept"), "{differs}");
    // And back into an empty directory.
    let back = a.dir.path().join("back");
    let out = ok(
        &a,
        &[
            "migrate",
            "--from",
            "postgres",
            "--dir",
            back.to_str().unwrap(),
        ],
    );
    assert!(out.contains("2 copied"), "{out}");
    assert!(back.join("daemon.toml").exists() && back.join("bin.toml").exists());

    // A password in the url, or a password file others can read, is refused.
    fs::write(
        a.policy(),
        text.replace("twofold@", &format!("twofold:{PASSWORD}@")),
    )
    .unwrap();
    let out = a.run(&["status", "daemon"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("password_file"));
    fs::write(a.policy(), &text).unwrap();
    fs::set_permissions(&password, fs::Permissions::from_mode(0o644)).unwrap();
    let out = a.run(&["status", "daemon"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("mode 0600"),
        "{out:?}"
    );
}

/// One host on the TLS server of `postgres.rs` (role `twofold`, its password in a file):
/// database `postgres` only over TLS, database PLAIN_DB in clear text too. `sys` is enrolled
/// in PLAIN_DB, `daemon` and `bin` in `postgres`.
struct TlsHost {
    pg: Postgres,
    env: Host,
    password: PathBuf,
    ca: PathBuf,
    /// TLS to database postgres, the server's certificate as ca_file.
    verified: String,
    /// Clear text to PLAIN_DB, by the admin's choice.
    disabled: String,
}

/// A certificate that fails verification is not an outage: whoever presents it (a machine in
/// the middle) must not switch the host to its offline copies.
#[test]
fn a_bad_certificate_never_falls_back_to_the_offline_copy() {
    let host = TlsHost::new();
    let cache = host.env.dir.path().join("cache");
    let write = |url: &str| {
        let text = format!(
            "[store]\ndir = \"{}\"\nkeys_dir = \"{keys}\"\n{agent}kind = \"postgres\"\nurl = \"{url}\"\npassword_file = \"{}\"\nca_file = \"{}\"\noffline = \"cache\"\ncache_dir = \"{}\"\n",
            host.env.store().display(),
            host.password.display(),
            host.ca.display(),
            cache.display(),
            keys = host.env.keys().display(),
            agent = agent_line(&host.env)
        );
        fs::write(host.env.policy(), text).unwrap();
    };
    write(&host.verified);
    ok(&host.env, &["db", "init"]);
    wait_for_fresh_step(8);
    let first = host.env.pamtester("tf", "daemon", &oathtool(SECRET, 0));
    assert_eq!(first.verdict(), ACCEPTED, "{}", first.stderr);
    assert!(cache.join("daemon.toml").exists(), "the copy was written");
    // The same server under a name its certificate does not carry.
    let wrong_name = format!(
        "{} hostaddr=127.0.0.1 sslmode=require",
        host.pg.tcp_keywords("db.example", "postgres")
    );
    write(&wrong_name);
    let (result, log) = host
        .env
        .pamtester_logged("tf", "daemon", &oathtool(SECRET, 30));
    assert!(!result.success, "{}", result.stderr);
    let log = log.join("\n");
    assert!(
        !log.contains("offline copy"),
        "fell back to the copy: {log}"
    );
}

impl TlsHost {
    fn new() -> Self {
        let pg = Postgres::start_tls();
        let env = with_agent(Env::new(""));
        let password = env.dir.path().join("db.password");
        fs::write(&password, PASSWORD).unwrap();
        fs::set_permissions(&password, fs::Permissions::from_mode(0o600)).unwrap();
        env.service("tf", "", &[]);
        let host = Self {
            ca: pg.ca_file(),
            verified: format!("{}?sslmode=require", pg.tcp_url("localhost")),
            disabled: format!("{}?sslmode=disable", pg.tcp_url_to("localhost", PLAIN_DB)),
            pg,
            env,
            password,
        };
        host.set(&host.disabled, None);
        let out = host.env.run(&["db", "init"]);
        let note = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && note.contains("unencrypted"),
            "{note}"
        );
        host.env.enroll("sys", SECRET);
        host.set(&host.verified, Some(&host.ca));
        ok(&host.env, &["db", "init"]);
        host.env.enroll("daemon", SECRET);
        host.env.enroll("bin", SECRET);
        host
    }

    fn set(&self, url: &str, ca: Option<&Path>) {
        let mut text = format!(
            "[store]\ndir = \"{}\"\nkeys_dir = \"{keys}\"\n{agent}kind = \"postgres\"\nurl = \"{url}\"\npassword_file = \"{}\"\n",
            self.env.store().display(),
            self.password.display(),
            keys = self.env.keys().display(),
            agent = agent_line(&self.env)
        );
        if let Some(ca) = ca {
            text.push_str(&format!("ca_file = \"{}\"\n", ca.display()));
        }
        fs::write(self.env.policy(), text).unwrap();
    }

    /// The CLI fails with all of `words` on stderr.
    fn cli_refuses(&self, args: &[&str], words: &[&str]) {
        let out = self.env.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "twofold {args:?} worked");
        for word in words {
            assert!(
                err.contains(word),
                "twofold {args:?}: no {word:?} in: {err}"
            );
        }
    }

    /// A PAM login of `user` ends with `verdict` and a syslog line holding all of `words`.
    fn login_refused(&self, user: &str, verdict: &str, words: &[&str]) {
        let (result, log) = self.env.pamtester_logged("tf", user, &oathtool(SECRET, 0));
        let log = log.join("\n");
        assert_eq!(result.verdict(), verdict, "{log}");
        for word in words {
            assert!(log.contains(word), "no {word:?} in the log: {log}");
        }
    }

    /// (b) No sslmode, or "prefer": refused before any connection, by the module and the CLI,
    /// although the server would take them in clear text. (A denied login costs the module's
    /// failure delay: the module is asked for two of the four.)
    fn refuses_clear_text_unless_disabled(&self) {
        let plain = self.pg.tcp_url_to("localhost", PLAIN_DB);
        let plain_keywords = self.pg.tcp_keywords("localhost", PLAIN_DB);
        for (url, fix, pam) in [
            (plain.clone(), "?sslmode=require", true),
            (
                format!("{plain}?sslmode=prefer"),
                "sslmode=prefer to sslmode=require",
                false,
            ),
            (plain_keywords.clone(), "add sslmode=require", false),
            (
                format!("{plain_keywords} sslmode=prefer"),
                "sslmode=prefer to sslmode=require",
                true,
            ),
        ] {
            self.set(&url, Some(&self.ca));
            let words = ["clear text", fix, "ca_file", "sslmode=disable"];
            if pam {
                self.login_refused("sys", SERVICE_ERR, &words);
            }
            self.cli_refuses(&["db", "init"], &words);
            self.cli_refuses(&["status", "sys"], &words);
        }
        // libpq's other names: refused, saying that require already does what verify-full does.
        let url = format!("{}?sslmode=verify-full", self.pg.tcp_url("localhost"));
        self.set(&url, Some(&self.ca));
        self.cli_refuses(&["status", "daemon"], &["sslmode=require", "verify-full"]);
    }

    /// (c) sslmode=require fails closed unless the certificate is trusted and names the host
    /// (host=, not the hostaddr= the connection goes to).
    fn fails_closed_on_a_certificate_it_cannot_verify(&self) {
        let other_name = format!(
            "{} hostaddr=127.0.0.1 sslmode=require",
            self.pg.tcp_keywords("db.example", "postgres")
        );
        let ip = format!("{}?sslmode=require", self.pg.tcp_url("127.0.0.1"));
        let ca = Some(self.ca.as_path());
        for (url, ca, why, pam) in [
            (&other_name, ca, "hostname mismatch", true),
            (&ip, ca, "IP address mismatch", false),
            (&self.verified, None, "self-signed certificate", false),
        ] {
            self.set(url, ca);
            let words = ["certificate verify failed", why];
            if pam {
                self.login_refused("daemon", UNAVAILABLE, &words);
            }
            self.cli_refuses(&["status", "daemon"], &words);
        }
    }

    /// (a) and (d): logins accepted with verified TLS (both url forms) and with an explicit
    /// sslmode=disable. Each user logs in once: no replay, so a code stays good for its step
    /// and the window's next one (no wait for a fresh step).
    fn accepts_verified_tls_and_explicit_clear_text(&self) {
        let code = oathtool(SECRET, 0);
        self.set(&self.verified, Some(&self.ca));
        assert_eq!(
            self.env.pamtester("tf", "daemon", &code).verdict(),
            ACCEPTED
        );
        let keywords = format!(
            "{} hostaddr=127.0.0.1 sslmode=require",
            self.pg.tcp_keywords("localhost", "postgres")
        );
        self.set(&keywords, Some(&self.ca));
        assert_eq!(self.env.pamtester("tf", "bin", &code).verdict(), ACCEPTED);
        self.set(&self.disabled, None);
        assert_eq!(self.env.pamtester("tf", "sys", &code).verdict(), ACCEPTED);
        // libpq's environment is not read: the url alone says where to go and how.
        let out = self
            .env
            .twofold(&["status", "sys", "--json"])
            .env("PGSSLMODE", "require")
            .env("PGHOST", "/nonexistent")
            .env("PGHOSTADDR", "192.0.2.1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(status["state"], "enabled");
    }
}

/// One TLS server for all the checks (the server refuses TCP without TLS to database
/// postgres, so a login that works there used TLS).
#[test]
fn tcp_needs_tls_with_certificate_and_host_name_checked_or_an_explicit_sslmode_disable() {
    common::require_tool("openssl", "openssl");
    let started = Instant::now();
    let host = TlsHost::new();
    host.refuses_clear_text_unless_disabled();
    host.fails_closed_on_a_certificate_it_cannot_verify();
    host.accepts_verified_tls_and_explicit_clear_text();
    println!("TLS checks: {:.1} s", started.elapsed().as_secs_f64());
}

// ---- racing hosts ----------------------------------------------------------------------

/// A worker (`twofold-test-worker fleet-login`): waits for "go", logs in once through the
/// library with the host's policy, and exits 0 (accepted), 1 (refused), 2 (anything else) or 3
/// (a thread was started).
fn spawn_worker(policy: &Path, sync: &Path, answer: &str, now: i64) -> Child {
    let (policy, sync, now) = (
        policy.display().to_string(),
        sync.display().to_string(),
        now.to_string(),
    );
    worker::command("fleet-login", &[&policy, &sync, answer, &now])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn hardening_fleet_32_processes_on_two_hosts_race_one_code_exactly_one_wins() {
    let rounds: i64 = if std::env::var_os("TWOFOLD_LONG").is_some() {
        1000
    } else {
        200
    };
    let pg = Postgres::start();
    // Host A by socket; host B by TCP through a host name (resolved without a thread).
    let a = socket_host(&pg, "[lockout]\nmax_failures = 0");
    let b = Env::new("");
    let password = b.dir.path().join("db.password");
    fs::write(&password, PASSWORD).unwrap();
    fs::set_permissions(&password, fs::Permissions::from_mode(0o400)).unwrap();
    fs::write(
        b.policy(),
        format!(
            "[store]\nkeys_dir = \"{keys}\"\n{agent}kind = \"postgres\"\nurl = \"{}?sslmode=disable\"\npassword_file = \"{}\"\n[lockout]\nmax_failures = 0\n",
            pg.tcp_url("localhost"),
            password.display(),
            keys = b.keys().display(),
            agent = agent_line(&b)
        ),
    )
    .unwrap();
    let b = with_agent(b);
    // The role the hosts use owns the tables (host A connects as the superuser).
    ok(&b, &["db", "init"]);
    a.enroll("daemon", SECRET);
    let secret = Secret::from_base32(SECRET).unwrap();
    let base: i64 = 1_800_000_000;
    let started = Instant::now();
    let mut refused = 0;
    for round in 0..rounds {
        let now = base + round * 30;
        let code = otp::totp(&secret, TotpParams::default(), now as u64);
        let sync = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let mut workers: Vec<Child> = (0..32)
            .map(|i| {
                let policy = if i % 2 == 0 { a.policy() } else { b.policy() };
                spawn_worker(&policy, sync.path(), &code, now)
            })
            .collect();
        worker::release(
            sync.path(),
            32,
            Duration::from_secs(60),
            Duration::from_millis(2),
        );
        let codes: Vec<i32> = workers
            .iter_mut()
            .map(|w| w.wait().unwrap().code().unwrap_or(-1))
            .collect();
        let accepted = codes.iter().filter(|c| **c == 0).count();
        assert!(
            codes.iter().all(|c| *c == 0 || *c == 1),
            "round {round}: a worker failed or started a thread: {codes:?}"
        );
        assert_eq!(accepted, 1, "round {round}: {codes:?}");
        refused += codes.iter().filter(|c| **c == 1).count();
    }
    println!(
        "fleet race: {rounds} rounds × 32 processes over 2 hosts: exactly 1 accepted per round, {refused} refused, no thread started ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
}

// ---- the local agent ---------------------------------------------------------------------

/// The agent stopped (as by a crash): logins fail closed at once with a syslog line that
/// says what to start; a new agent replaces the stale socket and logins work again.
#[test]
fn agent_down_fails_closed_with_a_syslog_line_and_a_restart_recovers() {
    let pg = Postgres::start();
    let mut a = socket_host(&pg, "");
    ok(&a, &["db", "init"]);
    a.enroll("daemon", SECRET);
    a.agent.kill();
    let started = Instant::now();
    let (result, log) = a.pamtester_logged("tf", "daemon", &oathtool(SECRET, 0));
    assert_eq!(result.verdict(), UNAVAILABLE, "fail closed");
    let log = log.join("\n");
    assert!(
        log.contains("twofold agent") && log.contains("unreachable") && log.contains("fail closed"),
        "{log}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(a.agent_socket().exists(), "the dead agent's socket is left");
    a.agent = a.env.start_agent();
    wait_for_fresh_step(8);
    assert_eq!(
        a.pamtester("tf", "daemon", &oathtool(SECRET, 0)).verdict(),
        ACCEPTED,
        "a restarted agent serves again"
    );
}

/// A login killed while it holds the user's lock (between the agent's read and its own
/// decision): the agent rolls back, the next login neither waits for the lock nor sees a
/// half-made change.
#[test]
fn a_module_killed_mid_update_is_rolled_back_and_the_next_login_is_fine() {
    let pg = Postgres::start();
    let a = socket_host(&pg, "");
    ok(&a, &["db", "init"]);
    a.enroll("daemon", SECRET);
    let policy = a.policy().display().to_string();
    let hold = a.dir.path().join("hold");
    let mut dying = worker::command(
        "die-in-update",
        &[&policy, "daemon", hold.to_str().unwrap()],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut said = String::new();
    BufReader::new(dying.stdout.take().unwrap())
        .read_line(&mut said)
        .unwrap();
    assert_eq!(said.trim(), "locked");
    // While the module decides, the user's lock is held by the agent's open transaction (a
    // lock taken outside it would have ended with its statement).
    let held = pg.psql(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
         WHERE l.locktype = 'advisory' AND l.granted \
         AND a.application_name = 'twofold-agent' AND a.state = 'idle in transaction'",
    );
    assert_eq!(held.trim(), "1", "the lock across the decision");
    fs::write(&hold, "").unwrap();
    let out = dying.wait_with_output().unwrap();
    assert!(!out.status.success(), "it died: {out:?}");
    wait_for_fresh_step(8);
    let started = Instant::now();
    assert_eq!(
        a.pamtester("tf", "daemon", &oathtool(SECRET, 0)).verdict(),
        ACCEPTED
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited for a lock: {:?}",
        started.elapsed()
    );
    let status: serde_json::Value =
        serde_json::from_str(&ok(&a, &["status", "daemon", "--json"])).unwrap();
    assert_eq!(
        status["failures"].as_u64(),
        Some(0),
        "the dead login's change"
    );
    assert!(a.agent.log().contains("rolled back"), "{}", a.agent.log());
}

/// The server ends the agent's pooled connection (pg_terminate_backend, as an admin or a
/// failover would): the agent opens a new one instead of reusing it, and logins go on.
#[test]
fn a_pooled_connection_the_server_ended_is_not_reused() {
    let pg = Postgres::start();
    let a = socket_host(&pg, "");
    ok(&a, &["db", "init"]);
    a.enroll("daemon", SECRET);
    wait_for_fresh_step(8);
    assert_eq!(
        a.pamtester("tf", "daemon", &oathtool(SECRET, 0)).verdict(),
        ACCEPTED
    );
    let agents = "FROM pg_stat_activity WHERE application_name = 'twofold-agent'";
    assert_eq!(
        pg.psql(&format!("SELECT count(*) {agents}")).trim(),
        "1",
        "one connection, kept in the pool"
    );
    let ended = pg.psql(&format!("SELECT count(pg_terminate_backend(pid)) {agents}"));
    assert_eq!(ended.trim(), "1");
    assert_eq!(
        a.pamtester("tf", "daemon", &oathtool(SECRET, 30)).verdict(),
        ACCEPTED,
        "a new connection; agent log: {}",
        a.agent.log()
    );
    assert_eq!(
        a.pamtester("tf", "daemon", &oathtool(SECRET, 30)).verdict(),
        AUTH_ERR,
        "the code it accepted was recorded"
    );
    assert_eq!(pg.psql(&format!("SELECT count(*) {agents}")).trim(), "1");
}

/// What a process of uid 65534 gets from the agent's socket: the length of the first reply
/// frame's header it could read (0: the agent closed or reset the connection).
fn probe_as_nobody(socket: &Path) -> String {
    // The agent may cut the connection before the request is even sent (BrokenPipe).
    let script = "import socket,struct,sys\n\
        s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n\
        b=b'{\"v\":1,\"op\":\"check\"}'\n\
        try:\n    s.sendall(struct.pack('>I',len(b))+b); n=len(s.recv(4))\n\
        except (ConnectionResetError, BrokenPipeError): n=0\n\
        print(n)\n";
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            script,
        ])
        .arg(socket)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// SO_PEERCRED on the agent's side: a process that is not root (and not allowed) is refused
/// even when the socket's mode would let it connect; `--allow-uid` admits it.
#[test]
fn a_non_root_peer_is_refused_by_the_agent() {
    let pg = Postgres::start();
    let a = socket_host(&pg, "");
    ok(&a, &["db", "init"]);
    fs::set_permissions(a.dir.path(), fs::Permissions::from_mode(0o711)).unwrap();
    fs::set_permissions(a.agent_socket(), fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(probe_as_nobody(&a.agent_socket()), "0", "refused");
    assert!(
        a.agent
            .log()
            .contains("refused a connection from uid 65534"),
        "{}",
        a.agent.log()
    );
    let socket = a.dir.path().join("open.sock");
    let open = Agent::start(&a.policy(), &socket, &["--allow-uid", "65534"]);
    assert_eq!(probe_as_nobody(&socket), "4", "served");
    drop(open);
}
