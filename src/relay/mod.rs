//! The module as a thin relay: `pam_twofold.so` (src/pam.rs + [`module`] + [`wire`]) starts
//! the login helper `twofold-login` for each call and relays its conversation; the helper
//! ([`login`]) runs the login as the module once did in-process. Why: docs/design.md
//! ("A thin module and a login helper").
#![forbid(unsafe_code)]

pub mod helper_file;
pub mod login;
pub mod module;
pub mod wire;
