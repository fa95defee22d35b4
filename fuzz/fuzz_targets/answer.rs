//! What users type: the code parser, the backup-code parser, the password+code splitter and
//! the TOTP check behind them. Never a panic; what is accepted has the right shape.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_twofold::login::split_password_and_code;
use pam_twofold::otp::{self, Answer, Secret, TotpParams};

fuzz_target!(|data: &[u8]| {
    let digits = 6 + data.first().map_or(0, |b| b % 3);
    let input = data.get(1..).unwrap_or_default();
    match otp::parse_answer(input, digits) {
        Ok(Answer::Totp(code)) => {
            assert_eq!(code.len(), usize::from(digits));
            assert!(code.bytes().all(|b| b.is_ascii_digit()));
            let secret = Secret::from_bytes(vec![7; 20]).unwrap();
            let params = TotpParams {
                digits,
                ..TotpParams::default()
            };
            let _ = otp::verify_totp(&secret, params, &code, 1_700_000_000, 1, Some(56_666_666));
        }
        Ok(Answer::Backup(code) | Answer::TotpOrBackup(code)) => {
            assert_eq!(code.len(), 8);
            assert!(code.bytes().all(|b| b.is_ascii_digit()));
        }
        Err(_) => {}
    }
    if let Some(at) = split_password_and_code(input, digits) {
        assert!(at <= input.len());
    }
    let _ = otp::normalize_code(input, digits);
    if let Ok(text) = std::str::from_utf8(input) {
        let _ = Secret::from_base32(text);
    }
});
