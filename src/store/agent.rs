//! Fleet mode (`[store] kind = "postgres"`): records in a PostgreSQL database shared by many
//! hosts, reached through the local agent (`twofold agent`) over its Unix socket. The agent
//! owns the database client, TLS and a small pool of connections; the module links none of
//! them and starts no thread: it speaks [`super::wire`] over a blocking socket with timeouts.
//!
//! Same semantics as a store of its own: a change is one transaction on the agent —
//! `pg_advisory_xact_lock` on the user, read, (the module judges), write or keep, commit — so
//! two hosts racing with one code see each other's step. The module seals and opens records
//! itself with the fleet key: the agent and the database only ever see the stored text.
//!
//! Both ends check each other with SO_PEERCRED: the module talks only to an agent running as
//! root; the agent serves only root and the uids it was told to.
#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::fmt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use zeroize::Zeroizing;

use super::offline::OfflineCopies;
use super::sealing::{Sealing, Unreadable};
use super::settings::{Offline, StoreSection};
use super::wire::{self, Reply, Request, WireError};
use super::{
    Change, FileStore, LOCK_TIMEOUT, Listing, Locked, Put, Replace, Store, StoreError, put_locked,
    update_locked,
};
use crate::record::Record;
use crate::user::UserName;

/// The fleet store as the module sees it. Connects on first use and keeps the connection for
/// the life of the value (one login, one admin command).
pub struct AgentStore {
    socket: PathBuf,
    timeout: Duration,
    sealing: Sealing,
    copies: Option<OfflineCopies>,
    /// Whether a change may fall back to this host's copy while the agent or the database is
    /// unreachable: a login's own bookkeeping may; an admin's or a user's change may not.
    offline_changes: bool,
    conn: RefCell<Option<UnixStream>>,
}

impl Clone for AgentStore {
    fn clone(&self) -> Self {
        Self {
            socket: self.socket.clone(),
            timeout: self.timeout,
            sealing: self.sealing.clone(),
            copies: self.copies.clone(),
            offline_changes: self.offline_changes,
            conn: RefCell::new(None),
        }
    }
}

impl fmt::Debug for AgentStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentStore({})", self.socket.display())
    }
}

impl AgentStore {
    /// From `[store]` settings that passed [`super::settings::check_settings`].
    pub fn from_settings(store: &StoreSection) -> Self {
        let copies = (store.offline == Offline::Cache).then(|| {
            OfflineCopies::new(
                FileStore::new(&store.cache_dir).with_sealing(store.sealing()),
                Duration::from_secs(u64::from(store.cache_max_age)),
            )
        });
        Self {
            socket: store.agent_socket.clone(),
            timeout: Duration::from_secs(u64::from(store.timeout)),
            sealing: store.sealing(),
            copies,
            offline_changes: true,
            conn: RefCell::new(None),
        }
    }

    /// For admin commands and self-service: a change made while the database is unreachable
    /// is refused instead of landing in this host's copy alone, where it would tell the admin
    /// "done" while the database and every other host keep the old secret or codes (and the
    /// copy would be overwritten when the database is back). Reads may still use the copy.
    pub fn without_offline_changes(mut self) -> Self {
        self.offline_changes = false;
        self
    }

    pub fn sealing(&self) -> &Sealing {
        &self.sealing
    }

    /// The local copies kept for `offline = "cache"`, if that is the mode.
    pub fn cache(&self) -> Option<&FileStore> {
        self.copies.as_ref().map(OfflineCopies::files)
    }

    /// How long the agent may take to answer: its own limits (connecting, a statement, a
    /// contended lock) and a margin, so that the agent, which can say why, speaks first.
    fn reply_limit(&self, locking: bool) -> Duration {
        let wait = if locking {
            LOCK_TIMEOUT
        } else {
            Duration::ZERO
        };
        wait + self.timeout * 2 + Duration::from_secs(1)
    }

    fn down(&self, reason: impl fmt::Display) -> StoreError {
        StoreError::AgentDown {
            socket: self.socket.clone(),
            reason: reason.to_string(),
        }
    }

    fn refused(&self, problem: impl fmt::Display) -> StoreError {
        StoreError::AgentRefused {
            socket: self.socket.clone(),
            problem: problem.to_string(),
        }
    }

    /// A connection to an agent that runs as root.
    fn connect(&self) -> Result<UnixStream, StoreError> {
        let stream = UnixStream::connect(&self.socket).map_err(|e| self.down(e))?;
        let uid = wire::peer_uid(&stream).map_err(|e| self.down(e))?;
        if uid != 0 {
            return Err(self.refused(format!(
                "the process listening there runs as uid {uid}, not root; twofold talks only \
                 to an agent run by root (check who created the socket)"
            )));
        }
        stream
            .set_write_timeout(Some(self.timeout))
            .map_err(|e| self.down(e))?;
        Ok(stream)
    }

    /// Sends `request` and reads the first reply. A connection that failed is dropped, so
    /// the agent rolls back whatever it held for us, and the next call starts afresh.
    fn ask(&self, request: &Request, locking: bool) -> Result<Reply, StoreError> {
        let mut slot = self.conn.borrow_mut();
        if slot.is_none() {
            *slot = Some(self.connect()?);
        }
        let stream = slot.as_mut().expect("connected above");
        let result = stream
            .set_read_timeout(Some(self.reply_limit(locking)))
            .map_err(WireError::Io)
            .and_then(|()| wire::send(stream, request).map_err(WireError::Io))
            .and_then(|()| wire::receive(stream));
        match result {
            Ok(reply) => Ok(reply),
            Err(e) => {
                *slot = None;
                Err(self.wire_failure(e, locking))
            }
        }
    }

    /// Reads one more reply of a multi-part answer (a listing).
    fn next_reply(&self) -> Result<Reply, StoreError> {
        let mut slot = self.conn.borrow_mut();
        let stream = slot
            .as_mut()
            .ok_or_else(|| self.down("the connection closed"))?;
        match wire::receive(stream) {
            Ok(reply) => Ok(reply),
            Err(e) => {
                *slot = None;
                Err(self.wire_failure(e, false))
            }
        }
    }

    fn wire_failure(&self, e: WireError, locking: bool) -> StoreError {
        match e {
            WireError::Io(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                self.down(format!("no answer within {:?}", self.reply_limit(locking)))
            }
            WireError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                self.down("the agent closed the connection (it may have restarted)")
            }
            WireError::Io(e) => self.down(e),
            other => self.refused(other),
        }
    }

    /// An answer that is not the one asked for: an error reply, or the agent misbehaving.
    fn unexpected(&self, reply: Reply) -> StoreError {
        match reply {
            Reply::Unreachable { server, reason } => StoreError::DbUnreachable { server, reason },
            Reply::Failed { server, problem } => StoreError::Db { server, problem },
            Reply::Settings { problem } => StoreError::Settings { problem },
            other => {
                *self.conn.borrow_mut() = None;
                self.refused(format!("an answer out of turn: {other:?}"))
            }
        }
    }

    /// The stored text of `user`'s row, as the database holds it.
    fn row(&self, request: &Request) -> Result<Option<Zeroizing<String>>, StoreError> {
        match self.ask(request, matches!(request, Request::Lock { .. }))? {
            Reply::Row { text } => Ok(text),
            other => Err(self.unexpected(other)),
        }
    }

    fn decode(&self, text: &str, user: &UserName) -> Result<Record, StoreError> {
        decode_row(&self.sealing, text, user)
    }

    /// Reads the user's record from the database (no offline copy, no refresh).
    pub fn peek(&self, user: &UserName) -> Result<Option<Record>, StoreError> {
        let text = self.row(&Request::Load {
            user: user.to_string(),
        })?;
        text.map(|text| self.decode(&text, user)).transpose()
    }

    /// `twofold check`: the agent connects (within the timeout) and checks the schema; no
    /// record is read and nothing is written, the offline copies included.
    pub fn check_connection(&self) -> Result<(), StoreError> {
        match self.ask(&Request::Check, false)? {
            Reply::Done => Ok(()),
            other => Err(self.unexpected(other)),
        }
    }

    /// The key the user's row is sealed under (`None`: clear, or no row), read without any
    /// key (`twofold key status` and `rotate`).
    pub fn sealed_under(&self, user: &UserName) -> Result<Option<String>, StoreError> {
        let text = self.row(&Request::Load {
            user: user.to_string(),
        })?;
        Ok(text.and_then(|text| super::sealing::sealed_under(text.as_bytes())))
    }

    /// Every user with a record, or why it could not be read.
    pub fn users(&self) -> Result<Listing, StoreError> {
        let mut listing = Vec::new();
        let mut reply = self.ask(&Request::List, false)?;
        loop {
            match reply {
                Reply::Entry { user, text } => {
                    if let Ok(user) = UserName::parse(&user) {
                        let record = self.decode(&text, &user);
                        listing.push((user, record));
                    }
                }
                Reply::Done => return Ok(listing),
                other => return Err(self.unexpected(other)),
            }
            reply = self.next_reply()?;
        }
    }

    /// Ends the open transaction: `Write` (`Some`: the row to store; `Some(None)` deletes
    /// it) or `Keep`, and the COMMIT behind it.
    fn finish(&self, user: &UserName, after: Option<&Option<Record>>) -> Result<(), StoreError> {
        let request = match after {
            None => Request::Keep,
            Some(None) => Request::Write { text: None },
            Some(Some(record)) => Request::Write {
                text: Some(self.sealing.encode(record, user).map_err(|error| {
                    // Nothing is written: dropping the connection rolls the lock back.
                    *self.conn.borrow_mut() = None;
                    StoreError::Sealed {
                        user: user.to_string(),
                        error,
                    }
                })?),
            },
        };
        match self.ask(&request, false)? {
            Reply::Done => Ok(()),
            other => Err(self.unexpected(other)),
        }
    }

    /// The step on the database: lock, read, decide, write or keep, commit. Returns what
    /// `decide` returned and the record as the database now holds it (`None`: it could not
    /// be read and stays so), for the offline copy.
    fn locked_online<T>(
        &self,
        user: &UserName,
        decide: &mut Option<
            impl FnOnce(Result<Option<Record>, StoreError>) -> Result<(T, Change), StoreError>,
        >,
    ) -> Result<(T, Option<Option<Record>>), StoreError> {
        let found = self
            .row(&Request::Lock {
                user: user.to_string(),
            })?
            .map(|text| self.decode(&text, user))
            .transpose();
        let before = found.as_ref().ok().cloned();
        let run = decide.take().expect("the step runs once");
        let (out, change) = match run(found) {
            Ok(decided) => decided,
            Err(e) => {
                // Nothing to write: end the transaction, or drop the connection trying.
                self.finish(user, None).ok();
                return Err(e);
            }
        };
        let after = match change {
            Change::Nothing => {
                self.finish(user, None)?;
                return Ok((out, before));
            }
            Change::Write(record) => Some(*record),
            Change::Remove => None,
        };
        self.finish(user, Some(&after))?;
        Ok((out, Some(after)))
    }
}

/// A row's record, opened with the fleet key if it is sealed.
fn decode_row(sealing: &Sealing, text: &str, user: &UserName) -> Result<Record, StoreError> {
    sealing.decode(text.as_bytes(), user).map_err(|e| match e {
        Unreadable::Record(error) => StoreError::DbRecord {
            user: user.to_string(),
            error,
        },
        Unreadable::Seal(error) => StoreError::Sealed {
            user: user.to_string(),
            error,
        },
    })
}

/// One step under the user's lock is one transaction on the agent. With the agent or the
/// database unreachable before anything was decided, and `offline = "cache"`, the step runs
/// on this host's copy instead.
impl Locked for AgentStore {
    fn locked<T>(
        &self,
        user: &UserName,
        decide: impl FnOnce(Result<Option<Record>, StoreError>) -> Result<(T, Change), StoreError>,
    ) -> Result<T, StoreError> {
        let mut decide = Some(decide);
        match self.locked_online(user, &mut decide) {
            Ok((out, after)) => {
                if let (Some(copies), Some(after)) = (&self.copies, after) {
                    copies.refresh(user, &after);
                }
                Ok(out)
            }
            Err(e) if e.is_unreachable() => match (decide.take(), &self.copies) {
                (Some(run), Some(copies)) if self.offline_changes => copies.locked(user, e, run),
                _ => Err(e),
            },
            Err(e) => Err(e),
        }
    }
}

impl Store for AgentStore {
    fn load(&self, user: &UserName) -> Result<Option<Record>, StoreError> {
        match self.peek(user) {
            Ok(record) => {
                if let Some(copies) = &self.copies {
                    copies.refresh(user, &record);
                }
                Ok(record)
            }
            Err(e) if e.is_unreachable() => match &self.copies {
                Some(copies) => copies.load(user, &e).map(Some).ok_or(e),
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    fn update<T>(
        &self,
        user: &UserName,
        change: impl FnOnce(&mut Option<Record>) -> T,
    ) -> Result<T, StoreError> {
        update_locked(self, user, change)
    }

    fn put(&self, user: &UserName, record: &Record, replace: Replace) -> Result<Put, StoreError> {
        put_locked(self, user, record, replace)
    }

    fn remove(&self, user: &UserName) -> Result<bool, StoreError> {
        let existed = match self.ask(
            &Request::Remove {
                user: user.to_string(),
            },
            true,
        )? {
            Reply::Removed { existed } => existed,
            other => return Err(self.unexpected(other)),
        };
        if let Some(copies) = &self.copies {
            copies.remove(user);
        }
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::settings::StoreKind;

    fn store(socket: &std::path::Path) -> AgentStore {
        AgentStore::from_settings(&StoreSection {
            kind: StoreKind::Postgres,
            url: Some("host=/run/postgresql".into()),
            agent_socket: socket.to_path_buf(),
            timeout: 1,
            ..StoreSection::default()
        })
    }

    #[test]
    fn no_agent_is_an_outage_that_names_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let err = store(&socket)
            .load(&UserName::parse("daemon").unwrap())
            .unwrap_err();
        assert!(err.is_unreachable(), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("agent.sock") && text.contains("fail closed"),
            "{text}"
        );
    }

    /// A silent agent is given up on; the login does not hang with it.
    #[test]
    fn an_agent_that_does_not_answer_is_given_up_on() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let started = std::time::Instant::now();
        let err = store(&socket)
            .load(&UserName::parse("daemon").unwrap())
            .unwrap_err();
        if nix::unistd::geteuid().is_root() {
            assert!(err.to_string().contains("no answer within"), "{err}");
            assert!(started.elapsed() < Duration::from_secs(10));
        } else {
            // Our own listener is not root's: refused before anything is sent.
            assert!(matches!(err, StoreError::AgentRefused { .. }), "{err}");
        }
    }
}
