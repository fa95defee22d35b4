#!/usr/bin/env bash
# Benchmarks twofold against google-authenticator-libpam and pam_oath on this machine, through
# the real libpam (see bench/bench.py for what is measured and how). Prints one table.
#   scripts/bench.sh            full run (a few minutes)
#   scripts/bench.sh --quick    seconds; CI runs it to check the script works (asserts nothing)
#   scripts/bench.sh --only list [--list-sizes 100000]   `twofold list` alone
#   scripts/bench.sh --only memory [--memory-pairs 9]    the module's peak RSS over pam_permit
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
missing=()
for p in libpam-google-authenticator libpam-oath postgresql strace oathtool; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
cargo build --release --locked
bash scripts/build-module.sh
target=$(realpath "${CARGO_TARGET_DIR:-target}")
mkdir -p "$target/bench"
gcc -O2 -Wall -Wextra -o "$target/bench/pam_bench" bench/pam_bench.c -lpam
gcc -O2 -Wall -Wextra -pthread -o "$target/bench/list_floor" bench/list_floor.c
python3 bench/bench.py "$@" --module "$target/release/libpam_twofold.so" \
  --helper "$target/release/twofold-login" \
  --cli "$target/release/twofold" --driver "$target/bench/pam_bench"
