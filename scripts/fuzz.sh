#!/usr/bin/env bash
# Fuzzes the parsers that read untrusted bytes — records, the policy and module arguments,
# what users type — with cargo-fuzz (libFuzzer + AddressSanitizer), SECONDS per target
# (default 60; CI uses the default, long runs e.g. `scripts/fuzz.sh 3600`). Starts from the
# seed corpus in fuzz/corpus; new inputs go to fuzz/work (not committed). A crash fails the
# run and leaves the input in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
source scripts/install-deps.sh
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# cargo fuzz passes -Z flags (sanitizers); this stable toolchain accepts them this way.
export RUSTC_BOOTSTRAP=1
for target in record policy answer import; do
  mkdir -p "fuzz/work/$target"
  cp -n fuzz/corpus/$target/* "fuzz/work/$target/" 2>/dev/null || true
  log=$(mktemp)
  if ! cargo fuzz run "$target" "fuzz/work/$target" -- -max_total_time="$seconds" >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz: $target found a crash (input in fuzz/artifacts/$target)" >&2
    exit 1
  fi
  runs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -n 1)
  echo "fuzz: $target: ${runs:-no summary}, no crash; corpus $(ls "fuzz/work/$target" | wc -l) inputs"
  rm -f "$log"
done
