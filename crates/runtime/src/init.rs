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
use oci_spec::runtime::Spec;

use crate::INIT_ANNOTATION;
use crate::hooks::{self, HookKind, HookPlan, HookPlans};
use crate::namespaces::{NamespacePlan, clone_into};
use crate::process::ProcessPlan;
use crate::rootfs::RootfsPlan;
use crate::rootfs::devices::DevicePlan;
use crate::rootfs::mount::{CgroupHost, MountPlan, propagation};
use crate::state::Identity;
use crate::sync::{self, ExecFailure, Failure, Report, at, at_io};
use crate::sys::CloneResult;
use crate::user_ns::UserNamespacePlan;
use crate::{
    InitStdio, OverlayMount, ProcessIo, ProcessIo as InitIo, RuntimeError, RuntimeOptions, Step,
};

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
    poststart: Vec<HookPlan>,
    identity: Identity,
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
            Report::Closed => {
                if !self.poststart.is_empty() {
                    let state = self.identity.state_json("running", self.pid);
                    if let Err(failure) =
                        hooks::run_all(HookKind::Poststart, &self.poststart, &state)
                    {
                        // The runtime spec: a failed poststart hook is a warning.
                        tracing::warn!(
                            path = %failure.path.display(),
                            "hooks.poststart failed: {}",
                            failure.reason
                        );
                    }
                }
                Ok(())
            }
            Report::ExecFailed(failure) => Err(failure.into_error()),
            Report::SetupFailed(failure) => Err(failure.into_error()),
            Report::Ready | Report::Hooks | Report::Pid(_) => {
                Err(RuntimeError::InitDied { pid: self.pid })
            }
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

/// As runc does, after the spec's rules: the nodes every container gets (null, zero, full,
/// random, urandom, tty, its pts and ptmx) and the spec's own `linux.devices` are usable;
/// rules already present are not written twice.
fn allow_container_devices(
    rules: &mut Vec<berth_cgroups::DeviceRule>,
    nodes: &[oci_spec::runtime::LinuxDevice],
) {
    use berth_cgroups::DeviceRule;
    use oci_spec::runtime::LinuxDeviceType as T;
    let node = |major: i64, minor: Option<i64>| {
        DeviceRule::allow_char(
            u32::try_from(major).ok(),
            minor.and_then(|m| u32::try_from(m).ok()),
            "rwm",
        )
    };
    let standard = crate::spec::DEFAULT_DEVICES
        .iter()
        .map(|(_, major, minor)| node(*major, Some(*minor)))
        .chain([node(136, None), node(5, Some(2))]);
    let own = nodes.iter().filter_map(|device| {
        let kind = match device.typ() {
            T::B => berth_cgroups::DeviceKind::Block,
            T::C | T::U => berth_cgroups::DeviceKind::Char,
            T::A | T::P => return None,
        };
        Some(DeviceRule {
            allow: true,
            kind,
            major: u32::try_from(device.major()).ok(),
            minor: u32::try_from(device.minor()).ok(),
            access: "rwm".to_owned(),
        })
    });
    for rule in standard.chain(own) {
        if !rules.contains(&rule) {
            rules.push(rule);
        }
    }
}

impl CgroupPlan {
    /// The spec's cgroup, `None` without `linux.cgroupsPath`; refuses resources berth cannot
    /// apply.
    pub(crate) fn from_spec(spec: &Spec) -> Result<Option<Self>, RuntimeError> {
        let Some(linux) = spec.linux().as_ref() else {
            return Ok(None);
        };
        let Some(path) = linux.cgroups_path().as_ref() else {
            return Ok(None);
        };
        let path = path.to_string_lossy().into_owned();
        let resources = match linux.resources() {
            Some(res) => crate::resources::from_spec(res)?,
            None => berth_cgroups::Resources::default(),
        };
        let mut devices = linux
            .resources()
            .as_ref()
            .and_then(|r| r.devices().clone())
            .map(|rules| device_rules(&rules))
            .unwrap_or_else(berth_cgroups::DeviceRule::docker_defaults);
        if !devices.is_empty() {
            allow_container_devices(&mut devices, linux.devices().as_deref().unwrap_or_default());
        }
        Ok(Some(CgroupPlan {
            path,
            resources,
            devices,
        }))
    }

    pub(crate) fn handle(&self) -> berth_cgroups::Cgroup {
        berth_cgroups::Cgroup::new(Path::new(CGROUP_ROOT), &self.path)
    }

    /// On cgroup v1, the `tasks` files a child forked next moves itself in with (see
    /// `berth_cgroups::SelfJoin`); None without a cgroup or on v2 (the parent moves it by pid).
    pub(crate) fn self_join(
        plan: Option<&CgroupPlan>,
    ) -> Result<Option<berth_cgroups::SelfJoin>, RuntimeError> {
        match plan {
            Some(cgroup) => cgroup.handle().self_join().map_err(|e| cgroup.error(e)),
            None => Ok(None),
        }
    }

    /// A cgroup error; a setting the host cannot apply names its spec field.
    pub(crate) fn error(&self, source: berth_cgroups::CgroupError) -> RuntimeError {
        match source {
            berth_cgroups::CgroupError::NotSupported { setting, reason } => {
                RuntimeError::Unsupported {
                    field: format!("linux.resources.{setting}"),
                    reason,
                }
            }
            source => RuntimeError::Cgroup {
                path: self.path.clone(),
                source,
            },
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
    pub users: UserNamespacePlan,
    pub hooks: HookPlans,
    /// Who the container is, for the hooks' state.
    pub identity: Identity,
    /// `process.apparmorProfile` / `process.selinuxLabel`, set for the program's `execve`.
    pub exec_label: Option<crate::validate::ExecLabel>,
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
        let checked = crate::validate::check(spec)?;
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
        if !namespaces.has_mount && overlay.is_some() {
            return Err(invalid(
                "linux.namespaces",
                "an overlay root filesystem needs a mount namespace",
            ));
        }
        let requested_propagation = match linux.rootfs_propagation().as_deref() {
            None | Some("") => None,
            Some(name) => Some(propagation(name).ok_or_else(|| {
                invalid(
                    "linux.rootfsPropagation",
                    &format!("unknown propagation {name:?}"),
                )
            })?),
        };
        let users = UserNamespacePlan::new(&linux, &namespaces)?;
        let rootfs = RootfsPlan {
            rootfs: bundle.join(root.path()),
            overlay: overlay.cloned(),
            // An unbindable `/` could not lend the rootfs or a host path to a bind mount: it
            // becomes unbindable only after pivot_root.
            root_propagation: requested_propagation
                .filter(|flags| !flags.contains(MsFlags::MS_UNBINDABLE))
                .unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC),
            requested_propagation,
            own_mount_namespace: namespaces.has_mount,
            mounts: spec
                .mounts()
                .iter()
                .flatten()
                .map(|m| MountPlan::new(m, bundle))
                .collect::<Result<_, _>>()?,
            devices: device_plans(linux.devices().as_deref().unwrap_or_default()),
            cgroup: CgroupHost {
                root: PathBuf::from(CGROUP_ROOT),
                namespaced: namespaces.new_cgroup,
                user_namespace: users.in_user_namespace,
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
            user_namespace: users.in_user_namespace,
        };
        if overlay.is_none()
            && users.new_user
            && let Some((uid, gid)) = users.host_root()
        {
            crate::user_ns::check_reachable(&rootfs.rootfs, uid, gid)?;
        }
        let mut process_plan = ProcessPlan::new(process, linux.seccomp().as_ref(), seccomp_cache)?;
        process_plan.init = spec
            .annotations()
            .as_ref()
            .and_then(|a| a.get(INIT_ANNOTATION))
            .is_some_and(|v| v == "true");
        process_plan.set_groups = users.set_groups;
        Ok(InitPlan {
            sysctls: sysctl_plan(&linux)?,
            namespaces,
            rootfs,
            hostname: spec.hostname().clone().filter(|h| !h.is_empty()),
            domainname: spec.domainname().clone().filter(|d| !d.is_empty()),
            process: process_plan,
            cgroup: CgroupPlan::from_spec(spec)?,
            users,
            hooks: HookPlans::new(spec)?,
            identity: Identity {
                // The monitor's bundle is the container's run dir, named after its id.
                id: bundle
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                bundle: bundle.to_owned(),
                annotations: spec.annotations().clone().unwrap_or_default(),
            },
            exec_label: checked.exec_label,
        })
    }

    /// The child waits for `G` when the parent has work to do on it first.
    fn waits_for_parent(&self) -> bool {
        self.cgroup.is_some() || self.namespaces.new_user
    }
}

/// The init's side: returns only on failure (or never, once exec succeeds). `ready` is set
/// once `R` went to the parent.
fn run_init(
    plan: &InitPlan,
    io: &InitIo,
    gate: &StartGate,
    pipes: (&OwnedFd, &OwnedFd),
    ready: &std::cell::Cell<bool>,
    join: Option<&berth_cgroups::SelfJoin>,
) -> Result<ExecFailure, Failure> {
    let (control, report) = pipes;
    if plan.waits_for_parent() {
        match sync::read_byte(control.as_fd()) {
            Ok(Some(sync::GO)) => {}
            _ => crate::sys::exit_now(1),
        }
    }
    // Into the cgroup before anything else (cgroup v1: itself, see SelfJoin; v2: the parent
    // did it before `G`).
    sync::join_cgroup(join)?;
    plan.namespaces.enter()?;
    if plan.users.in_user_namespace {
        plan.users.become_root()?;
    }
    if plan.namespaces.new_cgroup {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .map_err(at(Step::UnshareCgroupNamespace, Path::new("")))?;
    }
    // The hooks' state names the init by its pid in the runtime's pid namespace, which only
    // the host's /proc (before pivot_root) tells.
    let host_pid =
        if plan.hooks.create_container.is_empty() && plan.hooks.start_container.is_empty() {
            0
        } else {
            hooks::own_host_pid()
        };
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
    if plan.hooks.runtime_hooks_at_create() {
        sync::send_byte(report.as_fd(), sync::HOOKS)
            .map_err(at_io(Step::WaitForHooks, Path::new("")))?;
        match sync::read_byte(control.as_fd()) {
            Ok(Some(sync::CONTINUE)) => {}
            _ => crate::sys::exit_now(1),
        }
    }
    if !plan.hooks.create_container.is_empty() {
        // The hooks get nothing of the caller's but their stdio.
        crate::sys::cloexec_from(3).map_err(at_io(Step::CloseFds, Path::new("")))?;
        let state = plan.identity.state_json("creating", host_pid);
        hooks::run_all(
            HookKind::CreateContainer,
            &plan.hooks.create_container,
            &state,
        )
        .map_err(|f| Failure::detailed(Step::CreateContainerHook, &f.path, f.reason))?;
    }
    plan.rootfs.enter()?;
    let _socket_stdio = inside(plan, io)?;
    let lookup_first = matches!(gate, StartGate::Fifo(_));
    plan.process.run(report.as_fd(), lookup_first, || {
        sync::send_byte(report.as_fd(), sync::READY)
            .map_err(at_io(Step::WaitForStart, Path::new("")))?;
        ready.set(true);
        wait_for_start(plan, gate, control, host_pid)
    })
}

/// The init's steps after pivot_root (or chroot), before the process's own. Returns the
/// stdio of a `--console-socket` pty, to keep open.
fn inside(plan: &InitPlan, io: &InitIo) -> Result<Option<InitStdio>, Failure> {
    let socket_stdio = match io {
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
    if let Some(label) = &plan.exec_label {
        label.apply()?;
    }
    Ok(socket_stdio)
}

/// The start gate: returns once the program may run, after the startContainer hooks.
fn wait_for_start(
    plan: &InitPlan,
    gate: &StartGate,
    control: &OwnedFd,
    host_pid: i32,
) -> Result<(), Failure> {
    let start_hooks = || {
        let state = plan.identity.state_json("created", host_pid);
        hooks::run_all(
            HookKind::StartContainer,
            &plan.hooks.start_container,
            &state,
        )
        .map_err(|f| Failure::detailed(Step::StartContainerHook, &f.path, f.reason))
    };
    match gate {
        StartGate::Pipe => match sync::read_byte(control.as_fd()) {
            Ok(Some(sync::START)) => start_hooks(),
            // The caller dropped the PendingInit: nothing to run.
            _ => crate::sys::exit_now(0),
        },
        StartGate::Fifo(fifo) => {
            use std::os::fd::AsRawFd;
            let path = PathBuf::from(format!("/proc/self/fd/{}", fifo.as_raw_fd()));
            let opened = nix::fcntl::open(&path, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())
                .map_err(at(Step::WaitForStart, &path))?;
            // `berth oci start` reads `0`, or `E` and why the start failed.
            let (message, outcome) = match start_hooks() {
                Ok(()) => (b"0".to_vec(), Ok(())),
                Err(failure) => {
                    let text = failure.clone().into_error().to_string();
                    ([b"E".as_slice(), text.as_bytes()].concat(), Err(failure))
                }
            };
            nix::unistd::write(&opened, &message).map_err(at(Step::WaitForStart, &path))?;
            outcome
        }
    }
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

pub(crate) fn kill_and_reap(pid: i32) {
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    reap(pid);
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

/// The child's side of [`spawn_inner`]: runs the init and reports how it ended.
fn child_main(
    plan: &InitPlan,
    io: &InitIo,
    gate: &StartGate,
    (control, report): (&OwnedFd, &OwnedFd),
    join: Option<&berth_cgroups::SelfJoin>,
) -> ! {
    let ready = std::cell::Cell::new(false);
    let outcome = run_init(plan, io, gate, (control, report), &ready, join);
    match outcome {
        Err(failure) => {
            if ready.get() && matches!(gate, StartGate::Fifo(_)) {
                // `berth oci start` already heard why; the container's stderr says it too.
                let line = format!("berth oci: {}\n", failure.into_error());
                let _ = nix::unistd::write(std::io::stderr(), line.as_bytes());
            } else {
                sync::send(report.as_fd(), sync::SETUP_FAILED, &failure);
            }
            crate::sys::exit_now(1)
        }
        Ok(exec_failure) => {
            let code = exec_failure.exit_code;
            if ready.get() && matches!(gate, StartGate::Fifo(_)) {
                // `berth oci start` has no pipe to the init: tell the container's stderr.
                let line = format!("{}\n", exec_failure.message);
                let _ = nix::unistd::write(std::io::stderr(), line.as_bytes());
            } else {
                sync::send(report.as_fd(), sync::EXEC_FAILED, &exec_failure);
            }
            crate::sys::exit_now(code)
        }
    }
}

fn spawn_inner(plan: InitPlan, io: InitIo, gate: StartGate) -> Result<PendingInit, RuntimeError> {
    if let Some(cgroup) = &plan.cgroup {
        cgroup
            .handle()
            .create_with_devices(&cgroup.resources, &cgroup.devices)
            .map_err(|e| cgroup.error(e))?;
    }
    // cgroup v1: the init moves itself in (no global lock, see berth_cgroups::SelfJoin).
    let mut join = CgroupPlan::self_join(plan.cgroup.as_ref())?;
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
            child_main(
                &plan,
                &io,
                &gate,
                (&control_read, &report_write),
                join.as_ref(),
            )
        }
        CloneResult::Parent(pid) => pid,
    };
    let joins_itself = join.take().is_some();
    drop(control_read);
    drop(report_write);
    drop(io);
    drop(gate);
    let prepared = (|| {
        if plan.namespaces.new_user {
            plan.users.write_maps(pid)?;
        }
        if let Some(cgroup) = plan.cgroup.as_ref().filter(|_| !joins_itself) {
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
    loop {
        match sync::read_report(&report_read) {
            Ok(Report::Hooks) => {
                let state = plan.identity.state_json("creating", pid);
                let ran = hooks::run_all(HookKind::Prestart, &plan.hooks.prestart, &state)
                    .and_then(|()| {
                        hooks::run_all(HookKind::CreateRuntime, &plan.hooks.create_runtime, &state)
                    });
                if let Err(failure) = ran {
                    kill_and_reap(pid);
                    return Err(failure.into_error());
                }
                if let Err(e) = sync::send_byte(control_write.as_fd(), sync::CONTINUE) {
                    kill_and_reap(pid);
                    return Err(RuntimeError::host("resume container init", "", e));
                }
            }
            Ok(Report::Ready) => {
                return Ok(PendingInit {
                    pid,
                    control: control_write,
                    report: report_read,
                    poststart: plan.hooks.poststart,
                    identity: plan.identity,
                });
            }
            Ok(Report::SetupFailed(failure)) => {
                reap(pid);
                return Err(failure.into_error());
            }
            Ok(Report::ExecFailed(failure)) => {
                reap(pid);
                return Err(failure.into_error());
            }
            Ok(Report::Closed) => {
                reap(pid);
                return Err(RuntimeError::InitDied { pid });
            }
            Ok(Report::Pid(_)) => {
                kill_and_reap(pid);
                return Err(RuntimeError::InitDied { pid });
            }
            Err(err) => {
                kill_and_reap(pid);
                return Err(err);
            }
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
        let cgroup = CgroupPlan::from_spec(&spec)
            .expect("valid")
            .expect("cgroup");
        assert_eq!(cgroup.path, "/berth/abc");
        assert_eq!(cgroup.resources.memory, Some(64 << 20));
        assert_eq!(cgroup.resources.pids_limit, Some(64));
        // runc's template denies every device: the standard ones and the spec's nodes are
        // allowed after that, as runc allows them.
        let mut linux = spec.linux().clone().expect("linux");
        let mut resources = linux.resources().clone().unwrap_or_default();
        let mut deny_all = oci_spec::runtime::LinuxDeviceCgroup::default();
        deny_all.set_allow(false);
        deny_all.set_access(Some("rwm".into()));
        resources.set_devices(Some(vec![deny_all]));
        linux.set_resources(Some(resources));
        let mut fuse = oci_spec::runtime::LinuxDevice::default();
        fuse.set_path("/dev/fuse".into());
        fuse.set_typ(oci_spec::runtime::LinuxDeviceType::C);
        fuse.set_major(10);
        fuse.set_minor(229);
        linux.set_devices(Some(vec![fuse]));
        spec.set_linux(Some(linux));
        let cgroup = CgroupPlan::from_spec(&spec)
            .expect("valid")
            .expect("cgroup");
        let shown: Vec<String> = cgroup.devices.iter().map(ToString::to_string).collect();
        assert_eq!(shown[0], "a", "{shown:?}");
        assert!(shown.contains(&"c 1:3 rwm".to_owned()), "{shown:?}");
        assert_eq!(
            shown.last().map(String::as_str),
            Some("c 10:229 rwm"),
            "{shown:?}"
        );
        // Docker's own list keeps its rules, and first its deny-all.
        let mut docker = crate::spec::base_spec_for(false);
        let mut linux = docker.linux().clone().expect("linux");
        linux.set_cgroups_path(Some("/berth/x".into()));
        docker.set_linux(Some(linux));
        let cgroup = CgroupPlan::from_spec(&docker)
            .expect("valid")
            .expect("cgroup");
        let own = device_rules(
            &docker
                .linux()
                .as_ref()
                .and_then(|l| l.resources().clone())
                .and_then(|r| r.devices().clone())
                .expect("rules"),
        );
        assert_eq!(cgroup.devices, own, "nothing to add to Docker's list");
    }

    #[test]
    fn a_spec_without_a_mount_namespace_chroots() {
        let mut spec = crate::spec::base_spec_for(false);
        let mut process = spec.process().clone().expect("process");
        process.set_args(Some(vec!["true".to_owned()]));
        spec.set_process(Some(process));
        let mut linux = spec.linux().clone().expect("linux");
        let namespaces = linux
            .namespaces()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|ns| ns.typ() != oci_spec::runtime::LinuxNamespaceType::Mount)
            .collect();
        linux.set_namespaces(Some(namespaces));
        linux.set_masked_paths(None);
        linux.set_readonly_paths(None);
        spec.set_linux(Some(linux));
        let plan = InitPlan::new(&spec, Path::new("/b"), None, None).expect("accepted");
        assert!(!plan.rootfs.own_mount_namespace);
        let overlay = OverlayMount {
            lowerdirs: vec!["/l".into()],
            upperdir: "/u".into(),
            workdir: "/w".into(),
            volatile: false,
        };
        assert!(matches!(
            InitPlan::new(&spec, Path::new("/b"), Some(&overlay), None),
            Err(RuntimeError::InvalidSpec {
                field: "linux.namespaces",
                ..
            })
        ));
    }

    #[test]
    fn an_unknown_root_propagation_is_refused_naming_the_field() {
        let mut spec = crate::spec::base_spec_for(false);
        let mut process = spec.process().clone().expect("process");
        process.set_args(Some(vec!["true".to_owned()]));
        spec.set_process(Some(process));
        let mut linux = spec.linux().clone().expect("linux");
        linux.set_rootfs_propagation(Some("sideways".into()));
        spec.set_linux(Some(linux));
        let err = InitPlan::new(&spec, Path::new("/b"), None, None).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "invalid runtime spec: linux.rootfsPropagation: unknown propagation \"sideways\""
        );
    }
}
