//! The leaf error classification every berth crate maps its errors to.
//!
//! Each crate's error type has a `kind()` with an exhaustive match (no `_` arm), so a new
//! variant cannot compile without a class. The daemon turns a kind into an HTTP status in one
//! place (`berth-daemon`), which is what Docker clients key their behaviour on (404 makes
//! `docker run` pull, 409 is a conflict, 304 is "nothing to do").
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// The class of an error, as Docker clients understand it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The object (container, image, exec, …) does not exist: HTTP 404.
    NotFound,
    /// The request conflicts with the object's state (name in use, running container): 409.
    Conflict,
    /// The request is malformed or a parameter is invalid: 400.
    InvalidArgument,
    /// The request would change nothing (start a running container): 304.
    NotModified,
    /// Authentication is required: 401.
    Unauthorized,
    /// The operation is not allowed (write to a read-only rootfs): 403.
    Forbidden,
    /// The daemon does not implement this: 501.
    NotImplemented,
    /// A dependency is not available right now: 503.
    Unavailable,
    /// Anything else; a bug or an unexpected system error: 500.
    Internal,
}

impl ErrorKind {
    /// The HTTP status code Docker's API uses for this class.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::InvalidArgument => 400,
            ErrorKind::NotModified => 304,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotImplemented => 501,
            ErrorKind::Unavailable => 503,
            ErrorKind::Internal => 500,
        }
    }
}

/// Implemented by every crate error that can reach a user through the API.
pub trait Classify {
    /// The class of this error.
    fn kind(&self) -> ErrorKind;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_docker() {
        assert_eq!(ErrorKind::NotFound.http_status(), 404);
        assert_eq!(ErrorKind::Conflict.http_status(), 409);
        assert_eq!(ErrorKind::InvalidArgument.http_status(), 400);
        assert_eq!(ErrorKind::NotModified.http_status(), 304);
        assert_eq!(ErrorKind::Internal.http_status(), 500);
    }
}
