#!/usr/bin/env python3
"""Benchmarks twofold side by side with google-authenticator-libpam and pam_oath.

Run through scripts/bench.sh (which installs the packages and builds). Each module gets the
same secret for the same users and is driven by the same C driver (bench/pam_bench.c) through
the real libpam: pam_start + pam_authenticate + pam_end per login. Each driver runs in a mount
namespace of its own where the benchmark's service directory, passwd and group files are bind-
mounted over /etc/pam.d, /etc/passwd and /etc/group (the host's stay as they are), and /tmp is
private: libpam and NSS are used exactly as installed, nothing is preloaded.

Also measured: peak memory of the driver (twofold, the peers, and libpam + pam_permit alone),
twofold's fleet mode through a local `twofold agent` and a PostgreSQL server of the benchmark's
own, and `twofold list` over big stores.

Replay protection is on for all three (twofold always; google-authenticator DISALLOW_REUSE and
RATE_LIMIT; pam_oath keeps the last used step), so every accepted login uses a user that has
not used the current code yet. --quick runs a few seconds' worth and asserts nothing.
"""
import argparse
import glob
import hashlib
import os
import shutil
import signal
import struct
import statistics
import subprocess
import sys
import tempfile
import time

SECRET_B32 = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = ["twofold", "google-authenticator", "pam_oath"]
RECORD = ('version = 1\nstate = "enabled"\nsecret = "%s"\nalgorithm = "SHA1"\ndigits = 6\nperiod = 30\n'
          'issuer = "bench"\nlabel = "%%s"\naccount = "%%s"\ncreated = 1700000000\n' % SECRET_B32)


def write_twofold_user(store_dir, name):
    """One user as `twofold enroll --no-verify` leaves them: the record names the epoch of its
    state file (src/store/state_file.rs), whose first slot holds the login state."""
    epoch = int.from_bytes(os.urandom(8), "little")
    path = os.path.join(store_dir, name + ".toml")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, ('hot_state_epoch = "%016x"\n' % epoch + RECORD % (name, name)).encode())
    os.close(fd)
    payload = b"failures = 0\ndrift_steps = 0\n"
    header = b"TFSTATE1" + struct.pack("<QQI", 1, epoch, len(payload))
    slot = header + hashlib.sha256(header + payload).digest() + payload
    fd = os.open(os.path.join(store_dir, name + ".state"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, slot + bytes(8192 - len(slot)))
    os.close(fd)


def secret_hex():
    import base64
    return base64.b32decode(SECRET_B32).hex()


def code(offset=0):
    at = "@%d" % (int(time.time()) + offset)
    return subprocess.check_output(["oathtool", "--totp", "-b", "--now", at, SECRET_B32], text=True).strip()


def wait_fresh_step(margin):
    left = 30 - int(time.time()) % 30
    if left < margin:
        time.sleep(left + 0.3)


class Bench:
    def __init__(self, work, driver, module, users):
        self.work, self.driver, self.users = work, driver, users
        self.helper = HELPER[0]
        self.services = os.path.join(work, "pam.d")
        os.makedirs(self.services)
        with open(os.path.join(self.services, "other"), "w") as f:
            f.write("auth required pam_deny.so\n")
        passwd = os.path.join(work, "passwd")
        with open(passwd, "w") as f:
            f.write("root:x:0:0:root:/root:/bin/sh\n")
            for i in range(users):
                f.write("u%d:x:%d:1000::/nonexistent:/bin/sh\n" % (i, 20000 + i))
        group = os.path.join(work, "group")
        with open(group, "w") as f:
            f.write("root:x:0:\nbench:x:1000:\n")
        self.env = (passwd, group)
        self.module = module

    def setup_twofold(self, store_dir):
        os.makedirs(store_dir, mode=0o700)
        policy = os.path.join(self.work, "twofold.toml")
        with open(policy, "w") as f:
            f.write('[store]\ndir = "%s"\n[lockout]\nmax_failures = 0\n[backup_codes]\ncount = 0\n' % store_dir)
        for i in range(self.users):
            write_twofold_user(store_dir, "u%d" % i)
        with open(os.path.join(self.services, "bench"), "w") as f:
            f.write("auth required %s helper=%s config=%s\n" % (self.module, self.helper, policy))

    def setup_fleet(self, store_dir, pg, cli):
        """Fleet mode: the same records moved into PostgreSQL with `twofold migrate`, and a
        `twofold agent` (started here, stopped by the caller) that the module reaches over its
        Unix socket. Returns the agent."""
        self.setup_twofold(store_dir)
        policy = os.path.join(self.work, "twofold-fleet.toml")
        socket = os.path.join(self.work, "agent", "agent.sock")  # the agent makes the 0700 directory
        with open(policy, "w") as f:
            f.write('[store]\nkind = "postgres"\nurl = "%s"\nagent_socket = "%s"\n[lockout]\nmax_failures = 0\n'
                    '[backup_codes]\ncount = 0\n' % (pg.url(), socket))
        subprocess.run([cli, "--config", policy, "db", "init"], stdout=subprocess.DEVNULL, check=True)
        agent = Agent(cli, policy, socket)
        try:
            subprocess.run([cli, "--config", policy, "migrate", "--to", "postgres", "--dir", store_dir],
                           stdout=subprocess.DEVNULL, check=True)
        except BaseException:
            agent.stop()
            raise
        with open(os.path.join(self.services, "bench"), "w") as f:
            f.write("auth required %s helper=%s config=%s\n" % (self.module, self.helper, policy))
        return agent

    def setup_google(self):
        d = os.path.join(self.work, "ga")
        os.makedirs(d, mode=0o700)
        # What google-authenticator -t -d -f -r 3 -R 30 -w 3 writes, with our secret.
        body = '%s\n" RATE_LIMIT 3 30\n" WINDOW_SIZE 3\n" DISALLOW_REUSE\n" TOTP_AUTH\n' % SECRET_B32
        for i in range(self.users):
            path = os.path.join(d, "u%d" % i)
            with open(path, "w") as f:
                f.write(body)
            os.chmod(path, 0o600)
        with open(os.path.join(self.services, "bench"), "w") as f:
            f.write("auth required pam_google_authenticator.so secret=%s/${USER} user=root\n" % d)

    def setup_permit(self):
        with open(os.path.join(self.services, "bench"), "w") as f:
            f.write("auth required pam_permit.so\n")

    def setup_oath(self):
        path = os.path.join(self.work, "users.oath")
        with open(path, "w") as f:
            for i in range(self.users):
                f.write("HOTP/T30 u%d - %s\n" % (i, secret_hex()))
        os.chmod(path, 0o600)
        with open(os.path.join(self.services, "bench"), "w") as f:
            f.write("auth required pam_oath.so usersfile=%s window=2 digits=6\n" % path)

    def argv(self, first, count, answer, service="bench"):
        # A bind mount over a file that useradd is renaming into place that moment fails with
        # ENOENT (other work on the machine adds users): try again briefly.
        isolate = ('bind() { for i in 1 2 3 4 5 6 7 8 9; do mount --bind "$1" "$2" 2>/dev/null && return; sleep 0.1; '
                   'done; mount --bind "$1" "$2"; } && mount -t tmpfs -o mode=1777 bench-tmp /tmp && '
                   'bind "$1" /etc/pam.d && bind "$2" /etc/passwd && bind "$3" /etc/group && '
                   'exec "$4" "$8" u "$5" "$6" "$7"')
        return ["unshare", "--mount", "sh", "-c", isolate, "sh", self.services, self.env[0], self.env[1],
                self.driver, str(first), str(count), answer, service]

    def run(self, first, count, answer, service="bench"):
        """One driver process; returns (latencies_us, accepted, maxrss_kb)."""
        out = subprocess.run(self.argv(first, count, answer, service), capture_output=True, text=True,
                             check=True).stdout
        return parse(out)

    def flushes(self, first, count, answer):
        """Flushes (fsync, fdatasync, ...) per login of one driver process, counted by strace -c."""
        log = os.path.join(self.work, "strace-c")
        subprocess.run(["strace", "-f", "-qq", "-c", "-o", log, "-e",
                        "trace=fsync,fdatasync,sync_file_range,msync,syncfs,sync"] + self.argv(first, count, answer),
                       capture_output=True, text=True, check=True)
        calls = 0
        with open(log) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 5 and fields[-1] in SYNC_CALLS and fields[3].isdigit():
                    calls += int(fields[3])
        return calls / count

    def parallel(self, procs, per_proc, first, answer, same_user=False):
        """procs drivers at once; returns (accepted logins per second, accepted)."""
        started = time.perf_counter()
        children = []
        for p in range(procs):
            start = first if same_user else first + p * per_proc
            children.append(subprocess.Popen(self.argv(start, per_proc if not same_user else 1, answer) if not same_user
                                             else self.argv(first, 1, answer), stdout=subprocess.PIPE, text=True))
        accepted = 0
        for c in children:
            out, _ = c.communicate()
            if c.returncode != 0:
                raise SystemExit("a driver failed (exit %d): see above" % c.returncode)
            accepted += parse(out)[1]
        # Logins served: a refused valid code is not throughput (pam_oath refuses most logins
        # that find its users file locked by another).
        # The one-user race answers 8 logins of which one may pass: there, answers per second.
        served = procs if same_user else accepted
        return served / (time.perf_counter() - started), accepted


SYNC_CALLS = {"fsync", "fdatasync", "sync_file_range", "msync", "syncfs", "sync"}


class Agent:
    """`twofold --config POLICY agent --socket SOCKET` in the background (as root), like
    tests/common/agent.rs; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, cli, policy, socket):
        self.socket = socket
        self.log = open(socket_log(socket), "w")
        self.proc = subprocess.Popen([cli, "--config", policy, "agent", "--socket", socket],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 10
        while not os.path.exists(socket):
            if time.time() > deadline or self.proc.poll() is not None:
                self.stop()
                raise SystemExit("twofold agent did not start: " + open(socket_log(socket)).read())
            time.sleep(0.01)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def socket_log(socket):
    return os.path.dirname(os.path.dirname(socket)) + "/agent.log"


class DiskLoad:
    """A background writer on the disk under `work`: dd with O_DSYNC in a loop, so every write it
    makes is a flush that the logins' flushes queue behind. Started and stopped by the benchmark."""

    def __init__(self, work):
        self.file = os.path.join(work, "disk-load")
        self.proc = subprocess.Popen(
            ["sh", "-c", 'while :; do dd if=/dev/zero of="$1" bs=64k count=64 oflag=dsync status=none; done',
             "sh", self.file], start_new_session=True)
        time.sleep(0.5)

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        if os.path.exists(self.file):
            os.remove(self.file)


def parse(out):
    """Latencies, accepted count, and memory: {"rss": peak KiB, "anon": KiB at the last login}."""
    lat, accepted, rss = [], 0, {}
    for line in out.splitlines():
        if line.startswith("maxrss_kb"):
            rss["rss"] = int(line.split()[1])
        elif line.startswith("anon_kb"):
            rss["anon"] = int(line.split()[1])
        else:
            us, ok = line.split()
            lat.append(float(us))
            accepted += int(ok)
    return lat, accepted, rss


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


class Postgres:
    """A PostgreSQL server of the benchmark's own (Debian's package), on a Unix socket."""

    def __init__(self, base):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            raise SystemExit("PostgreSQL is not installed: apt-get install postgresql")
        self.bin = os.path.dirname(bins[-1])
        self.dir = os.path.join(base, "pg")
        os.makedirs(self.dir)
        os.chmod(base, 0o711)  # the server runs as postgres and must reach its directory
        subprocess.run(["chown", "-R", "postgres", self.dir], check=True)
        self.pg("initdb", "-D", self.dir + "/data", "-U", "postgres", "--auth-local=trust")
        self.pg("pg_ctl", "-D", self.dir + "/data", "-o", "-k %s -c listen_addresses='' -c max_connections=200" % self.dir,
                "-l", self.dir + "/log", "-w", "start")

    def pg(self, tool, *args):
        subprocess.run(["runuser", "-u", "postgres", "--", os.path.join(self.bin, tool)] + list(args),
                       stdout=subprocess.DEVNULL, check=True)

    def url(self):
        return "host=%s dbname=postgres user=postgres" % self.dir

    def stop(self):
        self.pg("pg_ctl", "-D", self.dir + "/data", "-m", "immediate", "-w", "stop")


def measure(name, work, driver, module, quick, tmpfs_store=False, pg=None, cli=None):
    n = 40 if quick else 400          # logins per latency measurement
    t = 4 if quick else 40            # logins per process in the throughput runs
    procs_list = [1, 2, 8, 32]
    flush_logins = 10
    users = 4 * n + sum(p * t for p in procs_list) + 8 + flush_logins + MEMORY_PAIRS * MEMORY_LOGINS
    b = Bench(work, driver, module, users)
    agent = None
    if name == "twofold":
        store = os.path.join("/dev/shm" if tmpfs_store else work, "store-%d" % os.getpid())
        b.setup_twofold(store)
    elif name == "twofold-fleet":
        agent = b.setup_fleet(os.path.join(work, "store"), pg, cli)
    elif name == "google-authenticator":
        b.setup_google()
    else:
        b.setup_oath()
    try:
        r = measure_all(b, n, t, procs_list, flush_logins, work)
        if agent and r["accept"][2] < n:
            # Valid codes were refused: what the agent said (the module's lines go to syslog).
            with open(socket_log(agent.socket)) as f:
                sys.stderr.write("twofold agent log:\n" + f.read()[-4000:])
        return r
    finally:
        if agent:
            agent.stop()
        if tmpfs_store:
            shutil.rmtree(store, ignore_errors=True)


def measure_all(b, n, t, procs_list, flush_logins, work):
    wait_fresh_step(25)
    good = code()
    wrong = next(c for c in ("%06d" % (i * 7919 % 1000000) for i in range(99)) if c not in (good, code(-30), code(30)))
    r = {}
    lat, acc, rss = b.run(0, n, good)
    r["accept"] = (statistics.median(lat), pct(lat, 0.99), acc, n)
    r["rss"], r["anon"] = rss["rss"], rss["anon"]
    lat, acc, _ = b.run(0, n, good)        # the same users again: replays
    r["replay"] = (statistics.median(lat), pct(lat, 0.99), acc, n)
    lat, acc, _ = b.run(n, n, wrong)
    r["wrong"] = (statistics.median(lat), pct(lat, 0.99), acc, n)
    r["flushes"] = b.flushes(3 * n, flush_logins, good)
    load = DiskLoad(work)
    try:
        lat, acc, _ = b.run(3 * n + flush_logins, n, good)
    finally:
        load.stop()
    r["accept_loaded"] = (statistics.median(lat), pct(lat, 0.99), acc, n)
    first = 4 * n + flush_logins
    for p in procs_list:
        rate, acc = b.parallel(p, t, first, good)
        r["tp%d" % p] = (rate, acc, p * t)
        first += p * t
    rate, acc = b.parallel(8, 1, first, good, same_user=True)
    r["same8"] = (rate, acc, 8)
    r["rss_over"] = paired_rss_over(b, first + 8)
    return r


MEMORY_PAIRS = 3   # pairs of (pam_permit, module) driver runs for the peak-memory figure
MEMORY_LOGINS = 10  # accepted logins per module run in a pair


def paired_rss_over(b, first, pairs=MEMORY_PAIRS):
    """How much more peak RSS (VmHWM, KiB) the driver needs with the module than with pam_permit
    alone, each module run right after a pam_permit run of the same driver in the same state of
    the page cache (which decides how much of libc is mapped): the median of `pairs`."""
    with open(os.path.join(b.services, "permit"), "w") as f:
        f.write("auth required pam_permit.so\n")
    wait_fresh_step(10)
    fresh = code()
    overs = []
    for i in range(pairs):
        _, _, floor = b.run(first, MEMORY_LOGINS, "000000", service="permit")
        _, accepted, rss = b.run(first + i * MEMORY_LOGINS, MEMORY_LOGINS, fresh)
        if accepted != MEMORY_LOGINS:
            raise RuntimeError("memory runs: %d of %d logins accepted" % (accepted, MEMORY_LOGINS))
        overs.append(rss["rss"] - floor["rss"])
    return statistics.median(overs), overs


def measure_floor(work, driver, quick):
    """libpam with pam_permit alone: the peak memory (and time) every module adds to."""
    n = 40 if quick else 400
    b = Bench(work, driver, None, n)
    b.setup_permit()
    lat, acc, rss = b.run(0, n, "000000")
    return {"accept": (statistics.median(lat), pct(lat, 0.99), acc, n), "rss": rss["rss"], "anon": rss["anon"]}


def memory_only(work, driver, module, pairs):
    """`--only memory`: the paired peak-RSS figure alone (twofold, file store), `pairs` pairs."""
    b = Bench(work, driver, module, pairs * MEMORY_LOGINS)
    b.setup_twofold(os.path.join(work, "store"))
    over, each = paired_rss_over(b, 0, pairs)
    print("twofold over libpam + pam_permit alone, peak RSS (VmHWM), %d paired runs of %d logins: "
          "median %+d KiB (each: %s)" % (pairs, MEMORY_LOGINS, over, ", ".join("%+d" % o for o in each)))
    print("ldd pam_twofold.so: " + ", ".join(linked_libraries(module)))


def linked_libraries(module):
    """What the dynamic linker loads with the module (`ldd`), names only."""
    out = subprocess.run(["ldd", module], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def cli_figures(twofold, work, quick, sizes=None, startup=True):
    """`twofold list` over big stores, and start-up times."""
    out = {}
    sizes = sizes or ([1000] if quick else [1000, 10000, 100000])
    files_only = files_only_nsswitch(work)
    for size in sizes:
        out.update(list_figures(twofold, work, size, 1 if quick else 3, files_only))
    if not startup:
        return out
    policy = os.path.join(work, "list-%d.toml" % sizes[0])
    for name, args in (("help", ["--help"]), ("status", ["--config", policy, "status", "root"])):
        times = []
        for _ in range(5 if quick else 50):
            t0 = time.perf_counter()
            subprocess.run([twofold] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times.append(time.perf_counter() - t0)
        out[name] = statistics.median(times)
    return out


def list_figures(twofold, work, size, runs, files_only):
    """`twofold list --json` over `size` users, each with a record and a state file as enroll
    leaves them. As on a real host the users are in NSS (a passwd file with them bind-mounted
    over /etc/passwd in a mount namespace): timed with NSS as installed and reduced to `files`.
    The old worst case, users missing from NSS (every account lookup a miss), is timed too,
    with the lookups alone (getpwnam of the same names, from Python)."""
    out = {}
    store = os.path.join(work, "list-%d" % size)
    os.makedirs(store, mode=0o700)
    for i in range(size):
        write_twofold_user(store, "u%d" % i)
    policy = os.path.join(work, "list-%d.toml" % size)
    with open(policy, "w") as f:
        f.write('[store]\ndir = "%s"\n' % store)
    passwd = os.path.join(work, "passwd-%d" % size)
    with open("/etc/passwd") as src, open(passwd, "w") as dst:
        dst.write(src.read())
        for i in range(size):
            dst.write("u%d:x:%d:1000::/nonexistent:/bin/sh\n" % (i, 200000 + i))
    in_nss = [("/etc/passwd", passwd)]
    reduced = in_nss + [("/etc/nsswitch.conf", files_only)]
    lookups = [sys.executable, "-c", "import pwd, time\nt = time.perf_counter()\nfor i in range(%d):\n"
               " try: pwd.getpwnam('u%%d' %% i)\n except KeyError: pass\nprint(time.perf_counter() - t)" % size]
    listing = [twofold, "--config", policy, "list", "--json"]
    out["list%d" % size] = timed(in_namespace(in_nss, listing), runs)
    out["listfiles%d" % size] = timed(in_namespace(reduced, listing), runs)
    out["listmissing%d" % size] = timed(listing, runs)
    out["nss%d" % size] = float(subprocess.check_output(lookups))
    out["nssfiles%d" % size] = float(subprocess.check_output(in_namespace([("/etc/nsswitch.conf", files_only)],
                                                                         lookups)))
    listed = subprocess.run(in_namespace(in_nss, listing), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            check=True).stdout
    out["listed%d" % size] = listed.count(b'"user"')
    if LIST_FLOOR[0]:
        out["floor%d" % size] = float(subprocess.check_output([LIST_FLOOR[0], store, str(size)]))
        out["onefloor%d" % size] = float(subprocess.check_output([LIST_FLOOR[0], store, str(size), "--one",
                                                                  str(os.cpu_count())]))
    shutil.rmtree(store)
    os.unlink(passwd)
    return out


def timed(argv, runs):
    """Median wall time of `runs` runs of argv, output discarded."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def files_only_nsswitch(work):
    """This host's nsswitch.conf with passwd and group looked up in files alone."""
    path = os.path.join(work, "nsswitch-files.conf")
    with open("/etc/nsswitch.conf") as src, open(path, "w") as dst:
        for line in src:
            key = line.split(":")[0].strip()
            dst.write(key + ": files\n" if key in ("passwd", "group") else line)
    return path


def in_namespace(binds, argv):
    """argv in a mount namespace of its own where each (target, source) of `binds` is bind-
    mounted over its target (the host's files stay as they are)."""
    script = "".join('mount --bind "$%d" "$%d" && ' % (2 * i + 1, 2 * i + 2) for i in range(len(binds)))
    shift = "shift %d && " % (2 * len(binds)) if binds else ""
    args = [path for target, source in binds for path in (source, target)]
    return ["unshare", "--mount", "sh", "-c", script + shift + 'exec "$@"', "sh"] + args + argv


# The login helper the module starts (twofold-login), set by main: the module's `helper=`.
HELPER = [None]
# bench/list_floor.c built (beside the driver), set by main if it is there.
LIST_FLOOR = [None]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a few seconds; checks the script runs")
    ap.add_argument("--module", help="built libpam_twofold.so")
    ap.add_argument("--helper", help="built twofold-login (the module's helper)")
    ap.add_argument("--cli", required=True, help="built twofold")
    ap.add_argument("--driver")
    ap.add_argument("--only", choices=["list", "memory"],
                    help="only these figures: `list` times `twofold list`; `memory` is the module's peak "
                         "RSS over pam_permit alone")
    ap.add_argument("--memory-pairs", type=int, default=MEMORY_PAIRS,
                    help="paired runs for `--only memory` (default %d)" % MEMORY_PAIRS)
    ap.add_argument("--list-sizes", type=lambda s: [int(n) for n in s.split(",")],
                    help="store sizes for the list figures, comma-separated (default 1000,10000,100000)")
    args = ap.parse_args()
    if args.only != "list" and not (args.module and args.helper and args.driver):
        ap.error("--module, --helper and --driver are needed unless --only list")
    load_before = os.getloadavg()
    floor = os.path.join(os.path.dirname(os.path.abspath(args.driver or ".")), "list_floor")
    LIST_FLOOR[0] = floor if args.driver and os.access(floor, os.X_OK) else None
    base = tempfile.mkdtemp(prefix="twofold-bench-", dir="/var/tmp")
    try:
        if args.only == "list":
            os.makedirs(os.path.join(base, "cli"))
            cli = cli_figures(args.cli, os.path.join(base, "cli"), args.quick, args.list_sizes, startup=False)
            report_list(cli, load_before)
            return
        # The drivers run with a private /tmp: what they load must not live under /tmp (a
        # checkout there would vanish), so they use copies in the work directory.
        args.driver = shutil.copy(args.driver, os.path.join(base, "pam_bench"))
        args.module = shutil.copy(args.module, os.path.join(base, "pam_twofold.so"))
        HELPER[0] = shutil.copy(args.helper, os.path.join(base, "twofold-login"))
        if args.only == "memory":
            os.makedirs(os.path.join(base, "memory"))
            memory_only(os.path.join(base, "memory"), args.driver, args.module, args.memory_pairs)
            return
        results = {}
        for name in MODULES:
            work = os.path.join(base, name)
            os.makedirs(work)
            results[name] = measure(name, work, args.driver, args.module, args.quick)
        work = os.path.join(base, "pam_permit")
        os.makedirs(work)
        results["pam_permit"] = measure_floor(work, args.driver, args.quick)
        work = os.path.join(base, "twofold-tmpfs")
        os.makedirs(work)
        results["twofold-tmpfs"] = measure("twofold", work, args.driver, args.module, args.quick, tmpfs_store=True)
        pg = Postgres(base)
        try:
            work = os.path.join(base, "twofold-fleet")
            os.makedirs(work)
            results["twofold-fleet"] = measure("twofold-fleet", work, args.driver, args.module, args.quick,
                                               pg=pg, cli=args.cli)
        finally:
            pg.stop()
        os.makedirs(os.path.join(base, "cli"))
        cli = cli_figures(args.cli, os.path.join(base, "cli"), args.quick, args.list_sizes)
        report(results, cli, args.quick, linked_libraries(args.module), load_before)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def report(res, cli, quick, libraries, load_before):
    tf, ga, oa = res["twofold"], res["google-authenticator"], res["pam_oath"]
    fl = res["twofold-fleet"]
    rows = []

    def lat_row(label, key, idx):
        rows.append((label, tf[key][idx], ga[key][idx], oa[key][idx], "µs", True, fl[key][idx]))

    lat_row("accept, median", "accept", 0)
    lat_row("accept, p99", "accept", 1)
    lat_row("accept under disk load, median", "accept_loaded", 0)
    lat_row("accept under disk load, p99", "accept_loaded", 1)
    rows.append(("flushes per accepted login (strace -c)", tf["flushes"], ga["flushes"], oa["flushes"], "calls", True,
                 fl["flushes"]))
    lat_row("wrong code, median", "wrong", 0)
    lat_row("replayed code, median", "replay", 0)
    for p in (1, 2, 8, 32):
        rows.append(("throughput, %d process%s (distinct users), accepted" % (p, "" if p == 1 else "es"),
                     tf["tp%d" % p][0], ga["tp%d" % p][0], oa["tp%d" % p][0], "logins/s", False, fl["tp%d" % p][0]))
    rows.append(("8 processes racing on one user, answered", tf["same8"][0], ga["same8"][0], oa["same8"][0], "logins/s", False,
                 fl["same8"][0]))
    rows.append(("driver peak memory (VmHWM)", tf["rss"], ga["rss"], oa["rss"], "KiB", True, fl["rss"]))
    print("\n%s benchmark on %s, %d cores (%s), load average (1, 5, 15 min) before: %s, after: %s" % (
        "Quick" if quick else "Full", os.uname().nodename, os.cpu_count(), time.strftime("%Y-%m-%d"),
        " ".join("%.2f" % x for x in load_before), " ".join("%.2f" % x for x in os.getloadavg())))
    print("| metric | twofold | google-authenticator | ratio | pam_oath | ratio | twofold fleet (agent + PostgreSQL) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, t, g, o, unit, lower_better, q in rows:
        # ratio > 1 means twofold is better.
        rg = (g / t if lower_better else t / g) if t and g else float("nan")
        ro = (o / t if lower_better else t / o) if t and o else float("nan")
        fmt = "%.1f" if unit == "calls" else "%.0f"
        print(("| %s (%s) | " + fmt + " | " + fmt + " | %.2f | " + fmt + " | %.2f | " + fmt + " |")
              % (label, unit, t, g, rg, o, ro, q))
    report_memory(res, libraries)
    ft = res["twofold-tmpfs"]
    print("\ntwofold accept median with the store on tmpfs (fsync nearly free): %.0f µs (on disk %.0f µs): "
          "the durable write costs %.0f µs" % (ft["accept"][0], tf["accept"][0], tf["accept"][0] - ft["accept"][0]))
    print("fleet accept median / file store accept median: %.2f (goal: at most 2)" % (fl["accept"][0] / tf["accept"][0]))
    print("libpam + pam_permit alone: accept median %.0f µs, p99 %.0f µs" % res["pam_permit"]["accept"][:2])
    checks = ["%s %d/%d accepted, %d/%d replays accepted, %d/%d wrong accepted" % (
        name, r["accept"][2], r["accept"][3], r["replay"][2], r["replay"][3], r["wrong"][2], r["wrong"][3])
        for name, r in (("twofold", tf), ("google-authenticator", ga), ("pam_oath", oa), ("twofold-fleet", fl))]
    print("sanity: " + "; ".join(checks))
    keys = ["tp%d" % p for p in (1, 2, 8, 32)]
    print("throughput runs, accepted of attempted: " + "; ".join(
        "%s %d/%d" % (name, sum(r[k][1] for k in keys), sum(r[k][2] for k in keys))
        for name, r in (("twofold", tf), ("google-authenticator", ga), ("pam_oath", oa), ("twofold-fleet", fl))))
    print("same user from 8 processes, accepted: twofold %d, google-authenticator %d, pam_oath %d, twofold-fleet %d"
          " (of 8 racing with one code)" % (tf["same8"][1], ga["same8"][1], oa["same8"][1], fl["same8"][1]))
    report_list(cli)
    print("twofold --help: %.1f ms; twofold status: %.1f ms (median start-to-exit)" % (cli["help"] * 1e3, cli["status"] * 1e3))


def report_list(cli, load_before=None):
    """The `twofold list` lines: users in NSS first (as installed, then files only), then the
    old worst case of users missing from NSS."""
    if load_before:
        print("\nlist benchmark on %s, %d cores (%s), load average before: %s, after: %s" % (
            os.uname().nodename, os.cpu_count(), time.strftime("%Y-%m-%d"),
            " ".join("%.2f" % x for x in load_before), " ".join("%.2f" % x for x in os.getloadavg())))
    for size in sorted(int(k[6:]) for k in cli if k.startswith("listed")):
        print("twofold list --json over %d users in NSS (record + state file each, %d listed): %.3f s (median) "
              "with NSS as installed, %.3f s with NSS reduced to files" % (
                  size, cli["listed%d" % size], cli["list%d" % size], cli["listfiles%d" % size]))
        if "floor%d" % size in cli:
            print("the floor under it: openat, fstat, pread and close of both files of %d users, in C, one thread, "
                  "no parsing: %.3f s" % (size, cli["floor%d" % size]))
            print("the floor under any layout with one file per user: openat, a 1 KiB read and close of one file "
                  "of each of %d users, no check, in C, %d threads: %.3f s" % (
                      size, os.cpu_count(), cli["onefloor%d" % size]))
        print("twofold list --json over %d users missing from NSS (the old worst case): %.3f s as installed; "
              "the %d failed account lookups alone: %.3f s as installed, %.3f s with files" % (
                  size, cli["listmissing%d" % size], size, cli["nss%d" % size], cli["nssfiles%d" % size]))


def report_memory(res, libraries):
    """Peak memory of the process that loads each module, next to libpam with pam_permit alone."""
    floor = res["pam_permit"]
    print("\n| process that loads the module | peak RSS (KiB) | over pam_permit alone, paired runs: median (each) (KiB) "
          "| anonymous memory, module loaded (KiB) | over pam_permit alone (KiB) |")
    print("| --- | --- | --- | --- | --- |")
    for label, key in (("libpam + pam_permit alone", "pam_permit"), ("twofold (file store)", "twofold"),
                       ("twofold (fleet, through the agent)", "twofold-fleet"),
                       ("google-authenticator", "google-authenticator"), ("pam_oath", "pam_oath")):
        r = res[key]
        over, each = r.get("rss_over", (0, [0]))
        print("| %s | %d | %+d (%s) | %d | %+d |" % (label, r["rss"], over, ", ".join("%+d" % o for o in each),
                                                     r["anon"], r["anon"] - floor["anon"]))
    print("\nldd pam_twofold.so: " + ", ".join(libraries))


if __name__ == "__main__":
    sys.exit(main())
