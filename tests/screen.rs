//! What an 80×24 screen shows during enroll-at-login, through the real PAM library: a terminal
//! emulator (pyte, tests/helpers/screen.py) on the pty of pamtester or a real ssh client keeps
//! only what is visible, like a Linux console without scrollback. At the code prompt that
//! screen alone must hold a QR code that decodes to the otpauth URI, with the explanation on
//! the screen before it.

mod common;

use common::sshd::{Sshd, TempUser};
use common::{Env, module, require_tool, wait_for_fresh_step};
use std::process::Command;

const POLICY: &str = "[policy]\nrequire = \"all\"\nissuer = \"tf-test\"\n[backup_codes]\ncount = 2";
const DEBIAN_PYTHON: &str = "/usr/bin/python3";

/// Runs tests/helpers/screen.py on `command`; its JSON report.
fn screen(driver_args: &[&str], command: &[String]) -> serde_json::Value {
    require_tool("zbarimg", "zbar-tools");
    require_tool("oathtool", "oathtool");
    for (module, package) in [("pyte", "python3-pyte"), ("pexpect", "python3-pexpect")] {
        let found = Command::new(DEBIAN_PYTHON)
            .args(["-c", &format!("import {module}")])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "{package} is not installed: apt-get install {package}"
        );
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/helpers/screen.py");
    let out = Command::new(DEBIAN_PYTHON)
        .arg(script)
        .args(driver_args)
        .arg("--")
        .args(command)
        .output()
        .expect("run the screen driver");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "driver output is not JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn lines(report: &serde_json::Value, key: &str) -> Vec<String> {
    let screen = report[key]
        .as_array()
        .unwrap_or_else(|| panic!("{report:#}"));
    screen
        .iter()
        .map(|l| l.as_str().unwrap().to_owned())
        .collect()
}

/// Checks both screens of an enrollment of `user` at `issuer`; returns them as the user saw them.
fn assert_two_screens(report: &serde_json::Value, issuer: &str, user: &str) -> String {
    assert_eq!(report["status"], 0, "{report:#}");
    let secret = report["secret"].as_str().expect("key on the first screen");
    assert_eq!(secret.len(), 32);
    let first = lines(report, "explanation_screen").join("\n");
    assert!(
        first.contains("Two-factor authentication is required")
            && first.contains("authenticator app")
            && first
                .trim_end()
                .ends_with("Press Enter to show the QR code:"),
        "{first}"
    );
    let code = lines(report, "code_screen");
    assert_eq!(code.len(), 24);
    let at_prompt = code.join("\n");
    // The prompt is on the last line, the code above it, the explanation scrolled away.
    assert_eq!(report["cursor_line"], 23, "{at_prompt}");
    assert!(
        code[23].ends_with("to finish setting up:") && at_prompt.contains("Scan this QR code"),
        "{at_prompt}"
    );
    assert!(!at_prompt.contains("Two-factor"), "{at_prompt}");
    assert!(!at_prompt.contains(&secret[..8]), "{at_prompt}");
    assert!(code.iter().all(|l| l.chars().count() <= 80));
    let uri = format!("otpauth://totp/{issuer}:{user}?secret={secret}&issuer={issuer}");
    assert_eq!(
        report["decoded"],
        uri.as_str(),
        "the visible 80×24 screen decodes to the URI:\n{at_prompt}"
    );
    assert!(
        report["after"].as_str().unwrap().contains("now set up"),
        "{report:#}"
    );
    format!(
        "{}\n--- Enter ---\n{at_prompt}",
        lines(report, "explanation_screen").join("\n")
    )
}

fn enroll_through_pamtester(style_args: &str, background: &str) -> String {
    let env = Env::new(POLICY);
    env.service_after_password("tf", style_args);
    let png = env.dir.path().join("screen.png");
    wait_for_fresh_step(10);
    let argv = env.pam_argv(None, &["pamtester", "-v", "tf", "daemon", "authenticate"]);
    let png_arg = png.to_str().unwrap();
    let report = screen(&["--png", png_arg, "--background", background], &argv);
    let screens = assert_two_screens(&report, "tf-test", "daemon");
    assert!(env.load("daemon").unwrap().is_enabled());
    assert!(
        report["after"]
            .as_str()
            .unwrap()
            .contains("successfully authenticated")
    );
    screens
}

#[test]
fn enroll_qr_fits_an_80x24_screen_at_the_code_prompt() {
    let screens = enroll_through_pamtester("", "dark");
    eprintln!("{screens}");
}

#[test]
fn enroll_qr_fits_an_80x24_screen_in_utf8_light() {
    let screens = enroll_through_pamtester("qr=utf8-light", "light");
    eprintln!("{screens}");
}

#[test]
fn enroll_qr_fits_an_80x24_screen_of_a_real_ssh_client() {
    let env = Env::new(POLICY);
    let stack = format!(
        "auth requisite pam_unix.so\nauth required {} config={}",
        module(),
        env.policy().display()
    );
    let server = Sshd::start(&stack, "");
    let alice = TempUser::new();
    alice.set_password("correct-horse-7");
    let png = env.dir.path().join("ssh-screen.png");
    wait_for_fresh_step(12);
    let ssh = server.ssh_args(&alice.name, &[], "echo twofold-ssh-ok");
    let png_arg = png.to_str().unwrap();
    let report = screen(&["--password", "correct-horse-7", "--png", png_arg], &ssh);
    let screens = assert_two_screens(&report, "tf-test", &alice.name);
    assert!(report["after"].as_str().unwrap().contains("twofold-ssh-ok"));
    assert!(env.load(&alice.name).unwrap().is_enabled());
    eprintln!("{screens}");
}
