//! The command line, in one clap definition (help text included).
#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "twofold",
    version,
    about = "Time-based one-time passwords (TOTP) as a second factor for Linux logins",
    long_about = "Time-based one-time passwords (TOTP) as a second factor for Linux logins.\n\n\
        Enrolls users with a QR code for their authenticator app and shows their 2FA state.\n\
        Records live in the store named by the policy (default /var/lib/twofold/users); \
        most commands must run as root."
)]
pub struct Cli {
    /// Policy file to use [default: /etc/twofold/twofold.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a secret for USER, show its QR code, and turn 2FA on once a code confirms it
    Enroll(EnrollArgs),
    /// Show USER's 2FA state (never the secret)
    Status(StatusArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum QrStyle {
    /// Unicode half blocks, black on white (fits an 80x24 terminal)
    Utf8,
    /// '#' characters only, for terminals without Unicode (needs about 90x45)
    Ascii,
    /// No QR code in the terminal (the URI and key are still printed)
    None,
}

#[derive(Args, Debug)]
pub struct EnrollArgs {
    /// The account to enroll (must exist in the passwd database)
    pub user: String,

    /// Use this existing base32 secret instead of a new one; `-` reads it from standard input
    /// (a secret on the command line is visible to other local users in the process list)
    #[arg(long, value_name = "BASE32")]
    pub secret: Option<String>,

    /// How to draw the QR code in the terminal
    #[arg(long, value_enum, default_value_t = QrStyle::Utf8)]
    pub qr: QrStyle,

    /// Also write the QR code as a PNG image (created with mode 0600: it holds the secret)
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,

    /// Also write the QR code as an SVG image (created with mode 0600: it holds the secret)
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,

    /// Turn 2FA on at once, without asking for a first code (scripts, imports)
    #[arg(long)]
    pub no_verify: bool,

    /// Replace an existing enrollment (the old secret stops working)
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The account to show
    pub user: String,

    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}
