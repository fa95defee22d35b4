//! The part of a record that a login changes (the "hot" state): replay step, HOTP counter,
//! failure count and lock-out, clock drift, which backup codes are used. The system store keeps
//! it apart from the enrollment data (see [`super::state_file`]) so that an accepted login
//! writes a few hundred bytes in place with one flush instead of rewriting the record.
//!
//! Everything else (secret, state, trusted hosts, the backup codes themselves...) is cold: a
//! change to it rewrites the record, which also folds the hot state back in.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

use crate::record::{DriftTrial, Record};

/// The hot fields of one record, as one slot of the state file holds them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HotState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_step: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_used: Option<i64>,
    #[serde(default)]
    failures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    locked_until: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    counter: Option<u64>,
    #[serde(default)]
    drift_steps: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    drift_trial: Option<DriftTrial>,
    /// Positions, in the record's own list of backup-code hashes, of the codes used since the
    /// record was written (never the hashes themselves: those may be sealed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    backup_used: Vec<u16>,
}

impl HotState {
    /// The hot state of `now`, with used backup codes counted against `stored`'s list.
    /// `None` when `now` differs from `stored` in more than hot fields (a cold change: the
    /// record must be rewritten).
    pub(super) fn change_of(stored: &Record, now: &Record) -> Option<Self> {
        let backup_used = used_positions(stored, now)?;
        let mut cold = now.clone();
        cold.backup_codes.clone_from(&stored.backup_codes);
        Self::of(stored).put_into(&mut cold);
        (cold == *stored).then(|| Self {
            backup_used,
            ..Self::of(now)
        })
    }

    /// The hot fields of `record` as it stands (no backup code used against its own list).
    pub(super) fn of(record: &Record) -> Self {
        Self {
            last_step: record.last_step,
            last_used: record.last_used,
            failures: record.failures,
            locked_until: record.locked_until,
            counter: record.counter,
            drift_steps: record.drift_steps,
            drift_trial: record.drift_trial.clone(),
            backup_used: Vec::new(),
        }
    }

    /// `stored` as the logins since it was written left it. The replay step and the HOTP
    /// counter only move forward: the larger of the record's and the state's is kept, so a
    /// state that lags the record can never reopen a code.
    pub(super) fn apply(&self, stored: &mut Record) {
        let last_step = stored.last_step.max(self.last_step);
        let counter = stored.counter.max(self.counter);
        self.put_into(stored);
        stored.last_step = last_step;
        stored.counter = counter;
        if let Some(codes) = stored.backup_codes.as_mut() {
            let mut position = 0u16;
            codes.hashes.retain(|_| {
                let used = self.backup_used.contains(&position);
                position = position.saturating_add(1);
                !used
            });
        }
    }

    fn put_into(&self, record: &mut Record) {
        record.last_step = self.last_step;
        record.last_used = self.last_used;
        record.failures = self.failures;
        record.locked_until = self.locked_until;
        record.counter = self.counter;
        record.drift_steps = self.drift_steps;
        record.drift_trial.clone_from(&self.drift_trial);
    }

    pub(super) fn to_bytes(&self) -> Vec<u8> {
        toml::to_string(self).unwrap_or_default().into_bytes()
    }

    pub(super) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        toml::from_str(std::str::from_utf8(bytes).ok()?).ok()
    }
}

/// Where in `stored`'s backup-code list the codes missing from `now` were: `None` unless
/// `now`'s list is `stored`'s with some codes taken out (same salt and cost, order kept).
fn used_positions(stored: &Record, now: &Record) -> Option<Vec<u16>> {
    let (before, after) = match (&stored.backup_codes, &now.backup_codes) {
        (None, None) => return Some(Vec::new()),
        (Some(before), Some(after)) => (before, after),
        _ => return None,
    };
    let same_set = before.kdf == after.kdf
        && before.salt == after.salt
        && (before.m_cost, before.t_cost, before.p_cost)
            == (after.m_cost, after.t_cost, after.p_cost);
    if !same_set {
        return None;
    }
    let mut left = after.hashes.iter().peekable();
    let mut used = Vec::new();
    for (position, hash) in before.hashes.iter().enumerate() {
        if left.peek() == Some(&hash) {
            left.next();
        } else {
            used.push(u16::try_from(position).ok()?);
        }
    }
    left.next().is_none().then_some(used)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::BackupCodes;
    use crate::store::contract;
    use crate::user::UserName;

    fn with_codes() -> Record {
        let mut record = contract::record(&UserName::parse("alice").unwrap(), 1);
        record.backup_codes = Some(BackupCodes {
            kdf: "argon2id".into(),
            m_cost: 64,
            t_cost: 1,
            p_cost: 1,
            salt: "00".into(),
            hashes: vec!["aa".into(), "bb".into(), "cc".into()],
        });
        record
    }

    #[test]
    fn a_login_change_is_hot_and_comes_back_whole() {
        let stored = with_codes();
        let mut now = stored.clone();
        now.last_step = Some(99);
        now.failures = 0;
        now.last_used = Some(7);
        now.backup_codes.as_mut().unwrap().hashes.remove(1);
        let hot = HotState::change_of(&stored, &now).expect("hot");
        let bytes = hot.to_bytes();
        let mut merged = stored.clone();
        HotState::from_bytes(&bytes).unwrap().apply(&mut merged);
        assert_eq!(merged, now);
    }

    #[test]
    fn cold_changes_are_not_hot() {
        let stored = with_codes();
        let changes: [fn(&mut Record); 7] = [
            |r| r.issuer = "other".into(),
            |r| r.state = crate::record::State::Disabled,
            |r| r.backup_codes.as_mut().unwrap().salt = "01".into(),
            |r| r.backup_codes.as_mut().unwrap().hashes.push("dd".into()),
            |r| r.backup_codes.as_mut().unwrap().hashes.swap(0, 1),
            |r| r.backup_codes = None,
            |r| r.trust("h", "sshd", None, 1, 1),
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut now = stored.clone();
            change(&mut now);
            assert_eq!(HotState::change_of(&stored, &now), None, "change {i}");
        }
    }

    #[test]
    fn the_replay_step_never_goes_back_to_a_lagging_state() {
        let mut stored = with_codes();
        stored.last_step = Some(50);
        stored.counter = Some(9);
        let mut lagging = HotState::of(&stored);
        lagging.last_step = Some(10);
        lagging.counter = Some(2);
        lagging.apply(&mut stored);
        assert_eq!((stored.last_step, stored.counter), (Some(50), Some(9)));
        assert_eq!(HotState::from_bytes(b"nonsense = ["), None);
    }
}
