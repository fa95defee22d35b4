//! Which login helper the module starts, and whether that file is safe to run with the host's
//! rights (root, in sshd and sudo): the rules, over a metadata lookup the caller brings (the
//! module's `lstat`, `twofold check`'s `std::fs::symlink_metadata`), so that both apply the
//! same ones.

use alloc::string::String;
use core::fmt::Display;

/// Where the package installs the helper; `helper=` on the PAM line names another.
pub const DEFAULT_HELPER: &str = "/usr/libexec/twofold/twofold-login";

/// Why a helper path is refused: the problem, in words for the syslog line.
pub type Problem = String;

/// What [`check_helper`] needs to know of a path, as `lstat` reports it (links not followed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    pub uid: u32,
    /// `st_mode`'s permission bits (setuid, setgid, sticky and rwx: `& 0o7777`).
    pub mode: u32,
    /// `st_nlink`: how many names the file has.
    pub links: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Directory,
    Symlink,
    Other,
}

/// The helper named by `helper=` among the module's arguments, or the default.
pub fn helper_path<'a>(
    args: impl IntoIterator<Item = &'a str>,
) -> Result<&'a str, (&'a str, Problem)> {
    let mut named = args.into_iter().filter_map(|a| a.strip_prefix("helper="));
    let path = named.next().unwrap_or(DEFAULT_HELPER);
    match named.next() {
        None => Ok(path),
        Some(_) => Err((path, "helper= is given twice".into())),
    }
}

/// Close to how OpenSSH checks its own helpers: an absolute, plain path (no `.`, `..` or
/// trailing slash); every directory on it root's, not a symbolic link, and writable by no one
/// else (or sticky, like /var/tmp, where no one else can rename a root-owned entry; there the
/// file must have one name only, not a hard link someone else made); the file a root-owned
/// regular file, writable by no one else, without setuid or setgid bits (set-id, anyone could
/// run it with a request of their own making). `lstat` reads a path's metadata
/// without following a last symbolic link; its error is shown as it displays itself.
pub fn check_helper<E: Display>(
    path: &[u8],
    mut lstat: impl FnMut(&[u8]) -> Result<Meta, E>,
) -> Result<(), Problem> {
    let plain = path.strip_prefix(b"/").is_some_and(|rest| {
        rest.split(|b| *b == b'/')
            .all(|part| !part.is_empty() && part != b"." && part != b"..")
    });
    if !plain {
        return Err("not an absolute path without `.`, `..` or a trailing slash".into());
    }
    // Whether others may add names to the helper's own directory (sticky, like /var/tmp).
    let mut shared_parent = None;
    for dir in ancestors(path) {
        let shown = crate::text::lossy(dir);
        let meta = lstat(dir).map_err(|e| crate::text!("{shown}: {e}"))?;
        let sticky = meta.mode & 0o1000 != 0;
        shared_parent.get_or_insert(meta.mode & 0o022 != 0);
        if meta.kind == Kind::Symlink || meta.uid != 0 || (meta.mode & 0o022 != 0 && !sticky) {
            return Err(crate::text!(
                "the directory {shown} must be root's, not a symbolic link, and writable by no \
                 one else (owner uid {}, mode {:o})",
                meta.uid,
                meta.mode & 0o7777
            ));
        }
    }
    let meta = lstat(path).map_err(|e| crate::text!("{e}"))?;
    if meta.kind != Kind::File || meta.uid != 0 || meta.mode & 0o6022 != 0 {
        return Err(crate::text!(
            "it must be a regular file of root's, writable by no one else, without setuid or \
             setgid (owner uid {}, mode {:o}{})",
            meta.uid,
            meta.mode & 0o7777,
            if meta.kind == Kind::Symlink {
                ", a symbolic link"
            } else {
                ""
            }
        ));
    }
    // There, anyone could have made the name a hard link to some other root-owned program
    // (where the kernel's protected_hardlinks is off).
    if shared_parent == Some(true) && meta.links != 1 {
        return Err(crate::text!(
            "it has {} names, in a directory others may write: a hard link someone made",
            meta.links
        ));
    }
    Ok(())
}

/// The directories above a plain absolute path, nearest first, `/` last (as
/// `Path::ancestors().skip(1)`).
fn ancestors(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    let slashes = path.iter().enumerate().rev().filter(|(_, b)| **b == b'/');
    slashes.map(move |(at, _)| match at {
        0 => path.get(..1).unwrap_or(b"/"),
        at => path.get(..at).unwrap_or(b"/"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn helper_names_the_helper_once() {
        assert_eq!(helper_path([]), Ok(DEFAULT_HELPER));
        assert_eq!(helper_path(["debug", "helper=/opt/a"]), Ok("/opt/a"));
        assert!(helper_path(["helper=/opt/a", "helper=/opt/b"]).is_err());
    }

    #[test]
    fn ancestors_are_every_directory_above_nearest_first() {
        let all: Vec<&[u8]> = ancestors(b"/usr/libexec/twofold/twofold-login").collect();
        let want: [&[u8]; 4] = [b"/usr/libexec/twofold", b"/usr/libexec", b"/usr", b"/"];
        assert_eq!(all, want);
    }

    /// A tree where `/opt/x/...` is root's except as named.
    fn lookup(path: &[u8]) -> Result<Meta, &'static str> {
        let links = match path {
            b"/tmp/linked" | b"/opt/x/linked" => 2,
            _ => 1,
        };
        let (kind, uid, mode) = match path {
            b"/" | b"/opt" | b"/opt/x" => (Kind::Directory, 0, 0o755),
            b"/tmp" => (Kind::Directory, 0, 0o1777),
            b"/home" => (Kind::Directory, 1000, 0o755),
            b"/opt/x/link" => (Kind::Symlink, 0, 0o777),
            b"/opt/x/setuid" => (Kind::File, 0, 0o4755),
            b"/opt/x/group-writable" => (Kind::File, 0, 0o775),
            b"/opt/x/helper" | b"/tmp/helper" | b"/home/helper" => (Kind::File, 0, 0o755),
            b"/tmp/linked" | b"/opt/x/linked" => (Kind::File, 0, 0o755),
            _ => return Err("No such file or directory (os error 2)"),
        };
        Ok(Meta {
            kind,
            uid,
            mode,
            links,
        })
    }

    #[test]
    fn only_a_root_owned_file_under_root_owned_directories_passes() {
        assert_eq!(check_helper(b"/opt/x/helper", lookup), Ok(()));
        // Sticky and root's, like /var/tmp: no one else can rename a root-owned entry.
        assert_eq!(check_helper(b"/tmp/helper", lookup), Ok(()));
        // Two names: fine where only root adds names (cargo's target/ links its outputs),
        // not where anyone may have made the second one.
        assert_eq!(check_helper(b"/opt/x/linked", lookup), Ok(()));
        let linked = check_helper(b"/tmp/linked", lookup).unwrap_err();
        assert!(linked.contains("hard link"), "{linked}");
        for refused in [
            &b"helper"[..],
            b"/opt/./x/helper",
            b"/opt/x/../x/helper",
            b"/opt/x/helper/",
            b"/opt//x/helper",
            b"/home/helper",
            b"/opt/x/link",
            b"/opt/x/setuid",
            b"/opt/x/group-writable",
        ] {
            let shown = String::from_utf8_lossy(refused);
            assert!(check_helper(refused, lookup).is_err(), "{shown}");
        }
        assert_eq!(
            check_helper(b"/nonexistent/helper", lookup),
            Err("/nonexistent: No such file or directory (os error 2)".into())
        );
        let link = check_helper(b"/opt/x/link", lookup).unwrap_err();
        assert!(link.ends_with("mode 777, a symbolic link)"), "{link}");
    }
}
