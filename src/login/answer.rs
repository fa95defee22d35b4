//! What was typed: asked now, or split off the end of a password by the `split_code` line
//! (which hands the password on and keeps the code for the judging line).
#![forbid(unsafe_code)]

use zeroize::Zeroizing;

use crate::conversation::Conversation;
use crate::policy::{FirstPass, ModuleArgs};
use crate::store::Store;
use crate::user::{Account, Directory};

use super::outcome::{Failure, Outcome, Rejection};
use super::{Request, Services};

/// What the `split_code` line kept for the line that judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitAnswer {
    /// The code (or backup code) typed after the password.
    Code(Zeroizing<Vec<u8>>),
    /// The whole answer was the password: the user has no code to give.
    NoCode,
}

/// Where the code starts in a combined answer: `password123456` (the last `digits` digits)
/// or `password1234-5678` (a backup code with its dash). The password may be empty.
pub fn split_password_and_code(combined: &[u8], digits: u8) -> Option<usize> {
    let n = combined.len();
    let all_digits = |part: &[u8]| part.iter().all(u8::is_ascii_digit);
    if n >= 9
        && all_digits(&combined[n - 9..n - 5])
        && combined[n - 5] == b'-'
        && all_digits(&combined[n - 4..])
    {
        return Some(n - 9);
    }
    let d = usize::from(digits);
    (n >= d && all_digits(&combined[n - d..])).then(|| n - d)
}

/// The answer to check: what the `split_code` line kept, or asked now.
pub fn obtain_code(
    request: &Request<'_>,
    args: &ModuleArgs,
    conversation: &mut impl Conversation,
) -> Result<Zeroizing<Vec<u8>>, Outcome> {
    match request.split {
        Some(SplitAnswer::Code(code)) => Ok(code.clone()),
        Some(SplitAnswer::NoCode) => Err(Outcome::Rejected(Rejection::NoCodeAfterPassword)),
        None => conversation
            .ask_hidden(args.prompt())
            .map_err(Outcome::ConversationFailed),
    }
}

/// The `split_code` line, before the password module: takes `password123456` (from the
/// prompt or PAM_AUTHTOK), hands the password on as PAM_AUTHTOK and keeps the code for the
/// line after the password module. It judges, counts and reveals nothing: every user gets
/// the same prompt, and the record is only read to know whether (and how long) a code is
/// expected at the end.
pub fn split_code<S: Store, D: Directory>(
    user: &str,
    args: &ModuleArgs,
    services: &Services<'_, S, D>,
    conversation: &mut impl Conversation,
) -> Result<SplitAnswer, Outcome> {
    let from_item = match args.first_pass {
        Some(mode) => match conversation.password_item().filter(|p| !p.is_empty()) {
            Some(item) => Some(item),
            None if mode == FirstPass::Use => {
                return Err(Outcome::Rejected(Rejection::NoPasswordItem));
            }
            None => None,
        },
        None => None,
    };
    let combined = match from_item {
        Some(item) => item,
        None => conversation
            .ask_hidden(args.combined_prompt())
            .map_err(Outcome::ConversationFailed)?,
    };
    let split = expected_digits(user, services)
        .and_then(|digits| split_password_and_code(&combined, digits));
    let (password, answer) = match split {
        Some(at) => (
            &combined[..at],
            SplitAnswer::Code(Zeroizing::new(combined[at..].to_vec())),
        ),
        None => (&combined[..], SplitAnswer::NoCode),
    };
    conversation
        .set_password_item(password)
        .map_err(|e| Outcome::Failed(Failure::PasswordItem(e.0)))?;
    Ok(answer)
}

/// The code length the user's enabled record expects, or None when no code is expected (no
/// record, disabled, or anything that the judging line will deny anyway).
fn expected_digits<S: Store, D: Directory>(
    user: &str,
    services: &Services<'_, S, D>,
) -> Option<u8> {
    let account = Account::resolve(services.directory, user).ok()?;
    match services.store.load(&account.name) {
        Ok(Some(record)) if record.is_enabled() => Some(record.digits),
        Ok(_) => None,
        // The judging line fails closed on it; split as if a code were there.
        Err(_) => Some(crate::policy::TotpSection::default().digits),
    }
}
