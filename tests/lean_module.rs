//! The module is a `no_std` relay (crates/pam-relay) that links libc and libpam and nothing
//! else: no std, no libgcc_s, no TLS, no async runtime, no database client, and none of the
//! login, which runs in the helper it starts. Checked on the built `libpam_twofold.so` itself:
//! its dynamic dependencies (`readelf -d`, `ldd`), the symbols it exports and needs (`nm -D`)
//! and the code it holds (`nm`). Any user, changes nothing.

#[path = "common/built_module.rs"]
mod built_module;

use std::process::Command;

fn module() -> String {
    built_module::module_path().to_str().unwrap().to_owned()
}

fn run(tool: &str, args: &[&str], package: &str) -> String {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e} (install the Debian package {package})"));
    assert!(out.status.success(), "{tool} {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The library names `ldd` lists for `path` (linux-vdso has no file).
fn ldd(path: &str) -> Vec<String> {
    run("ldd", &[path], "libc-bin")
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|name| name.rsplit('/').next().unwrap().to_owned())
        .collect()
}

#[test]
fn the_module_links_libc_and_libpam_only() {
    let module = module();
    let needed: Vec<String> = run("readelf", &["-d", &module], "binutils")
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| {
            l.split('[')
                .nth(1)
                .map(|s| s.trim_end_matches(']').to_owned())
        })
        .collect();
    assert_eq!(needed, ["libpam.so.0", "libc.so.6"], "NEEDED");
    // What ldd adds beyond those is libpam's own (libaudit, libcap-ng on Debian): anything
    // else came from us.
    let libpam = ldd("/lib/x86_64-linux-gnu/libpam.so.0");
    for lib in ldd(&module) {
        assert!(
            lib.starts_with("linux-vdso")
                || lib.starts_with("ld-linux")
                || ["libpam.so.0", "libc.so.6"].contains(&lib.as_str())
                || libpam.contains(&lib),
            "ldd lists {lib} for the module"
        );
    }
}

#[test]
fn it_exports_the_two_hooks_and_needs_only_versioned_libc_and_libpam_symbols() {
    let module = module();
    let exported = run("nm", &["-D", "--defined-only", &module], "binutils");
    let mut names: Vec<&str> = exported
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["pam_sm_authenticate", "pam_sm_setcred"]);
    // dlopen (RTLD_NOW, as libpam loads modules) fails on any symbol no library defines:
    // unwinding's `_Unwind_Resume` or std's `rust_eh_personality` would be such a one.
    let needed = run("nm", &["-D", "--undefined-only", &module], "binutils");
    for line in needed.lines() {
        let mut words = line.split_whitespace();
        let (kind, name) = (words.next().unwrap(), words.next().unwrap());
        let ours = name.contains("@GLIBC_") || name.contains("@LIBPAM_");
        assert!(ours || kind == "w", "the module needs {name}");
    }
}

#[test]
fn no_std_tls_runtime_or_login_code_is_compiled_in() {
    let symbols = run("nm", &["-C", &module()], "binutils");
    // The relay only: std, the login's parsers, crypto, QR codes and stores are elsewhere.
    for crate_name in [
        "std",
        "tokio",
        "tokio_postgres",
        "native_tls",
        "openssl",
        "toml",
        "serde",
        "argon2",
        "chacha20poly1305",
        "hmac",
        "qrcode",
        "nix",
        "pam",
        "pam_twofold::login",
        "pam_twofold::store",
        "pam_twofold::policy",
    ] {
        // The crate's own paths (`std::…`), not a module of that name elsewhere.
        let own = [format!(" {crate_name}::"), format!("<{crate_name}::")];
        assert!(
            !symbols.lines().any(|l| own.iter().any(|m| l.contains(m))),
            "the module holds {crate_name} code"
        );
    }
}

/// The shipped build (plain `cargo test` builds it as scripts/build-module.sh does) gives the
/// helper `PATH` alone: unlike the test-only `root-tests` build, it never reads the host's
/// environment (`environ`), so none of the host's variables can reach the helper.
/// (The root tier builds the module with that feature, so this runs in the fast tier.)
#[cfg(not(feature = "root-tests"))]
#[test]
fn the_shipped_build_never_reads_the_hosts_environment() {
    let needed = run("nm", &["-D", "--undefined-only", &module()], "binutils");
    let environ = needed.lines().any(|l| {
        l.split_whitespace()
            .last()
            .is_some_and(|s| s.starts_with("environ@"))
    });
    assert!(!environ, "the shipped module reads environ:\n{needed}");
}
