#!/usr/bin/env bash
# The container tier: the Debian package installed, enabled, used for a login, removed and
# purged in a clean Debian 12 container (tests/container/package-test.sh), then the real-PAM
# tests (tests/real_pam.rs, built on the host, the checkout mounted at the same path) run
# inside another one with only the packages they need (--privileged: each PAM run unshares
# its own mount namespace). Needs root, podman, runc and debootstrap (scripts/install-deps.sh);
# a missing one fails the run, it never skips.
#
#   scripts/container-test.sh            build the package (scripts/package.sh), then test it
#   scripts/container-test.sh FILE.deb   test a package built already
#
# No image registry is needed: the base image is a minimal Debian 12 made with debootstrap
# from this host's Debian mirror and `podman import`ed. It is kept as
# localhost/twofold-base:<hash> (the hash covers the mirror, the suite and the package list),
# so later runs skip the ~3 minutes; `podman rmi` it to rebuild, TWOFOLD_KEEP_BASE=0 removes it
# after the run. Containers are removed when the run ends, also when it fails.
# Host quirks are detected, never fixed by editing the host's container configuration:
# an OCI runtime that cannot start containers here (crun on a hybrid cgroup layout: runc is
# used), podman's default ulimits above the host's hard limits (the host's own are passed),
# and the host's CA bundle is mounted for HTTPS from inside.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
  echo "container-test: $*" >&2
  exit 1
}
[ "$(id -u)" = 0 ] || die "needs root (rootful podman, debootstrap)"
for tool in podman:podman runc:runc debootstrap:debootstrap; do
  command -v "${tool%%:*}" >/dev/null 2>&1 ||
    die "${tool%%:*} is missing: apt-get install ${tool#*:} (scripts/install-deps.sh installs it)"
done

suite=bookworm
# Test tools the package itself does not need (pamtester, oathtool): in the base so that each
# run does not download them again; the package's own dependencies come from apt each run.
base_packages=pamtester,oathtool,ca-certificates

# The Debian mirror apt uses on this host (deb822 .sources or a one-line sources.list).
host_mirror() {
  local uri
  uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' |
    grep -v -- '-security' | head -n 1)
  [ -n "$uri" ] || uri=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
    awk '{print $2}' | grep -v -- '-security' | head -n 1)
  echo "${uri:-http://deb.debian.org/debian}"
}
mirror="${DEBIAN_MIRROR:-$(host_mirror)}"
hash=$(printf '%s\n' "$mirror" "$suite" "$base_packages" "minbase v1" | sha256sum | cut -c1-12)
base="localhost/twofold-base:$hash"

build_base() {
  local root
  root=$(mktemp -d /var/tmp/twofold-rootfs.XXXXXX)
  echo "container-test: debootstrap $suite from $mirror (a few minutes, once)"
  if ! debootstrap --variant=minbase --include="$base_packages" "$suite" "$root" "$mirror" \
    >"$root.log" 2>&1; then
    tail -n 20 "$root.log" >&2
    rm -rf "$root" "$root.log"
    die "debootstrap failed (log above)"
  fi
  # The mirror debootstrap used is the one apt-get update will use inside.
  echo "deb $mirror $suite main" >"$root/etc/apt/sources.list"
  tar -C "$root" -c . | podman import - "$base" >/dev/null
  rm -rf "$root" "$root.log"
}
podman image exists "$base" || build_base

# Host quirks, detected on the base image: the first runtime and ulimits that start a
# container. podman's default ulimits can exceed what root may set here (no
# CAP_SYS_RESOURCE), and even the host's own nproc hard limit can be refused inside runc's
# init: so the host's nofile limit, then a modest nproc, are tried after the defaults.
hard_nofile=$(ulimit -Hn)
limit_sets=("" "--ulimit nofile=$hard_nofile:$hard_nofile"
  "--ulimit nofile=$hard_nofile:$hard_nofile --ulimit nproc=4096:4096")
run_opts=()
for runtime in "" "--runtime runc"; do
  for limits in "${limit_sets[@]}"; do
    # shellcheck disable=SC2206 # words on purpose
    try=(--rm --network host $runtime $limits)
    if podman run "${try[@]}" "$base" true >/dev/null 2>&1; then
      run_opts=("${try[@]}")
      break 2
    fi
  done
done
((${#run_opts[@]})) || {
  podman run --rm --network host "$base" true || true
  die "no runtime/ulimit combination starts a container (the default's error is above)"
}
ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] && run_opts+=(-v "$ca:$ca:ro")
echo "container-test: podman run ${run_opts[*]}"

deb="${1:-}"
if [ -z "$deb" ]; then
  bash scripts/package.sh
  deb=$(ls -t target/debian/twofold_*_amd64.deb | head -n 1)
fi
[ -f "$deb" ] || die "$deb: no such package"

cleanup() {
  [ "${TWOFOLD_KEEP_BASE:-1}" = 1 ] || podman rmi -f "$base" >/dev/null 2>&1 || true
}
trap cleanup EXIT

start=$SECONDS
echo "=== container: package install, enable, login, remove, purge ($(basename "$deb"))"
podman run "${run_opts[@]}" \
  -v "$PWD/$deb:/pkg/$(basename "$deb"):ro" \
  -v "$PWD/tests/container/package-test.sh:/pkg/package-test.sh:ro" \
  "$base" bash /pkg/package-test.sh "/pkg/$(basename "$deb")"
echo "container-test: package test passed in $((SECONDS - start)) s"

start=$SECONDS
echo "=== container: the real-PAM tests (tests/real_pam.rs) in a clean container"
real_pam=$(cargo test --locked --features root-tests,hardening-tests --test real_pam --no-run \
  --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "real_pam" and m.get("executable"):
        print(m["executable"])
')
[ -x "$real_pam" ] || die "could not build the real_pam test target"
# The module as the root tier builds it (tests/common/built_module.rs): there is no cargo in
# the container to build it there.
module_target=$(realpath "${CARGO_TARGET_DIR:-target}")/module-root-tests
CARGO_TARGET_DIR="$module_target" bash scripts/build-module.sh --features root-tests
podman run "${run_opts[@]}" --privileged -v "$PWD:$PWD" -w "$PWD" \
  -e TWOFOLD_TEST_MODULE="$module_target/release/libpam_twofold.so" "$base" bash -c "
  set -e
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends libpam-wrapper libssl3 zbar-tools binutils \
    python3 python3-pexpect python3-pyte >/dev/null
  '$real_pam'"
echo "container-test: real-PAM tests passed in $((SECONDS - start)) s"
