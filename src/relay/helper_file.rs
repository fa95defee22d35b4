//! Which login helper the module starts, and whether that file is safe to run with the host's
//! rights: the module's own rules ([`twofold_wire::helper_file`]) over `std::fs`, for
//! `twofold check` (finding `helper-unusable`).
#![forbid(unsafe_code)]

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub use twofold_wire::helper_file::{DEFAULT_HELPER, Problem};
use twofold_wire::helper_file::{Kind, Meta};

/// The helper named by `helper=` among the module's arguments, or the default.
pub fn helper_path(args: &[String]) -> Result<PathBuf, (PathBuf, Problem)> {
    twofold_wire::helper_file::helper_path(args.iter().map(String::as_str))
        .map(PathBuf::from)
        .map_err(|(path, problem)| (PathBuf::from(path), problem))
}

/// Whether `path` passes the module's check (see [`twofold_wire::helper_file::check_helper`]).
pub fn check_helper(path: &Path) -> Result<(), Problem> {
    twofold_wire::helper_file::check_helper(path.as_os_str().as_bytes(), |at| {
        let meta = std::fs::symlink_metadata(Path::new(std::ffi::OsStr::from_bytes(at)))?;
        let kind = match meta.file_type() {
            t if t.is_symlink() => Kind::Symlink,
            t if t.is_file() => Kind::File,
            t if t.is_dir() => Kind::Directory,
            _ => Kind::Other,
        };
        Ok::<_, std::io::Error>(Meta {
            kind,
            uid: meta.uid(),
            mode: meta.mode() & 0o7777,
            links: meta.nlink(),
        })
    })
}

/// The module's words when it refuses a helper (its log line), for `twofold check`.
#[derive(Debug)]
pub struct Unusable {
    pub path: PathBuf,
    pub problem: Problem,
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot use the login helper {}: {} (reinstall twofold, or fix helper= on the PAM \
             line)",
            self.path.display(),
            self.problem
        )
    }
}

/// [`check_helper`], the refusal worded as the module logs it.
pub fn usable(path: &Path) -> Result<(), Unusable> {
    check_helper(path).map_err(|problem| Unusable {
        path: path.to_owned(),
        problem,
    })
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
        let missing = usable(Path::new("/nonexistent/twofold-login")).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "cannot use the login helper /nonexistent/twofold-login: /nonexistent: No such file \
             or directory (os error 2) (reinstall twofold, or fix helper= on the PAM line)"
        );
    }
}
