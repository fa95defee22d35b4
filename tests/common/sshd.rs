//! A real OpenSSH server for one test: its own config, host key and PAM service on a free
//! 127.0.0.1 port, plus throwaway users. Everything it creates is removed on drop, also when
//! the test fails: the sshd process, the /etc/pam.d file (a new, uniquely named one; existing
//! files are never touched), the users, /run/sshd if it had to be created.
#![allow(dead_code)]

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::require_tool;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// sshd needs /run/sshd. The servers of one test process share it: it is made when missing and
/// removed when the last server that needed it stops, never while another one still runs
/// (tests run in parallel: removing it under a running server fails that test's login).
/// (servers running, whether this process made the directory)
static RUN_DIR: Mutex<(usize, bool)> = Mutex::new((0, false));

fn run_dir_acquire() {
    let mut run_dir = RUN_DIR.lock().unwrap_or_else(|e| e.into_inner());
    if !Path::new("/run/sshd").exists() {
        fs::create_dir_all("/run/sshd").unwrap();
        run_dir.1 = true;
    }
    run_dir.0 += 1;
}

fn run_dir_release() {
    let mut run_dir = RUN_DIR.lock().unwrap_or_else(|e| e.into_inner());
    run_dir.0 -= 1;
    if run_dir.0 == 0 && run_dir.1 {
        let _ = fs::remove_dir("/run/sshd");
        run_dir.1 = false;
    }
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A local account that exists only for the test.
pub struct TempUser {
    pub name: String,
}

impl TempUser {
    pub fn new() -> Self {
        super::require_root();
        let name = unique("tf");
        run(Command::new("useradd").args(["-M", "-d", "/nonexistent", "-s", "/bin/sh", &name]));
        Self { name }
    }
}

impl TempUser {
    /// A user whose home directory `parent/NAME` exists (created by useradd, owned by them).
    pub fn with_home(parent: &Path) -> Self {
        super::require_root();
        let name = unique("tf");
        let home = parent.join(&name);
        run(Command::new("useradd")
            .args(["-m", "-s", "/bin/sh", "-d"])
            .arg(&home)
            .arg(&name));
        Self { name }
    }

    /// The home directory from the passwd database.
    pub fn home(&self) -> PathBuf {
        let out = Command::new("getent")
            .args(["passwd", &self.name])
            .output()
            .unwrap();
        let line = String::from_utf8(out.stdout).unwrap();
        PathBuf::from(line.trim().split(':').nth(5).unwrap())
    }

    /// Gives the user a real password (in /etc/shadow, removed with the user).
    pub fn set_password(&self, password: &str) {
        let mut child = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let line = format!("{}:{password}\n", self.name);
        child
            .stdin
            .take()
            .unwrap()
            .write_all(line.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "chpasswd failed");
    }
}

impl Drop for TempUser {
    fn drop(&mut self) {
        // -r: the home directory too, when useradd made one.
        let _ = Command::new("userdel").args(["-r", &self.name]).output();
    }
}

pub struct Sshd {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
    pam_file: PathBuf,
}

impl Sshd {
    /// Starts sshd with `pam_stack` as the auth lines of its PAM service and `extra_config`
    /// ahead of its defaults in sshd_config (e.g. AuthenticationMethods).
    pub fn start(pam_stack: &str, extra_config: &str) -> Self {
        super::require_root();
        require_tool("sshd", "openssh-server");
        require_tool("ssh", "openssh-client");
        require_tool("ssh-keygen", "openssh-client");
        let dir = tempfile::Builder::new()
            .prefix("twofold-sshd-")
            .tempdir()
            .unwrap();
        let service = unique("twofold-sshd-");
        // OpenSSH names its PAM service after the program: a symlink gives a service of our own.
        let program = dir.path().join(&service);
        let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        symlink(sshd.expect("sshd"), &program).unwrap();
        let pam_file = PathBuf::from("/etc/pam.d").join(&service);
        assert!(!pam_file.exists());
        fs::write(
            &pam_file,
            format!(
                "# twofold test service, removed when the test ends\n{pam_stack}\n\
                 account required pam_permit.so\nsession required pam_permit.so\npassword required pam_deny.so\n"
            ),
        )
        .unwrap();
        run_dir_acquire();
        let key = dir.path().join("host_ed25519");
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key));
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("sshd_config");
        fs::write(
            &config,
            // sshd keeps the first value it reads: the test's own lines go first.
            format!(
                "{extra_config}\nPort {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}/sshd.pid\n\
                 UsePAM yes\nKbdInteractiveAuthentication yes\nPasswordAuthentication no\n\
                 PubkeyAuthentication no\nAuthenticationMethods keyboard-interactive\n\
                 PermitRootLogin no\nStrictModes no\nPrintMotd no\nPrintLastLog no\n\
                 UseDNS no\nLogLevel VERBOSE\n",
                key.display(),
                dir.path().display()
            ),
        )
        .unwrap();
        let child = Command::new(&program)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.path().join("sshd.log")).unwrap())
            .spawn()
            .unwrap();
        let server = Self {
            child,
            port,
            dir,
            pam_file,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not start: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// The ssh client arguments for `user` running `command`, keyboard-interactive only.
    pub fn ssh_args(&self, user: &str, extra: &[&str], command: &str) -> Vec<String> {
        let mut args: Vec<String> = [
            "ssh",
            "-F",
            "/dev/null",
            "-p",
            &self.port.to_string(),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=10",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(format!("{user}@127.0.0.1"));
        args.push(command.to_owned());
        args
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.pam_file);
        run_dir_release();
    }
}
