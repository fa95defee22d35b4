//! Changes an admin makes to one user's enrollment: disable, enable, reset, unlock, backup
//! codes, trusted hosts, showing the QR code again. Each goes through the store's one writer
//! (lock, read, change, atomic replace) and is logged with who did it.
#![forbid(unsafe_code)]

use std::fs;
use std::io::{self, BufRead, IsTerminal};

use pam_twofold::Store;
use pam_twofold::backup::KdfCost;
use pam_twofold::enroll::otpauth_uri;
use pam_twofold::login::format_time;
use pam_twofold::manage::{self, Forget};
use pam_twofold::policy::{Offline, StoreKind};
use pam_twofold::printable::printable;
use pam_twofold::qr::Matrix;
use pam_twofold::record::{Record, State};
use pam_twofold::store::StoreError;
use pam_twofold::{AnyStore, Clock, SystemClock, UserName};

use crate::cli::{CodesArgs, QrArgs, ResetArgs, TrustArgs, UnlockArgs, UserArgs};
use crate::error::CliError;
use crate::{Context, audit, out, required, show, user_arg};

/// Runs `change` on USER's record under the lock; an absent record is an error.
fn change_enrolled<T>(
    context: &Context,
    user: &UserName,
    change: impl FnOnce(&mut Record) -> T,
) -> Result<T, CliError> {
    Ok(manage::change_enrolled(&context.store, user, change)?)
}

/// The user's record, or "not enrolled".
fn enrolled_record(context: &Context, user: &UserName) -> Result<Record, CliError> {
    Ok(manage::enrolled_record(&context.store, user)?)
}

/// Sets USER's state; returns false (and says so) when it already was that.
fn set_state(context: &Context, user: &UserName, state: State) -> Result<bool, CliError> {
    let was = manage::set_state(&context.store, user, state)?;
    if was == state {
        let name = if state == State::Enabled {
            "enabled"
        } else {
            "disabled"
        };
        outln!("2FA was already {name} for {user}.")?;
    }
    Ok(was != state)
}

pub fn disable(context: &Context, args: UserArgs) -> Result<(), CliError> {
    let user = user_arg(&args.user)?;
    if !set_state(context, &user, State::Disabled)? {
        return Ok(());
    }
    audit(&format!("{user}: 2FA disabled (secret kept)"));
    outln!(
        "2FA is disabled for {user}; the secret is kept (twofold enable {user} turns it back on)."
    )?;
    if let Ok(true) = required(context, &user) {
        outln!(
            "Note: policy requires 2FA for {user}, so their logins are now denied, not let through."
        )?;
    }
    offline_copies_note(context)?;
    Ok(())
}

pub fn enable(context: &Context, args: UserArgs) -> Result<(), CliError> {
    let user = user_arg(&args.user)?;
    if !set_state(context, &user, State::Enabled)? {
        return Ok(());
    }
    audit(&format!("{user}: 2FA enabled again"));
    outln!("2FA is enabled again for {user}, with the same secret.")?;
    Ok(())
}

fn confirmed(question: &str) -> Result<bool, CliError> {
    if !io::stdin().is_terminal() {
        return Err(CliError::NeedsConfirmation);
    }
    out!("{question} [y/N] ")?;
    let mut answer = String::new();
    io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|source| CliError::Io {
            what: "read the answer".into(),
            source,
        })?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

pub fn reset(context: &Context, args: ResetArgs) -> Result<(), CliError> {
    let user = user_arg(&args.user)?;
    // Not `load`: a record too broken to read must still be removable.
    let exists = match &context.store {
        AnyStore::System(store) => fs::symlink_metadata(store.record_path(&user)).is_ok(),
        AnyStore::Home(_) | AnyStore::Postgres(_) => {
            match context.store.load(&user) {
                Ok(None) => false,
                Ok(Some(_)) | Err(StoreError::DbRecord { .. }) => true,
                // Unreachable: `remove` below reports it.
                Err(
                    e @ (StoreError::DbUnreachable { .. }
                    | StoreError::Db { .. }
                    | StoreError::AgentDown { .. }
                    | StoreError::AgentRefused { .. }
                    | StoreError::Settings { .. }),
                ) => {
                    return Err(e.into());
                }
                Err(_) => true,
            }
        }
    };
    if !exists {
        return Err(CliError::NotEnrolled {
            user: user.to_string(),
        });
    }
    if !args.yes
        && !confirmed(&format!(
            "Remove 2FA for {user}? The secret and backup codes are deleted and {user} must enroll again."
        ))?
    {
        outln!("Nothing changed.")?;
        return Ok(());
    }
    if !context.store.remove(&user)? {
        return Err(CliError::NotEnrolled {
            user: user.to_string(),
        });
    }
    audit(&format!("{user}: 2FA reset (record removed)"));
    outln!("2FA removed for {user}; they can enroll again.")?;
    offline_copies_note(context)?;
    Ok(())
}

/// Fleet mode with offline copies: a change made on the database does not reach the copies
/// other hosts keep, and a host that loses the database uses its copy for up to
/// `cache_max_age`. The admin of a stolen phone must know.
fn offline_copies_note(context: &Context) -> Result<(), CliError> {
    let store = &context.policy.store;
    if store.kind == StoreKind::Postgres && store.offline == Offline::Cache {
        outln!(
            "Note: offline = \"cache\": until the database is reachable again, other hosts may use their copy of the old record for up to {} s (cache_max_age); if a phone was stolen, consider removing {} on those hosts too.",
            store.cache_max_age,
            store.cache_dir.display()
        )?;
    }
    Ok(())
}

pub fn unlock(context: &Context, args: UnlockArgs) -> Result<(), CliError> {
    let user = user_arg(&args.user)?;
    let now = SystemClock.now();
    let (was_locked, drift) = change_enrolled(context, &user, |r| {
        let locked = r.locked_at(now).is_some();
        r.clear_lockout();
        let drift = (r.drift_steps, r.period);
        if args.reset_drift {
            r.drift_steps = 0;
            r.drift_trial = None;
        }
        (locked, drift)
    })?;
    if args.reset_drift {
        audit(&format!(
            "{user}: learned clock offset reset (was {})",
            pam_twofold::drift::describe(drift.0, drift.1)
        ));
        outln!(
            "{user}: clock offset reset (was {}); codes are checked against this server's clock again.",
            pam_twofold::drift::describe(drift.0, drift.1)
        )?;
    }
    audit(&format!(
        "{user}: lock-out cleared{}",
        if was_locked { "" } else { " (was not locked)" }
    ));
    if was_locked {
        outln!("{user} is unlocked; the failure count is reset.")?;
    } else {
        outln!("{user} was not locked; the failure count is reset.")?;
    }
    Ok(())
}

pub fn codes(context: &Context, args: CodesArgs) -> Result<(), CliError> {
    let user = user_arg(&args.user)?;
    if args.delete {
        let had = manage::delete_backup_codes(&context.store, &user)?;
        audit(&format!("{user}: {had} backup codes deleted"));
        outln!("Deleted {had} backup codes of {user}.")?;
        return Ok(());
    }
    if args.regenerate {
        let count = context.policy.backup_codes.count;
        if count == 0 {
            return Err(CliError::NoBackupCodes);
        }
        let left = enrolled_record(context, &user)?.backup_codes_left();
        if !args.yes
            && !confirmed(&format!(
                "Make new backup codes for {user}? Their {left} unused codes stop working."
            ))?
        {
            outln!("Nothing changed.")?;
            return Ok(());
        }
        // Claimed first: a refused path must not cost the user their old codes.
        let output = args.output.as_deref().map(show::private_file).transpose()?;
        let codes =
            manage::regenerate_backup_codes(&context.store, &user, count, KdfCost::DEFAULT)?;
        audit(&format!(
            "{user}: {count} new backup codes (old ones revoked)"
        ));
        return show::backup_codes(user.as_str(), &codes, output);
    }
    let record = enrolled_record(context, &user)?;
    outln!(
        "{user} has {} unused backup codes.",
        record.backup_codes_left()
    )?;
    Ok(())
}

pub fn trust(context: &Context, args: TrustArgs) -> Result<(), CliError> {
    let user = user_arg(&args.user)?;
    if args.clear {
        let had = manage::forget_trusted(&context.store, &user, Forget::All)?;
        audit(&format!("{user}: {had} trusted hosts forgotten"));
        outln!("Forgot {had} trusted hosts of {user}.")?;
        return Ok(());
    }
    let record = enrolled_record(context, &user)?;
    let now = SystemClock.now();
    let days = context.policy.trust.days;
    let live: Vec<_> = record
        .trusted
        .iter()
        .filter(|t| t.in_force(now, days))
        .collect();
    if live.is_empty() {
        outln!(
            "{user} has no trusted hosts{}.",
            if days == 0 {
                " ([trust] days = 0: trust is off)"
            } else {
                ""
            }
        )?;
    }
    for t in live {
        outln!(
            "{} on {}  trusted since {}, until {}",
            printable(&t.host),
            printable(t.service.as_deref().unwrap_or("-")),
            format_time(t.granted),
            format_time(t.expires)
        )?;
    }
    Ok(())
}

pub fn qr(context: &Context, args: QrArgs) -> Result<(), CliError> {
    let user = user_arg(&args.user)?;
    let record = enrolled_record(context, &user)?;
    let uri = otpauth_uri(
        &record.issuer,
        &record.label,
        &record.secret,
        record.params(),
        record.counter,
    );
    let matrix = Matrix::encode(&uri)?;
    let mut images = show::Images::claim(args.png.as_ref(), args.svg.as_ref())?;
    images.write(&matrix)?;
    images.keep();
    audit(&format!("{user}: QR code of the existing enrollment shown"));
    let heading = format!(
        "Existing two-factor enrollment of {user} on {}.",
        printable(&record.issuer)
    );
    // Read-only: a reader that closed the pipe has simply seen enough.
    out::report(show::enrollment(
        &heading,
        &matrix,
        &record.secret,
        record.params(),
        record.counter,
        &uri,
        args.qr,
    ))
}
