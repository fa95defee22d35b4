//! Fleet mode: records in a PostgreSQL database shared by many hosts (`[store] kind =
//! "postgres"`), so one enrollment, one replay step and one failure count hold everywhere.
//!
//! Same record text as the file store, one row per user (`twofold_records`). A change is one
//! transaction: `pg_advisory_xact_lock` on the user (an absent row is locked too, so two first
//! enrollments cannot both win), read, change, upsert or delete, commit. Two hosts racing with
//! one code therefore see each other's step, exactly like two logins on one host.
//!
//! Inside a login the module must not start threads and must not hang: the client is
//! tokio-postgres on a current-thread runtime of our own (the connection task runs on the
//! calling thread while we wait), host names are resolved here with getaddrinfo on the calling
//! thread (tokio would resolve on a thread pool), and connecting and every statement are
//! bounded by `[store] timeout` on the client and by `statement_timeout`/`lock_timeout` on the
//! server. The schema is created and versioned by `twofold db init`, never by the module.
//!
//! On the wire (see `settings::transport`): a TCP host needs `sslmode=require`, which here
//! means TLS with the certificate and the host name verified (libpq's `verify-full`), or an
//! explicit `sslmode=disable`; anything else is a policy error. Socket directories need neither.
#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Config, NoTls, Socket};
use zeroize::Zeroizing;

use super::file::FileStore;
use super::sealing::{Sealing, Unreadable};
use super::settings::{Offline, StoreSection, Transport, parse_url, transport};
use super::{
    Change, LOCK_TIMEOUT, Listing, Locked, Put, Replace, Store, StoreError, put_locked,
    update_locked,
};
use crate::log::{self, Level};
use crate::record::Record;
use crate::secure_file::{Expect, Owner, open_checked};
use crate::user::UserName;

/// The schema this build reads and writes (`twofold_schema.version`).
pub const SCHEMA_VERSION: i32 = 1;
/// Largest password file read.
const MAX_PASSWORD_BYTES: u64 = 4096;
/// Largest CA file read (a whole system bundle is about 200 KB).
const MAX_CA_BYTES: u64 = 1024 * 1024;
/// Key space of our advisory locks (any fixed number: it keeps them apart from other users of
/// `hashtextextended` locks in the same database).
const LOCK_SEED: i64 = 0x7f01d;

const SCHEMA_SQL: &str = "
    CREATE TABLE IF NOT EXISTS twofold_schema (version integer NOT NULL);
    CREATE TABLE IF NOT EXISTS twofold_records (
        username text PRIMARY KEY,
        record   text NOT NULL,
        updated  timestamptz NOT NULL DEFAULT now()
    );";

/// The PostgreSQL store. Connects on first use and keeps the connection for the life of the
/// value (one login, one admin command).
pub struct PgStore {
    settings: Settings,
    conn: RefCell<Option<Conn>>,
}

#[derive(Clone)]
struct Settings {
    url: String,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    timeout: Duration,
    cache: Option<FileStore>,
    /// Rows are sealed with the fleet key, which every host holds and the database never sees.
    sealing: Sealing,
    /// Copies last written longer ago than this are not used: a reset, disable or new backup
    /// codes on the database never reach a copy, so a copy may only be so old.
    cache_max_age: Duration,
    /// Where the server is, for messages (never the password).
    server: String,
}

/// A live connection. Fields drop in order: the client before the runtime its task runs on.
struct Conn {
    client: Client,
    runtime: tokio::runtime::Runtime,
    timeout: Duration,
    server: String,
}

impl Clone for PgStore {
    fn clone(&self) -> Self {
        Self {
            settings: self.settings.clone(),
            conn: RefCell::new(None),
        }
    }
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgStore({})", self.settings.server)
    }
}

fn describe_server(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    format!(
        "database {} on {}",
        config
            .get_dbname()
            .or(config.get_user())
            .unwrap_or("postgres"),
        hosts.join(",")
    )
}

impl PgStore {
    /// From `[store]` settings that passed [`super::settings::check_settings`].
    pub fn from_settings(store: &StoreSection) -> Self {
        let url = store.url.clone().unwrap_or_default();
        let server = url
            .parse::<Config>()
            .map(|c| describe_server(&c))
            .unwrap_or_else(|_| "(invalid url)".into());
        Self {
            settings: Settings {
                url,
                password_file: store.password_file.clone(),
                ca_file: store.ca_file.clone(),
                timeout: Duration::from_secs(u64::from(store.timeout)),
                cache: (store.offline == Offline::Cache)
                    .then(|| FileStore::new(&store.cache_dir).with_sealing(store.sealing())),
                sealing: store.sealing(),
                cache_max_age: Duration::from_secs(u64::from(store.cache_max_age)),
                server,
            },
            conn: RefCell::new(None),
        }
    }

    pub fn sealing(&self) -> &Sealing {
        &self.settings.sealing
    }

    /// The local copies kept for `offline = "cache"`, if that is the mode.
    pub fn cache(&self) -> Option<&FileStore> {
        self.settings.cache.as_ref()
    }

    fn unreachable(&self, reason: impl Into<String>) -> StoreError {
        StoreError::DbUnreachable {
            server: self.settings.server.clone(),
            reason: reason.into(),
        }
    }

    fn problem(&self, problem: impl Into<String>) -> StoreError {
        StoreError::Db {
            server: self.settings.server.clone(),
            problem: problem.into(),
        }
    }

    /// Opens a connection; `check_schema` refuses a database `twofold db init` has not set up.
    fn connect(&self, check_schema: bool) -> Result<Conn, StoreError> {
        let s = &self.settings;
        let (config, transport) = self.client_config()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| self.problem(format!("cannot start the client: {e}")))?;
        let tls = match transport {
            Transport::VerifiedTls => Some(self.tls_connector()?),
            Transport::Socket | Transport::Plain => None,
        };
        let hosts = u32::try_from(config.get_hosts().len()).unwrap_or(1).max(1);
        let budget = s.timeout * hosts;
        let connected = runtime.block_on(async {
            tokio::time::timeout(budget, async {
                match tls {
                    Some(tls) => open(&config, tls).await,
                    None => open(&config, NoTls).await,
                }
            })
            .await
        });
        let client = match connected {
            Err(_) => {
                return Err(self.unreachable(format!("no connection within {budget:?}")));
            }
            Ok(Err(e)) => return Err(self.classify(&e)),
            Ok(Ok(client)) => client,
        };
        let conn = Conn {
            client,
            runtime,
            timeout: s.timeout,
            server: s.server.clone(),
        };
        if check_schema {
            conn.check_schema()?;
        }
        Ok(conn)
    }

    /// The client's settings from the url, checked again here (whoever built this store):
    /// TLS as [`transport`] demands it, our timeouts, the password, resolved host names.
    fn client_config(&self) -> Result<(Config, Transport), StoreError> {
        let s = &self.settings;
        let mut config = parse_url(&s.url).map_err(|e| self.problem(e))?;
        let transport = transport(&config, &s.url).map_err(|e| self.problem(e))?;
        if transport != Transport::VerifiedTls {
            // Sockets and sslmode=disable: never a TLS attempt that could fall back.
            config.ssl_mode(SslMode::Disable);
        }
        config.connect_timeout(s.timeout);
        config.application_name("twofold");
        // The server cancels a statement or lock wait that takes too long, too.
        let ours = format!(
            "-c statement_timeout={} -c lock_timeout={}",
            s.timeout.as_millis(),
            LOCK_TIMEOUT.as_millis()
        );
        let options = match config.get_options() {
            Some(theirs) => format!("{theirs} {ours}"),
            None => ours,
        };
        config.options(&options);
        if let Some(path) = &s.password_file {
            let password = read_password(path).map_err(|e| self.problem(e))?;
            config.password(password.as_bytes());
        }
        self.resolve_hosts(&mut config)?;
        Ok((config, transport))
    }

    /// `twofold check`: connects (within the timeout) and checks the schema; reads no record
    /// and writes nothing, the offline copies included.
    pub fn check_connection(&self) -> Result<(), StoreError> {
        self.with_conn(|_| Ok(()))
    }

    /// The key the user's row is sealed under (`None`: clear, or no row), read without any
    /// key (`twofold key status` and `rotate`).
    pub fn sealed_under(&self, user: &UserName) -> Result<Option<String>, StoreError> {
        self.with_conn(|conn| {
            let row = conn.query_opt(
                "SELECT record FROM twofold_records WHERE username = $1",
                &[&user.as_str()],
            )?;
            Ok(row.and_then(|row| {
                let text = Zeroizing::new(row.get::<_, String>(0));
                super::sealing::sealed_under(text.as_bytes())
            }))
        })
    }

    /// `twofold check --user`: the user's record as the database holds it, without refreshing
    /// this host's offline copy (a check changes nothing).
    pub fn peek(&self, user: &UserName) -> Result<Option<Record>, StoreError> {
        self.with_conn(|conn| conn.read(user, &self.settings.sealing))
    }

    /// Whether records travel in clear text over TCP (`sslmode=disable`), for the CLI's note.
    pub fn clear_text_tcp(&self) -> bool {
        parse_url(&self.settings.url)
            .and_then(|config| transport(&config, &self.settings.url))
            .is_ok_and(|t| t == Transport::Plain)
    }

    /// Host names become addresses here, on this thread: tokio-postgres would resolve them
    /// on tokio's blocking thread pool, i.e. start a thread inside the login process.
    fn resolve_hosts(&self, config: &mut Config) -> Result<(), StoreError> {
        if !config.get_hostaddrs().is_empty() {
            return Ok(());
        }
        let hosts = config.get_hosts().to_vec();
        let names: Vec<&String> = hosts
            .iter()
            .filter_map(|h| match h {
                Host::Tcp(name) if name.parse::<IpAddr>().is_err() => Some(name),
                _ => None,
            })
            .collect();
        if names.is_empty() {
            // IP literals and sockets need no resolving (tokio parses literals itself).
            return Ok(());
        }
        if hosts.iter().any(|h| matches!(h, Host::Unix(_))) {
            return Err(self.problem(
                "url mixes socket directories and host names; use addresses or one kind",
            ));
        }
        let port = config.get_ports().first().copied().unwrap_or(5432);
        for host in &hosts {
            let Host::Tcp(name) = host else { continue };
            let addr = (name.as_str(), port)
                .to_socket_addrs()
                .map_err(|e| self.unreachable(format!("cannot resolve {name}: {e}")))?
                .next()
                .ok_or_else(|| self.unreachable(format!("{name} has no address")))?;
            config.hostaddr(addr.ip());
        }
        Ok(())
    }

    /// TLS as libpq's `verify-full`: the chain must end at a system CA or `ca_file`, and the
    /// certificate must name the url's host (tokio-postgres hands `host=` to the connector,
    /// also when `hostaddr=` or our resolving gives the address). These are native-tls's
    /// defaults, spelled out so that they stay.
    fn tls_connector(&self) -> Result<postgres_native_tls::MakeTlsConnector, StoreError> {
        let mut builder = native_tls::TlsConnector::builder();
        builder
            .danger_accept_invalid_certs(false)
            .danger_accept_invalid_hostnames(false)
            .use_sni(true)
            .min_protocol_version(Some(native_tls::Protocol::Tlsv12));
        if let Some(path) = &self.settings.ca_file {
            let pem = open_checked(path, &ca_file()).map_err(|e| self.problem(e.to_string()))?;
            let cert = native_tls::Certificate::from_pem(&pem.bytes)
                .map_err(|e| self.problem(format!("ca_file {}: {e}", path.display())))?;
            builder.add_root_certificate(cert);
        }
        let connector = builder
            .build()
            .map_err(|e| self.problem(format!("TLS setup: {e}")))?;
        Ok(postgres_native_tls::MakeTlsConnector::new(connector))
    }

    fn classify(&self, e: &tokio_postgres::Error) -> StoreError {
        classify(&self.settings.server, e)
    }

    /// Runs `f` on the connection, opening it (again) when needed. A connection that failed
    /// is dropped, so the next call starts afresh.
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&Conn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut slot = self.conn.borrow_mut();
        if slot.as_ref().is_none_or(|c| c.client.is_closed()) {
            *slot = None;
            *slot = Some(self.connect(true)?);
        }
        let conn = slot.as_ref().expect("connected above");
        let result = f(conn);
        if matches!(result, Err(StoreError::DbUnreachable { .. })) {
            *slot = None;
        }
        result
    }

    /// `twofold db init`: creates the tables and records the schema version; idempotent.
    /// Returns whether anything was created.
    pub fn init_schema(&self) -> Result<bool, StoreError> {
        let conn = self.connect(false)?;
        conn.transaction(|conn| {
            // Two `db init` at once: one creates, the other finds it done.
            conn.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_SEED])?;
            conn.batch(SCHEMA_SQL)?;
            let version: Option<i32> = conn
                .query_opt("SELECT max(version) FROM twofold_schema", &[])?
                .and_then(|row| row.get(0));
            match version {
                None => {
                    conn.execute(
                        "INSERT INTO twofold_schema (version) VALUES ($1)",
                        &[&SCHEMA_VERSION],
                    )?;
                    Ok(true)
                }
                Some(v) if v == SCHEMA_VERSION => Ok(false),
                Some(v) => Err(conn.problem(format!(
                    "schema version {v} was made by a newer twofold (this one uses {SCHEMA_VERSION})"
                ))),
            }
        })
    }

    /// Every user with a record, or why it could not be read.
    pub fn users(&self) -> Result<Listing, StoreError> {
        self.with_conn(|conn| {
            let rows = conn.query(
                "SELECT username, record FROM twofold_records ORDER BY username",
                &[],
            )?;
            let mut listing = Vec::with_capacity(rows.len());
            for row in rows {
                let name: String = row.get(0);
                let text = Zeroizing::new(row.get::<_, String>(1));
                let Ok(user) = UserName::parse(&name) else {
                    continue;
                };
                let record = decode_row(&self.settings.sealing, &text, &user);
                listing.push((user, record));
            }
            Ok(listing)
        })
    }

    fn refresh_cache(&self, user: &UserName, record: &Option<Record>) {
        let Some(cache) = &self.settings.cache else {
            return;
        };
        if let Err(e) = cache.update(user, |slot| *slot = record.clone()) {
            log::send(
                "pam_twofold",
                Level::Warning,
                &format!("offline copy of {user} not updated: {e}"),
            );
        }
    }

    /// Whether this host's copy of `user` was written within `cache_max_age`. An old copy is
    /// not used (and says so): revocations on the database never reach it.
    fn copy_is_fresh(&self, cache: &FileStore, user: &UserName) -> bool {
        let age = std::fs::symlink_metadata(cache.record_path(user))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|written| written.elapsed().ok());
        let fresh = age.is_some_and(|age| age <= self.settings.cache_max_age);
        if !fresh && age.is_some() {
            log::send(
                "pam_twofold",
                Level::Warning,
                &format!(
                    "PostgreSQL store unreachable, and this host's copy of {user:?} is older than \
                     cache_max_age ({} s): not used (fail closed)",
                    self.settings.cache_max_age.as_secs()
                ),
            );
        }
        fresh
    }

    fn offline_notice(&self, user: &UserName, e: &StoreError) {
        log::send(
            "pam_twofold",
            Level::Warning,
            &format!("{e}; using this host's offline copy of {user} (offline = \"cache\")"),
        );
    }
}

/// Connects; the connection task runs on this thread whenever we wait on the runtime (no
/// thread of its own).
async fn open<T>(config: &Config, tls: T) -> Result<Client, tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
{
    let (client, connection) = config.connect(tls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

fn classify(server: &str, e: &tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        // statement_timeout, or the server shutting down.
        Some(db) if matches!(db.code().code(), "57014" | "57P01" | "57P02" | "57P03") => {
            StoreError::DbUnreachable {
                server: server.to_owned(),
                reason: db.message().to_owned(),
            }
        }
        Some(db) if db.code().code() == "55P03" => StoreError::Db {
            server: server.to_owned(),
            problem: format!(
                "another login or admin command held this user's lock for more than {LOCK_TIMEOUT:?}"
            ),
        },
        Some(db) if db.code().code() == "42P01" => StoreError::Db {
            server: server.to_owned(),
            problem: "the twofold tables do not exist: run `twofold db init`".into(),
        },
        Some(db) => StoreError::Db {
            server: server.to_owned(),
            problem: format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        },
        // A certificate that fails verification is not an outage: whoever presents it may be
        // in the middle, and must not be able to switch a host to its offline copies.
        None if tls_rejected(e) => StoreError::Db {
            server: server.to_owned(),
            problem: tls_hint(with_causes(e)),
        },
        None => StoreError::DbUnreachable {
            server: server.to_owned(),
            reason: tls_hint(with_causes(e)),
        },
    }
}

/// Whether the TLS layer refused the server (its certificate or the handshake).
fn tls_rejected(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(err) = cause {
        if err.downcast_ref::<native_tls::Error>().is_some() {
            return true;
        }
        cause = err.source();
    }
    false
}

/// A certificate that failed verification: say what a good one looks like.
fn tls_hint(reason: String) -> String {
    if reason.contains("certificate verify failed") {
        format!(
            "{reason}; the server's certificate must chain to a CA in ca_file or the system's \
             store and name the host= of the url (sslmode=require checks both, like libpq's \
             verify-full)"
        )
    } else {
        reason
    }
}

/// `error performing TLS handshake: … certificate verify failed …`: the causes say what to fix.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

impl Conn {
    fn problem(&self, problem: impl Into<String>) -> StoreError {
        StoreError::Db {
            server: self.server.clone(),
            problem: problem.into(),
        }
    }

    /// Waits for one statement, at most the timeout (the lock wait gets the lock timeout).
    fn wait<T>(
        &self,
        limit: Duration,
        fut: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, StoreError> {
        match self
            .runtime
            .block_on(async { tokio::time::timeout(limit, fut).await })
        {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(classify(&self.server, &e)),
            Err(_) => Err(StoreError::DbUnreachable {
                server: self.server.clone(),
                reason: format!("no answer within {limit:?}"),
            }),
        }
    }

    fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        self.wait(self.timeout, self.client.execute(sql, params))
    }

    fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        self.wait(self.timeout, self.client.query(sql, params))
    }

    fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<tokio_postgres::Row>, StoreError> {
        self.wait(self.timeout, self.client.query_opt(sql, params))
    }

    fn batch(&self, sql: &str) -> Result<(), StoreError> {
        self.wait(self.timeout, self.client.batch_execute(sql))
    }

    /// Runs `f` in a transaction; rolls back when it fails.
    fn transaction<T>(
        &self,
        f: impl FnOnce(&Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.batch("BEGIN")?;
        match f(self) {
            Ok(value) => {
                self.batch("COMMIT")?;
                Ok(value)
            }
            Err(e) => {
                // Best effort: a dead connection rolls back on its own.
                let _ = self.batch("ROLLBACK");
                Err(e)
            }
        }
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        let version: Option<i32> = self
            .query_opt("SELECT max(version) FROM twofold_schema", &[])?
            .and_then(|row| row.get(0));
        match version {
            Some(SCHEMA_VERSION) => Ok(()),
            None => Err(self.problem("the schema has no version: run `twofold db init`")),
            Some(v) => Err(self.problem(format!(
                "schema version {v}, this twofold uses {SCHEMA_VERSION}: upgrade twofold or run its `twofold db init`"
            ))),
        }
    }

    fn read(&self, user: &UserName, sealing: &Sealing) -> Result<Option<Record>, StoreError> {
        let row = self.query_opt(
            "SELECT record FROM twofold_records WHERE username = $1",
            &[&user.as_str()],
        )?;
        row.map(|row| {
            let text = Zeroizing::new(row.get::<_, String>(0));
            decode_row(sealing, &text, user)
        })
        .transpose()
    }

    /// Waits for the user's lock as long as the file store would (the server's lock_timeout
    /// ends the wait first; the client limit is a second guard).
    fn lock_user(&self, user: &UserName) -> Result<(), StoreError> {
        // The wait is bounded by lock_timeout alone (a statement_timeout shorter than it would
        // end a contended wait as if the server were gone); the next statements get theirs back.
        self.batch("SET LOCAL statement_timeout = 0")?;
        let limit = self.timeout.max(LOCK_TIMEOUT + Duration::from_secs(1));
        self.wait(
            limit,
            self.client.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, $2))",
                &[&user.as_str(), &LOCK_SEED],
            ),
        )?;
        self.batch(&format!(
            "SET LOCAL statement_timeout = {}",
            self.timeout.as_millis()
        ))
    }

    fn write(
        &self,
        user: &UserName,
        record: &Option<Record>,
        sealing: &Sealing,
    ) -> Result<(), StoreError> {
        match record {
            Some(record) => {
                let text = sealing
                    .encode(record, user)
                    .map_err(|error| StoreError::Sealed {
                        user: user.to_string(),
                        error,
                    })?;
                self.execute(
                    "INSERT INTO twofold_records (username, record) VALUES ($1, $2)
                     ON CONFLICT (username) DO UPDATE SET record = EXCLUDED.record, updated = now()",
                    &[&user.as_str(), &text.as_str()],
                )?;
            }
            None => {
                self.execute(
                    "DELETE FROM twofold_records WHERE username = $1",
                    &[&user.as_str()],
                )?;
            }
        }
        Ok(())
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

/// The password file: root's, nobody else may read it, a regular file, not a link.
fn password_file() -> Expect {
    Expect {
        what: "password_file",
        owner: Owner::Uid(0),
        forbidden_mode: 0o077,
        max_bytes: MAX_PASSWORD_BYTES,
        single_link: false,
    }
}

/// The CA certificate to trust: public, so anyone may read it and whoever installed it may own
/// it, but nobody else may change it (a CA of theirs would let them pose as the server).
fn ca_file() -> Expect {
    Expect {
        what: "ca_file",
        owner: Owner::Anyone,
        forbidden_mode: 0o022,
        max_bytes: MAX_CA_BYTES,
        single_link: false,
    }
}

/// The password, without the line end that editors add.
fn read_password(path: &Path) -> Result<Zeroizing<String>, String> {
    let contents = open_checked(path, &password_file()).map_err(|e| e.to_string())?;
    let text = std::str::from_utf8(&contents.bytes)
        .map_err(|_| format!("password_file {} is not UTF-8 text", path.display()))?;
    let trimmed = Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_owned());
    if trimmed.is_empty() {
        return Err(format!("password_file {} is empty", path.display()));
    }
    Ok(trimmed)
}

/// One step under the user's lock is one transaction: `pg_advisory_xact_lock`, read, decide,
/// write, commit. With the server unreachable and `offline = "cache"`, the step runs on this
/// host's copy instead.
impl Locked for PgStore {
    fn locked<T>(
        &self,
        user: &UserName,
        decide: impl FnOnce(Result<Option<Record>, StoreError>) -> Result<(T, Change), StoreError>,
    ) -> Result<T, StoreError> {
        let mut decide = Some(decide);
        let result = self.with_conn(|conn| {
            conn.transaction(|conn| {
                conn.lock_user(user)?;
                let found = match conn.read(user, &self.settings.sealing) {
                    // The server failed, not the record: nothing was decided, so offline the
                    // step can still run on the copy.
                    Err(e) if !e.is_about_the_record() => return Err(e),
                    found => found,
                };
                let before = found.as_ref().ok().cloned();
                let run = decide.take().expect("the step runs once");
                let (out, change) = run(found)?;
                // The record as the server holds it now, for the offline copy (`None`: the
                // record could not be read and stays so).
                let after = match change {
                    Change::Nothing => return Ok((out, before)),
                    Change::Write(record) => Some(*record),
                    Change::Remove => None,
                };
                conn.write(user, &after, &self.settings.sealing)?;
                Ok((out, Some(after)))
            })
        });
        match result {
            Ok((out, after)) => {
                if let Some(after) = after {
                    self.refresh_cache(user, &after);
                }
                Ok(out)
            }
            Err(e @ StoreError::DbUnreachable { .. }) => match decide.take() {
                Some(run) => self.locked_offline(user, e, run),
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }
}

impl PgStore {
    /// Offline with a copy, and the step never reached the server: it runs on the copy (this
    /// host's replay protection), never for a user without one (only a copy proves the
    /// user's state; without one, `unreachable` stands: fail closed).
    fn locked_offline<T>(
        &self,
        user: &UserName,
        unreachable: StoreError,
        decide: impl FnOnce(Result<Option<Record>, StoreError>) -> Result<(T, Change), StoreError>,
    ) -> Result<T, StoreError> {
        let Some(cache) = &self.settings.cache else {
            return Err(unreachable);
        };
        let out = cache.locked(user, |found| match found {
            Ok(Some(copy)) => decide(Ok(Some(copy))).map(|(out, change)| (Some(out), change)),
            Ok(None) => Ok((None, Change::Nothing)),
            Err(e) => Err(e),
        })?;
        match out {
            Some(out) => {
                self.offline_notice(user, &unreachable);
                Ok(out)
            }
            None => Err(unreachable),
        }
    }
}

impl Store for PgStore {
    fn load(&self, user: &UserName) -> Result<Option<Record>, StoreError> {
        match self.with_conn(|conn| conn.read(user, &self.settings.sealing)) {
            Ok(record) => {
                self.refresh_cache(user, &record);
                Ok(record)
            }
            Err(e @ StoreError::DbUnreachable { .. }) => match &self.settings.cache {
                // Only a fresh copy proves the user's state; without one, fail closed.
                Some(cache) if self.copy_is_fresh(cache, user) => match cache.load(user) {
                    Ok(Some(record)) => {
                        self.offline_notice(user, &e);
                        Ok(Some(record))
                    }
                    _ => Err(e),
                },
                _ => Err(e),
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
        let existed = self.with_conn(|conn| {
            conn.transaction(|conn| {
                conn.lock_user(user)?;
                let gone = conn.execute(
                    "DELETE FROM twofold_records WHERE username = $1",
                    &[&user.as_str()],
                )?;
                Ok(gone > 0)
            })
        })?;
        if let Some(cache) = &self.settings.cache {
            let _ = cache.remove(user);
        }
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::settings::StoreKind;

    #[test]
    fn messages_name_the_server_never_the_password() {
        let section = StoreSection {
            kind: StoreKind::Postgres,
            url: Some("postgresql://tf@db.example:5432/twofold?sslmode=require".into()),
            password_file: Some("/etc/twofold/db.password".into()),
            offline: Offline::Cache,
            ..StoreSection::default()
        };
        let store = PgStore::from_settings(&section);
        assert_eq!(
            format!("{store:?}"),
            "PgStore(database twofold on db.example)"
        );
        assert!(store.cache().is_some());
    }

    #[test]
    fn connecting_checks_the_url_again() {
        // A `[store]` that never went through check_settings (the module and the CLI always
        // check it; PgStore::from_settings is public) still never goes out in clear text.
        let section = StoreSection {
            kind: StoreKind::Postgres,
            url: Some("host=192.0.2.1 port=9 dbname=twofold".into()),
            timeout: 1,
            ..StoreSection::default()
        };
        let err = PgStore::from_settings(&section)
            .load(&UserName::parse("daemon").unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("clear text"), "{err}");
    }
}
