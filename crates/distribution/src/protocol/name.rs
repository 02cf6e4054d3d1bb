//! Repository names and tags as the registry API carries them.
//!
//! A repository name is a path without domain (`library/busybox`), components matching
//! `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` joined by `/`, at most 255 characters: no component
//! can be empty, `.` or `..`, start with `_`, or hold upper case. A tag is
//! `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`. Both grammars are `berth-image`'s reference grammar;
//! these types exist so that code taking a name or tag can rely on it having been checked.

use std::fmt;

/// A validated repository name (path components only, no domain).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryName(String);

/// A validated tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

/// Why a name or tag is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not a repository name.
    #[error("invalid repository name {name:?}")]
    Repository {
        /// The string given.
        name: String,
    },
    /// Not a tag.
    #[error("invalid tag {tag:?}")]
    Tag {
        /// The string given.
        tag: String,
    },
}

impl RepositoryName {
    /// Checks `name` against the distribution grammar.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        if berth_image::is_valid_repository_path(name) {
            Ok(Self(name.to_owned()))
        } else {
            Err(NameError::Repository {
                name: name.to_owned(),
            })
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path components, each a safe file name.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl Tag {
    /// Checks `tag` against the tag grammar.
    pub fn parse(tag: &str) -> Result<Self, NameError> {
        if berth_image::is_valid_tag(tag) {
            Ok(Self(tag.to_owned()))
        } else {
            Err(NameError::Tag {
                tag: tag.to_owned(),
            })
        }
    }

    /// The tag, a safe file name (it cannot hold `/` or start with `.`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_follow_the_spec() {
        for good in [
            "a",
            "busybox",
            "library/busybox",
            "a/b/c/d",
            "a-b__c.d_e---f",
            "x0/y1",
            "manifests/blobs",
        ] {
            assert!(RepositoryName::parse(good).is_ok(), "{good}");
        }
        let long = format!("{}/x", "a".repeat(254));
        for bad in [
            "",
            "..",
            "a/../b",
            "../etc",
            "./a",
            "a/./b",
            "/a",
            "a/",
            "a//b",
            "A",
            "library/Busybox",
            "_catalog",
            "a/_manifests",
            "a.",
            "-a",
            "a___b",
            "a b",
            "a%2fb",
            "a\\b",
            "a\0b",
            long.as_str(),
        ] {
            assert!(
                matches!(
                    RepositoryName::parse(bad),
                    Err(NameError::Repository { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(RepositoryName::parse(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn tags_follow_the_spec() {
        for good in ["latest", "v1.2.3", "A_b-C.d", "_x", &"t".repeat(128)] {
            assert!(Tag::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "-x",
            "a/b",
            "a:b",
            &"t".repeat(129),
        ] {
            assert!(Tag::parse(bad).is_err(), "{bad:?}");
        }
    }
}
