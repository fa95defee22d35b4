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
mod cli;
mod docs;
mod enroll;
mod error;
mod fleet;
mod import;
mod list;
mod out;
mod show;
mod status;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use pam_twofold::log::{self, Level};
use pam_twofold::policy::DEFAULT_CONFIG;
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
        let (path, explicit) = match config {
            Some(path) => (path, true),
            None => (Path::new(DEFAULT_CONFIG), false),
        };
        let policy = Policy::load(path, explicit)?;
        let store = AnyStore::from_policy(&policy);
        Ok(Self { policy, store })
    }
}

/// A user name from the command line, checked like the module checks it.
pub fn user_arg(name: &str) -> Result<UserName, CliError> {
    UserName::parse(name).map_err(|e| CliError::BadUser {
        name: name.to_owned(),
        error: e,
    })
}

/// Logs an admin action to syslog (authpriv) with who did it.
pub fn audit(what: &str) {
    log::send(
        "twofold",
        Level::Notice,
        &format!("{what}; by {}", log::actor()),
    );
}

fn run(cli: Cli) -> Result<(), CliError> {
    // Needs no policy: it runs at install time, before there is one.
    if let Command::GenerateDocs(args) = cli.command {
        return docs::run(args);
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
        Command::GenerateDocs(_) => unreachable!("handled before the policy is loaded"),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            warn!("{e}");
            ExitCode::FAILURE
        }
    }
}
