//! Errors of the volume service, of mount parsing and of file access inside a root.
use std::path::PathBuf;

use berth_errdefs::{Classify, ErrorKind};

/// An error from a volume or archive operation, worded as Docker words it.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// No volume has this name.
    #[error("get {name}: no such volume")]
    NotFound {
        /// The name asked for.
        name: String,
    },
    /// Containers still use the volume.
    #[error("remove {name}: volume is in use - [{}]", containers.join(", "))]
    InUse {
        /// The volume.
        name: String,
        /// The containers using it.
        containers: Vec<String>,
    },
    /// The volume name is not a valid local volume name.
    #[error(
        "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
    )]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// A bad mount specification, driver or option, worded fully.
    #[error("{message}")]
    InvalidArgument {
        /// The full message.
        message: String,
    },
    /// A path inside a container or volume does not exist.
    #[error("Could not find the file {path} in container {container}")]
    PathNotFound {
        /// The path as asked for.
        path: String,
        /// The container (or volume) it was looked up in.
        container: String,
    },
    /// The target of a copy is read-only.
    #[error("{message}")]
    ReadOnly {
        /// e.g. `mounted volume is marked read-only`.
        message: String,
    },
    /// An archive that cannot be applied (an entry escaping its root, a dir over a file, …).
    #[error("{message}")]
    BadArchive {
        /// The full message.
        message: String,
    },
    /// A `filters` key or value the endpoint does not take.
    #[error(transparent)]
    Filter {
        /// Which, in moby's words.
        source: berth_api::filters::FilterError,
    },
    /// An I/O error on a named path.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A `filters` key or value `volume ls` / `volume prune` do not take, in moby's words.
impl From<berth_api::filters::FilterError> for VolumeError {
    fn from(source: berth_api::filters::FilterError) -> Self {
        Self::Filter { source }
    }
}

impl VolumeError {
    /// An I/O error on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        VolumeError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// A bad argument.
    pub fn invalid(message: impl Into<String>) -> Self {
        VolumeError::InvalidArgument {
            message: message.into(),
        }
    }
}

impl Classify for VolumeError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. } | Self::PathNotFound { .. } => ErrorKind::NotFound,
            Self::InUse { .. } => ErrorKind::Conflict,
            Self::InvalidName { .. }
            | Self::InvalidArgument { .. }
            | Self::Filter { .. }
            | Self::BadArchive { .. } => ErrorKind::InvalidArgument,
            Self::ReadOnly { .. } => ErrorKind::Forbidden,
            Self::Io { .. } => ErrorKind::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_match_docker_statuses() {
        let cases = [
            (VolumeError::NotFound { name: "v".into() }, 404),
            (
                VolumeError::InUse {
                    name: "v".into(),
                    containers: vec!["c".into()],
                },
                409,
            ),
            (
                VolumeError::InvalidName {
                    name: "../v".into(),
                },
                400,
            ),
            (VolumeError::invalid("x"), 400),
            (
                VolumeError::PathNotFound {
                    path: "/x".into(),
                    container: "c".into(),
                },
                404,
            ),
            (
                VolumeError::ReadOnly {
                    message: "ro".into(),
                },
                403,
            ),
            (
                VolumeError::BadArchive {
                    message: "bad".into(),
                },
                400,
            ),
            (
                VolumeError::io("open", "/x", std::io::Error::other("e")),
                500,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(error.kind().http_status(), status, "{error}");
        }
        assert_eq!(
            VolumeError::InUse {
                name: "v".into(),
                containers: vec!["a".into(), "b".into()]
            }
            .to_string(),
            "remove v: volume is in use - [a, b]"
        );
    }
}
