//! The runtime's one error type. Failures inside the container init or an exec'd process
//! happen in another process; they travel back over the sync pipe as a [`Step`], a path and
//! an errno and become [`RuntimeError::Init`] in the caller.
use std::io;
use std::path::PathBuf;

use berth_errdefs::{Classify, ErrorKind};
use serde::{Deserialize, Serialize};

/// A setup step of the container init (or of an exec'd process), named in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// Waiting for the parent to place the process in its cgroup.
    WaitForParent,
    /// Moving itself into its cgroup (v1 `tasks`, see `berth_cgroups::SelfJoin`).
    JoinCgroup,
    /// setns(2) into an existing namespace.
    JoinNamespace,
    /// unshare(2) of the cgroup namespace after joining the cgroup.
    UnshareCgroupNamespace,
    /// dup2 of stdin/stdout/stderr, setsid, TIOCSCTTY.
    Stdio,
    /// Setting mount propagation.
    MountPropagation,
    /// Mounting the overlay root filesystem.
    MountOverlay,
    /// Bind-mounting the root filesystem onto itself (pivot_root needs a mount point).
    BindRootfs,
    /// Creating the target of a mount.
    CreateMountTarget,
    /// Mounting one of `spec.mounts`.
    Mount,
    /// Remounting a bind mount with its flags.
    RemountBind,
    /// proc or sysfs on a target that is not an ordinary directory (a symlink).
    MountOnNonDirectory,
    /// Creating a device node.
    CreateDevice,
    /// Creating a /dev symlink.
    CreateSymlink,
    /// Setting up /dev/console or the console socket.
    Console,
    /// pivot_root(2) and detaching the old root.
    PivotRoot,
    /// Writing a sysctl.
    Sysctl,
    /// sethostname(2).
    Hostname,
    /// setdomainname(2).
    Domainname,
    /// Masking a path.
    MaskPath,
    /// Making a path read-only.
    ReadonlyPath,
    /// Remounting the root read-only.
    ReadonlyRoot,
    /// Writing oom_score_adj.
    OomScoreAdj,
    /// setrlimit(2).
    Rlimit,
    /// prctl(PR_SET_NO_NEW_PRIVS).
    NoNewPrivileges,
    /// Creating or entering the working directory.
    Cwd,
    /// setgroups/setresgid/setresuid.
    SetUser,
    /// Setting capability sets.
    Capabilities,
    /// Loading the seccomp filter.
    Seccomp,
    /// Waiting for `start`.
    WaitForStart,
    /// Closing inherited descriptors.
    CloseFds,
    /// Fork the `--init` reaper.
    ForkInit,
    /// prctl(PR_SET_PDEATHSIG) and the check that the parent still lives.
    ParentDeathSignal,
    /// Waiting while the caller runs the prestart and createRuntime hooks.
    WaitForHooks,
    /// A createContainer hook.
    CreateContainerHook,
    /// A startContainer hook.
    StartContainerHook,
    /// Setting the AppArmor profile or SELinux label of the program.
    SecurityLabel,
    /// Changing the root without a mount namespace of its own (chroot).
    Chroot,
}

impl Step {
    /// The step as it appears in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::WaitForParent => "wait for parent",
            Step::JoinCgroup => "join cgroup",
            Step::ForkInit => "fork init",
            Step::JoinNamespace => "join namespace",
            Step::UnshareCgroupNamespace => "unshare cgroup namespace",
            Step::Stdio => "set up stdio",
            Step::MountPropagation => "set mount propagation",
            Step::MountOverlay => "mount overlay rootfs",
            Step::BindRootfs => "bind rootfs",
            Step::CreateMountTarget => "create mount target",
            Step::Mount => "mount",
            Step::RemountBind => "remount bind mount",
            Step::MountOnNonDirectory => "mount proc or sysfs (only on an ordinary directory)",
            Step::CreateDevice => "create device",
            Step::CreateSymlink => "create symlink",
            Step::Console => "set up console",
            Step::PivotRoot => "pivot_root",
            Step::Sysctl => "write sysctl",
            Step::Hostname => "set hostname",
            Step::Domainname => "set domainname",
            Step::MaskPath => "mask path",
            Step::ReadonlyPath => "make path read-only",
            Step::ReadonlyRoot => "remount root read-only",
            Step::OomScoreAdj => "write oom_score_adj",
            Step::Rlimit => "set rlimit",
            Step::NoNewPrivileges => "set no_new_privs",
            Step::Cwd => "change to working directory",
            Step::SetUser => "set user",
            Step::Capabilities => "set capabilities",
            Step::Seccomp => "load seccomp filter",
            Step::WaitForStart => "wait for start",
            Step::CloseFds => "close inherited fds",
            Step::ParentDeathSignal => "set parent death signal",
            Step::WaitForHooks => "wait for createRuntime hooks",
            Step::CreateContainerHook => "run hooks.createContainer",
            Step::StartContainerHook => "run hooks.startContainer",
            Step::SecurityLabel => "set security label",
            Step::Chroot => "chroot",
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors of the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The process could not be executed; `message` is Docker's wording and `exit_code` is
    /// 127 (not found) or 126 (cannot invoke).
    #[error("{message}")]
    Exec {
        /// e.g. `exec: "nosuch": executable file not found in $PATH`.
        message: String,
        /// 126 or 127.
        exit_code: i32,
    },
    /// A setup step inside the container process failed (the process was reaped).
    #[error("container init: {step} {}: {source}", path.display())]
    Init {
        /// The failed step.
        step: Step,
        /// The file or directory it worked on (empty when none).
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// A system call in the calling (parent) process failed.
    #[error("{op} {}: {source}", path.display())]
    Host {
        /// What was being done.
        op: &'static str,
        /// The file it concerned (empty when none).
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// The container process died before reporting (killed, or crashed).
    #[error("container process {pid} exited during setup")]
    InitDied {
        /// Its pid.
        pid: i32,
    },
    /// The spec asks for something invalid or unsupported.
    #[error("invalid runtime spec: {field}: {reason}")]
    InvalidSpec {
        /// The spec field, e.g. `process.args`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A sysctl the container's namespaces do not scope (it would change the host).
    #[error("{message}")]
    Sysctl {
        /// runc's message, e.g. `sysctl "kernel.core_pattern" is not in a separate kernel namespace`.
        message: String,
    },
    /// Building the seccomp filter failed.
    #[error("seccomp: {what}: {source}")]
    Seccomp {
        /// The syscall, architecture or rule concerned.
        what: String,
        /// libseccomp's error.
        #[source]
        source: libseccomp::error::SeccompError,
    },
    /// A hook failed (exited non-zero, timed out, or could not be executed).
    #[error("{hook} {}: {reason}", path.display())]
    Hook {
        /// The spec's field, e.g. `hooks.createRuntime`.
        hook: &'static str,
        /// The hook's path.
        path: PathBuf,
        /// What happened, with the first of its output.
        reason: String,
    },
    /// The host lacks what the spec asks for (a cgroup controller, AppArmor, SELinux, …).
    #[error("{field}: {reason}")]
    Unsupported {
        /// The spec field, e.g. `linux.resources.hugepageLimits`.
        field: String,
        /// What the host lacks.
        reason: String,
    },
    /// A cgroup operation failed.
    #[error("cgroup {path}: {source}")]
    Cgroup {
        /// `spec.linux.cgroupsPath`.
        path: String,
        /// The cause.
        #[source]
        source: berth_cgroups::CgroupError,
    },
    /// `berth oci`: no container with this id under the state root.
    #[error("container {id} does not exist")]
    ContainerNotFound {
        /// The container id.
        id: String,
    },
    /// `berth oci create`: the id is taken.
    #[error("container with id {id} already exists")]
    ContainerExists {
        /// The container id.
        id: String,
    },
    /// `berth oci`: the container's state does not allow the operation.
    #[error("cannot {op} container {id}: container is {status}")]
    WrongState {
        /// The container id.
        id: String,
        /// The operation refused.
        op: &'static str,
        /// The current status (created, running, stopped).
        status: &'static str,
    },
    /// `berth oci start`: the init could not start the program (a startContainer hook
    /// failed); it exited.
    #[error("cannot start container {id}: {reason}")]
    StartFailed {
        /// The container id.
        id: String,
        /// What the init reported.
        reason: String,
    },
    /// A state or config file could not be parsed or written.
    #[error("{}: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

impl Classify for RuntimeError {
    fn kind(&self) -> ErrorKind {
        match self {
            RuntimeError::Exec { .. } => ErrorKind::InvalidArgument,
            RuntimeError::Init { .. } => ErrorKind::Internal,
            RuntimeError::Host { .. } => ErrorKind::Internal,
            RuntimeError::InitDied { .. } => ErrorKind::Internal,
            RuntimeError::InvalidSpec { .. } => ErrorKind::InvalidArgument,
            RuntimeError::Sysctl { .. } => ErrorKind::InvalidArgument,
            RuntimeError::Seccomp { .. } => ErrorKind::InvalidArgument,
            RuntimeError::Hook { .. } => ErrorKind::Internal,
            RuntimeError::Unsupported { .. } => ErrorKind::InvalidArgument,
            RuntimeError::Cgroup { source, .. } => source.kind(),
            RuntimeError::ContainerNotFound { .. } => ErrorKind::NotFound,
            RuntimeError::ContainerExists { .. } => ErrorKind::Conflict,
            RuntimeError::WrongState { .. } => ErrorKind::Conflict,
            RuntimeError::StartFailed { .. } => ErrorKind::Internal,
            RuntimeError::Json { .. } => ErrorKind::Internal,
        }
    }
}

impl RuntimeError {
    /// A parent-side system call failure.
    pub(crate) fn host(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        RuntimeError::Host {
            op,
            path: path.into(),
            source,
        }
    }

    /// A parent-side nix call failure.
    pub(crate) fn nix(op: &'static str, path: impl Into<PathBuf>, errno: nix::Error) -> Self {
        Self::host(op, path, io::Error::from(errno))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_error_names_step_and_path() {
        let err = RuntimeError::Init {
            step: Step::Mount,
            path: PathBuf::from("/proc"),
            source: io::Error::from_raw_os_error(libc::EPERM),
        };
        assert_eq!(
            err.to_string(),
            "container init: mount /proc: Operation not permitted (os error 1)"
        );
        assert_eq!(err.kind(), ErrorKind::Internal);
    }

    #[test]
    fn lifecycle_errors_classify_like_docker() {
        let missing = RuntimeError::ContainerNotFound { id: "x".into() };
        assert_eq!(missing.kind(), ErrorKind::NotFound);
        let running = RuntimeError::WrongState {
            id: "x".into(),
            op: "delete",
            status: "running",
        };
        assert_eq!(running.kind(), ErrorKind::Conflict);
        assert_eq!(
            running.to_string(),
            "cannot delete container x: container is running"
        );
    }
}
