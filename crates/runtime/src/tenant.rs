//! `exec`: run another process in a running container (`docker exec`).
//!
//! The parent opens the init's `/proc/<pid>/ns/*` files, points its own `pid_for_children`
//! at the container's pid namespace and forks once (so the new process is the caller's
//! child, waitable without a subreaper), then restores its pid namespace. The child waits
//! until the parent has put it in the container's cgroup, joins the other namespaces (mnt
//! last), and runs the same final steps as the init ([`crate::process`]) with no start gate.
//! `exec` returns when the process has exec'd, or with its exec error (the child is then
//! reaped).
use std::os::fd::AsFd;
use std::path::Path;

use oci_spec::runtime::{Process, Spec};

use crate::init::{CgroupPlan, reap};
use crate::namespaces::{NamespacePlan, clone_into};
use crate::process::ProcessPlan;
use crate::sync::{self, ExecFailure, Failure, Report};
use crate::sys::CloneResult;
use crate::{InitStdio, RuntimeError, RuntimeOptions, Step};

fn run_tenant(
    namespaces: &NamespacePlan,
    process: &ProcessPlan,
    stdio: &InitStdio,
    control: &std::os::fd::OwnedFd,
) -> Result<ExecFailure, Failure> {
    match sync::read_byte(control.as_fd()) {
        Ok(Some(sync::GO)) => {}
        _ => crate::sys::exit_now(1),
    }
    crate::console::install(stdio)?;
    namespaces.enter()?;
    process.run(|| Ok(()))
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
    stdio: InitStdio,
) -> Result<i32, RuntimeError> {
    exec_with(init_pid, spec, process, stdio, &RuntimeOptions::default())
}

/// [`exec`] with explicit host-side options.
pub fn exec_with(
    init_pid: i32,
    spec: &Spec,
    process: &Process,
    stdio: InitStdio,
    options: &RuntimeOptions,
) -> Result<i32, RuntimeError> {
    let linux = spec.linux().clone().unwrap_or_default();
    let mut process = process.clone();
    if process.capabilities().is_none() {
        process.set_capabilities(
            spec.process()
                .as_ref()
                .and_then(|p| p.capabilities().clone()),
        );
    }
    let plan = ProcessPlan::new(
        &process,
        linux.seccomp().as_ref(),
        options.seccomp_cache.as_deref(),
    )?;
    let namespaces =
        NamespacePlan::of_process(init_pid, linux.namespaces().as_deref().unwrap_or_default())?;
    let cgroup = CgroupPlan::from_spec(spec);
    let (control_read, control_write) = sync::pipe()?;
    let (report_read, report_write) = sync::pipe()?;
    let cloned = clone_into(
        namespaces.join_pid.as_ref(),
        nix::sched::CloneFlags::empty(),
    )?;
    let pid = match cloned {
        CloneResult::Child => {
            drop(control_write);
            drop(report_read);
            let message = match run_tenant(&namespaces, &plan, &stdio, &control_read) {
                Err(failure) => {
                    sync::send(report_write.as_fd(), sync::SETUP_FAILED, &failure);
                    1
                }
                Ok(exec_failure) => {
                    sync::send(report_write.as_fd(), sync::EXEC_FAILED, &exec_failure);
                    exec_failure.exit_code
                }
            };
            crate::sys::exit_now(message)
        }
        CloneResult::Parent(pid) => pid,
    };
    drop(control_read);
    drop(report_write);
    drop(stdio);
    if let Some(cgroup) = &cgroup
        && let Err(source) = cgroup.handle().add_pid(pid)
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        reap(pid);
        return Err(cgroup.error(source));
    }
    sync::send_byte(control_write.as_fd(), sync::GO)
        .map_err(|e| RuntimeError::host("release exec process", "", e))?;
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
        Report::Ready => {
            reap(pid);
            Err(RuntimeError::Init {
                step: Step::WaitForStart,
                path: Path::new("").to_owned(),
                source: std::io::Error::from_raw_os_error(libc::EPROTO),
            })
        }
    }
}
