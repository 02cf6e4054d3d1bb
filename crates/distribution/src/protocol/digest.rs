//! Content digests (`sha256:<64 hex>`), the names of every blob and manifest.

use std::fmt;

use sha2::{Digest as _, Sha256};

/// A validated `sha256:<64 lowercase hex>` digest. Other algorithms of the OCI grammar parse
/// as [`DigestError::UnsupportedAlgorithm`]: berth stores and verifies sha256 only, as every
/// image tool writes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

/// Why a string is not a digest berth can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// Not `algorithm:encoded` as the OCI grammar says.
    #[error("invalid digest {digest:?}")]
    Format {
        /// The string given.
        digest: String,
    },
    /// A well-formed digest of an algorithm other than sha256.
    #[error("unsupported digest algorithm {algorithm:?}")]
    UnsupportedAlgorithm {
        /// The algorithm named.
        algorithm: String,
    },
}

impl Digest {
    /// Parses `sha256:<hex>`.
    pub fn parse(input: &str) -> Result<Self, DigestError> {
        if !berth_image::is_valid_digest(input) {
            return Err(DigestError::Format {
                digest: input.to_owned(),
            });
        }
        match input.split_once(':') {
            Some(("sha256", _)) => Ok(Self(input.to_owned())),
            Some((algorithm, _)) => Err(DigestError::UnsupportedAlgorithm {
                algorithm: algorithm.to_owned(),
            }),
            None => Err(DigestError::Format {
                digest: input.to_owned(),
            }),
        }
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_hasher(Sha256::new_with_prefix(bytes))
    }

    /// The digest a running hash ends in.
    pub fn from_hasher(hasher: Sha256) -> Self {
        Self(format!("sha256:{}", hex::encode(hasher.finalize())))
    }

    /// The 64 hex digits: a safe file name (validated at parse).
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_sha256_only() {
        let digest = Digest::parse(EMPTY).expect("valid");
        assert_eq!(digest, Digest::of(b""));
        assert_eq!(digest.hex().len(), 64);
        for bad in [
            "",
            "sha256",
            "sha256:",
            "sha256:abc",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:../../../../etc/passwd0000000000000000000000000000000000000000",
            "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ] {
            assert!(
                matches!(Digest::parse(bad), Err(DigestError::Format { .. })),
                "{bad}"
            );
        }
        let sha512 = format!("sha512:{}", "a".repeat(128));
        assert_eq!(
            Digest::parse(&sha512),
            Err(DigestError::UnsupportedAlgorithm {
                algorithm: "sha512".into()
            })
        );
    }
}
