//! `twofold db init` and `twofold migrate --to|--from postgres`: the PostgreSQL store's schema
//! (straight to the database), and copying records (through the agent),
//! and copying records between a host's files and the database. Idempotent: running either
//! twice changes nothing the second time.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use pam_twofold::UserName;
use pam_twofold::store::settings::StoreKind;
use pam_twofold::store::{AgentStore, AnyStore, FileStore, Put, Replace, Store, StoreError};

use crate::agent::pg::{self, DbSettings, SCHEMA_VERSION};
use crate::cli::{DbAction, DbArgs, MigrateArgs};
use crate::error::CliError;
use crate::{Context, audit};

fn postgres(context: &Context) -> Result<&AgentStore, CliError> {
    match &context.store {
        AnyStore::Postgres(store) => Ok(store),
        _ => Err(CliError::NotPostgres),
    }
}

/// `db init` connects by itself, not through the agent: the schema comes before any agent
/// can serve a login.
pub fn db(context: &Context, args: DbArgs) -> Result<(), CliError> {
    postgres(context)?;
    let db = DbSettings::new(&context.policy.store);
    match args.action {
        DbAction::Init => {
            let created = pg::block_on(db.init_schema())?.map_err(pg::store_error)?;
            if db.clear_text_tcp() {
                // The admin's choice (loopback, IPsec); said once here, never at each login.
                warn!(
                    "note: sslmode=disable: records, TOTP keys included, travel to the database unencrypted"
                );
            }
            // The offline copies' directory, when that mode is on.
            context.store.create_dir()?;
            if created {
                audit(&format!(
                    "PostgreSQL schema version {} created",
                    SCHEMA_VERSION
                ));
                outln!("Schema version {} created.", SCHEMA_VERSION)?;
            } else {
                outln!(
                    "Schema version {} already in place; nothing changed.",
                    SCHEMA_VERSION
                )?;
            }
            Ok(())
        }
    }
}

#[derive(Default)]
struct Counts {
    written: usize,
    unchanged: usize,
    kept: usize,
    failed: usize,
}

impl Counts {
    /// Counts and reports what happened to one user's record.
    fn tell(
        &mut self,
        user: &UserName,
        outcome: Result<Put, StoreError>,
        dry_run: bool,
        to_name: &str,
    ) -> Result<(), CliError> {
        match outcome {
            Ok(Put::Written) => {
                self.written += 1;
                outln!("{user}: {}", if dry_run { "would copy" } else { "copied" })
            }
            Ok(Put::Unchanged) => {
                self.unchanged += 1;
                outln!("{user}: already the same")
            }
            Ok(Put::Kept) => {
                self.kept += 1;
                outln!("{user}: kept: differs at {to_name} (--force overwrites)")
            }
            Err(e) => {
                self.failed += 1;
                outln!("{user}: failed: {e}")
            }
        }
    }

    /// The summary line, the audit entry, and an error if any record was not copied.
    fn finish(self, dry_run: bool, from_name: &str, to_name: &str) -> Result<(), CliError> {
        outln!(
            "Summary: {} {}, {} already the same, {} kept, {} failed ({from_name} → {to_name}).",
            self.written,
            if dry_run { "would be copied" } else { "copied" },
            self.unchanged,
            self.kept,
            self.failed
        )?;
        if !dry_run && self.written > 0 {
            audit(&format!(
                "{} records copied from {from_name} to {to_name}",
                self.written
            ));
        }
        if self.failed > 0 {
            return Err(CliError::MigrateIncomplete {
                failed: self.failed,
            });
        }
        Ok(())
    }
}

pub fn migrate(context: &Context, args: MigrateArgs) -> Result<(), CliError> {
    let db = postgres(context)?;
    debug_assert_eq!(context.policy.store.kind, StoreKind::Postgres);
    let dir: PathBuf = args
        .dir
        .clone()
        .unwrap_or_else(|| context.policy.store.dir.clone());
    let files = FileStore::new(&dir).with_sealing(context.policy.store.sealing());
    let to_db = args.to.is_some();
    let (from_name, to_name) = if to_db {
        (dir.display().to_string(), "the database".to_owned())
    } else {
        ("the database".to_owned(), dir.display().to_string())
    };
    let listing = if to_db { files.users()? } else { db.users()? };
    if !to_db && !args.dry_run {
        files.create_dir()?;
    }
    let replace = Replace::from(args.force);
    let mut counts = Counts::default();
    for (user, record) in listing {
        // A dry run tells what `put` would do with what is there now.
        let outcome = record.and_then(|record| match (args.dry_run, to_db) {
            (true, true) => Put::decide(db.load(&user), &record, replace),
            (true, false) => Put::decide(files.load(&user), &record, replace),
            (false, true) => db.put(&user, &record, replace),
            (false, false) => files.put(&user, &record, replace),
        });
        counts.tell(&user, outcome, args.dry_run, &to_name)?;
    }
    counts.finish(args.dry_run, &from_name, &to_name)
}
