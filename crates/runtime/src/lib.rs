//! berth's own OCI runtime: namespaces, rootfs (overlayfs, pivot_root, /proc, /dev, …),
//! cgroups (via `berth-cgroups`), capabilities, seccomp, rlimits, user, exec.
//!
//! DRAFT SIGNATURES (being implemented): the shapes below are the contract the monitor and the
//! container service code against.
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

pub use oci_spec::runtime::{Process, Spec};

/// An overlay root filesystem the init mounts at `spec.root.path` inside its own mount
/// namespace (so it vanishes with the container: nothing to unmount on the host).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OverlayMount {
    /// Read-only layers, topmost first.
    pub lowerdirs: Vec<PathBuf>,
    /// The container's writable layer.
    pub upperdir: PathBuf,
    /// overlayfs' work directory (same filesystem as upperdir).
    pub workdir: PathBuf,
}

/// The standard streams of a container process.
#[derive(Debug)]
pub struct InitStdio {
    /// stdin.
    pub stdin: OwnedFd,
    /// stdout.
    pub stdout: OwnedFd,
    /// stderr.
    pub stderr: OwnedFd,
    /// The three are one pty slave: make it the controlling terminal (setsid + TIOCSCTTY).
    pub console: bool,
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
}

/// An init process set up up to its `execve`, waiting to be started.
#[derive(Debug)]
pub struct PendingInit {}

#[allow(unused_variables)]
impl PendingInit {
    /// The init's pid in the caller's pid namespace.
    pub fn pid(&self) -> i32 {
        todo!()
    }
    /// Lets the init exec its process; returns once exec succeeded or failed.
    pub fn start(self) -> Result<(), RuntimeError> {
        todo!()
    }
}

/// Clones the container init with `spec`'s namespaces, sets it up and leaves it blocked before
/// exec. `bundle` is the directory `spec.root.path` is relative to. Call from a single-threaded
/// process; the init is a child of the caller.
#[allow(unused_variables)]
pub fn create(
    spec: &Spec,
    bundle: &Path,
    rootfs: Option<&OverlayMount>,
    stdio: InitStdio,
) -> Result<PendingInit, RuntimeError> {
    todo!()
}

/// Runs `process` inside the running container whose init is `init_pid` (its namespaces,
/// cgroup, and `spec`'s security settings). Returns the new process's pid, which the caller
/// can `waitpid` (the caller is a child subreaper).
#[allow(unused_variables)]
pub fn exec(
    init_pid: i32,
    spec: &Spec,
    process: &Process,
    stdio: InitStdio,
) -> Result<i32, RuntimeError> {
    todo!()
}

/// Docker's default spec: namespaces, mounts, capabilities, masked and read-only paths,
/// devices, seccomp profile; process and root left for the caller to fill.
pub fn base_spec() -> Spec {
    todo!()
}

/// Parses a signal as users type it: `HUP`, `SIGHUP`, `sighup` or `1`.
#[allow(unused_variables)]
pub fn parse_signal(s: &str) -> Option<i32> {
    todo!()
}

/// Removes what `create` made on the host (the cgroup) after the container exited.
#[allow(unused_variables)]
pub fn cleanup(spec: &Spec) -> Result<(), RuntimeError> {
    todo!()
}

/// `berth oci <create|start|state|kill|delete> …`, runc's command-line contract; returns the
/// process exit code.
#[allow(unused_variables)]
pub fn oci_main(args: &[String]) -> i32 {
    todo!()
}
