//! The daemon's only `unsafe` code: adopting the listening sockets systemd passed
//! (`sd_listen_fds(3)`), which arrive as bare descriptor numbers.
#![allow(unsafe_code)]

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
pub(crate) const LISTEN_FDS_START: RawFd = 3;

/// Set once the passed descriptors were adopted: each may have one owner only.
static ADOPTED: AtomicBool = AtomicBool::new(false);

/// Takes ownership of descriptors `3 .. 3 + count`, which systemd passed to this process
/// (the caller checked `LISTEN_PID`). The first call only: later calls get nothing, so no
/// descriptor ever has two owners. A number that is not an open descriptor is skipped.
pub(crate) fn adopt_listen_fds(count: usize) -> Vec<(RawFd, OwnedFd)> {
    if ADOPTED.swap(true, Ordering::SeqCst) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for fd in (LISTEN_FDS_START..).take(count) {
        // SAFETY: F_GETFD only reads the descriptor's flags; on a number that is not an open
        // descriptor it fails with EBADF and touches nothing.
        let flags = unsafe { nix::libc::fcntl(fd, nix::libc::F_GETFD) };
        if flags < 0 {
            continue;
        }
        // SAFETY: `fd` is open (checked above) and was passed to this process by systemd for
        // it to own; `ADOPTED` makes this loop run once per process, and nothing else in berth
        // refers to descriptors by these numbers, so this is the descriptor's only owner.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        out.push((fd, owned));
    }
    out
}
