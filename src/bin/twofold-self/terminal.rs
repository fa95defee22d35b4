//! The caller's terminal as a [`Conversation`]: PAM's prompts (password, code) and the
//! enrollment's confirming code. Questions and information on standard output, errors on
//! standard error, answers one line each from standard input; a hidden answer is read with
//! echo off when standard input is a terminal. In machine mode (`--json`) questions and
//! messages are JSON lines ([`crate::machine::Event`]); answers are read the same way.
#![forbid(unsafe_code)]

use std::io::{self, BufRead, IsTerminal, Read, Write};

use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
use pam_twofold::conversation::{Conversation, ConversationError};
use zeroize::Zeroizing;

use crate::machine::{Event, emit};

/// Longest answer read (PAM_MAX_RESP_SIZE): a longer line is refused, not truncated.
const MAX_ANSWER: u64 = 512;

#[derive(Default)]
pub struct Terminal {
    /// Machine mode: JSON lines out, no terminal settings touched.
    pub json: bool,
}

/// Echo off on standard input while alive (when it is a terminal), restored after.
struct NoEcho {
    saved: Option<nix::sys::termios::Termios>,
}

impl NoEcho {
    fn new() -> Self {
        let stdin = io::stdin();
        if !stdin.is_terminal() {
            return Self { saved: None };
        }
        let Ok(saved) = tcgetattr(&stdin) else {
            return Self { saved: None };
        };
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        quiet.local_flags.insert(LocalFlags::ECHONL);
        let _ = tcsetattr(&stdin, SetArg::TCSAFLUSH, &quiet);
        Self { saved: Some(saved) }
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = tcsetattr(io::stdin(), SetArg::TCSAFLUSH, saved);
        }
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> ConversationError {
    ConversationError(format!("{what}: {e}"))
}

impl Terminal {
    fn ask(&mut self, prompt: &str, hidden: bool) -> Result<Zeroizing<Vec<u8>>, ConversationError> {
        if self.json {
            emit(&Event::Prompt {
                text: prompt,
                hidden,
            })
            .map_err(|e| failed("cannot show the question", e))?;
            return read_answer();
        }
        let mut out = io::stdout().lock();
        out.write_all(prompt.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| failed("cannot show the question", e))?;
        drop(out);
        let _echo = hidden.then(NoEcho::new);
        let answer = read_answer();
        if !io::stdin().is_terminal() {
            // The answer was not echoed: end the prompt's line ourselves.
            let _ = writeln!(io::stdout());
        }
        answer
    }

    /// A message in machine mode; `None` in terminal mode.
    fn event(&self, event: &Event) -> Option<Result<(), ConversationError>> {
        self.json
            .then(|| emit(event).map_err(|e| failed("cannot show a message", e)))
    }
}

/// One line of standard input, without its line end, at most [`MAX_ANSWER`] bytes.
fn read_answer() -> Result<Zeroizing<Vec<u8>>, ConversationError> {
    let mut line = Zeroizing::new(Vec::new());
    let read = io::stdin()
        .lock()
        .take(MAX_ANSWER + 1)
        .read_until(b'\n', &mut line)
        .map_err(|e| failed("cannot read the answer", e))?;
    if read == 0 {
        return Err(ConversationError("no answer (end of input)".into()));
    }
    if line.len() as u64 > MAX_ANSWER {
        return Err(ConversationError("the answer is too long".into()));
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(line)
}

impl Conversation for Terminal {
    fn ask_hidden(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, ConversationError> {
        self.ask(prompt, true)
    }
    fn ask_visible(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, ConversationError> {
        self.ask(prompt, false)
    }
    fn info(&mut self, text: &str) -> Result<(), ConversationError> {
        if let Some(shown) = self.event(&Event::Info(text)) {
            return shown;
        }
        writeln!(io::stdout(), "{text}").map_err(|e| failed("cannot show a message", e))
    }
    fn error(&mut self, text: &str) -> Result<(), ConversationError> {
        if let Some(shown) = self.event(&Event::Error(text)) {
            return shown;
        }
        writeln!(io::stderr(), "{text}").map_err(|e| failed("cannot show a message", e))
    }
    /// Nothing ran before the helper: there is no password item.
    fn password_item(&mut self) -> Option<Zeroizing<Vec<u8>>> {
        None
    }
    fn set_password_item(&mut self, _: &[u8]) -> Result<(), ConversationError> {
        Err(ConversationError("no PAM stack behind the terminal".into()))
    }
}
