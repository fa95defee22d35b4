//! One login, as a plain function over three seams — [`Conversation`], [`Clock`], [`Store`] —
//! so that every path is unit-tested without PAM (see the tests below) and `src/pam.rs` only
//! translates.
//!
//! Order of work: resolve the user's record (no lock held while the user types), ask for the
//! code, then verify and record the accepted step under the user's lock, against the record as
//! it is at that moment. Two logins racing with one code: the second sees the first's step.
#![forbid(unsafe_code)]

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use crate::backup::BackupError;
use crate::drift::Observation;
use crate::enroll::EnrollError;
use crate::first_login::{self, EnrollFailure};
use crate::log::Level;
use crate::otp::{self, Answer, CodeInputError, Verdict};
use crate::policy::{FirstPass, ModuleArgs, Policy, PolicyError};
use crate::record::{Kind, Record};
use crate::store::{Store, StoreError};
use crate::user::{Account, AccountError, Directory, UserName};

/// The PAM conversation, one message per call.
pub trait Conversation {
    /// Asks a question; the answer is not echoed. The answer is wiped when dropped.
    fn ask_hidden(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, ConversationError>;
    /// Asks a question whose answer is echoed (yes/no).
    fn ask_visible(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, ConversationError>;
    fn info(&mut self, text: &str) -> Result<(), ConversationError>;
    fn error(&mut self, text: &str) -> Result<(), ConversationError>;
    /// PAM_AUTHTOK as the application or an earlier module set it (`try_first_pass`,
    /// `use_first_pass`).
    fn password_item(&mut self) -> Option<Zeroizing<Vec<u8>>>;
    /// Sets PAM_AUTHTOK for the modules after this one (`split_code`).
    fn set_password_item(&mut self, password: &[u8]) -> Result<(), ConversationError>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationError(pub String);

/// Seconds since the Unix epoch; negative if the system clock is set before 1970.
pub trait Clock {
    fn now(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
        }
    }
}

/// Who is logging in, to what, from where (for decisions and for the log line).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub user: &'a str,
    pub service: &'a str,
    /// PAM_RHOST: the remote host, for "trust this host". None for local logins.
    pub rhost: Option<&'a str>,
    /// PAM_SILENT: no informational or error messages to the user.
    pub silent: bool,
    /// What the stack shows of a first factor before this module ran.
    pub first_factor: FirstFactor,
    /// The code the `split_code` line took off the password, when that line ran.
    pub split: Option<&'a SplitAnswer>,
}

/// Signs that a first factor ran before twofold. A module cannot see whether earlier modules
/// succeeded (the stack must stop on a wrong password: `requisite`, or Debian's common-auth
/// jump); it can see whether one ran at all. Enroll-at-login needs one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstFactor {
    /// sshd lists an authentication method that already succeeded (SSH_AUTH_INFO_0).
    SshMethod,
    /// An earlier module (pam_unix, pam_sss, the `split_code` line) set PAM_AUTHTOK.
    Password,
    /// Nothing: twofold runs first, or alone.
    Unseen,
}

/// What the `split_code` line kept for the line that judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitAnswer {
    /// The code (or backup code) typed after the password.
    Code(Zeroizing<Vec<u8>>),
    /// The whole answer was the password: the user has no code to give.
    NoCode,
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

/// How the login ended. `src/pam.rs` maps it to a PAM code; `Display` is the syslog text.
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
    /// Enroll-at-login did not finish; nothing was stored.
    EnrollFailed(EnrollFailure),
    /// Enroll-at-login was not started: nothing shows that a first factor ran before twofold.
    EnrollWithoutFirstFactor,
    /// Policy requires 2FA and an admin disabled the user's.
    DisabledButRequired,
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

/// Unix time as RFC 3339 (UTC), for log lines and messages.
/// Never panics: times come from records a user may write (the home store), and humantime
/// cannot write years after 9999.
pub fn format_time(secs: i64) -> String {
    /// 9999-12-31T23:59:59Z.
    const LAST_WRITABLE: u64 = 253_402_300_799;
    match u64::try_from(secs) {
        Ok(s) if s <= LAST_WRITABLE => {
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(s)).to_string()
        }
        Ok(_) => format!("{secs} (after 9999)"),
        Err(_) => format!("{secs} (before 1970)"),
    }
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
            Self::NotRequired { disabled: false } => write!(f, "not enrolled, 2FA not required"),
            Self::NotRequired { disabled: true } => write!(f, "2FA disabled, not required"),
            Self::NotEnrolled => write!(f, "denied: 2FA required by policy but not enrolled"),
            Self::Enrolled { backup_codes, .. } => write!(
                f,
                "enrolled at login: first code accepted, 2FA activated, {backup_codes} backup codes shown"
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

impl Outcome {
    pub fn log_level(&self) -> Level {
        match self {
            Self::Accepted { .. }
            | Self::TrustedHost { .. }
            | Self::NotRequired { .. }
            | Self::Enrolled { .. } => Level::Info,
            Self::Rejected(_) | Self::NotEnrolled | Self::DisabledButRequired => Level::Notice,
            Self::EnrollFailed(EnrollFailure::CannotShowText(_)) => Level::Warning,
            Self::EnrollFailed(_) => Level::Notice,
            Self::EnrollWithoutFirstFactor => Level::Warning,
            Self::Locked { .. } | Self::ConversationFailed(_) => Level::Warning,
            Self::Failed(_) => Level::Error,
        }
    }

    /// What the user is told. Never the right code, nor how far off a wrong one was.
    fn user_message(&self) -> Option<&'static str> {
        match self {
            // The enrollment conversation says what went wrong itself.
            Self::Accepted { .. }
            | Self::TrustedHost { .. }
            | Self::NotRequired { .. }
            | Self::Enrolled { .. }
            | Self::ConversationFailed(_) => None,
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
            Self::Rejected(_) => Some("Invalid verification code."),
            Self::Failed(_) | Self::EnrollWithoutFirstFactor => Some(
                "Two-factor authentication is unavailable. Ask your administrator to check the system log.",
            ),
        }
    }
}

/// Backup codes left at or below which the user is reminded after using one.
const FEW_BACKUP_CODES: usize = 3;

/// The seams one login talks through: the record store and the passwd database.
pub struct Services<'a, S: Store, D: Directory> {
    pub store: &'a S,
    pub directory: &'a D,
}

/// Runs one login's second factor.
pub fn authenticate<S: Store, D: Directory>(
    request: &Request<'_>,
    policy: &Policy,
    args: &ModuleArgs,
    services: &Services<'_, S, D>,
    conversation: &mut impl Conversation,
    clock: &impl Clock,
) -> Outcome {
    let outcome = decide(request, policy, args, services, conversation, clock);
    if !request.silent {
        // Best effort: the result stands whether or not the user could be told.
        if let Some(message) = outcome.user_message() {
            let _ = conversation.error(message);
        }
        if let Outcome::Accepted {
            method: Method::Backup { left },
            ..
        } = outcome
        {
            if left <= FEW_BACKUP_CODES {
                let _ = conversation.info(&format!(
                    "Backup code accepted. {left} backup code{} left: ask your administrator for new ones.",
                    if left == 1 { "" } else { "s" }
                ));
            }
        }
    }
    outcome
}

/// What the check under the lock concluded.
enum Checked {
    Passed(Method),
    Refused(Rejection),
}

fn decide<S: Store, D: Directory>(
    request: &Request<'_>,
    policy: &Policy,
    args: &ModuleArgs,
    services: &Services<'_, S, D>,
    conversation: &mut impl Conversation,
    clock: &impl Clock,
) -> Outcome {
    #[cfg(feature = "test-panic")]
    if request.user == "twofold-test-panic" {
        panic!("test-panic feature: a forced panic in the login path");
    }
    // Everything below is keyed on the canonical account, never on what PAM was handed.
    let account = match Account::resolve(services.directory, request.user) {
        Ok(account) => account,
        Err(e) => return Outcome::Failed(Failure::Account(e)),
    };
    let store = services.store;
    // An unreadable record denies everyone, required or not: it exists, so the user enrolled.
    let record = match store.load(&account.name) {
        Ok(Some(record)) if record.is_enabled() => record,
        Ok(other) => {
            let disabled = other.is_some();
            return without_second_factor(
                request,
                policy,
                args,
                &account,
                disabled,
                store,
                conversation,
                clock,
            );
        }
        Err(e) => return Outcome::Failed(Failure::Store(e)),
    };
    let now = clock.now();
    let Ok(now_u64) = u64::try_from(now) else {
        return Outcome::Failed(Failure::ClockBeforeEpoch { now });
    };
    if let Some(until) = record.locked_at(now) {
        return Outcome::Locked { until };
    }
    if let Some(host) = trusted_host(request, policy, &record, now) {
        return Outcome::TrustedHost { host };
    }
    let digits = record.digits;
    drop(record);

    let answer = match obtain_code(request, args, conversation) {
        Ok(answer) => answer,
        Err(outcome) => return outcome,
    };
    let answer = match otp::parse_answer(&answer, digits) {
        Ok(parsed) => parsed,
        Err(e) => return Outcome::Rejected(Rejection::Malformed(e)),
    };
    // Check and bookkeeping in one step under the user's lock, on the record as it is now.
    let checked = store.update(&account.name, |slot| match slot.as_mut() {
        Some(record) if record.is_enabled() => judge(record, &answer, now, now_u64, policy),
        _ => Ok(Checked::Refused(Rejection::RecordChanged)),
    });
    let method = match checked {
        Ok(Ok(Checked::Passed(method))) => method,
        Ok(Ok(Checked::Refused(rejection))) => return Outcome::Rejected(rejection),
        Ok(Err(e)) => return Outcome::Failed(Failure::Backup(e)),
        Err(e) => return Outcome::Failed(Failure::Store(e)),
    };
    let trust = match offerable_host(request, policy) {
        Some(host) => offer_trust(
            &account.name,
            host,
            request.service,
            now,
            policy.trust.days,
            store,
            conversation,
        ),
        None => TrustChoice::NotOffered,
    };
    Outcome::Accepted { method, trust }
}

/// The user has no enabled record: policy decides whether that is fine, a denial, or an
/// enrollment — which needs a first factor to have run before this module.
#[allow(clippy::too_many_arguments)]
fn without_second_factor(
    request: &Request<'_>,
    policy: &Policy,
    args: &ModuleArgs,
    account: &Account,
    disabled: bool,
    store: &impl Store,
    conversation: &mut impl Conversation,
    clock: &impl Clock,
) -> Outcome {
    // Policy is consulted only here, so enrolled users cost no group lookup.
    match policy.requires_2fa(account) {
        Err(e) => Outcome::Failed(Failure::Policy(e)),
        Ok(false) => Outcome::NotRequired { disabled },
        Ok(true) if disabled => Outcome::DisabledButRequired,
        Ok(true) if !policy.policy.enroll_at_login => Outcome::NotEnrolled,
        Ok(true) if request.first_factor == FirstFactor::Unseen => {
            Outcome::EnrollWithoutFirstFactor
        }
        Ok(true) => first_login::enroll(
            &account.name,
            request.silent,
            clock.now(),
            policy,
            args,
            store,
            conversation,
        ),
    }
}

/// The remote host, when a grant earned on this very service lets it skip the code. Never in
/// the `split_code` arrangement: there the one prompt already asked for a code.
fn trusted_host(
    request: &Request<'_>,
    policy: &Policy,
    record: &Record,
    now: i64,
) -> Option<String> {
    let host = offerable_host(request, policy)?;
    record
        .trusts(host, request.service, now, policy.trust.days)
        .then(|| host.to_owned())
}

/// The host "trust this host" may be offered for: a remote host, on a service whose PAM_RHOST
/// the admin trusts (`[trust] services`), outside the `split_code` arrangement.
fn offerable_host<'a>(request: &Request<'a>, policy: &Policy) -> Option<&'a str> {
    let host = request.rhost.filter(|h| !h.is_empty())?;
    (policy.trust.covers(request.service) && request.split.is_none()).then_some(host)
}

/// Judges `answer` against the enabled `record` and does the bookkeeping (replay step, HOTP
/// counter, drift, backup codes, failures, lock-out). Runs under the user's lock.
fn judge(
    record: &mut Record,
    answer: &Answer,
    now: i64,
    now_u64: u64,
    policy: &Policy,
) -> Result<Checked, BackupError> {
    if let Some(until) = record.locked_at(now) {
        return Ok(Checked::Refused(Rejection::Locked { until }));
    }
    if record.locked_until.is_some() {
        // A lock that ran out starts a fresh count.
        record.locked_until = None;
        record.failures = 0;
    }
    let (otp_code, backup_code) = match answer {
        Answer::Totp(code) => (Some(code), None),
        Answer::Backup(code) => (None, Some(code)),
        Answer::TotpOrBackup(code) => (Some(code), Some(code)),
    };
    let mut verdict = Verdict::Wrong;
    let mut drift = Observation::Nothing;
    if let Some(code) = otp_code {
        verdict = check_code(record, code, now_u64, policy);
        if verdict == Verdict::Wrong && record.kind == Kind::Totp {
            let window = record.window.unwrap_or(policy.totp.window);
            let params = record.params();
            drift = crate::drift::observe(record, params, code, now, window, policy.totp.max_drift);
        }
    }
    if let Observation::Learned { offset, step } = drift {
        // The code is used up (a replay of it is refused), but it does not log in.
        record.last_step = Some(step);
        return Ok(Checked::Refused(Rejection::DriftLearned {
            offset,
            period: record.period,
        }));
    }
    let passed = match passed_method(record, verdict) {
        Some(method) => Some(method),
        None => match (backup_code, record.backup_codes.as_mut()) {
            (Some(code), Some(codes)) => codes.consume(code)?.then(|| Method::Backup {
                left: codes.remaining(),
            }),
            _ => None,
        },
    };
    if let Some(method) = passed {
        record.failures = 0;
        record.last_used = Some(now);
        return Ok(Checked::Passed(method));
    }
    if let Some(behind) = clock_behind(record, otp_code.is_some(), now_u64, policy) {
        return Ok(Checked::Refused(behind));
    }
    Ok(Checked::Refused(count_failure(
        record, verdict, drift, now, policy,
    )))
}

/// The method an app or token code passed with, its step or counter recorded.
fn passed_method(record: &mut Record, verdict: Verdict) -> Option<Method> {
    match verdict {
        Verdict::Accepted { step } if record.kind == Kind::Hotp => {
            record.counter = Some(step.saturating_add(1));
            Some(Method::Hotp { counter: step })
        }
        Verdict::Accepted { step } => {
            record.last_step = Some(step);
            // A code inside the window ends any run of offset codes.
            record.drift_trial = None;
            Some(Method::Totp { step })
        }
        Verdict::AcceptedAtServerTime { step } => {
            record.last_step = Some(step);
            // The token shows this server's time: the learned offset is wrong. Forget it.
            let offset = std::mem::take(&mut record.drift_steps);
            record.drift_trial = None;
            Some(Method::TotpDriftForgotten {
                step,
                offset,
                period: record.period,
            })
        }
        _ => None,
    }
}

/// Every step in the window is at or before the last accepted one: the server's clock went
/// back. Not the user's fault, so not counted.
fn clock_behind(record: &Record, had_code: bool, now: u64, policy: &Policy) -> Option<Rejection> {
    if record.kind != Kind::Totp || !had_code {
        return None;
    }
    // Codes are looked for around the learned offset and around this server's clock: the
    // clock is behind only if both windows are used up.
    let server_step = otp::time_step(now, record.period);
    let current_step = otp::shifted(server_step, record.drift_steps).max(server_step);
    let window = record.window.unwrap_or(policy.totp.window);
    let last_step = record.last_step?;
    (current_step.saturating_add(u64::from(window)) <= last_step).then_some(
        Rejection::ClockBehind {
            last_step,
            current_step,
        },
    )
}

/// One more consecutive failure, locking the second factor at the policy's limit.
fn count_failure(
    record: &mut Record,
    verdict: Verdict,
    drift: Observation,
    now: i64,
    policy: &Policy,
) -> Rejection {
    let lockout = &policy.lockout;
    record.failures = record.failures.saturating_add(1);
    if lockout.max_failures > 0 && record.failures >= lockout.max_failures {
        record.locked_until = Some(now.saturating_add(i64::from(lockout.lock_seconds)));
    }
    let (failures, locked_until) = (record.failures, record.locked_until);
    match (verdict, drift) {
        (Verdict::Replayed, _) => Rejection::Replayed {
            failures,
            locked_until,
        },
        (_, Observation::Noted { offset, seen }) => Rejection::DriftNoted {
            offset,
            period: record.period,
            seen,
            failures,
            locked_until,
        },
        _ => Rejection::Wrong {
            failures,
            locked_until,
        },
    }
}

/// Checks an app or token code against the record's counter: the time window (centred on any
/// learned clock offset) for TOTP, the look-ahead window for HOTP.
fn check_code(record: &Record, code: &str, now: u64, policy: &Policy) -> Verdict {
    match record.kind {
        Kind::Totp => otp::verify_totp_with_drift(
            &record.secret,
            record.params(),
            code,
            now,
            record.drift_steps,
            record.window.unwrap_or(policy.totp.window),
            record.last_step,
        ),
        Kind::Hotp => match otp::verify_hotp(
            &record.secret,
            record.algorithm,
            record.digits,
            code,
            record.counter.unwrap_or(0),
            record.window.unwrap_or(policy.hotp.window),
        ) {
            Some(counter) => Verdict::Accepted { step: counter },
            None => Verdict::Wrong,
        },
    }
}

/// Where the code starts in a combined answer: `password123456` (the last `digits` digits)
/// or `password1234-5678` (a backup code with its dash). The password may be empty.
pub fn split_password_and_code(combined: &[u8], digits: u8) -> Option<usize> {
    let n = combined.len();
    let all_digits = |part: &[u8]| part.iter().all(u8::is_ascii_digit);
    if n >= 9
        && all_digits(&combined[n - 9..n - 5])
        && combined[n - 5] == b'-'
        && all_digits(&combined[n - 4..])
    {
        return Some(n - 9);
    }
    let d = usize::from(digits);
    (n >= d && all_digits(&combined[n - d..])).then(|| n - d)
}

/// The answer to check: what the `split_code` line kept, or asked now.
fn obtain_code(
    request: &Request<'_>,
    args: &ModuleArgs,
    conversation: &mut impl Conversation,
) -> Result<Zeroizing<Vec<u8>>, Outcome> {
    match request.split {
        Some(SplitAnswer::Code(code)) => Ok(code.clone()),
        Some(SplitAnswer::NoCode) => Err(Outcome::Rejected(Rejection::NoCodeAfterPassword)),
        None => conversation
            .ask_hidden(args.prompt())
            .map_err(Outcome::ConversationFailed),
    }
}

/// The `split_code` line, before the password module: takes `password123456` (from the
/// prompt or PAM_AUTHTOK), hands the password on as PAM_AUTHTOK and keeps the code for the
/// line after the password module. It judges, counts and reveals nothing: every user gets
/// the same prompt, and the record is only read to know whether (and how long) a code is
/// expected at the end.
pub fn split_code<S: Store, D: Directory>(
    user: &str,
    args: &ModuleArgs,
    services: &Services<'_, S, D>,
    conversation: &mut impl Conversation,
) -> Result<SplitAnswer, Outcome> {
    let from_item = match args.first_pass {
        Some(mode) => match conversation.password_item().filter(|p| !p.is_empty()) {
            Some(item) => Some(item),
            None if mode == FirstPass::Use => {
                return Err(Outcome::Rejected(Rejection::NoPasswordItem));
            }
            None => None,
        },
        None => None,
    };
    let combined = match from_item {
        Some(item) => item,
        None => conversation
            .ask_hidden(args.combined_prompt())
            .map_err(Outcome::ConversationFailed)?,
    };
    let split = expected_digits(user, services)
        .and_then(|digits| split_password_and_code(&combined, digits));
    let (password, answer) = match split {
        Some(at) => (
            &combined[..at],
            SplitAnswer::Code(Zeroizing::new(combined[at..].to_vec())),
        ),
        None => (&combined[..], SplitAnswer::NoCode),
    };
    conversation
        .set_password_item(password)
        .map_err(|e| Outcome::Failed(Failure::PasswordItem(e.0)))?;
    Ok(answer)
}

/// The code length the user's enabled record expects, or None when no code is expected (no
/// record, disabled, or anything that the judging line will deny anyway).
fn expected_digits<S: Store, D: Directory>(
    user: &str,
    services: &Services<'_, S, D>,
) -> Option<u8> {
    let account = Account::resolve(services.directory, user).ok()?;
    match services.store.load(&account.name) {
        Ok(Some(record)) if record.is_enabled() => Some(record.digits),
        Ok(_) => None,
        // The judging line fails closed on it; split as if a code were there.
        Err(_) => Some(crate::policy::TotpSection::default().digits),
    }
}

/// After a good code from a remote host: "trust this host for N days?". Whatever happens
/// here, the login itself has already passed.
fn offer_trust(
    user: &UserName,
    host: &str,
    service: &str,
    now: i64,
    days: u32,
    store: &impl Store,
    conversation: &mut impl Conversation,
) -> TrustChoice {
    let prompt = format!("Trust this host for {days} days? [y/N] ");
    let yes = match conversation.ask_visible(&prompt) {
        Ok(answer) => {
            let answer = String::from_utf8_lossy(&answer).trim().to_ascii_lowercase();
            answer == "y" || answer == "yes"
        }
        Err(_) => false,
    };
    if !yes {
        return TrustChoice::Declined;
    }
    let saved = store.update(user, |slot| {
        match slot.as_mut().filter(|r| r.is_enabled()) {
            Some(record) => {
                record.trust(host, service, now, days);
                true
            }
            None => false,
        }
    });
    match saved {
        Ok(true) => TrustChoice::Granted { days },
        Ok(false) => TrustChoice::NotSaved("the record was removed or disabled".into()),
        Err(e) => TrustChoice::NotSaved(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;
    use crate::backup::{self, tests::CHEAP};
    use crate::user::tests::Table;

    /// The passwd database the tests' logins resolve names in.
    static PASSWD: std::sync::LazyLock<Table> =
        std::sync::LazyLock::new(|| Table::with(&["alice", "bob", "carol", "root"]));
    use crate::otp::{Secret, TotpParams};
    use crate::record::{Record, RecordError, State};

    const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    const NOW: i64 = 1_700_000_000;
    const STEP: u64 = (NOW / 30) as u64;

    struct FixedClock(i64);
    impl Clock for FixedClock {
        fn now(&self) -> i64 {
            self.0
        }
    }

    /// Answers prompts from a script and records everything shown.
    #[derive(Default)]
    struct ScriptedConversation {
        answers: Vec<Result<Vec<u8>, ConversationError>>,
        visible_answers: Vec<String>,
        /// Answers to the enroll-at-login prompt: `None` is the right code for the key shown.
        enroll_answers: Vec<Option<String>>,
        info_fails: bool,
        /// PAM_AUTHTOK.
        authtok: Option<String>,
        prompts: Vec<String>,
        infos: Vec<String>,
        errors: Vec<String>,
    }

    /// The key enroll-at-login showed, read back from the text as a user would.
    fn shown_key(infos: &[String]) -> Secret {
        let all = infos.join("\n");
        let line = all
            .lines()
            .find_map(|l| l.strip_prefix("Or type this key into the app: "));
        Secret::from_base32(line.expect("key shown")).unwrap()
    }
    impl ScriptedConversation {
        fn answering(answer: &str) -> Self {
            Self {
                answers: vec![Ok(answer.as_bytes().to_vec())],
                ..Self::default()
            }
        }
    }
    impl Conversation for ScriptedConversation {
        fn ask_hidden(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, ConversationError> {
            self.prompts.push(prompt.to_owned());
            if prompt == first_login::ENROLL_PROMPT && !self.enroll_answers.is_empty() {
                let answer = self.enroll_answers.remove(0).unwrap_or_else(|| {
                    otp::totp(&shown_key(&self.infos), TotpParams::default(), NOW as u64)
                        .to_string()
                });
                return Ok(Zeroizing::new(answer.into_bytes()));
            }
            if self.answers.is_empty() {
                return Err(ConversationError("no more answers".into()));
            }
            self.answers.remove(0).map(Zeroizing::new)
        }
        fn ask_visible(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, ConversationError> {
            self.prompts.push(prompt.to_owned());
            if self.visible_answers.is_empty() {
                return Err(ConversationError("no more answers".into()));
            }
            Ok(Zeroizing::new(self.visible_answers.remove(0).into_bytes()))
        }
        fn info(&mut self, text: &str) -> Result<(), ConversationError> {
            if self.info_fails {
                return Err(ConversationError("PAM_CONV_ERR".into()));
            }
            self.infos.push(text.to_owned());
            Ok(())
        }
        fn error(&mut self, text: &str) -> Result<(), ConversationError> {
            self.errors.push(text.to_owned());
            Ok(())
        }
        fn password_item(&mut self) -> Option<Zeroizing<Vec<u8>>> {
            self.authtok.clone().map(|t| Zeroizing::new(t.into_bytes()))
        }
        fn set_password_item(&mut self, password: &[u8]) -> Result<(), ConversationError> {
            self.authtok = Some(String::from_utf8(password.to_vec()).unwrap());
            Ok(())
        }
    }

    /// In-memory store; `broken` makes every access fail like an unreadable record.
    #[derive(Default)]
    struct MemoryStore {
        records: RefCell<HashMap<String, Record>>,
        broken: bool,
        writes: RefCell<usize>,
        /// Simulates an admin or another login changing the record while the user types.
        on_update: Option<fn(&mut Option<Record>)>,
    }
    impl MemoryStore {
        fn with(user: &str, record: Record) -> Self {
            let store = Self::default();
            store.records.borrow_mut().insert(user.to_owned(), record);
            store
        }
        fn get(&self, user: &str) -> Option<Record> {
            self.records.borrow().get(user).cloned()
        }
        fn error() -> StoreError {
            StoreError::Malformed {
                path: "/store/alice.toml".into(),
                error: RecordError::Invalid {
                    line: Some(3),
                    message: "expected `=`".into(),
                },
            }
        }
    }
    impl Store for MemoryStore {
        fn load(&self, user: &UserName) -> Result<Option<Record>, StoreError> {
            if self.broken {
                return Err(Self::error());
            }
            Ok(self.get(user.as_str()))
        }
        fn update<T>(
            &self,
            user: &UserName,
            change: impl FnOnce(&mut Option<Record>) -> T,
        ) -> Result<T, StoreError> {
            if self.broken {
                return Err(Self::error());
            }
            let mut slot = self.get(user.as_str());
            if let Some(hook) = self.on_update {
                hook(&mut slot);
            }
            let before = slot.clone();
            let out = change(&mut slot);
            if slot != before {
                *self.writes.borrow_mut() += 1;
                let mut records = self.records.borrow_mut();
                match slot {
                    Some(r) => records.insert(user.to_string(), r),
                    None => records.remove(user.as_str()),
                };
            }
            Ok(out)
        }
        fn remove(&self, user: &UserName) -> Result<bool, StoreError> {
            Ok(self.records.borrow_mut().remove(user.as_str()).is_some())
        }
    }

    fn record() -> Record {
        let user = UserName::parse("alice").unwrap();
        let secret = Secret::from_base32(SECRET).unwrap();
        let params = TotpParams::default();
        crate::enroll::new_record(&user, "test", secret, params, NOW - 1000, None, None)
    }

    /// A record with backup codes (cheap KDF) and the codes as typed.
    fn record_with_codes(count: usize) -> (Record, Vec<String>) {
        let codes = backup::generate(count, CHEAP).unwrap();
        let mut r = record();
        r.backup_codes = Some(codes.stored);
        (r, codes.shown.iter().map(|c| c.to_string()).collect())
    }

    fn code_at(t: i64) -> String {
        let secret = Secret::from_base32(SECRET).unwrap();
        otp::totp(&secret, TotpParams::default(), t as u64).to_string()
    }

    /// A code that is certainly wrong at NOW (window 1), and at every offset drift learning
    /// looks at.
    fn wrong_code() -> String {
        let near: Vec<String> = (-25..=25).map(|i| code_at(NOW + 30 * i)).collect();
        (0..)
            .map(|n| format!("{:06}", n * 111_111 % 1_000_000))
            .find(|c| !near.contains(c))
            .unwrap()
    }

    fn policy(text: &str) -> Policy {
        Policy::parse(text, Path::new("/test.toml")).unwrap()
    }

    fn run(store: &MemoryStore, conv: &mut ScriptedConversation, policy_text: &str) -> Outcome {
        run_full("alice", None, store, conv, policy_text, NOW)
    }

    fn run_as(
        user: &str,
        store: &MemoryStore,
        conv: &mut ScriptedConversation,
        policy_text: &str,
        now: i64,
    ) -> Outcome {
        run_full(user, None, store, conv, policy_text, now)
    }

    fn run_full(
        user: &str,
        rhost: Option<&str>,
        store: &MemoryStore,
        conv: &mut ScriptedConversation,
        policy_text: &str,
        now: i64,
    ) -> Outcome {
        let request = Request {
            user,
            service: "sshd",
            rhost,
            silent: false,
            first_factor: FirstFactor::Password,
            split: None,
        };
        let args = ModuleArgs::default();
        authenticate(
            &request,
            &policy(policy_text),
            &args,
            &Services {
                store,
                directory: &*PASSWD,
            },
            conv,
            &FixedClock(now),
        )
    }

    fn accepted_totp(outcome: &Outcome) -> Option<u64> {
        match outcome {
            Outcome::Accepted {
                method: Method::Totp { step },
                ..
            } => Some(*step),
            _ => None,
        }
    }

    #[test]
    fn right_code_is_accepted_once_and_its_step_stored() {
        let store = MemoryStore::with("alice", record());
        let code = code_at(NOW);
        let mut conv = ScriptedConversation::answering(&code);
        let outcome = run(&store, &mut conv, "");
        assert_eq!(accepted_totp(&outcome), Some(STEP), "{outcome}");
        assert_eq!(conv.prompts, ["Verification code: "]);
        assert!(conv.errors.is_empty());
        let saved = store.get("alice").unwrap();
        assert_eq!(saved.last_step, Some(STEP));
        assert_eq!(saved.last_used, Some(NOW));

        let mut again = ScriptedConversation::answering(&code);
        let outcome = run(&store, &mut again, "");
        assert!(
            matches!(
                outcome,
                Outcome::Rejected(Rejection::Replayed { failures: 1, .. })
            ),
            "{outcome}"
        );
        assert_eq!(again.errors, ["Invalid verification code."]);
    }

    #[test]
    fn drift_window_and_far_codes() {
        let store = MemoryStore::with("alice", record());
        let mut conv = ScriptedConversation::answering(&code_at(NOW - 30));
        assert_eq!(accepted_totp(&run(&store, &mut conv, "")), Some(STEP - 1));

        // 10 steps ahead: refused and counted, but noted as a possible clock offset.
        let store = MemoryStore::with("alice", record());
        let mut conv = ScriptedConversation::answering(&code_at(NOW + 300));
        assert!(matches!(
            run(&store, &mut conv, ""),
            Outcome::Rejected(Rejection::DriftNoted {
                offset: 10,
                seen: 1,
                failures: 1,
                ..
            })
        ));
        let saved = store.get("alice").unwrap();
        assert_eq!(
            (saved.failures, saved.last_step),
            (1, None),
            "counted, step untouched"
        );
        // With learning off, or an hour away, it is just wrong.
        for (answer, policy_text) in [
            (code_at(NOW + 300), "[totp]\nmax_drift = 0"),
            (code_at(NOW + 3600), ""),
        ] {
            let store = MemoryStore::with("alice", record());
            let mut conv = ScriptedConversation::answering(&answer);
            assert!(matches!(
                run(&store, &mut conv, policy_text),
                Outcome::Rejected(Rejection::Wrong { failures: 1, .. })
            ));
            assert!(store.get("alice").unwrap().drift_trial.is_none());
        }

        let store = MemoryStore::with("alice", record());
        let mut conv = ScriptedConversation::answering(&code_at(NOW - 60));
        assert!(accepted_totp(&run(&store, &mut conv, "[totp]\nwindow = 2")).is_some());
    }

    #[test]
    fn a_drifting_token_is_learned_after_three_codes_and_then_just_works() {
        let store = MemoryStore::with("alice", record());
        // The token runs 8 steps (4 minutes) behind; one login attempt every 30 s.
        for i in 0..3 {
            let t = NOW + 30 * i;
            let mut conv = ScriptedConversation::answering(&code_at(t - 240));
            let outcome = run_as("alice", &store, &mut conv, "", t);
            if i < 2 {
                assert!(
                    matches!(
                        outcome,
                        Outcome::Rejected(Rejection::DriftNoted { offset: -8, .. })
                    ),
                    "{outcome}"
                );
            } else {
                // The third teaches the offset but does not log in: no offset code ever does.
                assert!(
                    matches!(
                        outcome,
                        Outcome::Rejected(Rejection::DriftLearned { offset: -8, .. })
                    ),
                    "{outcome}"
                );
                assert!(
                    outcome.to_string().contains("-8 steps (-4 min)"),
                    "{outcome}"
                );
                assert!(conv.errors[0].contains("next code"), "{:?}", conv.errors);
            }
        }
        let saved = store.get("alice").unwrap();
        assert_eq!((saved.drift_steps, saved.failures), (-8, 2));
        // Later codes from the slow token pass at once, and reset the count.
        let t = NOW + 600;
        let mut conv = ScriptedConversation::answering(&code_at(t - 240));
        assert!(accepted_totp(&run_as("alice", &store, &mut conv, "", t)).is_some());
        assert_eq!(store.get("alice").unwrap().failures, 0);
        // The server's own code passes too (a wrong offset never shuts the user out), and
        // shows the offset was wrong: it is forgotten, and the code is used up.
        let mut conv = ScriptedConversation::answering(&code_at(t + 30));
        let outcome = run_as("alice", &store, &mut conv, "", t + 30);
        assert!(
            matches!(
                outcome,
                Outcome::Accepted {
                    method: Method::TotpDriftForgotten { offset: -8, .. },
                    ..
                }
            ),
            "{outcome}"
        );
        assert!(
            outcome.to_string().contains("-8 steps (-4 min) forgotten"),
            "{outcome}"
        );
        assert_eq!(store.get("alice").unwrap().drift_steps, 0);
        let mut conv = ScriptedConversation::answering(&code_at(t + 30));
        assert!(matches!(
            run_as("alice", &store, &mut conv, "", t + 30),
            Outcome::Rejected(Rejection::Replayed { .. })
        ));
    }

    #[test]
    fn hotp_tokens_use_a_look_ahead_window_and_never_go_back() {
        let mut hotp = record();
        hotp.kind = Kind::Hotp;
        hotp.counter = Some(5);
        let code = |c: u64| otp::hotp(&hotp.secret, hotp.algorithm, 6, c).to_string();
        let (c5, c9, c16, c4) = (code(5), code(9), code(16), code(4));
        let store = MemoryStore::with("alice", hotp);
        // 4 presses that never reached a login: counter 9 is within the window of 10.
        let mut conv = ScriptedConversation::answering(&c9);
        assert!(matches!(
            run(&store, &mut conv, ""),
            Outcome::Accepted {
                method: Method::Hotp { counter: 9 },
                ..
            }
        ));
        assert_eq!(store.get("alice").unwrap().counter, Some(10));
        // Codes before the counter are used up, including the skipped one.
        for old in [&c9, &c5, &c4] {
            let mut conv = ScriptedConversation::answering(old);
            assert!(matches!(
                run(&store, &mut conv, ""),
                Outcome::Rejected(Rejection::Wrong { .. })
            ));
        }
        // 16 is within 10..=20 with the default window, not with window = 3.
        let mut conv = ScriptedConversation::answering(&c16);
        assert!(matches!(
            run(&store, &mut conv, "[hotp]\nwindow = 3"),
            Outcome::Rejected(Rejection::Wrong { .. })
        ));
        let mut conv = ScriptedConversation::answering(&c16);
        assert!(matches!(
            run(&store, &mut conv, ""),
            Outcome::Accepted {
                method: Method::Hotp { counter: 16 },
                ..
            }
        ));
        let saved = store.get("alice").unwrap();
        assert_eq!((saved.counter, saved.failures), (Some(17), 0));
    }

    #[test]
    fn malformed_answers_never_touch_the_record() {
        for answer in [
            "",
            "12345",
            "1234567",
            "12a456",
            "١٢٣٤٥٦",
            "12-34",
            &"9".repeat(10_000),
        ] {
            let store = MemoryStore::with("alice", record());
            let mut conv = ScriptedConversation::answering(answer);
            let outcome = run(&store, &mut conv, "");
            assert!(
                matches!(outcome, Outcome::Rejected(Rejection::Malformed(_))),
                "{answer:?}"
            );
            assert_eq!(*store.writes.borrow(), 0);
        }
        // Spaces inside the code are fine.
        let store = MemoryStore::with("alice", record());
        let code = code_at(NOW);
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        let mut conv = ScriptedConversation::answering(&spaced);
        assert!(accepted_totp(&run(&store, &mut conv, "")).is_some());
    }

    #[test]
    fn not_enrolled_users_follow_policy() {
        let store = MemoryStore::default();
        let mut conv = ScriptedConversation::default();
        assert!(matches!(
            run(&store, &mut conv, ""),
            Outcome::NotRequired { disabled: false }
        ));
        assert!(conv.prompts.is_empty() && conv.errors.is_empty());

        let outcome = run(
            &store,
            &mut conv,
            "[policy]\nrequire = \"all\"\nenroll_at_login = false",
        );
        assert!(matches!(outcome, Outcome::NotEnrolled));
        assert!(conv.prompts.is_empty());
        assert!(conv.errors[0].contains("not set up"));

        // Group policy, resolved through NSS: root is in group root.
        let mut conv = ScriptedConversation::default();
        let groups = "[policy]\nrequire = \"groups\"\ngroups = [\"root\"]\nenroll_at_login = false";
        assert!(matches!(
            run_as("root", &store, &mut conv, groups, NOW),
            Outcome::NotEnrolled
        ));
        // A user the system does not know cannot be judged: fail closed.
        let outcome = run_as("no-such-user-twofold", &store, &mut conv, groups, NOW);
        assert!(
            matches!(outcome, Outcome::Failed(Failure::Account(_))),
            "{outcome}"
        );
    }

    #[test]
    fn disabled_records_skip_unless_required() {
        let mut disabled = record();
        disabled.state = State::Disabled;
        let store = MemoryStore::with("alice", disabled);
        let mut conv = ScriptedConversation::default();
        assert!(matches!(
            run(&store, &mut conv, ""),
            Outcome::NotRequired { disabled: true }
        ));
        let outcome = run(&store, &mut conv, "[policy]\nrequire = \"all\"");
        assert!(matches!(outcome, Outcome::DisabledButRequired));
        assert!(conv.prompts.is_empty());
        assert!(conv.errors[0].contains("turned off"));
    }

    #[test]
    fn unreadable_record_fails_closed_for_everyone() {
        let store = MemoryStore {
            broken: true,
            ..MemoryStore::default()
        };
        for policy_text in ["", "[policy]\nrequire = \"all\""] {
            let mut conv = ScriptedConversation::default();
            let outcome = run(&store, &mut conv, policy_text);
            assert!(matches!(outcome, Outcome::Failed(Failure::Store(_))));
            let line = outcome.to_string();
            assert!(
                line.contains("/store/alice.toml") && line.contains("line 3"),
                "{line}"
            );
            assert!(conv.prompts.is_empty());
            assert!(conv.errors[0].contains("unavailable"));
        }
    }

    #[test]
    fn bad_user_names_are_refused_before_any_lookup() {
        let store = MemoryStore {
            broken: true,
            ..MemoryStore::default()
        };
        for user in ["../root", "a/b", "", &"x".repeat(300)] {
            let mut conv = ScriptedConversation::default();
            let outcome = run_as(user, &store, &mut conv, "", NOW);
            assert!(
                matches!(
                    outcome,
                    Outcome::Failed(Failure::Account(AccountError::BadName(_)))
                ),
                "{user}"
            );
        }
    }

    #[test]
    fn clock_problems_deny_with_a_clear_reason() {
        let mut seen = record();
        seen.last_step = Some(STEP + 100);
        let store = MemoryStore::with("alice", seen);
        let mut conv = ScriptedConversation::answering(&code_at(NOW));
        let outcome = run(&store, &mut conv, "");
        assert!(
            matches!(outcome, Outcome::Rejected(Rejection::ClockBehind { .. })),
            "{outcome}"
        );
        assert!(outcome.to_string().contains("NTP"));
        assert_eq!(
            store.get("alice").unwrap().failures,
            0,
            "not the user's fault: not counted"
        );

        let store = MemoryStore::with("alice", record());
        let mut conv = ScriptedConversation::answering("123456");
        let outcome = run_as("alice", &store, &mut conv, "", -5);
        assert!(matches!(
            outcome,
            Outcome::Failed(Failure::ClockBeforeEpoch { now: -5 })
        ));
        assert!(conv.prompts.is_empty());
    }

    #[test]
    fn conversation_failure_denies() {
        let store = MemoryStore::with("alice", record());
        let mut conv = ScriptedConversation::default();
        assert!(matches!(
            run(&store, &mut conv, ""),
            Outcome::ConversationFailed(_)
        ));
        assert_eq!(*store.writes.borrow(), 0);
    }

    #[test]
    fn record_changed_while_typing_is_judged_fresh() {
        // Reset by an admin between prompt and check: denied, nothing recreated.
        let mut store = MemoryStore::with("alice", record());
        store.on_update = Some(|slot| *slot = None);
        let mut conv = ScriptedConversation::answering(&code_at(NOW));
        assert!(matches!(
            run(&store, &mut conv, ""),
            Outcome::Rejected(Rejection::RecordChanged)
        ));
        assert_eq!(*store.writes.borrow(), 0, "nothing recreated");
        // Another login used the code meanwhile: this one is a replay.
        let mut store = MemoryStore::with("alice", record());
        store.on_update = Some(|slot| slot.as_mut().unwrap().last_step = Some(STEP));
        let mut conv = ScriptedConversation::answering(&code_at(NOW));
        assert!(matches!(
            run(&store, &mut conv, ""),
            Outcome::Rejected(Rejection::Replayed { .. })
        ));
        // Other logins locked it meanwhile: denied without checking.
        let mut store = MemoryStore::with("alice", record());
        store.on_update = Some(|slot| slot.as_mut().unwrap().locked_until = Some(NOW + 60));
        let mut conv = ScriptedConversation::answering(&code_at(NOW));
        assert!(matches!(
            run(&store, &mut conv, ""),
            Outcome::Rejected(Rejection::Locked { .. })
        ));
    }

    #[test]
    fn silent_flag_suppresses_messages_and_prompt_is_configurable() {
        let store = MemoryStore::with("alice", record());
        let mut conv = ScriptedConversation::answering("000000");
        let request = Request {
            user: "alice",
            service: "t",
            rhost: None,
            silent: true,
            first_factor: FirstFactor::Password,
            split: None,
        };
        let args = ModuleArgs::parse(["prompt=OTP:"]).unwrap();
        let outcome = authenticate(
            &request,
            &policy(""),
            &args,
            &Services {
                store: &store,
                directory: &*PASSWD,
            },
            &mut conv,
            &FixedClock(NOW),
        );
        assert!(matches!(outcome, Outcome::Rejected(_)));
        assert_eq!(conv.prompts, ["OTP:"]);
        assert!(conv.errors.is_empty());
    }

    #[test]
    fn lockout_after_max_failures_until_expiry() {
        let store = MemoryStore::with("alice", record());
        let lockout = "[lockout]\nmax_failures = 3\nlock_seconds = 600";
        for n in 1..=2 {
            let mut conv = ScriptedConversation::answering(&wrong_code());
            let outcome = run(&store, &mut conv, lockout);
            assert!(
                matches!(outcome, Outcome::Rejected(Rejection::Wrong { failures, locked_until: None }) if failures == n),
                "{outcome}"
            );
        }
        let mut conv = ScriptedConversation::answering(&wrong_code());
        let outcome = run(&store, &mut conv, lockout);
        assert!(
            matches!(outcome, Outcome::Rejected(Rejection::Wrong { failures: 3, locked_until: Some(t) }) if t == NOW + 600)
        );
        assert!(
            outcome
                .to_string()
                .contains("locked until 2023-11-14T22:23:20Z"),
            "{outcome}"
        );
        assert!(conv.errors[0].contains("locked"));

        // Locked: the right code is not even asked for.
        let mut conv = ScriptedConversation::answering(&code_at(NOW + 30));
        let outcome = run_full("alice", None, &store, &mut conv, lockout, NOW + 30);
        assert!(matches!(outcome, Outcome::Locked { until } if until == NOW + 600));
        assert!(conv.prompts.is_empty());

        // After expiry the right code works and the count starts over.
        let later = NOW + 601;
        let mut conv = ScriptedConversation::answering(&code_at(later));
        let outcome = run_full("alice", None, &store, &mut conv, lockout, later);
        assert!(accepted_totp(&outcome).is_some(), "{outcome}");
        let saved = store.get("alice").unwrap();
        assert_eq!((saved.failures, saved.locked_until), (0, None));
    }

    #[test]
    fn good_code_resets_the_count_and_zero_means_never_lock() {
        let store = MemoryStore::with("alice", record());
        for _ in 0..2 {
            let mut conv = ScriptedConversation::answering(&wrong_code());
            run(&store, &mut conv, "");
        }
        assert_eq!(store.get("alice").unwrap().failures, 2);
        let mut conv = ScriptedConversation::answering(&code_at(NOW));
        assert!(accepted_totp(&run(&store, &mut conv, "")).is_some());
        assert_eq!(store.get("alice").unwrap().failures, 0);

        let store = MemoryStore::with("alice", record());
        for _ in 0..20 {
            let mut conv = ScriptedConversation::answering(&wrong_code());
            run(&store, &mut conv, "[lockout]\nmax_failures = 0");
        }
        let saved = store.get("alice").unwrap();
        assert_eq!((saved.failures, saved.locked_until), (20, None));
    }

    #[test]
    fn backup_code_works_once_and_warns_when_few_are_left() {
        let (r, codes) = record_with_codes(4);
        let store = MemoryStore::with("alice", r);
        let mut conv = ScriptedConversation::answering(&codes[0]);
        let outcome = run(&store, &mut conv, "");
        assert!(
            matches!(
                outcome,
                Outcome::Accepted {
                    method: Method::Backup { left: 3 },
                    ..
                }
            ),
            "{outcome}"
        );
        assert_eq!(conv.infos.len(), 1);
        assert!(
            conv.infos[0].contains("3 backup codes left"),
            "{:?}",
            conv.infos
        );
        assert_eq!(store.get("alice").unwrap().backup_codes_left(), 3);

        let mut conv = ScriptedConversation::answering(&codes[0]);
        let outcome = run(&store, &mut conv, "");
        assert!(
            matches!(
                outcome,
                Outcome::Rejected(Rejection::Wrong { failures: 1, .. })
            ),
            "{outcome}"
        );
        // Without the dash too.
        let mut conv = ScriptedConversation::answering(&codes[1].replace('-', ""));
        assert!(matches!(
            run(&store, &mut conv, ""),
            Outcome::Accepted {
                method: Method::Backup { left: 2 },
                ..
            }
        ));
        let saved = store.get("alice").unwrap();
        assert_eq!(saved.failures, 0);
        assert_eq!(
            saved.last_step, None,
            "a backup code does not use up a time step"
        );
    }

    #[test]
    fn many_backup_codes_left_are_not_mentioned() {
        let (r, codes) = record_with_codes(6);
        let store = MemoryStore::with("alice", r);
        let mut conv = ScriptedConversation::answering(&codes[5]);
        assert!(matches!(
            run(&store, &mut conv, ""),
            Outcome::Accepted { .. }
        ));
        assert!(conv.infos.is_empty());
    }

    #[test]
    fn eight_digit_codes_try_the_app_first_then_backup_codes() {
        let (mut r, codes) = record_with_codes(2);
        r.digits = 8;
        let store = MemoryStore::with("alice", r);
        let secret = Secret::from_base32(SECRET).unwrap();
        let params = TotpParams {
            digits: 8,
            ..TotpParams::default()
        };
        let totp8 = otp::totp(&secret, params, NOW as u64);
        let mut conv = ScriptedConversation::answering(&totp8);
        assert!(accepted_totp(&run(&store, &mut conv, "")).is_some());
        let mut conv = ScriptedConversation::answering(&codes[0].replace('-', ""));
        assert!(matches!(
            run(&store, &mut conv, ""),
            Outcome::Accepted {
                method: Method::Backup { .. },
                ..
            }
        ));
    }

    #[test]
    fn trusted_host_skips_the_code_until_expiry() {
        let store = MemoryStore::with("alice", record());
        let trust = "[trust]\ndays = 7";
        let mut conv = ScriptedConversation::answering(&code_at(NOW));
        conv.visible_answers.push("y".into());
        let outcome = run_full("alice", Some("192.0.2.7"), &store, &mut conv, trust, NOW);
        assert!(
            matches!(
                outcome,
                Outcome::Accepted {
                    trust: TrustChoice::Granted { days: 7 },
                    ..
                }
            ),
            "{outcome}"
        );
        assert_eq!(conv.prompts[1], "Trust this host for 7 days? [y/N] ");

        // Same host: no prompt. Another host: asked.
        let mut conv = ScriptedConversation::default();
        let outcome = run_full(
            "alice",
            Some("192.0.2.7"),
            &store,
            &mut conv,
            trust,
            NOW + 3600,
        );
        assert!(matches!(outcome, Outcome::TrustedHost { .. }), "{outcome}");
        assert!(conv.prompts.is_empty());
        let mut conv = ScriptedConversation::default();
        let outcome = run_full(
            "alice",
            Some("198.51.100.1"),
            &store,
            &mut conv,
            trust,
            NOW + 3600,
        );
        assert!(
            matches!(outcome, Outcome::ConversationFailed(_)),
            "asked for a code: {outcome}"
        );

        // Expired, or trust turned off by policy: asked again.
        let mut conv = ScriptedConversation::default();
        let week = NOW + 7 * 86_400;
        assert!(matches!(
            run_full("alice", Some("192.0.2.7"), &store, &mut conv, trust, week),
            Outcome::ConversationFailed(_)
        ));
        let mut conv = ScriptedConversation::default();
        assert!(matches!(
            run_full("alice", Some("192.0.2.7"), &store, &mut conv, "", NOW + 60),
            Outcome::ConversationFailed(_)
        ));
    }

    #[test]
    fn trust_is_never_offered_without_a_remote_host_or_when_declined() {
        let store = MemoryStore::with("alice", record());
        let mut conv = ScriptedConversation::answering(&code_at(NOW));
        let outcome = run_full("alice", None, &store, &mut conv, "[trust]\ndays = 7", NOW);
        assert!(matches!(
            outcome,
            Outcome::Accepted {
                trust: TrustChoice::NotOffered,
                ..
            }
        ));
        assert_eq!(conv.prompts.len(), 1);

        let mut conv = ScriptedConversation::answering(&code_at(NOW + 30));
        conv.visible_answers.push("".into());
        let outcome = run_full(
            "alice",
            Some("192.0.2.7"),
            &store,
            &mut conv,
            "[trust]\ndays = 7",
            NOW,
        );
        assert!(matches!(
            outcome,
            Outcome::Accepted {
                trust: TrustChoice::Declined,
                ..
            }
        ));
        assert!(store.get("alice").unwrap().trusted.is_empty());
    }

    #[test]
    fn log_lines_never_contain_codes_or_secrets() {
        let (r, codes) = record_with_codes(2);
        let store = MemoryStore::with("alice", r);
        let code = code_at(NOW);
        let mut lines = Vec::new();
        for answer in [
            code.as_str(),
            code.as_str(),
            codes[0].as_str(),
            codes[0].as_str(),
        ] {
            let mut conv = ScriptedConversation::answering(answer);
            lines.push(run(&store, &mut conv, "").to_string());
        }
        for line in lines {
            assert!(!line.contains(&code) && !line.contains(SECRET), "{line}");
            assert!(
                !line.contains(&codes[0]) && !line.contains(&codes[0].replace('-', "")),
                "{line}"
            );
        }
    }

    const ENROLL_POLICY: &str =
        "[policy]\nrequire = \"all\"\nissuer = \"test\"\n[backup_codes]\ncount = 2";

    #[test]
    fn required_user_enrolls_during_the_login() {
        let store = MemoryStore::default();
        let mut conv = ScriptedConversation {
            enroll_answers: vec![None],
            ..Default::default()
        };
        let outcome = run(&store, &mut conv, ENROLL_POLICY);
        assert!(
            matches!(
                outcome,
                Outcome::Enrolled {
                    step: STEP,
                    backup_codes: 2
                }
            ),
            "{outcome}"
        );
        assert_eq!(
            conv.prompts,
            [first_login::ENROLL_PROMPT, first_login::SAVED_PROMPT]
        );
        // Explanation first (ssh prefixes the first line), then the QR code in pieces < 512.
        assert!(conv.infos[0].starts_with("Two-factor authentication is required"));
        assert!(conv.infos.len() >= 3, "{} messages", conv.infos.len());
        for info in &conv.infos {
            assert!(
                info.len() <= first_login::MAX_MESSAGE_BYTES,
                "{} bytes",
                info.len()
            );
        }
        let qr_lines = conv
            .infos
            .iter()
            .flat_map(|i| i.lines())
            .filter(|l| l.contains('▀'))
            .count();
        assert!((15..=23).contains(&qr_lines), "{qr_lines} QR lines");
        let last = conv.infos.last().unwrap();
        assert!(
            last.contains("now set up") && last.matches('-').count() >= 2,
            "{last}"
        );

        let saved = store.get("alice").unwrap();
        assert_eq!(saved.secret, shown_key(&conv.infos));
        assert_eq!(
            saved.last_step,
            Some(STEP),
            "the confirming code counts as used"
        );
        assert_eq!(saved.backup_codes_left(), 2);
        assert_eq!(saved.issuer, "test");
        // Its log line has no secret.
        assert!(
            !outcome
                .to_string()
                .contains(saved.secret.to_base32().as_str())
        );

        // The next login asks for a code; the enrollment code is a replay.
        let mut conv = ScriptedConversation::answering(&otp::totp(
            &saved.secret,
            TotpParams::default(),
            NOW as u64,
        ));
        let outcome = run(&store, &mut conv, ENROLL_POLICY);
        assert!(
            matches!(outcome, Outcome::Rejected(Rejection::Replayed { .. })),
            "{outcome}"
        );
        assert_eq!(conv.prompts, ["Verification code: "]);
    }

    #[test]
    fn wrong_first_codes_store_nothing() {
        let store = MemoryStore::default();
        let answers = vec![
            Some("000000".into()),
            Some("abc".into()),
            Some("999999".into()),
        ];
        let mut conv = ScriptedConversation {
            enroll_answers: answers,
            ..Default::default()
        };
        let outcome = run(&store, &mut conv, ENROLL_POLICY);
        assert!(
            matches!(outcome, Outcome::EnrollFailed(EnrollFailure::NotConfirmed)),
            "{outcome}"
        );
        assert!(store.get("alice").is_none());
        assert_eq!(*store.writes.borrow(), 0);
        assert!(conv.errors[0].contains("2 tries left"), "{:?}", conv.errors);
        assert!(
            conv.errors[1].contains("not a 6-digit code") && conv.errors[1].contains("1 try left")
        );
        assert!(conv.errors[2].contains("Nothing was set up"));

        // A wrong code, then the right one.
        let mut conv = ScriptedConversation {
            enroll_answers: vec![Some("000000".into()), None],
            ..Default::default()
        };
        assert!(matches!(
            run(&store, &mut conv, ENROLL_POLICY),
            Outcome::Enrolled { .. }
        ));
    }

    #[test]
    fn enrollment_needs_a_conversation_that_shows_text() {
        let store = MemoryStore::default();
        let mut conv = ScriptedConversation {
            info_fails: true,
            enroll_answers: vec![None],
            ..Default::default()
        };
        let outcome = run(&store, &mut conv, ENROLL_POLICY);
        assert!(
            matches!(
                outcome,
                Outcome::EnrollFailed(EnrollFailure::CannotShowText(_))
            ),
            "{outcome}"
        );
        assert!(conv.prompts.is_empty());

        let mut conv = ScriptedConversation {
            enroll_answers: vec![None],
            ..Default::default()
        };
        let request = Request {
            user: "alice",
            service: "t",
            rhost: None,
            silent: true,
            first_factor: FirstFactor::Password,
            split: None,
        };
        let outcome = authenticate(
            &request,
            &policy(ENROLL_POLICY),
            &ModuleArgs::default(),
            &Services {
                store: &store,
                directory: &*PASSWD,
            },
            &mut conv,
            &FixedClock(NOW),
        );
        assert!(
            matches!(
                outcome,
                Outcome::EnrollFailed(EnrollFailure::CannotShowText(_))
            ),
            "{outcome}"
        );
        assert!(conv.prompts.is_empty() && conv.infos.is_empty());
        assert!(outcome.to_string().contains("PAM_SILENT"));
        assert!(store.get("alice").is_none());
    }

    #[test]
    fn concurrent_first_logins_keep_one_enrollment() {
        // Another login stores its enrollment while this user is typing.
        let store = MemoryStore {
            on_update: Some(|slot| {
                if slot.is_none() {
                    *slot = Some(record());
                }
            }),
            ..MemoryStore::default()
        };
        let mut conv = ScriptedConversation {
            enroll_answers: vec![None],
            ..Default::default()
        };
        let outcome = run(&store, &mut conv, ENROLL_POLICY);
        assert!(
            matches!(outcome, Outcome::EnrollFailed(EnrollFailure::LostRace)),
            "{outcome}"
        );
        assert!(conv.errors.last().unwrap().contains("another login"));
    }

    #[test]
    fn ascii_qr_for_terminals_without_unicode() {
        let store = MemoryStore::default();
        let mut conv = ScriptedConversation {
            enroll_answers: vec![None],
            ..Default::default()
        };
        let request = Request {
            user: "alice",
            service: "t",
            rhost: None,
            silent: false,
            first_factor: FirstFactor::Password,
            split: None,
        };
        let args = ModuleArgs::parse(["qr=ascii"]).unwrap();
        let outcome = authenticate(
            &request,
            &policy(ENROLL_POLICY),
            &args,
            &Services {
                store: &store,
                directory: &*PASSWD,
            },
            &mut conv,
            &FixedClock(NOW),
        );
        assert!(matches!(outcome, Outcome::Enrolled { .. }));
        assert!(conv.infos.iter().all(|i| i.is_ascii()));
        assert!(conv.infos.iter().any(|i| i.contains("######")));
    }

    #[test]
    fn any_time_can_be_written() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert!(format_time(i64::MAX).contains("after 9999"));
        assert!(format_time(i64::MIN).contains("before 1970"));
        assert_eq!(format_time(253_402_300_799), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn password_and_code_split_at_the_end() {
        assert_eq!(split_password_and_code(b"hunter2123456", 6), Some(7));
        assert_eq!(split_password_and_code(b"123456", 6), Some(0));
        assert_eq!(split_password_and_code(b"pw1234-5678", 6), Some(2));
        assert_eq!(
            split_password_and_code(b"pw9123456", 6),
            Some(3),
            "digits in passwords are fine"
        );
        assert_eq!(split_password_and_code(b"password", 6), None);
        assert_eq!(split_password_and_code(b"12345", 6), None);
    }

    /// The `split_code` line then the judging line (the password module between them is the
    /// caller's: in these tests it "passed").
    fn run_split(
        store: &MemoryStore,
        conv: &mut ScriptedConversation,
        split_args: &[&str],
        policy_text: &str,
    ) -> (Result<SplitAnswer, Outcome>, Option<Outcome>) {
        let services = Services {
            store,
            directory: &*PASSWD,
        };
        let args = ModuleArgs::parse(split_args.iter().copied()).unwrap();
        let split = split_code("alice", &args, &services, conv);
        let Ok(answer) = &split else {
            return (split, None);
        };
        let request = Request {
            user: "alice",
            service: "openvpn",
            rhost: Some("192.0.2.7"),
            silent: false,
            first_factor: FirstFactor::Password,
            split: Some(answer),
        };
        let outcome = authenticate(
            &request,
            &policy(policy_text),
            &ModuleArgs::default(),
            &services,
            conv,
            &FixedClock(NOW),
        );
        (split, Some(outcome))
    }

    #[test]
    fn split_code_asks_once_hands_the_password_on_and_the_next_line_judges() {
        let store = MemoryStore::with("alice", record());
        let mut conv = ScriptedConversation::answering(&format!("s3cret{}", code_at(NOW)));
        let (split, outcome) = run_split(&store, &mut conv, &["split_code"], "");
        assert!(matches!(split, Ok(SplitAnswer::Code(_))));
        assert!(accepted_totp(&outcome.unwrap()).is_some());
        assert_eq!(conv.prompts, ["Password & verification code: "]);
        assert_eq!(conv.authtok.as_deref(), Some("s3cret"));

        // A wrong code: the password part goes on, the judging line denies and counts.
        let mut conv = ScriptedConversation::answering(&format!("s3cret{}", wrong_code()));
        let (_, outcome) = run_split(&store, &mut conv, &["split_code"], "");
        assert!(matches!(
            outcome,
            Some(Outcome::Rejected(Rejection::Wrong { failures: 1, .. }))
        ));
        assert_eq!(conv.authtok.as_deref(), Some("s3cret"));
        // No code at the end at all: the whole answer is the password, and the judge denies.
        let mut conv = ScriptedConversation::answering("just-a-password");
        let (split, outcome) = run_split(&store, &mut conv, &["split_code"], "");
        assert!(matches!(split, Ok(SplitAnswer::NoCode)));
        assert_eq!(conv.authtok.as_deref(), Some("just-a-password"));
        assert!(matches!(
            outcome,
            Some(Outcome::Rejected(Rejection::NoCodeAfterPassword))
        ));
    }

    #[test]
    fn split_code_judges_counts_and_reveals_nothing() {
        // Locked, enrolled, not enrolled, unknown: the same prompt, no message, no change.
        let mut locked = record();
        locked.locked_until = Some(NOW + 600);
        locked.failures = 5;
        for store in [
            MemoryStore::with("alice", locked),
            MemoryStore::with("alice", record()),
            MemoryStore::default(),
        ] {
            let before = store.get("alice");
            let services = Services {
                store: &store,
                directory: &*PASSWD,
            };
            let args = ModuleArgs::parse(["split_code"]).unwrap();
            let mut conv = ScriptedConversation::answering(&format!("guess{}", wrong_code()));
            assert!(split_code("alice", &args, &services, &mut conv).is_ok());
            assert_eq!(conv.prompts, ["Password & verification code: "]);
            assert!(conv.errors.is_empty() && conv.infos.is_empty());
            assert_eq!(store.get("alice"), before);
            assert_eq!(*store.writes.borrow(), 0);
            let mut conv = ScriptedConversation::answering("guess");
            assert!(split_code("ALICE", &args, &services, &mut conv).is_ok());
            assert!(conv.errors.is_empty());
        }
        // Trust is neither honoured nor offered with a split answer: the prompt asked for a code.
        let mut trusted = record();
        trusted.trust("192.0.2.7", "openvpn", NOW - 60, 7);
        let store = MemoryStore::with("alice", trusted);
        let mut conv = ScriptedConversation::answering(&format!("pw{}", code_at(NOW)));
        let trust = "[trust]\ndays = 7\nservices = [\"openvpn\"]";
        let (_, outcome) = run_split(&store, &mut conv, &["split_code"], trust);
        assert!(
            matches!(
                outcome,
                Some(Outcome::Accepted {
                    trust: TrustChoice::NotOffered,
                    ..
                })
            ),
            "{outcome:?}"
        );
    }

    #[test]
    fn split_code_enrolls_only_in_the_judging_line_after_the_password() {
        let store = MemoryStore::default();
        let mut conv = ScriptedConversation {
            answers: vec![Ok(b"s3cret".to_vec())],
            enroll_answers: vec![None],
            ..Default::default()
        };
        let (split, outcome) = run_split(&store, &mut conv, &["split_code"], ENROLL_POLICY);
        assert!(matches!(split, Ok(SplitAnswer::NoCode)));
        assert_eq!(
            conv.authtok.as_deref(),
            Some("s3cret"),
            "the password is handed on"
        );
        assert!(
            matches!(outcome, Some(Outcome::Enrolled { .. })),
            "{outcome:?}"
        );
        assert!(store.get("alice").is_some());

        // Not required: the password alone, no code expected.
        let store = MemoryStore::default();
        let mut conv = ScriptedConversation::answering("s3cret123456");
        let (split, outcome) = run_split(&store, &mut conv, &["split_code"], "");
        assert!(matches!(split, Ok(SplitAnswer::NoCode)));
        assert_eq!(conv.authtok.as_deref(), Some("s3cret123456"));
        assert!(matches!(outcome, Some(Outcome::NotRequired { .. })));
    }

    #[test]
    fn first_pass_takes_the_code_off_the_application_password() {
        let store = MemoryStore::with("alice", record());
        let mut conv = ScriptedConversation {
            authtok: Some(format!("pw{}", code_at(NOW))),
            ..Default::default()
        };
        let (_, outcome) = run_split(&store, &mut conv, &["split_code", "use_first_pass"], "");
        assert!(accepted_totp(&outcome.unwrap()).is_some());
        assert!(conv.prompts.is_empty());
        assert_eq!(conv.authtok.as_deref(), Some("pw"));
        // use_first_pass without a password item denies; try_first_pass asks instead.
        let mut conv = ScriptedConversation::default();
        let (split, _) = run_split(&store, &mut conv, &["split_code", "use_first_pass"], "");
        assert!(matches!(
            split,
            Err(Outcome::Rejected(Rejection::NoPasswordItem))
        ));
        let mut conv = ScriptedConversation::answering(&format!("pw{}", code_at(NOW + 30)));
        let (_, outcome) = run_split(&store, &mut conv, &["split_code", "try_first_pass"], "");
        assert!(accepted_totp(&outcome.unwrap()).is_some());
        assert_eq!(conv.prompts, ["Password & verification code: "]);
    }

    #[test]
    fn enroll_at_login_needs_a_first_factor_before_twofold() {
        let store = MemoryStore::default();
        let mut conv = ScriptedConversation {
            enroll_answers: vec![None],
            ..Default::default()
        };
        let request = Request {
            user: "alice",
            service: "sshd",
            rhost: None,
            silent: false,
            first_factor: FirstFactor::Unseen,
            split: None,
        };
        let outcome = authenticate(
            &request,
            &policy(ENROLL_POLICY),
            &ModuleArgs::default(),
            &Services {
                store: &store,
                directory: &*PASSWD,
            },
            &mut conv,
            &FixedClock(NOW),
        );
        assert!(
            matches!(outcome, Outcome::EnrollWithoutFirstFactor),
            "{outcome}"
        );
        assert!(outcome.to_string().contains("no first factor"), "{outcome}");
        assert!(
            conv.infos.is_empty() && conv.prompts.is_empty(),
            "no QR code shown"
        );
        assert!(store.get("alice").is_none());
    }

    #[test]
    fn aliases_and_unknown_names_are_denied_before_any_record_is_read() {
        let store = MemoryStore::with("alice", record());
        let loose = Table {
            loose: true,
            ..Table::with(&["alice"])
        };
        for (name, want) in [
            ("ALICE", "alias"),
            ("alice@corp", "alias"),
            ("mallory", "not in the passwd"),
        ] {
            let mut conv = ScriptedConversation::answering(&code_at(NOW));
            let request = Request {
                user: name,
                service: "sshd",
                rhost: None,
                silent: false,
                first_factor: FirstFactor::Password,
                split: None,
            };
            let outcome = authenticate(
                &request,
                &policy(ENROLL_POLICY),
                &ModuleArgs::default(),
                &Services {
                    store: &store,
                    directory: &loose,
                },
                &mut conv,
                &FixedClock(NOW),
            );
            assert!(
                matches!(outcome, Outcome::Failed(Failure::Account(_))),
                "{name}: {outcome}"
            );
            assert!(outcome.to_string().contains(want), "{outcome}");
            assert!(conv.prompts.is_empty(), "nothing asked of {name}");
        }
        assert_eq!(*store.writes.borrow(), 0);
    }

    #[test]
    fn trust_earned_on_one_service_is_not_honoured_on_another() {
        let store = MemoryStore::with("alice", record());
        let mut conv = ScriptedConversation::answering(&code_at(NOW));
        conv.visible_answers.push("y".into());
        let both = "[trust]\ndays = 7\nservices = [\"sshd\", \"cockpit\"]";
        let outcome = run_full("alice", Some("192.0.2.7"), &store, &mut conv, both, NOW);
        assert!(matches!(
            outcome,
            Outcome::Accepted {
                trust: TrustChoice::Granted { .. },
                ..
            }
        ));
        let request = Request {
            user: "alice",
            service: "cockpit",
            rhost: Some("192.0.2.7"),
            silent: false,
            first_factor: FirstFactor::Password,
            split: None,
        };
        let mut conv = ScriptedConversation::default();
        let outcome = authenticate(
            &request,
            &policy(both),
            &ModuleArgs::default(),
            &Services {
                store: &store,
                directory: &*PASSWD,
            },
            &mut conv,
            &FixedClock(NOW + 60),
        );
        assert!(
            matches!(outcome, Outcome::ConversationFailed(_)),
            "asked for a code: {outcome}"
        );
        // A service not listed is never offered trust.
        let mut conv = ScriptedConversation::answering(&code_at(NOW + 60));
        let outcome = authenticate(
            &request,
            &policy("[trust]\ndays = 7"),
            &ModuleArgs::default(),
            &Services {
                store: &store,
                directory: &*PASSWD,
            },
            &mut conv,
            &FixedClock(NOW + 60),
        );
        assert!(
            matches!(
                outcome,
                Outcome::Accepted {
                    trust: TrustChoice::NotOffered,
                    ..
                }
            ),
            "{outcome}"
        );
    }
}
