//! The site policy (`/etc/twofold/twofold.toml`) and the PAM module's arguments.
//!
//! Every key is optional; an unknown key or a value out of range is an error, never ignored:
//! a typo in a security policy must not silently weaken it.
#![forbid(unsafe_code)]

use std::ffi::CString;
use std::fmt;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Group};
use serde::Deserialize;
use twofold_wire::helper_timeout;

use crate::deadline::Deadline;
use crate::mail::MailSection;
use crate::otp::{Algorithm, TotpParams};
pub use crate::qr::QrStyle;
use crate::record::describe_toml_error;
use crate::secure_file::{Expect, OpenError, Owner, Problem, open_checked};
use crate::self_service::settings::check_settings as check_self_service;
use crate::store::settings::check_settings;
use crate::user::Account;

// The `[store]` section is the stores' own settings type: the policy holds it, checks it
// (`check_settings`) and knows nothing else about stores. Re-exported at its old place.
pub use crate::self_service::settings::SelfServiceSection;
pub use crate::store::settings::{DEFAULT_CACHE_DIR, Offline, StoreKind, StoreSection};

pub const DEFAULT_CONFIG: &str = "/etc/twofold/twofold.toml";
const MAX_POLICY_BYTES: u64 = 64 * 1024;

/// The policy file: root's (or, for a private copy, the user's running twofold), and nobody
/// else may change it. It holds no secret: anyone may read it.
fn policy_file() -> Expect {
    Expect {
        what: "policy file",
        owner: Owner::UidOrRoot(nix::unistd::geteuid().as_raw()),
        forbidden_mode: 0o022,
        max_bytes: MAX_POLICY_BYTES,
        single_link: false,
    }
}
/// Steps either side of now; beyond this a stolen code stays valid too long.
pub const MAX_WINDOW: u8 = 10;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Require {
    All,
    Groups,
    #[default]
    None,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySection {
    pub require: Require,
    pub groups: Vec<String>,
    /// A required user without 2FA sets it up during the login (QR code in the conversation).
    pub enroll_at_login: bool,
    /// QR drawing for enroll-at-login (the module argument `qr=` overrides it).
    pub qr: QrStyle,
    /// Shown in the authenticator app; defaults to the host name.
    pub issuer: Option<String>,
    /// Until this day a required user without 2FA may skip the enrollment at login; from it
    /// on, enrollment is mandatory. None: mandatory at once.
    pub enroll_deadline: Option<Deadline>,
}

impl Default for PolicySection {
    fn default() -> Self {
        Self {
            require: Require::None,
            groups: Vec::new(),
            enroll_at_login: true,
            qr: QrStyle::Utf8,
            issuer: None,
            enroll_deadline: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TotpSection {
    pub window: u8,
    pub digits: u8,
    pub period: u32,
    pub algorithm: Algorithm,
    /// Largest clock offset (seconds) a token may be learned to have; 0 turns learning off.
    pub max_drift: u32,
}

impl Default for TotpSection {
    fn default() -> Self {
        Self {
            window: 1,
            digits: 6,
            period: 30,
            algorithm: Algorithm::SHA1,
            max_drift: 600,
        }
    }
}

/// Longest clock offset that may be learned: an hour.
pub const MAX_DRIFT_SECONDS: u32 = 3600;
/// Consecutive codes at one offset needed to learn it (google-authenticator-libpam uses 3).
pub const DRIFT_CODES_NEEDED: u8 = 3;

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HotpSection {
    /// Counters accepted beyond the next expected one (presses that never reached a login).
    pub window: u8,
}

impl Default for HotpSection {
    fn default() -> Self {
        Self { window: 10 }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutSection {
    /// Consecutive wrong codes before the second factor locks; 0 never locks.
    pub max_failures: u32,
    pub lock_seconds: u32,
}

impl Default for LockoutSection {
    fn default() -> Self {
        Self {
            max_failures: 5,
            lock_seconds: 900,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupCodesSection {
    /// Codes made at enrollment and by `twofold codes --regenerate`; 0 makes none.
    pub count: u32,
}

impl Default for BackupCodesSection {
    fn default() -> Self {
        Self { count: 10 }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustSection {
    /// 0: always ask. N: after a good code from a remote host, offer to skip the code from that
    /// host for N days.
    pub days: u32,
    /// PAM services whose PAM_RHOST is the real peer address (sshd takes it from the socket).
    /// A grant is offered and honoured only on these, and only on the service that earned it:
    /// a web or VPN service may take its "remote host" from a header the client writes.
    pub services: Vec<String>,
}

impl Default for TrustSection {
    fn default() -> Self {
        Self {
            days: 0,
            services: vec!["sshd".to_owned()],
        }
    }
}

impl TrustSection {
    /// Whether "trust this host" applies to logins through `service`.
    pub fn covers(&self, service: &str) -> bool {
        self.days > 0 && self.services.iter().any(|s| s == service)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub policy: PolicySection,
    pub totp: TotpSection,
    pub hotp: HotpSection,
    pub lockout: LockoutSection,
    pub backup_codes: BackupCodesSection,
    pub trust: TrustSection,
    pub store: StoreSection,
    pub mail: MailSection,
    /// `[[rule]]`: ordered, first match wins, none matching falls back to `[policy] require`.
    pub rule: Vec<crate::rules::Rule>,
    pub self_service: SelfServiceSection,
}

/// Lends the `[store]` settings to whoever builds a store from a whole policy
/// ([`crate::store::AnyStore::from_policy`]), so that the stores never name the policy.
impl AsRef<StoreSection> for Policy {
    fn as_ref(&self) -> &StoreSection {
        &self.store
    }
}

#[derive(Debug)]
pub enum PolicyError {
    Missing {
        path: PathBuf,
    },
    /// Not a file the policy may be (a link, another owner, writable by others, too large), or
    /// unreadable.
    File(OpenError),
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    /// Policy names a group the system does not know: refusing beats requiring nobody.
    UnknownGroup {
        group: String,
    },
    UnknownUser {
        user: String,
    },
    /// The user name does not resolve to one canonical account.
    Account(String),
    Lookup {
        what: String,
        source: nix::Error,
    },
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing { path } => write!(
                f,
                "policy file {} does not exist; twofold fails closed without it (restore it, or \
                 reinstall: scripts/install.sh writes one; require = \"none\" turns 2FA off)",
                path.display()
            ),
            Self::File(e) => write!(f, "{e}"),
            Self::Invalid {
                path,
                line: Some(line),
                message,
            } => {
                write!(f, "policy file {} line {line}: {message}", path.display())
            }
            Self::Invalid {
                path,
                line: None,
                message,
            } => {
                write!(f, "policy file {}: {message}", path.display())
            }
            Self::UnknownGroup { group } => write!(
                f,
                "policy requires 2FA for group '{group}', which does not resolve: it does not \
                 exist (check [policy] groups) or its directory (LDAP, SSSD) is not answering"
            ),
            Self::UnknownUser { user } => write!(f, "user '{user}' is not in the passwd database"),
            Self::Account(e) => write!(f, "{e}"),
            Self::Lookup { what, source } => write!(f, "cannot look up {what}: {source}"),
        }
    }
}

impl std::error::Error for PolicyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::File(e) => Some(e),
            _ => None,
        }
    }
}

impl Policy {
    /// Reads the policy. The file must exist: a missing policy is an error (the module denies),
    /// never "2FA required for nobody" — moving the file aside must not turn 2FA off. The
    /// installer always writes one; `require = "none"` is how an admin turns 2FA off.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let contents = open_checked(path, &policy_file()).map_err(|e| match e.problem {
            Problem::Missing => PolicyError::Missing {
                path: path.to_owned(),
            },
            _ => PolicyError::File(e),
        })?;
        let text = std::str::from_utf8(&contents.bytes).map_err(|_| PolicyError::Invalid {
            path: path.to_owned(),
            line: None,
            message: "it is not UTF-8 text".into(),
        })?;
        Self::parse(text, path)
    }

    /// Parses and validates policy text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, PolicyError> {
        let policy: Policy = toml::from_str(text).map_err(|err| {
            let (line, message) = describe_toml_error(text, &err);
            PolicyError::Invalid {
                path: path.to_owned(),
                line,
                message,
            }
        })?;
        policy.check().map_err(|message| PolicyError::Invalid {
            path: path.to_owned(),
            line: None,
            message,
        })?;
        Ok(policy)
    }

    /// Values a key's type allows but the policy does not; the message names section and key.
    fn check(&self) -> Result<(), String> {
        self.check_codes()?;
        check_settings(&self.store).map_err(|m| format!("[store] {m}"))?;
        check_self_service(&self.self_service).map_err(|m| format!("[self_service] {m}"))?;
        self.check_limits()?;
        self.mail.check().map_err(|m| format!("[mail] {m}"))?;
        crate::rules::check(&self.rule, &self.trust.services)?;
        self.check_who()
    }

    /// `[totp]` and `[hotp]`: what new tokens use and how far a code may stray.
    fn check_codes(&self) -> Result<(), String> {
        self.new_params()
            .validate()
            .map_err(|m| format!("[totp] {m}"))?;
        if self.totp.window > MAX_WINDOW {
            return Err(format!(
                "[totp] window = {} (at most {MAX_WINDOW})",
                self.totp.window
            ));
        }
        if self.totp.max_drift > MAX_DRIFT_SECONDS {
            return Err(format!(
                "[totp] max_drift = {} (0 turns learning off; at most {MAX_DRIFT_SECONDS} seconds)",
                self.totp.max_drift
            ));
        }
        if self.hotp.window > crate::record::MAX_RECORD_WINDOW {
            return Err(format!(
                "[hotp] window = {} (at most {})",
                self.hotp.window,
                crate::record::MAX_RECORD_WINDOW
            ));
        }
        Ok(())
    }

    /// `[lockout]`, `[backup_codes]`, `[trust]`: counts and durations within sense.
    fn check_limits(&self) -> Result<(), String> {
        if self.lockout.max_failures > 1000 {
            return Err("[lockout] max_failures must be 0 (off) to 1000".into());
        }
        if !(1..=30 * 86_400).contains(&self.lockout.lock_seconds) {
            return Err("[lockout] lock_seconds must be 1 to 2592000 (30 days)".into());
        }
        if self.backup_codes.count as usize > crate::backup::MAX_CODES {
            return Err(format!(
                "[backup_codes] count must be 0 to {}",
                crate::backup::MAX_CODES
            ));
        }
        if self.trust.days > 365 {
            return Err("[trust] days must be 0 (off) to 365".into());
        }
        if self
            .trust
            .services
            .iter()
            .any(|s| s.is_empty() || s.contains('/'))
        {
            return Err(
                "[trust] services must be PAM service names (\"sshd\"), not empty or paths".into(),
            );
        }
        Ok(())
    }

    /// `[policy]`: who must use 2FA, and the issuer apps show.
    fn check_who(&self) -> Result<(), String> {
        let policy = &self.policy;
        if policy.require == Require::Groups && policy.groups.is_empty() {
            return Err("[policy] require = \"groups\" needs a non-empty groups list".into());
        }
        if policy.require != Require::Groups && !policy.groups.is_empty() {
            return Err(
                "[policy] groups is set but require is not \"groups\"; set require = \"groups\" or remove groups".into(),
            );
        }
        if let Some(issuer) = &policy.issuer {
            if issuer.is_empty() || issuer.contains(':') || issuer.chars().any(char::is_control) {
                return Err(
                    "[policy] issuer must be non-empty, without ':' or control characters".into(),
                );
            }
        }
        Ok(())
    }

    /// Days left before `[policy] enroll_deadline` at `now`: Some while a required user
    /// without 2FA may still skip the enrollment, None once it is mandatory (or no deadline).
    pub fn grace_days(&self, now: i64) -> Option<u32> {
        self.policy.enroll_deadline.as_ref()?.days_left(now)
    }

    /// Algorithm, digits and period for new enrollments (existing records keep their own).
    pub fn new_params(&self) -> TotpParams {
        TotpParams {
            algorithm: self.totp.algorithm,
            digits: self.totp.digits,
            period: self.totp.period,
        }
    }

    /// The issuer shown in authenticator apps: the policy's, else this host's short name
    /// (a fully qualified name makes the QR code too big for an 80×24 terminal).
    pub fn issuer(&self) -> String {
        if let Some(issuer) = &self.policy.issuer {
            return issuer.clone();
        }
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .map(|h| h.split('.').next().unwrap_or_default().replace(':', "-"))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "twofold".to_owned())
    }

    /// Whether policy makes 2FA mandatory for this account. Groups are resolved through NSS,
    /// so LDAP/SSSD groups count. Any lookup that fails, and a policy group that does not
    /// resolve (a directory that is down looks like that), is an error the caller fails
    /// closed on, never a "no".
    pub fn requires_2fa(&self, account: &Account) -> Result<bool, PolicyError> {
        match self.policy.require {
            Require::None => Ok(false),
            Require::All => Ok(true),
            Require::Groups => in_any_group(account, &self.policy.groups),
        }
    }
}

/// Whether `account` is in one of `groups` (policy groups, a rule's `group`). A group that
/// does not resolve is an error: refusing beats deciding without it. Membership is asked two
/// independent ways, and either one counts: getgrouplist can silently leave out the groups of
/// a source that did not answer, while the group's own member list (and the primary gid)
/// come from the group entry itself.
pub fn in_any_group(account: &Account, groups: &[String]) -> Result<bool, PolicyError> {
    member_of_any(
        account,
        groups.iter().map(|g| (g.as_str(), Group::from_name(g))),
    )
}

/// The policy's groups looked up once, for a run over many accounts (`twofold list`): the
/// answers of [`in_any_group`] without asking NSS for every group again for every account.
pub struct PolicyGroups {
    groups: Vec<(String, nix::Result<Option<Group>>)>,
}

impl PolicyGroups {
    /// The groups `policy` requires 2FA of (none unless `require = "groups"`).
    pub fn resolve(policy: &Policy) -> Self {
        let names = match policy.policy.require {
            Require::Groups => policy.policy.groups.as_slice(),
            Require::None | Require::All => &[],
        };
        Self {
            groups: names
                .iter()
                .map(|g| (g.clone(), Group::from_name(g)))
                .collect(),
        }
    }
}

impl Policy {
    /// [`Policy::requires_2fa`] with the policy's groups looked up beforehand.
    pub fn requires_2fa_in(
        &self,
        account: &Account,
        groups: &PolicyGroups,
    ) -> Result<bool, PolicyError> {
        match self.policy.require {
            Require::Groups => member_of_any(
                account,
                groups.groups.iter().map(|(name, found)| {
                    (
                        name.as_str(),
                        found.as_ref().map(|g| g.as_ref()).map_err(|e| *e),
                    )
                }),
            ),
            _ => self.requires_2fa(account),
        }
    }
}

/// [`in_any_group`] over groups already looked up (each a name and what NSS answered for it),
/// in the policy's order: the first match, or the first group that did not resolve, decides.
fn member_of_any<'a, G: std::borrow::Borrow<Group>>(
    account: &Account,
    groups: impl Iterator<Item = (&'a str, nix::Result<Option<G>>)>,
) -> Result<bool, PolicyError> {
    let user = account.name.as_str();
    let name = CString::new(user).map_err(|_| PolicyError::UnknownUser {
        user: user.to_owned(),
    })?;
    let member_of =
        nix::unistd::getgrouplist(&name, Gid::from_raw(account.gid)).map_err(|source| {
            PolicyError::Lookup {
                what: format!("the groups of '{user}'"),
                source,
            }
        })?;
    for (group, found) in groups {
        let found = found
            .map_err(|source| PolicyError::Lookup {
                what: format!("group '{group}'"),
                source,
            })?
            .ok_or_else(|| PolicyError::UnknownGroup {
                group: group.to_owned(),
            })?;
        let entry = found.borrow();
        if entry.gid.as_raw() == account.gid
            || member_of.contains(&entry.gid)
            || entry.mem.iter().any(|m| m == user)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Arguments on the module's line in /etc/pam.d.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModuleArgs {
    pub config: Option<PathBuf>,
    /// The login helper the module starts (default /usr/libexec/twofold/twofold-login); read
    /// by the module itself (crates/pam-relay), kept here so that the line parses whole.
    pub helper: Option<PathBuf>,
    /// How long the module waits for the helper, in seconds (`helper_timeout=`); read by the
    /// module too, checked here by the same rule (twofold_wire::helper_timeout).
    pub helper_timeout: Option<u32>,
    pub debug: bool,
    /// A user not required to use 2FA and without it passes (PAM_SUCCESS) instead of being
    /// ignored (PAM_IGNORE). For stacks where twofold is the only auth module.
    pub nullok: bool,
    pub prompt: Option<String>,
    /// QR drawing for enroll-at-login, overriding the policy's.
    pub qr: Option<QrStyle>,
    /// The first of two twofold lines around the password module, for applications with a
    /// single prompt (VPNs): take `password123456`, hand the password on as PAM_AUTHTOK, keep
    /// the code for the second twofold line, which judges it after the password was proven.
    /// This line judges, counts and reveals nothing.
    pub split_code: bool,
    /// With `split_code`: take password and code from PAM_AUTHTOK as the application set it.
    pub first_pass: Option<FirstPass>,
}

/// `try_first_pass` / `use_first_pass`: where the combined password+code comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstPass {
    /// Use PAM_AUTHTOK if it is set, else ask.
    Try,
    /// Use PAM_AUTHTOK; without it the login fails.
    Use,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgError {
    Unknown(String),
    Duplicate(String),
    Empty(String),
    Conflict(&'static str, &'static str),
    /// An argument that only makes sense together with another.
    Needs(&'static str, &'static str),
    /// `forward_pass`: judged the code before the password was checked.
    ForwardPass,
    /// A value out of range, with why.
    Invalid(String),
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(arg) => write!(
                f,
                "unknown module argument '{arg}' (known: config=PATH, debug, helper=PATH, helper_timeout=SECONDS, nullok, prompt=TEXT, qr=utf8|utf8-light|ascii, split_code, try_first_pass, use_first_pass)"
            ),
            Self::Duplicate(name) => write!(f, "module argument '{name}' is given twice"),
            Self::Empty(name) => write!(f, "module argument '{name}=' needs a value"),
            Self::Conflict(a, b) => {
                write!(f, "module arguments '{a}' and '{b}' exclude each other")
            }
            Self::Needs(a, b) => write!(f, "module argument '{a}' only works with '{b}'"),
            Self::Invalid(why) => write!(f, "{why}"),
            Self::ForwardPass => write!(
                f,
                "module argument 'forward_pass' is no longer accepted: it judged the code before \
                 the password was checked, so anyone knowing a user name could lock the account, \
                 learn whether it has 2FA, or enroll it. Use two lines around the password module: \
                 `auth requisite pam_twofold.so split_code`, `auth requisite pam_unix.so \
                 use_first_pass`, `auth required pam_twofold.so` (see pam.d-examples/vpn)"
            ),
        }
    }
}

impl std::error::Error for ArgError {}

pub const DEFAULT_PROMPT: &str = "Verification code: ";
pub const COMBINED_PROMPT: &str = "Password & verification code: ";

impl ModuleArgs {
    pub fn parse<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<Self, ArgError> {
        let mut out = Self::default();
        let mut seen = Vec::new();
        for arg in args {
            let (name, value) = match arg.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (arg, None),
            };
            if seen.contains(&name) {
                return Err(ArgError::Duplicate(name.to_owned()));
            }
            seen.push(name);
            let value_of = |v: Option<&str>| match v {
                Some(v) if !v.is_empty() => Ok(v.to_owned()),
                _ => Err(ArgError::Empty(name.to_owned())),
            };
            match (name, value) {
                ("config", v) => out.config = Some(PathBuf::from(value_of(v)?)),
                ("helper", v) => out.helper = Some(PathBuf::from(value_of(v)?)),
                ("helper_timeout", v) => {
                    let seconds = helper_timeout::parse_seconds(&value_of(v)?);
                    out.helper_timeout = Some(seconds.map_err(ArgError::Invalid)?);
                }
                ("prompt", v) => out.prompt = Some(value_of(v)?),
                ("qr", Some(style)) => match style.parse() {
                    Ok(style) => out.qr = Some(style),
                    Err(_) => return Err(ArgError::Unknown(arg.to_owned())),
                },
                ("debug", None) => out.debug = true,
                ("nullok", None) => out.nullok = true,
                ("split_code", None) => out.split_code = true,
                ("forward_pass", _) => return Err(ArgError::ForwardPass),
                ("try_first_pass" | "use_first_pass", None) if out.first_pass.is_some() => {
                    return Err(ArgError::Conflict("try_first_pass", "use_first_pass"));
                }
                ("try_first_pass", None) => out.first_pass = Some(FirstPass::Try),
                ("use_first_pass", None) => out.first_pass = Some(FirstPass::Use),
                _ => return Err(ArgError::Unknown(arg.to_owned())),
            }
        }
        if out.first_pass.is_some() && !out.split_code {
            // Taking the code off PAM_AUTHTOK only makes sense before the password module.
            let name = match out.first_pass {
                Some(FirstPass::Try) => "try_first_pass",
                _ => "use_first_pass",
            };
            return Err(ArgError::Needs(name, "split_code"));
        }
        Ok(out)
    }

    pub fn config_path(&self) -> &Path {
        self.config.as_deref().unwrap_or(Path::new(DEFAULT_CONFIG))
    }

    pub fn prompt(&self) -> &str {
        self.prompt.as_deref().unwrap_or(DEFAULT_PROMPT)
    }

    /// The question when password and code are asked together (`split_code`).
    pub fn combined_prompt(&self) -> &str {
        self.prompt.as_deref().unwrap_or(COMBINED_PROMPT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::Nss;

    fn parse(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse(text, Path::new("/test/twofold.toml"))
    }

    #[test]
    fn the_shipped_policy_parses_to_the_defaults_and_its_keys_exist() {
        let shipped = include_str!("../etc/twofold.toml");
        assert_eq!(parse(shipped).unwrap(), Policy::default());
        // Every commented-out key, switched on, is a key the parser knows.
        let uncommented: String = shipped
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest) if rest.contains(" = ") && !rest.starts_with(' ') => rest,
                Some(rest) if rest.starts_with("[[") => rest,
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let err = parse(&uncommented).map(|_| ()).unwrap_err().to_string();
        // Only value combinations are refused (a url with kind = "system", groups with
        // require = "none"), never an unknown key.
        assert!(!err.contains("unknown field"), "{err}");
    }

    #[test]
    fn empty_policy_is_the_documented_defaults() {
        let p = parse("").unwrap();
        assert_eq!(p.policy.require, Require::None);
        assert_eq!(
            p.totp,
            TotpSection {
                window: 1,
                digits: 6,
                period: 30,
                algorithm: Algorithm::SHA1,
                max_drift: 600,
            }
        );
        assert_eq!(p.hotp.window, 10);
        assert_eq!(p.store.dir, PathBuf::from("/var/lib/twofold/users"));
        assert_eq!(
            p.lockout,
            LockoutSection {
                max_failures: 5,
                lock_seconds: 900
            }
        );
        assert_eq!((p.backup_codes.count, p.trust.days), (10, 0));
    }

    #[test]
    fn full_policy_parses() {
        let p = parse(
            r#"
            [policy]
            require = "groups"
            groups = ["wheel", "staff"]
            issuer = "Example Corp"
            [totp]
            window = 2
            digits = 8
            period = 60
            algorithm = "SHA256"
            [lockout]
            max_failures = 3
            lock_seconds = 60
            [backup_codes]
            count = 5
            [trust]
            days = 7
            [store]
            kind = "system"
            dir = "/srv/twofold"
            "#,
        )
        .unwrap();
        assert_eq!(p.policy.groups, ["wheel", "staff"]);
        assert_eq!(
            p.lockout,
            LockoutSection {
                max_failures: 3,
                lock_seconds: 60
            }
        );
        assert_eq!((p.backup_codes.count, p.trust.days), (5, 7));
        assert_eq!(p.issuer(), "Example Corp");
        assert_eq!(
            p.new_params(),
            TotpParams {
                algorithm: Algorithm::SHA256,
                digits: 8,
                period: 60
            }
        );
    }

    #[test]
    fn mistakes_are_errors_with_a_line() {
        let cases = [
            ("[policy]\nrequire = \"everyone\"\n", "everyone"),
            ("[policy]\nrequre = \"all\"\n", "requre"),
            ("[totp]\ndigits = 9\n", "digits"),
            ("[totp]\nwindow = 50\n", "window"),
            ("[totp]\nalgorithm = \"MD5\"\n", "MD5"),
            ("[policy]\nrequire = \"groups\"\n", "groups"),
            ("[policy]\ngroups = [\"wheel\"]\n", "groups"),
            ("[store]\ndir = \"relative\"\n", "absolute"),
            ("[store]\nkind = \"cloud\"\n", "cloud"),
            // The stores' own settings rules (check_settings) run when the policy loads.
            (
                "[store]\nkind = \"postgres\"\n",
                "[store] kind = \"postgres\" needs a url",
            ),
            (
                "[store]\noffline = \"maybe\"\n",
                "expected `deny` or `cache`",
            ),
            ("[nonsense]\n", "nonsense"),
            ("[lockout]\nlock_seconds = 0\n", "lock_seconds"),
            ("[backup_codes]\ncount = 500\n", "count"),
            ("[trust]\ndays = 1000\n", "days"),
            ("[policy]\nenroll_deadline = \"2030-02-30\"\n", "YYYY-MM-DD"),
            (
                "[policy]\nenroll_deadline = 20300101\n",
                "expected a string",
            ),
            ("[mail]\npending_days = 0\n", "[mail] pending_days"),
            ("[mail]\ndomain = \"a b\"\n", "[mail] domain"),
            ("not toml", "/test/twofold.toml"),
        ];
        for (text, needle) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?} gave {err}");
            assert!(err.contains("/test/twofold.toml"), "{err}");
        }
        let err = parse("[policy]\n\nrequre = \"all\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn requirement_follows_policy_and_groups() {
        let root = Account::resolve(&Nss, "root").unwrap();
        assert!(!parse("").unwrap().requires_2fa(&root).unwrap());
        assert!(
            parse("[policy]\nrequire = \"all\"")
                .unwrap()
                .requires_2fa(&root)
                .unwrap()
        );
        let in_root = parse("[policy]\nrequire = \"groups\"\ngroups = [\"root\"]").unwrap();
        assert!(in_root.requires_2fa(&root).unwrap());
        let typo =
            parse("[policy]\nrequire = \"groups\"\ngroups = [\"no-such-group-twofold\"]").unwrap();
        assert!(matches!(
            typo.requires_2fa(&root),
            Err(PolicyError::UnknownGroup { .. })
        ));
    }

    #[test]
    fn qr_styles_are_the_same_words_in_the_policy_and_the_arguments() {
        for (name, style) in QrStyle::NAMES {
            let policy = Policy::parse(&format!("[policy]\nqr = \"{name}\""), Path::new("/p"));
            assert_eq!(policy.unwrap().policy.qr, style);
            let args = ModuleArgs::parse([format!("qr={name}").as_str()]).unwrap();
            assert_eq!(args.qr, Some(style));
        }
        let err = Policy::parse("[policy]\nqr = \"utf8-dark\"", Path::new("/p")).unwrap_err();
        assert!(err.to_string().contains("utf8, utf8-light, ascii"), "{err}");
        assert_eq!(
            ModuleArgs::parse(["qr=none"]),
            Err(ArgError::Unknown("qr=none".into()))
        );
    }

    #[test]
    fn module_arguments_are_strict() {
        let args =
            ModuleArgs::parse(["config=/etc/x.toml", "debug", "nullok", "prompt=Code: "]).unwrap();
        assert_eq!(args.config_path(), Path::new("/etc/x.toml"));
        assert!(args.debug && args.nullok);
        assert_eq!(args.prompt(), "Code: ");
        assert_eq!(ModuleArgs::parse([]).unwrap().prompt(), DEFAULT_PROMPT);
        assert_eq!(
            ModuleArgs::parse(["nulok"]),
            Err(ArgError::Unknown("nulok".into()))
        );
        assert_eq!(
            ModuleArgs::parse(["debug=1"]),
            Err(ArgError::Unknown("debug=1".into()))
        );
        assert_eq!(
            ModuleArgs::parse(["config="]),
            Err(ArgError::Empty("config".into()))
        );
        assert_eq!(
            ModuleArgs::parse(["debug", "debug"]),
            Err(ArgError::Duplicate("debug".into()))
        );
    }

    #[test]
    fn helper_timeout_takes_whole_seconds_from_1_to_3600() {
        let args = ModuleArgs::parse(["helper_timeout=90"]).unwrap();
        assert_eq!(args.helper_timeout, Some(90));
        for bad in [
            "helper_timeout=0",
            "helper_timeout=3601",
            "helper_timeout=5s",
        ] {
            let err = ModuleArgs::parse([bad]).unwrap_err();
            assert!(err.to_string().contains("from 1 to 3600"), "{bad}: {err}");
        }
        assert_eq!(
            ModuleArgs::parse(["helper_timeout="]),
            Err(ArgError::Empty("helper_timeout".into()))
        );
    }

    #[test]
    fn forward_pass_is_refused_and_first_pass_needs_split_code() {
        let err = ModuleArgs::parse(["forward_pass"]).unwrap_err();
        assert_eq!(err, ArgError::ForwardPass);
        assert!(err.to_string().contains("split_code"), "{err}");
        assert_eq!(
            ModuleArgs::parse(["use_first_pass"]),
            Err(ArgError::Needs("use_first_pass", "split_code"))
        );
        let args = ModuleArgs::parse(["split_code", "try_first_pass"]).unwrap();
        assert_eq!(
            (args.split_code, args.first_pass),
            (true, Some(FirstPass::Try))
        );
    }

    #[test]
    fn a_missing_policy_file_is_an_error_never_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let err = Policy::load(&dir.path().join("twofold.toml")).unwrap_err();
        assert!(matches!(err, PolicyError::Missing { .. }), "{err}");
        assert!(err.to_string().contains("fails closed"), "{err}");
    }

    #[test]
    fn trust_applies_to_sshd_alone_unless_listed() {
        let p = parse("[trust]\ndays = 7").unwrap();
        assert!(p.trust.covers("sshd") && !p.trust.covers("cockpit"));
        let p = parse("[trust]\ndays = 7\nservices = [\"sshd\", \"login\"]").unwrap();
        assert!(p.trust.covers("login"));
        assert!(
            !parse("[trust]\nservices = [\"sshd\"]")
                .unwrap()
                .trust
                .covers("sshd")
        );
        assert!(parse("[trust]\nservices = [\"\"]").is_err());
    }
}
