//! What the PAM module and its login helper say to each other over their socket pair: one
//! [`Start`] from the module, then [`FromHelper::Prompt`]s each answered by a [`ToHelper`],
//! then one [`FromHelper::Done`]. Frames are a little-endian u32 length and a body of at most
//! [`MAX_FRAME`] bytes; inside, fields are tagged by position (no parser worth a crate: this
//! code is linked into every process that loads the module, so it stays small).
//!
//! Bodies that may hold a password or a code live in [`Zeroizing`] buffers.
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};

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
    /// Show `text` (PAM message style `style`) and, for prompts, send back the answer.
    Prompt { style: i32, text: String },
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

const PROMPT: u8 = 1;
const DONE: u8 = 2;
const ANSWER: u8 = 3;
const FAILED: u8 = 4;
/// Length of an absent optional field.
const NONE: u32 = u32::MAX;

/// A frame's body under construction.
#[derive(Default)]
struct Body(Zeroizing<Vec<u8>>);

impl Body {
    /// Appends, growing by hand: a Vec's own growth would free the old buffer (a password,
    /// a code) unwiped; here the old one is a Zeroizing that wipes itself when replaced.
    fn put(&mut self, bytes: &[u8]) -> &mut Self {
        let needed = self.0.len().saturating_add(bytes.len());
        if needed > self.0.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(needed.max(2 * self.0.capacity())));
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
            // A longer field makes the frame too large, which `send` refuses.
            Some(v) => self.u32(u32::try_from(v.len()).unwrap_or(NONE - 1)).put(v),
            None => self.u32(NONE),
        }
    }

    fn text(&mut self, value: Option<&str>) -> &mut Self {
        self.bytes(value.map(str::as_bytes))
    }

    fn send(&self, to: &mut impl Write) -> io::Result<()> {
        if self.0.len() > MAX_FRAME {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "frame too large",
            ));
        }
        let mut frame = Zeroizing::new(Vec::with_capacity(4 + self.0.len()));
        // At most MAX_FRAME (checked above), so it fits.
        frame.extend_from_slice(&(self.0.len() as u32).to_le_bytes());
        frame.extend_from_slice(&self.0);
        to.write_all(&frame)?;
        to.flush()
    }
}

/// A received frame's body, read field by field.
struct Fields {
    body: Zeroizing<Vec<u8>>,
    at: usize,
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed frame: {what}"),
    )
}

impl Fields {
    fn receive(from: &mut impl Read) -> io::Result<Self> {
        let mut len = [0u8; 4];
        from.read_exact(&mut len)?;
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_FRAME {
            return Err(malformed("too large"));
        }
        let mut body = Zeroizing::new(vec![0u8; len]);
        from.read_exact(&mut body)?;
        Ok(Self { body, at: 0 })
    }

    fn take(&mut self, n: usize) -> io::Result<&[u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.body.len());
        let end = end.ok_or_else(|| malformed("truncated"))?;
        let taken = &self.body[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn four(&mut self) -> io::Result<[u8; 4]> {
        let raw = self.take(4)?;
        Ok([raw[0], raw[1], raw[2], raw[3]])
    }

    fn i32(&mut self) -> io::Result<i32> {
        Ok(i32::from_le_bytes(self.four()?))
    }

    fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes(self.four()?))
    }

    fn bool(&mut self) -> io::Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(malformed("flag")),
        }
    }

    fn bytes(&mut self) -> io::Result<Option<Zeroizing<Vec<u8>>>> {
        let len = self.u32()?;
        if len == NONE {
            return Ok(None);
        }
        Ok(Some(Zeroizing::new(self.take(len as usize)?.to_vec())))
    }

    fn text(&mut self) -> io::Result<Option<String>> {
        match self.bytes()? {
            None => Ok(None),
            Some(raw) => String::from_utf8(raw.to_vec())
                .map(Some)
                .map_err(|_| malformed("text is not UTF-8")),
        }
    }

    fn required_text(&mut self) -> io::Result<String> {
        self.text()?.ok_or_else(|| malformed("missing text"))
    }

    fn end(self) -> io::Result<()> {
        match self.at == self.body.len() {
            true => Ok(()),
            false => Err(malformed("trailing bytes")),
        }
    }
}

impl Start {
    pub fn send(&self, to: &mut impl Write) -> io::Result<()> {
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
            .send(to)
    }

    pub fn receive(from: &mut impl Read) -> io::Result<Self> {
        let mut f = Fields::receive(from)?;
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

impl FromHelper {
    pub fn send(&self, to: &mut impl Write) -> io::Result<()> {
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
        body.send(to)
    }

    pub fn receive(from: &mut impl Read) -> io::Result<Self> {
        let mut f = Fields::receive(from)?;
        let message = match f.u8()? {
            PROMPT => Self::Prompt {
                style: f.i32()?,
                text: f.required_text()?,
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

impl ToHelper {
    pub fn send(&self, to: &mut impl Write) -> io::Result<()> {
        let mut body = Body::default();
        match self {
            Self::Answer(answer) => body.u8(ANSWER).bytes(answer.as_deref().map(Vec::as_slice)),
            Self::Failed(why) => body.u8(FAILED).text(Some(why)),
        };
        body.send(to)
    }

    pub fn receive(from: &mut impl Read) -> io::Result<Self> {
        let mut f = Fields::receive(from)?;
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

    fn secret(text: &str) -> Option<Zeroizing<Vec<u8>>> {
        Some(Zeroizing::new(text.as_bytes().to_vec()))
    }

    #[test]
    fn every_message_comes_back_as_it_was_sent() {
        let start = Start {
            args: vec!["config=/etc/x.toml".into(), "split_code".into()],
            silent: true,
            user: "alice".into(),
            service: "sshd".into(),
            rhost: Some("192.0.2.1".into()),
            tty: None,
            authtok_set: true,
            authtok: secret("hunter2123456"),
            ssh_auth_info: Some("publickey ssh-ed25519 AAAA".into()),
            kept: secret("\x01123456"),
        };
        let mut wire = Vec::new();
        start.send(&mut wire).unwrap();
        assert_eq!(Start::receive(&mut wire.as_slice()).unwrap(), start);

        for message in [
            FromHelper::Prompt {
                style: 1,
                text: "Code: ".into(),
            },
            FromHelper::Done {
                code: 0,
                authtok: None,
                keep: secret(""),
            },
        ] {
            let mut wire = Vec::new();
            message.send(&mut wire).unwrap();
            assert_eq!(FromHelper::receive(&mut wire.as_slice()).unwrap(), message);
        }
        for message in [ToHelper::Answer(secret("123456")), ToHelper::Answer(None)] {
            let mut wire = Vec::new();
            message.send(&mut wire).unwrap();
            assert_eq!(ToHelper::receive(&mut wire.as_slice()).unwrap(), message);
        }
    }

    #[test]
    fn short_long_and_trailing_frames_are_refused() {
        let mut wire = Vec::new();
        ToHelper::Answer(secret("123456")).send(&mut wire).unwrap();
        // Cut anywhere: an error, never a shorter answer.
        for cut in 0..wire.len() {
            assert!(
                ToHelper::receive(&mut &wire[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        // A length field that claims more than the frame holds.
        let mut lying = wire.clone();
        lying[5] = 0x7f;
        assert!(ToHelper::receive(&mut lying.as_slice()).is_err());
        // Trailing bytes inside the frame.
        let mut padded = wire.clone();
        padded[0] += 1;
        padded.push(0);
        assert!(ToHelper::receive(&mut padded.as_slice()).is_err());
        // Over the limit.
        let huge = ((MAX_FRAME + 1) as u32).to_le_bytes();
        assert!(FromHelper::receive(&mut huge.as_slice()).is_err());
        // Unknown tags.
        let mut other = Vec::new();
        Body::default().u8(9).send(&mut other).unwrap();
        assert!(FromHelper::receive(&mut other.as_slice()).is_err());
        assert!(ToHelper::receive(&mut other.as_slice()).is_err());
    }
}
