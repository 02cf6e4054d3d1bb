//! cgroup v2: one unified hierarchy at `<root>`; a container's cgroup is one directory.
//!
//! ```text
//! <root>/cgroup.subtree_control        +cpu +memory +pids +io +cpuset (enabled if missing)
//! <root>/berth/cgroup.subtree_control  the same, so that containers get the controllers
//! <root>/berth/<id>/                   memory.max, memory.swap.max, cpu.max, cpu.weight,
//!                                      pids.max, cpuset.cpus, cgroup.freeze, cgroup.procs
//! ```
//!
//! Also `io.weight`/`io.bfq.weight` and `io.max`, `cpu.idle`, `cpu.max.burst`, `cpuset.mems`,
//! `hugetlb.<size>.max`, `rdma.max`, and the raw files of `unified`. v2 has no swappiness, no
//! OOM-killer switch, no kernel memory limits, no real-time bandwidth and no net_cls/net_prio:
//! those are refused before anything is created, as are settings whose controller the host
//! does not offer (hugetlb, rdma, or a `unified` file's). `hugetlb`, `rdma` and the
//! controllers `unified` names are enabled in the parents only when asked for.
//!
//! Device rules are not enforced here: v2 has no devices files, only eBPF programs (which
//! this crate does not load).

pub(crate) mod cpu;
pub(crate) mod freezer;
pub(crate) mod io;
pub(crate) mod memory;
pub(crate) mod pids;
pub(crate) mod unified;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::controller::{Limit, Report};
use crate::{CgroupError, Resources, Stats, fs, parse_procs};

/// The controllers a container's cgroup gets, as `cgroup.subtree_control` names them.
const CONTROLLERS: [&str; 5] = ["cpu", "memory", "pids", "io", "cpuset"];

/// How long `destroy` waits for the last processes to leave.
const DESTROY_TIMEOUT: Duration = Duration::from_secs(1);

/// A container's cgroup on a v2 host.
#[derive(Debug, Clone)]
pub(crate) struct V2Cgroup {
    root: PathBuf,
    dir: PathBuf,
}

impl V2Cgroup {
    pub(crate) fn new(root: &Path, relative: &Path) -> Self {
        V2Cgroup {
            root: root.to_path_buf(),
            dir: root.join(relative),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn create(&self, resources: &Resources) -> Result<(), CgroupError> {
        let extra = self.check_supported(resources)?;
        if let Some(parent) = self.dir.parent().filter(|p| *p != self.root) {
            self.enable_controllers(parent, &extra)?;
        }
        fs::make_dir(&self.dir)?;
        self.apply(resources)
    }

    /// Refuses what v2 does not have, or the host does not offer, before anything is made;
    /// returns the controllers beyond [`CONTROLLERS`] the settings need.
    fn check_supported(&self, resources: &Resources) -> Result<Vec<String>, CgroupError> {
        let v1_only = [
            (
                resources.memory_swappiness.is_some(),
                "memory.swappiness",
                "no swappiness",
            ),
            (
                resources.oom_kill_disable == Some(true),
                "memory.disableOOMKiller",
                "no switch for the OOM killer",
            ),
            (
                resources.kernel_memory.is_some(),
                "memory.kernel",
                "no kernel memory limit",
            ),
            (
                resources.kernel_memory_tcp.is_some(),
                "memory.kernelTCP",
                "no kernel TCP memory limit",
            ),
            (
                resources.cpu_realtime_runtime.is_some(),
                "cpu.realtimeRuntime",
                "no real-time bandwidth",
            ),
            (
                resources.cpu_realtime_period.is_some(),
                "cpu.realtimePeriod",
                "no real-time bandwidth",
            ),
            (
                resources.net_class_id.is_some(),
                "network.classID",
                "no net_cls controller",
            ),
            (
                !resources.net_priorities.is_empty(),
                "network.priorities",
                "no net_prio controller",
            ),
        ];
        for (wanted, setting, what) in v1_only {
            if wanted {
                return Err(CgroupError::NotSupported {
                    setting,
                    reason: format!("this host uses cgroup v2, which has {what}"),
                });
            }
        }
        let available = fs::read(&self.root.join("cgroup.controllers"))?.unwrap_or_default();
        let mut extra: Vec<(String, &'static str)> = Vec::new();
        if !resources.hugepage_limits.is_empty() {
            extra.push(("hugetlb".into(), "hugepageLimits"));
        }
        if !resources.rdma.is_empty() {
            extra.push(("rdma".into(), "rdma"));
        }
        for (file, _) in &resources.unified {
            let controller = unified::controller_of(file)?;
            if !matches!(
                controller,
                "cgroup" | "cpu" | "memory" | "pids" | "io" | "cpuset"
            ) {
                extra.push((controller.to_owned(), "unified"));
            }
        }
        for (controller, setting) in &extra {
            if !has_token(&available, controller) {
                return Err(fs::no_controller(setting, controller));
            }
        }
        Ok(extra.into_iter().map(|(c, _)| c).collect())
    }

    /// Makes the controllers available to children of `parent`, enabling them on every level
    /// from the root down. The common case (already done) costs one read.
    fn enable_controllers(&self, parent: &Path, extra: &[String]) -> Result<(), CgroupError> {
        let wanted_all = |enabled: &str| {
            CONTROLLERS.iter().all(|c| has_token(enabled, c))
                && extra.iter().all(|c| has_token(enabled, c))
        };
        match fs::read(&parent.join("cgroup.subtree_control"))? {
            Some(enabled) if wanted_all(&enabled) => return Ok(()),
            Some(_) => {}
            None => {
                fs::make_dir(parent)?;
            }
        }
        let available = fs::read(&self.root.join("cgroup.controllers"))?.unwrap_or_default();
        let wanted: Vec<&str> = CONTROLLERS
            .into_iter()
            .chain(extra.iter().map(String::as_str))
            .filter(|c| has_token(&available, c))
            .collect();
        let mut levels: Vec<&Path> = parent
            .ancestors()
            .take_while(|p| p.starts_with(&self.root))
            .collect();
        levels.reverse();
        for level in levels {
            let control = level.join("cgroup.subtree_control");
            let enabled = fs::read(&control)?.unwrap_or_default();
            let missing: Vec<String> = wanted
                .iter()
                .filter(|c| !has_token(&enabled, c))
                .map(|c| format!("+{c}"))
                .collect();
            if missing.is_empty() {
                continue;
            }
            if fs::write_raw(&control, &missing.join(" ")).is_err() {
                // The kernel rejects the whole write if one controller cannot be enabled
                // (e.g. cpuset where a level has processes). Enable what can be; a limit
                // that needs a missing one fails later as `Unsupported`.
                for token in &missing {
                    let _ = fs::write_raw(&control, token);
                }
            }
        }
        Ok(())
    }

    pub(crate) fn update(&self, resources: &Resources) -> Result<(), CgroupError> {
        self.check_supported(resources)?;
        self.apply(resources)
    }

    fn apply(&self, resources: &Resources) -> Result<(), CgroupError> {
        fn apply_one<C: Limit>(dir: &Path, r: &Resources) -> Result<(), CgroupError> {
            if C::wanted(r) {
                C::apply(dir, r)
            } else {
                Ok(())
            }
        }
        apply_one::<memory::Memory>(&self.dir, resources)?;
        apply_one::<cpu::Cpu>(&self.dir, resources)?;
        apply_one::<pids::Pids>(&self.dir, resources)?;
        apply_one::<crate::cpuset::Cpuset>(&self.dir, resources)?;
        apply_one::<io::Io>(&self.dir, resources)?;
        crate::v1::hugetlb::apply(&self.dir, resources, crate::CgroupVersion::V2)?;
        crate::v1::rdma::apply(&self.dir, resources)?;
        unified::apply(&self.dir, resources)
    }

    pub(crate) fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        fs::write(&self.dir.join("cgroup.procs"), &pid.to_string())
    }

    pub(crate) fn freeze(&self) -> Result<(), CgroupError> {
        freezer::freeze(&self.dir, freezer::FREEZE_TIMEOUT)
    }

    pub(crate) fn thaw(&self) -> Result<(), CgroupError> {
        freezer::thaw(&self.dir)
    }

    pub(crate) fn frozen(&self) -> Result<bool, CgroupError> {
        freezer::frozen(&self.dir)
    }

    pub(crate) fn stats(&self) -> Result<Stats, CgroupError> {
        let mut stats = Stats::default();
        cpu::Cpu::report(&self.dir, &mut stats)?;
        memory::Memory::report(&self.dir, &mut stats)?;
        pids::Pids::report(&self.dir, &mut stats)?;
        io::Io::report(&self.dir, &mut stats)?;
        Ok(stats)
    }

    pub(crate) fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        parse_procs(&self.dir.join("cgroup.procs"))
    }

    pub(crate) fn oom_killed(&self) -> Result<bool, CgroupError> {
        memory::oom_killed(&self.dir)
    }

    pub(crate) fn destroy(&self) -> Result<(), CgroupError> {
        fs::remove_dir(&self.dir, Instant::now() + DESTROY_TIMEOUT)
    }
}

/// Whether a space-separated controller list contains `name` (tolerating the `+` a fixture
/// keeps from what was written).
fn has_token(list: &str, name: &str) -> bool {
    list.split_ascii_whitespace()
        .any(|t| t.trim_start_matches('+') == name)
}

#[cfg(test)]
mod tests {
    use std::fs as stdfs;

    use super::*;

    const KERNEL_FILES: [(&str, &str); 12] = [
        ("cgroup.procs", ""),
        ("cgroup.freeze", "0\n"),
        ("cgroup.events", "populated 0\nfrozen 0\n"),
        ("memory.max", "max\n"),
        ("memory.swap.max", "max\n"),
        ("memory.low", "0\n"),
        ("memory.current", "0\n"),
        ("cpu.max", "max 100000\n"),
        ("cpu.weight", "100\n"),
        ("pids.max", "max\n"),
        ("pids.current", "0\n"),
        ("cpuset.cpus", "\n"),
    ];

    /// A pure v2 root whose `berth/<id>` the "kernel" populated; `berth` has no
    /// controllers enabled yet.
    fn fixture(id: &str) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        stdfs::write(
            root.join("cgroup.controllers"),
            "cpuset cpu io memory hugetlb pids rdma misc\n",
        )
        .unwrap();
        stdfs::write(root.join("cgroup.subtree_control"), "memory pids\n").unwrap();
        let berth = root.join("berth");
        stdfs::create_dir(&berth).unwrap();
        stdfs::write(berth.join("cgroup.controllers"), "memory pids\n").unwrap();
        stdfs::write(berth.join("cgroup.subtree_control"), "\n").unwrap();
        let dir = berth.join(id);
        stdfs::create_dir(&dir).unwrap();
        for (file, content) in KERNEL_FILES {
            stdfs::write(dir.join(file), content).unwrap();
        }
        tmp
    }

    fn read(root: &Path, path: &str) -> String {
        stdfs::read_to_string(root.join(path)).unwrap()
    }

    #[test]
    fn create_enables_controllers_and_writes_limits() {
        let tmp = fixture("abc");
        let root = tmp.path();
        let cgroup = V2Cgroup::new(root, Path::new("berth/abc"));
        let resources = Resources {
            memory: Some(64 << 20),
            memory_swap: Some(96 << 20),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            cpu_shares: Some(1024),
            cpuset_cpus: Some("0".into()),
            pids_limit: Some(0),
            ..Default::default()
        };
        cgroup.create(&resources).unwrap();
        // Only the missing ones are added at the root; all five at berth.
        assert_eq!(read(root, "cgroup.subtree_control"), "+cpu +io +cpuset");
        assert_eq!(
            read(root, "berth/cgroup.subtree_control"),
            "+cpu +memory +pids +io +cpuset"
        );
        assert_eq!(read(root, "berth/abc/memory.max"), "67108864");
        assert_eq!(read(root, "berth/abc/memory.swap.max"), "33554432");
        assert_eq!(read(root, "berth/abc/cpu.max"), "50000 100000");
        assert_eq!(read(root, "berth/abc/cpu.weight"), "39");
        assert_eq!(read(root, "berth/abc/pids.max"), "max");
        assert_eq!(read(root, "berth/abc/cpuset.cpus"), "0");
        assert_eq!(read(root, "berth/abc/memory.low"), "0\n");
    }

    #[test]
    fn v1_only_settings_are_refused_before_any_mkdir() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        stdfs::write(root.join("cgroup.controllers"), "cpu memory pids io\n").unwrap();
        let cgroup = V2Cgroup::new(root, Path::new("berth/abc"));
        let cases = [
            (
                Resources {
                    memory_swappiness: Some(10),
                    ..Default::default()
                },
                "memory.swappiness: this host uses cgroup v2",
            ),
            (
                Resources {
                    kernel_memory: Some(1 << 20),
                    ..Default::default()
                },
                "memory.kernel: ",
            ),
            (
                Resources {
                    cpu_realtime_runtime: Some(10),
                    ..Default::default()
                },
                "cpu.realtimeRuntime: ",
            ),
            (
                Resources {
                    net_class_id: Some(1),
                    ..Default::default()
                },
                "network.classID: ",
            ),
            (
                Resources {
                    hugepage_limits: vec![crate::HugepageLimit {
                        page_size: "2MB".into(),
                        limit: 1,
                    }],
                    ..Default::default()
                },
                "hugepageLimits: this host has no hugetlb cgroup controller",
            ),
            (
                Resources {
                    unified: vec![("misc.max".into(), "x 1".into())],
                    ..Default::default()
                },
                "unified: this host has no misc cgroup controller",
            ),
        ];
        for (resources, message) in cases {
            let err = cgroup.create(&resources).unwrap_err();
            assert!(err.to_string().starts_with(message), "{err}");
            assert!(!root.join("berth").exists());
        }
    }

    #[test]
    fn oci_settings_reach_their_v2_files() {
        let tmp = fixture("abc");
        let root = tmp.path();
        let dir = root.join("berth/abc");
        for file in [
            "cpu.idle",
            "cpu.max.burst",
            "cpuset.mems",
            "io.weight",
            "io.max",
            "hugetlb.2MB.max",
            "memory.high",
        ] {
            stdfs::write(dir.join(file), "").unwrap();
        }
        let resources = Resources {
            cpu_idle: Some(1),
            cpu_burst: Some(5000),
            cpuset_mems: Some("0".into()),
            block_io: Some(crate::BlockIo {
                weight: Some(1000),
                write_bps: vec![crate::ThrottleDevice {
                    major: 254,
                    minor: 0,
                    rate: 4096,
                }],
                ..Default::default()
            }),
            hugepage_limits: vec![crate::HugepageLimit {
                page_size: "2MB".into(),
                limit: 2 << 20,
            }],
            unified: vec![("memory.high".into(), "50000000".into())],
            ..Default::default()
        };
        V2Cgroup::new(root, Path::new("berth/abc"))
            .create(&resources)
            .unwrap();
        assert_eq!(
            read(root, "berth/cgroup.subtree_control"),
            "+cpu +memory +pids +io +cpuset +hugetlb"
        );
        assert_eq!(read(root, "berth/abc/cpu.idle"), "1");
        assert_eq!(read(root, "berth/abc/cpu.max.burst"), "5000");
        assert_eq!(read(root, "berth/abc/cpuset.mems"), "0");
        assert_eq!(read(root, "berth/abc/io.weight"), "10000");
        assert_eq!(read(root, "berth/abc/io.max"), "254:0 wbps=4096");
        assert_eq!(read(root, "berth/abc/hugetlb.2MB.max"), "2097152");
        assert_eq!(read(root, "berth/abc/memory.high"), "50000000");
    }

    #[test]
    fn enabled_parent_is_left_alone() {
        let tmp = fixture("abc");
        let root = tmp.path();
        stdfs::write(
            root.join("berth/cgroup.subtree_control"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        V2Cgroup::new(root, Path::new("berth/abc"))
            .create(&Resources::default())
            .unwrap();
        assert_eq!(read(root, "cgroup.subtree_control"), "memory pids\n");
    }

    #[test]
    fn unavailable_controllers_are_not_requested() {
        let tmp = fixture("abc");
        let root = tmp.path();
        stdfs::write(root.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        V2Cgroup::new(root, Path::new("berth/abc"))
            .create(&Resources::default())
            .unwrap();
        assert_eq!(
            read(root, "berth/cgroup.subtree_control"),
            "+cpu +memory +pids"
        );
    }

    #[test]
    fn create_makes_the_parent_when_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        stdfs::write(root.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        stdfs::write(root.join("cgroup.subtree_control"), "cpu memory pids\n").unwrap();
        V2Cgroup::new(root, Path::new("berth/new"))
            .create(&Resources::default())
            .unwrap();
        assert!(root.join("berth/new").is_dir());
    }

    #[test]
    fn stats_pids_freeze_oom() {
        let tmp = fixture("abc");
        let root = tmp.path();
        let dir = root.join("berth/abc");
        stdfs::write(
            dir.join("cpu.stat"),
            "usage_usec 20\nuser_usec 15\nsystem_usec 5\nnr_periods 3\nnr_throttled 2\nthrottled_usec 7\n",
        )
        .unwrap();
        stdfs::write(dir.join("memory.current"), "4096\n").unwrap();
        stdfs::write(dir.join("memory.max"), "8388608\n").unwrap();
        stdfs::write(dir.join("memory.stat"), "inactive_file 1024\n").unwrap();
        stdfs::write(dir.join("pids.current"), "2\n").unwrap();
        stdfs::write(dir.join("io.stat"), "8:0 rbytes=7 wbytes=9 rios=1 wios=1\n").unwrap();
        stdfs::write(dir.join("cgroup.procs"), "10\n11\n").unwrap();
        let cgroup = V2Cgroup::new(root, Path::new("berth/abc"));
        let stats = cgroup.stats().unwrap();
        assert_eq!(
            stats,
            Stats {
                cpu_usage_ns: 20_000,
                percpu_usage_ns: Vec::new(),
                cpu_user_ns: 15_000,
                cpu_system_ns: 5_000,
                memory_usage: 4096,
                memory_limit: 8 << 20,
                memory_inactive_file: 1024,
                pids_current: 2,
                pids_limit: 0,
                blkio_read_bytes: 7,
                blkio_write_bytes: 9,
                memory_stat: vec![("inactive_file".into(), 1024)],
                memory_max_usage: None,
                cpu_throttling: crate::Throttling {
                    periods: 3,
                    throttled_periods: 2,
                    throttled_time_ns: 7_000,
                },
                blkio_service_bytes: [("read", 7), ("write", 9)]
                    .into_iter()
                    .map(|(op, value)| crate::BlkioEntry {
                        major: 8,
                        minor: 0,
                        op: op.into(),
                        value,
                    })
                    .collect(),
            }
        );
        assert_eq!(cgroup.pids().unwrap(), vec![10, 11]);
        stdfs::write(dir.join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        cgroup.freeze().unwrap();
        assert!(cgroup.frozen().unwrap());
        cgroup.thaw().unwrap();
        assert_eq!(read(root, "berth/abc/cgroup.freeze"), "0");
        assert!(!cgroup.oom_killed().unwrap());
    }

    #[test]
    fn destroy_tolerates_missing() {
        let tmp = tempfile::tempdir().unwrap();
        stdfs::create_dir_all(tmp.path().join("berth/abc")).unwrap();
        let cgroup = V2Cgroup::new(tmp.path(), Path::new("berth/abc"));
        cgroup.destroy().unwrap();
        assert!(!tmp.path().join("berth/abc").exists());
        assert!(tmp.path().join("berth").is_dir());
        cgroup.destroy().unwrap();
    }
}
