//! Creating the files twofold writes outside the store (QR images, backup codes, man pages):
//! new files only, never one that is already there.
//!
//! An admin often names an output path in a directory other users can write to, such as /tmp.
//! Opening it with create+truncate would reuse whatever another user left there: their file
//! keeps its owner and its mode 0666, so they read the secret written into it, and a symlink they
//! planted sends a root write wherever it points. So a file is only ever created:
//!
//! - `O_CREAT|O_EXCL`: any existing path (file, directory, FIFO, symlink, dangling symlink
//!   included) fails with `EEXIST`; it is never opened, so a FIFO cannot block us either;
//! - `O_NOFOLLOW|O_CLOEXEC`, and the mode set again with `fchmod` on the descriptor, so the
//!   result is 0600 (or 0644 for documentation) whatever the umask;
//! - the bytes written and flushed to disk; a write that fails removes the half-written file,
//!   so no partial secret is left behind.
//!
//! Directories to create files in ([`Dir`]) are opened on a descriptor and their
//! subdirectories without following links, so a planted `man1 -> /etc` redirects nothing.
#![forbid(unsafe_code)]

use std::fmt;
use std::fs::{File, Permissions};
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, openat};
use nix::sys::stat::{Mode, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};

/// Who may read a new file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// 0600: it holds a secret (a QR code, backup codes).
    Private,
    /// 0644: documentation anyone may read (a man page, completions).
    Public,
}

impl Access {
    fn mode(self) -> u32 {
        match self {
            Self::Private => 0o600,
            Self::Public => 0o644,
        }
    }
}

/// Why a file or directory could not be created.
#[derive(Debug)]
pub enum CreateError {
    /// Something (file, link, FIFO, directory) is already at the path; it was left alone.
    Exists { path: PathBuf },
    /// A directory to create files in is a symbolic link or not a directory.
    NotDirectory { path: PathBuf },
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exists { path } => write!(f, "{} exists", path.display()),
            Self::NotDirectory { path } => write!(
                f,
                "{} is a symbolic link or not a directory",
                path.display()
            ),
            Self::Io {
                path,
                action,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for CreateError {}

fn io_error(path: &Path, action: &'static str, errno: Errno) -> CreateError {
    CreateError::Io {
        path: path.to_owned(),
        action,
        source: io::Error::from(errno),
    }
}

/// A directory held open, to create files in by name.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Dir {
    /// Opens `path` as the admin named it (links on the way are the admin's choice).
    pub fn open(path: &Path) -> Result<Self, CreateError> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        match openat(AT_FDCWD, path, flags, Mode::empty()) {
            Ok(fd) => Ok(Self {
                fd,
                path: path.to_owned(),
            }),
            Err(Errno::ENOTDIR) => Err(CreateError::NotDirectory {
                path: path.to_owned(),
            }),
            Err(e) => Err(io_error(path, "open directory", e)),
        }
    }

    /// The subdirectory `name`, created (0755 less the umask) if missing. A link planted in
    /// its place is refused, not followed.
    pub fn subdir(&self, name: &str) -> Result<Self, CreateError> {
        let path = self.path.join(name);
        match mkdirat(&self.fd, name, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(io_error(&path, "create directory", e)),
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        match openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => Ok(Self { fd, path }),
            Err(Errno::ELOOP | Errno::ENOTDIR) => Err(CreateError::NotDirectory { path }),
            Err(e) => Err(io_error(&path, "open directory", e)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A file this process has just created and not kept yet. Dropped before [`NewFile::write`]
/// succeeds (or before [`NewFile::keep`]), it is removed again: a caller can claim every
/// output path first, so that a refused one stops the command before anything changes, and a
/// failed write leaves no half-written secret behind.
#[derive(Debug)]
pub struct NewFile {
    /// `None` once kept (or never opened): dropping it then removes nothing.
    file: Option<File>,
    /// Where `name` is looked up: the [`Dir`] it was created in, or the working directory.
    dir: Option<OwnedFd>,
    name: PathBuf,
    path: PathBuf,
}

impl NewFile {
    /// Creates `path`, which must not exist in any form.
    pub fn create(path: &Path, access: Access) -> Result<Self, CreateError> {
        Self::create_at(None, path.to_owned(), path.to_owned(), access)
    }

    /// Creates `name` inside `dir`; `name` must not exist there in any form.
    pub fn create_in(dir: &Dir, name: &str, access: Access) -> Result<Self, CreateError> {
        let path = dir.path.join(name);
        let fd = dir.fd.try_clone().map_err(|source| CreateError::Io {
            path: dir.path.clone(),
            action: "use directory",
            source,
        })?;
        Self::create_at(Some(fd), PathBuf::from(name), path, access)
    }

    fn create_at(
        dir: Option<OwnedFd>,
        name: PathBuf,
        path: PathBuf,
        access: Access,
    ) -> Result<Self, CreateError> {
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mode = Mode::from_bits_truncate(access.mode());
        let at = dir.as_ref().map_or(AT_FDCWD, AsFd::as_fd);
        let fd = match openat(at, &name, flags, mode) {
            Ok(fd) => fd,
            // O_EXCL gives EEXIST for a link too; ELOOP only if a kernel decides otherwise.
            Err(Errno::EEXIST | Errno::ELOOP) => return Err(CreateError::Exists { path }),
            Err(e) => return Err(io_error(&path, "create", e)),
        };
        let new = Self {
            file: Some(File::from(fd)),
            dir,
            name,
            path,
        };
        // The umask may have cleared bits of `mode`: set it on the descriptor, whatever it was.
        if let Some(file) = &new.file {
            file.set_permissions(Permissions::from_mode(access.mode()))
                .map_err(|source| CreateError::Io {
                    path: new.path.clone(),
                    action: "set the mode of",
                    source,
                })?;
        }
        Ok(new)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes all of `bytes` and flushes them to disk, and keeps the file; if that fails the
    /// file is removed.
    pub fn write(mut self, bytes: &[u8]) -> Result<(), CreateError> {
        self.fill(bytes)?;
        self.keep();
        Ok(())
    }

    /// Writes all of `bytes` and flushes them to disk, but the file is still removed when
    /// dropped unless [`NewFile::keep`] is called: for a file that is only worth keeping if
    /// what follows succeeds (the QR image of an enrollment that must still be confirmed).
    pub fn fill(&mut self, bytes: &[u8]) -> Result<(), CreateError> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|source| CreateError::Io {
                path: self.path.clone(),
                action: "write",
                source,
            })
    }

    /// Keeps the file: dropping it no longer removes it.
    pub fn keep(mut self) {
        self.file = None;
    }

    /// Unlinks the name if it still is the file we created: whoever can write the directory
    /// may have put something else there meanwhile, and that is not ours to delete.
    fn remove(&self, file: &File) {
        let at = self.dir.as_ref().map_or(AT_FDCWD, AsFd::as_fd);
        let Ok(ours) = file.metadata() else {
            return;
        };
        if let Ok(now) = fstatat(at, &self.name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            if now.st_dev == ours.dev() && now.st_ino == ours.ino() {
                let _ = unlinkat(at, &self.name, UnlinkatFlags::NoRemoveDir);
            }
        }
    }
}

impl Drop for NewFile {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            self.remove(&file);
        }
    }
}

/// Creates `path` (which must not exist in any form) with `bytes` in it.
pub fn write_new(path: &Path, bytes: &[u8], access: Access) -> Result<(), CreateError> {
    NewFile::create(path, access)?.write(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{FileTypeExt, symlink};
    use std::sync::mpsc;
    use std::time::Duration;

    const SECRET: &[u8] = b"otpauth://totp/x:y?secret=JBSWY3DPEHPK3PXP";

    fn mode_of(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    /// A planted file: content and mode, to prove they stay as they were.
    fn planted(path: &Path) -> (Vec<u8>, u32) {
        fs::write(path, b"someone else's\n").unwrap();
        fs::set_permissions(path, Permissions::from_mode(0o666)).unwrap();
        (fs::read(path).unwrap(), mode_of(path))
    }

    fn assert_exists_error(result: Result<(), CreateError>, path: &Path) {
        match result {
            Err(CreateError::Exists { path: p }) => assert_eq!(p, path),
            other => panic!("{}: {other:?}", path.display()),
        }
    }

    #[test]
    fn a_new_file_holds_the_bytes_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qr.png");
        write_new(&path, SECRET, Access::Private).unwrap();
        assert_eq!(fs::read(&path).unwrap(), SECRET);
        assert_eq!(mode_of(&path), 0o600);
    }

    #[test]
    fn an_existing_file_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("codes.txt");
        let (bytes, mode) = planted(&path);
        assert_exists_error(write_new(&path, SECRET, Access::Private), &path);
        assert_eq!(fs::read(&path).unwrap(), bytes);
        assert_eq!(mode_of(&path), mode);
        // A refused create does not remove what was there (no NewFile was made).
        assert!(path.exists());
    }

    #[test]
    fn a_link_to_a_file_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        let (bytes, mode) = planted(&target);
        let link = dir.path().join("link");
        symlink(&target, &link).unwrap();
        assert_exists_error(write_new(&link, SECRET, Access::Private), &link);
        assert_eq!(fs::read(&target).unwrap(), bytes);
        assert_eq!(mode_of(&target), mode);
        assert_eq!(fs::read_link(&link).unwrap(), target);
    }

    #[test]
    fn a_dangling_link_is_refused_and_nothing_appears_at_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("nowhere");
        let link = dir.path().join("dangling");
        symlink(&target, &link).unwrap();
        assert_exists_error(write_new(&link, SECRET, Access::Private), &link);
        assert!(!target.exists());
        assert_eq!(fs::read_link(&link).unwrap(), target);
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o666)).unwrap();
        let (tx, rx) = mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(write_new(&path, SECRET, Access::Private));
        });
        let result = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("blocked on a FIFO");
        assert_exists_error(result, &fifo);
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_exists_error(write_new(dir.path(), SECRET, Access::Private), dir.path());
    }

    #[test]
    fn an_unwritten_file_is_removed_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("claimed");
        let file = NewFile::create(&path, Access::Private).unwrap();
        assert!(path.exists());
        drop(file);
        assert!(!path.exists());
    }

    #[test]
    fn a_filled_file_is_removed_unless_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (dropped, kept) = (dir.path().join("dropped"), dir.path().join("kept"));
        let mut file = NewFile::create(&dropped, Access::Private).unwrap();
        file.fill(SECRET).unwrap();
        assert_eq!(fs::read(&dropped).unwrap(), SECRET);
        drop(file);
        assert!(!dropped.exists());
        let mut file = NewFile::create(&kept, Access::Private).unwrap();
        file.fill(SECRET).unwrap();
        file.keep();
        assert_eq!(fs::read(&kept).unwrap(), SECRET);
    }

    #[test]
    fn cleanup_removes_only_the_file_it_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("claimed");
        let file = NewFile::create(&path, Access::Private).unwrap();
        // Someone with write access to the directory swaps the name meanwhile.
        fs::rename(&path, dir.path().join("moved")).unwrap();
        fs::write(&path, b"theirs").unwrap();
        drop(file);
        assert_eq!(fs::read(&path).unwrap(), b"theirs");
    }

    #[test]
    fn files_in_a_dir_are_created_there_and_links_are_not_followed() {
        let base = tempfile::tempdir().unwrap();
        let top = Dir::open(base.path()).unwrap();
        let man = top.subdir("man1").unwrap();
        NewFile::create_in(&man, "twofold.1", Access::Public)
            .unwrap()
            .write(b".TH")
            .unwrap();
        let page = base.path().join("man1/twofold.1");
        assert_eq!(fs::read(&page).unwrap(), b".TH");
        assert_eq!(mode_of(&page), 0o644);
        // Again into the same place: refused, kept.
        let again = NewFile::create_in(&man, "twofold.1", Access::Public);
        assert!(
            matches!(again, Err(CreateError::Exists { .. })),
            "{again:?}"
        );
        assert_eq!(fs::read(&page).unwrap(), b".TH");

        let elsewhere = tempfile::tempdir().unwrap();
        symlink(elsewhere.path(), base.path().join("completions")).unwrap();
        let linked = top.subdir("completions");
        assert!(
            matches!(linked, Err(CreateError::NotDirectory { .. })),
            "{linked:?}"
        );
        assert_eq!(fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    }
}
