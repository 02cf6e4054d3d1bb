//! The two small roles a controller plays, shared by the v1 and v2 implementations. Each
//! takes the cgroup directory as an argument, so it works on any tree (the host's, or a
//! temp-dir fixture in tests).

use std::path::Path;

use crate::{CgroupError, Resources, Stats};

/// A controller that enforces part of [`Resources`].
pub(crate) trait Limit {
    /// The controller's name as the kernel spells it.
    const NAME: &'static str;
    /// Whether `resources` ask for anything this controller enforces.
    fn wanted(resources: &Resources) -> bool;
    /// Writes this controller's limits into the cgroup directory `dir`; fields left `None`
    /// are not touched.
    fn apply(dir: &Path, resources: &Resources) -> Result<(), CgroupError>;
}

/// A controller that reports part of [`Stats`]; files the kernel lacks leave fields at zero.
pub(crate) trait Report {
    /// Fills this controller's fields of `stats` from the cgroup directory `dir`.
    fn report(dir: &Path, stats: &mut Stats) -> Result<(), CgroupError>;
}
