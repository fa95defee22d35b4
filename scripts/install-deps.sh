#!/usr/bin/env bash
# Installs the Debian packages twofold needs to build, test and demo. Idempotent: does nothing
# when everything is already there. Needs root (apt-get) and a Rust toolchain (rustup).
set -euo pipefail

packages=(
  libpam0g-dev        # links the module against libpam
  binutils            # nm: the tests check which symbols the module exports
  pamtester           # drives PAM stacks in tests and the demo
  libpam-wrapper      # points libpam at a test's own service directory
  oathtool            # independent TOTP implementation for codes
  zbar-tools          # zbarimg decodes the QR codes we draw
  openssh-server openssh-client  # real sshd tests
  expect python3-pexpect          # drive interactive clients
  python3-pyte                    # an 80x24 terminal emulator: what a screen really shows (tests/screen.rs)
  sudo                            # sudo through a PAM service of the tests' own
  libpam-google-authenticator libpam-oath  # the peers in scripts/bench.sh
  libnss-wrapper                  # tests with users of their own (tests/common/nss.rs)
  postgresql                      # fleet-mode tests start their own server (initdb, pg_ctl)
  libssl-dev pkg-config openssl   # native-tls for PostgreSQL over TLS; test certificates
  exim4-daemon-light python3      # `twofold invite` tests: local delivery, mails read with Python's email
  gcc g++ make libc6-dev          # C test drivers and the alias snapshot (gcc); the fuzzers' sanitizer runtime (g++)
  git ca-certificates curl file   # cargo fetching crates over HTTPS; `file` tells ELF files (package.sh)
  dpkg-dev lintian                # scripts/package.sh: dpkg-shlibdeps, dpkg-deb, lintian
  podman runc debootstrap         # scripts/container-test.sh: a Debian 12 base built here, no registry
  util-linux procps               # unshare (a mount namespace per PAM run); kill
  strace                          # tests/flushes.rs and scripts/bench.sh count the flushes per login
  cockpit-ws cockpit-bridge cockpit-system      # tests/cockpit.rs: the real web console and its shell
  chromium chromium-driver python3-selenium     # tests/cockpit.rs: a real browser driven by Selenium
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages ${missing[*]}; run as root" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: no Rust toolchain; install one with rustup (https://rustup.rs), Rust 1.85 or later" >&2
  exit 1
fi
