//! The PAM stacks that use twofold: every service file in the PAM directory whose auth stack
//! (includes followed) holds a pam_twofold line, judged with [`super::pam_flow`].
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use pam_twofold::Policy;
use pam_twofold::policy::{ArgError, ModuleArgs, Require};
use pam_twofold::relay;

use super::finding::{Area, Finding, Severity};
use super::pam_flow::{self, Arrival, Impression, Target, any_return, not_required_user};
use super::pam_stack::{At, Module, ProblemKind, ReadProblem, Stack, auth_stack};

/// Where Linux-PAM looks for a module named without a path (Debian's, then others').
const MODULE_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu/security",
    "/usr/lib/x86_64-linux-gnu/security",
    "/lib/aarch64-linux-gnu/security",
    "/usr/lib/aarch64-linux-gnu/security",
    "/lib/security",
    "/usr/lib/security",
    "/lib64/security",
    "/usr/lib64/security",
];

/// What the PAM checks need to know from elsewhere.
pub struct Setting<'a> {
    /// The policy `check` loaded (None: it did not load; its own finding says why).
    pub policy: Option<&'a Policy>,
    /// sshd proves a method (a key) before keyboard-interactive reaches PAM.
    pub ssh_first_factor: bool,
}

/// Far more than any PAM file holds.
const MAX_PAM_FILE: u64 = 1024 * 1024;

/// A PAM file's text; `None` when it is missing or unreadable, and also when it is not a
/// regular file (opening a FIFO would wait for ever; O_NONBLOCK makes the open return) or
/// larger than [`MAX_PAM_FILE`]: the check must finish whatever the directory holds.
fn read_file(path: &Path) -> Option<String> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > MAX_PAM_FILE {
        return None;
    }
    let mut text = String::new();
    file.take(MAX_PAM_FILE).read_to_string(&mut text).ok()?;
    Some(text)
}

/// The auth stack of `service` in `dir`.
pub fn service_stack(dir: &Path, service: &str) -> Stack {
    auth_stack(dir, &dir.join(service), &read_file)
}

/// The service files of `dir` (no hidden files, no package managers' backups).
fn service_files(dir: &Path) -> Result<Vec<PathBuf>, Finding> {
    let entries = fs::read_dir(dir).map_err(|e| {
        Finding::new(
            Area::Pam,
            Severity::Error,
            "pam-dir",
            format!("cannot read the PAM directory: {e}"),
            "check the path (--pam-dir)",
        )
        .in_file(dir)
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()))
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or(".");
            !name.starts_with('.')
                && !name.ends_with('~')
                && !name.contains(".dpkg-")
                && !name.contains(".ucf-")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Every stack in `dir` that uses twofold, judged; returns the findings and the services.
pub fn check_dir(dir: &Path, setting: &Setting<'_>) -> (Vec<Finding>, Vec<String>) {
    let files = match service_files(dir) {
        Ok(files) => files,
        Err(finding) => return (vec![finding], Vec::new()),
    };
    let stacks: Vec<(PathBuf, Stack)> = files
        .into_iter()
        .map(|f| {
            let stack = auth_stack(dir, &f, &read_file);
            (f, stack)
        })
        .collect();
    // Files other stacks include are judged inside those stacks, not as services.
    let included: BTreeSet<PathBuf> = stacks
        .iter()
        .flat_map(|(top, s)| {
            s.modules()
                .into_iter()
                .map(|m| m.at.file.clone())
                .filter(move |f| f != top)
        })
        .collect();
    let mut findings = Vec::new();
    let mut services = Vec::new();
    for (file, stack) in &stacks {
        let uses = stack.modules().iter().any(|m| m.is_twofold());
        let names_twofold = stack.problems.iter().any(|p| p.target.contains("twofold"));
        if included.contains(file) || !(uses || names_twofold) {
            continue;
        }
        let service = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let ssh = setting.ssh_first_factor && service == "sshd";
        findings.extend(stack.problems.iter().map(read_problem));
        findings.extend(check_stack(stack, setting, ssh));
        services.push(service.to_owned());
    }
    let mut seen = BTreeSet::new();
    findings.retain(|f| seen.insert((f.kind, f.file.clone(), f.line, f.problem.clone())));
    (findings, services)
}

fn read_problem(p: &ReadProblem) -> Finding {
    let (problem, fix) = match p.kind {
        ProblemKind::AtIncludeMissing => (
            format!(
                "@include {}: the file does not exist, so pam_start fails and every login through this service fails",
                p.target
            ),
            "create the file or correct the name",
        ),
        ProblemKind::IncludeMissing => (
            format!(
                "includes {}, which does not exist: Linux-PAM puts an always-failing line in its place, so every login through this service fails",
                p.target
            ),
            "create the file or correct the name",
        ),
        ProblemKind::Unparsable => (
            format!(
                "Linux-PAM cannot parse this line ({}), so it always fails",
                p.target
            ),
            "write TYPE CONTROL MODULE [ARGS], e.g. `auth required pam_twofold.so`",
        ),
        ProblemKind::TooLong => (
            format!(
                "the stack is longer than {} lines with its includes (an include repeated or looping?): not checked from here on",
                p.target
            ),
            "include each file once, without loops",
        ),
    };
    Finding::new(Area::Pam, Severity::Error, "include-missing", problem, fix).at(&p.at)
}

/// The findings for every twofold line of one stack.
pub fn check_stack(stack: &Stack, setting: &Setting<'_>, ssh: bool) -> Vec<Finding> {
    let mut findings = Vec::new();
    let modules = stack.modules();
    for (index, module) in modules.iter().enumerate().filter(|(_, m)| m.is_twofold()) {
        findings.extend(check_installed(module));
        let args = check_args(module, setting, &mut findings);
        let Some(args) = args else { continue };
        if args.split_code {
            findings.extend(check_split(&modules, index));
            continue;
        }
        let policy = own_policy(&args, setting);
        findings.extend(check_control(module));
        findings.extend(check_paths(stack, module, policy, ssh));
    }
    findings
}

/// The policy a line reads: its own `config=` when that loads, else the one `check` loaded.
fn own_policy<'a>(
    args: &ModuleArgs,
    setting: &Setting<'a>,
) -> Option<std::borrow::Cow<'a, Policy>> {
    match &args.config {
        Some(path) => Policy::load(path).ok().map(std::borrow::Cow::Owned),
        None => setting.policy.map(std::borrow::Cow::Borrowed),
    }
}

fn check_installed(module: &Module) -> Option<Finding> {
    let found = if module.path.starts_with('/') {
        Path::new(&module.path).is_file()
    } else {
        MODULE_DIRS
            .iter()
            .any(|d| Path::new(d).join(&module.path).is_file())
    };
    if found {
        return None;
    }
    let problem = if module.silent {
        format!(
            "{} is not installed, and `-auth` makes Linux-PAM skip the line silently: no code is asked",
            module.path
        )
    } else {
        format!(
            "{} is not installed: this line fails, and with it every login through this stack",
            module.path
        )
    };
    Some(
        Finding::new(
            Area::Pam,
            Severity::Error,
            "module-missing",
            problem,
            "install twofold (scripts/install.sh) or correct the path",
        )
        .at(&module.at),
    )
}

/// The module's own verdict on its arguments, and the policy file `config=` names.
fn check_args(
    module: &Module,
    setting: &Setting<'_>,
    out: &mut Vec<Finding>,
) -> Option<ModuleArgs> {
    let args = match ModuleArgs::parse(module.args.iter().map(String::as_str)) {
        Ok(args) => args,
        Err(e) => {
            let kind = if e == ArgError::ForwardPass {
                "forward-pass"
            } else {
                "bad-argument"
            };
            let problem = format!(
                "pam_twofold refuses this line, so every login through it fails (PAM_SERVICE_ERR): {e}"
            );
            out.push(
                Finding::new(
                    Area::Pam,
                    Severity::Error,
                    kind,
                    problem,
                    "fix the module arguments as the message says",
                )
                .at(&module.at),
            );
            return None;
        }
    };
    if let Some(path) = &args.config {
        match Policy::load(path) {
            Ok(_) => {}
            Err(e) => {
                let kind = if path.exists() {
                    "config-invalid"
                } else {
                    "config-missing"
                };
                let problem = format!(
                    "config={}: {e}; the module denies every login through this line",
                    path.display()
                );
                out.push(Finding::new(Area::Pam, Severity::Error, kind, problem, "point config= at the policy file, or drop it for /etc/twofold/twofold.toml").at(&module.at));
            }
        }
    }
    check_helper(&args, module, out);
    let require_all = own_policy(&args, setting).is_some_and(|p| p.policy.require == Require::All);
    if args.nullok && require_all {
        out.push(Finding::new(
            Area::Pam,
            Severity::Warning,
            "nullok-with-require-all",
            "nullok with require = \"all\": it does nothing now, but the day policy stops requiring a user, this line lets them through with PAM_SUCCESS, and where twofold is the only auth module, with no factor at all",
            "remove nullok from this line while policy requires 2FA of everyone",
        ).at(&module.at));
    }
    Some(args)
}

/// The login helper the module starts: missing, or one others could replace, fails every login.
fn check_helper(args: &ModuleArgs, module: &Module, out: &mut Vec<Finding>) {
    let helper = args
        .helper
        .clone()
        .unwrap_or_else(|| PathBuf::from(relay::helper_file::DEFAULT_HELPER));
    if let Err(e) = relay::helper_file::usable(&helper) {
        out.push(
            Finding::new(
                Area::Pam,
                Severity::Error,
                "helper-unusable",
                format!("{e}; the module denies every login through this line"),
                "install twofold again (it puts twofold-login in /usr/libexec/twofold, root's), or point helper= at it",
            )
            .at(&module.at),
        );
    }
}

fn check_control(module: &Module) -> Option<Finding> {
    let (kind, problem) = match module.control.as_str() {
        "optional" => (
            "twofold-optional",
            "pam_twofold is `optional`: a wrong code is ignored, and the login passes on the other modules alone",
        ),
        "sufficient" => (
            "twofold-sufficient",
            "pam_twofold is `sufficient`: a wrong code is ignored, and a right one ends the stack at once, skipping every module after it",
        ),
        _ => return None,
    };
    Some(
        Finding::new(
            Area::Pam,
            Severity::Error,
            kind,
            problem,
            "use `auth required pam_twofold.so` after the first factor",
        )
        .at(&module.at),
    )
}

/// The `split_code` line must be followed by a password module, then a judging line.
fn check_split(modules: &[&Module], index: usize) -> Option<Finding> {
    let split = modules[index];
    let rest = &modules[index + 1..];
    let judge = rest
        .iter()
        .position(|m| m.is_twofold() && !m.has_arg("split_code"));
    let (kind, problem) = match judge {
        None => (
            "split-without-judge",
            "split_code takes the code off the password, but no pam_twofold line after it judges the code: the password alone logs in",
        ),
        Some(j) if !rest[..j].iter().any(|m| pam_flow::is_first_factor(m)) => (
            "split-without-password",
            "split_code is followed by the judging pam_twofold line with no password module between them: the code is judged before the password is proven",
        ),
        Some(_) => return None,
    };
    let fix = "use three lines: `auth requisite pam_twofold.so split_code`, `auth requisite pam_unix.so use_first_pass`, `auth required pam_twofold.so` (pam.d-examples/vpn)";
    Some(Finding::new(Area::Pam, Severity::Error, kind, problem, fix).at(&split.at))
}

/// Every path through the stack, for this twofold line.
fn check_paths(
    stack: &Stack,
    module: &Module,
    policy: Option<std::borrow::Cow<'_, Policy>>,
    ssh: bool,
) -> Vec<Finding> {
    let (paths, _) = pam_flow::explore(&stack.entries, &module.at, ssh, &any_return);
    let mut out = Vec::new();
    if paths.arrivals.is_empty() {
        out.push(Finding::new(Area::Pam, Severity::Warning, "unreachable", "no way through this stack reaches pam_twofold: it never asks for a code", "move the line after the first factor, out of the way of jumps and `sufficient` lines").at(&module.at));
    }
    let enrolls = policy
        .as_deref()
        .is_some_and(|p| p.policy.enroll_at_login && p.policy.require != Require::None);
    out.extend(arrival_findings(&paths.arrivals, module, enrolls));
    for bypass in &paths.bypasses {
        out.extend(bypass_finding(stack, module, bypass));
    }
    let not_all = policy
        .as_deref()
        .is_some_and(|p| p.policy.require != Require::All);
    let (_, results) = pam_flow::explore(&stack.entries, &module.at, ssh, &not_required_user);
    if not_all && !results.contains(&true) {
        out.push(Finding::new(
            Area::Pam,
            Severity::Warning,
            "not-required-refused",
            "users policy does not require and who have no 2FA get PAM_IGNORE from pam_twofold, and nothing else in this stack succeeds for them: they cannot log in",
            "add nullok to this line (those users then pass on what came before, e.g. their ssh key), or require 2FA of everyone",
        ).at(&module.at));
    }
    out
}

/// The path reached twofold after a first factor failed, and the login will fail.
fn after_wrong_password(a: &Arrival) -> bool {
    a.first_factor_failed && a.impression == Impression::Negative
}

fn arrival_findings(arrivals: &BTreeSet<Arrival>, module: &Module, enrolls: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let after_failure = arrivals
        .iter()
        .any(|a| !a.first_factor_ok && after_wrong_password(a));
    let unproven = arrivals
        .iter()
        .any(|a| !a.first_factor_ok && !after_wrong_password(a));
    if unproven {
        let nullok = if module.has_arg("nullok") {
            "; with nullok, a user policy does not require passes with nothing at all"
        } else {
            ""
        };
        let problem = format!(
            "pam_twofold can run before any first factor is proven (no password module with required/requisite before it, no ssh key): anyone who knows a user name can lock the account with wrong codes and learn whether it has 2FA, and enroll-at-login refuses to run{nullok}"
        );
        out.push(Finding::new(Area::Pam, Severity::Error, "no-first-factor", problem, "put the password module first and stop the stack when it fails (`@include common-auth` or `auth requisite pam_unix.so`), or for sshd require a key first (AuthenticationMethods publickey,keyboard-interactive)").at(&module.at));
    }
    if after_failure {
        let (severity, what) = if enrolls {
            (
                Severity::Error,
                "with enroll_at_login, someone who knows only a user name is shown a new QR code and can enroll their own phone for a required user without 2FA; and wrong codes lock the account",
            )
        } else {
            (
                Severity::Warning,
                "wrong codes typed by someone who does not know the password lock the account, and the prompt tells them whether it has 2FA",
            )
        };
        let problem = format!(
            "after a wrong password the stack goes on to pam_twofold (the password module is `required`, not `requisite`, or a substack's `die` ends only the substack): {what}"
        );
        out.push(Finding::new(Area::Pam, severity, "after-failed-first-factor", problem, "make the password module `requisite` (or use Debian's `@include common-auth`, which jumps to pam_deny)").at(&module.at));
    }
    out
}

fn bypass_finding(stack: &Stack, module: &Module, bypass: &pam_flow::Bypass) -> Option<Finding> {
    let culprit = bypass
        .culprit
        .as_ref()
        .and_then(|at| stack.modules().into_iter().find(|m| &m.at == at));
    let place: At = culprit.map_or_else(|| module.at.clone(), |m| m.at.clone());
    let Some(culprit) = culprit else {
        let problem = "the stack can succeed although pam_twofold did not pass";
        return Some(Finding::new(Area::Pam, Severity::Error, "bypass", problem, "put `auth required pam_twofold.so` after the first factor, with nothing after it that can end the stack with success").at(&place));
    };
    if culprit.at == module.at {
        // Said by check_control for optional/sufficient; other controls that forgive a failure:
        if matches!(culprit.control.as_str(), "optional" | "sufficient") {
            return None;
        }
        let problem = format!(
            "pam_twofold's control {} lets the login go on after a wrong code: the code does not count",
            culprit.control
        );
        return Some(
            Finding::new(
                Area::Pam,
                Severity::Error,
                "bypass",
                problem,
                "use `required` (a wrong code fails the login)",
            )
            .at(&place),
        );
    }
    let how = match bypass.target {
        Target::NotRun => "skips pam_twofold",
        Target::Ran(_) => "ends the stack with success after pam_twofold failed",
    };
    let (severity, problem) = culprit_problem(culprit, how);
    let fix = "use `required`/`requisite` before pam_twofold, and jumps that land on pam_twofold, not past it";
    Some(Finding::new(Area::Pam, severity, "bypass", problem, fix).at(&place))
}

/// How bad a module is that ends the stack with success past pam_twofold, and what it does.
fn culprit_problem(culprit: &Module, how: &str) -> (Severity, String) {
    match culprit.name() {
        "pam_rootok" => (
            Severity::Info,
            format!(
                "when root runs this service, pam_rootok ({}) {how}: root switches user without a code (Debian's default for su)",
                culprit.control
            ),
        ),
        name if pam_flow::is_first_factor(culprit)
            || name == "pam_permit"
            || culprit.is_twofold() =>
        {
            (
                Severity::Error,
                format!(
                    "when {name} succeeds, its control {} {how}: the login passes without a code",
                    culprit.control
                ),
            )
        }
        name => (
            Severity::Warning,
            format!(
                "when {name} succeeds, its control {} {how}: those logins pass without a code",
                culprit.control
            ),
        ),
    }
}
