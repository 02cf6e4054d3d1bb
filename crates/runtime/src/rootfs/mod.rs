//! The container's root filesystem, built inside the init's own mount namespace:
//!
//! 1. `/` becomes `rslave` (or `linux.rootfsPropagation`), so nothing leaks to the host;
//! 2. the overlay (or, for `berth oci`, a bind of the prepared rootfs onto itself) is mounted
//!    at `<bundle>/<root.path>`;
//! 3. `spec.mounts` in order, targets resolved inside the rootfs by the kernel and mounted
//!    through descriptors ([`path`]);
//! 4. device nodes, /dev symlinks, /dev/console;
//! 5. pivot_root ([`pivot`]);
//! 6. afterwards: masked paths, read-only paths, read-only root ([`finish`](RootfsPlan::finish)).
//!
//! Because all of it happens in the container's mount namespace, it disappears with the
//! container: nothing has to be unmounted on the host.
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
    pub root_propagation: MsFlags,
    pub mounts: Vec<MountPlan>,
    pub devices: Vec<DevicePlan>,
    pub cgroup: CgroupHost,
    pub masked_paths: Vec<PathBuf>,
    pub readonly_paths: Vec<PathBuf>,
    pub readonly_root: bool,
}

impl RootfsPlan {
    /// Steps 1–5. `console` is the host path of the terminal to show as /dev/console.
    pub(crate) fn prepare(&self, console: Option<&Path>) -> Result<(), Failure> {
        let root = Path::new("/");
        nix::mount::mount(
            None::<&str>,
            root,
            None::<&str>,
            self.root_propagation,
            None::<&str>,
        )
        .map_err(at(Step::MountPropagation, root))?;
        if !self.rootfs.exists() {
            std::fs::create_dir_all(&self.rootfs)
                .map_err(|e| Failure::io(Step::MountOverlay, &self.rootfs, &e))?;
        }
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
        drop(root);
        pivot::pivot_root(&self.rootfs)
    }

    /// Step 6, after pivot_root (and after sysctls, which need a writable /proc/sys).
    pub(crate) fn finish(&self) -> Result<(), Failure> {
        for path in &self.masked_paths {
            mount::mask_path(path)?;
        }
        for path in &self.readonly_paths {
            mount::readonly_path(path)?;
        }
        if self.readonly_root {
            mount::readonly_root()?;
        }
        Ok(())
    }
}
