//! The few raw system calls std, nix and caps do not wrap safely. Every `unsafe` of the crate
//! lives here: one call per block, each with the reason it is sound.
//!
//! JUSTIFICATION: `clone` with namespace flags and no new stack (a fork that lands in new
//! namespaces, so the child is PID 1 of its pid namespace) has no safe wrapper; nix's
//! `sched::clone` wants a separate stack and a callback, which costs a stack allocation and
//! makes the child run on a foreign stack. `TIOCSCTTY`, `setdomainname` and `close_range` have no safe
//! wrapper in nix 0.30 either.
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Result of [`clone_process`]: which side of the clone we are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloneResult {
    /// In the parent; the child's pid in the parent's pid namespace.
    Parent(i32),
    /// In the child.
    Child,
}

/// `clone(flags | SIGCHLD)` without `CLONE_VM` and without a new stack: fork semantics, plus
/// the `CLONE_NEW*` namespaces in `flags`.
///
/// Only call from a single-threaded process: like `fork`, the child gets a copy of the
/// calling thread only (glibc's fork handlers do not run; berth's child code takes no locks
/// another thread could hold).
pub(crate) fn clone_process(namespace_flags: libc::c_int) -> io::Result<CloneResult> {
    let flags = libc::c_long::from(namespace_flags | libc::SIGCHLD);
    // SAFETY: without CLONE_VM, CLONE_SETTLS or a stack pointer the kernel duplicates the
    // address space exactly like fork(2); the null pointers are the documented "unused" values
    // for parent_tid/child_tid/tls, so the kernel dereferences nothing we pass.
    let ret = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(CloneResult::Child),
        pid => Ok(CloneResult::Parent(
            i32::try_from(pid).expect("pids fit in pid_t"),
        )),
    }
}

/// Makes the terminal `fd` the controlling terminal of the calling session leader.
pub(crate) fn set_controlling_terminal(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal), no pointer; an invalid fd
    // only makes the call fail with EBADF/ENOTTY.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the window size of the terminal `fd` (`TIOCSWINSZ`).
pub(crate) fn set_window_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` through the pointer, which points at a live
    // local for the duration of the call; an invalid fd only makes the call fail.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &raw const size) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `setdomainname(2)` for the calling process's UTS namespace.
pub(crate) fn set_domainname(name: &str) -> io::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes, which outlive the call; the
    // kernel copies at most `len` bytes and needs no terminating NUL.
    let ret = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Marks every fd from `first` upwards close-on-exec, so nothing of the caller leaks into
/// the container process (runc does the same): `close_range(CLOSE_RANGE_CLOEXEC)`, or where
/// the kernel lacks it (before 5.11, or a seccomp profile of the caller's forbids it), each
/// descriptor listed in /proc/self/fd.
pub(crate) fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC closes nothing, it only sets a flag on
    // open descriptors; no memory is passed.
    let ret = unsafe { libc::close_range(first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) };
    if ret == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::ENOSYS | libc::EINVAL | libc::EPERM) => for_each_fd_from(first, set_cloexec),
        _ => Err(error),
    }
}

/// Sets `FD_CLOEXEC` on `fd` (by number: it may belong to no Rust object); `EBADF` (closed
/// meanwhile) is fine.
fn set_cloexec(fd: std::os::fd::RawFd) -> io::Result<()> {
    // SAFETY: fcntl(F_GETFD/F_SETFD) takes and returns integers only; an fd that is not open
    // makes it fail with EBADF, nothing else.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags == -1 {
        return ignore_ebadf(io::Error::last_os_error());
    }
    // SAFETY: as above.
    let ret = unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) };
    if ret == -1 {
        return ignore_ebadf(io::Error::last_os_error());
    }
    Ok(())
}

fn ignore_ebadf(error: io::Error) -> io::Result<()> {
    if error.raw_os_error() == Some(libc::EBADF) {
        Ok(())
    } else {
        Err(error)
    }
}

/// Calls `f` with every open descriptor from `first` up, as /proc/self/fd lists them (minus
/// the directory's own descriptor), collected before the first call.
fn for_each_fd_from(
    first: u32,
    mut f: impl FnMut(std::os::fd::RawFd) -> io::Result<()>,
) -> io::Result<()> {
    let fds: Vec<std::os::fd::RawFd> = {
        let dir = std::fs::read_dir("/proc/self/fd")?;
        let mut fds = Vec::new();
        for entry in dir {
            let name = entry?.file_name();
            if let Some(fd) = name
                .to_str()
                .and_then(|n| n.parse::<std::os::fd::RawFd>().ok())
                .filter(|&fd| u32::try_from(fd).is_ok_and(|fd| fd >= first))
            {
                fds.push(fd);
            }
        }
        fds
    };
    // The directory's descriptor was closed when `dir` dropped; it fails with EBADF below.
    fds.into_iter().try_for_each(&mut f)
}

/// Closes every descriptor from `first` up: `close_range`, or each one /proc/self/fd lists
/// where that is not allowed (a seccomp profile without it) or not there. Only for a process
/// that owns no Rust object holding one of them (the `--init` reaper; `berth oci create`
/// before it opens anything).
pub(crate) fn close_from(first: u32) {
    // SAFETY: close_range(2) on our own descriptors; the caller uses none of them again.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) };
    if ret == 0 {
        return;
    }
    let _ = for_each_fd_from(first, |fd| {
        // SAFETY: closing a descriptor by number that nothing in this process uses again (the
        // caller is the `--init` reaper, which owns no Rust object holding one).
        unsafe { libc::close(fd) };
        Ok(())
    });
}

/// Closes every descriptor but those in `keep` (a pipe 0 to 2 included), with `close_range`
/// over the gaps between them.
pub(crate) fn close_fds_except(keep: &[std::os::fd::RawFd]) -> io::Result<()> {
    let mut kept: Vec<u32> = keep
        .iter()
        .filter_map(|&fd| u32::try_from(fd).ok())
        .collect();
    kept.sort_unstable();
    kept.dedup();
    let mut first = 0u32;
    for fd in kept.into_iter().chain([u32::MAX]) {
        if fd > first {
            // SAFETY: close_range takes two integers and flags, no memory; closing descriptors
            // the child will never use again (it owns no Rust object relying on them past
            // this point: it only runs on to exec or _exit).
            let ret = unsafe { libc::close_range(first, fd - 1, 0) };
            if ret == -1 {
                return Err(io::Error::last_os_error());
            }
        }
        first = fd.saturating_add(1);
    }
    Ok(())
}

/// `open_tree(2)` with `OPEN_TREE_CLONE`: a detached copy of the mount of `path` (a bind
/// mount of just that file or directory), as a close-on-exec descriptor.
pub(crate) fn open_tree_clone(path: &std::ffi::CStr) -> io::Result<std::os::fd::OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    // SAFETY: `path` is a NUL-terminated string that outlives the call; the kernel only reads
    // it. The returned descriptor is new and owned by no one else.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd =
        std::os::fd::RawFd::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: `fd` was just returned by open_tree and is not owned elsewhere.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// `mount_setattr(2)`: makes the (detached) mount `fd` is the root of read-only.
pub(crate) fn mount_set_readonly(fd: BorrowedFd<'_>) -> io::Result<()> {
    /// `struct mount_attr` of <linux/mount.h> (`MOUNT_ATTR_SIZE_VER0`).
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let empty = c"";
    // SAFETY: `attr` is a valid mount_attr of the size passed, `empty` a NUL-terminated string;
    // both outlive the call and the kernel only reads them.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH,
            &raw const attr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `_exit(2)`: ends a forked child without running the parent's atexit handlers or flushing
/// its copy of the parent's stdio buffers.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions; it never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

/// Size of one classic-BPF instruction (`struct sock_filter`).
pub(crate) const BPF_INSTRUCTION_SIZE: usize = std::mem::size_of::<libc::sock_filter>();

/// Installs a compiled seccomp filter (`program`: `struct sock_filter` records, as
/// libseccomp exports them) on the calling thread. Needs no_new_privs or CAP_SYS_ADMIN.
pub(crate) fn load_seccomp_program(program: &[libc::sock_filter]) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: u16::try_from(program.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?,
        filter: program.as_ptr().cast_mut(),
    };
    let fprog_ptr: *const libc::sock_fprog = &fprog;
    // SAFETY: `fprog` points at `program`, which outlives the call; the kernel only reads
    // `len` instructions from it and copies them before returning.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0u32,
            fprog_ptr,
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Descriptors a [`spawn`]ed program gets as 0, 1 and 2, and the close-on-exec pipe its
/// child side reports a failed `execve` on (the errno, 4 bytes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpawnFds<'a> {
    pub stdin: BorrowedFd<'a>,
    pub stdout: BorrowedFd<'a>,
    pub stderr: BorrowedFd<'a>,
    pub exec_error: BorrowedFd<'a>,
}

/// fork(2) + execve(2) of `path` with `argv` and `env`, its standard streams from `fds`, the
/// signal mask emptied and SIGPIPE back to default (the caller may block or ignore signals).
/// Everything the child needs is prepared before the fork, so the child only makes system
/// calls. Returns the child's pid.
///
/// JUSTIFICATION: std's `Command` may use `posix_spawn`, which glibc implements with
/// `clone3`; a seccomp profile that forbids `clone3` with EPERM (older Docker profiles) would
/// then fail the startContainer hooks, which run after the filter. fork(2) is `clone`.
pub(crate) fn spawn(
    path: &std::ffi::CStr,
    argv: &[std::ffi::CString],
    env: &[std::ffi::CString],
    fds: SpawnFds<'_>,
) -> io::Result<i32> {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    // SAFETY: callers are single-threaded (the container init, the monitor, `berth oci`), so
    // the child's copy of the address space is consistent; the child only makes the system
    // calls below and execs or `_exit`s.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            let fail = |errno: i32| -> ! {
                let bytes = errno.to_ne_bytes();
                // SAFETY: writes 4 bytes from a local array to a descriptor we own.
                unsafe { libc::write(fds.exec_error.as_raw_fd(), bytes.as_ptr().cast(), 4) };
                exit_now(127)
            };
            let last = || {
                io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EIO)
            };
            for (from, to) in [(fds.stdin, 0), (fds.stdout, 1), (fds.stderr, 2)] {
                // SAFETY: dup2(2) of descriptors the child owns onto 0..=2; integers only.
                if unsafe { libc::dup2(from.as_raw_fd(), to) } == -1 {
                    fail(last());
                }
            }
            // SAFETY: `set` is a local sigset_t, initialized by sigemptyset before use.
            let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
            // SAFETY: initializes the local set.
            unsafe { libc::sigemptyset(&mut set) };
            // SAFETY: sets the mask from the initialized local set; no old mask requested.
            unsafe { libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) };
            // SAFETY: restores the default disposition of SIGPIPE; no handler is installed.
            unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
            // SAFETY: `path`, `argv_ptrs` and `env_ptrs` are NUL-terminated strings and
            // null-terminated pointer arrays that live until execve replaces the process.
            unsafe { libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr()) };
            fail(last())
        }
        child => Ok(child),
    }
}

/// The program the `--init` reaper forwards signals to (0 before it exists).
static INIT_CHILD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn forward_signal(sig: libc::c_int) {
    let pid = INIT_CHILD.load(std::sync::atomic::Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe and takes plain integers.
        unsafe { libc::kill(pid, sig) };
    }
}

/// `--init`: forks; the child returns `None` and goes on to exec the container's program; the
/// parent stays PID 1 for good (see [`run_as_init`]) and returns `Some(child)`.
pub(crate) fn fork_for_init() -> io::Result<Option<i32>> {
    // SAFETY: the caller is the single-threaded container init (a clone of the single-threaded
    // monitor), so the child's copy of the process is consistent.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        child => Ok(Some(child)),
    }
}

/// The `--init` reaper: forwards every catchable signal to `child`, reaps every orphan, and
/// exits as `child` does (128 + signal when it was killed). Closes its file descriptors from 3
/// up so that the child's successful exec alone decides what the monitor sees.
pub(crate) fn run_as_init(child: i32) -> ! {
    INIT_CHILD.store(child, std::sync::atomic::Ordering::Relaxed);
    for sig in 1..32 {
        if matches!(sig, libc::SIGKILL | libc::SIGSTOP | libc::SIGCHLD) {
            continue;
        }
        let handler = forward_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: the handler only loads an atomic and calls kill(2), both async-signal-safe.
        unsafe { libc::signal(sig, handler) };
    }
    close_from(3);
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid(2) writes the status into our local.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid == child {
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            };
            exit_now(code);
        }
        if pid < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            exit_now(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn the_proc_fallback_marks_descriptors_cloexec() {
        let file = nix::fcntl::open(
            "/dev/null",
            nix::fcntl::OFlag::O_RDONLY,
            nix::sys::stat::Mode::empty(),
        )
        .expect("open");
        let fd = file.as_raw_fd();
        let flags = || nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_GETFD).expect("getfd");
        assert_eq!(flags() & libc::FD_CLOEXEC, 0);
        for_each_fd_from(u32::try_from(fd).expect("fd"), set_cloexec).expect("fallback");
        assert_eq!(flags() & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    }
}
