//! The module as a thin relay (crates/pam-relay, src/relay/): it starts its login helper for every
//! call. Through the real libpam (pam_wrapper + pamtester): a missing helper, one another user
//! could have replaced, or one that ends without a verdict denies every login, never passes
//! one, never kills the host process, and syslog says which helper and why; one that hangs
//! is killed at `helper_timeout=`.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{Env, SECRET, module_path, oathtool, wait_for_fresh_step};

/// A stack whose twofold line starts `helper`, for a user policy does not require (`nullok`:
/// with a working helper this line passes) and an enrolled one.
fn stack(env: &Env, helper: &Path) {
    stack_with(env, helper, "");
}

/// [`stack`] with `more` arguments on the line.
fn stack_with(env: &Env, helper: &Path, more: &str) {
    let line = format!(
        "auth required {} helper={} config={} nullok {more}\n",
        module_path().display(),
        helper.display(),
        env.policy().display()
    );
    fs::write(env.services().join("relay"), line).unwrap();
}

/// A root-owned helper script in a root-owned directory, as check_helper wants it.
fn script_helper(env: &Env, body: &str) -> std::path::PathBuf {
    let dir = env.dir.path().join("libexec");
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let helper = dir.join("twofold-login");
    fs::write(&helper, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
    helper
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet: it runs no more).
fn ended(pid: &str) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
    }
}

fn denied_with(env: &Env, user: &str, input: &str, said: &str) {
    let (result, lines) = env.pamtester_logged("relay", user, input);
    assert_eq!(
        result.verdict(),
        "pamtester: Error in service module",
        "{}",
        result.stderr
    );
    assert!(
        lines.iter().any(|l| l.contains(said)),
        "no syslog line with {said:?}: {lines:?}"
    );
}

#[test]
fn a_missing_helper_denies_everyone_even_those_not_required() {
    let env = Env::new("[policy]\nrequire = \"none\"\n");
    env.enroll("daemon", SECRET);
    stack(&env, Path::new("/nonexistent/twofold-login"));
    wait_for_fresh_step(3);
    for (user, input) in [("daemon", oathtool(SECRET, 0)), ("bin", String::new())] {
        denied_with(
            &env,
            user,
            &input,
            "cannot use the login helper /nonexistent/twofold-login",
        );
    }
}

/// A helper in a directory or file another user may write is never started: here a script
/// that would leave a mark and say "success" if it ran.
#[test]
fn a_helper_others_could_replace_is_never_started() {
    let env = Env::new("");
    let dir = env.dir.path().join("libexec");
    fs::create_dir(&dir).unwrap();
    let mark = env.dir.path().join("helper-ran");
    let helper = dir.join("twofold-login");
    fs::write(
        &helper,
        format!("#!/bin/sh\ntouch {}\nexit 0\n", mark.display()),
    )
    .unwrap();
    stack(&env, &helper);
    // Group-writable file or directory; setuid (anyone could feed it a request of their own).
    for (dir_mode, file_mode) in [(0o755, 0o775), (0o775, 0o755), (0o755, 0o4755)] {
        fs::set_permissions(&dir, fs::Permissions::from_mode(dir_mode)).unwrap();
        fs::set_permissions(&helper, fs::Permissions::from_mode(file_mode)).unwrap();
        denied_with(&env, "bin", "", "writable by no one else");
        assert!(
            !mark.exists(),
            "the helper ran ({dir_mode:o}, {file_mode:o})"
        );
    }
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
    // A directory higher up that others may write (they could rename it and plant another).
    let deeper = dir.join("sub");
    fs::create_dir(&deeper).unwrap();
    fs::copy(&helper, deeper.join("twofold-login")).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    stack(&env, &deeper.join("twofold-login"));
    denied_with(&env, "bin", "", "writable by no one else");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    // A symbolic link to a good helper, and a path that walks through `..`.
    let link = dir.join("link");
    std::os::unix::fs::symlink(common::helper_path(), &link).unwrap();
    stack(&env, &link);
    denied_with(&env, "bin", "", "a symbolic link");
    stack(&env, &dir.join("sub/../twofold-login"));
    denied_with(&env, "bin", "", "without `.`, `..`");
    assert!(!mark.exists(), "the helper ran");
}

/// The helper gets a PATH of its own, not the environment of the host, which under sudo or su
/// is partly the user's. (Test builds also pass pam_wrapper's and nss_wrapper's variables on,
/// which the harness's NSS needs; the shipped module passes only PATH.)
#[test]
fn the_helper_gets_none_of_the_hosts_variables() {
    let mut env = Env::new("");
    env.run_env
        .vars
        .push(("TWOFOLD_PROBE".into(), "set-by-the-user".into()));
    let dir = env.dir.path().join("libexec");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let seen = env.dir.path().join("helper-env");
    let helper = dir.join("twofold-login");
    fs::write(&helper, format!("#!/bin/sh\nenv > {}\n", seen.display())).unwrap();
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
    stack(&env, &helper);
    denied_with(&env, "bin", "", "gave no verdict");
    let vars = fs::read_to_string(&seen).unwrap();
    assert!(
        vars.contains("PATH=/usr/sbin:/usr/bin:/sbin:/bin"),
        "{vars}"
    );
    for absent in ["TWOFOLD_PROBE", "HOME=", "USER=", "PAM_WRAPPER_SERVICE_DIR"] {
        assert!(
            !vars.contains(absent),
            "{absent} reached the helper: {vars}"
        );
    }
}

/// A helper that ends before its verdict (here /usr/bin/true, which never reads the request):
/// denied, and the host (pamtester) is not killed by SIGPIPE writing to it.
#[test]
fn a_helper_that_ends_without_a_verdict_denies() {
    let env = Env::new("[policy]\nrequire = \"none\"\n");
    stack(&env, Path::new("/usr/bin/true"));
    denied_with(
        &env,
        "bin",
        "",
        "the login helper /usr/bin/true gave no verdict",
    );
}

/// With this build's helper the same stack works: the denials above are the helper's doing.
#[test]
fn the_built_helper_logs_in_once_per_code() {
    let env = Env::new("");
    env.enroll("daemon", SECRET);
    stack(&env, &common::helper_path());
    wait_for_fresh_step(3);
    let code = oathtool(SECRET, 0);
    let first = env.pamtester("relay", "daemon", &code);
    assert_eq!(first.verdict(), "pamtester: successfully authenticated");
    let again = env.pamtester("relay", "daemon", &code);
    assert_eq!(
        again.verdict(),
        "pamtester: Authentication failure",
        "{}",
        again.stderr
    );
}

/// A helper that hangs (a name service or disk that never answers) does not hang the host:
/// after `helper_timeout=` seconds without a frame it is killed, with whatever it started in
/// its process group, and the login is denied with a syslog line that says so.
#[test]
fn a_helper_that_hangs_is_killed_at_its_timeout_and_the_login_denied() {
    let env = Env::new("[policy]\nrequire = \"none\"\n");
    let pids = env.dir.path().join("pids");
    let helper = script_helper(
        &env,
        &format!(
            "sleep 301 &\necho $! > {pids}\necho $$ >> {pids}\nexec sleep 300",
            pids = pids.display()
        ),
    );
    stack_with(&env, &helper, "helper_timeout=2");
    let started = std::time::Instant::now();
    denied_with(&env, "bin", "", "sent nothing for 2 s and was killed");
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(20),
        "the host waited {took:?} for a helper with helper_timeout=2"
    );
    let pids = fs::read_to_string(&pids).unwrap();
    assert_eq!(pids.lines().count(), 2, "{pids}");
    for pid in pids.lines() {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !ended(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(ended(pid), "process {pid} of the hung helper still runs");
    }
}

/// A helper that never reads its request does not block the host either: a request bigger
/// than the socket's buffer (here a 120 KiB user name and a 120 KiB remote host, which sshd
/// would pass on) is sent against the same deadline.
#[test]
fn a_helper_that_takes_nothing_does_not_block_the_host() {
    let env = Env::new("[policy]\nrequire = \"none\"\n");
    let helper = script_helper(&env, "exec sleep 300");
    stack_with(&env, &helper, "helper_timeout=2");
    let user = "x".repeat(120 * 1024);
    let rhost = format!("rhost={}", "h".repeat(120 * 1024));
    let started = std::time::Instant::now();
    let argv = [
        "pamtester",
        "-v",
        "-I",
        &rhost,
        "relay",
        &user,
        "authenticate",
    ];
    let (result, lines) = env.logged(&argv, "");
    let took = started.elapsed();
    assert_eq!(
        result.verdict(),
        "pamtester: Error in service module",
        "{}",
        &result.stderr[..result.stderr.len().min(2000)]
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("sent nothing for 2 s and was killed")),
        "{lines:?}"
    );
    assert!(took < std::time::Duration::from_secs(20), "took {took:?}");
}

/// A helper that gives its verdict and then does not end (stuck after it: a name service
/// call with no timeout) is not left running as root: 5 s after the verdict it is killed and
/// reaped, and the verdict stands.
#[test]
fn a_helper_that_lingers_after_its_verdict_is_killed() {
    let env = Env::new("[policy]\nrequire = \"none\"\n");
    let pid = env.dir.path().join("pid");
    // A Done frame by hand: length 13, tag 2, PAM_SUCCESS, no PAM_AUTHTOK, no kept code.
    let done = r"\015\000\000\000\002\000\000\000\000\377\377\377\377\377\377\377\377";
    let body = format!(
        "echo $$ > {}\nprintf '{done}'\nexec sleep 300",
        pid.display()
    );
    let helper = script_helper(&env, &body);
    stack(&env, &helper);
    let started = std::time::Instant::now();
    let result = env.pamtester("relay", "bin", "");
    let took = started.elapsed();
    assert_eq!(
        result.verdict(),
        "pamtester: successfully authenticated",
        "{}",
        result.stderr
    );
    assert!(took < std::time::Duration::from_secs(15), "took {took:?}");
    let pid = fs::read_to_string(&pid).unwrap();
    assert!(ended(pid.trim()), "the helper {pid} still runs");
}

/// A helper_timeout= the module cannot take denies with the reason; the helper never starts.
#[test]
fn a_helper_timeout_out_of_range_denies_and_says_why() {
    let env = Env::new("[policy]\nrequire = \"none\"\n");
    let mark = env.dir.path().join("helper-ran");
    let helper = script_helper(&env, &format!("touch {}", mark.display()));
    for bad in [
        "helper_timeout=0",
        "helper_timeout=3601",
        "helper_timeout=soon",
    ] {
        stack_with(&env, &helper, bad);
        denied_with(&env, "bin", "", "from 1 to 3600 (fix the PAM line)");
    }
    assert!(!mark.exists(), "the helper ran");
}

/// The timeout counts the helper's own work only: a person who takes longer than it to type
/// the code at the prompt still logs in.
#[test]
fn time_spent_at_the_prompt_is_not_the_helpers() {
    let env = Env::new("");
    env.enroll("daemon", SECRET);
    stack_with(&env, &common::helper_path(), "helper_timeout=1");
    wait_for_fresh_step(8);
    let code = oathtool(SECRET, 0);
    let late = std::time::Duration::from_millis(2500);
    let result = env.pamtester_answering_late("relay", "daemon", &code, late);
    assert_eq!(
        result.verdict(),
        "pamtester: successfully authenticated",
        "{}",
        result.stderr
    );
}
