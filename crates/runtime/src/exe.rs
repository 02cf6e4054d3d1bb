//! The executable the processes that enter containers run from.
//!
//! The monitor forks every container init and exec'd process; until each `execve`s the
//! container's program, `/proc/<pid>/exe` names berth's own binary, and a container process
//! that can reach it (CVE-2019-5736: `/proc/self/exe` of a process joining the container)
//! could overwrite the host's berth. So berth never runs those processes from the host file:
//! the daemon starts monitors (and `berth oci` re-executes itself) from a read-only, detached
//! bind mount of the binary (`open_tree` + `mount_setattr`, no mount visible anywhere, no
//! copy: the same page cache), or where the kernel lacks those calls, from a sealed
//! `memfd` copy, as runc does.
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A descriptor of `path` that no one can write through: a read-only detached bind mount of
/// the file, or else a sealed in-memory copy. Close-on-exec; run it with
/// `/proc/self/fd/N` or `execveat`.
pub fn sealed_executable(path: &Path) -> io::Result<OwnedFd> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    match crate::sys::open_tree_clone(&c_path) {
        Ok(tree) => match crate::sys::mount_set_readonly(tree.as_fd()) {
            Ok(()) => return Ok(tree),
            Err(error) => tracing::debug!(%error, "mount_setattr: falling back to a sealed copy"),
        },
        Err(error) => tracing::debug!(%error, "open_tree: falling back to a sealed copy"),
    }
    sealed_copy(path)
}

/// A `memfd` holding a copy of `path`, sealed against every change.
fn sealed_copy(path: &Path) -> io::Result<OwnedFd> {
    use nix::fcntl::{FcntlArg, SealFlag, fcntl};
    use nix::sys::memfd::{MFdFlags, memfd_create};
    let memfd = memfd_create(
        c"berth",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )?;
    let mut source = std::fs::File::open(path)?;
    let mut copy = std::fs::File::from(memfd);
    io::copy(&mut source, &mut copy)?;
    let memfd = OwnedFd::from(copy);
    let seals = SealFlag::F_SEAL_SEAL
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_WRITE;
    fcntl(&memfd, FcntlArg::F_ADD_SEALS(seals))?;
    Ok(memfd)
}

/// Whether the running executable can be written through (it is not on a read-only mount
/// and not a sealed copy).
pub fn running_executable_is_writable() -> bool {
    let exe = Path::new("/proc/self/exe");
    let readonly_mount = nix::sys::statvfs::statvfs(exe)
        .is_ok_and(|st| st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
    if readonly_mount {
        return false;
    }
    let sealed = nix::fcntl::open(
        exe,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .and_then(|fd| nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GET_SEALS))
    .is_ok_and(|seals| seals & libc::F_SEAL_WRITE != 0);
    !sealed
}

/// Re-executes the running program (same arguments and environment) from
/// [`sealed_executable`] unless it already runs from one. Returns only when it could not.
pub fn reexec_sealed() -> io::Error {
    if !running_executable_is_writable() {
        return io::Error::from_raw_os_error(libc::EALREADY);
    }
    let sealed = match sealed_executable(Path::new("/proc/self/exe")) {
        Ok(fd) => fd,
        Err(error) => return error,
    };
    let to_c = |s: std::ffi::OsString| CString::new(s.as_bytes()).ok();
    let args: Vec<CString> = std::env::args_os().filter_map(to_c).collect();
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut pair = k.as_bytes().to_vec();
            pair.push(b'=');
            pair.extend_from_slice(v.as_bytes());
            CString::new(pair).ok()
        })
        .collect();
    match nix::unistd::execveat(
        sealed.as_fd(),
        c"",
        &args,
        &env,
        nix::fcntl::AtFlags::AT_EMPTY_PATH,
    ) {
        Err(errno) => errno.into(),
        Ok(never) => match never {},
    }
}

/// Makes the calling process non-dumpable: no core dumps and, for anyone without
/// `CAP_SYS_PTRACE`, no access to its /proc files (memory, fds, root, exe). Inherited by
/// every process it forks until that process `execve`s the container's program.
pub fn harden_process() {
    if let Err(error) = nix::sys::prctl::set_dumpable(false) {
        tracing::warn!(%error, "prctl(PR_SET_DUMPABLE, 0)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_copy_cannot_be_written() {
        let fd = sealed_copy(Path::new("/proc/self/exe")).expect("copy");
        let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        let err = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"x"))
            .expect_err("sealed");
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "{err}");
    }
}
