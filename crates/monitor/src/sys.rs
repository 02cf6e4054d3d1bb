//! The few raw system calls the safe wrappers do not cover: signal handlers, the pty size,
//! and receiving a file descriptor over SCM_RIGHTS (adopting it is the unsafe step).
//!
//! Signals: the monitor installs *handlers* rather than ignoring or blocking signals, because
//! ignored dispositions and the blocked mask survive `execve` and would leak into the
//! container, while handlers are reset to the default by it. SIGCHLD's handler writes a byte
//! to a self-pipe the event loop polls; SIGPIPE, SIGHUP, SIGINT and SIGTERM get a handler that
//! does nothing, so neither a closed client nor the daemon's death ends the monitor.
use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::errno::Errno;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::socket::{ControlMessageOwned, MsgFlags};

/// The write end of the SIGCHLD self-pipe. A signal handler can only reach process-wide
/// state, so this is the one static of the monitor.
static SIGCHLD_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_sigchld(_signal: libc::c_int) {
    let fd = SIGCHLD_PIPE.load(Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    let saved = Errno::last_raw();
    let byte = 0u8;
    // SAFETY: write(2) is async-signal-safe; `fd` is the self-pipe's non-blocking write end,
    // open for the rest of the process's life; the buffer is one valid byte on the stack. A
    // full pipe (EAGAIN) is fine: a wake-up is already pending.
    let _ = unsafe { libc::write(fd, (&raw const byte).cast(), 1) };
    Errno::set_raw(saved);
}

extern "C" fn on_ignored_signal(_signal: libc::c_int) {}

/// Installs the monitor's signal handlers; `sigchld_write` (non-blocking) is kept open for the
/// process's lifetime.
pub fn install_signal_handlers(sigchld_write: OwnedFd) -> Result<(), Errno> {
    SIGCHLD_PIPE.store(sigchld_write.into_raw_fd(), Ordering::Relaxed);
    let chld = SigAction::new(
        SigHandler::Handler(on_sigchld),
        SaFlags::SA_RESTART | SaFlags::SA_NOCLDSTOP,
        SigSet::empty(),
    );
    // SAFETY: the handler only calls async-signal-safe functions (an atomic load, write(2),
    // errno save/restore).
    unsafe { sigaction(Signal::SIGCHLD, &chld) }?;
    let noop = SigAction::new(
        SigHandler::Handler(on_ignored_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [
        Signal::SIGPIPE,
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGTERM,
    ] {
        // SAFETY: the handler does nothing, which is async-signal-safe.
        unsafe { sigaction(signal, &noop) }?;
    }
    Ok(())
}

/// Sets a pty's window size (TIOCSWINSZ on the master).
pub fn set_window_size(master: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: `master` is an open fd for the call's duration; TIOCSWINSZ only reads one
    // `winsize` through the pointer, which points at a live local.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &raw const size) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends signal number `signal` to `pid`. Unlike `nix::sys::signal::kill` this takes any
/// number, so real-time signals (`docker kill -s RTMIN+3`) work too.
pub fn send_signal(pid: i32, signal: i32) -> io::Result<()> {
    if pid <= 0 || !(1..=libc::SIGRTMAX()).contains(&signal) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; `pid` > 0 names
    // one process, never a group or every process.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Receives one descriptor sent with SCM_RIGHTS; every descriptor of the message is owned
/// (and the extra ones closed), so none leaks (runc sends the pty master with its name).
pub fn receive_fd(stream: &std::os::unix::net::UnixStream) -> Option<OwnedFd> {
    let mut name = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let message = nix::sys::socket::recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .ok()?;
    let mut received = None;
    for cmsg in message.cmsgs().ok()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // SAFETY: recvmsg(2) just installed `fd` in this process (SCM_RIGHTS, with
                // MSG_CMSG_CLOEXEC) and nothing has wrapped it yet: this is its only owner.
                let owned = unsafe { adopt_received_fd(fd) };
                if received.is_none() {
                    received = Some(owned);
                }
            }
        }
    }
    received
}

/// Takes ownership of a descriptor the kernel just installed in this process (SCM_RIGHTS).
///
/// # Safety
///
/// `fd` must be open and owned by nobody else: a descriptor recvmsg(2) has just installed
/// in this process and that no other `OwnedFd`/`File` holds. Two owners would close it twice,
/// and the second close could close an unrelated descriptor that reused the number.
unsafe fn adopt_received_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the caller guarantees `fd` is open and has no other owner (see `# Safety`).
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Gives the heap's free memory back to the kernel. The monitor parses the spec and sets the
/// container up with short-lived allocations, then lives for the container's lifetime on a
/// few small buffers: returning the rest keeps each monitor's private memory small.
pub fn release_free_heap() {
    // SAFETY: malloc_trim only walks glibc's own heap bookkeeping; no pointers are passed.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_checked_before_sending() {
        assert!(
            send_signal(0, libc::SIGKILL).is_err(),
            "never a process group"
        );
        assert!(
            send_signal(-1, libc::SIGKILL).is_err(),
            "never every process"
        );
        let me = i32::try_from(std::process::id()).expect("pid fits");
        assert!(send_signal(me, 0).is_err());
        assert!(send_signal(me, libc::SIGRTMAX() + 1).is_err());
        // Signal 0 is refused above; SIGCONT to ourselves is harmless and proves delivery works.
        send_signal(me, libc::SIGCONT).expect("signal self");
    }

    #[test]
    fn window_size_reaches_the_pty() {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        set_window_size(std::os::fd::AsFd::as_fd(&pty.master), 31, 97).expect("resize");
        let termios_size = {
            let mut size = libc::winsize {
                ws_row: 0,
                ws_col: 0,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            // SAFETY: the slave is open; TIOCGWINSZ writes one winsize into the local.
            let rc = unsafe { libc::ioctl(pty.slave.as_raw_fd(), libc::TIOCGWINSZ, &raw mut size) };
            assert_eq!(rc, 0);
            size
        };
        assert_eq!((termios_size.ws_row, termios_size.ws_col), (31, 97));
        assert!(
            set_window_size(
                std::os::fd::AsFd::as_fd(&std::fs::File::open("/dev/null").expect("null")),
                1,
                1
            )
            .is_err()
        );
    }
}
