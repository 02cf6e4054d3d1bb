//! The crate's one error type.

use std::io;
use std::path::PathBuf;

use berth_errdefs::{Classify, ErrorKind};

/// Errors from cgroup operations. Each names the file or directory that failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Reading, creating or removing a cgroup file or directory failed.
    #[error("cgroup {op} {}: {source}", path.display())]
    Io {
        /// What was being done (`read`, `create`, `remove`, `list`, `open`).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The kernel refused a value (EBUSY when a memory limit is below current usage,
    /// EINVAL for an out-of-range value).
    #[error("cgroup write {value:?} to {}: {source}", path.display())]
    Write {
        /// The cgroup file.
        path: PathBuf,
        /// What was written.
        value: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A limit was requested from a controller the host does not offer (not mounted on v1,
    /// not enabled or not compiled in on v2).
    #[error("cgroup controller {controller} is not available at {}", path.display())]
    Unsupported {
        /// The controller, as the kernel names it (`memory`, `cpu`, …).
        controller: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A setting this host's cgroups cannot apply (its controller is absent, the kernel
    /// lacks the file, or the cgroup version has no such thing). `setting` is the OCI name
    /// under `linux.resources` (`memory.swappiness`, `hugepageLimits`, …).
    #[error("{setting}: {reason}")]
    NotSupported {
        /// The setting, as the OCI runtime spec names it under `linux.resources`.
        setting: &'static str,
        /// What the host lacks.
        reason: String,
    },
    /// A daemon-wide setting this host cannot take, in dockerd's words (the real-time
    /// budget of the cgroup parent on v2, or without real-time group scheduling).
    #[error("{message}")]
    Refused {
        /// dockerd's message.
        message: String,
    },
    /// The freezer did not report the cgroup frozen in time (a task stuck in the kernel);
    /// the cgroup was thawed again.
    #[error("cgroup {} did not freeze within {waited_ms} ms (state {state:?})", path.display())]
    FreezeTimeout {
        /// The cgroup directory.
        path: PathBuf,
        /// The last state read.
        state: String,
        /// How long it was given.
        waited_ms: u64,
    },
    /// A line of `cgroup.procs` was not a pid.
    #[error("cgroup {}: not a pid: {line:?}", path.display())]
    BadPid {
        /// The `cgroup.procs` file.
        path: PathBuf,
        /// The offending line.
        line: String,
    },
}

impl Classify for CgroupError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Io { source, .. } => {
                if source.kind() == io::ErrorKind::ResourceBusy {
                    ErrorKind::Conflict
                } else {
                    ErrorKind::Internal
                }
            }
            Self::Write { source, .. } => {
                if source.kind() == io::ErrorKind::ResourceBusy {
                    ErrorKind::Conflict
                } else if source.kind() == io::ErrorKind::InvalidInput {
                    ErrorKind::InvalidArgument
                } else {
                    ErrorKind::Internal
                }
            }
            Self::Unsupported { .. } => ErrorKind::InvalidArgument,
            Self::NotSupported { .. } => ErrorKind::InvalidArgument,
            Self::Refused { .. } => ErrorKind::InvalidArgument,
            Self::FreezeTimeout { .. } => ErrorKind::Internal,
            Self::BadPid { .. } => ErrorKind::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_error(errno: i32) -> CgroupError {
        CgroupError::Write {
            path: PathBuf::from("/c/memory.limit_in_bytes"),
            value: "1".into(),
            source: io::Error::from_raw_os_error(errno),
        }
    }

    #[test]
    fn busy_write_is_a_conflict_and_names_the_file() {
        let err = write_error(libc::EBUSY);
        assert_eq!(err.kind(), ErrorKind::Conflict);
        let message = err.to_string();
        assert!(message.contains("/c/memory.limit_in_bytes"), "{message}");
        assert!(message.contains("\"1\""), "{message}");
    }

    #[test]
    fn invalid_write_is_an_invalid_argument() {
        assert_eq!(write_error(libc::EINVAL).kind(), ErrorKind::InvalidArgument);
        assert_eq!(write_error(libc::EIO).kind(), ErrorKind::Internal);
    }

    #[test]
    fn other_variants_are_classified() {
        let unsupported = CgroupError::Unsupported {
            controller: "memory",
            path: PathBuf::from("/sys/fs/cgroup/memory"),
        };
        assert_eq!(unsupported.kind(), ErrorKind::InvalidArgument);
        let timeout = CgroupError::FreezeTimeout {
            path: PathBuf::from("/c"),
            state: "FREEZING".into(),
            waited_ms: 1000,
        };
        assert_eq!(timeout.kind(), ErrorKind::Internal);
        assert!(timeout.to_string().contains("FREEZING"));
        let busy_rmdir = CgroupError::Io {
            op: "remove",
            path: PathBuf::from("/c"),
            source: io::Error::from_raw_os_error(libc::EBUSY),
        };
        assert_eq!(busy_rmdir.kind(), ErrorKind::Conflict);
        let bad = CgroupError::BadPid {
            path: PathBuf::from("/c/cgroup.procs"),
            line: "x".into(),
        };
        assert_eq!(bad.kind(), ErrorKind::Internal);
    }
}
