//! What a builder needs from the store: a new image on top of another made from a layer tar
//! (or from no layer at all: a metadata step), and the read-only layer directories of an
//! image (to read files from it without a container).
use std::io::Read;
use std::path::PathBuf;

use serde_json::json;

use super::{ImageStore, resolve_id};
use crate::ImageRecord;
use crate::commit::EMPTY_LAYER_DIGEST;
use crate::config::{self, NewConfig, RunConfig};
use crate::error::ImageError;
use crate::layer::stage_layer;

/// A build step's image: `parent`'s layers (none for `scratch`), plus the layer `layer` holds
/// (an uncompressed tar), with `config` as its defaults and one more history entry.
#[derive(Debug, Clone, Default)]
pub struct ChildImage {
    /// The image the step starts from (an id or reference); `None` for `scratch`.
    pub parent: Option<String>,
    /// The new image's container defaults.
    pub config: RunConfig,
    /// The history line (`/bin/sh -c #(nop)  ENV a=b`).
    pub created_by: String,
    /// Top-level `comment` and the history entry's.
    pub comment: Option<String>,
    /// Top-level `author` (`MAINTAINER`).
    pub author: Option<String>,
}

impl ImageStore {
    /// Makes `child` an image. With `layer`, the tar is unpacked into a new snapshot while it
    /// is hashed and stored (one pass, as a load); a layer with no entries is not added (the
    /// history entry is marked `empty_layer`). Nothing is visible until the image record is
    /// written.
    pub fn create_child(
        &self,
        child: &ChildImage,
        layer: Option<&mut dyn Read>,
    ) -> Result<ImageRecord, ImageError> {
        let (base, parent) = match child.parent.as_deref() {
            None => (Vec::new(), None),
            Some(reference) => {
                let index = self.lock();
                let (id, _) = resolve_id(&index, reference)?;
                let entry = index.images[&id].clone();
                (entry.layers.clone(), Some((id, entry)))
            }
        };
        let staged = match layer {
            Some(stream) => Some(stage_layer(
                &self.content,
                &self.paths.ingest,
                stream,
                None,
            )?),
            None => None,
        };
        let staged = staged.filter(|s| s.blob.digest() != EMPTY_LAYER_DIGEST);
        let mut diff_ids = Vec::new();
        for chain in &base {
            diff_ids.push(self.layer_meta(chain)?.diff_id);
        }
        let mut history: Vec<serde_json::Value> = parent
            .as_ref()
            .and_then(|(_, p)| p.config.other.get("history"))
            .and_then(serde_json::Value::as_array)
            .cloned()
            .unwrap_or_default();
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let mut entry = serde_json::Map::new();
        entry.insert("created".into(), json!(created));
        entry.insert("created_by".into(), json!(child.created_by));
        if let Some(comment) = child.comment.as_deref().filter(|c| !c.is_empty()) {
            entry.insert("comment".into(), json!(comment));
        }
        match &staged {
            Some(s) => diff_ids.push(s.blob.digest().to_owned()),
            None => {
                entry.insert("empty_layer".into(), json!(true));
            }
        }
        history.push(serde_json::Value::Object(entry));
        let author = child
            .author
            .clone()
            .or_else(|| parent.as_ref().and_then(|(_, p)| p.config.author.clone()));
        let config = config::serialize_new(&NewConfig {
            run: &child.config,
            created: &created,
            diff_ids: &diff_ids,
            history,
            comment: child.comment.as_deref().filter(|c| !c.is_empty()),
            author: author.as_deref().filter(|a| !a.is_empty()),
        });
        let parent_id = parent.map(|(id, _)| id);
        self.install_image(base, staged.into_iter().collect(), config, None, parent_id)
    }

    /// The read-only layer directories of an image, topmost first (what a container's root
    /// stacks under its writable layer). They stay valid while the image exists.
    pub fn layer_dirs(&self, reference: &str) -> Result<Vec<PathBuf>, ImageError> {
        let index = self.lock();
        let (id, _) = resolve_id(&index, reference)?;
        Ok(index.images[&id]
            .layers
            .iter()
            .rev()
            .map(|chain| self.layer_dir(chain).join("diff"))
            .collect())
    }

    /// Whether an image exists (by id or reference), without an error for a bad reference.
    pub fn exists(&self, reference: &str) -> bool {
        let index = self.lock();
        resolve_id(&index, reference).is_ok()
    }
}
