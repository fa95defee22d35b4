#!/usr/bin/env bash
# The long hardening run: 1000 rounds of 32 racing processes, 2000 writers killed mid-write,
# more wrong-code and admin races (CI runs 200 / 300 / 10 / 5). Prints the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
# The hardening tier (any user) and the fleet race of the root tier (root: PostgreSQL), from
# one build (tests/README.md).
features=root-tests,hardening-tests
TWOFOLD_LONG=1 cargo test --release --locked --features "$features" --test hardening -- --nocapture --test-threads 1
TWOFOLD_LONG=1 cargo test --release --locked --features "$features" --test fleet hardening_ -- --nocapture --test-threads 1
