//! `twofold check` against real stacks: Debian's own /etc/pam.d copied into a temp dir with
//! twofold added correctly reports clean (exit 0); each deliberate mistake is reported with
//! the right kind, file, line and severity; `--json` parses; `--user` walks through a login
//! of an enrolled, unenrolled, locked and trusted user and changes nothing in the store.
//!
//! Root tier: the check runs in a private mount namespace (common::Env::pam_argv) whose /run
//! holds this test's syslog socket and sshd's /run/sshd, so the host's are never needed.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::sshd::TempUser;
use common::{
    Env, SECRET, SyslogSink, module, oathtool, require_tool, twofold_bin, wait_for_fresh_step,
};
use serde_json::Value;

const GOOD_SSHD: &str = "UsePAM yes\nKbdInteractiveAuthentication yes\nPasswordAuthentication no\nAuthenticationMethods keyboard-interactive\n";

/// A temp world: Debian's /etc/pam.d copied, twofold added to its sshd file, an sshd config.
struct Setup {
    env: Env,
    sink: SyslogSink,
}

impl Setup {
    fn new(policy: &str) -> Self {
        let env = Env::new(policy);
        let sink = SyslogSink::new(&env);
        fs::create_dir_all(sink.dir().join("sshd")).unwrap();
        let setup = Self { env, sink };
        fs::create_dir(setup.pam_dir()).unwrap();
        for entry in fs::read_dir("/etc/pam.d").unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                fs::copy(entry.path(), setup.pam_dir().join(entry.file_name())).unwrap();
            }
        }
        assert!(
            setup.pam_dir().join("common-auth").exists(),
            "Debian's /etc/pam.d/common-auth is missing: apt-get install libpam-runtime"
        );
        let sshd = fs::read_to_string("/etc/pam.d/sshd")
            .expect("Debian's /etc/pam.d/sshd: apt-get install openssh-server");
        setup.write("sshd", &format!("{sshd}\n{}\n", setup.twofold_line("")));
        require_tool("ssh-keygen", "openssh-client");
        let key = setup.env.dir.path().join("hostkey");
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(ok.success());
        setup.sshd_config(GOOD_SSHD);
        setup
    }

    fn pam_dir(&self) -> PathBuf {
        self.env.dir.path().join("pam.d-copy")
    }

    fn sshd_file(&self) -> PathBuf {
        self.env.dir.path().join("sshd_config")
    }

    fn sshd_config(&self, settings: &str) {
        let key = self.env.dir.path().join("hostkey");
        fs::write(
            self.sshd_file(),
            format!("HostKey {}\n{settings}", key.display()),
        )
        .unwrap();
    }

    fn twofold_line(&self, args: &str) -> String {
        format!(
            "auth required {} config={} {args}",
            module(),
            self.env.policy().display()
        )
    }

    fn write(&self, service: &str, text: &str) {
        fs::write(self.pam_dir().join(service), text).unwrap();
    }

    /// `twofold check ARGS` in the private namespace: (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let (bin, policy, pam, sshd) = (
            twofold_bin(),
            self.env.policy(),
            self.pam_dir(),
            self.sshd_file(),
        );
        let mut argv: Vec<&str> = vec![
            bin.to_str().unwrap(),
            "--config",
            policy.to_str().unwrap(),
            "check",
            "--pam-dir",
            pam.to_str().unwrap(),
            "--sshd-config",
            sshd.to_str().unwrap(),
        ];
        argv.extend(args);
        let full = self.env.pam_argv(Some(self.sink.dir()), &argv);
        let out = Command::new(&full[0]).args(&full[1..]).output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (
            out.status.code().unwrap_or(-1),
            text(&out.stdout),
            text(&out.stderr),
        )
    }

    fn findings(&self) -> (i32, Vec<Value>) {
        let (code, stdout, stderr) = self.run(&["--json"]);
        let report: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\n{stderr}"));
        assert_eq!(report["exit"].as_i64(), Some(code as i64), "{report}");
        (code, report["findings"].as_array().unwrap().clone())
    }
}

/// The line of `needle` in `file` (1-based).
fn line_of(file: &Path, needle: &str) -> u64 {
    let text = fs::read_to_string(file).unwrap();
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not in {}", file.display())) as u64
        + 1
}

/// Asserts a finding of `kind` with this severity at file:line, and returns it.
fn expect(findings: &[Value], kind: &str, severity: &str, file: &Path, line: Option<u64>) -> Value {
    let found = findings
        .iter()
        .find(|f| f["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} finding in {findings:#?}"));
    assert_eq!(found["severity"], severity, "{found}");
    assert_eq!(
        found["file"].as_str(),
        Some(file.to_str().unwrap()),
        "{found}"
    );
    if let Some(line) = line {
        assert_eq!(found["line"].as_u64(), Some(line), "{found}");
    }
    assert!(!found["fix"].as_str().unwrap().is_empty(), "{found}");
    found.clone()
}

const REQUIRE_ALL: &str = "[policy]\nrequire = \"all\"\n";

#[test]
fn debians_stacks_with_twofold_added_correctly_are_clean() {
    let s = Setup::new(REQUIRE_ALL);
    let (code, findings) = s.findings();
    let bad: Vec<&Value> = findings
        .iter()
        .filter(|f| f["severity"] != "info")
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
    assert_eq!(code, 0);
    let (code, text, _) = s.run(&[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("No problems found."), "{text}");
}

#[test]
fn twofold_before_the_password_with_enroll_at_login_is_an_error() {
    let s = Setup::new(REQUIRE_ALL);
    let sshd = fs::read_to_string(s.pam_dir().join("sshd")).unwrap();
    let line = s.twofold_line("");
    let moved = sshd.replace(&format!("\n{line}\n"), "\n").replace(
        "@include common-auth",
        &format!("{line}\n@include common-auth"),
    );
    s.write("sshd", &moved);
    let (code, findings) = s.findings();
    let file = s.pam_dir().join("sshd");
    let f = expect(
        &findings,
        "no-first-factor",
        "error",
        &file,
        Some(line_of(&file, "pam_twofold")),
    );
    assert!(
        f["problem"].as_str().unwrap().contains("enroll-at-login"),
        "{f}"
    );
    assert_eq!(code, 2);
}

#[test]
fn a_sufficient_password_module_before_twofold_skips_it() {
    let s = Setup::new(REQUIRE_ALL);
    s.write(
        "sshd",
        &format!("auth sufficient pam_unix.so\n{}\n", s.twofold_line("")),
    );
    let (_, findings) = s.findings();
    expect(
        &findings,
        "bypass",
        "error",
        &s.pam_dir().join("sshd"),
        Some(1),
    );
}

#[test]
fn a_jump_over_twofold_skips_it() {
    let s = Setup::new(REQUIRE_ALL);
    let text = format!(
        "auth [success=2 default=ignore] pam_unix.so\nauth requisite pam_deny.so\n{}\nauth required pam_permit.so\n",
        s.twofold_line("")
    );
    s.write("sshd", &text);
    let (_, findings) = s.findings();
    expect(
        &findings,
        "bypass",
        "error",
        &s.pam_dir().join("sshd"),
        Some(1),
    );
}

#[test]
fn a_required_password_module_lets_strangers_reach_twofold() {
    let s = Setup::new(REQUIRE_ALL);
    s.write(
        "sshd",
        &format!("auth required pam_unix.so\n{}\n", s.twofold_line("")),
    );
    let (_, findings) = s.findings();
    expect(
        &findings,
        "after-failed-first-factor",
        "error",
        &s.pam_dir().join("sshd"),
        Some(2),
    );
}

/// Twofold's own line: (arguments or control change, kind, severity).
fn own_line_mistake(policy: &str, line: &str, kind: &str, severity: &str) {
    let s = Setup::new(policy);
    let line = line.replace("TWOFOLD", &s.twofold_line(""));
    s.write("sshd", &format!("@include common-auth\n{line}\n"));
    let (code, findings) = s.findings();
    expect(
        &findings,
        kind,
        severity,
        &s.pam_dir().join("sshd"),
        Some(2),
    );
    assert!(code >= 1);
}

#[test]
fn optional_twofold_is_an_error() {
    own_line_mistake(
        REQUIRE_ALL,
        &format!("auth optional {}", module()),
        "twofold-optional",
        "error",
    );
}

#[test]
fn nullok_with_require_all_is_a_warning() {
    own_line_mistake(
        REQUIRE_ALL,
        "TWOFOLD nullok",
        "nullok-with-require-all",
        "warning",
    );
}

#[test]
fn forward_pass_is_refused() {
    own_line_mistake(REQUIRE_ALL, "TWOFOLD forward_pass", "forward-pass", "error");
}

#[test]
fn config_naming_a_missing_file_is_an_error() {
    own_line_mistake(
        REQUIRE_ALL,
        &format!(
            "auth required {} config=/nonexistent/twofold.toml",
            module()
        ),
        "config-missing",
        "error",
    );
}

/// The module starts its login helper for every call: a missing one, or one another user could
/// replace, fails every login through the line.
#[test]
fn a_missing_or_unsafe_login_helper_is_an_error() {
    let module = common::module_path();
    own_line_mistake(
        REQUIRE_ALL,
        &format!(
            "auth required {} helper=/nonexistent/twofold-login",
            module.display()
        ),
        "helper-unusable",
        "error",
    );
    let dir = tempfile::tempdir().unwrap();
    let loose = dir.path().join("twofold-login");
    fs::copy(common::helper_path(), &loose).unwrap();
    fs::set_permissions(&loose, fs::Permissions::from_mode(0o775)).unwrap();
    own_line_mistake(
        REQUIRE_ALL,
        &format!(
            "auth required {} helper={}",
            module.display(),
            loose.display()
        ),
        "helper-unusable",
        "error",
    );
}

#[test]
fn split_code_without_a_judging_line_is_an_error() {
    let s = Setup::new(REQUIRE_ALL);
    let split = format!("auth requisite {} split_code", module());
    s.write(
        "sshd",
        &format!("{split}\nauth requisite pam_unix.so use_first_pass\n"),
    );
    let (_, findings) = s.findings();
    expect(
        &findings,
        "split-without-judge",
        "error",
        &s.pam_dir().join("sshd"),
        Some(1),
    );
}

#[test]
fn the_vpn_example_with_split_code_is_clean() {
    let s = Setup::new(REQUIRE_ALL);
    let split = format!("auth requisite {} split_code", module());
    s.write(
        "sshd",
        &format!(
            "{split}\nauth requisite pam_unix.so use_first_pass\n{}\n",
            s.twofold_line("")
        ),
    );
    let (_, findings) = s.findings();
    let pam: Vec<&Value> = findings.iter().filter(|f| f["area"] == "pam").collect();
    assert!(pam.is_empty(), "{pam:#?}");
}

#[test]
fn including_a_missing_file_is_an_error() {
    let s = Setup::new(REQUIRE_ALL);
    s.write(
        "sshd",
        &format!("@include common-auth-typo\n{}\n", s.twofold_line("")),
    );
    let (_, findings) = s.findings();
    let f = expect(
        &findings,
        "include-missing",
        "error",
        &s.pam_dir().join("sshd"),
        Some(1),
    );
    assert!(
        f["problem"].as_str().unwrap().contains("common-auth-typo"),
        "{f}"
    );
}

#[test]
fn a_policy_group_that_does_not_exist_is_an_error() {
    let s = Setup::new(
        "[policy]\nrequire = \"groups\"\ngroups = [\"root\", \"twofold-no-such-group\"]\n",
    );
    let (code, findings) = s.findings();
    let line = line_of(&s.env.policy(), "twofold-no-such-group");
    expect(
        &findings,
        "unknown-group",
        "error",
        &s.env.policy(),
        Some(line),
    );
    assert_eq!(code, 2);
}

#[test]
fn a_policy_file_others_may_write_is_an_error() {
    let s = Setup::new(REQUIRE_ALL);
    fs::set_permissions(s.env.policy(), fs::Permissions::from_mode(0o666)).unwrap();
    let (code, findings) = s.findings();
    expect(&findings, "policy-file", "error", &s.env.policy(), None);
    assert_eq!(code, 2);
}

fn sshd_mistake(settings: &str, kind: &str, keyword: &str) {
    let s = Setup::new(REQUIRE_ALL);
    s.sshd_config(settings);
    let (code, findings) = s.findings();
    expect(
        &findings,
        kind,
        "error",
        &s.sshd_file(),
        Some(line_of(&s.sshd_file(), keyword)),
    );
    assert_eq!(code, 2);
}

#[test]
fn usepam_no_is_an_error() {
    sshd_mistake(
        "UsePAM no\nKbdInteractiveAuthentication yes\n",
        "usepam-off",
        "UsePAM",
    );
}

#[test]
fn kbd_interactive_off_is_an_error() {
    sshd_mistake(
        "UsePAM yes\nKbdInteractiveAuthentication no\nPasswordAuthentication yes\n",
        "kbd-interactive-off",
        "KbdInteractiveAuthentication",
    );
}

#[test]
fn authentication_methods_without_keyboard_interactive_is_an_error() {
    sshd_mistake(
        "UsePAM yes\nKbdInteractiveAuthentication yes\nAuthenticationMethods publickey\n",
        "methods-without-kbd",
        "AuthenticationMethods",
    );
}

/// `sshd -T` shows the global settings only: a `Match` block that lets some users in with a
/// key alone (here from an included file, as Debian's sshd_config.d is read) is reported at
/// its `Match` line, although the global settings are right.
#[test]
fn a_match_block_that_skips_the_code_is_an_error_at_its_line() {
    let s = Setup::new(REQUIRE_ALL);
    let conf_d = s.env.dir.path().join("sshd_config.d");
    fs::create_dir(&conf_d).unwrap();
    let deploy = conf_d.join("50-deploy.conf");
    fs::write(
        &deploy,
        "# CI deploys\nMatch User deploy\n    AuthenticationMethods publickey\n",
    )
    .unwrap();
    s.sshd_config(&format!("{GOOD_SSHD}Include {}/*.conf\n", conf_d.display()));
    let (code, findings) = s.findings();
    expect(&findings, "methods-without-kbd", "error", &deploy, Some(2));
    assert_eq!(code, 2);
    // The same block with the code after the key is fine.
    fs::write(
        &deploy,
        "Match User deploy\n    AuthenticationMethods keyboard-interactive\n",
    )
    .unwrap();
    let (code, findings) = s.findings();
    assert_eq!(code, 0, "{findings:#?}");
}

#[test]
fn key_then_code_with_twofold_alone_is_clean() {
    let s = Setup::new(REQUIRE_ALL);
    s.sshd_config("UsePAM yes\nKbdInteractiveAuthentication yes\nPasswordAuthentication no\nAuthenticationMethods publickey,keyboard-interactive\n");
    s.write("sshd", &format!("{}\n", s.twofold_line("")));
    let (code, findings) = s.findings();
    assert_eq!(code, 0, "{findings:#?}");
    // Without the key first, the same stack has no first factor.
    s.sshd_config(GOOD_SSHD);
    let (_, findings) = s.findings();
    expect(
        &findings,
        "no-first-factor",
        "error",
        &s.pam_dir().join("sshd"),
        Some(1),
    );
}

#[test]
fn twofold_alone_refuses_users_not_required_unless_nullok() {
    let s = Setup::new("[policy]\nrequire = \"groups\"\ngroups = [\"root\"]\n");
    s.sshd_config("UsePAM yes\nKbdInteractiveAuthentication yes\nPasswordAuthentication no\nAuthenticationMethods publickey,keyboard-interactive\n");
    s.write("sshd", &format!("{}\n", s.twofold_line("")));
    let (code, findings) = s.findings();
    expect(
        &findings,
        "not-required-refused",
        "warning",
        &s.pam_dir().join("sshd"),
        Some(1),
    );
    assert_eq!(code, 1);
    s.write("sshd", &format!("{}\n", s.twofold_line("nullok")));
    assert_eq!(s.findings().0, 0);
}

#[test]
fn fleet_offline_cache_says_what_it_cannot_revoke() {
    let s = Setup::new("[policy]\nrequire = \"all\"\n");
    let store = s.env.store();
    let text = format!(
        "[store]\nkind = \"postgres\"\nurl = \"host=/nonexistent-socket-dir dbname=twofold\"\ntimeout = 1\noffline = \"cache\"\ncache_dir = \"{}\"\ncache_max_age = 3600\nkeys_dir = \"{keys}\"\nagent_socket = \"{agent}\"\n",
        store.display(),
        keys = s.env.keys().display(),
        agent = s.env.agent_socket().display()
    );
    fs::write(s.env.policy(), text).unwrap();
    // No agent yet: that is the finding.
    let (_, findings) = s.findings();
    assert!(
        findings
            .iter()
            .any(|f| f["kind"] == "agent-down" && f["severity"] == "error"),
        "{findings:#?}"
    );
    let _agent = s.env.start_agent();
    let (_, findings) = s.findings();
    let f = findings
        .iter()
        .find(|f| f["kind"] == "offline-cache")
        .expect("offline-cache finding");
    let problem = f["problem"].as_str().unwrap();
    assert!(
        problem.contains("reset") && problem.contains("3600 s"),
        "{problem}"
    );
    assert!(
        findings
            .iter()
            .any(|f| f["kind"] == "db-unreachable" && f["severity"] == "error"),
        "{findings:#?}"
    );
}

/// Everything in the store: name, size, mode, mtime, contents.
fn snapshot(dir: &Path) -> Vec<(String, u64, u32, i64, Vec<u8>)> {
    let mut out: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                m.len(),
                m.mode(),
                m.mtime_nsec() + m.mtime() * 1_000_000_000,
                fs::read(e.path()).unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    out
}

/// `check --user` (JSON): its outcome and steps, and that the store did not change.
fn walk(s: &Setup, user: &str, rhost: Option<&str>) -> (String, String) {
    let before = snapshot(&s.env.store());
    let mut args = vec!["--json", "--user", user, "--service", "sshd"];
    if let Some(rhost) = rhost {
        args.extend(["--rhost", rhost]);
    }
    let (code, stdout, stderr) = s.run(&args);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(
        snapshot(&s.env.store()),
        before,
        "check --user changed the store"
    );
    assert!(!stdout.contains(SECRET), "{stdout}");
    let walk: Value = serde_json::from_str(&stdout).unwrap();
    let steps: Vec<String> = walk["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    (
        walk["outcome"].as_str().unwrap().to_owned(),
        steps.join("\n"),
    )
}

#[test]
fn user_walk_through_enrolled_unenrolled_locked_trusted() {
    let s =
        Setup::new("[policy]\nrequire = \"all\"\n[lockout]\nmax_failures = 1\n[trust]\ndays = 7\n");
    let user = TempUser::new();
    let name = user.name.as_str();

    let (outcome, steps) = walk(&s, name, None);
    assert!(outcome.contains("enroll at login"), "{outcome}");
    assert!(
        steps.contains("pam_unix") && steps.contains("require = \"all\""),
        "{steps}"
    );

    s.env.enroll(name, SECRET);
    let (outcome, steps) = walk(&s, name, Some("192.0.2.7"));
    assert!(outcome.contains("asks for the code"), "{outcome}");
    assert!(steps.contains("not a trusted host"), "{steps}");

    // A good code from 192.0.2.7, trusted: the next login from there skips the code.
    s.env.service_after_password("sshd", "");
    wait_for_fresh_step(5);
    let ok = s.env.pamtester_with(
        "sshd",
        name,
        &["rhost=192.0.2.7"],
        &[&oathtool(SECRET, 0), "y"],
    );
    assert!(ok.success, "{} {}", ok.stdout, ok.stderr);
    let (outcome, _) = walk(&s, name, Some("192.0.2.7"));
    assert!(outcome.contains("trusted host"), "{outcome}");

    // One wrong code locks (max_failures = 1).
    let wrong = s.env.pamtester("sshd", name, "000000");
    assert!(!wrong.success);
    let (outcome, _) = walk(&s, name, None);
    assert!(
        outcome.contains("locked") && outcome.contains("twofold unlock"),
        "{outcome}"
    );
}

#[test]
fn user_walk_through_of_a_user_policy_does_not_require() {
    let s = Setup::new("[policy]\nrequire = \"groups\"\ngroups = [\"root\"]\n");
    let user = TempUser::new();
    let (outcome, steps) = walk(&s, &user.name, None);
    assert!(outcome.contains("other modules decide"), "{outcome}");
    assert!(steps.contains("not required"), "{steps}");
}

/// `--user` reads sshd's settings for that user (`sshd -T -C`), `Match` blocks applied: a
/// block that drops the key for one user makes their walk-through say no key comes first.
#[test]
fn user_walk_through_applies_the_users_sshd_match_block() {
    let s = Setup::new(REQUIRE_ALL);
    let (keyed, unkeyed) = (TempUser::new(), TempUser::new());
    s.sshd_config(&format!(
        "UsePAM yes\nKbdInteractiveAuthentication yes\nPasswordAuthentication no\n\
         AuthenticationMethods publickey,keyboard-interactive\n\
         Match User {}\n    AuthenticationMethods keyboard-interactive\n",
        unkeyed.name
    ));
    let key_first = "sshd checks the ssh key first";
    let (_, steps) = walk(&s, &keyed.name, Some("192.0.2.7"));
    assert!(steps.contains(key_first), "{steps}");
    let (_, steps) = walk(&s, &unkeyed.name, Some("192.0.2.7"));
    assert!(!steps.contains(key_first), "{steps}");
}
