//! The rule engine without PAM or NSS: parsing, checks, first match, every matcher.
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::review::{Known, review};
use super::*;
use crate::policy::Policy;

fn policy(text: &str) -> Result<Policy, String> {
    Policy::parse(text, Path::new("/t.toml")).map_err(|e| e.to_string())
}

fn rules(text: &str) -> Vec<Rule> {
    policy(text).unwrap().rule
}

fn ed25519_line(pk: u8) -> (String, String) {
    let mut blob = Vec::new();
    for part in [&b"ssh-ed25519"[..], &[pk; 32]] {
        blob.extend_from_slice(&u32::try_from(part.len()).unwrap().to_be_bytes());
        blob.extend_from_slice(part);
    }
    (
        format!("publickey ssh-ed25519 {}\n", STANDARD.encode(&blob)),
        ssh::fingerprint(&blob),
    )
}

struct Login<'a> {
    service: &'a str,
    user: &'a str,
    rhost: Option<&'a str>,
    info: AuthInfo,
    groups: &'a [&'a str],
}

impl Default for Login<'_> {
    fn default() -> Self {
        Login {
            service: "sshd",
            user: "alice",
            rhost: None,
            info: AuthInfo::Missing,
            groups: &[],
        }
    }
}

/// The deciding rule's name and action, with `[trust] services = ["sshd"]`.
fn decided(rules: &[Rule], login: &Login<'_>) -> Option<(String, Action)> {
    let facts = Facts {
        service: login.service,
        user: login.user,
        rhost: login.rhost,
        auth_info: &login.info,
        network_service: login.service == "sshd",
    };
    let mut in_group =
        |gs: &[String]| Ok::<_, ()>(gs.iter().any(|g| login.groups.contains(&g.as_str())));
    decide(rules, &facts, &mut in_group)
        .unwrap()
        .map(|d| (d.rule_name.to_owned(), d.action))
}

const RULES: &str = r#"
[[rule]]
name = "deny-contractors"
group = ["contractors"]
action = "deny"
[[rule]]
name = "office"
service = ["sshd"]
from = ["10.20.0.0/16", "2001:db8::/32"]
action = "skip"
[[rule]]
name = "robots"
user = ["backup"]
action = "require"
"#;

#[test]
fn first_match_wins_and_no_match_falls_back() {
    let r = rules(RULES);
    let from = |rhost| Login {
        rhost: Some(rhost),
        ..Login::default()
    };
    assert_eq!(
        decided(&r, &from("10.20.3.4")),
        Some(("office".into(), Action::Skip))
    );
    assert_eq!(decided(&r, &from("::ffff:10.20.3.4")).unwrap().0, "office");
    assert_eq!(decided(&r, &from("2001:db8::7")).unwrap().0, "office");
    assert_eq!(decided(&r, &from("10.21.0.1")), None);
    let contractor = Login {
        rhost: Some("10.20.3.4"),
        groups: &["contractors"],
        ..Login::default()
    };
    assert_eq!(
        decided(&r, &contractor),
        Some(("deny-contractors".into(), Action::Deny))
    );
    let backup = Login {
        user: "backup",
        ..Login::default()
    };
    assert_eq!(
        decided(&r, &backup),
        Some(("robots".into(), Action::Require))
    );
}

#[test]
fn from_counts_only_on_network_services() {
    let r = rules(RULES);
    let spoofed = Login {
        service: "cockpit",
        rhost: Some("10.20.3.4"),
        ..Login::default()
    };
    assert_eq!(decided(&r, &spoofed), None);
    let name = Login {
        rhost: Some("office.example"),
        ..Login::default()
    };
    assert_eq!(decided(&r, &name), None);
}

#[test]
fn ssh_matchers_and_malformed_auth_info() {
    let (line_a, fp_a) = ed25519_line(1);
    let (line_b, _) = ed25519_line(2);
    let text = format!(
        "[[rule]]\nname = \"automation\"\nservice = [\"sshd\"]\nssh_key = [\"{fp_a}\"]\naction = \"skip\"\n\
         [[rule]]\nname = \"fido\"\nservice = [\"sshd\"]\nssh_key_type = [\"sk-ssh-ed25519@openssh.com\"]\naction = \"skip\"\n\
         [[rule]]\nname = \"no-edkeys\"\nservice = [\"sshd\"]\nssh_key_type = [\"ssh-ed25519\"]\naction = \"deny\"\n"
    );
    let r = rules(&text);
    let with = |info: &str| Login {
        info: ssh::parse(Some(info)),
        ..Login::default()
    };
    assert_eq!(decided(&r, &with(&line_a)).unwrap().0, "automation");
    assert_eq!(decided(&r, &with(&line_b)).unwrap().0, "no-edkeys");
    assert_eq!(
        decided(&r, &Login::default()),
        None,
        "no auth info: no ssh rule"
    );
    // Malformed: the skip rules never match; the deny rule sees no key either.
    let broken = format!("{line_a}publickey ssh-ed25519 AAAA\n");
    assert_eq!(decided(&r, &with(&broken)), None);
    let on_sudo = Login {
        service: "sudo",
        info: ssh::parse(Some(&line_a)),
        ..Login::default()
    };
    assert_eq!(
        decided(&r, &on_sudo),
        None,
        "auth info counts only on network services"
    );
}

#[test]
fn malformed_auth_info_stops_any_skip_rule() {
    let r = rules("[[rule]]\nname = \"all-sshd\"\nservice = [\"sshd\"]\naction = \"skip\"\n");
    let bad = Login {
        info: ssh::parse(Some("publickey nonsense\n")),
        ..Login::default()
    };
    assert_eq!(decided(&r, &bad), None);
    assert_eq!(decided(&r, &Login::default()).unwrap().0, "all-sshd");
}

#[test]
fn certificate_principals() {
    let cert = ssh::tests::user_cert(&[4; 32], "ci", &["deploy"], 1);
    let line = format!(
        "publickey ssh-ed25519-cert-v01@openssh.com {}\n",
        STANDARD.encode(&cert)
    );
    let r = rules(
        "[[rule]]\nname = \"ci\"\nservice = [\"sshd\"]\nssh_cert_principal = [\"deploy\"]\naction = \"skip\"\n",
    );
    let login = Login {
        info: ssh::parse(Some(&line)),
        ..Login::default()
    };
    assert_eq!(decided(&r, &login).unwrap().0, "ci");
    let (plain, _) = ed25519_line(4);
    assert_eq!(
        decided(
            &r,
            &Login {
                info: ssh::parse(Some(&plain)),
                ..Login::default()
            }
        ),
        None
    );
}

#[test]
fn group_errors_stop_the_walk() {
    let r = rules(RULES);
    let facts = Facts {
        service: "sshd",
        user: "x",
        rhost: None,
        auth_info: &AuthInfo::Missing,
        network_service: true,
    };
    let mut failing = |_: &[String]| Err("directory down");
    assert_eq!(decide(&r, &facts, &mut failing), Err("directory down"));
}

#[test]
fn policy_errors() {
    let cases = [
        ("[[rule]]\nname = \"x\"\naction = \"skip\"\n", "no matcher"),
        (
            "[[rule]]\nname = \"x\"\nfrom = [\"10.0.0.0/8\"]\naction = \"skip\"\n",
            "without a service list",
        ),
        (
            "[[rule]]\nname = \"x\"\nservice = [\"cockpit\"]\nfrom = [\"10.0.0.0/8\"]\naction = \"skip\"\n",
            "\"cockpit\"",
        ),
        (
            "[[rule]]\nname = \"x\"\nservice = [\"sudo\"]\nssh_key_type = [\"ssh-ed25519\"]\naction = \"skip\"\n",
            "\"sudo\"",
        ),
        (
            "[[rule]]\nname = \"x\"\nservice = [\"sshd\"]\nfrom = [\"10.0.1.0/8\"]\naction = \"skip\"\n",
            "bits set",
        ),
        (
            "[[rule]]\nname = \"x\"\nuser = [\"a\"]\naction = \"allow\"\n",
            "allow",
        ),
        (
            "[[rule]]\nname = \"x\"\nuser = [\"a\"]\naction = \"skip\"\nsevice = [\"sshd\"]\n",
            "sevice",
        ),
        (
            "[[rule]]\nname = \"x\"\nuser = []\naction = \"skip\"\n",
            "user = []",
        ),
        ("[[rule]]\nuser = [\"a\"]\naction = \"skip\"\n", "name"),
        ("[[rule]]\nname = \"x\"\nuser = [\"a\"]\n", "action"),
        (
            "[[rule]]\nname = \"x\"\nservice = [\"sshd\"]\nssh_key = [\"MD5:aa\"]\naction = \"skip\"\n",
            "SHA256",
        ),
        (
            "[[rule]]\nname = \"x\"\nuser = [\"a\"]\naction = \"skip\"\n[[rule]]\nname = \"x\"\nuser = [\"b\"]\naction = \"deny\"\n",
            "twice",
        ),
    ];
    for (text, needle) in cases {
        let err = policy(text).unwrap_err();
        assert!(err.contains(needle), "{text:?} gave {err}");
    }
    // [trust] services is the list: a service added there may use from.
    let ok = "[trust]\nservices = [\"sshd\", \"vpn\"]\n[[rule]]\nname = \"x\"\nservice = [\"vpn\"]\nfrom = [\"10.0.0.0/8\"]\naction = \"skip\"\n";
    assert_eq!(policy(ok).unwrap().rule.len(), 1);
}

struct Host;

impl Known for Host {
    fn user_exists(&self, user: &str) -> bool {
        user != "ghost"
    }
    fn group_exists(&self, group: &str) -> bool {
        group != "nogroup-x"
    }
    fn service_uses_twofold(&self, service: &str) -> bool {
        service != "ftp"
    }
}

#[test]
fn review_finds_dead_shadowed_and_open_rules() {
    let r = rules(
        r#"
[[rule]]
name = "wide"
service = ["sshd"]
from = ["10.0.0.0/8"]
action = "require"
[[rule]]
name = "narrow"
service = ["sshd"]
from = ["10.20.0.0/16"]
user = ["alice"]
action = "skip"
[[rule]]
name = "ghost"
user = ["ghost"]
action = "deny"
[[rule]]
name = "ftp"
service = ["ftp"]
action = "deny"
[[rule]]
name = "open"
service = ["sshd"]
from = ["0.0.0.0/0"]
action = "skip"
[[rule]]
name = "plain-certs"
service = ["sshd"]
ssh_key_type = ["ssh-ed25519"]
ssh_cert_principal = ["x"]
action = "deny"
"#,
    );
    let found: Vec<(String, &str)> = review(&r, &Host)
        .into_iter()
        .map(|c| (c.rule, c.kind))
        .collect();
    assert_eq!(
        found,
        [
            ("narrow".to_owned(), "rule-shadowed"),
            ("ghost".to_owned(), "rule-never-matches"),
            ("ftp".to_owned(), "rule-never-matches"),
            ("open".to_owned(), "rule-lets-everyone-in"),
            ("plain-certs".to_owned(), "rule-never-matches"),
        ]
    );
    // A skip rule does not shadow a deny rule: malformed auth info stops the skip rule alone.
    let r = rules(
        "[[rule]]\nname = \"a\"\nuser = [\"x\"]\naction = \"skip\"\n[[rule]]\nname = \"b\"\nuser = [\"x\"]\naction = \"deny\"\n",
    );
    assert!(review(&r, &Host).is_empty());
}
