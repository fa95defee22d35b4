//! The libc calls the module makes, each wrapped once with its safety argument, the global
//! allocator a `no_std` cdylib must bring itself (libc's malloc), and errno in words. Everything
//! else in the crate is safe code over these functions (the panic handler is in `log.rs`).

use alloc::vec::Vec;
use core::ffi::CStr;
use core::fmt;
use core::mem::{MaybeUninit, size_of, zeroed};
use core::ptr;

use twofold_wire::helper_file::{Kind, Meta};

use crate::ctext::CText;
use crate::os_error::{Ended, IoError, signal_name};

/// The heap is the host's malloc: no allocator of our own mapped into sshd or sudo.
#[cfg(not(test))]
#[global_allocator]
static ALLOCATOR: Malloc = Malloc;

struct Malloc;

/// malloc's guaranteed alignment (glibc: two words).
const MALLOC_ALIGN: usize = 2 * size_of::<usize>();

// SAFETY: malloc, posix_memalign, realloc and free are thread-safe and return memory of at
// least the requested size and alignment (or NULL, which GlobalAlloc reports as failure).
unsafe impl core::alloc::GlobalAlloc for Malloc {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            // SAFETY: any size is valid for malloc; the alignment is malloc's own or less.
            return unsafe { libc::malloc(layout.size()) }.cast();
        }
        let mut out: *mut libc::c_void = ptr::null_mut();
        // SAFETY: the alignment is a power of two (Layout's invariant) and above a word.
        match unsafe { libc::posix_memalign(&mut out, layout.align(), layout.size()) } {
            0 => out.cast(),
            _ => ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, _layout: core::alloc::Layout) {
        // SAFETY: `block` came from malloc or posix_memalign above (GlobalAlloc's contract).
        unsafe { libc::free(block.cast()) }
    }

    unsafe fn realloc(
        &self,
        block: *mut u8,
        layout: core::alloc::Layout,
        new_size: usize,
    ) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            // SAFETY: `block` came from malloc (alignment within malloc's); realloc keeps it.
            return unsafe { libc::realloc(block.cast(), new_size) }.cast();
        }
        // SAFETY: as GlobalAlloc::alloc, with the caller's valid layout for the new size.
        let new_layout =
            unsafe { core::alloc::Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a valid layout; then both blocks are live for the smaller of the sizes.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                ptr::copy_nonoverlapping(block, new, layout.size().min(new_size));
                self.dealloc(block, layout);
            }
            new
        }
    }
}

pub fn abort() -> ! {
    // SAFETY: abort takes nothing and does not return.
    unsafe { libc::abort() }
}

fn errno() -> i32 {
    // SAFETY: __errno_location returns this thread's errno, always valid.
    unsafe { *libc::__errno_location() }
}

/// libc's words for errno `code`, into `buf`.
pub fn strerror(code: i32, buf: &mut [u8]) -> &str {
    // SAFETY: the XSI strerror_r writes a NUL-terminated string of at most `buf.len()` bytes.
    let rc = unsafe { libc::strerror_r(code, buf.as_mut_ptr().cast(), buf.len()) };
    let text = CStr::from_bytes_until_nul(buf).ok().filter(|_| rc == 0);
    text.and_then(|t| t.to_str().ok())
        .unwrap_or("Unknown error")
}

/// A descriptor this module opened, closed when dropped.
pub struct Fd(i32);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: our own open descriptor, closed once.
        unsafe { libc::close(self.0) };
    }
}

/// A connected pair of stream sockets, close-on-exec, both numbered above 2: in a host whose
/// 0-2 are closed, neither the host's stray output nor the helper's dup2s can meet them.
pub fn socket_pair() -> Result<(Fd, Fd), IoError> {
    let mut fds = [0i32; 2];
    let kind = libc::SOCK_STREAM | libc::SOCK_CLOEXEC;
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    if unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()) } != 0 {
        return Err(IoError::Os(errno()));
    }
    let (first, second) = (Fd(fds[0]), Fd(fds[1]));
    Ok((above_2(first)?, above_2(second)?))
}

/// `fd` itself if it is above 2 (as nearly always: two system calls saved per login), else a
/// copy that is, `fd` closed.
fn above_2(fd: Fd) -> Result<Fd, IoError> {
    if fd.0 > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC on our open descriptor only makes a new one.
    match unsafe { libc::fcntl(fd.0, libc::F_DUPFD_CLOEXEC, 3) } {
        -1 => Err(IoError::Os(errno())),
        copy => Ok(Fd(copy)),
    }
}

/// All of `bytes` by `deadline` (milliseconds of [`monotonic_ms`]), or [`IoError::TimedOut`];
/// never raising SIGPIPE in the host process (sshd, sudo) when the peer is gone.
pub fn send_all_by(fd: &Fd, mut bytes: &[u8], deadline: u64) -> Result<(), IoError> {
    let flags = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;
    while !bytes.is_empty() {
        // SAFETY: `bytes` is valid for reading its length.
        let sent = unsafe { libc::send(fd.0, bytes.as_ptr().cast(), bytes.len(), flags) };
        match usize::try_from(sent) {
            Ok(0) => return Err(IoError::WriteZero),
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
            Err(_) if errno() == libc::EINTR => continue,
            Err(_) if errno() == libc::EAGAIN => wait_ready(fd, libc::POLLOUT, deadline)?,
            Err(_) => return Err(IoError::Os(errno())),
        }
    }
    Ok(())
}

/// Exactly `buf.len()` bytes, all come by `deadline` (milliseconds of [`monotonic_ms`]), or
/// [`IoError::TimedOut`].
pub fn read_exact_by(fd: &Fd, mut buf: &mut [u8], deadline: u64) -> Result<(), IoError> {
    while !buf.is_empty() {
        wait_ready(fd, libc::POLLIN, deadline)?;
        // SAFETY: `buf` is valid for writing its length.
        let got = unsafe { libc::read(fd.0, buf.as_mut_ptr().cast(), buf.len()) };
        match usize::try_from(got) {
            Ok(0) => return Err(IoError::Eof),
            Ok(n) => buf = buf.get_mut(n..).unwrap_or_default(),
            Err(_) if errno() == libc::EINTR => continue,
            Err(_) => return Err(IoError::Os(errno())),
        }
    }
    Ok(())
}

/// Until `fd` is ready for `events` or its peer is gone (the call that follows tells which),
/// or [`IoError::TimedOut`] at `deadline`. Past the deadline it still looks once without
/// waiting: what came in time while this process was not running (stopped, swapped out) counts.
fn wait_ready(fd: &Fd, events: libc::c_short, deadline: u64) -> Result<(), IoError> {
    loop {
        // No clock: as if the deadline had passed (fail closed).
        let left = deadline.saturating_sub(monotonic_ms().unwrap_or(u64::MAX));
        let mut wanted = libc::pollfd {
            fd: fd.0,
            events,
            revents: 0,
        };
        let wait = i32::try_from(left).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd, as the count says.
        match unsafe { libc::poll(&mut wanted, 1, wait) } {
            0 if left == 0 => return Err(IoError::TimedOut),
            0 => continue,
            -1 if errno() == libc::EINTR => continue,
            -1 => return Err(IoError::Os(errno())),
            _ => return Ok(()),
        }
    }
}

/// The deadline `ms` milliseconds from now; without a clock, one already passed (fail closed).
pub fn deadline_in(ms: u64) -> u64 {
    monotonic_ms().map_or(0, |now| now.saturating_add(ms))
}

/// Whether `deadline` has passed (without a clock: yes).
fn passed(deadline: u64) -> bool {
    monotonic_ms().is_none_or(|now| now >= deadline)
}

/// Milliseconds on a clock that never jumps (CLOCK_MONOTONIC): deadlines survive a clock
/// set back or forward. None if it cannot be read (never on Linux, where it is the vDSO's).
fn monotonic_ms() -> Option<u64> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is one timespec to write.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) } != 0 {
        return None;
    }
    let seconds = u64::try_from(now.tv_sec).ok()?;
    let millis = u64::try_from(now.tv_nsec / 1_000_000).ok()?;
    Some(seconds.saturating_mul(1000).saturating_add(millis))
}

/// posix_spawn (no fork of a large host) of `path` with `socket` as stdin and stdout and
/// /dev/null as stderr, default signal handling, an empty signal mask, a process group of its
/// own (keys such as Ctrl-C at a sudo prompt signal the foreground group, not the helper), and
/// the environment `env`.
pub fn spawn(path: &CStr, socket: &Fd, env: &[CText]) -> Result<i32, IoError> {
    let check = |rc: i32| match rc {
        0 => Ok(()),
        rc => Err(IoError::Os(rc)),
    };
    let mut envp: Vec<*mut libc::c_char> = env
        .iter()
        .map(|v| v.as_c_str().as_ptr().cast_mut())
        .collect();
    envp.push(ptr::null_mut());
    let argv = [path.as_ptr().cast_mut(), ptr::null_mut()];
    let mut pid: libc::pid_t = 0;
    // SAFETY: zeroed storage for the two structures, initialised by their _init calls before
    // any other use and destroyed after; every pointer passed (path, argv, envp, /dev/null)
    // is NUL-terminated or NULL-terminated and outlives posix_spawn.
    unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = zeroed();
        let mut attr: libc::posix_spawnattr_t = zeroed();
        check(libc::posix_spawn_file_actions_init(&mut actions))?;
        if let Err(e) = check(libc::posix_spawnattr_init(&mut attr)) {
            libc::posix_spawn_file_actions_destroy(&mut actions);
            return Err(e);
        }
        let spawned = spawn_attributes(&mut actions, &mut attr, socket.0).and_then(|()| {
            let envp = envp.as_ptr();
            let spawn = libc::posix_spawn(
                &mut pid,
                path.as_ptr(),
                &actions,
                &attr,
                argv.as_ptr(),
                envp,
            );
            check(spawn)
        });
        libc::posix_spawn_file_actions_destroy(&mut actions);
        libc::posix_spawnattr_destroy(&mut attr);
        spawned.map(|()| pid)
    }
}

/// Fills in [`spawn`]'s file actions and attributes.
///
/// # Safety
/// Both are initialised and not yet destroyed.
unsafe fn spawn_attributes(
    actions: &mut libc::posix_spawn_file_actions_t,
    attr: &mut libc::posix_spawnattr_t,
    socket: i32,
) -> Result<(), IoError> {
    let check = |rc: i32| match rc {
        0 => Ok(()),
        rc => Err(IoError::Os(rc)),
    };
    let flags =
        libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF | libc::POSIX_SPAWN_SETPGROUP;
    // SAFETY: initialised structures (the caller's promise); the signal sets are filled by
    // sigemptyset/sigfillset before use; /dev/null is a NUL-terminated literal.
    unsafe {
        check(libc::posix_spawn_file_actions_adddup2(actions, socket, 0))?;
        check(libc::posix_spawn_file_actions_adddup2(actions, socket, 1))?;
        let null = c"/dev/null".as_ptr();
        check(libc::posix_spawn_file_actions_addopen(
            actions,
            2,
            null,
            libc::O_WRONLY,
            0,
        ))?;
        // Every other descriptor of the host's, close-on-exec or not, closed before the
        // helper's first instruction (glibc 2.34+; the helper closes strays again itself).
        check(libc::posix_spawn_file_actions_addclosefrom_np(actions, 3))?;
        check(libc::posix_spawnattr_setflags(attr, flags as libc::c_short))?;
        let mut none: libc::sigset_t = zeroed();
        let mut all: libc::sigset_t = zeroed();
        libc::sigemptyset(&mut none);
        libc::sigfillset(&mut all);
        check(libc::posix_spawnattr_setsigmask(attr, &none))?;
        check(libc::posix_spawnattr_setsigdefault(attr, &all))?;
        check(libc::posix_spawnattr_setpgroup(attr, 0))
    }
}

/// The started helper: its pid, and a pidfd on it (Linux 5.3+) opened at once, before anything
/// could reap it, so that waiting for it and killing it can never reach another process that
/// was given its number later.
pub struct Child {
    pid: i32,
    pidfd: Option<Fd>,
}

/// What one waitid on the pidfd found.
enum Waited {
    Ended(Option<Ended>),
    NotYet,
    Unsupported,
}

/// How waiting for the helper ended.
pub enum Reaped {
    /// It ended: how, if waitid could say (None: a host that reaps its children itself took it).
    Ended(Option<Ended>),
    /// Still running at the deadline (stuck in the kernel: a disk that does not answer); left.
    Running,
}

impl Child {
    /// `pid`, just returned by [`spawn`].
    pub fn new(pid: i32) -> Self {
        let no_flags: libc::c_uint = 0;
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, no_flags) };
        // Above 2, as the socket pair: a host that fixes up a closed stdio must not meet it.
        let opened = i32::try_from(fd).ok().filter(|fd| *fd >= 0).map(Fd);
        let pidfd = opened.and_then(|fd| above_2(fd).ok());
        Self { pid, pidfd }
    }

    /// `signal` to the helper itself through its pidfd: never to another process.
    fn signal(&self, pidfd: &Fd, signal: i32) -> bool {
        let (no_info, no_flags): (*const libc::siginfo_t, libc::c_uint) = (ptr::null(), 0);
        // SAFETY: pidfd_send_signal with a NULL siginfo sends a plain signal (0 only checks
        // that the process exists) to the process the pidfd names.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd.0,
                signal,
                no_info,
                no_flags,
            )
        };
        rc == 0
    }

    /// SIGKILL to the helper's process group (spawn gave it one of its own, numbered as it
    /// is), so that nothing it started goes on holding its socket. Only while the pidfd shows
    /// the helper itself still there, not yet reaped: then the number is still ours.
    pub fn kill_group(&self) {
        let alive = match &self.pidfd {
            Some(pidfd) => self.signal(pidfd, 0),
            None => matches!(self.try_waitpid(), Ok(None)),
        };
        if alive && self.pid > 1 {
            // SAFETY: kill has no memory-safety conditions; `-pid` names our child's group.
            unsafe { libc::kill(self.pid.saturating_neg(), libc::SIGKILL) };
        }
    }

    /// Waits for the helper to end, at most until `deadline`, through interrupting signals.
    pub fn reap_by(&self, deadline: u64) -> Reaped {
        let Some(pidfd) = &self.pidfd else {
            return self.reap_without_pidfd(deadline);
        };
        // A pidfd turns readable when its process ends.
        match wait_ready(pidfd, libc::POLLIN, deadline) {
            Err(IoError::TimedOut) => return Reaped::Running,
            Err(_) => return Reaped::Ended(None),
            Ok(()) => {}
        }
        loop {
            match self.waitid(pidfd) {
                // Not waitable yet though the pidfd said it ended (a tracer is told first).
                Waited::NotYet if !passed(deadline) => sleep_5ms(),
                Waited::NotYet => return Reaped::Running,
                // Linux 5.3 has pidfd_open but not P_PIDFD.
                Waited::Unsupported => return self.reap_without_pidfd(deadline),
                Waited::Ended(ended) => return Reaped::Ended(ended),
            }
        }
    }

    /// waitid(P_PIDFD, WEXITED | WNOHANG) once, through interrupting signals.
    fn waitid(&self, pidfd: &Fd) -> Waited {
        // SAFETY: zeroed siginfo_t is valid storage for waitid to fill.
        let mut info: libc::siginfo_t = unsafe { zeroed() };
        let id = libc::id_t::try_from(pidfd.0).unwrap_or(0);
        loop {
            let flags = libc::WEXITED | libc::WNOHANG;
            // SAFETY: `info` is one siginfo_t to write; the pidfd is ours and open.
            match unsafe { libc::waitid(libc::P_PIDFD, id, &mut info, flags) } {
                -1 if errno() == libc::EINTR => continue,
                -1 if errno() == libc::EINVAL => return Waited::Unsupported,
                -1 => return Waited::Ended(None),
                _ => break,
            }
        }
        // SAFETY: waitid filled `info` (with WNOHANG and nothing waitable, si_pid stays 0).
        let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        if pid == 0 {
            return Waited::NotYet;
        }
        Waited::Ended(match info.si_code {
            libc::CLD_EXITED => Some(Ended::Exited(status)),
            libc::CLD_KILLED | libc::CLD_DUMPED => signal_name(status).map(Ended::Signaled),
            _ => None,
        })
    }

    /// [`Child::reap_by`] on a kernel without pidfds (before 5.3): waitpid without waiting,
    /// every 5 ms.
    fn reap_without_pidfd(&self, deadline: u64) -> Reaped {
        loop {
            match self.try_waitpid() {
                Ok(Some(ended)) => return Reaped::Ended(ended),
                Err(()) => return Reaped::Ended(None),
                Ok(None) if passed(deadline) => {
                    return Reaped::Running;
                }
                Ok(None) => sleep_5ms(),
            }
        }
    }

    /// waitpid(WNOHANG): Ok(None) while it runs, Ok(Some(how)) once it ended (and is reaped
    /// now), Err once it is not our child (any more).
    fn try_waitpid(&self) -> Result<Option<Option<Ended>>, ()> {
        let mut status = 0;
        loop {
            // SAFETY: `status` is a valid int to write.
            match unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) } {
                -1 if errno() == libc::EINTR => continue,
                -1 => return Err(()),
                0 => return Ok(None),
                _ => break,
            }
        }
        if libc::WIFEXITED(status) {
            return Ok(Some(Some(Ended::Exited(libc::WEXITSTATUS(status)))));
        }
        let signal = libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status));
        Ok(Some(signal.and_then(signal_name).map(Ended::Signaled)))
    }
}

fn sleep_5ms() {
    // SAFETY: poll on no descriptors only sleeps.
    unsafe { libc::poll(ptr::null_mut(), 0, 5) };
}

/// `path`'s metadata, links not followed.
pub fn lstat(path: &[u8]) -> Result<Meta, IoError> {
    let path = CText::new(path).ok_or(IoError::Os(libc::EINVAL))?;
    let mut stat = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: a NUL-terminated path and room for one struct stat.
    if unsafe { libc::lstat(path.as_c_str().as_ptr(), stat.as_mut_ptr()) } != 0 {
        return Err(IoError::Os(errno()));
    }
    // SAFETY: lstat succeeded, so it filled the struct.
    let stat = unsafe { stat.assume_init() };
    let kind = match stat.st_mode & libc::S_IFMT {
        libc::S_IFREG => Kind::File,
        libc::S_IFDIR => Kind::Directory,
        libc::S_IFLNK => Kind::Symlink,
        _ => Kind::Other,
    };
    Ok(Meta {
        kind,
        uid: stat.st_uid,
        mode: stat.st_mode & 0o7777,
        links: stat.st_nlink,
    })
}

/// One datagram to the first syslog socket that exists; frames end with NUL on a stream
/// socket (EPROTOTYPE), as rsyslog reads them. Failures are the caller's to ignore.
pub fn syslog(message: &[u8], sockets: &[&str]) {
    // A logger that takes nothing for a second does not hold the login up: the line is dropped.
    let deadline = deadline_in(1000);
    for path in sockets {
        let Some(addr) = unix_address(path) else {
            continue;
        };
        let Ok(socket) = open_socket(libc::SOCK_DGRAM) else {
            continue;
        };
        match syslog_datagram(&socket, message, &addr, deadline) {
            Err(IoError::Os(libc::ENOENT)) => continue,
            Err(IoError::Os(libc::EPROTOTYPE)) => return syslog_stream(message, &addr, deadline),
            Err(_) => continue,
            Ok(()) => return,
        }
    }
}

/// One datagram to `addr`, waiting for room in the logger's queue until `deadline`.
fn syslog_datagram(
    socket: &Fd,
    message: &[u8],
    addr: &libc::sockaddr_un,
    deadline: u64,
) -> Result<(), IoError> {
    let len = size_of::<libc::sockaddr_un>() as libc::socklen_t;
    let target = ptr::from_ref(addr).cast::<libc::sockaddr>();
    loop {
        // SAFETY: the message is valid for its length; `addr` is a filled sockaddr_un.
        let sent = unsafe {
            let flags = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;
            libc::sendto(
                socket.0,
                message.as_ptr().cast(),
                message.len(),
                flags,
                target,
                len,
            )
        };
        match sent {
            -1 if errno() == libc::EINTR => continue,
            // The logger's queue is full. (poll cannot tell: an unconnected socket is always
            // writable on its own side.)
            -1 if errno() == libc::EAGAIN => {
                if passed(deadline) {
                    return Err(IoError::TimedOut);
                }
                sleep_5ms();
            }
            -1 => return Err(IoError::Os(errno())),
            _ => return Ok(()),
        }
    }
}

fn syslog_stream(message: &[u8], addr: &libc::sockaddr_un, deadline: u64) {
    let Ok(socket) = open_socket(libc::SOCK_STREAM) else {
        return;
    };
    let len = size_of::<libc::sockaddr_un>() as libc::socklen_t;
    loop {
        // SAFETY: `addr` is a filled sockaddr_un of that length.
        if unsafe { libc::connect(socket.0, ptr::from_ref(addr).cast(), len) } == 0 {
            break;
        }
        // A full backlog: a non-blocking connect says EAGAIN and may be tried again.
        let again = matches!(errno(), libc::EAGAIN | libc::EINTR);
        if !again || passed(deadline) {
            return;
        }
        sleep_5ms();
    }
    let _ =
        send_all_by(&socket, message, deadline).and_then(|()| send_all_by(&socket, &[0], deadline));
}

fn open_socket(kind: i32) -> Result<Fd, IoError> {
    let flags = libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
    // SAFETY: socket takes plain integers.
    match unsafe { libc::socket(libc::AF_UNIX, kind | flags, 0) } {
        -1 => Err(IoError::Os(errno())),
        fd => Ok(Fd(fd)),
    }
}

fn unix_address(path: &str) -> Option<libc::sockaddr_un> {
    // SAFETY: all-zero is a valid sockaddr_un (an empty path).
    let mut addr: libc::sockaddr_un = unsafe { zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    // Room for the NUL that the zeroed tail provides.
    let room = addr.sun_path.len().checked_sub(1)?;
    let dest = addr
        .sun_path
        .get_mut(..path.len())
        .filter(|_| path.len() <= room)?;
    for (d, s) in dest.iter_mut().zip(path.bytes()) {
        *d = s as libc::c_char;
    }
    Some(addr)
}

pub fn pid() -> u32 {
    // SAFETY: getpid cannot fail.
    u32::try_from(unsafe { libc::getpid() }).unwrap_or(0)
}

/// Seconds since 1970 (0 before it).
pub fn now() -> u64 {
    // SAFETY: time accepts NULL and only returns the time.
    u64::try_from(unsafe { libc::time(ptr::null_mut()) }).unwrap_or(0)
}

/// Test builds only: the host's variables whose names `wanted` accepts, as `NAME=value`.
#[cfg(feature = "root-tests")]
pub fn inherited_environment(wanted: impl Fn(&[u8]) -> bool) -> Vec<CText> {
    let mut found = Vec::new();
    // SAFETY: `environ` is the NULL-terminated array of NUL-terminated strings libc keeps;
    // the test harness's hosts (pamtester, pam_bench) do not change it while a login runs.
    unsafe {
        let mut at = libc::environ.cast_const();
        while !at.is_null() && !(*at).is_null() {
            let pair = CStr::from_ptr(*at);
            let name = pair
                .to_bytes()
                .split(|b| *b == b'=')
                .next()
                .unwrap_or_default();
            if wanted(name) {
                found.push(CText::from(pair));
            }
            at = at.add(1);
        }
    }
    found
}

/// errno in libc's words (std's format): here, beside strerror, so that the error types
/// need nothing of this file.
impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Os(code) => {
                let mut buf = [0u8; 128];
                write!(f, "{} (os error {code})", strerror(*code, &mut buf))
            }
            Self::Eof => f.write_str("failed to fill whole buffer"),
            Self::WriteZero => f.write_str("failed to write whole buffer"),
            Self::TimedOut => f.write_str("timed out"),
            Self::Frame(e) => write!(f, "{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;
    use std::time::{Duration, Instant};

    #[test]
    fn a_send_the_peer_never_takes_ends_at_its_deadline() {
        let (ours, _theirs) = socket_pair().unwrap();
        let started = Instant::now();
        let sent = send_all_by(&ours, &[0u8; 4 << 20], deadline_in(200));
        assert_eq!(sent, Err(IoError::TimedOut));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn bytes_that_came_in_time_count_after_the_deadline() {
        let (ours, theirs) = socket_pair().unwrap();
        send_all_by(&theirs, b"abcd", deadline_in(1000)).unwrap();
        let mut got = [0u8; 4];
        // A deadline long past, as for a host that was stopped meanwhile.
        read_exact_by(&ours, &mut got, 1).unwrap();
        assert_eq!(&got, b"abcd");
        let mut more = [0u8; 1];
        assert_eq!(read_exact_by(&ours, &mut more, 1), Err(IoError::TimedOut));
    }

    #[test]
    fn a_helper_that_does_not_end_is_killed_and_reaped() {
        // cat on the socket: runs until its input ends, which it never does here.
        let (_ours, theirs) = socket_pair().unwrap();
        let env = [CText::from(c"PATH=/usr/bin:/bin")];
        let child = Child::new(spawn(c"/bin/cat", &theirs, &env).unwrap());
        assert!(matches!(child.reap_by(deadline_in(200)), Reaped::Running));
        child.kill_group();
        let how = match child.reap_by(deadline_in(5000)) {
            Reaped::Ended(how) => how,
            Reaped::Running => None,
        };
        assert_eq!(
            how,
            Some(Ended::Signaled("SIGKILL")),
            "not reaped after SIGKILL"
        );
    }

    #[test]
    fn a_logger_whose_queue_is_full_holds_a_line_a_second_at_most() {
        let path = std::env::temp_dir().join(format!("twofold-syslog-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let logger = UnixDatagram::bind(&path).unwrap();
        let sender = UnixDatagram::unbound().unwrap();
        sender.set_nonblocking(true).unwrap();
        while sender.send_to(&[0u8; 1024], &path).is_ok() {}
        let started = Instant::now();
        syslog(b"<83>a line", &[path.to_str().unwrap()]);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "held the login {took:?}");
        drop(logger);
        std::fs::remove_file(&path).unwrap();
    }
}
