//! The store contract (src/store/contract.rs) against the stores that need the real system:
//! the home store (root, a real user with a real home; files are touched as that user) and the
//! PostgreSQL store through its agent (a real server, with and without this host's offline
//! copies). The file
//! store keeps the same contract in the library's unit tests.

mod common;
#[path = "../src/store/contract.rs"]
mod contract;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::agent::Agent;
use common::postgres::Postgres;
use common::sshd::TempUser;
use contract::Subject;
use pam_twofold::UserName;
use pam_twofold::record::Record;
use pam_twofold::store::settings::{Offline, StoreKind, StoreSection, check_settings};
use pam_twofold::store::{AgentStore, FileStore, HomeStore, Put, Replace, Store};

/// A directory of this (root) process, mode `mode`.
fn dir_with_mode(mode: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(mode)).unwrap();
    dir
}

/// The user's record in the home store.
fn home_record(user: &TempUser) -> PathBuf {
    user.home().join(".config/twofold/totp.toml")
}

/// Runs the contract on the home store of a new user, with `spoil` making their file
/// unreadable.
fn home_contract(spoil: fn(&Path)) {
    // Homes under a world-traversable directory, as /home is.
    let base = dir_with_mode(0o755);
    let homes = base.path().join("home");
    fs::create_dir(&homes).unwrap();
    fs::set_permissions(&homes, fs::Permissions::from_mode(0o755)).unwrap();
    let user = TempUser::with_home(&homes);
    let record = home_record(&user);
    contract::run_all(&Subject {
        open: &|| HomeStore,
        user: UserName::parse(&user.name).unwrap(),
        spoil: &|_| spoil(&record),
    });
}

#[test]
fn the_home_store_keeps_the_store_contract() {
    // Written by root into the user's existing file: still theirs, now malformed.
    home_contract(|record| fs::write(record, "version = 1\nsecret = [").unwrap());
}

#[test]
fn the_home_store_keeps_the_contract_with_a_record_others_can_read() {
    home_contract(|record| {
        fs::set_permissions(record, fs::Permissions::from_mode(0o644)).unwrap();
    });
}

/// A fleet "host": the `[store]` of a PostgreSQL store on `pg`'s socket (schema made), and
/// the agent that serves it.
struct Fleet {
    settings: StoreSection,
    _agent: Agent,
    _dir: tempfile::TempDir,
}

fn postgres_settings(pg: &Postgres) -> Fleet {
    let dir = dir_with_mode(0o700);
    let settings = StoreSection {
        kind: StoreKind::Postgres,
        url: Some(pg.socket_url()),
        agent_socket: dir.path().join("agent.sock"),
        // Never the host's keys: a key there would seal the test's rows.
        keys_dir: PathBuf::from("/nonexistent/twofold-test-keys"),
        ..StoreSection::default()
    };
    check_settings(&settings).unwrap();
    let policy = dir.path().join("twofold.toml");
    fs::write(
        &policy,
        format!(
            "[store]\nkind = \"postgres\"\nurl = \"{}\"\nkeys_dir = \"/nonexistent/twofold-test-keys\"\n",
            pg.socket_url()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(common::twofold_bin())
        .arg("--config")
        .arg(&policy)
        .args(["db", "init"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let agent = Agent::start(&policy, &settings.agent_socket, &[]);
    Fleet {
        settings,
        _agent: agent,
        _dir: dir,
    }
}

fn postgres_contract(pg: &Postgres, settings: &StoreSection) {
    contract::run_all(&Subject {
        open: &|| AgentStore::from_settings(settings),
        user: UserName::parse("daemon").unwrap(),
        spoil: &|user| {
            pg.psql(&format!(
                "UPDATE twofold_records SET record = 'version = 1' WHERE username = '{user}'"
            ));
        },
    });
}

#[test]
fn the_postgres_store_keeps_the_store_contract() {
    let pg = Postgres::start();
    postgres_contract(&pg, &postgres_settings(&pg).settings);
}

/// With `offline = "cache"` every change also refreshes this host's copy; the contract holds
/// all the same, and the copy ends as the server's record does.
#[test]
fn the_postgres_store_with_offline_copies_keeps_the_store_contract() {
    let pg = Postgres::start();
    let cache = dir_with_mode(0o700);
    let fleet = postgres_settings(&pg);
    let settings = StoreSection {
        offline: Offline::Cache,
        cache_dir: cache.path().to_owned(),
        ..fleet.settings.clone()
    };
    postgres_contract(&pg, &settings);
    let copies = FileStore::new(cache.path());
    let daemon = UserName::parse("daemon").unwrap();
    assert_eq!(
        copies.load(&daemon).unwrap(),
        None,
        "the copy outlived the record"
    );

    // A record put on the server is copied, and a replaced one replaces the copy.
    let store = AgentStore::from_settings(&settings);
    for created in [1, 2] {
        let record: Record = contract::record(&daemon, created);
        assert_eq!(
            store.put(&daemon, &record, Replace::Yes).unwrap(),
            Put::Written
        );
        assert_eq!(copies.load(&daemon).unwrap(), Some(record));
    }
}
