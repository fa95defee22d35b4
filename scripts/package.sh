#!/usr/bin/env bash
# Builds the Debian package target/debian/twofold_<version>_<arch>.deb from this checkout and
# checks it with lintian (no errors allowed; warnings are fixed or overridden with a reason in
# packaging/debian/lintian-overrides).
#
# The package holds exactly what scripts/install.sh installs (PREFIX=/usr, staged in
# target/debian/root), so a file install.sh learns to install is packaged too; then the
# Debian parts from packaging/debian: the pam-auth-update profile, maintainer scripts,
# copyright, lintian overrides. Built with dpkg-deb (docs/design.md says why not cargo-deb).
#   scripts/package.sh              build (cargo build --release) and package
#   scripts/package.sh --no-build   package what target/release holds
# Needs dpkg-dev and lintian (scripts/install-deps.sh); runs as any user.
set -euo pipefail
cd "$(dirname "$0")/.."
umask 022

build=1
case "${1:-}" in
  "") ;;
  --no-build) build=0 ;;
  *) echo "usage: scripts/package.sh [--no-build]" >&2; exit 2 ;;
esac
for tool in dpkg-deb:dpkg dpkg-shlibdeps:dpkg-dev lintian:lintian; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || {
    echo "package: ${tool%%:*} is missing: apt-get install ${tool#*:}" >&2
    exit 1
  }
done
[ "$build" = 0 ] || { cargo build --release --locked && bash scripts/build-module.sh; }

# Who builds this package: DEB_MAINTAINER="Name <address>" (a placeholder otherwise).
maintainer="${DEB_MAINTAINER:-twofold maintainers <twofold@example.org>}"
upstream=$(cargo metadata --locked --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "twofold"))')
version="$upstream-1"
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
out=target/debian
root="$out/root"
rm -rf "$root"
mkdir -p "$root"

DESTDIR="$PWD/$root" PREFIX=/usr PAM_MODULE_DIR="/lib/$multiarch/security" \
  bash scripts/install.sh --no-build >/dev/null
# The store directory is made by postinst (0700 root on the host, whoever built this).
rm -rf "$root/var"
rmdir "$root/var" 2>/dev/null || true

# A module built with the relay's test-only `root-tests` feature hands the host's LD_PRELOAD
# and NSS_WRAPPER_* to the helper: never in a package (attack review 3, finding 4). Only that
# build reads the host's environment (`environ`); the shipped one gives the helper PATH alone.
if nm -D --undefined-only "$root/lib/$multiarch/security/pam_twofold.so" | grep -qw 'environ@.*'; then
  echo "package: target/release/libpam_twofold.so is a test build (root-tests); rebuild it with scripts/build-module.sh" >&2
  exit 1
fi
strip --strip-unneeded --remove-section=.comment --remove-section=.note \
  "$root/lib/$multiarch/security/pam_twofold.so"
for f in $(find "$root/usr" -type f -perm -u+x); do
  if file -b "$f" | grep -q ELF; then strip --remove-section=.comment --remove-section=.note "$f"; fi
done
find "$root/usr/share/man" -type f ! -name '*.gz' -exec gzip -9n {} +

doc="$root/usr/share/doc/twofold"
install -m 0644 packaging/debian/copyright "$doc/copyright"
gzip -9nc CHANGELOG.md >"$doc/changelog.gz"
install -m 0644 README.md "$doc/README.md"
gzip -9nc docs/admin-guide.md >"$doc/admin-guide.md.gz"
date=$(git log -1 --format=%cD 2>/dev/null || date -R)
printf 'twofold (%s) unstable; urgency=medium\n\n  * Built from the twofold source tree by scripts/package.sh; changes are in\n    changelog.gz (the project'"'"'s CHANGELOG.md).\n\n -- %s  %s\n' \
  "$version" "$maintainer" "$date" | gzip -9n >"$doc/changelog.Debian.gz"
install -D -m 0644 packaging/debian/pam-config "$root/usr/share/pam-configs/twofold"
install -D -m 0644 packaging/debian/lintian-overrides "$root/usr/share/lintian/overrides/twofold"

# Dependencies from the ELF files' needs (libc6, libpam0g, ...), as Debian computes them.
shlibs=$(mktemp -d)
trap 'rm -rf "$shlibs"' EXIT
mkdir "$shlibs/debian"
printf 'Source: twofold\n\nPackage: twofold\nArchitecture: any\n' >"$shlibs/debian/control"
elves=$(find "$PWD/$root" -type f -exec sh -c 'file -b "$1" | grep -q ELF' _ {} \; -print)
# shellcheck disable=SC2086
depends=$(cd "$shlibs" && dpkg-shlibdeps -O $(printf -- '-e%s ' $elves) 2>/dev/null |
  sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "package: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

mkdir -p "$root/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s|@MAINTAINER@|$maintainer|" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
  -e "s/@DEPENDS@/$depends/" packaging/debian/control.in >"$root/DEBIAN/control"
# Every file install.sh puts under /etc is a conffile: the policy, and any PAM service of our
# own (/etc/pam.d/twofold-self once self-service ships). dpkg never overwrites an edited one.
(cd "$root" && find etc -type f -printf '/%p\n' | sort) >"$root/DEBIAN/conffiles"
grep -qx /etc/twofold/twofold.toml "$root/DEBIAN/conffiles" ||
  { echo "package: install.sh staged no /etc/twofold/twofold.toml" >&2; exit 1; }
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
  xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"

deb="$out/twofold_${version}_${arch}.deb"
rm -f "$out"/twofold_*.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
rm -rf "$root"

echo "package: $deb"
# Errors and warnings both fail; each override in packaging/debian/lintian-overrides says why.
lintian --fail-on error,warning --tag-display-limit 0 "$deb"
echo "package: lintian passed (no errors, no warnings)"
