//! `GET /distribution/{name}/json`: what the registry holds for a reference (its manifest's
//! descriptor and the platforms it is for), without pulling it.

use berth_image::manifest::{Descriptor, Platform};
use serde::Serialize;

use super::auth::AuthConfig;
use super::error::ClientError;
use super::{Distribution, parse_reference};
use crate::protocol::ParsedManifest;

/// Docker's `DistributionInspect`.
#[derive(Debug, Clone, Serialize)]
pub struct DistributionInspect {
    /// The manifest (or index) the reference names.
    #[serde(rename = "Descriptor")]
    pub descriptor: Descriptor,
    /// The platforms it is for: the index's entries, or the image config's.
    #[serde(rename = "Platforms")]
    pub platforms: Vec<Platform>,
}

#[derive(serde::Deserialize)]
struct ConfigPlatform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    variant: Option<String>,
}

impl Distribution {
    /// The descriptor and platforms of `reference` on its registry.
    pub async fn inspect(
        &self,
        reference: &str,
        auth: &AuthConfig,
    ) -> Result<DistributionInspect, ClientError> {
        let parsed = parse_reference(reference)?;
        let name = parse_reference(&parsed.name())?;
        let target = match (parsed.digest(), parsed.tag()) {
            (Some(digest), _) => digest.to_owned(),
            (None, Some(tag)) => tag.to_owned(),
            (None, None) => berth_image::DEFAULT_TAG.to_owned(),
        };
        let session = self.session(&name, &["pull"], &[], auth).await?;
        let fetched = session
            .get_manifest(name.path(), &target)
            .await
            .map_err(|e| super::pull::translate(&name, e, Some(&target)))?;
        let manifest = ParsedManifest::parse(fetched.content_type.as_deref(), &fetched.bytes)
            .map_err(|e| ClientError::InvalidDocument {
                what: "manifest",
                reference: format!("{}@{}", name.familiar_name(), fetched.digest),
                reason: e.to_string(),
            })?;
        let platforms = if manifest.manifests.is_empty() {
            match &manifest.config {
                Some(config) => {
                    let bytes = session.get_blob_bytes(name.path(), &config.digest).await?;
                    let config: ConfigPlatform = serde_json::from_slice(&bytes).map_err(|e| {
                        ClientError::InvalidDocument {
                            what: "image config",
                            reference: config.digest.clone(),
                            reason: e.to_string(),
                        }
                    })?;
                    vec![Platform {
                        architecture: config.architecture,
                        os: config.os,
                        variant: config.variant,
                    }]
                }
                None => Vec::new(),
            }
        } else {
            manifest
                .manifests
                .iter()
                .filter_map(|m| m.platform.clone())
                .collect()
        };
        Ok(DistributionInspect {
            descriptor: Descriptor {
                media_type: manifest.kind.media_type().to_owned(),
                digest: fetched.digest.to_string(),
                size: fetched.bytes.len() as u64,
                urls: Vec::new(),
                platform: None,
                artifact_type: None,
                annotations: Default::default(),
            },
            platforms,
        })
    }
}
