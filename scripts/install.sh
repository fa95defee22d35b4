#!/usr/bin/env bash
# Installs twofold: the PAM module into the system's PAM module directory and the login
# helper it starts into /usr/libexec/twofold (a fixed path, whatever PREFIX: the module
# looks there), the CLI into $PREFIX/bin, the man pages (twofold(1) and its subcommands, twofold.toml(5),
# pam_twofold(8)) and shell completions, the pam.d examples, a commented default
# policy (an existing one is never overwritten), the store directory (0700, root) and,
# outside a staging root, the host's sealing key (twofold key init).
# Self-service: twofold-self into $PREFIX/bin, setuid root (4755), and its own PAM service
# /etc/pam.d/twofold-self (an existing one is kept). No other file in /etc/pam.d is touched:
# adding the line to a login stack is the admin's step (see pam.d-examples/).
# Cockpit: the web console's page (cockpit/twofold/) into $COCKPIT_DIR/twofold
# (/usr/share/cockpit/twofold); it shows up in Cockpit's menu once cockpit-ws is installed.
#
#   scripts/install.sh              build (cargo build --release, scripts/build-module.sh) and install
#   scripts/install.sh --no-build   install what is already built
#   scripts/install.sh --demo       first install the packages the build and the demo need
#                                   (scripts/install-deps.sh), then build and install, then run
#                                   scripts/demo.sh: a login end to end (the README's first step)
# Environment: DESTDIR (staging root for packagers), PREFIX (/usr/local), PAM_MODULE_DIR
# (detected), MODULE, HELPER, CLI and SELF (the built files; default target/release/...), COCKPIT_DIR
# (/usr/share/cockpit: where Debian's Cockpit looks for its pages).
set -euo pipefail
cd "$(dirname "$0")/.."

build=1 demo=0
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    --demo) demo=1 ;;
    *) echo "usage: scripts/install.sh [--no-build] [--demo]" >&2; exit 2 ;;
  esac
done
if [ "$demo" = 1 ]; then
  # Packages (libpam0g-dev, pamtester, oathtool, ...) and cargo on PATH; idempotent.
  source scripts/install-deps.sh
fi
DESTDIR="${DESTDIR:-}"
PREFIX="${PREFIX:-/usr/local}"
MODULE="${MODULE:-target/release/libpam_twofold.so}"
HELPER="${HELPER:-target/release/twofold-login}"
CLI="${CLI:-target/release/twofold}"
SELF="${SELF:-target/release/twofold-self}"

if [ "$build" = 1 ]; then
  cargo build --release --locked
  bash scripts/build-module.sh
fi
for f in "$MODULE" "$HELPER" "$CLI" "$SELF"; do
  [ -f "$f" ] || { echo "install: $f is missing; build first (cargo build --release; scripts/build-module.sh)" >&2; exit 1; }
done

# Where this system's PAM modules live: Debian's multiarch path, else next to pam_unix.so.
detect_module_dir() {
  if command -v dpkg-architecture >/dev/null 2>&1; then
    echo "/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/security"
    return
  fi
  local unix
  unix=$(find /lib /lib64 /usr/lib /usr/lib64 -name pam_unix.so -path '*security*' 2>/dev/null | head -n 1)
  if [ -n "$unix" ]; then
    dirname "$unix"
    return
  fi
  echo "install: cannot find the PAM module directory; set PAM_MODULE_DIR" >&2
  exit 1
}
PAM_MODULE_DIR="${PAM_MODULE_DIR:-$(detect_module_dir)}"

# Owned by root when installing for real; a packager's DESTDIR build may run unprivileged.
owner=()
[ "$(id -u)" = 0 ] && owner=(-o root -g root)

install -D -m 0644 "${owner[@]}" "$MODULE" "$DESTDIR$PAM_MODULE_DIR/pam_twofold.so"
# The module starts it for every login and refuses it unless root owns it and its directory.
install -d -m 0755 "${owner[@]}" "$DESTDIR/usr/libexec/twofold"
install -m 0755 "${owner[@]}" "$HELPER" "$DESTDIR/usr/libexec/twofold/twofold-login"
install -D -m 0755 "${owner[@]}" "$CLI" "$DESTDIR$PREFIX/bin/twofold"
# Earlier versions put the command in $PREFIX/sbin, first in root's PATH: remove that copy.
if [ -e "$DESTDIR$PREFIX/sbin/twofold" ]; then
  rm -f "$DESTDIR$PREFIX/sbin/twofold"
  echo "install: removed the old $DESTDIR$PREFIX/sbin/twofold (the command is in $PREFIX/bin now)"
fi
# Setuid root: users run it as themselves (twofold-self(1), docs/design.md "Self-service").
install -D -m 4755 "${owner[@]}" "$SELF" "$DESTDIR$PREFIX/bin/twofold-self"
if [ -e "$DESTDIR/etc/pam.d/twofold-self" ]; then
  echo "install: keeping the existing $DESTDIR/etc/pam.d/twofold-self"
else
  install -D -m 0644 "${owner[@]}" pam.d-examples/twofold-self "$DESTDIR/etc/pam.d/twofold-self"
fi

docs=$(mktemp -d)
trap 'rm -rf "$docs"' EXIT
"$CLI" generate-docs "$docs" >/dev/null
# twofold(1) and one page per subcommand (twofold-enroll(1), ...), which twofold(1) lists.
COCKPIT_DIR="${COCKPIT_DIR:-/usr/share/cockpit}"
install -d -m 0755 "$DESTDIR$COCKPIT_DIR/twofold"
install -m 0644 cockpit/twofold/manifest.json cockpit/twofold/index.html cockpit/twofold/twofold.js \
  cockpit/twofold/twofold.css "$DESTDIR$COCKPIT_DIR/twofold/"
install -d -m 0755 "$DESTDIR$PREFIX/share/man/man1"
install -m 0644 "$docs"/man1/twofold.1 "$docs"/man1/twofold-*.1 "$DESTDIR$PREFIX/share/man/man1/"
install -D -m 0644 doc/twofold.toml.5 "$DESTDIR$PREFIX/share/man/man5/twofold.toml.5"
install -D -m 0644 doc/twofold-self.1 "$DESTDIR$PREFIX/share/man/man1/twofold-self.1"
install -D -m 0644 doc/pam_twofold.8 "$DESTDIR$PREFIX/share/man/man8/pam_twofold.8"
install -D -m 0644 "$docs/completions/twofold.bash" "$DESTDIR$PREFIX/share/bash-completion/completions/twofold"
install -D -m 0644 "$docs/completions/_twofold" "$DESTDIR$PREFIX/share/zsh/site-functions/_twofold"
install -D -m 0644 "$docs/completions/twofold.fish" "$DESTDIR$PREFIX/share/fish/vendor_completions.d/twofold.fish"
# Fleet mode's agent as a systemd unit (not enabled: docs/fleet.md says when it is needed).
SYSTEMD_UNIT_DIR="${SYSTEMD_UNIT_DIR:-/lib/systemd/system}"
install -d -m 0755 "$DESTDIR$SYSTEMD_UNIT_DIR"
sed "s|@BINDIR@|$PREFIX/bin|" packaging/systemd/twofold-agent.service.in \
  > "$DESTDIR$SYSTEMD_UNIT_DIR/twofold-agent.service"
chmod 0644 "$DESTDIR$SYSTEMD_UNIT_DIR/twofold-agent.service"
install -d -m 0755 "$DESTDIR$PREFIX/share/doc/twofold/pam.d-examples"
install -m 0644 pam.d-examples/* "$DESTDIR$PREFIX/share/doc/twofold/pam.d-examples/"

install -d -m 0755 "${owner[@]}" "$DESTDIR/etc/twofold"
if [ -e "$DESTDIR/etc/twofold/twofold.toml" ]; then
  echo "install: keeping the existing $DESTDIR/etc/twofold/twofold.toml"
else
  install -m 0644 "${owner[@]}" etc/twofold.toml "$DESTDIR/etc/twofold/twofold.toml"
fi
install -d -m 0755 "${owner[@]}" "$DESTDIR/var/lib/twofold"
install -d -m 0700 "${owner[@]}" "$DESTDIR/var/lib/twofold/users"
# The sealing key (secrets encrypted at rest) is made on the host itself, never in a staging
# root: a key shipped inside a package would be the same on every host that installs it.
if [ -z "$DESTDIR" ]; then
  if ls /etc/twofold/keys/*.key >/dev/null 2>&1; then
    echo "install: keeping the existing sealing key(s) in /etc/twofold/keys"
  else
    "$PREFIX/bin/twofold" --config /etc/twofold/twofold.toml key init
  fi
  keys="/etc/twofold/keys (sealing key, root 0600)"
else
  keys="none: run 'twofold key init' on each host (or 'twofold key import' the fleet's)"
fi

cat <<MSG
twofold installed:
  module   $DESTDIR$PAM_MODULE_DIR/pam_twofold.so
  helper   $DESTDIR/usr/libexec/twofold/twofold-login (started by the module for each login)
  command  $DESTDIR$PREFIX/bin/twofold
  users    $DESTDIR$PREFIX/bin/twofold-self (setuid root; PAM service /etc/pam.d/twofold-self)
  cockpit  $DESTDIR$COCKPIT_DIR/twofold (the web console's "Two-factor (2FA)" page)
  policy   $DESTDIR/etc/twofold/twofold.toml
  store    $DESTDIR/var/lib/twofold/users
  keys     $keys
  manuals  twofold(1), twofold-self(1), twofold.toml(5), pam_twofold(8)
Next: enroll yourself (twofold enroll \$USER), then add "auth required pam_twofold.so" to a
PAM stack (examples: $PREFIX/share/doc/twofold/pam.d-examples). Keep a root shell open and
test with pamtester before you log out.
MSG

if [ "$demo" = 1 ]; then
  echo
  echo "== demo: a login end to end (a throwaway user and store; nothing installed is used)"
  scripts/demo.sh
fi
