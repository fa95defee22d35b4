//! Enroll at login: a user whom policy requires to use 2FA, and who has none, sets it up in the
//! login itself — the key, then on a screen of its own that fits 80×24 the QR code, as
//! PAM_TEXT_INFO; the first code confirms it, backup codes are shown once. Nothing is stored until a right code; then the record is created under the
//! user's lock only if no other login created one meanwhile.
#![forbid(unsafe_code)]

use zeroize::Zeroizing;

use crate::backup::NewCodes;
use crate::clock::Clock;
use crate::conversation::Conversation;
use crate::enroll::{
    EnrollError, Enrollment, NewSecret, Proof, Unconfirmed, UriForm, grouped_secret,
};
use crate::policy::{ModuleArgs, Policy};
use crate::qr::{Matrix, QrStyle, SCREEN_COLUMNS, SCREEN_LINES, Screen};
use crate::store::{Replace, Store};
use crate::user::UserName;

use super::outcome::{EnrollFailure, Failure, Outcome};

/// Applications may cut longer messages (PAM_MAX_MSG_SIZE is 512 bytes, NUL included).
pub const MAX_MESSAGE_BYTES: usize = 500;
pub use crate::enroll::ENROLL_PROMPT;
/// Ends the first screen of the enrollment; the QR code comes alone on the next one.
pub const SHOW_QR_PROMPT: &str = "Press Enter to show the QR code: ";
/// The line above the QR code (short: ssh clients put "(user@host) " in front of it).
pub const QR_HEADER: &str = "Scan this QR code with the app:";
/// Lines of the QR code's screen that are not the code: the header and the code prompt.
const QR_SCREEN_EXTRA_LINES: usize = 2;
/// Asked after the backup codes: sshd shows text only together with a question (text after
/// the last question is lost for `ssh host command`), and the user should confirm anyway.
pub const SAVED_PROMPT: &str = "Press Enter once you have saved the backup codes: ";

/// Splits text into messages of whole lines, each at most `max` bytes (a longer single line
/// is sent alone: the splitter never cuts inside a line or a UTF-8 character).
pub fn chunk_lines(text: &str, max: usize) -> Vec<Zeroizing<String>> {
    let mut chunks: Vec<Zeroizing<String>> = Vec::new();
    let mut current = Zeroizing::new(String::new());
    for line in text.lines() {
        let needed = if current.is_empty() {
            line.len()
        } else {
            current.len() + 1 + line.len()
        };
        if needed > max && !current.is_empty() {
            chunks.push(std::mem::replace(
                &mut current,
                Zeroizing::new(String::new()),
            ));
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(line);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

fn show(conversation: &mut impl Conversation, text: &str) -> Result<(), EnrollFailure> {
    for chunk in chunk_lines(text, MAX_MESSAGE_BYTES) {
        conversation
            .info(&chunk)
            .map_err(|e| EnrollFailure::CannotShowText(format!("PAM_TEXT_INFO failed: {}", e.0)))?;
    }
    Ok(())
}

/// The QR style: the module argument wins over the policy.
fn style(policy: &Policy, args: &ModuleArgs) -> QrStyle {
    args.qr.unwrap_or(policy.policy.qr)
}

/// What a login tells a user whose confirming codes were all wrong.
const START_OVER: &str = "log in again to start over";

/// Runs the enrollment conversation for `user`, who has no record and must use 2FA.
pub fn enroll(
    user: &UserName,
    silent: bool,
    clock: &impl Clock,
    policy: &Policy,
    args: &ModuleArgs,
    store: &impl Store,
    conversation: &mut impl Conversation,
) -> Outcome {
    if silent {
        let why = "the application asked for silence (PAM_SILENT)".to_owned();
        return Outcome::EnrollFailed(EnrollFailure::CannotShowText(why));
    }
    let now = clock.now();
    if now < 0 {
        return Outcome::Failed(Failure::ClockBeforeEpoch { now });
    }
    let enrollment = match Enrollment::for_policy(user, policy, NewSecret::Fresh, None) {
        Ok(enrollment) => enrollment,
        Err(e) => return Outcome::Failed(Failure::Enroll(e)),
    };
    if let Err(failure) = show_setup(&enrollment, style(policy, args), conversation) {
        return Outcome::EnrollFailed(failure);
    }
    let confirmation = match enrollment.confirm(conversation, clock, START_OVER) {
        Ok(confirmation) => confirmation,
        Err(Unconfirmed::ClockBeforeEpoch { now }) => {
            return Outcome::Failed(Failure::ClockBeforeEpoch { now });
        }
        Err(Unconfirmed::WrongCodes { .. } | Unconfirmed::NoAnswer(_)) => {
            return Outcome::EnrollFailed(EnrollFailure::NotConfirmed);
        }
    };
    let proof = Proof::Confirmed(confirmation);
    let codes = match activate(enrollment, store, proof, policy, conversation) {
        Ok(codes) => codes,
        Err(outcome) => return outcome,
    };
    let backup_codes = codes.as_ref().map_or(0, |c| c.shown.len());
    show_done(codes.as_ref().map(|c| c.shown.as_slice()), conversation);
    Outcome::Enrolled {
        step: confirmation.matched,
        backup_codes,
    }
}

/// The QR code, drawn so that it fits the last screen, or why it does not.
enum Picture {
    /// Fits an 80×24 screen with [`QR_HEADER`] above it and the code prompt below.
    Fits(Zeroizing<String>),
    /// Taller or wider (ascii, very long names): shown anyway for terminals with scrollback or
    /// more room, with the key right above the prompt.
    TooLarge(Zeroizing<String>),
    /// Not drawable at all (a URI beyond any QR version): the key alone.
    Missing,
}

/// The first URI form ([`UriForm::ALL`], longest first) whose code fits an 80×24 screen with
/// the header and the prompt; else the smallest code drawn.
fn picture(enrollment: &Enrollment, style: QrStyle) -> Picture {
    let mut smallest = Picture::Missing;
    for form in UriForm::ALL {
        let Ok(matrix) = Matrix::encode(&enrollment.uri_as(form)) else {
            continue;
        };
        let drawing = matrix.to_terminal(style, Screen::PamText);
        if matrix.fits(style, SCREEN_COLUMNS, SCREEN_LINES - QR_SCREEN_EXTRA_LINES) {
            return Picture::Fits(drawing);
        }
        smallest = Picture::TooLarge(drawing);
    }
    smallest
}

/// Two screens, so that an 80×24 terminal without scrollback (a Linux console) shows the whole
/// QR code at the code prompt: first what is about to happen and the key as text, then, after
/// [`SHOW_QR_PROMPT`], the code alone. The first line of each is plain text: ssh clients
/// prefix it with "(user@host) ".
fn show_setup(
    enrollment: &Enrollment,
    style: QrStyle,
    conversation: &mut impl Conversation,
) -> Result<(), EnrollFailure> {
    let picture = picture(enrollment, style);
    show(conversation, &explanation(enrollment, &picture))?;
    let drawing = match &picture {
        Picture::Fits(drawing) | Picture::TooLarge(drawing) => drawing,
        Picture::Missing => return Ok(()),
    };
    conversation.ask_visible(SHOW_QR_PROMPT).map_err(|e| {
        EnrollFailure::CannotShowText(format!("PAM_PROMPT_ECHO_ON failed: {}", e.0))
    })?;
    let mut text = Zeroizing::new(String::from(QR_HEADER));
    text.push('\n');
    text.push_str(drawing);
    if let Picture::TooLarge(_) = picture {
        text.push_str("Or type this key into the app: ");
        text.push_str(&grouped_secret(enrollment.secret()));
    }
    show(conversation, &text)
}

/// The first screen: what happens, which apps, and the key for typing it in.
fn explanation(enrollment: &Enrollment, picture: &Picture) -> Zeroizing<String> {
    let params = enrollment.params();
    let add = match picture {
        Picture::Missing => "",
        _ => " scan the QR code on the next screen,\n   or",
    };
    Zeroizing::new(format!(
        "Two-factor authentication is required for this account\n\
         and is not set up yet. Set it up now; it takes a minute:\n\
         1. Install an authenticator app on your phone if you have none\n   \
         (Google Authenticator, Microsoft Authenticator, Duo Mobile, FreeOTP, ...).\n\
         2. In the app, add an account:{add} type this key into the app:\n       {key}\n   \
         (time-based, {alg}, {digits} digits, every {period} s; account {user} at {issuer})\n\
         3. Type the {digits}-digit code the app then shows. Backup codes follow, once.",
        key = grouped_secret(enrollment.secret()).as_str(),
        alg = params.algorithm,
        digits = params.digits,
        period = params.period,
        user = enrollment.user(),
        issuer = enrollment.issuer(),
    ))
}

/// Stores the record unless another login of this user finished enrolling first; the
/// backup codes to show.
fn activate(
    enrollment: Enrollment,
    store: &impl Store,
    proof: Proof,
    policy: &Policy,
    conversation: &mut impl Conversation,
) -> Result<Option<NewCodes>, Outcome> {
    let count = policy.backup_codes.count;
    match enrollment.activate(store, proof, Replace::No, count) {
        Ok(activated) => Ok(activated.codes),
        Err(EnrollError::AlreadyEnrolled { .. }) => {
            let _ = conversation.error(
                "Two-factor authentication was just set up for this account by another login. \
                 Log in again with a code from the app you used there.",
            );
            Err(Outcome::EnrollFailed(EnrollFailure::LostRace))
        }
        Err(EnrollError::Store(e)) => Err(Outcome::Failed(Failure::Store(e))),
        Err(e) => Err(Outcome::Failed(Failure::Enroll(e))),
    }
}

/// "Set up", and the backup codes once. The login has passed whatever happens here: a client
/// that cannot show this still gets in (an admin can make new codes with `twofold codes
/// --regenerate`).
fn show_done(codes: Option<&[Zeroizing<String>]>, conversation: &mut impl Conversation) {
    let mut done = Zeroizing::new(String::from(
        "Two-factor authentication is now set up: every login will ask for a code from the app.",
    ));
    if let Some(codes) = codes {
        done.push_str(
            "\nBackup codes: each works once instead of a code, if you lose your phone.\n\
             Write them down or store them safely; they are not shown again:",
        );
        for code in codes {
            done.push_str("\n    ");
            done.push_str(code);
        }
    }
    if show(conversation, &done).is_ok() && codes.is_some() {
        let _ = conversation.ask_visible(SAVED_PROMPT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_keep_lines_whole_and_under_the_limit() {
        let line = "█▀▄ ".repeat(15); // 150 bytes of UTF-8
        let text = [line.as_str(); 10].join("\n");
        let chunks = chunk_lines(&text, 500);
        assert_eq!(chunks.len(), 4);
        for chunk in &chunks {
            assert!(chunk.len() <= 500);
        }
        let joined: Vec<&str> = chunks.iter().map(|c| c.as_str()).collect();
        assert_eq!(joined.join("\n"), text);
        assert_eq!(chunk_lines("a\n\nb", 500).len(), 1);
        assert_eq!(chunk_lines(&"x".repeat(600), 500)[0].len(), 600);
    }
}
