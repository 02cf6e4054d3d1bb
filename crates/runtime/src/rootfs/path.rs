//! Paths inside the container's root filesystem, before pivot_root.
//!
//! An image can hold symlinks such as `dev -> /home/victim` or `/etc/hosts -> /../../etc/passwd`,
//! and a container sharing a volume can swap a directory for a symlink at any moment. So no
//! path under the rootfs is ever joined as a string and handed to a system call: every
//! component is resolved by the kernel with `openat2(RESOLVE_IN_ROOT)` ([`berth_fs::Root`]),
//! nodes are created relative to their parent's descriptor (`mknodat`, `symlinkat`, `openat`
//! with `O_EXCL|O_NOFOLLOW`), and mounts target `/proc/self/fd/N` of a descriptor, which the
//! kernel follows to the very object resolved inside the root (as runc does since 1.0.0-rc95).
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use berth_fs::Root;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

/// The `/proc/self/fd/N` path of `fd`, for mount(2) and chmod(2): the kernel follows it to the
/// object the descriptor holds, wherever a path to that object would lead now.
pub(crate) fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// `path` with every symlink resolved inside `root`, split into its parent (created with
/// missing components, returned as an `O_PATH` descriptor) and final name. `None` for `/`.
pub(crate) fn parent_and_name(
    root: &Root,
    path: &Path,
) -> io::Result<Option<(OwnedFd, PathBuf, std::ffi::OsString)>> {
    let resolved = root.canonical(path)?;
    let (Some(parent), Some(name)) = (resolved.parent(), resolved.file_name()) else {
        return Ok(None);
    };
    let dir = root.mkdir_all(parent, 0o755)?;
    Ok(Some((dir, resolved.clone(), name.to_owned())))
}

/// Prepares the mount target `path` inside `root` (a directory, or an empty file when `file`,
/// with missing parents) and returns an `O_PATH` descriptor of it. A symlink on the way, the
/// final component included, is resolved inside the root, as runc's securejoin does.
pub(crate) fn mount_target(root: &Root, path: &Path, file: bool) -> io::Result<OwnedFd> {
    let resolved = root.canonical(path)?;
    if !file {
        return root.mkdir_all(&resolved, 0o755);
    }
    if let Some((dir, _, name)) = parent_and_name(root, &resolved)? {
        create_file_at(&dir, &name)?;
    }
    root.open_path(&resolved, true)
}

/// Creates an empty regular file `name` in `dir` unless something is there already; never
/// follows or opens what it finds (a FIFO would block, a symlink could lead anywhere).
pub(crate) fn create_file_at(dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW;
    match nix::fcntl::openat(
        dir,
        name,
        flags | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    ) {
        Ok(_) | Err(nix::Error::EEXIST) => Ok(()),
        Err(errno) => Err(errno.into()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn targets_behind_symlinks_are_made_inside_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).expect("mkdir");
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc")).expect("mkdir");
        symlink(&outside, rootfs.join("dev")).expect("symlink");
        symlink("../../../../outside/hosts", rootfs.join("etc/hosts")).expect("symlink");
        let root = Root::open(&rootfs).expect("open");
        mount_target(&root, Path::new("/dev/pts"), false).expect("dir target");
        mount_target(&root, Path::new("/etc/hosts"), true).expect("file target");
        assert!(
            rootfs
                .join(outside.strip_prefix("/").unwrap())
                .join("pts")
                .is_dir()
        );
        assert!(rootfs.join("outside/hosts").is_file());
        assert_eq!(std::fs::read_dir(&outside).expect("read").count(), 0);
    }

    #[test]
    fn an_existing_fifo_target_is_not_opened() {
        let dir = tempfile::tempdir().expect("tempdir");
        nix::unistd::mkfifo(&dir.path().join("fifo"), Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        let root = Root::open(dir.path()).expect("open");
        mount_target(&root, Path::new("/fifo"), true).expect("no blocking open");
    }
}
