//! The rough edges an admin hit on a fresh machine (issue 16), each proven with the real
//! programs: the module under real PAM and a real sshd + ssh client, the real CLI.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::sshd::{Sshd, TempUser};
use common::{Env, SECRET, module, oathtool, terminal, wait_for_fresh_step};

const PASSWORD: &str = "rough-Edge-9";

/// Enrolled a moment ago, logging in at once with the code that confirmed it: the user is told
/// to wait for the next code, and it is not counted as a failure.
#[test]
fn the_code_that_confirmed_the_enrollment_says_wait_for_the_next_one() {
    let env = Env::new("[policy]\nrequire = \"all\"\n[backup_codes]\ncount = 0");
    env.service_after_password("tf", "");
    // Enroll-at-login, then the same code again in the same time step.
    wait_for_fresh_step(20);
    let login = env.pam_argv(None, &["pamtester", "-v", "tf", "daemon", "authenticate"]);
    let report = terminal(&[], &login);
    assert_eq!(report["status"], 0, "{report:#}");
    let secret = report["secret"].as_str().unwrap().to_owned();
    let again = env.pamtester("tf", "daemon", &oathtool(&secret, 0));
    assert_eq!(again.verdict(), "pamtester: Authentication failure");
    let told = format!("{}{}", again.stdout, again.stderr);
    assert!(
        told.contains("already used to confirm your enrollment") && told.contains("next code"),
        "{told}"
    );
    assert_eq!(env.load("daemon").unwrap().failures, 0, "not counted");
    // The next code logs in; after that, a replay of it is an ordinary refusal.
    let next = oathtool(&secret, 30);
    assert!(env.pamtester("tf", "daemon", &next).success);
    let replay = env.pamtester("tf", "daemon", &next);
    assert!(!replay.success);
    assert!(
        replay.stderr.contains("Invalid verification code.")
            && !replay.stderr.contains("enrollment"),
        "{}",
        replay.stderr
    );

    // The same after `twofold enroll` confirmed with the user's first code.
    env.run(&["reset", "daemon", "--yes"]);
    wait_for_fresh_step(20);
    let code = oathtool(SECRET, 0);
    let mut child = env
        .twofold(&["enroll", "daemon", "--secret", SECRET, "--qr", "none"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{code}\n").as_bytes());
    assert!(child.wait_with_output().unwrap().status.success());
    let again = env.pamtester("tf", "daemon", &code);
    assert!(
        again
            .stderr
            .contains("already used to confirm your enrollment"),
        "{}",
        again.stderr
    );
    assert_eq!(env.load("daemon").unwrap().failures, 0, "not counted");
}

/// sshd shows text only with a prompt, and `ssh` hides a failed attempt's note at LogLevel
/// ERROR (`-q`): a locked-out user, and one who cannot enroll, still learn why after their
/// password; before it nothing is said.
#[test]
fn over_ssh_a_denied_user_learns_why_after_the_password() {
    let env = Env::new(
        "[policy]\nrequire = \"all\"\nenroll_at_login = false\n[lockout]\nmax_failures = 1",
    );
    let stack = format!(
        "auth requisite pam_unix.so\nauth required {} config={}",
        module(),
        env.policy().display()
    );
    let server = Sshd::start(&stack, "");
    let user = TempUser::new();
    user.set_password(PASSWORD);
    // `ssh_args` asks for LogLevel=ERROR: what the user saw was "Permission denied" alone.
    let ssh = server.ssh_args(
        &user.name,
        &["-o", "NumberOfPasswordPrompts=1"],
        "echo rough-ok",
    );
    let password = ("[Pp]assword:", PASSWORD);

    let (status, seen) = dialog(&ssh, &[password, ("Press Enter to close. ", "")]);
    assert_ne!(status, 0);
    assert!(
        seen.contains("is required for this account but is not set up. Ask your administrator"),
        "not enrolled, enroll-at-login off: {seen}\n{}",
        server.log()
    );

    env.enroll(&user.name, SECRET);
    env.service("tf", "", &[]);
    assert!(!env.pamtester("tf", &user.name, "000000").success);
    assert!(env.load(&user.name).unwrap().locked_until.is_some());
    let (status, seen) = dialog(&ssh, &[password, ("Press Enter to close. ", "")]);
    assert_ne!(status, 0);
    assert!(seen.contains("Too many wrong codes"), "locked: {seen}");

    // A wrong password: twofold never runs, nothing about the account is shown.
    let (status, seen) = dialog(&ssh, &[("[Pp]assword:", "wrong-password")]);
    assert_ne!(status, 0);
    assert!(
        !seen.contains("Too many") && !seen.contains("Press Enter"),
        "{seen}"
    );
}

/// Plays a dialog on a pty: (prompt regex, answer) pairs; returns (exit status, transcript).
fn dialog(command: &[String], steps: &[(&str, &str)]) -> (i64, String) {
    let mut args = Vec::new();
    for (expect, send) in steps {
        args.extend(["--step", expect, send]);
    }
    let report = terminal(&args, command);
    assert!(report["missing"].is_null(), "{report:#}");
    (
        report["status"].as_i64().unwrap_or(-1),
        report["after"].as_str().unwrap_or_default().to_owned(),
    )
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `status` of a name that is no account: an error, not "not enrolled, required: …".
#[test]
fn status_of_an_unknown_user_is_an_error() {
    let env = Env::new("[policy]\nrequire = \"all\"");
    let out = env.run(&["status", "twofold-nosuchuser"]);
    assert!(!out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr(&out).contains("there is no user 'twofold-nosuchuser'"),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["status", "twofold-nosuchuser", "--json"]);
    assert!(!out.status.success());

    // A record that outlived its account: the error says how to remove it.
    env.enroll("daemon", SECRET);
    let text = std::fs::read_to_string(env.record("daemon")).unwrap();
    let text = text.replace("\"daemon\"", "\"twofold-gone\"");
    std::fs::rename(env.record("daemon"), env.record("twofold-gone")).unwrap();
    std::fs::rename(env.state("daemon"), env.state("twofold-gone")).unwrap();
    std::fs::write(env.record("twofold-gone"), text).unwrap();
    let out = env.run(&["status", "twofold-gone"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("twofold reset twofold-gone"),
        "{}",
        stderr(&out)
    );
}

/// `list` with a policy that cannot decide (a group that does not exist): the error on
/// stderr and exit 1, not inside the table.
#[test]
fn list_reports_a_policy_error_on_stderr_and_fails() {
    let env = Env::new("");
    env.enroll("daemon", SECRET);
    env.write_policy("[policy]\nrequire = \"groups\"\ngroups = [\"twofold-nosuchgroup\"]");
    let out = env.run(&["list"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stderr(&out).contains("twofold-nosuchgroup"),
        "{}",
        stderr(&out)
    );
    assert!(!stdout.contains("twofold-nosuchgroup"), "{stdout}");
    assert!(
        stdout.contains("daemon"),
        "the table is still shown: {stdout}"
    );
}

/// Columns line up whatever the length of a state (a lock far in the future).
#[test]
fn list_columns_fit_long_states() {
    let env = Env::new("");
    env.enroll("daemon", SECRET);
    env.enroll("bin", SECRET);
    env.change("daemon", |r| {
        r.state = pam_twofold::record::State::Disabled;
        r.locked_until = Some(i64::MAX);
    });
    let out = env.run(&["list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[2].contains("locked until"), "{stdout}");
    for column in ["REQUIRED", "LAST USED"] {
        let at = lines[0].find(column).unwrap();
        for line in &lines[1..] {
            let (before, after) = line.split_at(at);
            assert!(
                before.ends_with("  ") && !after.starts_with(' '),
                "{column} not aligned:\n{stdout}"
            );
        }
    }
}

/// `codes --regenerate` asks before it revokes the old batch on a terminal; without one it
/// needs `--yes`.
#[test]
fn regenerating_backup_codes_asks_first() {
    let env = Env::new("[backup_codes]\ncount = 3");
    env.enroll("daemon", SECRET);
    let before = env.stored("daemon");
    let out = env.run(&["codes", "daemon", "--regenerate"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert_eq!(env.stored("daemon"), before);

    let policy = env.policy().display().to_string();
    let bin = common::twofold_bin().display().to_string();
    let argv: Vec<String> = [&bin, "--config", &policy, "codes", "daemon", "--regenerate"]
        .map(String::from)
        .to_vec();
    let question =
        r"Make new backup codes for daemon\? Their 3 unused codes stop working\. \[y/N\] ";
    let (status, seen) = dialog(&argv, &[(question, "n")]);
    assert_eq!(status, 0);
    assert!(seen.contains("Nothing changed."), "{seen}");
    assert_eq!(env.stored("daemon"), before);
    let (status, seen) = dialog(&argv, &[(question, "y")]);
    assert_eq!(status, 0, "{seen}");
    assert_eq!(common::backup_codes_in(&seen).len(), 3, "{seen}");
    assert_ne!(env.stored("daemon"), before);
}

/// Completes `words` (the last one being typed) with the bash completion `generate-docs`
/// wrote; returns what bash would offer.
fn bash_complete(script: &std::path::Path, words: &[&str]) -> Vec<String> {
    common::require_tool("bash", "bash");
    let words: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE=\"${{COMP_WORDS[*]}}\"; \
         COMP_POINT=${{#COMP_LINE}}; _twofold_users twofold \"${{COMP_WORDS[COMP_CWORD]}}\" \
         \"${{COMP_WORDS[COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        words.join(" "),
        words.len() - 1
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &program])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The completions offer no hidden command, and complete USER with account names.
#[test]
fn completions_hide_generate_docs_and_complete_user_names() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::twofold_bin())
        .arg("generate-docs")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let completions = dir.path().join("completions");
    for file in ["twofold.bash", "_twofold", "twofold.fish"] {
        let text = std::fs::read_to_string(completions.join(file)).unwrap();
        assert!(
            !text.contains("generate-docs"),
            "{file} offers generate-docs"
        );
    }
    let zsh = std::fs::read_to_string(completions.join("_twofold")).unwrap();
    assert!(
        zsh.contains("The account to show:_users"),
        "zsh completes users"
    );

    let bash = completions.join("twofold.bash");
    let commands = bash_complete(&bash, &["twofold", ""]);
    assert!(commands.contains(&"status".to_owned()), "{commands:?}");
    assert!(
        !commands.iter().any(|c| c == "generate-docs"),
        "{commands:?}"
    );
    assert_eq!(
        bash_complete(&bash, &["twofold", "status", "dae"]),
        ["daemon"]
    );
    let after_config = ["twofold", "--config", "/x.toml", "reset", "roo"];
    assert_eq!(bash_complete(&bash, &after_config), ["root"]);
    // Not after a command without USER, nor in a second position.
    assert!(!bash_complete(&bash, &["twofold", "list", "roo"]).contains(&"root".to_owned()));
    let second = bash_complete(&bash, &["twofold", "status", "root", "roo"]);
    assert!(!second.contains(&"root".to_owned()), "{second:?}");
}

/// The CLI run as `argv` in a private mount namespace whose syslog socket is `run/syslog`
/// (see `Env::pam_argv`); returns its output.
fn cli_with_syslog(env: &Env, run: &std::path::Path, args: &[&str]) -> std::process::Output {
    let (bin, policy) = (common::twofold_bin(), env.policy());
    let mut argv = vec![bin.to_str().unwrap(), "--config", policy.to_str().unwrap()];
    argv.extend(args);
    let argv = env.pam_argv(Some(run), &argv);
    std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// When syslog cannot be reached, the CLI says so on stderr, once per run; when it can, it
/// says nothing and the audit lines arrive.
#[test]
fn the_cli_warns_once_when_its_audit_line_cannot_reach_syslog() {
    let env = Env::new("");
    env.enroll("daemon", SECRET);
    let sink = common::SyslogSink::new(&env);
    let out = cli_with_syslog(&env, sink.dir(), &["unlock", "daemon", "--reset-drift"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("syslog"), "{}", stderr(&out));
    let lines = sink.drain();
    assert!(
        lines.iter().any(|l| l.contains("daemon: lock-out cleared")),
        "{lines:?}"
    );

    // No syslog: a regular file where the socket should be (and nothing at the other paths).
    let dead = env.dir.path().join("dead-run");
    std::fs::create_dir(&dead).unwrap();
    std::fs::write(dead.join("syslog"), "").unwrap();
    let out = cli_with_syslog(&env, &dead, &["unlock", "daemon", "--reset-drift"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.matches("syslog cannot be reached").count(), 1, "{err}");
    assert!(err.contains("not in the audit log"), "{err}");
}

/// Text from a record reaches the admin's terminal escaped: a bidi override (which parsing
/// lets through, it is no control character) in the issuer and a trusted host's name.
#[test]
fn status_qr_and_trust_escape_record_text() {
    let env = Env::new("[trust]\ndays = 7");
    env.enroll("daemon", SECRET);
    let path = env.record("daemon");
    let text = std::fs::read_to_string(&path).unwrap();
    let issuer = text.lines().find(|l| l.starts_with("issuer = ")).unwrap();
    let now = common::now();
    let text = text.replace(issuer, "issuer = \"corp\u{202e}moc.evil\"")
        + &format!(
            "\n[[trusted]]\nhost = \"10.0.0.1\u{202e}1.0.0.01\"\nservice = \"sshd\"\ngranted = {now}\nexpires = {}\n",
            now + 3600
        );
    std::fs::write(&path, text).unwrap();
    for args in [
        &["status", "daemon"][..],
        &["trust", "daemon"],
        &["qr", "daemon", "--qr", "none"],
    ] {
        let out = env.run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(
            !shown.contains('\u{202e}'),
            "{args:?} printed it raw: {shown}"
        );
        assert!(shown.contains("\\u{202e}"), "{args:?}: {shown}");
    }
}
