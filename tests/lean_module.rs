//! The module links nothing a file- or home-store login does not need: no TLS, no async
//! runtime, no database client (fleet mode goes through `twofold agent`), and none of the
//! login itself, which runs in the helper it starts (src/relay/). Checked on the built
//! `libpam_twofold.so` itself: its dynamic dependencies (`ldd`, `readelf -d`) and the
//! symbols it defines (`nm`). Any user, changes nothing.

use std::path::PathBuf;
use std::process::Command;

/// The module this `cargo test` run built (see tests/common/mod.rs `module_path`).
fn module() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_BIN_EXE_twofold"))
        .parent()
        .unwrap()
        .to_owned();
    [
        dir.join("deps/libpam_twofold.so"),
        dir.join("libpam_twofold.so"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .expect("libpam_twofold.so: run `cargo build`")
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
fn the_module_links_libc_libgcc_and_libpam_only() {
    let module = module();
    let module = module.to_str().unwrap();
    let needed: Vec<String> = run("readelf", &["-d", module], "binutils")
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| {
            l.split('[')
                .nth(1)
                .map(|s| s.trim_end_matches(']').to_owned())
        })
        .collect();
    for lib in &needed {
        assert!(
            [
                "libpam.so.0",
                "libpam_misc.so.0",
                "libgcc_s.so.1",
                "libc.so.6",
                "ld-linux-x86-64.so.2"
            ]
            .contains(&lib.as_str()),
            "the module needs {lib}: {needed:?}"
        );
    }
    // What ldd adds beyond those is libpam's own (libaudit, libcap-ng on Debian): anything
    // else came from us.
    let libpam = ldd("/lib/x86_64-linux-gnu/libpam.so.0");
    for lib in ldd(module) {
        assert!(
            lib.starts_with("linux-vdso")
                || lib.starts_with("ld-linux")
                || ["libpam.so.0", "libgcc_s.so.1", "libc.so.6"].contains(&lib.as_str())
                || libpam.contains(&lib),
            "ldd lists {lib} for the module"
        );
        assert!(!lib.contains("ssl") && !lib.contains("crypto"), "{lib}");
    }
}

#[test]
fn no_tls_runtime_or_database_client_is_compiled_in() {
    let module = module();
    let symbols = run("nm", &["-C", module.to_str().unwrap()], "binutils");
    // The relay only: the login's parsers, crypto, QR codes and stores are the helper's.
    for crate_name in [
        "tokio",
        "tokio_postgres",
        "native_tls",
        "openssl",
        "postgres_protocol",
        "toml",
        "serde",
        "argon2",
        "chacha20poly1305",
        "hmac",
        "qrcode",
        "time",
        "pam_twofold::login",
        "pam_twofold::store",
        "pam_twofold::policy",
    ] {
        // The crate's own paths (`time::…`), not a module of that name elsewhere (`std::time`).
        let own = [format!(" {crate_name}::"), format!("<{crate_name}::")];
        assert!(
            !symbols.lines().any(|l| own.iter().any(|m| l.contains(m))),
            "the module holds {crate_name} code"
        );
    }
    let symbols = run(
        "nm",
        &["-D", "--undefined-only", module.to_str().unwrap()],
        "binutils",
    );
    assert!(!symbols.contains("SSL_"), "the module calls OpenSSL");
}
