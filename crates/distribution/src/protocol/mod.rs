//! What a registry and its clients share: the wire vocabulary of the distribution API.

pub mod auth;
pub mod digest;
pub mod errors;
pub mod manifest;
pub mod name;
pub mod pagination;
pub mod search;

pub use digest::{Digest, DigestError};
pub use errors::{ErrorBody, ErrorCode, ErrorEntry};
pub use manifest::{Accept, ManifestError, ManifestKind, ParsedManifest};
pub use name::{NameError, RepositoryName, Tag};

/// Header a v2 registry sets on every answer (clients use it to recognize one).
pub const API_VERSION_HEADER: &str = "Docker-Distribution-API-Version";
/// The value of [`API_VERSION_HEADER`].
pub const API_VERSION: &str = "registry/2.0";
/// The digest of the content a response carries or a request stored.
pub const CONTENT_DIGEST_HEADER: &str = "Docker-Content-Digest";
/// The id of a blob upload session.
pub const UPLOAD_UUID_HEADER: &str = "Docker-Upload-UUID";
/// The subject digest of a manifest just stored (OCI 1.1 referrers).
pub const SUBJECT_HEADER: &str = "OCI-Subject";
/// The filters a referrers answer applied (`artifactType`).
pub const FILTERS_APPLIED_HEADER: &str = "OCI-Filters-Applied";
/// The largest manifest a registry has to accept, and the largest berth's accepts (4 MiB).
pub const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;
