//! `twofold`: the admin command. Each sub-command lives in its own file and calls the library;
//! nothing here reads or writes a record by itself.
#![forbid(unsafe_code)]

/// `print!` that never panics: see [`out::print`]. Evaluates to `Result<(), CliError>`.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::out::print(format_args!($($arg)*))
    };
}

/// `println!` that never panics: see [`out::print`]. Evaluates to `Result<(), CliError>`.
macro_rules! outln {
    () => {
        $crate::out::print(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::out::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!("twofold: ...")` that never panics: see [`out::warn`].
macro_rules! warn {
    ($($arg:tt)*) => {
        $crate::out::warn(format_args!($($arg)*))
    };
}

mod admin;
mod agent;
mod check;
mod cli;
mod docs;
mod enroll;
mod error;
mod fleet;
mod import;
mod invite;
mod key;
mod letter;
mod list;
mod mail;
mod out;
mod show;
mod status;
mod terminal;

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use pam_twofold::log::{self, Level};
use pam_twofold::policy::{DEFAULT_CONFIG, PolicyError};
use pam_twofold::user::{Account, AccountError, Nss};
use pam_twofold::{AnyStore, Policy, UserName};

use crate::cli::{Cli, Command};
use crate::error::CliError;

/// What every sub-command needs: the policy and the store it names.
pub struct Context {
    pub policy: Policy,
    pub store: AnyStore,
}

impl Context {
    fn load(config: Option<&Path>) -> Result<Self, CliError> {
        let policy = Policy::load(config.unwrap_or(Path::new(DEFAULT_CONFIG)))?;
        let store = AnyStore::from_policy(&policy).without_offline_changes();
        Ok(Self { policy, store })
    }
}

/// A user name from the command line, checked like the module checks it: the canonical
/// account's name, never an alias of it. A name that does not resolve at all is let through
/// (its record may outlive a deleted account, and must stay reachable for status and reset);
/// commands that create records check that the account exists themselves.
pub fn user_arg(name: &str) -> Result<UserName, CliError> {
    match Account::resolve(&Nss, name) {
        Ok(account) => Ok(account.name),
        Err(AccountError::Unknown { .. }) => {
            Ok(UserName::parse(name).map_err(|e| CliError::Account(AccountError::BadName(e)))?)
        }
        Err(e) => Err(CliError::Account(e)),
    }
}

/// Whether policy requires 2FA of `user`: an account that does not resolve cannot be judged.
pub fn required(context: &Context, user: &UserName) -> Result<bool, PolicyError> {
    match Account::resolve(&Nss, user.as_str()) {
        Ok(account) => context.policy.requires_2fa(&account),
        Err(e) => Err(PolicyError::Account(e.to_string())),
    }
}

/// Logs an admin action to syslog (authpriv) with who did it. When syslog cannot be reached
/// the admin is told, once per run: a change must not vanish from the record unnoticed.
pub fn audit(what: &str) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    let line = format!("{what}; by {}", log::actor());
    if let Err(e) = log::try_send("twofold", Level::Notice, &line) {
        if !WARNED.swap(true, Ordering::Relaxed) {
            warn!(
                "warning: syslog cannot be reached ({e}); the change was made but is not in \
                 the audit log: start the system logger (rsyslog, systemd-journald)"
            );
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    // Needs no policy: it runs at install time, before there is one.
    if let Command::GenerateDocs(args) = cli.command {
        return docs::run(args);
    }
    // Serves whatever the policy says when a request comes, and reads it again when it changes.
    if let Command::Agent(args) = cli.command {
        let config = cli.config.as_deref().unwrap_or(Path::new(DEFAULT_CONFIG));
        return agent::run(config, args);
    }
    let context = Context::load(cli.config.as_deref())?;
    match cli.command {
        Command::Enroll(args) => enroll::run(&context, args),
        Command::Status(args) => status::run(&context, args),
        Command::List(args) => list::run(&context, args),
        Command::Disable(args) => admin::disable(&context, args),
        Command::Enable(args) => admin::enable(&context, args),
        Command::Reset(args) => admin::reset(&context, args),
        Command::Unlock(args) => admin::unlock(&context, args),
        Command::Import(args) => import::run(&context, args),
        Command::Db(args) => fleet::db(&context, args),
        Command::Migrate(args) => fleet::migrate(&context, args),
        Command::Codes(args) => admin::codes(&context, args),
        Command::Trust(args) => admin::trust(&context, args),
        Command::Qr(args) => admin::qr(&context, args),
        Command::Invite(args) => invite::run(&context, args),
        Command::Key(args) => key::run(&context, args),
        Command::GenerateDocs(_) | Command::Agent(_) => {
            unreachable!("handled before the policy is loaded")
        }
        Command::Check(_) => unreachable!("handled in main: it has exit codes of its own"),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Its findings are its output, a policy that does not load among them; exit 0/1/2.
    if let Command::Check(args) = &cli.command {
        return check::run(cli.config.as_deref(), args);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            warn!("{e}");
            ExitCode::FAILURE
        }
    }
}
