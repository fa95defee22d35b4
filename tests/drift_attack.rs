//! Clock-drift learning against stolen codes, through the real Linux-PAM library (issue 14,
//! items 5 and 10a): old codes typed seconds apart must neither log in nor shift the user's
//! window, a token that really runs slow is still learned when its codes come at the pace of
//! real time (the code that teaches the offset never logs in itself: the next one does), the
//! real current code always works, and a hostile offset in a record fails closed instead of
//! crashing the module.

mod common;

use std::fs;
use std::thread::sleep;
use std::time::Duration;

use common::{Env, SECRET, oathtool, wait_for_fresh_step};

const ACCEPTED: &str = "pamtester: successfully authenticated";
const AUTH_ERR: &str = "pamtester: Authentication failure";

fn enrolled() -> Env {
    let env = Env::new("");
    env.service("svc", "", &[]);
    env.enroll("daemon", SECRET);
    env
}

#[test]
fn old_codes_typed_seconds_apart_neither_log_in_nor_shift_the_window() {
    let env = enrolled();
    // All four answers inside one 30 s step, so "seconds apart" is what the module sees.
    wait_for_fresh_step(20);
    // Codes from 10, 9.5 and 9 minutes ago (20, 19 and 18 steps behind, inside the default
    // max_drift = 600), as an attacker who collected them would type them: one after another.
    for (i, offset) in [-600i64, -570, -540].into_iter().enumerate() {
        let (result, log) = env.pamtester_logged("svc", "daemon", &oathtool(SECRET, offset));
        assert_eq!(
            result.verdict(),
            AUTH_ERR,
            "old code {} (now{offset:+} s): {}",
            i + 1,
            log.join("\n")
        );
        assert!(
            !log.join("\n").contains("learned"),
            "code {}: {}",
            i + 1,
            log.join("\n")
        );
    }
    let record = env.load("daemon").expect("record");
    assert_eq!(record.drift_steps, 0, "the window was not shifted");
    assert!(
        record.drift_trial.as_ref().is_none_or(|t| t.seen <= 1),
        "no run of codes was counted: {:?}",
        record.drift_trial
    );
    assert_eq!(record.failures, 3, "each old code counts as a failure");
    assert_eq!(record.last_step, None, "no old code was accepted");

    // The user's real code still works, once.
    let code = oathtool(SECRET, 0);
    assert_eq!(env.pamtester("svc", "daemon", &code).verdict(), ACCEPTED);
    assert_eq!(env.pamtester("svc", "daemon", &code).verdict(), AUTH_ERR);
    assert_eq!(env.load("daemon").unwrap().drift_steps, 0);
}

#[test]
fn a_slow_token_typed_at_the_pace_of_real_time_is_still_learned() {
    let env = enrolled();
    wait_for_fresh_step(20);
    // A phone 4 minutes (8 steps) slow; its user waits for the next code each time.
    for i in 0..3 {
        if i > 0 {
            sleep(Duration::from_secs(30));
        }
        let (result, log) = env.pamtester_logged("svc", "daemon", &oathtool(SECRET, -240));
        let log = log.join("\n");
        if i < 2 {
            assert_eq!(result.verdict(), AUTH_ERR, "{log}");
            assert!(log.contains(&format!("{} of 3 such codes", i + 1)), "{log}");
        } else {
            // The third teaches the offset but does not log in: no offset code ever does.
            assert_eq!(result.verdict(), AUTH_ERR, "{log}");
            assert!(
                log.contains("-8 steps (-4 min) off; offset learned"),
                "{log}"
            );
            assert!(result.stderr.contains("next code"), "{}", result.stderr);
        }
    }
    assert_eq!(env.load("daemon").unwrap().drift_steps, -8);
    // The token's next code logs in.
    let (result, log) = env.pamtester_logged("svc", "daemon", &oathtool(SECRET, -240 + 30));
    assert_eq!(result.verdict(), ACCEPTED, "{}", log.join("\n"));
}

#[test]
fn an_offset_beyond_any_range_in_the_record_fails_closed() {
    let env = enrolled();
    let path = env.record("daemon");
    let good = fs::read_to_string(&path).unwrap();
    for hostile in [
        "drift_steps = -9223372036854775808",
        "drift_steps = 9223372036854775807",
    ] {
        let text = good.replacen("version = 1", &format!("version = 1\n{hostile}"), 1);
        fs::write(&path, text).unwrap();
        let (result, log) = env.pamtester_logged("svc", "daemon", &oathtool(SECRET, 0));
        let log = log.join("\n");
        // Refused as a malformed record (PAM_AUTHINFO_UNAVAIL), not a panic (PAM_SERVICE_ERR).
        assert!(!result.success, "{hostile}: {log}");
        assert!(log.contains("drift_steps beyond"), "{hostile}: {log}");
        assert!(!log.contains("panic"), "{hostile}: {log}");
    }
}

/// A wrongly learned offset (written into the record here, as stolen codes could have taught
/// it) never shuts the user out: the real code logs in, once, and the offset is forgotten.
#[test]
fn the_real_code_works_and_clears_a_wrongly_learned_offset() {
    let env = enrolled();
    env.change("daemon", |r| r.drift_steps = -20);
    wait_for_fresh_step(5);
    let code = oathtool(SECRET, 0);
    let (result, log) = env.pamtester_logged("svc", "daemon", &code);
    let log = log.join("\n");
    assert_eq!(result.verdict(), ACCEPTED, "{log}");
    assert!(log.contains("-20 steps (-10 min) forgotten"), "{log}");
    assert_eq!(env.load("daemon").unwrap().drift_steps, 0);
    assert_eq!(env.pamtester("svc", "daemon", &code).verdict(), AUTH_ERR);
}
