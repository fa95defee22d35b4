//! The contract every [`Store`] keeps, as one suite run against each implementation: the file
//! store (and [`AnyStore`](super::AnyStore) over it) as unit tests, without root; the home
//! and PostgreSQL stores from `tests/store_contract.rs`, which needs root, real users and a
//! real server. The file is shared by `#[path]`: it takes [`Store`], [`Put`], [`Replace`],
//! [`Record`] and [`UserName`] from the module that includes it, so it compiles the same in
//! the library's tests and in that test crate.
//!
//! What a store promises: no record until one is written; what is written is read back;
//! `update` changes a record under the user's lock and writes only a change; `put` writes a
//! new record, keeps an existing one without [`Replace::Yes`], and with it replaces even a
//! record that cannot be read; an unreadable record is an error everywhere else; `remove`
//! deletes whatever is there; concurrent changes of one user are serialised.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Put, Record, Replace, Store, UserName};

/// A store under test.
pub struct Subject<'a, S> {
    /// Opens a new handle on the store (one per thread: a handle need not be `Sync`).
    pub open: &'a (dyn Fn() -> S + Sync),
    /// A user the store can hold a record of; every case leaves it without one.
    pub user: UserName,
    /// Makes the user's stored record unreadable (malformed text, a file the store refuses).
    /// Called only while a record is stored.
    pub spoil: &'a dyn Fn(&UserName),
}

/// Threads racing in the concurrency cases, and the changes each makes.
const THREADS: usize = 4;
const ROUNDS: usize = 5;

/// A valid record of `user`, told apart from others by `created`.
pub fn record(user: &UserName, created: i64) -> Record {
    let text = format!(
        "version = 1\nstate = \"enabled\"\nsecret = \"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\"\n\
         algorithm = \"SHA1\"\ndigits = 6\nperiod = 30\nissuer = \"contract\"\n\
         label = \"{user}\"\naccount = \"{user}\"\ncreated = {created}\n"
    );
    Record::parse(text.as_bytes()).expect("the contract's record is valid")
}

/// One case of the contract.
type Case<S> = fn(&Subject<'_, S>);

/// Runs every case, in order, naming each on stderr (shown when one fails).
pub fn run_all<S: Store>(subject: &Subject<'_, S>) {
    let cases: [(&str, Case<S>); 8] = [
        ("nothing is stored until written", nothing_until_written),
        ("update writes, reads back, removes", update_round_trip),
        (
            "update without a change writes nothing",
            update_without_change,
        ),
        ("put without replace keeps what is there", put_keeps),
        ("put with replace overwrites", put_replaces),
        ("an unreadable record", unreadable_record),
        ("concurrent updates are serialised", concurrent_updates),
        ("concurrent puts: one wins", concurrent_puts),
    ];
    let store = (subject.open)();
    for (name, case) in cases {
        eprintln!("store contract: {name}");
        store.remove(&subject.user).expect("clean slate");
        case(subject);
        assert_eq!(
            store.load(&subject.user).expect("load after the case"),
            None,
            "{name}: left a record behind"
        );
    }
}

fn nothing_until_written<S: Store>(subject: &Subject<'_, S>) {
    let store = (subject.open)();
    assert_eq!(store.load(&subject.user).unwrap(), None);
    assert_eq!(
        store.update(&subject.user, |slot| slot.clone()).unwrap(),
        None
    );
    assert_eq!(store.load(&subject.user).unwrap(), None, "a read wrote");
    assert!(
        !store.remove(&subject.user).unwrap(),
        "removed what was not there"
    );
}

fn update_round_trip<S: Store>(subject: &Subject<'_, S>) {
    let (store, user) = ((subject.open)(), &subject.user);
    let first = record(user, 1);
    let out = store
        .update(user, |slot| {
            *slot = Some(first.clone());
            "returned"
        })
        .unwrap();
    assert_eq!(out, "returned");
    assert_eq!(store.load(user).unwrap(), Some(first.clone()));
    // Another handle sees it too (a new process, another host).
    assert_eq!((subject.open)().load(user).unwrap(), Some(first.clone()));
    store
        .update(user, |slot| {
            assert_eq!(slot.as_ref(), Some(&first), "update sees the stored record");
            slot.as_mut().unwrap().failures = 3;
        })
        .unwrap();
    assert_eq!(store.load(user).unwrap().unwrap().failures, 3);
    store.update(user, |slot| *slot = None).unwrap();
    assert_eq!(store.load(user).unwrap(), None);
    assert!(!store.remove(user).unwrap());
}

fn update_without_change<S: Store>(subject: &Subject<'_, S>) {
    let (store, user) = ((subject.open)(), &subject.user);
    assert_eq!(
        store.put(user, &record(user, 1), Replace::No).unwrap(),
        Put::Written
    );
    // A change that is undone again is no change: what is stored stays what it was.
    store
        .update(user, |slot| {
            let record = slot.as_mut().unwrap();
            record.failures = 9;
            record.failures = 0;
        })
        .unwrap();
    assert_eq!(store.load(user).unwrap(), Some(record(user, 1)));
    assert!(store.remove(user).unwrap());
}

fn put_keeps<S: Store>(subject: &Subject<'_, S>) {
    let (store, user) = ((subject.open)(), &subject.user);
    let (first, second) = (record(user, 1), record(user, 2));
    assert_eq!(store.put(user, &first, Replace::No).unwrap(), Put::Written);
    assert_eq!(
        store.put(user, &first, Replace::No).unwrap(),
        Put::Unchanged
    );
    assert_eq!(store.put(user, &second, Replace::No).unwrap(), Put::Kept);
    assert_eq!(store.load(user).unwrap(), Some(first));
    assert!(store.remove(user).unwrap());
}

fn put_replaces<S: Store>(subject: &Subject<'_, S>) {
    let (store, user) = ((subject.open)(), &subject.user);
    let (first, second) = (record(user, 1), record(user, 2));
    assert_eq!(store.put(user, &first, Replace::Yes).unwrap(), Put::Written);
    assert_eq!(
        store.put(user, &second, Replace::Yes).unwrap(),
        Put::Written
    );
    assert_eq!(
        store.put(user, &second, Replace::Yes).unwrap(),
        Put::Unchanged
    );
    assert_eq!(store.load(user).unwrap(), Some(second));
    assert!(store.remove(user).unwrap());
}

/// A record that cannot be read fails closed everywhere except where it is replaced or
/// removed: loading, updating and a put that may not replace are errors that change nothing.
fn unreadable_record<S: Store>(subject: &Subject<'_, S>) {
    let (store, user) = ((subject.open)(), &subject.user);
    let (first, second) = (record(user, 1), record(user, 2));
    store.put(user, &first, Replace::No).unwrap();
    (subject.spoil)(user);
    assert!(store.load(user).is_err(), "an unreadable record loaded");
    let mut ran = false;
    assert!(store.update(user, |_| ran = true).is_err());
    assert!(!ran, "update ran its change on an unreadable record");
    assert!(store.put(user, &second, Replace::No).is_err());
    assert!(
        store.load(user).is_err(),
        "a refused put changed the record"
    );

    assert_eq!(
        store.put(user, &second, Replace::Yes).unwrap(),
        Put::Written
    );
    assert_eq!(store.load(user).unwrap(), Some(second));
    (subject.spoil)(user);
    assert!(
        store.remove(user).unwrap(),
        "an unreadable record was not removed"
    );
    assert_eq!(store.load(user).unwrap(), None);
}

/// Read-change-write of one user from many threads at once loses no change.
fn concurrent_updates<S: Store>(subject: &Subject<'_, S>) {
    let (open, user) = (subject.open, &subject.user);
    open().put(user, &record(user, 1), Replace::No).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                let store = open();
                for _ in 0..ROUNDS {
                    store
                        .update(user, |slot| slot.as_mut().unwrap().failures += 1)
                        .unwrap();
                }
            });
        }
    });
    let store = open();
    let failures = store.load(user).unwrap().unwrap().failures;
    assert_eq!(failures as usize, THREADS * ROUNDS, "changes were lost");
    assert!(store.remove(user).unwrap());
}

/// Many first enrollments at once: exactly one is written, the others find it and keep it.
fn concurrent_puts<S: Store>(subject: &Subject<'_, S>) {
    let (open, user) = (subject.open, &subject.user);
    let written = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for created in 0..THREADS {
            let written = &written;
            scope.spawn(move || {
                let mine = record(user, created as i64);
                match open().put(user, &mine, Replace::No).unwrap() {
                    Put::Written => {
                        written.fetch_add(1, Ordering::SeqCst);
                    }
                    Put::Kept => {}
                    Put::Unchanged => panic!("another thread wrote this very record"),
                }
            });
        }
    });
    assert_eq!(written.load(Ordering::SeqCst), 1);
    let store = open();
    assert!(store.load(user).unwrap().is_some());
    assert!(store.remove(user).unwrap());
}
