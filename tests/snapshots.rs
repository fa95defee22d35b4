//! Snapshots of what the `twofold` CLI prints: `--help` of the command and of every subcommand
//! (found by walking the help's "Commands:" lists, so a new command needs a snapshot), and the
//! main errors an admin meets. Each case is one file under tests/snapshots/: the command line,
//! the exit status, stdout and stderr, with the test's temp dir written `[TMP]`.
//!
//! A difference fails the test and shows it. When the change is intended, re-bless and review:
//!
//! ```text
//! TWOFOLD_BLESS=1 cargo test --test snapshots
//! git diff tests/snapshots
//! ```
//!
//! Any user; the unit and library tier. The CLI runs on a temp policy and a temp store owned by
//! this process's uid (what the CLI expects of its store), never on the system's. The alias case
//! needs `gcc` and `libnss-wrapper` (see common/nss.rs); a missing one fails the test.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::nss::Loose;
use common::{Env, SECRET, twofold_bin};

const BLESS: &str = "TWOFOLD_BLESS";

fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots")
}

/// Runs the CLI with `args` in a clean environment (plus `env`'s NSS view, if any) and renders
/// what it did; `tmp` is written `[TMP]`.
fn render(args: &[&str], env: Option<&Env>, tmp: Option<&Path>) -> String {
    let mut cmd = Command::new(twofold_bin());
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null());
    if let Some(env) = env {
        if !env.run_env.preload.is_empty() {
            cmd.env("LD_PRELOAD", env.run_env.preload.join(":"));
        }
        cmd.envs(env.run_env.vars.iter().map(|(k, v)| (k, v)));
    }
    let out = cmd.output().expect("run twofold");
    let status = match out.status.code() {
        Some(code) => format!("exit {code}"),
        None => format!("{:?}", out.status),
    };
    let line: String = args.iter().map(|a| format!(" {a}")).collect();
    let mut text = format!("$ twofold{line}\n[{status}]\n");
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let body = String::from_utf8_lossy(bytes);
        text.push_str(&format!("[{name}]\n{body}"));
        if !body.is_empty() && !body.ends_with('\n') {
            text.push_str("\n[no newline at the end]\n");
        }
    }
    match tmp {
        Some(dir) => text.replace(&dir.display().to_string(), "[TMP]"),
        None => text,
    }
}

/// Compares `actual` with tests/snapshots/`name`.txt, or writes it there under TWOFOLD_BLESS.
fn check(name: &str, actual: &str) {
    let path = snapshot_dir().join(format!("{name}.txt"));
    let expected = fs::read_to_string(&path).ok();
    if expected.as_deref() == Some(actual) {
        return;
    }
    if std::env::var_os(BLESS).is_some() {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, actual).unwrap();
        // Past libtest's capture: the blesser sees what changed.
        let note = format!("blessed {}\n", path.display());
        let _ = std::io::Write::write_all(&mut std::io::stderr(), note.as_bytes());
        return;
    }
    let how = format!(
        "if the change is intended: {BLESS}=1 cargo test --test snapshots, then review `git diff tests/snapshots`"
    );
    match expected {
        None => panic!(
            "no snapshot {} yet; this run printed:\n{actual}\n{how}",
            path.display()
        ),
        Some(expected) => panic!(
            "{} differs (- snapshot, + this run):\n{}\n{how}",
            path.display(),
            diff(&expected, actual)
        ),
    }
}

/// A line diff (longest common subsequence), enough for a few hundred lines.
fn diff(old: &str, new: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("  {}\n", a[i]));
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        }
    }
    out
}

// ---- --help ------------------------------------------------------------------------------

/// The subcommands a help text lists under "Commands:" (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim_end() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

/// Every command path, the top level (empty) first: [], [enroll], ..., [db, init], ...
fn command_paths() -> Vec<Vec<String>> {
    let mut paths = vec![Vec::new()];
    let mut next = 0;
    while next < paths.len() {
        let path = paths[next].clone();
        next += 1;
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = Command::new(twofold_bin()).args(&args).output().unwrap();
        assert!(out.status.success(), "twofold {args:?}: {out:?}");
        for sub in subcommands(&String::from_utf8_lossy(&out.stdout)) {
            let mut child = path.clone();
            child.push(sub);
            paths.push(child);
        }
    }
    paths
}

fn help_name(path: &[String]) -> String {
    if path.is_empty() {
        "help/twofold".to_owned()
    } else {
        format!("help/twofold-{}", path.join("-"))
    }
}

#[test]
fn help_of_every_command() {
    let paths = command_paths();
    assert!(
        paths.len() > 10,
        "found only {paths:?} in `twofold --help`: did its layout change?"
    );
    for path in &paths {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        check(&help_name(path), &render(&args, None, None));
    }
    // The short form and a call without a command (clap's usage error).
    check("help/twofold-h", &render(&["-h"], None, None));
    check("errors/no-command", &render(&[], None, None));
}

// ---- errors ------------------------------------------------------------------------------

/// The error cases' snapshots (each test below builds its own env).
const ERROR_CASES: [&str; 8] = [
    "errors/unknown-user-enroll",
    "errors/unknown-user-status",
    "errors/alias",
    "errors/not-enrolled-disable",
    "errors/not-enrolled-status",
    "errors/policy-missing",
    "errors/bad-policy-value",
    "errors/bad-policy-syntax",
];

/// `twofold --config POLICY args...` on `env`, rendered.
fn run_on(env: &Env, args: &[&str]) -> String {
    let policy = env.policy().display().to_string();
    let mut all = vec!["--config", policy.as_str()];
    all.extend(args);
    render(&all, Some(env), Some(env.dir.path()))
}

#[test]
fn unknown_user() {
    let env = Env::unprivileged("");
    let user = "twofold-no-such-user";
    check(
        "errors/unknown-user-enroll",
        &run_on(&env, &["enroll", user, "--no-verify", "--qr", "none"]),
    );
    check(
        "errors/unknown-user-status",
        &run_on(&env, &["status", user]),
    );
    assert!(!env.record(user).exists());
}

#[test]
fn alias_of_an_account() {
    let mut env = Env::unprivileged("");
    Loose::install(&mut env);
    env.enroll("alice", SECRET);
    check("errors/alias", &run_on(&env, &["status", "ALICE"]));
}

#[test]
fn not_enrolled() {
    let env = Env::unprivileged("");
    check(
        "errors/not-enrolled-disable",
        &run_on(&env, &["disable", "root"]),
    );
    check(
        "errors/not-enrolled-status",
        &run_on(&env, &["status", "root"]),
    );
}

#[test]
fn policy_missing() {
    let env = Env::unprivileged("");
    let missing = env.dir.path().join("missing.toml");
    let missing = missing.display().to_string();
    check(
        "errors/policy-missing",
        &render(
            &["--config", &missing, "status", "root"],
            None,
            Some(env.dir.path()),
        ),
    );
}

#[test]
fn bad_policy_line() {
    let env = Env::unprivileged("[policy]\nrequire = \"sometimes\"");
    check(
        "errors/bad-policy-value",
        &run_on(&env, &["status", "root"]),
    );
    env.write_policy("[totp]\nwindow =\n");
    check(
        "errors/bad-policy-syntax",
        &run_on(&env, &["status", "root"]),
    );
}

/// Every file under tests/snapshots belongs to a case: a renamed or removed case leaves none
/// behind.
#[test]
fn no_stale_snapshots() {
    let mut expected: BTreeSet<String> = command_paths().iter().map(|p| help_name(p)).collect();
    expected.extend(["help/twofold-h", "errors/no-command"].map(String::from));
    expected.extend(ERROR_CASES.map(String::from));
    let mut found = BTreeSet::new();
    for group in ["help", "errors"] {
        let Ok(dir) = fs::read_dir(snapshot_dir().join(group)) else {
            continue;
        };
        for entry in dir {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            found.insert(format!("{group}/{}", name.trim_end_matches(".txt")));
        }
    }
    let stale: Vec<_> = found.difference(&expected).collect();
    assert!(
        stale.is_empty(),
        "snapshots without a case (remove them): {stale:?}"
    );
}
