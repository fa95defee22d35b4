//! Enroll at login: a user whom policy requires to use 2FA, and who has none, sets it up in the
//! login itself — QR code and key as PAM_TEXT_INFO, the first code confirms it, backup codes are
//! shown once. Nothing is stored until a right code; then the record is created under the
//! user's lock only if no other login created one meanwhile.
#![forbid(unsafe_code)]

use zeroize::Zeroizing;

use crate::clock::Clock;
use crate::conversation::Conversation;
use crate::enroll::{self, EnrollError, grouped_secret, otpauth_uri};
use crate::otp::{self, Secret, TotpParams, Verdict};
use crate::policy::{ModuleArgs, Policy, QrStyle};
use crate::qr::{Matrix, TerminalStyle};
use crate::store::Store;
use crate::user::UserName;

use super::outcome::{EnrollFailure, Failure, Outcome};

/// Applications may cut longer messages (PAM_MAX_MSG_SIZE is 512 bytes, NUL included).
pub const MAX_MESSAGE_BYTES: usize = 500;
pub const ENROLL_PROMPT: &str =
    "Enter the code shown in your authenticator app to finish setting up: ";
/// Asked after the backup codes: sshd shows text only together with a question (text after
/// the last question is lost for `ssh host command`), and the user should confirm anyway.
pub const SAVED_PROMPT: &str = "Press Enter once you have saved the backup codes: ";
const TRIES: u32 = 3;

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

/// The terminal style: the module argument wins over the policy.
fn style(policy: &Policy, args: &ModuleArgs) -> TerminalStyle {
    match args.qr.unwrap_or(policy.policy.qr) {
        QrStyle::Utf8 => TerminalStyle::Utf8Dark,
        QrStyle::Utf8Light => TerminalStyle::Utf8Light,
        QrStyle::Ascii => TerminalStyle::Ascii,
    }
}

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
    let secret = match enroll::new_secret() {
        Ok(secret) => secret,
        Err(e) => return Outcome::Failed(Failure::Enroll(e)),
    };
    let params = policy.new_params();
    let issuer = policy.issuer();
    if let Err(outcome) = show_setup(
        user,
        &issuer,
        &secret,
        params,
        style(policy, args),
        conversation,
    ) {
        return outcome;
    }
    let Some((step, now)) =
        confirm_first_code(&secret, params, clock, policy.totp.window, conversation)
    else {
        return Outcome::EnrollFailed(EnrollFailure::NotConfirmed);
    };
    let codes = match enroll::new_backup_codes(policy.backup_codes.count) {
        Ok(codes) => codes,
        Err(e) => return Outcome::Failed(Failure::Enroll(e)),
    };
    let stored = codes.as_ref().map(|c| c.stored.clone());
    let record = enroll::new_record(user, &issuer, secret, params, now, Some(step), stored);
    if let Err(outcome) = activate(store, user, record, conversation) {
        return outcome;
    }
    let backup_codes = codes.as_ref().map_or(0, |c| c.shown.len());
    show_done(codes.as_ref().map(|c| c.shown.as_slice()), conversation);
    Outcome::Enrolled { step, backup_codes }
}

/// The QR code and the key, as PAM_TEXT_INFO. The first line is plain text: ssh clients
/// prefix it with "(user@host) ".
fn show_setup(
    user: &UserName,
    issuer: &str,
    secret: &Secret,
    params: TotpParams,
    style: TerminalStyle,
    conversation: &mut impl Conversation,
) -> Result<(), Outcome> {
    let uri = otpauth_uri(issuer, user.as_str(), secret, params, None);
    let matrix = Matrix::encode(&uri)
        .map_err(|e| Outcome::Failed(Failure::Enroll(EnrollError::Random(e.to_string()))))?;
    let mut text = Zeroizing::new(String::from(
        "Two-factor authentication is required for this account and is not set up yet.\n\
         Set it up now: scan this QR code with an authenticator app\n\
         (Google Authenticator, Microsoft Authenticator, Duo Mobile, FreeOTP, ...):\n\n",
    ));
    text.push_str(&matrix.to_terminal(style));
    text.push_str(&format!(
        "\nOr type this key into the app: {}\n(time-based, {}, {} digits, every {} s; account {} at {})",
        grouped_secret(secret).as_str(),
        params.algorithm,
        params.digits,
        params.period,
        user,
        issuer
    ));
    show(conversation, &text).map_err(Outcome::EnrollFailed)
}

/// Up to [`TRIES`] answers; the step of the first right code and the time it was judged at
/// (read when each answer arrives), or None.
fn confirm_first_code(
    secret: &Secret,
    params: TotpParams,
    clock: &impl Clock,
    window: u8,
    conversation: &mut impl Conversation,
) -> Option<(u64, i64)> {
    for try_number in 1..=TRIES {
        let answer = conversation.ask_hidden(ENROLL_PROMPT).ok()?;
        let now = clock.now();
        let now_u64 = u64::try_from(now).ok()?;
        let message = match otp::normalize_code(&answer, params.digits) {
            Err(_) => format!("That is not a {}-digit code.", params.digits),
            Ok(code) => match otp::verify_totp(secret, params, &code, now_u64, window, None) {
                Verdict::Accepted { step } => return Some((step, now)),
                _ => "That code is not right: check the phone's clock, and that you scanned \
                      the code shown above."
                    .to_owned(),
            },
        };
        let _ = conversation.error(&match TRIES - try_number {
            0 => format!("{message} Nothing was set up; log in again to start over."),
            1 => format!("{message} 1 try left."),
            n => format!("{message} {n} tries left."),
        });
    }
    None
}

/// Stores the record unless another login of this user finished enrolling first.
fn activate(
    store: &impl Store,
    user: &UserName,
    record: crate::record::Record,
    conversation: &mut impl Conversation,
) -> Result<(), Outcome> {
    match enroll::activate(store, user, record, false) {
        Ok(()) => Ok(()),
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
