//! cgroup v1 and v2 management for berth containers: create a container's cgroup, set its
//! limits, add processes, freeze/thaw, read stats, list pids, destroy.
//!
//! A [`Cgroup`] is a handle on one cgroup path (e.g. `/berth/<id>`) under a root (normally
//! `/sys/fs/cgroup`). On a v1 host (including the "hybrid" layout, whose cgroup2 mount at
//! `<root>/unified` is ignored) that path exists once per controller hierarchy; on a pure
//! v2 host it is one directory. See the `v1` and `v2` modules for the files involved.
//!
//! Creation is on the container start path, so it does only what is asked: one `mkdir` per
//! hierarchy, one write per limit set, and no process spawning. The `berth` parent
//! directories are created on first use and left in place (cheap to keep, racy to remove).
//!
//! # Example
//!
//! ```no_run
//! use std::path::Path;
//! use berth_cgroups::{Cgroup, Resources};
//!
//! let cgroup = Cgroup::new(Path::new("/sys/fs/cgroup"), "/berth/0123abcd");
//! cgroup.create(&Resources { memory: Some(64 << 20), pids_limit: Some(100), ..Default::default() })?;
//! cgroup.add_pid(4242)?;
//! let stats = cgroup.stats()?;
//! println!("{} bytes", stats.memory_usage);
//! cgroup.destroy()?;
//! # Ok::<(), berth_cgroups::CgroupError>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod controller;
mod cpuset;
mod device;
mod error;
mod fs;
mod rt;
mod v1;
mod v2;

use std::path::{Component, Path, PathBuf};

pub use device::{DeviceKind, DeviceRule};
pub use error::CgroupError;
pub use rt::{NOT_IN_KERNEL, NOT_ON_V2, RtBudget};

/// Which cgroup hierarchy the host uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// Per-controller v1 hierarchies (also the "hybrid" layout).
    V1,
    /// The unified v2 hierarchy.
    V2,
}

/// Limits a container's cgroup enforces (Docker's HostConfig resources, in kernel units).
/// `None` (and, as in Docker, 0) leaves a setting as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    /// Memory limit in bytes (-1 unlimited).
    pub memory: Option<i64>,
    /// Memory + swap limit in bytes (-1 unlimited). Docker's default, twice `memory`, is
    /// the caller's to fill in. Ignored where the kernel does not account swap.
    pub memory_swap: Option<i64>,
    /// Memory soft limit in bytes (v2: `memory.low`).
    pub memory_reservation: Option<i64>,
    /// CFS quota in microseconds per period (-1 unlimited).
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds.
    pub cpu_period: Option<u64>,
    /// Relative CPU weight (v1 shares; converted for v2).
    pub cpu_shares: Option<u64>,
    /// CPUs allowed, e.g. `0-1`.
    pub cpuset_cpus: Option<String>,
    /// Max number of pids (-1 or 0 unlimited).
    pub pids_limit: Option<i64>,
    /// How eagerly the kernel swaps the cgroup's memory, 0–100 (v1 `memory.swappiness`;
    /// refused on v2, which has none).
    pub memory_swappiness: Option<u64>,
    /// Processes that exceed the memory limit wait instead of being OOM-killed (v1
    /// `memory.oom_control`; refused on v2).
    pub oom_kill_disable: Option<bool>,
    /// Kernel memory limit in bytes (v1 `memory.kmem.limit_in_bytes`; refused where the
    /// kernel no longer enforces it, and on v2).
    pub kernel_memory: Option<i64>,
    /// Kernel TCP buffer memory limit in bytes (v1 `memory.kmem.tcp.limit_in_bytes`).
    pub kernel_memory_tcp: Option<i64>,
    /// Real-time runtime in microseconds per period (v1 `cpu.rt_runtime_us`).
    pub cpu_realtime_runtime: Option<i64>,
    /// Real-time period in microseconds (v1 `cpu.rt_period_us`).
    pub cpu_realtime_period: Option<u64>,
    /// SCHED_IDLE for the cgroup: 1 or 0 (`cpu.idle`).
    pub cpu_idle: Option<i64>,
    /// CFS burst in microseconds (v1 `cpu.cfs_burst_us`, v2 `cpu.max.burst`).
    pub cpu_burst: Option<u64>,
    /// Memory nodes allowed, e.g. `0` (`cpuset.mems`).
    pub cpuset_mems: Option<String>,
    /// Block I/O weights and throttles (v1 `blkio`, v2 `io`).
    pub block_io: Option<BlockIo>,
    /// Huge page limits (`hugetlb`), one per page size.
    pub hugepage_limits: Vec<HugepageLimit>,
    /// Network class id of the cgroup's packets (v1 `net_cls.classid`; refused on v2).
    pub net_class_id: Option<u32>,
    /// Per-interface priorities of its packets (v1 `net_prio.ifpriomap`; refused on v2).
    pub net_priorities: Vec<(String, u32)>,
    /// RDMA limits per device (`rdma.max`).
    pub rdma: Vec<RdmaLimit>,
    /// Raw cgroup v2 files to write (`file` → value; refused on v1).
    pub unified: Vec<(String, String)>,
}

/// Block I/O settings (the OCI `blockIO`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockIo {
    /// Relative weight, 10–1000.
    pub weight: Option<u16>,
    /// Weight of the cgroup's own tasks against its children (v1 CFQ only).
    pub leaf_weight: Option<u16>,
    /// Per-device weights.
    pub weight_devices: Vec<WeightDevice>,
    /// Read bytes per second, per device.
    pub read_bps: Vec<ThrottleDevice>,
    /// Write bytes per second, per device.
    pub write_bps: Vec<ThrottleDevice>,
    /// Read operations per second, per device.
    pub read_iops: Vec<ThrottleDevice>,
    /// Write operations per second, per device.
    pub write_iops: Vec<ThrottleDevice>,
}

/// A device's weight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WeightDevice {
    /// Device major number.
    pub major: i64,
    /// Device minor number.
    pub minor: i64,
    /// Weight, 10–1000.
    pub weight: Option<u16>,
    /// Leaf weight, 10–1000 (v1 CFQ only).
    pub leaf_weight: Option<u16>,
}

/// A device's rate limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThrottleDevice {
    /// Device major number.
    pub major: i64,
    /// Device minor number.
    pub minor: i64,
    /// Bytes or operations per second.
    pub rate: u64,
}

/// A huge page limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HugepageLimit {
    /// The page size as the kernel names it in file names: `2MB`, `1GB`, `64KB`.
    pub page_size: String,
    /// Bytes.
    pub limit: u64,
}

/// RDMA limits of one device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RdmaLimit {
    /// The device, e.g. `mlx5_0`.
    pub device: String,
    /// Max HCA handles.
    pub hca_handles: Option<u32>,
    /// Max HCA objects.
    pub hca_objects: Option<u32>,
}

/// A snapshot of a cgroup's usage, for `docker stats`. What the kernel does not report
/// (a missing file or controller) is zero.
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
    /// `memory.stat` as the kernel lists it, in its order (Docker's `memory_stats.stats`).
    pub memory_stat: Vec<(String, u64)>,
    /// Peak memory usage in bytes (v1's `memory.max_usage_in_bytes`; v2 has none).
    pub memory_max_usage: Option<u64>,
    /// CFS bandwidth throttling (`cpu.stat`).
    pub cpu_throttling: Throttling,
    /// Bytes per block device and operation (v1 `blkio.throttle.io_service_bytes`: `Read`,
    /// `Write`, `Sync`, `Async`, `Discard`, `Total`; v2 `io.stat`: `read`, `write`).
    pub blkio_service_bytes: Vec<BlkioEntry>,
}

/// CFS throttling counters, as Docker's `throttling_data`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Throttling {
    /// Enforcement periods elapsed.
    pub periods: u64,
    /// Periods in which the cgroup was throttled.
    pub throttled_periods: u64,
    /// Time throttled, nanoseconds.
    pub throttled_time_ns: u64,
}

/// One block device's count for one operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlkioEntry {
    /// Device major number.
    pub major: u64,
    /// Device minor number.
    pub minor: u64,
    /// The operation, as the kernel names it.
    pub op: String,
    /// Bytes.
    pub value: u64,
}

/// A `key value` per line file (`memory.stat`), in order.
pub(crate) fn keyed_list(content: &str) -> Vec<(String, u64)> {
    content
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(' ')?;
            Some((key.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// `MAJ:MIN`.
pub(crate) fn device_numbers(device: &str) -> Option<(u64, u64)> {
    let (major, minor) = device.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// One container's cgroup (in every v1 controller hierarchy, or one v2 directory).
#[derive(Debug, Clone)]
pub struct Cgroup {
    hierarchy: Hierarchy,
}

#[derive(Debug, Clone)]
enum Hierarchy {
    /// Boxed: a v1 cgroup holds a path per controller.
    V1(Box<v1::V1Cgroup>),
    V2(v2::V2Cgroup),
}

/// What a process writes to a v1 `tasks` file to move itself (`0`: the writing thread).
const SELF: &str = "0";

/// A cgroup v1's `tasks` files, opened (close-on-exec) by a parent before it forks, for the
/// child to move itself in.
///
/// Why: a move by pid (`cgroup.procs`, or `tasks` with a pid) takes the kernel's global
/// `cgroup_threadgroup_rwsem` for writing, and the first such write after an idle spell waits
/// for an RCU grace period (`rcu_sync_enter`): ~9–13 ms on this host, on every container
/// start and every exec or healthcheck probe that comes after a pause. A thread that writes
/// `0` to `tasks` moves only itself and the kernel skips that lock (Linux ≥ 6.2, "cgroup:
/// Optimize single thread migration"; older kernels take it as before). A child freshly
/// forked has one thread, so it moves whole. The permission check uses the credentials of
/// the opener (the parent, root), so the move works from a user namespace too.
#[derive(Debug)]
pub struct SelfJoin {
    files: Vec<(PathBuf, std::fs::File)>,
}

impl SelfJoin {
    /// Moves the calling thread (a single-threaded process: all of it) into the cgroup of
    /// every file. One `write(2)` per controller (no allocation unless one fails).
    pub fn join(&self) -> Result<(), CgroupError> {
        use std::io::Write;
        for (path, file) in &self.files {
            let mut file: &std::fs::File = file;
            if let Err(source) = file.write_all(SELF.as_bytes()) {
                return Err(CgroupError::Write {
                    path: path.clone(),
                    value: SELF.to_owned(),
                    source,
                });
            }
        }
        Ok(())
    }
}

impl Cgroup {
    /// The host's cgroup version, read under `root` (normally `/sys/fs/cgroup`): v2 when
    /// `root` itself is the unified hierarchy (it has `cgroup.controllers`).
    pub fn detect(root: &Path) -> CgroupVersion {
        if root.join("cgroup.controllers").exists() {
            CgroupVersion::V2
        } else {
            CgroupVersion::V1
        }
    }

    /// Handle for the cgroup at `path` (e.g. `/berth/<id>`) under `root`. It only looks at
    /// which hierarchies exist (a few `stat`s) and creates nothing. `path` is taken relative
    /// to the hierarchy roots; `..` and `.` components are dropped so it cannot escape them.
    pub fn new(root: &Path, path: &str) -> Self {
        Self::with_version(root, path, Self::detect(root))
    }

    /// Like [`Cgroup::new`], for a caller that already knows the host's version.
    pub fn with_version(root: &Path, path: &str, version: CgroupVersion) -> Self {
        let relative: PathBuf = Path::new(path)
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        let hierarchy = match version {
            CgroupVersion::V1 => Hierarchy::V1(Box::new(v1::V1Cgroup::new(root, &relative))),
            CgroupVersion::V2 => Hierarchy::V2(v2::V2Cgroup::new(root, &relative)),
        };
        Cgroup { hierarchy }
    }

    /// The hierarchy this handle works on.
    pub fn version(&self) -> CgroupVersion {
        match &self.hierarchy {
            Hierarchy::V1(_) => CgroupVersion::V1,
            Hierarchy::V2(_) => CgroupVersion::V2,
        }
    }

    /// The cgroup's directory on a v2 host (for `clone3(CLONE_INTO_CGROUP)`); `None` on v1.
    pub fn unified_dir(&self) -> Option<&Path> {
        match &self.hierarchy {
            Hierarchy::V1(_) => None,
            Hierarchy::V2(cgroup) => Some(cgroup.dir()),
        }
    }

    /// Creates the cgroup directories (and enables v2 controllers in parents) and applies
    /// limits, with Docker's default device rules ([`DeviceRule::docker_defaults`]).
    /// An existing cgroup is reused.
    pub fn create(&self, resources: &Resources) -> Result<(), CgroupError> {
        self.create_with_devices(resources, &DeviceRule::docker_defaults())
    }

    /// Like [`Cgroup::create`] with explicit device rules, applied in order on v1; an empty
    /// list keeps the parent's rules (normally all allowed, as for `--privileged`). On v2
    /// device rules need an eBPF program and are not applied here.
    pub fn create_with_devices(
        &self,
        resources: &Resources,
        devices: &[DeviceRule],
    ) -> Result<(), CgroupError> {
        match &self.hierarchy {
            Hierarchy::V1(cgroup) => cgroup.create(resources, devices),
            Hierarchy::V2(cgroup) => cgroup.create(resources),
        }
    }

    /// Changes limits of an existing cgroup. Lowering memory below current usage fails
    /// with [`CgroupError::Write`] (EBUSY) naming the file.
    pub fn update(&self, resources: &Resources) -> Result<(), CgroupError> {
        match &self.hierarchy {
            Hierarchy::V1(cgroup) => cgroup.update(resources),
            Hierarchy::V2(cgroup) => cgroup.update(resources),
        }
    }

    /// On cgroup v1, this cgroup's `tasks` file of every controller, opened for writing by a
    /// process about to fork: the child moves itself in with [`SelfJoin::join`], which skips
    /// the kernel's global lock that a move by pid takes (see [`SelfJoin`]). None on v2,
    /// where [`Cgroup::add_pid`] stays the way in. The cgroup must exist.
    pub fn self_join(&self) -> Result<Option<SelfJoin>, CgroupError> {
        match &self.hierarchy {
            Hierarchy::V1(cgroup) => cgroup.self_join().map(Some),
            Hierarchy::V2(_) => Ok(None),
        }
    }

    /// Moves a process (all its threads) into the cgroup.
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        match &self.hierarchy {
            Hierarchy::V1(cgroup) => cgroup.add_pid(pid),
            Hierarchy::V2(cgroup) => cgroup.add_pid(pid),
        }
    }

    /// Freezes every process in it and waits (about a second at most) until frozen; on
    /// timeout it thaws again and returns [`CgroupError::FreezeTimeout`].
    pub fn freeze(&self) -> Result<(), CgroupError> {
        match &self.hierarchy {
            Hierarchy::V1(cgroup) => cgroup.freeze(),
            Hierarchy::V2(cgroup) => cgroup.freeze(),
        }
    }

    /// Thaws it.
    pub fn thaw(&self) -> Result<(), CgroupError> {
        match &self.hierarchy {
            Hierarchy::V1(cgroup) => cgroup.thaw(),
            Hierarchy::V2(cgroup) => cgroup.thaw(),
        }
    }

    /// Whether it is frozen (for a restarted daemon to learn which containers are paused).
    pub fn frozen(&self) -> Result<bool, CgroupError> {
        match &self.hierarchy {
            Hierarchy::V1(cgroup) => cgroup.frozen(),
            Hierarchy::V2(cgroup) => cgroup.frozen(),
        }
    }

    /// Reads usage; what the kernel does not report is zero.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        match &self.hierarchy {
            Hierarchy::V1(cgroup) => cgroup.stats(),
            Hierarchy::V2(cgroup) => cgroup.stats(),
        }
    }

    /// Pids of every process in it (empty when the cgroup does not exist).
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        match &self.hierarchy {
            Hierarchy::V1(cgroup) => cgroup.pids(),
            Hierarchy::V2(cgroup) => cgroup.pids(),
        }
    }

    /// Whether the kernel's OOM killer killed a process in it (Docker's `State.OOMKilled`).
    /// Read it before [`Cgroup::destroy`]; false when it cannot be read.
    pub fn oom_killed(&self) -> bool {
        let killed = match &self.hierarchy {
            Hierarchy::V1(cgroup) => cgroup.oom_killed(),
            Hierarchy::V2(cgroup) => cgroup.oom_killed(),
        };
        killed.unwrap_or(false)
    }

    /// Removes the directories (retrying for about a second while the last processes exit,
    /// and removing cgroups the container nested in it); missing is ok.
    pub fn destroy(&self) -> Result<(), CgroupError> {
        match &self.hierarchy {
            Hierarchy::V1(cgroup) => cgroup.destroy(),
            Hierarchy::V2(cgroup) => cgroup.destroy(),
        }
    }
}

/// The host's memory in bytes (`MemTotal` of `/proc/meminfo`), 0 when unreadable.
pub fn host_mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .map(|content| parse_mem_total(&content))
        .unwrap_or(0)
}

/// `MemTotal:       16384 kB` → bytes.
fn parse_mem_total(meminfo: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib.saturating_mul(1024))
}

/// A limit as `docker stats` shows it: no more than the host has (an "unlimited" v1
/// limit reads as about 8 EiB).
pub(crate) fn cap_to_host_memory(limit: u64) -> u64 {
    match host_mem_total() {
        0 => limit,
        host => limit.min(host),
    }
}

/// Reads a `cgroup.procs` file: one pid per line; a missing file (cgroup gone) is empty.
pub(crate) fn parse_procs(path: &Path) -> Result<Vec<i32>, CgroupError> {
    let Some(content) = fs::read(path)? else {
        return Ok(Vec::new());
    };
    content
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            line.trim().parse().map_err(|_| CgroupError::BadPid {
                path: path.to_path_buf(),
                line: line.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::fs as stdfs;

    use super::*;

    #[test]
    fn detect_by_cgroup_controllers_at_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        // Hybrid: v1 controllers plus a cgroup2 at unified/, which must not count.
        stdfs::create_dir(tmp.path().join("memory")).unwrap();
        stdfs::create_dir(tmp.path().join("unified")).unwrap();
        stdfs::write(tmp.path().join("unified/cgroup.controllers"), "").unwrap();
        assert_eq!(Cgroup::detect(tmp.path()), CgroupVersion::V1);
        stdfs::write(tmp.path().join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        assert_eq!(Cgroup::detect(tmp.path()), CgroupVersion::V2);
        assert_eq!(
            Cgroup::new(tmp.path(), "/berth/x").version(),
            CgroupVersion::V2
        );
    }

    #[test]
    fn path_cannot_escape_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        stdfs::write(tmp.path().join("cgroup.controllers"), "").unwrap();
        let cgroup = Cgroup::new(tmp.path(), "/../berth/./x/..");
        assert_eq!(
            cgroup.unified_dir(),
            Some(tmp.path().join("berth/x").as_path())
        );
        let v1 = Cgroup::with_version(tmp.path(), "/berth/x", CgroupVersion::V1);
        assert_eq!(v1.unified_dir(), None);
    }

    #[test]
    fn create_on_v1_writes_docker_device_rules() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("devices/berth/x");
        stdfs::create_dir_all(&dir).unwrap();
        stdfs::write(dir.join("devices.allow"), "").unwrap();
        stdfs::write(dir.join("devices.deny"), "").unwrap();
        let cgroup = Cgroup::new(tmp.path(), "/berth/x");
        assert_eq!(cgroup.version(), CgroupVersion::V1);
        cgroup.create(&Resources::default()).unwrap();
        assert_eq!(
            stdfs::read_to_string(dir.join("devices.deny")).unwrap(),
            "a\n"
        );
        assert_eq!(
            stdfs::read_to_string(dir.join("devices.allow"))
                .unwrap()
                .lines()
                .count(),
            11
        );
    }

    #[test]
    fn mem_total_parses_kib() {
        let meminfo = "MemTotal:        8039412 kB\nMemFree:         1000 kB\n";
        assert_eq!(parse_mem_total(meminfo), 8_039_412 * 1024);
        assert_eq!(parse_mem_total("garbage"), 0);
        assert!(host_mem_total() > 0);
    }

    #[test]
    fn procs_parse_and_reject_garbage() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("cgroup.procs");
        assert_eq!(parse_procs(&file).unwrap(), Vec::<i32>::new());
        stdfs::write(&file, "1\n23\n").unwrap();
        assert_eq!(parse_procs(&file).unwrap(), vec![1, 23]);
        stdfs::write(&file, "1\nx\n").unwrap();
        assert!(matches!(
            parse_procs(&file).unwrap_err(),
            CgroupError::BadPid { .. }
        ));
    }

    #[test]
    fn oom_killed_is_false_when_unreadable() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(!Cgroup::new(tmp.path(), "/berth/none").oom_killed());
    }
}
