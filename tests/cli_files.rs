//! What the `twofold` CLI writes besides records, run for real as root: `--png`, `--svg`,
//! `codes --output` and `generate-docs` create new files only (a path another user planted in a
//! shared directory is refused and left as it was), a non-root run is told to use sudo and
//! never to hand the store to anyone, and a reader that closes the pipe early is no panic.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{Env, SECRET, backup_codes_in, twofold_bin, zbarimg};

const NOBODY: u32 = 65534;
const REFUSED: &str = "exists: remove it or choose a new name";
/// Long enough for a debug build under load; a FIFO opened for writing would block forever.
const TIMEOUT: Duration = Duration::from_secs(60);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `cmd` (stdin empty) and fails the test instead of hanging if it does not end.
fn run_timed(mut cmd: Command) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start twofold");
    let pid = child.id().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(out) => out.expect("wait for twofold"),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("{cmd:?} did not end within {TIMEOUT:?} (blocked on a FIFO?)");
        }
    }
}

fn twofold(env: &Env, args: &[&str]) -> Output {
    run_timed(env.twofold(args))
}

/// A sticky, world-writable directory like /tmp, inside the test's own directory.
fn shared_dir(env: &Env) -> PathBuf {
    let dir = env.dir.path().join("shared");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).unwrap();
    dir
}

/// What a planted path is and holds, to prove that twofold left it alone.
#[derive(Debug, PartialEq)]
struct Snapshot {
    bytes: Option<Vec<u8>>,
    uid: u32,
    gid: u32,
    mode: u32,
    link: Option<PathBuf>,
}

fn snapshot(path: &Path) -> Snapshot {
    let meta = fs::symlink_metadata(path).unwrap();
    let regular = meta.file_type().is_file();
    Snapshot {
        bytes: regular.then(|| fs::read(path).unwrap()),
        uid: meta.uid(),
        gid: meta.gid(),
        mode: meta.mode(),
        link: fs::read_link(path).ok(),
    }
}

/// A file of `nobody`'s, readable and writable by everyone, as an attacker would leave it.
fn planted_file(path: &Path) {
    fs::write(path, "planted by nobody\n").unwrap();
    std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o666)).unwrap();
}

/// The kinds of path an attacker can plant where the admin will write; returns the paths and
/// the files a link points at (which must stay untouched, or absent).
fn plant_all(dir: &Path, stem: &str) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let file = dir.join(format!("{stem}-file"));
    planted_file(&file);
    let victim = dir.join(format!("{stem}-victim"));
    planted_file(&victim);
    let link = dir.join(format!("{stem}-link"));
    symlink(&victim, &link).unwrap();
    let nowhere = dir.join(format!("{stem}-nowhere"));
    let dangling = dir.join(format!("{stem}-dangling"));
    symlink(&nowhere, &dangling).unwrap();
    let fifo = dir.join(format!("{stem}-fifo"));
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
    (vec![file, link, dangling, fifo], vec![victim, nowhere])
}

/// `args` with `{}` replaced by each planted path must fail with the refusal, and leave every
/// planted path (and what links point at) exactly as it was.
fn assert_refused_everywhere(env: &Env, dir: &Path, stem: &str, args: &[&str]) {
    let (paths, targets) = plant_all(dir, stem);
    for path in &paths {
        let before = snapshot(path);
        let victims: Vec<_> = targets
            .iter()
            .map(|t| t.exists().then(|| snapshot(t)))
            .collect();
        let path_text = path.to_str().unwrap();
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == "{}" { path_text } else { a })
            .collect();
        let out = twofold(env, &args);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(REFUSED), "{args:?}: {err}");
        assert!(err.contains(path_text), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert_eq!(
            snapshot(path),
            before,
            "{args:?} changed {}",
            path.display()
        );
        for (target, was) in targets.iter().zip(victims) {
            assert_eq!(target.exists().then(|| snapshot(target)), was, "{args:?}");
        }
    }
    // Nothing that holds the secret reached the shared directory.
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap().path();
        if entry.is_file() {
            let content = text(&fs::read(&entry).unwrap());
            assert!(
                !content.contains("JBSW"),
                "{} got the secret",
                entry.display()
            );
        }
    }
}

#[test]
fn enroll_never_writes_images_into_a_path_that_exists() {
    let env = Env::new("");
    let dir = shared_dir(&env);
    for flag in ["--png", "--svg"] {
        let stem = flag.trim_start_matches('-');
        let args = [
            "enroll",
            "daemon",
            "--secret",
            SECRET,
            "--no-verify",
            "--qr",
            "none",
            flag,
            "{}",
        ];
        assert_refused_everywhere(&env, &dir, stem, &args);
        assert!(!env.record("daemon").exists(), "enrolled after a refusal");
    }
}

#[test]
fn an_unconfirmed_enrollment_leaves_no_image_of_its_secret() {
    let env = Env::new("[backup_codes]\ncount = 0");
    let dir = shared_dir(&env);
    let png = dir.join("qr.png");
    let png_arg = png.to_str().unwrap();
    // Standard input is empty: no first code, so 2FA is not turned on.
    let out = twofold(
        &env,
        &["enroll", "daemon", "--qr", "none", "--png", png_arg],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no code was entered"),
        "{}",
        text(&out.stderr)
    );
    assert!(!env.record("daemon").exists());
    assert!(!png.exists(), "the image of an unused secret stayed");
    // So the next attempt may use the same name.
    let args = [
        "enroll",
        "daemon",
        "--qr",
        "none",
        "--no-verify",
        "--png",
        png_arg,
    ];
    let out = twofold(&env, &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_private(&png);
}

#[test]
fn qr_never_writes_images_into_a_path_that_exists() {
    let env = Env::new("[backup_codes]\ncount = 0");
    env.enroll("daemon", SECRET);
    let dir = shared_dir(&env);
    for flag in ["--png", "--svg"] {
        let stem = format!("qr{flag}");
        let args = ["qr", "daemon", "--qr", "none", flag, "{}"];
        assert_refused_everywhere(&env, &dir, &stem, &args);
    }
}

#[test]
fn codes_output_into_a_path_that_exists_keeps_the_old_codes() {
    let env = Env::new("[backup_codes]\ncount = 4");
    env.enroll("daemon", SECRET);
    let record = env.stored("daemon");
    let dir = shared_dir(&env);
    let args = ["codes", "daemon", "--regenerate", "--yes", "--output", "{}"];
    assert_refused_everywhere(&env, &dir, "codes", &args);
    // Refused before the store changed: the old codes still work, no new ones were lost.
    assert_eq!(env.stored("daemon"), record);
}

/// `twofold ARGS` under `umask 000`.
fn run_with_umask_0(env: &Env, args: &[&str]) -> Output {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "umask 000; exec \"$0\" \"$@\""])
        .arg(twofold_bin())
        .arg("--config")
        .arg(env.policy())
        .args(args);
    run_timed(cmd)
}

fn assert_private(path: &Path) {
    let meta = fs::symlink_metadata(path).unwrap();
    assert!(meta.file_type().is_file(), "{}", path.display());
    assert_eq!(meta.mode() & 0o7777, 0o600, "{}", path.display());
    assert_eq!((meta.uid(), meta.gid()), (0, 0), "{}", path.display());
}

#[test]
fn new_files_are_0600_and_root_owned_even_with_umask_0() {
    let env = Env::new("[backup_codes]\ncount = 4");
    let dir = shared_dir(&env);
    let (png, svg) = (dir.join("new.png"), dir.join("new.svg"));
    let out = run_with_umask_0(
        &env,
        &[
            "enroll",
            "daemon",
            "--no-verify",
            "--qr",
            "none",
            "--png",
            png.to_str().unwrap(),
            "--svg",
            svg.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let uri = text(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("URI: ").map(str::to_owned))
        .expect("URI printed");
    assert_private(&png);
    assert_private(&svg);
    assert_eq!(zbarimg(&png), uri);
    assert!(fs::read_to_string(&svg).unwrap().contains("<svg"));

    let codes = dir.join("codes.txt");
    let out = run_with_umask_0(
        &env,
        &[
            "codes",
            "daemon",
            "--regenerate",
            "--yes",
            "--output",
            codes.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_private(&codes);
    assert_eq!(
        backup_codes_in(&fs::read_to_string(&codes).unwrap()).len(),
        4
    );

    let again = dir.join("again.png");
    let out = run_with_umask_0(&env, &["qr", "daemon", "--png", again.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_private(&again);
    assert_eq!(zbarimg(&again), uri);
}

const DOCS: [&str; 4] = [
    "man1/twofold.1",
    "completions/twofold.bash",
    "completions/_twofold",
    "completions/twofold.fish",
];

fn generate_docs(dir: &Path) -> Output {
    let mut cmd = Command::new(twofold_bin());
    cmd.arg("generate-docs").arg(dir);
    run_timed(cmd)
}

#[test]
fn generate_docs_creates_new_files_only_and_follows_no_link() {
    let env = Env::new("");
    let docs = env.dir.path().join("docs");
    let out = generate_docs(&docs);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for name in DOCS {
        let meta = fs::symlink_metadata(docs.join(name)).unwrap();
        assert!(meta.is_file() && meta.len() > 0, "{name}");
        assert_eq!(meta.mode() & 0o7777, 0o644, "{name}");
    }
    // A second run into the same place overwrites nothing.
    let before: Vec<_> = DOCS.iter().map(|n| snapshot(&docs.join(n))).collect();
    let out = generate_docs(&docs);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("exists"),
        "{}",
        text(&out.stderr)
    );
    let after: Vec<_> = DOCS.iter().map(|n| snapshot(&docs.join(n))).collect();
    assert_eq!(before, after);

    // A planted directory link is not followed: nothing lands in the directory it names.
    let elsewhere = env.dir.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let linked = env.dir.path().join("linked-docs");
    fs::create_dir(&linked).unwrap();
    symlink(&elsewhere, linked.join("man1")).unwrap();
    let out = generate_docs(&linked);
    assert!(!out.status.success(), "followed a linked man1");
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);

    // A planted file link is not followed either: its target keeps its content.
    let victim = env.dir.path().join("victim");
    planted_file(&victim);
    let was = snapshot(&victim);
    let planted = env.dir.path().join("planted-docs");
    fs::create_dir_all(planted.join("completions")).unwrap();
    symlink(&victim, planted.join("completions/_twofold")).unwrap();
    let out = generate_docs(&planted);
    assert!(!out.status.success(), "followed a linked completion file");
    assert!(text(&out.stderr).contains(REFUSED), "{}", text(&out.stderr));
    assert_eq!(snapshot(&victim), was);
}

/// A policy and a root-owned 0700 store in a directory every user may enter, so that a run as
/// `nobody` gets as far as the store (as it would with /etc/twofold and /var/lib/twofold).
fn world_readable_setup(env: &Env) -> PathBuf {
    let base = env.dir.path().join("open");
    fs::create_dir(&base).unwrap();
    let store = base.join("users");
    fs::create_dir(&store).unwrap();
    fs::set_permissions(&store, fs::Permissions::from_mode(0o700)).unwrap();
    let policy = base.join("twofold.toml");
    let body = format!(
        "[store]\ndir = \"{}\"\nkeys_dir = \"{}\"\n[backup_codes]\ncount = 0\n",
        store.display(),
        base.join("keys").display()
    );
    fs::write(&policy, body).unwrap();
    // The test's own directory is 0700: let others pass through it, as through /etc and /var.
    fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o711)).unwrap();
    fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&policy, fs::Permissions::from_mode(0o644)).unwrap();
    policy
}

#[test]
fn non_root_is_told_to_use_sudo_and_never_to_hand_over_the_store() {
    let env = Env::new("");
    let policy = world_readable_setup(&env);
    let as_root = |args: &[&str]| {
        let mut cmd = Command::new(twofold_bin());
        cmd.arg("--config").arg(&policy).args(args);
        run_timed(cmd)
    };
    let out = as_root(&[
        "enroll",
        "daemon",
        "--secret",
        SECRET,
        "--no-verify",
        "--qr",
        "none",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for args in [
        &["status", "daemon"][..],
        &["list"],
        &["unlock", "daemon"],
        &["codes", "daemon"],
        &["enroll", "bin", "--no-verify", "--qr", "none"],
    ] {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(twofold_bin())
            .arg("--config")
            .arg(&policy)
            .args(args);
        let out = run_timed(cmd);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} worked as nobody");
        assert!(err.contains("sudo"), "{args:?}: {err}");
        assert!(
            !err.contains("chown") && !err.contains("chmod"),
            "{args:?}: {err}"
        );
    }

    // As root, a store someone else took over is to be given back to root, never to them.
    let store = policy.parent().unwrap().join("users");
    std::os::unix::fs::chown(&store, Some(NOBODY), None).unwrap();
    let err = text(&as_root(&["status", "daemon"]).stderr);
    assert!(!err.contains(&format!("chown {NOBODY}")), "{err}");
}

/// A store of many records (copies of one, no backup codes), so `list` writes more than a
/// pipe holds.
fn big_store() -> Env {
    let env = Env::new("[backup_codes]\ncount = 0");
    env.enroll("daemon", SECRET);
    let record = fs::read(env.record("daemon")).unwrap();
    // A record names the epoch of its login-state file (src/store/state_file.rs): copy both.
    let state = fs::read(env.store().join("daemon.state")).unwrap();
    for i in 0..800 {
        for (ext, bytes) in [("toml", &record), ("state", &state)] {
            let path = env.store().join(format!("user{i:04}.{ext}"));
            fs::write(&path, bytes).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
    env
}

fn assert_quiet_success(args: &[&str], status: std::process::ExitStatus, err: &str) {
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert_eq!(status.code(), Some(0), "{args:?}: {status:?} {err}");
    // Where the host has no syslog (test machines), changes warn that they are not logged.
    let other = err.lines().any(|l| !l.contains("syslog cannot be reached"));
    assert!(!other, "{args:?}: {err}");
}

#[test]
fn list_into_a_reader_that_stops_after_one_line_is_no_panic() {
    let env = big_store();
    for args in [&["list"][..], &["list", "--json"]] {
        let mut child = env
            .twofold(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        assert!(!first.is_empty(), "{args:?} printed nothing");
        drop(reader); // like `head -1`
        let out = child.wait_with_output().unwrap();
        assert_quiet_success(args, out.status, &text(&out.stderr));
    }
}

/// Runs `args` with standard output a pipe whose reading end is already closed.
fn with_closed_stdout(env: &Env, args: &[&str]) -> Output {
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    let mut cmd = env.twofold(args);
    cmd.stdout(Stdio::from(write));
    cmd.stderr(Stdio::piped()).stdin(Stdio::null());
    cmd.output().unwrap()
}

#[test]
fn every_command_survives_a_closed_stdout() {
    let env = big_store();
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["status", "daemon"],
        &["status", "daemon", "--json"],
        &["codes", "daemon"],
        &["trust", "daemon"],
        &["unlock", "daemon"],
        &["disable", "daemon"],
        &["enable", "daemon"],
        &["qr", "daemon"],
    ] {
        let out = with_closed_stdout(&env, args);
        assert_quiet_success(args, out.status, &text(&out.stderr));
    }
    // Enrolling while nobody can see the key would turn on a factor no one holds.
    let out = with_closed_stdout(
        &env,
        &[
            "enroll",
            "bin",
            "--secret",
            SECRET,
            "--no-verify",
            "--qr",
            "none",
        ],
    );
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("2FA was not turned on"), "{err}");
    assert!(!env.record("bin").exists());
}
