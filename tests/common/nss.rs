//! A directory service that matches user names loosely, for real-PAM tests: cwrap's
//! nss_wrapper serves root and a few system entries from files of the test's own and loads
//! `tests/helpers/nss_loose.c` (compiled here with gcc) as its NSS module. That module answers
//! `ALICE`, `Alice` and `alice@example.com` with `alice`'s entry, as SSSD/AD with
//! `case_sensitive = false` or an LDAP directory with a case-insensitive `uid` do, and can be
//! taken "down" like an unreachable LDAP server.
//!
//! Layout, under the env's temp dir (kept visible inside the PAM run's private /tmp):
//! `nss/libnss_loose.so`, `nss/passwd` + `nss/group` (nss_wrapper's files: root, nobody, the
//! files-only group `staff`), `nss/loose.passwd` + `nss/loose.group` (the "directory": alice,
//! bob, the directory-only group `ldapops`), `nss/down` (exists while the directory is down),
//! `passdb-SERVICE` (pam_matrix's passwords, the first factor).
//!
//! Every program the env runs sees this view: PAM runs preload
//! `libpam_wrapper.so:libnss_wrapper.so`, the CLI `libnss_wrapper.so`, both with the
//! `NSS_WRAPPER_*` and `LOOSE_*` variables (see [`Env::run_env`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{Env, RunEnv, module, pam_wrapper_module, require_tool};

const NSS_WRAPPER: &str = "libnss_wrapper.so";
const LIB_DIRS: [&str; 4] = [
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib",
    "/usr/lib64",
];

/// The password every account (and alias) has for the first factor (pam_matrix).
pub const PASSWORD: &str = "hunter2";

/// nss_wrapper's files: what is "local". PAM, pamtester and the CLI need root to resolve.
const FILES_PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
";
/// `staff` is a local group with a directory user in it.
const FILES_GROUP: &str = "\
root:x:0:
nogroup:x:65534:
staff:x:50:alice
";
/// The directory: only the loose module knows these.
const LOOSE_PASSWD: &str = "\
alice:x:5001:5001:Alice:/home/alice:/bin/sh
bob:x:5002:5002:Bob:/home/bob:/bin/sh
";
const LOOSE_GROUP: &str = "\
alice:x:5001:
bob:x:5002:
ldapops:x:6001:bob
";

/// How the directory is down (the first word of `nss/down`; see nss_loose.c).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Down {
    /// Every group call: NSS_STATUS_UNAVAIL, errno EHOSTUNREACH.
    Groups,
    /// Memberships cannot be enumerated (getgrent, initgroups); getgrnam still answers.
    Members,
    /// Group calls answer "no such group" (a server that returns nothing).
    NotFound,
    /// Passwd calls fail too.
    All,
}

impl Down {
    pub const EVERY: [Down; 4] = [Down::Groups, Down::Members, Down::NotFound, Down::All];

    fn word(self) -> &'static str {
        match self {
            Down::Groups => "groups",
            Down::Members => "members",
            Down::NotFound => "notfound",
            Down::All => "all",
        }
    }
}

/// The loose directory of one [`Env`].
pub struct Loose {
    dir: PathBuf,
}

fn find_lib(name: &str, package: &str) -> PathBuf {
    LIB_DIRS
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{name} is not installed: apt-get install {package}"))
}

/// pam_wrapper's pam_matrix.so: a password checked against a file, set as PAM_AUTHTOK.
pub fn pam_matrix() -> PathBuf {
    find_lib("pam_wrapper/pam_matrix.so", "libpam-wrapper")
}

/// Compiles tests/helpers/nss_loose.c into `out` (a shared object). Fails without gcc.
pub fn compile_module(out: &Path) {
    require_tool("gcc", "gcc");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers/nss_loose.c");
    let built = Command::new("gcc")
        .args([
            "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror", "-o",
        ])
        .arg(out)
        .arg(&source)
        .output()
        .expect("run gcc");
    assert!(
        built.status.success(),
        "gcc {}: {}",
        source.display(),
        String::from_utf8_lossy(&built.stderr)
    );
}

impl Loose {
    /// Builds the module and the files in `env`'s temp dir, and makes every program `env`
    /// runs from now on resolve users and groups through them.
    pub fn install(env: &mut Env) -> Self {
        find_lib(NSS_WRAPPER, "libnss-wrapper");
        let dir = env.dir.path().join("nss");
        fs::create_dir(&dir).unwrap();
        let so = dir.join("libnss_loose.so");
        compile_module(&so);
        for (name, text) in [
            ("passwd", FILES_PASSWD),
            ("group", FILES_GROUP),
            ("loose.passwd", LOOSE_PASSWD),
            ("loose.group", LOOSE_GROUP),
        ] {
            fs::write(dir.join(name), text).unwrap();
        }
        let path = |name: &str| dir.join(name).display().to_string();
        env.run_env = RunEnv {
            preload: vec![NSS_WRAPPER.to_owned()],
            vars: vec![
                ("NSS_WRAPPER_PASSWD".into(), path("passwd")),
                ("NSS_WRAPPER_GROUP".into(), path("group")),
                ("NSS_WRAPPER_MODULE_SO_PATH".into(), path("libnss_loose.so")),
                ("NSS_WRAPPER_MODULE_FN_PREFIX".into(), "loose".into()),
                ("LOOSE_PASSWD".into(), path("loose.passwd")),
                ("LOOSE_GROUP".into(), path("loose.group")),
                ("LOOSE_DOWN".into(), path("down")),
            ],
        };
        Self { dir }
    }

    /// Takes the directory down, the way `how` says, until [`Loose::up`].
    pub fn down(&self, how: Down) {
        fs::write(self.dir.join("down"), format!("{}\n", how.word())).unwrap();
    }

    pub fn up(&self) {
        let _ = fs::remove_file(self.dir.join("down"));
    }

    /// `getent DATABASE KEY` as the env's programs see it (outside the PAM namespace).
    pub fn getent(&self, env: &Env, database: &str, key: &str) -> Output {
        let mut cmd = Command::new("getent");
        cmd.args([database, key]);
        if !env.run_env.preload.is_empty() {
            cmd.env("LD_PRELOAD", env.run_env.preload.join(":"));
        }
        cmd.envs(env.run_env.vars.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run getent")
    }
}

/// A PAM service `name`: pam_matrix checks [`PASSWORD`] for every name in `users` (aliases
/// included: the directory's first factor accepts them), then twofold with `args`.
pub fn first_factor_service(env: &Env, name: &str, args: &str, users: &[&str]) {
    let passdb = env.dir.path().join(format!("passdb-{name}"));
    let lines: String = users
        .iter()
        .map(|u| format!("{u}:{PASSWORD}:{name}\n"))
        .collect();
    fs::write(&passdb, lines).unwrap();
    // pam_matrix checks the password but, unlike pam_unix or pam_sss, does not keep it as
    // PAM_AUTHTOK; pam_set_items does that after it, so twofold sees a first factor.
    let text = format!(
        "auth requisite {} passdb={}\nauth requisite {}\nauth required {} config={} {args}\n",
        pam_matrix().display(),
        passdb.display(),
        pam_wrapper_module("pam_set_items.so").display(),
        module(),
        env.policy().display(),
    );
    fs::write(env.services().join(name), text).unwrap();
}
