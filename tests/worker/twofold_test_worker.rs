//! twofold-test-worker: the worker processes of the race and crash tests (tests/README.md).
//! A test starts it by the dozen with a role; it does one job through the library's public
//! API, the same login path and stores the module uses (there is no test-only code in the
//! library), and says how it went by its exit status.
//!
//! ```text
//! twofold-test-worker login STORE USER SYNC ANSWER NOW
//!     tests/hardening.rs: say "ready" (a file ready-PID in SYNC), wait for SYNC/go, log USER in
//!     once against the file store STORE, answering ANSWER at time NOW. Exit 0: accepted; 1: not.
//! twofold-test-worker writer STORE USER
//!     tests/hardening.rs: rewrite USER's record (failures + 1) as fast as possible until killed.
//! twofold-test-worker fleet-login POLICY SYNC ANSWER NOW
//!     tests/fleet.rs: as `login`, for user daemon (NSS), service "fleet", the store that the
//!     policy file POLICY names (PostgreSQL). Exit 0: accepted; 1: rejected; 2: anything else;
//!     3: the login started a thread (counted in /proc/self/status before and after).
//! twofold-test-worker die-in-update POLICY USER [HOLD]
//!     tests/fleet.rs: takes USER's lock through the policy's store (the fleet agent), says
//!     "locked", waits (with HOLD) until the file HOLD exists, then aborts inside the update,
//!     as a login killed mid-update would. Never exits normally.
//! twofold-test-worker sequence STORE USER SECRET N
//!     tests/crash_model.rs (run under strace): N logins of USER against the file store STORE
//!     at times 30 s apart, each with the right TOTP code of SECRET, except that every 5th is a
//!     wrong code and every 7th is followed by an admin change (a rewrite of the record).
//!     Prints "accepted STEP" after each accepted login returned (the write is in the trace).
//! twofold-test-worker full-disk DIR
//!     tests/disk_full.rs: DIR is a tiny tmpfs; writing a 64 KiB file there must fail with a
//!     write error and leave no file. Exit 0: so it did.
//! ```
//!
//! Built only with a test tier's feature (`test-worker`); never installed.

#[path = "../common/fake.rs"]
mod fake;
#[path = "../common/library_login.rs"]
mod library_login;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::exit;
use std::time::{Duration, Instant};

use fake::{Answer, FixedClock};
use pam_twofold::login::{self, FirstFactor, Outcome, Request, Services};
use pam_twofold::secure_file::{Access, CreateError, write_new};
use pam_twofold::user::Nss;
use pam_twofold::{AnyStore, FileStore, ModuleArgs, Policy, Store, UserName};

const USAGE: &str = "usage: twofold-test-worker login STORE USER SYNC ANSWER NOW
       twofold-test-worker writer STORE USER
       twofold-test-worker fleet-login POLICY SYNC ANSWER NOW
       twofold-test-worker die-in-update POLICY USER [HOLD]
       twofold-test-worker sequence STORE USER SECRET N
       twofold-test-worker full-disk DIR";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args[..] {
        ["login", store, user, sync, answer, now] => {
            // All workers hit the store at once.
            ready_then_wait_for_go(Path::new(sync), Duration::from_secs(30), 200);
            let outcome = library_login::hardening_login(Path::new(store), user, answer, time(now));
            exit(if matches!(outcome, Outcome::Accepted { .. }) {
                0
            } else {
                1
            });
        }
        ["writer", store, user] => writer(Path::new(store), user),
        ["rewriter", store, user] => rewriter(Path::new(store), user),
        ["fleet-login", policy, sync, answer, now] => {
            ready_then_wait_for_go(Path::new(sync), Duration::from_secs(60), 300);
            exit(fleet_login(Path::new(policy), answer, time(now)));
        }
        ["die-in-update", policy, user] => die_in_update(Path::new(policy), user, None),
        ["die-in-update", policy, user, hold] => {
            die_in_update(Path::new(policy), user, Some(Path::new(hold)))
        }
        ["full-disk", dir] => exit(full_disk(Path::new(dir))),
        ["sequence", store, user, secret, n] => sequence(Path::new(store), user, secret, n),
        _ => {
            eprintln!("{USAGE}");
            exit(64);
        }
    }
}

fn die_in_update(policy: &Path, user: &str, hold: Option<&Path>) -> ! {
    let policy = Policy::load(policy).expect("policy");
    let store = AnyStore::from_policy(&policy);
    let user = UserName::parse(user).expect("user name");
    let _ = store.update(&user, |slot| {
        if let Some(record) = slot.as_mut() {
            record.failures += 1;
        }
        println!("locked");
        if let Some(hold) = hold {
            // Still inside the update: the test looks at the database meanwhile.
            std::io::Write::flush(&mut std::io::stdout()).unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            while !hold.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        std::process::abort()
    });
    exit(2)
}

fn time(now: &str) -> i64 {
    now.parse()
        .unwrap_or_else(|_| panic!("NOW is not a number: {now}"))
}

/// Says "ready" (a file `ready-PID` in `sync`), then polls every `poll_us` µs for `sync/go`.
fn ready_then_wait_for_go(sync: &Path, limit: Duration, poll_us: u64) {
    fs::write(sync.join(format!("ready-{}", std::process::id())), "").unwrap();
    let deadline = Instant::now() + limit;
    while !sync.join("go").exists() {
        assert!(Instant::now() < deadline, "no go");
        std::thread::sleep(Duration::from_micros(poll_us));
    }
}

/// The start of the `sequence` role's clock; login i is at SEQUENCE_START + 30 i.
const SEQUENCE_START: i64 = 1_800_000_000;

/// See the `sequence` role.
fn sequence(store: &Path, user: &str, secret: &str, n: &str) -> ! {
    use pam_twofold::otp::{Secret, TotpParams, totp};
    let secret = Secret::from_base32(secret).unwrap();
    let name = UserName::parse(user).unwrap();
    for i in 0..n.parse::<i64>().unwrap() {
        let now = SEQUENCE_START + 30 * i;
        let code = totp(&secret, TotpParams::default(), now as u64).to_string();
        let answer = match i % 5 {
            4 => format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000),
            _ => code,
        };
        let outcome = library_login::hardening_login(store, user, &answer, now);
        if matches!(outcome, Outcome::Accepted { .. }) {
            println!("accepted {}", now / 30);
        }
        if i % 7 == 6 {
            FileStore::new(store)
                .update(&name, |slot| {
                    slot.as_mut().unwrap().issuer = format!("admin change {i}");
                })
                .unwrap();
        }
    }
    exit(0)
}

/// Rewrites the record as fast as possible until killed.
fn writer(store: &Path, user: &str) -> ! {
    let store = FileStore::new(store);
    let user = UserName::parse(user).unwrap();
    loop {
        store
            .update(&user, |slot| {
                if let Some(r) = slot.as_mut() {
                    r.failures += 1;
                }
            })
            .unwrap();
    }
}

/// Rewrites the whole record (a new label each time, as an admin change or a re-seal does:
/// new epoch, new state slot, new record file) as fast as possible until killed.
fn rewriter(store: &Path, user: &str) -> ! {
    let store = FileStore::new(store);
    let user = UserName::parse(user).unwrap();
    loop {
        store
            .update(&user, |slot| {
                if let Some(r) = slot.as_mut() {
                    r.label = format!("rewrite {}", r.created);
                    r.created += 1;
                }
            })
            .unwrap();
    }
}

fn threads() -> usize {
    fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// One login of `daemon` with the host's policy; the exit status (see the file's comment).
fn fleet_login(policy_path: &Path, answer: &str, now: i64) -> i32 {
    let before = threads();
    let policy = Policy::load(policy_path).unwrap();
    let store = AnyStore::from_policy(&policy);
    let request = Request {
        user: "daemon",
        service: "fleet",
        rhost: None,
        silent: true,
        first_factor: FirstFactor::Password,
        ssh_auth_info: None,
        split: None,
    };
    let outcome = login::authenticate(
        &request,
        &policy,
        &ModuleArgs::default(),
        &Services {
            store: &store,
            directory: &Nss,
        },
        &mut Answer(answer.to_owned()),
        &FixedClock(now),
    );
    let after = threads();
    drop(store);
    if after != before {
        eprintln!("threads: {before} before the login, {after} after");
        3
    } else {
        match outcome {
            Outcome::Accepted { .. } => 0,
            Outcome::Rejected(_) => 1,
            other => {
                eprintln!("{other}");
                2
            }
        }
    }
}

/// A disk that fills up midway must not leave a half-written file.
fn full_disk(dir: &Path) -> i32 {
    let path: PathBuf = dir.join("codes.txt");
    let result = write_new(&path, &[b'x'; 64 * 1024], Access::Private);
    if !matches!(
        result,
        Err(CreateError::Io {
            action: "write",
            ..
        })
    ) {
        eprintln!("full disk: expected a write error, got {result:?}");
        return 1;
    }
    if path.exists() {
        eprintln!("full disk: the half-written file stayed");
        return 1;
    }
    println!("full disk: the write failed and left no file");
    0
}
