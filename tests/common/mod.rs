//! Shared harness for tests against the real thing: the built module loaded by the real
//! Linux-PAM library (through cwrap's pam_wrapper, with a service directory of the test's
//! own), the real `twofold` binary, codes from `oathtool`, QR codes read by `zbarimg`.
//! A missing tool fails the test with the Debian package to install; it never skips.
//! Most of it serves the root tier (tests/README.md): [`require_root`] is its gate.
#![allow(dead_code)]

pub mod built_module;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

pub const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const PAM_WRAPPER: &str = "libpam_wrapper.so";

pub fn twofold_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_twofold"))
}

pub use built_module::module_path;

/// The login helper (`twofold-login`) this `cargo test` run built, which the module starts.
pub fn helper_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_twofold-login"))
}

/// The module as a PAM line names it: its path and `helper=` this build's login helper (the
/// installed module finds it at its default path, /usr/libexec/twofold/twofold-login).
pub fn module() -> String {
    format!(
        "{} helper={}",
        module_path().display(),
        helper_path().display()
    )
}

/// The root tier's gate (tests/README.md): its tests run programs in private mount
/// namespaces, add throwaway users, start sshd and PostgreSQL, and use root-owned stores.
/// Without root they fail here, saying so, instead of later in some obscure way; they never
/// skip. [`Env::new`], [`postgres::Postgres`] and [`sshd`] call it.
pub fn require_root() {
    if nix::unistd::geteuid().is_root() {
        return;
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let stem = exe.file_stem().unwrap_or_default().to_string_lossy();
    let target = stem.rsplit_once('-').map_or(&*stem, |(name, _hash)| name);
    panic!(
        "tests/{target}.rs is in the root tier and needs root: run `scripts/test.sh` as root, \
         or as root `cargo test --features root-tests --test {target}`. \
         Plain `cargo test` runs the unit and library tier as any user (tests/README.md)."
    );
}

pub fn require_tool(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is not installed: apt-get install {package}"
    );
}

fn require_pam_wrapper() {
    let found = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
        "/usr/lib64",
    ]
    .iter()
    .any(|dir| Path::new(dir).join(PAM_WRAPPER).exists());
    assert!(
        found,
        "{PAM_WRAPPER} is not installed: apt-get install libpam-wrapper"
    );
}

/// One of pam_wrapper's test modules (pam_matrix.so, pam_set_items.so, ...).
pub fn pam_wrapper_module(name: &str) -> PathBuf {
    require_pam_wrapper();
    [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib",
        "/usr/lib64",
    ]
    .iter()
    .map(|dir| Path::new(dir).join("pam_wrapper").join(name))
    .find(|p| p.exists())
    .unwrap_or_else(|| panic!("{name} is not installed: apt-get install libpam-wrapper"))
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Waits until at least `margin` seconds remain in the current 30-second step, so that a code
/// computed now is still judged against the same step.
pub fn wait_for_fresh_step(margin: u64) {
    let left = 30 - now() % 30;
    if left < margin {
        std::thread::sleep(std::time::Duration::from_millis(left * 1000 + 200));
    }
}

/// The TOTP code `oathtool` computes for `secret` at now + `offset` seconds.
pub fn oathtool(secret: &str, offset: i64) -> String {
    require_tool("oathtool", "oathtool");
    let at = (now() as i64 + offset).to_string();
    let out = Command::new("oathtool")
        .args(["--totp", "-b", "--now", &format!("@{at}"), secret])
        .output()
        .expect("run oathtool");
    assert!(
        out.status.success(),
        "oathtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// One test's world: a temp dir with a policy, a 0700 store and a PAM service directory.
pub struct Env {
    pub dir: tempfile::TempDir,
    /// What every program this env runs (PAM runs and the CLI) gets on top: empty unless a
    /// test adds to it (e.g. nss_wrapper, see `nss.rs`).
    pub run_env: RunEnv,
}

/// Libraries to preload and variables to set in the programs an [`Env`] runs. PAM runs
/// preload them after pam_wrapper; the CLI gets them alone.
#[derive(Clone, Debug, Default)]
pub struct RunEnv {
    pub preload: Vec<String>,
    pub vars: Vec<(String, String)>,
}

impl RunEnv {
    pub fn is_empty(&self) -> bool {
        self.preload.is_empty() && self.vars.is_empty()
    }

    /// `env LD_PRELOAD=libpam_wrapper.so:EXTRAS VAR=VALUE ...`, to put in front of a PAM run.
    fn pam_env_argv(&self) -> Vec<String> {
        let preload: Vec<&str> = std::iter::once(PAM_WRAPPER)
            .chain(self.preload.iter().map(String::as_str))
            .collect();
        let mut argv = vec![
            "env".to_owned(),
            format!("LD_PRELOAD={}", preload.join(":")),
        ];
        argv.extend(self.vars.iter().map(|(k, v)| format!("{k}={v}")));
        argv
    }
}

pub struct PamResult {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl PamResult {
    /// pamtester's last stderr line: "successfully authenticated" or pam_strerror's text.
    /// (A prompt answered without an echo shares its line with what follows.)
    pub fn verdict(&self) -> &str {
        self.stderr
            .lines()
            .chain(self.stdout.lines())
            .filter_map(|l| l.find("pamtester:").map(|at| &l[at..]))
            .next_back()
            .unwrap_or("")
    }
}

impl Env {
    /// `policy` is added to a policy whose [store] points into the temp dir. Root tier: see
    /// [`require_root`].
    pub fn new(policy: &str) -> Self {
        require_root();
        Self::unprivileged(policy)
    }

    /// Like [`Env::new`], for the unit and library tier: any user. Only the CLI may run on it
    /// (its store belongs to this process's uid, as the CLI expects); PAM runs need root.
    pub fn unprivileged(policy: &str) -> Self {
        // Not under /tmp: each PAM run gets a private /tmp (see `pam_argv`).
        let dir = tempfile::Builder::new()
            .prefix("twofold-test-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let env = Self {
            dir,
            run_env: RunEnv::default(),
        };
        fs::create_dir(env.store()).unwrap();
        fs::set_permissions(env.store(), fs::Permissions::from_mode(0o700)).unwrap();
        fs::create_dir(env.services()).unwrap();
        // Without an `other` service pam_wrapper complains on every run.
        fs::write(env.services().join("other"), "auth required pam_deny.so\n").unwrap();
        env.write_policy(policy);
        env
    }

    pub fn write_policy(&self, policy: &str) {
        let text = format!(
            "[store]\ndir = \"{}\"\nkeys_dir = \"{}\"\n\n{policy}\n",
            self.store().display(),
            self.keys().display()
        );
        fs::write(self.policy(), text).unwrap();
    }

    pub fn policy(&self) -> PathBuf {
        self.dir.path().join("twofold.toml")
    }

    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// This env's sealing keys (`[store] keys_dir`): none until a test runs `key init`.
    pub fn keys(&self) -> PathBuf {
        self.dir.path().join("keys")
    }

    /// This env's fleet agent socket (`[store] agent_socket` of its fleet policies).
    pub fn agent_socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }

    /// Starts this env's fleet agent on [`Env::agent_socket`], serving its policy.
    pub fn start_agent(&self) -> agent::Agent {
        agent::Agent::start(&self.policy(), &self.agent_socket(), &[])
    }

    pub fn services(&self) -> PathBuf {
        self.dir.path().join("pam.d")
    }

    pub fn record(&self, user: &str) -> PathBuf {
        self.store().join(format!("{user}.toml"))
    }

    /// `user`'s login-state file: logins write there, not into the record.
    pub fn state(&self, user: &str) -> PathBuf {
        self.store().join(format!("{user}.state"))
    }

    /// Everything the store holds for `user` (the record and its login-state file), to tell
    /// whether anything changed: a login that only counts a failure changes the state alone.
    pub fn stored(&self, user: &str) -> Vec<u8> {
        let mut bytes = fs::read(self.record(user)).unwrap_or_default();
        bytes.extend(fs::read(self.state(user)).unwrap_or_default());
        bytes
    }

    /// A PAM service `name` whose auth stack is twofold (with `args`) and then `rest` lines.
    pub fn service(&self, name: &str, args: &str, rest: &[&str]) {
        let mut text = format!(
            "auth required {} config={} {args}\n",
            module(),
            self.policy().display()
        );
        for line in rest {
            text.push_str(line);
            text.push('\n');
        }
        fs::write(self.services().join(name), text).unwrap();
    }

    /// Like [`Env::service`], with a first factor before twofold: pam_wrapper's pam_set_items
    /// sets PAM_AUTHTOK (from the environment `pam_argv` gives every run), as pam_unix does
    /// after reading the password. Enroll-at-login needs one.
    pub fn service_after_password(&self, name: &str, args: &str) {
        let mut text = format!(
            "auth requisite {}\n",
            pam_wrapper_module("pam_set_items.so").display()
        );
        text.push_str(&format!(
            "auth required {} config={} {args}\n",
            module(),
            self.policy().display()
        ));
        fs::write(self.services().join(name), text).unwrap();
    }

    /// Runs `pamtester SERVICE USER authenticate` through the real libpam, answering with `input`.
    pub fn pamtester(&self, service: &str, user: &str, input: &str) -> PamResult {
        let out = self
            .pamtester_command(service, user)
            .stdin(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                // The module may stop reading early; a broken pipe is not a test failure.
                let _ = child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(format!("{input}\n").as_bytes());
                child.wait_with_output()
            });
        let out = out.expect("run pamtester");
        PamResult {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn pamtester_command(&self, service: &str, user: &str) -> Command {
        self.pam_command(None, &["pamtester", "-v", service, user, "authenticate"])
    }

    /// pamtester with PAM items set (`rhost=192.0.2.7`) and several answers, one per line.
    pub fn pamtester_with(
        &self,
        service: &str,
        user: &str,
        items: &[&str],
        answers: &[&str],
    ) -> PamResult {
        let mut argv = vec!["pamtester", "-v"];
        for item in items {
            argv.extend(["-I", item]);
        }
        argv.extend([service, user, "authenticate"]);
        run_with_input(self.pam_command(None, &argv), &answers.join("\n"))
    }

    /// `argv` run against this env's PAM services through pam_wrapper, isolated: in a private
    /// mount namespace with its own /tmp (pam_wrapper keeps its copies in /tmp/pam.X with one
    /// letter of choice, and processes starting together collide there and exit), and with
    /// pam_wrapper loaded into `argv`'s process only. Directories the run needs that live
    /// under /tmp (a checkout in /tmp, this env) are carried over into the private /tmp.
    /// With `syslog_dir`, the syslog socket (/dev/log if it exists, else /run/syslog) is
    /// `syslog_dir/syslog`.
    pub fn pam_argv(&self, syslog_dir: Option<&Path>, argv: &[&str]) -> Vec<String> {
        require_tool("unshare", "util-linux");
        require_pam_wrapper();
        const ISOLATE: &str = r#"set -e
services="$1"; run="$2"; shift 2
keep=""
while [ "$1" != "--" ]; do keep="$keep
$1"; shift; done
shift
# Park what must stay visible on a private tmpfs, replace /tmp, put it back.
mount -t tmpfs twofold-park /mnt
echo "$keep" | while IFS= read -r dir; do
  [ -n "$dir" ] || continue
  mkdir -p "/mnt/park$dir"; mount --bind "$dir" "/mnt/park$dir"
done
mount -t tmpfs -o mode=1777 twofold-tmp /tmp
echo "$keep" | while IFS= read -r dir; do
  [ -n "$dir" ] || continue
  mkdir -p "$dir"; mount --move "/mnt/park$dir" "$dir"
done
if [ -n "$run" ]; then
  mount --bind "$run" /run
  [ ! -e /dev/log ] || mount --bind "$run/syslog" /dev/log
fi
exec env LD_PRELOAD=libpam_wrapper.so PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR="$services" \
  PAM_AUTHTOK=twofold-test-password "$@""#;
        let mut out: Vec<String> = ["unshare", "--mount", "sh", "-c", ISOLATE, "sh"]
            .map(String::from)
            .to_vec();
        out.push(self.services().display().to_string());
        out.push(
            syslog_dir
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
        );
        // Under /tmp and needed: the checkout (module, helpers), the build, this env. A dir
        // inside one already kept comes along with it.
        let mut candidates = [
            PathBuf::from(env!("CARGO_MANIFEST_DIR")),
            module_path().parent().unwrap().to_owned(),
            twofold_bin().parent().unwrap().to_owned(),
            self.dir.path().to_owned(),
        ];
        candidates.sort_by_key(|d| d.components().count());
        let mut kept: Vec<PathBuf> = Vec::new();
        for dir in candidates {
            if dir.starts_with("/tmp") && !kept.iter().any(|k| dir.starts_with(k)) {
                out.push(dir.display().to_string());
                kept.push(dir);
            }
        }
        out.push("--".into());
        if !self.run_env.is_empty() {
            // `env` overrides the script's LD_PRELOAD: pam_wrapper first, then the extras.
            out.extend(self.run_env.pam_env_argv());
        }
        out.extend(argv.iter().map(|a| a.to_string()));
        out
    }

    fn pam_command(&self, syslog_dir: Option<&Path>, argv: &[&str]) -> Command {
        require_tool("pamtester", "pamtester");
        let argv = self.pam_argv(syslog_dir, argv);
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// The user's record as the module sees it.
    pub fn load(&self, user: &str) -> Option<pam_twofold::Record> {
        use pam_twofold::Store;
        let user = pam_twofold::UserName::parse(user).unwrap();
        pam_twofold::FileStore::new(self.store())
            .load(&user)
            .expect("record reads")
    }

    /// Changes `user`'s record through the store, as the module would write it (login-state
    /// fields such as the drift offset live in the state file, not in the record's text).
    pub fn change(&self, user: &str, change: impl FnOnce(&mut pam_twofold::Record)) {
        use pam_twofold::Store;
        let user = pam_twofold::UserName::parse(user).unwrap();
        pam_twofold::FileStore::new(self.store())
            .update(&user, |slot| change(slot.as_mut().expect("enrolled")))
            .expect("record written");
    }

    /// Enrolls `user` with a known secret and returns the backup codes it showed.
    pub fn enroll_with_codes(&self, user: &str, secret: &str) -> Vec<String> {
        let out = self.run(&[
            "enroll",
            user,
            "--secret",
            secret,
            "--no-verify",
            "--qr",
            "none",
        ]);
        assert!(
            out.status.success(),
            "enroll failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        backup_codes_in(&String::from_utf8_lossy(&out.stdout))
    }

    /// Like [`Env::pamtester`], and returns what the module sent to syslog. pamtester runs in
    /// a private mount namespace where the syslog socket (/dev/log if it exists, else
    /// /run/syslog) is a datagram socket of this test's: the host's syslog is not touched.
    pub fn pamtester_logged(
        &self,
        service: &str,
        user: &str,
        input: &str,
    ) -> (PamResult, Vec<String>) {
        self.logged(&["pamtester", "-v", service, user, "authenticate"], input)
    }

    /// pamtester as [`Env::pamtester`], the answer typed only after `delay` (a person reading
    /// the prompt first).
    pub fn pamtester_answering_late(
        &self,
        service: &str,
        user: &str,
        input: &str,
        delay: std::time::Duration,
    ) -> PamResult {
        let argv = ["pamtester", "-v", service, user, "authenticate"];
        run_with_late_input(self.pam_command(None, &argv), input, delay)
    }

    /// Runs `argv` as [`Env::pam_argv`] does, with a syslog socket of this test's; returns its
    /// result and the syslog lines it sent.
    pub fn logged(&self, argv: &[&str], input: &str) -> (PamResult, Vec<String>) {
        let sink = SyslogSink::new(self);
        let result = run_with_input(self.pam_command(Some(sink.dir()), argv), input);
        (result, sink.drain())
    }

    /// The `twofold` CLI with this env's policy.
    pub fn twofold(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(twofold_bin());
        cmd.arg("--config").arg(self.policy()).args(args);
        if !self.run_env.preload.is_empty() {
            cmd.env("LD_PRELOAD", self.run_env.preload.join(":"));
        }
        cmd.envs(self.run_env.vars.iter().map(|(k, v)| (k, v)));
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.twofold(args)
            .stdin(Stdio::null())
            .output()
            .expect("run twofold")
    }

    /// Enrolls `user` with a known secret, without a first code.
    pub fn enroll(&self, user: &str, secret: &str) {
        self.enroll_with_codes(user, secret);
    }
}

/// A syslog socket of the test's own: runs given `pam_argv(Some(sink.dir()), …)` log here.
pub struct SyslogSink {
    dir: PathBuf,
    socket: UnixDatagram,
}

impl SyslogSink {
    pub fn new(env: &Env) -> Self {
        let dir = env.dir.path().join("run");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("syslog");
        let _ = fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_nonblocking(true).unwrap();
        Self { dir, socket }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The lines received so far.
    pub fn drain(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut buf = vec![0u8; 8192];
        while let Ok(n) = self.socket.recv(&mut buf) {
            lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        lines
    }
}

/// The `1234-5678` lines of a backup-code listing.
pub fn backup_codes_in(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| {
            l.len() == 9
                && l.as_bytes()[4] == b'-'
                && l.replace('-', "").bytes().all(|b| b.is_ascii_digit())
        })
        .map(str::to_owned)
        .collect()
}

fn run_with_input(cmd: Command, input: &str) -> PamResult {
    run_with_late_input(cmd, input, std::time::Duration::ZERO)
}

fn run_with_late_input(mut cmd: Command, input: &str, delay: std::time::Duration) -> PamResult {
    let out = cmd.stdin(Stdio::piped()).spawn().and_then(|mut child| {
        std::thread::sleep(delay);
        // The module may stop reading early; a broken pipe is not a test failure.
        let _ = child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{input}\n").as_bytes());
        child.wait_with_output()
    });
    let out = out.expect("run pamtester");
    PamResult {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Decodes a PNG with zbarimg; returns the text of the one QR code in it.
pub fn zbarimg(png: &Path) -> String {
    require_tool("zbarimg", "zbar-tools");
    let out = Command::new("zbarimg")
        .args(["--quiet", "--raw"])
        .arg(png)
        .output()
        .expect("run zbarimg");
    assert!(
        out.status.success(),
        "zbarimg found no code in {}",
        png.display()
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end_matches('\n')
        .to_owned()
}

/// An env whose policy uses the home store (`[store] kind = "home"`), with a throwaway user
/// whose home lies under a world-traversable directory, as /home is.
pub fn home_env() -> (Env, sshd::TempUser) {
    let env = Env::new("");
    fs::write(env.policy(), "[store]\nkind = \"home\"\n").unwrap();
    env.service("tf", "", &[]);
    let homes = env.dir.path().join("home");
    fs::create_dir(&homes).unwrap();
    fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&homes, fs::Permissions::from_mode(0o755)).unwrap();
    let user = sshd::TempUser::with_home(&homes);
    (env, user)
}

pub mod agent;
pub mod fake;
pub mod library_login;
pub mod nss;
pub mod postgres;
pub mod self_service;
pub mod sshd;
#[cfg(feature = "test-worker")]
pub mod worker;

/// Runs tests/helpers/terminal.py (pexpect) on `command`; returns its JSON report.
pub fn terminal(driver_args: &[&str], command: &[String]) -> serde_json::Value {
    require_tool("python3", "python3");
    let has_pexpect = Command::new("python3")
        .args(["-c", "import pexpect"])
        .status()
        .map(|s| s.success());
    assert!(
        has_pexpect.unwrap_or(false),
        "python3-pexpect is not installed: apt-get install python3-pexpect"
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers/terminal.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).args(driver_args);
    cmd.arg("--").args(command);
    let out = cmd.output().expect("run the first-login driver");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "driver output is not JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
