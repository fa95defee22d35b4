//! `twofold enroll USER`: new secret (or `--secret`), QR code, first code, activation, backup
//! codes shown once — the library's one enrollment flow ([`Enrollment`]) on a terminal.
#![forbid(unsafe_code)]

use std::io::{self, BufRead};

use pam_twofold::enroll::{EnrollError, Enrollment, NewSecret, Proof, Unconfirmed};
use pam_twofold::otp::Secret;
use pam_twofold::qr::Matrix;
use pam_twofold::store::Replace;
use pam_twofold::{Clock, Store, SystemClock, UserName};
use zeroize::Zeroizing;

use crate::cli::EnrollArgs;
use crate::error::CliError;
use crate::terminal::Terminal;
use crate::{Context, audit, show, user_arg};

/// What the CLI tells an admin whose confirming codes were all wrong.
const START_OVER: &str = "run twofold enroll again";

pub fn run(context: &Context, args: EnrollArgs) -> Result<(), CliError> {
    let user = user_arg(&args.user)?;
    check_can_enroll(context, &user, args.force)?;
    let secret = secret_arg(&args)?;
    let hotp_counter = args.hotp.then_some(args.counter);
    let enrollment = Enrollment::for_policy(&user, &context.policy, secret, hotp_counter)?;
    let matrix = Matrix::encode(enrollment.uri())?;
    // Kept only once 2FA is on: the image of a secret that never took effect is removed.
    let mut images = show::Images::claim(args.png.as_ref(), args.svg.as_ref())?;
    images.write(&matrix)?;
    show_key(&enrollment, &matrix, &args)?;
    let proof = if args.no_verify {
        let now = SystemClock.now();
        if now < 0 {
            return Err(CliError::Clock);
        }
        Proof::Unverified { now }
    } else {
        Proof::Confirmed(confirm(&enrollment)?)
    };
    // With --force, replaces whatever is there (a broken record too) under one lock.
    let count = context.policy.backup_codes.count;
    let activated = enrollment.activate(&context.store, proof, Replace::from(args.force), count)?;
    images.keep();
    audit(&format!("{user} enrolled{}", audit_notes(&args)));
    outln!("2FA is now on for {user}.")?;
    if let Some(codes) = &activated.codes {
        outln!()?;
        show::backup_codes(user.as_str(), codes, None)?;
    }
    Ok(())
}

/// The account exists, the store is there, and (without `--force`) nobody is enrolled yet.
/// Activation checks the last again, under the lock.
fn check_can_enroll(context: &Context, user: &UserName, force: bool) -> Result<(), CliError> {
    if !matches!(nix::unistd::User::from_name(user.as_str()), Ok(Some(_))) {
        return Err(CliError::UnknownUser {
            name: user.to_string(),
        });
    }
    context.store.create_dir()?;
    // With --force whatever is there goes, readable or not (a broken record included).
    if !force && context.store.load(user)?.is_some() {
        return Err(EnrollError::AlreadyEnrolled { user: user.clone() }.into());
    }
    Ok(())
}

/// `--secret` / `--secret-hex` (`-` reads standard input), or a fresh one.
fn secret_arg(args: &EnrollArgs) -> Result<NewSecret, CliError> {
    let secret = match (args.secret.as_deref(), args.secret_hex.as_deref()) {
        (Some("-"), _) => Secret::from_base32(&read_secret_from_stdin()?),
        (Some(text), _) => Secret::from_base32(text),
        (None, Some("-")) => Secret::from_hex(&read_secret_from_stdin()?),
        (None, Some(text)) => Secret::from_hex(text),
        (None, None) => return Ok(NewSecret::Fresh),
    }
    .map_err(CliError::Secret)?;
    if secret.bits() < 128 {
        warn!(
            "warning: this secret has only {} bits (128 or more recommended); accepted for compatibility",
            secret.bits()
        );
    }
    Ok(NewSecret::Given(secret))
}

/// The QR code, the key and the URI, all at once; a key nobody saw is not activated.
fn show_key(enrollment: &Enrollment, matrix: &Matrix, args: &EnrollArgs) -> Result<(), CliError> {
    let heading = format!(
        "Two-factor authentication for {} on {}.",
        enrollment.user(),
        enrollment.issuer()
    );
    let hotp_counter = args.hotp.then_some(args.counter);
    let (secret, params, uri) = (enrollment.secret(), enrollment.params(), enrollment.uri());
    show::enrollment(&heading, matrix, secret, params, hotp_counter, uri, args.qr)
        .map_err(|source| CliError::KeyNotShown { source })
}

/// Asks on the terminal for the first code, like a login does.
fn confirm(enrollment: &Enrollment) -> Result<pam_twofold::enroll::Confirmation, CliError> {
    let mut terminal = Terminal::default();
    match enrollment.confirm(&mut terminal, &SystemClock, START_OVER) {
        Ok(confirmation) => Ok(confirmation),
        Err(Unconfirmed::WrongCodes { tries }) => Err(CliError::NotConfirmed { tries }),
        Err(Unconfirmed::ClockBeforeEpoch { .. }) => Err(CliError::Clock),
        Err(Unconfirmed::NoAnswer(_)) => Err(terminal.take_failure()),
    }
}

/// What the audit line adds to "USER enrolled".
fn audit_notes(args: &EnrollArgs) -> String {
    let mut notes = String::new();
    if args.hotp {
        notes.push_str(" (HOTP token)");
    }
    if args.no_verify {
        notes.push_str(" (first code not verified)");
    }
    if args.force {
        notes.push_str(" (replacing any previous enrollment)");
    }
    notes
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
