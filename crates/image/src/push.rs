//! What a push needs of the store: an image's config and, per layer, the blobs known to carry
//! it ([`crate::remote`]); the bytes of a stored blob; and, for a layer no stored blob
//! carries, its tar compressed once (gzip, on every core) and kept, so the next push of the
//! same layer sends the same digest without compressing again.

use std::fs::File;
use std::io::{self, Write};

use crate::compress::{LAYER_GZIP_LEVEL, gzip_blocks};
use crate::config::ImageConfig;
use crate::error::ImageError;
use crate::manifest::MEDIA_DOCKER_LAYER_GZIP;
use crate::remote::{LayerBlob, RemoteRecord};
use crate::store::resolve_id;
use crate::{ImageStore, Reference};

/// An image as a push sends it.
#[derive(Debug, Clone)]
pub struct PushImage {
    /// `sha256:<hex>`: the config's digest.
    pub id: String,
    /// The config, byte for byte.
    pub config_bytes: Vec<u8>,
    /// The parsed config.
    pub config: ImageConfig,
    /// The layers, bottom first.
    pub layers: Vec<PushLayer>,
}

/// One layer of an image being pushed.
#[derive(Debug, Clone)]
pub struct PushLayer {
    /// The digest of its uncompressed tar.
    pub diff_id: String,
    /// Registry blobs known to carry it (stored ones can be sent from here).
    pub blobs: Vec<LayerBlob>,
    /// Whether the uncompressed tar is in the store (so it can be compressed).
    pub has_tar: bool,
}

impl PushLayer {
    /// The blob this store can send as is: a stored one, preferring what was used last.
    pub fn stored_blob(&self) -> Option<&LayerBlob> {
        self.blobs
            .iter()
            .rev()
            .find(|b| b.stored && b.encoding().is_some())
    }
}

impl ImageStore {
    /// The image `reference` names, as a push needs it.
    pub fn push_image(&self, reference: &str) -> Result<PushImage, ImageError> {
        let (id, config) = {
            let index = self.lock();
            let (id, _) = resolve_id(&index, reference)?;
            (id.clone(), index.images[&id].config.clone())
        };
        let config_bytes = self.content.read(&id)?;
        let index = self.lock();
        let layers = config
            .diff_ids()
            .into_iter()
            .map(|diff_id| PushLayer {
                blobs: index
                    .remote
                    .get(&diff_id)
                    .map(|r| r.blobs.clone())
                    .unwrap_or_default(),
                has_tar: self
                    .content
                    .path_of(&diff_id)
                    .is_some_and(|path| path.exists()),
                diff_id,
            })
            .collect();
        Ok(PushImage {
            id,
            config_bytes,
            config,
            layers,
        })
    }

    /// Opens a blob of the content store (a stored layer blob, a layer tar, a config): the
    /// file and its size.
    pub fn open_blob(&self, digest: &str) -> Result<(File, u64), ImageError> {
        let path = self
            .content
            .path_of(digest)
            .ok_or_else(|| ImageError::NotFound {
                reference: digest.to_owned(),
            })?;
        let file = File::open(&path).map_err(ImageError::fs("open blob", &path))?;
        let size = file
            .metadata()
            .map_err(ImageError::fs("stat", &path))?
            .len();
        Ok((file, size))
    }

    /// Compresses layer `diff_id`'s tar with gzip, writing the compressed bytes to `sink`
    /// as they are made (an upload) and to the content store; once complete, the blob is
    /// kept and recorded as one carrying the layer. A failing `sink` stops it, keeping
    /// nothing.
    pub fn compress_layer(
        &self,
        diff_id: &str,
        sink: &mut dyn Write,
    ) -> Result<LayerBlob, ImageError> {
        let (mut tar, _) = self.open_blob(diff_id).map_err(|e| match e {
            ImageError::Filesystem { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                ImageError::LayerContentMissing {
                    diff_id: diff_id.to_owned(),
                }
            }
            other => other,
        })?;
        let mut writer = self.content.start()?;
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        let mut tee = Tee {
            file: &mut writer,
            sink,
            file_error: None,
        };
        let compressed = gzip_blocks(&mut tar, &mut tee, LAYER_GZIP_LEVEL, threads);
        if let Some(error) = tee.file_error.take() {
            return Err(ImageError::fs("write", writer.path())(error));
        }
        let tar_size = compressed.map_err(|source| ImageError::CompressLayer {
            diff_id: diff_id.to_owned(),
            source,
        })?;
        let pending = writer.finish()?;
        let blob = LayerBlob {
            digest: pending.digest().to_owned(),
            media_type: MEDIA_DOCKER_LAYER_GZIP.to_owned(),
            size: pending.size(),
            stored: true,
            sources: Vec::new(),
        };
        let mut index = self.lock();
        // The layer may have gone (its last image removed) while it was compressed.
        if !index.images.values().any(|image| {
            image
                .config
                .diff_ids()
                .iter()
                .any(|d| d.as_str() == diff_id)
        }) {
            return Err(ImageError::NotFound {
                reference: diff_id.to_owned(),
            });
        }
        self.content.commit(pending)?;
        let mut record = index.remote.get(diff_id).cloned().unwrap_or(RemoteRecord {
            diff_id: diff_id.to_owned(),
            ..RemoteRecord::default()
        });
        record.merge(&blob);
        record.tar_size.get_or_insert(tar_size);
        self.remote.save(&record)?;
        index.remote.insert(diff_id.to_owned(), record);
        tracing::debug!(digest = %blob.digest, diff_id, size = blob.size, "layer compressed");
        Ok(blob)
    }

    /// Records that `blob` carries layer `diff_id` (a push sent it to, or found it in,
    /// `blob.sources`).
    pub fn record_layer_blob(&self, diff_id: &str, blob: &LayerBlob) -> Result<(), ImageError> {
        let mut index = self.lock();
        if !index.images.values().any(|image| {
            image
                .config
                .diff_ids()
                .iter()
                .any(|d| d.as_str() == diff_id)
        }) {
            return Ok(());
        }
        let mut record = index.remote.get(diff_id).cloned().unwrap_or(RemoteRecord {
            diff_id: diff_id.to_owned(),
            ..RemoteRecord::default()
        });
        // Only blobs this store keeps are marked stored, and never by hearsay.
        let mut blob = blob.clone();
        blob.stored = false;
        if record.merge(&blob) {
            self.remote.save(&record)?;
            index.remote.insert(diff_id.to_owned(), record);
        }
        Ok(())
    }

    /// Adds `reference` (a tag, or `name@digest` after a push) to image `image_id`.
    pub fn add_reference(&self, image_id: &str, reference: &Reference) -> Result<(), ImageError> {
        let mut index = self.lock();
        if !index.images.contains_key(image_id) {
            return Err(ImageError::NotFound {
                reference: image_id.to_owned(),
            });
        }
        let previous = index
            .tags
            .insert(reference.to_string(), image_id.to_owned());
        if previous.as_deref() == Some(image_id) {
            return Ok(());
        }
        if let Err(e) = self.save_repositories(&index) {
            match previous {
                Some(previous) => index.tags.insert(reference.to_string(), previous),
                None => index.tags.remove(&reference.to_string()),
            };
            return Err(e);
        }
        Ok(())
    }
}

/// Writes to the content store's file and to the sink; a file error is kept aside so it is
/// reported as the disk error it is.
struct Tee<'a> {
    file: &'a mut crate::content::IngestWriter,
    sink: &'a mut dyn Write,
    file_error: Option<io::Error>,
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Err(error) = self.file.write_all(buf) {
            let message = error.to_string();
            self.file_error = Some(error);
            return Err(io::Error::other(message));
        }
        self.sink.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sink.flush()
    }
}
