//! One account listing through NSS (issue 15): `twofold list` and `import google-authenticator
//! --all` enumerate the same accounts, the way logins resolve them, so users that exist only
//! in a directory service (LDAP, SSSD) are listed as well as local ones. The directory is the
//! NSS module of `common/nss.rs` behind cwrap's nss_wrapper: nss_wrapper's own passwd file
//! stands for the local files (root, nobody, and here carol), the module for LDAP (alice,
//! bob). Nothing of the machine's /etc/passwd is seen.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::Path;

use common::nss::Loose;
use common::{Env, SECRET};

/// Accounts `twofold list --json` shows: (name, enrolled).
fn listed(env: &Env) -> BTreeSet<(String, bool)> {
    let out = env.run(&["list", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_str(&text).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let name = row["user"].as_str().unwrap().to_owned();
            (
                name,
                !row["state"].as_str().unwrap().contains("not enrolled"),
            )
        })
        .collect()
}

/// A google-authenticator file (TOTP) in a new home owned by `uid`.
fn google_file(home: &Path, uid: u32) {
    fs::create_dir_all(home).unwrap();
    let file = home.join(".google_authenticator");
    fs::write(&file, format!("{SECRET}\n\" TOTP_AUTH\n")).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o400)).unwrap();
    chown(&file, Some(uid), Some(uid)).unwrap();
    chown(home, Some(uid), Some(uid)).unwrap();
}

#[test]
fn directory_users_are_listed_and_imported_like_local_ones() {
    let mut env = Env::new("[policy]\nrequire = \"all\"");
    let _directory = Loose::install(&mut env);
    let nss = env.dir.path().join("nss");
    let homes = env.dir.path().join("homes");
    // carol is local (nss_wrapper's files); alice and bob live in the directory alone.
    let mut files = fs::read_to_string(nss.join("passwd")).unwrap();
    files.push_str(&format!(
        "carol:x:5003:5003:Carol:{}/carol:/bin/sh\n",
        homes.display()
    ));
    fs::write(nss.join("passwd"), files).unwrap();
    let directory = fs::read_to_string(nss.join("loose.passwd")).unwrap();
    let directory = directory.replace("/home/", &format!("{}/", homes.display()));
    fs::write(nss.join("loose.passwd"), directory).unwrap();

    let names = |set: &BTreeSet<(String, bool)>| -> Vec<String> {
        set.iter().map(|(n, _)| n.clone()).collect()
    };
    let before = listed(&env);
    assert_eq!(
        names(&before),
        ["alice", "bob", "carol", "root"],
        "{before:?}"
    );
    assert!(before.iter().all(|(_, enrolled)| !enrolled), "{before:?}");

    // import --all walks the same accounts: alice (directory) and carol (local) have a file.
    google_file(&homes.join("alice"), 5001);
    google_file(&homes.join("carol"), 5003);
    let out = env.run(&["import", "google-authenticator", "--all"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("alice: imported") && stdout.contains("carol: imported"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("bob") && !stdout.contains("root:"),
        "{stdout}"
    );

    let after = listed(&env);
    let want: BTreeSet<(String, bool)> = [
        ("alice", true),
        ("bob", false),
        ("carol", true),
        ("root", false),
    ]
    .into_iter()
    .map(|(n, e)| (n.to_owned(), e))
    .collect();
    assert_eq!(after, want);
}
