//! The frames between the module and its login helper ([`twofold_wire::frame`], shared with
//! the module), sent and received over `std::io` on the helper's side.
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};

use twofold_wire::frame::{FrameError, body_len};
pub use twofold_wire::frame::{FromHelper, MAX_FRAME, Message, Start, ToHelper};
use zeroize::Zeroizing;

fn invalid(e: FrameError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// A [`Message`] over `std::io`.
pub trait Wire: Message {
    /// The whole frame, written at once (unbuffered writers see one write).
    fn send(&self, to: &mut impl Write) -> io::Result<()> {
        to.write_all(&self.encode().map_err(invalid)?)?;
        to.flush()
    }

    fn receive(from: &mut impl Read) -> io::Result<Self> {
        let mut header = [0u8; 4];
        from.read_exact(&mut header)?;
        let mut body = Zeroizing::new(vec![0u8; body_len(header).map_err(invalid)?]);
        from.read_exact(&mut body)?;
        Self::decode(&body).map_err(invalid)
    }
}

impl<M: Message> Wire for M {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_crosses_a_stream_and_a_short_one_is_an_error() {
        let message = ToHelper::Answer(Some(Zeroizing::new(b"123456".to_vec())));
        let mut wire = Vec::new();
        message.send(&mut wire).unwrap();
        assert_eq!(ToHelper::receive(&mut wire.as_slice()).unwrap(), message);
        let cut = ToHelper::receive(&mut &wire[..wire.len() - 1]).unwrap_err();
        assert_eq!(cut.kind(), io::ErrorKind::UnexpectedEof);
        let huge = u32::try_from(MAX_FRAME + 1).unwrap().to_le_bytes();
        let refused = FromHelper::receive(&mut huge.as_slice()).unwrap_err();
        assert_eq!(refused.to_string(), "malformed frame: too large");
    }
}
