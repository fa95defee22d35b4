//! Re-sealing a record in place: read it under the user's lock and write it back, so it is
//! sealed under the current key (`twofold key seal-all`, `twofold key rotate`). The lock makes
//! it one step with any login of that user: a login waits, then sees the re-sealed record.
#![forbid(unsafe_code)]

use super::{AnyStore, Change, Locked, StoreError};
use crate::user::UserName;

/// Whether there was a record to re-seal.
fn reseal_locked(store: &impl Locked, user: &UserName) -> Result<bool, StoreError> {
    store.locked(user, |found| match found? {
        Some(record) => Ok((true, Change::Write(Box::new(record)))),
        None => Ok((false, Change::Nothing)),
    })
}

impl AnyStore {
    /// Writes `user`'s record again under the current key; `false` if there is none. A record
    /// under another account's name is refused, as by every other way in.
    /// The id of the key `user`'s record is sealed under, `None` if it is clear or missing
    /// (the home store never seals).
    pub fn sealed_under(&self, user: &UserName) -> Result<Option<String>, StoreError> {
        match self {
            Self::System(store) => store.sealed_under(user),
            Self::Home(_) => Ok(None),
            Self::Postgres(store) => store.sealed_under(user),
        }
    }

    /// How this store seals, if it does (system and PostgreSQL stores).
    pub fn sealing(&self) -> Option<&super::sealing::Sealing> {
        match self {
            Self::System(store) => Some(store.sealing()),
            Self::Home(_) => None,
            Self::Postgres(store) => Some(store.sealing()),
        }
    }

    pub fn reseal(&self, user: &UserName) -> Result<bool, StoreError> {
        // The account check (and a clear error for a record that cannot be read) first.
        super::Store::load(self, user)?;
        match self {
            Self::System(store) => reseal_locked(store, user),
            Self::Home(store) => reseal_locked(store, user),
            Self::Postgres(store) => reseal_locked(store.as_ref(), user),
        }
    }
}
