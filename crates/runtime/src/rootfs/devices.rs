//! Device nodes and the standard /dev symlinks. See
//! <https://man7.org/linux/man-pages/man2/mknod.2.html>.
use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use berth_fs::Root;
use nix::fcntl::OFlag;
use nix::mount::{MsFlags, mount};
use nix::sys::stat::{Mode, SFlag, makedev, mknodat};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use crate::Step;
use crate::rootfs::path::{create_file_at, fd_path, mount_target, parent_and_name};
use crate::sync::{Failure, at, at_io};

/// A device node to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DevicePlan {
    /// Path inside the container.
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl DevicePlan {
    pub(crate) fn new(device: &LinuxDevice) -> Self {
        let kind = match device.typ() {
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            LinuxDeviceType::C | LinuxDeviceType::U | LinuxDeviceType::A => SFlag::S_IFCHR,
        };
        DevicePlan {
            path: device.path().clone(),
            kind,
            major: u64::try_from(device.major()).unwrap_or(0),
            minor: u64::try_from(device.minor()).unwrap_or(0),
            mode: device.file_mode().unwrap_or(0o666),
            uid: device.uid().unwrap_or(0),
            gid: device.gid().unwrap_or(0),
        }
    }
}

/// Creates `device` inside `root`. Where mknod is denied (user namespaces), bind-mounts the
/// host's node instead, as runc does. An existing entry (a bind-mounted /dev) is kept.
pub(crate) fn create_device(root: &Root, device: &DevicePlan) -> Result<(), Failure> {
    let fail = |err: io::Error| Failure::io(Step::CreateDevice, &device.path, &err);
    let Some((dir, resolved, name)) = parent_and_name(root, &device.path).map_err(fail)? else {
        return Ok(());
    };
    let mode = Mode::from_bits_truncate(device.mode & 0o7777);
    match mknodat(
        &dir,
        name.as_os_str(),
        device.kind,
        mode,
        makedev(device.major, device.minor),
    ) {
        Ok(()) => {}
        Err(nix::Error::EEXIST) => return Ok(()),
        Err(nix::Error::EPERM) => {
            create_file_at(&dir, &name).map_err(fail)?;
            let target = open_node(&dir, &name).map_err(fail)?;
            return mount(
                Some(device.path.as_path()),
                &fd_path(&target),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(at(Step::CreateDevice, &resolved));
        }
        Err(errno) => return Err(Failure::new(Step::CreateDevice, &resolved, errno)),
    }
    // mknod applies the umask; chmod sets the mode the spec asked for, on the node just made
    // (through its descriptor, never through a name that could be swapped meanwhile).
    let node = open_node(&dir, &name).map_err(fail)?;
    let stat = nix::sys::stat::fstat(&node).map_err(at(Step::CreateDevice, &resolved))?;
    if stat.st_mode & libc::S_IFMT != device.kind.bits() {
        return Err(Failure::new(
            Step::CreateDevice,
            &resolved,
            nix::Error::EEXIST,
        ));
    }
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        &fd_path(&node),
        mode,
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(at(Step::CreateDevice, &resolved))?;
    nix::unistd::fchownat(
        &node,
        "",
        Some(device.uid.into()),
        Some(device.gid.into()),
        nix::fcntl::AtFlags::AT_EMPTY_PATH,
    )
    .map_err(at(Step::CreateDevice, &resolved))
}

/// An `O_PATH` descriptor of `name` in `dir`, not following a final symlink.
fn open_node(dir: &OwnedFd, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(nix::fcntl::openat(
        dir,
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

/// The symlinks every container's /dev has.
const DEV_SYMLINKS: [(&str, &str); 6] = [
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
    ("/proc/kcore", "core"),
    ("pts/ptmx", "ptmx"),
];

/// Creates /dev/fd, /dev/std{in,out,err}, /dev/core and /dev/ptmx in the container's /dev
/// (resolved inside the root); existing entries stay. No /dev directory: nothing to do.
pub(crate) fn create_dev_symlinks(root: &Root) -> Result<(), Failure> {
    let dev = match root.open_at(
        Path::new("/dev"),
        OFlag::O_PATH | OFlag::O_DIRECTORY,
        Mode::empty(),
    ) {
        Ok(dev) => dev,
        Err(err) if matches!(err.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
            return Ok(());
        }
        Err(err) => return Err(Failure::io(Step::CreateSymlink, Path::new("/dev"), &err)),
    };
    for (target, name) in DEV_SYMLINKS {
        match nix::unistd::symlinkat(target, &dev, name) {
            Ok(()) | Err(nix::Error::EEXIST) => {}
            Err(errno) => {
                return Err(Failure::new(
                    Step::CreateSymlink,
                    &Path::new("/dev").join(name),
                    errno,
                ));
            }
        }
    }
    Ok(())
}

/// Bind-mounts the terminal at `pty_path` (a host path, read before pivot_root) over
/// /dev/console inside `root`, so the container's console is its terminal.
pub(crate) fn bind_console(root: &Root, pty_path: &Path) -> Result<(), Failure> {
    let console = Path::new("/dev/console");
    let target = mount_target(root, console, true).map_err(at_io(Step::Console, console))?;
    mount(
        Some(pty_path),
        &fd_path(&target),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(at(Step::Console, console))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_plans_default_mode_and_owner() {
        let spec = crate::spec::base_spec_for(false);
        let devices: Vec<DevicePlan> = spec
            .linux()
            .as_ref()
            .and_then(|l| l.devices().clone())
            .unwrap_or_default()
            .iter()
            .map(DevicePlan::new)
            .collect();
        let null = devices
            .iter()
            .find(|d| d.path == Path::new("/dev/null"))
            .expect("null");
        assert_eq!(
            (null.kind, null.major, null.minor, null.mode),
            (SFlag::S_IFCHR, 1, 3, 0o666)
        );
    }

    #[test]
    fn symlinks_are_created_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("dev")).expect("mkdir");
        let root = Root::open(dir.path()).expect("root");
        create_dev_symlinks(&root).expect("first");
        create_dev_symlinks(&root).expect("second is a no-op");
        assert_eq!(
            std::fs::read_link(dir.path().join("dev/ptmx")).expect("link"),
            Path::new("pts/ptmx")
        );
        assert_eq!(
            std::fs::read_link(dir.path().join("dev/stderr")).expect("link"),
            Path::new("/proc/self/fd/2")
        );
    }

    #[test]
    fn a_dev_symlink_out_of_the_root_gets_nothing_outside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = dir.path().join("host");
        std::fs::create_dir(&outside).expect("mkdir");
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir(&rootfs).expect("mkdir");
        std::os::unix::fs::symlink(&outside, rootfs.join("dev")).expect("symlink");
        // Where /dev leads inside the root, as the /dev mount target makes it.
        let inside = rootfs.join(outside.strip_prefix("/").unwrap());
        std::fs::create_dir_all(&inside).expect("mkdir");
        let root = Root::open(&rootfs).expect("root");
        create_dev_symlinks(&root).expect("symlinks");
        assert_eq!(std::fs::read_dir(&outside).expect("read").count(), 0);
        assert_eq!(
            std::fs::read_link(inside.join("fd")).expect("link inside the root"),
            Path::new("/proc/self/fd")
        );
    }
}
