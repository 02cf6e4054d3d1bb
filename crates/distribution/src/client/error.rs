//! The registry client's errors: each one line, worded as Docker words it where Docker has
//! words for it, and classified for the API in one exhaustive match.

use berth_errdefs::{Classify, ErrorKind};
use berth_image::{ImageError, ReferenceError};

use crate::protocol::ErrorCode;

/// Errors of the registry client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A reference that does not parse (Docker's words).
    #[error("{source}")]
    InvalidReference {
        /// What was given.
        reference: String,
        /// Why.
        #[source]
        source: ReferenceError,
    },
    /// A URL berth cannot fetch from.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// `--platform` that does not parse.
    #[error("invalid platform {platform:?}: expected os[/arch[/variant]], e.g. linux/amd64")]
    InvalidPlatform {
        /// What was given.
        platform: String,
    },
    /// The TLS setup (roots, a registry's CA file) failed.
    #[error("TLS configuration: {reason}")]
    TlsSetup {
        /// Why.
        reason: String,
    },
    /// The request could not be made or answered: refused, reset, timed out, TLS.
    #[error("{method} \"{url}\": {reason}{}", if *tls { TLS_HINT } else { "" })]
    Connect {
        /// `GET`, `PUT`, …
        method: String,
        /// The URL.
        url: String,
        /// The innermost cause.
        reason: String,
        /// Whether TLS failed (the certificate did not verify, the server speaks no TLS).
        tls: bool,
    },
    /// An `import URL` download answered with an error status.
    #[error("error downloading {url}: server answered {status}")]
    DownloadStatus {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The status line's reason phrase.
        reason: String,
        /// The start of the response's body (trimmed).
        body: String,
    },
    /// The registry answered with an error (its JSON error body, or just a status).
    #[error("{}", registry_message(*status, code.as_deref(), message))]
    Registry {
        /// The HTTP status.
        status: u16,
        /// The distribution error code, when the body had one (`MANIFEST_UNKNOWN`).
        code: Option<String>,
        /// The message.
        message: String,
    },
    /// The registry does not know the manifest (Docker's words).
    #[error("manifest for {reference} not found: manifest unknown: {message}")]
    ManifestUnknown {
        /// The reference, familiar.
        reference: String,
        /// The registry's message.
        message: String,
    },
    /// The registry refused access, or has no such repository (Docker's words).
    #[error(
        "pull access denied for {name}, repository does not exist or may require 'docker login': {detail}"
    )]
    PullDenied {
        /// The repository, familiar.
        name: String,
        /// `denied: …` as the registry said it.
        detail: String,
    },
    /// Credentials were refused (login, or a pull or push with wrong ones).
    #[error("{method} \"{url}\": unauthorized: {message}")]
    Unauthorized {
        /// The request refused.
        method: String,
        /// Its URL.
        url: String,
        /// The registry's message.
        message: String,
    },
    /// A manifest larger than any registry must accept.
    #[error("manifest {reference} is {size} bytes, larger than the {limit}-byte limit")]
    ManifestTooLarge {
        /// What was fetched.
        reference: String,
        /// Its size (at least).
        size: usize,
        /// 4 MiB.
        limit: usize,
    },
    /// A document (manifest, config) that is not what berth can use.
    #[error("{what} {reference}: {reason}")]
    InvalidDocument {
        /// `manifest`, `config`.
        what: &'static str,
        /// What was fetched.
        reference: String,
        /// Why it is refused.
        reason: String,
    },
    /// A document's bytes do not hash to the digest it was fetched by.
    #[error("{what} verification failed for digest {digest}: the content hashes to {actual}")]
    DocumentDigest {
        /// `manifest`, `config`.
        what: &'static str,
        /// The digest asked for.
        digest: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// An index lists no manifest for the platform (Docker's words).
    #[error("no matching manifest for {platform} in the manifest list entries")]
    NoMatchingPlatform {
        /// `linux/amd64`.
        platform: String,
    },
    /// A layer's bytes do not match its digest (Docker's words).
    #[error("filesystem layer verification failed for digest {digest}")]
    LayerDigest {
        /// The layer blob's digest.
        digest: String,
    },
    /// Downloading a layer failed, retries included.
    #[error("error pulling layer {digest}: {reason}")]
    LayerDownload {
        /// The blob.
        digest: String,
        /// The last failure, and how many attempts were made.
        reason: String,
    },
    /// Uploading a blob failed.
    #[error("error pushing {what} {digest}: {reason}")]
    Upload {
        /// `layer`, `config`.
        what: &'static str,
        /// The blob (its diff id for a layer being compressed).
        digest: String,
        /// Why.
        reason: String,
    },
    /// The local image cannot be pushed there.
    #[error("An image does not exist locally with the tag: {name}")]
    NoLocalTag {
        /// The repository, familiar.
        name: String,
    },
    /// `search --limit` out of range (Docker's words).
    #[error("limit {limit} is outside the range of [1, 100]")]
    InvalidLimit {
        /// The limit given.
        limit: i64,
    },
    /// The image store refused or failed.
    #[error("{source}")]
    Image {
        /// The store's error.
        #[from]
        source: ImageError,
    },
    /// The operation was cancelled (another part of it failed, or the client went away).
    #[error("cancelled")]
    Cancelled,
    /// A blocking task died.
    #[error("background task failed: {reason}")]
    Task {
        /// Why.
        reason: String,
    },
}

impl From<tokio::task::JoinError> for ClientError {
    fn from(error: tokio::task::JoinError) -> Self {
        Self::Task {
            reason: error.to_string(),
        }
    }
}

/// Said after a TLS failure: how to talk to a registry whose certificate cannot be checked.
const TLS_HINT: &str = " (if the registry is trusted, add its certificate authority to \
     /etc/berth/certs.d/<host:port>/ca.crt, or its address to the daemon's --insecure-registry)";

/// `code: message` as distribution's client prints it (`manifest unknown: manifest unknown`),
/// or the status when there is no body.
fn registry_message(status: u16, code: Option<&str>, message: &str) -> String {
    match code {
        Some(code) => {
            let code = code.to_ascii_lowercase().replace('_', " ");
            if message.is_empty() {
                code
            } else {
                format!("{code}: {message}")
            }
        }
        None if message.is_empty() => format!("registry answered {status}"),
        None => format!("registry answered {status}: {message}"),
    }
}

impl ClientError {
    /// The distribution error code of a registry error.
    pub fn registry_code(&self) -> Option<ErrorCode> {
        match self {
            Self::Registry { code, .. } => code.as_deref().map(ErrorCode::parse),
            _ => None,
        }
    }

    /// Whether trying again may help: the connection failed, or the registry answered 5xx
    /// or 429. A TLS failure does not heal by itself.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect { tls, .. } => !tls,
            Self::Registry { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

impl Classify for ClientError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidReference { .. }
            | Self::InvalidUrl { .. }
            | Self::InvalidPlatform { .. }
            | Self::InvalidLimit { .. }
            | Self::DownloadStatus { .. } => ErrorKind::InvalidArgument,
            Self::ManifestUnknown { .. }
            | Self::PullDenied { .. }
            | Self::NoMatchingPlatform { .. }
            | Self::NoLocalTag { .. } => ErrorKind::NotFound,
            Self::Unauthorized { .. } => ErrorKind::Unauthorized,
            Self::Registry { status, .. } => match status {
                404 => ErrorKind::NotFound,
                401 => ErrorKind::Unauthorized,
                403 => ErrorKind::Forbidden,
                400..=499 => ErrorKind::InvalidArgument,
                _ => ErrorKind::Internal,
            },
            Self::Connect { .. } => ErrorKind::Unavailable,
            Self::Image { source } => source.kind(),
            Self::TlsSetup { .. }
            | Self::ManifestTooLarge { .. }
            | Self::InvalidDocument { .. }
            | Self::DocumentDigest { .. }
            | Self::LayerDigest { .. }
            | Self::LayerDownload { .. }
            | Self::Upload { .. }
            | Self::Cancelled
            | Self::Task { .. } => ErrorKind::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_dockers() {
        let e = ClientError::Registry {
            status: 404,
            code: Some("MANIFEST_UNKNOWN".into()),
            message: "manifest unknown".into(),
        };
        assert_eq!(e.to_string(), "manifest unknown: manifest unknown");
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.registry_code(), Some(ErrorCode::ManifestUnknown));
        let e = ClientError::NoMatchingPlatform {
            platform: "linux/amd64".into(),
        };
        assert_eq!(
            e.to_string(),
            "no matching manifest for linux/amd64 in the manifest list entries"
        );
        let e = ClientError::Connect {
            method: "GET".into(),
            url: "https://h:1/v2/".into(),
            reason: "invalid peer certificate: UnknownIssuer".into(),
            tls: true,
        };
        assert!(e.to_string().contains("--insecure-registry"), "{e}");
        assert!(!e.is_transient());
        let e = ClientError::Registry {
            status: 503,
            code: None,
            message: String::new(),
        };
        assert_eq!(e.to_string(), "registry answered 503");
        assert!(e.is_transient());
    }
}
