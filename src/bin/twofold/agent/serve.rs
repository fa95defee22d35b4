//! One connection to the agent: the peer is checked, then its requests are answered in turn
//! (src/store/wire.rs). A `Lock` keeps its transaction open for the peer's decision; a peer
//! that closes, dies or stays silent longer than [`DECISION_LIMIT`] gets a ROLLBACK, so no
//! lock outlives the login that took it.
#![forbid(unsafe_code)]

use std::rc::Rc;
use std::time::Duration;

use pam_twofold::log::Level;
use pam_twofold::store::LOCK_TIMEOUT;
use pam_twofold::store::wire::{self, Reply, Request, WireError};
use pam_twofold::user::UserName;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use zeroize::Zeroizing;

use super::pg::Answer;
use super::pool::{Conn, Pool};
use super::{Agent, say};

/// How long the agent waits for the module's decision after handing it a locked record.
const DECISION_LIMIT: Duration = LOCK_TIMEOUT;
/// How long an idle connection stays open between requests.
const IDLE_LIMIT: Duration = Duration::from_secs(60);

/// Serves one connection to its end.
pub async fn connection(agent: Rc<Agent>, mut stream: UnixStream) {
    let uid = match stream.peer_cred() {
        Ok(cred) => cred.uid(),
        Err(e) => return say(Level::Warning, &format!("peer credentials unreadable: {e}")),
    };
    if !agent.allows(uid) {
        say(
            Level::Warning,
            &format!(
                "refused a connection from uid {uid}: only root and --allow-uid may use the agent"
            ),
        );
        return;
    }
    loop {
        let request = match receive::<Request>(&mut stream, IDLE_LIMIT).await {
            Ok(request) => request,
            Err(Ended::Closed) => return,
            Err(Ended::Broken(why)) => {
                return say(Level::Warning, &format!("uid {uid}: {why}"));
            }
        };
        let pool = match agent.pool() {
            Ok(pool) => pool,
            Err(reply) => {
                if send(&mut stream, &reply).await.is_err() {
                    return;
                }
                continue;
            }
        };
        if !answer(&pool, &mut stream, request).await {
            return;
        }
    }
}

/// Answers one request; `false` when the connection is over.
async fn answer(pool: &Pool, stream: &mut UnixStream, request: Request) -> bool {
    let reply = match request {
        Request::Load { user } => with_conn(pool, |c| load(pool, c, user)).await,
        Request::Check => with_conn(pool, |c| async { (c, Ok(Reply::Done)) }).await,
        Request::Remove { user } => with_conn(pool, |c| remove(pool, c, user)).await,
        Request::List => return list(pool, stream).await,
        Request::Lock { user } => return locked(pool, stream, user).await,
        Request::Write { .. } | Request::Keep => Reply::Failed {
            server: pool.db.server.clone(),
            problem: "a write without a lock (protocol error)".into(),
        },
    };
    send(stream, &reply).await.is_ok()
}

/// Runs `f` on a pooled connection and gives the connection back.
async fn with_conn<F, Fut>(pool: &Pool, f: F) -> Reply
where
    F: FnOnce(Conn) -> Fut,
    Fut: std::future::Future<Output = (Conn, Answer<Reply>)>,
{
    let conn = match pool.take().await {
        Ok(conn) => conn,
        Err(reply) => return reply,
    };
    let (conn, answer) = f(conn).await;
    pool.give_back(conn);
    answer.unwrap_or_else(|reply| reply)
}

fn user_name(pool: &Pool, user: &str) -> Answer<()> {
    UserName::parse(user)
        .map(|_| ())
        .map_err(|e| Reply::Failed {
            server: pool.db.server.clone(),
            problem: format!("not a user name: {e}"),
        })
}

async fn load(pool: &Pool, conn: Conn, user: String) -> (Conn, Answer<Reply>) {
    let answer = match user_name(pool, &user) {
        Ok(()) => conn
            .read(&pool.db, &user)
            .await
            .map(|text| Reply::Row { text }),
        Err(reply) => Err(reply),
    };
    (conn, answer)
}

async fn remove(pool: &Pool, conn: Conn, user: String) -> (Conn, Answer<Reply>) {
    let answer = async {
        user_name(pool, &user)?;
        conn.begin_locked(&pool.db, &user).await?;
        let existed = conn.write_and_commit(&pool.db, &user, None).await?;
        Ok(Reply::Removed { existed })
    }
    .await;
    (conn, answer)
}

async fn list(pool: &Pool, stream: &mut UnixStream) -> bool {
    let conn = match pool.take().await {
        Ok(conn) => conn,
        Err(reply) => return send(stream, &reply).await.is_ok(),
    };
    let rows = conn.list(&pool.db).await;
    pool.give_back(conn);
    match rows {
        Ok(rows) => {
            for (user, text) in rows {
                if send(stream, &Reply::Entry { user, text }).await.is_err() {
                    return false;
                }
            }
            send(stream, &Reply::Done).await.is_ok()
        }
        Err(reply) => send(stream, &reply).await.is_ok(),
    }
}

/// `Lock`: the row under the user's lock, then the module's decision, then COMMIT; anything
/// but a decision rolls back. Returns whether the connection goes on.
async fn locked(pool: &Pool, stream: &mut UnixStream, user: String) -> bool {
    let conn = match pool.take().await {
        Ok(conn) => conn,
        Err(reply) => return send(stream, &reply).await.is_ok(),
    };
    let row = match user_name(pool, &user) {
        Ok(()) => conn.begin_locked(&pool.db, &user).await,
        Err(reply) => Err(reply),
    };
    let text = match row {
        Ok(text) => text,
        Err(reply) => {
            pool.give_back(conn);
            return send(stream, &reply).await.is_ok();
        }
    };
    if send(stream, &Reply::Row { text }).await.is_err() {
        conn.rollback(&pool.db).await;
        pool.give_back(conn);
        return false;
    }
    let written = match receive::<Request>(stream, DECISION_LIMIT).await {
        Ok(Request::Write { text }) => conn
            .write_and_commit(&pool.db, &user, text.as_deref().map(|t| t.as_str()))
            .await
            .map(|_| ()),
        Ok(Request::Keep) => conn.commit(&pool.db).await,
        _ => {
            // The module is gone, silent, or out of turn: nothing it decided is written, and
            // the connection ends.
            conn.rollback(&pool.db).await;
            pool.give_back(conn);
            say(
                Level::Notice,
                &format!("{user}: the login ended without a decision; rolled back"),
            );
            return false;
        }
    };
    pool.give_back(conn);
    send(
        stream,
        &written.map_or_else(|reply| reply, |()| Reply::Done),
    )
    .await
    .is_ok()
}

/// Why a connection's requests ended.
enum Ended {
    /// The peer closed it, or was silent for too long.
    Closed,
    Broken(String),
}

async fn receive<T: DeserializeOwned>(
    stream: &mut UnixStream,
    limit: Duration,
) -> Result<T, Ended> {
    let read = async {
        let mut header = [0u8; 4];
        stream
            .read_exact(&mut header)
            .await
            .map_err(WireError::Io)?;
        let mut body = Zeroizing::new(vec![0u8; wire::frame_len(header)?]);
        stream.read_exact(&mut body).await.map_err(WireError::Io)?;
        wire::decode(&body)
    };
    match tokio::time::timeout(limit, read).await {
        Err(_) => Err(Ended::Closed),
        Ok(Ok(msg)) => Ok(msg),
        Ok(Err(WireError::Io(e))) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(Ended::Closed)
        }
        Ok(Err(e)) => Err(Ended::Broken(e.to_string())),
    }
}

async fn send(stream: &mut UnixStream, reply: &Reply) -> std::io::Result<()> {
    stream.write_all(&wire::encode(reply)).await
}
