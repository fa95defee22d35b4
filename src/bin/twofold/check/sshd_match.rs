//! sshd's `Match` blocks. `sshd -T` prints the global settings only, and a block may change
//! how the connections it matches log in: `Match User deploy` with `AuthenticationMethods
//! publickey` lets deploy in with a key and no code, while the global settings look right.
//! Every block that sets an authentication keyword is read from the config files (Include
//! followed, as sshd reads them), its values laid over the global settings, and the result
//! checked as the global settings are; what the global check did not already report is
//! reported for the block, at its `Match` line.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use super::finding::{Area, Finding, Severity};
use super::sshd::{self, Settings};

/// The keywords that decide whether a login passes through PAM (lower case, as sshd -T).
const AUTH_KEYWORDS: [&str; 5] = [
    "authenticationmethods",
    "pubkeyauthentication",
    "kbdinteractiveauthentication",
    "challengeresponseauthentication",
    "passwordauthentication",
];
/// Where sshd looks for an Include given without an absolute path.
const SSH_DIR: &str = "/etc/ssh";
/// Include nesting sshd would also refuse long before (it stops at 16).
const MAX_DEPTH: usize = 16;

/// One `Match` block: where it starts, its criteria, and the authentication settings in it.
#[derive(Debug, PartialEq, Eq)]
pub struct Block {
    pub file: PathBuf,
    pub line: usize,
    pub criteria: String,
    /// (keyword in lower case, value), in file order.
    pub settings: Vec<(String, String)>,
}

/// The findings for the `Match` blocks of `config`, beyond those of the global settings
/// `global` (whose kinds are `reported`).
pub fn check(global: &Settings, reported: &[&str], config: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    for block in blocks(config)
        .into_iter()
        .filter(|b| !b.settings.is_empty())
    {
        let mut matched = global.clone();
        for (key, value) in &block.settings {
            matched.apply(key, value);
        }
        let found = sshd::check(&matched, &block.file);
        let new = found.into_iter().filter(|f| !reported.contains(&f.kind));
        out.extend(new.map(|f| for_block(f, &block)));
        if global.key_before_pam() && pam_without_key(&matched) {
            out.push(no_key_first(&block));
        }
    }
    out
}

/// Whether some way in that `s` allows runs PAM (keyboard-interactive) before any other method.
fn pam_without_key(s: &Settings) -> bool {
    let kbd = "keyboard-interactive";
    match &s.methods {
        _ if !s.use_pam || !s.kbd_interactive => false,
        None => true,
        Some(alternatives) => alternatives
            .iter()
            .any(|a| a.first().is_some_and(|m| m == kbd)),
    }
}

/// `finding` as it applies to the connections `block` matches, placed at its `Match` line.
fn for_block(mut finding: Finding, block: &Block) -> Finding {
    finding.problem = format!(
        "for connections matching `Match {}`: {}",
        block.criteria, finding.problem
    );
    finding.file = Some(block.file.clone());
    finding.line = Some(block.line);
    finding
}

fn no_key_first(block: &Block) -> Finding {
    let problem = format!(
        "for connections matching `Match {}`, sshd runs PAM without a key first, while the \
         PAM checks above took the key as the first factor: for these connections the stack \
         itself must prove the password before twofold",
        block.criteria
    );
    let mut f = Finding::new(
        Area::Sshd,
        Severity::Warning,
        "match-no-key-first",
        problem,
        "keep `AuthenticationMethods publickey,keyboard-interactive` in the block, or put the \
         password module before twofold in the sshd stack (`@include common-auth`)",
    )
    .in_file(&block.file);
    f.line = Some(block.line);
    f
}

/// Every `Match` block of `config` and the files it includes, in the order sshd reads them.
pub fn blocks(config: &Path) -> Vec<Block> {
    let mut reader = Reader::default();
    reader.read(config, 0);
    reader.out.extend(reader.current.take());
    reader.out
}

/// Walks config lines as sshd does: an Include is read in place, and a `Match` block runs to
/// the next `Match` (`Match all` goes back to the global settings).
#[derive(Default)]
struct Reader {
    current: Option<Block>,
    out: Vec<Block>,
}

impl Reader {
    fn read(&mut self, file: &Path, depth: usize) {
        // A file sshd cannot read either stops sshd -T, which the global check reports.
        let Ok(text) = std::fs::read_to_string(file) else {
            return;
        };
        for (number, line) in text.lines().enumerate() {
            let Some((keyword, value)) = keyword_and_value(line) else {
                continue;
            };
            match keyword.as_str() {
                "match" => self.start(file, number + 1, value),
                "include" if depth < MAX_DEPTH => {
                    for included in expand(value) {
                        self.read(&included, depth + 1);
                    }
                }
                key if AUTH_KEYWORDS.contains(&key) => {
                    if let Some(block) = &mut self.current {
                        block.settings.push((keyword.clone(), value.to_owned()));
                    }
                }
                _ => {}
            }
        }
    }

    fn start(&mut self, file: &Path, line: usize, criteria: &str) {
        self.out.extend(self.current.take());
        if !criteria.eq_ignore_ascii_case("all") {
            self.current = Some(Block {
                file: file.to_owned(),
                line,
                criteria: criteria.to_owned(),
                settings: Vec::new(),
            });
        }
    }
}

/// `Keyword value` or `Keyword=value`, keyword in lower case; None for blanks and comments.
fn keyword_and_value(line: &str) -> Option<(String, &str)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line.find(|c: char| c.is_whitespace() || c == '=')?;
    let (keyword, rest) = line.split_at(end);
    let value = rest.trim_start().trim_start_matches('=').trim();
    Some((keyword.to_ascii_lowercase(), value))
}

/// The files an Include names: each pattern relative to /etc/ssh unless absolute, `*` and `?`
/// in its last part matched against that directory, sorted as sshd sorts them (glob order).
fn expand(patterns: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for pattern in patterns.split_whitespace() {
        let path = Path::new(SSH_DIR).join(pattern);
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            continue;
        };
        let name = name.to_string_lossy();
        if !name.contains(['*', '?']) {
            files.push(path.clone());
            continue;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| wildcard(&name, &e.file_name().to_string_lossy()))
            .map(|e| e.path())
            .collect();
        found.sort();
        files.extend(found);
    }
    files
}

/// Whether `name` matches `pattern` (`*` any run, `?` one character; a leading `.` only by
/// a leading `.`, as glob(3)).
fn wildcard(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> Settings {
        Settings::parse(text)
    }

    fn kinds(found: &[Finding]) -> Vec<&'static str> {
        found.iter().map(|f| f.kind).collect()
    }

    /// The findings for an sshd_config of `config` over the `global` settings (sshd -T's).
    fn found(config: &str, global: &str) -> Vec<Finding> {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("sshd_config");
        std::fs::write(&main, config).unwrap();
        check(&settings(global), &[], &main)
    }

    #[test]
    fn blocks_are_read_through_includes_and_end_at_the_next_match() {
        let dir = tempfile::tempdir().unwrap();
        let conf_d = dir.path().join("sshd_config.d");
        std::fs::create_dir(&conf_d).unwrap();
        std::fs::write(
            conf_d.join("50-deploy.conf"),
            "Match User deploy\n  AuthenticationMethods publickey\n",
        )
        .unwrap();
        std::fs::write(
            conf_d.join(".hidden.conf"),
            "Match User x\nPasswordAuthentication yes\n",
        )
        .unwrap();
        let main = dir.path().join("sshd_config");
        let text = format!(
            "# a comment\nUsePAM yes\nInclude {}/*.conf\nMatch Group admins\n\tX11Forwarding no\n\
             PasswordAuthentication=yes\nMatch all\nPubkeyAuthentication yes\n",
            conf_d.display()
        );
        std::fs::write(&main, text).unwrap();
        let found = blocks(&main);
        let pair = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        let expected = [
            ("User deploy", 1, pair("authenticationmethods", "publickey")),
            ("Group admins", 4, pair("passwordauthentication", "yes")),
        ];
        assert_eq!(found.len(), expected.len(), "{found:?}");
        for (block, (criteria, line, settings)) in found.iter().zip(expected) {
            assert_eq!((block.criteria.as_str(), block.line), (criteria, line));
            assert_eq!(block.settings, settings);
        }
        assert_eq!(found[0].file, conf_d.join("50-deploy.conf"));
    }

    #[test]
    fn a_block_that_lets_a_key_alone_in_is_an_error_at_its_match_line() {
        let found = found(
            "AuthenticationMethods publickey,keyboard-interactive\nMatch User deploy\n    AuthenticationMethods publickey\n",
            "usepam yes\nkbdinteractiveauthentication yes\npubkeyauthentication yes\nauthenticationmethods publickey,keyboard-interactive\n",
        );
        assert_eq!(kinds(&found), ["methods-without-kbd"]);
        assert_eq!(found[0].line, Some(2));
        assert!(
            found[0].problem.contains("`Match User deploy`"),
            "{}",
            found[0].problem
        );
    }

    #[test]
    fn a_block_that_drops_the_key_first_is_warned_about_and_harmless_blocks_are_quiet() {
        let found = found(
            "Match Address 10.0.0.0/8\nAuthenticationMethods keyboard-interactive\nMatch User ops\nAuthenticationMethods publickey,keyboard-interactive\nMatch Group x\nX11Forwarding no\n",
            "usepam yes\nkbdinteractiveauthentication yes\npasswordauthentication no\nauthenticationmethods publickey,keyboard-interactive\n",
        );
        assert_eq!(kinds(&found), ["match-no-key-first"]);
    }

    #[test]
    fn what_the_global_check_reported_is_not_repeated() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("sshd_config");
        std::fs::write(&main, "Match User a\nAuthenticationMethods publickey\n").unwrap();
        let global = settings(
            "usepam yes\nkbdinteractiveauthentication yes\nauthenticationmethods publickey\n",
        );
        assert!(check(&global, &["methods-without-kbd"], &main).is_empty());
    }

    #[test]
    fn keywords_values_and_wildcards_read_as_sshd_reads_them() {
        assert_eq!(
            keyword_and_value("  PasswordAuthentication=yes"),
            Some(("passwordauthentication".into(), "yes"))
        );
        assert_eq!(
            keyword_and_value("Match User a,b"),
            Some(("match".into(), "User a,b"))
        );
        assert_eq!(keyword_and_value("# Match User a"), None);
        assert!(wildcard("*.conf", "50-x.conf"));
        assert!(!wildcard("*.conf", ".hidden.conf"));
        assert!(wildcard("0?-*", "01-a"));
        assert!(!wildcard("*.conf", "x.conf.bak"));
    }
}
