//! The fleet mode's local agent (`twofold agent`), started by the test for one "host": its
//! own socket, its own policy. These machines have no systemd; stopped (SIGKILL, like a crash)
//! and reaped on drop.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Agent {
    child: Child,
    pub socket: PathBuf,
    log: PathBuf,
}

impl Agent {
    /// `twofold --config POLICY agent --socket SOCKET EXTRA...`, once its socket is there.
    pub fn start(policy: &Path, socket: &Path, extra: &[&str]) -> Self {
        let log = socket.with_extension("log");
        let _ = fs::remove_file(socket);
        let child = Command::new(super::twofold_bin())
            .arg("--config")
            .arg(policy)
            .arg("agent")
            .arg("--socket")
            .arg(socket)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("start twofold agent");
        let agent = Self {
            child,
            socket: socket.to_owned(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "no agent socket: {}",
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        agent
    }

    /// What the agent wrote to stderr (its syslog lines, too).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills it as a crash would (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}
