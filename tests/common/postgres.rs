//! A real PostgreSQL server for one test (Debian's `postgresql` package): a cluster made by
//! `initdb` in a directory of its own under /var/tmp (not /tmp: PAM runs get a private /tmp),
//! reached through a Unix socket there and TCP on a free 127.0.0.1 port with a password (with
//! [`Postgres::start_tls`], TCP to database `postgres` only with TLS). Stopped and removed on
//! drop.
#![allow(dead_code)]

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Postgres {
    dir: PathBuf,
    bin: PathBuf,
    pub port: u16,
    tls: bool,
}

/// The password of the `twofold` role on TCP connections.
pub const PASSWORD: &str = "fleet-test-password";

/// [`Postgres::start_tls`]: a database (owned by `twofold`) that takes TCP without TLS too, like
/// any server whose pg_hba.conf has `host` lines: what a client that does not insist gets.
pub const PLAIN_DB: &str = "plain";

fn bin_dir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    dirs.retain(|d| d.join("initdb").exists());
    dirs.sort();
    dirs.pop()
        .expect("PostgreSQL server binaries are not installed: apt-get install postgresql")
}

fn as_postgres(bin: &Path, tool: &str, args: &[&str]) -> std::process::Output {
    Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join(tool))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"))
}

impl Postgres {
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// TCP connections to database `postgres` must use TLS (a `hostnossl … reject` line),
    /// with a self-signed certificate for `localhost` (see [`Postgres::ca_file`]); database
    /// [`PLAIN_DB`] takes TCP without TLS as well.
    pub fn start_tls() -> Self {
        Self::start_with(true)
    }

    /// The certificate to trust for [`Postgres::start_tls`] (the server's own, self-signed).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("server.crt")
    }

    fn start_with(tls: bool) -> Self {
        super::require_root();
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("twofold-pg-")
            .tempdir_in("/var/tmp")
            .unwrap()
            .keep();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = Self {
            dir,
            bin,
            port,
            tls,
        };
        assert!(
            Command::new("chown")
                .args(["-R", "postgres"])
                .arg(&pg.dir)
                .status()
                .unwrap()
                .success()
        );
        let data = pg.data();
        let out = as_postgres(
            &pg.bin,
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ],
        );
        assert!(out.status.success(), "initdb: {out:?}");
        if tls {
            pg.make_certificate();
        }
        pg.start_again();
        pg.psql(&format!(
            "CREATE ROLE twofold LOGIN PASSWORD '{PASSWORD}'; GRANT ALL ON SCHEMA public TO twofold;"
        ));
        if tls {
            pg.psql(&format!("CREATE DATABASE {PLAIN_DB} OWNER twofold"));
        }
        pg
    }

    fn make_certificate(&self) {
        let key = self.dir.join("server.key");
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args([
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(self.ca_file())
            .output()
            .expect("openssl");
        assert!(out.status.success(), "openssl: {out:?}");
        Command::new("chown")
            .arg("postgres")
            .args([&key, &self.ca_file()])
            .status()
            .unwrap();
        let hba = self.data().join("pg_hba.conf");
        let rules = fs::read_to_string(&hba).unwrap();
        fs::write(
            &hba,
            format!("hostnossl postgres all 127.0.0.1/32 reject\n{rules}"),
        )
        .unwrap();
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The socket directory (`host=` in a connection string).
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// Superuser over the socket.
    pub fn socket_url(&self) -> String {
        format!(
            "host={} port={} dbname=postgres user=postgres",
            self.dir.display(),
            self.port
        )
    }

    /// Role `twofold` over TCP with a password (to go in a password_file).
    pub fn tcp_url(&self, host: &str) -> String {
        self.tcp_url_to(host, "postgres")
    }

    /// The same, to database `db`.
    pub fn tcp_url_to(&self, host: &str, db: &str) -> String {
        format!("postgresql://twofold@{host}:{}/{db}", self.port)
    }

    /// The same in the key=value form: `host=… port=… user=twofold dbname=…`.
    pub fn tcp_keywords(&self, host: &str, db: &str) -> String {
        format!("host={host} port={} user=twofold dbname={db}", self.port)
    }

    pub fn start_again(&self) {
        let mut options = format!(
            "-k {} -c listen_addresses=127.0.0.1 -p {} -c max_connections=200",
            self.dir.display(),
            self.port
        );
        if self.tls {
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                self.ca_file().display(),
                self.dir.join("server.key").display()
            ));
        }
        let log = self.dir.join("log");
        let out = as_postgres(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {out:?}\n{}",
            fs::read_to_string(&log).unwrap_or_default()
        );
    }

    pub fn stop(&self) {
        let out = as_postgres(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
        assert!(out.status.success(), "pg_ctl stop: {out:?}");
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the server: connections are accepted by the
    /// kernel but never answered.
    pub fn freeze(&self, frozen: bool) {
        let pid_file = fs::read_to_string(self.data().join("postmaster.pid")).unwrap();
        let pid = pid_file.lines().next().unwrap().trim().to_owned();
        let signal = if frozen { "-STOP" } else { "-CONT" };
        assert!(
            Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// `pg_dump` of database `postgres`, as a backup would take it.
    pub fn pg_dump(&self) -> String {
        let out = as_postgres(
            &self.bin,
            "pg_dump",
            &[
                "-h",
                self.dir.to_str().unwrap(),
                "-p",
                &self.port.to_string(),
                "-d",
                "postgres",
            ],
        );
        assert!(
            out.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("psql"))
            .args([
                "-h",
                self.dir.to_str().unwrap(),
                "-p",
                &self.port.to_string(),
            ])
            .args([
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-tAc",
                sql,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "psql {sql}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_postgres(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
        let _ = fs::remove_dir_all(&self.dir);
    }
}
