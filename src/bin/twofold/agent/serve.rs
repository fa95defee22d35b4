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
use tokio_postgres::Client;
use zeroize::Zeroizing;

use super::pg::{Answer, Pool};
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
        Request::Load { user } => with_client(pool, |c| load(pool, c, user)).await,
        Request::Check => with_client(pool, |c| async { (c, Ok(Reply::Done)) }).await,
        Request::Remove { user } => with_client(pool, |c| remove(pool, c, user)).await,
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
async fn with_client<F, Fut>(pool: &Pool, f: F) -> Reply
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = (Client, Answer<Reply>)>,
{
    let client = match pool.take().await {
        Ok(client) => client,
        Err(reply) => return reply,
    };
    let (client, answer) = f(client).await;
    pool.give_back(client);
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

async fn load(pool: &Pool, client: Client, user: String) -> (Client, Answer<Reply>) {
    let answer = match user_name(pool, &user) {
        Ok(()) => pool
            .db
            .read(&client, &user)
            .await
            .map(|text| Reply::Row { text }),
        Err(reply) => Err(reply),
    };
    (client, answer)
}

async fn remove(pool: &Pool, client: Client, user: String) -> (Client, Answer<Reply>) {
    let answer = async {
        user_name(pool, &user)?;
        begin_locked(pool, &client, &user).await?;
        let existed = pool.db.write(&client, &user, None).await;
        let existed = end(pool, &client, existed).await?;
        Ok(Reply::Removed { existed })
    }
    .await;
    (client, answer)
}

async fn list(pool: &Pool, stream: &mut UnixStream) -> bool {
    let client = match pool.take().await {
        Ok(client) => client,
        Err(reply) => return send(stream, &reply).await.is_ok(),
    };
    let rows = pool.db.list(&client).await;
    pool.give_back(client);
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

/// BEGIN and the user's lock; on failure the transaction is rolled back.
async fn begin_locked(pool: &Pool, client: &Client, user: &str) -> Answer<()> {
    pool.db.batch(client, "BEGIN").await?;
    let locked = pool.db.lock_user(client, user).await;
    end_on_error(pool, client, locked).await
}

/// COMMIT after `result`, or ROLLBACK if it failed.
async fn end<T>(pool: &Pool, client: &Client, result: Answer<T>) -> Answer<T> {
    let value = end_on_error(pool, client, result).await?;
    pool.db.batch(client, "COMMIT").await?;
    Ok(value)
}

async fn end_on_error<T>(pool: &Pool, client: &Client, result: Answer<T>) -> Answer<T> {
    if result.is_err() {
        // A connection that cannot roll back is closed, and the server rolls back then.
        let _ = pool.db.batch(client, "ROLLBACK").await;
    }
    result
}

/// `Lock`: the row under the user's lock, then the module's decision, then COMMIT; anything
/// but a decision rolls back. Returns whether the connection goes on.
async fn locked(pool: &Pool, stream: &mut UnixStream, user: String) -> bool {
    let client = match pool.take().await {
        Ok(client) => client,
        Err(reply) => return send(stream, &reply).await.is_ok(),
    };
    let row = async {
        user_name(pool, &user)?;
        begin_locked(pool, &client, &user).await?;
        let text = pool.db.read(&client, &user).await;
        end_on_error(pool, &client, text).await
    }
    .await;
    let text = match row {
        Ok(text) => text,
        Err(reply) => {
            pool.give_back(client);
            return send(stream, &reply).await.is_ok();
        }
    };
    if send(stream, &Reply::Row { text }).await.is_err() {
        let _ = pool.db.batch(&client, "ROLLBACK").await;
        pool.give_back(client);
        return false;
    }
    let decision = receive::<Request>(stream, DECISION_LIMIT).await;
    let write = match decision {
        Ok(Request::Write { text }) => Some(text),
        Ok(Request::Keep) => None,
        _ => {
            // The module is gone, silent, or out of turn: nothing it decided is written, and
            // the connection ends.
            let _ = pool.db.batch(&client, "ROLLBACK").await;
            pool.give_back(client);
            say(
                Level::Notice,
                &format!("{user}: the login ended without a decision; rolled back"),
            );
            return false;
        }
    };
    let written = match &write {
        Some(text) => pool
            .db
            .write(&client, &user, text.as_deref().map(|t| t.as_str()))
            .await
            .map(|_| ()),
        None => Ok(()),
    };
    let reply = end(pool, &client, written)
        .await
        .map_or_else(|reply| reply, |()| Reply::Done);
    pool.give_back(client);
    send(stream, &reply).await.is_ok()
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
