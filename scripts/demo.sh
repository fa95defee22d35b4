#!/usr/bin/env bash
# End-to-end demo on this machine, touching nothing outside a temp dir and one throwaway user:
# build, enroll a demo user (QR code shown, first code confirms it), log in through the real
# PAM library with a code from oathtool, see the same code refused as a replay, clean up.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh

echo "== building (release)"
cargo build --release --locked
bash scripts/build-module.sh
module="$PWD/target/release/libpam_twofold.so"
twofold="$PWD/target/release/twofold"

work=$(mktemp -d /tmp/twofold-demo.XXXXXX)
user="tfdemo$$"
cleanup() {
  userdel "$user" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
useradd --system --no-create-home --shell /usr/sbin/nologin "$user"

install -d -m 700 "$work/store" "$work/pam.d"
cat > "$work/twofold.toml" <<TOML
[policy]
require = "all"
issuer = "twofold-demo"

[store]
dir = "$work/store"
TOML
# A PAM service of our own, read by libpam through pam_wrapper instead of /etc/pam.d.
echo "auth required $module config=$work/twofold.toml" > "$work/pam.d/twofold-demo"
echo "auth required pam_deny.so" > "$work/pam.d/other"
login() {
  LD_PRELOAD=libpam_wrapper.so PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR="$work/pam.d" \
    pamtester twofold-demo "$user" authenticate <<<"$1"
}

echo
echo "== policy requires 2FA for everyone; $user has none yet, so a login is denied:"
login "" || true

secret=$(head -c 20 /dev/urandom | base32 | tr -d '=')
# The phone would show this code; oathtool computes the same (previous step, so the
# current one is still fresh for the login below).
first=$(oathtool --totp -b --now "@$(($(date +%s) - 30))" "$secret")
echo
echo "== twofold enroll $user (the code $first is typed as the first code)"
printf '%s\n%s\n' "$secret" "$first" | "$twofold" --config "$work/twofold.toml" enroll "$user" --secret -

code=$(oathtool --totp -b "$secret")
echo
echo "== login with the current code $code:"
login "$code"
echo
echo "== the same code again (replay):"
if login "$code"; then
  echo "demo: FAILED, a replayed code was accepted" >&2
  exit 1
fi
echo
"$twofold" --config "$work/twofold.toml" status "$user"
echo
echo "demo: OK (accepted once, replay refused); cleaning up $work and user $user"
