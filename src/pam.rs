//! The PAM entry points: the only file with `unsafe` (the two exported hooks, one trampoline
//! with the one panic guard, and the few libpam calls pam-bindings does not wrap). It reads the
//! handle into a [`Start`], has [`relay::module::run`] start the login helper and relay its
//! prompts to the application's conversation, and leaves the helper's PAM_AUTHTOK and kept
//! code in the handle. No login logic lives here (nor is linked here: see src/relay/).

use std::ffi::CStr;
use std::panic::{AssertUnwindSafe, catch_unwind};

use pam::constants::{PAM_SILENT, PamFlag, PamResultCode};
use pam::conv::Conv;
use pam::items::{AuthTok, RHost, Service, Tty};
use pam::module::PamHandle;
use zeroize::Zeroizing;

use crate::log::{self, Level};
use crate::relay;
use crate::relay::login::{IDENT, context};
use crate::relay::wire::Start;
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

fn lossy(item: Option<&CStr>) -> Option<String> {
    item.map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
}

/// Where the `split_code` line leaves the code for the judging line (pam_set_data: it lives
/// in this PAM handle only and is wiped by its cleanup when the handle ends). Opaque here:
/// the helper made it and reads it.
/// (Renamed when its type changed: two builds in one stack must never read each other's.)
const SPLIT_KEY: &str = "pam_twofold.split_answer.v2";
/// sshd's list of the methods that already succeeded (see FACTS.md).
const SSH_AUTH_INFO: &CStr = c"SSH_AUTH_INFO_0";

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

/// The code the `split_code` line kept, taken so that it is judged once.
fn take_kept(pamh: &mut PamHandle) -> Option<Zeroizing<Vec<u8>>> {
    // SAFETY: only this module writes SPLIT_KEY, always as Option<Zeroizing<Vec<u8>>>.
    let kept = unsafe { pamh.get_data::<Option<Zeroizing<Vec<u8>>>>(SPLIT_KEY) }
        .ok()
        .cloned()
        .flatten();
    if kept.is_some() {
        let _ = pamh.set_data::<Option<Zeroizing<Vec<u8>>>>(SPLIT_KEY, Box::new(None));
    }
    kept
}

/// Everything the helper needs from the handle, read once.
fn read_start(
    pamh: &mut PamHandle,
    args: Vec<String>,
    flags: PamFlag,
) -> Result<Start, PamResultCode> {
    let user = pamh.get_user(None).inspect_err(|code| {
        let line = format!("cannot get the user name from PAM ({code:?}); denied");
        log::send(IDENT, Level::Error, &line);
    })?;
    let item = |s: Option<&CStr>| lossy(s);
    let authtok = pamh.get_item::<AuthTok>().ok().flatten();
    let authtok_set = authtok.as_ref().is_some_and(|t| !t.as_bytes().is_empty());
    // Only a `split_code` line takes the code off PAM_AUTHTOK; others learn only that it is set.
    let split = args.iter().any(|a| a == "split_code");
    let authtok = authtok
        .filter(|_| split)
        .map(|t| Zeroizing::new(t.as_bytes().to_vec()));
    Ok(Start {
        silent: flags & PAM_SILENT != 0,
        service: item(pamh.get_item::<Service>().ok().flatten().map(|s| s.0)).unwrap_or_default(),
        rhost: item(pamh.get_item::<RHost>().ok().flatten().map(|s| s.0)),
        tty: item(pamh.get_item::<Tty>().ok().flatten().map(|s| s.0)),
        authtok_set,
        authtok,
        ssh_auth_info: pam_env(pamh, SSH_AUTH_INFO),
        kept: if split { None } else { take_kept(pamh) },
        user,
        args,
    })
}

/// The application's conversation, one message at a time.
fn converse(
    pamh: &mut PamHandle,
    style: i32,
    text: &str,
) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
    let conv = match pamh.get_item::<Conv>() {
        Ok(Some(conv)) => conv,
        _ => return Err("the application has no conversation".into()),
    };
    match conv.send(style, text) {
        // pam-bindings wipes its own copy (SecretBytes) when it drops.
        Ok(answer) => Ok(answer.map(|a| Zeroizing::new(a.as_bytes().to_vec()))),
        Err(code) => Err(format!("{code:?}")),
    }
}

/// Sets PAM_AUTHTOK for the modules after this line.
fn set_authtok(pamh: &mut PamHandle, password: &[u8]) -> Result<(), String> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(password.len() + 1));
    bytes.extend_from_slice(password);
    if bytes.contains(&0) {
        return Err("the password contains a NUL byte".into());
    }
    bytes.push(0);
    // SAFETY: `pamh` is the live handle of this hook; `bytes` is a NUL-terminated string
    // that outlives the call, and pam_set_item copies it (so it can be wiped after).
    let rc = unsafe { pam_set_item(pamh, PAM_AUTHTOK, bytes.as_ptr().cast()) };
    match rc {
        0 => Ok(()),
        rc => Err(format!("pam_set_item(PAM_AUTHTOK) returned {rc}")),
    }
}

fn authenticate(pamh: &mut PamHandle, raw_args: &[&CStr], flags: PamFlag) -> PamResultCode {
    // SAFETY: `pamh` is the live handle PAM passed to this hook; pam_fail_delay only records
    // the delay in it.
    unsafe { pam_fail_delay(pamh, FAIL_DELAY_USEC) };
    let args: Vec<String> = raw_args
        .iter()
        .map(|a| a.to_str().unwrap_or("<non-UTF-8>").to_owned())
        .collect();
    let start = match read_start(pamh, args, flags) {
        Ok(start) => start,
        Err(code) => return code,
    };
    let deny = |line: String| {
        log::event(IDENT, Level::Error, &line, &context(&start));
        PamResultCode::PAM_SERVICE_ERR
    };
    if !matches!(pamh.get_item::<Conv>(), Ok(Some(_))) {
        deny("the application has no PAM conversation; denied".into());
        return PamResultCode::PAM_CONV_ERR;
    }
    let verdict = relay::module::helper_path(&start.args).and_then(|helper| {
        relay::module::run(&helper, &start, &mut |style, text| {
            converse(pamh, style, text)
        })
    });
    let verdict = match verdict {
        Ok(verdict) => verdict,
        Err(e) => return deny(format!("{e}; denied")),
    };
    // Only a `split_code` line hands a password on or keeps a code.
    let split = start.args.iter().any(|a| a == "split_code");
    if !split && (verdict.authtok.is_some() || verdict.keep.is_some()) {
        return deny(
            "the login helper answered as a split_code line on another line; denied".into(),
        );
    }
    if let Some(password) = &verdict.authtok {
        if let Err(e) = set_authtok(pamh, password) {
            return deny(format!(
                "split_code: cannot hand the password on ({e}); denied"
            ));
        }
    }
    if let Some(keep) = verdict.keep {
        if let Err(code) =
            pamh.set_data::<Option<Zeroizing<Vec<u8>>>>(SPLIT_KEY, Box::new(Some(keep)))
        {
            return deny(format!(
                "split_code: cannot keep the code ({code:?}); denied"
            ));
        }
    }
    pam_code(verdict.code)
}

/// The helper's code, if it is one the login gives; anything else denies.
fn pam_code(code: i32) -> PamResultCode {
    use PamResultCode::*;
    match code {
        c if c == PAM_SUCCESS as i32 => PAM_SUCCESS,
        c if c == PAM_IGNORE as i32 => PAM_IGNORE,
        c if c == PAM_AUTH_ERR as i32 => PAM_AUTH_ERR,
        c if c == PAM_USER_UNKNOWN as i32 => PAM_USER_UNKNOWN,
        c if c == PAM_AUTHINFO_UNAVAIL as i32 => PAM_AUTHINFO_UNAVAIL,
        c if c == PAM_CONV_ERR as i32 => PAM_CONV_ERR,
        _ => PAM_SERVICE_ERR,
    }
}
