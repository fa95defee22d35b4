//! The PAM side: the two exported hooks and the libpam calls, each wrapped once in a safe
//! method of [`Handle`]. The login is decided in the helper; [`crate::authenticate`] says what
//! to read, relay and leave in the handle.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::{CStr, c_char, c_int, c_uint, c_void};
use core::ptr;

use zeroize::{Zeroize, Zeroizing};

use crate::codes::{self, PAM_BUF_ERR, PAM_CONV_ERR, PAM_PROMPT_ECHO_OFF, PAM_RADIO_TYPE};
use crate::ctext::CText;
use crate::handle::{Item, Kept, PamCalls};

/// libpam's opaque handle.
#[repr(C)]
pub struct PamHandle {
    _opaque: [u8; 0],
}

#[repr(C)]
struct Message {
    style: c_int,
    text: *const c_char,
}

#[repr(C)]
struct Response {
    text: *mut c_char,
    retcode: c_int,
}

type ConvFn =
    unsafe extern "C" fn(c_int, *mut *const Message, *mut *mut Response, *mut c_void) -> c_int;

/// struct pam_conv.
#[repr(C)]
struct Conversation {
    conv: Option<ConvFn>,
    appdata: *mut c_void,
}

type Cleanup = extern "C" fn(*mut PamHandle, *mut c_void, c_int);

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_get_user(pamh: *mut PamHandle, user: *mut *const c_char, prompt: *const c_char)
    -> c_int;
    fn pam_get_item(pamh: *const PamHandle, item: c_int, value: *mut *const c_void) -> c_int;
    fn pam_set_item(pamh: *mut PamHandle, item: c_int, value: *const c_void) -> c_int;
    fn pam_get_data(pamh: *const PamHandle, name: *const c_char, data: *mut *const c_void)
    -> c_int;
    fn pam_set_data(
        pamh: *mut PamHandle,
        name: *const c_char,
        data: *mut c_void,
        cleanup: Cleanup,
    ) -> c_int;
    fn pam_getenv(pamh: *mut PamHandle, name: *const c_char) -> *const c_char;
    fn pam_fail_delay(pamh: *mut PamHandle, usec: c_uint) -> c_int;
}

const PAM_CONV: c_int = 5;

// The only two symbols the module exports (a module that exported the account, session and
// password hooks too would be asked for them).

/// `auth` in the stack: the second factor.
///
/// # Safety
/// Called by libpam with its live handle and the module's arguments (`argc` C strings).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_authenticate(
    pamh: *mut PamHandle,
    flags: c_int,
    argc: c_int,
    argv: *const *const c_char,
) -> c_int {
    // SAFETY: libpam's handle, valid for this call and used by nothing else meanwhile.
    let Some(pamh) = (unsafe { pamh.as_mut() }) else {
        return codes::PAM_SERVICE_ERR;
    };
    let count = usize::try_from(argc).unwrap_or(0);
    let args: Vec<&CStr> = match argv.is_null() {
        true => Vec::new(),
        // SAFETY: `argv` holds `argc` pointers to NUL-terminated strings owned by libpam.
        false => (0..count)
            .filter_map(|i| unsafe { argv.add(i).read().as_ref() })
            // SAFETY: each non-null pointer is a NUL-terminated string (see above).
            .map(|arg| unsafe { CStr::from_ptr(arg) })
            .collect(),
    };
    let flags = u32::from_ne_bytes(flags.to_ne_bytes());
    crate::authenticate::authenticate(&mut Handle(pamh), &args, flags)
}

/// Nothing to set: the second factor grants no credentials. Success keeps stacks that call
/// setcred after auth working.
///
/// # Safety
/// Called by libpam; no argument is touched.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_setcred(
    _pamh: *mut PamHandle,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    codes::PAM_SUCCESS
}

/// The live handle of one hook call.
pub struct Handle<'a>(&'a mut PamHandle);

/// Frees a [`Kept`] when libpam ends the handle or replaces the data.
extern "C" fn drop_kept(_: *mut PamHandle, data: *mut c_void, _: c_int) {
    if !data.is_null() {
        // SAFETY: only `set_kept` stores data under this cleanup: a Box<Kept>, freed once.
        drop(unsafe { Box::from_raw(data.cast::<Kept>()) });
    }
}

impl Handle<'_> {
    fn conversation(&self) -> Option<&Conversation> {
        let mut conv: *const c_void = ptr::null();
        // SAFETY: the live handle; PAM_CONV is a struct pam_conv owned by the handle.
        let rc = unsafe { pam_get_item(self.0, PAM_CONV, &mut conv) };
        // SAFETY: non-NULL, so the handle's struct pam_conv, alive as long as the handle.
        (rc == codes::PAM_SUCCESS).then(|| unsafe { conv.cast::<Conversation>().as_ref() })?
    }
}

impl PamCalls for Handle<'_> {
    /// PAM_USER (asking for it if no one set it yet), or the PAM code why not.
    fn user(&mut self) -> Result<String, i32> {
        let mut user: *const c_char = ptr::null();
        // SAFETY: the live handle; `user` receives a string owned by the handle.
        let rc = unsafe { pam_get_user(self.0, &mut user, ptr::null()) };
        if rc != codes::PAM_SUCCESS {
            return Err(codes::known(rc));
        }
        if user.is_null() {
            return Err(codes::PAM_SYSTEM_ERR);
        }
        // SAFETY: non-NULL, so a NUL-terminated string owned by the handle, copied at once.
        let bytes = unsafe { CStr::from_ptr(user) }.to_bytes();
        String::from_utf8(bytes.to_vec()).map_err(|_| codes::PAM_SYSTEM_ERR)
    }

    /// A string item's bytes, copied (None if unset or unreadable).
    fn item(&mut self, item: Item) -> Option<Zeroizing<Vec<u8>>> {
        let mut value: *const c_void = ptr::null();
        // SAFETY: the live handle; string items point into the handle, copied at once.
        let rc = unsafe { pam_get_item(self.0, item as c_int, &mut value) };
        if rc != codes::PAM_SUCCESS || value.is_null() {
            return None;
        }
        // SAFETY: the string items are NUL-terminated strings (see above).
        let text = unsafe { CStr::from_ptr(value.cast()) };
        Some(Zeroizing::new(text.to_bytes().to_vec()))
    }

    /// The PAM environment's variable `name`, copied.
    fn env(&mut self, name: &CStr) -> Option<Vec<u8>> {
        // SAFETY: the live handle and a NUL-terminated name; the result is NULL or a string
        // in the handle's environment, copied before anything else touches the handle.
        let value = unsafe { pam_getenv(self.0, name.as_ptr()) };
        // SAFETY: non-NULL, so NUL-terminated (see above).
        (!value.is_null()).then(|| unsafe { CStr::from_ptr(value) }.to_bytes().to_vec())
    }

    /// Delay before a failed stack returns, as pam_unix asks: slows guessing.
    fn fail_delay(&mut self, usec: u32) {
        // SAFETY: the live handle; pam_fail_delay only records the delay in it.
        unsafe { pam_fail_delay(self.0, usec) };
    }

    /// Sets PAM_AUTHTOK for the modules after this line; the error is libpam's code.
    fn set_authtok(&mut self, password: &CStr) -> Result<(), i32> {
        // SAFETY: the live handle; a NUL-terminated string that pam_set_item copies.
        let rc = unsafe { pam_set_item(self.0, Item::AuthTok as c_int, password.as_ptr().cast()) };
        match rc {
            codes::PAM_SUCCESS => Ok(()),
            rc => Err(rc),
        }
    }

    /// Whether the application gave a conversation.
    fn has_conversation(&self) -> bool {
        self.conversation().is_some()
    }

    /// One message to the application's conversation: the answer, or the PAM code why not.
    fn converse(&mut self, style: i32, text: &str) -> Result<Option<Zeroizing<Vec<u8>>>, i32> {
        if !(PAM_PROMPT_ECHO_OFF..=PAM_RADIO_TYPE).contains(&style) {
            return Err(PAM_CONV_ERR);
        }
        let conv = self.conversation().ok_or(PAM_CONV_ERR)?;
        let conv_fn = conv.conv.ok_or(PAM_CONV_ERR)?;
        let text = CText::new(text.as_bytes()).ok_or(PAM_BUF_ERR)?;
        let message = Message {
            style,
            text: text.as_c_str().as_ptr(),
        };
        let mut message_ptr: *const Message = &message;
        let mut response: *mut Response = ptr::null_mut();
        // SAFETY: the application's conversation, called as PAM documents: one message whose
        // text outlives the call, a place for the response, and its own appdata pointer.
        let rc = unsafe { conv_fn(1, &mut message_ptr, &mut response, conv.appdata) };
        if rc != codes::PAM_SUCCESS {
            return Err(codes::known(rc));
        }
        if response.is_null() {
            return Err(PAM_CONV_ERR);
        }
        // SAFETY: on success the application returns one malloc'd pam_response, whose text is
        // NULL or a malloc'd NUL-terminated string; both are ours to wipe and free, once.
        unsafe {
            let text = (*response).text;
            let answer = (!text.is_null()).then(|| {
                let bytes = copy_and_wipe(text);
                libc::free(text.cast());
                bytes
            });
            libc::free(response.cast());
            Ok(answer)
        }
    }

    /// The code an earlier `split_code` line kept, taken so that it is judged once.
    fn take_kept(&mut self, key: &CStr) -> Kept {
        let mut data: *const c_void = ptr::null();
        // SAFETY: the live handle and a NUL-terminated key.
        let rc = unsafe { pam_get_data(self.0, key.as_ptr(), &mut data) };
        if rc != codes::PAM_SUCCESS || data.is_null() {
            return None;
        }
        // SAFETY: only `set_kept` stores data under this key, always a Box<Kept>.
        let kept = unsafe { &*data.cast::<Kept>() }.clone();
        if kept.is_some() {
            let _ = self.set_kept(key, None);
        }
        kept
    }

    /// Leaves `kept` in the handle under `key`; the error is libpam's code.
    fn set_kept(&mut self, key: &CStr, kept: Kept) -> Result<(), i32> {
        let data = Box::into_raw(Box::new(kept));
        // SAFETY: the live handle, a NUL-terminated key, and a Box that libpam hands back to
        // `drop_kept` (which frees it) when the handle ends or the data is replaced.
        let rc = unsafe { pam_set_data(self.0, key.as_ptr(), data.cast(), drop_kept) };
        if rc == codes::PAM_SUCCESS {
            return Ok(());
        }
        // SAFETY: libpam refused it, so the Box is still ours alone.
        drop(unsafe { Box::from_raw(data) });
        Err(rc)
    }
}

/// A C string's bytes copied into a wiped buffer, and the original wiped.
///
/// # Safety
/// `text` is a writable NUL-terminated string (malloc'd by the application, handed to us).
unsafe fn copy_and_wipe(text: *mut c_char) -> Zeroizing<Vec<u8>> {
    // SAFETY: the caller's promise.
    let copy = Zeroizing::new(unsafe { CStr::from_ptr(text) }.to_bytes().to_vec());
    // SAFETY: the caller's promise: `copy.len()` writable bytes at `text`.
    let original = unsafe { core::slice::from_raw_parts_mut(text.cast::<u8>(), copy.len()) };
    original.zeroize();
    copy
}
