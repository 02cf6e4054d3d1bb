//! Manifests on the wire: their four media types, what a client's `Accept` allows, and the
//! checks a manifest passes before a registry stores it.
//!
//! A manifest is stored and served as the exact bytes that were put: its digest is the
//! digest of those bytes. [`ParsedManifest`] reads them (through `berth-image`'s models) only
//! to check them and to learn what they reference.

use berth_image::manifest::{
    ArtifactFields, Descriptor, Index, MEDIA_DOCKER_LIST, MEDIA_DOCKER_MANIFEST, MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST, Manifest,
};

use super::digest::{Digest, DigestError};

/// The kinds of manifest a registry stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ManifestKind {
    /// Docker image manifest, schema 2.
    DockerManifest,
    /// Docker manifest list.
    DockerList,
    /// OCI image manifest (also OCI 1.1 artifacts).
    OciManifest,
    /// OCI image index.
    OciIndex,
}

impl ManifestKind {
    /// The kind of a media type (parameters such as `; charset=utf-8` ignored).
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        match essence(media_type).as_str() {
            MEDIA_DOCKER_MANIFEST => Some(Self::DockerManifest),
            MEDIA_DOCKER_LIST => Some(Self::DockerList),
            MEDIA_OCI_MANIFEST => Some(Self::OciManifest),
            MEDIA_OCI_INDEX => Some(Self::OciIndex),
            _ => None,
        }
    }

    /// The media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::DockerManifest => MEDIA_DOCKER_MANIFEST,
            Self::DockerList => MEDIA_DOCKER_LIST,
            Self::OciManifest => MEDIA_OCI_MANIFEST,
            Self::OciIndex => MEDIA_OCI_INDEX,
        }
    }

    /// A list of manifests rather than an image.
    pub fn is_index(self) -> bool {
        matches!(self, Self::DockerList | Self::OciIndex)
    }
}

/// A media type without parameters, trimmed and lowercased.
fn essence(media_type: &str) -> String {
    media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Which manifest kinds a client says it accepts (its `Accept` headers; `q` values are
/// ignored, as distribution ignores them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accept {
    docker_manifest: bool,
    docker_list: bool,
    oci_manifest: bool,
    oci_index: bool,
}

impl Accept {
    /// Reads every `Accept` header value (each a comma-separated list).
    pub fn from_headers<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut accept = Self::default();
        for value in values {
            for media_type in value.split(',') {
                match ManifestKind::from_media_type(media_type) {
                    Some(ManifestKind::DockerManifest) => accept.docker_manifest = true,
                    Some(ManifestKind::DockerList) => accept.docker_list = true,
                    Some(ManifestKind::OciManifest) => accept.oci_manifest = true,
                    Some(ManifestKind::OciIndex) => accept.oci_index = true,
                    None => {}
                }
            }
        }
        accept
    }

    /// Every kind.
    pub fn all() -> Self {
        Self {
            docker_manifest: true,
            docker_list: true,
            oci_manifest: true,
            oci_index: true,
        }
    }

    /// Whether the client named `kind`.
    pub fn allows(self, kind: ManifestKind) -> bool {
        match kind {
            ManifestKind::DockerManifest => self.docker_manifest,
            ManifestKind::DockerList => self.docker_list,
            ManifestKind::OciManifest => self.oci_manifest,
            ManifestKind::OciIndex => self.oci_index,
        }
    }

    /// The `Accept` header value naming every kind this set allows.
    pub fn header_value(self) -> String {
        [
            ManifestKind::OciIndex,
            ManifestKind::DockerList,
            ManifestKind::OciManifest,
            ManifestKind::DockerManifest,
        ]
        .into_iter()
        .filter(|kind| self.allows(*kind))
        .map(ManifestKind::media_type)
        .collect::<Vec<_>>()
        .join(", ")
    }
}

/// Why a manifest is refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The media type is none of the four manifest types.
    #[error("unsupported manifest media type {media_type:?}")]
    UnknownMediaType {
        /// The media type given.
        media_type: String,
    },
    /// Neither the `Content-Type` nor the document names a media type.
    #[error("manifest media type missing: set Content-Type")]
    MissingMediaType,
    /// The document's `mediaType` is not the one it was sent as.
    #[error("manifest mediaType {body:?} does not match Content-Type {header:?}")]
    MediaTypeMismatch {
        /// The `Content-Type`.
        header: String,
        /// The document's `mediaType`.
        body: String,
    },
    /// Not JSON of the expected shape.
    #[error("manifest is not valid: {source}")]
    Json {
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// `schemaVersion` is not 2.
    #[error("unsupported manifest schemaVersion {found}")]
    SchemaVersion {
        /// The version found.
        found: u32,
    },
    /// A descriptor's digest is malformed or not sha256.
    #[error("descriptor digest {digest:?}: {source}")]
    Digest {
        /// The digest as written.
        digest: String,
        /// Why it is refused.
        #[source]
        source: DigestError,
    },
}

/// What a manifest says, read from its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedManifest {
    /// Its kind (and so its media type).
    pub kind: ManifestKind,
    /// The config blob of an image manifest.
    pub config: Option<Descriptor>,
    /// The layers of an image manifest.
    pub layers: Vec<Descriptor>,
    /// The manifests an index lists.
    pub manifests: Vec<Descriptor>,
    /// `artifactType`, `subject` (OCI 1.1) and `annotations`.
    pub artifact: ArtifactFields,
}

#[derive(serde::Deserialize)]
struct Head {
    #[serde(rename = "schemaVersion", default)]
    schema_version: u32,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
}

impl ParsedManifest {
    /// Reads and checks a manifest sent with `content_type`. A generic or missing
    /// `Content-Type` (`application/json`, `application/octet-stream`) falls back to the
    /// document's own `mediaType`; a `mediaType` in the document must match the header.
    pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<Self, ManifestError> {
        let head: Head =
            serde_json::from_slice(bytes).map_err(|source| ManifestError::Json { source })?;
        let header = content_type.map(essence).filter(|h| {
            !h.is_empty() && h != "application/json" && h != "application/octet-stream"
        });
        let kind = match (&header, &head.media_type) {
            (Some(header), _) => ManifestKind::from_media_type(header).ok_or_else(|| {
                ManifestError::UnknownMediaType {
                    media_type: header.clone(),
                }
            })?,
            (None, Some(body)) => ManifestKind::from_media_type(body).ok_or_else(|| {
                ManifestError::UnknownMediaType {
                    media_type: body.clone(),
                }
            })?,
            (None, None) => return Err(ManifestError::MissingMediaType),
        };
        match &head.media_type {
            Some(body) if essence(body) != kind.media_type() => {
                return Err(ManifestError::MediaTypeMismatch {
                    header: kind.media_type().to_owned(),
                    body: body.clone(),
                });
            }
            // Docker's two types carry their media type; OCI's may leave it out.
            None if matches!(
                kind,
                ManifestKind::DockerManifest | ManifestKind::DockerList
            ) =>
            {
                return Err(ManifestError::MediaTypeMismatch {
                    header: kind.media_type().to_owned(),
                    body: String::new(),
                });
            }
            _ => {}
        }
        if head.schema_version != 2 {
            return Err(ManifestError::SchemaVersion {
                found: head.schema_version,
            });
        }
        let parsed = if kind.is_index() {
            let index: Index =
                serde_json::from_slice(bytes).map_err(|source| ManifestError::Json { source })?;
            Self {
                kind,
                config: None,
                layers: Vec::new(),
                manifests: index.manifests,
                artifact: index.artifact,
            }
        } else {
            let manifest: Manifest =
                serde_json::from_slice(bytes).map_err(|source| ManifestError::Json { source })?;
            Self {
                kind,
                config: Some(manifest.config),
                layers: manifest.layers,
                manifests: Vec::new(),
                artifact: manifest.artifact,
            }
        };
        for descriptor in parsed.descriptors() {
            Digest::parse(&descriptor.digest).map_err(|source| ManifestError::Digest {
                digest: descriptor.digest.clone(),
                source,
            })?;
        }
        Ok(parsed)
    }

    fn descriptors(&self) -> impl Iterator<Item = &Descriptor> {
        self.config
            .iter()
            .chain(&self.layers)
            .chain(&self.manifests)
            .chain(&self.artifact.subject)
    }

    /// The blobs the registry must hold for this manifest: the config and every layer,
    /// except non-distributable layers that name `urls` to fetch them from.
    pub fn required_blobs(&self) -> Vec<Digest> {
        self.config
            .iter()
            .chain(self.layers.iter().filter(|layer| layer.urls.is_empty()))
            .filter_map(|d| Digest::parse(&d.digest).ok())
            .collect()
    }

    /// The manifests an index lists.
    pub fn child_manifests(&self) -> Vec<Digest> {
        self.manifests
            .iter()
            .filter_map(|d| Digest::parse(&d.digest).ok())
            .collect()
    }

    /// The subject's digest.
    pub fn subject_digest(&self) -> Option<Digest> {
        self.artifact
            .subject
            .as_ref()
            .and_then(|d| Digest::parse(&d.digest).ok())
    }

    /// The descriptor a referrers list shows for this manifest: its `artifactType`, or for
    /// an image manifest without one its config's media type (the OCI 1.1 rule).
    pub fn referrer_descriptor(&self, digest: &Digest, size: u64) -> Descriptor {
        let artifact_type = self.artifact.artifact_type.clone().or_else(|| {
            self.config
                .as_ref()
                .map(|config| config.media_type.clone())
                .filter(|t| !t.is_empty())
        });
        Descriptor {
            media_type: self.kind.media_type().to_owned(),
            digest: digest.to_string(),
            size,
            artifact_type,
            annotations: self.artifact.annotations.clone(),
            ..Descriptor::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn digest(n: u8) -> String {
        format!("sha256:{}", hex::encode([n; 32]))
    }

    fn image(media_type: Option<&str>) -> Vec<u8> {
        let mut doc = json!({
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(1), "size": 2},
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(2), "size": 3},
                {"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "digest": digest(3), "size": 3, "urls": ["https://example.invalid/l"]}
            ],
        });
        if let Some(media_type) = media_type {
            doc["mediaType"] = json!(media_type);
        }
        serde_json::to_vec(&doc).expect("json")
    }

    #[test]
    fn kinds_and_accept() {
        assert_eq!(
            ManifestKind::from_media_type(
                "Application/vnd.docker.distribution.manifest.v2+json; charset=utf-8"
            ),
            Some(ManifestKind::DockerManifest)
        );
        assert_eq!(ManifestKind::from_media_type("application/json"), None);
        let accept = Accept::from_headers([
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.oci.image.index.v1+json;q=0.5, text/plain",
        ]);
        assert!(accept.allows(ManifestKind::DockerManifest));
        assert!(accept.allows(ManifestKind::OciIndex));
        assert!(!accept.allows(ManifestKind::OciManifest));
        assert!(!accept.allows(ManifestKind::DockerList));
        assert_eq!(Accept::from_headers([]), Accept::default());
        let all = Accept::all();
        assert_eq!(Accept::from_headers([all.header_value().as_str()]), all);
    }

    #[test]
    fn parses_an_oci_image_with_or_without_media_type() {
        for body_type in [None, Some(MEDIA_OCI_MANIFEST)] {
            let parsed =
                ParsedManifest::parse(Some(MEDIA_OCI_MANIFEST), &image(body_type)).expect("valid");
            assert_eq!(parsed.kind, ManifestKind::OciManifest);
            // The non-distributable layer with urls is not required.
            assert_eq!(
                parsed.required_blobs(),
                [digest(1), digest(2)].map(|d| Digest::parse(&d).expect("digest"))
            );
        }
        // No usable Content-Type: the document's mediaType decides.
        let parsed =
            ParsedManifest::parse(Some("application/json"), &image(Some(MEDIA_OCI_MANIFEST)))
                .expect("valid");
        assert_eq!(parsed.kind, ManifestKind::OciManifest);
    }

    #[test]
    fn refuses_bad_manifests() {
        let cases: Vec<(Option<&str>, Vec<u8>, &str)> = vec![
            (Some("application/x-unknown"), image(None), "UnknownMediaType"),
            (None, image(None), "MissingMediaType"),
            (
                Some(MEDIA_OCI_MANIFEST),
                image(Some(MEDIA_DOCKER_MANIFEST)),
                "MediaTypeMismatch",
            ),
            (Some(MEDIA_DOCKER_MANIFEST), image(None), "MediaTypeMismatch"),
            (Some(MEDIA_OCI_MANIFEST), b"{not json".to_vec(), "Json"),
            (
                Some(MEDIA_OCI_MANIFEST),
                br#"{"schemaVersion":1,"config":{"digest":"x"},"layers":[]}"#.to_vec(),
                "SchemaVersion",
            ),
            (
                Some(MEDIA_OCI_MANIFEST),
                br#"{"schemaVersion":2,"layers":[]}"#.to_vec(),
                "Json",
            ),
            (
                Some(MEDIA_OCI_MANIFEST),
                br#"{"schemaVersion":2,"config":{"digest":"sha256:../x","size":1},"layers":[]}"#
                    .to_vec(),
                "Digest",
            ),
            (
                Some(MEDIA_OCI_INDEX),
                br#"{"schemaVersion":2,"manifests":[{"digest":"md5:0000000000000000000000000000000000","size":1}]}"#
                    .to_vec(),
                "Digest",
            ),
        ];
        for (content_type, bytes, expected) in cases {
            let err = ParsedManifest::parse(content_type, &bytes).expect_err(expected);
            assert!(
                format!("{err:?}").starts_with(expected),
                "{expected}: {err:?}"
            );
        }
    }

    #[test]
    fn index_children_subject_and_referrer_descriptor() {
        let doc = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_OCI_INDEX,
            "manifests": [{"mediaType": MEDIA_OCI_MANIFEST, "digest": digest(4), "size": 10,
                "platform": {"architecture": "amd64", "os": "linux"}}],
            "subject": {"mediaType": MEDIA_OCI_MANIFEST, "digest": digest(5), "size": 10},
            "artifactType": "application/vnd.example.sbom",
            "annotations": {"k": "v"},
        });
        let bytes = serde_json::to_vec(&doc).expect("json");
        let parsed = ParsedManifest::parse(Some(MEDIA_OCI_INDEX), &bytes).expect("valid");
        assert!(parsed.required_blobs().is_empty());
        assert_eq!(parsed.child_manifests()[0].as_str(), digest(4));
        assert_eq!(
            parsed.subject_digest().map(|d| d.to_string()),
            Some(digest(5))
        );
        let own = Digest::of(&bytes);
        let descriptor = parsed.referrer_descriptor(&own, bytes.len() as u64);
        assert_eq!(
            descriptor.artifact_type.as_deref(),
            Some("application/vnd.example.sbom")
        );
        assert_eq!(descriptor.media_type, MEDIA_OCI_INDEX);
        assert_eq!(descriptor.annotations["k"], "v");
        // An image manifest without artifactType shows its config's media type.
        let image = ParsedManifest::parse(Some(MEDIA_OCI_MANIFEST), &image(None)).expect("ok");
        assert_eq!(
            image.referrer_descriptor(&own, 1).artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
    }
}
