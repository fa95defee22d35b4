//! What the PAM module (`crates/pam-relay`, a `no_std` cdylib) and the rest of twofold (the
//! login helper, `twofold check`, the CLI's syslog lines) share, written once: the frames on
//! their socket pair ([`frame`]), the check of the helper file the module starts
//! ([`helper_file`]), how long the module waits for it ([`helper_timeout`]) and the RFC 3164
//! syslog line ([`syslog`]). `no_std` with `alloc`, no `unsafe`: everything here is pure
//! logic, the callers bring the I/O. docs/design.md ("A no_std module").
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

extern crate alloc;

pub mod frame;
pub mod helper_file;
pub mod helper_timeout;
pub mod syslog;
pub mod text;
