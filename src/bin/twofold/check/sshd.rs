//! sshd's effective settings (`sshd -T`) against a PAM stack that uses twofold: PAM must run
//! (UsePAM), through keyboard-interactive (the password method's PAM conversation answers
//! every hidden prompt with the password, so the code prompt gets the password), and every
//! way in that AuthenticationMethods allows must pass through it.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use super::command;
use super::finding::{Area, Finding, Severity};

const DEFAULT_CONFIG: &str = "/etc/ssh/sshd_config";

/// What `sshd -T` says, as far as twofold cares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub use_pam: bool,
    pub kbd_interactive: bool,
    pub password: bool,
    pub pubkey: bool,
    /// `None`: "any" (each enabled method alone logs in). Otherwise the alternatives, each a
    /// list of methods that must all succeed, in order.
    pub methods: Option<Vec<Vec<String>>>,
}

impl Settings {
    /// Parses `sshd -T` (lower-case keywords, one per line).
    pub fn parse(text: &str) -> Self {
        let mut s = Self::default();
        for line in text.lines() {
            if let Some((key, value)) = line.trim().split_once(' ') {
                s.apply(key, value);
            }
        }
        s
    }

    /// One setting, `key` in lower case as `sshd -T` prints it (a `Match` block's lines are
    /// laid over the global settings this way: sshd_match.rs).
    pub fn apply(&mut self, key: &str, value: &str) {
        let yes = value.trim().eq_ignore_ascii_case("yes");
        match key {
            "usepam" => self.use_pam = yes,
            // The old name of the same setting, still read by sshd.
            "kbdinteractiveauthentication" | "challengeresponseauthentication" => {
                self.kbd_interactive = yes;
            }
            "passwordauthentication" => self.password = yes,
            "pubkeyauthentication" => self.pubkey = yes,
            "authenticationmethods" if value.trim().eq_ignore_ascii_case("any") => {
                self.methods = None;
            }
            "authenticationmethods" => {
                let alternatives = value.split_whitespace().map(|alt| {
                    alt.split(',')
                        .map(|m| m.split(':').next().unwrap_or(m).to_owned())
                        .collect()
                });
                self.methods = Some(alternatives.collect());
            }
            _ => {}
        }
    }

    /// sshd proves another method before keyboard-interactive in every way in that uses it.
    pub fn key_before_pam(&self) -> bool {
        let Some(alternatives) = &self.methods else {
            return false;
        };
        let with_kbd: Vec<&Vec<String>> = alternatives
            .iter()
            .filter(|a| a.iter().any(|m| m == KBD))
            .collect();
        !with_kbd.is_empty() && with_kbd.iter().all(|a| a.first().is_some_and(|m| m != KBD))
    }
}

const KBD: &str = "keyboard-interactive";

/// The connection `sshd -T -C` evaluates `Match` blocks for: a user, from a remote host.
pub struct Connection<'a> {
    pub user: &'a str,
    /// The client's address or name (`--rhost`), if known.
    pub rhost: Option<&'a str>,
}

impl Connection<'_> {
    /// `user=…,host=…,addr=…` (sshd wants all three): a name that is no address is the host,
    /// and the address is then unknown (127.0.0.1 stands in, as for an unknown client).
    fn spec(&self) -> String {
        let rhost = self.rhost.unwrap_or("localhost");
        let addr = match rhost.parse::<std::net::IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => "127.0.0.1".to_owned(),
        };
        format!("user={},host={rhost},addr={addr}", self.user)
    }
}

/// Runs `sshd -T [-f FILE]`; the settings and the config file named in findings.
pub fn effective(config: Option<&Path>) -> Result<(Settings, PathBuf), Finding> {
    effective_for(config, None)
}

/// [`effective`], with the `Match` blocks that apply to `connection` applied (`-C`).
pub fn effective_for(
    config: Option<&Path>,
    connection: Option<&Connection<'_>>,
) -> Result<(Settings, PathBuf), Finding> {
    let file = config.map_or_else(|| PathBuf::from(DEFAULT_CONFIG), Path::to_path_buf);
    let sshd = ["sshd", "/usr/sbin/sshd"]
        .into_iter()
        .find(|p| command::exists(p));
    let Some(sshd) = sshd else {
        let severity = if config.is_some() {
            Severity::Error
        } else {
            Severity::Info
        };
        return Err(Finding::new(
            Area::Sshd,
            severity,
            "sshd-missing",
            "sshd is not installed: nothing to check",
            "apt-get install openssh-server, if ssh logins are meant to use twofold",
        ));
    };
    let path = file.display().to_string();
    let spec = connection.map(Connection::spec);
    let mut args = vec!["-T", "-f", &path];
    if let Some(spec) = &spec {
        args.extend(["-C", spec.as_str()]);
    }
    let out = command::run(sshd, &args).map_err(|e| sshd_failed(&file, &e))?;
    if !out.status.success() {
        return Err(sshd_failed(
            &file,
            String::from_utf8_lossy(&out.stderr).trim(),
        ));
    }
    Ok((Settings::parse(&String::from_utf8_lossy(&out.stdout)), file))
}

fn sshd_failed(file: &Path, why: &str) -> Finding {
    Finding::new(
        Area::Sshd,
        Severity::Warning,
        "sshd-t-failed",
        format!("`sshd -T` could not read the settings: {why}"),
        "fix what sshd says (`sshd -t` checks the syntax); sshd's settings were not checked",
    )
    .in_file(file)
}

/// The line of `keyword` in the main config file (sshd -T gives none; includes are not read).
fn line_of(file: &Path, keyword: &str) -> Option<usize> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .position(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case(keyword))
        })
        .map(|i| i + 1)
}

fn finding(
    file: &Path,
    keyword: &str,
    severity: Severity,
    kind: &'static str,
    problem: String,
    fix: &str,
) -> Finding {
    let mut f = Finding::new(Area::Sshd, severity, kind, problem, fix).in_file(file);
    f.line = line_of(file, keyword);
    f
}

/// The findings for sshd settings `s` (read from `file`), when sshd's PAM stack uses twofold.
pub fn check(s: &Settings, file: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    if !s.use_pam {
        out.push(finding(
            file,
            "UsePAM",
            Severity::Error,
            "usepam-off",
            "UsePAM no: sshd never runs its PAM stack, so ssh logins are never asked for a code"
                .into(),
            "set UsePAM yes",
        ));
        return out;
    }
    if !s.kbd_interactive {
        let what = if s.password {
            "PAM's auth stack runs only for the password method, whose conversation answers every hidden prompt with the password: the code prompt gets the password, so users with 2FA cannot log in and enroll-at-login cannot show its QR code"
        } else {
            "and PasswordAuthentication is off too, so PAM's auth stack never runs: ssh logins (with a key) are never asked for a code"
        };
        out.push(finding(
            file,
            "KbdInteractiveAuthentication",
            Severity::Error,
            "kbd-interactive-off",
            format!("KbdInteractiveAuthentication no: {what}"),
            "set KbdInteractiveAuthentication yes",
        ));
    }
    out.extend(check_methods(s, file));
    out
}

fn check_methods(s: &Settings, file: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    let fix = "list keyboard-interactive in every alternative: `AuthenticationMethods publickey,keyboard-interactive` (key, then code) or `keyboard-interactive` (password and code through PAM)";
    match &s.methods {
        None if s.pubkey => out.push(finding(file, "AuthenticationMethods", Severity::Warning, "key-skips-code", "AuthenticationMethods any with PubkeyAuthentication yes: a user with an authorized key logs in with the key alone, never asked for a code".into(), fix)),
        None => {}
        Some(alternatives) => {
            for alt in alternatives.iter().filter(|a| !a.iter().any(|m| m == KBD)) {
                let joined = alt.join(",");
                let why = if alt.iter().any(|m| m == "password") {
                    "the password method's PAM conversation answers the code prompt with the password, so users with 2FA are refused and those without pass with no code"
                } else {
                    "it never runs PAM's auth stack: those logins are never asked for a code"
                };
                out.push(finding(file, "AuthenticationMethods", Severity::Error, "methods-without-kbd", format!("AuthenticationMethods allows `{joined}` without keyboard-interactive: {why}"), fix));
            }
        }
    }
    if s.password && s.methods.is_none() {
        out.push(finding(file, "PasswordAuthentication", Severity::Info, "password-method", "PasswordAuthentication yes: a client that uses the password method has its password offered as the code, so users with 2FA must use keyboard-interactive (OpenSSH clients try it first)".into(), "set PasswordAuthentication no so that passwords go through keyboard-interactive only"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(lines: &str) -> Settings {
        Settings::parse(lines)
    }

    #[test]
    fn methods_and_flags_are_read() {
        let s = parsed(
            "usepam yes\nkbdinteractiveauthentication yes\npasswordauthentication no\npubkeyauthentication yes\nauthenticationmethods publickey,keyboard-interactive:pam password\n",
        );
        assert!(s.use_pam && s.kbd_interactive && !s.password && s.pubkey);
        assert_eq!(
            s.methods,
            Some(vec![
                vec!["publickey".into(), KBD.into()],
                vec!["password".into()]
            ])
        );
        assert!(s.key_before_pam());
        assert!(!parsed("authenticationmethods any\n").key_before_pam());
        assert!(
            !parsed("authenticationmethods keyboard-interactive publickey,keyboard-interactive\n")
                .key_before_pam()
        );
    }

    #[test]
    fn each_mistake_is_named() {
        let kinds = |text: &str| -> Vec<&'static str> {
            check(&parsed(text), Path::new("/nonexistent"))
                .iter()
                .map(|f| f.kind)
                .collect()
        };
        assert_eq!(kinds("usepam no\n"), ["usepam-off"]);
        assert_eq!(
            kinds(
                "usepam yes\nkbdinteractiveauthentication no\nauthenticationmethods keyboard-interactive\n"
            ),
            ["kbd-interactive-off"]
        );
        assert_eq!(
            kinds(
                "usepam yes\nkbdinteractiveauthentication yes\nauthenticationmethods publickey\n"
            ),
            ["methods-without-kbd"]
        );
        assert_eq!(
            kinds(
                "usepam yes\nkbdinteractiveauthentication yes\npubkeyauthentication yes\nauthenticationmethods any\n"
            ),
            ["key-skips-code"]
        );
        assert!(kinds("usepam yes\nkbdinteractiveauthentication yes\nauthenticationmethods publickey,keyboard-interactive\n").is_empty());
    }
}
