//! The one error type of the image store, and its classification for the API.

use std::io;
use std::path::PathBuf;

use berth_errdefs::{Classify, ErrorKind};

use crate::archive::ArchiveError;
use crate::reference::ReferenceError;

/// Errors of the image store.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No image matches.
    #[error("No such image: {reference}")]
    NotFound {
        /// What the user typed (familiar form with tag when it was a name).
        reference: String,
    },
    /// An ID prefix matches more than one image.
    #[error("multiple images found with provided prefix: {prefix}")]
    AmbiguousReference {
        /// The prefix given.
        prefix: String,
    },
    /// The reference does not parse.
    #[error("{problem}")]
    InvalidReference {
        /// What the user typed.
        reference: String,
        /// Why it is invalid (Docker's wording).
        problem: ReferenceError,
    },
    /// `tag` was asked to create a digest reference.
    #[error("refusing to create a tag with a digest reference")]
    TagWithDigest {
        /// The target given.
        reference: String,
    },
    /// A `filters` key or value `images` / `image prune` do not take.
    #[error(transparent)]
    Filter {
        /// Which, in moby's words.
        #[from]
        source: berth_api::filters::FilterError,
    },
    /// A `--change` names an instruction that cannot be applied to an image config.
    #[error("{command} is not a valid change command")]
    InvalidChangeCommand {
        /// The instruction, lowercase as Docker reports it.
        command: String,
    },
    /// A `--change` instruction has bad arguments.
    #[error("{instruction}: {problem} (in change {line:?})")]
    MalformedChange {
        /// The instruction (`ENV`).
        instruction: String,
        /// The whole line.
        line: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A `--change` instruction Docker accepts but berth does not apply yet.
    #[error("{instruction} is not supported in a change yet")]
    UnsupportedChange {
        /// The instruction.
        instruction: String,
    },
    /// A container id that cannot be used as a directory name.
    #[error("invalid container id {container_id:?}")]
    InvalidContainerId {
        /// The id given.
        container_id: String,
    },
    /// The container has no root filesystem in this store.
    #[error("no root filesystem for container {container_id}")]
    RootfsNotFound {
        /// The container.
        container_id: String,
    },
    /// `rmi` by name while a container uses the image and this is its last tag.
    #[error(
        "conflict: unable to remove repository reference {reference:?} (must force) - container {} is using its referenced image {}",
        short_id(container_id),
        short_id(image_id)
    )]
    ReferenceInUse {
        /// The reference given.
        reference: String,
        /// The container using the image.
        container_id: String,
        /// The image.
        image_id: String,
    },
    /// `rmi` cannot delete the image.
    #[error(
        "conflict: unable to delete {} ({}) - {reason}",
        short_id(image_id),
        if reason.can_be_forced() { "must be forced" } else { "cannot be forced" }
    )]
    DeleteConflict {
        /// The image.
        image_id: String,
        /// Why.
        reason: DeleteConflictReason,
    },
    /// The archive is not a readable tar stream (corrupt, truncated, unknown compression).
    #[error("invalid tar archive: {source}")]
    ReadArchive {
        /// The underlying read error.
        #[source]
        source: io::Error,
    },
    /// The archive is compressed with an algorithm berth does not read.
    #[error("unsupported archive compression: {compression}")]
    UnsupportedCompression {
        /// bzip2, xz.
        compression: &'static str,
    },
    /// An archive entry would escape the layer or cannot be represented.
    #[error("refusing archive entry {entry:?}: {reason}")]
    UnsafeArchiveEntry {
        /// The entry path as in the archive.
        entry: PathBuf,
        /// Why it is refused.
        reason: &'static str,
    },
    /// Stored content does not have the digest it should.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// Expected digest.
        expected: String,
        /// Computed digest.
        actual: String,
    },
    /// Stored content does not have the size it should.
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The digest of the content.
        digest: String,
        /// Expected size.
        expected: u64,
        /// Actual size.
        actual: u64,
    },
    /// A registry blob's media type is no layer berth can unpack.
    #[error("unsupported layer media type {media_type:?}")]
    UnsupportedLayerType {
        /// The media type.
        media_type: String,
    },
    /// A pulled layer does not unpack to the diff id its image's config lists.
    #[error(
        "layers from manifest don't match image configuration: layer {digest} unpacks to {actual}, the config lists {expected}"
    )]
    DiffIdMismatch {
        /// The layer blob.
        digest: String,
        /// The config's diff id.
        expected: String,
        /// What the blob unpacked to.
        actual: String,
    },
    /// A layer's content is in none of its forms (tar or stored blob): the store was damaged.
    #[error("layer {diff_id} has no stored content")]
    LayerContentMissing {
        /// The layer.
        diff_id: String,
    },
    /// Compressing a layer for a push failed (reading its tar, or the upload it feeds).
    #[error("compressing layer {diff_id}: {source}")]
    CompressLayer {
        /// The layer.
        diff_id: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A metadata file or config blob is not valid JSON of the expected shape.
    #[error("corrupt metadata {path}: {source}")]
    CorruptMetadata {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The store on disk has a schema version this berth does not know.
    #[error("image store {path} has schema version {found:?}, this berth supports {supported}")]
    UnsupportedSchema {
        /// The version file.
        path: PathBuf,
        /// What it says.
        found: String,
        /// What berth writes.
        supported: u32,
    },
    /// Running `busybox --list` failed.
    #[error("cannot list busybox applets with {path}: {source}")]
    BusyboxApplets {
        /// The busybox binary.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Building a layer tar in memory failed.
    #[error("cannot build layer archive: {source}")]
    BuildLayer {
        /// The tar writer's error.
        #[source]
        source: io::Error,
    },
    /// A layer unpacks to more than the store accepts (a compression bomb, or a full disk).
    #[error(
        "no space left on device: the layer unpacks to more than {limit} bytes (half the space left on the data root)"
    )]
    LayerTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// `bootstrap` was asked for something it cannot make.
    #[error("{problem}")]
    InvalidBootstrap {
        /// What is wrong.
        problem: String,
    },
    /// debootstrap failed.
    #[error("debootstrap of {suite} failed: {message}")]
    Debootstrap {
        /// The suite.
        suite: String,
        /// Its last error line.
        message: String,
    },
    /// An image archive (`save`/`load`) is refused.
    #[error("{source}")]
    Archive {
        /// What is wrong with it.
        #[from]
        source: ArchiveError,
    },
    /// A file system operation failed.
    #[error("{operation} {path}: {source}")]
    Filesystem {
        /// What was being done (`create directory`, `rename`, …).
        operation: &'static str,
        /// The path operated on.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Why `rmi` refuses to delete an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeleteConflictReason {
    /// Deleting by id an image tagged more than once.
    #[error("image is referenced in multiple repositories")]
    MultipleRepositories,
    /// A stopped container uses the image.
    #[error("image is being used by stopped container {}", short_id(container_id))]
    StoppedContainer {
        /// The container.
        container_id: String,
    },
    /// Images were committed on top of this one.
    #[error("image has dependent child images")]
    HasChildren,
    /// A running container uses the image.
    #[error("image is being used by running container {}", short_id(container_id))]
    RunningContainer {
        /// The container.
        container_id: String,
    },
}

impl DeleteConflictReason {
    /// Whether `force` overrides this conflict.
    pub fn can_be_forced(&self) -> bool {
        match self {
            Self::MultipleRepositories | Self::StoppedContainer { .. } => true,
            Self::RunningContainer { .. } | Self::HasChildren => false,
        }
    }
}

/// Docker's 12-hex short id (without `sha256:`).
pub fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}

impl ImageError {
    pub(crate) fn fs(
        operation: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Filesystem {
            operation,
            path,
            source,
        }
    }
}

impl From<berth_fs::WriteError> for ImageError {
    fn from(error: berth_fs::WriteError) -> Self {
        Self::Filesystem {
            operation: error.op,
            path: error.path,
            source: error.source,
        }
    }
}

impl Classify for ImageError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. } | Self::RootfsNotFound { .. } => ErrorKind::NotFound,
            Self::ReferenceInUse { .. } | Self::DeleteConflict { .. } => ErrorKind::Conflict,
            Self::AmbiguousReference { .. }
            | Self::InvalidReference { .. }
            | Self::TagWithDigest { .. }
            | Self::InvalidChangeCommand { .. }
            | Self::Filter { .. }
            | Self::MalformedChange { .. }
            | Self::InvalidContainerId { .. }
            | Self::ReadArchive { .. }
            | Self::UnsupportedCompression { .. }
            | Self::UnsafeArchiveEntry { .. }
            | Self::DigestMismatch { .. }
            | Self::SizeMismatch { .. }
            | Self::UnsupportedLayerType { .. }
            | Self::DiffIdMismatch { .. }
            | Self::LayerTooLarge { .. }
            | Self::InvalidBootstrap { .. } => ErrorKind::InvalidArgument,
            Self::UnsupportedChange { .. } => ErrorKind::NotImplemented,
            Self::Archive { source } => source.kind(),
            Self::CorruptMetadata { .. }
            | Self::LayerContentMissing { .. }
            | Self::CompressLayer { .. }
            | Self::UnsupportedSchema { .. }
            | Self::BusyboxApplets { .. }
            | Self::Debootstrap { .. }
            | Self::BuildLayer { .. }
            | Self::Filesystem { .. } => ErrorKind::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const CONTAINER: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    #[test]
    fn conflict_messages_are_dockers() {
        let by_name = ImageError::ReferenceInUse {
            reference: "busybox".into(),
            container_id: CONTAINER.into(),
            image_id: IMAGE.into(),
        };
        assert_eq!(
            by_name.to_string(),
            "conflict: unable to remove repository reference \"busybox\" (must force) - container fedcba987654 is using its referenced image 0123456789ab"
        );
        let multiple = ImageError::DeleteConflict {
            image_id: IMAGE.into(),
            reason: DeleteConflictReason::MultipleRepositories,
        };
        assert_eq!(
            multiple.to_string(),
            "conflict: unable to delete 0123456789ab (must be forced) - image is referenced in multiple repositories"
        );
        let running = ImageError::DeleteConflict {
            image_id: IMAGE.into(),
            reason: DeleteConflictReason::RunningContainer {
                container_id: CONTAINER.into(),
            },
        };
        assert_eq!(
            running.to_string(),
            "conflict: unable to delete 0123456789ab (cannot be forced) - image is being used by running container fedcba987654"
        );
        assert_eq!(running.kind().http_status(), 409);
        assert_eq!(
            ImageError::NotFound {
                reference: "x".into()
            }
            .kind()
            .http_status(),
            404
        );
        assert_eq!(
            ImageError::InvalidChangeCommand {
                command: "run".into()
            }
            .kind()
            .http_status(),
            400
        );
    }
}
