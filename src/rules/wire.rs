//! SSH wire encoding (RFC 4251 §5), read with bounds: every read checks the length left and
//! returns None instead of panicking, so hostile blobs only ever fail to parse.
#![forbid(unsafe_code)]

/// A cursor over a blob.
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(blob: &'a [u8]) -> Self {
        Self { rest: blob }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    pub fn u32(&mut self) -> Option<u32> {
        let bytes = self.take(4)?;
        Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    pub fn u64(&mut self) -> Option<u64> {
        let high = u64::from(self.u32()?);
        let low = u64::from(self.u32()?);
        Some(high << 32 | low)
    }

    /// A `string`: a u32 length, then that many bytes.
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        self.take(len)
    }

    /// A `string` that must be printable UTF-8 (names, key ids, principals).
    pub fn text(&mut self) -> Option<&'a str> {
        let text = std::str::from_utf8(self.bytes()?).ok()?;
        (!text.chars().any(char::is_control)).then_some(text)
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_beyond_the_blob_are_none() {
        let mut r = Reader::new(&[0, 0, 0, 5, b'a', b'b']);
        assert_eq!(r.bytes(), None);
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(r.bytes(), None);
        let mut r = Reader::new(&[0, 0, 0, 2, b'o', b'k', 0, 0]);
        assert_eq!(r.text(), Some("ok"));
        assert_eq!(r.u32(), None);
        let mut r = Reader::new(&[0, 0, 0, 1, b'\n']);
        assert_eq!(r.text(), None, "control characters are refused");
    }
}
