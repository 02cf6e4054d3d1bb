//! cgroup v1 and v2 management: create a container's cgroup, set limits, add processes,
//! freeze/thaw, read stats, list pids, destroy.
//!
//! DRAFT SIGNATURES (being implemented): the shapes below are the contract.
#![forbid(unsafe_code)]
use std::path::{Path, PathBuf};

/// Which cgroup hierarchy the host uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// Per-controller v1 hierarchies (also the "hybrid" layout).
    V1,
    /// The unified v2 hierarchy.
    V2,
}

/// Limits a container's cgroup enforces (Docker's HostConfig resources, in kernel units).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// Memory + swap limit in bytes (-1 unlimited).
    pub memory_swap: Option<i64>,
    /// Memory soft limit in bytes.
    pub memory_reservation: Option<i64>,
    /// CFS quota in microseconds per period.
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds.
    pub cpu_period: Option<u64>,
    /// Relative CPU weight (v1 shares; converted for v2).
    pub cpu_shares: Option<u64>,
    /// CPUs allowed, e.g. `0-1`.
    pub cpuset_cpus: Option<String>,
    /// Max number of pids (-1 or 0 unlimited).
    pub pids_limit: Option<i64>,
}

/// A snapshot of a cgroup's usage, for `docker stats`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Total CPU time in nanoseconds.
    pub cpu_usage_ns: u64,
    /// CPU time per CPU in nanoseconds (empty when the kernel does not say).
    pub percpu_usage_ns: Vec<u64>,
    /// CPU time in user mode, nanoseconds.
    pub cpu_user_ns: u64,
    /// CPU time in kernel mode, nanoseconds.
    pub cpu_system_ns: u64,
    /// Memory usage in bytes.
    pub memory_usage: u64,
    /// Memory limit in bytes (host memory when unlimited).
    pub memory_limit: u64,
    /// Inactive file cache in bytes (Docker subtracts it from usage).
    pub memory_inactive_file: u64,
    /// Current number of pids.
    pub pids_current: u64,
    /// Pid limit (0 when unlimited).
    pub pids_limit: u64,
    /// Bytes read from block devices.
    pub blkio_read_bytes: u64,
    /// Bytes written to block devices.
    pub blkio_write_bytes: u64,
}

/// Errors from cgroup operations.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// An I/O error on a cgroup file.
    #[error("cgroup {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// One container's cgroup (in every v1 controller hierarchy, or one v2 directory).
#[derive(Debug, Clone)]
pub struct Cgroup {}

#[allow(unused_variables)]
impl Cgroup {
    /// The host's cgroup version, read under `root` (normally `/sys/fs/cgroup`).
    pub fn detect(root: &Path) -> CgroupVersion {
        todo!()
    }
    /// Handle for the cgroup at `path` (e.g. `/berth/<id>`) under `root`; touches nothing.
    pub fn new(root: &Path, path: &str) -> Self {
        todo!()
    }
    /// Creates the cgroup directories (and enables v2 controllers in parents) and applies limits.
    pub fn create(&self, resources: &Resources) -> Result<(), CgroupError> {
        todo!()
    }
    /// Changes limits of an existing cgroup.
    pub fn update(&self, resources: &Resources) -> Result<(), CgroupError> {
        todo!()
    }
    /// Moves a process into the cgroup.
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        todo!()
    }
    /// Freezes every process in it and waits until frozen.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        todo!()
    }
    /// Thaws it.
    pub fn thaw(&self) -> Result<(), CgroupError> {
        todo!()
    }
    /// Reads usage.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        todo!()
    }
    /// Pids of every process in it.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        todo!()
    }
    /// Removes the directories (retrying briefly while the last processes exit); missing is ok.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        todo!()
    }
}
