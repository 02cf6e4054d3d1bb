//! What can be wrong with an image archive.

use berth_errdefs::ErrorKind;

/// An archive that `load` refuses, or an image `save` cannot write.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// An entry of the archive itself has an absolute path or a `..` component.
    #[error("refusing archive entry {entry:?}: {reason}")]
    UnsafePath {
        /// The path as in the archive.
        entry: String,
        /// Why.
        reason: &'static str,
    },
    /// An entry of a type an image archive never holds (device, fifo).
    #[error("refusing archive entry {entry:?}: unexpected entry type")]
    UnexpectedEntry {
        /// The path as in the archive.
        entry: String,
    },
    /// A link in the archive points outside it.
    #[error("refusing archive entry {entry:?}: link points outside the archive")]
    LinkOutside {
        /// The path as in the archive.
        entry: String,
    },
    /// Neither `manifest.json` nor `index.json`.
    #[error(
        "invalid image archive: no manifest.json or index.json (is this a `docker save` archive?)"
    )]
    NoManifest,
    /// A manifest or index that does not parse.
    #[error("invalid image archive: {file}: {source}")]
    BadManifest {
        /// The file.
        file: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A manifest names a file that is not in the archive.
    #[error("invalid image archive: {file} is missing")]
    MissingFile {
        /// The path named.
        file: String,
    },
    /// A file named as a layer is not one.
    #[error("invalid image archive: layer {file}: {reason}")]
    BadLayer {
        /// The path named.
        file: String,
        /// Why it cannot be read (the underlying error, one line).
        reason: String,
    },
    /// Manifest and config disagree on the number of layers.
    #[error("invalid manifest, layers length mismatch: expected {expected}, got {actual}")]
    LayerCount {
        /// Layers in the config.
        expected: usize,
        /// Layers in the manifest.
        actual: usize,
    },
    /// A layer's content does not have the diff id the config lists.
    #[error("invalid diffID for layer {index}: expected {expected:?}, got {actual:?}")]
    DiffIdMismatch {
        /// Index in the image's layers.
        index: usize,
        /// From the config.
        expected: String,
        /// Computed.
        actual: String,
    },
    /// A content-addressed file does not have the digest its name or descriptor says.
    #[error("invalid image archive: {file} has digest {actual}, expected {expected}")]
    BlobDigest {
        /// The file.
        file: String,
        /// Named.
        expected: String,
        /// Computed.
        actual: String,
    },
    /// A descriptor's size does not match the blob.
    #[error("invalid image archive: {file} is {actual} bytes, expected {expected}")]
    BlobSize {
        /// The file.
        file: String,
        /// From the descriptor.
        expected: u64,
        /// Actual.
        actual: u64,
    },
    /// An image config that does not parse or lists no layers.
    #[error("invalid image config {file}: {reason}")]
    BadConfig {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// The image is for another operating system.
    #[error("cannot load {os} image on linux")]
    WrongOs {
        /// The config's `os`.
        os: String,
    },
    /// A `RepoTags` entry that is not a `name:tag`.
    #[error("invalid tag {tag:?} in the archive")]
    BadTag {
        /// The entry.
        tag: String,
    },
    /// A small file (JSON) beyond what is read into memory.
    #[error("invalid image archive: {file} is too large for a metadata file ({size} bytes)")]
    MetadataTooLarge {
        /// The file.
        file: String,
        /// Its size.
        size: u64,
    },
    /// The archive expands beyond the size limit.
    #[error(
        "archive expands beyond the load size limit of {limit} bytes (BERTH_LOAD_SIZE_LIMIT, or the free space of the data root)"
    )]
    SizeLimit {
        /// The limit.
        limit: u64,
    },
    /// `save` of an image without layers.
    #[error("empty export - not implemented")]
    EmptyImage,
}

impl ArchiveError {
    /// The class of the error: the archive's fault is a bad argument.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::UnsafePath { .. }
            | Self::UnexpectedEntry { .. }
            | Self::LinkOutside { .. }
            | Self::NoManifest
            | Self::BadManifest { .. }
            | Self::MissingFile { .. }
            | Self::BadLayer { .. }
            | Self::LayerCount { .. }
            | Self::DiffIdMismatch { .. }
            | Self::BlobDigest { .. }
            | Self::BlobSize { .. }
            | Self::BadConfig { .. }
            | Self::WrongOs { .. }
            | Self::BadTag { .. }
            | Self::MetadataTooLarge { .. }
            | Self::SizeLimit { .. } => ErrorKind::InvalidArgument,
            Self::EmptyImage => ErrorKind::NotImplemented,
        }
    }
}
