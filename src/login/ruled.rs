//! The policy's `[[rule]]` list applied to one login (src/rules/ decides; this file gathers
//! the facts). PAM_RHOST and SSH_AUTH_INFO_0 count only on `[trust] services`.
#![forbid(unsafe_code)]

use crate::policy::{Policy, PolicyError, in_any_group};
use crate::rules::{self, Action, AuthInfo, Facts};
use crate::user::Account;

use super::Request;

/// What the rules said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ruling {
    /// No rule matched: `[policy] require` decides.
    Policy,
    Matched {
        rule: String,
        action: Action,
    },
}

impl Ruling {
    pub fn rule_name(&self) -> Option<String> {
        match self {
            Self::Policy => None,
            Self::Matched { rule, .. } => Some(rule.clone()),
        }
    }
}

/// SSH_AUTH_INFO_0 as far as this service may vouch for it.
pub fn auth_info(request: &Request<'_>, policy: &Policy) -> AuthInfo {
    let network = is_network_service(request, policy);
    rules::ssh::parse(request.ssh_auth_info.filter(|_| network))
}

/// The key binding of a "trust this computer" grant for SSH_AUTH_INFO_0 text on `service`.
pub fn auth_info_text(policy: &Policy, service: &str, info: Option<&str>) -> Option<String> {
    let network = policy.trust.services.iter().any(|s| s == service);
    rules::ssh::parse(info.filter(|_| network)).binding()
}

fn is_network_service(request: &Request<'_>, policy: &Policy) -> bool {
    policy.trust.services.iter().any(|s| s == request.service)
}

/// The first matching rule for this login. A group that does not resolve fails the login.
pub fn consult(
    request: &Request<'_>,
    policy: &Policy,
    account: &Account,
    info: &AuthInfo,
) -> Result<Ruling, PolicyError> {
    if policy.rule.is_empty() {
        return Ok(Ruling::Policy);
    }
    let facts = Facts {
        service: request.service,
        user: account.name.as_str(),
        rhost: request.rhost,
        auth_info: info,
        network_service: is_network_service(request, policy),
    };
    let mut in_group = |groups: &[String]| in_any_group(account, groups);
    Ok(match rules::decide(&policy.rule, &facts, &mut in_group)? {
        Some(d) => Ruling::Matched {
            rule: d.rule_name.to_owned(),
            action: d.action,
        },
        None => Ruling::Policy,
    })
}
