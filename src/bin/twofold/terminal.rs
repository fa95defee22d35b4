//! The CLI's side of a conversation: questions on standard output, answers as lines of
//! standard input. With it, `twofold enroll` confirms a new key through the same loop as a
//! login ([`pam_twofold::enroll::Enrollment::confirm`]).
#![forbid(unsafe_code)]

use std::io::{self, BufRead, IsTerminal};

use pam_twofold::conversation::{Conversation, ConversationError};
use zeroize::Zeroizing;

use crate::error::CliError;

/// Standard input and output as a conversation. Keeps the error that ended it, so the
/// command can say what happened in its own words.
#[derive(Default)]
pub struct Terminal {
    failure: Option<CliError>,
}

impl Terminal {
    /// Why the last question got no answer: end of input, or the error reading or writing.
    pub fn take_failure(&mut self) -> CliError {
        self.failure.take().unwrap_or(CliError::NoCode)
    }

    fn fail(&mut self, error: CliError) -> ConversationError {
        let text = ConversationError(error.to_string());
        self.failure = Some(error);
        text
    }

    fn ask(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, ConversationError> {
        if let Err(e) = out!("{prompt}") {
            return Err(self.fail(e));
        }
        let mut line = Zeroizing::new(String::new());
        let read = io::stdin().lock().read_line(&mut line);
        if !io::stdin().is_terminal() {
            // The answer was not echoed: end the prompt's line ourselves.
            let _ = outln!();
        }
        match read {
            Ok(0) => Err(self.fail(CliError::NoCode)),
            Ok(_) => Ok(Zeroizing::new(
                line.trim_end_matches(['\n', '\r']).as_bytes().to_vec(),
            )),
            Err(source) => Err(self.fail(CliError::Io {
                what: "read the answer".into(),
                source,
            })),
        }
    }

    fn say(&mut self, text: &str) -> Result<(), ConversationError> {
        outln!("{text}").map_err(|e| self.fail(e))
    }
}

impl Conversation for Terminal {
    fn ask_hidden(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, ConversationError> {
        self.ask(prompt)
    }
    fn ask_visible(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, ConversationError> {
        self.ask(prompt)
    }
    fn info(&mut self, text: &str) -> Result<(), ConversationError> {
        self.say(text)
    }
    fn error(&mut self, text: &str) -> Result<(), ConversationError> {
        self.say(text)
    }
    /// A terminal has no password item: nothing ran before the command.
    fn password_item(&mut self) -> Option<Zeroizing<Vec<u8>>> {
        None
    }
    fn set_password_item(&mut self, _: &[u8]) -> Result<(), ConversationError> {
        Err(ConversationError("no PAM stack behind the terminal".into()))
    }
}
