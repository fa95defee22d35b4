//! `twofold agent`: fleet mode's local service. It alone holds the PostgreSQL client, TLS and a
//! small pool of connections ([`pg`], [`pool`]); the module (and the CLI) reach it over a Unix socket
//! (`[store] agent_socket`, default /run/twofold/agent.sock, 0600 root in a 0700 directory)
//! and speak src/store/wire.rs. Runs as root, in the foreground (systemd's
//! twofold-agent.service, or by hand); stopping it at any moment leaves no lock behind (an
//! advisory xact lock ends with its connection).
//!
//! The policy is read again when its file changes, so a new url or password file takes
//! effect at the next login (the pool starts afresh); a policy that does not load is told to
//! every request, which fail closed, and the agent keeps running.
#![forbid(unsafe_code)]

pub mod pg;
mod pool;
mod serve;
pub mod url;

use std::cell::RefCell;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use pam_twofold::Policy;
use pam_twofold::log::{self, Level};
use pam_twofold::store::settings::StoreKind;
use pam_twofold::store::wire::{DEFAULT_SOCKET, Reply};

use crate::cli::AgentArgs;
use crate::error::CliError;
use pg::DbSettings;
use pool::Pool;

/// The agent's state: who may connect, the policy it serves and the pool for it.
pub struct Agent {
    config: PathBuf,
    allowed: Vec<u32>,
    current: RefCell<Option<Loaded>>,
}

/// The policy as last read: its file's identity, and the pool (or why there is none).
struct Loaded {
    stamp: Stamp,
    pool: Result<Rc<Pool>, String>,
}

/// What tells a changed policy file: inode, size, modification and change times.
#[derive(PartialEq, Eq, Clone, Copy)]
struct Stamp(u64, u64, i64, i64, i64, i64);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = fs::metadata(path).ok()?;
    Some(Stamp(
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    ))
}

impl Agent {
    fn allows(&self, uid: u32) -> bool {
        uid == 0 || self.allowed.contains(&uid)
    }

    /// The pool for the policy as it is now, read again if its file changed.
    fn pool(&self) -> Result<Rc<Pool>, Reply> {
        let now = stamp(&self.config);
        let mut current = self.current.borrow_mut();
        let fresh = matches!((&*current, now), (Some(l), Some(s)) if l.stamp == s);
        if !fresh {
            let pool = load_pool(&self.config);
            if let Err(problem) = &pool {
                say(
                    Level::Error,
                    &format!("{}: {problem}", self.config.display()),
                );
            }
            // The same database settings keep their open connections.
            let pool = match (pool, current.as_ref().map(|l| &l.pool)) {
                (Ok(new), Some(Ok(old))) if new.db == old.db => Ok(Rc::clone(old)),
                (pool, _) => pool.map(Rc::new),
            };
            *current = now.map(|stamp| Loaded { stamp, pool });
        }
        match current.as_ref().map(|l| &l.pool) {
            Some(Ok(pool)) => Ok(Rc::clone(pool)),
            Some(Err(problem)) => Err(Reply::Settings {
                problem: problem.clone(),
            }),
            None => Err(Reply::Settings {
                problem: format!("the policy {} cannot be read", self.config.display()),
            }),
        }
    }
}

fn load_pool(config: &Path) -> Result<Pool, String> {
    let policy = Policy::load(config).map_err(|e| e.to_string())?;
    if policy.store.kind != StoreKind::Postgres {
        return Err("[store] kind is not \"postgres\": the agent serves fleet mode only".into());
    }
    let db = DbSettings::new(&policy.store);
    url::check_url(policy.store.url.as_deref().unwrap_or_default())?;
    Ok(Pool::new(db))
}

/// A line to syslog (ident `twofold-agent`) and to stderr (the service's journal).
pub fn say(level: Level, line: &str) {
    log::send("twofold-agent", level, line);
    eprintln!("twofold-agent: {line}");
}

/// `twofold agent`: listens until killed.
pub fn run(config: &Path, args: AgentArgs) -> Result<(), CliError> {
    let socket = match &args.socket {
        Some(path) => path.clone(),
        None => Policy::load(config)
            .map(|p| p.store.agent_socket)
            .unwrap_or_else(|_| PathBuf::from(DEFAULT_SOCKET)),
    };
    let listener = listen(&socket, !args.allow_uid.is_empty()).map_err(|e| CliError::Agent {
        socket: socket.clone(),
        source: e,
    })?;
    let agent = Rc::new(Agent {
        config: config.to_path_buf(),
        allowed: args.allow_uid,
        current: RefCell::new(None),
    });
    say(
        Level::Notice,
        &format!("listening on {} for {}", socket.display(), config.display()),
    );
    let served: io::Result<()> = pg::block_on(async move {
        let listener = tokio::net::UnixListener::from_std(listener)?;
        loop {
            let (stream, _) = listener.accept().await?;
            tokio::task::spawn_local(serve::connection(Rc::clone(&agent), stream));
        }
    })?;
    served.map_err(|e| CliError::Agent { socket, source: e })
}

/// The socket, root's alone: its directory is made (0700) if missing and must not be open to
/// others; a socket left by an agent that died is replaced, anything else there is not.
fn listen(socket: &Path, open_to_others: bool) -> io::Result<std::os::unix::net::UnixListener> {
    let dir = socket
        .parent()
        .ok_or_else(|| io::Error::other("the socket path has no directory"))?;
    if !dir.exists() {
        fs::create_dir_all(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    let meta = fs::symlink_metadata(dir)?;
    if !meta.is_dir() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(io::Error::other(format!(
            "{} must be a directory of root's that only root may write (install -d -m 700 -o root {0})",
            dir.display()
        )));
    }
    match fs::symlink_metadata(socket) {
        Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => {
            fs::remove_file(socket)?;
        }
        Ok(_) => {
            return Err(io::Error::other(format!(
                "{} exists and is not a socket: remove it yourself",
                socket.display()
            )));
        }
        Err(_) => {}
    }
    let listener = std::os::unix::net::UnixListener::bind(socket)?;
    // Others may reach the socket only when uids besides root are allowed: SO_PEERCRED is
    // the gate then, and the directory must let them through.
    let mode = if open_to_others { 0o666 } else { 0o600 };
    fs::set_permissions(socket, fs::Permissions::from_mode(mode))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}
