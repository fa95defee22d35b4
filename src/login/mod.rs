//! One login, as a plain function over three seams — [`Conversation`], [`Clock`], [`Store`] —
//! so that every path is unit-tested without PAM (see the tests below) and the login helper
//! (`src/relay/login.rs`) only translates.
//!
//! Order of work: resolve the user's record (no lock held while the user types), ask for the
//! code, then verify and record the accepted step under the user's lock, against the record as
//! it is at that moment. Two logins racing with one code: the second sees the first's step.
#![forbid(unsafe_code)]

pub mod answer;
pub mod enroll;
pub mod grace;
pub mod outcome;
pub mod pending;
pub mod ruled;
pub mod verify;

use crate::otp;
use crate::policy::{ModuleArgs, Policy};
use crate::record::{Record, State};
use crate::store::Store;
use crate::user::{Account, Directory, UserName};

pub use crate::clock::{Clock, SystemClock, format_time};
pub use crate::conversation::{Conversation, ConversationError};
pub use answer::{SplitAnswer, split_code, split_password_and_code};
pub use outcome::{EnrollFailure, Failure, Method, Outcome, Rejection, TrustChoice};

use crate::rules::Action;
use answer::obtain_code;
use ruled::Ruling;
use verify::{Checked, judge};

/// Who is logging in, to what, from where (for decisions and for the log line).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub user: &'a str,
    pub service: &'a str,
    /// PAM_RHOST: the remote host, for "trust this host". None for local logins.
    pub rhost: Option<&'a str>,
    /// PAM_SILENT: no informational or error messages to the user.
    pub silent: bool,
    /// What the stack shows of a first factor before this module ran.
    pub first_factor: FirstFactor,
    /// SSH_AUTH_INFO_0 from the PAM environment (read only on `[trust] services`).
    pub ssh_auth_info: Option<&'a str>,
    /// The code the `split_code` line took off the password, when that line ran.
    pub split: Option<&'a SplitAnswer>,
}

/// Signs that a first factor ran before twofold. A module cannot see whether earlier modules
/// succeeded (the stack must stop on a wrong password: `requisite`, or Debian's common-auth
/// jump); it can see whether one ran at all. Enroll-at-login needs one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstFactor {
    /// sshd lists an authentication method that already succeeded (SSH_AUTH_INFO_0).
    SshMethod,
    /// An earlier module (pam_unix, pam_sss, the `split_code` line) set PAM_AUTHTOK.
    Password,
    /// Nothing: twofold runs first, or alone.
    Unseen,
}

/// Backup codes left at or below which the user is reminded after using one.
const FEW_BACKUP_CODES: usize = 3;

/// The seams one login talks through: the record store and the passwd database.
pub struct Services<'a, S: Store, D: Directory> {
    pub store: &'a S,
    pub directory: &'a D,
}

/// Runs one login's second factor.
pub fn authenticate<S: Store, D: Directory>(
    request: &Request<'_>,
    policy: &Policy,
    args: &ModuleArgs,
    services: &Services<'_, S, D>,
    conversation: &mut impl Conversation,
    clock: &impl Clock,
) -> Outcome {
    authenticate_judged(request, policy, args, services, conversation, clock).outcome
}

/// How a login ended, and the `[[rule]]` that decided it (None: `[policy] require` did).
#[derive(Debug)]
pub struct Judged {
    pub rule: Option<String>,
    pub outcome: Outcome,
}

/// [`authenticate`], telling which rule decided (for the log line).
pub fn authenticate_judged<S: Store, D: Directory>(
    request: &Request<'_>,
    policy: &Policy,
    args: &ModuleArgs,
    services: &Services<'_, S, D>,
    conversation: &mut impl Conversation,
    clock: &impl Clock,
) -> Judged {
    let mut rule = None;
    let outcome = decide(
        request,
        policy,
        args,
        services,
        conversation,
        clock,
        &mut rule,
    );
    if !request.silent {
        // Best effort: the result stands whether or not the user could be told.
        if let Some(message) = outcome.user_message() {
            let seen = request.first_factor != FirstFactor::Unseen;
            let _ = match outcome.must_be_seen(seen) {
                true => conversation.explain(message),
                false => conversation.error(message),
            };
        }
        if let Outcome::Accepted {
            method: Method::Backup { left },
            ..
        } = outcome
        {
            if left <= FEW_BACKUP_CODES {
                let _ = conversation.info(&format!(
                    "Backup code accepted. {left} backup code{} left: ask your administrator for new ones.",
                    if left == 1 { "" } else { "s" }
                ));
            }
        }
    }
    Judged { rule, outcome }
}

fn decide<S: Store, D: Directory>(
    request: &Request<'_>,
    policy: &Policy,
    args: &ModuleArgs,
    services: &Services<'_, S, D>,
    conversation: &mut impl Conversation,
    clock: &impl Clock,
    decided_by: &mut Option<String>,
) -> Outcome {
    #[cfg(feature = "test-panic")]
    if request.user == "twofold-test-panic" {
        panic!("test-panic feature: a forced panic in the login path");
    }
    // Everything below is keyed on the canonical account, never on what PAM was handed.
    let account = match Account::resolve(services.directory, request.user) {
        Ok(account) => account,
        Err(e) => return Outcome::Failed(Failure::Account(e)),
    };
    // The rules come before the record: a skip or deny needs no store.
    let required_by_rule = match apply_rules(request, policy, &account, decided_by) {
        Ok(required) => required,
        Err(outcome) => return outcome,
    };
    let store = services.store;
    let record = match enabled_record(
        request,
        (policy, args),
        (&account, store, required_by_rule),
        conversation,
        clock,
    ) {
        Ok(record) => record,
        Err(outcome) => return outcome,
    };
    if let Some(outcome) = without_asking(request, policy, &record, clock) {
        return outcome;
    }
    let digits = record.digits;
    drop(record);
    let method = match ask_and_judge(
        request,
        policy,
        args,
        &account.name,
        digits,
        store,
        conversation,
        clock,
    ) {
        Ok(answered) => answered,
        Err(outcome) => return outcome,
    };
    accepted(request, policy, &account.name, method, store, conversation)
}

/// What the policy's rules say of this login: `Ok(true)` when a `require` rule matched,
/// `Ok(false)` when none did (`[policy] require` decides), or how a `skip` or `deny` ends it.
/// The deciding rule's name goes to `decided_by` for the log line.
fn apply_rules(
    request: &Request<'_>,
    policy: &Policy,
    account: &Account,
    decided_by: &mut Option<String>,
) -> Result<bool, Outcome> {
    let info = ruled::auth_info(request, policy);
    let ruling = ruled::consult(request, policy, account, &info)
        .map_err(|e| Outcome::Failed(Failure::Policy(e)))?;
    *decided_by = ruling.rule_name();
    match ruling {
        Ruling::Matched {
            rule,
            action: Action::Skip,
        } => Err(Outcome::SkippedByRule { rule }),
        Ruling::Matched {
            rule,
            action: Action::Deny,
        } => Err(Outcome::DeniedByRule { rule }),
        Ruling::Matched { .. } => Ok(true),
        Ruling::Policy => Ok(false),
    }
}

/// After a right code: a pending enrollment's welcome (backup codes), or the offer to trust
/// the computer the user connects from.
fn accepted(
    request: &Request<'_>,
    policy: &Policy,
    user: &UserName,
    (method, now, confirmed): (Method, i64, bool),
    store: &impl Store,
    conversation: &mut impl Conversation,
) -> Outcome {
    if confirmed {
        let backup_codes = pending::welcome(user, policy, store, conversation);
        return Outcome::Confirmed {
            method,
            backup_codes,
        };
    }
    let trust = match offerable_host(request, policy) {
        Some(host) => {
            let key = ruled::auth_info(request, policy).binding();
            let grant = (host, request.service, key.as_deref());
            let when = (now, policy.trust.days);
            offer_trust(user, grant, when, store, conversation)
        }
        None => TrustChoice::NotOffered,
    };
    Outcome::Accepted { method, trust }
}

/// How an enrolled user's login ends before any question: a clock before 1970, a lock-out,
/// a trusted host. None: ask for the code.
fn without_asking(
    request: &Request<'_>,
    policy: &Policy,
    record: &Record,
    clock: &impl Clock,
) -> Option<Outcome> {
    let now = clock.now();
    if now < 0 {
        return Some(Outcome::Failed(Failure::ClockBeforeEpoch { now }));
    }
    if let Some(until) = record.locked_at(now) {
        return Some(Outcome::Locked { until });
    }
    let host = trusted_host(request, policy, record, now)?;
    Some(Outcome::TrustedHost { host })
}

/// The user's record if it takes codes (enabled, or pending and not expired); otherwise how the login ends without a second factor
/// (policy decides) or because the record cannot be read (an unreadable record denies
/// everyone, required or not: it exists, so the user enrolled).
#[allow(clippy::result_large_err)]
fn enabled_record<S: Store>(
    request: &Request<'_>,
    (policy, args): (&Policy, &ModuleArgs),
    (account, store, required_by_rule): (&Account, &S, bool),
    conversation: &mut impl Conversation,
    clock: &impl Clock,
) -> Result<Record, Outcome> {
    // A pending enrollment takes codes until it expires, then counts as none.
    let now = clock.now();
    match store.load(&account.name) {
        Ok(Some(record)) if record.takes_codes_at(now) => Ok(record),
        Ok(other) => {
            let disabled = other.is_some_and(|r| r.state == State::Disabled);
            let user = (account, disabled, required_by_rule);
            let outcome =
                without_second_factor(request, policy, args, user, store, conversation, clock);
            Err(outcome)
        }
        Err(e) => Err(Outcome::Failed(Failure::Store(e))),
    }
}

/// Asks for the code (or takes the one `split_code` kept), then checks it and does the
/// bookkeeping in one step under the user's lock, on the record as it is at that moment. The
/// clock is read when the answer has arrived: a code is judged for the time it was typed,
/// not for when the prompt went out (a login left open would keep an old code valid, and a
/// slow user's right code would be refused). Returns the method, that time, and whether the
/// code confirmed a pending enrollment.
#[allow(clippy::too_many_arguments)]
fn ask_and_judge(
    request: &Request<'_>,
    policy: &Policy,
    args: &ModuleArgs,
    user: &UserName,
    digits: u8,
    store: &impl Store,
    conversation: &mut impl Conversation,
    clock: &impl Clock,
) -> Result<(Method, i64, bool), Outcome> {
    let answer = obtain_code(request, args, conversation)?;
    let answer = otp::parse_answer(&answer, digits)
        .map_err(|e| Outcome::Rejected(Rejection::Malformed(e)))?;
    let now = clock.now();
    let Ok(now_u64) = u64::try_from(now) else {
        return Err(Outcome::Failed(Failure::ClockBeforeEpoch { now }));
    };
    let checked = store.update(user, |slot| match slot.as_mut() {
        Some(record) if record.takes_codes_at(now) => {
            let pending = record.state == State::Pending;
            let checked = judge(record, &answer, now, now_u64, policy);
            let confirmed = pending && matches!(checked, Ok(Checked::Passed(_)));
            if confirmed {
                record.confirm_pending();
            }
            checked.map(|c| (c, confirmed))
        }
        _ => Ok((Checked::Refused(Rejection::RecordChanged), false)),
    });
    match checked {
        Ok(Ok((Checked::Passed(method), confirmed))) => Ok((method, now, confirmed)),
        Ok(Ok((Checked::Refused(rejection), _))) => Err(Outcome::Rejected(rejection)),
        Ok(Err(e)) => Err(Outcome::Failed(Failure::Backup(e))),
        Err(e) => Err(Outcome::Failed(Failure::Store(e))),
    }
}

/// The user has no enabled record: policy decides whether that is fine, a denial, or an
/// enrollment — which needs a first factor to have run before this module.
fn without_second_factor(
    request: &Request<'_>,
    policy: &Policy,
    args: &ModuleArgs,
    (account, disabled, required_by_rule): (&Account, bool, bool),
    store: &impl Store,
    conversation: &mut impl Conversation,
    clock: &impl Clock,
) -> Outcome {
    // Policy is consulted only here, so enrolled users cost no group lookup.
    let required = match required_by_rule {
        true => Ok(true),
        false => policy.requires_2fa(account),
    };
    match required {
        Err(e) => Outcome::Failed(Failure::Policy(e)),
        Ok(false) => Outcome::NotRequired { disabled },
        Ok(true) if disabled => Outcome::DisabledButRequired,
        Ok(true) => match policy.grace_days(clock.now()) {
            Some(days_left) => match grace::offer(request, policy, days_left, conversation) {
                grace::Choice::Later => Outcome::PutOff { days_left },
                grace::Choice::EnrollNow => {
                    must_enroll(request, policy, args, account, store, conversation, clock)
                }
            },
            None => must_enroll(request, policy, args, account, store, conversation, clock),
        },
    }
}

/// A required user without 2FA, past any deadline (or choosing to now): enroll at login, or
/// deny.
fn must_enroll(
    request: &Request<'_>,
    policy: &Policy,
    args: &ModuleArgs,
    account: &Account,
    store: &impl Store,
    conversation: &mut impl Conversation,
    clock: &impl Clock,
) -> Outcome {
    if !policy.policy.enroll_at_login {
        return Outcome::NotEnrolled;
    }
    if request.first_factor == FirstFactor::Unseen {
        return Outcome::EnrollWithoutFirstFactor;
    }
    pending::clear_expired(store, &account.name, clock.now());
    enroll::enroll(
        &account.name,
        request.silent,
        clock,
        policy,
        args,
        store,
        conversation,
    )
}

/// The remote host, when a grant earned on this very service lets it skip the code. Never in
/// the `split_code` arrangement: there the one prompt already asked for a code.
fn trusted_host(
    request: &Request<'_>,
    policy: &Policy,
    record: &Record,
    now: i64,
) -> Option<String> {
    let host = offerable_host(request, policy)?;
    let key = ruled::auth_info(request, policy).binding();
    record
        .trusts(
            host,
            request.service,
            key.as_deref(),
            now,
            policy.trust.days,
        )
        .then(|| host.to_owned())
}

/// The host "trust this host" may be offered for: a remote host, on a service whose PAM_RHOST
/// the admin trusts (`[trust] services`), outside the `split_code` arrangement.
fn offerable_host<'a>(request: &Request<'a>, policy: &Policy) -> Option<&'a str> {
    let host = request.rhost.filter(|h| !h.is_empty())?;
    (policy.trust.covers(request.service) && request.split.is_none()).then_some(host)
}

/// After a good code from a remote host: "trust this host for N days?". Whatever happens
/// here, the login itself has already passed.
fn offer_trust(
    user: &UserName,
    (host, service, key): (&str, &str, Option<&str>),
    (now, days): (i64, u32),
    store: &impl Store,
    conversation: &mut impl Conversation,
) -> TrustChoice {
    // PAM_RHOST is whatever the application passed: escaped before it reaches the terminal.
    let prompt = format!(
        "Trust the computer you are connecting from ({}) for {days} days, without asking \
         for a code? [y/N] ",
        crate::printable::printable(host)
    );
    let yes = match conversation.ask_visible(&prompt) {
        Ok(answer) => {
            let answer = String::from_utf8_lossy(&answer).trim().to_ascii_lowercase();
            answer == "y" || answer == "yes"
        }
        Err(_) => false,
    };
    if !yes {
        return TrustChoice::Declined;
    }
    let saved = store.update(user, |slot| {
        match slot.as_mut().filter(|r| r.is_enabled()) {
            Some(record) => {
                record.trust(host, service, key, now, days);
                true
            }
            None => false,
        }
    });
    match saved {
        Ok(true) => TrustChoice::Granted { days },
        Ok(false) => TrustChoice::NotSaved("the record was removed or disabled".into()),
        Err(e) => TrustChoice::NotSaved(e.to_string()),
    }
}

#[cfg(test)]
mod tests;
