//! `twofold-self`: lets users manage their own 2FA the way `passwd` lets them change their
//! own password. Installed setuid root; everything it may do is on the caller's own record.
//!
//! Order of work, each step before anything that could be influenced by what it removes:
//! 1. the environment is replaced by a fixed PATH ([`sys::reset_environment`]);
//! 2. the command line is parsed (it names no user, policy or store);
//! 3. limits, umask, dumpability and signals are set ([`harden::start`]);
//! 4. the caller is the canonical account of the real uid, the policy is the fixed
//!    /etc/twofold/twofold.toml, and its `[self_service]` section must allow the action;
//! 5. a change first authenticates the caller through the `twofold-self` PAM stack
//!    (password and current code), then runs through the library ([`actions`]).
//!
//! Raw FFI lives in [`sys`] alone (it opts in there); see docs/design.md ("Self-service") and
//! SECURITY.md.
#![deny(unsafe_code)]

mod actions;
mod cli;
mod error;
mod harden;
mod machine;
mod sys;
mod terminal;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use pam_twofold::log::Level;
use pam_twofold::policy::DEFAULT_CONFIG;
use pam_twofold::self_service::{caller, permit};
use pam_twofold::user::Nss;
use pam_twofold::{AnyStore, Policy};

use crate::actions::Me;
use crate::cli::Cli;
use crate::error::SelfError;

/// The only environment PAM modules and helpers they run (unix_chkpwd) see.
const SAFE_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

fn run(cli: Cli) -> Result<(), SelfError> {
    harden::start()?;
    let uid = nix::unistd::getuid().as_raw();
    let account = caller(&Nss, uid)?;
    let policy = Policy::load(Path::new(DEFAULT_CONFIG))?;
    let store = AnyStore::from_policy(&policy).without_offline_changes();
    let me = Me {
        account,
        policy,
        store,
        json: cli.json,
    };
    let action = cli.command.action();
    if let Err(refusal) = permit(&me.policy, &me.account, action) {
        if cli.command.changes() {
            me.audit(
                Level::Warning,
                &format!("self-service {action} refused: {refusal}"),
            );
        }
        return Err(refusal.into());
    }
    actions::run(&me, cli.command)
}

fn main() -> ExitCode {
    sys::reset_environment(&[("PATH", SAFE_PATH)]);
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("twofold-self: {e}");
            if let Some(hint) = e.pam_hint() {
                eprintln!("twofold-self: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}
