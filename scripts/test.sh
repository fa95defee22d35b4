#!/usr/bin/env bash
# Runs every test tier (tests/README.md) and prints how long each took: lints, the unit and
# library tier, the root tier (real PAM, sshd/sudo/su, PostgreSQL, root-owned stores), the
# hardening races with their figures, fuzzing, the benchmark script, the Debian package and its
# container test. What CI runs (.ci/run).
# As root on Debian 12; installs what it needs first. Nothing is skipped: a missing tool or
# privilege fails the run.
#   scripts/test.sh                    everything (FUZZ_SECONDS=N: fuzz N s per target, default 60)
#   cargo test                         the unit and library tier alone, as any user
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh runs the root tiers: run it as root. As any user, \`cargo test\` runs" \
    "the unit and library tier (tests/README.md)." >&2
  exit 1
fi
source scripts/install-deps.sh

# One build for every tier: the tiers' features only add targets, so the unit and library
# tier runs here from the same build as the others (as `cargo test` would, less the rebuild).
features=root-tests,hardening-tests

times=()
total_start=$SECONDS
report() {
  local status=$?
  echo
  echo "=== time per tier"
  local line
  for line in "${times[@]}"; do echo "  $line"; done
  echo "  total            $(clock $((SECONDS - total_start)))"
  [ "$status" -eq 0 ] || echo "=== FAILED (exit $status) in tier: ${current:-?}"
}
trap report EXIT
clock() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }
# tier NAME COMMAND...: runs COMMAND, records its time.
tier() {
  current=$1
  shift
  echo "=== tier: $current"
  local start=$SECONDS
  "$@"
  times+=("$(printf '%-16s %s' "$current" "$(clock $((SECONDS - start)))")")
  current=
}

# The integration test targets of a tier, as `--test NAME` arguments, from Cargo.toml: those
# that require exactly FEATURE (none: the unit and library tier).
targets() {
  cargo metadata --locked --format-version 1 --no-deps | python3 -c '
import json, sys
want = [sys.argv[1]] if sys.argv[1] else []
package = next(p for p in json.load(sys.stdin)["packages"] if p["name"] == "twofold")
for target in package["targets"]:
    if "test" in target["kind"] and target.get("required-features", []) == want:
        print("--test", target["name"])
' "$1"
}

library_targets=$(targets "")
root_targets=$(targets root-tests)
hardening_targets=$(targets hardening-tests)
for list in library_targets root_targets hardening_targets; do
  [ -n "${!list}" ] || { echo "test.sh: no test targets for $list in Cargo.toml" >&2; exit 1; }
done

# The PAM module is crates/pam-relay, a no_std cdylib in a cargo workspace of its own
# (docs/design.md "A no_std module"): linted, built and unit-tested on its own. The root tier's
# tests build it themselves (tests/common/built_module.rs); `build` here is the shipped one.
# (In the main target dir, as scripts/build-module.sh builds it: not a target/ of its own.)
relay=(--manifest-path crates/pam-relay/Cargo.toml --target-dir "${CARGO_TARGET_DIR:-target}")
lints() {
  cargo fmt --all --check
  cargo fmt --manifest-path crates/pam-relay/Cargo.toml --check
  cargo clippy --locked --workspace --all-targets -- -D warnings
  cargo clippy --locked --workspace --all-targets --features "$features" -- -D warnings
  cargo clippy --locked "${relay[@]}" --all-targets -- -D warnings
  cargo clippy --locked "${relay[@]}" --all-targets --features root-tests,test-panic -- -D warnings
}
build() {
  cargo build --locked
  bash scripts/build-module.sh
  cargo test --locked --features "$features" --no-run
}
unit() {
  cargo test --locked --workspace --features "$features" --lib --bins
  cargo test --locked --features "$features" --doc
  cargo test --locked "${relay[@]}"
}
# (The target lists are `--test NAME` words: unquoted on purpose.)
# shellcheck disable=SC2086
library() { cargo test --locked --features "$features" $library_targets; }
# shellcheck disable=SC2086
root() { cargo test --locked --features "$features" $root_targets -- --skip hardening_; }
# The hardening races print their figures (rounds, trials, counters).
# shellcheck disable=SC2086
hardening() {
  cargo test --locked --features "$features" $hardening_targets -- --nocapture
  cargo test --locked --features "$features" --test fleet hardening_ -- --nocapture
}

tier lints lints
tier build build
tier unit unit
tier library library
tier root root
tier hardening hardening
# Fuzz the parsers of untrusted input for a minute each (scripts/fuzz.sh N for long runs).
tier fuzz bash scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
# The benchmark script still runs (seconds; asserts nothing about speed).
tier bench bash scripts/bench.sh --quick
# The Debian package (release build, lintian), then its install/enable/login/remove/purge in a
# clean Debian 12 container (scripts/container-test.sh; the base image is cached).
tier package bash scripts/package.sh
tier container bash scripts/container-test.sh target/debian/twofold_*_amd64.deb
