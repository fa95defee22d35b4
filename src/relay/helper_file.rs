//! Which login helper the module starts, and whether that file is safe to run with the host's
//! rights (root, in sshd and sudo). Part of the module: no login code here.
#![forbid(unsafe_code)]

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where the package installs the helper; `helper=` on the PAM line names another.
pub const DEFAULT_HELPER: &str = "/usr/libexec/twofold/twofold-login";

/// Why a helper path is refused: the problem, in words for the syslog line.
pub type Problem = String;

/// The helper named by `helper=` among the module's arguments, or the default.
pub fn helper_path(args: &[String]) -> Result<PathBuf, (PathBuf, Problem)> {
    let mut named = args.iter().filter_map(|a| a.strip_prefix("helper="));
    let path = PathBuf::from(named.next().unwrap_or(DEFAULT_HELPER));
    match named.next() {
        None => Ok(path),
        Some(_) => Err((path, "helper= is given twice".into())),
    }
}

/// As OpenSSH checks its own helpers: an absolute, plain path (no `.`, `..` or trailing
/// slash); every directory on it root's, not a symbolic link, and writable by no one else
/// (or sticky, like /var/tmp, where no one else can rename a root-owned entry); the file a
/// root-owned regular file, writable by no one else, without setuid or setgid bits (set-id,
/// anyone could run it with a request of their own making).
pub fn check_helper(path: &Path) -> Result<(), Problem> {
    let refuse = |problem: String| problem;
    // On the bytes: Path::components() quietly drops a `.` in the middle.
    let plain = path
        .as_os_str()
        .as_bytes()
        .strip_prefix(b"/")
        .is_some_and(|rest| {
            rest.split(|b| *b == b'/')
                .all(|part| !part.is_empty() && part != b"." && part != b"..")
        });
    if !plain {
        return Err(refuse(
            "not an absolute path without `.`, `..` or a trailing slash".into(),
        ));
    }
    for dir in path.ancestors().skip(1) {
        let meta = std::fs::symlink_metadata(dir)
            .map_err(|e| refuse(format!("{}: {e}", dir.display())))?;
        let sticky = meta.mode() & 0o1000 != 0;
        if meta.file_type().is_symlink() || meta.uid() != 0 || (meta.mode() & 0o022 != 0 && !sticky)
        {
            return Err(refuse(format!(
                "the directory {} must be root's, not a symbolic link, and writable by no one \
                 else (owner uid {}, mode {:o})",
                dir.display(),
                meta.uid(),
                meta.mode() & 0o7777
            )));
        }
    }
    let meta = std::fs::symlink_metadata(path).map_err(|e| refuse(format!("{e}")))?;
    if !meta.file_type().is_file() || meta.uid() != 0 || meta.mode() & 0o6022 != 0 {
        return Err(refuse(format!(
            "it must be a regular file of root's, writable by no one else, without setuid or \
             setgid (owner uid {}, mode {:o}{})",
            meta.uid(),
            meta.mode() & 0o7777,
            if meta.file_type().is_symlink() {
                ", a symbolic link"
            } else {
                ""
            }
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_names_the_helper_once() {
        assert_eq!(helper_path(&[]).unwrap(), Path::new(DEFAULT_HELPER));
        let args = ["debug".to_owned(), "helper=/opt/a".into()];
        assert_eq!(helper_path(&args).unwrap(), Path::new("/opt/a"));
        let twice = ["helper=/opt/a".to_owned(), "helper=/opt/b".into()];
        assert!(helper_path(&twice).is_err());
    }

    #[test]
    fn relative_dotted_missing_or_linked_helpers_are_refused_before_anything_runs() {
        for path in [
            "twofold-login",
            "/nonexistent/twofold-login",
            "/usr/bin/./true",
            "/usr/bin/../bin/true",
            "/usr/bin/true/",
            // /bin is a symbolic link to usr/bin on a merged-/usr system; a plain file elsewhere.
            "/bin/true",
        ] {
            let refused = check_helper(Path::new(path));
            let linked = std::fs::symlink_metadata("/bin").is_ok_and(|m| m.is_symlink());
            if path == "/bin/true" && !linked {
                continue;
            }
            assert!(refused.is_err(), "{path}: {refused:?}");
        }
        assert!(check_helper(Path::new("/usr/bin/true")).is_ok());
    }
}
