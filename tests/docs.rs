//! The documents against the code (runs as any user; changes nothing on the system).
//!
//! - Every ```` ```toml ```` block in the Markdown documents is a policy, or part of one, and
//!   parses with the real `Policy::parse`. A block that shows a user's record instead is
//!   marked ```` ```toml record ```` and parses with `Record::parse`. Any other word after
//!   `toml` is an error: no block escapes the check by its label.
//! - Every key of the policy has an entry in `doc/twofold.toml.5` (the one policy reference)
//!   under its section, with a `Default:`; a default written in bold there is the one the
//!   parser uses; the page documents no key the policy lacks; its examples parse. The keys
//!   come from the `Policy` type itself (its `Deserialize` implementation is asked for its
//!   fields), so a key added to the code and not to the page fails here.
//! - The shipped `etc/twofold.toml` parses and shows every key.
//! - Relative links between the documents lead to files (and headings) that exist.
//! - `twofold generate-docs` writes a page for every subcommand page the pages name, and
//!   `scripts/install.sh` (into a staging root) installs them all with `twofold.toml(5)` and
//!   `pam_twofold(8)`; `scripts/uninstall.sh` removes them.

#[path = "common/built_module.rs"]
mod built_module;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use pam_twofold::{Policy, Record};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse_policy(text: &str, name: &str) -> Result<Policy, String> {
    Policy::parse(text, Path::new(name)).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// The policy's keys, from the type itself.
// ---------------------------------------------------------------------------------------------

/// Ends every probe: the probe records what it saw, then refuses to produce a value.
#[derive(Debug)]
struct Stop(String);

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Stop(msg.to_string())
    }
}

/// What sits at a key path: a table with these keys, or a value.
#[derive(Debug, Clone)]
enum Shape {
    Table(&'static [&'static str]),
    Value,
}

/// A deserializer that walks down `path` (offering one key per table) and notes the shape of
/// what the type asks for at its end.
struct Probe<'a> {
    path: &'a [&'static str],
    seen: &'a RefCell<Option<Shape>>,
}

impl Probe<'_> {
    fn value<T>(self) -> Result<T, Stop> {
        if self.path.is_empty() {
            *self.seen.borrow_mut() = Some(Shape::Value);
            Err(Stop("probe: value seen".into()))
        } else {
            Err(Stop(format!(
                "probe: {:?} goes through a value, not a table",
                self.path
            )))
        }
    }
}

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
        self.value()
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        match self.path.split_first() {
            None => {
                *self.seen.borrow_mut() = Some(Shape::Table(fields));
                Err(Stop("probe: table seen".into()))
            }
            Some((key, rest)) => visitor.visit_map(OneKey {
                key: Some(key),
                value: Some(Probe {
                    path: rest,
                    seen: self.seen,
                }),
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        if self.path.is_empty() {
            self.value()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// A table holding just the one key the probe walks down.
struct OneKey<'a> {
    key: Option<&'static str>,
    value: Option<Probe<'a>>,
}

impl<'de> MapAccess<'de> for OneKey<'_> {
    type Error = Stop;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Stop> {
        match self.key.take() {
            Some(key) => seed
                .deserialize(de::value::BorrowedStrDeserializer::<Stop>::new(key))
                .map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Stop> {
        seed.deserialize(self.value.take().expect("a value follows its key"))
    }
}

/// A policy key: its table (`"totp"`, or `"a.b"` for a nested one) and its name.
type Key = (String, String);

/// Every key the policy file can hold, as `Policy` deserializes it.
fn policy_keys() -> BTreeSet<Key> {
    fn shape<'de, T: Deserialize<'de> + std::fmt::Debug>(path: &[&'static str]) -> Shape {
        let seen = RefCell::new(None);
        let result = T::deserialize(Probe { path, seen: &seen });
        let shape = seen.into_inner();
        shape.unwrap_or_else(|| panic!("probing {path:?} saw nothing: {result:?}"))
    }
    fn walk(path: Vec<&'static str>, out: &mut BTreeSet<Key>) {
        match shape::<Policy>(&path) {
            Shape::Table(fields) => {
                for field in fields {
                    let mut deeper = path.clone();
                    deeper.push(field);
                    walk(deeper, out);
                }
            }
            // `[[rule]]`, an array of tables: its keys are the Rule type's fields.
            Shape::Value if path == ["rule"] => {
                let Shape::Table(fields) = shape::<pam_twofold::rules::Rule>(&[]) else {
                    panic!("a rule is a table");
                };
                out.extend(fields.iter().map(|f| ("rule".to_owned(), (*f).to_owned())));
            }
            Shape::Value => {
                let (key, table) = path.split_last().expect("the policy itself is a table");
                assert!(
                    !table.is_empty(),
                    "top-level key {key:?}: every policy key belongs to a [section]"
                );
                out.insert((table.join("."), (*key).to_owned()));
            }
        }
    }
    let mut keys = BTreeSet::new();
    walk(Vec::new(), &mut keys);
    keys
}

#[test]
fn the_key_list_comes_from_the_policy_type() {
    let keys = policy_keys();
    let sections: BTreeSet<&str> = keys.iter().map(|(s, _)| s.as_str()).collect();
    for section in [
        "policy",
        "totp",
        "hotp",
        "lockout",
        "backup_codes",
        "trust",
        "store",
    ] {
        assert!(
            sections.contains(section),
            "{section} missing from {keys:?}"
        );
    }
    for key in [
        ("policy", "require"),
        ("totp", "max_drift"),
        ("trust", "services"),
        ("store", "url"),
        ("store", "cache_dir"),
    ] {
        assert!(
            keys.contains(&(key.0.to_owned(), key.1.to_owned())),
            "{key:?} missing from {keys:?}"
        );
    }
    assert!(keys.len() >= 20, "only {} keys found: {keys:?}", keys.len());
}

// ---------------------------------------------------------------------------------------------
// twofold.toml(5)
// ---------------------------------------------------------------------------------------------

/// Roff escapes the page uses in values and examples.
fn unroff(text: &str) -> String {
    text.replace("\\-", "-")
        .replace("\\(dq", "\"")
        .replace("\\(aq", "'")
        .replace("\\&", "")
        .replace("\\e", "\\")
}

struct Entry {
    section: String,
    key: String,
    text: String,
}

/// The `.TP` / `.B key` entries under each `.SS [section]` of SECTIONS AND KEYS.
fn man_entries(page: &str) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut in_keys = false;
    let mut section: Option<String> = None;
    let mut after_tp = false;
    let mut current: Option<Entry> = None;
    for line in page.lines() {
        if let Some(title) = line.strip_prefix(".SH ") {
            entries.extend(current.take());
            in_keys = title.trim_matches('"') == "SECTIONS AND KEYS";
            section = None;
            continue;
        }
        if !in_keys {
            continue;
        }
        if let Some(title) = line.strip_prefix(".SS ") {
            entries.extend(current.take());
            let title = title.trim().trim_matches('"');
            // `[section]`, or `[[rule]]` for an array of tables.
            let name = title
                .strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .map(|t| t.trim_start_matches('[').trim_end_matches(']'))
                .unwrap_or_else(|| panic!("twofold.toml.5: .SS {title}: expected [section]"));
            section = Some(name.to_owned());
            continue;
        }
        if line == ".TP" {
            entries.extend(current.take());
            after_tp = true;
            continue;
        }
        if after_tp {
            after_tp = false;
            let key = line
                .strip_prefix(".B ")
                .unwrap_or_else(|| panic!("twofold.toml.5: after .TP expected `.B key`: {line}"));
            let section = section
                .clone()
                .unwrap_or_else(|| panic!("twofold.toml.5: key {key} before any .SS [section]"));
            current = Some(Entry {
                section,
                key: key.trim().to_owned(),
                text: String::new(),
            });
            continue;
        }
        if let Some(entry) = current.as_mut() {
            entry.text.push_str(line);
            entry.text.push('\n');
        }
    }
    entries.extend(current);
    entries
}

/// The text between each `.EX` and `.EE`.
fn man_examples(page: &str) -> Vec<String> {
    let mut examples = Vec::new();
    let mut current: Option<String> = None;
    for line in page.lines() {
        match (line, current.as_mut()) {
            (".EX", None) => current = Some(String::new()),
            (".EE", Some(_)) => examples.extend(current.take()),
            (_, Some(text)) => {
                text.push_str(&unroff(line));
                text.push('\n');
            }
            _ => {}
        }
    }
    assert!(current.is_none(), "an .EX without .EE");
    examples
}

fn toml_man_page() -> String {
    read(&root().join("doc/twofold.toml.5"))
}

#[test]
fn every_policy_key_is_documented_in_twofold_toml_5_and_nothing_else() {
    let entries = man_entries(&toml_man_page());
    let mut documented = BTreeSet::new();
    for entry in &entries {
        let key = (entry.section.clone(), entry.key.clone());
        assert!(
            documented.insert(key.clone()),
            "twofold.toml.5 documents {key:?} twice"
        );
    }
    let keys = policy_keys();
    let undocumented: Vec<_> = keys.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&keys).collect();
    assert!(
        undocumented.is_empty(),
        "policy keys without an entry (.SS [section], .TP, .B key) in doc/twofold.toml.5: {undocumented:?}"
    );
    assert!(
        unknown.is_empty(),
        "doc/twofold.toml.5 documents keys the policy does not have: {unknown:?}"
    );
}

#[test]
fn every_documented_default_is_the_real_one() {
    let defaults = Policy::default();
    for entry in man_entries(&toml_man_page()) {
        let name = format!("[{}] {}", entry.section, entry.key);
        assert!(
            !entry.text.trim().is_empty(),
            "{name}: no text in doc/twofold.toml.5"
        );
        let (_, after) = entry
            .text
            .split_once("Default: ")
            .unwrap_or_else(|| panic!("{name}: doc/twofold.toml.5 gives no `Default: `"));
        match after.strip_prefix("\\fB") {
            Some(bold) => {
                let (value, _) = bold
                    .split_once("\\fR")
                    .unwrap_or_else(|| panic!("{name}: \\fB without \\fR"));
                let value = unroff(value);
                let text = format!("[{}]\n{} = {value}\n", entry.section, entry.key);
                let parsed = parse_policy(&text, "default")
                    .unwrap_or_else(|e| panic!("{name}: default {value} does not parse: {e}"));
                assert_eq!(
                    parsed, defaults,
                    "{name}: doc/twofold.toml.5 says the default is {value}, the code differs"
                );
            }
            None => {
                // A default that is a value must be in bold, so that it is checked above.
                let word: String = after
                    .chars()
                    .take_while(|c| !c.is_whitespace() && *c != '.' && *c != ',')
                    .collect();
                assert!(
                    toml::from_str::<toml::Table>(&format!("x = {}", unroff(&word))).is_err(),
                    "{name}: write the default {word} in bold (\\fB{word}\\fR) so it is checked"
                );
            }
        }
    }
}

#[test]
fn the_examples_in_twofold_toml_5_parse() {
    let examples = man_examples(&toml_man_page());
    assert!(!examples.is_empty(), "twofold.toml.5 has no .EX examples");
    for example in examples {
        parse_policy(&example, "twofold.toml.5 example")
            .unwrap_or_else(|e| panic!("{e}\n{example}"));
    }
}

// ---------------------------------------------------------------------------------------------
// The shipped policy
// ---------------------------------------------------------------------------------------------

#[test]
fn the_shipped_policy_parses_and_shows_every_key() {
    let text = read(&root().join("etc/twofold.toml"));
    parse_policy(&text, "etc/twofold.toml").unwrap();
    let mut shown = BTreeSet::new();
    let mut section = String::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        // `#[[rule]]`: the example rules are commented out (the default is none).
        if let Some(name) = line.strip_prefix("#[[").and_then(|l| l.strip_suffix("]]")) {
            section = name.to_owned();
            continue;
        }
        // `#key = value` (commented out, the default) or `key = value`.
        let line = line.strip_prefix('#').unwrap_or(line);
        if let Some((key, _)) = line.split_once(" = ") {
            if !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                shown.insert((section.clone(), key.to_owned()));
            }
        }
    }
    let missing: Vec<_> = policy_keys().difference(&shown).cloned().collect();
    assert!(
        missing.is_empty(),
        "etc/twofold.toml does not show (as `#key = default`) {missing:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Markdown documents
// ---------------------------------------------------------------------------------------------

fn markdown_files() -> Vec<PathBuf> {
    let root = root();
    let mut files: Vec<PathBuf> = ["README.md", "SECURITY.md", "CHANGELOG.md"]
        .iter()
        .map(|f| root.join(f))
        .collect();
    for dir in ["docs", "pam.d-examples"] {
        let mut found: Vec<PathBuf> = fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "md"))
            .collect();
        found.sort();
        files.extend(found);
    }
    for file in &files {
        assert!(file.is_file(), "{} is missing", file.display());
    }
    files
}

/// A fenced block: its info string (` ```toml record ` → `toml record`), first line number
/// and text.
struct Block {
    info: String,
    line: usize,
    text: String,
}

/// Fenced code blocks (``` or ~~~, indented or not) and the lines outside them.
fn split_markdown(text: &str) -> (Vec<Block>, Vec<(usize, String)>) {
    let mut blocks = Vec::new();
    let mut prose = Vec::new();
    let mut open: Option<(String, Block)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match open.as_mut() {
            Some((fence, block)) => {
                if trimmed.trim_end().starts_with(fence.as_str())
                    && trimmed
                        .trim_end()
                        .chars()
                        .all(|c| c == fence.chars().next().unwrap())
                {
                    blocks.push(open.take().unwrap().1);
                } else {
                    block.text.push_str(line);
                    block.text.push('\n');
                }
            }
            None => {
                let fence_char = trimmed.chars().next().filter(|c| *c == '`' || *c == '~');
                let fence_len =
                    fence_char.map_or(0, |c| trimmed.chars().take_while(|&x| x == c).count());
                if fence_len >= 3 {
                    let fence: String = trimmed.chars().take(fence_len).collect();
                    let info = trimmed[fence_len..].trim().to_owned();
                    open = Some((
                        fence,
                        Block {
                            info,
                            line: i + 1,
                            text: String::new(),
                        },
                    ));
                } else {
                    prose.push((i + 1, line.to_owned()));
                }
            }
        }
    }
    assert!(open.is_none(), "a code block is not closed");
    (blocks, prose)
}

#[test]
fn every_toml_block_in_the_documents_parses() {
    let mut policies = 0;
    for file in markdown_files() {
        let name = file.strip_prefix(root()).unwrap().display().to_string();
        let (blocks, _) = split_markdown(&read(&file));
        for block in blocks {
            let mut words = block.info.split_whitespace();
            if words.next() != Some("toml") {
                continue;
            }
            let place = format!("{name}:{}", block.line);
            match words.collect::<Vec<_>>().as_slice() {
                [] => {
                    parse_policy(&block.text, &place).unwrap_or_else(|e| {
                        panic!("{place}: a ```toml block must be a policy: {e}")
                    });
                    policies += 1;
                }
                ["record"] => {
                    Record::parse(block.text.as_bytes())
                        .unwrap_or_else(|e| panic!("{place}: ```toml record does not parse: {e}"));
                }
                other => panic!(
                    "{place}: ```toml {}: a TOML block is a policy (```toml) or a record (```toml record)",
                    other.join(" ")
                ),
            }
        }
    }
    assert!(
        policies > 0,
        "no ```toml policy block found: is the fence parser broken?"
    );
}

/// GitHub's anchor for a heading: lower case, letters, digits, `-` and `_` kept, spaces to `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(markdown: &str) -> BTreeSet<String> {
    let (_, prose) = split_markdown(markdown);
    prose
        .iter()
        .filter_map(|(_, line)| {
            let hashes = line.chars().take_while(|c| *c == '#').count();
            (1..=6)
                .contains(&hashes)
                .then(|| line[hashes..].strip_prefix(' '))
                .flatten()
                .map(anchor)
        })
        .collect()
}

#[test]
fn relative_links_between_the_documents_lead_somewhere() {
    let mut checked = 0;
    for file in markdown_files() {
        let name = file.strip_prefix(root()).unwrap().display().to_string();
        let text = read(&file);
        let (_, prose) = split_markdown(&text);
        for (line_no, line) in prose {
            let mut rest = line.as_str();
            while let Some(start) = rest.find("](") {
                let after = &rest[start + 2..];
                let Some(end) = after.find(')') else { break };
                let target = &after[..end];
                rest = &after[end..];
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let (path, fragment) = match target.split_once('#') {
                    Some((p, f)) => (p, Some(f)),
                    None => (target, None),
                };
                let dest = if path.is_empty() {
                    file.clone()
                } else {
                    file.parent().unwrap().join(path)
                };
                assert!(
                    dest.exists(),
                    "{name}:{line_no}: link to {target}: {} does not exist",
                    dest.display()
                );
                if let Some(fragment) = fragment {
                    if dest.extension().is_some_and(|e| e == "md") {
                        assert!(
                            anchors(&read(&dest)).contains(fragment),
                            "{name}:{line_no}: link to {target}: no such heading"
                        );
                    }
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 10, "only {checked} links found");
}

// ---------------------------------------------------------------------------------------------
// Generated man pages
// ---------------------------------------------------------------------------------------------

/// Every `twofold-…(1)` a page names (in SUBCOMMANDS and SEE ALSO).
fn page_references(page: &str) -> BTreeSet<String> {
    let plain = page
        .replace("\\-", "-")
        .replace(".BR ", "")
        .replace(" (1)", "(1)");
    let mut refs = BTreeSet::new();
    let mut rest = plain.as_str();
    while let Some(start) = rest.find("twofold") {
        let tail = &rest[start..];
        let name: String = tail
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if tail[name.len()..].starts_with("(1)") {
            refs.insert(name.clone());
        }
        rest = &tail[name.len().max(1)..];
    }
    refs
}

#[test]
fn every_subcommand_page_that_is_named_is_generated() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_twofold"))
        .arg("generate-docs")
        .arg(dir.path().join("docs"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let man1 = dir.path().join("docs/man1");
    let pages: BTreeSet<String> = fs::read_dir(&man1)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    for must in [
        "twofold.1",
        "twofold-enroll.1",
        "twofold-import-oath.1",
        "twofold-db-init.1",
    ] {
        assert!(pages.contains(must), "{must} not generated: {pages:?}");
    }
    assert!(
        !pages
            .iter()
            .any(|p| p.contains("help") || p.contains("generate-docs")),
        "{pages:?}"
    );
    let mut named = BTreeSet::new();
    for page in &pages {
        let text = read(&man1.join(page));
        assert!(
            text.contains(".SH \"SEE ALSO\"") && text.contains("twofold.toml (5)"),
            "{page} has no SEE ALSO naming twofold.toml(5)"
        );
        named.extend(page_references(&text));
    }
    for name in &named {
        assert!(
            pages.contains(&format!("{name}.1")),
            "a page names {name}(1), which is not generated"
        );
    }
    // Every page but the top one is named by its parent.
    for page in &pages {
        let stem = page.strip_suffix(".1").unwrap();
        assert!(
            stem == "twofold" || named.contains(stem),
            "{page} is named by no page"
        );
    }
    // The hand-written pages exist where install.sh takes them from.
    for page in [
        "doc/twofold.toml.5",
        "doc/pam_twofold.8",
        "doc/twofold-self.1",
    ] {
        assert!(root().join(page).is_file(), "{page} is missing");
    }
}

/// The module (crates/pam-relay), built for this run.
fn built_module() -> PathBuf {
    built_module::module_path()
}

#[test]
fn install_sh_installs_every_man_page_and_uninstall_sh_removes_them() {
    // Into a staging root, as a packager runs it: no root needed, nothing outside the root.
    let dest = tempfile::tempdir().unwrap();
    let run = |script: &str, args: &[&str]| {
        let out = Command::new("bash")
            .arg(root().join("scripts").join(script))
            .args(args)
            .env("DESTDIR", dest.path())
            .env("PREFIX", "/usr/local")
            .env("MODULE", built_module())
            .env("CLI", env!("CARGO_BIN_EXE_twofold"))
            .env("SELF", env!("CARGO_BIN_EXE_twofold-self"))
            .env("HELPER", env!("CARGO_BIN_EXE_twofold-login"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run("install.sh", &["--no-build"]);
    let man = dest.path().join("usr/local/share/man");
    let man1: BTreeSet<String> = fs::read_dir(man.join("man1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let generated = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_twofold"))
        .arg("generate-docs")
        .arg(generated.path().join("docs"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut expected: BTreeSet<String> = fs::read_dir(generated.path().join("docs/man1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    // Written by hand: the setuid helper has no doc generator (docs/design.md).
    expected.insert("twofold-self.1".into());
    assert_eq!(man1, expected, "installed man1 pages");
    assert_eq!(
        read(&man.join("man1/twofold-self.1")),
        read(&root().join("doc/twofold-self.1"))
    );
    assert_eq!(
        read(&man.join("man5/twofold.toml.5")),
        read(&root().join("doc/twofold.toml.5"))
    );
    assert_eq!(
        read(&man.join("man8/pam_twofold.8")),
        read(&root().join("doc/pam_twofold.8"))
    );

    run("uninstall.sh", &["--purge"]);
    for section in ["man1", "man5", "man8"] {
        let left: Vec<_> = fs::read_dir(man.join(section))
            .map(|d| d.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "uninstall left {section}: {left:?}");
    }
}

/// The README's first screen holds exactly two commands for a fresh machine: the install
/// (which also runs the demo) first, then the tests. `install.sh` is what an admin runs first.
#[test]
fn readme_first_screen_installs_then_tests() {
    let readme = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"));
    let screen: Vec<&str> = readme.lines().take(24).collect();
    let start = screen
        .iter()
        .position(|l| *l == "```sh")
        .expect("a sh block");
    let commands: Vec<&str> = screen[start + 1..]
        .iter()
        .take_while(|l| **l != "```")
        .map(|l| l.split('#').next().unwrap().trim())
        .collect();
    assert_eq!(commands, ["scripts/install.sh --demo", "scripts/test.sh"]);
    let install = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install.sh"));
    assert!(
        install.contains("--demo) demo=1") && install.contains("scripts/demo.sh"),
        "install.sh --demo runs the demo"
    );
}
