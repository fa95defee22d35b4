//! The PostgreSQL url rules: what `[store] url` may say. `twofold agent` applies them before
//! it connects (a login through it is refused with the rule named), and the CLI applies them
//! to `twofold db init` and `twofold check`. The module never parses a url: it links no
//! database client.
#![forbid(unsafe_code)]

use tokio_postgres::Config;
use tokio_postgres::config::{Host, SslMode};

/// The url's rules, all of them: it parses, holds no password, and reaches the server the
/// way [`transport`] allows.
pub fn check_url(url: &str) -> Result<(Config, Transport), String> {
    let config = parse_url(url)?;
    if config.get_password().is_some() {
        return Err(
            "url holds a password: put it alone in a root-only file named by password_file".into(),
        );
    }
    let transport = transport(&config, url)?;
    Ok((config, transport))
}

/// What tokio-postgres understands of `url`. Its error says which option is wrong but never
/// echoes a value (a stray character of a password could otherwise reach syslog).
pub fn parse_url(url: &str) -> Result<Config, String> {
    url.parse::<Config>().map_err(|e| {
        let cause = std::error::Error::source(&e).map(ToString::to_string);
        match cause {
            Some(c) if c.contains("`sslmode`") => SSLMODE_VALUES.to_owned(),
            Some(c) if c.starts_with("invalid value for option") || c.starts_with("unknown option") => {
                format!("url is not a PostgreSQL connection string: {c}")
            }
            _ => "url is not a PostgreSQL connection string (postgresql://user@host/db?sslmode=require or host=… dbname=… sslmode=require)".to_owned(),
        }
    })
}

const SSLMODE_VALUES: &str = "url: sslmode must be require or disable. twofold's sslmode=require \
    checks the server's certificate and host name, as libpq's sslmode=verify-full does: write \
    sslmode=require for verify-full; verify-ca (no host name check) and allow are not offered";

/// How a connection string reaches the server, as [`transport`] allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Unix socket directories only: no network, and PostgreSQL has no TLS there.
    Socket,
    /// TCP with TLS; the certificate must chain to the system's CAs or `ca_file` and name the
    /// host (`host=`, also when `hostaddr=` gives the address): libpq's `verify-full`.
    VerifiedTls,
    /// TCP in clear text: `sslmode=disable`, written by the admin (loopback, IPsec, …).
    Plain,
}

/// The rule for the wire. Every TCP connection the url can open (a `host=` name or address,
/// or any `hostaddr=`) needs `sslmode=require` or an explicit `sslmode=disable`; missing
/// sslmode and `prefer` (libpq's default, which falls back to clear text) are refused. Socket
/// directories need nothing, and cannot take `require`. tokio-postgres reads no PG*
/// environment variables: the url alone decides where the client goes and how.
pub fn transport(config: &Config, url: &str) -> Result<Transport, String> {
    let hosts = config.get_hosts();
    let addrs = config.get_hostaddrs();
    if hosts.is_empty() {
        return Err(
            "url names no host (host=/run/postgresql for the local socket, host=NAME for TCP; hostaddr= goes with a host=)"
                .into(),
        );
    }
    if !addrs.is_empty() && addrs.len() != hosts.len() {
        return Err(format!(
            "url names {} hosts and {} hostaddr addresses: give one address per host, in the same order",
            hosts.len(),
            addrs.len()
        ));
    }
    // With hostaddr= every connection is TCP; host= then only names the certificate.
    let tcp = !addrs.is_empty() || hosts.iter().any(|h| matches!(h, Host::Tcp(_)));
    let socket = hosts.iter().find_map(|h| match h {
        Host::Unix(path) => Some(path.display().to_string()),
        Host::Tcp(_) => None,
    });
    match config.get_ssl_mode() {
        SslMode::Require => match socket {
            Some(path) if addrs.is_empty() => Err(format!(
                "sslmode=require with host={path}: PostgreSQL has no TLS on a Unix socket, and \
                 a socket needs none. For the local socket drop sslmode=require; for TLS list \
                 TCP hosts only"
            )),
            Some(path) => Err(format!(
                "sslmode=require with hostaddr= and host={path}: the certificate is checked \
                 against host=, so write host=NAME (the name in the server's certificate) next \
                 to each hostaddr="
            )),
            None => Ok(Transport::VerifiedTls),
        },
        SslMode::Disable if tcp => Ok(Transport::Plain),
        _ if !tcp => Ok(Transport::Socket),
        _ => Err(clear_text_refused(config, url)),
    }
}

/// Why a TCP url without `sslmode=require` is refused, and exactly what to write instead.
fn clear_text_refused(config: &Config, url: &str) -> String {
    let target = config
        .get_hostaddrs()
        .first()
        .map(ToString::to_string)
        .or_else(|| {
            config.get_hosts().iter().find_map(|h| match h {
                Host::Tcp(name) => Some(name.clone()),
                Host::Unix(_) => None,
            })
        })
        .unwrap_or_default();
    let is_uri = url.starts_with("postgresql://") || url.starts_with("postgres://");
    let fix = if url.contains("sslmode") {
        "change sslmode=prefer to sslmode=require"
    } else if !is_uri {
        "add sslmode=require to the url"
    } else if url.contains('?') {
        "add &sslmode=require to the end of the url"
    } else {
        "add ?sslmode=require to the end of the url"
    };
    format!(
        "url reaches {target} over TCP without sslmode=require: the records, TOTP keys \
         included, would cross the network in clear text (a missing sslmode means \"prefer\", \
         which does not insist on TLS). To fix: {fix} (TLS with the server's certificate and \
         host name checked; ca_file = \"/etc/twofold/db-ca.pem\" trusts a private CA), or \
         write sslmode=disable if the link is protected otherwise (loopback, IPsec, WireGuard)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(url: &str) -> Result<(), String> {
        check_url(url).map(|_| ())
    }

    #[test]
    fn the_url_is_checked_and_never_echoed() {
        for (bad, complaint) in [
            ("postgresql://a:secret@h/db", "password_file"),
            ("dbname=x", "no host"),
            ("host=/h port=x", "connection string"),
        ] {
            let err = url(bad).unwrap_err();
            assert!(err.contains(complaint), "{bad}: {err}");
            assert!(!err.contains("secret"), "a password was echoed: {err}");
        }
        assert_eq!(url("host=/run/postgresql dbname=twofold"), Ok(()));
    }

    #[test]
    fn sockets_need_no_tls() {
        for ok in [
            "host=/run/postgresql dbname=twofold",
            "host=/run/postgresql,/var/run/postgresql dbname=twofold",
            "postgresql://%2Frun%2Fpostgresql/twofold",
            "postgresql:///twofold?host=/run/postgresql",
            "host=/run/postgresql sslmode=disable",
            "host=/run/postgresql sslmode=prefer",
        ] {
            assert_eq!(url(ok), Ok(()), "{ok}");
        }
        // PostgreSQL has no TLS on a socket: `require` there could never connect.
        let err = url("host=/run/postgresql sslmode=require").unwrap_err();
        assert!(err.contains("no TLS on a Unix socket"), "{err}");
        assert!(err.contains("drop sslmode=require"), "{err}");
    }

    #[test]
    fn tcp_without_sslmode_or_with_prefer_is_refused_with_the_fix_named() {
        for (bad, fix) in [
            ("postgresql://tf@db.example/twofold", "?sslmode=require"),
            (
                "postgresql://tf@db.example:5432/twofold",
                "?sslmode=require",
            ),
            (
                "postgresql://tf@db.example/twofold?connect_timeout=3",
                "&sslmode=require",
            ),
            (
                "postgresql://tf@db.example/twofold?sslmode=prefer",
                "sslmode=prefer to sslmode=require",
            ),
            ("host=db.example dbname=twofold", "sslmode=require"),
            (
                "host=db.example sslmode=prefer dbname=twofold",
                "sslmode=prefer to sslmode=require",
            ),
            ("host=127.0.0.1 dbname=twofold", "sslmode=require"),
            ("host=::1 dbname=twofold", "sslmode=require"),
            ("host=localhost dbname=twofold", "sslmode=require"),
            (
                "postgresql://tf@a.example,b.example/twofold",
                "?sslmode=require",
            ),
            ("host=a.example,b.example dbname=twofold", "sslmode=require"),
            // One TCP host among sockets is enough to need it.
            (
                "host=/run/postgresql,db.example dbname=twofold",
                "sslmode=require",
            ),
            // hostaddr= means TCP, whatever host= says.
            (
                "host=/run/postgresql hostaddr=192.0.2.7 dbname=twofold",
                "sslmode=require",
            ),
            (
                "host=db.example hostaddr=192.0.2.7 dbname=twofold",
                "sslmode=require",
            ),
        ] {
            let err = url(bad).unwrap_err();
            assert!(err.contains("clear text"), "{bad}: {err}");
            assert!(err.contains(fix), "{bad}: {err}");
            assert!(err.contains("ca_file"), "{bad}: {err}");
            assert!(err.contains("sslmode=disable"), "{bad}: {err}");
        }
    }

    #[test]
    fn modes_libpq_knows_but_twofold_does_not_are_refused() {
        for bad in [
            "postgresql://tf@db.example/twofold?sslmode=allow",
            "postgresql://tf@db.example/twofold?sslmode=verify-ca",
            "postgresql://tf@db.example/twofold?sslmode=verify-full",
            "host=db.example sslmode=verify-full",
            "host=db.example sslmode=REQUIRE",
            "host=db.example sslmode=bogus",
        ] {
            let err = url(bad).unwrap_err();
            assert!(
                err.contains("sslmode=require") && err.contains("verify-full"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn tcp_with_require_or_an_explicit_disable_is_accepted() {
        for ok in [
            "postgresql://tf@db.example/twofold?sslmode=require",
            "postgresql://tf@db.example/twofold?connect_timeout=3&sslmode=require",
            "postgresql://tf@db.example/twofold?sslmode=disable",
            "postgresql://tf@a.example:5432,b.example:5433/twofold?sslmode=require",
            "postgresql://tf@[2001:db8::1]/twofold?sslmode=require",
            "host=db.example sslmode=require dbname=twofold",
            "host='db.example' sslmode='require'",
            "host=a.example,b.example sslmode=require",
            "host=127.0.0.1 sslmode=require",
            "host=localhost sslmode=disable",
            "host=db.example hostaddr=192.0.2.7 sslmode=require",
            "host=a.example,b.example hostaddr=192.0.2.7,192.0.2.8 sslmode=require",
            "host=/run/postgresql hostaddr=192.0.2.7 sslmode=disable",
            "host=db.example sslmode=require sslnegotiation=direct",
        ] {
            assert_eq!(url(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn require_needs_a_name_to_check_the_certificate_against() {
        for (bad, complaint) in [
            // TCP to the address, but host= is a socket directory: no name for the certificate.
            (
                "host=/run/postgresql hostaddr=192.0.2.7 sslmode=require",
                "host=NAME",
            ),
            // A socket and a TCP host: `require` can never use the socket.
            (
                "host=/run/postgresql,db.example sslmode=require",
                "no TLS on a Unix socket",
            ),
            ("hostaddr=192.0.2.7 sslmode=require", "host="),
            ("hostaddr=192.0.2.7 sslmode=disable", "host="),
            (
                "host=a.example,b.example hostaddr=192.0.2.7 sslmode=require",
                "hostaddr",
            ),
        ] {
            let err = url(bad).unwrap_err();
            assert!(err.contains(complaint), "{bad}: {err}");
        }
    }
}
