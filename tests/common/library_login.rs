//! One login through the library's public path, as the module runs it, with the fakes of
//! `fake.rs` in place of the PAM application: what the hardening workers do in their own
//! processes (tests/worker) and what tests/hardening.rs does in its own process after them.
#![allow(dead_code)]

use std::path::Path;

use pam_twofold::login::{self, FirstFactor, Outcome, Request, Services};
use pam_twofold::{FileStore, ModuleArgs, Policy};

use super::fake::{Answer, FixedClock, OneUser};

/// The hardening tests' policy: records in `store`, lock-out off (every wrong code counts).
pub fn hardening_policy(store: &Path) -> Policy {
    let text = format!(
        "[store]\ndir = \"{}\"\nkeys_dir = \"{}/keys\"\n[lockout]\nmax_failures = 0\n",
        store.display(),
        store.display()
    );
    Policy::parse(&text, Path::new("hardening.toml")).unwrap()
}

/// `user` (known only to the store: see [`OneUser`]) answers `answer` at `now`, service
/// "hardening", after a password.
pub fn hardening_login(store: &Path, user: &str, answer: &str, now: i64) -> Outcome {
    let request = Request {
        user,
        service: "hardening",
        rhost: None,
        silent: true,
        first_factor: FirstFactor::Password,
        ssh_auth_info: None,
        split: None,
    };
    let policy = hardening_policy(store);
    let store = FileStore::new(store);
    login::authenticate(
        &request,
        &policy,
        &ModuleArgs::default(),
        &Services {
            store: &store,
            directory: &OneUser(user.to_owned()),
        },
        &mut Answer(answer.into()),
        &FixedClock(now),
    )
}
