//! The record parser: any bytes give a record or an error, never a panic; a parsed record
//! serialises and parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_twofold::Record;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = Record::parse(data) {
        let text = record.to_toml();
        let again = Record::parse(text.as_bytes()).expect("a written record parses");
        assert_eq!(again, record);
    }
});
