//! pivot_root(2): make the container rootfs `/` and drop the host's root from the mount
//! namespace. See <https://man7.org/linux/man-pages/man2/pivot_root.2.html>.
//!
//! runc's trick: `pivot_root(".", ".")` from inside the new root stacks the old root on top
//! of the new one at `/`; making it a slave and lazily unmounting it leaves the new root
//! with no directory to create or remove.
use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::Step;
use crate::sync::{Failure, at};

pub(crate) fn pivot_root(rootfs: &Path) -> Result<(), Failure> {
    nix::unistd::chdir(rootfs).map_err(at(Step::PivotRoot, rootfs))?;
    nix::unistd::pivot_root(".", ".").map_err(at(Step::PivotRoot, rootfs))?;
    // Unmounting must not propagate to the host's mounts.
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(at(Step::PivotRoot, Path::new("/")))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(at(Step::PivotRoot, Path::new("/")))?;
    nix::unistd::chdir("/").map_err(at(Step::PivotRoot, Path::new("/")))
}
