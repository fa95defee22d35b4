//! The judge: one answer against one record, with the bookkeeping that goes with it (replay
//! step, HOTP counter, drift, backup codes, failures, lock-out). Pure: no store, no I/O, no
//! clock: the caller runs it under the user's lock with the time it read once.
#![forbid(unsafe_code)]

use crate::backup::BackupError;
use crate::drift::Observation;
use crate::otp::{self, Answer, Verdict};
use crate::policy::Policy;
use crate::record::{Kind, Record};

use zeroize::Zeroizing;

use super::outcome::{Method, Rejection};

/// What the check under the lock concluded.
pub enum Checked {
    Passed(Method),
    Refused(Rejection),
}

/// Judges `answer` against the enabled `record` and does the bookkeeping (replay step, HOTP
/// counter, drift, backup codes, failures, lock-out). Runs under the user's lock.
pub fn judge(
    record: &mut Record,
    answer: &Answer,
    now: i64,
    now_u64: u64,
    policy: &Policy,
) -> Result<Checked, BackupError> {
    if let Some(until) = record.locked_at(now) {
        return Ok(Checked::Refused(Rejection::Locked { until }));
    }
    if record.locked_until.is_some() {
        // A lock that ran out starts a fresh count.
        record.clear_lockout();
    }
    let (otp_code, backup_code) = match answer {
        Answer::Totp(code) => (Some(code), None),
        Answer::Backup(code) => (None, Some(code)),
        Answer::TotpOrBackup(code) => (Some(code), Some(code)),
    };
    let mut verdict = Verdict::Wrong;
    let mut drift = Observation::Nothing;
    if let Some(code) = otp_code {
        verdict = check_code(record, code, now_u64, policy);
        if verdict == Verdict::Wrong && record.kind == Kind::Totp {
            let window = record.window.unwrap_or(policy.totp.window);
            let params = record.params();
            drift = crate::drift::observe(record, params, code, now, window, policy.totp.max_drift);
        }
    }
    if let Observation::Learned { offset, step } = drift {
        // The code is used up (a replay of it is refused), but it does not log in.
        record.last_step = Some(step);
        return Ok(Checked::Refused(Rejection::DriftLearned {
            offset,
            period: record.period,
        }));
    }
    let passed = match passed_method(record, verdict) {
        Some(method) => Some(method),
        None => backup_code_method(record, backup_code)?,
    };
    if let Some(method) = passed {
        record.note_success(now);
        return Ok(Checked::Passed(method));
    }
    if let Some(behind) = clock_behind(record, otp_code.is_some(), now_u64, policy) {
        return Ok(Checked::Refused(behind));
    }
    let window = record.window.unwrap_or(policy.totp.window);
    if verdict == Verdict::Replayed
        && otp_code.is_some_and(|c| confirmed_enrollment(record, c, window))
    {
        // The user's own right code, typed again straight after enrolling: not counted.
        return Ok(Checked::Refused(Rejection::EnrollmentCode));
    }
    Ok(Checked::Refused(count_failure(
        record, verdict, drift, now, policy,
    )))
}

/// A backup code that was one of the record's unused ones: used up now.
fn backup_code_method(
    record: &mut Record,
    backup_code: Option<&Zeroizing<String>>,
) -> Result<Option<Method>, BackupError> {
    match (backup_code, record.backup_codes.as_mut()) {
        (Some(code), Some(codes)) => Ok(codes.consume(code)?.then(|| Method::Backup {
            left: codes.remaining(),
        })),
        _ => Ok(None),
    }
}

/// The method an app or token code passed with, its step or counter recorded.
fn passed_method(record: &mut Record, verdict: Verdict) -> Option<Method> {
    match verdict {
        Verdict::Accepted { step } if record.kind == Kind::Hotp => {
            record.counter = Some(step.saturating_add(1));
            Some(Method::Hotp { counter: step })
        }
        Verdict::Accepted { step } => {
            record.last_step = Some(step);
            // A code inside the window ends any run of offset codes.
            record.drift_trial = None;
            Some(Method::Totp { step })
        }
        Verdict::AcceptedAtServerTime { step } => {
            record.last_step = Some(step);
            // The token shows this server's time: the learned offset is wrong. Forget it.
            let offset = std::mem::take(&mut record.drift_steps);
            record.drift_trial = None;
            Some(Method::TotpDriftForgotten {
                step,
                offset,
                period: record.period,
            })
        }
        _ => None,
    }
}

/// Every step in the window is at or before the last accepted one: the server's clock went
/// back. Not the user's fault, so not counted.
fn clock_behind(record: &Record, had_code: bool, now: u64, policy: &Policy) -> Option<Rejection> {
    if record.kind != Kind::Totp || !had_code {
        return None;
    }
    // Codes are looked for around the learned offset and around this server's clock: the
    // clock is behind only if both windows are used up.
    let server_step = otp::time_step(now, record.period);
    let current_step = otp::shifted(server_step, record.drift_steps).max(server_step);
    let window = record.window.unwrap_or(policy.totp.window);
    let last_step = record.last_step?;
    (current_step.saturating_add(u64::from(window)) <= last_step).then_some(
        Rejection::ClockBehind {
            last_step,
            current_step,
        },
    )
}

/// Whether `code` is the one that confirmed the enrollment: no login has been accepted since
/// (activation stores the step but leaves `last_used` empty, and every success sets it; a
/// learned offset moves `last_step` without it, so none may be learned), the step is the one
/// of the enrollment's time (an imported record keeps an old step), and `code` is right for
/// that step exactly.
fn confirmed_enrollment(record: &Record, code: &str, window: u8) -> bool {
    let Some(step) = record.last_step else {
        return false;
    };
    let created = u64::try_from(record.created).unwrap_or(0);
    let created_step = otp::time_step(created, record.period);
    if record.kind != Kind::Totp
        || record.last_used.is_some()
        || record.drift_steps != 0
        || created_step.abs_diff(step) > u64::from(window)
    {
        return false;
    }
    let at = step.saturating_mul(u64::from(record.period));
    otp::verify_totp(&record.secret, record.params(), code, at, 0, None)
        == Verdict::Accepted { step }
}

/// One more consecutive failure, locking the second factor at the policy's limit.
fn count_failure(
    record: &mut Record,
    verdict: Verdict,
    drift: Observation,
    now: i64,
    policy: &Policy,
) -> Rejection {
    let lockout = &policy.lockout;
    record.note_failure(now, lockout.max_failures, lockout.lock_seconds);
    let (failures, locked_until) = (record.failures, record.locked_until);
    match (verdict, drift) {
        (Verdict::Replayed, _) => Rejection::Replayed {
            failures,
            locked_until,
        },
        (_, Observation::Noted { offset, seen }) => Rejection::DriftNoted {
            offset,
            period: record.period,
            seen,
            failures,
            locked_until,
        },
        _ => Rejection::Wrong {
            failures,
            locked_until,
        },
    }
}

/// Checks an app or token code against the record's counter: the time window (centred on any
/// learned clock offset) for TOTP, the look-ahead window for HOTP.
fn check_code(record: &Record, code: &str, now: u64, policy: &Policy) -> Verdict {
    match record.kind {
        Kind::Totp => otp::verify_totp_with_drift(
            &record.secret,
            record.params(),
            code,
            now,
            record.drift_steps,
            record.window.unwrap_or(policy.totp.window),
            record.last_step,
        ),
        Kind::Hotp => match otp::verify_hotp(
            &record.secret,
            record.algorithm,
            record.digits,
            code,
            record.counter.unwrap_or(0),
            record.window.unwrap_or(policy.hotp.window),
        ) {
            Some(counter) => Verdict::Accepted { step: counter },
            None => Verdict::Wrong,
        },
    }
}
