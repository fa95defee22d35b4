//! The policy and the store it names: the policy loads (as the module loads it), its groups
//! resolve, the store's directory and records (or the database) are as the module needs them.
//! Reads only: nothing is created, locked or written.
#![forbid(unsafe_code)]

use std::path::Path;

use nix::unistd::Group;
use pam_twofold::Policy;
use pam_twofold::policy::{Offline, PolicyError, Require, StoreKind};
use pam_twofold::store::{AnyStore, Listing, StoreError};

use super::finding::{Area, Finding, Severity};

/// The policy at `path` (None when it does not load) and what was found.
pub fn check(path: &Path) -> (Option<Policy>, Vec<Finding>) {
    let policy = match Policy::load(path) {
        Ok(policy) => policy,
        Err(e) => return (None, vec![load_error(path, &e)]),
    };
    let mut out = groups(&policy, path);
    out.extend(store(&policy));
    (Some(policy), out)
}

fn load_error(path: &Path, e: &PolicyError) -> Finding {
    let (kind, line, fix) = match e {
        PolicyError::Missing { .. } => (
            "policy-missing",
            None,
            "write one (scripts/install.sh does; require = \"none\" turns 2FA off)",
        ),
        PolicyError::File(_) => (
            "policy-file",
            None,
            "chown root:root and chmod 644 the policy file",
        ),
        PolicyError::Invalid { line, .. } => (
            "policy-invalid",
            *line,
            "correct the line; doc/twofold.toml.5 lists every key",
        ),
        _ => ("policy-invalid", None, "correct the policy"),
    };
    let mut f = Finding::new(
        Area::Policy,
        Severity::Error,
        kind,
        format!("{e}; the module denies every login it is asked about"),
        fix,
    )
    .in_file(path);
    f.line = line;
    f
}

/// Each group of `require = "groups"` must resolve, or logins of users it would judge fail.
fn groups(policy: &Policy, path: &Path) -> Vec<Finding> {
    if policy.policy.require != Require::Groups {
        return Vec::new();
    }
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = Vec::new();
    for group in &policy.policy.groups {
        let problem = match Group::from_name(group) {
            Ok(Some(_)) => continue,
            Ok(None) => format!(
                "[policy] groups names '{group}', which does not exist: logins of users not in an earlier group of the list fail closed"
            ),
            Err(e) => {
                format!("cannot look up group '{group}': {e}; logins that need it fail closed")
            }
        };
        let mut f = Finding::new(
            Area::Policy,
            Severity::Error,
            "unknown-group",
            problem,
            "create the group (groupadd), or correct or remove the name",
        )
        .in_file(path);
        f.line = text
            .lines()
            .position(|l| l.contains(&format!("\"{group}\"")))
            .map(|i| i + 1);
        out.push(f);
    }
    out
}

fn store(policy: &Policy) -> Vec<Finding> {
    let store = AnyStore::from_policy(policy);
    match &store {
        AnyStore::System(files) => match files.users() {
            Ok(listing) => records(&listing),
            Err(e) => vec![store_error(&e, Some(files.dir()))],
        },
        AnyStore::Home(_) => vec![Finding::new(
            Area::Store,
            Severity::Info,
            "home-store",
            "records live in the users' homes ([store] kind = \"home\"); they are checked at each login",
            "",
        )],
        AnyStore::Postgres(db) => {
            let clear_text = crate::agent::pg::DbSettings::new(&policy.store).clear_text_tcp();
            let mut out = fleet_notes(policy, clear_text);
            if let Err(e) = db.check_connection() {
                out.push(store_error(&e, None));
            }
            if let Some(cache) = db.cache() {
                if let Err(e) = cache.users() {
                    let mut f = store_error(&e, Some(cache.dir()));
                    f.severity = Severity::Warning;
                    f.problem = format!("offline copies: {}", f.problem);
                    out.push(f);
                }
            }
            out
        }
    }
}

fn store_error(e: &StoreError, dir: Option<&Path>) -> Finding {
    let kind = match e {
        StoreError::DbUnreachable { .. } => "db-unreachable",
        StoreError::AgentDown { .. } => "agent-down",
        StoreError::AgentRefused { .. } => "agent-refused",
        StoreError::Settings { .. } => "db-settings",
        StoreError::Db { .. } => "db",
        _ => "store",
    };
    let f = Finding::new(
        Area::Store,
        Severity::Error,
        kind,
        format!("{e}; logins that need the store fail closed"),
        "do what the message says",
    );
    match dir {
        Some(dir) => f.in_file(dir),
        None => f,
    }
}

/// A record the module cannot read denies that user.
fn records(listing: &Listing) -> Vec<Finding> {
    listing
        .iter()
        .filter_map(|(user, record)| record.as_ref().err().map(|e| (user, e)))
        .map(|(user, e)| {
            Finding::new(
                Area::Store,
                Severity::Error,
                "record-unreadable",
                format!("{e}; {user} is denied at every login"),
                format!("fix the file, or `twofold reset {user}` and enroll again"),
            )
        })
        .collect()
}

/// What fleet mode's settings mean for revocation and the wire.
fn fleet_notes(policy: &Policy, clear_text: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    if policy.store.kind == StoreKind::Postgres && policy.store.offline == Offline::Cache {
        let age = policy.store.cache_max_age;
        out.push(Finding::new(
            Area::Store,
            Severity::Warning,
            "offline-cache",
            format!(
                "offline = \"cache\": while the database is unreachable, this host judges codes against its own copies of records up to cache_max_age ({age} s) old. A reset, disable, lock-out, unlock, new enrollment or new backup codes made on the database (from any host) does not reach those copies: a revoked secret (a stolen phone) keeps working here for up to {age} s after this host last read the record, whenever the database cannot be reached — and anyone on the network path can make it unreachable"
            ),
            "set offline = \"deny\" to fail closed, or shorten cache_max_age: it is how long a revoked secret can keep working on a host that cannot reach the database",
        ));
    }
    if clear_text {
        out.push(Finding::new(Area::Store, Severity::Warning, "db-clear-text", "sslmode=disable: records, TOTP keys included, travel to the database unencrypted", "use sslmode=require (TLS with the certificate and host name checked), or a Unix socket"));
    }
    out
}
