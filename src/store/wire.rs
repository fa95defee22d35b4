//! The local agent's protocol: what the module ([`super::agent`]) and `twofold agent` say to
//! each other over the agent's Unix socket, and who may be on the other end.
//!
//! Frames: a 4-byte big-endian length, then that many bytes of JSON, at most [`MAX_FRAME`].
//! Every message carries the protocol version (`"v"`); a peer speaking another version is
//! refused, never guessed at. Record text travels as the store keeps it (sealed under the
//! fleet key when sealing is on): the agent moves rows, it never reads a record.
//!
//! One connection carries any number of requests in turn. `Lock` opens a transaction that
//! holds the user's lock until the same connection sends `Write` or `Keep`; anything else —
//! the connection closing, a module killed, a silence longer than the agent's limit — rolls
//! it back, so a lock never outlives the login that took it.
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::os::fd::AsFd;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The version of this protocol; both sides refuse any other.
pub const VERSION: u32 = 1;
/// Largest frame either side reads: a record is at most 64 KiB, and a listing comes one
/// record per frame.
pub const MAX_FRAME: u32 = 256 * 1024;
/// Where the agent listens unless `[store] agent_socket` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/twofold/agent.sock";

/// What the module (or the CLI) asks of the agent.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The user's row, without a lock: [`Reply::Row`].
    Load { user: String },
    /// BEGIN, the user's advisory lock, the row ([`Reply::Row`]); the transaction stays open
    /// for `Write` or `Keep` on this connection.
    Lock { user: String },
    /// Under the lock: the new row (`None` deletes it), then COMMIT: [`Reply::Done`].
    Write { text: Option<Zeroizing<String>> },
    /// Under the lock: nothing changes; COMMIT: [`Reply::Done`].
    Keep,
    /// Deletes the user's row under the lock: [`Reply::Removed`].
    Remove { user: String },
    /// Every row: one [`Reply::Entry`] each, then [`Reply::Done`].
    List,
    /// Connects (or takes a pooled connection) and checks the schema: [`Reply::Done`].
    Check,
}

/// What the agent answers.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
#[serde(tag = "reply", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reply {
    Row {
        text: Option<Zeroizing<String>>,
    },
    Done,
    Removed {
        existed: bool,
    },
    Entry {
        user: String,
        text: Zeroizing<String>,
    },
    /// The database could not be reached or did not answer in time.
    Unreachable {
        server: String,
        reason: String,
    },
    /// The database answered with an error, or was refused (its TLS certificate).
    Failed {
        server: String,
        problem: String,
    },
    /// The agent's `[store]` settings are wrong: an admin must fix the policy.
    Settings {
        problem: String,
    },
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    v: u32,
    #[serde(flatten)]
    body: T,
}

/// Why a frame could not be read.
#[derive(Debug)]
pub enum WireError {
    Io(io::Error),
    /// The peer announced a frame larger than [`MAX_FRAME`].
    TooLarge(u32),
    /// The peer speaks another version of the protocol.
    Version(u32),
    Malformed(String),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::TooLarge(n) => write!(f, "a frame of {n} bytes (at most {MAX_FRAME})"),
            Self::Version(v) => write!(
                f,
                "the peer speaks protocol version {v}, this twofold {VERSION}: install the same \
                 twofold version for the module and the agent, then restart the agent"
            ),
            Self::Malformed(why) => write!(f, "a malformed message: {why}"),
        }
    }
}

/// `msg` as one frame, length first.
pub fn encode<T: Serialize>(msg: &T) -> Zeroizing<Vec<u8>> {
    let body = Zeroizing::new(
        serde_json::to_vec(&Envelope {
            v: VERSION,
            body: msg,
        })
        .expect("protocol messages always serialize"),
    );
    let mut frame = Zeroizing::new(Vec::with_capacity(body.len() + 4));
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// The body length a frame header announces, if it is within bounds.
pub fn frame_len(header: [u8; 4]) -> Result<usize, WireError> {
    let len = u32::from_be_bytes(header);
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len));
    }
    Ok(len as usize)
}

/// A frame body as a message of this protocol version.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
    #[derive(Deserialize)]
    struct Version {
        v: u32,
    }
    let version: Version =
        serde_json::from_slice(body).map_err(|e| WireError::Malformed(e.to_string()))?;
    if version.v != VERSION {
        return Err(WireError::Version(version.v));
    }
    let envelope: Envelope<T> =
        serde_json::from_slice(body).map_err(|e| WireError::Malformed(e.to_string()))?;
    Ok(envelope.body)
}

/// Writes one message (blocking; the stream's write timeout bounds it).
pub fn send<T: Serialize>(stream: &mut impl Write, msg: &T) -> io::Result<()> {
    stream.write_all(&encode(msg))
}

/// Reads one message (blocking; the stream's read timeout bounds it).
pub fn receive<T: DeserializeOwned>(stream: &mut impl Read) -> Result<T, WireError> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).map_err(WireError::Io)?;
    let mut body = Zeroizing::new(vec![0u8; frame_len(header)?]);
    stream.read_exact(&mut body).map_err(WireError::Io)?;
    decode(&body)
}

/// The uid of the process on the other end of a Unix socket, as the kernel saw it when the
/// connection was made (SO_PEERCRED): no claim of the peer's own.
pub fn peer_uid(socket: &impl AsFd) -> io::Result<u32> {
    let credentials = getsockopt(socket, PeerCredentials).map_err(io::Error::from)?;
    Ok(credentials.uid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Serialize + DeserializeOwned>(msg: &T) -> T {
        let frame = encode(msg);
        receive(&mut &frame[..]).unwrap()
    }

    #[test]
    fn every_message_survives_a_frame() {
        for request in [
            Request::Load { user: "a".into() },
            Request::Lock { user: "a".into() },
            Request::Write {
                text: Some(Zeroizing::new("x = 1".into())),
            },
            Request::Write { text: None },
            Request::Keep,
            Request::Remove { user: "a".into() },
            Request::List,
            Request::Check,
        ] {
            assert_eq!(round_trip(&request), request);
        }
        let reply = Reply::Failed {
            server: "db".into(),
            problem: "no".into(),
        };
        assert_eq!(round_trip(&reply), reply);
    }

    #[test]
    fn other_versions_oversized_and_malformed_frames_are_refused() {
        let body = br#"{"v":2,"op":"list"}"#;
        assert!(matches!(
            decode::<Request>(body),
            Err(WireError::Version(2))
        ));
        let huge = (MAX_FRAME + 1).to_be_bytes();
        assert!(matches!(frame_len(huge), Err(WireError::TooLarge(_))));
        assert!(matches!(
            decode::<Request>(br#"{"v":1,"op":"drop_table"}"#),
            Err(WireError::Malformed(_))
        ));
        let mut short = &[0u8, 0, 0, 9, b'{'][..];
        assert!(matches!(
            receive::<Request>(&mut short),
            Err(WireError::Io(_))
        ));
    }

    #[test]
    fn the_peer_is_named_by_the_kernel() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(peer_uid(&a).unwrap(), nix::unistd::geteuid().as_raw());
    }
}
