//! The documents of an image archive: docker-archive's `manifest.json` and the OCI image
//! layout's `index.json` (the manifests and descriptors are [`crate::manifest`]'s).

use serde::{Deserialize, Serialize};

pub(crate) const MANIFEST_FILE: &str = "manifest.json";
pub(crate) const INDEX_FILE: &str = "index.json";
pub(crate) const LAYOUT_FILE: &str = "oci-layout";
pub(crate) const REPOSITORIES_FILE: &str = "repositories";
pub(crate) const LAYOUT_CONTENT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

pub(crate) use crate::manifest::{
    Descriptor, Index, MEDIA_DOCKER_LIST, MEDIA_OCI_CONFIG, MEDIA_OCI_INDEX, MEDIA_OCI_LAYER,
    MEDIA_OCI_MANIFEST, Manifest, Platform,
};

/// The annotation containerd and Docker put the full image name in.
pub(crate) const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// OCI's ref name (Docker writes the tag alone).
pub(crate) const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// One image of `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ManifestItem {
    #[serde(rename = "Config")]
    pub(crate) config: String,
    #[serde(rename = "RepoTags", default)]
    pub(crate) repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    pub(crate) layers: Vec<String>,
}

/// `blobs/sha256/<hex>` for a `sha256:<hex>` digest.
pub(crate) fn blob_path(digest: &str) -> String {
    format!(
        "blobs/sha256/{}",
        digest.strip_prefix("sha256:").unwrap_or(digest)
    )
}
