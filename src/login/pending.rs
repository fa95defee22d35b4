//! Pending enrollments (`twofold invite --with-qr`): the secret went out by mail, and the first
//! right code at a login turns 2FA on (judged like any code, under the lock, with replay and
//! lock-out rules). Then the backup codes are made and shown once, as enroll-at-login does.
//! A pending enrollment whose time ran out counts as none and is cleared before a new one.
#![forbid(unsafe_code)]

use zeroize::Zeroizing;

use crate::backup::KdfCost;
use crate::conversation::Conversation;
use crate::enroll;
use crate::policy::Policy;
use crate::store::Store;
use crate::user::UserName;

use super::enroll::{MAX_MESSAGE_BYTES, SAVED_PROMPT, chunk_lines};

/// Removes `user`'s pending enrollment if its time has run out at `now` (checked again under
/// the lock), so that a new enrollment can take its place. Best effort: if it stays, the new
/// enrollment reports the conflict.
pub fn clear_expired(store: &impl Store, user: &UserName, now: i64) {
    // Look first: most users have no record at all, and an update would leave a lock file.
    let expired = matches!(store.load(user), Ok(Some(r)) if r.is_expired_pending(now));
    if !expired {
        return;
    }
    let _ = store.update(user, |slot| {
        if slot.as_ref().is_some_and(|r| r.is_expired_pending(now)) {
            *slot = None;
        }
    });
}

/// After the confirming code: "set up", and new backup codes shown once. Returns how many
/// were shown. The login has passed whatever happens here; an admin can make codes later.
pub fn welcome(
    user: &UserName,
    policy: &Policy,
    store: &impl Store,
    conversation: &mut impl Conversation,
) -> usize {
    let mut text = Zeroizing::new(String::from(
        "Two-factor authentication is now set up: every login will ask for a code from the app.",
    ));
    let codes = match enroll::new_backup_codes(policy.backup_codes.count, KdfCost::DEFAULT) {
        Ok(Some(codes)) => Some(codes),
        _ => None,
    };
    let saved = codes.as_ref().is_some_and(|codes| {
        let stored = store.update(user, |slot| match slot.as_mut() {
            Some(r) if r.is_enabled() && r.backup_codes.is_none() => {
                r.backup_codes = Some(codes.stored.clone());
                true
            }
            _ => false,
        });
        matches!(stored, Ok(true))
    });
    let shown = match (&codes, saved) {
        (Some(codes), true) => {
            text.push_str(
                "\nBackup codes: each works once instead of a code, if you lose your phone.\n\
                 Write them down or store them safely; they are not shown again:",
            );
            for code in &codes.shown {
                text.push_str("\n    ");
                text.push_str(code);
            }
            codes.shown.len()
        }
        _ => 0,
    };
    let told = chunk_lines(&text, MAX_MESSAGE_BYTES)
        .iter()
        .all(|chunk| conversation.info(chunk).is_ok());
    if told && shown > 0 {
        let _ = conversation.ask_visible(SAVED_PROMPT);
    }
    shown
}
