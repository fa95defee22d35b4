//! The tier map in Cargo.toml stays true (tests/README.md). CI runs every tier as root, where a
//! test that needs root passes in any tier; this check is what keeps such a test out of the
//! unit and library tier, which must pass as any user and change nothing on the host.
//!
//! A test file that reaches for a root-tier helper by name must be a `[[test]]` that requires
//! the `root-tests` feature; the tiers' features are never default; the worker program is
//! built only for the tiers that start it.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// Helpers that need root (each calls `common::require_root`) and the root-only programs.
const ROOT_ONLY: [&str; 8] = [
    "Env::new(",
    "Postgres::start",
    "Sshd::start",
    "TempUser::",
    "require_root(",
    "pamtester",
    "useradd",
    "unshare",
];

fn manifest() -> toml::Table {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    fs::read_to_string(path).unwrap().parse().unwrap()
}

/// `[[test]]` name → its required features.
fn declared_tests(manifest: &toml::Table) -> BTreeMap<String, Vec<String>> {
    let Some(tests) = manifest.get("test").and_then(|t| t.as_array()) else {
        return BTreeMap::new();
    };
    tests
        .iter()
        .map(|t| {
            let name = t["name"].as_str().unwrap().to_owned();
            let features = t
                .get("required-features")
                .and_then(|f| f.as_array())
                .map(|f| f.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
                .unwrap_or_default();
            (name, features)
        })
        .collect()
}

#[test]
fn test_files_that_need_root_are_in_the_root_tier() {
    let declared = declared_tests(&manifest());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut misplaced = Vec::new();
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") || path.ends_with("tiers.rs") {
            continue;
        }
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let text = fs::read_to_string(&path).unwrap();
        let needs_root: Vec<&str> = ROOT_ONLY
            .into_iter()
            .filter(|word| text.contains(word))
            .collect();
        let in_root_tier = declared
            .get(&name)
            .is_some_and(|f| f.iter().any(|f| f == "root-tests"));
        if !needs_root.is_empty() && !in_root_tier {
            misplaced.push(format!("tests/{name}.rs uses {needs_root:?}"));
        }
    }
    assert!(
        misplaced.is_empty(),
        "these need root but run in plain `cargo test`: give each a [[test]] entry with \
         required-features = [\"root-tests\"] in Cargo.toml (tests/README.md):\n{}",
        misplaced.join("\n")
    );
}

#[test]
fn every_declared_test_has_its_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    for name in declared_tests(&manifest()).keys() {
        assert!(
            dir.join(format!("{name}.rs")).exists() || dir.join(name).join("main.rs").exists(),
            "[[test]] {name} in Cargo.toml has no tests/{name}.rs"
        );
    }
}

#[test]
fn the_tiers_are_never_default_and_the_worker_is_never_shipped() {
    let manifest = manifest();
    let features = manifest["features"].as_table().unwrap();
    let default: Vec<&str> = features
        .get("default")
        .and_then(|d| d.as_array())
        .map(|d| d.iter().filter_map(|f| f.as_str()).collect())
        .unwrap_or_default();
    for tier in ["root-tests", "hardening-tests", "test-worker"] {
        assert!(features.contains_key(tier), "no feature {tier}");
        assert!(!default.contains(&tier), "feature {tier} is a default");
    }
    let worker = manifest["bin"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"].as_str() == Some("twofold-test-worker"))
        .expect("[[bin]] twofold-test-worker");
    assert_eq!(
        worker["required-features"].as_array().map(|f| f.len()),
        Some(1),
        "the worker must need its feature"
    );
}
