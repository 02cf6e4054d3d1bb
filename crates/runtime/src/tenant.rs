//! `exec`: run another process in a running container (`docker exec`).
//!
//! The process must never be visible in the container's pid namespace while it still stands
//! in the host's mount namespace: a container process with `CAP_SYS_PTRACE` could open its
//! `/proc/<pid>/root` (the host's `/`) or `/proc/<pid>/fd/*`. So the caller forks a helper
//! in its own pid namespace; the parent puts the helper in the container's cgroup; the helper
//! joins the user namespace, then the mount namespace (its root and cwd become the
//! container's), then the others, points `pid_for_children` at the container's pid
//! namespace, closes every descriptor the process does not need, and clones the process with
//! `CLONE_PARENT`, so it is the caller's own child (waitable without a subreaper). The helper
//! reports the pid and exits. The process, non-dumpable until `execve` (inherited from the
//! caller, see [`crate::harden_process`]), installs its stdio and runs the same final steps
//! as the init ([`crate::process`]). `exec` returns when the process has exec'd, or with its
//! exec error (the process is then reaped).
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{Process, Spec};

use crate::init::{CgroupPlan, reap};
use crate::namespaces::NamespacePlan;
use crate::process::ProcessPlan;
use crate::sync::{self, Failure, Report, at_io};
use crate::sys::CloneResult;
use crate::{ProcessIo, RuntimeError, RuntimeOptions, Step};

/// The helper's side: joins the container and clones the process into it. Returns the
/// process's pid (to the helper, which reports it and exits); the process itself never
/// returns from here.
fn run_helper(
    namespaces: &NamespacePlan,
    process: &ProcessPlan,
    io: &ProcessIo,
    (control, report): (&OwnedFd, &OwnedFd),
    join: Option<&berth_cgroups::SelfJoin>,
) -> Result<i32, Failure> {
    match sync::read_byte(control.as_fd()) {
        Ok(Some(sync::GO)) => {}
        _ => crate::sys::exit_now(1),
    }
    // Into the container's cgroup first: the process it forks next inherits it.
    sync::join_cgroup(join)?;
    namespaces.enter()?;
    if let Some(pid_namespace) = &namespaces.join_pid {
        pid_namespace.enter()?;
    }
    let keep: Vec<_> = match io {
        ProcessIo::Stdio(stdio) => vec![
            stdio.stdin.as_raw_fd(),
            stdio.stdout.as_raw_fd(),
            stdio.stderr.as_raw_fd(),
            report.as_raw_fd(),
        ],
        ProcessIo::Console { socket, .. } => vec![socket.as_raw_fd(), report.as_raw_fd()],
    };
    // Nothing of the caller's (sockets, log files, directories of the host) may be reachable
    // through /proc/<pid>/fd of the process once it is in the container's pid namespace.
    crate::sys::close_fds_except(&keep).map_err(at_io(Step::CloseFds, Path::new("")))?;
    match crate::sys::clone_process(libc::CLONE_PARENT)
        .map_err(at_io(Step::JoinNamespace, Path::new("pid")))?
    {
        CloneResult::Parent(pid) => Ok(pid),
        CloneResult::Child => {
            let run = || process.run(report.as_fd(), false, || Ok(()));
            let code = match install_io(io).and_then(|()| run()) {
                Err(failure) => {
                    sync::send(report.as_fd(), sync::SETUP_FAILED, &failure);
                    1
                }
                Ok(exec_failure) => {
                    sync::send(report.as_fd(), sync::EXEC_FAILED, &exec_failure);
                    exec_failure.exit_code
                }
            };
            crate::sys::exit_now(code)
        }
    }
}

/// Installs the process's streams; for a console, a new pty of the container's devpts (the
/// process already stands in the container's mount namespace).
fn install_io(io: &ProcessIo) -> Result<(), Failure> {
    match io {
        ProcessIo::Stdio(stdio) => crate::console::install(stdio),
        ProcessIo::Console { socket, size } => {
            let (stdio, _) = crate::console::open_for_socket(socket, *size)?;
            crate::console::install(&stdio)
        }
    }
}

/// Runs `process` inside the running container whose init is `init_pid` (its namespaces,
/// cgroup, and `spec`'s security settings). Returns the new process's pid, which the caller
/// can `waitpid`.
///
/// `process.capabilities` wins over the spec's (Docker passes the container's set, or all
/// for `--privileged`); seccomp is the container's profile.
pub fn exec(
    init_pid: i32,
    spec: &Spec,
    process: &Process,
    io: impl Into<ProcessIo>,
) -> Result<i32, RuntimeError> {
    exec_with(init_pid, spec, process, io, &RuntimeOptions::default())
}

/// [`exec`] with explicit host-side options.
pub fn exec_with(
    init_pid: i32,
    spec: &Spec,
    process: &Process,
    io: impl Into<ProcessIo>,
    options: &RuntimeOptions,
) -> Result<i32, RuntimeError> {
    let io = io.into();
    let linux = spec.linux().clone().unwrap_or_default();
    let mut process = process.clone();
    if process.capabilities().is_none() {
        process.set_capabilities(
            spec.process()
                .as_ref()
                .and_then(|p| p.capabilities().clone()),
        );
    }
    let mut plan = ProcessPlan::new(
        &process,
        linux.seccomp().as_ref(),
        options.seccomp_cache.as_deref(),
    )?;
    plan.die_with_parent = options.die_with_parent;
    let namespaces =
        NamespacePlan::of_process(init_pid, linux.namespaces().as_deref().unwrap_or_default())?;
    let cgroup = CgroupPlan::from_spec(spec)?;
    // cgroup v1: the helper moves itself in (no global lock, see berth_cgroups::SelfJoin).
    let mut join = CgroupPlan::self_join(cgroup.as_ref())?;
    let (control_read, control_write) = sync::pipe()?;
    let (report_read, report_write) = sync::pipe()?;
    let helper = match crate::sys::clone_process(0)
        .map_err(|e| RuntimeError::host("fork exec helper", "", e))?
    {
        CloneResult::Child => {
            drop(control_write);
            drop(report_read);
            match run_helper(
                &namespaces,
                &plan,
                &io,
                (&control_read, &report_write),
                join.as_ref(),
            ) {
                Ok(pid) => {
                    sync::send_pid(report_write.as_fd(), pid);
                    crate::sys::exit_now(0)
                }
                Err(failure) => {
                    sync::send(report_write.as_fd(), sync::SETUP_FAILED, &failure);
                    crate::sys::exit_now(1)
                }
            }
        }
        CloneResult::Parent(pid) => pid,
    };
    let joins_itself = join.take().is_some();
    drop(control_read);
    drop(report_write);
    drop(io);
    let kill_helper = || {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(helper),
            nix::sys::signal::Signal::SIGKILL,
        );
        reap(helper);
    };
    if let Some(cgroup) = cgroup.as_ref().filter(|_| !joins_itself)
        && let Err(source) = cgroup.handle().add_pid(helper)
    {
        kill_helper();
        return Err(cgroup.error(source));
    }
    if let Err(e) = sync::send_byte(control_write.as_fd(), sync::GO) {
        kill_helper();
        return Err(RuntimeError::host("release exec process", "", e));
    }
    let first = sync::read_report(&report_read);
    reap(helper);
    let pid = match first? {
        Report::Pid(pid) => pid,
        Report::SetupFailed(failure) => return Err(failure.into_error()),
        other => {
            return Err(RuntimeError::host(
                "exec helper",
                "",
                std::io::Error::other(format!("unexpected report {other:?}")),
            ));
        }
    };
    match sync::read_report(&report_read)? {
        Report::Closed => Ok(pid),
        Report::ExecFailed(failure) => {
            reap(pid);
            Err(failure.into_error())
        }
        Report::SetupFailed(failure) => {
            reap(pid);
            Err(failure.into_error())
        }
        Report::Ready | Report::Hooks | Report::Pid(_) => {
            reap(pid);
            Err(RuntimeError::Init {
                step: Step::WaitForStart,
                path: Path::new("").to_owned(),
                source: std::io::Error::from_raw_os_error(libc::EPROTO),
            })
        }
    }
}
