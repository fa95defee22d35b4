//! CLI errors: one line each, saying what went wrong and, where it helps, what to do next.
#![forbid(unsafe_code)]

use std::fmt;
use std::io;
use std::path::PathBuf;

use pam_twofold::accounts::ListError;
use pam_twofold::enroll::EnrollError;
use pam_twofold::manage::ManageError;
use pam_twofold::otp::SecretError;
use pam_twofold::policy::PolicyError;
use pam_twofold::qr::QrError;
use pam_twofold::rekey::RekeyError;
use pam_twofold::secure_file::{CreateError, OpenError, Problem};
use pam_twofold::store::StoreError;
use pam_twofold::user::AccountError;

#[derive(Debug)]
pub enum CliError {
    /// The name is not one canonical account (an alias, a shared uid, a failed lookup).
    Account(AccountError),
    /// The accounts could not be listed through NSS.
    Accounts(ListError),
    UnknownUser {
        name: String,
    },
    /// `status` of a name NSS does not know; `has_record` when a record outlived the account.
    NoSuchAccount {
        name: String,
        has_record: bool,
    },
    Policy(PolicyError),
    Store(StoreError),
    Enroll(EnrollError),
    Secret(SecretError),
    Qr(QrError),
    Io {
        what: String,
        source: io::Error,
    },
    /// An output path is already there (file, link, FIFO…); it was left alone.
    OutputExists {
        path: PathBuf,
        secret: bool,
    },
    /// A directory to write into is a link or not a directory.
    OutputNotDirectory {
        path: PathBuf,
    },
    /// Standard output failed before the key was shown: nothing was enrolled.
    KeyNotShown {
        source: io::Error,
    },
    /// Standard output failed while new backup codes were shown: they are lost.
    CodesNotShown {
        user: String,
        source: io::Error,
    },
    NoCode,
    NotConfirmed {
        tries: u32,
    },
    Clock,
    NotEnrolled {
        user: String,
    },
    NeedsConfirmation,
    Mail(crate::mail::MailError),
    /// `twofold key ...`
    Rekey(RekeyError),
    /// `--key` is not a key id.
    BadKeyId {
        id: String,
    },
    /// `--mail-to` names one address, for one user.
    MailToOne,
    Deadline(String),
    UnknownGroup {
        group: String,
    },
    /// A QR-less invitation promises enroll-at-login, which policy would not do for this user.
    InviteNotRequired {
        user: String,
    },
    InviteNoEnrollAtLogin,
    InviteIncomplete {
        failed: usize,
    },
    /// The user's enrollment is pending (`invite --with-qr`): only their first code turns it on.
    Pending {
        user: String,
    },
    NoBackupCodes,
    Unreadable {
        count: usize,
    },
    /// `list`: policy could not say whether 2FA is required of `count` users.
    RequiredUndecided {
        count: usize,
    },
    ImportIncomplete {
        failed: usize,
    },
    ImportWhom,
    NotPostgres,
    /// `twofold agent` could not listen on its socket.
    Agent {
        socket: PathBuf,
        source: std::io::Error,
    },
    MigrateIncomplete {
        failed: usize,
    },
    ImportSource {
        path: PathBuf,
        error: pam_twofold::import::ImportError,
    },
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Account(e) => write!(f, "{e}"),
            Self::Accounts(e) => write!(f, "{e}"),
            Self::NoSuchAccount {
                name,
                has_record: false,
            } => write!(f, "there is no user '{name}' in the passwd database (NSS)"),
            Self::NoSuchAccount {
                name,
                has_record: true,
            } => write!(
                f,
                "there is no user '{name}' in the passwd database (NSS), but a 2FA record is \
                 stored under that name (the account was deleted?): `twofold reset {name}` removes it"
            ),
            Self::UnknownUser { name } => write!(
                f,
                "there is no user '{name}' in the passwd database; create the account first"
            ),
            Self::Policy(e) => write!(f, "{e}"),
            Self::Store(e) => store_error(f, e),
            Self::Enroll(e) => write!(f, "{e}"),
            Self::Secret(e) => write!(f, "--secret: {e}"),
            Self::Qr(e) => write!(f, "{e}"),
            Self::Io { what, source } => write!(f, "cannot {what}: {source}"),
            Self::ImportIncomplete { failed } => write!(
                f,
                "{failed} user{} not imported (reasons above); fix the source and run again: imported users are kept",
                if *failed == 1 { "" } else { "s" }
            ),
            Self::NotPostgres => write!(
                f,
                "the policy's store is not PostgreSQL: set [store] kind = \"postgres\" and url first"
            ),
            Self::Agent { socket, source } => write!(
                f,
                "the agent cannot listen on {}: {source} (run it as root; is another agent running?)",
                socket.display()
            ),
            Self::MigrateIncomplete { failed } => write!(
                f,
                "{failed} record{} not copied (reasons above); the others were",
                if *failed == 1 { "" } else { "s" }
            ),
            Self::ImportWhom => write!(
                f,
                "say whose file to import: --user USER, a PATH owned by the user, or --all"
            ),
            Self::ImportSource { path, error } => {
                write!(f, "{}: {error}; nothing imported", path.display())
            }
            Self::OutputExists { .. }
            | Self::OutputNotDirectory { .. }
            | Self::KeyNotShown { .. }
            | Self::CodesNotShown { .. } => self.fmt_output(f),
            Self::NoCode => write!(
                f,
                "no code was entered; 2FA was not turned on (use --no-verify to skip the check)"
            ),
            Self::NotConfirmed { tries } => write!(
                f,
                "{tries} wrong codes; 2FA was not turned on. Check that the phone's clock is right and enroll again"
            ),
            Self::Clock => write!(f, "the system clock is before 1970; fix it first"),
            Self::NotEnrolled { user } => {
                write!(
                    f,
                    "{user} is not enrolled (twofold enroll {user} sets up 2FA)"
                )
            }
            Self::Mail(e) => write!(f, "{e}"),
            Self::Rekey(e) => write!(f, "{e}"),
            Self::BadKeyId { id } => write!(
                f,
                "--key {id:?} is not a key id (16 hex digits, as `twofold key status` shows)"
            ),
            Self::MailToOne => write!(
                f,
                "--mail-to names the address of one user: invite one user with it, or set [mail] domain"
            ),
            Self::Deadline(e) => write!(f, "--deadline: {e}"),
            Self::UnknownGroup { group } => write!(
                f,
                "there is no group '{group}' (or its directory is not answering): check the name with getent group {group}"
            ),
            Self::InviteNotRequired { user } => write!(
                f,
                "policy does not require 2FA for {user}, so their next login would not set it up as the mail says: \
                 add them to [policy] (require/groups), or invite with --with-qr"
            ),
            Self::InviteNoEnrollAtLogin => write!(
                f,
                "[policy] enroll_at_login is off, so the next login would not set up 2FA as the mail says: \
                 turn it on, or invite with --with-qr"
            ),
            Self::InviteIncomplete { failed } => write!(
                f,
                "{failed} invitation{} not sent (reasons above); those sent stand: run again for the others",
                if *failed == 1 { "" } else { "s" }
            ),
            Self::Pending { user } => write!(
                f,
                "{user}'s enrollment is pending (sent by twofold invite --with-qr): it turns on                  with {user}'s first code at a login; twofold reset {user} withdraws it"
            ),
            Self::NeedsConfirmation => {
                write!(
                    f,
                    "no terminal to confirm on; add --yes to do it without asking"
                )
            }
            Self::NoBackupCodes => {
                write!(
                    f,
                    "[backup_codes] count is 0 in the policy: backup codes are turned off"
                )
            }
            Self::RequiredUndecided { count } => write!(
                f,
                "could not tell whether 2FA is required for {count} user(s) (see the errors above); \
                 fix the policy: until then users without 2FA cannot log in"
            ),
            Self::Unreadable { count } => write!(
                f,
                "{count} record(s) could not be read (see the warnings above); logins of those users are denied"
            ),
        }
    }
}

impl std::error::Error for CliError {}

/// What a run without root is told instead of the store's own hint.
const NEEDS_ROOT: &str = "this command needs root: run it with sudo (sudo twofold ...); \
                          never change the store's owner or mode to make it work";

/// The store's message, except without root: there the store names this process's uid as the
/// rightful owner and suggests `chown <that uid>`, which pasted with sudo would hand every
/// secret to that user. Without root the answer is always "use sudo".
fn store_error(f: &mut fmt::Formatter<'_>, e: &StoreError) -> fmt::Result {
    let euid = nix::unistd::geteuid().as_raw();
    if euid == 0 {
        return write!(f, "{e}");
    }
    match e {
        StoreError::DirInsecure { dir: path, uid, .. }
        | StoreError::File(OpenError {
            path,
            problem: Problem::WrongOwner { uid, .. },
            ..
        }) => write!(
            f,
            "{} belongs to uid {uid} and twofold runs as uid {euid}; {NEEDS_ROOT}",
            path.display()
        ),
        StoreError::Io { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
            write!(f, "{e}; {NEEDS_ROOT}")
        }
        StoreError::PrivilegeDrop { .. } => write!(f, "{e}; {NEEDS_ROOT}"),
        _ => write!(f, "{e}"),
    }
}

impl CliError {
    /// What the CLI writes: files it creates and text that must reach the admin.
    fn fmt_output(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutputExists { path, secret } => write!(
                f,
                "{} exists: remove it or choose a new name; twofold never writes {} into an existing file",
                path.display(),
                if *secret { "secrets" } else { "anything" }
            ),
            Self::OutputNotDirectory { path } => write!(
                f,
                "{} is a symbolic link or not a directory: remove it or choose another directory",
                path.display()
            ),
            Self::KeyNotShown { source } => write!(
                f,
                "cannot show the key on standard output ({source}); 2FA was not turned on: run the command again where its output can be read"
            ),
            Self::CodesNotShown { user, source } => write!(
                f,
                "cannot show the new backup codes on standard output ({source}); they cannot be shown again: make new ones with twofold codes {user} --regenerate --output FILE"
            ),
            _ => Ok(()),
        }
    }

    /// A file or directory the CLI creates could not be; `secret` says whether it was to hold one.
    pub fn output(e: CreateError, secret: bool) -> Self {
        match e {
            CreateError::Exists { path } => Self::OutputExists { path, secret },
            CreateError::NotDirectory { path } => Self::OutputNotDirectory { path },
            e @ CreateError::Untrusted { .. } => Self::Io {
                what: e.to_string(),
                source: io::Error::from(io::ErrorKind::PermissionDenied),
            },
            CreateError::Io {
                path,
                action,
                source,
            } => Self::Io {
                what: format!("{action} {}", path.display()),
                source,
            },
        }
    }
}

impl From<PolicyError> for CliError {
    fn from(e: PolicyError) -> Self {
        Self::Policy(e)
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<EnrollError> for CliError {
    fn from(e: EnrollError) -> Self {
        match e {
            EnrollError::Store(e) => Self::Store(e),
            other => Self::Enroll(other),
        }
    }
}

impl From<RekeyError> for CliError {
    fn from(e: RekeyError) -> Self {
        Self::Rekey(e)
    }
}

impl From<ManageError> for CliError {
    fn from(e: ManageError) -> Self {
        match e {
            ManageError::NotEnrolled { user } => Self::NotEnrolled { user },
            ManageError::NoBackupCodes => Self::NoBackupCodes,
            ManageError::Pending { user } => Self::Pending { user },
            ManageError::Store(e) => Self::Store(e),
            ManageError::Backup(e) => Self::Io {
                what: "generate backup codes".into(),
                source: io::Error::other(e),
            },
        }
    }
}

impl From<QrError> for CliError {
    fn from(e: QrError) -> Self {
        Self::Qr(e)
    }
}

impl From<crate::mail::MailError> for CliError {
    fn from(e: crate::mail::MailError) -> Self {
        Self::Mail(e)
    }
}
