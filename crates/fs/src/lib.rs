//! Filesystem primitives shared by berth's crates.
//!
//! - [`Root`]: a directory used as `/`, every path below it resolved by the kernel with
//!   `openat2(RESOLVE_IN_ROOT)`, so a container's symlinks can never lead outside it. The
//!   runtime builds a rootfs with it, the volume crate streams `cp` archives through it.
//! - [`tree`]: directory trees walked by descriptor without recursion, however deep, and
//!   files opened for reading only when they are the regular files a walk listed.
#![forbid(unsafe_code)]

pub mod root;
pub mod tree;

pub use root::{Root, clean};
