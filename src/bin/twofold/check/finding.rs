//! One finding of `twofold check`, and the report: text grouped by area, or JSON with stable
//! field names (`area`, `severity`, `kind`, `file`, `line`, `problem`, `fix`).
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::pam_stack::At;
use crate::error::CliError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Area {
    Policy,
    Store,
    Pam,
    Sshd,
    Clock,
    Syslog,
}

impl Area {
    fn title(self) -> &'static str {
        match self {
            Self::Policy => "Policy",
            Self::Store => "Store",
            Self::Pam => "PAM stacks",
            Self::Sshd => "sshd",
            Self::Clock => "Clock",
            Self::Syslog => "Syslog",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub area: Area,
    pub severity: Severity,
    /// A stable name for the kind of finding (`bypass`, `no-first-factor`, ...).
    pub kind: &'static str,
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    /// What goes wrong.
    pub problem: String,
    /// What to do about it.
    pub fix: String,
}

impl Finding {
    pub fn new(
        area: Area,
        severity: Severity,
        kind: &'static str,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            area,
            severity,
            kind,
            file: None,
            line: None,
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    pub fn in_file(mut self, file: &Path) -> Self {
        self.file = Some(file.to_owned());
        self
    }

    pub fn at(mut self, at: &At) -> Self {
        self.file = Some(at.file.clone());
        self.line = Some(at.line);
        self
    }

    fn place(&self) -> String {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => format!("{}:{line}: ", file.display()),
            (Some(file), None) => format!("{}: ", file.display()),
            _ => String::new(),
        }
    }
}

/// 0 clean (info at most), 1 warnings, 2 errors.
pub fn exit_code(findings: &[Finding]) -> u8 {
    match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Error) => 2,
        Some(Severity::Warning) => 1,
        _ => 0,
    }
}

#[derive(Serialize)]
struct Report<'a> {
    findings: &'a [Finding],
    errors: usize,
    warnings: usize,
    infos: usize,
    exit: u8,
}

fn count(findings: &[Finding], severity: Severity) -> usize {
    findings.iter().filter(|f| f.severity == severity).count()
}

pub fn print(findings: &[Finding], json: bool) -> Result<(), CliError> {
    if json {
        let report = Report {
            findings,
            errors: count(findings, Severity::Error),
            warnings: count(findings, Severity::Warning),
            infos: count(findings, Severity::Info),
            exit: exit_code(findings),
        };
        let text = serde_json::to_string_pretty(&report).map_err(|e| CliError::Io {
            what: "write JSON".into(),
            source: std::io::Error::other(e),
        })?;
        return outln!("{text}");
    }
    let mut areas: Vec<Area> = findings.iter().map(|f| f.area).collect();
    areas.dedup();
    areas.sort();
    areas.dedup();
    for area in areas {
        outln!("== {}", area.title())?;
        for f in findings.iter().filter(|f| f.area == area) {
            let label = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Info => "info",
            };
            outln!("{label}: {}{}", f.place(), f.problem)?;
            if !f.fix.is_empty() {
                outln!("  fix: {}", f.fix)?;
            }
        }
        outln!()?;
    }
    let (e, w) = (
        count(findings, Severity::Error),
        count(findings, Severity::Warning),
    );
    match (e, w) {
        (0, 0) => outln!("No problems found."),
        _ => outln!("{e} error(s), {w} warning(s)."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_severity_decides_the_exit_code() {
        let f = |s| Finding::new(Area::Pam, s, "k", "p", "f");
        assert_eq!(exit_code(&[]), 0);
        assert_eq!(exit_code(&[f(Severity::Info)]), 0);
        assert_eq!(exit_code(&[f(Severity::Info), f(Severity::Warning)]), 1);
        assert_eq!(exit_code(&[f(Severity::Error), f(Severity::Warning)]), 2);
    }

    #[test]
    fn json_field_names_are_stable() {
        let f = Finding::new(Area::Sshd, Severity::Error, "usepam-off", "p", "f")
            .in_file(Path::new("/x"));
        let v = serde_json::to_value(&f).unwrap();
        for key in ["area", "severity", "kind", "file", "line", "problem", "fix"] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v["severity"], "error");
        assert_eq!(v["area"], "sshd");
    }
}
