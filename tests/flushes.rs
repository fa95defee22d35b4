//! How many times a real login (pamtester through the real libpam and the built module) makes
//! the disk flush: strace counts every fsync, fdatasync, sync_file_range, msync, syncfs and
//! sync of the whole run, with the file each one was on. The floor for a replay-safe login
//! is one flush; the file store must be there: an accepted code is one `fdatasync` of the
//! user's state file and no directory sync; a wrong code or a replay (each counted toward the
//! lock-out) one flush; a login that changes nothing (locked out) none.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::process::{Command, Stdio};

use common::{Env, SECRET, oathtool, require_tool, wait_for_fresh_step};

const ACCEPTED: &str = "pamtester: successfully authenticated";
const AUTH_ERR: &str = "pamtester: Authentication failure";
const SYNCS: &str = "trace=fsync,fdatasync,sync_file_range,msync,syncfs,sync";

/// One pamtester login answering `input`, under strace: its verdict and the flushes, by
/// call and file (`fdatasync daemon.state`).
fn traced_login(env: &Env, input: &str) -> (String, BTreeMap<String, usize>) {
    require_tool("strace", "strace");
    let log = env.dir.path().join("strace.log");
    let log_arg = log.display().to_string();
    let argv = env.pam_argv(
        None,
        &[
            "strace",
            "-f",
            "-y",
            "-e",
            SYNCS,
            "-o",
            &log_arg,
            "pamtester",
            "-v",
            "tf",
            "daemon",
            "authenticate",
        ],
    );
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            let _ = child
                .stdin
                .take()
                .unwrap()
                .write_all(format!("{input}\n").as_bytes());
            child.wait_with_output()
        })
        .expect("run strace");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let verdict = stderr
        .lines()
        .chain(stdout.lines())
        .filter_map(|l| l.find("pamtester:").map(|at| l[at..].to_owned()))
        .next_back()
        .unwrap_or_default();
    (verdict, flushes(&fs::read_to_string(&log).unwrap(), env))
}

/// `pid fdatasync(5</path/daemon.state>) = 0` lines as "fdatasync daemon.state" (the path
/// made relative to the store; a directory shows as "DIR <path>").
fn flushes(log: &str, env: &Env) -> BTreeMap<String, usize> {
    let store = env.store().display().to_string();
    let mut counts = BTreeMap::new();
    for line in log.lines() {
        let Some(call) = line.split_whitespace().nth(1) else {
            continue;
        };
        let Some((name, rest)) = call.split_once('(') else {
            continue;
        };
        let path = rest
            .split_once('<')
            .and_then(|(_, p)| p.split_once('>'))
            .map_or("?", |(p, _)| p);
        let shown = match path.strip_prefix(&format!("{store}/")) {
            Some(file) => file.to_owned(),
            None if path == store => format!("DIR {path}"),
            None => path.to_owned(),
        };
        *counts.entry(format!("{name} {shown}")).or_default() += 1;
    }
    counts
}

fn total(counts: &BTreeMap<String, usize>) -> usize {
    counts.values().sum()
}

#[test]
fn an_accepted_login_flushes_once_a_replay_never_a_wrong_code_once() {
    let env = Env::new("[lockout]\nmax_failures = 0\n");
    env.service("tf", "", &[]);
    env.enroll("daemon", SECRET);
    wait_for_fresh_step(5);
    let code = oathtool(SECRET, 0);

    let (verdict, accept) = traced_login(&env, &code);
    assert_eq!(verdict, ACCEPTED);
    println!("accept: {accept:?}");
    assert_eq!(
        total(&accept),
        1,
        "one flush per accepted login: {accept:?}"
    );
    assert_eq!(accept.get("fdatasync daemon.state"), Some(&1), "{accept:?}");
    assert!(!accept.keys().any(|k| k.contains("DIR")), "{accept:?}");

    let (verdict, replay) = traced_login(&env, &code);
    assert_eq!(verdict, AUTH_ERR);
    println!("replay: {replay:?}");
    // A replay counts as a failure (toward the lock-out): that count is its one write.
    assert_eq!(total(&replay), 1, "{replay:?}");
    assert_eq!(replay.get("fdatasync daemon.state"), Some(&1));
    assert_eq!(env.load("daemon").unwrap().failures, 1);

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (verdict, refused) = traced_login(&env, wrong);
    assert_eq!(verdict, AUTH_ERR);
    println!("wrong code: {refused:?}");
    assert_eq!(
        total(&refused),
        1,
        "a failure count, one flush: {refused:?}"
    );
    assert_eq!(refused.get("fdatasync daemon.state"), Some(&1));
    let record = env.load("daemon").unwrap();
    assert_eq!(record.failures, 2);
    assert!(record.last_step.is_some());
}

/// A login that changes nothing (the second factor is locked) writes nothing.
#[test]
fn a_locked_out_login_writes_nothing() {
    let env = Env::new("[lockout]\nmax_failures = 1\nlock_seconds = 600\n");
    env.service("tf", "", &[]);
    env.enroll("daemon", SECRET);
    wait_for_fresh_step(5);
    let code = oathtool(SECRET, 0);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (verdict, locking) = traced_login(&env, wrong);
    assert_eq!(verdict, AUTH_ERR);
    assert_eq!(total(&locking), 1, "{locking:?}");
    let before = fs::read(env.store().join("daemon.state")).unwrap();
    let (verdict, locked) = traced_login(&env, &code);
    assert_ne!(verdict, ACCEPTED);
    println!("locked: {locked:?}");
    assert_eq!(
        total(&locked),
        0,
        "nothing changed, nothing written: {locked:?}"
    );
    assert_eq!(fs::read(env.store().join("daemon.state")).unwrap(), before);
}

/// A backup code is an accepted login too: one flush, and the code is gone after it.
#[test]
fn a_backup_code_login_flushes_once() {
    let env = Env::new("");
    env.service("tf", "", &[]);
    let codes = env.enroll_with_codes("daemon", SECRET);
    let before = env.load("daemon").unwrap().backup_codes_left();
    let (verdict, accept) = traced_login(&env, &codes[0]);
    assert_eq!(verdict, ACCEPTED);
    println!("backup code: {accept:?}");
    assert_eq!(total(&accept), 1, "{accept:?}");
    assert_eq!(accept.get("fdatasync daemon.state"), Some(&1), "{accept:?}");
    assert_eq!(env.load("daemon").unwrap().backup_codes_left(), before - 1);
    let (verdict, replay) = traced_login(&env, &codes[0]);
    assert_eq!(verdict, AUTH_ERR);
    // A used backup code counts as a wrong code: one flush for the failure count.
    assert!(total(&replay) <= 1, "{replay:?}");
}
