//! The agent's open connections, kept for the next login, and the statements a login runs on
//! them. Each connection prepares those statements once, when it opens, so a login sends no
//! Parse of its own. A login's statements are pipelined: tokio-postgres sends a request when
//! its future is first polled, and `try_join` polls its futures in argument order, so BEGIN,
//! the user's lock and the read leave together and are answered in one round trip, as are the
//! write and COMMIT. The server still runs them one after another: the read starts (and takes
//! its snapshot) only once the lock is held, and a step after a failed one fails too.
//!
//! A connection goes back to the pool only if its last transaction ended (COMMIT or ROLLBACK
//! answered) and it saw no outage. Any other is dropped, which closes it: the server then ends
//! its transaction and releases its lock.
#![forbid(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::time::Duration;

use futures_util::future::{try_join, try_join4};
use pam_twofold::store::LOCK_TIMEOUT;
use pam_twofold::store::wire::Reply;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};
use zeroize::Zeroizing;

use super::pg::{Answer, DbSettings, LOCK_SEED};

/// Idle connections kept open for the next login.
const MAX_IDLE: usize = 8;

const LOCK_SQL: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, $2))";
const READ_SQL: &str = "SELECT record FROM twofold_records WHERE username = $1";
const UPSERT_SQL: &str = "INSERT INTO twofold_records (username, record) VALUES ($1, $2)
    ON CONFLICT (username) DO UPDATE SET record = EXCLUDED.record, updated = now()";
const DELETE_SQL: &str = "DELETE FROM twofold_records WHERE username = $1";
const LIST_SQL: &str = "SELECT username, record FROM twofold_records ORDER BY username";

/// A login's statements, prepared on one connection (they live as long as it does).
struct Statements {
    lock: Statement,
    read: Statement,
    upsert: Statement,
    delete: Statement,
}

/// One open connection and its prepared statements.
pub struct Conn {
    client: Client,
    statements: Statements,
    /// Set when a statement was not answered in time, the server went away, or a ROLLBACK
    /// failed: the connection's state is unknown, so it is never used again.
    broken: Cell<bool>,
}

impl Conn {
    /// Connects, checks the schema and prepares the statements (pipelined).
    async fn open(db: &DbSettings) -> Answer<Self> {
        let client = db.connect(true).await?;
        let prepared = try_join4(
            client.prepare(LOCK_SQL),
            client.prepare(READ_SQL),
            client.prepare(UPSERT_SQL),
            client.prepare(DELETE_SQL),
        );
        let (lock, read, upsert, delete) = db.wait(db.timeout, prepared).await?;
        Ok(Self {
            client,
            statements: Statements {
                lock,
                read,
                upsert,
                delete,
            },
            broken: Cell::new(false),
        })
    }

    fn usable(&self) -> bool {
        !self.broken.get() && !self.client.is_closed()
    }

    /// Waits for `fut`, at most `limit`; a connection that saw an outage is not reused.
    async fn wait<T>(
        &self,
        db: &DbSettings,
        limit: Duration,
        fut: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Answer<T> {
        let answer = db.wait(limit, fut).await;
        if matches!(answer, Err(Reply::Unreachable { .. })) {
            self.broken.set(true);
        }
        answer
    }

    /// The user's row as stored, outside any transaction.
    pub async fn read(&self, db: &DbSettings, user: &str) -> Answer<Option<Zeroizing<String>>> {
        let read = &self.statements.read;
        let row = self
            .wait(db, db.timeout, self.client.query_opt(read, &[&user]))
            .await?;
        Ok(row.map(|row| Zeroizing::new(row.get::<_, String>(0))))
    }

    /// BEGIN, the user's lock, and the user's row read under it: one round trip. The lock
    /// waits as long as the file store's would: the server's lock_timeout ends the wait, and
    /// statement_timeout is lifted for the lock alone (a shorter one would end a contended
    /// wait as if the server were gone). On failure the transaction is rolled back.
    pub async fn begin_locked(
        &self,
        db: &DbSettings,
        user: &str,
    ) -> Answer<Option<Zeroizing<String>>> {
        let restore = format!("SET LOCAL statement_timeout = {}", db.timeout.as_millis());
        let limit = db.timeout.max(LOCK_TIMEOUT + Duration::from_secs(1)) + db.timeout;
        let st = &self.statements;
        let lock_params: [&(dyn ToSql + Sync); 2] = [&user, &LOCK_SEED];
        let read_params: [&(dyn ToSql + Sync); 1] = [&user];
        let steps = try_join4(
            self.client
                .batch_execute("BEGIN; SET LOCAL statement_timeout = 0"),
            self.client.execute(&st.lock, &lock_params),
            self.client.batch_execute(&restore),
            self.client.query_opt(&st.read, &read_params),
        );
        let answer = self.wait(db, limit, steps).await;
        let (_, _, _, row) = self.end_on_error(db, answer).await?;
        Ok(row.map(|row| Zeroizing::new(row.get::<_, String>(0))))
    }

    /// Inside [`Conn::begin_locked`]'s transaction: stores `text` as the user's row (`None`
    /// deletes it) and COMMITs, in one round trip; returns whether a row was there to change.
    /// After a failed write the server turns the COMMIT into a ROLLBACK.
    pub async fn write_and_commit(
        &self,
        db: &DbSettings,
        user: &str,
        text: Option<&str>,
    ) -> Answer<bool> {
        let write = async {
            match text {
                Some(text) => {
                    let upsert = &self.statements.upsert;
                    self.client.execute(upsert, &[&user, &text]).await
                }
                None => {
                    let delete = &self.statements.delete;
                    self.client.execute(delete, &[&user]).await
                }
            }
        };
        let steps = try_join(write, self.client.batch_execute("COMMIT"));
        let answer = self.wait(db, db.timeout, steps).await;
        let (changed, ()) = self.end_on_error(db, answer).await?;
        Ok(changed > 0)
    }

    /// Ends [`Conn::begin_locked`]'s transaction with nothing written.
    pub async fn commit(&self, db: &DbSettings) -> Answer<()> {
        let answer = self
            .wait(db, db.timeout, self.client.batch_execute("COMMIT"))
            .await;
        self.end_on_error(db, answer).await
    }

    /// Ends the open transaction, discarding it; a connection that cannot is not reused.
    pub async fn rollback(&self, db: &DbSettings) {
        if self.broken.get() {
            // Its state is unknown: dropping it ends the transaction on the server.
            return;
        }
        let rollback = self.client.batch_execute("ROLLBACK");
        if self.wait(db, db.timeout, rollback).await.is_err() {
            self.broken.set(true);
        }
    }

    async fn end_on_error<T>(&self, db: &DbSettings, result: Answer<T>) -> Answer<T> {
        if result.is_err() {
            self.rollback(db).await;
        }
        result
    }

    /// Every row, by user name.
    pub async fn list(&self, db: &DbSettings) -> Answer<Vec<(String, Zeroizing<String>)>> {
        let rows = self
            .wait(db, db.timeout, self.client.query(LIST_SQL, &[]))
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| (row.get(0), Zeroizing::new(row.get::<_, String>(1))))
            .collect())
    }
}

/// Open connections kept for the next request: a login takes one (or opens one when none is
/// idle) and gives it back when its transaction is over.
pub struct Pool {
    pub db: DbSettings,
    idle: RefCell<Vec<Conn>>,
}

impl Pool {
    pub fn new(db: DbSettings) -> Self {
        Self {
            db,
            idle: RefCell::new(Vec::new()),
        }
    }

    /// An idle connection the server has not closed, or a new one.
    pub async fn take(&self) -> Answer<Conn> {
        loop {
            let Some(conn) = self.idle.borrow_mut().pop() else {
                break;
            };
            if conn.usable() {
                return Ok(conn);
            }
        }
        Conn::open(&self.db).await
    }

    /// A connection whose last transaction ended cleanly goes back to the pool; any other is
    /// dropped (closed).
    pub fn give_back(&self, conn: Conn) {
        let mut idle = self.idle.borrow_mut();
        if conn.usable() && idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}
