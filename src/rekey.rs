//! Managing the sealing keys of a store (`twofold key ...`): create the first key, count what
//! is sealed under which key, seal every record, rotate, import and export.
//!
//! Rotation is crash-safe and resumable without a state file: a new key becomes current by
//! appearing (one rename, [`Keyring::add`]); every record is then re-sealed under the user's
//! lock; the old keys are removed only once no record names them. Killed anywhere, a second
//! `rotate` sees more than one key and finishes the job instead of starting another.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use zeroize::Zeroizing;

use crate::keys::{Key, KeyError, KeyId, Keyring};
use crate::store::{AnyStore, StoreError};
use crate::user::UserName;

#[derive(Debug)]
pub enum RekeyError {
    Key(KeyError),
    Store(StoreError),
    /// The home store never seals (its files are the users' own).
    NotSealing,
    /// `key init` on a host that has a key.
    HasKey {
        ids: Vec<KeyId>,
        dir: PathBuf,
    },
    /// `rotate`, `seal-all` or `export` before `key init`.
    NoKey {
        dir: PathBuf,
    },
    /// `[store] seal = false`: nothing would be sealed.
    SealOff,
    /// Some records could not be re-sealed; the keys they still need were kept.
    Incomplete {
        failed: Vec<(UserName, String)>,
        kept: Vec<String>,
    },
    /// `key import` of a file whose id is here with other key bytes.
    Clash {
        id: KeyId,
    },
}

impl fmt::Display for RekeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key(e) => write!(f, "{e}"),
            Self::Store(e) => write!(f, "{e}"),
            Self::NotSealing => write!(
                f,
                "the home store is never sealed (its files are the users' own); sealing applies \
                 to [store] kind = \"system\" and \"postgres\""
            ),
            Self::HasKey { ids, dir } => write!(
                f,
                "{} already holds key(s) {}: to replace them run `twofold key rotate`",
                dir.display(),
                join(ids)
            ),
            Self::NoKey { dir } => write!(
                f,
                "there is no sealing key in {}: create one with `twofold key init` (or import \
                 the fleet's with `twofold key import FILE`)",
                dir.display()
            ),
            Self::SealOff => write!(
                f,
                "[store] seal = false in the policy: remove it (sealing is the default) first"
            ),
            Self::Incomplete { failed, kept } => {
                write!(
                    f,
                    "{} record(s) could not be sealed under the current key",
                    failed.len()
                )?;
                for (user, why) in failed {
                    write!(f, "\n  {user}: {why}")?;
                }
                write!(
                    f,
                    "\nkept key(s) {} for them; fix those records (or `twofold reset` them), then \
                     run the command again to finish",
                    kept.join(", ")
                )
            }
            Self::Clash { id } => write!(
                f,
                "a different key with id {id} is already on this host; refusing to replace it"
            ),
        }
    }
}

impl std::error::Error for RekeyError {}

impl From<KeyError> for RekeyError {
    fn from(e: KeyError) -> Self {
        Self::Key(e)
    }
}

impl From<StoreError> for RekeyError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

fn join(ids: &[KeyId]) -> String {
    ids.iter().map(KeyId::as_str).collect::<Vec<_>>().join(", ")
}

fn keyring(store: &AnyStore) -> Result<&Keyring, RekeyError> {
    store
        .sealing()
        .and_then(|s| s.keyring())
        .ok_or(RekeyError::NotSealing)
}

fn current(ring: &Keyring) -> Result<Key, RekeyError> {
    ring.current()?.ok_or_else(|| RekeyError::NoKey {
        dir: ring.dir().to_owned(),
    })
}

/// `key init`: the first key of this host (refused if there is one).
pub fn init(store: &AnyStore, now: i64) -> Result<Key, RekeyError> {
    let ring = keyring(store)?;
    let ids: Vec<KeyId> = ring.list()?.into_iter().map(|k| k.id).collect();
    if !ids.is_empty() {
        return Err(RekeyError::HasKey {
            ids,
            dir: ring.dir().to_owned(),
        });
    }
    let key = Key::generate(now)?;
    ring.add(&key)?;
    Ok(key)
}

/// One key and how many records it seals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUse {
    pub id: String,
    pub created: Option<i64>,
    /// Whether this host holds it.
    pub present: bool,
    pub current: bool,
    pub records: usize,
}

/// What `key status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Census {
    pub keys: Vec<KeyUse>,
    pub clear: usize,
    /// Records that cannot be read (a missing key, a tampered box, a broken file).
    pub unreadable: usize,
}

/// Counts the records under each key, the clear ones and the unreadable ones.
pub fn census(store: &AnyStore) -> Result<Census, RekeyError> {
    let ring = keyring(store)?;
    let keys = ring.list()?;
    let newest = keys.last().map(|k| k.id.to_string());
    let mut uses: BTreeMap<String, KeyUse> = keys
        .iter()
        .map(|k| {
            let use_ = KeyUse {
                id: k.id.to_string(),
                created: Some(k.created),
                present: true,
                current: Some(k.id.to_string()) == newest,
                records: 0,
            };
            (k.id.to_string(), use_)
        })
        .collect();
    let mut census = Census::default();
    for (user, record) in store.users()? {
        census.unreadable += usize::from(record.is_err());
        match store.sealed_under(&user) {
            Ok(Some(id)) => {
                let entry = uses.entry(id.clone()).or_insert(KeyUse {
                    id,
                    created: None,
                    present: false,
                    current: false,
                    records: 0,
                });
                entry.records += 1;
            }
            Ok(None) => census.clear += usize::from(record.is_ok()),
            Err(_) => census.unreadable += usize::from(record.is_ok()),
        }
    }
    census.keys = uses.into_values().collect();
    census
        .keys
        .sort_by_key(|k| (k.created.is_none(), k.created));
    Ok(census)
}

/// What a pass over the records did.
#[derive(Debug, Default)]
pub struct Resealed {
    pub sealed: usize,
    pub already: usize,
}

/// Seals every record not yet under `key`, each under its user's lock.
fn reseal_all(store: &AnyStore, key: &KeyId) -> Result<Resealed, RekeyError> {
    let mut done = Resealed::default();
    let mut failed = Vec::new();
    for (user, _) in store.users()? {
        let result = match store.sealed_under(&user) {
            Ok(Some(id)) if id == key.as_str() => {
                done.already += 1;
                continue;
            }
            Ok(_) => store.reseal(&user),
            Err(e) => Err(e),
        };
        match result {
            Ok(true) => done.sealed += 1,
            Ok(false) => {}
            Err(e) => failed.push((user, e.to_string())),
        }
    }
    if failed.is_empty() {
        return Ok(done);
    }
    Err(RekeyError::Incomplete {
        failed,
        kept: Vec::new(),
    })
}

fn seal_writes_on(store: &AnyStore) -> Result<(), RekeyError> {
    match store.sealing() {
        Some(s) if s.seals_writes() => Ok(()),
        Some(_) => Err(RekeyError::SealOff),
        None => Err(RekeyError::NotSealing),
    }
}

/// `key seal-all`: every record sealed under the current key.
pub fn seal_all(store: &AnyStore) -> Result<Resealed, RekeyError> {
    seal_writes_on(store)?;
    let key = current(keyring(store)?)?;
    reseal_all(store, &key.id)
}

/// What `rotate` did.
#[derive(Debug)]
pub struct Rotation {
    /// The key created by this run; `None` when it finished an earlier, interrupted one.
    pub created: Option<KeyId>,
    pub current: KeyId,
    pub resealed: Resealed,
    pub removed: Vec<KeyId>,
}

/// `key rotate`: a new key (unless an earlier rotation is unfinished), every record re-sealed
/// under it, then the old keys removed.
pub fn rotate(store: &AnyStore, now: i64) -> Result<Rotation, RekeyError> {
    seal_writes_on(store)?;
    let ring = keyring(store)?;
    let keys = ring.list()?;
    let created = match keys.len() {
        0 => {
            return Err(RekeyError::NoKey {
                dir: ring.dir().to_owned(),
            });
        }
        1 => {
            let key = Key::generate(ring.next_created(now)?)?;
            ring.add(&key)?;
            Some(key.id)
        }
        _ => None,
    };
    let current = current(ring)?.id;
    let resealed = reseal_all(store, &current).map_err(|e| keep_old(e, &keys, &current))?;
    // Only keys no record names any more go (a login seals under the current key only).
    let census = census(store)?;
    let still: Vec<String> = census
        .keys
        .iter()
        .filter(|k| k.records > 0 && k.id != current.as_str())
        .map(|k| k.id.clone())
        .collect();
    if !still.is_empty() {
        return Err(RekeyError::Incomplete {
            failed: Vec::new(),
            kept: still,
        });
    }
    let mut removed = Vec::new();
    for key in keys.into_iter().filter(|k| k.id != current) {
        ring.remove(&key.id)?;
        removed.push(key.id);
    }
    Ok(Rotation {
        created,
        current,
        resealed,
        removed,
    })
}

fn keep_old(e: RekeyError, keys: &[Key], current: &KeyId) -> RekeyError {
    match e {
        RekeyError::Incomplete { failed, .. } => RekeyError::Incomplete {
            failed,
            kept: keys
                .iter()
                .filter(|k| &k.id != current)
                .map(|k| k.id.to_string())
                .collect(),
        },
        other => other,
    }
}

/// `key export`: the text of key `id` (the current key by default), to write to a new file.
pub fn export(store: &AnyStore, id: Option<&KeyId>) -> Result<Zeroizing<String>, RekeyError> {
    let ring = keyring(store)?;
    let key = match id {
        Some(id) => ring.load(id)?,
        None => current(ring)?,
    };
    Ok(key.to_text())
}

/// `key import`: adds the key in `text` as the newest, so new writes are sealed under it.
/// Returns its id and whether it was new here.
pub fn import(store: &AnyStore, text: &[u8], now: i64) -> Result<(KeyId, bool), RekeyError> {
    let ring = keyring(store)?;
    let key = Key::parse(text).map_err(|problem| KeyError::Malformed {
        path: PathBuf::from("(imported file)"),
        problem,
    })?;
    match ring.load(&key.id) {
        Ok(here) if here.bytes() == key.bytes() => return Ok((key.id, false)),
        Ok(_) => return Err(RekeyError::Clash { id: key.id }),
        Err(KeyError::Missing { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let mut key = key;
    key.created = ring.next_created(now)?;
    ring.add(&key)?;
    Ok((key.id, true))
}
