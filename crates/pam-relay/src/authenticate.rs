//! `pam_sm_authenticate`'s work: read the handle into a [`Start`], have [`relay::run`] start
//! the login helper and relay its prompts to the application's conversation, and leave the
//! helper's PAM_AUTHTOK and kept code in the handle. No login logic lives here.
#![forbid(unsafe_code)]

use alloc::borrow::ToOwned;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::ffi::CStr;

use twofold_wire::frame::Start;
use twofold_wire::syslog::{Level, fields};
use twofold_wire::text;
use twofold_wire::text::lossy as lossy_utf8;
use zeroize::Zeroizing;

use crate::codes::{self, PAM_CONV_ERR, PAM_SERVICE_ERR, PAM_SILENT};
use crate::handle::{Item, PamCalls};
use crate::log;
use crate::relay;

/// Delay before a failed stack returns, as pam_unix asks: slows guessing.
const FAIL_DELAY_USEC: u32 = 2_000_000;

/// Where the `split_code` line leaves the code for the judging line (pam_set_data: it lives
/// in this PAM handle only and is wiped by its cleanup when the handle ends). Opaque here:
/// the helper made it and reads it. (Renamed when its producer changed: two builds in one
/// stack must never read each other's.)
const SPLIT_KEY: &CStr = c"pam_twofold.split_answer.v3";
/// sshd's list of the methods that already succeeded (see FACTS.md).
const SSH_AUTH_INFO: &CStr = c"SSH_AUTH_INFO_0";

pub fn authenticate(pamh: &mut impl PamCalls, raw_args: &[&CStr], flags: u32) -> i32 {
    pamh.fail_delay(FAIL_DELAY_USEC);
    let args: Vec<String> = raw_args
        .iter()
        .map(|a| a.to_str().unwrap_or("<non-UTF-8>").to_owned())
        .collect();
    let start = match read_start(pamh, args, flags) {
        Ok(start) => start,
        Err(code) => return code,
    };
    #[cfg(feature = "test-panic")]
    #[allow(clippy::panic)]
    if start.user == "twofold-test-panic-module" {
        panic!("test-panic feature: a forced panic in the module");
    }
    let deny = |line: &str| {
        log::event(Level::Error, line, &context(&start));
        PAM_SERVICE_ERR
    };
    if !pamh.has_conversation() {
        deny("the application has no PAM conversation; denied");
        return PAM_CONV_ERR;
    }
    let verdict = relay::Helper::from_args(&start.args).and_then(|helper| {
        relay::run(&helper, &start, &mut |style, text| {
            converse(pamh, style, text)
        })
    });
    let verdict = match verdict {
        Ok(verdict) => verdict,
        Err(e) => return deny(&text!("{e}; denied")),
    };
    // Only a `split_code` line hands a password on or keeps a code.
    let split = start.args.iter().any(|a| a == "split_code");
    if !split && (verdict.authtok.is_some() || verdict.keep.is_some()) {
        return deny("the login helper answered as a split_code line on another line; denied");
    }
    if let Some(password) = &verdict.authtok {
        if let Err(e) = set_authtok(pamh, password) {
            return deny(&text!(
                "split_code: cannot hand the password on ({e}); denied"
            ));
        }
    }
    if let Some(keep) = verdict.keep {
        if let Err(code) = pamh.set_kept(SPLIT_KEY, Some(keep)) {
            let name = codes::name(code);
            return deny(&text!("split_code: cannot keep the code ({name}); denied"));
        }
    }
    codes::verdict(verdict.code)
}

/// The fields every log line ends with, each quoted: a value cannot forge another field.
fn context(start: &Start) -> String {
    fields(&[
        ("user", &start.user),
        ("service", &start.service),
        ("rhost", start.rhost.as_deref().unwrap_or("-")),
    ])
}

/// Text from the handle as the helper reads it: lossy UTF-8, empty as unset.
fn lossy(bytes: Option<&[u8]>) -> Option<String> {
    bytes.map(lossy_utf8).filter(|s| !s.is_empty())
}

/// Everything the helper needs from the handle, read once.
fn read_start<P: PamCalls>(pamh: &mut P, args: Vec<String>, flags: u32) -> Result<Start, i32> {
    let user = pamh.user().inspect_err(|code| {
        let name = codes::name(*code);
        log::send(
            Level::Error,
            &text!("cannot get the user name from PAM ({name}); denied"),
        );
    })?;
    let authtok = pamh.item(Item::AuthTok);
    let authtok_set = authtok.as_ref().is_some_and(|t| !t.is_empty());
    // Only a `split_code` line takes the code off PAM_AUTHTOK; others learn only that it is set.
    let split = args.iter().any(|a| a == "split_code");
    let item = |pamh: &mut P, item| lossy(pamh.item(item).as_deref().map(Vec::as_slice));
    Ok(Start {
        silent: flags & PAM_SILENT != 0,
        service: item(pamh, Item::Service).unwrap_or_default(),
        rhost: item(pamh, Item::RHost),
        tty: item(pamh, Item::Tty),
        authtok_set,
        authtok: authtok.filter(|_| split),
        ssh_auth_info: lossy(pamh.env(SSH_AUTH_INFO).as_deref()),
        kept: if split {
            None
        } else {
            pamh.take_kept(SPLIT_KEY)
        },
        user,
        args,
    })
}

/// The application's conversation, one message at a time.
fn converse(
    pamh: &mut impl PamCalls,
    style: i32,
    text: &str,
) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
    if !pamh.has_conversation() {
        return Err("the application has no conversation".to_string());
    }
    pamh.converse(style, text)
        .map_err(|code| codes::name(code).to_string())
}

/// Sets PAM_AUTHTOK for the modules after this line.
fn set_authtok(pamh: &mut impl PamCalls, password: &[u8]) -> Result<(), String> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(password.len().saturating_add(1)));
    bytes.extend_from_slice(password);
    bytes.push(0);
    let text = CStr::from_bytes_with_nul(&bytes)
        .map_err(|_| "the password contains a NUL byte".to_string())?;
    pamh.set_authtok(text)
        .map_err(|rc| text!("pam_set_item(PAM_AUTHTOK) returned {rc}"))
}
