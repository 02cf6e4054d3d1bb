//! Filesystem primitives shared by berth's crates.
//!
//! - [`Root`]: a directory used as `/`, every path below it resolved by the kernel with
//!   `openat2(RESOLVE_IN_ROOT)`, so a container's symlinks can never lead outside it. The
//!   runtime builds a rootfs with it, the volume crate streams `cp` archives through it.
//! - [`write_atomic`]: the one atomic file replacement (temp file in the same directory,
//!   fsync when durable, rename, fsync of the directory).
//! - [`blocking`] (feature `tokio`): the one way async code runs blocking work.
//! - [`DEFAULT_PATH`] and [`DEFAULT_PATH_ENV`]: the `PATH` of containers and images that set
//!   none.
//! - [`tree`]: directory trees walked by descriptor without recursion, however deep, and
//!   files opened for reading only when they are the regular files a walk listed.
//! - [`open_to_group`]: a directory one group (a remapped root's) may pass through.
//! - [`IdMapping`]: a `--userns-remap` mapping, container ids to host ids and back.
#![forbid(unsafe_code)]

pub mod atomic;
#[cfg(feature = "tokio")]
pub mod blocking;
pub mod idmap;
pub mod perms;
pub mod root;
pub mod tree;

pub use atomic::{
    Durability, WriteError, is_temp_name, sync_dir, write_atomic, write_atomic_private,
    write_atomic_with,
};
#[cfg(feature = "tokio")]
pub use blocking::blocking;
pub use idmap::IdMapping;
pub use perms::open_to_group;
pub use root::{Root, clean};

/// Defines the default search path once, for both constants below.
macro_rules! default_path {
    () => {
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    };
}

/// The directories searched for a program when its environment sets no `PATH` (a `PATH`
/// value, as moby's `DefaultPathEnv`): the runtime resolves `argv[0]` on it.
pub const DEFAULT_PATH: &str = default_path!();

/// [`DEFAULT_PATH`] as an environment entry, `PATH=…`: what Docker puts in the environment
/// of an image or a container whose configuration sets no `PATH`.
pub const DEFAULT_PATH_ENV: &str = concat!("PATH=", default_path!());

#[cfg(test)]
mod tests {
    #[test]
    fn the_env_entry_is_the_path() {
        assert_eq!(
            super::DEFAULT_PATH_ENV.strip_prefix("PATH="),
            Some(super::DEFAULT_PATH)
        );
    }
}
