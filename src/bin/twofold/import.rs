//! `twofold import google-authenticator|oath`: other modules' users become twofold records,
//! each stored under the user's lock like every other write. Sources are only read.
//!
//! Per user one line says what happened (imported / would import / skipped / failed), with
//! notes below it; a summary ends the run. Exit status 1 when any user failed.
#![forbid(unsafe_code)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use pam_twofold::accounts;
use pam_twofold::backup::KdfCost;
use pam_twofold::import::{self, Imported};
use pam_twofold::secure_file::Owner;
use pam_twofold::store::{Put, Replace, StoreError};
use pam_twofold::{Clock, Store, SystemClock};

use crate::cli::{ImportArgs, ImportCommon, ImportGoogleArgs, ImportOathArgs, ImportSource};
use crate::error::CliError;
use crate::{Context, audit, user_arg};

const GOOGLE_FILE: &str = ".google_authenticator";

#[derive(Default)]
struct Tally {
    imported: usize,
    skipped: usize,
    failed: usize,
}

impl Tally {
    fn finish(&self, dry_run: bool) -> Result<(), CliError> {
        outln!(
            "Summary: {} {}, {} skipped, {} failed.",
            self.imported,
            if dry_run {
                "would be imported"
            } else {
                "imported"
            },
            self.skipped,
            self.failed
        )?;
        if self.failed > 0 {
            return Err(CliError::ImportIncomplete {
                failed: self.failed,
            });
        }
        Ok(())
    }

    fn fail(&mut self, who: &str, error: &dyn std::fmt::Display) -> Result<(), CliError> {
        self.failed += 1;
        outln!("{who}: failed: {error}")
    }
}

pub fn run(context: &Context, args: ImportArgs) -> Result<(), CliError> {
    match args.source {
        ImportSource::GoogleAuthenticator(args) => google(context, args),
        ImportSource::Oath(args) => oath(context, args),
    }
}

/// A passwd entry: name, uid, home.
struct Account {
    name: String,
    uid: u32,
    home: PathBuf,
}

fn account(name: &str) -> Result<Account, String> {
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Ok(Account {
            name: u.name,
            uid: u.uid.as_raw(),
            home: u.dir,
        }),
        Ok(None) => Err(format!("no user {name:?} in the passwd database")),
        Err(e) => Err(format!("cannot look up user {name:?}: {e}")),
    }
}

/// Every account NSS lists (local files, LDAP, SSSD…) that has a home directory.
fn all_accounts() -> Result<Vec<Account>, CliError> {
    let all = accounts::all().map_err(CliError::Accounts)?;
    Ok(all
        .into_iter()
        .filter(|entry| !entry.home.as_os_str().is_empty())
        .map(|entry| Account {
            name: entry.name,
            uid: entry.uid,
            home: entry.home,
        })
        .collect())
}

fn google(context: &Context, args: ImportGoogleArgs) -> Result<(), CliError> {
    let mut tally = Tally::default();
    let jobs: Vec<(Account, PathBuf, Owner)> = if args.all {
        all_accounts()?
            .into_iter()
            .filter_map(|a| {
                let path = a.home.join(GOOGLE_FILE);
                // No file: nothing to import for this user (not worth a line each).
                path.symlink_metadata().ok()?;
                // Root-owned is fine too: only an admin can have made it so.
                let owner = Owner::UidOrRoot(a.uid);
                Some((a, path, owner))
            })
            .collect()
    } else {
        let name = match (&args.user, &args.path) {
            (Some(user), _) => user.clone(),
            (None, Some(path)) => owner_name(path)?,
            (None, None) => return Err(CliError::ImportWhom),
        };
        user_arg(&name)?;
        let account = account(&name).map_err(|_| CliError::UnknownUser { name: name.clone() })?;
        let path = match &args.path {
            Some(path) => path.clone(),
            None => account.home.join(GOOGLE_FILE),
        };
        // The user's own file, or one an admin made or collected (root's).
        let owner = Owner::UidOrRoot(account.uid);
        vec![(account, path, owner)]
    };
    if args.all && jobs.is_empty() {
        outln!("No user in the passwd database has a ~/{GOOGLE_FILE} file.")?;
    }
    for (account, path, owner) in jobs {
        let who = account.name.clone();
        let token = import::read_source(&path, owner).and_then(|(bytes, mut notes)| {
            let mut token = import::google::parse(&bytes)?;
            notes.append(&mut token.notes);
            token.notes = notes;
            Ok(token)
        });
        let source = format!("google-authenticator file {}", path.display());
        match token {
            Err(e) => {
                let message = match e.line {
                    Some(line) => format!("line {line} of {}: {}", path.display(), e.message),
                    None => format!("{}: {}", path.display(), e.message),
                };
                tally.fail(&who, &message)?;
            }
            Ok(token) => store_token(context, &who, token, &source, &args.common, &mut tally)?,
        }
    }
    tally.finish(args.common.dry_run)
}

fn owner_name(path: &Path) -> Result<String, CliError> {
    let meta = path.symlink_metadata().map_err(|source| CliError::Io {
        what: format!("read {}", path.display()),
        source,
    })?;
    match nix::unistd::User::from_uid(meta.uid().into()) {
        Ok(Some(user)) if user.uid.as_raw() != 0 => Ok(user.name),
        _ => Err(CliError::ImportWhom),
    }
}

fn oath(context: &Context, args: ImportOathArgs) -> Result<(), CliError> {
    let mut tally = Tally::default();
    let source = format!("pam_oath file {}", args.path.display());
    let (bytes, notes) =
        import::read_source(&args.path, Owner::Uid(0)).map_err(|e| CliError::ImportSource {
            path: args.path.clone(),
            error: e,
        })?;
    let now = SystemClock.now();
    let entries = import::oath::parse(&bytes, now).map_err(|e| CliError::ImportSource {
        path: args.path.clone(),
        error: e,
    })?;
    for note in &notes {
        outln!("{}: note: {note}", args.path.display())?;
    }
    if entries.is_empty() {
        outln!("{} lists no users.", args.path.display())?;
    }
    for entry in entries {
        let who = entry.user.clone();
        match entry.token {
            Err(e) => tally.fail(&who, &e)?,
            Ok(mut token) => {
                token.notes = token
                    .notes
                    .into_iter()
                    .map(|n| format!("line {}: {n}", entry.line))
                    .collect();
                store_token(context, &who, token, &source, &args.common, &mut tally)?;
            }
        }
    }
    tally.finish(args.common.dry_run)
}

/// What happened to one user's token.
enum Stored {
    Imported,
    Kept,
}

fn store_token(
    context: &Context,
    who: &str,
    mut token: Imported,
    source: &str,
    common: &ImportCommon,
    tally: &mut Tally,
) -> Result<(), CliError> {
    token.clamp_to(&context.policy);
    let summary = token.summary();
    let notes = token.notes.clone();
    let result = import_token(context, who, token, common);
    match result {
        Ok(Stored::Kept) => {
            tally.skipped += 1;
            return outln!(
                "{who}: skipped: already enrolled in twofold; kept (--force replaces it)"
            );
        }
        Ok(Stored::Imported) if common.dry_run => {
            tally.imported += 1;
            outln!("{who}: would import: {summary}")?;
        }
        Ok(Stored::Imported) => {
            tally.imported += 1;
            outln!("{who}: imported: {summary}")?;
            audit(&format!(
                "{who} imported from {source}{}",
                if common.force {
                    " (replacing any twofold record)"
                } else {
                    ""
                }
            ));
        }
        Err(e) => return tally.fail(who, &e),
    }
    for note in notes {
        outln!("    note: {note}")?;
    }
    Ok(())
}

/// Puts one imported token into the store as the record of `who`'s canonical account (in a
/// dry run, says whether it would).
fn import_token(
    context: &Context,
    who: &str,
    token: Imported,
    common: &ImportCommon,
) -> Result<Stored, String> {
    // The canonical account only: a users file may spell a name as the directory folds it.
    let user = pam_twofold::user::Account::resolve(&pam_twofold::user::Nss, who)
        .map_err(|e| e.to_string())?
        .name;
    if !common.dry_run {
        context.store.create_dir().map_err(|e| e.to_string())?;
    }
    let existing = context.store.load(&user);
    match (&existing, common.force) {
        (Ok(Some(_)), false) => return Ok(Stored::Kept),
        // A dry run on a host without a store yet: nobody is enrolled.
        (Err(StoreError::DirMissing { .. }), _) if common.dry_run => {}
        (Err(e), false) => {
            return Err(format!(
                "the existing twofold record cannot be read ({e}); --force replaces it"
            ));
        }
        _ => {}
    }
    if common.dry_run {
        return Ok(Stored::Imported);
    }
    let now = SystemClock.now();
    let issuer = context.policy.issuer();
    let record = token
        .into_record(&user, &issuer, now, KdfCost::DEFAULT)
        .map_err(|e| e.to_string())?;
    // --force replaces whatever is there, a record that cannot be read too. Without it a
    // record that appeared meanwhile (a login, another admin) stays.
    let replace = Replace::from(common.force);
    match context.store.put(&user, &record, replace) {
        Ok(Put::Written) => Ok(Stored::Imported),
        Ok(Put::Unchanged) if common.force => Ok(Stored::Imported),
        Ok(Put::Unchanged | Put::Kept) => Ok(Stored::Kept),
        Err(e) => Err(e.to_string()),
    }
}
