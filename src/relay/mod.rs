//! The login helper's side of the thin module: `pam_twofold.so` (crates/pam-relay, a `no_std`
//! cdylib of its own) starts the helper `twofold-login` for each call and relays its
//! conversation; the helper ([`login`]) runs the login as the module once did in-process.
//! Why: docs/design.md ("A thin module and a login helper", "A no_std module").
#![forbid(unsafe_code)]

pub mod helper_file;
pub mod login;
pub mod wire;
