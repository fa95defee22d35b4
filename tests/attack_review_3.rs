//! Attack review 3 (the no_std module and its login helper), through the real setuid
//! `twofold-self` and its PAM stack: what a caller of a setuid PAM host (su, twofold-self)
//! sets for the process must not reach the login helper it starts.

mod common;

use std::fs;
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use common::self_service::{PASSWORD, World};

/// Finding 1. A file-size limit below the end of the state slot a failure writes cut that
/// write short and killed the helper (SIGXFSZ): the wrong code was denied but never counted,
/// so someone with the password could guess without ever being locked out (a limit just above
/// a success's shorter write let the right code through). The helper now raises the limits a
/// login needs before it reads anything. Here the caller lowers only the soft limits (no file
/// growth, one second of CPU), which any host or helper may raise again, and every wrong code
/// still counts, up to the lock. (twofold-self raises its soft limits itself; su does not, and
/// the helper's own raising is what the next test proves.)
#[test]
fn a_callers_file_size_limit_cannot_keep_wrong_codes_from_counting() {
    let world = World::new("[lockout]\nmax_failures = 3\nlock_seconds = 600\n");
    world.admin_enroll();
    let via = ["prlimit", "--fsize=0:unlimited", "--cpu=1:unlimited", "--"];
    for wrong in 1..=3u32 {
        let out = world.run_via(&via, &["codes", "--regenerate"], &[PASSWORD, "000000"]);
        assert!(!out.status.success(), "a wrong code was taken");
        let failures = world.record().unwrap().failures;
        assert_eq!(failures, wrong, "not counted:\n{}", world.logged());
    }
    assert!(world.record().unwrap().locked_until.is_some(), "not locked");
}

/// Whether root here may raise a hard limit (CAP_SYS_RESOURCE in the bounding set: some
/// sandboxes and containers drop it).
fn root_may_raise_hard_limits() -> bool {
    let raise = "prlimit --pid $$ --fsize=unlimited:unlimited";
    Command::new("prlimit")
        .args(["--fsize=1:1", "sh", "-c", raise])
        .status()
        .unwrap()
        .success()
}

/// Finding 1 with the hard limit lowered too (su's caller may). Where root may raise it, the
/// helper does and the guesses count; where it may not, the helper judges nothing: it refuses
/// before reading the code, so the right code fails as the wrong ones do and nothing tells
/// them apart (and syslog says why).
#[test]
fn a_callers_hard_file_size_limit_leaves_no_uncounted_guess() {
    let world = World::new("[lockout]\nmax_failures = 3\nlock_seconds = 600\n");
    world.admin_enroll();
    let via = ["prlimit", "--fsize=0:0", "--"];
    let args = ["codes", "--regenerate"];
    let out = world.run_via(&via, &args, &[PASSWORD, "000000"]);
    assert!(!out.status.success(), "a wrong code was taken");
    let failures = world.record().unwrap().failures;
    if root_may_raise_hard_limits() {
        assert_eq!(failures, 1, "not counted:\n{}", world.logged());
        return;
    }
    assert_eq!(failures, 0);
    let log = world.logged();
    assert!(log.contains("cannot raise RLIMIT_FSIZE from 0"), "{log}");
    common::wait_for_fresh_step(5);
    let right = common::oathtool(common::SECRET, 0);
    let out = world.run_via(&via, &args, &[PASSWORD, &right]);
    assert!(
        !out.status.success(),
        "judged under a limit that could hide failures"
    );
    let record = world.record().unwrap();
    assert_eq!((record.failures, record.last_step), (0, None), "{record:?}");
}

/// The real, effective, saved and file-system ids on a /proc/PID/status line (`Uid:`, `Gid:`).
fn ids(status: &str, line: &str) -> Vec<u32> {
    let found = status.lines().find(|l| l.starts_with(line)).unwrap();
    found
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect()
}

/// The login helper `parent` started (its twofold-login child), waited for up to 20 s.
fn helper_of(parent: u32) -> u32 {
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        for entry in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let status = fs::read_to_string(entry.path().join("status")).unwrap_or_default();
            let ppid = status.lines().find_map(|l| l.strip_prefix("PPid:\t"));
            if status.starts_with("Name:\ttwofold-login") && ppid == Some(&parent.to_string()) {
                return pid;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no login helper under pid {parent}");
}

/// Finding 2. Under a setuid host the helper kept the caller's real uid, so the caller could
/// stop it (SIGSTOP) while it held the user's lock, or kill it half-way. Now it is root
/// through and through while it waits for the code, with no supplementary group of the
/// caller's, and a kill from the caller's uid is refused.
#[test]
fn the_helper_of_a_setuid_host_is_root_through_and_through() {
    let world = World::new("");
    world.admin_enroll();
    let mut child = world
        .command_via(&[], &["codes", "--regenerate"], &[])
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
    // The helper now waits for the code.
    let helper = helper_of(child.id());
    let status = fs::read_to_string(format!("/proc/{helper}/status")).unwrap();
    assert_eq!(ids(&status, "Uid:"), [0, 0, 0, 0], "{status}");
    assert_eq!(ids(&status, "Gid:"), [0, 0, 0, 0], "{status}");
    let groups = status.lines().find(|l| l.starts_with("Groups:")).unwrap();
    assert_eq!(groups.trim_end(), "Groups:", "{status}");
    let stop = Command::new("setpriv")
        .args([
            &format!("--reuid={}", world.uid),
            "--clear-groups",
            "kill",
            "-STOP",
        ])
        .arg(helper.to_string())
        .output()
        .unwrap();
    if stop.status.success() {
        // Let it go on before failing, or the run below would wait for ever.
        Command::new("kill")
            .args(["-CONT", &helper.to_string()])
            .status()
            .unwrap();
    }
    assert!(!stop.status.success(), "the caller stopped the helper");
    stdin.write_all(b"000000\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert_eq!(world.record().unwrap().failures, 1);
}
