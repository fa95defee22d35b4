//! The policy parser and the module-argument parser: errors, never panics.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pam_twofold::{ModuleArgs, Policy};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(policy) = Policy::parse(text, Path::new("fuzz.toml")) {
            assert!(policy.totp.window <= pam_twofold::policy::MAX_WINDOW);
            let _ = policy.new_params().validate().expect("validated");
        }
        let _ = ModuleArgs::parse(text.split_whitespace());
    }
});
