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
        /// The image store's answer.
        #[source]
        source: berth_image::ImageError,
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
    /// The image store refused or failed, classified by the image store (an invalid
    /// reference is a bad request, a missing one is not found).
    #[error(transparent)]
    Image {
        /// The image store's error.
        #[from]
        source: berth_image::ImageError,
    },
    /// An OCI spec value the typed model refused (a builder missing a field).
    #[error("OCI spec: {source}")]
    Spec {
        /// The model's error.
        #[from]
        source: oci_spec::OciSpecError,
    },
    /// A `filters` value the endpoint cannot use, in moby's words.
    #[error(transparent)]
    Filter {
        /// The filter error.
        #[from]
        source: berth_api::filters::FilterError,
    },
    /// The container's monitor cannot be reached (socket refused or closed).
    #[error("container monitor is not answering: {source}")]
    MonitorUnreachable {
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The monitor exited before it said it was ready.
    #[error("container monitor exited before it was ready")]
    MonitorExited,
    /// The monitor refused a request; `message` is its own wording (it crosses a process
    /// boundary as text).
    #[error("{message}")]
    Monitor {
        /// The monitor's message.
        message: String,
    },
    /// A monitor (started by another berth) speaks a protocol version this berth cannot: its
    /// container is left running, and nothing is sent to it.
    #[error(
        "container {id}: its monitor (pid {pid}) {speaks}: the container is left running but this daemon cannot manage it; run the berth that started it, or kill {pid} to stop it"
    )]
    MonitorVersion {
        /// The container (12 hex).
        id: String,
        /// The monitor's pid (`?` when unknown).
        pid: String,
        /// What it speaks.
        speaks: berth_monitor::protocol::VersionError,
    },
    /// The monitor answered something its protocol does not allow here.
    #[error("unexpected monitor response {response}")]
    MonitorProtocol {
        /// The answer, as debug text.
        response: String,
    },
    /// A line from the monitor that does not decode.
    #[error("bad monitor response: {source}")]
    MonitorDecode {
        /// The decoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// Encoding something berth writes (a record, a run file, a request).
    #[error("encode {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// A cgroup operation (freeze, thaw, pids, stats), classified by the cgroup crate.
    #[error(transparent)]
    Cgroup {
        /// The cgroup error.
        #[from]
        source: berth_cgroups::CgroupError,
    },
    /// `docker update` could not apply the new limits to the running container.
    #[error("Cannot update container {id}: {source}")]
    Update {
        /// The container's short id.
        id: String,
        /// The cgroup error.
        #[source]
        source: berth_cgroups::CgroupError,
    },
    /// `docker kill` could not signal the container.
    #[error("Cannot kill container: {name}: {source}")]
    Kill {
        /// The container's name.
        name: String,
        /// Why.
        #[source]
        source: Box<ContainerError>,
    },
    /// A system call of the copy thread (`cp` of a stopped container).
    #[error("{op}: {source}")]
    Sys {
        /// What was being done.
        op: &'static str,
        /// The kernel's answer.
        #[source]
        source: nix::errno::Errno,
    },
    /// `ps` (for `top`) refused its arguments; its own message.
    #[error("ps: {stderr}")]
    Ps {
        /// What `ps` printed on stderr.
        stderr: String,
    },
    /// A blocking task of this service panicked or was cancelled.
    #[error("background task failed: {source}")]
    Task {
        /// The join error.
        #[from]
        source: tokio::task::JoinError,
    },
    /// A helper thread or task stopped before it answered.
    #[error("{what} stopped")]
    Stopped {
        /// Which helper.
        what: &'static str,
    },
}

impl From<berth_fs::WriteError> for ContainerError {
    /// An atomic write's failed step, with its file.
    fn from(e: berth_fs::WriteError) -> Self {
        Self::Io {
            op: e.op,
            path: e.path,
            source: e.source,
        }
    }
}

impl Classify for ContainerError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. } | Self::ExecNotFound { .. } | Self::ImageNotFound { .. } => {
                ErrorKind::NotFound
            }
            Self::Missing { .. } => ErrorKind::NotFound,
            Self::NotImplemented { .. } => ErrorKind::NotImplemented,
            Self::Conflict { .. } | Self::MonitorVersion { .. } => ErrorKind::Conflict,
            Self::InvalidArgument { .. } | Self::Filter { .. } => ErrorKind::InvalidArgument,
            Self::NotModified => ErrorKind::NotModified,
            Self::Network { source } => source.kind(),
            Self::Volume { source } => source.kind(),
            Self::Image { source } => source.kind(),
            Self::Cgroup { source } | Self::Update { source, .. } => source.kind(),
            Self::Kill { source, .. } => source.kind(),
            Self::StartFailed { .. }
            | Self::Io { .. }
            | Self::Spec { .. }
            | Self::MonitorUnreachable { .. }
            | Self::MonitorExited
            | Self::Monitor { .. }
            | Self::MonitorProtocol { .. }
            | Self::MonitorDecode { .. }
            | Self::Encode { .. }
            | Self::Sys { .. }
            | Self::Ps { .. }
            | Self::Task { .. }
            | Self::Stopped { .. } => ErrorKind::Internal,
        }
    }
}
