//! `twofold-self` as users meet it (root tier): a real non-root user runs the real setuid
//! binary, which authenticates them through the real Linux-PAM library and the `twofold-self`
//! stack (pam_unix with a real password in /etc/shadow, then the module). pam_wrapper cannot
//! serve here: a setuid program ignores LD_PRELOAD. Shared by tests/self_service.rs and the
//! attack reviews.
//!
//! Nothing on the host's /etc changes: each run is in a private mount namespace where an
//! overlay over /etc adds `pam.d/twofold-self` and `twofold/twofold.toml` (the test's policy,
//! its store in a temp dir), and /run holds a syslog socket of the test's. The binary is
//! copied to a dir under /tmp (not nosuid here), owned by root, mode 4755; the user runs it
//! through `setpriv --reuid --regid --init-groups`, answering prompts on standard input.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::sshd::TempUser;
use super::{Env, SECRET, SyslogSink};
use pam_twofold::record::TrustedHost;
use pam_twofold::store::Replace;
use pam_twofold::{FileStore, Record, Store, UserName};

pub const PASSWORD: &str = "Self-service-pw-1";

/// One user, one policy, one store, the setuid binary and the overlay files.
pub struct World {
    pub env: Env,
    pub user: TempUser,
    pub uid: u32,
    pub gid: u32,
    pub root: tempfile::TempDir,
    pub sink: Arc<SyslogSink>,
    /// What the runs logged, read off the sink all along: its queue is short (10 datagrams)
    /// and a full one would block the helper's next syslog line.
    pub log: Arc<Mutex<Vec<String>>>,
    pub stop: Arc<AtomicBool>,
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

pub fn id(flag: &str, user: &str) -> u32 {
    let out = Command::new("id").args([flag, user]).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

impl World {
    pub fn new(policy: &str) -> Self {
        Self::with(Env::new(policy), TempUser::new())
    }

    pub fn with(env: Env, user: TempUser) -> Self {
        super::require_tool("setpriv", "util-linux");
        user.set_password(PASSWORD);
        let root = tempfile::Builder::new()
            .prefix("twofold-self-")
            .tempdir_in("/tmp")
            .unwrap();
        let dir = |p: &Path| {
            fs::create_dir_all(p).unwrap();
            fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
        };
        dir(root.path());
        dir(&root.path().join("upper/pam.d"));
        dir(&root.path().join("upper/twofold"));
        dir(&root.path().join("bin"));
        let stack = format!(
            "auth requisite pam_unix.so\nauth required {}\naccount required pam_unix.so\n",
            super::module()
        );
        fs::write(root.path().join("upper/pam.d/twofold-self"), stack).unwrap();
        let bin = root.path().join("bin/twofold-self");
        fs::copy(env!("CARGO_BIN_EXE_twofold-self"), &bin).unwrap();
        // Owned by root (we are root), setuid.
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o4755)).unwrap();
        let sink = Arc::new(SyslogSink::new(&env));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (reader, lines, stopped) = (sink.clone(), log.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                let got = reader.drain();
                lines.lock().unwrap().extend(got);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let (uid, gid) = (id("-u", &user.name), id("-g", &user.name));
        env.service("login", "", &[]);
        let world = Self {
            env,
            user,
            uid,
            gid,
            root,
            sink,
            log,
            stop,
        };
        world.copy_policy();
        world
    }

    pub fn name(&self) -> &str {
        &self.user.name
    }

    pub fn bin(&self) -> PathBuf {
        self.root.path().join("bin/twofold-self")
    }

    /// The env's policy, as /etc/twofold/twofold.toml inside the runs.
    pub fn copy_policy(&self) {
        let to = self.root.path().join("upper/twofold/twofold.toml");
        fs::copy(self.env.policy(), &to).unwrap();
        fs::set_permissions(&to, fs::Permissions::from_mode(0o644)).unwrap();
    }

    pub fn set_policy(&self, policy: &str) {
        self.env.write_policy(policy);
        self.copy_policy();
    }

    /// `argv` (after the binary) run as the user in a private mount namespace; `vars` is the
    /// whole environment the user hands the helper.
    pub fn command(&self, args: &[&str], vars: &[(&str, &str)]) -> Command {
        self.command_via(&[], args, vars)
    }

    /// Like [`World::command`], with `via` (a program and its arguments, run as the user)
    /// starting the helper: `prlimit ...`, `sh -c 'exec "$0" "$@" >&-'`.
    pub fn command_via(&self, via: &[&str], args: &[&str], vars: &[(&str, &str)]) -> Command {
        const ISOLATE: &str = r#"set -e
W="$1"; run="$2"; shift 2
mount -t overlay twofold-etc -o "lowerdir=/etc,upperdir=$W/upper,workdir=$W/work" /etc
mount --bind "$run" /run
exec "$@""#;
        // A fresh overlay per run: runs may overlap (the concurrency test).
        let run = tempfile::Builder::new()
            .prefix("run-")
            .tempdir_in(self.root.path())
            .unwrap()
            .keep();
        Command::new("cp")
            .args(["-a"])
            .arg(self.root.path().join("upper"))
            .arg(&run)
            .status()
            .unwrap();
        fs::create_dir(run.join("work")).unwrap();
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            ISOLATE,
            "sh",
        ])
        .arg(&run)
        .arg(self.sink.dir())
        .args(["setpriv", &format!("--reuid={}", self.uid)])
        .args([&format!("--regid={}", self.gid), "--init-groups", "--"])
        .args(["env", "-i"])
        .args(vars.iter().map(|(k, v)| format!("{k}={v}")))
        .args(via)
        .arg(self.bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        cmd
    }

    pub fn run_env(&self, args: &[&str], input: &[&str], vars: &[(&str, &str)]) -> Output {
        finish_with_input(self.command(args, vars), input)
    }

    /// [`World::run`] with `via` starting the helper (see [`World::command_via`]).
    pub fn run_via(&self, via: &[&str], args: &[&str], input: &[&str]) -> Output {
        finish_with_input(self.command_via(via, args, &[]), input)
    }

    pub fn run(&self, args: &[&str], input: &[&str]) -> Output {
        self.run_env(args, input, &[])
    }

    /// Enrolled by the admin CLI with [`SECRET`]; returns the backup codes.
    pub fn admin_enroll(&self) -> Vec<String> {
        self.env.enroll_with_codes(self.name(), SECRET)
    }

    pub fn record(&self) -> Option<Record> {
        self.env.load(self.name())
    }

    pub fn record_bytes(&self) -> Vec<u8> {
        self.env.stored(self.name())
    }

    pub fn store(&self) -> FileStore {
        FileStore::new(self.env.store())
    }

    pub fn login(&self, code: &str) -> bool {
        self.env.pamtester("login", self.name(), code).success
    }

    pub fn logged(&self) -> String {
        std::thread::sleep(Duration::from_millis(100));
        self.log.lock().unwrap().join("\n")
    }

    pub fn plant_trust(&self, hosts: &[&str]) {
        let user = UserName::parse(self.name()).unwrap();
        let mut record = self.record().unwrap();
        let now = super::now() as i64;
        for host in hosts {
            record.trusted.push(TrustedHost {
                host: (*host).into(),
                service: Some("sshd".into()),
                key: None,
                granted: now,
                expires: now + 86_400,
            });
        }
        self.store().put(&user, &record, Replace::Yes).unwrap();
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}", text(out));
    text(out)
}

pub fn refused(out: &Output) -> String {
    assert!(!out.status.success(), "{}", text(out));
    text(out)
}

/// Starts an enroll/new-phone run, answers `first` (password and code), waits for the key
/// it shows, and returns the child with its stdout reader and the key.
// The child is handed back: `finish` waits for it.
#[allow(clippy::zombie_processes)]
pub fn until_key(
    world: &World,
    args: &[&str],
    first: &[&str],
) -> (Child, BufReader<std::process::ChildStdout>, String) {
    let mut child = world.command(args, &[]).spawn().unwrap();
    let stdin = child.stdin.as_mut().unwrap();
    stdin
        .write_all(
            first
                .iter()
                .map(|l| format!("{l}\n"))
                .collect::<String>()
                .as_bytes(),
        )
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err);
            let _ = child.wait();
            panic!("no key shown: {err}");
        }
        if let Some(key) = line.trim().strip_prefix("Or type this key into the app: ") {
            return (child, out, key.replace(' ', ""));
        }
    }
}

pub fn finish(
    mut child: Child,
    mut out: BufReader<std::process::ChildStdout>,
    answers: &[&str],
) -> (bool, String) {
    let stdin = child.stdin.as_mut().unwrap();
    let _ = stdin.write_all(
        answers
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .as_bytes(),
    );
    drop(child.stdin.take());
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut out, &mut rest);
    let status = child.wait().unwrap();
    (status.success(), rest)
}

/// Runs `cmd` (stdin piped), types `input` a line each, and waits for its output. A program
/// that stops reading early is no test failure.
fn finish_with_input(mut cmd: Command, input: &[&str]) -> Output {
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let lines: String = input.iter().map(|l| format!("{l}\n")).collect();
    let _ = stdin.write_all(lines.as_bytes());
    drop(stdin);
    child.wait_with_output().unwrap()
}
