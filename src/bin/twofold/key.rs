//! `twofold key ...`: the sealing keys (see src/keys.rs, src/rekey.rs). Prints what the
//! library did; every change is also sent to syslog.
#![forbid(unsafe_code)]

use pam_twofold::keys::{KeyError, KeyId};
use pam_twofold::rekey::{self, Census, RekeyError};
use pam_twofold::secure_file::{self, Access, Expect, Owner};
use pam_twofold::{Clock, SystemClock};

use crate::cli::{KeyAction, KeyArgs};
use crate::error::CliError;
use crate::{Context, audit};

pub fn run(context: &Context, args: KeyArgs) -> Result<(), CliError> {
    let store = &context.store;
    let now = SystemClock.now();
    match args.action {
        KeyAction::Init => {
            let key = rekey::init(store, now)?;
            audit(&format!("sealing key {} created", key.id));
            outln!(
                "Created sealing key {}. Records are sealed on their next write; \
                 `twofold key seal-all` seals them all now.",
                key.id
            )
        }
        KeyAction::Status { json } => status(&rekey::census(store)?, json),
        KeyAction::SealAll => {
            let done = rekey::seal_all(store)?;
            audit(&format!("{} records sealed", done.sealed));
            outln!(
                "{} record(s) sealed, {} already were.",
                done.sealed,
                done.already
            )
        }
        KeyAction::Rotate => rotate(context, now),
        KeyAction::Export { file, key } => {
            let id = key
                .map(|k| KeyId::parse(&k).ok_or(CliError::BadKeyId { id: k }))
                .transpose()?;
            let text = rekey::export(store, id.as_ref())?;
            secure_file::write_new(&file, text.as_bytes(), Access::Private)
                .map_err(|e| CliError::output(e, true))?;
            audit(&format!("sealing key exported to {}", file.display()));
            outln!(
                "Wrote {} (mode 0600). It unlocks every sealed record: move it to the other \
                 host, `twofold key import` it there, then delete it.",
                file.display()
            )
        }
        KeyAction::Import { file } => {
            let expect = Expect {
                what: "key file",
                owner: Owner::UidOrRoot(nix::unistd::geteuid().as_raw()),
                forbidden_mode: 0o077,
                max_bytes: 4096,
                single_link: false,
            };
            let contents = secure_file::open_checked(&file, &expect)
                .map_err(|e| RekeyError::Key(KeyError::File(e)))?;
            let (id, new) = rekey::import(store, &contents.bytes, now)?;
            if !new {
                return outln!("Key {id} is already on this host; nothing changed.");
            }
            audit(&format!("sealing key {id} imported"));
            outln!("Imported key {id}; new writes are sealed under it.")
        }
    }
}

fn rotate(context: &Context, now: i64) -> Result<(), CliError> {
    let done = rekey::rotate(&context.store, now)?;
    match &done.created {
        Some(id) => outln!("Created key {id}.")?,
        None => outln!("Finishing an earlier rotation to key {}.", done.current)?,
    }
    let removed: Vec<&str> = done.removed.iter().map(KeyId::as_str).collect();
    audit(&format!(
        "sealing keys rotated to {}; removed {}",
        done.current,
        removed.join(", ")
    ));
    outln!(
        "{} record(s) re-sealed under {} ({} already were); removed key(s): {}.",
        done.resealed.sealed,
        done.current,
        done.resealed.already,
        if removed.is_empty() {
            "none".to_owned()
        } else {
            removed.join(", ")
        }
    )?;
    if matches!(context.store, pam_twofold::AnyStore::Postgres(_)) {
        outln!(
            "Fleet: the other hosts need the new key now: `twofold key export FILE` here, \
             `twofold key import FILE` on each."
        )?;
    }
    Ok(())
}

fn status(census: &Census, json: bool) -> Result<(), CliError> {
    if json {
        let keys: Vec<_> = census
            .keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "id": k.id, "created": k.created, "present": k.present,
                    "current": k.current, "records": k.records,
                })
            })
            .collect();
        let value = serde_json::json!({
            "keys": keys, "clear": census.clear, "unreadable": census.unreadable,
        });
        return outln!("{value:#}");
    }
    if census.keys.is_empty() {
        outln!("No sealing key: records are stored in clear (`twofold key init`).")?;
    }
    for k in &census.keys {
        let mark = match (k.present, k.current) {
            (_, true) => " (current)",
            (false, _) => " (MISSING on this host: its records are refused)",
            _ => "",
        };
        outln!("key {}{mark}: {} record(s)", k.id, k.records)?;
    }
    outln!("clear: {} record(s)", census.clear)?;
    outln!("unreadable: {} record(s)", census.unreadable)
}
