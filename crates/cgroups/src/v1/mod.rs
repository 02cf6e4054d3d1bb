//! cgroup v1: one hierarchy per controller, each mounted at `<root>/<controller>`
//! (`/sys/fs/cgroup/memory`, …). A container's cgroup is the same relative path in each:
//!
//! ```text
//! <root>/memory/berth/<id>/     memory.limit_in_bytes, memory.memsw.limit_in_bytes, …
//! <root>/cpu/berth/<id>/        cpu.shares, cpu.cfs_quota_us, cpu.cfs_period_us
//! <root>/cpuacct/berth/<id>/    cpuacct.usage, …   (cpu and cpuacct may be one mount,
//!                                                   `cpu,cpuacct`, with symlinks to it)
//! <root>/pids/berth/<id>/       pids.max
//! <root>/freezer/berth/<id>/    freezer.state
//! <root>/cpuset/berth/<id>/     cpuset.cpus, cpuset.mems
//! <root>/blkio/berth/<id>/      blkio.throttle.io_service_bytes
//! <root>/devices/berth/<id>/    devices.allow, devices.deny
//! <root>/hugetlb/berth/<id>/    hugetlb.<size>.limit_in_bytes
//! <root>/net_cls/berth/<id>/    net_cls.classid        (net_cls and net_prio may be one
//! <root>/net_prio/berth/<id>/   net_prio.ifpriomap      mount, `net_cls,net_prio`)
//! <root>/rdma/berth/<id>/       rdma.max
//! ```
//!
//! Controllers that are not mounted are skipped, unless a limit needs them: then the create
//! fails before any directory is made, naming the setting. `unified` (raw cgroup v2 files)
//! is refused. Other v1 hierarchies (`systemd`, the empty cgroup2 at `unified` on hybrid
//! hosts) are ignored.

pub(crate) mod blkio;
pub(crate) mod cpu;
pub(crate) mod cpuacct;
pub(crate) mod cpuset;
pub(crate) mod devices;
pub(crate) mod freezer;
pub(crate) mod hugetlb;
pub(crate) mod memory;
pub(crate) mod net;
pub(crate) mod pids;
pub(crate) mod rdma;

use std::fs as stdfs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::controller::{Limit, Report};
use crate::{CgroupError, DeviceRule, Resources, Stats, fs, parse_procs};

/// How long `destroy` waits for the last processes to leave.
const DESTROY_TIMEOUT: Duration = Duration::from_secs(1);

/// One controller's hierarchy and the container's directory in it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ControllerDir {
    /// Where the hierarchy is mounted (symlinks resolved).
    mount: PathBuf,
    /// `mount` joined with the cgroup's relative path.
    dir: PathBuf,
}

/// A container's cgroup on a v1 host.
#[derive(Debug, Clone)]
pub(crate) struct V1Cgroup {
    root: PathBuf,
    memory: Option<ControllerDir>,
    cpu: Option<ControllerDir>,
    cpuacct: Option<ControllerDir>,
    pids: Option<ControllerDir>,
    freezer: Option<ControllerDir>,
    cpuset: Option<ControllerDir>,
    blkio: Option<ControllerDir>,
    devices: Option<ControllerDir>,
    hugetlb: Option<ControllerDir>,
    net_cls: Option<ControllerDir>,
    net_prio: Option<ControllerDir>,
    rdma: Option<ControllerDir>,
    /// Each existing directory once (cpu and cpuacct may share one), cpuset first so that
    /// it is initialized before anything else could join.
    dirs: Vec<PathBuf>,
}

impl V1Cgroup {
    /// Resolves which hierarchies are mounted under `root` (a few `lstat`s; creates nothing).
    pub(crate) fn new(root: &Path, relative: &Path) -> Self {
        let at = |name: &str| {
            resolve_mount(root, name).map(|mount| ControllerDir {
                dir: mount.join(relative),
                mount,
            })
        };
        let mut cgroup = V1Cgroup {
            root: root.to_path_buf(),
            memory: at("memory"),
            cpu: at("cpu"),
            cpuacct: at("cpuacct"),
            pids: at("pids"),
            freezer: at("freezer"),
            cpuset: at("cpuset"),
            blkio: at("blkio"),
            devices: at("devices"),
            hugetlb: at("hugetlb"),
            net_cls: at("net_cls"),
            net_prio: at("net_prio"),
            rdma: at("rdma"),
            dirs: Vec::new(),
        };
        let all = [
            &cgroup.cpuset,
            &cgroup.memory,
            &cgroup.cpu,
            &cgroup.cpuacct,
            &cgroup.pids,
            &cgroup.freezer,
            &cgroup.blkio,
            &cgroup.devices,
            &cgroup.hugetlb,
            &cgroup.net_cls,
            &cgroup.net_prio,
            &cgroup.rdma,
        ];
        let mut dirs: Vec<PathBuf> = Vec::with_capacity(all.len());
        for controller in all.into_iter().flatten() {
            if !dirs.contains(&controller.dir) {
                dirs.push(controller.dir.clone());
            }
        }
        cgroup.dirs = dirs;
        cgroup
    }

    pub(crate) fn create(
        &self,
        resources: &Resources,
        devices: &[DeviceRule],
    ) -> Result<(), CgroupError> {
        self.check_supported(resources)?;
        for dir in &self.dirs {
            fs::make_dir(dir)?;
        }
        if let Some(cpuset) = &self.cpuset {
            cpuset::initialize(&cpuset.dir, &cpuset.mount)?;
        }
        if !devices.is_empty() {
            let Some(controller) = &self.devices else {
                return Err(self.unsupported("devices"));
            };
            devices::apply(&controller.dir, devices)?;
        }
        self.apply(resources)
    }

    pub(crate) fn update(&self, resources: &Resources) -> Result<(), CgroupError> {
        self.check_supported(resources)?;
        self.apply(resources)
    }

    /// Fails before touching anything when a limit needs a controller that is not mounted.
    fn check_supported(&self, resources: &Resources) -> Result<(), CgroupError> {
        fn need<C: Limit>(slot: &Option<ControllerDir>, r: &Resources) -> Option<&'static str> {
            (slot.is_none() && C::wanted(r)).then_some(C::NAME)
        }
        let missing = need::<memory::Memory>(&self.memory, resources)
            .or_else(|| need::<cpu::Cpu>(&self.cpu, resources))
            .or_else(|| need::<pids::Pids>(&self.pids, resources))
            .or_else(|| need::<cpuset::Cpuset>(&self.cpuset, resources))
            .or_else(|| need::<blkio::Blkio>(&self.blkio, resources));
        if let Some(controller) = missing {
            return Err(self.unsupported(controller));
        }
        let settings = [
            (
                !resources.hugepage_limits.is_empty(),
                &self.hugetlb,
                "hugepageLimits",
                "hugetlb",
            ),
            (
                resources.net_class_id.is_some(),
                &self.net_cls,
                "network.classID",
                "net_cls",
            ),
            (
                !resources.net_priorities.is_empty(),
                &self.net_prio,
                "network.priorities",
                "net_prio",
            ),
            (!resources.rdma.is_empty(), &self.rdma, "rdma", "rdma"),
        ];
        for (wanted, slot, setting, controller) in settings {
            if wanted && slot.is_none() {
                return Err(fs::no_controller(setting, controller));
            }
        }
        if !resources.unified.is_empty() {
            return Err(CgroupError::NotSupported {
                setting: "unified",
                reason: "this host uses cgroup v1; unified settings are cgroup v2 files".into(),
            });
        }
        Ok(())
    }

    fn apply(&self, resources: &Resources) -> Result<(), CgroupError> {
        fn apply_one<C: Limit>(
            slot: &Option<ControllerDir>,
            r: &Resources,
        ) -> Result<(), CgroupError> {
            match slot {
                Some(controller) if C::wanted(r) => C::apply(&controller.dir, r),
                _ => Ok(()),
            }
        }
        apply_one::<memory::Memory>(&self.memory, resources)?;
        apply_one::<cpu::Cpu>(&self.cpu, resources)?;
        apply_one::<pids::Pids>(&self.pids, resources)?;
        apply_one::<cpuset::Cpuset>(&self.cpuset, resources)?;
        apply_one::<blkio::Blkio>(&self.blkio, resources)?;
        if let Some(controller) = &self.hugetlb {
            hugetlb::apply(&controller.dir, resources, crate::CgroupVersion::V1)?;
        }
        if let Some(controller) = &self.net_cls {
            net::apply_class(&controller.dir, resources)?;
        }
        if let Some(controller) = &self.net_prio {
            net::apply_priorities(&controller.dir, resources)?;
        }
        if let Some(controller) = &self.rdma {
            rdma::apply(&controller.dir, resources)?;
        }
        Ok(())
    }

    fn unsupported(&self, controller: &'static str) -> CgroupError {
        CgroupError::Unsupported {
            controller,
            path: self.root.join(controller),
        }
    }

    /// Every controller directory's `tasks` file, opened for writing (see
    /// [`crate::SelfJoin`]).
    pub(crate) fn self_join(&self) -> Result<crate::SelfJoin, CgroupError> {
        let mut files = Vec::with_capacity(self.dirs.len());
        for dir in &self.dirs {
            let path = dir.join("tasks");
            match std::fs::OpenOptions::new().write(true).open(&path) {
                Ok(file) => files.push((path, file)),
                Err(source) => {
                    return Err(CgroupError::Write {
                        path,
                        value: crate::SELF.to_owned(),
                        source,
                    });
                }
            }
        }
        Ok(crate::SelfJoin { files })
    }

    pub(crate) fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        let pid = pid.to_string();
        for dir in &self.dirs {
            fs::write(&dir.join("cgroup.procs"), &pid)?;
        }
        Ok(())
    }

    fn freezer_dir(&self) -> Result<&Path, CgroupError> {
        match &self.freezer {
            Some(controller) => Ok(&controller.dir),
            None => Err(self.unsupported("freezer")),
        }
    }

    pub(crate) fn freeze(&self) -> Result<(), CgroupError> {
        freezer::freeze(self.freezer_dir()?, freezer::FREEZE_TIMEOUT)
    }

    pub(crate) fn thaw(&self) -> Result<(), CgroupError> {
        freezer::thaw(self.freezer_dir()?)
    }

    pub(crate) fn frozen(&self) -> Result<bool, CgroupError> {
        match &self.freezer {
            Some(controller) => freezer::frozen(&controller.dir),
            None => Ok(false),
        }
    }

    pub(crate) fn stats(&self) -> Result<Stats, CgroupError> {
        fn report<C: Report>(
            slot: &Option<ControllerDir>,
            stats: &mut Stats,
        ) -> Result<(), CgroupError> {
            match slot {
                Some(controller) => C::report(&controller.dir, stats),
                None => Ok(()),
            }
        }
        let mut stats = Stats::default();
        report::<cpuacct::CpuAcct>(&self.cpuacct, &mut stats)?;
        report::<cpu::Cpu>(&self.cpu, &mut stats)?;
        report::<memory::Memory>(&self.memory, &mut stats)?;
        report::<pids::Pids>(&self.pids, &mut stats)?;
        report::<blkio::Blkio>(&self.blkio, &mut stats)?;
        Ok(stats)
    }

    pub(crate) fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let dir = self
            .pids
            .as_ref()
            .or(self.memory.as_ref())
            .map(|c| &c.dir)
            .or(self.dirs.first());
        match dir {
            Some(dir) => parse_procs(&dir.join("cgroup.procs")),
            None => Ok(Vec::new()),
        }
    }

    pub(crate) fn oom_killed(&self) -> Result<bool, CgroupError> {
        match &self.memory {
            Some(controller) => memory::oom_killed(&controller.dir),
            None => Ok(false),
        }
    }

    pub(crate) fn destroy(&self) -> Result<(), CgroupError> {
        let deadline = Instant::now() + DESTROY_TIMEOUT;
        let mut first_error = None;
        // Keep going after a failure so one stuck controller does not leak the others.
        for dir in &self.dirs {
            if let Err(e) = fs::remove_dir(dir, deadline) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The distinct directories, for tests.
    #[cfg(test)]
    pub(crate) fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }
}

/// Where hierarchy `name` is mounted under `root`: `root/name` (following a symlink, as
/// hosts link `cpu` and `cpuacct` to a joint `cpu,cpuacct` mount), or the joint mount itself.
pub(crate) fn resolve_mount(root: &Path, name: &str) -> Option<PathBuf> {
    let candidate = root.join(name);
    match stdfs::symlink_metadata(&candidate) {
        Ok(meta) if meta.is_dir() => return Some(candidate),
        Ok(meta) if meta.file_type().is_symlink() => {
            // A relative target is relative to `root`; an absolute one replaces it.
            let target = root.join(stdfs::read_link(&candidate).ok()?);
            return target.is_dir().then_some(target);
        }
        _ => {}
    }
    let joint: &[&str] = match name {
        "cpu" | "cpuacct" => &["cpu,cpuacct", "cpuacct,cpu"],
        "net_cls" | "net_prio" => &["net_cls,net_prio", "net_prio,net_cls"],
        _ => &[],
    };
    joint.iter().map(|j| root.join(j)).find(|p| p.is_dir())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    const CONTROLLERS: [&str; 8] = [
        "memory", "cpu", "cpuacct", "pids", "freezer", "cpuset", "blkio", "devices",
    ];

    /// Files the kernel puts in every new cgroup of each controller (the subset berth uses),
    /// with a fresh cgroup's contents.
    fn kernel_files(controller: &str) -> &'static [(&'static str, &'static str)] {
        match controller {
            "memory" => &[
                ("memory.limit_in_bytes", "9223372036854771712\n"),
                ("memory.memsw.limit_in_bytes", "9223372036854771712\n"),
                ("memory.soft_limit_in_bytes", "9223372036854771712\n"),
                ("memory.usage_in_bytes", "0\n"),
                ("memory.stat", "total_inactive_file 0\n"),
                (
                    "memory.oom_control",
                    "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
                ),
            ],
            "cpu" => &[
                ("cpu.shares", "1024\n"),
                ("cpu.cfs_period_us", "100000\n"),
                ("cpu.cfs_quota_us", "-1\n"),
            ],
            "cpuacct" => &[
                ("cpuacct.usage", "0\n"),
                ("cpuacct.usage_percpu", "0 0 \n"),
                ("cpuacct.stat", "user 0\nsystem 0\n"),
            ],
            "pids" => &[("pids.max", "max\n"), ("pids.current", "0\n")],
            "freezer" => &[("freezer.state", "THAWED\n")],
            "cpuset" => &[
                ("cpuset.cpus", "\n"),
                ("cpuset.mems", "\n"),
                ("cgroup.clone_children", "0\n"),
            ],
            "blkio" => &[("blkio.throttle.io_service_bytes", "Total 0\n")],
            "devices" => &[("devices.allow", ""), ("devices.deny", "")],
            _ => &[],
        }
    }

    /// A v1 root with every controller mounted and `berth/<id>` pre-populated as the kernel
    /// would populate it on mkdir (plain directories cannot grow files by themselves).
    fn fixture(id: &str) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        for controller in CONTROLLERS {
            let mount = tmp.path().join(controller);
            stdfs::create_dir(&mount).unwrap();
            stdfs::write(mount.join("cgroup.procs"), "").unwrap();
            if controller == "cpuset" {
                stdfs::write(mount.join("cpuset.cpus"), "0-1\n").unwrap();
                stdfs::write(mount.join("cpuset.mems"), "0\n").unwrap();
            }
            for level in ["berth".to_string(), format!("berth/{id}")] {
                let dir = mount.join(level);
                stdfs::create_dir(&dir).unwrap();
                stdfs::write(dir.join("cgroup.procs"), "").unwrap();
                for (file, content) in kernel_files(controller) {
                    stdfs::write(dir.join(file), content).unwrap();
                }
            }
        }
        tmp
    }

    fn read(root: &Path, path: &str) -> String {
        stdfs::read_to_string(root.join(path)).unwrap()
    }

    #[test]
    fn create_writes_limits_into_each_controller() {
        let tmp = fixture("abc");
        let cgroup = V1Cgroup::new(tmp.path(), Path::new("berth/abc"));
        assert_eq!(cgroup.dirs().len(), 8);
        let resources = Resources {
            memory: Some(64 << 20),
            memory_swap: Some(128 << 20),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            cpu_shares: Some(512),
            cpuset_cpus: Some("1".into()),
            pids_limit: Some(64),
            ..Default::default()
        };
        cgroup
            .create(&resources, &DeviceRule::docker_defaults())
            .unwrap();
        let root = tmp.path();
        assert_eq!(
            read(root, "memory/berth/abc/memory.limit_in_bytes"),
            "67108864"
        );
        assert_eq!(
            read(root, "memory/berth/abc/memory.memsw.limit_in_bytes"),
            "134217728"
        );
        assert_eq!(read(root, "cpu/berth/abc/cpu.shares"), "512");
        assert_eq!(read(root, "cpu/berth/abc/cpu.cfs_quota_us"), "50000");
        assert_eq!(read(root, "cpu/berth/abc/cpu.cfs_period_us"), "100000");
        assert_eq!(read(root, "pids/berth/abc/pids.max"), "64");
        assert_eq!(read(root, "cpuset/berth/abc/cpuset.cpus"), "1");
        assert_eq!(read(root, "cpuset/berth/abc/cpuset.mems"), "0");
        assert_eq!(read(root, "cpuset/berth/cpuset.cpus"), "0-1");
        assert_eq!(read(root, "devices/berth/abc/devices.deny"), "a\n");
        assert!(read(root, "devices/berth/abc/devices.allow").contains("c 10:200 rwm\n"));
        // Nothing asked of the freezer or blkio: their files are as the kernel made them.
        assert_eq!(read(root, "freezer/berth/abc/freezer.state"), "THAWED\n");
    }

    #[test]
    fn create_makes_missing_directories() {
        let tmp = tempfile::tempdir().unwrap();
        for controller in ["memory", "pids"] {
            stdfs::create_dir(tmp.path().join(controller)).unwrap();
        }
        let cgroup = V1Cgroup::new(tmp.path(), Path::new("berth/new"));
        cgroup.create(&Resources::default(), &[]).unwrap();
        assert!(tmp.path().join("memory/berth/new").is_dir());
        assert!(tmp.path().join("pids/berth/new").is_dir());
        assert!(!tmp.path().join("cpu").exists());
    }

    #[test]
    fn limit_for_an_unmounted_controller_fails_before_any_mkdir() {
        let tmp = tempfile::tempdir().unwrap();
        stdfs::create_dir(tmp.path().join("memory")).unwrap();
        let cgroup = V1Cgroup::new(tmp.path(), Path::new("berth/x"));
        let err = cgroup
            .create(
                &Resources {
                    pids_limit: Some(10),
                    ..Default::default()
                },
                &[],
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                CgroupError::Unsupported {
                    controller: "pids",
                    ..
                }
            ),
            "{err}"
        );
        assert!(!tmp.path().join("memory/berth").exists());
    }

    #[test]
    fn every_oci_setting_reaches_its_file() {
        let tmp = fixture("abc");
        let root = tmp.path();
        for (controller, files) in [
            ("hugetlb", &["hugetlb.2MB.limit_in_bytes"][..]),
            ("net_cls", &["net_cls.classid"][..]),
            ("net_prio", &["net_prio.ifpriomap"][..]),
            ("rdma", &["rdma.max"][..]),
        ] {
            let dir = root.join(controller).join("berth/abc");
            stdfs::create_dir_all(&dir).unwrap();
            for file in files {
                stdfs::write(dir.join(file), "").unwrap();
            }
        }
        let memory = root.join("memory/berth/abc");
        stdfs::write(memory.join("memory.swappiness"), "60").unwrap();
        let cgroup = V1Cgroup::new(root, Path::new("berth/abc"));
        let resources = Resources {
            memory_swappiness: Some(0),
            oom_kill_disable: Some(true),
            cpuset_mems: Some("0".into()),
            hugepage_limits: vec![crate::HugepageLimit {
                page_size: "2MB".into(),
                limit: 2 << 20,
            }],
            net_class_id: Some(7),
            net_priorities: vec![("lo".into(), 2)],
            rdma: vec![crate::RdmaLimit {
                device: "mlx4_0".into(),
                hca_handles: Some(1),
                hca_objects: Some(2),
            }],
            ..Default::default()
        };
        cgroup.create(&resources, &[]).unwrap();
        assert_eq!(read(root, "memory/berth/abc/memory.swappiness"), "0");
        assert_eq!(read(root, "memory/berth/abc/memory.oom_control"), "1");
        assert_eq!(read(root, "cpuset/berth/abc/cpuset.mems"), "0");
        assert_eq!(
            read(root, "hugetlb/berth/abc/hugetlb.2MB.limit_in_bytes"),
            "2097152"
        );
        assert_eq!(read(root, "net_cls/berth/abc/net_cls.classid"), "7");
        assert_eq!(read(root, "net_prio/berth/abc/net_prio.ifpriomap"), "lo 2");
        assert_eq!(
            read(root, "rdma/berth/abc/rdma.max"),
            "mlx4_0 hca_handle=1 hca_object=2"
        );
    }

    #[test]
    fn settings_without_their_controller_are_refused_before_any_mkdir() {
        let tmp = tempfile::tempdir().unwrap();
        stdfs::create_dir(tmp.path().join("memory")).unwrap();
        let cgroup = V1Cgroup::new(tmp.path(), Path::new("berth/x"));
        let cases = [
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
                    net_class_id: Some(1),
                    ..Default::default()
                },
                "network.classID: this host has no net_cls cgroup controller",
            ),
            (
                Resources {
                    rdma: vec![crate::RdmaLimit::default()],
                    ..Default::default()
                },
                "rdma: this host has no rdma cgroup controller",
            ),
            (
                Resources {
                    unified: vec![("memory.high".into(), "1".into())],
                    ..Default::default()
                },
                "unified: this host uses cgroup v1",
            ),
        ];
        for (resources, message) in cases {
            let err = cgroup.create(&resources, &[]).unwrap_err();
            assert!(err.to_string().starts_with(message), "{err}");
            assert!(!tmp.path().join("memory/berth").exists());
        }
    }

    #[test]
    fn joint_cpu_cpuacct_mount_is_one_directory() {
        let tmp = tempfile::tempdir().unwrap();
        stdfs::create_dir(tmp.path().join("cpu,cpuacct")).unwrap();
        symlink("cpu,cpuacct", tmp.path().join("cpu")).unwrap();
        symlink("cpu,cpuacct", tmp.path().join("cpuacct")).unwrap();
        let cgroup = V1Cgroup::new(tmp.path(), Path::new("berth/x"));
        assert_eq!(cgroup.dirs(), [tmp.path().join("cpu,cpuacct/berth/x")]);

        // Without the symlinks, the joint mount is found by name.
        stdfs::remove_file(tmp.path().join("cpu")).unwrap();
        stdfs::remove_file(tmp.path().join("cpuacct")).unwrap();
        let cgroup = V1Cgroup::new(tmp.path(), Path::new("berth/x"));
        assert_eq!(cgroup.dirs(), [tmp.path().join("cpu,cpuacct/berth/x")]);
    }

    #[test]
    fn add_pid_joins_every_hierarchy() {
        let tmp = fixture("abc");
        let cgroup = V1Cgroup::new(tmp.path(), Path::new("berth/abc"));
        cgroup.add_pid(4242).unwrap();
        for controller in CONTROLLERS {
            assert_eq!(
                read(tmp.path(), &format!("{controller}/berth/abc/cgroup.procs")),
                "4242"
            );
        }
        assert_eq!(cgroup.pids().unwrap(), vec![4242]);
    }

    #[test]
    fn stats_parse_kernel_files() {
        let tmp = fixture("abc");
        let root = tmp.path();
        stdfs::write(root.join("cpuacct/berth/abc/cpuacct.usage"), "1500000\n").unwrap();
        stdfs::write(
            root.join("cpuacct/berth/abc/cpuacct.usage_percpu"),
            "1000000 500000 \n",
        )
        .unwrap();
        stdfs::write(
            root.join("cpuacct/berth/abc/cpuacct.stat"),
            "user 1\nsystem 2\n",
        )
        .unwrap();
        stdfs::write(
            root.join("memory/berth/abc/memory.usage_in_bytes"),
            "1048576\n",
        )
        .unwrap();
        stdfs::write(
            root.join("memory/berth/abc/memory.limit_in_bytes"),
            "67108864\n",
        )
        .unwrap();
        stdfs::write(root.join("pids/berth/abc/pids.current"), "2\n").unwrap();
        stdfs::write(root.join("pids/berth/abc/pids.max"), "64\n").unwrap();
        stdfs::write(
            root.join("blkio/berth/abc/blkio.throttle.io_service_bytes"),
            "8:0 Read 10\n8:0 Write 20\n8:0 Total 30\nTotal 30\n",
        )
        .unwrap();
        stdfs::write(
            root.join("cpu/berth/abc/cpu.stat"),
            "nr_periods 4\nnr_throttled 1\nthrottled_time 900\n",
        )
        .unwrap();
        let stats = V1Cgroup::new(root, Path::new("berth/abc")).stats().unwrap();
        assert_eq!(
            stats,
            Stats {
                cpu_usage_ns: 1_500_000,
                percpu_usage_ns: vec![1_000_000, 500_000],
                cpu_user_ns: 10_000_000,
                cpu_system_ns: 20_000_000,
                memory_usage: 1 << 20,
                memory_limit: 64 << 20,
                memory_inactive_file: 0,
                pids_current: 2,
                pids_limit: 64,
                blkio_read_bytes: 10,
                blkio_write_bytes: 20,
                memory_stat: vec![("total_inactive_file".into(), 0)],
                memory_max_usage: None,
                cpu_throttling: crate::Throttling {
                    periods: 4,
                    throttled_periods: 1,
                    throttled_time_ns: 900,
                },
                blkio_service_bytes: [("Read", 10), ("Write", 20), ("Total", 30)]
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
    }

    #[test]
    fn stats_of_a_missing_cgroup_are_zero() {
        let tmp = tempfile::tempdir().unwrap();
        stdfs::create_dir(tmp.path().join("memory")).unwrap();
        let stats = V1Cgroup::new(tmp.path(), Path::new("berth/gone"))
            .stats()
            .unwrap();
        assert_eq!(stats, Stats::default());
    }

    #[test]
    fn freeze_thaw_and_oom() {
        let tmp = fixture("abc");
        let cgroup = V1Cgroup::new(tmp.path(), Path::new("berth/abc"));
        cgroup.freeze().unwrap();
        assert!(cgroup.frozen().unwrap());
        assert_eq!(
            read(tmp.path(), "freezer/berth/abc/freezer.state"),
            "FROZEN"
        );
        cgroup.thaw().unwrap();
        assert!(!cgroup.frozen().unwrap());
        assert!(!cgroup.oom_killed().unwrap());
        stdfs::write(
            tmp.path().join("memory/berth/abc/memory.oom_control"),
            "oom_kill 1\n",
        )
        .unwrap();
        assert!(cgroup.oom_killed().unwrap());
    }

    #[test]
    fn destroy_removes_what_exists_and_keeps_parents() {
        let tmp = tempfile::tempdir().unwrap();
        for controller in CONTROLLERS {
            stdfs::create_dir(tmp.path().join(controller)).unwrap();
        }
        // Only some controllers have the cgroup (a half-made create), one with a child.
        stdfs::create_dir_all(tmp.path().join("memory/berth/abc/nested")).unwrap();
        stdfs::create_dir_all(tmp.path().join("pids/berth/abc")).unwrap();
        let cgroup = V1Cgroup::new(tmp.path(), Path::new("berth/abc"));
        cgroup.destroy().unwrap();
        assert!(!tmp.path().join("memory/berth/abc").exists());
        assert!(!tmp.path().join("pids/berth/abc").exists());
        assert!(tmp.path().join("memory/berth").is_dir());
        cgroup.destroy().unwrap();
    }
}
