//! The PAM conversation as the login sees it: one message per call, behind a trait so that
//! every login path is unit-tested with a scripted fake (the login helper's,
//! src/relay/login.rs, relays to the module's real one).
#![forbid(unsafe_code)]

use zeroize::Zeroizing;

/// The PAM conversation, one message per call.
pub trait Conversation {
    /// Asks a question; the answer is not echoed. The answer is wiped when dropped.
    fn ask_hidden(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, ConversationError>;
    /// Asks a question whose answer is echoed (yes/no).
    fn ask_visible(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, ConversationError>;
    fn info(&mut self, text: &str) -> Result<(), ConversationError>;
    fn error(&mut self, text: &str) -> Result<(), ConversationError>;
    /// Why the login is denied, where the user must see it: applications that show text only
    /// along with a prompt (sshd) get it as one. Otherwise the same as [`Self::error`].
    fn explain(&mut self, text: &str) -> Result<(), ConversationError> {
        self.error(text)
    }
    /// PAM_AUTHTOK as the application or an earlier module set it (`try_first_pass`,
    /// `use_first_pass`).
    fn password_item(&mut self) -> Option<Zeroizing<Vec<u8>>>;
    /// Sets PAM_AUTHTOK for the modules after this one (`split_code`).
    fn set_password_item(&mut self, password: &[u8]) -> Result<(), ConversationError>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationError(pub String);
