//! Clock-drift learning for tokens whose clock runs off (hardware TOTP tokens, phones without
//! network time), after google-authenticator-libpam's TIME_SKEW.
//!
//! A code that fails inside the window is looked for up to `[totp] max_drift` either side of
//! this server's clock. Such a code is still refused, but its offset is noted in the record;
//! when `DRIFT_CODES_NEEDED` fresh codes in a row match the same offset (±1 step), the offset
//! is learned and the last of those codes is accepted. From then on codes are also looked for
//! in a window centred on the token's clock (see `otp::verify_totp_with_drift`). One lucky
//! guess cannot teach an offset: it takes several consecutive right codes, each single-use.
//!
//! A run only counts codes that arrive at the pace of real time (see [`paced`]): a slow phone
//! shows a new code once a period, whereas someone holding a handful of old codes (shoulder
//! surfed, phished, from a log) can type them seconds apart. Without that rule three such
//! codes typed in a row would teach their offset and the third would log in.
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
    // The windows the caller just tried: around the learned offset and around this server's
    // clock. Saturating: a record from a user's home store may hold any i64.
    let w = i64::from(window);
    let learned = record.drift_steps.saturating_sub(w)..=record.drift_steps.saturating_add(w);
    let tried = [learned, -w..=w];
    let Some((offset, step)) =
        otp::find_offset(&record.secret, params, code, now_u64, &tried, max_steps)
    else {
        return Observation::Nothing;
    };
    if record.last_step.is_some_and(|last| step <= last) {
        // An old code seen again far from now: a replay, not a clock.
        return Observation::Nothing;
    }
    let seen = match &record.drift_trial {
        Some(trial) if paced(trial, offset, step, now, params.period) => {
            trial.seen.saturating_add(1)
        }
        // Anything else starts a new run with this code: an honest user whose second code
        // came too soon after the first just needs one code more.
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

/// Whether a code matching `step` at `offset`, typed at `now`, continues `trial`.
///
/// A token's step advances once per period of real time, so between two codes typed `e`
/// seconds apart an honest token moved `d` steps with `d` within one of `e / period` (it
/// can only be off by the phase of its step changes, plus typing time). The rule:
///
/// - `e` is 1 to `TRIAL_GAP_SECONDS` (the clock did not go back, the user is still there);
/// - `periods`, the time that passed in whole periods rounded to the nearest, is at least
///   one, and `d` is within one of it: after 30 s one or two steps, after 60 s one to three;
/// - the offsets agree within one step.
///
/// `periods >= 1` is what refuses codes typed seconds apart with consecutive steps: the ±1
/// alone would let `d = 1` pass at `e = 0`. Its price: an honest second code typed less than
/// half a period after the first (the token changed step right after the first code) starts
/// the run over instead of continuing it.
fn paced(trial: &DriftTrial, offset: i64, step: u64, now: i64, period: u32) -> bool {
    let Some(elapsed) = now
        .checked_sub(trial.at)
        .filter(|e| (1..=TRIAL_GAP_SECONDS).contains(e))
    else {
        return false;
    };
    let Some(advanced) = step.checked_sub(trial.step).filter(|d| *d > 0) else {
        return false;
    };
    let period = i64::from(period.max(1));
    // Cannot overflow: elapsed <= TRIAL_GAP_SECONDS and period <= u32::MAX.
    let periods = u64::try_from((elapsed + period / 2) / period).unwrap_or(0);
    periods >= 1 && advanced.abs_diff(periods) <= 1 && trial.offset.abs_diff(offset) <= 1
}

/// An offset in steps as a human duration: `+7 steps (+3 min 30 s)`.
pub fn describe(offset: i64, period: u32) -> String {
    // Saturating: the offset may come from a hostile record.
    let seconds = offset.unsigned_abs().saturating_mul(u64::from(period));
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
    fn old_codes_typed_seconds_apart_teach_nothing() {
        let mut record = sample();
        record.last_step = None;
        let p = record.params();
        // Codes from 10, 9.5 and 9 minutes ago, typed 3 s apart: someone holding old codes,
        // not a slow clock (issue 14). Each starts a run of its own; nothing is learned.
        for (i, offset) in [-20, -19, -18].into_iter().enumerate() {
            let t = NOW + 3 * i as i64;
            let code = code_at(&record, offset, t);
            let seen = observe(&mut record, p, &code, t, 1, 600);
            assert_eq!(seen, Observation::Noted { offset, seen: 1 }, "code {i}");
        }
        assert_eq!(record.drift_steps, 0);
        // Skipping steps seconds apart does not help either.
        for (i, offset) in [-20, -17, -14].into_iter().enumerate() {
            let t = NOW + 10 + 3 * i as i64;
            let code = code_at(&record, offset, t);
            let seen = observe(&mut record, p, &code, t, 1, 600);
            assert_eq!(seen, Observation::Noted { offset, seen: 1 }, "code {i}");
        }
        assert_eq!(record.drift_steps, 0);
    }

    #[test]
    fn the_pace_must_match_real_time_within_one_step() {
        let trial = DriftTrial {
            offset: -8,
            step: 1000,
            seen: 1,
            at: NOW,
        };
        // (seconds later, steps later, offset then, counts?)
        let cases = [
            (30, 1, -8, true),  // waited for the next code
            (60, 2, -8, true),  // or for the one after
            (15, 1, -8, true),  // half a period: the shortest pause that counts
            (14, 1, -8, false), // less: the token changed step right after the first code
            (3, 1, -8, false),  // seconds apart: old codes typed in a row
            (3, 2, -7, false),
            (0, 1, -8, false),
            (-30, 1, -8, false), // the clock went back
            (30, 2, -7, true),   // phase and typing time: one step more, offset one off
            (44, 2, -8, true),
            (30, 3, -6, false), // three steps in 30 s
            (60, 1, -9, true),  // one step less than the minute, offset one off
            (90, 1, -10, false),
            (300, 10, -8, true),
            (301, 10, -8, false), // too long a pause
            (30, 1, -10, false),  // offsets disagree
            (30, 0, -8, false),   // the same step again
        ];
        for (later, advanced, offset, counts) in cases {
            assert_eq!(
                paced(&trial, offset, 1000 + advanced, NOW + later, 30),
                counts,
                "{later} s, {advanced} steps, offset {offset}"
            );
        }
        // Other periods scale: 60 s steps need at least 30 s.
        assert!(paced(&trial, -8, 1001, NOW + 30, 60));
        assert!(!paced(&trial, -8, 1001, NOW + 29, 60));
    }

    #[test]
    fn a_second_code_too_soon_after_the_first_costs_one_code_more() {
        let mut record = sample();
        record.last_step = None;
        let p = record.params();
        // A phone 8 steps slow; its step changes 2 s after the first code was typed.
        let mut outcomes = Vec::new();
        for t in [NOW + 28, NOW + 31, NOW + 61, NOW + 91] {
            let code = code_at(&record, -8, t);
            outcomes.push(observe(&mut record, p, &code, t, 1, 600));
        }
        let noted = |seen| Observation::Noted { offset: -8, seen };
        assert_eq!(outcomes[..3], [noted(1), noted(1), noted(2)]);
        assert!(matches!(
            outcomes[3],
            Observation::Learned { offset: -8, .. }
        ));
        assert_eq!(record.drift_steps, -8);
    }

    #[test]
    fn hostile_record_values_neither_panic_nor_teach() {
        let p = sample().params();
        for (drift, at, offset, step) in [
            (i64::MIN, i64::MIN, i64::MIN, 0),
            (i64::MAX, i64::MAX, i64::MAX, u64::MAX),
            (0, i64::MIN, -8, 0),
            (0, i64::MAX, -8, 0),
            (0, NOW - 30, i64::MIN, 0),
        ] {
            let mut record = sample();
            record.last_step = None;
            record.drift_steps = drift;
            record.drift_trial = Some(DriftTrial {
                offset,
                step,
                seen: u8::MAX,
                at,
            });
            let code = code_at(&record, -8, NOW);
            let mut widest = record.clone();
            assert_eq!(
                observe(&mut record, p, &code, NOW, 1, 600),
                Observation::Noted {
                    offset: -8,
                    seen: 1
                },
                "drift {drift}, at {at}, offset {offset}"
            );
            // The widest window covers -8 itself: tried already, so nothing to note.
            assert_eq!(
                observe(&mut widest, p, &code, NOW, u8::MAX, 600),
                Observation::Nothing
            );
        }
        assert_eq!(
            describe(i64::MIN, 300),
            format!("-{} steps (-{} min)", 1u64 << 63, u64::MAX / 60)
                .replace(" min)", &format!(" min {} s)", u64::MAX % 60))
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
