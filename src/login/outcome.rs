//! How a login ended: the result types, the syslog wording (`Display`) and what the user is
//! told. The login helper (`src/relay/login.rs`) maps an [`Outcome`] to a PAM code.
#![forbid(unsafe_code)]

use std::fmt;

use crate::backup::BackupError;
use crate::clock::format_time;
use crate::conversation::ConversationError;
use crate::enroll::EnrollError;
use crate::log::Level;
use crate::otp::CodeInputError;
use crate::policy::PolicyError;
use crate::store::StoreError;
use crate::user::AccountError;

/// Why enrollment during a login did not finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollFailure {
    /// The application cannot show text (PAM_SILENT, or PAM_TEXT_INFO refused).
    CannotShowText(String),
    /// No right code in three tries (or the user gave up).
    NotConfirmed,
    /// Another login of the same user finished enrolling first.
    LostRace,
}

/// Which second factor passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A code from the app, for this time step.
    Totp { step: u64 },
    /// A TOTP code right for this server's own clock while an offset was learned: the offset
    /// was wrong (taught by stolen codes, or the phone's clock was fixed) and is forgotten.
    TotpDriftForgotten { step: u64, offset: i64, period: u32 },
    /// A code from a counter-based (HOTP) token, for this counter.
    Hotp { counter: u64 },
    /// A backup code, now used up; `left` remain.
    Backup { left: usize },
}

/// What happened to the "trust this host" offer after a good code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustChoice {
    NotOffered,
    Declined,
    Granted { days: u32 },
    NotSaved(String),
}

/// How the login ended. `src/relay/login.rs` maps it to a PAM code; `Display` is the syslog
/// text.
#[derive(Debug)]
pub enum Outcome {
    /// A right, fresh code: the second factor passed.
    Accepted {
        method: Method,
        trust: TrustChoice,
    },
    /// The remote host is trusted (policy `[trust] days`): no code asked.
    TrustedHost {
        host: String,
    },
    /// 2FA is not required for this user and they have none (or it is disabled).
    NotRequired {
        disabled: bool,
    },
    /// Policy requires 2FA and the user has not enrolled (and enroll-at-login is off).
    NotEnrolled,
    /// Enrolled during this login: the first code was right and counts as used.
    Enrolled {
        step: u64,
        backup_codes: usize,
    },
    /// The first right code confirmed a pending enrollment (`twofold invite --with-qr`): 2FA
    /// is on, `backup_codes` new backup codes were shown.
    Confirmed {
        method: Method,
        backup_codes: usize,
    },
    /// Before `[policy] enroll_deadline`, a required user without 2FA put the enrollment off:
    /// the login goes on without a second factor, as for a user not required.
    PutOff {
        days_left: u32,
    },
    /// Enroll-at-login did not finish; nothing was stored.
    EnrollFailed(EnrollFailure),
    /// Enroll-at-login was not started: nothing shows that a first factor ran before twofold.
    EnrollWithoutFirstFactor,
    /// Policy requires 2FA and an admin disabled the user's.
    DisabledButRequired,
    /// A `skip` rule matched: no code asked, the stack decides as for a user not required.
    SkippedByRule {
        rule: String,
    },
    /// A `deny` rule matched: refused, no code asked.
    DeniedByRule {
        rule: String,
    },
    /// Too many wrong codes: locked until this Unix time; no code asked or checked.
    Locked {
        until: i64,
    },
    Rejected(Rejection),
    /// Could not decide; fail closed.
    Failed(Failure),
    /// The application could not ask the question (no terminal, client gone).
    ConversationFailed(ConversationError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    Malformed(CodeInputError),
    /// Wrong code (or backup code); the consecutive failures so far, and the lock it caused.
    Wrong {
        failures: u32,
        locked_until: Option<i64>,
    },
    /// Wrong inside the window, but right at a clock offset within `[totp] max_drift`: `seen`
    /// such codes in a row so far (see `crate::drift`). Counts as a failure.
    DriftNoted {
        offset: i64,
        period: u32,
        seen: u8,
        failures: u32,
        locked_until: Option<i64>,
    },
    /// The code completed a run of codes at one clock offset: the offset is learned, and the
    /// code is used up but does not log in — the next code does. Codes that teach an offset
    /// are old or far-ahead codes by definition; none of them ever opens a session. Not counted
    /// (it took right codes to get here).
    DriftLearned {
        offset: i64,
        period: u32,
    },
    /// A code whose step was already used; counts as a failure too.
    Replayed {
        failures: u32,
        locked_until: Option<i64>,
    },
    /// The code that confirmed the enrollment a moment ago, typed again in the same time
    /// step: the user did nothing wrong (the next code works), so it is not counted.
    EnrollmentCode,
    /// Every step in the window is at or before the last accepted one. Not the user's fault:
    /// not counted.
    ClockBehind {
        last_step: u64,
        current_step: u64,
    },
    /// Another login locked the second factor while this user was typing.
    Locked {
        until: i64,
    },
    /// `use_first_pass`, and nothing set PAM_AUTHTOK.
    NoPasswordItem,
    /// `split_code`, and the password did not end in a code.
    NoCodeAfterPassword,
    /// The record was removed or disabled while the user was typing.
    RecordChanged,
}

#[derive(Debug)]
pub enum Failure {
    /// PAM_USER is not one canonical account (alias, unknown, lookup failed).
    Account(AccountError),
    Policy(PolicyError),
    Store(StoreError),
    Backup(BackupError),
    Enroll(EnrollError),
    /// PAM refused to store the password for the next module.
    PasswordItem(String),
    ClockBeforeEpoch {
        now: i64,
    },
}

fn failures_text(failures: u32, locked_until: Option<i64>) -> String {
    match locked_until {
        Some(until) => format!(
            "{failures} consecutive failures; second factor locked until {}",
            format_time(until)
        ),
        None => format!("{failures} consecutive failures"),
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Accepted { method, trust } => {
                match method {
                    Method::Totp { .. } => write!(f, "code accepted")?,
                    Method::TotpDriftForgotten { offset, period, .. } => write!(
                        f,
                        "code accepted at this server's time; learned token clock offset {} forgotten",
                        crate::drift::describe(*offset, *period)
                    )?,
                    Method::Hotp { counter } => {
                        write!(f, "code accepted (HOTP counter {counter})")?
                    }
                    Method::Backup { left } => write!(f, "backup code accepted ({left} left)")?,
                }
                match trust {
                    TrustChoice::NotOffered | TrustChoice::Declined => Ok(()),
                    TrustChoice::Granted { days } => {
                        write!(f, "; host trusted for {days} days")
                    }
                    TrustChoice::NotSaved(e) => write!(f, "; trusting the host failed: {e}"),
                }
            }
            Self::TrustedHost { host } => write!(f, "no code asked: host {host:?} is trusted"),
            Self::SkippedByRule { rule } => write!(f, "no code asked: rule {rule:?} skips it"),
            Self::DeniedByRule { rule } => write!(f, "denied by rule {rule:?}"),
            Self::NotRequired { disabled: false } => write!(f, "not enrolled, 2FA not required"),
            Self::NotRequired { disabled: true } => write!(f, "2FA disabled, not required"),
            Self::NotEnrolled => write!(f, "denied: 2FA required by policy but not enrolled"),
            Self::Enrolled { backup_codes, .. } => write!(
                f,
                "enrolled at login: first code accepted, 2FA activated, {backup_codes} backup codes shown"
            ),
            Self::Confirmed { backup_codes, .. } => write!(
                f,
                "pending enrollment confirmed: first code accepted, 2FA activated, {backup_codes} backup codes shown"
            ),
            Self::PutOff { days_left } => write!(
                f,
                "no second factor: 2FA required but not enrolled, enrollment put off                  ({} left before [policy] enroll_deadline)",
                crate::deadline::days_text(*days_left)
            ),
            Self::EnrollFailed(EnrollFailure::CannotShowText(why)) => write!(
                f,
                "denied: 2FA required but not enrolled, and enroll-at-login cannot show the QR code: {why}"
            ),
            Self::EnrollWithoutFirstFactor => write!(
                f,
                "denied: 2FA required but not enrolled, and enroll-at-login refused: no first factor \
                 (password module before pam_twofold, or an SSH key) was seen in this stack; put \
                 pam_twofold after the password module (and make that one stop the stack on a \
                 wrong password), or enroll the user with `twofold enroll`"
            ),
            Self::EnrollFailed(EnrollFailure::NotConfirmed) => write!(
                f,
                "denied: enroll-at-login not confirmed (no right code in 3 tries); nothing stored"
            ),
            Self::EnrollFailed(EnrollFailure::LostRace) => write!(
                f,
                "denied: another login of this user finished enrolling first; this one's secret was discarded"
            ),
            Self::DisabledButRequired => {
                write!(
                    f,
                    "denied: 2FA disabled for this user but required by policy"
                )
            }
            Self::Locked { until } | Self::Rejected(Rejection::Locked { until }) => write!(
                f,
                "denied without checking the code: second factor locked until {} (twofold unlock clears it)",
                format_time(*until)
            ),
            Self::Rejected(Rejection::Malformed(why)) => write!(f, "denied: {why}"),
            Self::Rejected(Rejection::Wrong {
                failures,
                locked_until,
            }) => write!(
                f,
                "denied: wrong code ({})",
                failures_text(*failures, *locked_until)
            ),
            Self::Rejected(Rejection::DriftNoted {
                offset,
                period,
                seen,
                failures,
                locked_until,
            }) => write!(
                f,
                "denied: wrong code, but right for a token clock {} off; {seen} of {} such codes in a row needed to learn the offset ({})",
                crate::drift::describe(*offset, *period),
                crate::policy::DRIFT_CODES_NEEDED,
                failures_text(*failures, *locked_until)
            ),
            Self::Rejected(Rejection::DriftLearned { offset, period }) => write!(
                f,
                "denied: code right for a token clock {} off; offset learned, the next code will log in",
                crate::drift::describe(*offset, *period)
            ),
            Self::Rejected(Rejection::Replayed {
                failures,
                locked_until,
            }) => write!(
                f,
                "denied: code already used (replay) ({})",
                failures_text(*failures, *locked_until)
            ),
            Self::Rejected(Rejection::EnrollmentCode) => write!(
                f,
                "denied: the code that confirmed the enrollment, used again (not counted)"
            ),
            Self::Rejected(Rejection::ClockBehind {
                last_step,
                current_step,
            }) => write!(
                f,
                "denied: system clock is behind the last accepted code (time step {current_step} < {last_step}); check NTP"
            ),
            Self::Rejected(Rejection::NoPasswordItem) => write!(
                f,
                "denied: use_first_pass, but no earlier module or the application set a password (PAM_AUTHTOK)"
            ),
            Self::Rejected(Rejection::NoCodeAfterPassword) => {
                write!(
                    f,
                    "denied: the password did not end with a verification code"
                )
            }
            Self::Rejected(Rejection::RecordChanged) => {
                write!(
                    f,
                    "denied: the record was removed or disabled during the login"
                )
            }
            Self::Failed(Failure::Account(e)) => write!(f, "denied: {e}"),
            Self::Failed(Failure::Policy(e)) => write!(f, "denied (fail closed): {e}"),
            Self::Failed(Failure::Store(e)) => write!(f, "denied (fail closed): {e}"),
            Self::Failed(Failure::Backup(e)) => write!(f, "denied (fail closed): {e}"),
            Self::Failed(Failure::Enroll(e)) => write!(f, "denied (fail closed): {e}"),
            Self::Failed(Failure::PasswordItem(e)) => {
                write!(
                    f,
                    "denied: cannot pass the password to the next module: {e}"
                )
            }
            Self::Failed(Failure::ClockBeforeEpoch { now }) => write!(
                f,
                "denied (fail closed): system clock is before 1970 ({now} s); fix the clock"
            ),
            Self::ConversationFailed(e) => write!(f, "denied: conversation failed: {}", e.0),
        }
    }
}

const LOCKED_MESSAGE: &str = "Too many wrong codes: two-factor authentication is locked for \
     this account. Try again later, or ask your administrator to unlock it.";

const ENROLLMENT_CODE_MESSAGE: &str = "This code was already used to confirm your enrollment. \
     Wait until your app shows the next code, and log in with that one.";

impl Outcome {
    pub fn log_level(&self) -> Level {
        match self {
            Self::Accepted { .. }
            | Self::TrustedHost { .. }
            | Self::NotRequired { .. }
            | Self::SkippedByRule { .. }
            | Self::Enrolled { .. }
            | Self::Confirmed { .. } => Level::Info,
            Self::DeniedByRule { .. } => Level::Notice,
            Self::PutOff { .. } => Level::Notice,
            Self::Rejected(_) | Self::NotEnrolled | Self::DisabledButRequired => Level::Notice,
            Self::EnrollFailed(EnrollFailure::CannotShowText(_)) => Level::Warning,
            Self::EnrollFailed(_) => Level::Notice,
            Self::EnrollWithoutFirstFactor => Level::Warning,
            Self::Locked { .. } | Self::ConversationFailed(_) => Level::Warning,
            Self::Failed(_) => Level::Error,
        }
    }

    /// Whether the user must see why they were denied even where the application shows
    /// text only with a prompt (sshd): locked out, cannot enroll, 2FA unavailable, the
    /// enrollment's code again. Only after a first factor, so that a stranger learns nothing
    /// about the account; the refusal to enroll without one says only "unavailable", like any
    /// failure. A plain wrong code is not: the client's next prompt tells the user enough.
    pub(super) fn must_be_seen(&self, first_factor_seen: bool) -> bool {
        match self {
            Self::EnrollWithoutFirstFactor => true,
            Self::Locked { .. }
            | Self::NotEnrolled
            | Self::DisabledButRequired
            | Self::Failed(_)
            | Self::Rejected(
                Rejection::Locked { .. }
                | Rejection::EnrollmentCode
                | Rejection::DriftLearned { .. },
            ) => first_factor_seen,
            Self::Rejected(
                Rejection::Wrong { locked_until, .. }
                | Rejection::Replayed { locked_until, .. }
                | Rejection::DriftNoted { locked_until, .. },
            ) => first_factor_seen && locked_until.is_some(),
            _ => false,
        }
    }

    /// What the user is told. Never the right code, nor how far off a wrong one was.
    pub(super) fn user_message(&self) -> Option<&'static str> {
        match self {
            // The enrollment conversation says what went wrong itself.
            Self::Accepted { .. }
            | Self::TrustedHost { .. }
            | Self::NotRequired { .. }
            | Self::SkippedByRule { .. }
            | Self::Enrolled { .. }
            | Self::Confirmed { .. }
            | Self::PutOff { .. }
            | Self::ConversationFailed(_) => None,
            // Which rule, and why, is for the log: the client learns nothing about the policy.
            Self::DeniedByRule { .. } => Some("Access denied."),
            Self::EnrollFailed(EnrollFailure::CannotShowText(_)) => Some(
                "Two-factor authentication is required for this account but is not set up, and \
                 it cannot be set up from this program. Log in from a terminal (e.g. ssh) or ask \
                 your administrator.",
            ),
            Self::EnrollFailed(_) => None,
            Self::NotEnrolled => Some(
                "Two-factor authentication is required for this account but is not set up. \
                 Ask your administrator to enroll you.",
            ),
            Self::DisabledButRequired => Some(
                "Two-factor authentication is required for this account but is turned off. \
                 Ask your administrator.",
            ),
            Self::Locked { .. } | Self::Rejected(Rejection::Locked { .. }) => Some(LOCKED_MESSAGE),
            Self::Rejected(
                Rejection::Wrong {
                    locked_until: Some(_),
                    ..
                }
                | Rejection::Replayed {
                    locked_until: Some(_),
                    ..
                }
                | Rejection::DriftNoted {
                    locked_until: Some(_),
                    ..
                },
            ) => Some(LOCKED_MESSAGE),
            Self::Rejected(Rejection::DriftLearned { .. }) => Some(
                "Your authenticator's clock is off; twofold now allows for it. Log in again with \
                 the next code it shows.",
            ),
            Self::Rejected(Rejection::EnrollmentCode) => Some(ENROLLMENT_CODE_MESSAGE),
            Self::Rejected(_) => Some("Invalid verification code."),
            Self::Failed(_) | Self::EnrollWithoutFirstFactor => Some(
                "Two-factor authentication is unavailable. Ask your administrator to check the system log.",
            ),
        }
    }
}
