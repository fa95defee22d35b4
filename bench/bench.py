#!/usr/bin/env python3
"""Benchmarks twofold side by side with google-authenticator-libpam and pam_oath.

Run through scripts/bench.sh (which installs the packages and builds). Each module gets the
same secret for the same users and is driven by the same C driver (bench/pam_bench.c) through
the real libpam: pam_start + pam_authenticate + pam_end per login. pam_wrapper points libpam at
a service directory of the benchmark's own, nss_wrapper supplies the users; each driver runs in
its own mount namespace with a private /tmp (pam_wrapper's directories collide otherwise).

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
        record = (
            'version = 1\nstate = "enabled"\nsecret = "%s"\nalgorithm = "SHA1"\ndigits = 6\n'
            'period = 30\nissuer = "bench"\nlabel = "%%s"\naccount = "%%s"\ncreated = 1700000000\n' % SECRET_B32
        )
        for i in range(self.users):
            # As `twofold enroll` leaves a user: the record names the epoch of its state file
            # (src/store/state_file.rs), whose first slot holds the login state.
            epoch = int.from_bytes(os.urandom(8), "little")
            path = os.path.join(store_dir, "u%d.toml" % i)
            with open(path, "w") as f:
                f.write('hot_state_epoch = "%016x"\n' % epoch + record % ("u%d" % i, "u%d" % i))
            os.chmod(path, 0o600)
            payload = b"failures = 0\ndrift_steps = 0\n"
            header = b"TFSTATE1" + struct.pack("<QQI", 1, epoch, len(payload))
            slot = header + hashlib.sha256(header + payload).digest() + payload
            path = os.path.join(store_dir, "u%d.state" % i)
            with open(path, "wb") as f:
                f.write(slot + bytes(8192 - len(slot)))
            os.chmod(path, 0o600)
        with open(os.path.join(self.services, "bench"), "w") as f:
            f.write("auth required %s config=%s\n" % (self.module, policy))

    def setup_postgres(self, store_dir, pg, cli):
        """The same records, moved into PostgreSQL with `twofold migrate` (fleet mode)."""
        self.setup_twofold(store_dir)
        policy = os.path.join(self.work, "twofold-pg.toml")
        with open(policy, "w") as f:
            f.write('[store]\nkind = "postgres"\nurl = "%s"\n[lockout]\nmax_failures = 0\n'
                    '[backup_codes]\ncount = 0\n' % pg.url())
        subprocess.run([cli, "--config", policy, "db", "init"], stdout=subprocess.DEVNULL, check=True)
        subprocess.run([cli, "--config", policy, "migrate", "--to", "postgres", "--dir", store_dir],
                       stdout=subprocess.DEVNULL, check=True)
        with open(os.path.join(self.services, "bench"), "w") as f:
            f.write("auth required %s config=%s\n" % (self.module, policy))

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

    def setup_oath(self):
        path = os.path.join(self.work, "users.oath")
        with open(path, "w") as f:
            for i in range(self.users):
                f.write("HOTP/T30 u%d - %s\n" % (i, secret_hex()))
        os.chmod(path, 0o600)
        with open(os.path.join(self.services, "bench"), "w") as f:
            f.write("auth required pam_oath.so usersfile=%s window=2 digits=6\n" % path)

    def argv(self, first, count, answer):
        isolate = ('mount -t tmpfs -o mode=1777 bench-tmp /tmp && exec env LD_PRELOAD="libpam_wrapper.so libnss_wrapper.so" '
                   'PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR="$1" NSS_WRAPPER_PASSWD="$2" NSS_WRAPPER_GROUP="$3" '
                   '"$4" bench u "$5" "$6" "$7"')
        return ["unshare", "--mount", "sh", "-c", isolate, "sh", self.services, self.env[0], self.env[1],
                self.driver, str(first), str(count), answer]

    def run(self, first, count, answer):
        """One driver process; returns (latencies_us, accepted, maxrss_kb)."""
        out = subprocess.run(self.argv(first, count, answer), capture_output=True, text=True, check=True).stdout
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
        """procs drivers at once; returns (logins per second, accepted)."""
        started = time.perf_counter()
        children = []
        for p in range(procs):
            start = first if same_user else first + p * per_proc
            children.append(subprocess.Popen(self.argv(start, per_proc if not same_user else 1, answer) if not same_user
                                             else self.argv(first, 1, answer), stdout=subprocess.PIPE, text=True))
        accepted = 0
        for c in children:
            out, _ = c.communicate()
            accepted += parse(out)[1]
        total = procs * (1 if same_user else per_proc)
        return total / (time.perf_counter() - started), accepted


SYNC_CALLS = {"fsync", "fdatasync", "sync_file_range", "msync", "syncfs", "sync"}


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
    lat, accepted, rss = [], 0, 0
    for line in out.splitlines():
        if line.startswith("maxrss_kb"):
            rss = int(line.split()[1])
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
    users = 4 * n + sum(p * t for p in procs_list) + 8 + flush_logins
    b = Bench(work, driver, module, users)
    if name == "twofold":
        store = os.path.join("/dev/shm" if tmpfs_store else work, "store-%d" % os.getpid())
        b.setup_twofold(store)
    elif name == "twofold-postgres":
        b.setup_postgres(os.path.join(work, "store"), pg, cli)
    elif name == "google-authenticator":
        b.setup_google()
    else:
        b.setup_oath()
    wait_fresh_step(25)
    good = code()
    wrong = next(c for c in ("%06d" % (i * 7919 % 1000000) for i in range(99)) if c not in (good, code(-30), code(30)))
    r = {}
    lat, acc, rss = b.run(0, n, good)
    r["accept"] = (statistics.median(lat), pct(lat, 0.99), acc, n)
    r["rss"] = rss
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
    if tmpfs_store:
        shutil.rmtree(store, ignore_errors=True)
    return r


def cli_figures(twofold, work, quick):
    """`twofold list` over big stores, and start-up times."""
    out = {}
    record = ('version = 1\nstate = "enabled"\nsecret = "%s"\nalgorithm = "SHA1"\ndigits = 6\nperiod = 30\n'
              'issuer = "bench"\nlabel = "x"\ncreated = 1700000000\n' % SECRET_B32)
    sizes = [1000] if quick else [1000, 10000, 100000]
    for size in sizes:
        store = os.path.join(work, "list-%d" % size)
        os.makedirs(store, mode=0o700)
        for i in range(size):
            p = os.path.join(store, "u%d.toml" % i)
            with open(p, "w") as f:
                f.write(record)
            os.chmod(p, 0o600)
        policy = os.path.join(work, "list-%d.toml" % size)
        with open(policy, "w") as f:
            f.write('[store]\ndir = "%s"\n' % store)
        times = []
        for _ in range(1 if quick else 3):
            t0 = time.perf_counter()
            subprocess.run([twofold, "--config", policy, "list", "--json"], stdout=subprocess.DEVNULL, check=True)
            times.append(time.perf_counter() - t0)
        out["list%d" % size] = min(times)
        shutil.rmtree(store)
    policy = os.path.join(work, "list-%d.toml" % sizes[0])
    for name, args in (("help", ["--help"]), ("status", ["--config", policy, "status", "root"])):
        times = []
        for _ in range(5 if quick else 50):
            t0 = time.perf_counter()
            subprocess.run([twofold] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times.append(time.perf_counter() - t0)
        out[name] = statistics.median(times)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a few seconds; checks the script runs")
    ap.add_argument("--module", required=True, help="built libpam_twofold.so")
    ap.add_argument("--cli", required=True, help="built twofold")
    ap.add_argument("--driver", required=True)
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="twofold-bench-", dir="/var/tmp")
    try:
        # The drivers run with a private /tmp: what they load must not live under /tmp (a
        # checkout there would vanish), so they use copies in the work directory.
        args.driver = shutil.copy(args.driver, os.path.join(base, "pam_bench"))
        args.module = shutil.copy(args.module, os.path.join(base, "pam_twofold.so"))
        results = {}
        for name in MODULES:
            work = os.path.join(base, name)
            os.makedirs(work)
            results[name] = measure(name, work, args.driver, args.module, args.quick)
        work = os.path.join(base, "twofold-tmpfs")
        os.makedirs(work)
        results["twofold-tmpfs"] = measure("twofold", work, args.driver, args.module, args.quick, tmpfs_store=True)
        pg = Postgres(base)
        try:
            work = os.path.join(base, "twofold-postgres")
            os.makedirs(work)
            results["twofold-postgres"] = measure("twofold-postgres", work, args.driver, args.module, args.quick,
                                                  pg=pg, cli=args.cli)
        finally:
            pg.stop()
        cli = cli_figures(args.cli, os.path.join(base, "cli"), args.quick) if os.makedirs(os.path.join(base, "cli")) is None else None
        report(results, cli, args.quick)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def report(res, cli, quick):
    tf, ga, oa = res["twofold"], res["google-authenticator"], res["pam_oath"]
    tp = res["twofold-postgres"]
    rows = []

    def lat_row(label, key, idx):
        rows.append((label, tf[key][idx], ga[key][idx], oa[key][idx], "µs", True, tp[key][idx]))

    lat_row("accept, median", "accept", 0)
    lat_row("accept, p99", "accept", 1)
    lat_row("accept under disk load, median", "accept_loaded", 0)
    lat_row("accept under disk load, p99", "accept_loaded", 1)
    rows.append(("flushes per accepted login (strace -c)", tf["flushes"], ga["flushes"], oa["flushes"], "calls", True,
                 tp["flushes"]))
    lat_row("wrong code, median", "wrong", 0)
    lat_row("replayed code, median", "replay", 0)
    for p in (1, 2, 8, 32):
        rows.append(("throughput, %d process%s (distinct users)" % (p, "" if p == 1 else "es"),
                     tf["tp%d" % p][0], ga["tp%d" % p][0], oa["tp%d" % p][0], "logins/s", False, tp["tp%d" % p][0]))
    rows.append(("throughput, 8 processes, one user", tf["same8"][0], ga["same8"][0], oa["same8"][0], "logins/s", False,
                 tp["same8"][0]))
    rows.append(("driver peak memory", tf["rss"], ga["rss"], oa["rss"], "KiB", True, tp["rss"]))
    print("\n%s benchmark on %s, %d cores (%s)" % ("Quick" if quick else "Full", os.uname().nodename, os.cpu_count(),
                                                   time.strftime("%Y-%m-%d")))
    print("| metric | twofold | google-authenticator | ratio | pam_oath | ratio | twofold, PostgreSQL store |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, t, g, o, unit, lower_better, q in rows:
        # ratio > 1 means twofold is better.
        rg = (g / t if lower_better else t / g) if t and g else float("nan")
        ro = (o / t if lower_better else t / o) if t and o else float("nan")
        fmt = "%.1f" if unit == "calls" else "%.0f"
        print(("| %s (%s) | " + fmt + " | " + fmt + " | %.2f | " + fmt + " | %.2f | " + fmt + " |")
              % (label, unit, t, g, rg, o, ro, q))
    ft = res["twofold-tmpfs"]
    print("\ntwofold accept median with the store on tmpfs (fsync nearly free): %.0f µs (on disk %.0f µs): "
          "the durable write costs %.0f µs" % (ft["accept"][0], tf["accept"][0], tf["accept"][0] - ft["accept"][0]))
    checks = ["%s %d/%d accepted, %d/%d replays accepted, %d/%d wrong accepted" % (
        name, r["accept"][2], r["accept"][3], r["replay"][2], r["replay"][3], r["wrong"][2], r["wrong"][3])
        for name, r in (("twofold", tf), ("google-authenticator", ga), ("pam_oath", oa), ("twofold-postgres", tp))]
    print("sanity: " + "; ".join(checks))
    print("same user from 8 processes, accepted: twofold %d, google-authenticator %d, pam_oath %d, twofold-postgres %d"
          " (of 8 racing with one code)" % (tf["same8"][1], ga["same8"][1], oa["same8"][1], tp["same8"][1]))
    for key, value in sorted(cli.items()):
        if key.startswith("list"):
            print("twofold list --json over %s users: %.3f s" % (key[4:], value))
    print("twofold --help: %.1f ms; twofold status: %.1f ms (median start-to-exit)" % (cli["help"] * 1e3, cli["status"] * 1e3))


if __name__ == "__main__":
    sys.exit(main())
