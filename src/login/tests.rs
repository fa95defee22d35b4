//! Every path of one login, with a scripted conversation, a fixed clock, an in-memory store
//! and a passwd table.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use zeroize::Zeroizing;

use super::answer::split_password_and_code;
use super::*;
use crate::backup::{self, tests::CHEAP};
use crate::clock::FixedClock;
use crate::enroll::{Enrollment, NewSecret, Proof, Token};
use crate::otp;
use crate::store::StoreError;
use crate::user::AccountError;
use crate::user::tests::Table;

/// The passwd database the tests' logins resolve names in.
static PASSWD: std::sync::LazyLock<Table> =
    std::sync::LazyLock::new(|| Table::with(&["alice", "bob", "carol", "root"]));
use crate::otp::{Secret, TotpParams};
use crate::record::{Kind, Record, RecordError, State};

const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const NOW: i64 = 1_700_000_000;
const STEP: u64 = (NOW / 30) as u64;

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
    let (_, after) = all
        .split_once("type this key into the app:")
        .expect("key shown");
    let key: String = after.lines().nth(1).unwrap().split_whitespace().collect();
    Secret::from_base32(&key).unwrap()
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
        if prompt == enroll::ENROLL_PROMPT && !self.enroll_answers.is_empty() {
            let answer = self.enroll_answers.remove(0).unwrap_or_else(|| {
                otp::totp(&shown_key(&self.infos), TotpParams::default(), NOW as u64).to_string()
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
        if prompt == enroll::SHOW_QR_PROMPT {
            return Ok(Zeroizing::new(Vec::new())); // Enter
        }
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
    let secret = NewSecret::Given(Secret::from_base32(SECRET).unwrap());
    let token = Token::Totp { window: 1 };
    Enrollment::new(&user, "test", secret, TotpParams::default(), token)
        .unwrap()
        .into_record(Proof::Unverified { now: NOW - 1000 }, None)
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
        ssh_auth_info: None,
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
        ssh_auth_info: None,
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
    assert_eq!(
        conv.prompts[1],
        "Trust the computer you are connecting from (192.0.2.7) for 7 days, without asking for a code? [y/N] "
    );

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
        [
            enroll::SHOW_QR_PROMPT,
            enroll::ENROLL_PROMPT,
            enroll::SAVED_PROMPT
        ]
    );
    // Explanation first (ssh prefixes the first line), then the QR code in pieces < 512.
    assert!(conv.infos[0].starts_with("Two-factor authentication is required"));
    assert!(conv.infos.len() >= 3, "{} messages", conv.infos.len());
    for info in &conv.infos {
        assert!(
            info.len() <= enroll::MAX_MESSAGE_BYTES,
            "{} bytes",
            info.len()
        );
    }
    let screen = qr_screen(&conv.infos);
    assert!((15..=22).contains(&(screen.len() - 1)), "{screen:#?}");
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

    // The next login asks for a code; the enrollment code is refused as used, with the
    // reason, and not counted.
    let mut conv = ScriptedConversation::answering(&otp::totp(
        &saved.secret,
        TotpParams::default(),
        NOW as u64,
    ));
    let outcome = run(&store, &mut conv, ENROLL_POLICY);
    assert!(
        matches!(outcome, Outcome::Rejected(Rejection::EnrollmentCode)),
        "{outcome}"
    );
    assert_eq!(conv.prompts, ["Verification code: "]);
    assert!(conv.errors[0].contains("already used to confirm your enrollment"));
    assert_eq!(store.get("alice").unwrap().failures, 0);
}

/// The lines of the QR code's screen, from its header to the code prompt (each message is
/// shown as lines of its own).
fn qr_screen(infos: &[String]) -> Vec<String> {
    let all = infos.join("\n");
    all.lines()
        .skip_while(|l| *l != enroll::QR_HEADER)
        .take_while(|l| !l.contains("now set up"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_qr_screen_fits_80x24_or_ends_with_the_key() {
    // issuer, user: the longest URI form fits, a shorter one fits, none fits.
    for (issuer, user, fits) in [
        ("test", "alice", true),
        ("build-01.example.com", "alice", true),
        (
            "a-much-longer-host-name.department.example.com",
            "alice",
            false,
        ),
    ] {
        let store = MemoryStore::default();
        let mut conv = ScriptedConversation {
            enroll_answers: vec![None],
            ..Default::default()
        };
        let text = format!("[policy]\nrequire = \"all\"\nissuer = \"{issuer}\"");
        let outcome = run_full(user, None, &store, &mut conv, &text, NOW);
        assert!(matches!(outcome, Outcome::Enrolled { .. }), "{outcome}");
        let screen = qr_screen(&conv.infos);
        let first_screen = conv.infos.join("\n");
        let first_screen = first_screen.split(enroll::QR_HEADER).next().unwrap();
        // Each screen leaves the 24th line to its prompt.
        assert!(first_screen.lines().count() < 24, "{first_screen}");
        let key = shown_key(&conv.infos);
        let key_line = screen.last().unwrap();
        assert_eq!(
            key_line.contains(crate::enroll::grouped_secret(&key).as_str()),
            !fits,
            "{issuer}: {key_line}"
        );
        assert_eq!(screen.len() < 24, fits, "{issuer}: {screen:#?}");
        assert!(
            screen.iter().all(|l| l.chars().count() <= 80),
            "{screen:#?}"
        );
    }
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
    assert!(conv.errors[1].contains("not a 6-digit code") && conv.errors[1].contains("1 try left"));
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
        ssh_auth_info: None,
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
        ssh_auth_info: None,
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
        ssh_auth_info: None,
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
    trusted.trust("192.0.2.7", "openvpn", None, NOW - 60, 7);
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
        ssh_auth_info: None,
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
            ssh_auth_info: None,
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
        ssh_auth_info: None,
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

/// A clock that says `first` when it is read the first time and `later` after that: the
/// prompt goes out at `first`, the answer arrives at `later`.
struct SlowAnswer {
    first: i64,
    later: i64,
    reads: std::cell::Cell<u32>,
}

impl Clock for SlowAnswer {
    fn now(&self) -> i64 {
        let reads = self.reads.get();
        self.reads.set(reads + 1);
        if reads == 0 { self.first } else { self.later }
    }
}

#[test]
fn a_code_is_judged_for_the_time_it_arrived_not_when_it_was_asked_for() {
    let clock = || SlowAnswer {
        first: NOW,
        later: NOW + 90,
        reads: std::cell::Cell::new(0),
    };
    let request = Request {
        user: "alice",
        service: "sshd",
        rhost: None,
        silent: false,
        first_factor: FirstFactor::Password,
        ssh_auth_info: None,
        split: None,
    };
    let services_for = |store| Services {
        store,
        directory: &*PASSWD,
    };
    // The code shown when the answer came (three steps after the prompt) is accepted...
    let store = MemoryStore::with("alice", record());
    let mut conv = ScriptedConversation::answering(&code_at(NOW + 90));
    let outcome = authenticate(
        &request,
        &policy(""),
        &ModuleArgs::default(),
        &services_for(&store),
        &mut conv,
        &clock(),
    );
    assert!(accepted_totp(&outcome).is_some(), "{outcome}");
    // ...and the code of the moment the prompt went out is not, once it is too old.
    let store = MemoryStore::with("alice", record());
    let mut conv = ScriptedConversation::answering(&code_at(NOW));
    let outcome = authenticate(
        &request,
        &policy(""),
        &ModuleArgs::default(),
        &services_for(&store),
        &mut conv,
        &clock(),
    );
    assert!(
        matches!(
            outcome,
            Outcome::Rejected(Rejection::Wrong { .. } | Rejection::DriftNoted { .. })
        ),
        "{outcome}"
    );
}

/// A pending enrollment (`twofold invite --with-qr`) of the test secret, until `until`.
fn pending_record(until: i64) -> Record {
    let mut r = record();
    r.state = State::Pending;
    r.pending_until = Some(until);
    r
}

const PENDING_POLICY: &str = "[policy]\nrequire = \"all\"\n[backup_codes]\ncount = 1";

#[test]
fn a_pending_enrollment_turns_on_with_its_first_right_code_only() {
    let store = MemoryStore::with("alice", pending_record(NOW + 3600));
    let mut conv = ScriptedConversation::answering(&wrong_code());
    let outcome = run(&store, &mut conv, PENDING_POLICY);
    assert!(
        matches!(outcome, Outcome::Rejected(Rejection::Wrong { .. })),
        "{outcome}"
    );
    let kept = store.get("alice").unwrap();
    assert_eq!((kept.state, kept.failures), (State::Pending, 1));

    let mut conv = ScriptedConversation::answering(&code_at(NOW));
    conv.visible_answers = vec![String::new()];
    let outcome = run(&store, &mut conv, PENDING_POLICY);
    assert!(
        matches!(
            outcome,
            Outcome::Confirmed {
                method: Method::Totp { step: STEP },
                backup_codes: 1
            }
        ),
        "{outcome}"
    );
    assert!(conv.infos.last().unwrap().contains("now set up"));
    assert_eq!(conv.prompts, ["Verification code: ", enroll::SAVED_PROMPT]);
    let on = store.get("alice").unwrap();
    assert!(on.is_enabled() && on.pending_until.is_none());
    assert_eq!((on.last_step, on.backup_codes_left()), (Some(STEP), 1));

    // The confirming code is used up.
    let mut conv = ScriptedConversation::answering(&code_at(NOW));
    let outcome = run(&store, &mut conv, PENDING_POLICY);
    assert!(
        matches!(outcome, Outcome::Rejected(Rejection::Replayed { .. })),
        "{outcome}"
    );
}

#[test]
fn an_expired_pending_enrollment_counts_as_none() {
    let store = MemoryStore::with("alice", pending_record(NOW));
    let mut conv = ScriptedConversation::answering(&code_at(NOW));
    let off = "[policy]\nrequire = \"all\"\nenroll_at_login = false";
    assert!(matches!(run(&store, &mut conv, off), Outcome::NotEnrolled));
    assert!(
        conv.prompts.is_empty(),
        "no code asked of an expired invitation"
    );
    let mut conv = ScriptedConversation::default();
    assert!(matches!(
        run(&store, &mut conv, ""),
        Outcome::NotRequired { disabled: false }
    ));
    // Enroll-at-login replaces it.
    let mut conv = ScriptedConversation {
        enroll_answers: vec![None],
        visible_answers: vec![String::new()],
        ..Default::default()
    };
    let outcome = run(&store, &mut conv, PENDING_POLICY);
    assert!(matches!(outcome, Outcome::Enrolled { .. }), "{outcome}");
    assert!(store.get("alice").unwrap().is_enabled());
}

#[test]
fn before_the_deadline_enrollment_may_be_put_off_and_after_it_not() {
    let before = "[policy]\nrequire = \"all\"\nenroll_deadline = \"2023-11-17\"";
    // NOW is 2023-11-14T22:13:20Z: 3 days left (a started day counts).
    let store = MemoryStore::default();
    let mut conv = ScriptedConversation {
        visible_answers: vec!["n".into()],
        ..Default::default()
    };
    let outcome = run(&store, &mut conv, before);
    assert!(
        matches!(outcome, Outcome::PutOff { days_left: 3 }),
        "{outcome}"
    );
    assert!(
        conv.infos[0].contains("on 2023-11-17 (3 days left)"),
        "{:?}",
        conv.infos
    );
    assert_eq!(conv.prompts, [grace::LATER_PROMPT]);
    assert!(outcome.to_string().contains("put off"));
    assert!(store.get("alice").is_none());

    // "Yes" (or just Enter) runs the enrollment.
    let mut conv = ScriptedConversation {
        visible_answers: vec![String::new(), String::new()],
        enroll_answers: vec![None],
        ..Default::default()
    };
    let outcome = run(&store, &mut conv, before);
    assert!(matches!(outcome, Outcome::Enrolled { .. }), "{outcome}");

    // From the day on: no offer to put it off.
    let store = MemoryStore::default();
    let on_the_day =
        "[policy]\nrequire = \"all\"\nenroll_at_login = false\nenroll_deadline = \"2023-11-14\"";
    let mut conv = ScriptedConversation::default();
    assert!(matches!(
        run(&store, &mut conv, on_the_day),
        Outcome::NotEnrolled
    ));
    assert!(conv.prompts.is_empty());
}
