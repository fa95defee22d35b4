//! The command line, in one clap definition (help text included).
#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use pam_twofold::qr::QrStyle;

#[derive(Parser, Debug)]
#[command(
    name = "twofold",
    version,
    about = "Time-based one-time passwords (TOTP) as a second factor for Linux logins",
    long_about = "Time-based one-time passwords (TOTP) as a second factor for Linux logins.\n\n\
        Enrolls users with a QR code for their authenticator app and manages their 2FA:\n\
        status, list, disable/enable, reset, unlock, backup codes, trusted hosts.\n\
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
    /// List every enrolled user, and users policy requires who have not enrolled
    List(ListArgs),
    /// Stop asking USER for a code, keeping the secret (denied instead if policy requires 2FA)
    Disable(UserArgs),
    /// Ask USER for a code again, with the same secret
    Enable(UserArgs),
    /// Remove USER's 2FA entirely (new phone): they must enroll again
    Reset(ResetArgs),
    /// Clear USER's lock-out after too many wrong codes (and, with --reset-drift, the learned
    /// clock offset of their token)
    Unlock(UnlockArgs),
    /// Import users from google-authenticator-libpam or pam_oath, keeping their secrets
    Import(ImportArgs),
    /// PostgreSQL store: create or check the schema (`db init`)
    Db(DbArgs),
    /// Copy records between this host's files and the PostgreSQL store (either way)
    Migrate(MigrateArgs),
    /// Run the local agent of fleet mode: the PostgreSQL client the module reaches over a Unix
    /// socket (as root, in the foreground; systemd's twofold-agent.service runs it)
    Agent(AgentArgs),
    /// Show how many backup codes USER has left, or replace or delete them
    Codes(CodesArgs),
    /// List or forget the hosts USER trusted ("don't ask again on this host")
    Trust(TrustArgs),
    /// Show the QR code of USER's existing enrollment again (to add a second device)
    Qr(QrArgs),
    /// Check policy, store, PAM stacks, sshd, clock and syslog before 2FA bites (exit 0 clean,
    /// 1 warnings, 2 errors); with --user, walk through one login
    #[command(long_about = CHECK_ABOUT)]
    Check(CheckArgs),
    /// Mail users how to set up 2FA (through the system's sendmail); by default the mail holds
    /// no secret and their next login enrolls them
    Invite(InviteArgs),
    /// Sealing keys: secrets are encrypted at rest under a host (or fleet) key kept apart from
    /// the records (init, status, rotate, seal-all, export, import)
    Key(KeyArgs),
    /// Write the man pages (twofold(1) and one per subcommand) and shell completions into DIR
    /// (used by scripts/install.sh)
    #[command(hide = true)]
    GenerateDocs(GenerateDocsArgs),
}

const CHECK_ABOUT: &str = "Checks, as root and without changing anything, what would make 2FA lock people \
out or let them through: the policy (it loads; its groups exist; the store's directory, records \
and key files are as the module needs them; the database answers in fleet mode, and what \
offline = \"cache\" cannot revoke), every PAM service file that uses pam_twofold (includes, \
substacks and [success=N] jumps followed: is the module reached only after a first factor? can \
a sufficient module or a jump skip it? nullok, forward_pass, split_code, config= and the \
control), sshd's effective settings (sshd -T: UsePAM, KbdInteractiveAuthentication, \
AuthenticationMethods), whether the clock is synchronized, and whether syslog is reachable.\n\n\
Each finding has a severity (error, warning, info), a file and line, what goes wrong and the fix. \
Exit status: 0 clean (information only), 1 warnings, 2 errors.\n\n\
With --user, shows what a login of USER on --service would do, step by step: the modules \
before twofold, whether a code is required and why, enrolled or enroll-at-login, trusted host, \
locked out. It reads the record without a lock and shows no secret.";

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Print JSON (fields: area, severity, kind, file, line, problem, fix) instead of text
    #[arg(long)]
    pub json: bool,
    /// The PAM configuration directory to check
    #[arg(long, value_name = "DIR", default_value = "/etc/pam.d")]
    pub pam_dir: PathBuf,
    /// sshd's configuration file (read with `sshd -T -f FILE`) [default: /etc/ssh/sshd_config]
    #[arg(long, value_name = "FILE")]
    pub sshd_config: Option<PathBuf>,
    /// Walk through one login of USER instead of checking everything
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// With --user: the PAM service of the login
    #[arg(
        long,
        value_name = "SERVICE",
        default_value = "sshd",
        requires = "user"
    )]
    pub service: String,
    /// With --user: the remote host the user connects from (for trusted hosts)
    #[arg(long, value_name = "ADDR", requires = "user")]
    pub rhost: Option<String>,
    /// With --user: the SSH public key or certificate (.pub file) the user logs in with, as
    /// sshd would report it to PAM (for ssh_key, ssh_key_type and ssh_cert_principal rules)
    #[arg(long, value_name = "FILE", requires = "user")]
    pub ssh_key: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct GenerateDocsArgs {
    /// Where to write man1/twofold.1, man1/twofold-COMMAND.1 (one per subcommand, e.g.
    /// twofold-enroll.1, twofold-import-oath.1) and completions/{twofold.bash,_twofold,twofold.fish}
    /// (new files only: existing ones are refused, not overwritten)
    pub dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct UserArgs {
    /// The account
    pub user: String,
}

#[derive(Args, Debug)]
pub struct UnlockArgs {
    /// The account
    pub user: String,
    /// Also forget the clock offset learned for USER's token (see `twofold status`)
    #[arg(long)]
    pub reset_drift: bool,
}

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// Listen here instead of [store] agent_socket (default /run/twofold/agent.sock)
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Serve this uid too, besides root (repeatable); the socket is then open to all and the
    /// peer's uid, as the kernel reports it, decides
    #[arg(long = "allow-uid", value_name = "UID")]
    pub allow_uid: Vec<u32>,
}

#[derive(Args, Debug)]
pub struct DbArgs {
    #[command(subcommand)]
    pub action: DbAction,
}

#[derive(Subcommand, Debug)]
pub enum DbAction {
    /// Create the tables and record the schema version (idempotent; the module never does)
    Init,
}

#[derive(Args, Debug)]
pub struct KeyArgs {
    #[command(subcommand)]
    pub action: KeyAction,
}

#[derive(Subcommand, Debug)]
pub enum KeyAction {
    /// Create this host's first sealing key ([store] keys_dir, default /etc/twofold/keys);
    /// records are sealed on their next write, or at once with `twofold key seal-all`
    Init,
    /// Show the keys present, which is current, and how many records each seals (and how
    /// many are clear or unreadable)
    Status {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Seal every record under the current key now (each under its user's lock)
    SealAll,
    /// Create a new key, re-seal every record under it, then delete the old key; safe while
    /// logins run; run it again to finish a rotation that was interrupted
    Rotate,
    /// Write the current key (or --key ID) to FILE, created new with mode 0600, to move it
    /// to another host of the fleet
    Export {
        /// The file to create (it must not exist)
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The key to export instead of the current one
        #[arg(long, value_name = "ID")]
        key: Option<String>,
    },
    /// Add the key in FILE (written by `twofold key export`) to this host; it becomes the
    /// current key
    Import {
        /// A key file from `twofold key export` (root's or yours, not readable by others)
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreName {
    /// The database named by [store] url
    Postgres,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("direction").required(true).args(["to", "from"])))]
pub struct MigrateArgs {
    /// Copy every record of the local files into the database
    #[arg(long, value_enum)]
    pub to: Option<StoreName>,
    /// Copy every record of the database into local files
    #[arg(long, value_enum)]
    pub from: Option<StoreName>,
    /// The local record directory [default: [store] dir, /var/lib/twofold/users]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Overwrite records that differ at the destination (kept otherwise)
    #[arg(long)]
    pub force: bool,
    /// Show what would be copied; write nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    #[command(subcommand)]
    pub source: ImportSource,
}

#[derive(Subcommand, Debug)]
pub enum ImportSource {
    /// google-authenticator-libpam files (~/.google_authenticator): secret, TOTP or HOTP,
    /// window, used codes, clock skew; scratch codes become backup codes (stored hashed)
    #[command(name = "google-authenticator")]
    GoogleAuthenticator(ImportGoogleArgs),
    /// pam_oath's users file: every `HOTP…` line becomes that user's record, with the last used
    /// counter or code refused
    Oath(ImportOathArgs),
}

#[derive(Args, Debug)]
pub struct ImportCommon {
    /// Show what would be imported per user; write nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Replace users' existing twofold records (kept otherwise)
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct ImportGoogleArgs {
    /// The account to import [default: the owner of PATH]
    #[arg(long, value_name = "USER", conflicts_with = "all")]
    pub user: Option<String>,
    /// Every user in the passwd database with a ~/.google_authenticator file
    #[arg(long)]
    pub all: bool,
    /// The file [default: ~USER/.google_authenticator]; never modified
    #[arg(value_name = "PATH", conflicts_with = "all")]
    pub path: Option<PathBuf>,
    #[command(flatten)]
    pub common: ImportCommon,
}

#[derive(Args, Debug)]
pub struct ImportOathArgs {
    /// The users file; never modified
    #[arg(value_name = "PATH", default_value = "/etc/users.oath")]
    pub path: PathBuf,
    #[command(flatten)]
    pub common: ImportCommon,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ResetArgs {
    /// The account
    pub user: String,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Args, Debug)]
pub struct CodesArgs {
    /// The account
    pub user: String,
    /// Make a new batch (the old codes stop working) and show it once
    #[arg(long, conflicts_with = "delete")]
    pub regenerate: bool,
    /// Write the new codes to FILE instead of the terminal: a new file, mode 0600 (an existing
    /// FILE is refused, and then no codes are changed)
    #[arg(long, value_name = "FILE", requires = "regenerate")]
    pub output: Option<PathBuf>,
    /// Delete all of USER's backup codes
    #[arg(long)]
    pub delete: bool,
    /// With --regenerate: do not ask before revoking the old codes (needed without a terminal)
    #[arg(long, short = 'y', requires = "regenerate")]
    pub yes: bool,
}

#[derive(Args, Debug)]
pub struct TrustArgs {
    /// The account
    pub user: String,
    /// List the trusted hosts and their expiry (the default)
    #[arg(long, conflicts_with = "clear")]
    pub list: bool,
    /// Forget every trusted host: the next login from each asks for a code again
    #[arg(long)]
    pub clear: bool,
}

#[derive(Args, Debug)]
pub struct QrArgs {
    /// The account
    pub user: String,
    /// How to draw the QR code in the terminal
    #[arg(long, value_name = "STYLE", value_parser = qr_choice(), default_value = "utf8")]
    pub qr: QrChoice,
    /// Also write the QR code as a PNG image: a new file, mode 0600 (an existing FILE is refused)
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
    /// Also write the QR code as an SVG image: a new file, mode 0600 (an existing FILE is refused)
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

/// `--qr`: one of the library's QR styles (the same words as the policy's `qr` and the
/// module's `qr=`), or `none`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QrChoice(pub Option<QrStyle>);

/// What `--help` says of each style.
fn style_help(style: QrStyle) -> &'static str {
    match style {
        QrStyle::Utf8 => "Unicode half blocks, black on white (fits an 80x24 terminal)",
        QrStyle::Utf8Light => {
            "Unicode half blocks in the terminal's own colours, for light backgrounds (no colour codes)"
        }
        QrStyle::Ascii => "'#' characters only, for terminals without Unicode (needs about 90x45)",
    }
}

/// Parses `--qr` with the library's parser; the values and their help come from
/// [`QrStyle::NAMES`], so the CLI accepts every style the policy does.
fn qr_choice() -> impl TypedValueParser<Value = QrChoice> {
    let styles = QrStyle::NAMES
        .iter()
        .map(|(name, style)| PossibleValue::new(*name).help(style_help(*style)));
    let none = PossibleValue::new("none")
        .help("No QR code in the terminal (the URI and key are still printed)");
    PossibleValuesParser::new(styles.chain([none]))
        .map(|name| QrChoice(name.parse::<QrStyle>().ok()))
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
    #[arg(long, value_name = "STYLE", value_parser = qr_choice(), default_value = "utf8")]
    pub qr: QrChoice,

    /// Also write the QR code as a PNG image: a new file, mode 0600 as it holds the secret (an
    /// existing FILE is refused)
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,

    /// Also write the QR code as an SVG image: a new file, mode 0600 as it holds the secret (an
    /// existing FILE is refused)
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,

    /// Use this existing hexadecimal secret (hardware token seed files); `-` reads it from
    /// standard input
    #[arg(long, value_name = "HEX", conflicts_with = "secret")]
    pub secret_hex: Option<String>,

    /// Counter-based codes (HOTP, RFC 4226) for hardware tokens, instead of time-based ones
    #[arg(long)]
    pub hotp: bool,

    /// With --hotp: the token's current counter (its next press shows this counter's code)
    #[arg(long, value_name = "N", requires = "hotp", default_value_t = 0)]
    pub counter: u64,

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

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("whom").required(true).multiple(true).args(["users", "group"])))]
pub struct InviteArgs {
    /// The accounts to invite (users who already have 2FA are skipped)
    #[arg(value_name = "USER")]
    pub users: Vec<String>,
    /// Invite the members of GROUP (its member list and the accounts whose primary group it is)
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// The day 2FA becomes mandatory, as the mail says [default: [policy] enroll_deadline]
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub deadline: Option<String>,
    /// Attach the QR code (PNG) and the key: a pending enrollment that the user's first code at a
    /// login turns on, expiring after [mail] pending_days. The mail then holds the secret
    #[arg(long)]
    pub with_qr: bool,
    /// Send to ADDR (one user) instead of USER@[mail] domain or the local account
    #[arg(long, value_name = "ADDR")]
    pub mail_to: Option<String>,
}
