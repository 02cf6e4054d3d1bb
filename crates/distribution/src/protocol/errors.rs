//! The error codes of the distribution spec and the JSON body they travel in:
//! `{"errors":[{"code":"BLOB_UNKNOWN","message":"…","detail":…}]}`.

use serde::{Deserialize, Serialize};

/// An error code of the OCI distribution spec (and distribution's `UNKNOWN` and
/// `PAGINATION_NUMBER_INVALID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The blob is not in the repository.
    BlobUnknown,
    /// The upload cannot go on (bad range, bad chunk).
    BlobUploadInvalid,
    /// No such upload session.
    BlobUploadUnknown,
    /// The digest is malformed, or does not match the content.
    DigestInvalid,
    /// A manifest references a blob the repository does not have.
    ManifestBlobUnknown,
    /// The manifest is malformed, too large or of an unknown media type.
    ManifestInvalid,
    /// No such manifest (or tag).
    ManifestUnknown,
    /// The repository name is invalid.
    NameInvalid,
    /// No such repository.
    NameUnknown,
    /// A size does not match the content.
    SizeInvalid,
    /// Authentication is required.
    Unauthorized,
    /// The credentials do not allow this.
    Denied,
    /// The operation is not supported (or the registry is read-only).
    Unsupported,
    /// Too many requests (failed logins) from this client.
    TooManyRequests,
    /// `n` is not a usable page size.
    PaginationNumberInvalid,
    /// Anything else: an error of the registry itself.
    Unknown,
}

impl ErrorCode {
    const ALL: [ErrorCode; 16] = [
        Self::BlobUnknown,
        Self::BlobUploadInvalid,
        Self::BlobUploadUnknown,
        Self::DigestInvalid,
        Self::ManifestBlobUnknown,
        Self::ManifestInvalid,
        Self::ManifestUnknown,
        Self::NameInvalid,
        Self::NameUnknown,
        Self::SizeInvalid,
        Self::Unauthorized,
        Self::Denied,
        Self::Unsupported,
        Self::TooManyRequests,
        Self::PaginationNumberInvalid,
        Self::Unknown,
    ];

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BlobUnknown => "BLOB_UNKNOWN",
            Self::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Self::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Self::DigestInvalid => "DIGEST_INVALID",
            Self::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Self::ManifestInvalid => "MANIFEST_INVALID",
            Self::ManifestUnknown => "MANIFEST_UNKNOWN",
            Self::NameInvalid => "NAME_INVALID",
            Self::NameUnknown => "NAME_UNKNOWN",
            Self::SizeInvalid => "SIZE_INVALID",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Denied => "DENIED",
            Self::Unsupported => "UNSUPPORTED",
            Self::TooManyRequests => "TOOMANYREQUESTS",
            Self::PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            Self::Unknown => "UNKNOWN",
        }
    }

    /// The code of a wire string; codes berth does not know are [`ErrorCode::Unknown`].
    pub fn parse(code: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == code)
            .unwrap_or(Self::Unknown)
    }

    /// The code's standard message (distribution's wording).
    pub fn message(self) -> &'static str {
        match self {
            Self::BlobUnknown => "blob unknown to registry",
            Self::BlobUploadInvalid => "blob upload invalid",
            Self::BlobUploadUnknown => "blob upload unknown to registry",
            Self::DigestInvalid => "provided digest did not match uploaded content",
            Self::ManifestBlobUnknown => "blob unknown to registry",
            Self::ManifestInvalid => "manifest invalid",
            Self::ManifestUnknown => "manifest unknown",
            Self::NameInvalid => "invalid repository name",
            Self::NameUnknown => "repository name not known to registry",
            Self::SizeInvalid => "provided length did not match content length",
            Self::Unauthorized => "authentication required",
            Self::Denied => "requested access to the resource is denied",
            Self::Unsupported => "The operation is unsupported.",
            Self::TooManyRequests => "too many requests",
            Self::PaginationNumberInvalid => "invalid number of results requested",
            Self::Unknown => "unknown error",
        }
    }

    /// The HTTP status distribution answers the code with (a request may pick a more precise
    /// one, as 416 for an out-of-order chunk or 413 for a manifest too large).
    pub fn http_status(self) -> u16 {
        match self {
            Self::BlobUnknown
            | Self::BlobUploadUnknown
            | Self::ManifestUnknown
            | Self::NameUnknown
            | Self::BlobUploadInvalid => 404,
            Self::DigestInvalid
            | Self::ManifestBlobUnknown
            | Self::ManifestInvalid
            | Self::NameInvalid
            | Self::SizeInvalid
            | Self::PaginationNumberInvalid => 400,
            Self::Unauthorized => 401,
            Self::Denied => 403,
            Self::Unsupported => 405,
            Self::TooManyRequests => 429,
            Self::Unknown => 500,
        }
    }
}

/// The body of an error answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// One entry per error (berth's server always sends one).
    pub errors: Vec<ErrorEntry>,
}

/// One error of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEntry {
    /// The code, as [`ErrorCode::as_str`] spells it.
    pub code: String,
    /// A human-readable message.
    #[serde(default)]
    pub message: String,
    /// Whatever else the server says (a digest, a reason).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

impl ErrorBody {
    /// A body with one error.
    pub fn single(code: ErrorCode, message: impl Into<String>, detail: serde_json::Value) -> Self {
        Self {
            errors: vec![ErrorEntry {
                code: code.as_str().to_owned(),
                message: message.into(),
                detail,
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_have_distributions_statuses() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), code);
        }
        assert_eq!(ErrorCode::parse("SOMETHING_NEW"), ErrorCode::Unknown);
        assert_eq!(ErrorCode::BlobUnknown.http_status(), 404);
        assert_eq!(ErrorCode::ManifestBlobUnknown.http_status(), 400);
        assert_eq!(ErrorCode::Unauthorized.http_status(), 401);
        assert_eq!(ErrorCode::Denied.http_status(), 403);
        assert_eq!(ErrorCode::Unsupported.http_status(), 405);
        assert_eq!(ErrorCode::TooManyRequests.http_status(), 429);
    }

    #[test]
    fn body_shape() {
        let body = ErrorBody::single(
            ErrorCode::DigestInvalid,
            "digest mismatch",
            serde_json::json!({"digest": "sha256:x"}),
        );
        assert_eq!(
            serde_json::to_value(&body).expect("serialize"),
            serde_json::json!({"errors": [{"code": "DIGEST_INVALID", "message": "digest mismatch",
                "detail": {"digest": "sha256:x"}}]})
        );
        let bare: ErrorBody =
            serde_json::from_str(r#"{"errors":[{"code":"NAME_UNKNOWN"}]}"#).expect("parse");
        assert_eq!(bare.errors[0].code, "NAME_UNKNOWN");
        assert_eq!(
            serde_json::to_string(&bare).expect("serialize"),
            r#"{"errors":[{"code":"NAME_UNKNOWN","message":""}]}"#
        );
    }
}
