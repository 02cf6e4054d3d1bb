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
/// the container process (runc does the same).
pub(crate) fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC closes nothing, it only sets a flag on
    // open descriptors; no memory is passed.
    let ret = unsafe { libc::close_range(first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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
    // SAFETY: close_range(2) on our own descriptors; nothing in this process uses them again.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
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
