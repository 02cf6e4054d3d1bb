//! The registry's errors: each names what failed and maps to one error code of the spec and
//! one HTTP status (and to an `errdefs` kind) in exhaustive matches.

use std::io;
use std::path::PathBuf;

use berth_errdefs::{Classify, ErrorKind};

use crate::protocol::ErrorCode;
use crate::protocol::digest::DigestError;
use crate::protocol::manifest::ManifestError;
use crate::protocol::name::NameError;
use crate::protocol::pagination::PageSizeError;

/// An error answering a request (or of the store under it).
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The blob is not in the repository.
    #[error("blob unknown to registry: {digest}")]
    BlobUnknown {
        /// The digest asked for.
        digest: String,
    },
    /// No such upload session (or it belongs to another repository).
    #[error("blob upload unknown to registry: {id}")]
    UploadUnknown {
        /// The session id given.
        id: String,
    },
    /// A chunk that does not start where the upload stands.
    #[error("chunk starts at byte {start}, but the upload holds {offset} bytes")]
    UploadOutOfOrder {
        /// Bytes received so far.
        offset: u64,
        /// Where the chunk says it starts.
        start: u64,
    },
    /// A malformed `Content-Range`, or one that disagrees with `Content-Length`.
    #[error("invalid Content-Range {value:?}")]
    ContentRange {
        /// The header as sent.
        value: String,
    },
    /// The request body could not be read to its end (the client went away).
    #[error("reading the request body: {source}")]
    RequestBody {
        /// What went wrong.
        #[source]
        source: axum::Error,
    },
    /// An upload was finished without `?digest=`.
    #[error("digest missing: finish an upload with ?digest=")]
    DigestMissing,
    /// A digest that does not parse (or is not sha256).
    #[error("{source}")]
    DigestInvalid {
        /// Why.
        #[source]
        source: DigestError,
    },
    /// The content's digest is not the one announced.
    #[error("provided digest {expected} did not match uploaded content ({actual})")]
    DigestMismatch {
        /// The digest announced.
        expected: String,
        /// The content's digest.
        actual: String,
    },
    /// The manifest is refused as malformed.
    #[error("manifest invalid: {source}")]
    ManifestInvalid {
        /// Why.
        #[source]
        source: ManifestError,
    },
    /// The manifest is over [`crate::protocol::MAX_MANIFEST_SIZE`].
    #[error("manifest invalid: larger than {limit} bytes")]
    ManifestTooLarge {
        /// The limit.
        limit: usize,
    },
    /// A manifest references a blob or manifest the repository lacks.
    #[error("manifest references {digest}, which the repository does not have")]
    ManifestBlobUnknown {
        /// The missing digest.
        digest: String,
    },
    /// No such manifest or tag.
    #[error("manifest unknown: {reference}")]
    ManifestUnknown {
        /// The tag or digest asked for.
        reference: String,
    },
    /// The manifest exists, but the client's `Accept` does not allow its type.
    #[error("{message}")]
    ManifestNotAccepted {
        /// distribution's wording.
        message: &'static str,
    },
    /// A manifest reference that is neither a tag nor a digest.
    #[error("manifest invalid: invalid reference {reference:?}")]
    ReferenceInvalid {
        /// The reference given.
        reference: String,
    },
    /// An invalid repository name.
    #[error("{source}")]
    NameInvalid {
        /// Which name.
        #[source]
        source: NameError,
    },
    /// No such repository.
    #[error("repository name not known to registry: {name}")]
    NameUnknown {
        /// The repository.
        name: String,
    },
    /// `n` is not a page size.
    #[error("{source}")]
    PageSize {
        /// The value.
        #[source]
        source: PageSizeError,
    },
    /// A `Range` the blob cannot satisfy.
    #[error("requested range {value:?} not satisfiable (size {size})")]
    RangeNotSatisfiable {
        /// The header as sent.
        value: String,
        /// The blob's size.
        size: u64,
    },
    /// No credentials, or credentials that do not verify.
    #[error("authentication required")]
    Unauthorized {
        /// The `WWW-Authenticate` value to send.
        challenge: String,
    },
    /// Valid credentials without the access asked for.
    #[error("requested access to the resource is denied")]
    Denied {
        /// The `WWW-Authenticate` value to send (`error="insufficient_scope"`), when the
        /// client can ask for a new token.
        challenge: Option<String>,
    },
    /// Too many failed logins from this client.
    #[error("too many failed login attempts; retry in {retry_after} s")]
    TooManyRequests {
        /// Seconds until attempts are accepted again.
        retry_after: u64,
    },
    /// A write to a registry serving `--read-only`.
    #[error("the registry is in read-only mode")]
    ReadOnly,
    /// A method the route does not have.
    #[error("method {method} is not supported here")]
    MethodNotAllowed {
        /// The method.
        method: String,
    },
    /// A path that is no route of the API.
    #[error("no such route: {path}")]
    RouteUnknown {
        /// The path.
        path: String,
    },
    /// A file operation of the store failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// The operation.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A record of the store does not parse.
    #[error("corrupt record {}: {source}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The store was written by a newer berth (or is not a registry root).
    #[error("{}: unsupported registry layout version {found:?} (this berth reads version {expected})", path.display())]
    LayoutVersion {
        /// The version file.
        path: PathBuf,
        /// Its content.
        found: String,
        /// The version this berth writes.
        expected: u32,
    },
    /// `registry gc` pointed at a directory that holds no registry.
    #[error("{}: not a registry root (no version file)", path.display())]
    NotARegistry {
        /// The directory.
        path: PathBuf,
    },
    /// A blocking task of the server died.
    #[error("internal error: {what}")]
    Internal {
        /// What was running.
        what: &'static str,
    },
}

impl RegistryError {
    /// A closure for `map_err` on a file operation.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { op, path, source }
    }

    /// The spec's error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BlobUnknown { .. } => ErrorCode::BlobUnknown,
            Self::UploadUnknown { .. } => ErrorCode::BlobUploadUnknown,
            Self::UploadOutOfOrder { .. }
            | Self::ContentRange { .. }
            | Self::RequestBody { .. } => ErrorCode::BlobUploadInvalid,
            Self::DigestMissing | Self::DigestInvalid { .. } | Self::DigestMismatch { .. } => {
                ErrorCode::DigestInvalid
            }
            Self::ManifestInvalid {
                source: ManifestError::Digest { .. },
            } => ErrorCode::DigestInvalid,
            Self::ManifestInvalid { .. }
            | Self::ManifestTooLarge { .. }
            | Self::ReferenceInvalid { .. } => ErrorCode::ManifestInvalid,
            Self::ManifestBlobUnknown { .. } => ErrorCode::ManifestBlobUnknown,
            Self::ManifestUnknown { .. } | Self::ManifestNotAccepted { .. } => {
                ErrorCode::ManifestUnknown
            }
            Self::NameInvalid { .. } => ErrorCode::NameInvalid,
            Self::NameUnknown { .. } => ErrorCode::NameUnknown,
            Self::PageSize { .. } => ErrorCode::PaginationNumberInvalid,
            Self::RangeNotSatisfiable { .. } => ErrorCode::SizeInvalid,
            Self::Unauthorized { .. } => ErrorCode::Unauthorized,
            Self::Denied { .. } => ErrorCode::Denied,
            Self::TooManyRequests { .. } => ErrorCode::TooManyRequests,
            Self::ReadOnly | Self::MethodNotAllowed { .. } | Self::RouteUnknown { .. } => {
                ErrorCode::Unsupported
            }
            Self::Io { .. }
            | Self::Corrupt { .. }
            | Self::LayoutVersion { .. }
            | Self::NotARegistry { .. }
            | Self::Internal { .. } => ErrorCode::Unknown,
        }
    }

    /// The HTTP status: the code's, or a more precise one the spec names.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::UploadOutOfOrder { .. } | Self::RangeNotSatisfiable { .. } => 416,
            Self::ContentRange { .. } | Self::RequestBody { .. } => 400,
            Self::ManifestTooLarge { .. } => 413,
            Self::RouteUnknown { .. } => 404,
            // With a challenge the client can fetch a token with the scope: 401.
            Self::Denied { challenge: Some(_) } => 401,
            _ => self.code().http_status(),
        }
    }

    /// The `WWW-Authenticate` value to send, if any.
    pub fn challenge(&self) -> Option<&str> {
        match self {
            Self::Unauthorized { challenge } => Some(challenge),
            Self::Denied { challenge } => challenge.as_deref(),
            _ => None,
        }
    }
}

impl Classify for RegistryError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::BlobUnknown { .. }
            | Self::UploadUnknown { .. }
            | Self::ManifestUnknown { .. }
            | Self::ManifestNotAccepted { .. }
            | Self::NameUnknown { .. }
            | Self::RouteUnknown { .. } => ErrorKind::NotFound,
            Self::UploadOutOfOrder { .. }
            | Self::ContentRange { .. }
            | Self::RequestBody { .. }
            | Self::DigestMissing
            | Self::DigestInvalid { .. }
            | Self::DigestMismatch { .. }
            | Self::ManifestInvalid { .. }
            | Self::ManifestTooLarge { .. }
            | Self::ManifestBlobUnknown { .. }
            | Self::ReferenceInvalid { .. }
            | Self::NameInvalid { .. }
            | Self::PageSize { .. }
            | Self::RangeNotSatisfiable { .. }
            | Self::NotARegistry { .. } => ErrorKind::InvalidArgument,
            Self::Unauthorized { .. } => ErrorKind::Unauthorized,
            Self::Denied { .. } | Self::ReadOnly => ErrorKind::Forbidden,
            Self::TooManyRequests { .. } => ErrorKind::Unavailable,
            Self::MethodNotAllowed { .. } => ErrorKind::NotImplemented,
            Self::Io { .. }
            | Self::Corrupt { .. }
            | Self::LayoutVersion { .. }
            | Self::Internal { .. } => ErrorKind::Internal,
        }
    }
}

/// An error starting the server or the garbage collector (before any request).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store cannot be opened.
    #[error("{source}")]
    Store {
        /// Why.
        #[source]
        source: RegistryError,
    },
    /// The htpasswd file cannot be read.
    #[error("reading htpasswd file {}: {source}", path.display())]
    HtpasswdRead {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A line of the htpasswd file is not `user:bcrypt-hash`.
    #[error("htpasswd file {} line {line}: {reason}", path.display())]
    HtpasswdEntry {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A TLS certificate or key cannot be used.
    #[error("TLS {what} {}: {reason}", path.display())]
    Tls {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The address cannot be listened on.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Accepting connections or waiting for signals failed.
    #[error("serving: {source}")]
    Serve {
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl Classify for StartError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Store { source } => source.kind(),
            Self::HtpasswdRead { .. }
            | Self::HtpasswdEntry { .. }
            | Self::Tls { .. }
            | Self::Bind { .. } => ErrorKind::InvalidArgument,
            Self::Serve { .. } => ErrorKind::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let cases: Vec<(RegistryError, &str, u16)> = vec![
            (
                RegistryError::BlobUnknown { digest: "d".into() },
                "BLOB_UNKNOWN",
                404,
            ),
            (
                RegistryError::UploadOutOfOrder {
                    offset: 1,
                    start: 0,
                },
                "BLOB_UPLOAD_INVALID",
                416,
            ),
            (
                RegistryError::DigestMismatch {
                    expected: "a".into(),
                    actual: "b".into(),
                },
                "DIGEST_INVALID",
                400,
            ),
            (
                RegistryError::ManifestTooLarge { limit: 1 },
                "MANIFEST_INVALID",
                413,
            ),
            (
                RegistryError::ManifestBlobUnknown { digest: "d".into() },
                "MANIFEST_BLOB_UNKNOWN",
                400,
            ),
            (RegistryError::ReadOnly, "UNSUPPORTED", 405),
            (RegistryError::Denied { challenge: None }, "DENIED", 403),
            (
                RegistryError::Denied {
                    challenge: Some("Bearer".into()),
                },
                "DENIED",
                401,
            ),
            (
                RegistryError::TooManyRequests { retry_after: 1 },
                "TOOMANYREQUESTS",
                429,
            ),
        ];
        for (error, code, status) in cases {
            assert_eq!(error.code().as_str(), code, "{error}");
            assert_eq!(error.http_status(), status, "{error}");
        }
    }
}
