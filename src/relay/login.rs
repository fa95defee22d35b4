//! The login helper's side (`twofold-login`, exec'd by the module for each call): reads the
//! [`Start`] the module sent, runs the login ([`crate::login`]) with a conversation that
//! travels back over the socket, logs the outcome and answers with the PAM code. What the
//! module did in-process before it became a thin relay (docs/design.md).
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};

use pam::constants::PamResultCode;
use pam::constants::{PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON, PAM_TEXT_INFO};
use zeroize::Zeroizing;

use super::wire::{FromHelper, Start, ToHelper, Wire};
use crate::log::{self, Level};
use crate::login::{
    self, Conversation, ConversationError, Failure, FirstFactor, Outcome, Request, Services,
    SplitAnswer, SystemClock,
};
use crate::policy::{ModuleArgs, Policy};
use crate::store::{AnyStore, StoreError};
use crate::user::{AccountError, Nss};

pub const IDENT: &str = "pam_twofold";

/// One call of the module: read its [`Start`], decide, answer. An error here is the socket's
/// (the module went away); the module denies when it gets no answer.
pub fn serve(input: &mut impl Read, output: &mut impl Write) -> io::Result<()> {
    let start = Start::receive(input)?;
    let mut conversation = Relayed {
        input,
        output,
        tty: start.tty.clone(),
        authtok: start.authtok.clone(),
        new_authtok: None,
    };
    // No panic ends the helper without an answer: deny, say so.
    let decided = catch_unwind(AssertUnwindSafe(|| decide(&start, &mut conversation)));
    let (code, keep) = decided.unwrap_or_else(|_| {
        log::send(
            IDENT,
            Level::Error,
            "internal error (panic) in pam_twofold; authentication denied",
        );
        (PamResultCode::PAM_SERVICE_ERR, None)
    });
    let done = FromHelper::Done {
        code: code as i32,
        authtok: conversation.new_authtok.take(),
        keep,
    };
    done.send(conversation.output)
}

/// The conversation, relayed to the module's PAM conversation; PAM_AUTHTOK as the module sent
/// it, and the one a `split_code` line sets, sent back with the verdict.
struct Relayed<'a, R, W> {
    input: &'a mut R,
    output: &'a mut W,
    tty: Option<String>,
    authtok: Option<Zeroizing<Vec<u8>>>,
    new_authtok: Option<Zeroizing<Vec<u8>>>,
}

impl<R: Read, W: Write> Relayed<'_, R, W> {
    fn send(
        &mut self,
        style: i32,
        text: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
        let lost = |e: io::Error| ConversationError(format!("the PAM module went away: {e}"));
        let prompt = FromHelper::Prompt {
            style,
            text: Zeroizing::new(text.to_owned()),
        };
        prompt.send(self.output).map_err(lost)?;
        match ToHelper::receive(self.input).map_err(lost)? {
            ToHelper::Answer(answer) => Ok(answer),
            ToHelper::Failed(why) => Err(ConversationError(why)),
        }
    }
}

impl<R: Read, W: Write> Conversation for Relayed<'_, R, W> {
    fn ask_hidden(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, ConversationError> {
        Ok(self.send(PAM_PROMPT_ECHO_OFF, prompt)?.unwrap_or_default())
    }

    fn ask_visible(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, ConversationError> {
        Ok(self.send(PAM_PROMPT_ECHO_ON, prompt)?.unwrap_or_default())
    }

    fn info(&mut self, text: &str) -> Result<(), ConversationError> {
        self.send(PAM_TEXT_INFO, text).map(drop)
    }

    fn error(&mut self, text: &str) -> Result<(), ConversationError> {
        self.send(PAM_ERROR_MSG, text).map(drop)
    }

    /// sshd (it sets PAM_TTY to "ssh") sends text to the client only with the next prompt or
    /// as the note of a failed attempt, which the client hides at `LogLevel ERROR` (`ssh -q`):
    /// only a prompt always shows. So there the explanation is a prompt, answered with Enter.
    fn explain(&mut self, text: &str) -> Result<(), ConversationError> {
        if self.tty.as_deref() == Some("ssh") {
            let prompt = format!("{text}\nPress Enter to close. ");
            return self.ask_visible(&prompt).map(drop);
        }
        self.error(text)
    }

    fn password_item(&mut self) -> Option<Zeroizing<Vec<u8>>> {
        self.authtok.clone()
    }

    fn set_password_item(&mut self, password: &[u8]) -> Result<(), ConversationError> {
        if password.contains(&0) {
            return Err(ConversationError("the password contains a NUL byte".into()));
        }
        self.new_authtok = Some(Zeroizing::new(password.to_vec()));
        Ok(())
    }
}

/// The fields every log line ends with, each quoted: a value cannot forge another field.
pub fn context(start: &Start) -> String {
    log::fields(&[
        ("user", &start.user),
        ("service", &start.service),
        ("rhost", start.rhost.as_deref().unwrap_or("-")),
    ])
}

/// The verdict, and what a `split_code` line keeps for the next line.
type Decided = (PamResultCode, Option<Zeroizing<Vec<u8>>>);

fn decide(start: &Start, conversation: &mut impl Conversation) -> Decided {
    let context = context(start);
    let args = match ModuleArgs::parse(start.args.iter().map(String::as_str)) {
        Ok(args) => args,
        Err(e) => {
            let line = format!("configuration error in the PAM stack: {e}; denied");
            log::send(IDENT, Level::Error, &line);
            return (PamResultCode::PAM_SERVICE_ERR, None);
        }
    };
    let policy = match Policy::load(args.config_path()) {
        Ok(policy) => policy,
        Err(e) => {
            let line = format!("denied (fail closed): {e}");
            log::event(IDENT, Level::Error, &line, &context);
            return (PamResultCode::PAM_SERVICE_ERR, None);
        }
    };
    if args.debug {
        let line = format!(
            "policy {}, store {}",
            args.config_path().display(),
            policy.store.dir.display()
        );
        log::event(IDENT, Level::Debug, &line, &context);
    }
    let store = AnyStore::from_policy(&policy);
    let services = Services {
        store: &store,
        directory: &Nss,
    };
    if args.split_code {
        return split_line(start, &args, &services, conversation);
    }
    let code = judging_line(start, &policy, &args, &services, conversation);
    (code, None)
}

/// The `split_code` line: hands the password on, keeps the code, decides nothing.
fn split_line(
    start: &Start,
    args: &ModuleArgs,
    services: &Services<'_, AnyStore, Nss>,
    conversation: &mut impl Conversation,
) -> Decided {
    match login::split_code(&start.user, args, services, conversation) {
        Ok(answer) => (PamResultCode::PAM_IGNORE, Some(keep(&answer))),
        Err(outcome) => {
            let line = format!("split_code: {outcome}");
            log::event(IDENT, outcome.log_level(), &line, &context(start));
            (pam_code(&outcome, false), None)
        }
    }
}

/// A [`SplitAnswer`] as the module keeps it in the handle (opaque bytes to it).
fn keep(answer: &SplitAnswer) -> Zeroizing<Vec<u8>> {
    let mut kept = Zeroizing::new(Vec::new());
    match answer {
        SplitAnswer::NoCode => kept.push(0),
        SplitAnswer::Code(code) => {
            kept.push(1);
            kept.extend_from_slice(code);
        }
    }
    kept
}

/// What [`keep`] made, back; anything else is no kept answer.
fn kept(bytes: Option<&[u8]>) -> Option<SplitAnswer> {
    match bytes? {
        [0] => Some(SplitAnswer::NoCode),
        [1, code @ ..] => Some(SplitAnswer::Code(Zeroizing::new(code.to_vec()))),
        _ => None,
    }
}

fn first_factor(start: &Start) -> FirstFactor {
    if start
        .ssh_auth_info
        .as_deref()
        .is_some_and(|info| !info.trim().is_empty())
    {
        return FirstFactor::SshMethod;
    }
    match start.authtok_set {
        true => FirstFactor::Password,
        false => FirstFactor::Unseen,
    }
}

/// A line that judges: after the first factor, with the code asked now or kept by
/// `split_code`.
fn judging_line(
    start: &Start,
    policy: &Policy,
    args: &ModuleArgs,
    services: &Services<'_, AnyStore, Nss>,
    conversation: &mut impl Conversation,
) -> PamResultCode {
    let split = kept(start.kept.as_deref().map(Vec::as_slice));
    let request = Request {
        user: &start.user,
        service: &start.service,
        rhost: start.rhost.as_deref(),
        silent: start.silent,
        first_factor: first_factor(start),
        ssh_auth_info: start.ssh_auth_info.as_deref(),
        split: split.as_ref(),
    };
    let login::Judged { rule, outcome } =
        login::authenticate_judged(&request, policy, args, services, conversation, &SystemClock);

    // Every rule's decision is logged with its name; "not required" without one only in debug.
    let not_required = matches!(outcome, Outcome::NotRequired { .. }) && rule.is_none();
    if !not_required || args.debug {
        let level = if not_required {
            Level::Debug
        } else {
            outcome.log_level()
        };
        let mut context = context(start);
        if let Some(rule) = &rule {
            context = format!("{context} {}", log::fields(&[("rule", rule)]));
        }
        log::event(IDENT, level, &outcome.to_string(), &context);
    }
    pam_code(&outcome, args.nullok)
}

fn pam_code(outcome: &Outcome, nullok: bool) -> PamResultCode {
    match outcome {
        Outcome::Accepted { .. }
        | Outcome::TrustedHost { .. }
        | Outcome::Enrolled { .. }
        | Outcome::Confirmed { .. } => PamResultCode::PAM_SUCCESS,
        // Put off before the deadline: as if not required (the stack decides).
        // Skipped by a rule: exactly as not required.
        Outcome::NotRequired { .. } | Outcome::PutOff { .. } | Outcome::SkippedByRule { .. }
            if nullok =>
        {
            PamResultCode::PAM_SUCCESS
        }
        Outcome::NotRequired { .. } | Outcome::PutOff { .. } | Outcome::SkippedByRule { .. } => {
            PamResultCode::PAM_IGNORE
        }
        Outcome::DeniedByRule { .. }
        | Outcome::NotEnrolled
        | Outcome::DisabledButRequired
        | Outcome::Locked { .. }
        | Outcome::EnrollFailed(_)
        | Outcome::EnrollWithoutFirstFactor
        | Outcome::Rejected(_) => PamResultCode::PAM_AUTH_ERR,
        Outcome::Failed(Failure::Account(
            AccountError::Unknown { .. } | AccountError::BadName(_),
        )) => PamResultCode::PAM_USER_UNKNOWN,
        Outcome::Failed(Failure::Account(AccountError::Lookup { .. })) => {
            PamResultCode::PAM_AUTHINFO_UNAVAIL
        }
        Outcome::Failed(Failure::Account(_)) => PamResultCode::PAM_AUTH_ERR,
        // The agent found the policy's [store] wrong: a setup error, like a bad policy.
        Outcome::Failed(
            Failure::Policy(_)
            | Failure::PasswordItem(_)
            | Failure::Store(StoreError::Settings { .. }),
        ) => PamResultCode::PAM_SERVICE_ERR,
        Outcome::Failed(
            Failure::Store(_)
            | Failure::Backup(_)
            | Failure::Enroll(_)
            | Failure::ClockBeforeEpoch { .. },
        ) => PamResultCode::PAM_AUTHINFO_UNAVAIL,
        Outcome::ConversationFailed(_) => PamResultCode::PAM_CONV_ERR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_answer_comes_back_as_it_was_kept_and_nothing_else_counts() {
        let code = SplitAnswer::Code(Zeroizing::new(b"123456".to_vec()));
        assert_eq!(kept(Some(&keep(&code))), Some(code));
        assert_eq!(
            kept(Some(&keep(&SplitAnswer::NoCode))),
            Some(SplitAnswer::NoCode)
        );
        for other in [&b""[..], b"\x02", b"\x00\x00"] {
            assert_eq!(kept(Some(other)), None, "{other:?}");
        }
        assert_eq!(kept(None), None);
    }
}
