//! pivot_root(2): make the container rootfs `/` and drop the host's root from the mount
//! namespace. See <https://man7.org/linux/man-pages/man2/pivot_root.2.html>.
//!
//! runc's trick: `pivot_root(".", ".")` from inside the new root stacks the old root on top of
//! the new one at `/`, so there is no directory to create or remove. The old root is then
//! reached through a descriptor opened before the pivot (`fchdir`): a path `.` would resolve in
//! the new root's mount, and making *that* a slave would strip the propagation the spec asked
//! for from every mount of the container. The old root becomes a slave (so unmounting it does
//! not propagate to the host) and is detached.
use std::path::Path;

use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::Mode;

use crate::Step;
use crate::sync::{Failure, at};

pub(crate) fn pivot_root(rootfs: &Path) -> Result<(), Failure> {
    let old_root = nix::fcntl::open(
        "/",
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(at(Step::PivotRoot, Path::new("/")))?;
    nix::unistd::chdir(rootfs).map_err(at(Step::PivotRoot, rootfs))?;
    nix::unistd::pivot_root(".", ".").map_err(at(Step::PivotRoot, rootfs))?;
    nix::unistd::fchdir(&old_root).map_err(at(Step::PivotRoot, Path::new("/")))?;
    drop(old_root);
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
