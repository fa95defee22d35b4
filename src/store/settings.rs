//! The `[store]` section of the policy: which store holds the records and how to reach it,
//! and the rules those settings must meet. The policy reads and checks them here; the stores
//! are built from them ([`super::AnyStore::from_settings`]). Nothing here opens a file or a
//! connection, and nothing here knows the policy around it.
//!
//! The PostgreSQL url is the agent's business: its rules (TLS, no password in it) are checked
//! by `twofold agent` and by the CLI (src/bin/twofold/agent/url.rs), never by the module,
//! which links no database client and only needs the agent's socket.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use serde::Deserialize;

use super::sealing::Sealing;
use crate::keys::{DEFAULT_KEYS_DIR, Keyring};

/// Default place of the system store.
pub const DEFAULT_DIR: &str = "/var/lib/twofold/users";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// /var/lib/twofold/users, root-owned (the default).
    #[default]
    System,
    /// ~/.config/twofold/totp.toml, owned by each user (see src/store/home.rs for the limits).
    Home,
    /// A PostgreSQL database shared by many hosts, through the local agent (see
    /// src/store/agent.rs).
    Postgres,
}

/// What a PostgreSQL store does when the server cannot be reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Offline {
    /// Deny every login that needs the store (fail closed).
    #[default]
    Deny,
    /// Check codes against this host's copy of the user's record (see the README on replays).
    Cache,
}

/// Default place of a PostgreSQL store's local copies (`offline = "cache"`).
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/twofold/cache";

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    pub kind: StoreKind,
    pub dir: PathBuf,
    /// PostgreSQL: `postgresql://user@host:port/db?sslmode=require` or `host=… dbname=…`.
    pub url: Option<String>,
    /// PostgreSQL: the password, alone in a root-only file (never in the policy).
    pub password_file: Option<PathBuf>,
    /// PostgreSQL with TLS: a CA certificate (PEM) to trust besides the system's.
    pub ca_file: Option<PathBuf>,
    /// PostgreSQL: seconds allowed for connecting and for each statement.
    pub timeout: u32,
    /// PostgreSQL: the local agent's socket (`twofold agent`), through which the module and
    /// the CLI reach the database.
    pub agent_socket: PathBuf,
    pub offline: Offline,
    pub cache_dir: PathBuf,
    /// `offline = "cache"`: seconds after which a host's copy of a record is no longer used.
    pub cache_max_age: u32,
    /// Seal secrets at rest under the newest key in `keys_dir` (when there is one).
    pub seal: bool,
    /// The sealing keys (`twofold key`): root's, 0700, never beside the records.
    pub keys_dir: PathBuf,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            kind: StoreKind::System,
            dir: PathBuf::from(DEFAULT_DIR),
            url: None,
            password_file: None,
            ca_file: None,
            timeout: 5,
            agent_socket: PathBuf::from(super::wire::DEFAULT_SOCKET),
            offline: Offline::Deny,
            cache_dir: PathBuf::from(DEFAULT_CACHE_DIR),
            cache_max_age: 86_400,
            seal: true,
            keys_dir: PathBuf::from(DEFAULT_KEYS_DIR),
        }
    }
}

impl StoreSection {
    /// How the system and PostgreSQL stores seal (the home store never does: its files are
    /// the users' own, read with their identity, which cannot read root's keys).
    pub fn sealing(&self) -> Sealing {
        Sealing::new(Keyring::new(&self.keys_dir), self.seal)
    }
}

/// Checks the `[store]` keys beyond their types: an absolute `dir`, and for PostgreSQL a url,
/// the timeout and absolute paths (the url's own rules are the agent's). Runs when the policy
/// loads, so a typo fails closed with the file named rather than at the first login.
pub fn check_settings(store: &StoreSection) -> Result<(), String> {
    if !store.dir.is_absolute() {
        return Err("dir must be an absolute path".into());
    }
    if !store.keys_dir.is_absolute() {
        return Err("keys_dir must be an absolute path".into());
    }
    if !(60..=30 * 86_400).contains(&store.cache_max_age) {
        return Err("cache_max_age must be 60 to 2592000 seconds (30 days)".into());
    }
    if store.kind != StoreKind::Postgres {
        if store.url.is_some() || store.password_file.is_some() || store.ca_file.is_some() {
            return Err("url, password_file and ca_file apply to kind = \"postgres\" only".into());
        }
        return Ok(());
    }
    if store.url.is_none() {
        return Err(
            "kind = \"postgres\" needs a url (postgresql://user@host/db or host=… dbname=…)".into(),
        );
    }
    if !(1..=60).contains(&store.timeout) {
        return Err(format!("timeout = {} (1 to 60 seconds)", store.timeout));
    }
    for (key, path) in [
        ("password_file", store.password_file.as_deref()),
        ("ca_file", store.ca_file.as_deref()),
        ("cache_dir", Some(store.cache_dir.as_path())),
        ("agent_socket", Some(store.agent_socket.as_path())),
    ] {
        if path.is_some_and(|p| !p.is_absolute()) {
            return Err(format!("{key} must be an absolute path"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A policy file holding only a `[store]` section.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        store: StoreSection,
    }

    /// The `[store]` of `text`, if it parses and passes [`check_settings`].
    fn store(text: &str) -> Result<StoreSection, String> {
        let doc: Doc = toml::from_str(text).map_err(|e| e.to_string())?;
        check_settings(&doc.store)?;
        Ok(doc.store)
    }

    #[test]
    fn postgres_settings_are_checked() {
        let good = "[store]\nkind = \"postgres\"\nurl = \"host=/run/postgresql dbname=twofold\"";
        assert!(store(good).is_ok());
        let url = "[store]\nkind = \"postgres\"\nurl = \"postgresql://tf@db.example:5432/twofold?sslmode=require\"\npassword_file = \"/etc/twofold/db.password\"\noffline = \"cache\"";
        assert_eq!(store(url).unwrap().offline, Offline::Cache);
        for (text, complaint) in [
            ("[store]\nkind = \"postgres\"", "needs a url"),
            (
                "[store]\nkind = \"postgres\"\nurl = \"host=/h\"\nagent_socket = \"a.sock\"",
                "absolute",
            ),
            (
                "[store]\nkind = \"postgres\"\nurl = \"host=/h\"\ntimeout = 0",
                "timeout",
            ),
            (
                "[store]\nkind = \"postgres\"\nurl = \"host=/h\"\npassword_file = \"rel\"",
                "absolute",
            ),
            ("[store]\nurl = \"host=h\"", "apply to kind"),
            ("[store]\noffline = \"maybe\"", "expected `deny` or `cache`"),
        ] {
            let err = store(text).unwrap_err();
            assert!(err.contains(complaint), "{text}: {err}");
            assert!(!err.contains("secret"), "a password was echoed: {err}");
        }
    }
}
