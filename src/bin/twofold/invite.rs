//! `twofold invite USER... | --group GROUP`: mails each user how to set up 2FA. By default the
//! mail holds no secret (the next login enrolls them); with `--with-qr` it makes a pending
//! enrollment, which the first right code at a login turns on, and attaches its QR code and
//! key. Users who already have 2FA (or a pending invitation) are left alone.
#![forbid(unsafe_code)]

use std::collections::BTreeSet;

use pam_twofold::deadline::Deadline;
use pam_twofold::enroll::{EnrollError, Enrollment, NewSecret, Token, grouped_secret};
use pam_twofold::login::format_time;
use pam_twofold::qr::Matrix;
use pam_twofold::record::Record;
use pam_twofold::user::{Account, AccountError, Nss};
use pam_twofold::{Clock, Store, SystemClock, UserName};
use zeroize::Zeroizing;

use crate::cli::InviteArgs;
use crate::error::CliError;
use crate::letter::{KeyPart, Letter};
use crate::mail::{self, Attachment, Mail};
use crate::{Context, audit, list, show};

/// How one user's invitation went.
enum Sent {
    Mailed { address: String },
    Skipped { why: String },
}

pub fn run(context: &Context, args: InviteArgs) -> Result<(), CliError> {
    if let Some(address) = &args.mail_to {
        mail::address(address)?;
    }
    let users = whom(&args)?;
    if args.mail_to.is_some() && users.len() != 1 {
        return Err(CliError::MailToOne);
    }
    let deadline = match &args.deadline {
        Some(day) => Some(Deadline::parse(day).map_err(CliError::Deadline)?),
        None => context.policy.policy.enroll_deadline.clone(),
    };
    if deadline.is_some() && deadline != context.policy.policy.enroll_deadline {
        warn!(
            "note: the mail announces a deadline that [policy] enroll_deadline does not set; \
             logins enforce the policy's"
        );
    }
    let mut failed = 0;
    for user in users {
        match invite(context, &args, &user, deadline.as_ref()) {
            Ok(Sent::Mailed { address }) => outln!("{user}: invitation sent to {address}")?,
            Ok(Sent::Skipped { why }) => outln!("{user}: not invited: {why}")?,
            Err(e) => {
                warn!("{user}: {e}");
                failed += 1;
            }
        }
    }
    match failed {
        0 => Ok(()),
        failed => Err(CliError::InviteIncomplete { failed }),
    }
}

/// The users named, and the members of `--group` (its member list and the accounts NSS
/// lists whose primary group it is), each once.
fn whom(args: &InviteArgs) -> Result<Vec<UserName>, CliError> {
    let mut names: BTreeSet<String> = args.users.iter().cloned().collect();
    if let Some(group) = &args.group {
        let entry = nix::unistd::Group::from_name(group)
            .ok()
            .flatten()
            .ok_or_else(|| CliError::UnknownGroup {
                group: group.clone(),
            })?;
        names.extend(entry.mem);
        names.extend(
            list::login_accounts()?
                .into_iter()
                .filter(|account| account.gid == entry.gid.as_raw())
                .map(|account| account.name),
        );
    }
    names
        .iter()
        .map(|name| match Account::resolve(&Nss, name) {
            Ok(account) => Ok(account.name),
            Err(AccountError::Unknown { .. }) => Err(CliError::UnknownUser { name: name.clone() }),
            Err(e) => Err(CliError::Account(e)),
        })
        .collect()
}

/// One user: checks, the pending enrollment if asked for, the mail.
fn invite(
    context: &Context,
    args: &InviteArgs,
    user: &UserName,
    deadline: Option<&Deadline>,
) -> Result<Sent, CliError> {
    let now = SystemClock.now();
    if let Some(why) = already_set_up(context, user, now)? {
        return Ok(Sent::Skipped { why });
    }
    if !args.with_qr {
        check_login_enrolls(context, user)?;
    }
    let address = match &args.mail_to {
        Some(address) => address.clone(),
        None => context.policy.mail.address_of(user.as_str()),
    };
    let issuer = context.policy.issuer();
    let pending = args
        .with_qr
        .then(|| pending_record(context, user, &issuer, now))
        .transpose()?;
    let letter = Letter {
        user: user.as_str(),
        issuer: &issuer,
        deadline: deadline.map(Deadline::day),
        key: pending.as_ref().map(|p| p.key_part()),
    };
    let message = compose(context, &letter, &address, pending.as_ref(), now)?;
    if let Some(pending) = &pending {
        store_pending(context, user, &pending.record)?;
    }
    if let Err(e) = mail::send(&context.policy.mail.sendmail, &message) {
        if let Some(pending) = &pending {
            withdraw(context, user, &pending.record);
        }
        return Err(e.into());
    }
    audit(&format!(
        "{user}: invitation mailed to {address} ({})",
        match &pending {
            Some(p) => format!(
                "QR code and key attached; pending enrollment until {}",
                p.expires
            ),
            None => "no secret in it; the next login enrolls".to_owned(),
        }
    ));
    Ok(Sent::Mailed { address })
}

/// Why `user` needs no invitation: 2FA set up, or an invitation that has not expired.
fn already_set_up(
    context: &Context,
    user: &UserName,
    now: i64,
) -> Result<Option<String>, CliError> {
    let Some(record) = context.store.load(user)? else {
        return Ok(None);
    };
    if record.is_expired_pending(now) {
        return Ok(None);
    }
    Ok(Some(match record.pending_until {
        Some(until) => format!("already invited (pending until {})", format_time(until)),
        None => format!("2FA is already set up ({})", record.state.as_str()),
    }))
}

/// The whole message: the letter's text, and the QR code attached when there is one.
fn compose(
    context: &Context,
    letter: &Letter<'_>,
    address: &str,
    pending: Option<&Pending>,
    now: i64,
) -> Result<Zeroizing<String>, CliError> {
    let text = letter.text();
    Ok(mail::compose(
        &Mail {
            to: address,
            from: context.policy.mail.from.as_deref(),
            subject: &letter.subject(),
            text: &text,
            attachment: pending.map(|p| &p.png),
        },
        now,
        &host_name(),
    )?)
}

/// This host's name, for the Message-ID.
fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

/// Without a QR code the mail promises that the next login sets 2FA up: only true when policy
/// requires 2FA of the user and enroll-at-login is on.
fn check_login_enrolls(context: &Context, user: &UserName) -> Result<(), CliError> {
    if !crate::required(context, user)? {
        return Err(CliError::InviteNotRequired {
            user: user.to_string(),
        });
    }
    if !context.policy.policy.enroll_at_login {
        return Err(CliError::InviteNoEnrollAtLogin);
    }
    Ok(())
}

/// A pending enrollment and what the mail carries of it.
struct Pending {
    record: Record,
    png: Attachment,
    grouped_key: Zeroizing<String>,
    params: String,
    expires: String,
}

impl Pending {
    fn key_part(&self) -> KeyPart<'_> {
        KeyPart {
            attachment: &self.png.filename,
            grouped_key: &self.grouped_key,
            params: self.params.clone(),
            expires: &self.expires,
        }
    }
}

fn pending_record(
    context: &Context,
    user: &UserName,
    issuer: &str,
    now: i64,
) -> Result<Pending, CliError> {
    let params = context.policy.new_params();
    let token = Token::from_policy(&context.policy, None);
    let enrollment = Enrollment::new(user, issuer, NewSecret::Fresh, params, token)?;
    let png = Matrix::encode(enrollment.uri())?.to_png(show::PNG_SCALE)?;
    let grouped_key = grouped_secret(enrollment.secret());
    let until = now.saturating_add(i64::from(context.policy.mail.pending_days) * 86_400);
    let record = enrollment.into_pending(now, until);
    Ok(Pending {
        record,
        png: Attachment {
            filename: format!("twofold-{user}.png"),
            content_type: "image/png",
            bytes: png,
        },
        grouped_key,
        params: format!(
            "time-based, {}, {} digits, every {} s",
            params.algorithm, params.digits, params.period
        ),
        expires: format_time(until),
    })
}

/// Stores the pending enrollment unless the user got one that counts meanwhile (checked
/// again under the lock); an expired pending one is replaced.
fn store_pending(context: &Context, user: &UserName, record: &Record) -> Result<(), CliError> {
    let now = SystemClock.now();
    let stored = context.store.update(user, |slot| {
        let free = slot.as_ref().is_none_or(|r| r.is_expired_pending(now));
        if free {
            *slot = Some(record.clone());
        }
        free
    })?;
    if stored {
        Ok(())
    } else {
        Err(EnrollError::AlreadyEnrolled { user: user.clone() }.into())
    }
}

/// The mail did not go out: the pending enrollment it was to carry goes too (if it is still
/// the one this run stored).
fn withdraw(context: &Context, user: &UserName, record: &Record) {
    let _ = context.store.update(user, |slot| {
        if slot.as_ref() == Some(record) {
            *slot = None;
        }
    });
}
