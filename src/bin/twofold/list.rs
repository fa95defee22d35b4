//! `twofold list [--json]`: every enrolled user, and the users policy requires who have not
//! enrolled yet (accounts NSS lists that can log in, and members of the policy's groups).
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::io::Write;

use pam_twofold::UserName;
use pam_twofold::accounts::{self, PasswdEntry};
use pam_twofold::login::format_time;
use pam_twofold::policy::{PolicyError, Require};

use crate::Context;
use crate::cli::ListArgs;
use crate::error::CliError;
use crate::out;
use crate::status::Summary;

/// Accounts a person logs in with (see [`PasswdEntry::is_login_account`]), as NSS lists
/// them: local, LDAP and SSSD users alike.
pub fn login_accounts() -> Result<Vec<PasswdEntry>, CliError> {
    let all = accounts::all().map_err(CliError::Accounts)?;
    Ok(all
        .into_iter()
        .filter(PasswdEntry::is_login_account)
        .collect())
}

/// Users who may be required but have no record: candidates, checked against policy later.
fn candidates(context: &Context) -> Result<BTreeSet<String>, CliError> {
    if context.policy.policy.require == Require::None {
        return Ok(BTreeSet::new());
    }
    let accounts = login_accounts()?;
    if context.policy.policy.require == Require::All {
        return Ok(accounts.into_iter().map(|a| a.name).collect());
    }
    let mut names = BTreeSet::new();
    for group in &context.policy.policy.groups {
        if let Ok(Some(g)) = nix::unistd::Group::from_name(group) {
            names.extend(g.mem);
            let primary = accounts.iter().filter(|a| a.gid == g.gid.as_raw());
            names.extend(primary.map(|a| a.name.clone()));
        }
    }
    Ok(names)
}

pub fn run(context: &Context, args: ListArgs) -> Result<(), CliError> {
    let enrolled = context.store.users()?;
    let mut rows = Vec::new();
    let mut seen = BTreeSet::new();
    let mut unreadable = 0;
    for (user, record) in enrolled {
        seen.insert(user.to_string());
        match record {
            Ok(record) => rows.push(Summary::new(context, user, Some(record))),
            Err(e) => {
                warn!("warning: {e}");
                unreadable += 1;
            }
        }
    }
    for name in candidates(context)? {
        let Ok(user) = UserName::parse(&name) else {
            continue;
        };
        if seen.contains(&name) {
            continue;
        }
        let summary = Summary::new(context, user, None);
        if matches!(summary.required, Ok(true)) {
            rows.push(summary);
        }
    }
    rows.sort_by(|a, b| a.user.cmp(&b.user));

    // A reader that stops early (`| head -1`) is not an error: see out.rs.
    out::report(if args.json {
        write_json(&rows)
    } else {
        print_table(&rows)
    })?;
    // A policy that cannot decide (a group that does not exist) is the admin's to fix: on
    // stderr, and a failure. A record whose account is gone is only shown ("unknown").
    let undecided: Vec<&PolicyError> = rows
        .iter()
        .filter_map(|r| r.required.as_ref().err())
        .filter(|e| !matches!(e, PolicyError::Account(_)))
        .collect();
    let reasons: BTreeSet<String> = undecided.iter().map(ToString::to_string).collect();
    for e in &reasons {
        warn!("{e}");
    }
    match (unreadable, undecided.len()) {
        (0, 0) => Ok(()),
        (0, count) => Err(CliError::RequiredUndecided { count }),
        (count, _) => Err(CliError::Unreadable { count }),
    }
}

/// One row at a time into a buffer: 100 000 users must not mean 100 000 JSON trees in memory
/// (nor, with line-buffered stdout, one write per line).
fn write_json(rows: &[Summary]) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    out.write_all(b"[")?;
    for (i, row) in rows.iter().enumerate() {
        out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
        serde_json::to_writer_pretty(&mut out, &row.to_json())?;
    }
    out.write_all(b"\n]\n")?;
    out.flush()
}

/// The table, each column as wide as its widest cell: states (a lock's time) vary in length.
fn print_table(rows: &[Summary]) -> std::io::Result<()> {
    let header = [
        "USER",
        "STATE",
        "REQUIRED",
        "BACKUP",
        "TRUSTED",
        "LAST USED",
    ]
    .map(String::from);
    let cells: Vec<[String; 6]> = std::iter::once(header)
        .chain(rows.iter().map(row_cells))
        .collect();
    let mut widths = [0; 6];
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for [user, state, required, backup, trusted, last_used] in &cells {
        let [w0, w1, w2, w3, w4, _] = widths;
        writeln!(
            out,
            "{user:w0$}  {state:w1$}  {required:w2$}  {backup:>w3$}  {trusted:>w4$}  {last_used}"
        )?;
    }
    out.flush()
}

fn row_cells(row: &Summary) -> [String; 6] {
    let (backup, trusted, last_used) = match &row.record {
        Some(r) => (
            r.backup_codes_left().to_string(),
            row.trusted_count().to_string(),
            r.last_used.map_or_else(|| "never".to_owned(), format_time),
        ),
        None => ("-".into(), "-".into(), "-".into()),
    };
    // The reason goes to stderr (see `run`), not into the column.
    let required = match row.required {
        Ok(true) => "yes",
        Ok(false) => "no",
        Err(PolicyError::Account(_)) => "unknown",
        Err(_) => "error",
    };
    [
        row.user.to_string(),
        row.state(),
        required.to_owned(),
        backup,
        trusted,
        last_used,
    ]
}
