//! The image documents of the OCI image spec and Docker's schema 2, as both image archives and
//! registries carry them: descriptors, image manifests, image indexes (Docker's manifest
//! lists), and their media types.
//!
//! These models read what berth needs and keep optional OCI 1.1 fields (`artifactType`,
//! `subject`, `annotations`, `urls`). A document that came from elsewhere is identified by the
//! digest of its bytes, so it is never re-serialized from these models; berth serializes them
//! only for documents it writes itself.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// OCI image index.
pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image config.
pub const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI uncompressed layer.
pub const MEDIA_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI gzip-compressed layer.
pub const MEDIA_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd-compressed layer.
pub const MEDIA_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI empty JSON descriptor (`{}`), the config of artifacts without one.
pub const MEDIA_OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Docker's manifest list.
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker's image manifest, schema 2.
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker's image config.
pub const MEDIA_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker's gzip-compressed layer.
pub const MEDIA_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker's foreign (non-distributable) layer, fetched from its `urls`.
pub const MEDIA_DOCKER_FOREIGN_LAYER: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// How a layer blob is compressed, as its media type says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerEncoding {
    /// A plain tar: the blob's digest is the diff id.
    Plain,
    /// gzip.
    Gzip,
    /// Zstandard.
    Zstd,
}

impl LayerEncoding {
    /// The encoding of a layer media type (OCI's, Docker's, their non-distributable
    /// variants; parameters ignored); `None` for a type that is no layer berth can unpack.
    pub fn of_media_type(media_type: &str) -> Option<Self> {
        let essence = media_type.split(';').next().unwrap_or_default().trim();
        match essence {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(Self::Plain),
            MEDIA_OCI_LAYER_GZIP
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | MEDIA_DOCKER_LAYER_GZIP
            | MEDIA_DOCKER_FOREIGN_LAYER => Some(Self::Gzip),
            MEDIA_OCI_LAYER_ZSTD
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Some(Self::Zstd),
            _ => None,
        }
    }

    /// The media type a Docker schema 2 manifest gives a layer of this encoding (zstd has
    /// none of Docker's: only an OCI manifest can carry it).
    pub fn docker_media_type(self) -> Option<&'static str> {
        match self {
            Self::Plain => Some("application/vnd.docker.image.rootfs.diff.tar"),
            Self::Gzip => Some(MEDIA_DOCKER_LAYER_GZIP),
            Self::Zstd => None,
        }
    }

    /// The media type an OCI manifest gives a layer of this encoding.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            Self::Plain => MEDIA_OCI_LAYER,
            Self::Gzip => MEDIA_OCI_LAYER_GZIP,
            Self::Zstd => MEDIA_OCI_LAYER_ZSTD,
        }
    }
}

/// An OCI descriptor: what a manifest or index says about one piece of content.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Descriptor {
    /// Media type of the content.
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    /// `sha256:<hex>` of the content.
    pub digest: String,
    /// Size of the content in bytes.
    #[serde(default)]
    pub size: u64,
    /// Where non-distributable content can be fetched from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// The platform an index entry is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// The artifact type of the content (OCI 1.1).
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The platform of a descriptor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Platform {
    /// `amd64`, `arm64`, …
    #[serde(default)]
    pub architecture: String,
    /// `linux`, …
    #[serde(default)]
    pub os: String,
    /// `v8`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// What an OCI 1.1 index or image manifest says about itself besides its content (the same
/// three fields in both).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArtifactFields {
    /// The artifact type (OCI 1.1).
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
    /// The manifest this one refers to (OCI 1.1 referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An OCI image index (also Docker's manifest list).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Index {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// The index's own media type (optional in OCI, required by Docker).
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    /// The manifests it lists.
    pub manifests: Vec<Descriptor>,
    /// `artifactType`, `subject`, `annotations`.
    #[serde(flatten)]
    pub artifact: ArtifactFields,
}

/// An OCI image manifest (also Docker's schema 2).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// The manifest's own media type (optional in OCI, required by Docker).
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub media_type: String,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, bottom first.
    pub layers: Vec<Descriptor>,
    /// `artifactType`, `subject`, `annotations`.
    #[serde(flatten)]
    pub artifact: ArtifactFields,
}
