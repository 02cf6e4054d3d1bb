//! The container's root filesystem, built inside the init's own mount namespace:
//!
//! 1. `/` becomes `rslave` (or `linux.rootfsPropagation`, unless an unbindable kind: an
//!    unbindable `/` could lend nothing to a bind mount), so nothing leaks to the host, and
//!    the mount the rootfs sits on becomes private (pivot_root refuses a shared parent, and
//!    an unbindable one cannot be bound), as runc's `prepareRoot` does;
//! 2. the overlay (or, for `berth oci`, a bind of the prepared rootfs onto itself) is mounted
//!    at `<bundle>/<root.path>`;
//! 3. `spec.mounts` in order, targets resolved inside the rootfs by the kernel and mounted
//!    through descriptors ([`path`]);
//! 4. device nodes, /dev symlinks, /dev/console;
//! 5. (the createRuntime and createContainer hooks run here, see [`crate::hooks`])
//! 6. pivot_root ([`pivot`]);
//! 7. afterwards: masked paths, read-only paths, read-only root, then `linux.rootfsPropagation`
//!    again on the new `/` (unless a private kind, which step 1 already made)
//!    ([`finish`](RootfsPlan::finish)).
//!
//! Because all of it happens in the container's mount namespace, it disappears with the
//! container: nothing has to be unmounted on the host. A spec without a mount namespace (the
//! runtime spec allows it; runc then chroots) gets steps 3, 4 and a chroot, in the caller's
//! mount namespace: `berth oci delete` unmounts what step 3 left under the rootfs.
pub(crate) mod devices;
pub(crate) mod mount;
pub(crate) mod path;
pub(crate) mod pivot;

use std::path::{Path, PathBuf};

use berth_fs::Root;
use nix::mount::MsFlags;

use crate::OverlayMount;
use crate::Step;
use crate::sync::{Failure, at, at_io};
use devices::DevicePlan;
use mount::{CgroupHost, MountPlan};

/// Everything the init needs to build its root filesystem, prepared by the parent.
#[derive(Debug, Clone)]
pub(crate) struct RootfsPlan {
    /// Absolute host path of the rootfs (`<bundle>/<root.path>`).
    pub rootfs: PathBuf,
    pub overlay: Option<OverlayMount>,
    /// What `/` gets before anything is mounted: `rslave` or the spec's propagation.
    pub root_propagation: MsFlags,
    /// `linux.rootfsPropagation`, applied again to the new `/` after pivot_root.
    pub requested_propagation: Option<MsFlags>,
    /// The container has a mount namespace of its own (else: no propagation changes, no
    /// bind of the rootfs, chroot instead of pivot_root).
    pub own_mount_namespace: bool,
    pub mounts: Vec<MountPlan>,
    pub devices: Vec<DevicePlan>,
    pub cgroup: CgroupHost,
    pub masked_paths: Vec<PathBuf>,
    pub readonly_paths: Vec<PathBuf>,
    pub readonly_root: bool,
    /// The mounts are made in a user namespace.
    pub user_namespace: bool,
}

impl RootfsPlan {
    /// Steps 1–4. `console` is the host path of the terminal to show as /dev/console.
    pub(crate) fn prepare(&self, console: Option<&Path>) -> Result<(), Failure> {
        if !self.rootfs.exists() {
            std::fs::create_dir_all(&self.rootfs)
                .map_err(|e| Failure::io(Step::MountOverlay, &self.rootfs, &e))?;
        }
        if self.own_mount_namespace {
            let root = Path::new("/");
            nix::mount::mount(
                None::<&str>,
                root,
                None::<&str>,
                self.root_propagation,
                None::<&str>,
            )
            .map_err(at(Step::MountPropagation, root))?;
            make_parent_private(&self.rootfs)?;
            match &self.overlay {
                Some(overlay) => mount::mount_overlay(overlay, &self.rootfs)?,
                None => nix::mount::mount(
                    Some(self.rootfs.as_path()),
                    &self.rootfs,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(at(Step::BindRootfs, &self.rootfs))?,
            }
        } else if let Some(overlay) = &self.overlay {
            mount::mount_overlay(overlay, &self.rootfs)?;
        }
        // Every path below the rootfs is resolved inside it from here on ([`path`]).
        let root = Root::open(&self.rootfs).map_err(at_io(Step::MountOverlay, &self.rootfs))?;
        for plan in &self.mounts {
            mount::mount_entry(&root, plan, &self.cgroup)?;
        }
        for device in &self.devices {
            devices::create_device(&root, device)?;
        }
        devices::create_dev_symlinks(&root)?;
        if let Some(console) = console {
            devices::bind_console(&root, console)?;
        }
        Ok(())
    }

    /// Step 6: the rootfs becomes `/`.
    pub(crate) fn enter(&self) -> Result<(), Failure> {
        if !self.own_mount_namespace {
            nix::unistd::chroot(&self.rootfs).map_err(at(Step::Chroot, &self.rootfs))?;
            return nix::unistd::chdir("/").map_err(at(Step::Chroot, Path::new("/")));
        }
        pivot::pivot_root(&self.rootfs)
    }

    /// Step 7, after pivot_root (and after sysctls, which need a writable /proc/sys).
    pub(crate) fn finish(&self) -> Result<(), Failure> {
        for path in &self.masked_paths {
            mount::mask_path(path)?;
        }
        for path in &self.readonly_paths {
            mount::readonly_path(path, self.user_namespace)?;
        }
        if self.readonly_root {
            mount::readonly_root(self.user_namespace)?;
        }
        // Last: an unbindable `/` would refuse the binds of masked paths.
        match self.requested_propagation {
            Some(flags) if self.own_mount_namespace && !flags.contains(MsFlags::MS_PRIVATE) => {
                nix::mount::mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
                    .map_err(at(Step::MountPropagation, Path::new("/")))
            }
            _ => Ok(()),
        }
    }
}

/// Makes the mount `path` sits on private (in the container's mount namespace only): the
/// nearest ancestor that is a mount point, found by trying (EINVAL: not a mount point).
fn make_parent_private(path: &Path) -> Result<(), Failure> {
    for candidate in path.ancestors() {
        match nix::mount::mount(
            None::<&str>,
            candidate,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        ) {
            Ok(()) => return Ok(()),
            Err(nix::Error::EINVAL) => continue,
            Err(errno) => return Err(Failure::new(Step::MountPropagation, candidate, errno)),
        }
    }
    Ok(())
}

/// Detaches every mount at or below `path` in the caller's mount namespace, deepest first
/// (a container without a mount namespace of its own left them on the host).
pub(crate) fn unmount_below(path: &Path) {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|point| point.starts_with(path))
        .collect();
    // Later mounts can sit on earlier ones: undo in reverse order.
    points.reverse();
    for point in points {
        let _ = nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(octal) = field.get(i + 1..i + 4)
            && let Ok(value) = u8::from_str_radix(octal, 8)
        {
            out.push(value);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(
            unescape_mountinfo("/a\\040b\\011c"),
            PathBuf::from("/a b\tc")
        );
        assert_eq!(unescape_mountinfo("/plain"), PathBuf::from("/plain"));
    }
}
