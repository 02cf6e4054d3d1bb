//! Image references as Docker spells them: `[domain/]path[:tag][@digest]`.
//!
//! The grammar is the one of `distribution/reference`. Users type the *familiar* form
//! (`busybox`, `user/app:v1`, `localhost:5000/x`); the store keys everything by the
//! *normalized* form, where Docker Hub names get their domain and `library/` prefix
//! (`docker.io/library/busybox:latest`). [`Reference::familiar`] turns one back into the other
//! for display.

use std::fmt;

/// The domain of Docker Hub, implied when a name has none.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// An old spelling of Docker Hub's domain, normalized to [`DEFAULT_DOMAIN`].
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// Docker Hub's namespace for official images.
const OFFICIAL_REPOSITORY_PREFIX: &str = "library/";
/// The tag a name without tag or digest means.
pub const DEFAULT_TAG: &str = "latest";
/// Longest repository name (domain and path) Docker accepts.
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// Why a string is not a valid reference; the messages are Docker's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The string does not match the grammar.
    #[error("invalid reference format")]
    Format,
    /// The repository part has uppercase letters.
    #[error("invalid reference format: repository name ({repository}) must be lowercase")]
    Uppercase {
        /// The offending repository path (`library/Foo`).
        repository: String,
    },
    /// The name is longer than 255 characters.
    #[error("invalid reference format: repository name must not be more than 255 characters")]
    NameTooLong,
    /// A 64-hex string looks like an image id, and Docker refuses it as a name.
    #[error("invalid repository name ({name}), cannot specify 64-byte hexadecimal strings")]
    HexRepository {
        /// The string given.
        name: String,
    },
}

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// Parses a reference in familiar or normalized form (Docker's `ParseNormalizedNamed`).
    /// No tag is added; see [`Reference::with_default_tag`].
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        if is_full_hex_id(input) {
            return Err(ReferenceError::HexRepository {
                name: input.to_owned(),
            });
        }
        let (domain, remainder) = split_domain(input);
        let repository_end = remainder.find(':').unwrap_or(remainder.len());
        let repository = &remainder[..repository_end];
        if repository.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase {
                repository: repository.to_owned(),
            });
        }
        let (name_and_tag, digest) = match remainder.split_once('@') {
            Some((name_and_tag, digest)) => {
                if !is_valid_digest(digest) {
                    return Err(ReferenceError::Format);
                }
                (name_and_tag, Some(digest.to_owned()))
            }
            None => (remainder.as_str(), None),
        };
        let (path, tag) = match name_and_tag.rsplit_once(':') {
            Some((path, tag)) => {
                if !is_valid_tag(tag) {
                    return Err(ReferenceError::Format);
                }
                (path, Some(tag.to_owned()))
            }
            None => (name_and_tag, None),
        };
        if !is_valid_domain(&domain) || !path.split('/').all(is_valid_path_component) {
            return Err(ReferenceError::Format);
        }
        if domain.len() + 1 + path.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong);
        }
        Ok(Self {
            domain,
            path: path.to_owned(),
            tag,
            digest,
        })
    }

    /// Adds the `latest` tag when the reference has neither tag nor digest.
    pub fn with_default_tag(mut self) -> Self {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some(DEFAULT_TAG.to_owned());
        }
        self
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        if !is_valid_tag(tag) {
            return Err(ReferenceError::Format);
        }
        Ok(Self {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_owned()),
            digest: None,
        })
    }

    /// `docker.io`, `localhost:5000`, …
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path inside the domain (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`sha256:…`), if any.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The normalized repository name (`docker.io/library/busybox`).
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository name as users write it (`busybox`, `user/app`, `localhost:5000/x`).
    pub fn familiar_name(&self) -> String {
        if self.domain != DEFAULT_DOMAIN {
            return self.name();
        }
        match self.path.strip_prefix(OFFICIAL_REPOSITORY_PREFIX) {
            Some(short) if !short.contains('/') => short.to_owned(),
            _ => self.path.clone(),
        }
    }

    /// The whole reference as users write it (`busybox:latest`).
    pub fn familiar(&self) -> String {
        self.render(self.familiar_name())
    }

    fn render(&self, name: String) -> String {
        let mut out = name;
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest);
        }
        out
    }
}

impl fmt::Display for Reference {
    /// The normalized form (`docker.io/library/busybox:latest`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(self.name()))
    }
}

/// `true` for exactly 64 lowercase hex digits (an image id without `sha256:`).
pub(crate) fn is_full_hex_id(s: &str) -> bool {
    s.len() == 64 && is_lower_hex(s)
}

pub(crate) fn is_lower_hex(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Docker's `splitDockerDomain`: the first component is a domain only if it looks like one
/// (has `.` or `:`, is `localhost`, or has uppercase letters, which a path never may).
fn split_domain(input: &str) -> (String, String) {
    let (mut domain, mut remainder) = match input.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first.to_owned(), rest.to_owned())
        }
        _ => (DEFAULT_DOMAIN.to_owned(), input.to_owned()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_owned();
    }
    if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
        remainder = format!("{OFFICIAL_REPOSITORY_PREFIX}{remainder}");
    }
    (domain, remainder)
}

/// `true` when `path` is a valid repository path without domain (`library/busybox`): path
/// components as [`is_valid_path_component`] says, joined by `/`, at most 255 characters in
/// all. This is the repository name of the registry API, which can never hold `..`, an empty
/// component or upper case.
pub fn is_valid_repository_path(path: &str) -> bool {
    path.len() <= NAME_TOTAL_LENGTH_MAX && path.split('/').all(is_valid_path_component)
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`: one component of a repository path.
pub fn is_valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut separator = String::new();
    for &b in bytes {
        if alnum(b) {
            let ok = separator.is_empty()
                || separator == "."
                || separator == "_"
                || separator == "__"
                || separator.bytes().all(|s| s == b'-');
            if !ok {
                return false;
            }
            separator.clear();
        } else if matches!(b, b'.' | b'_' | b'-') {
            separator.push(char::from(b));
        } else {
            return false;
        }
    }
    true
}

/// A host (`[a-zA-Z0-9-]` labels joined by dots, or a bracketed IPv6 address) and an
/// optional numeric port.
fn is_valid_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ipv6, after)) => {
                if ipv6.is_empty() || !ipv6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
                    return false;
                }
                match after.strip_prefix(':') {
                    Some(port) => ("", Some(port)),
                    None if after.is_empty() => ("", None),
                    None => return false,
                }
            }
            None => return false,
        }
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (domain, None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    if domain.starts_with('[') {
        return true;
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            let bytes = label.as_bytes();
            !bytes.is_empty()
                && bytes[0].is_ascii_alphanumeric()
                && bytes[bytes.len() - 1].is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        })
}

/// `[\w][\w.-]{0,127}`: a tag.
pub fn is_valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && word(bytes[0])
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-')
}

/// `algorithm:encoded` as the OCI image spec's digest grammar says; `sha256` digests must
/// have 64 lowercase hex digits.
pub fn is_valid_digest(digest: &str) -> bool {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return false;
    };
    let algorithm_ok = algorithm.split(['+', '.', '_', '-']).all(|part| {
        let bytes = part.as_bytes();
        !bytes.is_empty()
            && bytes[0].is_ascii_lowercase()
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    if !algorithm_ok {
        return false;
    }
    match algorithm {
        "sha256" => is_full_hex_id(encoded),
        _ => {
            encoded.len() >= 32
                && encoded
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn normalizes_and_familiarizes() {
        // input, normalized (with default tag), familiar
        let digest_ref = format!("busybox@sha256:{HEX}");
        let cases: Vec<(&str, String, String)> = vec![
            (
                "busybox",
                "docker.io/library/busybox:latest".into(),
                "busybox:latest".into(),
            ),
            (
                "busybox:1.36",
                "docker.io/library/busybox:1.36".into(),
                "busybox:1.36".into(),
            ),
            (
                "library/busybox",
                "docker.io/library/busybox:latest".into(),
                "busybox:latest".into(),
            ),
            (
                "docker.io/library/busybox:latest",
                "docker.io/library/busybox:latest".into(),
                "busybox:latest".into(),
            ),
            (
                "index.docker.io/busybox",
                "docker.io/library/busybox:latest".into(),
                "busybox:latest".into(),
            ),
            (
                "user/app:v1",
                "docker.io/user/app:v1".into(),
                "user/app:v1".into(),
            ),
            (
                "localhost:5000/x:v1",
                "localhost:5000/x:v1".into(),
                "localhost:5000/x:v1".into(),
            ),
            (
                "localhost/x",
                "localhost/x:latest".into(),
                "localhost/x:latest".into(),
            ),
            (
                "registry:5000/a/b:tag",
                "registry:5000/a/b:tag".into(),
                "registry:5000/a/b:tag".into(),
            ),
            (
                "quay.io/a/b/c",
                "quay.io/a/b/c:latest".into(),
                "quay.io/a/b/c:latest".into(),
            ),
            (
                "[::1]:5000/img:t",
                "[::1]:5000/img:t".into(),
                "[::1]:5000/img:t".into(),
            ),
            (
                "a-b__c.d_e---f",
                "docker.io/library/a-b__c.d_e---f:latest".into(),
                "a-b__c.d_e---f:latest".into(),
            ),
            (
                digest_ref.as_str(),
                format!("docker.io/library/busybox@sha256:{HEX}"),
                digest_ref.clone(),
            ),
        ];
        for (input, normalized, familiar) in cases {
            let reference = Reference::parse(input)
                .unwrap_or_else(|e| panic!("{input}: {e}"))
                .with_default_tag();
            assert_eq!(reference.to_string(), normalized, "{input}");
            assert_eq!(reference.familiar(), familiar, "{input}");
        }
    }

    #[test]
    fn splits_parts() {
        let reference =
            Reference::parse(&format!("localhost:5000/a/b:v2@sha256:{HEX}")).expect("valid");
        assert_eq!(reference.domain(), "localhost:5000");
        assert_eq!(reference.path(), "a/b");
        assert_eq!(reference.tag(), Some("v2"));
        assert_eq!(reference.digest(), Some(format!("sha256:{HEX}").as_str()));
        assert_eq!(reference.familiar_name(), "localhost:5000/a/b");
        assert_eq!(Reference::parse("busybox").expect("valid").tag(), None);
        assert_eq!(
            Reference::parse("busybox")
                .expect("valid")
                .with_tag("v3")
                .expect("tag")
                .familiar(),
            "busybox:v3"
        );
    }

    #[test]
    fn rejects_invalid_names_with_dockers_messages() {
        let cases = [
            (
                "Foo",
                "invalid reference format: repository name (library/Foo) must be lowercase",
            ),
            (
                "user/Foo:v1",
                "invalid reference format: repository name (user/Foo) must be lowercase",
            ),
            ("", "invalid reference format"),
            ("bad name", "invalid reference format"),
            ("busybox:", "invalid reference format"),
            ("busybox:-x", "invalid reference format"),
            ("-busybox", "invalid reference format"),
            ("busybox.", "invalid reference format"),
            ("a//b", "invalid reference format"),
            ("a/b/", "invalid reference format"),
            ("busybox@sha256:abc", "invalid reference format"),
            ("busybox@", "invalid reference format"),
            ("foo$bar", "invalid reference format"),
            ("localhost:port/x", "invalid reference format"),
        ];
        for (input, message) in cases {
            let err = Reference::parse(input).expect_err(input);
            assert_eq!(err.to_string(), message, "{input}");
        }
        assert!(matches!(
            Reference::parse(HEX),
            Err(ReferenceError::HexRepository { .. })
        ));
        let long = format!("{}/x", "a".repeat(260));
        assert_eq!(Reference::parse(&long), Err(ReferenceError::NameTooLong));
        let long_tag = format!("busybox:{}", "t".repeat(129));
        assert_eq!(Reference::parse(&long_tag), Err(ReferenceError::Format));
    }
}
