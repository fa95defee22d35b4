//! Power loss, simulated: what survives when every write that was not yet flushed may be lost.
//!
//! A worker (`twofold-test-worker sequence`) logs a user in 60 times through the library's
//! login path against a file store (right codes, wrong codes, admin rewrites in between),
//! under `strace`, which records every open, write, flush, rename and unlink with its bytes.
//! The test then replays that trace into a model of a disk: a crash after any call keeps every
//! write that a later `fsync`/`fdatasync` of its file made durable (and every rename or unlink a
//! later directory sync made durable), and keeps, drops or tears (per 512-byte sector) each
//! write and each directory change that was not. After each of at least 1000 such crashes the
//! store is rebuilt from the model and must (1) load the user's record, (2) hold a replay step
//! at least as high as every login that returned "accepted" before the crash, and (3) refuse,
//! through the real login path, the last code accepted before the crash.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

use common::{library_login, worker};
use pam_twofold::Store;
use pam_twofold::enroll::{Enrollment, NewSecret, Proof, Token};
use pam_twofold::login::Outcome;
use pam_twofold::otp::{self, Secret, TotpParams};
use pam_twofold::store::Replace;
use pam_twofold::{FileStore, UserName};

const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const LOGINS: &str = "60";
const TRIALS: usize = 1500;

/// What the traced process did, in order; files by inode number (the model's own).
#[derive(Debug, Clone)]
enum Op {
    Create {
        name: String,
        inode: usize,
    },
    Write {
        inode: usize,
        at: u64,
        bytes: Vec<u8>,
    },
    Sync {
        inode: usize,
    },
    DirSync,
    Rename {
        from: String,
        to: String,
    },
    Unlink {
        name: String,
    },
    Accepted {
        step: u64,
    },
}

fn private_dir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

fn code_at(now: u64) -> String {
    otp::totp(
        &Secret::from_base32(SECRET).unwrap(),
        TotpParams::default(),
        now,
    )
    .to_string()
}

/// strace's quoted string (`-xx`: every byte as `\xHH`, or plain characters) as bytes.
fn unquote(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'x' => {
                    let hex = std::str::from_utf8(&b[i + 2..i + 4]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 4;
                }
                b'n' => (out.push(b'\n'), i += 2).1,
                b't' => (out.push(b'\t'), i += 2).1,
                c => (out.push(c), i += 2).1,
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// The quoted strings of one strace line, in order.
fn strings(line: &str) -> Vec<Vec<u8>> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find('"') {
        let body = &rest[start + 1..];
        let mut end = 0;
        let bytes = body.as_bytes();
        while bytes[end] != b'"' {
            end += if bytes[end] == b'\\' { 2 } else { 1 };
        }
        found.push(unquote(&body[..end]));
        rest = &body[end + 1..];
    }
    found
}

/// The path strace's `-y` shows for the first descriptor argument: `fsync(5</a/b>)`.
fn fd_path(line: &str) -> Option<String> {
    let open = line.find('<')?;
    let close = line[open..].find(">")? + open;
    Some(String::from_utf8(unquote(&line[open + 1..close])).unwrap())
}

/// The trace as operations on the store directory `dir` (paths made names).
fn parse(log: &str, dir: &str, initial: &BTreeMap<String, usize>) -> Vec<Op> {
    let mut names = initial.clone();
    let mut next_inode = names.len();
    let mut offsets: BTreeMap<usize, u64> = BTreeMap::new(); // by inode: our writes are sequential per fd
    let name_of = |path: &str| path.strip_prefix(&format!("{dir}/")).map(str::to_owned);
    let mut ops = Vec::new();
    for line in log.lines() {
        let call = line.split('(').next().unwrap_or("");
        let ok = !line.contains(" = -1 ");
        match call {
            "openat" if ok && line.contains("O_CREAT") => {
                let path = String::from_utf8(strings(line)[0].clone()).unwrap();
                if let Some(name) = name_of(&path) {
                    if !names.contains_key(&name) {
                        names.insert(name.clone(), next_inode);
                        ops.push(Op::Create {
                            name,
                            inode: next_inode,
                        });
                        next_inode += 1;
                    }
                    offsets.insert(names[&name_of(&path).unwrap()], 0);
                }
            }
            "openat" if ok => {
                let path = String::from_utf8(strings(line)[0].clone()).unwrap();
                if let Some(inode) = name_of(&path).and_then(|n| names.get(&n)) {
                    offsets.insert(*inode, 0);
                }
            }
            "write" | "pwrite64" if ok => {
                if line.starts_with("write(1") {
                    let text = String::from_utf8(strings(line)[0].clone()).unwrap();
                    if let Some(step) = text.trim().strip_prefix("accepted ") {
                        ops.push(Op::Accepted {
                            step: step.parse().unwrap(),
                        });
                    }
                    continue;
                }
                let Some(inode) = fd_path(line)
                    .and_then(|p| name_of(&p))
                    .and_then(|n| names.get(&n).copied())
                else {
                    continue;
                };
                let bytes = strings(line).pop().unwrap();
                let at = match call {
                    "pwrite64" => line
                        .rsplit(", ")
                        .next()
                        .unwrap()
                        .split(')')
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap(),
                    _ => offsets[&inode],
                };
                if call == "write" {
                    offsets.insert(inode, at + bytes.len() as u64);
                }
                ops.push(Op::Write { inode, at, bytes });
            }
            "fsync" | "fdatasync" if ok => match fd_path(line) {
                Some(p) if p == dir => ops.push(Op::DirSync),
                Some(p) => {
                    if let Some(inode) = name_of(&p).and_then(|n| names.get(&n).copied()) {
                        ops.push(Op::Sync { inode });
                    }
                }
                None => {}
            },
            "rename" | "renameat" | "renameat2" if ok => {
                let s = strings(line);
                let (from, to) = (
                    String::from_utf8(s[0].clone()).unwrap(),
                    String::from_utf8(s[1].clone()).unwrap(),
                );
                let (Some(from), Some(to)) = (name_of(&from), name_of(&to)) else {
                    continue;
                };
                let inode = names.remove(&from).unwrap();
                names.insert(to.clone(), inode);
                ops.push(Op::Rename { from, to });
            }
            "unlink" | "unlinkat" if ok => {
                let path = String::from_utf8(strings(line)[0].clone()).unwrap();
                if let Some(name) = name_of(&path) {
                    names.remove(&name);
                    ops.push(Op::Unlink { name });
                }
            }
            _ => {}
        }
    }
    ops
}

/// A tiny deterministic random source (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The files after a crash just before op `k`: durable ops always, the others kept, dropped
/// or (writes) torn at random.
fn crash(
    ops: &[Op],
    k: usize,
    initial: &(BTreeMap<String, usize>, Vec<Vec<u8>>),
    rng: &mut Rng,
) -> BTreeMap<String, Vec<u8>> {
    let (mut names, mut data) = initial.clone();
    let durable = |i: usize| -> bool {
        ops[i + 1..k].iter().any(|later| match (&ops[i], later) {
            (Op::Write { inode, .. }, Op::Sync { inode: synced }) => inode == synced,
            (Op::Create { .. } | Op::Rename { .. } | Op::Unlink { .. }, Op::DirSync) => true,
            _ => false,
        })
    };
    for (i, op) in ops[..k].iter().enumerate() {
        let keep = durable(i) || rng.below(2) == 0;
        match op {
            Op::Create { name, inode } if keep => {
                data.resize(data.len().max(inode + 1), Vec::new());
                names.insert(name.clone(), *inode);
            }
            Op::Create { inode, .. } => data.resize(data.len().max(inode + 1), Vec::new()),
            Op::Write { inode, at, bytes } => {
                let whole = durable(i);
                let file = &mut data[*inode];
                for (n, chunk) in bytes.chunks(512).enumerate() {
                    if whole || rng.below(3) == 0 {
                        let start = *at as usize + n * 512;
                        if file.len() < start + chunk.len() {
                            file.resize(start + chunk.len(), 0);
                        }
                        file[start..start + chunk.len()].copy_from_slice(chunk);
                    }
                }
            }
            Op::Rename { from, to } if keep => {
                if let Some(inode) = names.remove(from) {
                    names.insert(to.clone(), inode);
                }
            }
            Op::Unlink { name } if keep => {
                names.remove(name);
            }
            _ => {}
        }
    }
    names
        .into_iter()
        .map(|(name, inode)| (name, data[inode].clone()))
        .collect()
}

#[test]
fn a_crash_at_any_point_loses_no_accepted_code() {
    common::require_tool("strace", "strace");
    let store = private_dir("twofold-crash-store-");
    let user = UserName::parse("crash").unwrap();
    let secret = NewSecret::Given(Secret::from_base32(SECRET).unwrap());
    Enrollment::new(
        &user,
        "test",
        secret,
        TotpParams::default(),
        Token::Totp { window: 1 },
    )
    .unwrap()
    .activate(
        &FileStore::new(store.path()),
        Proof::Unverified { now: 1 },
        Replace::No,
        0,
    )
    .unwrap();
    // Everything before the trace is durable: the enrollment synced it.
    let mut initial = (BTreeMap::new(), Vec::new());
    for entry in fs::read_dir(store.path()).unwrap() {
        let entry = entry.unwrap();
        initial
            .0
            .insert(entry.file_name().into_string().unwrap(), initial.1.len());
        initial.1.push(fs::read(entry.path()).unwrap());
    }
    let log = store.path().with_extension("strace");
    let dir = store.path().display().to_string();
    let status = std::process::Command::new("strace")
        .args(["-y", "-xx", "-s", "100000", "-qq", "-o"])
        .arg(&log)
        .args([
            "-e",
            "trace=openat,write,pwrite64,fsync,fdatasync,rename,renameat,renameat2,unlink,unlinkat",
        ])
        .arg(worker::command("sequence", &[]).get_program())
        .args(["sequence", &dir, "crash", SECRET, LOGINS])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let ops = parse(&fs::read_to_string(&log).unwrap(), &dir, &initial.0);
    fs::remove_file(&log).unwrap();
    let accepted: Vec<u64> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Accepted { step } => Some(*step),
            _ => None,
        })
        .collect();
    assert!(accepted.len() >= 40, "{accepted:?}");
    let started = Instant::now();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut torn_states, mut refused) = (0, 0);
    for trial in 0..TRIALS {
        let k = 1 + rng.below(ops.len() as u64) as usize;
        let files = crash(&ops, k, &initial, &mut rng);
        let rebuilt = private_dir("twofold-crash-trial-");
        for (name, bytes) in &files {
            let path = rebuilt.path().join(name);
            fs::write(&path, bytes).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        }
        let record = FileStore::new(rebuilt.path())
            .load(&user)
            .unwrap_or_else(|e| panic!("trial {trial}, crash before op {k}: {e}"))
            .unwrap_or_else(|| panic!("trial {trial}: the record is gone"));
        let done = ops[..k].iter().filter_map(|op| match op {
            Op::Accepted { step } => Some(*step),
            _ => None,
        });
        if let Some(last) = done.max() {
            let kept = record.last_step.unwrap_or(0);
            assert!(
                kept >= last,
                "trial {trial}: step {last} accepted, {kept} kept"
            );
            let now = last * 30;
            let again =
                library_login::hardening_login(rebuilt.path(), "crash", &code_at(now), now as i64);
            assert!(
                !matches!(again, Outcome::Accepted { .. }),
                "trial {trial}: replay of {last} accepted"
            );
            refused += 1;
        }
        let state = files.get("crash.state").map_or(0, Vec::len);
        torn_states += usize::from(state != 0 && state != 8192);
    }
    let took = started.elapsed();
    println!(
        "crash model: {} traced ops ({} accepted logins), {TRIALS} crashes in {took:.1?}: \
         record loaded every time; {refused} replays of the last durable code refused; \
         {torn_states} state files of a partial size",
        ops.len(),
        accepted.len()
    );
}
