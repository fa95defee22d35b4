#!/usr/bin/env bash
# The package's life on a clean Debian 12, run inside a throwaway container by
# scripts/container-test.sh (never on a host: it installs, enables and purges for real):
# install -> enable with pam-auth-update -> login with password and code -> an interrupted
# install finished by `dpkg --configure -a` -> remove -> purge (records kept) -> purge with
# the flag (records gone). Every step checks that users can still log in through common-auth
# (pamtester on a service that only includes the common stacks), and that no line points to
# a missing module.
#   package-test.sh /path/twofold_VERSION_ARCH.deb
set -euo pipefail
deb=$1
export DEBIAN_FRONTEND=noninteractive
module=/lib/x86_64-linux-gnu/security/pam_twofold.so
secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP

step() { echo "--- $*"; }
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
# login USER LINE...: authenticates USER through common-auth, answering the prompts in order.
login() {
  local user=$1
  shift
  printf '%s\n' "$@" | pamtester check-login "$user" authenticate >/dev/null 2>&1
}
# must_login USER WHY ANSWER...; must_not_login likewise.
must_login() { login "$1" "${@:3}" || fail "login as $1 refused: $2"; }
must_not_login() { if login "$1" "${@:3}"; then fail "login as $1 accepted: $2"; fi; }
code() { oathtool --totp -b "$@" "$secret"; }
# The same code with its last digit changed: wrong.
wrong() { local c; c=$(code); echo "${c:0:5}$(((${c:5:1} + 1) % 10))"; }
no_dangling_line() {
  if grep -q pam_twofold /etc/pam.d/common-auth && [ ! -f "$module" ]; then
    fail "common-auth names pam_twofold.so but the module is gone"
  fi
}
# Both users log in with their password alone (twofold not in the stack).
password_logins_work() {
  no_dangling_line
  must_login alice "alice's password, no 2FA in the stack" alice-pw
  must_login bob "bob's password" bob-pw
  must_not_login bob "wrong password" nope
}

step "a user with a password, one without 2FA"
printf '@include common-auth\n@include common-account\n' >/etc/pam.d/check-login
useradd -m alice && echo alice:alice-pw | chpasswd
useradd -m bob && echo bob:bob-pw | chpasswd
auth_before=$(sha256sum /etc/pam.d/common-auth)
password_logins_work

step "apt-get install $(basename "$deb")"
apt-get update -qq
apt-get install -y -qq "$deb" >/dev/null
[ "$(sha256sum /etc/pam.d/common-auth)" = "$auth_before" ] || fail "installing changed common-auth"
for f in "$module" /usr/bin/twofold /usr/share/pam-configs/twofold /etc/twofold/twofold.toml; do
  [ -f "$f" ] || fail "$f not installed"
done
[ "$(stat -c '%a %U %G' /var/lib/twofold/users)" = "700 root root" ] || fail "store not 0700 root"
ls /etc/twofold/keys/*.key >/dev/null 2>&1 || fail "postinst made no sealing key"
dpkg-query -W -f='${Conffiles}\n' twofold | grep -q /etc/twofold/twofold.toml ||
  fail "the policy is not a conffile"
password_logins_work

step "enroll alice; pam-auth-update --enable twofold"
twofold enroll alice --no-verify --secret "$secret" --qr none >/dev/null
pam-auth-update --enable twofold
grep -n . /etc/pam.d/common-auth | grep -v ':#'
unix=$(grep -n 'pam_unix.so' /etc/pam.d/common-auth | head -n 1 | cut -d: -f1)
ours=$(grep -n '^auth[[:space:]]*required[[:space:]]*pam_twofold.so' /etc/pam.d/common-auth |
  cut -d: -f1)
[ -n "$ours" ] && [ "$ours" -gt "$unix" ] || fail "no 'auth required pam_twofold.so' after pam_unix"
first=$(code)
must_login alice "password and a good code" alice-pw "$first"
must_not_login alice "the same code again (replay)" alice-pw "$first"
must_not_login alice "a wrong code" alice-pw "$(wrong)"
must_not_login alice "no code" alice-pw ""
must_not_login alice "a wrong password" nope "$(code -N "$(date -u -d '+30 sec' '+%F %T UTC')")"
must_login bob "not enrolled, nothing required by the policy" bob-pw

step "an interrupted install finished by dpkg --configure -a; the edited policy and key are kept"
echo "# edited by the admin" >>/etc/twofold/twofold.toml
policy=$(sha256sum /etc/twofold/twofold.toml)
keys=$(cat /etc/twofold/keys/*.key | sha256sum)
dpkg --unpack "$deb" >/dev/null
dpkg-query -W -f='${Status}\n' twofold | grep -q unpacked || fail "not left unpacked"
dpkg --configure -a
dpkg-query -W -f='${Status}\n' twofold | grep -q 'install ok installed' || fail "not configured"
version=$(dpkg-query -W -f='${Version}' twofold)
/var/lib/dpkg/info/twofold.postinst configure "$version"
[ "$(sha256sum /etc/twofold/twofold.toml)" = "$policy" ] || fail "the edited policy was replaced"
[ "$(cat /etc/twofold/keys/*.key | sha256sum)" = "$keys" ] || fail "the sealing key changed"
grep -q pam_twofold.so /etc/pam.d/common-auth || fail "reconfiguring disabled twofold"
must_login alice "after reconfiguring, with the next code" alice-pw \
  "$(code -N "$(date -u -d '+30 sec' '+%F %T UTC')")"

step "apt-get remove twofold: the line goes before the module"
apt-get remove -y -qq twofold >/dev/null
grep -q pam_twofold /etc/pam.d/common-auth && fail "common-auth still names pam_twofold.so"
[ ! -e "$module" ] || fail "module left after remove"
[ -f /var/lib/twofold/users/alice.toml ] || fail "remove deleted alice's record"
password_logins_work

step "apt-get purge twofold: policy gone, records and keys kept (no flag)"
apt-get purge -y -qq twofold >/dev/null
[ ! -e /etc/twofold/twofold.toml ] || fail "purge kept the policy"
[ -f /var/lib/twofold/users/alice.toml ] || fail "purge without the flag deleted records"
ls /etc/twofold/keys/*.key >/dev/null 2>&1 || fail "purge without the flag deleted the keys"
password_logins_work

step "reinstall (the kept key is reused), then purge with /etc/twofold/purge-records"
apt-get install -y -qq "$deb" >/dev/null
[ "$(cat /etc/twofold/keys/*.key | sha256sum)" = "$keys" ] || fail "reinstall replaced the key"
grep -q pam_twofold /etc/pam.d/common-auth && fail "reinstall enabled twofold by itself"
touch /etc/twofold/purge-records
apt-get purge -y -qq twofold >/dev/null
[ ! -e /var/lib/twofold ] || fail "purge with the flag kept /var/lib/twofold"
[ ! -e /etc/twofold ] || fail "purge with the flag kept /etc/twofold"
password_logins_work

echo "package-test: all steps passed"
