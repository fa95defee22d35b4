//! The one enrollment flow, behind `twofold enroll`, enroll-at-login and every later way to
//! enroll: an [`Enrollment`] holds a new (or given) secret and the `otpauth://` URI apps scan;
//! [`Enrollment::check`] judges a confirming code, [`Enrollment::confirm`] asks for one up to
//! [`CONFIRM_TRIES`] times through a [`Conversation`], and [`Enrollment::activate`] builds the
//! record (backup codes included) and stores it through the one writer, [`Store::put`], with
//! the confirming code counted as used so it cannot log in again.
#![forbid(unsafe_code)]

use std::fmt;

use zeroize::Zeroizing;

use crate::backup::{self, BackupCodes, KdfCost, NewCodes};
use crate::clock::Clock;
use crate::conversation::{Conversation, ConversationError};
use crate::otp::{self, Secret, TotpParams, Verdict};
use crate::policy::Policy;
use crate::record::{FORMAT_VERSION, Kind, Record, State};
use crate::store::{Put, Replace, Store, StoreError};
use crate::user::UserName;

/// Answers an enrollment accepts before it gives up, wherever it runs.
pub const CONFIRM_TRIES: u32 = 3;
/// The question for the first code from an app.
pub const ENROLL_PROMPT: &str =
    "Enter the code shown in your authenticator app to finish setting up: ";
/// The question for the first code of a counter-based (HOTP) hardware token.
pub const HOTP_ENROLL_PROMPT: &str =
    "Press the token's button and enter the code it shows to finish setting up: ";

/// Where the secret of a new enrollment comes from.
pub enum NewSecret {
    /// 160 fresh bits from the kernel's CSPRNG.
    Fresh,
    /// One the admin brought (`--secret`, a token's seed file) or one stored earlier.
    Given(Secret),
}

/// Which kind of token is enrolled, and how far a confirming code may stray.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Token {
    /// Time-based (an app): codes within `window` steps either side of now.
    Totp { window: u8 },
    /// Counter-based (a hardware token) at `counter`, whose next press shows that counter's
    /// code; codes up to `look_ahead` presses further on are accepted too.
    Hotp { counter: u64, look_ahead: u8 },
}

impl Token {
    /// A token as the policy configures new ones: `hotp_counter` for a hardware token.
    pub fn from_policy(policy: &Policy, hotp_counter: Option<u64>) -> Self {
        match hotp_counter {
            Some(counter) => Self::Hotp {
                counter,
                look_ahead: policy.hotp.window,
            },
            None => Self::Totp {
                window: policy.totp.window,
            },
        }
    }

    fn hotp_counter(self) -> Option<u64> {
        match self {
            Self::Hotp { counter, .. } => Some(counter),
            Self::Totp { .. } => None,
        }
    }
}

/// A code that proved the app or token works: the time step (TOTP) or counter (HOTP) it
/// matched, and the time it was judged at (read when the answer arrived).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Confirmation {
    pub matched: u64,
    pub at: i64,
}

/// How an activation was earned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proof {
    /// A right code: it counts as used.
    Confirmed(Confirmation),
    /// Activated without a code (`--no-verify`, imports), at this time.
    Unverified { now: i64 },
}

impl Proof {
    fn time(self) -> i64 {
        match self {
            Self::Confirmed(c) => c.at,
            Self::Unverified { now } => now,
        }
    }
}

/// Why one confirming answer was refused. `Display` is what the user is told: the same words
/// in the terminal and in a login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    NotACode {
        digits: u8,
    },
    Wrong {
        hotp: bool,
    },
    /// The system clock is before 1970: no code can be judged.
    ClockBeforeEpoch {
        now: i64,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotACode { digits } => write!(f, "That is not a {digits}-digit code."),
            Self::Wrong { hotp: false } => f.write_str(
                "That code is not right: check the phone's clock, and that you scanned the code \
                 (or typed the key) shown above.",
            ),
            Self::Wrong { hotp: true } => f.write_str(
                "That code is not right: check the token's secret and counter, then press again.",
            ),
            Self::ClockBeforeEpoch { now } => {
                write!(
                    f,
                    "The system clock is before 1970 ({now}); nothing was set up."
                )
            }
        }
    }
}

/// Why [`Enrollment::confirm`] ended without a right code. Nothing was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unconfirmed {
    /// [`CONFIRM_TRIES`] wrong answers.
    WrongCodes {
        tries: u32,
    },
    /// No answer came (end of input, the client went away).
    NoAnswer(ConversationError),
    ClockBeforeEpoch {
        now: i64,
    },
}

/// What [`Enrollment::activate`] stored: the step or counter now counted as used, and the
/// backup codes to show once.
pub struct Activated {
    pub codes: Option<NewCodes>,
}

#[derive(Debug)]
pub enum EnrollError {
    Random(String),
    AlreadyEnrolled { user: UserName },
    Store(StoreError),
}

impl fmt::Display for EnrollError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Random(e) => write!(f, "the system random number generator failed: {e}"),
            Self::AlreadyEnrolled { user } => write!(
                f,
                "{user} is already enrolled; use --force to replace the existing secret"
            ),
            Self::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for EnrollError {}

/// One enrollment in progress: nothing is stored until [`Enrollment::activate`]. Holds the
/// secret (wiped on drop) and the URI that encodes it.
pub struct Enrollment {
    user: UserName,
    issuer: String,
    secret: Secret,
    params: TotpParams,
    token: Token,
    uri: Zeroizing<String>,
}

impl Enrollment {
    /// An enrollment of `user` in the app as `issuer`, codes computed with `params`.
    pub fn new(
        user: &UserName,
        issuer: &str,
        secret: NewSecret,
        params: TotpParams,
        token: Token,
    ) -> Result<Self, EnrollError> {
        let secret = match secret {
            NewSecret::Fresh => new_secret()?,
            NewSecret::Given(secret) => secret,
        };
        let uri = otpauth_uri(issuer, user.as_str(), &secret, params, token.hotp_counter());
        Ok(Self {
            user: user.clone(),
            issuer: issuer.to_owned(),
            secret,
            params,
            token,
            uri,
        })
    }

    /// An enrollment with the policy's issuer, algorithm, digits, period and windows.
    pub fn for_policy(
        user: &UserName,
        policy: &Policy,
        secret: NewSecret,
        hotp_counter: Option<u64>,
    ) -> Result<Self, EnrollError> {
        let token = Token::from_policy(policy, hotp_counter);
        Self::new(user, &policy.issuer(), secret, policy.new_params(), token)
    }

    pub fn user(&self) -> &UserName {
        &self.user
    }
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    pub fn secret(&self) -> &Secret {
        &self.secret
    }
    pub fn params(&self) -> TotpParams {
        self.params
    }
    pub fn token(&self) -> Token {
        self.token
    }
    /// The `otpauth://` URI (it holds the secret).
    pub fn uri(&self) -> &str {
        &self.uri
    }
    /// The URI in a shorter form, for a small screen.
    pub fn uri_as(&self, form: UriForm) -> Zeroizing<String> {
        let names = (self.issuer.as_str(), self.user.as_str());
        let counter = self.token.hotp_counter();
        otpauth_uri_as(form, names, &self.secret, self.params, counter)
    }
    /// The question for the confirming code.
    pub fn prompt(&self) -> &'static str {
        match self.token {
            Token::Totp { .. } => ENROLL_PROMPT,
            Token::Hotp { .. } => HOTP_ENROLL_PROMPT,
        }
    }

    /// Judges one confirming answer, typed at `now`. Every step of the window (or counter of
    /// the look-ahead) is computed whatever the answer.
    pub fn check(&self, answer: &[u8], now: i64) -> Result<Confirmation, Refusal> {
        let Ok(now_u64) = u64::try_from(now) else {
            return Err(Refusal::ClockBeforeEpoch { now });
        };
        let digits = self.params.digits;
        let code = otp::normalize_code(answer, digits).map_err(|_| Refusal::NotACode { digits })?;
        let matched = match self.token {
            Token::Totp { window } => {
                match otp::verify_totp(&self.secret, self.params, &code, now_u64, window, None) {
                    Verdict::Accepted { step } => Some(step),
                    _ => None,
                }
            }
            Token::Hotp {
                counter,
                look_ahead,
            } => {
                let alg = self.params.algorithm;
                otp::verify_hotp(&self.secret, alg, digits, &code, counter, look_ahead)
            }
        };
        let hotp = matches!(self.token, Token::Hotp { .. });
        matched
            .map(|matched| Confirmation { matched, at: now })
            .ok_or(Refusal::Wrong { hotp })
    }

    /// Asks for the confirming code until one is right, at most [`CONFIRM_TRIES`] times. The
    /// clock is read when each answer has arrived: a code is judged for the time it was typed.
    /// After each wrong answer the user is told why and how many tries are left; after the
    /// last, that nothing was set up and `start_over` (what to do next, e.g. "log in again").
    pub fn confirm(
        &self,
        conversation: &mut impl Conversation,
        clock: &impl Clock,
        start_over: &str,
    ) -> Result<Confirmation, Unconfirmed> {
        for try_number in 1..=CONFIRM_TRIES {
            let answer = conversation
                .ask_hidden(self.prompt())
                .map_err(Unconfirmed::NoAnswer)?;
            let refusal = match self.check(&answer, clock.now()) {
                Ok(confirmation) => return Ok(confirmation),
                Err(Refusal::ClockBeforeEpoch { now }) => {
                    return Err(Unconfirmed::ClockBeforeEpoch { now });
                }
                Err(refusal) => refusal,
            };
            let _ = conversation.error(&match CONFIRM_TRIES - try_number {
                0 => format!("{refusal} Nothing was set up; {start_over}."),
                1 => format!("{refusal} 1 try left."),
                n => format!("{refusal} {n} tries left."),
            });
        }
        Err(Unconfirmed::WrongCodes {
            tries: CONFIRM_TRIES,
        })
    }

    /// The new, enabled record; the confirming code's step (or the counter after it) counts as
    /// used. For callers that store it themselves; [`Enrollment::activate`] is the usual way.
    pub fn into_record(self, proof: Proof, backup_codes: Option<BackupCodes>) -> Record {
        let now = proof.time();
        let confirmed = match proof {
            Proof::Confirmed(c) => Some(c.matched),
            Proof::Unverified { .. } => None,
        };
        let (kind, last_step, counter) = match self.token {
            Token::Totp { .. } => (Kind::Totp, confirmed, None),
            // After a confirming press the token is one past the counter it showed.
            Token::Hotp { counter, .. } => {
                let next = confirmed.map_or(counter, |c| c.saturating_add(1));
                (Kind::Hotp, None, Some(next))
            }
        };
        Record {
            version: FORMAT_VERSION,
            state: State::Enabled,
            pending_until: None,
            secret: self.secret,
            algorithm: self.params.algorithm,
            digits: self.params.digits,
            period: self.params.period,
            issuer: self.issuer,
            label: self.user.to_string(),
            account: Some(self.user.to_string()),
            created: now,
            last_step,
            // The confirming code is no login: `last_used` stays empty until the first one,
            // which is how a login tells that the stored step is the enrollment's (login/verify.rs).
            last_used: None,
            failures: 0,
            locked_until: None,
            kind,
            counter,
            window: None,
            drift_steps: 0,
            drift_trial: None,
            backup_codes,
            trusted: Vec::new(),
        }
    }

    /// The record of an enrollment sent ahead (`twofold invite --with-qr`): it cannot log in
    /// and is turned on only by the first right code at a login before `until`.
    pub fn into_pending(self, now: i64, until: i64) -> Record {
        let mut record = self.into_record(Proof::Unverified { now }, None);
        record.state = State::Pending;
        record.pending_until = Some(until);
        record
    }

    /// Makes `backup_codes` new backup codes and stores the record atomically
    /// ([`Store::put`]). With [`Replace::No`], an enrollment that exists (one that appeared
    /// while the user was scanning, too) is kept and reported; with [`Replace::Yes`], whatever
    /// is there is replaced, a record too broken to read included.
    pub fn activate(
        self,
        store: &impl Store,
        proof: Proof,
        replace: Replace,
        backup_codes: u32,
    ) -> Result<Activated, EnrollError> {
        self.activate_with_cost(store, proof, replace, (backup_codes, KdfCost::DEFAULT))
    }

    fn activate_with_cost(
        self,
        store: &impl Store,
        proof: Proof,
        replace: Replace,
        (count, cost): (u32, KdfCost),
    ) -> Result<Activated, EnrollError> {
        let codes = new_backup_codes(count, cost)?;
        let user = self.user.clone();
        let record = self.into_record(proof, codes.as_ref().map(|c| c.stored.clone()));
        match store.put(&user, &record, replace) {
            Ok(Put::Written) => Ok(Activated { codes }),
            Ok(Put::Unchanged) if replace == Replace::Yes => Ok(Activated { codes }),
            Ok(Put::Unchanged | Put::Kept) => Err(EnrollError::AlreadyEnrolled { user }),
            Err(e) => Err(EnrollError::Store(e)),
        }
    }
}

/// A batch of `count` backup codes, or none for 0.
pub fn new_backup_codes(count: u32, cost: KdfCost) -> Result<Option<NewCodes>, EnrollError> {
    if count == 0 {
        return Ok(None);
    }
    backup::generate(count as usize, cost)
        .map(Some)
        .map_err(|e| EnrollError::Random(e.to_string()))
}

/// A fresh 160-bit secret from the kernel's CSPRNG.
fn new_secret() -> Result<Secret, EnrollError> {
    let mut bytes = Zeroizing::new(vec![0u8; Secret::GENERATED_BYTES]);
    getrandom::fill(&mut bytes).map_err(|e| EnrollError::Random(e.to_string()))?;
    Secret::from_bytes(bytes.to_vec()).map_err(|e| EnrollError::Random(e.to_string()))
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// How much an `otpauth://` URI spells out. A shorter URI makes a smaller QR code, which is
/// what lets enroll-at-login's code fit an 80×24 screen (src/login/enroll.rs tries them in
/// [`UriForm::ALL`]'s order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UriForm {
    /// Every parameter written out.
    Full,
    /// Parameters at the Key URI format's defaults (SHA1, 6 digits, 30 s) left out.
    NoDefaults,
    /// As `NoDefaults`, and the label is the account alone: `issuer=` still names the issuer.
    AccountLabel,
}

impl UriForm {
    /// Longest first.
    pub const ALL: [Self; 3] = [Self::Full, Self::NoDefaults, Self::AccountLabel];
}

/// The Key URI every authenticator app understands:
/// `otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=…&algorithm=…&digits=…&period=…`, or for a
/// counter-based token (`hotp_counter`) `otpauth://hotp/…&counter=N` without the period.
/// Parameters are always written out: some apps get non-defaults wrong when they are implied.
pub fn otpauth_uri(
    issuer: &str,
    account: &str,
    secret: &Secret,
    params: TotpParams,
    hotp_counter: Option<u64>,
) -> Zeroizing<String> {
    let names = (issuer, account);
    otpauth_uri_as(UriForm::Full, names, secret, params, hotp_counter)
}

/// [`otpauth_uri`] in a given form; `names` is (issuer, account). Non-default parameters are
/// written out in every form.
pub fn otpauth_uri_as(
    form: UriForm,
    (issuer, account): (&str, &str),
    secret: &Secret,
    params: TotpParams,
    hotp_counter: Option<u64>,
) -> Zeroizing<String> {
    let issuer = encode_component(issuer);
    let label = match form {
        UriForm::AccountLabel => encode_component(account),
        _ => format!("{issuer}:{}", encode_component(account)),
    };
    let defaults = TotpParams::default();
    let full = form == UriForm::Full;
    let mut uri = Zeroizing::new(format!(
        "otpauth://{kind}/{label}?secret={secret}&issuer={issuer}",
        kind = if hotp_counter.is_some() {
            "hotp"
        } else {
            "totp"
        },
        secret = secret.to_base32().as_str(),
    ));
    if full || params.algorithm != defaults.algorithm {
        uri.push_str(&format!("&algorithm={}", params.algorithm));
    }
    if full || params.digits != defaults.digits {
        uri.push_str(&format!("&digits={}", params.digits));
    }
    match hotp_counter {
        Some(counter) => uri.push_str(&format!("&counter={counter}")),
        None if full || params.period != defaults.period => {
            uri.push_str(&format!("&period={}", params.period));
        }
        None => {}
    }
    uri
}

/// The secret in groups of four, for typing it into an app by hand.
pub fn grouped_secret(secret: &Secret) -> Zeroizing<String> {
    let plain = secret.to_base32();
    let mut out = Zeroizing::new(String::with_capacity(plain.len() * 5 / 4 + 1));
    for (i, c) in plain.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::tests::CHEAP;
    use crate::clock::FixedClock;
    use crate::otp::Algorithm;
    use crate::store::FileStore;
    use crate::store::file::tests::{private_dir, spoil_text};

    const KEY: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    const NOW: i64 = 1_700_000_000;
    const STEP: u64 = (NOW / 30) as u64;

    fn alice() -> UserName {
        UserName::parse("alice").unwrap()
    }
    fn key() -> Secret {
        Secret::from_base32(KEY).unwrap()
    }
    fn totp(window: u8) -> Enrollment {
        let token = Token::Totp { window };
        let secret = NewSecret::Given(key());
        Enrollment::new(&alice(), "host", secret, TotpParams::default(), token).unwrap()
    }
    fn hotp(counter: u64) -> Enrollment {
        let token = Token::Hotp {
            counter,
            look_ahead: 3,
        };
        let secret = NewSecret::Given(key());
        Enrollment::new(&alice(), "host", secret, TotpParams::default(), token).unwrap()
    }
    fn code(at: i64) -> Zeroizing<String> {
        otp::totp(&key(), TotpParams::default(), at as u64)
    }
    fn press(counter: u64) -> Zeroizing<String> {
        otp::hotp(&key(), Algorithm::SHA1, 6, counter)
    }

    /// Answers the enrollment prompt from a script; records what it was told.
    #[derive(Default)]
    struct Script {
        answers: Vec<String>,
        prompts: Vec<String>,
        errors: Vec<String>,
    }
    impl Conversation for Script {
        fn ask_hidden(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, ConversationError> {
            self.prompts.push(prompt.to_owned());
            if self.answers.is_empty() {
                return Err(ConversationError("no more answers".into()));
            }
            Ok(Zeroizing::new(self.answers.remove(0).into_bytes()))
        }
        fn ask_visible(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, ConversationError> {
            self.ask_hidden(prompt)
        }
        fn info(&mut self, _: &str) -> Result<(), ConversationError> {
            Ok(())
        }
        fn error(&mut self, text: &str) -> Result<(), ConversationError> {
            self.errors.push(text.to_owned());
            Ok(())
        }
        fn password_item(&mut self) -> Option<Zeroizing<Vec<u8>>> {
            None
        }
        fn set_password_item(&mut self, _: &[u8]) -> Result<(), ConversationError> {
            Ok(())
        }
    }
    fn script(answers: &[&str]) -> Script {
        Script {
            answers: answers.iter().map(|a| a.to_string()).collect(),
            ..Script::default()
        }
    }

    #[test]
    fn a_fresh_enrollment_has_a_new_160_bit_secret_in_its_uri() {
        let token = Token::Totp { window: 1 };
        let new = || {
            Enrollment::new(
                &alice(),
                "h",
                NewSecret::Fresh,
                TotpParams::default(),
                token,
            )
            .unwrap()
        };
        let (a, b) = (new(), new());
        assert_eq!(a.secret().bits(), 160);
        assert_ne!(a.secret(), b.secret());
        assert!(a.uri().contains(a.secret().to_base32().as_str()));
        assert!(a.uri().starts_with("otpauth://totp/h:alice?"));
        assert_eq!((a.user(), a.issuer(), a.token()), (&alice(), "h", token));
        assert_eq!(a.prompt(), ENROLL_PROMPT);
        assert_eq!(grouped_secret(a.secret()).len(), 32 + 7);
    }

    #[test]
    fn the_policy_gives_issuer_parameters_and_windows() {
        let policy = Policy::parse(
            "[policy]\nissuer = \"corp\"\n[totp]\ndigits = 8\nwindow = 2\n[hotp]\nwindow = 7",
            std::path::Path::new("/test.toml"),
        )
        .unwrap();
        let e = Enrollment::for_policy(&alice(), &policy, NewSecret::Given(key()), None).unwrap();
        assert_eq!((e.issuer(), e.params().digits), ("corp", 8));
        assert_eq!(e.token(), Token::Totp { window: 2 });
        let e = Enrollment::for_policy(&alice(), &policy, NewSecret::Fresh, Some(5)).unwrap();
        let want = Token::Hotp {
            counter: 5,
            look_ahead: 7,
        };
        assert_eq!(e.token(), want);
        assert_eq!(e.prompt(), HOTP_ENROLL_PROMPT);
        assert!(
            e.uri().starts_with("otpauth://hotp/corp:alice?") && e.uri().ends_with("counter=5")
        );
    }

    #[test]
    fn check_judges_totp_codes_within_the_window_for_the_time_given() {
        let e = totp(1);
        let right = Confirmation {
            matched: STEP,
            at: NOW,
        };
        assert_eq!(e.check(code(NOW).as_bytes(), NOW), Ok(right));
        // Spaces are fine; the previous step is inside the window.
        let spaced = format!("{} {}", &code(NOW)[..3], &code(NOW)[3..]);
        assert_eq!(e.check(spaced.as_bytes(), NOW), Ok(right));
        assert_eq!(
            e.check(code(NOW - 30).as_bytes(), NOW).unwrap().matched,
            STEP - 1
        );
        // Outside the window, a non-code, a clock before 1970.
        let wrong = Refusal::Wrong { hotp: false };
        assert_eq!(e.check(code(NOW - 90).as_bytes(), NOW), Err(wrong));
        assert_eq!(totp(0).check(code(NOW - 30).as_bytes(), NOW), Err(wrong));
        assert_eq!(
            e.check(b"12ab56", NOW),
            Err(Refusal::NotACode { digits: 6 })
        );
        assert_eq!(e.check(b"12345", NOW), Err(Refusal::NotACode { digits: 6 }));
        assert_eq!(
            e.check(b"123456", -1),
            Err(Refusal::ClockBeforeEpoch { now: -1 })
        );
    }

    #[test]
    fn check_judges_hotp_codes_within_the_look_ahead() {
        let e = hotp(10);
        assert_eq!(e.check(press(10).as_bytes(), NOW).unwrap().matched, 10);
        assert_eq!(e.check(press(13).as_bytes(), NOW).unwrap().matched, 13);
        let wrong = Refusal::Wrong { hotp: true };
        assert_eq!(e.check(press(14).as_bytes(), NOW), Err(wrong));
        assert_eq!(e.check(press(9).as_bytes(), NOW), Err(wrong));
        // A token at the end of the counter range can never confirm (no next counter).
        let at_max = hotp(u64::MAX);
        assert_eq!(at_max.check(press(u64::MAX).as_bytes(), NOW), Err(wrong));
    }

    #[test]
    fn refusals_say_what_to_check() {
        assert_eq!(
            Refusal::NotACode { digits: 6 }.to_string(),
            "That is not a 6-digit code."
        );
        assert!(
            Refusal::Wrong { hotp: false }
                .to_string()
                .contains("phone's clock")
        );
        assert!(
            Refusal::Wrong { hotp: true }
                .to_string()
                .contains("counter")
        );
        assert!(
            Refusal::ClockBeforeEpoch { now: -5 }
                .to_string()
                .contains("1970")
        );
    }

    #[test]
    fn confirm_counts_tries_down_and_reads_the_clock_per_answer() {
        let e = totp(1);
        let mut conv = script(&["000000", "abc", &code(NOW)]);
        let got = e.confirm(&mut conv, &FixedClock(NOW), "start over");
        assert_eq!(got.unwrap().matched, STEP);
        assert_eq!(conv.prompts, [ENROLL_PROMPT; 3]);
        assert!(conv.errors[0].contains("not right") && conv.errors[0].ends_with("2 tries left."));
        assert!(
            conv.errors[1].contains("not a 6-digit") && conv.errors[1].ends_with("1 try left.")
        );

        let mut conv = script(&["000000", "111111", "222222", &code(NOW)]);
        let got = e.confirm(&mut conv, &FixedClock(NOW), "log in again");
        assert_eq!(
            got,
            Err(Unconfirmed::WrongCodes {
                tries: CONFIRM_TRIES
            })
        );
        assert_eq!(conv.prompts.len(), CONFIRM_TRIES as usize);
        assert!(conv.errors[2].ends_with("Nothing was set up; log in again."));
    }

    #[test]
    fn confirm_stops_without_an_answer_or_a_clock() {
        let e = totp(1);
        let got = e.confirm(&mut script(&[]), &FixedClock(NOW), "x");
        assert!(matches!(got, Err(Unconfirmed::NoAnswer(_))));
        let got = e.confirm(&mut script(&["123456"]), &FixedClock(-3), "x");
        assert_eq!(got, Err(Unconfirmed::ClockBeforeEpoch { now: -3 }));
    }

    #[test]
    fn a_confirmed_totp_record_counts_the_code_as_used() {
        let proof = Proof::Confirmed(Confirmation {
            matched: STEP,
            at: NOW,
        });
        let r = totp(1).into_record(proof, None);
        assert_eq!(
            (r.kind, r.last_step, r.last_used, r.counter),
            (Kind::Totp, Some(STEP), None, None)
        );
        assert_eq!(
            (r.created, r.label.as_str(), r.account.as_deref()),
            (NOW, "alice", Some("alice"))
        );
        assert!(r.is_enabled() && r.secret == key() && r.issuer == "host");
        let r = totp(1).into_record(Proof::Unverified { now: NOW }, None);
        assert_eq!((r.last_step, r.last_used, r.created), (None, None, NOW));
    }

    #[test]
    fn a_hotp_record_starts_after_the_confirming_press() {
        let proof = Proof::Confirmed(Confirmation {
            matched: 12,
            at: NOW,
        });
        let r = hotp(10).into_record(proof, None);
        assert_eq!(
            (r.kind, r.counter, r.last_step, r.last_used),
            (Kind::Hotp, Some(13), None, None)
        );
        // Unverified: the token's next press is the counter given.
        let r = hotp(10).into_record(Proof::Unverified { now: NOW }, None);
        assert_eq!((r.counter, r.last_used), (Some(10), None));
        // The next counter never wraps.
        let proof = Proof::Confirmed(Confirmation {
            matched: u64::MAX,
            at: NOW,
        });
        assert_eq!(hotp(1).into_record(proof, None).counter, Some(u64::MAX));
    }

    #[test]
    fn activate_stores_with_backup_codes_and_keeps_an_existing_enrollment() {
        let dir = private_dir();
        let store = FileStore::new(dir.path());
        let proof = Proof::Unverified { now: NOW };
        let done = totp(1)
            .activate_with_cost(&store, proof, Replace::No, (2, CHEAP))
            .unwrap();
        let codes = done.codes.unwrap();
        assert_eq!(codes.shown.len(), 2);
        let stored = store.load(&alice()).unwrap().unwrap();
        assert_eq!(stored.backup_codes.as_ref(), Some(&codes.stored));

        // Without replace: kept and reported; with replace: written.
        let again = totp(1).activate_with_cost(&store, proof, Replace::No, (0, CHEAP));
        assert!(matches!(again, Err(EnrollError::AlreadyEnrolled { .. })));
        assert_eq!(store.load(&alice()).unwrap().unwrap(), stored);
        let later = Proof::Unverified { now: NOW + 1 };
        let replaced = totp(1).activate(&store, later, Replace::Yes, 0).unwrap();
        assert!(replaced.codes.is_none());
        let now_stored = store.load(&alice()).unwrap().unwrap();
        assert_eq!(
            (now_stored.created, now_stored.backup_codes),
            (NOW + 1, None)
        );
        // The same record again with replace: fine.
        assert!(totp(1).activate(&store, later, Replace::Yes, 0).is_ok());
    }

    #[test]
    fn activate_replaces_an_unreadable_record_only_when_asked() {
        let dir = private_dir();
        let store = FileStore::new(dir.path());
        let proof = Proof::Unverified { now: NOW };
        totp(1).activate(&store, proof, Replace::No, 0).unwrap();
        spoil_text(dir.path(), &alice());
        let kept = totp(1).activate(&store, proof, Replace::No, 0);
        assert!(
            matches!(kept, Err(EnrollError::Store(_))),
            "{:?}",
            kept.err()
        );
        totp(1).activate(&store, proof, Replace::Yes, 0).unwrap();
        assert!(store.load(&alice()).unwrap().is_some());
    }

    #[test]
    fn uri_has_every_parameter_and_encodes_names() {
        let secret = Secret::from_base32("JBSWY3DPEHPK3PXP").unwrap();
        let params = TotpParams {
            algorithm: Algorithm::SHA256,
            digits: 8,
            period: 60,
        };
        let uri = otpauth_uri("Example Corp", "alice@corp", &secret, params, None);
        assert_eq!(
            uri.as_str(),
            "otpauth://totp/Example%20Corp:alice%40corp?secret=JBSWY3DPEHPK3PXP&issuer=Example%20Corp&algorithm=SHA256&digits=8&period=60"
        );
        let uri = otpauth_uri("h", "bob", &secret, params, Some(7));
        assert_eq!(
            uri.as_str(),
            "otpauth://hotp/h:bob?secret=JBSWY3DPEHPK3PXP&issuer=h&algorithm=SHA256&digits=8&counter=7"
        );
    }

    #[test]
    fn shorter_uri_forms_leave_out_only_defaults_and_the_label_prefix() {
        let secret = Secret::from_base32("JBSWY3DPEHPK3PXP").unwrap();
        let names = ("Example Corp", "alice");
        let short = |form, params, counter| otpauth_uri_as(form, names, &secret, params, counter);
        let defaults = TotpParams::default();
        assert_eq!(
            short(UriForm::NoDefaults, defaults, None).as_str(),
            "otpauth://totp/Example%20Corp:alice?secret=JBSWY3DPEHPK3PXP&issuer=Example%20Corp"
        );
        assert_eq!(
            short(UriForm::AccountLabel, defaults, Some(3)).as_str(),
            "otpauth://hotp/alice?secret=JBSWY3DPEHPK3PXP&issuer=Example%20Corp&counter=3"
        );
        let odd = TotpParams {
            algorithm: Algorithm::SHA512,
            digits: 6,
            period: 60,
        };
        assert_eq!(
            short(UriForm::AccountLabel, odd, None).as_str(),
            "otpauth://totp/alice?secret=JBSWY3DPEHPK3PXP&issuer=Example%20Corp&algorithm=SHA512&period=60"
        );
        assert_eq!(
            short(UriForm::Full, defaults, None),
            otpauth_uri(names.0, names.1, &secret, defaults, None)
        );
    }
}
