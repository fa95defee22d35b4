//! Changes to one user's existing enrollment, shared by the admin CLI (`twofold disable`,
//! `codes`, `trust`, …) and self-service (`twofold-self`), so that nothing about records is
//! written twice. Each change runs under the user's lock through [`Store::update`] (lock,
//! read, change, atomic replace): a login or another command racing with it loses nothing.
#![forbid(unsafe_code)]

use std::fmt;

use crate::backup::{self, BackupError, KdfCost, NewCodes};
use crate::enroll::{Confirmation, Enrollment, Proof};
use crate::record::{Record, State};
use crate::store::{Store, StoreError};
use crate::user::UserName;

#[derive(Debug)]
pub enum ManageError {
    NotEnrolled {
        user: String,
    },
    /// `[backup_codes] count = 0`: there is nothing to regenerate.
    NoBackupCodes,
    /// A pending enrollment (an invitation): it turns on only with the user's first code.
    Pending {
        user: String,
    },
    Backup(BackupError),
    Store(StoreError),
}

impl fmt::Display for ManageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotEnrolled { user } => write!(f, "{user} is not enrolled"),
            Self::NoBackupCodes => {
                f.write_str("[backup_codes] count is 0 in the policy: backup codes are turned off")
            }
            Self::Pending { user } => write!(
                f,
                "{user} has a pending enrollment (an invitation): it turns on with their first \
                 code at login; `twofold reset {user}` withdraws it"
            ),
            Self::Backup(e) => write!(f, "cannot make backup codes: {e}"),
            Self::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ManageError {}

impl From<StoreError> for ManageError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Runs `change` on `user`'s record under the lock; no record is [`ManageError::NotEnrolled`].
pub fn change_enrolled<T>(
    store: &impl Store,
    user: &UserName,
    change: impl FnOnce(&mut Record) -> T,
) -> Result<T, ManageError> {
    store
        .update(user, |slot| slot.as_mut().map(change))?
        .ok_or_else(|| ManageError::NotEnrolled {
            user: user.to_string(),
        })
}

/// `user`'s record, or [`ManageError::NotEnrolled`].
pub fn enrolled_record(store: &impl Store, user: &UserName) -> Result<Record, ManageError> {
    store.load(user)?.ok_or_else(|| ManageError::NotEnrolled {
        user: user.to_string(),
    })
}

/// Sets the state (the secret is kept either way); returns the state it had.
pub fn set_state(store: &impl Store, user: &UserName, state: State) -> Result<State, ManageError> {
    // A pending enrollment turns on only with the user's first code (or goes with reset).
    change_enrolled(store, user, |r| {
        (r.state != State::Pending).then(|| std::mem::replace(&mut r.state, state))
    })?
    .ok_or_else(|| ManageError::Pending {
        user: user.to_string(),
    })
}

/// Deletes the backup codes; returns how many unused ones there were.
pub fn delete_backup_codes(store: &impl Store, user: &UserName) -> Result<usize, ManageError> {
    change_enrolled(store, user, |r| {
        r.backup_codes.take().map_or(0, |c| c.remaining())
    })
}

/// Makes `count` new backup codes and stores them in place of the old ones, which stop
/// working. The codes are returned to be shown once.
pub fn regenerate_backup_codes(
    store: &impl Store,
    user: &UserName,
    count: u32,
    cost: KdfCost,
) -> Result<NewCodes, ManageError> {
    if count == 0 {
        return Err(ManageError::NoBackupCodes);
    }
    // Made before the lock is taken: hashing takes a while, and a login may be waiting.
    let codes = backup::generate(count as usize, cost).map_err(ManageError::Backup)?;
    let stored = codes.stored.clone();
    change_enrolled(store, user, |r| r.backup_codes = Some(stored))?;
    Ok(codes)
}

/// Which trusted computers to forget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forget<'a> {
    All,
    /// Every grant for this host (on any service).
    Host(&'a str),
}

/// Forgets trusted computers; returns how many grants went.
pub fn forget_trusted(
    store: &impl Store,
    user: &UserName,
    which: Forget<'_>,
) -> Result<usize, ManageError> {
    change_enrolled(store, user, |r| {
        let before = r.trusted.len();
        match which {
            Forget::All => r.trusted.clear(),
            Forget::Host(host) => r.trusted.retain(|t| t.host != host),
        }
        before - r.trusted.len()
    })
}

/// A new phone: replaces the secret (and its algorithm, digits, period, kind) with the one
/// `enrollment` holds, whose first code `confirmation` proved. Until this call the old secret
/// keeps working; the new record keeps the state, backup codes, trusted computers and lock-out
/// (failure count, lock) of the old one as they are under the lock (a backup code a login
/// used meanwhile stays used), and the confirming code counts as used.
pub fn replace_secret(
    store: &impl Store,
    user: &UserName,
    enrollment: Enrollment,
    confirmation: Confirmation,
) -> Result<(), ManageError> {
    let mut replaced = false;
    store.update(user, |slot| {
        let Some(old) = slot.take() else {
            return;
        };
        let mut new = enrollment.into_record(Proof::Confirmed(confirmation), old.backup_codes);
        new.state = old.state;
        new.trusted = old.trusted;
        // A lock-out that came while the new phone was being set up stays: only an admin
        // (or its own end) lifts it, and a guesser gets no fresh count.
        new.failures = old.failures;
        new.locked_until = old.locked_until;
        *slot = Some(new);
        replaced = true;
    })?;
    if !replaced {
        return Err(ManageError::NotEnrolled {
            user: user.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::tests::CHEAP;
    use crate::enroll::{NewSecret, Token};
    use crate::otp::{self, Secret, TotpParams};
    use crate::record::TrustedHost;
    use crate::store::file::tests::private_dir;
    use crate::store::{FileStore, Replace};

    const NOW: i64 = 1_700_000_000;

    fn alice() -> UserName {
        UserName::parse("alice").unwrap()
    }

    fn enrollment(key: &str) -> Enrollment {
        let secret = NewSecret::Given(Secret::from_base32(key).unwrap());
        let token = Token::Totp { window: 1 };
        Enrollment::new(&alice(), "host", secret, TotpParams::default(), token).unwrap()
    }

    /// A store holding alice's record, enrolled with `key`, with backup codes and one grant.
    fn enrolled(key: &str) -> (tempfile::TempDir, FileStore) {
        let dir = private_dir();
        let store = FileStore::new(dir.path());
        let codes = backup::generate(3, CHEAP).unwrap();
        let mut record =
            enrollment(key).into_record(Proof::Unverified { now: NOW }, Some(codes.stored.clone()));
        record.trusted.push(TrustedHost {
            host: "10.0.0.1".into(),
            service: Some("sshd".into()),
            key: None,
            granted: NOW,
            expires: NOW + 86_400,
        });
        store.put(&alice(), &record, Replace::No).unwrap();
        (dir, store)
    }

    fn load(store: &FileStore) -> Record {
        store.load(&alice()).unwrap().unwrap()
    }

    #[test]
    fn state_codes_and_trust_change_under_the_lock() {
        let (_dir, store) = enrolled("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP");
        assert_eq!(
            set_state(&store, &alice(), State::Disabled).unwrap(),
            State::Enabled
        );
        assert_eq!(load(&store).state, State::Disabled);
        assert_eq!(
            forget_trusted(&store, &alice(), Forget::Host("10.9.9.9")).unwrap(),
            0
        );
        assert_eq!(
            forget_trusted(&store, &alice(), Forget::Host("10.0.0.1")).unwrap(),
            1
        );
        assert!(load(&store).trusted.is_empty());
        assert_eq!(delete_backup_codes(&store, &alice()).unwrap(), 3);
        assert_eq!(load(&store).backup_codes_left(), 0);
        let codes = regenerate_backup_codes(&store, &alice(), 4, CHEAP).unwrap();
        assert_eq!(codes.shown.len(), 4);
        assert_eq!(load(&store).backup_codes_left(), 4);
        assert!(matches!(
            regenerate_backup_codes(&store, &alice(), 0, CHEAP),
            Err(ManageError::NoBackupCodes)
        ));
    }

    #[test]
    fn nothing_is_created_for_a_user_without_a_record() {
        let dir = private_dir();
        let store = FileStore::new(dir.path());
        assert!(matches!(
            set_state(&store, &alice(), State::Disabled),
            Err(ManageError::NotEnrolled { .. })
        ));
        let new = enrollment("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let confirmation = Confirmation {
            matched: 1,
            at: NOW,
        };
        assert!(matches!(
            replace_secret(&store, &alice(), new, confirmation),
            Err(ManageError::NotEnrolled { .. })
        ));
        assert!(store.load(&alice()).unwrap().is_none());
    }

    #[test]
    fn a_new_phone_replaces_the_secret_and_keeps_the_rest() {
        let (_dir, store) = enrolled("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP");
        set_state(&store, &alice(), State::Disabled).unwrap();
        let new_key = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        let new = enrollment(new_key);
        let code = otp::totp(new.secret(), TotpParams::default(), NOW as u64);
        let confirmation = new.check(code.as_bytes(), NOW).unwrap();
        replace_secret(&store, &alice(), new, confirmation).unwrap();
        let record = load(&store);
        assert_eq!(record.secret.to_base32().as_str(), new_key);
        assert_eq!(record.last_step, Some(confirmation.matched));
        assert_eq!(record.state, State::Disabled);
        assert_eq!(record.backup_codes_left(), 3);
        assert_eq!(record.trusted.len(), 1);
    }
}
