//! `pam_twofold.so`: the PAM module as a thin relay, `no_std`. For each call it checks the
//! login helper file, starts the helper on a socket pair, relays its prompts to the
//! application's conversation and leaves its verdict (and a `split_code` line's password and
//! code) in the handle. No login logic lives here: that is the helper's (src/relay/login.rs in
//! the main crate). Why `no_std`: docs/design.md ("A no_std module").
//!
//! `unsafe` lives in [`pam`] (libpam and the two exported hooks) and [`sys`] (libc and the
//! allocator); every other file forbids it. [`authenticate`] works on the [`handle`] trait that
//! `pam` implements, so neither of the two depends on the other's file back.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
// The allocator, the panic handler and what only they use are left out of unit tests (std's
// are in place there), and tests may unwrap.
#![cfg_attr(
    test,
    allow(
        dead_code,
        clippy::unwrap_used,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

extern crate alloc;

mod authenticate;
mod codes;
mod ctext;
mod handle;
mod log;
mod os_error;
#[allow(unsafe_code)]
mod pam;
mod relay;
#[allow(unsafe_code)]
mod sys;
