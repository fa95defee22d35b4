//! The `[[rule]]` list, for `twofold check`: rules that can never match, shadowed rules,
//! skip rules that let everyone in (src/rules/review.rs decides; this file asks the host);
//! and, for `--user`, which rule decides the login.
#![forbid(unsafe_code)]

use std::path::Path;

use nix::unistd::{Group, User};
use pam_twofold::Policy;
use pam_twofold::login::ruled::{self, Ruling};
use pam_twofold::login::{FirstFactor, Request as LoginRequest};
use pam_twofold::rules::Action;
use pam_twofold::rules::review::{Known, review};
use pam_twofold::user::Account;

use super::finding::{Area, Finding, Severity};
use crate::error::CliError;

/// What this host has: users, groups, and the PAM services that run pam_twofold.
struct Host<'a> {
    services: &'a [String],
}

impl Known for Host<'_> {
    fn user_exists(&self, user: &str) -> bool {
        User::from_name(user).is_ok_and(|u| u.is_some())
    }
    fn group_exists(&self, group: &str) -> bool {
        Group::from_name(group).is_ok_and(|g| g.is_some())
    }
    fn service_uses_twofold(&self, service: &str) -> bool {
        self.services.iter().any(|s| s == service)
    }
}

/// Findings about the rules; `services` are the PAM services that use pam_twofold.
pub fn check(policy: &Policy, path: &Path, services: &[String]) -> Vec<Finding> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    review(&policy.rule, &Host { services })
        .into_iter()
        .map(|c| {
            let mut f = Finding::new(Area::Policy, Severity::Warning, c.kind, c.problem, c.fix)
                .in_file(path);
            f.line = text
                .lines()
                .position(|l| {
                    l.trim_start().starts_with("name") && l.contains(&format!("\"{}\"", c.rule))
                })
                .map(|i| i + 1);
            f
        })
        .collect()
}

/// For `--user`: the rule that decides, as a step; Err is the walk's end (skip, deny, an
/// error), Ok(true) when a `require` rule makes a code required.
pub fn walk(
    policy: &Policy,
    (user, service, rhost): (&str, &str, Option<&str>),
    ssh_auth_info: Option<&str>,
    account: &Account,
    steps: &mut Vec<String>,
) -> Result<bool, String> {
    let request = LoginRequest {
        user,
        service,
        rhost,
        silent: false,
        first_factor: FirstFactor::Unseen,
        ssh_auth_info,
        split: None,
    };
    let info = ruled::auth_info(&request, policy);
    if let Some(binding) = info.binding() {
        steps.push(format!("sshd proved the key(s) {binding}"));
    }
    match ruled::consult(&request, policy, account, &info) {
        Err(e) => Err(format!("denied (fail closed): {e}")),
        Ok(Ruling::Policy) if policy.rule.is_empty() => Ok(false),
        Ok(Ruling::Policy) => {
            steps.push("no [[rule]] matches: [policy] require decides".into());
            Ok(false)
        }
        Ok(Ruling::Matched { rule, action }) => {
            steps.push(format!(
                "rule \"{rule}\" matches first (action = \"{}\")",
                action.as_str()
            ));
            match action {
                Action::Skip => Err(format!(
                    "no code asked: rule \"{rule}\" skips it (PAM_IGNORE, or PAM_SUCCESS with nullok): the other modules decide"
                )),
                Action::Deny => Err(format!("denied by rule \"{rule}\"")),
                Action::Require => Ok(true),
            }
        }
    }
}

/// SSH_AUTH_INFO_0 as sshd would write it for a login with the key or certificate in `file`
/// (an OpenSSH `.pub` file: `TYPE BASE64 [comment]`).
pub fn auth_info_from_key_file(file: &Path) -> Result<String, CliError> {
    let io = |source| CliError::Io {
        what: format!("read the SSH public key {}", file.display()),
        source,
    };
    let text = std::fs::read_to_string(file).map_err(io)?;
    let mut words = text.split_whitespace();
    match (words.next(), words.next()) {
        (Some(kind), Some(b64)) => Ok(format!("publickey {kind} {b64}\n")),
        _ => Err(io(std::io::Error::other(
            "not an OpenSSH public key (TYPE BASE64 [comment]; give the .pub file)",
        ))),
    }
}
