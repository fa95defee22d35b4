//! What the module's work needs of a PAM handle, as a trait: [`crate::authenticate`] uses it,
//! [`crate::pam`] implements it over libpam (and calls `authenticate` from the exported hook),
//! so the two depend on this file and not on each other.
#![forbid(unsafe_code)]

use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::CStr;

use zeroize::Zeroizing;

/// PAM item numbers (<security/_pam_types.h>).
#[derive(Clone, Copy)]
pub enum Item {
    Service = 1,
    Tty = 3,
    RHost = 4,
    AuthTok = 6,
}

/// A kept `split_code` answer as it lives in the handle (pam_set_data), wiped by its cleanup.
pub type Kept = Option<Zeroizing<Vec<u8>>>;

/// The calls on one live PAM handle; errors are libpam's return codes.
pub trait PamCalls {
    /// PAM_USER (asking for it if no one set it yet).
    fn user(&mut self) -> Result<String, i32>;
    /// A string item's bytes, copied (None if unset or unreadable).
    fn item(&mut self, item: Item) -> Option<Zeroizing<Vec<u8>>>;
    /// The PAM environment's variable `name`, copied.
    fn env(&mut self, name: &CStr) -> Option<Vec<u8>>;
    /// Delay before a failed stack returns.
    fn fail_delay(&mut self, usec: u32);
    /// Sets PAM_AUTHTOK for the modules after this line.
    fn set_authtok(&mut self, password: &CStr) -> Result<(), i32>;
    /// Whether the application gave a conversation.
    fn has_conversation(&self) -> bool;
    /// One message to the application's conversation: the answer.
    fn converse(&mut self, style: i32, text: &str) -> Result<Option<Zeroizing<Vec<u8>>>, i32>;
    /// The code an earlier `split_code` line kept, taken so that it is judged once.
    fn take_kept(&mut self, key: &CStr) -> Kept;
    /// Leaves `kept` in the handle under `key`.
    fn set_kept(&mut self, key: &CStr, kept: Kept) -> Result<(), i32>;
}
