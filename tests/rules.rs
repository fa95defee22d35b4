//! `[[rule]]` through the real things (root tier): a real sshd with two client keys, a
//! second loopback address and a deny rule; and real PAM (pam_wrapper + pamtester) with
//! PAM_RHOST set by pamtester and SSH_AUTH_INFO_0 put into the PAM environment by a tiny test
//! module (tests/helpers/pam_auth_info.c, compiled here), as sshd puts it there.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::sshd::{Sshd, TempUser};
use common::{
    Env, PamResult, SECRET, module, oathtool, require_tool, terminal, wait_for_fresh_step,
};

/// A fresh ed25519 key pair in `dir`: (private key path, `.pub` text, SHA256 fingerprint as
/// `ssh-keygen -lf` prints it).
fn keypair(dir: &Path, name: &str) -> (PathBuf, String, String) {
    require_tool("ssh-keygen", "openssh-client");
    let key = dir.join(name);
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(made.success());
    let public = fs::read_to_string(key.with_extension("pub")).unwrap();
    let listed = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(key.with_extension("pub"))
        .output()
        .unwrap();
    let fingerprint = String::from_utf8(listed.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");
    (key, public, fingerprint)
}

/// The SSH_AUTH_INFO_0 line sshd writes for a login with this `.pub` text.
fn info_line(public: &str) -> String {
    let mut words = public.split_whitespace();
    format!(
        "publickey {} {}\n",
        words.next().unwrap(),
        words.next().unwrap()
    )
}

fn keys_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("twofold-rules-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

// ---------------------------------------------------------------- real PAM

/// An env whose services `sshd` and `cockpit` run the auth-info module, then twofold with
/// `nullok` (a skip then passes, as for a user not required).
fn pam_env(policy: &str) -> Env {
    let env = Env::new(policy);
    require_tool("gcc", "gcc");
    let so = env.dir.path().join("pam_auth_info.so");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers/pam_auth_info.c");
    let built = Command::new("gcc")
        .args([
            "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror", "-o",
        ])
        .arg(&so)
        .arg(&source)
        .arg("-lpam")
        .output()
        .expect("run gcc");
    assert!(
        built.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    for service in ["sshd", "cockpit"] {
        fs::write(
            env.services().join(service),
            format!(
                "auth optional {}\nauth required {} config={} nullok\n",
                so.display(),
                module(),
                env.policy().display()
            ),
        )
        .unwrap();
    }
    env.enroll("root", SECRET);
    env
}

/// How one login went.
#[derive(Debug, PartialEq, Eq)]
enum Went {
    /// No code asked, passed; the log names the rule.
    Skipped(String),
    /// Refused without a code; the log names the rule.
    Denied(String),
    /// A code was asked (the wrong one given, so refused).
    AskedCode,
    Other(String),
}

fn login(env: &Env, service: &str, rhost: Option<&str>, info: Option<&str>) -> Went {
    let rhost_item = rhost.map(|h| format!("rhost={h}"));
    let info_var = info.map(|i| format!("TWOFOLD_TEST_SSH_AUTH_INFO_0={i}"));
    let mut argv = vec!["env"];
    argv.extend(info_var.as_deref());
    argv.extend(["pamtester", "-v"]);
    if let Some(item) = &rhost_item {
        argv.extend(["-I", item]);
    }
    argv.extend([service, "root", "authenticate"]);
    let (result, logs): (PamResult, Vec<String>) = env.logged(&argv, "000000");
    let text = logs.join("\n");
    let rule = text
        .split("rule=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
        .to_owned();
    let asked = result.stderr.contains("Verification code");
    match (result.success, asked) {
        (true, false) if text.contains("no code asked: rule") => Went::Skipped(rule),
        (false, false) if text.contains("denied by rule") => Went::Denied(rule),
        (false, true) => Went::AskedCode,
        _ => Went::Other(format!("{}\n{}\n{text}", result.stdout, result.stderr)),
    }
}

const NETWORK: &str = r#"
[policy]
require = "all"
[[rule]]
name = "office"
service = ["sshd"]
from = ["10.20.0.0/16", "2001:db8::/32"]
action = "skip"
"#;

#[test]
fn from_matches_ipv4_ipv6_and_v4_mapped_peers() {
    let env = pam_env(NETWORK);
    let skipped = Went::Skipped("office".into());
    assert_eq!(login(&env, "sshd", Some("10.20.7.8"), None), skipped);
    assert_eq!(login(&env, "sshd", Some("2001:db8:1::5"), None), skipped);
    assert_eq!(login(&env, "sshd", Some("::ffff:10.20.7.8"), None), skipped);
    assert_eq!(
        login(&env, "sshd", Some("10.21.0.1"), None),
        Went::AskedCode
    );
    assert_eq!(
        login(&env, "sshd", Some("2001:db9::1"), None),
        Went::AskedCode
    );
    assert_eq!(
        login(&env, "sshd", Some("office.example"), None),
        Went::AskedCode
    );
    assert_eq!(login(&env, "sshd", None, None), Went::AskedCode);
}

#[test]
fn a_spoofed_rhost_on_a_service_outside_the_trusted_list_counts_for_nothing() {
    let env = pam_env(NETWORK);
    // cockpit's "remote host" may come from a header: the office rule does not apply.
    assert_eq!(
        login(&env, "cockpit", Some("10.20.7.8"), None),
        Went::AskedCode
    );
    // A rule that would trust it is refused when the policy loads: the module fails closed.
    env.write_policy(
        "[policy]\nrequire = \"all\"\n[[rule]]\nname = \"web\"\nservice = [\"cockpit\"]\nfrom = [\"10.20.0.0/16\"]\naction = \"skip\"\n",
    );
    let went = login(&env, "cockpit", Some("10.20.7.8"), None);
    assert!(
        matches!(&went, Went::Other(text) if text.contains("\"cockpit\"")),
        "{went:?}"
    );
}

#[test]
fn user_and_group_matchers_and_rule_order() {
    let env = pam_env(
        "[[rule]]\nname = \"no-root\"\nuser = [\"root\"]\naction = \"deny\"\n\
         [[rule]]\nname = \"root-group\"\ngroup = [\"root\"]\naction = \"skip\"\n",
    );
    assert_eq!(
        login(&env, "sshd", None, None),
        Went::Denied("no-root".into())
    );
    env.write_policy(
        "[[rule]]\nname = \"root-group\"\ngroup = [\"root\"]\naction = \"skip\"\n\
         [[rule]]\nname = \"no-root\"\nuser = [\"root\"]\naction = \"deny\"\n",
    );
    assert_eq!(
        login(&env, "sshd", None, None),
        Went::Skipped("root-group".into())
    );
    env.write_policy("[[rule]]\nname = \"nobody\"\nuser = [\"nobody\"]\naction = \"deny\"\n");
    assert_eq!(
        login(&env, "sshd", None, None),
        Went::AskedCode,
        "no match: enrolled, asked"
    );
}

#[test]
fn a_require_rule_makes_a_code_required_for_a_user_policy_does_not_require() {
    let env = pam_env("");
    fs::remove_file(env.record("root")).unwrap();
    env.write_policy(
        "[policy]\nrequire = \"none\"\nenroll_at_login = false\n\
         [[rule]]\nname = \"root-must\"\nuser = [\"root\"]\naction = \"require\"\n",
    );
    let (result, logs) = env.logged(&["pamtester", "-v", "sshd", "root", "authenticate"], "");
    let text = logs.join("\n");
    assert!(!result.success, "{}", result.stderr);
    assert!(
        text.contains("not enrolled") && text.contains("rule=\"root-must\""),
        "{text}"
    );
}

#[test]
fn ssh_key_type_and_certificate_principal_from_the_auth_info() {
    let keys = keys_dir();
    let (_, exempt, exempt_fp) = keypair(keys.path(), "exempt");
    let (_, other, _) = keypair(keys.path(), "other");
    let (ca, _, _) = keypair(keys.path(), "ca");
    let (signed, _, _) = keypair(keys.path(), "signed");
    let signing = Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(&ca)
        .args(["-I", "deploy-bot", "-n", "deploy,ops"])
        .arg(signed.with_extension("pub"))
        .status()
        .unwrap();
    assert!(signing.success());
    let cert = fs::read_to_string(keys.path().join("signed-cert.pub")).unwrap();
    let env = pam_env(&format!(
        "[policy]\nrequire = \"all\"\n\
         [[rule]]\nname = \"automation\"\nservice = [\"sshd\"]\nssh_key = [\"{exempt_fp}\"]\naction = \"skip\"\n\
         [[rule]]\nname = \"deployers\"\nservice = [\"sshd\"]\nssh_cert_principal = [\"deploy\"]\naction = \"skip\"\n\
         [[rule]]\nname = \"no-fido-no-entry\"\nservice = [\"sshd\"]\nssh_key_type = [\"ssh-rsa\"]\naction = \"deny\"\n"
    ));
    let exempt_info = info_line(&exempt);
    assert_eq!(
        login(&env, "sshd", None, Some(&exempt_info)),
        Went::Skipped("automation".into())
    );
    assert_eq!(
        login(&env, "sshd", None, Some(&info_line(&other))),
        Went::AskedCode
    );
    assert_eq!(
        login(&env, "sshd", None, Some(&info_line(&cert))),
        Went::Skipped("deployers".into())
    );
    // Two methods: a password and then the key.
    let both = format!("password\n{exempt_info}");
    assert_eq!(
        login(&env, "sshd", None, Some(&both)),
        Went::Skipped("automation".into())
    );
    // The same auth info on a service that is not sshd's counts for nothing.
    assert_eq!(
        login(&env, "cockpit", None, Some(&exempt_info)),
        Went::AskedCode
    );
    // ssh_key_type: an RSA key is turned away.
    let (_, rsa, _) = {
        let key = keys.path().join("rsa");
        assert!(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"])
                .arg(&key)
                .status()
                .unwrap()
                .success()
        );
        (
            key.clone(),
            fs::read_to_string(key.with_extension("pub")).unwrap(),
            (),
        )
    };
    assert_eq!(
        login(&env, "sshd", None, Some(&info_line(&rsa))),
        Went::Denied("no-fido-no-entry".into())
    );
}

#[test]
fn malformed_auth_info_never_skips() {
    let keys = keys_dir();
    let (_, exempt, exempt_fp) = keypair(keys.path(), "exempt");
    let env = pam_env(&format!(
        "[policy]\nrequire = \"all\"\n[lockout]\nmax_failures = 0\n[[rule]]\nname = \"automation\"\nservice = [\"sshd\"]\nssh_key = [\"{exempt_fp}\"]\naction = \"skip\"\n\
         [[rule]]\nname = \"office\"\nservice = [\"sshd\"]\nfrom = [\"10.20.0.0/16\"]\naction = \"skip\"\n"
    ));
    let good = info_line(&exempt);
    let (kind, b64) = good
        .trim_end()
        .split_once(' ')
        .unwrap()
        .1
        .split_once(' ')
        .unwrap();
    for bad in [
        format!("{good}publickey {kind}\n"),
        format!("publickey {kind} {}\n", &b64[..b64.len() - 8]),
        format!("publickey ssh-rsa {b64}\n"),
        format!("publickey {kind} {b64} trailing\n"),
        format!("pass\u{1}word\n{good}"),
    ] {
        assert_eq!(
            login(&env, "sshd", None, Some(&bad)),
            Went::AskedCode,
            "{bad:?}"
        );
        // Not even the office network skips while the auth info is malformed.
        assert_eq!(
            login(&env, "sshd", Some("10.20.0.9"), Some(&bad)),
            Went::AskedCode,
            "{bad:?}"
        );
    }
    assert_eq!(
        login(&env, "sshd", None, Some("")),
        Went::AskedCode,
        "empty: nothing proven"
    );
}

// ---------------------------------------------------------------- real sshd

/// PAM service name of a running test sshd (the name of its program's symlink).
fn service_of(server: &Sshd) -> String {
    fs::read_dir(server.dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .find(|n| n.starts_with("twofold-sshd-"))
        .expect("the sshd symlink")
}

/// A login that must not be asked for a code: a prompt would get a wrong one.
const NO_CODE: (&str, &str) = ("Verification code: ", "000000");

fn dialog(command: &[String], steps: &[(&str, &str)]) -> (i64, String) {
    let mut args = Vec::new();
    for (expect, send) in steps {
        args.extend(["--step", expect, send]);
    }
    let report = terminal(&args, command);
    (
        report["status"].as_i64().unwrap_or(-1),
        report["after"].as_str().unwrap_or_default().to_owned(),
    )
}

#[test]
fn sshd_exempt_key_skips_other_key_asked_from_and_deny_decide() {
    let env = Env::new("");
    let keys = keys_dir();
    let (exempt, exempt_pub, exempt_fp) = keypair(keys.path(), "exempt");
    let (other, other_pub, _) = keypair(keys.path(), "other");
    let user = TempUser::new();
    env.enroll(&user.name, SECRET);
    fs::write(
        keys.path().join(&user.name),
        format!("{exempt_pub}{other_pub}"),
    )
    .unwrap();
    let config = format!(
        "ExposeAuthInfo yes\nPubkeyAuthentication yes\nAuthenticationMethods publickey,keyboard-interactive\nAuthorizedKeysFile {}/%u",
        keys.path().display()
    );
    let line = format!(
        "auth required {} config={} nullok",
        module(),
        env.policy().display()
    );
    let server = Sshd::start(&line, &config);
    let service = service_of(&server);
    env.write_policy(&format!(
        "[policy]\nrequire = \"all\"\n[trust]\nservices = [\"{service}\"]\n\
         [[rule]]\nname = \"from-dot-two\"\nservice = [\"{service}\"]\nfrom = [\"127.0.0.2\"]\naction = \"deny\"\n\
         [[rule]]\nname = \"automation\"\nservice = [\"{service}\"]\nssh_key = [\"{exempt_fp}\"]\naction = \"skip\"\n"
    ));
    let ssh = |key: &Path, bind: &str| {
        let key = key.display().to_string();
        server.ssh_args(
            &user.name,
            &[
                "-i",
                &key,
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "NumberOfPasswordPrompts=1",
                "-b",
                bind,
            ],
            "echo rules-ok",
        )
    };
    // The exempt key: in without a code.
    let (status, out) = dialog(&ssh(&exempt, "127.0.0.1"), &[NO_CODE]);
    assert_eq!(status, 0, "{out}\n{}", server.log());
    assert!(
        out.contains("rules-ok") && !out.contains("Verification code"),
        "{out}"
    );
    // The other key: asked for a code, and in with the right one.
    wait_for_fresh_step(10);
    let code = oathtool(SECRET, 0);
    let (status, out) = dialog(&ssh(&other, "127.0.0.1"), &[("Verification code: ", &code)]);
    assert_eq!(status, 0, "{out}\n{}", server.log());
    assert!(out.contains("rules-ok"), "{out}");
    // From 127.0.0.2 the deny rule comes first: not even the exempt key gets in.
    let (status, out) = dialog(&ssh(&exempt, "127.0.0.2"), &[NO_CODE]);
    assert_ne!(status, 0, "{out}");
    assert!(!out.contains("rules-ok"), "{out}");
    // Rule by `from` the other way round: 127.0.0.1 denied, 127.0.0.2 (exempt key) in.
    env.write_policy(&format!(
        "[policy]\nrequire = \"all\"\n[trust]\nservices = [\"{service}\"]\n\
         [[rule]]\nname = \"from-dot-one\"\nservice = [\"{service}\"]\nfrom = [\"127.0.0.1/32\"]\naction = \"deny\"\n\
         [[rule]]\nname = \"automation\"\nservice = [\"{service}\"]\nssh_key = [\"{exempt_fp}\"]\naction = \"skip\"\n"
    ));
    let (status, out) = dialog(&ssh(&exempt, "127.0.0.1"), &[NO_CODE]);
    assert_ne!(status, 0, "{out}");
    let (status, out) = dialog(&ssh(&exempt, "127.0.0.2"), &[NO_CODE]);
    assert_eq!(status, 0, "{out}\n{}", server.log());
    assert!(out.contains("rules-ok"), "{out}");
}

#[test]
fn check_reviews_rules_and_user_walk_names_the_rule() {
    let keys = keys_dir();
    let (_, _, fp) = keypair(keys.path(), "k");
    let env = Env::new(&format!(
        "[[rule]]\nname = \"wide\"\nservice = [\"sshd\"]\nfrom = [\"10.0.0.0/8\"]\naction = \"require\"\n\
         [[rule]]\nname = \"narrow\"\nservice = [\"sshd\"]\nfrom = [\"10.20.0.0/16\"]\naction = \"skip\"\n\
         [[rule]]\nname = \"everyone\"\nservice = [\"sshd\"]\naction = \"skip\"\n\
         [[rule]]\nname = \"ghost\"\nuser = [\"no-such-user-twofold\"]\naction = \"deny\"\n\
         [[rule]]\nname = \"key\"\nservice = [\"sshd\"]\nssh_key = [\"{fp}\"]\naction = \"deny\"\n"
    ));
    env.service("sshd", "", &[]);
    let out = env.run(&[
        "check",
        "--pam-dir",
        &env.services().display().to_string(),
        "--json",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    for kind in [
        "rule-shadowed",
        "rule-lets-everyone-in",
        "rule-never-matches",
    ] {
        assert!(text.contains(kind), "{kind} missing: {text}");
    }
    let pam_dir = env.services().display().to_string();
    let walk = |extra: &[&str]| {
        let mut args = vec![
            "check",
            "--pam-dir",
            &pam_dir,
            "--user",
            "root",
            "--service",
            "sshd",
        ];
        args.extend(extra);
        String::from_utf8_lossy(&env.run(&args).stdout).into_owned()
    };
    assert!(walk(&["--rhost", "10.20.1.1"]).contains("rule \"wide\" matches first"));
    assert!(walk(&["--rhost", "192.0.2.1"]).contains("no code asked: rule \"everyone\""));
    let pub_file = keys.path().join("k.pub").display().to_string();
    let out = walk(&["--ssh-key", &pub_file]);
    assert!(
        out.contains(&fp) && out.contains("denied by rule") || out.contains("rule \"everyone\""),
        "{out}"
    );
}
