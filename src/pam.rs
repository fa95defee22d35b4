//! The PAM entry points: the only file with `unsafe` (the two exported hooks, one trampoline
//! with the one panic guard, and the few libpam calls pam-bindings does not wrap). It reads the
//! handle, runs [`crate::login::authenticate`], logs the outcome and maps it to a PAM code. No
//! logic lives here.

use std::ffi::CStr;
use std::panic::{AssertUnwindSafe, catch_unwind};

use pam::constants::{
    PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON, PAM_SILENT, PAM_TEXT_INFO, PamFlag,
    PamResultCode,
};
use pam::conv::Conv;
use pam::items::{AuthTok, RHost, Service, Tty};
use pam::module::PamHandle;
use zeroize::Zeroizing;

use crate::log::{self, Level};
use crate::login::{
    self, Conversation, ConversationError, Failure, FirstFactor, Outcome, Request, Services,
    SplitAnswer, SystemClock,
};
use crate::policy::{ModuleArgs, Policy};
use crate::store::{AnyStore, StoreError};
use crate::user::{AccountError, Nss};

const IDENT: &str = "pam_twofold";
/// Delay before a failed stack returns, as pam_unix asks: slows guessing.
const FAIL_DELAY_USEC: libc::c_uint = 2_000_000;

/// PAM_AUTHTOK's item number in <security/_pam_types.h>.
const PAM_AUTHTOK: libc::c_int = 6;

// What pam-bindings does not wrap: the failure delay, setting PAM_AUTHTOK (its AuthTok
// item cannot be built from outside the crate), and reading the PAM environment.
#[link(name = "pam")]
unsafe extern "C" {
    fn pam_fail_delay(pamh: *mut PamHandle, usec: libc::c_uint) -> libc::c_int;
    fn pam_set_item(
        pamh: *mut PamHandle,
        item_type: libc::c_int,
        item: *const libc::c_void,
    ) -> libc::c_int;
    fn pam_getenv(pamh: *mut PamHandle, name: *const libc::c_char) -> *const libc::c_char;
}

// The only two symbols the module exports (a module that exported the account, session and
// password hooks too would be asked for them; pam-bindings' `pam_hooks!` makes all six).

/// `auth` in the stack: the second factor.
///
/// # Safety
/// Called by libpam with its live handle and the module's arguments (`argc` C strings).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_authenticate(
    pamh: *mut PamHandle,
    flags: PamFlag,
    argc: libc::c_int,
    argv: *const *const libc::c_char,
) -> PamResultCode {
    // SAFETY: libpam passes its live handle and `argc` valid C strings in `argv`.
    unsafe {
        guarded(pamh, argc, argv, |pamh, args| {
            authenticate(pamh, args, flags)
        })
    }
}

/// Nothing to set: the second factor grants no credentials. Success keeps stacks that call
/// setcred after auth working.
///
/// # Safety
/// Called by libpam; no argument is touched.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_setcred(
    _pamh: *mut PamHandle,
    _flags: PamFlag,
    _argc: libc::c_int,
    _argv: *const *const libc::c_char,
) -> PamResultCode {
    PamResultCode::PAM_SUCCESS
}

/// The one trampoline: null checks, the arguments as C strings, and the one panic guard. A
/// panic must not unwind into C (sshd, sudo): deny, log, keep the host alive. No panic hook is
/// installed: that would be process-wide.
///
/// # Safety
/// `pamh` is null or libpam's live handle; `argv` is null or holds `argc` valid C strings that
/// outlive the call.
unsafe fn guarded(
    pamh: *mut PamHandle,
    argc: libc::c_int,
    argv: *const *const libc::c_char,
    hook: impl FnOnce(&mut PamHandle, &[&CStr]) -> PamResultCode,
) -> PamResultCode {
    let run = || {
        // SAFETY: libpam's handle, valid for this call and used by nothing else meanwhile.
        let Some(pamh) = (unsafe { pamh.as_mut() }) else {
            return PamResultCode::PAM_SERVICE_ERR;
        };
        let count = usize::try_from(argc).unwrap_or(0);
        let args: Vec<&CStr> = match argv.is_null() {
            true => Vec::new(),
            // SAFETY: `argv` holds `argc` pointers to NUL-terminated strings (see above).
            false => (0..count)
                .filter_map(|i| unsafe { argv.add(i).read().as_ref() })
                // SAFETY: each non-null pointer is a NUL-terminated string owned by libpam.
                .map(|arg| unsafe { CStr::from_ptr(arg) })
                .collect(),
        };
        hook(pamh, &args)
    };
    catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|_| {
        log::send(
            IDENT,
            Level::Error,
            "internal error (panic) in pam_twofold; authentication denied",
        );
        PamResultCode::PAM_SERVICE_ERR
    })
}

/// The PAM conversation function and PAM_AUTHTOK behind [`Conversation`].
struct PamConversation<'a> {
    pamh: &'a mut PamHandle,
}

impl PamConversation<'_> {
    fn send(
        &self,
        style: libc::c_int,
        text: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
        let conv = match self.pamh.get_item::<Conv>() {
            Ok(Some(conv)) => conv,
            _ => {
                return Err(ConversationError(
                    "the application has no conversation".into(),
                ));
            }
        };
        match conv.send(style, text) {
            // pam-bindings wipes its own copy (SecretBytes) when it drops.
            Ok(answer) => Ok(answer.map(|a| Zeroizing::new(a.as_bytes().to_vec()))),
            Err(code) => Err(ConversationError(format!("{code:?}"))),
        }
    }
}

impl Conversation for PamConversation<'_> {
    fn ask_hidden(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, ConversationError> {
        Ok(self.send(PAM_PROMPT_ECHO_OFF, prompt)?.unwrap_or_default())
    }

    fn ask_visible(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, ConversationError> {
        Ok(self.send(PAM_PROMPT_ECHO_ON, prompt)?.unwrap_or_default())
    }

    fn info(&mut self, text: &str) -> Result<(), ConversationError> {
        self.send(PAM_TEXT_INFO, text).map(drop)
    }

    fn error(&mut self, text: &str) -> Result<(), ConversationError> {
        self.send(PAM_ERROR_MSG, text).map(drop)
    }

    /// sshd (it sets PAM_TTY to "ssh") sends text to the client only with the next prompt or
    /// as the note of a failed attempt, which the client hides at `LogLevel ERROR` (`ssh -q`):
    /// only a prompt always shows. So there the explanation is a prompt, answered with Enter.
    fn explain(&mut self, text: &str) -> Result<(), ConversationError> {
        let tty = self.pamh.get_item::<Tty>().ok().flatten();
        if tty.is_some_and(|t| t.0.to_bytes() == b"ssh") {
            let prompt = format!("{text}\nPress Enter to close. ");
            return self.ask_visible(&prompt).map(drop);
        }
        self.error(text)
    }

    fn password_item(&mut self) -> Option<Zeroizing<Vec<u8>>> {
        let item = self.pamh.get_item::<AuthTok>().ok().flatten()?;
        Some(Zeroizing::new(item.as_bytes().to_vec()))
    }

    fn set_password_item(&mut self, password: &[u8]) -> Result<(), ConversationError> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(password.len() + 1));
        bytes.extend_from_slice(password);
        if bytes.contains(&0) {
            return Err(ConversationError("the password contains a NUL byte".into()));
        }
        bytes.push(0);
        // SAFETY: `pamh` is the live handle of this hook; `bytes` is a NUL-terminated string
        // that outlives the call, and pam_set_item copies it (so it can be wiped after).
        let rc = unsafe { pam_set_item(self.pamh, PAM_AUTHTOK, bytes.as_ptr().cast()) };
        match rc {
            0 => Ok(()),
            rc => Err(ConversationError(format!(
                "pam_set_item(PAM_AUTHTOK) returned {rc}"
            ))),
        }
    }
}

fn lossy(item: Option<&CStr>) -> Option<String> {
    item.map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
}

/// Where the `split_code` line leaves the code for the judging line (pam_set_data: it lives
/// in this PAM handle only and is wiped by its cleanup when the handle ends).
const SPLIT_KEY: &str = "pam_twofold.split_answer";
/// sshd's list of the methods that already succeeded (see FACTS.md).
const SSH_AUTH_INFO: &CStr = c"SSH_AUTH_INFO_0";

/// What this hook was handed, read once.
struct Items {
    user: String,
    service: String,
    rhost: Option<String>,
}

impl Items {
    fn read(pamh: &mut PamHandle) -> Result<Self, PamResultCode> {
        let user = pamh.get_user(None).inspect_err(|code| {
            log::send(
                IDENT,
                Level::Error,
                &format!("cannot get the user name from PAM ({code:?}); denied"),
            );
        })?;
        let service =
            lossy(pamh.get_item::<Service>().ok().flatten().map(|s| s.0)).unwrap_or_default();
        let rhost = lossy(pamh.get_item::<RHost>().ok().flatten().map(|s| s.0));
        Ok(Self {
            user,
            service,
            rhost,
        })
    }

    /// The fields every log line ends with, each quoted: a value cannot forge another field.
    fn context(&self) -> String {
        log::fields(&[
            ("user", &self.user),
            ("service", &self.service),
            ("rhost", self.rhost.as_deref().unwrap_or("-")),
        ])
    }
}

/// The PAM environment variable `name`, copied out of the handle.
fn pam_env(pamh: &mut PamHandle, name: &CStr) -> Option<String> {
    // SAFETY: `pamh` is the live handle of this hook and `name` a NUL-terminated string;
    // pam_getenv returns NULL or a pointer into the handle's environment, valid until the
    // next change of it, and it is copied before anything else touches the handle.
    let value = unsafe { pam_getenv(pamh, name.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: non-NULL, so a NUL-terminated string owned by the handle (see above).
    lossy(Some(unsafe { CStr::from_ptr(value) }))
}

fn first_factor(pamh: &mut PamHandle) -> FirstFactor {
    if pam_env(pamh, SSH_AUTH_INFO).is_some_and(|info| !info.trim().is_empty()) {
        return FirstFactor::SshMethod;
    }
    match pamh.get_item::<AuthTok>() {
        Ok(Some(token)) if !token.as_bytes().is_empty() => FirstFactor::Password,
        _ => FirstFactor::Unseen,
    }
}

/// The code the `split_code` line kept, taken so that it is judged once.
fn take_split(pamh: &mut PamHandle) -> Option<SplitAnswer> {
    // SAFETY: only this module writes SPLIT_KEY, always as Option<SplitAnswer> (set_split).
    let kept = unsafe { pamh.get_data::<Option<SplitAnswer>>(SPLIT_KEY) }
        .ok()
        .cloned()
        .flatten();
    if kept.is_some() {
        let _ = pamh.set_data::<Option<SplitAnswer>>(SPLIT_KEY, Box::new(None));
    }
    kept
}

fn set_split(pamh: &mut PamHandle, answer: SplitAnswer) -> Result<(), PamResultCode> {
    pamh.set_data::<Option<SplitAnswer>>(SPLIT_KEY, Box::new(Some(answer)))
}

fn load_policy(args: &ModuleArgs, context: &str) -> Result<Policy, PamResultCode> {
    Policy::load(args.config_path()).map_err(|e| {
        log::event(
            IDENT,
            Level::Error,
            &format!("denied (fail closed): {e}"),
            context,
        );
        PamResultCode::PAM_SERVICE_ERR
    })
}

fn authenticate(pamh: &mut PamHandle, raw_args: &[&CStr], flags: PamFlag) -> PamResultCode {
    // SAFETY: `pamh` is the live handle PAM passed to this hook; pam_fail_delay only records
    // the delay in it.
    unsafe { pam_fail_delay(pamh, FAIL_DELAY_USEC) };

    let args = match ModuleArgs::parse(raw_args.iter().map(|a| a.to_str().unwrap_or("<non-UTF-8>")))
    {
        Ok(args) => args,
        Err(e) => {
            log::send(
                IDENT,
                Level::Error,
                &format!("configuration error in the PAM stack: {e}; denied"),
            );
            return PamResultCode::PAM_SERVICE_ERR;
        }
    };
    let items = match Items::read(pamh) {
        Ok(items) => items,
        Err(code) => return code,
    };
    let context = items.context();
    let policy = match load_policy(&args, &context) {
        Ok(policy) => policy,
        Err(code) => return code,
    };
    if args.debug {
        let line = format!(
            "policy {}, store {}",
            args.config_path().display(),
            policy.store.dir.display()
        );
        log::event(IDENT, Level::Debug, &line, &context);
    }
    if !matches!(pamh.get_item::<Conv>(), Ok(Some(_))) {
        log::event(
            IDENT,
            Level::Error,
            "the application has no PAM conversation; denied",
            &context,
        );
        return PamResultCode::PAM_CONV_ERR;
    }
    let store = AnyStore::from_policy(&policy);
    let services = Services {
        store: &store,
        directory: &Nss,
    };
    if args.split_code {
        return split_line(pamh, &items, &args, &services, &context);
    }
    judging_line(pamh, &items, &policy, &args, &services, flags)
}

/// The `split_code` line: hands the password on, keeps the code, decides nothing.
fn split_line(
    pamh: &mut PamHandle,
    items: &Items,
    args: &ModuleArgs,
    services: &Services<'_, AnyStore, Nss>,
    context: &str,
) -> PamResultCode {
    let mut conversation = PamConversation { pamh };
    match login::split_code(&items.user, args, services, &mut conversation) {
        Ok(answer) => match set_split(pamh, answer) {
            Ok(()) => PamResultCode::PAM_IGNORE,
            Err(code) => {
                let line = format!("split_code: cannot keep the code ({code:?}); denied");
                log::event(IDENT, Level::Error, &line, context);
                PamResultCode::PAM_SERVICE_ERR
            }
        },
        Err(outcome) => {
            log::event(
                IDENT,
                outcome.log_level(),
                &format!("split_code: {outcome}"),
                context,
            );
            pam_code(&outcome, false)
        }
    }
}

/// A line that judges: after the first factor, with the code asked now or kept by
/// `split_code`.
fn judging_line(
    pamh: &mut PamHandle,
    items: &Items,
    policy: &Policy,
    args: &ModuleArgs,
    services: &Services<'_, AnyStore, Nss>,
    flags: PamFlag,
) -> PamResultCode {
    let split = take_split(pamh);
    let auth_info = pam_env(pamh, SSH_AUTH_INFO);
    let request = Request {
        user: &items.user,
        service: &items.service,
        rhost: items.rhost.as_deref(),
        silent: flags & PAM_SILENT != 0,
        first_factor: first_factor(pamh),
        ssh_auth_info: auth_info.as_deref(),
        split: split.as_ref(),
    };
    let mut conversation = PamConversation { pamh };
    let login::Judged { rule, outcome } = login::authenticate_judged(
        &request,
        policy,
        args,
        services,
        &mut conversation,
        &SystemClock,
    );

    // Every rule's decision is logged with its name; "not required" without one only in debug.
    let not_required = matches!(outcome, Outcome::NotRequired { .. }) && rule.is_none();
    if !not_required || args.debug {
        let level = if not_required {
            Level::Debug
        } else {
            outcome.log_level()
        };
        let mut context = items.context();
        if let Some(rule) = &rule {
            context = format!("{context} {}", log::fields(&[("rule", rule)]));
        }
        log::event(IDENT, level, &outcome.to_string(), &context);
    }
    pam_code(&outcome, args.nullok)
}

fn pam_code(outcome: &Outcome, nullok: bool) -> PamResultCode {
    match outcome {
        Outcome::Accepted { .. }
        | Outcome::TrustedHost { .. }
        | Outcome::Enrolled { .. }
        | Outcome::Confirmed { .. } => PamResultCode::PAM_SUCCESS,
        // Put off before the deadline: as if not required (the stack decides).
        // Skipped by a rule: exactly as not required.
        Outcome::NotRequired { .. } | Outcome::PutOff { .. } | Outcome::SkippedByRule { .. }
            if nullok =>
        {
            PamResultCode::PAM_SUCCESS
        }
        Outcome::NotRequired { .. } | Outcome::PutOff { .. } | Outcome::SkippedByRule { .. } => {
            PamResultCode::PAM_IGNORE
        }
        Outcome::DeniedByRule { .. }
        | Outcome::NotEnrolled
        | Outcome::DisabledButRequired
        | Outcome::Locked { .. }
        | Outcome::EnrollFailed(_)
        | Outcome::EnrollWithoutFirstFactor
        | Outcome::Rejected(_) => PamResultCode::PAM_AUTH_ERR,
        Outcome::Failed(Failure::Account(
            AccountError::Unknown { .. } | AccountError::BadName(_),
        )) => PamResultCode::PAM_USER_UNKNOWN,
        Outcome::Failed(Failure::Account(AccountError::Lookup { .. })) => {
            PamResultCode::PAM_AUTHINFO_UNAVAIL
        }
        Outcome::Failed(Failure::Account(_)) => PamResultCode::PAM_AUTH_ERR,
        // The agent found the policy's [store] wrong: a setup error, like a bad policy.
        Outcome::Failed(
            Failure::Policy(_)
            | Failure::PasswordItem(_)
            | Failure::Store(StoreError::Settings { .. }),
        ) => PamResultCode::PAM_SERVICE_ERR,
        Outcome::Failed(
            Failure::Store(_)
            | Failure::Backup(_)
            | Failure::Enroll(_)
            | Failure::ClockBeforeEpoch { .. },
        ) => PamResultCode::PAM_AUTHINFO_UNAVAIL,
        Outcome::ConversationFailed(_) => PamResultCode::PAM_CONV_ERR,
    }
}
