//! twofold: time-based one-time passwords (RFC 6238) as a second factor for Linux logins.
//!
//! The library holds all logic; the `twofold` CLI (src/bin/twofold) and the login helper
//! `twofold-login` call the same functions, so nothing about records is written in two places.
//! The PAM module (`libpam_twofold.so`) is a thin `no_std` relay of its own (crates/pam-relay).
//!
//! Data flows one way: PAM → the module (crates/pam-relay) → the login helper `twofold-login`
//! ([`relay::login`]) → [`login`] → ([`policy`], [`store`], [`otp`]) → outcome → PAM code. The
//! library has no FFI code (`forbid(unsafe_code)`).
#![forbid(unsafe_code)]

pub mod accounts;
pub mod backup;
pub mod clock;
pub mod conversation;
pub mod deadline;
pub mod drift;
pub mod enroll;
pub mod import;
pub mod keys;
pub mod log;
pub mod login;
pub mod mail;
pub mod manage;
pub mod nsswitch;
pub mod otp;
pub mod policy;
pub mod printable;
pub mod qr;
pub mod record;
pub mod rekey;
pub mod relay;
pub mod rules;
pub mod seal;
pub mod secure_file;
pub mod self_service;
pub mod store;
pub mod user;

pub use login::{Clock, Conversation, Outcome, SystemClock};
pub use policy::{ModuleArgs, Policy};
pub use record::Record;
pub use store::{AnyStore, FileStore, Store};
// The stores' old module paths, for code written before they moved into `store/`.
pub use store::home as home_store;
pub use user::UserName;
