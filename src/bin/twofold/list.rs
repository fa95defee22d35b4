//! `twofold list [--json]`: every enrolled user, and the users policy requires who have not
//! enrolled yet (accounts NSS lists that can log in, and members of the policy's groups).
//!
//! Built for stores of 100 000 users (issue 21): the accounts are enumerated once and every
//! row resolved from that ([`Snapshot`]; names it lacks are looked up in NSS where its sources
//! may not enumerate everything), the policy's groups are looked up once, the system store is
//! read through one open directory, and the rows are read and rendered by a few threads.
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::io::Write;

use pam_twofold::accounts::{self, ListError, PasswdEntry, Snapshot};
use pam_twofold::login::format_time;
use pam_twofold::policy::{PolicyError, PolicyGroups, Require};
use pam_twofold::store::{Listing, StoreError, StoreListing};
use pam_twofold::user::Account;
use pam_twofold::{AnyStore, Policy, Record, UserName, nsswitch};

use crate::Context;
use crate::cli::ListArgs;
use crate::error::CliError;
use crate::out;
use crate::status::Summary;

/// Threads that read and render rows, at most; below `PARALLEL_FROM` rows, one.
const MAX_THREADS: usize = 4;
const PARALLEL_FROM: usize = 512;

/// Accounts a person logs in with (see [`PasswdEntry::is_login_account`]), as NSS lists
/// them: local, LDAP and SSSD users alike.
pub fn login_accounts() -> Result<Vec<PasswdEntry>, CliError> {
    let all = accounts::all().map_err(CliError::Accounts)?;
    Ok(only_login_accounts(all))
}

fn only_login_accounts(all: Vec<PasswdEntry>) -> Vec<PasswdEntry> {
    all.into_iter()
        .filter(PasswdEntry::is_login_account)
        .collect()
}

/// Users who may be required but have no record: candidates, checked against policy later.
/// `passwd` is the enumeration (`getent passwd`), needed only when policy requires anyone.
fn candidates(
    policy: &Policy,
    passwd: Result<&str, ListError>,
) -> Result<BTreeSet<String>, CliError> {
    if policy.policy.require == Require::None {
        return Ok(BTreeSet::new());
    }
    let accounts = only_login_accounts(accounts::parse(passwd.map_err(CliError::Accounts)?));
    if policy.policy.require == Require::All {
        return Ok(accounts.into_iter().map(|a| a.name).collect());
    }
    let mut names = BTreeSet::new();
    for group in &policy.policy.groups {
        if let Ok(Some(g)) = nix::unistd::Group::from_name(group) {
            names.extend(g.mem);
            let primary = accounts.iter().filter(|a| a.gid == g.gid.as_raw());
            names.extend(primary.map(|a| a.name.clone()));
        }
    }
    Ok(names)
}

/// What decides whether policy requires 2FA of a user, looked up once for every row.
struct Resolver<'a> {
    policy: &'a Policy,
    accounts: Snapshot,
    groups: PolicyGroups,
}

impl Resolver<'_> {
    /// What `crate::required` answers, from the snapshot and the groups looked up once.
    fn required(&self, user: &UserName) -> Result<bool, PolicyError> {
        match Account::resolve(&self.accounts, user.as_str()) {
            Ok(account) => self.policy.requires_2fa_in(&account, &self.groups),
            Err(e) => Err(PolicyError::Account(e.to_string())),
        }
    }
}

/// One row as printed (a JSON object, or the table's cells), made by the thread that read
/// it; the record itself is dropped there, so 100 000 of them are never held at once.
struct Row {
    user: UserName,
    /// Why policy could not decide for this user, unless it is only that the account is gone.
    undecided: Option<String>,
    json: Vec<u8>,
    cells: Option<[String; 6]>,
}

impl Row {
    fn new(summary: &Summary, json: bool) -> Self {
        let (text, cells) = match json {
            // A JSON value (string keys) always serialises into memory.
            true => (
                serde_json::to_vec_pretty(&summary.to_json()).expect("JSON value serialises"),
                None,
            ),
            false => (Vec::new(), Some(row_cells(summary))),
        };
        let undecided = match &summary.required {
            Err(PolicyError::Account(_)) | Ok(_) => None,
            Err(e) => Some(e.to_string()),
        };
        Self {
            user: summary.user.clone(),
            undecided,
            json: text,
            cells,
        }
    }
}

/// The enrolled users: the system store still to be read (in parallel), or another store's
/// records as it listed them.
enum Enrolled<'a> {
    System(StoreListing<'a>),
    Read(Listing),
}

/// Where one row's record comes from.
enum Source {
    /// A record file of the system store, read by the thread that makes the row.
    ToRead,
    /// As another store listed it.
    Listed(Box<Result<Record, StoreError>>),
    /// No record: a user policy may require, listed only if it does.
    Candidate,
}

/// What the thread that read a record made of it.
enum Made {
    Row(Row),
    Unreadable(StoreError),
    /// Removed since the directory was read, or a candidate policy does not require.
    Nothing,
}

impl Enrolled<'_> {
    fn open(store: &AnyStore) -> Result<Enrolled<'_>, StoreError> {
        match store {
            AnyStore::System(store) => store.listing().map(Enrolled::System),
            other => other.users().map(Enrolled::Read),
        }
    }

    /// Every enrolled user, by name order, with where their record comes from; the system
    /// store's listing stays behind to read them.
    fn sources(&mut self) -> Vec<(UserName, Source)> {
        match self {
            Self::System(listing) => {
                let users = listing.users().iter().cloned();
                users.map(|user| (user, Source::ToRead)).collect()
            }
            Self::Read(listing) => std::mem::take(listing)
                .into_iter()
                .map(|(user, record)| (user, Source::Listed(Box::new(record))))
                .collect(),
        }
    }

    /// The record of `source`: `None` when it is gone (or there is none).
    fn record(&self, user: &UserName, source: Source) -> Option<Result<Record, StoreError>> {
        match (self, source) {
            (Self::System(listing), Source::ToRead) => listing.read(user).transpose(),
            (_, Source::Listed(record)) => Some(*record),
            _ => None,
        }
    }
}

/// `job` over `items` on up to [`MAX_THREADS`] threads, the results in the items' order.
fn in_parallel<T: Send, R: Send>(items: Vec<T>, job: impl Fn(T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS));
    if threads < 2 || items.len() < PARALLEL_FROM {
        return items.into_iter().map(job).collect();
    }
    let per_thread = items.len().div_ceil(threads);
    let mut items = items.into_iter();
    let chunks: Vec<Vec<T>> = (0..threads)
        .map(|_| items.by_ref().take(per_thread).collect())
        .collect();
    std::thread::scope(|scope| {
        let job = &job;
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| scope.spawn(move || chunk.into_iter().map(job).collect::<Vec<R>>()))
            .collect();
        let joined = handles.into_iter().map(|h| h.join());
        let joined: Vec<Vec<R>> = joined
            .map(|r| r.unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect();
        joined.into_iter().flatten().collect()
    })
}

pub fn run(context: &Context, args: ListArgs) -> Result<(), CliError> {
    // The accounts are enumerated (another process) while the store directory is read.
    let (enrolled, passwd) = std::thread::scope(|scope| {
        let passwd = scope.spawn(accounts::enumerate);
        let enrolled = Enrolled::open(&context.store);
        let passwd = passwd.join();
        (
            enrolled,
            passwd.unwrap_or_else(|p| std::panic::resume_unwind(p)),
        )
    });
    let mut enrolled = enrolled?;
    let resolver = Resolver {
        policy: &context.policy,
        accounts: match &passwd {
            Ok(text) => Snapshot::new(text, nsswitch::passwd_enumerates_fully()),
            Err(_) => Snapshot::empty(),
        },
        groups: PolicyGroups::resolve(&context.policy),
    };
    let mut sources = enrolled.sources();
    let seen: BTreeSet<&str> = sources.iter().map(|(user, _)| user.as_str()).collect();
    let missing: Vec<UserName> =
        candidates(&context.policy, passwd.as_deref().map_err(clone_error))?
            .into_iter()
            .filter(|name| !seen.contains(name.as_str()))
            .filter_map(|name| UserName::parse(&name).ok())
            .collect();
    sources.extend(missing.into_iter().map(|user| (user, Source::Candidate)));
    // Each record is read, judged and rendered by one thread and dropped there: 100 000
    // records are never held at once.
    let made = in_parallel(sources, |(user, source)| {
        make_row(&enrolled, &resolver, args.json, user, source)
    });
    let mut rows = Vec::with_capacity(made.len());
    let mut unreadable = 0;
    for made in made {
        match made {
            Made::Row(row) => rows.push(row),
            Made::Unreadable(e) => {
                warn!("warning: {e}");
                unreadable += 1;
            }
            Made::Nothing => {}
        }
    }
    rows.sort_by(|a, b| a.user.cmp(&b.user));
    finish(&rows, unreadable, args.json)
}

/// One user's row: their record read (if they have one) and policy's answer for them.
fn make_row(
    enrolled: &Enrolled<'_>,
    resolver: &Resolver<'_>,
    json: bool,
    user: UserName,
    source: Source,
) -> Made {
    let candidate = matches!(source, Source::Candidate);
    let record = match enrolled.record(&user, source) {
        Some(Ok(record)) => Some(record),
        Some(Err(e)) => return Made::Unreadable(e),
        None if candidate => None,
        None => return Made::Nothing, // removed meanwhile
    };
    let required = resolver.required(&user);
    // A user without a record is listed only when policy requires them.
    if candidate && !matches!(required, Ok(true)) {
        return Made::Nothing;
    }
    let summary = Summary::with_required(resolver.policy, user, record, required);
    Made::Row(Row::new(&summary, json))
}

/// Prints the rows, then what policy could not decide; the exit status says what went wrong.
fn finish(rows: &[Row], unreadable: usize, json: bool) -> Result<(), CliError> {
    // A reader that stops early (`| head -1`) is not an error: see out.rs.
    out::report(if json {
        write_json(rows)
    } else {
        print_table(rows)
    })?;
    // A policy that cannot decide (a group that does not exist) is the admin's to fix: on
    // stderr, and a failure. A record whose account is gone is only shown ("unknown").
    let undecided: Vec<&String> = rows.iter().filter_map(|r| r.undecided.as_ref()).collect();
    let reasons: BTreeSet<&String> = undecided.iter().copied().collect();
    for e in &reasons {
        warn!("{e}");
    }
    match (unreadable, undecided.len()) {
        (0, 0) => Ok(()),
        (0, count) => Err(CliError::RequiredUndecided { count }),
        (count, _) => Err(CliError::Unreadable { count }),
    }
}

/// The enumeration's error again, for [`candidates`] (the snapshot went on without it).
fn clone_error(e: &ListError) -> ListError {
    match e {
        ListError::Run(e) => ListError::Run(std::io::Error::new(e.kind(), e.to_string())),
        ListError::Failed(why) => ListError::Failed(why.clone()),
    }
}

/// One row at a time into a buffer: 100 000 users must not mean 100 000 JSON trees in memory
/// (nor, with line-buffered stdout, one write per line).
fn write_json(rows: &[Row]) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    out.write_all(b"[")?;
    for (i, row) in rows.iter().enumerate() {
        out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
        out.write_all(&row.json)?;
    }
    out.write_all(b"\n]\n")?;
    out.flush()
}

/// The table, each column as wide as its widest cell: states (a lock's time) vary in length.
fn print_table(rows: &[Row]) -> std::io::Result<()> {
    let header = [
        "USER",
        "STATE",
        "REQUIRED",
        "BACKUP",
        "TRUSTED",
        "LAST USED",
    ]
    .map(String::from);
    let cells: Vec<&[String; 6]> = std::iter::once(&header)
        .chain(rows.iter().filter_map(|row| row.cells.as_ref()))
        .collect();
    let mut widths = [0; 6];
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row.iter()) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    for [user, state, required, backup, trusted, last_used] in cells {
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
