//! What can stop `twofold-self`, in words for the user; each says what was (not) changed or
//! what to do next.
#![forbid(unsafe_code)]

use std::fmt;
use std::io;

use pam_twofold::enroll::EnrollError;
use pam_twofold::manage::ManageError;
use pam_twofold::policy::PolicyError;
use pam_twofold::qr::QrError;
use pam_twofold::secure_file::CreateError;
use pam_twofold::self_service::{PAM_SERVICE, Refusal};
use pam_twofold::store::StoreError;
use pam_twofold::user::AccountError;

use crate::sys::PamFailure;

#[derive(Debug)]
pub enum SelfError {
    NotSetuid,
    Harden {
        what: &'static str,
        source: nix::Error,
    },
    DropPrivileges,
    Account(AccountError),
    Policy(PolicyError),
    Refused(Refusal),
    /// The password or the code was not right, or the PAM stack refused.
    Auth(PamFailure),
    /// /etc/pam.d/twofold-self is missing: libpam would use `other` (often the password
    /// alone), so nothing is authenticated.
    NoPamService,
    NotEnrolled,
    AlreadyEnrolled,
    Manage(ManageError),
    Enroll(EnrollError),
    Store(StoreError),
    Qr(QrError),
    NotConfirmed,
    Clock,
    /// `--output` could not be created (it exists, a link, a directory you cannot write).
    Output(CreateError),
    /// The terminal failed while something had to be shown.
    Show(io::Error),
}

impl fmt::Display for SelfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotSetuid => f.write_str(
                "twofold-self is not running as root: it must be installed setuid root \
                 (scripts/install.sh does: chmod 4755, owner root), and cannot work under \
                 no_new_privs or from a nosuid mount",
            ),
            Self::Harden { what, source } => write!(f, "cannot {what}: {source}"),
            Self::DropPrivileges => f.write_str("cannot switch to your own file permissions"),
            Self::Account(e) => write!(f, "{e}"),
            Self::Policy(e) => write!(f, "{e}"),
            Self::Refused(e) => write!(f, "{e}"),
            Self::Auth(failure) => write!(
                f,
                "authentication failed ({}): nothing was changed",
                failure.text
            ),
            Self::NoPamService => write!(
                f,
                "/etc/pam.d/{PAM_SERVICE} is missing, so PAM would fall back to its `other` \
                 service (often the password without a code): nothing was changed; ask your \
                 administrator to reinstall it (scripts/install.sh or the Debian package)"
            ),
            Self::NotEnrolled => {
                f.write_str("you have no 2FA yet; `twofold-self enroll` sets it up")
            }
            Self::AlreadyEnrolled => f.write_str(
                "you already have 2FA; `twofold-self new-phone` moves it to a new phone",
            ),
            Self::Manage(ManageError::NotEnrolled { .. }) => Self::NotEnrolled.fmt(f),
            Self::Manage(e) => write!(f, "{e}"),
            Self::Enroll(EnrollError::AlreadyEnrolled { .. }) => Self::AlreadyEnrolled.fmt(f),
            Self::Enroll(e) => write!(f, "{e}"),
            Self::Store(e) => write!(f, "{e}"),
            Self::Qr(e) => write!(f, "{e}"),
            Self::NotConfirmed => f.write_str("no right code: nothing was changed"),
            Self::Clock => f.write_str(
                "the system clock is before 1970: no code can be judged; tell your administrator",
            ),
            Self::Output(e) => write!(f, "{e} (nothing was changed)"),
            Self::Show(e) => write!(f, "cannot write to the terminal: {e}"),
        }
    }
}

impl std::error::Error for SelfError {}

impl SelfError {
    /// The PAM service file, for messages about a stack that is not there.
    pub fn pam_hint(&self) -> Option<String> {
        match self {
            Self::Auth(failure) if failure.call == "pam_start" => Some(format!(
                "is /etc/pam.d/{PAM_SERVICE} installed? (scripts/install.sh installs it)"
            )),
            _ => None,
        }
    }
}

macro_rules! from {
    ($($source:ty => $variant:ident),* $(,)?) => {$(
        impl From<$source> for SelfError {
            fn from(e: $source) -> Self {
                Self::$variant(e)
            }
        }
    )*};
}

from!(
    AccountError => Account,
    PolicyError => Policy,
    Refusal => Refused,
    PamFailure => Auth,
    ManageError => Manage,
    EnrollError => Enroll,
    StoreError => Store,
    QrError => Qr,
    CreateError => Output,
);
