//! `format!` and `String::from_utf8_lossy` as the module needs them: the same text, built
//! here. alloc's own (`alloc::fmt::format`, `from_utf8_lossy`) are compiled, once for all, with
//! unwinding landing pads, which a `panic = "abort"` cdylib cannot link (they would need
//! `_Unwind_Resume` and `rust_eh_personality`); code in this crate is compiled with the
//! module's own profile.

use alloc::string::String;
use core::fmt::{self, Write};

/// [`format!`](alloc::format) through [`from_args`].
#[macro_export]
macro_rules! text {
    ($($arg:tt)*) => { $crate::text::from_args(format_args!($($arg)*)) };
}

/// The formatted text.
pub fn from_args(args: fmt::Arguments<'_>) -> String {
    let mut out = String::new();
    // Writing to a String never fails; a Display impl that fails leaves what it wrote.
    let _ = out.write_fmt(args);
    out
}

/// `bytes` as UTF-8, each invalid sequence replaced by U+FFFD (as `from_utf8_lossy`).
pub fn lossy(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_what_alloc_would_make() {
        let raw: [&[u8]; 4] = [b"plain", b"caf\xc3\xa9", b"a\xffb\xe2\x82", b""];
        for bytes in raw {
            assert_eq!(lossy(bytes), String::from_utf8_lossy(bytes));
        }
        assert_eq!(
            text!("{}-{:02}-{:?}", "a", 7, "q\""),
            alloc::format!("a-07-\"q\\\"\"")
        );
    }
}
