#!/usr/bin/env bash
# Builds the PAM module, crates/pam-relay (a no_std cdylib in a cargo workspace of its own:
# docs/design.md "A no_std module"), in release, into the main target dir, where it always was:
# ${CARGO_TARGET_DIR:-target}/release/libpam_twofold.so. `cargo build` at the root builds the
# CLI and the login helper, not this. Extra arguments go to cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --manifest-path crates/pam-relay/Cargo.toml \
  --target-dir "${CARGO_TARGET_DIR:-target}" "$@"
