//! Volumes and safe file access for berth.
//!
//! - [`VolumeService`]: local volumes under `<data_root>/volumes` (named, anonymous, and the
//!   local driver's `type`/`device`/`o` options), their reference counts and host mounts.
//! - [`mounts`]: a container's mounts parsed from Docker's `Binds`, `Mounts`, `Volumes` and
//!   `VolumesFrom` into [`MountPoint`]s.
//! - [`Root`]: a directory used as `/`, every path in it resolved by the kernel with
//!   `openat2(RESOLVE_IN_ROOT)`; [`archive`] streams tar out of and into such a root (the
//!   engine of `docker cp` and of pre-populating volumes from image content).
#![forbid(unsafe_code)]

pub mod archive;
pub mod error;
pub mod mounts;

pub mod service;

pub use berth_fs::Root;
pub use error::VolumeError;
pub use mounts::{MountKind, MountPoint};
pub use service::{Pruned, Usage, Volume, VolumeService};
