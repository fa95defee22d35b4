//! PAM's numbers (<security/_pam_types.h>) and their names for log lines.
#![forbid(unsafe_code)]

pub const PAM_SUCCESS: i32 = 0;
pub const PAM_SERVICE_ERR: i32 = 3;
pub const PAM_SYSTEM_ERR: i32 = 4;
pub const PAM_BUF_ERR: i32 = 5;
pub const PAM_AUTH_ERR: i32 = 7;
pub const PAM_AUTHINFO_UNAVAIL: i32 = 9;
pub const PAM_USER_UNKNOWN: i32 = 10;
pub const PAM_CONV_ERR: i32 = 19;
pub const PAM_IGNORE: i32 = 25;

/// The flag a silent call carries.
pub const PAM_SILENT: u32 = 0x8000;

/// Message styles the conversation takes (text only: no binary prompts).
pub const PAM_PROMPT_ECHO_OFF: i32 = 1;
pub const PAM_RADIO_TYPE: i32 = 5;

/// The result code's name as Linux-PAM spells it (the words the module's log lines used).
pub fn name(code: i32) -> &'static str {
    const NAMES: [&str; 32] = [
        "PAM_SUCCESS",
        "PAM_OPEN_ERR",
        "PAM_SYMBOL_ERR",
        "PAM_SERVICE_ERR",
        "PAM_SYSTEM_ERR",
        "PAM_BUF_ERR",
        "PAM_PERM_DENIED",
        "PAM_AUTH_ERR",
        "PAM_CRED_INSUFFICIENT",
        "PAM_AUTHINFO_UNAVAIL",
        "PAM_USER_UNKNOWN",
        "PAM_MAXTRIES",
        "PAM_NEW_AUTHTOK_REQD",
        "PAM_ACCT_EXPIRED",
        "PAM_SESSION_ERR",
        "PAM_CRED_UNAVAIL",
        "PAM_CRED_EXPIRED",
        "PAM_CRED_ERR",
        "PAM_NO_MODULE_DATA",
        "PAM_CONV_ERR",
        "PAM_AUTHTOK_ERR",
        "PAM_AUTHTOK_RECOVERY_ERR",
        "PAM_AUTHTOK_LOCK_BUSY",
        "PAM_AUTHTOK_DISABLE_AGING",
        "PAM_TRY_AGAIN",
        "PAM_IGNORE",
        "PAM_ABORT",
        "PAM_AUTHTOK_EXPIRED",
        "PAM_MODULE_UNKNOWN",
        "PAM_BAD_ITEM",
        "PAM_CONV_AGAIN",
        "PAM_INCOMPLETE",
    ];
    // An unknown code reads as PAM_SYSTEM_ERR (as pam-bindings, which the module used, read it).
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("PAM_SYSTEM_ERR")
}

/// libpam's `code` if it is one of Linux-PAM's, else PAM_SYSTEM_ERR.
pub fn known(code: i32) -> i32 {
    match code {
        0..=31 => code,
        _ => PAM_SYSTEM_ERR,
    }
}

/// The helper's code, if it is one the login gives; anything else denies.
pub fn verdict(code: i32) -> i32 {
    match code {
        PAM_SUCCESS | PAM_IGNORE | PAM_AUTH_ERR | PAM_USER_UNKNOWN | PAM_AUTHINFO_UNAVAIL
        | PAM_CONV_ERR => code,
        _ => PAM_SERVICE_ERR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_named_as_linux_pam_names_them() {
        assert_eq!(name(PAM_CONV_ERR), "PAM_CONV_ERR");
        assert_eq!(name(31), "PAM_INCOMPLETE");
        assert_eq!(name(-1), "PAM_SYSTEM_ERR");
        assert_eq!(name(32), "PAM_SYSTEM_ERR");
    }

    #[test]
    fn only_the_login_s_codes_pass_and_anything_else_denies() {
        for code in [0, 7, 9, 10, 19, 25] {
            assert_eq!(verdict(code), code);
        }
        for code in [-1, 1, 4, 6, 26, 1000] {
            assert_eq!(verdict(code), PAM_SERVICE_ERR);
        }
    }
}
