//! `save`: images to a docker-archive that is also an OCI image layout (Docker 25's format).
//!
//! Layers are the store's own blobs (uncompressed tars named by diff id), so the archive is
//! written by streaming them as they are: nothing is re-tarred, re-hashed or copied to a
//! temp dir, and the files are opened under the store's lock before the first byte goes out.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};

use serde_json::json;

use super::error::ArchiveError;
use super::format::{
    self, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, Descriptor, INDEX_FILE, Index,
    LAYOUT_CONTENT, LAYOUT_FILE, MANIFEST_FILE, MEDIA_OCI_CONFIG, MEDIA_OCI_INDEX, MEDIA_OCI_LAYER,
    MEDIA_OCI_MANIFEST, Manifest, ManifestItem, Platform, REPOSITORIES_FILE,
};
use crate::ImageStore;
use crate::content::sha256_digest;
use crate::error::ImageError;
use crate::store::{LayerSource, SavedImage};

/// Size of the chunks layer files are read in.
const CHUNK: usize = 1024 * 1024;

/// The images a `save` will write, resolved and with their layer files open.
#[derive(Debug)]
pub struct SaveSet {
    images: Vec<SavedImage>,
}

impl ImageStore {
    /// Resolves `names` for `save` (a `name:tag` saves that tag, a bare name every tag of the
    /// repository, an id the untagged image). Errors here (an unknown name) come before any
    /// byte of the archive.
    pub fn save(&self, names: &[String]) -> Result<SaveSet, ImageError> {
        let images = self.images_to_save(names)?;
        if images.iter().any(|image| image.layers.is_empty()) {
            return Err(ArchiveError::EmptyImage.into());
        }
        Ok(SaveSet { images })
    }
}

impl SaveSet {
    /// The ids of the images in the archive.
    pub fn image_ids(&self) -> Vec<String> {
        self.images.iter().map(|image| image.id.clone()).collect()
    }

    /// Writes the archive to `out`; returns the bytes written.
    pub fn write_to(self, out: &mut dyn Write) -> Result<u64, ImageError> {
        let mut tar = TarWriter { out, written: 0 };
        let mut written_blobs: HashSet<String> = HashSet::new();
        let mut manifest_items = Vec::new();
        let mut descriptors = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        tar.directory("blobs/")?;
        tar.directory("blobs/sha256/")?;
        for image in self.images {
            if written_blobs.insert(image.id.clone()) {
                tar.file(&format::blob_path(&image.id), &image.config_bytes)?;
            }
            let mut layer_descriptors = Vec::new();
            let mut layer_paths = Vec::new();
            for (diff_id, file, size) in image.layers {
                let path = format::blob_path(&diff_id);
                if written_blobs.insert(diff_id.clone()) {
                    tar.stream(&path, file, size)?;
                }
                layer_paths.push(path);
                layer_descriptors.push(descriptor(MEDIA_OCI_LAYER, &diff_id, size));
            }
            let platform = Platform {
                architecture: image.config.architecture.clone(),
                os: image.config.os.clone(),
                variant: image
                    .config
                    .other
                    .get("variant")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned),
            };
            let mut config =
                descriptor(MEDIA_OCI_CONFIG, &image.id, image.config_bytes.len() as u64);
            config.platform = Some(platform.clone());
            let manifest = Manifest {
                schema_version: 2,
                media_type: MEDIA_OCI_MANIFEST.to_owned(),
                config,
                layers: layer_descriptors,
                ..Manifest::default()
            };
            let manifest_bytes = to_json(&manifest);
            let manifest_digest = sha256_digest(&manifest_bytes);
            if written_blobs.insert(manifest_digest.clone()) {
                tar.file(&format::blob_path(&manifest_digest), &manifest_bytes)?;
            }
            let mut manifest_descriptor = descriptor(
                MEDIA_OCI_MANIFEST,
                &manifest_digest,
                manifest_bytes.len() as u64,
            );
            manifest_descriptor.platform = Some(platform);
            let top = layer_paths
                .last()
                .and_then(|p| p.rsplit('/').next())
                .unwrap_or_default()
                .to_owned();
            let mut repo_tags = Vec::new();
            for tag in &image.tags {
                let mut d = manifest_descriptor.clone();
                d.annotations
                    .insert(ANNOTATION_IMAGE_NAME.to_owned(), tag.to_string());
                d.annotations.insert(
                    ANNOTATION_REF_NAME.to_owned(),
                    tag.tag().unwrap_or("latest").to_owned(),
                );
                descriptors.push(d);
                repositories
                    .entry(tag.familiar_name())
                    .or_default()
                    .insert(tag.tag().unwrap_or("latest").to_owned(), top.clone());
                repo_tags.push(tag.familiar());
            }
            if image.tags.is_empty() {
                descriptors.push(manifest_descriptor);
            }
            manifest_items.push(ManifestItem {
                config: format::blob_path(&image.id),
                repo_tags: (!repo_tags.is_empty()).then_some(repo_tags),
                layers: layer_paths,
            });
        }
        let index = Index {
            schema_version: 2,
            media_type: MEDIA_OCI_INDEX.to_owned(),
            manifests: descriptors,
            ..Index::default()
        };
        tar.file(INDEX_FILE, &to_json(&index))?;
        tar.file(MANIFEST_FILE, &to_json(&manifest_items))?;
        tar.file(LAYOUT_FILE, LAYOUT_CONTENT.as_bytes())?;
        if !repositories.is_empty() {
            tar.file(REPOSITORIES_FILE, &to_json(&json!(repositories)))?;
        }
        tar.finish()
    }
}

fn descriptor(media_type: &str, digest: &str, size: u64) -> Descriptor {
    Descriptor {
        media_type: media_type.to_owned(),
        digest: digest.to_owned(),
        size,
        ..Descriptor::default()
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("archive documents always serialize")
}

/// A minimal ustar writer: the archive's paths are short and its files regular, and layers
/// are streamed from their blob files in large chunks.
struct TarWriter<'a> {
    out: &'a mut dyn Write,
    written: u64,
}

impl TarWriter<'_> {
    fn header(
        &mut self,
        path: &str,
        kind: tar::EntryType,
        mode: u32,
        size: u64,
    ) -> Result<(), ImageError> {
        let mut header = tar::Header::new_ustar();
        header
            .set_path(path)
            .map_err(|source| ImageError::BuildLayer { source })?;
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_cksum();
        self.write(header.as_bytes())
    }

    fn directory(&mut self, path: &str) -> Result<(), ImageError> {
        self.header(path, tar::EntryType::Directory, 0o755, 0)
    }

    fn file(&mut self, path: &str, data: &[u8]) -> Result<(), ImageError> {
        self.header(path, tar::EntryType::Regular, 0o644, data.len() as u64)?;
        self.write(data)?;
        self.pad(data.len() as u64)
    }

    /// Streams `size` bytes of `file`; a file that turns out shorter is an error (the store's
    /// blobs are immutable, so that would be corruption).
    fn stream(&mut self, path: &str, source: LayerSource, size: u64) -> Result<(), ImageError> {
        self.header(path, tar::EntryType::Regular, 0o644, size)?;
        let mut file: Box<dyn Read> = match source {
            LayerSource::Tar(file) => Box::new(file),
            LayerSource::Compressed(file) => {
                crate::import::decompressed(std::io::BufReader::new(file))?
            }
        };
        let mut buffer = vec![0u8; CHUNK];
        let mut left = size;
        while left > 0 {
            let want = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
            let n = file
                .read(&mut buffer[..want])
                .map_err(ImageError::fs("read layer", path))?;
            if n == 0 {
                return Err(ImageError::SizeMismatch {
                    digest: path.to_owned(),
                    expected: size,
                    actual: size - left,
                });
            }
            self.write(&buffer[..n])?;
            left -= n as u64;
        }
        self.pad(size)
    }

    fn pad(&mut self, size: u64) -> Result<(), ImageError> {
        let rest = (512 - size % 512) % 512;
        self.write(&[0u8; 512][..rest as usize])
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), ImageError> {
        self.out
            .write_all(bytes)
            .map_err(ImageError::fs("write archive", "<output>"))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn finish(mut self) -> Result<u64, ImageError> {
        self.write(&[0u8; 1024])?;
        self.out
            .flush()
            .map_err(ImageError::fs("write archive", "<output>"))?;
        Ok(self.written)
    }
}
