//! The migration parsers (google-authenticator files, pam_oath users files): any bytes give
//! tokens or errors, never a panic, and an error never quotes a line of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_twofold::import::{google, oath};

fuzz_target!(|data: &[u8]| {
    let _ = google::parse(data);
    if let Ok(entries) = oath::parse(data, 1_795_388_867) {
        for entry in entries {
            if let Ok(token) = entry.token {
                let _ = token.summary();
            }
        }
    }
});
