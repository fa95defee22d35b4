//! Hardening, with figures: logins racing in separate processes against the real store,
//! writers killed with SIGKILL in the middle of a write, admin commands racing logins.
//!
//! The worker processes are `twofold-test-worker` (tests/worker; roles `login` and `writer`),
//! so there is no test-only code in the library: they call the same public login path and the
//! same store the module uses.
//!
//! CI runs a few hundred rounds/trials; `scripts/hardening.sh` runs the long version
//! (TWOFOLD_LONG=1).

mod common;

use std::fs;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::library_login::hardening_login;
use common::worker;
use pam_twofold::Store;
use pam_twofold::enroll::{Enrollment, NewSecret, Proof, Token};
use pam_twofold::login::Outcome;
use pam_twofold::otp::{self, Secret, TotpParams};
use pam_twofold::store::Replace;
use pam_twofold::{FileStore, UserName};

const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const BASE_TIME: u64 = 1_800_000_000;

fn long_run() -> bool {
    std::env::var_os("TWOFOLD_LONG").is_some()
}

/// A worker process (`twofold-test-worker ROLE STORE USER EXTRA...`), output discarded.
fn worker(role: &str, store: &Path, user: &str, extra: &[&str]) -> Child {
    let store = store.display().to_string();
    let mut args = vec![store.as_str(), user];
    args.extend(extra);
    worker::command(role, &args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// A store with `user` enrolled (secret SECRET, no step used yet).
fn store_with_user(user: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("twofold-hardening-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let name = UserName::parse(user).unwrap();
    let secret = NewSecret::Given(Secret::from_base32(SECRET).unwrap());
    let token = Token::Totp { window: 1 };
    Enrollment::new(&name, "test", secret, TotpParams::default(), token)
        .unwrap()
        .activate(
            &FileStore::new(dir.path()),
            Proof::Unverified { now: 1 },
            Replace::No,
            0,
        )
        .unwrap();
    dir
}

fn code_at(now: u64) -> String {
    otp::totp(
        &Secret::from_base32(SECRET).unwrap(),
        TotpParams::default(),
        now,
    )
    .to_string()
}

/// Starts `n` login workers with `answer` at `now`, releases them together; returns how
/// many were let in.
fn race(store: &Path, user: &str, answer: &str, now: u64, n: usize) -> usize {
    let sync = tempfile::Builder::new()
        .prefix("sync-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let sync_dir = sync.path().display().to_string();
    let now = now.to_string();
    let extra = [sync_dir.as_str(), answer, now.as_str()];
    let children: Vec<Child> = (0..n)
        .map(|_| worker("login", store, user, &extra))
        .collect();
    worker::release(
        sync.path(),
        n,
        Duration::from_secs(30),
        Duration::from_millis(1),
    );
    children
        .into_iter()
        .map(|mut c| c.wait().unwrap())
        .filter(|s| s.success())
        .count()
}

#[test]
fn hardening_32_processes_racing_with_one_code_exactly_one_wins() {
    const PROCESSES: usize = 32;
    let rounds = if long_run() { 1000 } else { 200 };
    let store = store_with_user("racer");
    let started = Instant::now();
    let mut refused = 0;
    for round in 0..rounds {
        let now = BASE_TIME + 30 * round as u64;
        let winners = race(store.path(), "racer", &code_at(now), now, PROCESSES);
        assert_eq!(
            winners, 1,
            "round {round}: one code let in {winners} logins"
        );
        refused += PROCESSES - winners;
    }
    println!(
        "races: {rounds} rounds x {PROCESSES} processes with one code each: {rounds} accepted, {refused} refused, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn hardening_racing_wrong_codes_are_all_counted() {
    const PROCESSES: usize = 32;
    let rounds = if long_run() { 100 } else { 10 };
    let store = store_with_user("guesser");
    let now = BASE_TIME;
    let right: Vec<String> = (-1..=1)
        .map(|i| code_at((now as i64 + 30 * i) as u64))
        .collect();
    let wrong = (0..)
        .map(|n| format!("{:06}", n * 7919 % 1_000_000))
        .find(|c| !right.contains(c))
        .unwrap();
    for _ in 0..rounds {
        assert_eq!(race(store.path(), "guesser", &wrong, now, PROCESSES), 0);
    }
    let record = FileStore::new(store.path())
        .load(&UserName::parse("guesser").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(record.failures as usize, rounds * PROCESSES, "lost updates");
    println!(
        "wrong codes: {} attempts in {rounds} races of {PROCESSES}: counter {}",
        rounds * PROCESSES,
        record.failures
    );
}

#[test]
fn hardening_admin_commands_racing_logins_lose_no_update() {
    // Wrong logins (each +1 failure) while `twofold codes --regenerate` rewrites the record:
    // every increment must survive, and the record must hold a whole batch of codes.
    let store = store_with_user("busy");
    let config = store.path().join("policy.toml");
    fs::write(
        &config,
        format!(
            "[store]\ndir = \"{}\"\nkeys_dir = \"{}/keys\"\n[lockout]\nmax_failures = 0\n[backup_codes]\ncount = 3\n",
            store.path().display(),
            store.path().display()
        ),
    )
    .unwrap();
    let rounds = if long_run() { 50 } else { 5 };
    let mut admin_runs = 0;
    for _ in 0..rounds {
        let admins: Vec<Child> = (0..4)
            .map(|_| {
                Command::new(common::twofold_bin())
                    .arg("--config")
                    .arg(&config)
                    .args(["codes", "busy", "--regenerate", "--yes"])
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        assert_eq!(race(store.path(), "busy", "000001", BASE_TIME, 16), 0);
        for mut admin in admins {
            assert!(admin.wait().unwrap().success());
            admin_runs += 1;
        }
    }
    let record = FileStore::new(store.path())
        .load(&UserName::parse("busy").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(
        record.failures as usize,
        rounds * 16,
        "a login's update was lost"
    );
    assert_eq!(record.backup_codes_left(), 3);
    println!(
        "admin + logins: {admin_runs} regenerations racing {} wrong logins: counter {}",
        rounds * 16,
        record.failures
    );
}

/// Whole rewrites (new epoch, new state slot, then the record renamed over) killed at random
/// points, one after another: every kill may leave an orphan slot, and the next rewrite must
/// never write over the slot the record on disk still names (a bug CI once found this way).
#[test]
fn hardening_rewriter_killed_again_and_again_never_loses_the_record() {
    let trials = if long_run() { 1000 } else { 200 };
    let store = store_with_user("again");
    let user = UserName::parse("again").unwrap();
    let files = FileStore::new(store.path());
    let mut last = files.load(&user).unwrap().unwrap().created;
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for trial in 0..trials {
        let mut rewriter = worker("rewriter", store.path(), "again", &[]);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_micros(2_000 + (seed % 160) * 50));
        rewriter.kill().unwrap(); // SIGKILL
        rewriter.wait().unwrap();
        let record = files
            .load(&user)
            .unwrap_or_else(|e| panic!("trial {trial}: record unreadable after kill: {e}"))
            .expect("record still there");
        assert!(record.created >= last, "trial {trial}: went back");
        last = record.created;
    }
    let now = BASE_TIME + 90;
    let outcome = hardening_login(store.path(), "again", &code_at(now), now as i64);
    assert!(matches!(outcome, Outcome::Accepted { .. }), "{outcome}");
    println!("{trials} whole rewrites killed in a row: record readable every time");
}

#[test]
fn hardening_writer_killed_mid_write_leaves_old_or_new_record() {
    let trials = if long_run() { 2000 } else { 300 };
    let store = store_with_user("crash");
    let user = UserName::parse("crash").unwrap();
    let files = FileStore::new(store.path());
    let tmp = store.path().join(".crash.toml.tmp");
    let mut last = 0;
    let (mut advanced, mut unchanged, mut temp_left) = (0, 0, 0);
    // A cheap deterministic spread of kill delays, 0..8 ms in 50 µs steps.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for trial in 0..trials {
        let mut writer = worker("writer", store.path(), "crash", &[]);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_micros(2_000 + (seed % 160) * 50));
        writer.kill().unwrap(); // SIGKILL
        writer.wait().unwrap();
        let record = files
            .load(&user)
            .unwrap_or_else(|e| panic!("trial {trial}: record unreadable after kill: {e}"))
            .expect("record still there");
        assert!(
            record.failures >= last,
            "trial {trial}: went back from {last} to {}",
            record.failures
        );
        if record.failures > last {
            advanced += 1
        } else {
            unchanged += 1
        }
        if tmp.exists() {
            temp_left += 1;
        }
        last = record.failures;
    }
    // The next write clears a leftover temp file, and a login behaves.
    let now = BASE_TIME + 90;
    let outcome = hardening_login(store.path(), "crash", &code_at(now), now as i64);
    assert!(matches!(outcome, Outcome::Accepted { .. }), "{outcome}");
    assert!(!tmp.exists(), "stale temp file left after a good write");
    let leftovers: Vec<_> = fs::read_dir(store.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "crash.toml" && n != "crash.lock" && n != "crash.state")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    println!(
        "crash safety: {trials} writers killed with SIGKILL mid-loop ({} writes done): record parsed every time; \
         {advanced} kills after a new write, {unchanged} with the old record, {temp_left} left a temp file (cleaned by the next write)",
        last
    );
}
