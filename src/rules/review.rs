//! What `twofold check` says about the rules: rules that can never match, rules an earlier
//! rule shadows, and skip rules that let everyone in. Pure: the caller says which users,
//! groups and services exist.
#![forbid(unsafe_code)]

use super::{Action, Rule};

/// One thing worth an admin's look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concern {
    pub rule: String,
    /// `rule-never-matches`, `rule-shadowed`, `rule-lets-everyone-in`.
    pub kind: &'static str,
    pub problem: String,
    pub fix: &'static str,
}

/// What exists on this host, asked of the caller.
pub trait Known {
    fn user_exists(&self, user: &str) -> bool;
    fn group_exists(&self, group: &str) -> bool;
    /// Whether the PAM service exists and runs pam_twofold.
    fn service_uses_twofold(&self, service: &str) -> bool;
}

/// Key types sshd hands over (plain and certificate names).
fn known_key_type(t: &str) -> bool {
    super::ssh::known_key_type(t)
}

pub fn review(rules: &[Rule], known: &dyn Known) -> Vec<Concern> {
    let mut out = Vec::new();
    for (n, rule) in rules.iter().enumerate() {
        if let Some(why) = never_matches(rule, known) {
            out.push(Concern {
                rule: rule.name.clone(),
                kind: "rule-never-matches",
                problem: format!("rule \"{}\" can never match: {why}", rule.name),
                fix: "correct the value, or remove the rule",
            });
        } else if let Some(earlier) = rules[..n].iter().find(|e| shadows(e, rule)) {
            out.push(Concern {
                rule: rule.name.clone(),
                kind: "rule-shadowed",
                problem: format!(
                    "rule \"{}\" is shadowed: every login it matches is matched first by rule \"{}\" ({})",
                    rule.name,
                    earlier.name,
                    earlier.action.as_str()
                ),
                fix: "move the narrower rule above the wider one, or remove it",
            });
        }
        if rule.action == Action::Skip && lets_everyone_in(rule) {
            out.push(Concern {
                rule: rule.name.clone(),
                kind: "rule-lets-everyone-in",
                problem: format!(
                    "skip rule \"{}\" lets every user of {} in without a code (no user, group, network or key narrows it)",
                    rule.name,
                    rule.service.as_ref().map_or("every service".into(), |s| s.join(", "))
                ),
                fix: "narrow it with user, group, from or ssh_key, or drop pam_twofold from that service",
            });
        }
    }
    out
}

fn never_matches(rule: &Rule, known: &dyn Known) -> Option<String> {
    let all_missing = |list: &Option<Vec<String>>, exists: &dyn Fn(&str) -> bool| {
        list.as_ref().is_some_and(|l| l.iter().all(|v| !exists(v)))
    };
    if all_missing(&rule.service, &|s| known.service_uses_twofold(s)) {
        return Some("none of its services runs pam_twofold".into());
    }
    if all_missing(&rule.user, &|u| known.user_exists(u)) {
        return Some("none of its users exists".into());
    }
    if all_missing(&rule.group, &|g| known.group_exists(g)) {
        return Some("none of its groups exists (logins it is asked about fail closed)".into());
    }
    if all_missing(&rule.ssh_key_type, &known_key_type) {
        return Some(
            "sshd names no key type so (ssh-ed25519, sk-ssh-ed25519@openssh.com, ...)".into(),
        );
    }
    let certs_possible = rule
        .ssh_key_type
        .as_ref()
        .is_none_or(|l| l.iter().any(|t| t.contains("-cert-v01@")));
    if rule.ssh_cert_principal.is_some() && !certs_possible {
        return Some(
            "ssh_cert_principal needs a certificate, and its ssh_key_type lists plain keys only"
                .into(),
        );
    }
    None
}

/// Whether `earlier` matches every login `later` matches: each matcher of `earlier` is
/// absent, or holds every value `later` allows (which is then listed, never "any").
fn shadows(earlier: &Rule, later: &Rule) -> bool {
    let covers = |e: &Option<Vec<String>>, l: &Option<Vec<String>>| match (e, l) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(e), Some(l)) => l.iter().all(|v| e.contains(v)),
    };
    let from = match (&earlier.from, &later.from) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(e), Some(l)) => l.iter().all(|r| e.iter().any(|w| w.covers(r))),
    };
    // Malformed auth info stops a skip rule and no other: an earlier skip rule leaves those
    // logins to a later rule of another action.
    let malformed_too = earlier.action != Action::Skip || later.action == Action::Skip;
    from && malformed_too
        && covers(&earlier.service, &later.service)
        && covers(&earlier.user, &later.user)
        && covers(&earlier.group, &later.group)
        && covers(&earlier.ssh_key, &later.ssh_key)
        && covers(&earlier.ssh_key_type, &later.ssh_key_type)
        && covers(&earlier.ssh_cert_principal, &later.ssh_cert_principal)
}

/// A skip rule narrowed by nothing but services (or by a `from` of every address).
fn lets_everyone_in(rule: &Rule) -> bool {
    let from_open = rule
        .from
        .as_ref()
        .is_none_or(|l| l.iter().any(|r| r.is_everything()));
    from_open
        && rule.user.is_none()
        && rule.group.is_none()
        && rule.ssh_key.is_none()
        && rule.ssh_key_type.is_none()
        && rule.ssh_cert_principal.is_none()
}
