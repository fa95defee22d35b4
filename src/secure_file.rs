//! The one way twofold opens a file it trusts, and the one way it creates a file.
//!
//! **Reading** ([`open_checked`]): records, lock files, the policy, the PostgreSQL password and
//! CA files, import sources. Each is opened with `O_NOFOLLOW` (a symbolic link is refused),
//! `O_NONBLOCK` (a FIFO planted in its place cannot hang a login) and `O_CLOEXEC`; then, on
//! the open descriptor, never on the path: a regular file, the expected owner, no forbidden
//! mode bits, under a size cap checked before anything is read; then read whole into a buffer
//! that is wiped when dropped. What differs between those files on purpose (who owns it, which
//! mode bits are forbidden, how large it may be) is an [`Expect`] value, not another copy.
//!
//! **Creating** ([`NewFile`], [`write_new`]): the files twofold writes outside the store (QR
//! images, backup codes, man pages): new files only, never one that is already there.
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
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, openat};
use nix::sys::stat::{Mode, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};
use zeroize::Zeroizing;

// ---------------------------------------------------------------------------------------------
// Reading a file we trust
// ---------------------------------------------------------------------------------------------

/// Open flags for every file twofold trusts: a symbolic link at the end is refused (`ELOOP`),
/// a FIFO opens at once instead of waiting for a writer (and is then refused as not regular),
/// and no child process inherits the descriptor.
const READ_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_NONBLOCK)
    .union(OFlag::O_CLOEXEC);

/// Who must own a file before what it says is trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Exactly this uid: a record (root's in the system store, the user's in the home store),
    /// a lock file, root's PostgreSQL password file.
    Uid(u32),
    /// This uid or root: the policy (root's, or a copy of the user running twofold), an import
    /// source (the user it is for, or an admin who collected it).
    UidOrRoot(u32),
    /// Anyone: a public file that root's policy names wherever it is installed (the CA
    /// certificate of the PostgreSQL server, which a package or a tool may own).
    Anyone,
}

impl Owner {
    fn allows(self, uid: u32) -> bool {
        match self {
            Self::Uid(owner) => uid == owner,
            Self::UidOrRoot(owner) => uid == owner || uid == 0,
            Self::Anyone => true,
        }
    }

    /// The uid a refused file should be given (`chown`) to be trusted: the one allowed, or
    /// root where root is.
    pub fn fix_uid(self) -> u32 {
        match self {
            Self::Uid(uid) => uid,
            Self::UidOrRoot(_) | Self::Anyone => 0,
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Uid(0) | Self::UidOrRoot(0) => f.write_str("root"),
            Self::Uid(uid) => write!(f, "uid {uid}"),
            Self::UidOrRoot(uid) => write!(f, "uid {uid} or root"),
            Self::Anyone => f.write_str("anyone"),
        }
    }
}

/// What a file must be before its bytes are trusted. The files twofold reads differ on
/// purpose (a record must be private, the policy may be world-readable, an import source may
/// have no second name); those differences are these values, the checks are written once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expect {
    /// Names the file in messages: "record", "policy file", "password_file".
    pub what: &'static str,
    pub owner: Owner,
    /// Mode bits that must all be clear: 0o077 keeps it private, 0o022 lets nobody else
    /// change it, 0 checks nothing.
    pub forbidden_mode: u32,
    /// A larger file is refused before a byte of it is read.
    pub max_bytes: u64,
    /// Refuses a file with a second name (a hard link someone made to a file of theirs).
    pub single_link: bool,
}

/// A trusted file's bytes (wiped when dropped: they may hold a secret) and the mode it had.
pub struct Contents {
    pub bytes: Zeroizing<Vec<u8>>,
    pub mode: u32,
}

impl fmt::Debug for Contents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Contents([{} bytes redacted], mode {:04o})",
            self.bytes.len(),
            self.mode
        )
    }
}

/// Why a file was not trusted; [`OpenError::problem`] says it, `Display` adds the file and
/// the command that fixes it.
#[derive(Debug)]
pub struct OpenError {
    pub what: &'static str,
    pub path: PathBuf,
    pub problem: Problem,
}

/// What was wrong with a file, in the order the checks run.
#[derive(Debug)]
pub enum Problem {
    Missing,
    Symlink,
    NotRegular {
        kind: &'static str,
    },
    WrongOwner {
        uid: u32,
        owner: Owner,
    },
    LooseMode {
        mode: u32,
        forbidden: u32,
    },
    Linked {
        links: u64,
    },
    TooLarge {
        size: u64,
        max: u64,
    },
    /// It held more than fstat said when the read began: someone is writing it.
    Grew {
        size: u64,
    },
    Io {
        action: &'static str,
        source: io::Error,
    },
}

impl Problem {
    /// The mode that would pass: today's less the forbidden bits.
    fn fixed_mode(mode: u32, forbidden: u32) -> u32 {
        mode & 0o7777 & !forbidden
    }
}

/// The problem as a sentence about "it", for messages that name the file already.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("does not exist"),
            Self::Symlink => f.write_str("is a symbolic link; refusing to follow it"),
            Self::NotRegular { kind } => write!(f, "is {kind}, not a regular file"),
            Self::WrongOwner { uid, owner } => {
                write!(f, "is owned by uid {uid}, not by {owner}: not trusted")
            }
            Self::LooseMode { mode, forbidden } => {
                let fixed = Self::fixed_mode(*mode, *forbidden);
                if mode & forbidden & 0o022 != 0 {
                    write!(
                        f,
                        "is writable by group or others (mode {mode:04o}): anyone could have \
                         changed it; it needs mode {fixed:04o}"
                    )
                } else {
                    let access = if mode & forbidden & 0o044 != 0 {
                        "is readable by"
                    } else {
                        "gives access to"
                    };
                    write!(
                        f,
                        "{access} group or others (mode {mode:04o}); it needs mode {fixed:04o}"
                    )
                }
            }
            Self::Linked { links } => {
                write!(f, "has {links} hard links; copy it to a file of its own")
            }
            Self::TooLarge { size, max } => write!(f, "is {size} bytes, over the {max}-byte limit"),
            Self::Grew { size } => write!(
                f,
                "grew past its {size} bytes while being read; try again once nothing writes it"
            ),
            Self::Io { action, source } => write!(f, "cannot be {action}: {source}"),
        }
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        write!(f, "{} {path} {}", self.what, self.problem)?;
        match &self.problem {
            Problem::WrongOwner { owner, .. } => write!(
                f,
                " (check who changed it, then chown {} {path})",
                owner.fix_uid()
            ),
            Problem::LooseMode { mode, forbidden } => write!(
                f,
                " (chmod {:o} {path})",
                Problem::fixed_mode(*mode, *forbidden)
            ),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.problem {
            Problem::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Expect {
    fn error(&self, path: &Path, problem: Problem) -> OpenError {
        OpenError {
            what: self.what,
            path: path.to_owned(),
            problem,
        }
    }

    fn io(&self, path: &Path, action: &'static str, source: io::Error) -> OpenError {
        self.error(path, Problem::Io { action, source })
    }
}

/// Opens `path` the one way a trusted file is opened (see [`READ_FLAGS`]), checks it on the
/// open descriptor against `expect` (never on the path, which can change meanwhile) and
/// reads it whole: at most the size fstat gave plus one byte, to notice a file that grows.
pub fn open_checked(path: &Path, expect: &Expect) -> Result<Contents, OpenError> {
    read_opened(
        openat(AT_FDCWD, path, READ_FLAGS, Mode::empty()),
        path,
        expect,
    )
}

/// [`open_checked`] for `name` in the directory `dir` (held open, so that nothing on the way
/// is looked up again); `path` names the file in messages.
pub fn open_checked_at(
    dir: BorrowedFd<'_>,
    name: &str,
    path: &Path,
    expect: &Expect,
) -> Result<Contents, OpenError> {
    read_opened(openat(dir, name, READ_FLAGS, Mode::empty()), path, expect)
}

fn read_opened(
    opened: nix::Result<OwnedFd>,
    path: &Path,
    expect: &Expect,
) -> Result<Contents, OpenError> {
    let file = File::from(opened.map_err(|errno| match errno {
        Errno::ENOENT => expect.error(path, Problem::Missing),
        Errno::ELOOP => expect.error(path, Problem::Symlink),
        e => expect.io(path, "opened", e.into()),
    })?);
    let meta = check_open_file(&file, path, expect)?;
    let bytes = read_bounded(file, meta.len(), path, expect)?;
    Ok(Contents {
        bytes,
        mode: meta.mode() & 0o7777,
    })
}

/// The checks of [`open_checked`] on a file opened otherwise (a lock file, which the store
/// creates when missing): regular, owner, links, mode, size. Returns its metadata.
pub fn check_open_file(
    file: &File,
    path: &Path,
    expect: &Expect,
) -> Result<std::fs::Metadata, OpenError> {
    let meta = file
        .metadata()
        .map_err(|source| expect.io(path, "inspected", source))?;
    let problem = if !meta.file_type().is_file() {
        Problem::NotRegular {
            kind: kind_of(meta.file_type()),
        }
    } else if !expect.owner.allows(meta.uid()) {
        Problem::WrongOwner {
            uid: meta.uid(),
            owner: expect.owner,
        }
    } else if expect.single_link && meta.nlink() != 1 {
        Problem::Linked {
            links: meta.nlink(),
        }
    } else if meta.mode() & expect.forbidden_mode != 0 {
        Problem::LooseMode {
            mode: meta.mode() & 0o7777,
            forbidden: expect.forbidden_mode,
        }
    } else if meta.len() > expect.max_bytes {
        Problem::TooLarge {
            size: meta.len(),
            max: expect.max_bytes,
        }
    } else {
        return Ok(meta);
    };
    Err(expect.error(path, problem))
}

/// Reads `size` bytes (what fstat said, within the cap) and asks for one more to notice
/// growth, into a buffer of exactly that capacity: no reallocation leaves a copy of a secret
/// behind. A read of a regular file that comes back short has met the end of the file, so
/// once `size` bytes are in no second read is made to hear "end of file" (one system call
/// per record instead of two: every login and `twofold list` read records).
fn read_bounded(
    mut file: File,
    size: u64,
    path: &Path,
    expect: &Expect,
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let size = usize::try_from(size).unwrap_or(usize::MAX - 1);
    let limit = size + 1;
    let mut bytes = Zeroizing::new(vec![0u8; limit]);
    let mut filled = 0;
    while filled < limit {
        match file.read(&mut bytes[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(expect.io(path, "read", source)),
        }
        if filled >= size && filled < limit {
            break;
        }
    }
    if filled > size {
        return Err(expect.error(path, Problem::Grew { size: size as u64 }));
    }
    bytes.truncate(filled);
    Ok(bytes)
}

fn kind_of(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

// ---------------------------------------------------------------------------------------------
// Creating a file
// ---------------------------------------------------------------------------------------------

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
    /// A directory to create files in belongs to someone else, or others may write it (and
    /// so swap what this process writes there).
    Untrusted { path: PathBuf, uid: u32, mode: u32 },
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
            Self::Untrusted { path, uid, mode } => write!(
                f,
                "{} is owned by uid {uid} with mode {mode:04o}: twofold writes only into \
                 directories of its own user (or root) that others cannot write; choose \
                 another place",
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
    /// Opens `path` as the admin named it (links on the way are the admin's choice). It must
    /// be this process's user's (or root's), and others may write it only if it is sticky
    /// (like /tmp: there nobody else can swap the files created in it).
    pub fn open(path: &Path) -> Result<Self, CreateError> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let dir = match openat(AT_FDCWD, path, flags, Mode::empty()) {
            Ok(fd) => Self {
                fd,
                path: path.to_owned(),
            },
            Err(Errno::ENOTDIR) => {
                return Err(CreateError::NotDirectory {
                    path: path.to_owned(),
                });
            }
            Err(e) => return Err(io_error(path, "open directory", e)),
        };
        dir.check_trusted(true)?;
        Ok(dir)
    }

    /// Refuses a directory of another user, or one that others may write (unless
    /// `sticky_ok` and it has the sticky bit). Checked on the descriptor.
    fn check_trusted(&self, sticky_ok: bool) -> Result<(), CreateError> {
        let meta =
            nix::sys::stat::fstat(&self.fd).map_err(|e| io_error(&self.path, "inspect", e))?;
        let euid = nix::unistd::geteuid().as_raw();
        let mode = meta.st_mode & 0o7777;
        let owner_ok = meta.st_uid == euid || meta.st_uid == 0;
        let writable_by_others = mode & 0o022 != 0 && !(sticky_ok && mode & 0o1000 != 0);
        if !owner_ok || writable_by_others {
            return Err(CreateError::Untrusted {
                path: self.path.clone(),
                uid: meta.st_uid,
                mode,
            });
        }
        Ok(())
    }

    /// The subdirectory `name`, created (0755 less the umask) if missing. A link planted in
    /// its place is refused, not followed; so is a directory of another user, or one others
    /// may write.
    pub fn subdir(&self, name: &str) -> Result<Self, CreateError> {
        let path = self.path.join(name);
        match mkdirat(&self.fd, name, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(io_error(&path, "create directory", e)),
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let dir = match openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => Self { fd, path },
            Err(Errno::ELOOP | Errno::ENOTDIR) => return Err(CreateError::NotDirectory { path }),
            Err(e) => return Err(io_error(&path, "open directory", e)),
        };
        // One that was already there may have been planted by someone else.
        dir.check_trusted(false)?;
        Ok(dir)
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

    /// What fstat said against what the read finds: all of it, a file that grew since (an
    /// error), one that shrank (what is there), an empty one.
    #[test]
    fn a_bounded_read_takes_what_fstat_said_and_notices_growth() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"0123456789").unwrap();
        let expect = Expect {
            what: "test file",
            owner: Owner::Uid(nix::unistd::getuid().as_raw()),
            forbidden_mode: 0,
            single_link: false,
            max_bytes: 100,
        };
        let read = |size| read_bounded(File::open(&path).unwrap(), size, &path, &expect);
        assert_eq!(&read(10).unwrap()[..], b"0123456789");
        let grew = read(9).unwrap_err();
        assert!(matches!(grew.problem, Problem::Grew { size: 9 }), "{grew}");
        assert_eq!(&read(20).unwrap()[..], b"0123456789");
        fs::write(&path, b"").unwrap();
        assert!(read(0).unwrap().is_empty());
        assert!(matches!(read(0).map(|b| b.capacity()), Ok(1)));
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

/// `open_checked`: one test per refusal, each on a real file of the kind it refuses.
#[cfg(test)]
mod open_tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::sync::mpsc;
    use std::time::Duration;

    fn euid() -> u32 {
        nix::unistd::geteuid().as_raw()
    }

    /// A private file of this process's user, at most 16 bytes.
    fn expect() -> Expect {
        Expect {
            what: "record",
            owner: Owner::Uid(euid()),
            forbidden_mode: 0o077,
            max_bytes: 16,
            single_link: false,
        }
    }

    fn file(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, bytes).unwrap();
        fs::set_permissions(&path, Permissions::from_mode(mode)).unwrap();
        path
    }

    fn problem(result: Result<Contents, OpenError>) -> Problem {
        match result {
            Ok(contents) => panic!("accepted: {contents:?}"),
            Err(e) => e.problem,
        }
    }

    #[test]
    fn a_file_of_exactly_the_cap_is_read_whole_and_one_byte_more_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let exact = file(dir.path(), "exact", &[b'x'; 16], 0o600);
        let read = open_checked(&exact, &expect()).unwrap();
        assert_eq!(read.bytes.as_slice(), &[b'x'; 16]);
        assert_eq!(read.bytes.capacity(), 17, "no reallocation: fstat size + 1");
        assert_eq!(read.mode, 0o600);
        let empty = file(dir.path(), "empty", b"", 0o400);
        assert!(open_checked(&empty, &expect()).unwrap().bytes.is_empty());

        let over = file(dir.path(), "over", &[b'x'; 17], 0o600);
        assert!(matches!(
            problem(open_checked(&over, &expect())),
            Problem::TooLarge { size: 17, max: 16 }
        ));
    }

    #[test]
    fn a_missing_file_is_its_own_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nothing");
        assert!(matches!(
            problem(open_checked(&path, &expect())),
            Problem::Missing
        ));
    }

    #[test]
    fn a_symbolic_link_is_refused_even_to_a_good_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = file(dir.path(), "target", b"good", 0o600);
        let link = dir.path().join("link");
        symlink(&target, &link).unwrap();
        let err = open_checked(&link, &expect()).unwrap_err();
        assert!(matches!(err.problem, Problem::Symlink), "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "record {} is a symbolic link; refusing to follow it",
                link.display()
            )
        );
        let dangling = dir.path().join("dangling");
        symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert!(matches!(
            problem(open_checked(&dangling, &expect())),
            Problem::Symlink
        ));
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(open_checked(&fifo, &expect()).map_err(|e| e.to_string()));
        });
        let result = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("blocked on a FIFO");
        let err = result.unwrap_err();
        assert!(err.ends_with("is a FIFO, not a regular file"), "{err}");
    }

    #[test]
    fn a_directory_is_not_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            problem(open_checked(dir.path(), &expect())),
            Problem::NotRegular {
                kind: "a directory"
            }
        ));
    }

    #[test]
    fn another_owner_is_refused_with_the_chown_that_fixes_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), "theirs", b"x", 0o600);
        let other = euid().wrapping_add(1);
        let expect = Expect {
            owner: Owner::Uid(other),
            ..expect()
        };
        let err = open_checked(&path, &expect).unwrap_err();
        assert!(
            matches!(err.problem, Problem::WrongOwner { uid, owner } if uid == euid() && owner == Owner::Uid(other)),
            "{err}"
        );
        assert!(
            err.to_string()
                .ends_with(&format!("then chown {other} {})", path.display())),
            "{err}"
        );
        // Root may own what UidOrRoot expects; nobody else but the uid itself.
        assert!(Owner::UidOrRoot(1000).allows(0) && Owner::UidOrRoot(1000).allows(1000));
        assert!(!Owner::UidOrRoot(1000).allows(1001) && !Owner::Uid(1000).allows(0));
        assert_eq!(Owner::UidOrRoot(1000).to_string(), "uid 1000 or root");
        assert_eq!(Owner::Uid(0).to_string(), "root");
    }

    #[test]
    fn forbidden_mode_bits_are_a_parameter() {
        let dir = tempfile::tempdir().unwrap();
        let readable = file(dir.path(), "readable", b"x", 0o644);
        let writable = file(dir.path(), "writable", b"x", 0o666);
        let policy = Expect {
            what: "policy file",
            forbidden_mode: 0o022,
            ..expect()
        };
        // The policy may be world-readable; a record may not.
        assert!(open_checked(&readable, &policy).is_ok());
        let err = open_checked(&readable, &expect()).unwrap_err();
        assert!(
            matches!(
                err.problem,
                Problem::LooseMode {
                    mode: 0o644,
                    forbidden: 0o077
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("needs mode 0600"), "{err}");
        assert!(
            err.to_string()
                .ends_with(&format!("(chmod 600 {})", readable.display()))
        );
        let err = open_checked(&writable, &policy).unwrap_err().to_string();
        assert!(
            err.contains("writable by group or others (mode 0666)"),
            "{err}"
        );
        assert!(
            err.ends_with(&format!("(chmod 644 {})", writable.display())),
            "{err}"
        );
        // Nothing forbidden, nothing checked.
        let any = Expect {
            forbidden_mode: 0,
            ..expect()
        };
        assert!(open_checked(&writable, &any).is_ok());
    }

    #[test]
    fn a_second_name_is_refused_only_where_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), "one", b"x", 0o600);
        fs::hard_link(&path, dir.path().join("two")).unwrap();
        assert!(open_checked(&path, &expect()).is_ok());
        let single = Expect {
            single_link: true,
            ..expect()
        };
        assert!(matches!(
            problem(open_checked(&path, &single)),
            Problem::Linked { links: 2 }
        ));
    }

    /// A file that holds more than fstat said when the read began: /proc files say 0 bytes
    /// and then have content, exactly like a file someone appends to meanwhile.
    #[test]
    fn a_file_that_grows_while_read_is_refused() {
        let path = Path::new("/proc/self/status");
        let expect = Expect {
            what: "status file",
            owner: Owner::Uid(euid()),
            forbidden_mode: 0,
            max_bytes: 16,
            single_link: false,
        };
        let err = open_checked(path, &expect).unwrap_err();
        assert!(matches!(err.problem, Problem::Grew { size: 0 }), "{err}");
    }

    #[test]
    fn files_in_a_held_directory_are_checked_the_same_way() {
        let dir = tempfile::tempdir().unwrap();
        file(dir.path(), "record", b"abc", 0o600);
        symlink("record", dir.path().join("link")).unwrap();
        let held = File::open(dir.path()).unwrap();
        let read = open_checked_at(
            held.as_fd(),
            "record",
            &dir.path().join("record"),
            &expect(),
        )
        .unwrap();
        assert_eq!(read.bytes.as_slice(), b"abc");
        let link = dir.path().join("link");
        let err = open_checked_at(held.as_fd(), "link", &link, &expect()).unwrap_err();
        assert!(matches!(err.problem, Problem::Symlink));
        assert_eq!(err.path, link);
    }

    #[test]
    fn a_file_opened_elsewhere_gets_the_same_checks() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), "lock", b"", 0o666);
        let lock = Expect {
            what: "lock file",
            forbidden_mode: 0,
            max_bytes: u64::MAX,
            ..expect()
        };
        let opened = File::open(&path).unwrap();
        assert!(check_open_file(&opened, &path, &lock).is_ok());
        let err = check_open_file(&opened, &path, &expect()).unwrap_err();
        assert!(matches!(err.problem, Problem::LooseMode { .. }));
    }
}
