//! Device nodes and the standard /dev symlinks. See
//! <https://man7.org/linux/man-pages/man2/mknod.2.html>.
use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use crate::Step;
use crate::rootfs::path::secure_join;
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

/// Creates `device` under `rootfs`. Where mknod is denied (user namespaces), bind-mounts the
/// host's node instead, as runc does. An existing node (a bind-mounted /dev) is kept.
pub(crate) fn create_device(rootfs: &Path, device: &DevicePlan) -> Result<(), Failure> {
    let target =
        secure_join(rootfs, &device.path).map_err(at_io(Step::CreateDevice, &device.path))?;
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(at_io(Step::CreateDevice, parent))?;
    }
    let dev = makedev(device.major, device.minor);
    match mknod(
        &target,
        device.kind,
        Mode::from_bits_truncate(device.mode & 0o7777),
        dev,
    ) {
        Ok(()) => {}
        Err(nix::Error::EEXIST) => return Ok(()),
        Err(nix::Error::EPERM) => {
            fs::File::create(&target).map_err(at_io(Step::CreateDevice, &target))?;
            return mount(
                Some(device.path.as_path()),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(at(Step::CreateDevice, &target));
        }
        Err(errno) => return Err(Failure::new(Step::CreateDevice, &target, errno)),
    }
    // mknod applies the umask; chmod sets the mode the spec asked for.
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        &target,
        Mode::from_bits_truncate(device.mode & 0o7777),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(at(Step::CreateDevice, &target))?;
    nix::unistd::chown(&target, Some(device.uid.into()), Some(device.gid.into()))
        .map_err(at(Step::CreateDevice, &target))
}

/// The symlinks every container's /dev has.
const DEV_SYMLINKS: [(&str, &str); 6] = [
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
    ("/proc/kcore", "/dev/core"),
    ("pts/ptmx", "/dev/ptmx"),
];

/// Creates /dev/fd, /dev/std{in,out,err}, /dev/core and /dev/ptmx; existing entries stay.
pub(crate) fn create_dev_symlinks(rootfs: &Path) -> Result<(), Failure> {
    for (target, link) in DEV_SYMLINKS {
        let path = rootfs.join(link.trim_start_matches('/'));
        match symlink(target, &path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(Failure::io(Step::CreateSymlink, &path, &err)),
        }
    }
    Ok(())
}

/// Bind-mounts the terminal at `pty_path` (a host path, read before pivot_root) over
/// /dev/console, so the container's console is its terminal.
pub(crate) fn bind_console(rootfs: &Path, pty_path: &Path) -> Result<(), Failure> {
    let console = rootfs.join("dev/console");
    match fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&console)
    {
        Ok(_) => {}
        Err(err) => return Err(Failure::io(Step::Console, &console, &err)),
    }
    mount(
        Some(pty_path),
        &console,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(at(Step::Console, &console))
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
        let root = tempfile::tempdir().expect("tempdir");
        fs::create_dir(root.path().join("dev")).expect("mkdir");
        create_dev_symlinks(root.path()).expect("first");
        create_dev_symlinks(root.path()).expect("second is a no-op");
        assert_eq!(
            fs::read_link(root.path().join("dev/ptmx")).expect("link"),
            Path::new("pts/ptmx")
        );
        assert_eq!(
            fs::read_link(root.path().join("dev/stderr")).expect("link"),
            Path::new("/proc/self/fd/2")
        );
    }
}
