//! `twofold db init` and `twofold migrate --to|--from postgres`: the PostgreSQL store's schema,
//! and copying records between a host's files and the database. Idempotent: running either
//! twice changes nothing the second time.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use pam_twofold::store::postgres::{PgStore, Put, SCHEMA_VERSION};
use pam_twofold::store::settings::StoreKind;
use pam_twofold::store::{AnyStore, FileStore, Store};

use crate::cli::{DbAction, DbArgs, MigrateArgs};
use crate::error::CliError;
use crate::{Context, audit};

fn postgres(context: &Context) -> Result<&PgStore, CliError> {
    match &context.store {
        AnyStore::Postgres(store) => Ok(store),
        _ => Err(CliError::NotPostgres),
    }
}

pub fn db(context: &Context, args: DbArgs) -> Result<(), CliError> {
    let store = postgres(context)?;
    match args.action {
        DbAction::Init => {
            let created = store.init_schema()?;
            if store.clear_text_tcp() {
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

pub fn migrate(context: &Context, args: MigrateArgs) -> Result<(), CliError> {
    let db = postgres(context)?;
    debug_assert_eq!(context.policy.store.kind, StoreKind::Postgres);
    let dir: PathBuf = args
        .dir
        .clone()
        .unwrap_or_else(|| context.policy.store.dir.clone());
    let files = FileStore::new(&dir);
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
    let mut counts = Counts::default();
    for (user, record) in listing {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                counts.failed += 1;
                outln!("{user}: failed: {e}")?;
                continue;
            }
        };
        let outcome = if args.dry_run {
            let existing = if to_db {
                db.load(&user)
            } else {
                files.load(&user)
            };
            existing.map(|existing| match existing {
                None => Put::Written,
                Some(e) if e == record => Put::Unchanged,
                Some(_) if args.force => Put::Written,
                Some(_) => Put::Kept,
            })
        } else if to_db {
            db.put(&user, &record, args.force)
        } else {
            files.update(&user, |slot| match slot {
                Some(existing) if *existing == record => Put::Unchanged,
                Some(_) if !args.force => Put::Kept,
                _ => {
                    *slot = Some(record.clone());
                    Put::Written
                }
            })
        };
        match outcome {
            Ok(Put::Written) => {
                counts.written += 1;
                outln!(
                    "{user}: {}",
                    if args.dry_run { "would copy" } else { "copied" }
                )?;
            }
            Ok(Put::Unchanged) => {
                counts.unchanged += 1;
                outln!("{user}: already the same")?;
            }
            Ok(Put::Kept) => {
                counts.kept += 1;
                outln!("{user}: kept: differs at {to_name} (--force overwrites)")?;
            }
            Err(e) => {
                counts.failed += 1;
                outln!("{user}: failed: {e}")?;
            }
        }
    }
    outln!(
        "Summary: {} {}, {} already the same, {} kept, {} failed ({from_name} → {to_name}).",
        counts.written,
        if args.dry_run {
            "would be copied"
        } else {
            "copied"
        },
        counts.unchanged,
        counts.kept,
        counts.failed
    )?;
    if !args.dry_run && counts.written > 0 {
        audit(&format!(
            "{} records copied from {from_name} to {to_name}",
            counts.written
        ));
    }
    if counts.failed > 0 {
        return Err(CliError::MigrateIncomplete {
            failed: counts.failed,
        });
    }
    Ok(())
}
