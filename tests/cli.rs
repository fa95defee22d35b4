//! The `twofold` CLI as an admin uses it: enroll with a QR code that real scanners read
//! (zbarimg, on the PNG and on the terminal drawing itself), codes from oathtool, status.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use common::{Env, SECRET, oathtool, wait_for_fresh_step, zbarimg};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn secret_of(uri: &str) -> String {
    uri.split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned()
}

/// Draws the half-block terminal QR into a PNG (4 px per module, white margin) so zbarimg can
/// judge exactly what the terminal shows.
fn terminal_qr_to_png(lines: &[String], path: &Path) {
    let rows: Vec<Vec<char>> = lines
        .iter()
        .map(|l| {
            l.replace("\x1b[30;47m", "")
                .replace("\x1b[0m", "")
                .chars()
                .collect()
        })
        .collect();
    let width = rows.iter().map(Vec::len).max().unwrap();
    let (scale, margin) = (4usize, 8usize);
    let (w, h) = (
        width * scale + 2 * margin,
        rows.len() * 2 * scale + 2 * margin,
    );
    let mut pixels = vec![255u8; w * h];
    for (row, chars) in rows.iter().enumerate() {
        for (col, c) in chars.iter().enumerate() {
            let (top, bottom) = match c {
                '█' => (true, true),
                '▀' => (true, false),
                '▄' => (false, true),
                ' ' => (false, false),
                other => panic!("unexpected character {other:?} in the QR drawing"),
            };
            for (half, dark) in [(0, top), (1, bottom)] {
                if !dark {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let y = margin + (row * 2 + half) * scale + dy;
                        let x = margin + col * scale + dx;
                        pixels[y * w + x] = 0;
                    }
                }
            }
        }
    }
    let file = fs::File::create(path).unwrap();
    let mut encoder = png::Encoder::new(file, w as u32, h as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .unwrap()
        .write_image_data(&pixels)
        .unwrap();
}

#[test]
fn enroll_shows_a_scannable_qr_and_activates_after_the_first_code() {
    let env = Env::new("");
    env.service("tf", "", &[]);
    let png = env.dir.path().join("qr.png");
    wait_for_fresh_step(10);
    let mut child = env
        .twofold(&["enroll", "daemon", "--png", png.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut shown = Vec::new();
    let uri = loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "enroll ended early: {shown:?}"
        );
        let line = line.trim_end_matches('\n').to_owned();
        if let Some(uri) = line.strip_prefix("URI: ") {
            break uri.to_owned();
        }
        shown.push(line);
    };
    let secret = secret_of(&uri);
    assert_eq!(secret.len(), 32, "160-bit secret");
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(
        uri.contains(":daemon?secret=") && uri.contains("&algorithm=SHA1&digits=6&period=30"),
        "{uri}"
    );

    // The PNG and the terminal drawing both decode to the printed URI.
    assert_eq!(zbarimg(&png), uri);
    assert_eq!(
        fs::metadata(&png).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let start = shown
        .iter()
        .position(|l| l.starts_with("Scan this QR code"))
        .unwrap()
        + 2;
    let end = shown
        .iter()
        .position(|l| l.starts_with("Or type this key"))
        .unwrap()
        - 1;
    let qr_lines = &shown[start..end];
    assert!(qr_lines.len() <= 23, "QR is {} lines", qr_lines.len());
    let drawn = env.dir.path().join("terminal.png");
    terminal_qr_to_png(qr_lines, &drawn);
    assert_eq!(zbarimg(&drawn), uri);
    let grouped = shown
        .iter()
        .find(|l| l.starts_with("Or type this key"))
        .unwrap();
    assert_eq!(
        grouped.rsplit(": ").next().unwrap().replace(' ', ""),
        secret
    );

    // Not active before the first code.
    assert!(!env.record("daemon").exists());
    let code = oathtool(&secret, 0);
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{code}\n").as_bytes())
        .unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{rest}");
    assert!(rest.contains("2FA is now on for daemon."), "{rest}");

    // The confirming code counts as used; the next step's code logs in through real PAM.
    assert_eq!(
        env.pamtester("tf", "daemon", &code).verdict(),
        "pamtester: Authentication failure"
    );
    let next = oathtool(&secret, 30);
    assert_eq!(
        env.pamtester("tf", "daemon", &next).verdict(),
        "pamtester: successfully authenticated"
    );
}

#[test]
fn wrong_or_missing_first_code_activates_nothing() {
    let env = Env::new("");
    let mut child = env
        .twofold(&["enroll", "daemon", "--qr", "none"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"abc\n000000\n111111\n222222\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("wrong codes; 2FA was not turned on"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("That is not a 6-digit code."));
    assert!(!env.record("daemon").exists());

    let out = env.run(&["enroll", "daemon", "--qr", "none"]); // stdin is empty
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no code was entered"),
        "{}",
        stderr(&out)
    );
    assert!(!env.record("daemon").exists());
}

#[test]
fn existing_enrollment_is_kept_unless_forced() {
    let env = Env::new("");
    env.enroll("daemon", SECRET);
    let before = env.stored("daemon");
    let out = env.run(&["enroll", "daemon", "--no-verify", "--qr", "none"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("already enrolled"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.stored("daemon"), before);
    let out = env.run(&["enroll", "daemon", "--no-verify", "--qr", "none", "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(env.stored("daemon"), before);
}

#[test]
fn secrets_are_taken_as_admins_paste_them() {
    let env = Env::new("");
    // Lower case with spaces, from standard input (kept out of the process list).
    let mut child = env
        .twofold(&[
            "enroll",
            "daemon",
            "--secret",
            "-",
            "--no-verify",
            "--qr",
            "none",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"jbsw y3dp ehpk 3pxp jbsw y3dp ehpk 3pxp\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("secret={SECRET}&")));
    // An 80-bit google-authenticator secret is accepted with a warning.
    let out = env.run(&[
        "enroll",
        "bin",
        "--secret",
        "JBSWY3DPEHPK3PXP",
        "--no-verify",
        "--qr",
        "none",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("only 80 bits"), "{}", stderr(&out));
    for bad in ["NOT-BASE32!", "JBSWY3DP", ""] {
        let out = env.run(&[
            "enroll",
            "sys",
            "--secret",
            bad,
            "--no-verify",
            "--qr",
            "none",
        ]);
        assert!(!out.status.success(), "{bad:?} accepted");
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
        assert!(!env.record("sys").exists());
    }
}

#[test]
fn ascii_qr_and_svg_for_other_terminals_and_documents() {
    let env = Env::new("");
    let svg = env.dir.path().join("qr.svg");
    let out = env.run(&[
        "enroll",
        "daemon",
        "--secret",
        SECRET,
        "--no-verify",
        "--qr",
        "ascii",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.is_ascii());
    assert!(text.lines().any(|l| l.contains("######")));
    let svg_text = fs::read_to_string(&svg).unwrap();
    assert!(svg_text.starts_with("<?xml") && svg_text.contains("<svg"));
    assert_eq!(
        fs::metadata(&svg).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let out = env.run(&[
        "enroll",
        "bin",
        "--secret",
        SECRET,
        "--no-verify",
        "--qr",
        "none",
    ]);
    assert!(!stdout(&out).contains('█') && !stdout(&out).contains("##"));
    // Every style of the policy works on the command line too; others are refused.
    let out = env.run(&["qr", "bin", "--qr", "utf8-light"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains('▀') && !stdout(&out).contains('\x1b'));
    let out = env.run(&["qr", "bin", "--qr", "utf8-dark"]);
    assert!(!out.status.success() && stderr(&out).contains("utf8-light"));
}

#[test]
fn unknown_or_invalid_users_are_refused() {
    let env = Env::new("");
    for (user, needle) in [
        ("no-such-user-tf", "passwd"),
        ("../etc", "invalid user name"),
        ("a/b", "invalid user name"),
    ] {
        let out = env.run(&["enroll", user, "--no-verify", "--qr", "none"]);
        assert!(!out.status.success());
        assert!(stderr(&out).contains(needle), "{user}: {}", stderr(&out));
    }
    assert_eq!(fs::read_dir(env.store()).unwrap().count(), 0);
}

#[test]
fn status_text_and_json() {
    let env = Env::new("[policy]\nrequire = \"all\"");
    let out = env.run(&["status", "daemon", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["enrolled"], false);
    assert_eq!(v["state"], "not enrolled");
    assert_eq!(v["required"], true);

    env.enroll("daemon", SECRET);
    let out = env.run(&["status", "daemon", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["enrolled"], true);
    assert_eq!(v["state"], "enabled");
    assert_eq!(v["algorithm"], "SHA1");
    assert_eq!(v["digits"], 6);
    assert!(v["last_used"].is_null());
    let text = stdout(&env.run(&["status", "daemon"]));
    let field = |name: &str| {
        let value = text.lines().find_map(|l| l.strip_prefix(name));
        value.map(str::trim).unwrap_or_default().to_owned()
    };
    assert_eq!(field("2FA:"), "enabled", "{text}");
    assert_eq!(field("last used:"), "never", "{text}");
    assert_eq!(field("backup codes:"), "10 left", "{text}");
    for output in [text, String::from_utf8(out.stdout).unwrap()] {
        assert!(
            !output.contains(SECRET) && !output.contains("JBSW"),
            "status shows the secret"
        );
    }
}

#[test]
fn errors_are_one_clear_line() {
    let env = Env::new("[totp]\ndigits = 12");
    let out = env.run(&["status", "daemon"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("twofold.toml") && err.contains("digits"),
        "{err}"
    );

    let env = Env::new("");
    fs::set_permissions(env.store(), fs::Permissions::from_mode(0o777)).unwrap();
    let err = stderr(&env.run(&["status", "daemon"]));
    assert!(err.contains("chmod 700"), "{err}");
    let out = std::process::Command::new(common::twofold_bin())
        .args(["--config", "/nonexistent/twofold.toml", "status", "daemon"])
        .output()
        .unwrap();
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}

/// `list` reads every record at once (one enumeration of the accounts, one open directory, a
/// few threads: issue 21); `status` reads one, by name, through NSS. Both must say the same
/// of every user, and `list` must refuse a planted or broken file with the very words a
/// single read uses. More than 512 records, so that the rows are read by several threads.
#[test]
fn list_says_of_every_user_what_status_says() {
    let env =
        Env::new("[backup_codes]\ncount = 0\n[policy]\nrequire = \"groups\"\ngroups = [\"root\"]");
    // Accounts this system has (root is in the policy's group), and 600 it does not.
    let accounts = ["root", "bin", "sys", "daemon"];
    for user in accounts {
        env.enroll(user, SECRET);
    }
    let record = fs::read(env.record("daemon")).unwrap();
    let state = fs::read(env.state("daemon")).unwrap();
    let copy = |user: &str, ext: &str, bytes: &[u8]| {
        let path = env.store().join(format!("{user}.{ext}"));
        fs::write(&path, bytes).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        path
    };
    let strangers: Vec<String> = (0..600).map(|i| format!("gone{i:03}")).collect();
    for user in &strangers {
        copy(user, "toml", &record);
        copy(user, "state", &state);
    }
    env.change("bin", |r| r.locked_until = Some(i64::MAX / 2));
    // Broken and planted files: a link as record, a link as state file, a FIFO, garbage,
    // another owner, loose mode, a missing state file.
    let store = env.store();
    let replace = |path: &Path| fs::remove_file(path).unwrap();
    replace(&store.join("gone001.toml"));
    std::os::unix::fs::symlink(env.record("daemon"), store.join("gone001.toml")).unwrap();
    replace(&store.join("gone002.state"));
    std::os::unix::fs::symlink(env.state("daemon"), store.join("gone002.state")).unwrap();
    replace(&store.join("gone003.state"));
    nix::unistd::mkfifo(&store.join("gone003.state"), nix::sys::stat::Mode::S_IRUSR).unwrap();
    copy("gone004", "toml", b"not = [a record\n");
    std::os::unix::fs::chown(store.join("gone005.toml"), Some(65534), None).unwrap();
    fs::set_permissions(
        store.join("gone006.toml"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    replace(&store.join("gone007.state"));

    let out = env.run(&["list", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), accounts.len() + strangers.len() - 7);
    let names: Vec<&str> = rows.iter().map(|r| r["user"].as_str().unwrap()).collect();
    assert!(names.is_sorted(), "{names:?}");
    for user in accounts {
        let status = env.run(&["status", user, "--json"]);
        let why = stderr(&status);
        let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect(&why);
        let row = rows.iter().find(|r| r["user"] == user).unwrap();
        assert_eq!(row, &status, "{user}");
    }
    let root = rows.iter().find(|r| r["user"] == "root").unwrap();
    assert_eq!(root["required"], true);
    assert_eq!(
        rows.iter().find(|r| r["user"] == "bin").unwrap()["locked"],
        true
    );
    let gone = rows.iter().find(|r| r["user"] == "gone000").unwrap();
    assert!(
        gone["required_error"]
            .as_str()
            .unwrap()
            .contains("not in the passwd database")
    );

    // Each broken record is reported as `status` reports it, in name order, then the count.
    let err = stderr(&out);
    let expected: Vec<String> = (1..=7)
        .map(|i| {
            let status = env.run(&["status", &format!("gone{i:03}")]);
            let why = stderr(&status);
            let why = why.trim_end().strip_prefix("twofold: ").unwrap();
            format!("twofold: warning: {why}")
        })
        .chain(["twofold: 7 record(s) could not be read (see the warnings above); logins of those users are denied".into()])
        .collect();
    assert_eq!(err.lines().collect::<Vec<_>>(), expected, "{err}");
    assert_eq!(out.status.code(), Some(1));

    // The table lists the same users in the same order.
    let table = env.run(&["list"]);
    let listed: Vec<String> = stdout(&table)
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect();
    assert_eq!(listed, names);
    assert_eq!(stderr(&table), err);
}
