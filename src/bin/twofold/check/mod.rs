//! `twofold check`: before 2FA bites, what would go wrong — the policy and its store, every
//! PAM stack that uses the module, sshd's settings (its `Match` blocks too), the clock, syslog — each finding with its
//! severity, file and line, what goes wrong and the fix. Exit 0 clean, 1 warnings, 2 errors.
//! With `--user`, what one login would do, step by step. Reads only; changes nothing.
#![forbid(unsafe_code)]

mod clock;
mod command;
mod finding;
mod pam;
mod pam_flow;
mod pam_stack;
mod policy;
mod rules;
mod sshd;
mod sshd_match;
mod syslog;
mod user;

use std::path::Path;
use std::process::ExitCode;

use pam_twofold::policy::DEFAULT_CONFIG;

use crate::cli::CheckArgs;
use crate::error::CliError;
use finding::{Area, Finding, Severity};

/// Runs the check; the exit code says how it went.
pub fn run(config: Option<&Path>, args: &CheckArgs) -> ExitCode {
    let config = config.unwrap_or(Path::new(DEFAULT_CONFIG));
    let result = match &args.user {
        Some(user) => run_user(config, args, user),
        None => run_all(config, args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            warn!("{e}");
            ExitCode::from(2)
        }
    }
}

fn run_all(config: &Path, args: &CheckArgs) -> Result<u8, CliError> {
    let (policy, mut findings) = policy::check(config);
    let sshd = sshd::effective(args.sshd_config.as_deref());
    let key_first = sshd.as_ref().is_ok_and(|(s, _)| s.key_before_pam());
    let setting = pam::Setting {
        policy: policy.as_ref(),
        ssh_first_factor: key_first,
    };
    let (pam_findings, services) = pam::check_dir(&args.pam_dir, &setting);
    findings.extend(pam_findings);
    if let Some(policy) = &policy {
        findings.extend(rules::check(policy, config, &services));
    }
    if services.is_empty() {
        findings.push(
            Finding::new(
                Area::Pam,
                Severity::Warning,
                "not-used",
                "no service in this PAM directory uses pam_twofold: no login asks for a code yet",
                "add `auth required pam_twofold.so` after the first factor (pam.d-examples/)",
            )
            .in_file(&args.pam_dir),
        );
    }
    if services.iter().any(|s| s == "sshd") {
        match sshd {
            Ok((settings, file)) => {
                let global = sshd::check(&settings, &file);
                let reported: Vec<&str> = global.iter().map(|f| f.kind).collect();
                let in_blocks = sshd_match::check(&settings, &reported, &file);
                findings.extend(global);
                findings.extend(in_blocks);
            }
            Err(finding) => findings.push(finding),
        }
    }
    findings.push(clock::check());
    findings.push(syslog::check());
    finding::print(&findings, args.json)?;
    Ok(finding::exit_code(&findings))
}

fn run_user(config: &Path, args: &CheckArgs, user: &str) -> Result<u8, CliError> {
    let policy = pam_twofold::Policy::load(config)?;
    // This user's settings, `Match` blocks applied, as sshd would use them for this login.
    let connection = sshd::Connection {
        user,
        rhost: args.rhost.as_deref(),
    };
    let ssh_key_first = args.service == "sshd"
        && sshd::effective_for(args.sshd_config.as_deref(), Some(&connection))
            .is_ok_and(|(s, _)| s.use_pam && s.key_before_pam());
    let ssh_auth_info = match &args.ssh_key {
        Some(file) => Some(rules::auth_info_from_key_file(file)?),
        None => None,
    };
    let request = user::Request {
        user,
        service: &args.service,
        rhost: args.rhost.as_deref(),
        pam_dir: &args.pam_dir,
        ssh_key_first,
        ssh_auth_info: ssh_auth_info.as_deref(),
    };
    user::print(&user::walk(&policy, &request), args.json)?;
    Ok(0)
}
