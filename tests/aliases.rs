//! User-name aliases and an unreachable directory, through the real Linux-PAM library (issue 14,
//! items 1 and 10). The users live only in a directory that matches names loosely (see
//! `common/nss.rs`): `ALICE`, `Alice` and `alice@example.com` are all `alice`, as with SSSD/AD
//! `case_sensitive = false`. Records are keyed on the canonical name, so a login or an admin
//! command under another spelling must be refused, never served from (or create) a record of its
//! own. With `require = "groups"`, a directory that cannot tell group memberships must never let a
//! required user in on the password alone.
//!
//! The first factor is pam_wrapper's pam_matrix (password [`PASSWORD`] for every spelling, as a
//! directory-backed first factor would accept), then twofold.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::nss::{Down, Loose, PASSWORD, first_factor_service};
use common::{Env, PamResult, SECRET, oathtool, wait_for_fresh_step};

const ACCEPTED: &str = "pamtester: successfully authenticated";
const ALICE_ALIASES: [&str; 3] = ["ALICE", "Alice", "alice@example.com"];
const BOB_ALIASES: [&str; 3] = ["BOB", "Bob", "bob@example.com"];
/// Every name the first factor accepts.
const PASSDB: [&str; 9] = [
    "alice",
    "ALICE",
    "Alice",
    "alice@example.com",
    "bob",
    "BOB",
    "Bob",
    "bob@example.com",
    "nobody-here",
];
/// No clock-drift learning: a wrong code is just wrong.
const TOTP: &str = "[totp]\nmax_drift = 0";

/// An env whose programs resolve users through the loose directory, with service `tf`.
fn world(policy: &str) -> (Env, Loose) {
    let mut env = Env::new(&format!("{policy}\n{TOTP}"));
    let loose = Loose::install(&mut env);
    first_factor_service(&env, "tf", "", &PASSDB);
    (env, loose)
}

/// A login as `user`: the password, then `answers` (one per prompt after it).
fn login(env: &Env, user: &str, answers: &[&str]) -> (PamResult, Vec<String>) {
    let mut input = vec![PASSWORD];
    input.extend_from_slice(answers);
    env.pamtester_logged("tf", user, &input.join("\n"))
}

fn transcript(r: &PamResult) -> String {
    format!("stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr)
}

/// The names in the store directory, sorted.
fn store_files(env: &Env) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(env.store())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Whether the login showed an enrollment (QR code, key or otpauth URI).
fn shows_enrollment(r: &PamResult) -> bool {
    let all = format!("{}{}", r.stdout, r.stderr);
    all.contains("otpauth")
        || all.contains("type this key")
        || all.contains("finish setting up")
        || all.chars().any(|c| matches!(c, '▀' | '▄' | '█'))
}

/// A six-digit code that is not `secret`'s within a step of now.
fn wrong_code(secret: &str) -> String {
    let near: Vec<String> = [-30, 0, 30].iter().map(|o| oathtool(secret, *o)).collect();
    (0..20)
        .map(|n| format!("{:06}", n * 111_111 % 1_000_000))
        .find(|c| !near.contains(c))
        .unwrap()
}

/// A syslog line that calls `given` an alias and names the canonical account (beyond `given`).
fn says_alias(lines: &[String], given: &str, canonical: &str) -> bool {
    lines
        .iter()
        .any(|l| l.to_lowercase().contains("alias") && l.replace(given, "").contains(canonical))
}

fn enroll_alice(env: &Env) {
    env.enroll("alice", SECRET);
    let record = env.load("alice").expect("alice enrolled");
    assert_eq!((record.failures, record.last_step), (0, None));
}

/// Asserts that a login under an alias was refused, revealed and created nothing, and said why.
fn assert_alias_refused(
    env: &Env,
    given: &str,
    canonical: &str,
    before: &[String],
    r: &PamResult,
    lines: &[String],
) {
    assert!(
        !r.success && r.verdict() != ACCEPTED,
        "a login as the alias {given:?} of {canonical:?} succeeded: {}",
        transcript(r)
    );
    assert!(
        !shows_enrollment(r),
        "a login as the alias {given:?} was offered its own enrollment: {}",
        transcript(r)
    );
    assert_eq!(
        store_files(env),
        before,
        "a login as the alias {given:?} changed the store"
    );
    assert!(
        says_alias(lines, given, canonical),
        "no syslog line says {given:?} is an alias of {canonical:?}: {lines:#?}"
    );
}

// ---- the harness itself (passes on today's code) ----

/// A C check of what the module and the CLI call: getpwnam_r and getgrouplist.
const LOOKUP_C: &str = r#"
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
int main(int argc, char **argv) {
    struct passwd pw, *res = NULL;
    char buf[4096];
    gid_t groups[64];
    int n = 64;
    int rc = getpwnam_r(argv[1], &pw, buf, sizeof buf, &res);
    if (rc != 0 || res == NULL) { printf("getpwnam_r=%d none\n", rc); return 1; }
    printf("%s %u", res->pw_name, (unsigned)res->pw_uid);
    if (getgrouplist(res->pw_name, res->pw_gid, groups, &n) < 0) { printf(" groups?\n"); return 1; }
    for (int i = 0; i < n; i++) printf(" %u", (unsigned)groups[i]);
    printf("\n");
    return 0;
}
"#;

#[test]
fn loose_directory_is_what_pam_and_the_cli_see() {
    let (env, loose) = world("[policy]\nrequire = \"none\"");
    let stdout = |o: std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();

    // getent (getpwnam) outside the PAM run: every spelling is alice, under her own name.
    for name in ["alice", "ALICE", "Alice", "alice@example.com"] {
        let line = stdout(loose.getent(&env, "passwd", name));
        assert!(line.starts_with("alice:x:5001:5001:"), "{name}: {line:?}");
    }
    assert!(!loose.getent(&env, "passwd", "nobody-here").status.success());
    assert!(stdout(loose.getent(&env, "passwd", "root")).starts_with("root:x:0:0:"));
    assert_eq!(
        stdout(loose.getent(&env, "group", "LDAPOPS")),
        "ldapops:x:6001:bob\n"
    );
    assert_eq!(
        stdout(loose.getent(&env, "group", "staff")),
        "staff:x:50:alice\n"
    );

    // Inside the PAM run's namespace, with pam_wrapper and nss_wrapper both preloaded.
    let argv = env.pam_argv(None, &["getent", "passwd", "ALICE"]);
    let inside = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
    assert_eq!(
        stdout(inside),
        "alice:x:5001:5001:Alice:/home/alice:/bin/sh\n"
    );

    // getpwnam_r and getgrouplist, as the module calls them (through nix).
    let source = env.dir.path().join("lookup.c");
    let binary = env.dir.path().join("lookup");
    fs::write(&source, LOOKUP_C).unwrap();
    let built = Command::new("gcc")
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .output()
        .expect("run gcc");
    assert!(built.status.success(), "{built:?}");
    let lookup = |name: &str| {
        let binary = binary.display().to_string();
        let argv = env.pam_argv(None, &[binary.as_str(), name]);
        let out = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(lookup("ALICE"), "alice 5001 5001 50");
    assert_eq!(lookup("bob@example.com"), "bob 5002 5002 6001");
    loose.down(Down::Members);
    assert_eq!(
        lookup("bob"),
        "bob 5002 5002",
        "members down: the directory's groups are not enumerated"
    );
    assert_eq!(
        stdout(loose.getent(&env, "group", "ldapops")),
        "ldapops:x:6001:bob\n",
        "members down: getgrnam still answers"
    );
    assert_eq!(lookup("alice"), "alice 5001 5001 50", "files still count");
    loose.down(Down::Groups);
    assert!(!loose.getent(&env, "group", "ldapops").status.success());
    assert!(loose.getent(&env, "passwd", "alice").status.success());
    loose.down(Down::All);
    assert!(!loose.getent(&env, "passwd", "alice").status.success());
    assert!(loose.getent(&env, "passwd", "root").status.success());
    loose.up();
    assert!(loose.getent(&env, "group", "ldapops").status.success());

    // The CLI sees the directory: alice exists only there.
    enroll_alice(&env);

    // The module sees it: bob is in ldapops only according to the directory.
    env.write_policy(&format!(
        "[policy]\nrequire = \"groups\"\ngroups = [\"ldapops\"]\nenroll_at_login = false\n{TOTP}"
    ));
    let (bob, _) = login(&env, "bob", &[]);
    assert!(!bob.success, "{}", transcript(&bob));
    assert!(
        bob.stderr
            .contains("required for this account but is not set up"),
        "{}",
        transcript(&bob)
    );
    // pam_matrix is the first factor: a wrong password stops the stack before twofold.
    let out = env.pamtester("tf", "bob", "not-the-password");
    assert!(
        !out.success && !out.stderr.contains("not set up"),
        "{}",
        transcript(&out)
    );
}

// ---- (a) logins under an alias of an enrolled user ----

fn aliases_of_an_enrolled_user_are_refused(policy: &str) {
    let (env, _loose) = world(policy);
    enroll_alice(&env);
    let before = store_files(&env);
    let wrong = wrong_code(SECRET);
    let cases = [
        ("ALICE", "right"),
        ("Alice", "right"),
        ("alice@example.com", "right"),
        ("ALICE", "wrong"),
        ("Alice", "empty"),
    ];
    for (alias, kind) in cases {
        let code = match kind {
            "right" => oathtool(SECRET, 0),
            "wrong" => wrong.clone(),
            _ => String::new(),
        };
        let (r, lines) = login(&env, alias, &[&code, &code, &code]);
        assert_alias_refused(&env, alias, "alice", &before, &r, &lines);
        let record = env.load("alice").unwrap();
        assert_eq!(
            (record.failures, record.last_step, record.locked_until),
            (0, None, None),
            "a login as {alias:?} ({kind} code) touched alice's record"
        );
    }
    // The canonical name still works.
    wait_for_fresh_step(3);
    let (r, _) = login(&env, "alice", &[&oathtool(SECRET, 0)]);
    assert_eq!(r.verdict(), ACCEPTED, "{}", transcript(&r));
}

#[test]
fn aliases_of_an_enrolled_user_are_refused_when_2fa_is_optional() {
    // Today: no record for "ALICE", not required: the password alone logs in.
    aliases_of_an_enrolled_user_are_refused("[policy]\nrequire = \"none\"");
}

#[test]
fn aliases_of_an_enrolled_user_are_refused_when_2fa_is_required() {
    // Today: no record for "ALICE", required: the login offers "ALICE" a second secret.
    aliases_of_an_enrolled_user_are_refused("[policy]\nrequire = \"all\"");
}

// ---- (b) enroll-at-login under an alias ----

#[test]
fn alias_of_an_unenrolled_user_is_never_offered_enrollment() {
    let (env, _loose) = world("[policy]\nrequire = \"all\"\nenroll_at_login = true");
    for alias in BOB_ALIASES {
        let (r, lines) = login(&env, alias, &["123456", "123456", "123456"]);
        assert_alias_refused(&env, alias, "bob", &[], &r, &lines);
    }
    // Sanity: the canonical bob is offered enrollment by the same stack (and, answering
    // wrong codes, ends up with nothing; Enter first, to show the QR code).
    let (r, _) = login(&env, "bob", &["", "123456", "123456", "123456"]);
    assert!(!r.success, "{}", transcript(&r));
    assert!(shows_enrollment(&r), "{}", transcript(&r));
    assert_eq!(store_files(&env), Vec::<String>::new());
}

// ---- (c) lock-out ----

#[test]
fn wrong_codes_under_an_alias_do_not_count_for_the_account() {
    let (env, _loose) = world("[policy]\nrequire = \"none\"\n[lockout]\nmax_failures = 2");
    enroll_alice(&env);
    let before = store_files(&env);
    let wrong = wrong_code(SECRET);
    for _ in 0..3 {
        let (r, lines) = login(&env, "ALICE", &[&wrong]);
        assert_alias_refused(&env, "ALICE", "alice", &before, &r, &lines);
        let record = env.load("alice").unwrap();
        assert_eq!((record.failures, record.locked_until), (0, None));
    }
}

#[test]
fn a_record_under_an_alias_is_never_used() {
    // A record "ALICE.toml" left behind (enrolled under the alias before the fix) has its own
    // secret use and its own lock-out count: a login as ALICE must not reach it.
    let (env, _loose) = world("[policy]\nrequire = \"all\"\n[lockout]\nmax_failures = 2");
    enroll_alice(&env);
    for (from, to) in [
        (env.record("alice"), env.record("ALICE")),
        (env.state("alice"), env.state("ALICE")),
    ] {
        fs::copy(from, &to).unwrap();
        fs::set_permissions(to, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let planted = env.stored("ALICE");

    // Lock alice.
    let wrong = wrong_code(SECRET);
    for _ in 0..2 {
        let (r, _) = login(&env, "alice", &[&wrong]);
        assert!(!r.success, "{}", transcript(&r));
    }
    let locked = env.load("alice").unwrap();
    assert!(locked.locked_until.is_some(), "alice is locked: {locked:?}");
    let alice_bytes = env.stored("alice");
    let before = store_files(&env);

    wait_for_fresh_step(5);
    let (r, lines) = login(&env, "ALICE", &[&oathtool(SECRET, 0)]);
    assert!(
        !r.success && r.verdict() != ACCEPTED,
        "ALICE logged in with the alias' own record while alice is locked: {}",
        transcript(&r)
    );
    let (r2, lines2) = login(&env, "ALICE", &[&wrong]);
    assert!(!r2.success, "{}", transcript(&r2));
    assert_eq!(
        env.stored("ALICE"),
        planted,
        "a login as ALICE used and changed the record ALICE.toml (its own count)"
    );
    assert_eq!(
        env.stored("alice"),
        alice_bytes,
        "a login as ALICE changed alice's record"
    );
    assert_eq!(store_files(&env), before);
    assert!(says_alias(&lines, "ALICE", "alice"), "{lines:#?}");
    assert!(says_alias(&lines2, "ALICE", "alice"), "{lines2:#?}");
}

// ---- (d) the CLI ----

/// Asserts that `twofold ARGS` (naming `alias`) failed and named the canonical `alice`.
fn assert_cli_refuses(env: &Env, args: &[&str], alias: &str) {
    let out = env.run(args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "twofold {args:?} accepted the alias {alias:?}:\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.replace(alias, "").contains("alice"),
        "twofold {args:?} does not name the canonical account alice:\n{stderr}"
    );
}

#[test]
fn cli_enroll_and_status_refuse_aliases() {
    let (env, _loose) = world("[policy]\nrequire = \"none\"");
    for alias in ALICE_ALIASES {
        assert_cli_refuses(
            &env,
            &[
                "enroll",
                alias,
                "--secret",
                SECRET,
                "--no-verify",
                "--qr",
                "none",
            ],
            alias,
        );
        assert_eq!(
            store_files(&env),
            Vec::<String>::new(),
            "twofold enroll {alias} wrote to the store"
        );
    }
    enroll_alice(&env);
    let alice_bytes = env.stored("alice");
    let before = store_files(&env);
    for alias in ALICE_ALIASES {
        assert_cli_refuses(&env, &["status", alias], alias);
    }
    assert!(env.run(&["status", "alice"]).status.success());
    assert_eq!(store_files(&env), before);
    assert_eq!(env.stored("alice"), alice_bytes);
}

#[test]
fn cli_admin_commands_refuse_aliases() {
    let (env, _loose) = world("[policy]\nrequire = \"none\"");
    enroll_alice(&env);
    let alice_bytes = env.stored("alice");
    let before = store_files(&env);
    for args in [
        &["disable", "ALICE"][..],
        &["unlock", "Alice"],
        &["reset", "alice@example.com", "--yes"],
    ] {
        assert_cli_refuses(&env, args, args[1]);
        assert_eq!(store_files(&env), before, "twofold {args:?}");
        assert_eq!(
            env.stored("alice"),
            alice_bytes,
            "twofold {args:?} changed alice's record"
        );
    }
}

// ---- (e) a name the directory does not know ----

fn says_unknown(lines: &[String], user: &str) -> bool {
    lines.iter().any(|l| {
        let lower = l.to_lowercase();
        l.contains(user)
            && [
                "passwd",
                "unknown",
                "not found",
                "look up",
                "lookup",
                "resolve",
            ]
            .iter()
            .any(|w| lower.contains(w))
    })
}

#[test]
fn unknown_user_is_denied_with_a_clear_line() {
    for policy in [
        "[policy]\nrequire = \"none\"",
        "[policy]\nrequire = \"all\"",
    ] {
        let (env, _loose) = world(policy);
        let (r, lines) = login(&env, "nobody-here", &["123456", "123456", "123456"]);
        assert!(
            !r.success && r.verdict() != ACCEPTED,
            "{policy}: the unknown user nobody-here logged in: {}",
            transcript(&r)
        );
        assert!(!shows_enrollment(&r), "{policy}: {}", transcript(&r));
        assert_eq!(store_files(&env), Vec::<String>::new(), "{policy}");
        assert!(
            says_unknown(&lines, "nobody-here"),
            "{policy}: no syslog line says nobody-here is unknown: {lines:#?}"
        );
    }
}

// ---- (f) require = "groups" while the directory is down ----

fn says_lookup_trouble(lines: &[String], user: &str) -> bool {
    lines.iter().any(|l| {
        let lower = l.to_lowercase();
        l.contains(user)
            && [
                "look",
                "group",
                "directory",
                "passwd",
                "unavailable",
                "reach",
            ]
            .iter()
            .any(|w| lower.contains(w))
    })
}

#[test]
fn directory_down_never_lets_a_required_group_member_in_on_the_password() {
    let (env, loose) =
        world("[policy]\nrequire = \"groups\"\ngroups = [\"ldapops\"]\nenroll_at_login = false");
    // Sanity: with the directory up, bob (ldapops, from the directory only) is required and
    // has no record.
    let (r, _) = login(&env, "bob", &[]);
    assert!(!r.success, "{}", transcript(&r));
    assert!(r.stderr.contains("not set up"), "{}", transcript(&r));

    for how in Down::EVERY {
        loose.down(how);
        let (r, lines) = login(&env, "bob", &["123456"]);
        assert!(
            !r.success && r.verdict() != ACCEPTED,
            "directory down ({how:?}): bob, required through ldapops, logged in on the password alone: {}",
            transcript(&r)
        );
        assert!(!shows_enrollment(&r), "{how:?}: {}", transcript(&r));
        assert_eq!(store_files(&env), Vec::<String>::new(), "{how:?}");
        // With memberships down, getgrnam still lists bob in ldapops: a module that reads
        // it may rightly deny bob as "required but not enrolled" rather than a lookup error.
        let explained = match how {
            Down::Members => lines.iter().any(|l| l.contains("bob")),
            _ => says_lookup_trouble(&lines, "bob"),
        };
        assert!(
            explained,
            "directory down ({how:?}): no syslog line about the lookup: {lines:#?}"
        );
    }
    // With enroll-at-login on, a directory that is down offers no enrollment either.
    env.write_policy(&format!(
        "[policy]\nrequire = \"groups\"\ngroups = [\"ldapops\"]\nenroll_at_login = true\n{TOTP}"
    ));
    for how in Down::EVERY {
        loose.down(how);
        let (r, _) = login(&env, "bob", &["123456", "123456", "123456"]);
        assert!(!r.success, "{how:?}, enroll_at_login: {}", transcript(&r));
    }
}

#[test]
fn local_group_members_stay_required_while_the_directory_is_down() {
    // staff is served by the local files; alice (a directory user) is in it.
    let (env, loose) =
        world("[policy]\nrequire = \"groups\"\ngroups = [\"staff\"]\nenroll_at_login = false");
    let (r, _) = login(&env, "alice", &[]);
    assert!(!r.success, "{}", transcript(&r));
    assert!(r.stderr.contains("not set up"), "{}", transcript(&r));
    // Sanity: bob is in no required group: the password is enough.
    let (r, _) = login(&env, "bob", &[]);
    assert_eq!(r.verdict(), ACCEPTED, "{}", transcript(&r));

    for how in Down::EVERY {
        loose.down(how);
        let (r, _) = login(&env, "alice", &["123456"]);
        assert!(
            !r.success && r.verdict() != ACCEPTED,
            "directory down ({how:?}): alice, required through the local group staff, logged in: {}",
            transcript(&r)
        );
        assert_eq!(store_files(&env), Vec::<String>::new(), "{how:?}");
    }
}

// ---- a failing passwd lookup ----

#[test]
fn failing_user_lookup_denies_even_an_enrolled_user() {
    let (env, loose) = world("[policy]\nrequire = \"none\"");
    enroll_alice(&env);
    let alice_bytes = env.stored("alice");
    loose.down(Down::All);
    wait_for_fresh_step(5);
    let (r, lines) = login(&env, "alice", &[&oathtool(SECRET, 0)]);
    assert!(
        !r.success && r.verdict() != ACCEPTED,
        "alice logged in while her name could not be resolved: {}",
        transcript(&r)
    );
    assert!(
        says_lookup_trouble(&lines, "alice"),
        "no syslog line about the failed lookup: {lines:#?}"
    );
    assert_eq!(env.stored("alice"), alice_bytes);
    loose.up();
    let (r, _) = login(&env, "alice", &[&oathtool(SECRET, 30)]);
    assert_eq!(r.verdict(), ACCEPTED, "{}", transcript(&r));
}
