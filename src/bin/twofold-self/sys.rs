//! The only `unsafe` code of `twofold-self`: clearing the inherited environment (unsafe in
//! Rust 2024 because another thread could read it at the same time) and the PAM client calls
//! (`pam_start`, `pam_authenticate`, `pam_acct_mgmt`, `pam_end` and the conversation callback
//! libpam calls back into). Everything else in the helper is `forbid(unsafe_code)`.
//!
//! Why not a crate for the PAM client side: the maintained ones (`pam-client`, `pam`) build
//! their bindings with bindgen at compile time (libclang, ~25 more build crates) for the five
//! functions used here. sudo-rs keeps its own PAM bindings for the same reason.

// The one file of the helper that may: main.rs denies it everywhere else.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

use pam_twofold::Conversation;
use zeroize::Zeroizing;

// <security/_pam_types.h>
const PAM_SUCCESS: c_int = 0;
const PAM_BUF_ERR: c_int = 5;
const PAM_CONV_ERR: c_int = 19;
const PAM_RUSER: c_int = 8;
const PAM_DISALLOW_NULL_AUTHTOK: c_int = 0x0001;
const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_ERROR_MSG: c_int = 3;
const PAM_TEXT_INFO: c_int = 4;
const PAM_MAX_NUM_MSG: c_int = 32;
const PAM_MAX_RESP_SIZE: usize = 512;

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn =
    extern "C" fn(c_int, *mut *const PamMessage, *mut *mut PamResponse, *mut c_void) -> c_int;

#[repr(C)]
struct PamConv {
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

/// libpam's opaque handle.
#[repr(C)]
struct PamHandle {
    _private: [u8; 0],
}

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_start(
        service: *const c_char,
        user: *const c_char,
        conv: *const PamConv,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_authenticate(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_acct_mgmt(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut PamHandle, status: c_int) -> c_int;
    fn pam_strerror(pamh: *mut PamHandle, errnum: c_int) -> *const c_char;
}

/// Removes every inherited environment variable, then sets only `keep`. Called first thing
/// in `main`, before anything reads the environment.
pub fn reset_environment(keep: &[(&str, &str)]) {
    let names: Vec<_> = std::env::vars_os().map(|(name, _)| name).collect();
    for name in names {
        // SAFETY: the environment is only unsafe to change while another thread may read it;
        // this runs at the start of `main`, before the helper starts any thread or calls
        // into a library that could (PAM, NSS, the database client come later).
        unsafe { std::env::remove_var(name) };
    }
    for (name, value) in keep {
        // SAFETY: as above, still single-threaded.
        unsafe { std::env::set_var(name, value) };
    }
}

/// Which PAM call failed, with libpam's code and its words for it.
#[derive(Debug)]
pub struct PamFailure {
    pub call: &'static str,
    pub code: c_int,
    pub text: String,
}

/// Runs `service`'s auth and account stacks for `user`, talking through `conversation`.
pub fn authenticate(
    service: &str,
    user: &str,
    conversation: &mut dyn Conversation,
) -> Result<(), PamFailure> {
    let failure = |call, code| PamFailure {
        call,
        code,
        text: String::from("a name with a NUL byte"),
    };
    let service_c = CString::new(service).map_err(|_| failure("pam_start", PAM_BUF_ERR))?;
    let user_c = CString::new(user).map_err(|_| failure("pam_start", PAM_BUF_ERR))?;
    let mut data = ConvData { conversation };
    let conv = PamConv {
        conv: Some(converse),
        appdata_ptr: (&raw mut data).cast(),
    };
    let mut pamh: *mut PamHandle = ptr::null_mut();
    // SAFETY: the strings are NUL-terminated and outlive the call (libpam copies them);
    // `conv` and the `data` it points to live until `pam_end` below, which is reached on
    // every path once `pam_start` succeeded.
    let started = unsafe { pam_start(service_c.as_ptr(), user_c.as_ptr(), &conv, &mut pamh) };
    if started != PAM_SUCCESS || pamh.is_null() {
        return Err(PamFailure {
            call: "pam_start",
            code: started,
            text: error_text(ptr::null_mut(), started),
        });
    }
    let result = run_stacks(pamh, &user_c);
    let status = result.as_ref().map_or_else(|f| f.code, |()| PAM_SUCCESS);
    // SAFETY: `pamh` came from a successful `pam_start` and is ended exactly once.
    unsafe { pam_end(pamh, status) };
    result
}

/// PAM_RUSER, then `pam_authenticate` and `pam_acct_mgmt` on a started handle.
fn run_stacks(pamh: *mut PamHandle, user: &CStr) -> Result<(), PamFailure> {
    let check = |call, code| match code {
        PAM_SUCCESS => Ok(()),
        code => Err(PamFailure {
            call,
            code,
            text: error_text(pamh, code),
        }),
    };
    // SAFETY: `pamh` is a started handle; libpam copies the string.
    let code = unsafe { pam_set_item(pamh, PAM_RUSER, user.as_ptr().cast()) };
    check("pam_set_item", code)?;
    // SAFETY: `pamh` is a started handle whose conversation data is alive (see caller).
    let code = unsafe { pam_authenticate(pamh, PAM_DISALLOW_NULL_AUTHTOK) };
    check("pam_authenticate", code)?;
    // SAFETY: as above.
    let code = unsafe { pam_acct_mgmt(pamh, PAM_DISALLOW_NULL_AUTHTOK) };
    check("pam_acct_mgmt", code)
}

fn error_text(pamh: *mut PamHandle, code: c_int) -> String {
    // SAFETY: pam_strerror accepts any handle (it does not use it on Linux-PAM) and returns a
    // pointer to a static string, or NULL.
    let text = unsafe { pam_strerror(pamh, code) };
    if text.is_null() {
        return format!("PAM error {code}");
    }
    // SAFETY: non-NULL, NUL-terminated, static (see above).
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned()
}

/// What the conversation callback reaches through `appdata_ptr`.
struct ConvData<'a> {
    conversation: &'a mut dyn Conversation,
}

/// The callback libpam calls for prompts and messages. A panic must not unwind into C.
extern "C" fn converse(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    // SAFETY: the pointers are libpam's, checked in `converse_checked` before use.
    catch_unwind(AssertUnwindSafe(|| unsafe {
        converse_checked(num_msg, msg, resp, appdata)
    }))
    .unwrap_or(PAM_CONV_ERR)
}

/// # Safety
/// As libpam calls a conversation function: `msg` points to `num_msg` message pointers (the
/// Linux-PAM layout), `resp` to where the answer array goes, `appdata` to our [`ConvData`].
unsafe fn converse_checked(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    if !(1..=PAM_MAX_NUM_MSG).contains(&num_msg) || msg.is_null() || resp.is_null() {
        return PAM_CONV_ERR;
    }
    if appdata.is_null() {
        return PAM_CONV_ERR;
    }
    // SAFETY: `appdata` is the `ConvData` that `authenticate` handed to `pam_start`; it lives
    // until `pam_end`, and libpam calls back only from inside pam_authenticate/pam_acct_mgmt.
    let data = unsafe { &mut *appdata.cast::<ConvData<'_>>() };
    let mut answers: Vec<Option<Zeroizing<Vec<u8>>>> = Vec::new();
    for i in 0..num_msg as usize {
        // SAFETY: Linux-PAM passes an array of `num_msg` pointers; index `i` is inside it.
        let message = unsafe { *msg.add(i) };
        if message.is_null() {
            return PAM_CONV_ERR;
        }
        // SAFETY: non-NULL pointer to a message libpam owns for this call.
        let (style, text) = unsafe { ((*message).msg_style, (*message).msg) };
        let text = if text.is_null() {
            String::new()
        } else {
            // SAFETY: a NUL-terminated string owned by libpam for this call.
            unsafe { CStr::from_ptr(text) }
                .to_string_lossy()
                .into_owned()
        };
        match answer(data.conversation, style, &text) {
            Ok(answer) => answers.push(answer),
            Err(code) => return code,
        }
    }
    // SAFETY: `resp` is non-NULL (checked above) and the answers are ours to hand over.
    unsafe { hand_over(&answers, resp) }
}

/// One message: a prompt's answer, or `None` for text shown.
fn answer(
    conversation: &mut dyn Conversation,
    style: c_int,
    text: &str,
) -> Result<Option<Zeroizing<Vec<u8>>>, c_int> {
    let answer = match style {
        PAM_PROMPT_ECHO_OFF => conversation.ask_hidden(text).map(Some),
        PAM_PROMPT_ECHO_ON => conversation.ask_visible(text).map(Some),
        PAM_ERROR_MSG => conversation.error(text).map(|()| None),
        PAM_TEXT_INFO => conversation.info(text).map(|()| None),
        _ => return Err(PAM_CONV_ERR),
    }
    .map_err(|_| PAM_CONV_ERR)?;
    match &answer {
        Some(bytes) if bytes.len() >= PAM_MAX_RESP_SIZE || bytes.contains(&0) => Err(PAM_CONV_ERR),
        _ => Ok(answer),
    }
}

/// Copies the answers into memory libpam frees (`calloc`/`malloc`, freed with `free`).
///
/// # Safety
/// `resp` must be a valid place for one pointer.
unsafe fn hand_over(answers: &[Option<Zeroizing<Vec<u8>>>], resp: *mut *mut PamResponse) -> c_int {
    // SAFETY: calloc of `len` zeroed responses (resp NULL, retcode 0); checked for NULL.
    let array =
        unsafe { libc::calloc(answers.len(), size_of::<PamResponse>()) }.cast::<PamResponse>();
    if array.is_null() {
        return PAM_BUF_ERR;
    }
    for (i, answer) in answers.iter().enumerate() {
        let Some(bytes) = answer else { continue };
        // SAFETY: room for the bytes and a NUL; checked for NULL.
        let copy = unsafe { libc::calloc(bytes.len() + 1, 1) }.cast::<u8>();
        if copy.is_null() {
            // SAFETY: frees what was handed out so far (wiped first) and the array.
            unsafe { free_answers(array, i) };
            return PAM_BUF_ERR;
        }
        // SAFETY: `copy` has bytes.len() + 1 bytes (the last stays 0); `array` has
        // answers.len() entries and i < answers.len().
        unsafe {
            ptr::copy_nonoverlapping(bytes.as_ptr(), copy, bytes.len());
            (*array.add(i)).resp = copy.cast();
        }
    }
    // SAFETY: `resp` is valid (caller); libpam takes ownership of `array`.
    unsafe { *resp = array };
    PAM_SUCCESS
}

/// # Safety
/// `array` came from `hand_over`'s calloc, its first `filled` entries hold NULL or answers
/// from calloc.
unsafe fn free_answers(array: *mut PamResponse, filled: usize) {
    for i in 0..filled {
        // SAFETY: i < filled, inside the array.
        let text = unsafe { (*array.add(i)).resp };
        if !text.is_null() {
            // SAFETY: a NUL-terminated copy made by `hand_over`; wiped, then freed once.
            unsafe {
                let len = libc::strlen(text);
                ptr::write_bytes(text, 0, len);
                libc::free(text.cast());
            }
        }
    }
    // SAFETY: the array from calloc, freed once.
    unsafe { libc::free(array.cast()) };
}
