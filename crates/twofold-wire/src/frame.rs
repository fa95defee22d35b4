//! What the PAM module and its login helper say to each other over their socket pair: one
//! [`Start`] from the module, then [`FromHelper::Prompt`]s each answered by a [`ToHelper`],
//! then one [`FromHelper::Done`]. Frames are a little-endian u32 length and a body of at most
//! [`MAX_FRAME`] bytes; inside, fields are tagged by position (no parser worth a crate: this
//! code is linked into every process that loads the module, so it stays small).
//!
//! Only the encoding lives here ([`Message`]); each side moves the bytes its own way (the
//! helper through `std::io`, the module through its socket calls).
//!
//! Bodies that may hold a password or a code live in [`Zeroizing`] buffers.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use zeroize::Zeroizing;

/// Largest frame either side accepts: prompts with a QR code are a few KiB.
pub const MAX_FRAME: usize = 256 * 1024;

/// Everything the module reads from the PAM handle for one call, sent once.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Start {
    /// The module's arguments from the PAM line.
    pub args: Vec<String>,
    /// `PAM_SILENT` was given.
    pub silent: bool,
    pub user: String,
    pub service: String,
    pub rhost: Option<String>,
    pub tty: Option<String>,
    /// PAM_AUTHTOK is set and not empty (a first factor ran before this line).
    pub authtok_set: bool,
    /// PAM_AUTHTOK itself: sent only to a `split_code` line, which takes the code off it.
    pub authtok: Option<Zeroizing<Vec<u8>>>,
    /// The PAM environment's SSH_AUTH_INFO_0 (sshd's methods that succeeded).
    pub ssh_auth_info: Option<String>,
    /// What an earlier `split_code` line kept in the handle for this one.
    pub kept: Option<Zeroizing<Vec<u8>>>,
}

/// The helper's side.
#[derive(Debug, PartialEq, Eq)]
pub enum FromHelper {
    /// Show `text` (PAM message style `style`) and, for prompts, send back the answer. Wiped
    /// when dropped: an enrollment's text holds the new secret (its QR code and key) and the
    /// backup codes, which must not stay behind in sshd's or sudo's heap.
    Prompt { style: i32, text: Zeroizing<String> },
    /// The verdict (a PAM return code) and what the module is to leave in the handle.
    Done {
        code: i32,
        /// New PAM_AUTHTOK (a `split_code` line hands the password on).
        authtok: Option<Zeroizing<Vec<u8>>>,
        /// Data for the next twofold line (a `split_code` line keeps the code).
        keep: Option<Zeroizing<Vec<u8>>>,
    },
}

/// The module's answer to a prompt.
#[derive(Debug, PartialEq, Eq)]
pub enum ToHelper {
    Answer(Option<Zeroizing<Vec<u8>>>),
    /// The application's conversation failed (the words say how).
    Failed(String),
}

/// Why a frame was not made or not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The body to send is over [`MAX_FRAME`].
    TooLarge,
    /// A received frame is not one this side sends (what is wrong with it).
    Malformed(&'static str),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge => f.write_str("frame too large"),
            Self::Malformed(what) => write!(f, "malformed frame: {what}"),
        }
    }
}

/// A message as frames: [`encode`](Message::encode) makes the whole frame (length and body);
/// a reader takes 4 bytes, asks [`body_len`] how many follow, and hands them to
/// [`decode`](Message::decode).
pub trait Message: Sized {
    /// The frame: length and body, in one wiped buffer (written at once).
    fn encode(&self) -> Result<Zeroizing<Vec<u8>>, FrameError>;
    /// The message in a frame's body (without its length).
    fn decode(body: &[u8]) -> Result<Self, FrameError>;
}

/// The body's length announced by a frame's first 4 bytes, if this side accepts it.
pub fn body_len(header: [u8; 4]) -> Result<usize, FrameError> {
    usize::try_from(u32::from_le_bytes(header))
        .ok()
        .filter(|len| *len <= MAX_FRAME)
        .ok_or(FrameError::Malformed("too large"))
}

const PROMPT: u8 = 1;
const DONE: u8 = 2;
const ANSWER: u8 = 3;
const FAILED: u8 = 4;
/// Length of an absent optional field.
const NONE: u32 = u32::MAX;

/// A frame under construction: 4 bytes for the length, then the body.
struct Body(Zeroizing<Vec<u8>>);

impl Default for Body {
    fn default() -> Self {
        Self(Zeroizing::new(vec![0; 4]))
    }
}

impl Body {
    /// Appends, growing by hand: a Vec's own growth would free the old buffer (a password,
    /// a code) unwiped; here the old one is a Zeroizing that wipes itself when replaced.
    fn put(&mut self, bytes: &[u8]) -> &mut Self {
        let needed = self.0.len().saturating_add(bytes.len());
        if needed > self.0.capacity() {
            let doubled = self.0.capacity().saturating_mul(2);
            let mut bigger = Zeroizing::new(Vec::with_capacity(needed.max(doubled)));
            bigger.extend_from_slice(&self.0);
            self.0 = bigger;
        }
        self.0.extend_from_slice(bytes);
        self
    }

    fn u8(&mut self, value: u8) -> &mut Self {
        self.put(&[value])
    }

    fn i32(&mut self, value: i32) -> &mut Self {
        self.put(&value.to_le_bytes())
    }

    fn u32(&mut self, value: u32) -> &mut Self {
        self.put(&value.to_le_bytes())
    }

    fn bytes(&mut self, value: Option<&[u8]>) -> &mut Self {
        match value {
            // A longer field makes the frame too large, which `finish` refuses.
            Some(v) => self.u32(u32::try_from(v.len()).unwrap_or(NONE - 1)).put(v),
            None => self.u32(NONE),
        }
    }

    fn text(&mut self, value: Option<&str>) -> &mut Self {
        self.bytes(value.map(str::as_bytes))
    }

    /// The frame, its length filled in.
    fn finish(&mut self) -> Result<Zeroizing<Vec<u8>>, FrameError> {
        let len = self.0.len().saturating_sub(4);
        let len = u32::try_from(len)
            .ok()
            .filter(|_| len <= MAX_FRAME)
            .ok_or(FrameError::TooLarge)?;
        if let Some(header) = self.0.get_mut(..4) {
            header.copy_from_slice(&len.to_le_bytes());
        }
        Ok(core::mem::take(&mut self.0))
    }
}

/// A received frame's body, read field by field.
struct Fields<'a> {
    body: &'a [u8],
}

fn malformed(what: &'static str) -> FrameError {
    FrameError::Malformed(what)
}

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        let body: &'a [u8] = self.body;
        let (taken, rest) = body.split_at_checked(n).ok_or(malformed("truncated"))?;
        self.body = rest;
        Ok(taken)
    }

    fn four(&mut self) -> Result<[u8; 4], FrameError> {
        let raw = self.take(4)?;
        raw.try_into().map_err(|_| malformed("truncated"))
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        self.take(1)?.first().copied().ok_or(malformed("truncated"))
    }

    fn i32(&mut self) -> Result<i32, FrameError> {
        Ok(i32::from_le_bytes(self.four()?))
    }

    fn u32(&mut self) -> Result<u32, FrameError> {
        Ok(u32::from_le_bytes(self.four()?))
    }

    fn bool(&mut self) -> Result<bool, FrameError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(malformed("flag")),
        }
    }

    fn bytes(&mut self) -> Result<Option<Zeroizing<Vec<u8>>>, FrameError> {
        let len = self.u32()?;
        if len == NONE {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| malformed("truncated"))?;
        Ok(Some(Zeroizing::new(self.take(len)?.to_vec())))
    }

    fn text(&mut self) -> Result<Option<String>, FrameError> {
        match self.bytes()? {
            None => Ok(None),
            Some(raw) => String::from_utf8(raw.to_vec())
                .map(Some)
                .map_err(|_| malformed("text is not UTF-8")),
        }
    }

    fn required_text(&mut self) -> Result<String, FrameError> {
        self.text()?.ok_or(malformed("missing text"))
    }

    fn end(self) -> Result<(), FrameError> {
        match self.body.is_empty() {
            true => Ok(()),
            false => Err(malformed("trailing bytes")),
        }
    }
}

impl Message for Start {
    fn encode(&self) -> Result<Zeroizing<Vec<u8>>, FrameError> {
        let mut body = Body::default();
        body.u32(u32::try_from(self.args.len()).unwrap_or(NONE));
        for arg in &self.args {
            body.text(Some(arg));
        }
        body.u8(u8::from(self.silent))
            .text(Some(&self.user))
            .text(Some(&self.service))
            .text(self.rhost.as_deref())
            .text(self.tty.as_deref())
            .u8(u8::from(self.authtok_set))
            .bytes(self.authtok.as_deref().map(Vec::as_slice))
            .text(self.ssh_auth_info.as_deref())
            .bytes(self.kept.as_deref().map(Vec::as_slice))
            .finish()
    }

    fn decode(body: &[u8]) -> Result<Self, FrameError> {
        let mut f = Fields { body };
        let count = f.u32()?;
        let mut args = Vec::new();
        for _ in 0..count {
            args.push(f.required_text()?);
        }
        let start = Self {
            args,
            silent: f.bool()?,
            user: f.required_text()?,
            service: f.required_text()?,
            rhost: f.text()?,
            tty: f.text()?,
            authtok_set: f.bool()?,
            authtok: f.bytes()?,
            ssh_auth_info: f.text()?,
            kept: f.bytes()?,
        };
        f.end()?;
        Ok(start)
    }
}

impl Message for FromHelper {
    fn encode(&self) -> Result<Zeroizing<Vec<u8>>, FrameError> {
        let mut body = Body::default();
        match self {
            Self::Prompt { style, text } => body.u8(PROMPT).i32(*style).text(Some(text)),
            Self::Done {
                code,
                authtok,
                keep,
            } => body
                .u8(DONE)
                .i32(*code)
                .bytes(authtok.as_deref().map(Vec::as_slice))
                .bytes(keep.as_deref().map(Vec::as_slice)),
        };
        body.finish()
    }

    fn decode(body: &[u8]) -> Result<Self, FrameError> {
        let mut f = Fields { body };
        let message = match f.u8()? {
            PROMPT => Self::Prompt {
                style: f.i32()?,
                text: Zeroizing::new(f.required_text()?),
            },
            DONE => Self::Done {
                code: f.i32()?,
                authtok: f.bytes()?,
                keep: f.bytes()?,
            },
            _ => return Err(malformed("unknown message")),
        };
        f.end()?;
        Ok(message)
    }
}

impl Message for ToHelper {
    fn encode(&self) -> Result<Zeroizing<Vec<u8>>, FrameError> {
        let mut body = Body::default();
        match self {
            Self::Answer(answer) => body.u8(ANSWER).bytes(answer.as_deref().map(Vec::as_slice)),
            Self::Failed(why) => body.u8(FAILED).text(Some(why)),
        };
        body.finish()
    }

    fn decode(body: &[u8]) -> Result<Self, FrameError> {
        let mut f = Fields { body };
        let message = match f.u8()? {
            ANSWER => Self::Answer(f.bytes()?),
            FAILED => Self::Failed(f.required_text()?),
            _ => return Err(malformed("unknown message")),
        };
        f.end()?;
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::borrow::ToOwned;

    fn secret(text: &str) -> Option<Zeroizing<Vec<u8>>> {
        Some(Zeroizing::new(text.as_bytes().to_vec()))
    }

    /// As a reader does it: the length, then exactly that many bytes, and nothing left over.
    fn read<M: Message>(frame: &[u8]) -> Result<M, FrameError> {
        let (header, body) = frame
            .split_first_chunk::<4>()
            .ok_or(malformed("truncated"))?;
        let len = body_len(*header)?;
        let body = body.get(..len).ok_or(malformed("truncated"))?;
        M::decode(body)
    }

    #[test]
    fn every_message_comes_back_as_it_was_sent() {
        let start = Start {
            args: vec!["config=/etc/x.toml".to_owned(), "split_code".to_owned()],
            silent: true,
            user: "alice".to_owned(),
            service: "sshd".to_owned(),
            rhost: Some("192.0.2.1".to_owned()),
            tty: None,
            authtok_set: true,
            authtok: secret("hunter2123456"),
            ssh_auth_info: Some("publickey ssh-ed25519 AAAA".to_owned()),
            kept: secret("\x01123456"),
        };
        assert_eq!(read::<Start>(&start.encode().unwrap()).unwrap(), start);

        for message in [
            FromHelper::Prompt {
                style: 1,
                text: Zeroizing::new("Code: ".to_owned()),
            },
            FromHelper::Done {
                code: 0,
                authtok: None,
                keep: secret(""),
            },
        ] {
            assert_eq!(
                read::<FromHelper>(&message.encode().unwrap()).unwrap(),
                message
            );
        }
        for message in [ToHelper::Answer(secret("123456")), ToHelper::Answer(None)] {
            assert_eq!(
                read::<ToHelper>(&message.encode().unwrap()).unwrap(),
                message
            );
        }
    }

    #[test]
    fn short_long_and_trailing_frames_are_refused() {
        let wire = ToHelper::Answer(secret("123456")).encode().unwrap();
        // Cut anywhere: an error, never a shorter answer.
        for cut in 0..wire.len() {
            assert!(read::<ToHelper>(&wire[..cut]).is_err(), "cut at {cut}");
        }
        // A length field that claims more than the frame holds.
        let mut lying = wire.to_vec();
        lying[5] = 0x7f;
        assert!(read::<ToHelper>(&lying).is_err());
        // Trailing bytes inside the frame.
        let mut padded = wire.to_vec();
        padded[0] += 1;
        padded.push(0);
        assert_eq!(
            read::<ToHelper>(&padded),
            Err(FrameError::Malformed("trailing bytes"))
        );
        // Over the limit, either way.
        let huge = u32::try_from(MAX_FRAME + 1).unwrap().to_le_bytes();
        assert_eq!(body_len(huge), Err(FrameError::Malformed("too large")));
        let text = Zeroizing::new("x".repeat(MAX_FRAME));
        let prompt = FromHelper::Prompt { style: 1, text };
        assert_eq!(prompt.encode(), Err(FrameError::TooLarge));
        // Unknown tags.
        let other = Body::default().u8(9).finish().unwrap();
        assert!(read::<FromHelper>(&other).is_err());
        assert!(read::<ToHelper>(&other).is_err());
    }
}
