#!/usr/bin/env bash
# Removes what scripts/install.sh installed. The policy and the users' records stay unless
# --purge is given. Refuses while a file in /etc/pam.d still names pam_twofold.so: removing a
# module a `required` line points to would lock everybody out of that service.
#
#   scripts/uninstall.sh [--purge] [--force]
# Environment: DESTDIR, PREFIX, PAM_MODULE_DIR, COCKPIT_DIR as for install.sh.
set -euo pipefail
purge=0 force=0
for arg in "$@"; do
  case "$arg" in
    --purge) purge=1 ;;
    --force) force=1 ;;
    *) echo "usage: scripts/uninstall.sh [--purge] [--force]" >&2; exit 2 ;;
  esac
done
DESTDIR="${DESTDIR:-}"
PREFIX="${PREFIX:-/usr/local}"
COCKPIT_DIR="${COCKPIT_DIR:-/usr/share/cockpit}"
if [ -z "${PAM_MODULE_DIR:-}" ]; then
  if command -v dpkg-architecture >/dev/null 2>&1; then
    PAM_MODULE_DIR="/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/security"
  else
    PAM_MODULE_DIR=$(dirname "$(find /lib /lib64 /usr/lib /usr/lib64 -name pam_unix.so -path '*security*' 2>/dev/null | head -n 1)")
  fi
fi

# /etc/pam.d/twofold-self is install.sh's own and goes with the helper that uses it.
users=$(grep -l 'pam_twofold' "$DESTDIR"/etc/pam.d/* 2>/dev/null | grep -v '/twofold-self$' || true)
if [ -n "$users" ] && [ "$force" = 0 ]; then
  echo "uninstall: these PAM stacks still use pam_twofold.so; remove the lines first (or --force):" >&2
  echo "$users" >&2
  exit 1
fi

# Removes each path that exists, listing every file and directory as it goes: the admin sees
# exactly what is gone.
remove() {
  local path
  for path in "$@"; do
    [ -e "$path" ] || [ -L "$path" ] || continue
    find "$path" -depth -printf 'removed %p\n'
    rm -rf -- "$path"
  done
}

remove "$DESTDIR$PAM_MODULE_DIR/pam_twofold.so" \
  "$DESTDIR/usr/libexec/twofold" \
  "$DESTDIR$PREFIX/bin/twofold" \
  "$DESTDIR$PREFIX/sbin/twofold" \
  "$DESTDIR$PREFIX/bin/twofold-self" \
  "$DESTDIR/etc/pam.d/twofold-self" \
  "$DESTDIR$PREFIX/share/man/man1/twofold.1" \
  "$DESTDIR$PREFIX/share/man/man1/"twofold-*.1 \
  "$DESTDIR$PREFIX/share/man/man5/twofold.toml.5" \
  "$DESTDIR$PREFIX/share/man/man8/pam_twofold.8" \
  "$DESTDIR$PREFIX/share/bash-completion/completions/twofold" \
  "$DESTDIR$PREFIX/share/zsh/site-functions/_twofold" \
  "$DESTDIR$PREFIX/share/fish/vendor_completions.d/twofold.fish" \
  "$DESTDIR$PREFIX/share/doc/twofold" \
  "$DESTDIR${SYSTEMD_UNIT_DIR:-/lib/systemd/system}/twofold-agent.service" \
  "$DESTDIR$COCKPIT_DIR/twofold"

if [ "$purge" = 1 ]; then
  remove "$DESTDIR/etc/twofold" "$DESTDIR/var/lib/twofold"
  echo "twofold removed, with its policy and every user's 2FA record."
else
  echo "twofold removed; kept $DESTDIR/etc/twofold and the records in $DESTDIR/var/lib/twofold (--purge removes them)."
fi
