//! Clock-drift learning for tokens whose clock runs off (hardware TOTP tokens, phones without
//! network time), after google-authenticator-libpam's TIME_SKEW.
//!
//! A code that fails inside the window is looked for up to `[totp] max_drift` either side of
//! this server's clock. Such a code is still refused, but its offset is noted in the record;
//! when `DRIFT_CODES_NEEDED` fresh codes in a row (each a later step, minutes apart at most)
//! match the same offset (±1 step), the offset is learned and the last of those codes is
//! accepted. From then on the window is centred on the token's clock. One lucky guess cannot
//! teach an offset: it takes several consecutive right codes, each single-use.
#![forbid(unsafe_code)]

use crate::otp::{self, TotpParams};
use crate::policy::DRIFT_CODES_NEEDED;
use crate::record::{DriftTrial, Record};

/// Longest pause between the codes of one trial.
const TRIAL_GAP_SECONDS: i64 = 300;

/// What a code that failed inside the window showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// It matched nowhere within the allowed drift.
    Nothing,
    /// It matched `offset` steps away: `seen` such codes in a row so far.
    Noted { offset: i64, seen: u8 },
    /// The last code needed: the offset is now the record's, and `step` was used.
    Learned { offset: i64, step: u64 },
}

/// Looks `code` up beyond the window and updates `record`'s trial (or learned offset).
/// `max_drift` is in seconds; 0 turns learning off.
pub fn observe(
    record: &mut Record,
    params: TotpParams,
    code: &str,
    now: i64,
    window: u8,
    max_drift: u32,
) -> Observation {
    let max_steps = i64::from(max_drift / params.period.max(1));
    let Ok(now_u64) = u64::try_from(now) else {
        return Observation::Nothing;
    };
    if max_steps == 0 {
        return Observation::Nothing;
    }
    let tried = record.drift_steps - i64::from(window)..=record.drift_steps + i64::from(window);
    let Some((offset, step)) =
        otp::find_offset(&record.secret, params, code, now_u64, tried, max_steps)
    else {
        return Observation::Nothing;
    };
    if record.last_step.is_some_and(|last| step <= last) {
        // An old code seen again far from now: a replay, not a clock.
        return Observation::Nothing;
    }
    let seen = match &record.drift_trial {
        Some(trial)
            if (trial.offset - offset).abs() <= 1
                && step > trial.step
                && now - trial.at <= TRIAL_GAP_SECONDS =>
        {
            trial.seen.saturating_add(1)
        }
        _ => 1,
    };
    if seen >= DRIFT_CODES_NEEDED {
        record.drift_steps = offset;
        record.drift_trial = None;
        return Observation::Learned { offset, step };
    }
    record.drift_trial = Some(DriftTrial {
        offset,
        step,
        seen,
        at: now,
    });
    Observation::Noted { offset, seen }
}

/// An offset in steps as a human duration: `+7 steps (+3 min 30 s)`.
pub fn describe(offset: i64, period: u32) -> String {
    let seconds = offset.unsigned_abs() * u64::from(period);
    let sign = if offset < 0 { "-" } else { "+" };
    let (m, s) = (seconds / 60, seconds % 60);
    let span = match (m, s) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    };
    format!("{sign}{} steps ({sign}{span})", offset.unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::sample;

    const NOW: i64 = 1_800_000_000;

    fn code_at(record: &Record, offset: i64, t: i64) -> String {
        let step = otp::shifted(otp::time_step(t as u64, 30), offset);
        otp::hotp(&record.secret, record.algorithm, record.digits, step).to_string()
    }

    #[test]
    fn three_fresh_codes_at_one_offset_teach_it() {
        let mut record = sample();
        record.last_step = None;
        let p = record.params();
        // A token 7 steps (3.5 minutes) ahead.
        for (i, t) in [NOW, NOW + 30, NOW + 60].into_iter().enumerate() {
            let code = code_at(&record, 7, t);
            let seen = observe(&mut record, p, &code, t, 1, 600);
            if i < 2 {
                assert_eq!(
                    seen,
                    Observation::Noted {
                        offset: 7,
                        seen: i as u8 + 1
                    }
                );
            } else {
                assert!(matches!(seen, Observation::Learned { offset: 7, .. }));
            }
        }
        assert_eq!(record.drift_steps, 7);
        assert!(record.drift_trial.is_none());
        assert_eq!(describe(7, 30), "+7 steps (+3 min 30 s)");
        assert_eq!(describe(-4, 30), "-4 steps (-2 min)");
    }

    #[test]
    fn the_same_code_repeated_or_slow_or_scattered_codes_teach_nothing() {
        let mut record = sample();
        record.last_step = None;
        let p = record.params();
        let code = code_at(&record, -9, NOW);
        for _ in 0..5 {
            observe(&mut record, p, &code, NOW, 1, 600);
        }
        assert_eq!(
            record.drift_trial.as_ref().unwrap().seen,
            1,
            "one code, once"
        );
        // An hour between codes starts over.
        let later = NOW + 3600;
        let code = code_at(&record, -9, later);
        observe(&mut record, p, &code, later, 1, 600);
        assert_eq!(record.drift_trial.as_ref().unwrap().seen, 1);
        // Alternating offsets start over each time.
        let mut t = later;
        for offset in [5, -5, 5, -5] {
            t += 30;
            let code = code_at(&record, offset, t);
            observe(&mut record, p, &code, t, 1, 600);
        }
        assert_eq!(record.drift_steps, 0);
        // Beyond max_drift nothing matches; 0 turns learning off.
        let far = code_at(&record, 30, t);
        assert_eq!(
            observe(&mut record, p, &far, t, 1, 600),
            Observation::Nothing
        );
        let near = code_at(&record, 5, t);
        assert_eq!(
            observe(&mut record, p, &near, t, 1, 0),
            Observation::Nothing
        );
    }

    #[test]
    fn codes_at_or_before_the_last_used_step_are_replays() {
        let mut record = sample();
        let p = record.params();
        record.last_step = Some(otp::time_step(NOW as u64, 30) + 10);
        let code = code_at(&record, 8, NOW);
        assert_eq!(
            observe(&mut record, p, &code, NOW, 1, 600),
            Observation::Nothing
        );
    }
}
