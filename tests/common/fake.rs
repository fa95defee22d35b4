//! What the worker processes (tests/worker, started by tests/hardening.rs and tests/fleet.rs)
//! give the library's login path in place of the PAM application: a fixed clock and a
//! conversation that answers the code prompt with one fixed answer and shows nothing; and a
//! passwd database holding just the worker's made-up user. The worker includes this file, it
//! does not copy it.
#![allow(dead_code)]

use pam_twofold::login::{Conversation, ConversationError};
use pam_twofold::user::{Directory, Entry};
use zeroize::Zeroizing;

/// The library's fixed clock: one definition for the unit tests and these.
pub use pam_twofold::clock::FixedClock;

pub struct Answer(pub String);

impl Conversation for Answer {
    fn ask_hidden(&mut self, _: &str) -> Result<Zeroizing<Vec<u8>>, ConversationError> {
        Ok(Zeroizing::new(self.0.clone().into_bytes()))
    }
    fn ask_visible(&mut self, _: &str) -> Result<Zeroizing<Vec<u8>>, ConversationError> {
        Ok(Zeroizing::new(Vec::new()))
    }
    fn info(&mut self, _: &str) -> Result<(), ConversationError> {
        Ok(())
    }
    fn error(&mut self, _: &str) -> Result<(), ConversationError> {
        Ok(())
    }
    fn password_item(&mut self) -> Option<Zeroizing<Vec<u8>>> {
        None
    }
    fn set_password_item(&mut self, _: &[u8]) -> Result<(), ConversationError> {
        Ok(())
    }
}

/// A passwd database with one account, for workers whose users exist only in their store.
pub struct OneUser(pub String);

const ONE_USER_UID: u32 = 60_999;

impl Directory for OneUser {
    fn by_name(&self, name: &str) -> Result<Option<Entry>, String> {
        Ok((name == self.0).then(|| self.entry()))
    }
    fn by_uid(&self, uid: u32) -> Result<Option<Entry>, String> {
        Ok((uid == ONE_USER_UID).then(|| self.entry()))
    }
}

impl OneUser {
    fn entry(&self) -> Entry {
        Entry {
            name: self.0.clone(),
            uid: ONE_USER_UID,
            gid: ONE_USER_UID,
        }
    }
}
