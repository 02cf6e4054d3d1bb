//! Why a build failed. Every message is the line the user sees after `Error response from
//! daemon:` (or in the stream's `errorDetail`), worded as Docker words it.
use std::path::PathBuf;

use berth_errdefs::{Classify, ErrorKind};

use crate::DockerfileError;

/// A failed build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile was refused (syntax, unknown instruction, expansion, stages).
    #[error(transparent)]
    Dockerfile(#[from] DockerfileError),
    /// The context is not a tar this builder accepts (bad archive, `..` or absolute entries).
    #[error("{message}")]
    InvalidContext {
        /// What is wrong.
        message: String,
    },
    /// The context does not fit on the disk (or in `BERTH_BUILD_CONTEXT_LIMIT`).
    #[error("build context is larger than the space left for it ({limit} bytes)")]
    ContextTooLarge {
        /// The bytes it may take.
        limit: u64,
    },
    /// The Dockerfile named by `dockerfile` is not in the context.
    #[error("Cannot locate specified Dockerfile: {path}")]
    DockerfileNotFound {
        /// The path asked for.
        path: String,
    },
    /// A step's input is wrong: a missing `COPY` source, a path outside the context, a bad
    /// `--chown` user, a bad `--chmod`, …; `instruction` is `COPY` or `ADD`.
    #[error("{instruction} failed: {message}")]
    Step {
        /// The instruction's keyword.
        instruction: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A request parameter or instruction this builder refuses.
    #[error("{message}")]
    Invalid {
        /// What is wrong.
        message: String,
    },
    /// A base image (or `--from` image) that is not in the store.
    #[error(
        "pull access denied for {reference}, repository does not exist or may require 'docker login': No such image: {reference}"
    )]
    ImageNotFound {
        /// The reference.
        reference: String,
    },
    /// Pulling a base (or `--from`) image failed.
    #[error("{source}")]
    Pull {
        /// The registry client's error, in Docker's words.
        #[source]
        source: berth_distribution::client::ClientError,
    },
    /// A `RUN` exited non-zero.
    #[error("The command '{command}' returned a non-zero code: {code}")]
    RunFailed {
        /// The command line (argv joined by spaces).
        command: String,
        /// Its exit code.
        code: i64,
    },
    /// The client went away; the build stopped.
    #[error("context canceled")]
    Cancelled,
    /// The image store failed.
    #[error("{source}")]
    Image {
        /// What failed.
        #[source]
        source: berth_image::ImageError,
    },
    /// The container service failed (a `RUN` step's container).
    #[error("{source}")]
    Container {
        /// What failed.
        #[source]
        source: berth_container::ContainerError,
    },
    /// A file operation of the builder's own failed.
    #[error("{operation} {}: {source}", path.display())]
    Io {
        /// What was done.
        operation: &'static str,
        /// On what.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A blocking task died.
    #[error("build task failed: {0}")]
    Task(String),
}

impl BuildError {
    /// A write into a pipe whose reader had gone.
    pub(crate) fn is_broken_pipe(&self) -> bool {
        matches!(self, BuildError::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }

    pub(crate) fn io(
        operation: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> BuildError {
        let path = path.into();
        move |source| BuildError::Io {
            operation,
            path,
            source,
        }
    }

    pub(crate) fn copy(instruction: &'static str, message: impl Into<String>) -> BuildError {
        BuildError::Step {
            instruction,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> BuildError {
        BuildError::Invalid {
            message: message.into(),
        }
    }

    /// The code of the stream's `errorDetail`: a failed `RUN`'s exit code, else 1.
    pub fn code(&self) -> i64 {
        match self {
            BuildError::RunFailed { code, .. } => *code,
            _ => 1,
        }
    }
}

impl From<berth_image::ImageError> for BuildError {
    fn from(source: berth_image::ImageError) -> Self {
        BuildError::Image { source }
    }
}

impl From<berth_container::ContainerError> for BuildError {
    fn from(source: berth_container::ContainerError) -> Self {
        BuildError::Container { source }
    }
}

impl From<tokio::task::JoinError> for BuildError {
    fn from(e: tokio::task::JoinError) -> Self {
        BuildError::Task(e.to_string())
    }
}

impl Classify for BuildError {
    fn kind(&self) -> ErrorKind {
        match self {
            BuildError::Dockerfile(e) => e.kind(),
            BuildError::Pull { source } => source.kind(),
            BuildError::InvalidContext { .. }
            | BuildError::DockerfileNotFound { .. }
            | BuildError::Step { .. }
            | BuildError::Invalid { .. }
            | BuildError::RunFailed { .. } => ErrorKind::InvalidArgument,
            BuildError::ImageNotFound { .. } => ErrorKind::NotFound,
            BuildError::ContextTooLarge { .. } => ErrorKind::InvalidArgument,
            BuildError::Cancelled => ErrorKind::Unavailable,
            BuildError::Image { source } => source.kind(),
            BuildError::Container { source } => source.kind(),
            BuildError::Io { .. } | BuildError::Task(_) => ErrorKind::Internal,
        }
    }
}
