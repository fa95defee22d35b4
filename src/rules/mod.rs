//! `[[rule]]` in the policy: who skips the code, who must give one, who is turned away, by
//! service, network, user, group and what sshd says the login already proved. An ordered
//! list, first match wins; no match falls back to `[policy] require`. [`decide`] is pure:
//! group membership is asked of the caller, so every path is unit-tested without NSS.
//!
//! What may be trusted: PAM_RHOST and SSH_AUTH_INFO_0 only on the services whose daemon
//! writes them itself from the connection (`[trust] services`, default sshd). A rule that
//! matches them on any other service is refused when the policy loads.
#![forbid(unsafe_code)]

pub mod cidr;
pub mod review;
pub mod ssh;
mod wire;

use serde::Deserialize;

pub use cidr::Cidr;
pub use ssh::AuthInfo;

/// What a matching rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// No code: the module steps aside as for a user policy does not require (PAM_IGNORE, or
    /// PAM_SUCCESS with `nullok`); the rest of the stack decides.
    Skip,
    /// A code, as for a user policy requires (enroll at login if the user has none).
    Require,
    /// Refused (PAM_AUTH_ERR), whatever the code.
    Deny,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::Require => "require",
            Self::Deny => "deny",
        }
    }
}

/// One `[[rule]]`. Every matcher is optional; those given must all match (within one, any
/// value may). A rule with none is refused.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    pub service: Option<Vec<String>>,
    pub from: Option<Vec<Cidr>>,
    pub user: Option<Vec<String>>,
    pub group: Option<Vec<String>>,
    pub ssh_key: Option<Vec<String>>,
    pub ssh_key_type: Option<Vec<String>>,
    pub ssh_cert_principal: Option<Vec<String>>,
    pub action: Action,
}

impl Rule {
    /// The matchers given, by key name, as (name, values are given and non-empty).
    fn matchers(&self) -> [(&'static str, Option<usize>); 7] {
        let len = |v: &Option<Vec<String>>| v.as_ref().map(Vec::len);
        [
            ("service", len(&self.service)),
            ("from", self.from.as_ref().map(Vec::len)),
            ("user", len(&self.user)),
            ("group", len(&self.group)),
            ("ssh_key", len(&self.ssh_key)),
            ("ssh_key_type", len(&self.ssh_key_type)),
            ("ssh_cert_principal", len(&self.ssh_cert_principal)),
        ]
    }

    /// Whether the rule looks at what only a network service can vouch for.
    pub fn uses_connection_facts(&self) -> bool {
        self.from.is_some()
            || self.ssh_key.is_some()
            || self.ssh_key_type.is_some()
            || self.ssh_cert_principal.is_some()
    }
}

/// What one login offers the rules. `user` is the canonical account name.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub service: &'a str,
    pub user: &'a str,
    pub rhost: Option<&'a str>,
    pub auth_info: &'a AuthInfo,
    /// The service is in `[trust] services`: its PAM_RHOST and SSH_AUTH_INFO_0 are the daemon's.
    pub network_service: bool,
}

/// The rule that decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'r> {
    pub rule_name: &'r str,
    pub action: Action,
}

/// The first rule that matches, or None (then `[policy] require` decides). `in_group` answers
/// whether the user is in one of the groups given; its error stops the walk (fail closed).
pub fn decide<'r, E>(
    rules: &'r [Rule],
    facts: &Facts<'_>,
    in_group: &mut dyn FnMut(&[String]) -> Result<bool, E>,
) -> Result<Option<Decision<'r>>, E> {
    for rule in rules {
        if matches(rule, facts, in_group)? {
            return Ok(Some(Decision {
                rule_name: &rule.name,
                action: rule.action,
            }));
        }
    }
    Ok(None)
}

fn matches<E>(
    rule: &Rule,
    facts: &Facts<'_>,
    in_group: &mut dyn FnMut(&[String]) -> Result<bool, E>,
) -> Result<bool, E> {
    // Malformed auth info is a sign something in front of twofold is not what it seems:
    // it never lets anyone skip.
    if rule.action == Action::Skip && matches!(facts.auth_info, AuthInfo::Malformed(_)) {
        return Ok(false);
    }
    let listed = |list: &Option<Vec<String>>, value: &str| {
        list.as_ref().is_none_or(|l| l.iter().any(|v| v == value))
    };
    let keys = facts.auth_info.keys();
    let any_key = |list: &Option<Vec<String>>, has: &dyn Fn(&ssh::ProvenKey, &str) -> bool| {
        list.as_ref().is_none_or(|l| {
            facts.network_service && keys.iter().any(|k| l.iter().any(|v| has(k, v)))
        })
    };
    let plain = listed(&rule.service, facts.service)
        && listed(&rule.user, facts.user)
        && from_matches(rule, facts)
        && any_key(&rule.ssh_key, &|k, v| k.fingerprint == v)
        && any_key(&rule.ssh_key_type, &|k, v| {
            k.key_type == v || k.plain_type == v
        })
        && any_key(&rule.ssh_cert_principal, &|k, v| {
            k.certificate
                .as_ref()
                .is_some_and(|c| c.principals.iter().any(|p| p == v))
        });
    match (&rule.group, plain) {
        (Some(groups), true) => in_group(groups),
        (_, plain) => Ok(plain),
    }
}

fn from_matches(rule: &Rule, facts: &Facts<'_>) -> bool {
    let Some(ranges) = &rule.from else {
        return true;
    };
    let peer = facts
        .rhost
        .filter(|_| facts.network_service)
        .and_then(cidr::parse_peer);
    peer.is_some_and(|addr| ranges.iter().any(|r| r.contains(addr)))
}

/// Whether `fingerprint` is written as `ssh-keygen -lf` prints a SHA256 one.
fn is_sha256_fingerprint(fingerprint: &str) -> bool {
    fingerprint.strip_prefix("SHA256:").is_some_and(|b64| {
        b64.len() == 43
            && b64
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    })
}

/// The rules as the policy may hold them; the message names the rule and the fix.
/// `network_services` is `[trust] services`.
pub fn check(rules: &[Rule], network_services: &[String]) -> Result<(), String> {
    for (n, rule) in rules.iter().enumerate() {
        check_one(rule, network_services).map_err(|m| format!("[[rule]] #{} {m}", n + 1))?;
        if rules[..n].iter().any(|r| r.name == rule.name) {
            return Err(format!(
                "[[rule]] #{} name \"{}\" is used twice: logs and `twofold check` must tell rules apart",
                n + 1,
                rule.name
            ));
        }
    }
    Ok(())
}

fn check_one(rule: &Rule, network_services: &[String]) -> Result<(), String> {
    let printable = |s: &str| !s.is_empty() && !s.chars().any(char::is_control);
    if !printable(&rule.name) || rule.name.len() > 64 {
        return Err("needs a name (1 to 64 printable characters)".into());
    }
    let name = &rule.name;
    let given = rule.matchers();
    if given.iter().all(|(_, n)| n.is_none()) {
        return Err(format!(
            "\"{name}\" has no matcher, so it would match every login: give service, from, user, group, ssh_key, ssh_key_type or ssh_cert_principal"
        ));
    }
    if let Some((key, _)) = given.iter().find(|(_, n)| *n == Some(0)) {
        return Err(format!(
            "\"{name}\" {key} = [] matches nothing: list values or remove the key"
        ));
    }
    let texts = [
        &rule.service,
        &rule.user,
        &rule.group,
        &rule.ssh_key_type,
        &rule.ssh_cert_principal,
    ];
    if texts
        .iter()
        .filter_map(|l| l.as_ref())
        .flatten()
        .any(|v| !printable(v))
    {
        return Err(format!(
            "\"{name}\" has an empty value or control characters"
        ));
    }
    if let Some(bad) = rule
        .ssh_key
        .iter()
        .flatten()
        .find(|k| !is_sha256_fingerprint(k))
    {
        return Err(format!(
            "\"{name}\" ssh_key \"{bad}\" is not a SHA256 fingerprint (`ssh-keygen -lf KEY.pub` prints SHA256:…, 43 characters after the colon)"
        ));
    }
    if rule.uses_connection_facts() {
        check_network_only(rule, network_services)?;
    }
    Ok(())
}

/// `from` and the ssh matchers are facts only the network daemon vouches for: the rule must
/// name its services, and each must be one whose PAM_RHOST comes from the connection.
fn check_network_only(rule: &Rule, network_services: &[String]) -> Result<(), String> {
    let name = &rule.name;
    let Some(services) = &rule.service else {
        return Err(format!(
            "\"{name}\" matches from or ssh_* without a service list: these are only true on services whose PAM_RHOST comes from the network ([trust] services = {network_services:?}); add service = [\"sshd\"]"
        ));
    };
    match services.iter().find(|s| !network_services.contains(s)) {
        Some(other) => Err(format!(
            "\"{name}\" matches from or ssh_* on service \"{other}\", whose remote host and auth info are not known to come from the network stack (any client may write them): remove it, or list it in [trust] services if its daemon sets PAM_RHOST from the connection"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
