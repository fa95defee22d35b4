//! `twofold enroll USER`: new secret (or `--secret`), QR code, first code, activation, backup
//! codes shown once.
#![forbid(unsafe_code)]

use std::io::{self, BufRead, IsTerminal};

use pam_twofold::enroll::{self, otpauth_uri};
use pam_twofold::otp::{self, Secret, Verdict};
use pam_twofold::qr::Matrix;
use pam_twofold::record::Kind;
use pam_twofold::{Clock, Store, SystemClock};
use zeroize::Zeroizing;

use crate::cli::EnrollArgs;
use crate::error::CliError;
use crate::{Context, audit, show, user_arg};

const CONFIRM_TRIES: u32 = 3;

pub fn run(context: &Context, args: EnrollArgs) -> Result<(), CliError> {
    let user = user_arg(&args.user)?;
    match nix::unistd::User::from_name(user.as_str()) {
        Ok(Some(_)) => {}
        _ => {
            return Err(CliError::UnknownUser {
                name: user.to_string(),
            });
        }
    }
    context.store.create_dir()?;
    if args.force {
        // Replacing: whatever is there goes, readable or not (a broken record included).
    } else if context.store.load(&user)?.is_some() {
        return Err(enroll::EnrollError::AlreadyEnrolled { user }.into());
    }

    let secret = match (args.secret.as_deref(), args.secret_hex.as_deref()) {
        (Some("-"), _) => Secret::from_base32(&read_secret_from_stdin()?),
        (Some(text), _) => Secret::from_base32(text),
        (None, Some("-")) => Secret::from_hex(&read_secret_from_stdin()?),
        (None, Some(text)) => Secret::from_hex(text),
        (None, None) => Ok(enroll::new_secret()?),
    }
    .map_err(CliError::Secret)?;
    if secret.bits() < 128 {
        warn!(
            "warning: this secret has only {} bits (128 or more recommended); accepted for compatibility",
            secret.bits()
        );
    }
    let params = context.policy.new_params();
    let issuer = context.policy.issuer();
    let hotp_counter = args.hotp.then_some(args.counter);
    let uri = otpauth_uri(&issuer, user.as_str(), &secret, params, hotp_counter);
    let matrix = Matrix::encode(&uri)?;
    // Kept only once 2FA is on: the image of a secret that never took effect is removed.
    let mut images = show::Images::claim(args.png.as_ref(), args.svg.as_ref())?;
    images.write(&matrix)?;
    let heading = format!("Two-factor authentication for {user} on {issuer}.");
    show::enrollment(
        &heading,
        &matrix,
        &secret,
        params,
        hotp_counter,
        &uri,
        args.qr,
    )
    .map_err(|source| CliError::KeyNotShown { source })?;

    // The step (TOTP) or counter (HOTP) of the code that confirmed the token.
    let confirmed = if args.no_verify {
        None
    } else {
        Some(confirm(&secret, context, hotp_counter)?)
    };
    let confirmed_step = confirmed.filter(|_| !args.hotp);
    let now = SystemClock.now();
    if now < 0 {
        return Err(CliError::Clock);
    }
    let codes = enroll::new_backup_codes(context.policy.backup_codes.count)?;
    let stored = codes.as_ref().map(|c| c.stored.clone());
    let mut record =
        enroll::new_record(&user, &issuer, secret, params, now, confirmed_step, stored);
    if let Some(counter) = hotp_counter {
        record.kind = Kind::Hotp;
        // After a confirming press the token is one past the counter it showed.
        record.counter = Some(confirmed.map_or(counter, |c| c.saturating_add(1)));
        record.last_used = confirmed.map(|_| now);
    }
    // With --force, replaces whatever is there (a broken record too) under one lock.
    enroll::activate(&context.store, &user, record, args.force)?;
    images.keep();

    audit(&format!(
        "{user} enrolled{}{}{}",
        if args.hotp { " (HOTP token)" } else { "" },
        if args.no_verify {
            " (first code not verified)"
        } else {
            ""
        },
        if args.force {
            " (replacing any previous enrollment)"
        } else {
            ""
        }
    ));
    outln!("2FA is now on for {user}.")?;
    if let Some(codes) = &codes {
        outln!()?;
        show::backup_codes(user.as_str(), codes, None)?;
    }
    Ok(())
}

/// Asks for a code from the app or token until one is right (at most three tries); returns
/// its step, or with `hotp_counter` the counter it matched (within the policy's look-ahead).
fn confirm(secret: &Secret, context: &Context, hotp_counter: Option<u64>) -> Result<u64, CliError> {
    let params = context.policy.new_params();
    let stdin = io::stdin();
    let mut lines = stdin.lock();
    for _ in 0..CONFIRM_TRIES {
        out!(
            "Enter the {}-digit code shown in the app to confirm: ",
            params.digits
        )?;
        let mut line = Zeroizing::new(String::new());
        let read = lines.read_line(&mut line).map_err(|source| CliError::Io {
            what: "read the code".into(),
            source,
        })?;
        if !io::stdin().is_terminal() {
            // The answer was not echoed: end the prompt's line ourselves.
            outln!()?;
        }
        if read == 0 {
            return Err(CliError::NoCode);
        }
        let answer = line.trim_end_matches(['\n', '\r']);
        let Ok(code) = otp::normalize_code(answer.as_bytes(), params.digits) else {
            outln!("That is not a {}-digit code.", params.digits)?;
            continue;
        };
        let now = u64::try_from(SystemClock.now()).map_err(|_| CliError::Clock)?;
        let matched = match hotp_counter {
            Some(counter) => otp::verify_hotp(
                secret,
                params.algorithm,
                params.digits,
                &code,
                counter,
                context.policy.hotp.window,
            ),
            None => {
                match otp::verify_totp(secret, params, &code, now, context.policy.totp.window, None)
                {
                    Verdict::Accepted { step } => Some(step),
                    _ => None,
                }
            }
        };
        match matched {
            Some(step) => return Ok(step),
            None if hotp_counter.is_some() => outln!(
                "That code is not right. Check the token's secret and counter, then press again."
            )?,
            None => outln!(
                "That code is not right. Check the phone's clock and the account, then try again."
            )?,
        }
    }
    Err(CliError::NotConfirmed {
        tries: CONFIRM_TRIES,
    })
}

fn read_secret_from_stdin() -> Result<Zeroizing<String>, CliError> {
    let mut line = Zeroizing::new(String::new());
    io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|source| CliError::Io {
            what: "read the secret from standard input".into(),
            source,
        })?;
    Ok(Zeroizing::new(line.trim().to_owned()))
}
