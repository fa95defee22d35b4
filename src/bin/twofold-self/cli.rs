//! The command line of `twofold-self`. Nothing on it names a user, a policy or a store: the
//! user is the caller (real uid), the policy is /etc/twofold/twofold.toml. The only path is
//! `codes --output`, opened with the caller's own rights.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use pam_twofold::self_service::Action;

/// Manage your own two-factor authentication (2FA): set it up, move it to a new phone,
/// renew backup codes, forget trusted computers, turn it off and on. Every change first asks
/// for your password and a current code (or a backup code).
#[derive(Parser, Debug)]
#[command(name = "twofold-self", version)]
pub struct Cli {
    /// For programs (the Cockpit page): one JSON object per output line; a question is a
    /// `prompt` line, answered by one line on standard input. Same checks, same PAM stack.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show your 2FA: enrolled or not, required, backup codes left, trusted computers, locked.
    Status,
    /// Set up 2FA (when you have none): scan the QR code, confirm with the first code.
    Enroll,
    /// Move 2FA to a new phone: a new key, confirmed by its first code. The old one keeps
    /// working until then.
    NewPhone,
    /// Count your backup codes, or replace or delete them.
    Codes(CodesArgs),
    /// List the computers that may skip the code, or forget them.
    Trust(TrustArgs),
    /// Stop being asked for codes; the key is kept (not allowed where 2FA is required).
    Disable,
    /// Be asked for codes again, with the same key.
    Enable,
}

impl Command {
    pub fn action(&self) -> Action {
        match self {
            Self::Status => Action::Status,
            Self::Enroll => Action::Enroll,
            Self::NewPhone => Action::NewPhone,
            Self::Codes(_) => Action::Codes,
            Self::Trust(_) => Action::Trust,
            Self::Disable => Action::Disable,
            Self::Enable => Action::Enable,
        }
    }

    /// Whether it changes anything: those ask for the password and a code first.
    pub fn changes(&self) -> bool {
        match self {
            Self::Status => false,
            Self::Codes(args) => args.regenerate || args.delete,
            Self::Trust(args) => args.forget.is_some() || args.all,
            Self::Enroll | Self::NewPhone | Self::Disable | Self::Enable => true,
        }
    }
}

#[derive(Args, Debug)]
pub struct CodesArgs {
    /// Make new backup codes (shown once); the old ones stop working.
    #[arg(long, conflicts_with = "delete")]
    pub regenerate: bool,
    /// With --regenerate: write them into FILE, a new file created 0600 as you.
    #[arg(long, value_name = "FILE", requires = "regenerate")]
    pub output: Option<PathBuf>,
    /// Delete all your backup codes.
    #[arg(long)]
    pub delete: bool,
}

#[derive(Args, Debug)]
pub struct TrustArgs {
    /// Forget this computer (its address, as listed).
    #[arg(long, value_name = "HOST", conflicts_with = "all")]
    pub forget: Option<String>,
    /// Forget every trusted computer.
    #[arg(long)]
    pub all: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// doc/twofold-self.1 is written by hand (the setuid helper has no doc generator): it
    /// must name every command and option.
    #[test]
    fn the_man_page_names_every_command_and_option() {
        let page = include_str!("../../../doc/twofold-self.1").replace("\\-", "-");
        let cli = Cli::command();
        for sub in cli.get_subcommands() {
            assert!(page.contains(sub.get_name()), "{} missing", sub.get_name());
            for arg in sub.get_arguments().filter_map(|a| a.get_long()) {
                let option = format!("--{arg}");
                assert!(
                    page.contains(&option),
                    "{option} of {} missing",
                    sub.get_name()
                );
            }
        }
        for action in Action::ALL {
            assert!(page.contains(action.as_str()), "{action} missing");
        }
    }
}
