//! `twofold check --user USER [--service S] [--rhost ADDR]`: what a login of USER on S would
//! do, step by step, in the order the module decides (src/login/mod.rs). Reads only: the
//! record is loaded without a lock and the database's record without refreshing the offline
//! copy; nothing is created or written. No secret is shown: only the record's state.
#![forbid(unsafe_code)]

use std::path::Path;

use pam_twofold::clock::format_time;
use pam_twofold::policy::Require;
use pam_twofold::record::Record;
use pam_twofold::store::{AnyStore, Store, StoreError};
use pam_twofold::user::{Account, Nss};
use pam_twofold::{Clock, Policy, SystemClock};
use serde::Serialize;

use super::pam::service_stack;
use super::pam_flow::{self, any_return};
use super::pam_stack::Module;
use crate::error::CliError;

/// The walk-through: what happens, in order, and how the login ends.
#[derive(Serialize)]
pub struct Walk {
    pub user: String,
    pub service: String,
    pub rhost: Option<String>,
    pub steps: Vec<String>,
    pub outcome: String,
}

pub struct Request<'a> {
    pub user: &'a str,
    pub service: &'a str,
    pub rhost: Option<&'a str>,
    pub pam_dir: &'a Path,
    /// sshd proves a key before PAM (for service sshd).
    pub ssh_key_first: bool,
    /// What sshd would put in SSH_AUTH_INFO_0 (from --ssh-key).
    pub ssh_auth_info: Option<&'a str>,
}

pub fn walk(policy: &Policy, request: &Request<'_>) -> Walk {
    let mut steps = Vec::new();
    let outcome = decide(policy, request, &mut steps);
    Walk {
        user: request.user.to_owned(),
        service: request.service.to_owned(),
        rhost: request.rhost.map(str::to_owned),
        steps,
        outcome,
    }
}

fn decide(policy: &Policy, request: &Request<'_>, steps: &mut Vec<String>) -> String {
    let account = match Account::resolve(&Nss, request.user) {
        Ok(account) => account,
        Err(e) => return format!("denied by pam_twofold: {e}"),
    };
    if account.name.as_str() != request.user {
        steps.push(format!(
            "'{}' is an alias of the account '{}': the record is {}'s",
            request.user, account.name, account.name
        ));
    }
    let Some(first_factor) = stack_steps(request, steps) else {
        return format!(
            "no code asked: the {} stack does not use pam_twofold",
            request.service
        );
    };
    let who = (request.user, request.service, request.rhost);
    let by_rule = match super::rules::walk(policy, who, request.ssh_auth_info, &account, steps) {
        Ok(by_rule) => by_rule,
        Err(end) => return end,
    };
    let record = match load(policy, &account) {
        Ok(record) => record,
        Err(e) => return format!("denied (fail closed): the store cannot be read: {e}"),
    };
    match record {
        Some(record) if record.is_enabled() => enrolled(policy, request, &record, steps),
        other => not_enrolled(
            policy,
            (&account, by_rule),
            other.is_some(),
            first_factor,
            steps,
        ),
    }
}

/// The modules before twofold; returns whether a first factor is proven before it (None:
/// the service does not use twofold).
fn stack_steps(request: &Request<'_>, steps: &mut Vec<String>) -> Option<bool> {
    let stack = service_stack(request.pam_dir, request.service);
    let modules = stack.modules();
    let target: &Module = modules
        .iter()
        .find(|m| m.is_twofold() && !m.has_arg("split_code"))?;
    let before: Vec<String> = modules
        .iter()
        .take_while(|m| m.at != target.at)
        .map(|m| format!("{} {} ({})", m.control, m.path, m.at))
        .collect();
    if request.ssh_key_first {
        steps.push("sshd checks the ssh key first (AuthenticationMethods), then runs PAM through keyboard-interactive".into());
    }
    match before.is_empty() {
        true => steps.push(format!(
            "no auth module runs before pam_twofold ({})",
            target.at
        )),
        false => steps.push(format!(
            "before pam_twofold ({}), PAM runs: {}",
            target.at,
            before.join("; ")
        )),
    }
    let (paths, _) = pam_flow::explore(
        &stack.entries,
        &target.at,
        request.ssh_key_first,
        &any_return,
    );
    let proven = !paths.arrivals.is_empty() && paths.arrivals.iter().all(|a| a.first_factor_ok);
    Some(proven)
}

/// The record, read as the module reads it, without a lock or any write.
fn load(policy: &Policy, account: &Account) -> Result<Option<Record>, StoreError> {
    match AnyStore::from_policy(policy) {
        AnyStore::Postgres(db) => db.peek(&account.name),
        store => store.load(&account.name),
    }
}

fn why_required(policy: &Policy) -> String {
    match policy.policy.require {
        Require::All => "policy requires 2FA of every user (require = \"all\")".into(),
        Require::Groups => format!(
            "the user is in one of the policy's groups ({})",
            policy.policy.groups.join(", ")
        ),
        Require::None => "policy requires 2FA of nobody (require = \"none\")".into(),
    }
}

fn not_enrolled(
    policy: &Policy,
    (account, by_rule): (&Account, bool),
    disabled: bool,
    first_factor: bool,
    steps: &mut Vec<String>,
) -> String {
    steps.push(if disabled {
        "the user's 2FA is disabled (the secret is kept)".into()
    } else {
        "the user has not enrolled".to_owned()
    });
    let required = match policy.requires_2fa(account) {
        Ok(required) => required || by_rule,
        Err(e) => return format!("denied (fail closed): {e}"),
    };
    if !required {
        steps.push(format!(
            "a code is not required: {} does not require this user",
            if policy.policy.require == Require::None {
                "policy"
            } else {
                "no policy group"
            }
        ));
        return "pam_twofold asks nothing (PAM_IGNORE, or PAM_SUCCESS with nullok): the other modules decide".into();
    }
    let why = match by_rule {
        true => "a [[rule]] with action = \"require\" matched".to_owned(),
        false => why_required(policy),
    };
    steps.push(format!("a code is required: {why}"));
    if disabled {
        return "denied: 2FA is disabled but policy requires it (`twofold enable` it, or reset and enroll)".into();
    }
    if !policy.policy.enroll_at_login {
        return "denied: not enrolled, and enroll_at_login = false (enroll with `twofold enroll`)"
            .into();
    }
    if !first_factor {
        return "denied: enroll-at-login needs a first factor before pam_twofold, and this stack has none".into();
    }
    "enroll at login: after the first factor, a QR code is shown and the first correct code turns 2FA on (backup codes shown once)".into()
}

fn enrolled(
    policy: &Policy,
    request: &Request<'_>,
    record: &Record,
    steps: &mut Vec<String>,
) -> String {
    let now = SystemClock.now();
    steps.push(format!(
        "the user is enrolled ({} codes, {} digits, {} backup codes left)",
        record.kind.as_str().to_uppercase(),
        record.digits,
        record.backup_codes_left()
    ));
    steps.push(
        "a code is asked of every enrolled user (enabled 2FA), whatever the policy requires".into(),
    );
    if let Some(until) = record.locked_at(now) {
        return format!(
            "denied: locked after too many wrong codes until {} (`twofold unlock {}` clears it)",
            format_time(until),
            request.user
        );
    }
    let host = request.rhost.filter(|h| !h.is_empty());
    match host {
        Some(host) if policy.trust.covers(request.service) => {
            let key = pam_twofold::login::ruled::auth_info_text(
                policy,
                request.service,
                request.ssh_auth_info,
            );
            if record.trusts(
                host,
                request.service,
                key.as_deref(),
                now,
                policy.trust.days,
            ) {
                return format!(
                    "no code asked: {host} is a trusted host for {} on this service",
                    request.user
                );
            }
            steps.push(format!("{host} is not a trusted host; after a good code the user is offered to trust it for {} days", policy.trust.days));
        }
        Some(_) => steps.push(format!(
            "trusted hosts do not apply to service {} ([trust] days/services)",
            request.service
        )),
        None => {}
    }
    "asks for the code (\"Verification code: \"); a backup code also works".into()
}

pub fn print(walk: &Walk, json: bool) -> Result<(), CliError> {
    if json {
        let text = serde_json::to_string_pretty(walk).map_err(|e| CliError::Io {
            what: "write JSON".into(),
            source: std::io::Error::other(e),
        })?;
        return outln!("{text}");
    }
    let from = walk
        .rhost
        .as_deref()
        .map(|h| format!(" from {h}"))
        .unwrap_or_default();
    outln!("A login of {} on {}{from}:", walk.user, walk.service)?;
    for (n, step) in walk.steps.iter().enumerate() {
        outln!("  {}. {step}", n + 1)?;
    }
    outln!("  => {}", walk.outcome)
}
