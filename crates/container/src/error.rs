//! Errors of the container service.
use berth_errdefs::{Classify, ErrorKind};

/// An error from a container operation, worded as Docker words it.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// No container matches the reference.
    #[error("No such container: {reference}")]
    NotFound {
        /// What the user typed.
        reference: String,
    },
    /// An exec instance does not exist.
    #[error("No such exec instance: {id}")]
    ExecNotFound {
        /// The exec id.
        id: String,
    },
    /// Something else is missing (a network, a joined container's namespace), worded fully.
    #[error("{message}")]
    Missing {
        /// The full message.
        message: String,
    },
    /// A feature that arrives with later work.
    #[error("{message}")]
    NotImplemented {
        /// The full message.
        message: String,
    },
    /// A request that conflicts with the container's state or another container.
    #[error("{message}")]
    Conflict {
        /// The full message.
        message: String,
    },
    /// A bad parameter.
    #[error("{message}")]
    InvalidArgument {
        /// The full message.
        message: String,
    },
    /// The operation changes nothing (start of a running container, stop of a stopped one).
    #[error("container already in requested state")]
    NotModified,
    /// The image the container needs is missing.
    #[error("No such image: {reference}")]
    ImageNotFound {
        /// The image reference.
        reference: String,
    },
    /// Starting the process failed; `message` is shown to the user and decides the exit code.
    #[error("{message}")]
    StartFailed {
        /// e.g. `exec: "x": executable file not found in $PATH`.
        message: String,
    },
    /// A volume, mount or archive error, worded and classified by the volume crate.
    #[error(transparent)]
    Volume {
        /// The cause.
        #[from]
        source: berth_volume::VolumeError,
    },
    /// An I/O error on a named path.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A network service error, worded and classified by that service.
    #[error(transparent)]
    Network {
        /// The service error.
        source: berth_network::NetworkError,
    },
    /// The image store refused or failed (commit).
    #[error("{source}")]
    Image {
        /// The image store's error.
        #[source]
        source: berth_image::ImageError,
    },
    /// An OCI spec value the typed model refused (a builder missing a field).
    #[error("OCI spec: {source}")]
    Spec {
        /// The model's error.
        #[from]
        source: oci_spec::OciSpecError,
    },
    /// A failure in a lower service, with its own class.
    #[error("{message}")]
    Internal {
        /// The full message.
        message: String,
    },
}

impl Classify for ContainerError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. } | Self::ExecNotFound { .. } | Self::ImageNotFound { .. } => {
                ErrorKind::NotFound
            }
            Self::Missing { .. } => ErrorKind::NotFound,
            Self::NotImplemented { .. } => ErrorKind::NotImplemented,
            Self::Conflict { .. } => ErrorKind::Conflict,
            Self::InvalidArgument { .. } => ErrorKind::InvalidArgument,
            Self::NotModified => ErrorKind::NotModified,
            Self::Network { source } => source.kind(),
            Self::Volume { source } => source.kind(),
            Self::Image { source } => source.kind(),
            Self::StartFailed { .. }
            | Self::Io { .. }
            | Self::Spec { .. }
            | Self::Internal { .. } => ErrorKind::Internal,
        }
    }
}
