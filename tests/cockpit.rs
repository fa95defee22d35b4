//! twofold's Cockpit page in a real browser (root tier): Debian's real `cockpit-ws` on a
//! loopback port, its real login page and shell, headless Chromium driven by chromedriver
//! through Selenium (tests/helpers/cockpit.py), real users with real passwords, real sudo for
//! Cockpit's administrative access, the real setuid `twofold-self`.
//!
//! Nothing on the host changes: cockpit-ws runs in private mount and PID namespaces
//! (`unshare --mount --pid --fork --kill-child`) where overlays add
//! - /etc/pam.d/cockpit and /etc/pam.d/twofold-self: pam.d-examples/cockpit and
//!   pam.d-examples/twofold-self themselves, with this build's module path;
//! - /etc/twofold/twofold.toml: the test's policy (its store in a temp dir);
//! - /usr/local/bin/twofold and /usr/local/bin/twofold-self (setuid root): this build's, found
//!   by the page through the bridge's PATH as installed ones are;
//! - /usr/share/cockpit/twofold: the repository's cockpit/twofold;
//!
//! and /run is a directory of the test's with its syslog socket (what the CLI and the module
//! log is read from it; sudo's timestamps land there too). When the test ends, the namespace's
//! processes (cockpit-ws, cockpit-session, the bridges, sudo, the users' dbus-daemons) all die
//! with it, before the users are deleted.
//!
//! Screenshots of each view are written under the test's target directory; with
//! TWOFOLD_BLESS=1 they replace docs/screenshots/ (the README links them), so a plain run
//! never changes a tracked file.
mod common;

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::sshd::TempUser;
use common::{Env, SECRET, SyslogSink};
use pam_twofold::record::{State, TrustedHost};
use pam_twofold::store::Replace;
use pam_twofold::{FileStore, Store, UserName};
use serde_json::Value;

const PASSWORD: &str = "Cockpit-test-pw-1";
const SCREENSHOTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/screenshots");

/// Where this run's screenshots go: docs/screenshots/ when blessing, else a scratch directory.
fn shots_dir() -> PathBuf {
    if std::env::var_os("TWOFOLD_BLESS").is_some() {
        return PathBuf::from(SCREENSHOTS);
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cockpit-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
const DRIVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/helpers/cockpit.py");
const PAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/cockpit/twofold");
const PAM_EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/pam.d-examples");

/// One browser and one cockpit-ws at a time: each wants most of a core while it starts.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn require_tools() {
    common::require_tool("/usr/lib/cockpit/cockpit-ws", "cockpit-ws");
    common::require_tool("cockpit-bridge", "cockpit-bridge");
    common::require_tool("chromium", "chromium");
    common::require_tool("chromedriver", "chromium-driver");
    common::require_tool("zbarimg", "zbar-tools");
    common::require_tool("oathtool", "oathtool");
    common::require_tool("setpriv", "util-linux");
    common::require_tool("sudo", "sudo");
    assert!(
        Path::new("/usr/share/cockpit/shell/manifest.json").exists(),
        "Cockpit's shell is not installed: apt-get install cockpit-system"
    );
    let selenium = Command::new("/usr/bin/python3")
        .args(["-c", "import selenium"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        selenium,
        "Selenium is not installed: apt-get install python3-selenium"
    );
}

/// A user with a real password; `admin` ones are in group sudo (Cockpit's administrative access).
fn user(admin: bool) -> TempUser {
    let user = TempUser::new();
    user.set_password(PASSWORD);
    if admin {
        let ok = Command::new("usermod")
            .args(["-aG", "sudo", &user.name])
            .status()
            .unwrap();
        assert!(ok.success(), "usermod -aG sudo");
    }
    user
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn dir(path: &Path) {
    fs::create_dir_all(path).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn copy_tree(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(ok.success(), "cp -r {}", from.display());
}

/// cockpit-ws in its namespaces, with the overlays the module doc lists.
struct Cockpit {
    child: Child,
    port: u16,
    root: tempfile::TempDir,
    log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

const ISOLATE: &str = r#"set -e
R="$1"; run="$2"; port="$3"
layer() { mount -t overlay twofold-test -o "lowerdir=$1,upperdir=$R/$2,workdir=$R/work-$2" "$1"; }
layer /etc etc
layer /usr/local/bin bin
layer /usr/share/cockpit cockpit
mount --bind "$run" /run
# Not exec'd: this root shell stays the namespace's first process, which --kill-child kills
# (a parent-death signal would not survive setpriv's change of user).
setpriv --reuid=cockpit-wsinstance --regid=cockpit-wsinstance --clear-groups \
  env -i PATH=/usr/bin:/bin /usr/lib/cockpit/cockpit-ws --no-tls --port "$port" --address 127.0.0.1 &
wait"#;

impl Cockpit {
    fn start(env: &Env) -> Self {
        require_tools();
        let root = tempfile::Builder::new()
            .prefix("twofold-cockpit-")
            .tempdir_in("/tmp")
            .unwrap();
        let r = root.path();
        dir(r);
        for layer in ["etc", "bin", "cockpit"] {
            dir(&r.join(layer));
            dir(&r.join(format!("work-{layer}")));
        }
        Self::stage(env, r);
        let sink = SyslogSink::new(env);
        let port = free_port();
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--pid", "--fork"])
            .args(["--mount-proc", "--kill-child", "sh", "-c", ISOLATE, "sh"])
            .arg(r)
            .arg(sink.dir())
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stderr(fs::File::create(r.join("cockpit-ws.log")).unwrap())
            .spawn()
            .unwrap();
        let (log, stop) = drain(sink);
        let cockpit = Self {
            child,
            port,
            root,
            log,
            stop,
        };
        cockpit.wait_until_listening();
        cockpit
    }

    /// The overlays' upper layers.
    fn stage(env: &Env, r: &Path) {
        dir(&r.join("etc/pam.d"));
        dir(&r.join("etc/twofold"));
        // The shipped stacks, with this build's module.
        let module = common::module();
        for service in ["cockpit", "twofold-self"] {
            let example = Path::new(PAM_EXAMPLES).join(service);
            let stack = fs::read_to_string(example)
                .unwrap()
                .replace("pam_twofold.so", &module);
            fs::write(r.join("etc/pam.d").join(service), stack).unwrap();
        }
        let policy = r.join("etc/twofold/twofold.toml");
        fs::copy(env.policy(), &policy).unwrap();
        fs::set_permissions(&policy, fs::Permissions::from_mode(0o644)).unwrap();
        fs::copy(common::twofold_bin(), r.join("bin/twofold")).unwrap();
        let helper = r.join("bin/twofold-self");
        fs::copy(env!("CARGO_BIN_EXE_twofold-self"), &helper).unwrap();
        fs::set_permissions(&helper, fs::Permissions::from_mode(0o4755)).unwrap();
        copy_tree(Path::new(PAGE), &r.join("cockpit"));
    }

    fn wait_until_listening(&self) {
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "cockpit-ws did not listen on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs one scenario of tests/helpers/cockpit.py; returns its JSON result.
    fn browse(&self, scenario: &str, args: &[(&str, &str)]) -> Value {
        let base = format!("http://127.0.0.1:{}", self.port);
        let failures = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(DRIVER)
            .arg(scenario)
            .args(["--base", &base, "--password", PASSWORD])
            .arg("--shots")
            .arg(shots_dir())
            .arg("--failures")
            .arg(&failures);
        for (name, value) in args {
            cmd.arg(format!("--{name}")).arg(value);
        }
        let started = Instant::now();
        let out = cmd.output().expect("run /usr/bin/python3");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let server =
            fs::read_to_string(self.root.path().join("cockpit-ws.log")).unwrap_or_default();
        assert!(
            out.status.success(),
            "{scenario} failed in the browser (screenshot in {}):\n{stderr}\ncockpit-ws said:\n{server}",
            failures.display()
        );
        eprintln!(
            "{scenario}: {:.1} s in the browser",
            started.elapsed().as_secs_f64()
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap()
    }

    fn logged(&self) -> String {
        std::thread::sleep(Duration::from_millis(200));
        self.log.lock().unwrap().join("\n")
    }
}

/// The sink's queue is short: read it all along, or a full one blocks the next syslog line.
fn drain(sink: SyslogSink) -> (Arc<Mutex<Vec<String>>>, Arc<AtomicBool>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let (lines, stopped) = (log.clone(), stop.clone());
    std::thread::spawn(move || {
        while !stopped.load(Ordering::SeqCst) {
            let got = sink.drain();
            lines.lock().unwrap().extend(got);
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    (log, stop)
}

impl Drop for Cockpit {
    /// unshare's death kills the namespace's first process (--kill-child), and with it every
    /// process in the namespace: nothing of a user is left running for userdel.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stop.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn an_admin_logs_in_with_a_code_then_resets_and_unlocks_users() {
    let _one = serial();
    let env = Env::new("[lockout]\nmax_failures = 2\n\n[trust]\ndays = 7\n");
    let (admin, reset, locked) = (user(true), user(false), user(false));
    env.enroll(&admin.name, SECRET);
    env.enroll(&reset.name, SECRET);
    env.enroll(&locked.name, SECRET);
    env.service("login", "", &[]);
    for _ in 0..2 {
        assert!(!env.pamtester("login", &locked.name, "000000").success);
    }
    let now = common::now() as i64;
    let mut record = env.load(&locked.name).unwrap();
    assert!(record.locked_at(now).is_some());
    record.trusted.push(TrustedHost {
        host: "192.0.2.7".into(),
        service: Some("sshd".into()),
        key: None,
        granted: now,
        expires: now + 86_400,
    });
    let name = UserName::parse(&locked.name).unwrap();
    FileStore::new(env.store())
        .put(&name, &record, Replace::Yes)
        .unwrap();
    let cockpit = Cockpit::start(&env);

    let result = cockpit.browse(
        "admin",
        &[
            ("user", &admin.name),
            ("secret", SECRET),
            ("reset", &reset.name),
            ("locked", &locked.name),
        ],
    );

    // Cockpit's login page asked twofold's question after the password.
    assert_eq!(result["prompt"], "Verification code:");
    let listed = strings(&result["listed"]);
    for name in [&admin.name, &reset.name, &locked.name] {
        assert!(listed.contains(name), "{name} not listed: {listed:?}");
    }
    assert_eq!(strings(&result["filtered"]), vec![reset.name.clone()]);
    assert_eq!(
        result["summary"],
        "3 users listed: 3 with 2FA on, 0 off, 0 pending, 0 required but not set up, 1 locked."
    );
    assert_eq!(result["still_there_after_cancel"], true);
    // The store agrees with what the page showed.
    assert!(
        env.load(&reset.name).is_none(),
        "reset did not remove the record"
    );
    let unlocked = env.load(&locked.name).unwrap();
    assert!(unlocked.locked_at(common::now() as i64).is_none());
    assert!(unlocked.trusted.is_empty(), "trusted computers kept");
    assert_eq!(
        unlocked.state,
        State::Enabled,
        "disabled, then enabled again"
    );
    // The codes the page showed once are the user's new ones: one works at a login.
    let codes = strings(&result["codes"]);
    assert_eq!(codes.len(), unlocked.backup_codes_left());
    assert!(env.pamtester("login", &locked.name, &codes[0]).success);
    assert_eq!(result["storage_clean"], true);
    // Logged as the terminal commands log, naming the admin behind sudo.
    // (Each button is one CLI command: disable and enable left their lines too.)
    let log = cockpit.logged();
    let reset_line = format!("{}: 2FA reset (record removed); by root", reset.name);
    assert!(log.contains(&reset_line), "{reset_line} not in:\n{log}");
    assert!(
        log.contains(&format!("via sudo from {}", admin.name)),
        "{log}"
    );
}

#[test]
fn a_user_enrolls_from_the_qr_code_and_renews_backup_codes() {
    let _one = serial();
    let env = Env::new("");
    let me = user(false);
    let cockpit = Cockpit::start(&env);

    let result = cockpit.browse("user", &[("user", &me.name)]);

    // The QR code the page drew (decoded by zbarimg) is the key typed by hand and the key
    // the store holds.
    let secret = result["secret"].as_str().unwrap();
    assert_eq!(result["typed_key"], secret);
    let uri = result["uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    let record = env.load(&me.name).expect("enrolled");
    assert_eq!(record.secret.to_base32().as_str(), secret);
    // New backup codes replaced the first ones: 2 used (one to renew, one at the second
    // login), the first batch gone.
    let new_codes = strings(&result["new_codes"]);
    assert_eq!(record.backup_codes_left(), new_codes.len() - 1);
    env.service("login", "", &[]);
    let first = strings(&result["first_codes"]);
    assert!(!env.pamtester("login", &me.name, &first[1]).success);
    assert!(env.pamtester("login", &me.name, &new_codes[1]).success);
    assert_eq!(result["relogin_prompt"], "Verification code:");
    assert_eq!(result["storage_clean"], true);
    let log = cockpit.logged();
    assert!(log.contains("enrolled (self-service)"), "{log}");
}

#[test]
fn a_plain_session_cannot_see_or_change_other_users() {
    let _one = serial();
    let env = Env::new("");
    let (plain, victim) = (user(false), user(false));
    env.enroll(&victim.name, SECRET);
    let before = fs::read(env.record(&victim.name)).unwrap();
    let cockpit = Cockpit::start(&env);

    let result = cockpit.browse("plain", &[("user", &plain.name), ("victim", &victim.name)]);

    assert_eq!(result["rows"], 0, "the admin table showed rows: {result}");
    for attempt in [
        "list_superuser",
        "list",
        "status_other",
        "reset_superuser",
        "reset",
    ] {
        assert_eq!(result[attempt]["ok"], false, "{attempt}: {result}");
    }
    // Without administrative access Cockpit refuses superuser channels outright.
    assert_eq!(result["list_superuser"]["problem"], "access-denied");
    // Their own status, and only theirs, through the self-service helper.
    let own = &result["self_status"];
    assert_eq!(own["ok"], true, "{result}");
    let event: Value = serde_json::from_str(own["out"].as_str().unwrap().trim()).unwrap();
    assert_eq!(event["status"]["user"], plain.name.as_str());
    assert_eq!(fs::read(env.record(&victim.name)).unwrap(), before);
}
