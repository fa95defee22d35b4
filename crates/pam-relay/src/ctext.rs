//! A NUL-terminated string the module owns. Not `alloc::ffi::CString`: its constructor is
//! compiled with unwinding landing pads, which this `panic = "abort"` cdylib cannot link
//! (see twofold_wire::text).
#![forbid(unsafe_code)]

use alloc::vec::Vec;
use core::ffi::CStr;

use zeroize::Zeroize;

/// Bytes without a NUL inside, and one at the end.
pub struct CText(Vec<u8>);

impl CText {
    /// `bytes` and a NUL; None if a NUL is among them.
    pub fn new(bytes: &[u8]) -> Option<Self> {
        if bytes.contains(&0) {
            return None;
        }
        let mut text = Vec::with_capacity(bytes.len().saturating_add(1));
        text.extend_from_slice(bytes);
        text.push(0);
        Some(Self(text))
    }

    pub fn as_c_str(&self) -> &CStr {
        // Never the empty fallback: `new` put exactly one NUL, at the end.
        CStr::from_bytes_with_nul(&self.0).unwrap_or(c"")
    }
}

/// Wiped when dropped: a prompt's text may hold a new secret or backup codes.
impl Drop for CText {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl From<&CStr> for CText {
    fn from(text: &CStr) -> Self {
        Self(text.to_bytes_with_nul().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ctext_is_its_bytes_and_refuses_a_nul_inside() {
        assert_eq!(CText::new(b"/bin/x").unwrap().as_c_str(), c"/bin/x");
        assert!(CText::new(b"a\0b").is_none());
        assert_eq!(CText::from(c"PATH=/bin").as_c_str(), c"PATH=/bin");
    }
}
