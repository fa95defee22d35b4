#!/usr/bin/env bash
# Runs every test: format, lints, unit tests, and the tests against the real PAM library,
# oathtool and zbarimg. As root on Debian 12; installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh

cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo build --locked
cargo test --locked -- --skip hardening_
# The hardening tests print their figures (rounds, trials, counters).
cargo test --locked --test hardening -- --nocapture
cargo test --locked --test fleet hardening_ -- --nocapture
# Fuzz the parsers of untrusted input for a minute each (scripts/fuzz.sh N for long runs).
bash scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
# The benchmark script still runs (seconds; asserts nothing about speed).
bash scripts/bench.sh --quick
