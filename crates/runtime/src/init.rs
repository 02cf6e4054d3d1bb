//! `create` / `start`: the container init.
//!
//! The parent converts the spec into a plan (everything that can be invalid fails here,
//! before any process exists), creates the cgroup, then clones the init directly into its
//! new namespaces (one `clone` with every `CLONE_NEW*` flag). The init builds its rootfs,
//! drops privileges, reports `R` over the sync pipe ([`crate::sync`]) and blocks until
//! `start` — on a pipe for [`create`], on the `exec.fifo` for `berth oci`. A failure before
//! that point is returned by `create`, after the child was reaped.
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::signal::{Signal, kill};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxIdMapping, Spec};

use crate::INIT_ANNOTATION;
use crate::namespaces::{NamespacePlan, clone_into};
use crate::process::ProcessPlan;
use crate::rootfs::RootfsPlan;
use crate::rootfs::devices::DevicePlan;
use crate::rootfs::mount::{CgroupHost, MountPlan, propagation};
use crate::sync::{self, ExecFailure, Failure, Report, at, at_io};
use crate::sys::CloneResult;
use crate::{OverlayMount, ProcessIo, ProcessIo as InitIo, RuntimeError, RuntimeOptions, Step};

/// How the init learns that it may exec.
#[derive(Debug)]
pub(crate) enum StartGate {
    /// A byte on the control pipe ([`PendingInit::start`]).
    Pipe,
    /// Opening `exec.fifo` for writing blocks until `berth oci start` opens it for reading.
    /// The fd is an `O_PATH` handle, reopened through /proc/self/fd after pivot_root.
    Fifo(OwnedFd),
}

/// An init process set up up to its `execve`, waiting to be started.
///
/// Dropping it without `start` makes the init exit; the caller still reaps it.
#[derive(Debug)]
pub struct PendingInit {
    pid: i32,
    control: OwnedFd,
    report: OwnedFd,
}

impl PendingInit {
    /// The init's pid in the caller's pid namespace.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Lets the init exec its process; returns once exec succeeded or failed. On
    /// [`RuntimeError::Exec`] the init exits with the error's exit code; the caller reaps it
    /// like any exit.
    pub fn start(self) -> Result<(), RuntimeError> {
        sync::send_byte(self.control.as_fd(), sync::START)
            .map_err(|e| RuntimeError::host("start container process", "", e))?;
        match sync::read_report(&self.report)? {
            Report::Closed => Ok(()),
            Report::ExecFailed(failure) => Err(failure.into_error()),
            Report::SetupFailed(failure) => Err(failure.into_error()),
            Report::Ready | Report::Pid(_) => Err(RuntimeError::InitDied { pid: self.pid }),
        }
    }
}

/// The container's cgroup: its path and limits.
#[derive(Debug, Clone)]
pub(crate) struct CgroupPlan {
    pub path: String,
    pub resources: berth_cgroups::Resources,
    /// The spec's device rules (v1 device cgroup); empty keeps the parent's (privileged).
    pub devices: Vec<berth_cgroups::DeviceRule>,
}

/// OCI device cgroup rules as berth-cgroups writes them. A single "allow everything" rule
/// (`--privileged`) becomes an empty list: the container keeps its parent's (full) access.
fn device_rules(rules: &[oci_spec::runtime::LinuxDeviceCgroup]) -> Vec<berth_cgroups::DeviceRule> {
    use oci_spec::runtime::LinuxDeviceType as T;
    let everything = |r: &oci_spec::runtime::LinuxDeviceCgroup| {
        r.allow()
            && matches!(r.typ(), None | Some(T::A))
            && r.major().is_none()
            && r.minor().is_none()
    };
    if rules.len() == 1 && everything(&rules[0]) {
        return Vec::new();
    }
    rules
        .iter()
        .map(|r| berth_cgroups::DeviceRule {
            allow: r.allow(),
            kind: match r.typ() {
                Some(T::C) | Some(T::U) => berth_cgroups::DeviceKind::Char,
                Some(T::B) => berth_cgroups::DeviceKind::Block,
                _ => berth_cgroups::DeviceKind::All,
            },
            major: r.major().and_then(|m| u32::try_from(m).ok()),
            minor: r.minor().and_then(|m| u32::try_from(m).ok()),
            access: r.access().clone().unwrap_or_else(|| "rwm".to_string()),
        })
        .collect()
}

impl CgroupPlan {
    pub(crate) fn from_spec(spec: &Spec) -> Option<Self> {
        let linux = spec.linux().as_ref()?;
        let path = linux
            .cgroups_path()
            .as_ref()?
            .to_string_lossy()
            .into_owned();
        let mut resources = berth_cgroups::Resources::default();
        if let Some(res) = linux.resources() {
            if let Some(memory) = res.memory() {
                resources.memory = memory.limit();
                resources.memory_swap = memory.swap();
                resources.memory_reservation = memory.reservation();
            }
            if let Some(cpu) = res.cpu() {
                resources.cpu_quota = cpu.quota();
                resources.cpu_period = cpu.period();
                resources.cpu_shares = cpu.shares();
                resources.cpuset_cpus = cpu.cpus().clone();
            }
            if let Some(pids) = res.pids() {
                resources.pids_limit = Some(pids.limit());
            }
        }
        let devices = linux
            .resources()
            .as_ref()
            .and_then(|r| r.devices().clone())
            .map(|rules| device_rules(&rules))
            .unwrap_or_else(berth_cgroups::DeviceRule::docker_defaults);
        Some(CgroupPlan {
            path,
            resources,
            devices,
        })
    }

    pub(crate) fn handle(&self) -> berth_cgroups::Cgroup {
        berth_cgroups::Cgroup::new(Path::new(CGROUP_ROOT), &self.path)
    }

    pub(crate) fn error(&self, source: berth_cgroups::CgroupError) -> RuntimeError {
        RuntimeError::Cgroup {
            path: self.path.clone(),
            source,
        }
    }
}

/// What decides the sysctls a spec may set: its ipc, uts and network namespaces. A network
/// namespace joined by path is the host's when it is the caller's own.
fn sysctl_namespaces(
    namespaces: &[oci_spec::runtime::LinuxNamespace],
) -> Result<crate::sysctl::SysctlNamespaces, RuntimeError> {
    use crate::sysctl::NetworkNamespace;
    use oci_spec::runtime::LinuxNamespaceType as T;
    let has = |typ| namespaces.iter().any(|ns| ns.typ() == typ);
    let network = match namespaces.iter().find(|ns| ns.typ() == T::Network) {
        None => NetworkNamespace::Host,
        Some(ns) => match ns.path() {
            None => NetworkNamespace::Private,
            Some(path) => {
                let stat = |p: &Path| {
                    nix::sys::stat::stat(p).map_err(|e| RuntimeError::nix("stat namespace", p, e))
                };
                let (joined, own) = (stat(path)?, stat(Path::new("/proc/self/ns/net"))?);
                if (joined.st_dev, joined.st_ino) == (own.st_dev, own.st_ino) {
                    NetworkNamespace::Host
                } else {
                    NetworkNamespace::Private
                }
            }
        },
    };
    Ok(crate::sysctl::SysctlNamespaces {
        ipc: has(T::Ipc),
        uts: has(T::Uts),
        network,
    })
}

/// Where cgroupfs is mounted on the host.
pub(crate) const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Everything the init does, prepared by the parent.
#[derive(Debug)]
pub(crate) struct InitPlan {
    pub namespaces: NamespacePlan,
    pub rootfs: RootfsPlan,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub sysctls: Vec<(PathBuf, String)>,
    pub process: ProcessPlan,
    pub cgroup: Option<CgroupPlan>,
    pub uid_mappings: Vec<LinuxIdMapping>,
    pub gid_mappings: Vec<LinuxIdMapping>,
}

impl InitPlan {
    pub(crate) fn new(
        spec: &Spec,
        bundle: &Path,
        overlay: Option<&OverlayMount>,
        seccomp_cache: Option<&Path>,
    ) -> Result<Self, RuntimeError> {
        let invalid = |field, reason: &str| RuntimeError::InvalidSpec {
            field,
            reason: reason.to_owned(),
        };
        let linux = spec.linux().clone().unwrap_or_default();
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| invalid("process", "missing"))?;
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| invalid("root", "missing"))?;
        let namespaces = NamespacePlan::new(linux.namespaces().as_deref().unwrap_or_default())?;
        if !namespaces.has_mount {
            return Err(invalid("linux.namespaces", "a mount namespace is required"));
        }
        let root_propagation = match linux.rootfs_propagation().as_deref() {
            None | Some("") => MsFlags::MS_SLAVE | MsFlags::MS_REC,
            Some(name) => {
                propagation(name).ok_or_else(|| invalid("linux.rootfsPropagation", name))?
            }
        };
        let devices = device_plans(linux.devices().as_deref().unwrap_or_default());
        let rootfs = RootfsPlan {
            rootfs: bundle.join(root.path()),
            overlay: overlay.cloned(),
            root_propagation,
            mounts: spec
                .mounts()
                .iter()
                .flatten()
                .map(|m| MountPlan::new(m, bundle))
                .collect(),
            devices,
            cgroup: CgroupHost {
                root: PathBuf::from(CGROUP_ROOT),
                namespaced: namespaces.new_cgroup,
            },
            masked_paths: linux
                .masked_paths()
                .iter()
                .flatten()
                .map(PathBuf::from)
                .collect(),
            readonly_paths: linux
                .readonly_paths()
                .iter()
                .flatten()
                .map(PathBuf::from)
                .collect(),
            readonly_root: root.readonly().unwrap_or(false),
        };
        let sysctls = sysctl_plan(&linux)?;
        Ok(InitPlan {
            namespaces,
            rootfs,
            hostname: spec.hostname().clone().filter(|h| !h.is_empty()),
            domainname: spec.domainname().clone().filter(|d| !d.is_empty()),
            sysctls,
            process: {
                let mut plan = ProcessPlan::new(process, linux.seccomp().as_ref(), seccomp_cache)?;
                plan.init = spec
                    .annotations()
                    .as_ref()
                    .and_then(|a| a.get(INIT_ANNOTATION))
                    .is_some_and(|v| v == "true");
                plan
            },
            cgroup: CgroupPlan::from_spec(spec),
            uid_mappings: linux.uid_mappings().clone().unwrap_or_default(),
            gid_mappings: linux.gid_mappings().clone().unwrap_or_default(),
        })
    }

    /// The child waits for `G` when the parent has work to do on it first.
    fn waits_for_parent(&self) -> bool {
        self.cgroup.is_some() || self.namespaces.new_user
    }
}

/// The init's side: returns only on failure (or never, once exec succeeds).
fn run_init(
    plan: &InitPlan,
    io: &InitIo,
    gate: &StartGate,
    control: &OwnedFd,
    report: &OwnedFd,
) -> Result<ExecFailure, Failure> {
    if plan.waits_for_parent() {
        match sync::read_byte(control.as_fd()) {
            Ok(Some(sync::GO)) => {}
            _ => crate::sys::exit_now(1),
        }
    }
    plan.namespaces.enter()?;
    if plan.namespaces.new_cgroup {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .map_err(at(Step::UnshareCgroupNamespace, Path::new("")))?;
    }
    let console_path = match io {
        InitIo::Stdio(stdio) => {
            crate::console::install(stdio)?;
            if stdio.console {
                Some(crate::console::terminal_path()?)
            } else {
                None
            }
        }
        InitIo::Console { .. } => None,
    };
    plan.rootfs.prepare(console_path.as_deref())?;
    let _socket_stdio = match io {
        InitIo::Console { socket, size } => {
            let (stdio, name) = crate::console::open_for_socket(socket, *size)?;
            crate::console::install(&stdio)?;
            let root = berth_fs::Root::open(Path::new("/"))
                .map_err(at_io(Step::Console, Path::new("/")))?;
            crate::rootfs::devices::bind_console(&root, &name)?;
            Some(stdio)
        }
        InitIo::Stdio(_) => None,
    };
    if !plan.sysctls.is_empty() {
        let proc_sys = Path::new("/proc/sys");
        let dir = crate::sysctl::open_proc_sys().map_err(at_io(Step::Sysctl, proc_sys))?;
        for (path, value) in &plan.sysctls {
            crate::sysctl::write(&dir, path, value)
                .map_err(at_io(Step::Sysctl, &proc_sys.join(path)))?;
        }
    }
    if let Some(hostname) = &plan.hostname {
        nix::unistd::sethostname(hostname).map_err(at(Step::Hostname, Path::new(hostname)))?;
    }
    if let Some(domainname) = &plan.domainname {
        crate::sys::set_domainname(domainname)
            .map_err(at_io(Step::Domainname, Path::new(domainname)))?;
    }
    plan.rootfs.finish()?;
    plan.process.run(report.as_fd(), || {
        sync::send_byte(report.as_fd(), sync::READY)
            .map_err(at_io(Step::WaitForStart, Path::new("")))?;
        match gate {
            StartGate::Pipe => match sync::read_byte(control.as_fd()) {
                Ok(Some(sync::START)) => Ok(()),
                // The caller dropped the PendingInit: nothing to run.
                _ => crate::sys::exit_now(0),
            },
            StartGate::Fifo(fifo) => {
                use std::os::fd::AsRawFd;
                let path = PathBuf::from(format!("/proc/self/fd/{}", fifo.as_raw_fd()));
                let opened =
                    nix::fcntl::open(&path, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())
                        .map_err(at(Step::WaitForStart, &path))?;
                nix::unistd::write(&opened, b"0").map_err(at(Step::WaitForStart, &path))?;
                Ok(())
            }
        }
    })
}

/// Reaps `pid`, retrying on EINTR.
pub(crate) fn reap(pid: i32) {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Err(nix::Error::EINTR) => continue,
            _ => return,
        }
    }
}

fn kill_and_reap(pid: i32) {
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    reap(pid);
}

fn write_id_map(pid: i32, file: &str, mappings: &[LinuxIdMapping]) -> Result<(), RuntimeError> {
    if mappings.is_empty() {
        return Ok(());
    }
    let text: String = mappings
        .iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect();
    let path = PathBuf::from(format!("/proc/{pid}/{file}"));
    std::fs::write(&path, text).map_err(|e| RuntimeError::host("write id map", path, e))
}

/// Clones and sets up the init; shared by [`create`] and `berth oci create`. A failure
/// leaves nothing behind: the child is reaped and the cgroup made for it is removed.
pub(crate) fn spawn(
    plan: InitPlan,
    io: InitIo,
    gate: StartGate,
) -> Result<PendingInit, RuntimeError> {
    let cgroup = plan.cgroup.clone();
    spawn_inner(plan, io, gate).inspect_err(|_| {
        if let Some(cgroup) = cgroup {
            let _ = cgroup.handle().destroy();
        }
    })
}

fn spawn_inner(plan: InitPlan, io: InitIo, gate: StartGate) -> Result<PendingInit, RuntimeError> {
    if let Some(cgroup) = &plan.cgroup {
        cgroup
            .handle()
            .create_with_devices(&cgroup.resources, &cgroup.devices)
            .map_err(|e| cgroup.error(e))?;
    }
    let (control_read, control_write) = sync::pipe()?;
    let (report_read, report_write) = sync::pipe()?;
    let cloned = clone_into(
        plan.namespaces.join_pid.as_ref(),
        plan.namespaces.clone_flags,
    )?;
    let pid = match cloned {
        CloneResult::Child => {
            drop(control_write);
            drop(report_read);
            let outcome = run_init(&plan, &io, &gate, &control_read, &report_write);
            match outcome {
                Err(failure) => {
                    sync::send(report_write.as_fd(), sync::SETUP_FAILED, &failure);
                    crate::sys::exit_now(1)
                }
                Ok(exec_failure) => {
                    let code = exec_failure.exit_code;
                    match gate {
                        StartGate::Pipe => {
                            sync::send(report_write.as_fd(), sync::EXEC_FAILED, &exec_failure)
                        }
                        // `berth oci start` has no pipe to the init: tell the container's stderr.
                        StartGate::Fifo(_) => {
                            let line = format!("{}\n", exec_failure.message);
                            let _ = nix::unistd::write(std::io::stderr(), line.as_bytes());
                        }
                    }
                    crate::sys::exit_now(code)
                }
            }
        }
        CloneResult::Parent(pid) => pid,
    };
    drop(control_read);
    drop(report_write);
    drop(io);
    drop(gate);
    let prepared = (|| {
        if plan.namespaces.new_user {
            write_id_map(pid, "uid_map", &plan.uid_mappings)?;
            write_id_map(pid, "gid_map", &plan.gid_mappings)?;
        }
        if let Some(cgroup) = &plan.cgroup {
            cgroup.handle().add_pid(pid).map_err(|e| cgroup.error(e))?;
        }
        if plan.waits_for_parent() {
            sync::send_byte(control_write.as_fd(), sync::GO)
                .map_err(|e| RuntimeError::host("release container init", "", e))?;
        }
        Ok(())
    })();
    if let Err(err) = prepared {
        kill_and_reap(pid);
        return Err(err);
    }
    match sync::read_report(&report_read) {
        Ok(Report::Ready) => Ok(PendingInit {
            pid,
            control: control_write,
            report: report_read,
        }),
        Ok(Report::SetupFailed(failure)) => {
            reap(pid);
            Err(failure.into_error())
        }
        Ok(Report::ExecFailed(failure)) => {
            reap(pid);
            Err(failure.into_error())
        }
        Ok(Report::Closed) => {
            reap(pid);
            Err(RuntimeError::InitDied { pid })
        }
        Ok(Report::Pid(_)) => {
            kill_and_reap(pid);
            Err(RuntimeError::InitDied { pid })
        }
        Err(err) => {
            kill_and_reap(pid);
            Err(err)
        }
    }
}

/// Clones the container init with `spec`'s namespaces, sets it up and leaves it blocked before
/// exec. `bundle` is the directory `spec.root.path` is relative to. Call from a single-threaded
/// process; the init is a child of the caller.
pub fn create(
    spec: &Spec,
    bundle: &Path,
    rootfs: Option<&OverlayMount>,
    io: impl Into<ProcessIo>,
) -> Result<PendingInit, RuntimeError> {
    create_with(spec, bundle, rootfs, io, &RuntimeOptions::default())
}

/// [`create`] with explicit host-side options.
pub fn create_with(
    spec: &Spec,
    bundle: &Path,
    rootfs: Option<&OverlayMount>,
    io: impl Into<ProcessIo>,
    options: &RuntimeOptions,
) -> Result<PendingInit, RuntimeError> {
    let mut plan = InitPlan::new(spec, bundle, rootfs, options.seccomp_cache.as_deref())?;
    plan.process.die_with_parent = options.die_with_parent;
    spawn(plan, io.into(), StartGate::Pipe)
}

/// The spec's devices, plus the standard nodes it omits (as runc, every container gets them).
fn device_plans(devices: &[oci_spec::runtime::LinuxDevice]) -> Vec<DevicePlan> {
    let mut devices: Vec<DevicePlan> = devices.iter().map(DevicePlan::new).collect();
    for (path, major, minor) in crate::spec::DEFAULT_DEVICES {
        if !devices.iter().any(|d| d.path == Path::new(path)) {
            devices.push(DevicePlan {
                path: PathBuf::from(path),
                kind: nix::sys::stat::SFlag::S_IFCHR,
                major: major as u64,
                minor: minor as u64,
                mode: 0o666,
                uid: 0,
                gid: 0,
            });
        }
    }
    devices
}

/// `linux.sysctl`, each key checked against the container's namespaces (only namespaced
/// sysctls, see [`crate::sysctl`]) and turned into its `/proc/sys` path, sorted.
fn sysctl_plan(linux: &oci_spec::runtime::Linux) -> Result<Vec<(PathBuf, String)>, RuntimeError> {
    let sysctl_namespaces = sysctl_namespaces(linux.namespaces().as_deref().unwrap_or_default())?;
    let mut sysctls: Vec<(PathBuf, String)> = linux
        .sysctl()
        .iter()
        .flatten()
        .map(|(key, value)| {
            crate::sysctl::check(key, sysctl_namespaces)
                .and_then(|()| crate::sysctl::path_of(key))
                .map(|path| (path, value.clone()))
                .map_err(|message| RuntimeError::Sysctl { message })
        })
        .collect::<Result<_, _>>()?;
    sysctls.sort();
    Ok(sysctls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_resolves_rootfs_and_sysctls() {
        let mut spec = crate::spec::base_spec_for(false);
        let mut process = spec.process().clone().expect("process");
        process.set_args(Some(vec!["true".to_owned()]));
        spec.set_process(Some(process));
        let mut linux = spec.linux().clone().expect("linux");
        linux.set_sysctl(Some(
            [("net.ipv4.ip_forward".to_owned(), "1".to_owned())].into(),
        ));
        spec.set_linux(Some(linux));
        let plan = InitPlan::new(&spec, Path::new("/bundle"), None, None).expect("plan");
        assert_eq!(plan.rootfs.rootfs, Path::new("/bundle/rootfs"));
        assert_eq!(
            plan.sysctls,
            vec![(PathBuf::from("net/ipv4/ip_forward"), "1".to_owned())]
        );
        assert!(plan.cgroup.is_none());
        assert!(!plan.waits_for_parent());
        assert_eq!(plan.rootfs.devices.len(), 6);
    }

    #[test]
    fn global_sysctls_fail_the_plan() {
        let mut spec = crate::spec::base_spec_for(false);
        let mut process = spec.process().clone().expect("process");
        process.set_args(Some(vec!["true".to_owned()]));
        spec.set_process(Some(process));
        let mut linux = spec.linux().clone().expect("linux");
        linux.set_sysctl(Some(
            [("kernel.core_pattern".to_owned(), "|/x".to_owned())].into(),
        ));
        spec.set_linux(Some(linux));
        let err = InitPlan::new(&spec, Path::new("/bundle"), None, None).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "sysctl \"kernel.core_pattern\" is not in a separate kernel namespace"
        );
    }

    #[test]
    fn cgroup_resources_come_from_the_spec() {
        let mut spec = crate::spec::base_spec_for(false);
        let mut linux = spec.linux().clone().expect("linux");
        linux.set_cgroups_path(Some("/berth/abc".into()));
        let mut resources = linux.resources().clone().unwrap_or_default();
        let mut memory = oci_spec::runtime::LinuxMemory::default();
        memory.set_limit(Some(64 << 20));
        resources.set_memory(Some(memory));
        let mut pids = oci_spec::runtime::LinuxPids::default();
        pids.set_limit(64);
        resources.set_pids(Some(pids));
        linux.set_resources(Some(resources));
        spec.set_linux(Some(linux));
        let cgroup = CgroupPlan::from_spec(&spec).expect("cgroup");
        assert_eq!(cgroup.path, "/berth/abc");
        assert_eq!(cgroup.resources.memory, Some(64 << 20));
        assert_eq!(cgroup.resources.pids_limit, Some(64));
    }

    #[test]
    fn missing_mount_namespace_is_refused() {
        let mut spec = crate::spec::base_spec_for(false);
        let mut process = spec.process().clone().expect("process");
        process.set_args(Some(vec!["true".to_owned()]));
        spec.set_process(Some(process));
        let mut linux = spec.linux().clone().expect("linux");
        linux.set_namespaces(Some(vec![]));
        spec.set_linux(Some(linux));
        assert!(matches!(
            InitPlan::new(&spec, Path::new("/b"), None, None),
            Err(RuntimeError::InvalidSpec {
                field: "linux.namespaces",
                ..
            })
        ));
    }
}
