#!/usr/bin/env bash
# Fuzzes the parsers that read untrusted bytes — records, the policy and module arguments,
# what users type — with cargo-fuzz (libFuzzer + AddressSanitizer), SECONDS per target
# (default 60; CI uses the default, long runs e.g. `scripts/fuzz.sh 3600`). Starts from the
# seed corpus in fuzz/corpus; new inputs go to fuzz/work (not committed).
# Exit status: 0 no crash; 1 a crash (the input is left in fuzz/artifacts/TARGET); 2 the
# fuzzers did not build or run (e.g. no C++ compiler): nothing was found, nothing was fuzzed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
source scripts/install-deps.sh
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# cargo fuzz passes -Z flags (sanitizers); this stable toolchain accepts them this way.
export RUSTC_BOOTSTRAP=1
targets=(record policy answer import)
# Build first, so a build failure is never reported as a crash.
log=$(mktemp)
for target in "${targets[@]}"; do
  if ! cargo fuzz build "$target" >"$log" 2>&1; then
    tail -n 40 "$log"
    rm -f "$log"
    echo "fuzz: BUILD FAILED for $target (not a crash; nothing was fuzzed): see the errors above" >&2
    exit 2
  fi
done
rm -f "$log"
for target in "${targets[@]}"; do
  mkdir -p "fuzz/work/$target"
  cp -n fuzz/corpus/$target/* "fuzz/work/$target/" 2>/dev/null || true
  log=$(mktemp)
  if ! cargo fuzz run "$target" "fuzz/work/$target" -- -max_total_time="$seconds" >"$log" 2>&1; then
    tail -n 40 "$log"
    # libFuzzer writes the crashing input and says so; any other failure is not a finding.
    if grep -q 'Test unit written to' "$log"; then
      echo "fuzz: CRASH: $target found a crash (input in fuzz/artifacts/$target)" >&2
      exit 1
    fi
    echo "fuzz: $target did not run (not a crash): see the errors above" >&2
    exit 2
  fi
  runs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -n 1)
  echo "fuzz: $target: ${runs:-no summary}, no crash; corpus $(ls "fuzz/work/$target" | wc -l) inputs"
  rm -f "$log"
done
