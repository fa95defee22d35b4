//! One login, as a plain function over three seams — [`Conversation`], [`Clock`], [`Store`] —
//! so that every path is unit-tested without PAM (see the tests below) and `src/pam.rs` only
//! translates.
//!
//! Order of work: resolve the user's record (no lock held while the user types), ask for the
//! code, then verify and record the accepted step under the user's lock, against the record as
//! it is at that moment. Two logins racing with one code: the second sees the first's step.
#![forbid(unsafe_code)]

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use crate::log::Level;
use crate::otp::{self, CodeInputError, Verdict};
use crate::policy::{ModuleArgs, Policy, PolicyError};
use crate::store::{Store, StoreError};
use crate::user::{UserName, UserNameError};

/// The PAM conversation, one message per call.
pub trait Conversation {
    /// Asks a question; the answer is not echoed. The answer is wiped when dropped.
    fn ask_hidden(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, ConversationError>;
    fn info(&mut self, text: &str) -> Result<(), ConversationError>;
    fn error(&mut self, text: &str) -> Result<(), ConversationError>;
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
    pub rhost: Option<&'a str>,
    /// PAM_SILENT: no informational or error messages to the user.
    pub silent: bool,
}

/// How the login ended. `src/pam.rs` maps it to a PAM code; `Display` is the syslog text.
#[derive(Debug)]
pub enum Outcome {
    /// A right, fresh code: the second factor passed.
    Accepted {
        step: u64,
    },
    /// 2FA is not required for this user and they have none (or it is disabled).
    NotRequired {
        disabled: bool,
    },
    /// Policy requires 2FA and the user has not enrolled.
    NotEnrolled,
    /// Policy requires 2FA and an admin disabled the user's.
    DisabledButRequired,
    Rejected(Rejection),
    /// Could not decide; fail closed.
    Failed(Failure),
    /// The application could not ask the question (no terminal, client gone).
    ConversationFailed(ConversationError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    Malformed(CodeInputError),
    Wrong,
    Replayed,
    /// Every step in the window is at or before the last accepted one.
    ClockBehind {
        last_step: u64,
        current_step: u64,
    },
    /// The record was removed or disabled while the user was typing.
    RecordChanged,
}

#[derive(Debug)]
pub enum Failure {
    BadUserName(UserNameError),
    Policy(PolicyError),
    Store(StoreError),
    ClockBeforeEpoch { now: i64 },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Accepted { .. } => write!(f, "code accepted"),
            Self::NotRequired { disabled: false } => write!(f, "not enrolled, 2FA not required"),
            Self::NotRequired { disabled: true } => write!(f, "2FA disabled, not required"),
            Self::NotEnrolled => write!(f, "denied: 2FA required by policy but not enrolled"),
            Self::DisabledButRequired => {
                write!(
                    f,
                    "denied: 2FA disabled for this user but required by policy"
                )
            }
            Self::Rejected(Rejection::Malformed(why)) => write!(f, "denied: {why}"),
            Self::Rejected(Rejection::Wrong) => write!(f, "denied: wrong code"),
            Self::Rejected(Rejection::Replayed) => write!(f, "denied: code already used (replay)"),
            Self::Rejected(Rejection::ClockBehind {
                last_step,
                current_step,
            }) => write!(
                f,
                "denied: system clock is behind the last accepted code (time step {current_step} < {last_step}); check NTP"
            ),
            Self::Rejected(Rejection::RecordChanged) => {
                write!(
                    f,
                    "denied: the record was removed or disabled during the login"
                )
            }
            Self::Failed(Failure::BadUserName(e)) => write!(f, "denied: invalid user name: {e}"),
            Self::Failed(Failure::Policy(e)) => write!(f, "denied (fail closed): {e}"),
            Self::Failed(Failure::Store(e)) => write!(f, "denied (fail closed): {e}"),
            Self::Failed(Failure::ClockBeforeEpoch { now }) => write!(
                f,
                "denied (fail closed): system clock is before 1970 ({now} s); fix the clock"
            ),
            Self::ConversationFailed(e) => write!(f, "denied: conversation failed: {}", e.0),
        }
    }
}

impl Outcome {
    pub fn log_level(&self) -> Level {
        match self {
            Self::Accepted { .. } | Self::NotRequired { .. } => Level::Info,
            Self::Rejected(_) | Self::NotEnrolled | Self::DisabledButRequired => Level::Notice,
            Self::ConversationFailed(_) => Level::Warning,
            Self::Failed(_) => Level::Error,
        }
    }

    /// What the user is told. Never the right code, nor how far off a wrong one was.
    fn user_message(&self) -> Option<&'static str> {
        match self {
            Self::Accepted { .. } | Self::NotRequired { .. } | Self::ConversationFailed(_) => None,
            Self::NotEnrolled => Some(
                "Two-factor authentication is required for this account but is not set up. \
                 Ask your administrator to enroll you.",
            ),
            Self::DisabledButRequired => Some(
                "Two-factor authentication is required for this account but is turned off. \
                 Ask your administrator.",
            ),
            Self::Rejected(_) => Some("Invalid verification code."),
            Self::Failed(_) => Some(
                "Two-factor authentication is unavailable. Ask your administrator to check the system log.",
            ),
        }
    }
}

/// Runs one login's second factor.
pub fn authenticate(
    request: &Request<'_>,
    policy: &Policy,
    args: &ModuleArgs,
    store: &impl Store,
    conversation: &mut impl Conversation,
    clock: &impl Clock,
) -> Outcome {
    let outcome = decide(request, policy, args, store, conversation, clock);
    if let (Some(message), false) = (outcome.user_message(), request.silent) {
        // Best effort: the result stands whether or not the user could be told.
        let _ = conversation.error(message);
    }
    outcome
}

fn decide(
    request: &Request<'_>,
    policy: &Policy,
    args: &ModuleArgs,
    store: &impl Store,
    conversation: &mut impl Conversation,
    clock: &impl Clock,
) -> Outcome {
    let user = match UserName::parse(request.user) {
        Ok(user) => user,
        Err(e) => return Outcome::Failed(Failure::BadUserName(e)),
    };
    // An unreadable record denies everyone, required or not: it exists, so the user enrolled.
    let record = match store.load(&user) {
        Ok(record) => record,
        Err(e) => return Outcome::Failed(Failure::Store(e)),
    };
    let record = match record {
        Some(record) if record.is_enabled() => record,
        other => {
            let disabled = other.is_some();
            // Policy is consulted only here, so enrolled users cost no group lookup.
            return match policy.requires_2fa(&user) {
                Err(e) => Outcome::Failed(Failure::Policy(e)),
                Ok(false) => Outcome::NotRequired { disabled },
                Ok(true) if disabled => Outcome::DisabledButRequired,
                Ok(true) => Outcome::NotEnrolled,
            };
        }
    };
    let digits = record.digits;
    drop(record);

    let answer = match conversation.ask_hidden(args.prompt()) {
        Ok(answer) => answer,
        Err(e) => return Outcome::ConversationFailed(e),
    };
    let code = match otp::normalize_code(&answer, digits) {
        Ok(code) => code,
        Err(e) => return Outcome::Rejected(Rejection::Malformed(e)),
    };
    drop(answer);

    let now = clock.now();
    let Ok(now) = u64::try_from(now) else {
        return Outcome::Failed(Failure::ClockBeforeEpoch { now });
    };
    let window = policy.totp.window;
    let result = store.update(&user, |slot| {
        let Some(record) = slot.as_mut().filter(|r| r.is_enabled()) else {
            return Err(Rejection::RecordChanged);
        };
        let params = record.params();
        match otp::verify_totp(&record.secret, params, &code, now, window, record.last_step) {
            Verdict::Accepted { step } => {
                record.last_step = Some(step);
                record.last_used = i64::try_from(now).ok();
                Ok(step)
            }
            verdict => {
                let current_step = otp::time_step(now, params.period);
                match record.last_step {
                    Some(last_step)
                        if current_step.saturating_add(u64::from(window)) <= last_step =>
                    {
                        Err(Rejection::ClockBehind {
                            last_step,
                            current_step,
                        })
                    }
                    _ if verdict == Verdict::Replayed => Err(Rejection::Replayed),
                    _ => Err(Rejection::Wrong),
                }
            }
        }
    });
    match result {
        Ok(Ok(step)) => Outcome::Accepted { step },
        Ok(Err(rejection)) => Outcome::Rejected(rejection),
        Err(e) => Outcome::Failed(Failure::Store(e)),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;
    use crate::otp::{Algorithm, Secret, TotpParams};
    use crate::record::{FORMAT_VERSION, Record, RecordError, State};

    const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    const NOW: i64 = 1_700_000_000;

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
        prompts: Vec<String>,
        errors: Vec<String>,
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
            if self.answers.is_empty() {
                return Err(ConversationError("no more answers".into()));
            }
            self.answers.remove(0).map(Zeroizing::new)
        }
        fn info(&mut self, _text: &str) -> Result<(), ConversationError> {
            Ok(())
        }
        fn error(&mut self, text: &str) -> Result<(), ConversationError> {
            self.errors.push(text.to_owned());
            Ok(())
        }
    }

    /// In-memory store; `broken` makes every access fail like an unreadable record.
    #[derive(Default)]
    struct MemoryStore {
        records: RefCell<HashMap<String, Record>>,
        broken: bool,
        writes: RefCell<usize>,
        /// Simulates an admin changing the record while the user types.
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
    }

    fn record() -> Record {
        Record {
            version: FORMAT_VERSION,
            state: State::Enabled,
            secret: Secret::from_base32(SECRET).unwrap(),
            algorithm: Algorithm::SHA1,
            digits: 6,
            period: 30,
            issuer: "test".into(),
            label: "alice".into(),
            created: NOW - 1000,
            last_step: None,
            last_used: None,
        }
    }

    fn code_at(t: i64) -> String {
        let secret = Secret::from_base32(SECRET).unwrap();
        otp::totp(&secret, TotpParams::default(), t as u64).to_string()
    }

    fn policy(text: &str) -> Policy {
        Policy::parse(text, Path::new("/test.toml")).unwrap()
    }

    fn run(store: &MemoryStore, conv: &mut ScriptedConversation, policy_text: &str) -> Outcome {
        run_as("alice", store, conv, policy_text, NOW)
    }

    fn run_as(
        user: &str,
        store: &MemoryStore,
        conv: &mut ScriptedConversation,
        policy_text: &str,
        now: i64,
    ) -> Outcome {
        let request = Request {
            user,
            service: "test",
            rhost: None,
            silent: false,
        };
        let args = ModuleArgs::default();
        authenticate(
            &request,
            &policy(policy_text),
            &args,
            store,
            conv,
            &FixedClock(now),
        )
    }

    #[test]
    fn right_code_is_accepted_once_and_its_step_stored() {
        let store = MemoryStore::with("alice", record());
        let code = code_at(NOW);
        let mut conv = ScriptedConversation::answering(&code);
        let outcome = run(&store, &mut conv, "");
        let step = (NOW / 30) as u64;
        assert!(
            matches!(outcome, Outcome::Accepted { step: s } if s == step),
            "{outcome}"
        );
        assert_eq!(conv.prompts, ["Verification code: "]);
        assert!(conv.errors.is_empty());
        let saved = store.get("alice").unwrap();
        assert_eq!(saved.last_step, Some(step));
        assert_eq!(saved.last_used, Some(NOW));

        let mut again = ScriptedConversation::answering(&code);
        let outcome = run(&store, &mut again, "");
        assert!(
            matches!(outcome, Outcome::Rejected(Rejection::Replayed)),
            "{outcome}"
        );
        assert_eq!(again.errors, ["Invalid verification code."]);
    }

    #[test]
    fn drift_window_and_far_codes() {
        let store = MemoryStore::with("alice", record());
        let mut conv = ScriptedConversation::answering(&code_at(NOW - 30));
        assert!(matches!(
            run(&store, &mut conv, ""),
            Outcome::Accepted { .. }
        ));

        let store = MemoryStore::with("alice", record());
        let mut conv = ScriptedConversation::answering(&code_at(NOW + 300));
        assert!(matches!(
            run(&store, &mut conv, ""),
            Outcome::Rejected(Rejection::Wrong)
        ));
        assert_eq!(
            *store.writes.borrow(),
            0,
            "a wrong code changes nothing (yet)"
        );

        let store = MemoryStore::with("alice", record());
        let mut conv = ScriptedConversation::answering(&code_at(NOW - 60));
        assert!(matches!(
            run(&store, &mut conv, "[totp]\nwindow = 2"),
            Outcome::Accepted { .. }
        ));
    }

    #[test]
    fn malformed_answers_never_touch_the_record() {
        for answer in [
            "",
            "12345",
            "1234567",
            "12a456",
            "١٢٣٤٥٦",
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
        assert!(matches!(
            run(&store, &mut conv, ""),
            Outcome::Accepted { .. }
        ));
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

        let outcome = run(&store, &mut conv, "[policy]\nrequire = \"all\"");
        assert!(matches!(outcome, Outcome::NotEnrolled));
        assert!(conv.prompts.is_empty());
        assert!(conv.errors[0].contains("not set up"));

        // Group policy, resolved through NSS: root is in group root.
        let mut conv = ScriptedConversation::default();
        let groups = "[policy]\nrequire = \"groups\"\ngroups = [\"root\"]";
        assert!(matches!(
            run_as("root", &store, &mut conv, groups, NOW),
            Outcome::NotEnrolled
        ));
        // A user the system does not know cannot be judged: fail closed.
        let outcome = run_as("no-such-user-twofold", &store, &mut conv, groups, NOW);
        assert!(
            matches!(outcome, Outcome::Failed(Failure::Policy(_))),
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
                matches!(outcome, Outcome::Failed(Failure::BadUserName(_))),
                "{user}"
            );
        }
    }

    #[test]
    fn clock_problems_deny_with_a_clear_reason() {
        let mut seen = record();
        seen.last_step = Some((NOW / 30) as u64 + 100);
        let store = MemoryStore::with("alice", seen);
        let mut conv = ScriptedConversation::answering(&code_at(NOW));
        let outcome = run(&store, &mut conv, "");
        assert!(
            matches!(outcome, Outcome::Rejected(Rejection::ClockBehind { .. })),
            "{outcome}"
        );
        assert!(outcome.to_string().contains("NTP"));

        let store = MemoryStore::with("alice", record());
        let mut conv = ScriptedConversation::answering("123456");
        let outcome = run_as("alice", &store, &mut conv, "", -5);
        assert!(matches!(
            outcome,
            Outcome::Failed(Failure::ClockBeforeEpoch { now: -5 })
        ));
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
        // Another login used the code meanwhile: this one is a replay.
        let mut store = MemoryStore::with("alice", record());
        store.on_update = Some(|slot| {
            slot.as_mut().unwrap().last_step = Some((NOW / 30) as u64);
        });
        let mut conv = ScriptedConversation::answering(&code_at(NOW));
        assert!(matches!(
            run(&store, &mut conv, ""),
            Outcome::Rejected(Rejection::Replayed)
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
        };
        let args = ModuleArgs::parse(["prompt=OTP:"]).unwrap();
        let outcome = authenticate(
            &request,
            &policy(""),
            &args,
            &store,
            &mut conv,
            &FixedClock(NOW),
        );
        assert!(matches!(outcome, Outcome::Rejected(_)));
        assert_eq!(conv.prompts, ["OTP:"]);
        assert!(conv.errors.is_empty());
    }

    #[test]
    fn log_lines_never_contain_codes_or_secrets() {
        let store = MemoryStore::with("alice", record());
        let code = code_at(NOW);
        let mut conv = ScriptedConversation::answering(&code);
        let accepted = run(&store, &mut conv, "").to_string();
        let mut conv = ScriptedConversation::answering(&code);
        let replayed = run(&store, &mut conv, "").to_string();
        for line in [accepted, replayed] {
            assert!(!line.contains(&code) && !line.contains(SECRET), "{line}");
        }
    }
}
