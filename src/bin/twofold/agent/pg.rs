//! The agent's side of fleet mode: the PostgreSQL client (tokio-postgres on the agent's own
//! current-thread runtime), its settings, TLS, connecting, and `db init`; the pool of open
//! connections and a login's statements are in [`super::pool`]. Only `twofold` (the agent,
//! `db init`) links this; the module reaches it through the agent's socket.
//!
//! Rows are moved as the store keeps them (sealed text): the module seals and opens records,
//! the agent never reads one. A change is one transaction: `pg_advisory_xact_lock` on the user
//! (an absent row is locked too, so two first enrollments cannot both win), read, (the module
//! decides), upsert or delete, commit. An advisory xact lock ends with its transaction or its
//! connection: an agent that dies holds no lock.
//!
//! Every wait is bounded: connecting by `[store] timeout` per host, each statement by the
//! timeout on the client and by `statement_timeout`/`lock_timeout` on the server. The schema
//! is created and versioned by `twofold db init`, never by a login.
#![forbid(unsafe_code)]

use std::future::Future;
use std::net::{IpAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use pam_twofold::secure_file::{Expect, Owner, open_checked};
use pam_twofold::store::settings::StoreSection;
use pam_twofold::store::wire::Reply;
use pam_twofold::store::{LOCK_TIMEOUT, StoreError};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Socket};
use zeroize::Zeroizing;

use super::url::{Transport, check_url};

/// The schema this build reads and writes (`twofold_schema.version`).
pub const SCHEMA_VERSION: i32 = 1;
/// Largest password file read.
const MAX_PASSWORD_BYTES: u64 = 4096;
/// Largest CA file read (a whole system bundle is about 200 KB).
const MAX_CA_BYTES: u64 = 1024 * 1024;
/// Key space of our advisory locks (any fixed number: it keeps them apart from other users of
/// `hashtextextended` locks in the same database).
pub(super) const LOCK_SEED: i64 = 0x7f01d;

const SCHEMA_SQL: &str = "
    CREATE TABLE IF NOT EXISTS twofold_schema (version integer NOT NULL);
    CREATE TABLE IF NOT EXISTS twofold_records (
        username text PRIMARY KEY,
        record   text NOT NULL,
        updated  timestamptz NOT NULL DEFAULT now()
    );";

/// A failure, as the module is told it ([`Reply::Unreachable`], [`Reply::Failed`] or
/// [`Reply::Settings`]).
pub type Answer<T> = Result<T, Reply>;

/// What the agent needs of `[store]` to reach the database.
#[derive(Clone, PartialEq, Eq)]
pub struct DbSettings {
    url: String,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    pub timeout: Duration,
    /// Where the server is, for messages (never the password).
    pub server: String,
}

impl DbSettings {
    pub fn new(store: &StoreSection) -> Self {
        let url = store.url.clone().unwrap_or_default();
        let server = url
            .parse::<Config>()
            .map(|c| describe_server(&c))
            .unwrap_or_else(|_| "(invalid url)".into());
        Self {
            url,
            password_file: store.password_file.clone(),
            ca_file: store.ca_file.clone(),
            timeout: Duration::from_secs(u64::from(store.timeout)),
            server,
        }
    }

    /// Whether records travel in clear text over TCP (`sslmode=disable`), for the CLI's note.
    pub fn clear_text_tcp(&self) -> bool {
        check_url(&self.url).is_ok_and(|(_, t)| t == Transport::Plain)
    }

    fn unreachable(&self, reason: impl Into<String>) -> Reply {
        Reply::Unreachable {
            server: self.server.clone(),
            reason: reason.into(),
        }
    }

    fn problem(&self, problem: impl Into<String>) -> Reply {
        Reply::Failed {
            server: self.server.clone(),
            problem: problem.into(),
        }
    }

    /// The client's settings from the url, checked here (the module never parses it): TLS
    /// as the url rules demand it, our timeouts, the password, resolved host names.
    fn client_config(&self) -> Answer<(Config, Transport)> {
        let (mut config, transport) =
            check_url(&self.url).map_err(|problem| Reply::Settings { problem })?;
        if transport != Transport::VerifiedTls {
            // Sockets and sslmode=disable: never a TLS attempt that could fall back.
            config.ssl_mode(SslMode::Disable);
        }
        config.connect_timeout(self.timeout);
        config.application_name("twofold-agent");
        // The server cancels a statement or lock wait that takes too long, too.
        let ours = format!(
            "-c statement_timeout={} -c lock_timeout={}",
            self.timeout.as_millis(),
            LOCK_TIMEOUT.as_millis()
        );
        let options = match config.get_options() {
            Some(theirs) => format!("{theirs} {ours}"),
            None => ours,
        };
        config.options(&options);
        if let Some(path) = &self.password_file {
            let password = read_password(path).map_err(|problem| Reply::Settings { problem })?;
            config.password(password.as_bytes());
        }
        self.resolve_hosts(&mut config)?;
        Ok((config, transport))
    }

    /// Host names become addresses here (getaddrinfo), so that every TCP host has one.
    fn resolve_hosts(&self, config: &mut Config) -> Answer<()> {
        if !config.get_hostaddrs().is_empty() {
            return Ok(());
        }
        let hosts = config.get_hosts().to_vec();
        let names = hosts
            .iter()
            .any(|h| matches!(h, Host::Tcp(name) if name.parse::<IpAddr>().is_err()));
        if !names {
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
    /// also when `hostaddr=` or our resolving gives the address).
    fn tls_connector(&self) -> Answer<postgres_native_tls::MakeTlsConnector> {
        let mut builder = native_tls::TlsConnector::builder();
        builder
            .danger_accept_invalid_certs(false)
            .danger_accept_invalid_hostnames(false)
            .use_sni(true)
            .min_protocol_version(Some(native_tls::Protocol::Tlsv12));
        if let Some(path) = &self.ca_file {
            let pem = open_checked(path, &ca_file()).map_err(|e| Reply::Settings {
                problem: e.to_string(),
            })?;
            let cert =
                native_tls::Certificate::from_pem(&pem.bytes).map_err(|e| Reply::Settings {
                    problem: format!("ca_file {}: {e}", path.display()),
                })?;
            builder.add_root_certificate(cert);
        }
        let connector = builder
            .build()
            .map_err(|e| self.problem(format!("TLS setup: {e}")))?;
        Ok(postgres_native_tls::MakeTlsConnector::new(connector))
    }

    /// Opens a connection; `check_schema` refuses a database `twofold db init` has not set up.
    pub async fn connect(&self, check_schema: bool) -> Answer<Client> {
        let (config, transport) = self.client_config()?;
        let tls = match transport {
            Transport::VerifiedTls => Some(self.tls_connector()?),
            Transport::Socket | Transport::Plain => None,
        };
        let hosts = u32::try_from(config.get_hosts().len()).unwrap_or(1).max(1);
        let budget = self.timeout * hosts;
        let connected = tokio::time::timeout(budget, async {
            match tls {
                Some(tls) => open(&config, tls).await,
                None => open(&config, NoTls).await,
            }
        })
        .await;
        let client = match connected {
            Err(_) => return Err(self.unreachable(format!("no connection within {budget:?}"))),
            Ok(Err(e)) => return Err(classify(&self.server, &e)),
            Ok(Ok(client)) => client,
        };
        if check_schema {
            self.check_schema(&client).await?;
        }
        Ok(client)
    }

    /// Waits for one statement (or a pipeline of them), at most `limit`.
    pub(super) async fn wait<T>(
        &self,
        limit: Duration,
        fut: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Answer<T> {
        match tokio::time::timeout(limit, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(classify(&self.server, &e)),
            Err(_) => Err(self.unreachable(format!("no answer within {limit:?}"))),
        }
    }

    async fn batch(&self, client: &Client, sql: &str) -> Answer<()> {
        self.wait(self.timeout, client.batch_execute(sql)).await
    }

    async fn execute(
        &self,
        client: &Client,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Answer<u64> {
        self.wait(self.timeout, client.execute(sql, params)).await
    }

    async fn check_schema(&self, client: &Client) -> Answer<()> {
        let row = self
            .wait(
                self.timeout,
                client.query_opt("SELECT max(version) FROM twofold_schema", &[]),
            )
            .await?;
        match row.and_then(|row| row.get::<_, Option<i32>>(0)) {
            Some(SCHEMA_VERSION) => Ok(()),
            None => Err(self.problem("the schema has no version: run `twofold db init`")),
            Some(v) => Err(self.problem(format!(
                "schema version {v}, this twofold uses {SCHEMA_VERSION}: upgrade twofold or run its `twofold db init`"
            ))),
        }
    }

    /// `twofold db init`: creates the tables and records the schema version; idempotent.
    /// Returns whether anything was created.
    pub async fn init_schema(&self) -> Answer<bool> {
        let client = self.connect(false).await?;
        self.batch(&client, "BEGIN").await?;
        let created = self.create_schema(&client).await;
        let end = if created.is_ok() {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        self.batch(&client, end).await?;
        created
    }

    async fn create_schema(&self, client: &Client) -> Answer<bool> {
        // Two `db init` at once: one creates, the other finds it done.
        self.execute(client, "SELECT pg_advisory_xact_lock($1)", &[&LOCK_SEED])
            .await?;
        self.batch(client, SCHEMA_SQL).await?;
        let row = self
            .wait(
                self.timeout,
                client.query_opt("SELECT max(version) FROM twofold_schema", &[]),
            )
            .await?;
        match row.and_then(|row| row.get::<_, Option<i32>>(0)) {
            None => {
                self.execute(
                    client,
                    "INSERT INTO twofold_schema (version) VALUES ($1)",
                    &[&SCHEMA_VERSION],
                )
                .await?;
                Ok(true)
            }
            Some(SCHEMA_VERSION) => Ok(false),
            Some(v) => Err(self.problem(format!(
                "schema version {v} was made by a newer twofold (this one uses {SCHEMA_VERSION})"
            ))),
        }
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

/// Connects; the connection's task runs on the agent's thread (a `LocalSet`).
async fn open<T>(config: &Config, tls: T) -> Result<Client, tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
{
    let (client, connection) = config.connect(tls).await?;
    tokio::task::spawn_local(async move {
        let _ = connection.await;
    });
    Ok(client)
}

fn classify(server: &str, e: &tokio_postgres::Error) -> Reply {
    let failed = |problem: String| Reply::Failed {
        server: server.to_owned(),
        problem,
    };
    match e.as_db_error() {
        // statement_timeout, or the server shutting down.
        Some(db) if matches!(db.code().code(), "57014" | "57P01" | "57P02" | "57P03") => {
            Reply::Unreachable {
                server: server.to_owned(),
                reason: db.message().to_owned(),
            }
        }
        Some(db) if db.code().code() == "55P03" => failed(format!(
            "another login or admin command held this user's lock for more than {LOCK_TIMEOUT:?}"
        )),
        Some(db) if db.code().code() == "42P01" => {
            failed("the twofold tables do not exist: run `twofold db init`".into())
        }
        Some(db) => failed(format!("{} (SQLSTATE {})", db.message(), db.code().code())),
        // A certificate that fails verification is not an outage: whoever presents it may be
        // in the middle, and must not be able to switch a host to its offline copies.
        None if tls_rejected(e) => failed(tls_hint(with_causes(e))),
        None => Reply::Unreachable {
            server: server.to_owned(),
            reason: tls_hint(with_causes(e)),
        },
    }
}

/// A failure as the CLI reports it (the same errors the module's store gives).
pub fn store_error(reply: Reply) -> StoreError {
    match reply {
        Reply::Unreachable { server, reason } => StoreError::DbUnreachable { server, reason },
        Reply::Settings { problem } => StoreError::Settings { problem },
        Reply::Failed { server, problem } => StoreError::Db { server, problem },
        other => StoreError::Db {
            server: String::new(),
            problem: format!("unexpected: {other:?}"),
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

/// Runs `fut` to its end on a current-thread runtime of its own (the CLI's `db init`).
pub fn block_on<F: Future>(fut: F) -> Result<F::Output, StoreError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| StoreError::Db {
            server: String::new(),
            problem: format!("cannot start the client: {e}"),
        })?;
    Ok(tokio::task::LocalSet::new().block_on(&runtime, fut))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pam_twofold::store::settings::StoreKind;

    #[test]
    fn messages_name_the_server_never_the_password() {
        let section = StoreSection {
            kind: StoreKind::Postgres,
            url: Some("postgresql://tf@db.example:5432/twofold?sslmode=require".into()),
            password_file: Some("/etc/twofold/db.password".into()),
            ..StoreSection::default()
        };
        assert_eq!(
            DbSettings::new(&section).server,
            "database twofold on db.example"
        );
    }

    #[test]
    fn connecting_checks_the_url_again() {
        // Whatever the policy said, the agent never goes out in clear text.
        let section = StoreSection {
            kind: StoreKind::Postgres,
            url: Some("host=192.0.2.1 port=9 dbname=twofold".into()),
            timeout: 1,
            ..StoreSection::default()
        };
        let db = DbSettings::new(&section);
        let err = block_on(db.connect(true)).unwrap().err().unwrap();
        assert!(
            matches!(&err, Reply::Settings { problem } if problem.contains("clear text")),
            "{err:?}"
        );
    }
}
