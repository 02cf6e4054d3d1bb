//! The monitor's one error type.
use std::path::PathBuf;

use berth_errdefs::{Classify, ErrorKind};
use berth_runtime::RuntimeError;

/// What can go wrong in a monitor.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// `monitor.json` could not be read.
    #[error("read monitor config {path}: {source}")]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `monitor.json` is not a valid [`crate::protocol::MonitorConfig`].
    #[error("parse monitor config {path}: {source}")]
    ParseConfig {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The daemon speaks a protocol version this monitor does not.
    #[error(
        "monitor protocol version {version} is not supported (this monitor speaks 1..={supported})"
    )]
    UnsupportedVersion {
        /// What the config asked for.
        version: u32,
        /// The newest this monitor speaks.
        supported: u32,
    },
    /// The OCI spec could not be loaded.
    #[error("load OCI spec {path}: {source}")]
    LoadSpec {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: oci_spec::OciSpecError,
    },
    /// Setting up the monitor process itself (signals, subreaper, pipes) failed.
    #[error("monitor setup: {step}: {source}")]
    Setup {
        /// The step that failed.
        step: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file of the run dir could not be written or removed.
    #[error("{op} {path}: {source}")]
    RunDirFile {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The monitor socket could not be bound.
    #[error("bind monitor socket {path}: {source}")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The pipes or pty for a process's stdio could not be made.
    #[error("create stdio ({what}): {source}")]
    Stdio {
        /// Which part.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The log could not be opened.
    #[error("open log {path}: {source}")]
    OpenLog {
        /// The log file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The log could not be written.
    #[error("write log {path}: {source}")]
    WriteLog {
        /// The log file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The log could not be rotated.
    #[error("rotate log {path}: {source}")]
    RotateLog {
        /// The file being renamed or truncated.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The runtime failed (create, start, exec, cleanup).
    #[error("container {id}: {source}")]
    Runtime {
        /// Container id.
        id: String,
        /// The cause; `RuntimeError::Exec` carries 126/127.
        #[source]
        source: RuntimeError,
    },
    /// An external OCI runtime binary could not be run.
    #[error("run {binary} {command}: {source}")]
    SpawnExternal {
        /// The runtime binary.
        binary: PathBuf,
        /// Its subcommand.
        command: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An external OCI runtime reported a failure.
    #[error("{binary} {command} failed: {message}")]
    External {
        /// The runtime binary.
        binary: PathBuf,
        /// Its subcommand.
        command: &'static str,
        /// What it said.
        message: String,
    },
    /// Mounting or unmounting the rootfs for an external runtime failed.
    #[error("{op} rootfs {path}: {source}")]
    Mount {
        /// mount or unmount.
        op: &'static str,
        /// The mount point.
        path: PathBuf,
        /// The cause.
        #[source]
        source: nix::errno::Errno,
    },
    /// A signal could not be sent.
    #[error("send signal {signal} to {pid}: {source}")]
    Signal {
        /// The process.
        pid: i32,
        /// The signal number.
        signal: i32,
        /// The cause (EINVAL for a bad signal number, ESRCH when gone).
        #[source]
        source: std::io::Error,
    },
    /// The event loop's poll failed.
    #[error("{op}: {source}")]
    EventLoop {
        /// What was being done.
        op: &'static str,
        /// The cause.
        #[source]
        source: nix::errno::Errno,
    },
}

impl MonitorError {
    /// Docker's wording and exit code (126/127) when a process could not be executed.
    pub fn exec_failure(&self) -> Option<(String, i32)> {
        match self {
            MonitorError::Runtime {
                source: RuntimeError::Exec { message, exit_code },
                ..
            } => Some((message.clone(), *exit_code)),
            _ => None,
        }
    }
}

impl Classify for MonitorError {
    fn kind(&self) -> ErrorKind {
        match self {
            MonitorError::ReadConfig { .. }
            | MonitorError::ParseConfig { .. }
            | MonitorError::LoadSpec { .. } => ErrorKind::InvalidArgument,
            MonitorError::UnsupportedVersion { .. } => ErrorKind::NotImplemented,
            MonitorError::Signal { source, .. } => match source.raw_os_error() {
                Some(libc::EINVAL) => ErrorKind::InvalidArgument,
                Some(libc::ESRCH) => ErrorKind::Conflict,
                Some(_) | None => ErrorKind::Internal,
            },
            MonitorError::Runtime { source, .. } => source.kind(),
            MonitorError::Setup { .. }
            | MonitorError::RunDirFile { .. }
            | MonitorError::Bind { .. }
            | MonitorError::Stdio { .. }
            | MonitorError::OpenLog { .. }
            | MonitorError::WriteLog { .. }
            | MonitorError::RotateLog { .. }
            | MonitorError::SpawnExternal { .. }
            | MonitorError::External { .. }
            | MonitorError::Mount { .. }
            | MonitorError::EventLoop { .. } => ErrorKind::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_failures_keep_dockers_code_and_kind() {
        let err = MonitorError::Runtime {
            id: "abc".into(),
            source: RuntimeError::Exec {
                message: "exec: \"nosuch\": executable file not found in $PATH".into(),
                exit_code: 127,
            },
        };
        assert_eq!(
            err.exec_failure(),
            Some((
                "exec: \"nosuch\": executable file not found in $PATH".into(),
                127
            ))
        );
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        let err = MonitorError::UnsupportedVersion {
            version: 9,
            supported: 1,
        };
        assert_eq!(err.exec_failure(), None);
        assert_eq!(err.kind(), ErrorKind::NotImplemented);
    }
}
