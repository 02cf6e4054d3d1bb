//! Images arriving from a registry: each layer's blob is staged as its bytes arrive (kept as
//! it came, unpacked, both verified), then the image is published at once, as a load is.
//!
//! The registry client (`berth-distribution`) decides what to fetch and feeds each blob's
//! bytes to [`ImageStore::stage_pulled_layer`], possibly several at once on threads of its
//! own; [`ImageStore::install_pulled`] then renames the staged snapshots into `layers/`,
//! commits the blobs, records where they came from ([`crate::remote`]), writes the image
//! record (the commit point) and sets the tag and the `repo@digest` reference. A pull that
//! fails or is dropped before that leaves only staging files, removed with their guards.

use std::io::Read;
use std::path::PathBuf;

use crate::config::ImageConfig;
use crate::content::{chain_id, sha256_digest};
use crate::error::ImageError;
use crate::layer::{LayerMeta, StagedPull, stage_blob};
use crate::manifest::LayerEncoding;
use crate::remote::{LayerBlob, RemoteRecord};
use crate::store::read_json;
use crate::{ImageRecord, ImageStore, Reference, persist};

/// One layer of an image being pulled, as its manifest and its config describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullLayer {
    /// The blob's digest, from the manifest.
    pub digest: String,
    /// The blob's media type.
    pub media_type: String,
    /// The blob's size.
    pub size: u64,
    /// The layer's diff id, from the config (`rootfs.diff_ids`).
    pub diff_id: String,
}

/// An image whose missing layers are staged, ready to publish.
#[derive(Debug)]
pub struct PulledImage {
    /// The config, as fetched (its digest is the image id).
    pub config_bytes: Vec<u8>,
    /// Every layer, bottom first, with its staged content unless the store has it.
    pub layers: Vec<(PullLayer, Option<StagedPull>)>,
    /// The repository it came from, normalized (`127.0.0.1:5000/team/app`).
    pub repository: String,
    /// The tag to point at it.
    pub tag: Option<Reference>,
    /// `name@digest` of the manifest it was pulled by (a RepoDigest).
    pub digest_reference: Option<Reference>,
}

/// What publishing a pulled image changed.
#[derive(Debug, Clone)]
pub struct PullOutcome {
    /// The image.
    pub record: ImageRecord,
    /// Whether the image or its tag is new (Docker's "Downloaded newer image" rather than
    /// "Image is up to date").
    pub updated: bool,
}

impl ImageStore {
    /// For each diff id of an image's stack (bottom first), whether the store already has
    /// that layer (its chain's snapshot): those need no download ("Already exists").
    pub fn present_layers(&self, diff_ids: &[String]) -> Vec<bool> {
        let mut parent: Option<String> = None;
        diff_ids
            .iter()
            .map(|diff_id| {
                let chain = chain_id(parent.as_deref(), diff_id);
                let present = self.has_layer(&chain);
                parent = Some(chain);
                present
            })
            .collect()
    }

    /// Whether an image with this id exists.
    pub fn has_image(&self, id: &str) -> bool {
        self.lock().images.contains_key(id)
    }

    /// Reads one layer's blob from `raw` as it arrives: stores it as it came, unpacks it,
    /// and checks its digest and size against the manifest's and its diff id against the
    /// config's. Nothing becomes visible; dropping the result removes what was staged.
    pub fn stage_pulled_layer(
        &self,
        layer: &PullLayer,
        raw: &mut (dyn Read + Send),
    ) -> Result<StagedPull, ImageError> {
        if LayerEncoding::of_media_type(&layer.media_type).is_none() {
            return Err(ImageError::UnsupportedLayerType {
                media_type: layer.media_type.clone(),
            });
        }
        let staged = stage_blob(&self.content, &self.paths.ingest, raw)?;
        staged.blob.verify(&layer.digest, Some(layer.size))?;
        if staged.diff_id != layer.diff_id {
            return Err(ImageError::DiffIdMismatch {
                digest: layer.digest.clone(),
                expected: layer.diff_id.clone(),
                actual: staged.diff_id.clone(),
            });
        }
        Ok(staged)
    }

    /// Publishes a pulled image: staged snapshots into place, blobs committed, where they
    /// came from recorded, the image record written (the commit point), then the tag and the
    /// digest reference. A layer without staged content must be in the store already.
    pub fn install_pulled(&self, image: PulledImage) -> Result<PullOutcome, ImageError> {
        let config: ImageConfig =
            serde_json::from_slice(&image.config_bytes).map_err(|source| {
                ImageError::CorruptMetadata {
                    path: PathBuf::from("<pulled config>"),
                    source,
                }
            })?;
        let id = sha256_digest(&image.config_bytes);
        // The layers were staged (files and blobs) without syncing: one syncfs makes them all
        // durable before any is renamed into place, so a layer is never recorded while its
        // files could be lost in a crash.
        if image.layers.iter().any(|(_, staged)| staged.is_some()) {
            crate::layer::sync_snapshot(&self.paths.ingest)?;
        }
        let mut index = self.lock();
        let existed = index.images.contains_key(&id);
        let mut parent: Option<String> = None;
        let mut chains = Vec::new();
        let mut size = 0;
        let mut records: Vec<RemoteRecord> = Vec::new();
        for (layer, staged) in image.layers {
            let chain = chain_id(parent.as_deref(), &layer.diff_id);
            let mut blob = LayerBlob {
                digest: layer.digest.clone(),
                media_type: layer.media_type.clone(),
                size: layer.size,
                stored: false,
                sources: vec![image.repository.clone()],
            };
            let mut tar_size = None;
            match staged {
                Some(staged) => {
                    let StagedPull {
                        dir,
                        blob: pending,
                        diff_id,
                        tar_size: staged_tar_size,
                        size: layer_size,
                    } = staged;
                    // A plain layer's blob is its tar: named by the diff id, like a load's.
                    blob.stored = pending.digest() != diff_id;
                    tar_size = Some(staged_tar_size);
                    self.install_layer(dir, &diff_id, layer_size, parent.as_deref(), &chain)?;
                    self.content.commit(pending)?;
                    size += layer_size;
                }
                None => {
                    let meta: LayerMeta = read_json(&self.layer_dir(&chain).join("meta.json"))?;
                    size += meta.size;
                }
            }
            let mut record = index
                .remote
                .get(&layer.diff_id)
                .cloned()
                .unwrap_or_else(|| RemoteRecord {
                    diff_id: layer.diff_id.clone(),
                    ..RemoteRecord::default()
                });
            let mut changed = record.merge(&blob);
            if record.tar_size.is_none() && tar_size.is_some() {
                record.tar_size = tar_size;
                changed = true;
            }
            if changed {
                self.remote.save(&record)?;
                records.push(record);
            }
            chains.push(chain.clone());
            parent = Some(chain);
        }
        persist::sync_dir(&self.paths.layers)?;
        persist::sync_dir(self.content.blobs_dir())?;
        for record in records {
            index.remote.insert(record.diff_id.clone(), record);
        }
        if !existed {
            let recorded =
                self.record_image(&mut index, &image.config_bytes, config, chains, size, None)?;
            debug_assert_eq!(recorded, id);
        }
        let mut updated = !existed;
        let mut changed_references = false;
        for reference in image.tag.iter().chain(&image.digest_reference) {
            let previous = index.tags.insert(reference.to_string(), id.clone());
            if previous.as_deref() != Some(id.as_str()) {
                changed_references = true;
                // A new repo@digest alone is no news; a tag that moved is.
                if reference.digest().is_none() {
                    updated = true;
                }
            }
        }
        if changed_references {
            self.save_repositories(&index)?;
        }
        tracing::debug!(image_id = %id, updated, "pulled image installed");
        Ok(PullOutcome {
            record: index.record(&id),
            updated,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::manifest::{MEDIA_DOCKER_LAYER_GZIP, MEDIA_OCI_LAYER, MEDIA_OCI_LAYER_ZSTD};
    use crate::remote::LayerBlob;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o644);
            header.set_size(data.len() as u64);
            header.set_mtime(1_600_000_000);
            builder
                .append_data(&mut header, path, *data)
                .expect("append");
        }
        builder.into_inner().expect("finish")
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).expect("gzip");
        encoder.finish().expect("gzip")
    }

    fn names(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    struct Fixture {
        tars: Vec<Vec<u8>>,
        blobs: Vec<Vec<u8>>,
        layers: Vec<PullLayer>,
        config: Vec<u8>,
    }

    /// An image of two layers: a gzip one and a zstd or plain one.
    fn fixture(second: &str) -> Fixture {
        let tars = vec![
            tar_of(&[("a", b"first layer")]),
            tar_of(&[("b", b"second layer")]),
        ];
        let blobs = vec![
            gzip(&tars[0]),
            match second {
                MEDIA_OCI_LAYER_ZSTD => zstd::encode_all(&tars[1][..], 3).expect("zstd"),
                _ => tars[1].clone(),
            },
        ];
        let media = [MEDIA_DOCKER_LAYER_GZIP, second];
        let layers: Vec<PullLayer> = (0..2)
            .map(|i| PullLayer {
                digest: sha256_digest(&blobs[i]),
                media_type: media[i].to_owned(),
                size: blobs[i].len() as u64,
                diff_id: sha256_digest(&tars[i]),
            })
            .collect();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layers[0].diff_id, layers[1].diff_id]},
            "history": [{"created_by": "one"}, {"created_by": "two"}],
        }))
        .expect("json");
        Fixture {
            tars,
            blobs,
            layers,
            config,
        }
    }

    fn pull(store: &ImageStore, f: &Fixture, tag: &str) -> PullOutcome {
        let present = store.present_layers(
            &f.layers
                .iter()
                .map(|l| l.diff_id.clone())
                .collect::<Vec<_>>(),
        );
        let layers = f
            .layers
            .iter()
            .zip(&f.blobs)
            .zip(present)
            .map(|((layer, blob), present)| {
                let staged = (!present).then(|| {
                    store
                        .stage_pulled_layer(layer, &mut &blob[..])
                        .expect("stage")
                });
                (layer.clone(), staged)
            })
            .collect();
        let tag = Reference::parse(tag).expect("tag");
        let digest = Reference::parse(&format!("{}@{}", tag.name(), sha256_digest(b"manifest")))
            .expect("digest");
        store
            .install_pulled(PulledImage {
                config_bytes: f.config.clone(),
                layers,
                repository: tag.name(),
                tag: Some(tag),
                digest_reference: Some(digest),
            })
            .expect("install")
    }

    #[test]
    fn pulled_layers_keep_their_blobs_and_save_decompresses_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("image");
        let store = ImageStore::open(&root).expect("open");
        let f = fixture(MEDIA_OCI_LAYER_ZSTD);
        let outcome = pull(&store, &f, "127.0.0.1:5000/team/app:1");
        assert!(outcome.updated);
        let record = outcome.record;
        assert_eq!(record.id, sha256_digest(&f.config));
        assert_eq!(record.repo_tags, ["127.0.0.1:5000/team/app:1"]);
        assert_eq!(
            record.repo_digests,
            [format!(
                "127.0.0.1:5000/team/app@{}",
                sha256_digest(b"manifest")
            )]
        );
        // The blobs as they came, and no uncompressed tar.
        let blobs = names(&root.join("blobs/sha256"));
        for blob in &f.blobs {
            assert!(blobs.contains(&sha256_digest(blob)[7..].to_owned()));
        }
        for tar in &f.tars {
            assert!(!blobs.contains(&sha256_digest(tar)[7..].to_owned()));
        }
        assert!(names(&root.join("ingest")).is_empty());
        let push = store.push_image("127.0.0.1:5000/team/app:1").expect("push");
        assert_eq!(push.layers.len(), 2);
        assert_eq!(
            push.layers[0].stored_blob().map(|b| b.digest.clone()),
            Some(f.layers[0].digest.clone())
        );
        assert_eq!(
            push.layers[1].stored_blob().map(|b| &b.sources[..]),
            Some(&["127.0.0.1:5000/team/app".to_owned()][..])
        );
        assert!(!push.layers[0].has_tar);

        // Again: nothing to fetch, nothing new.
        assert_eq!(store.present_layers(&[f.layers[0].diff_id.clone()]), [true]);
        let again = pull(&store, &f, "127.0.0.1:5000/team/app:1");
        assert!(!again.updated);

        // save writes the uncompressed tars, named by diff id.
        let mut archive = Vec::new();
        store
            .save(&["127.0.0.1:5000/team/app:1".to_owned()])
            .expect("save")
            .write_to(&mut archive)
            .expect("write");
        let mut found = 0;
        for entry in tar::Archive::new(&archive[..]).entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let path = entry.path().expect("path").display().to_string();
            for tar in &f.tars {
                if path == format!("blobs/sha256/{}", &sha256_digest(tar)[7..]) {
                    let mut bytes = Vec::new();
                    std::io::Read::read_to_end(&mut entry, &mut bytes).expect("read");
                    assert_eq!(&bytes, tar);
                    found += 1;
                }
            }
        }
        assert_eq!(found, 2);

        // Reopening keeps it all; removing the image takes the blobs and records along.
        drop(store);
        let store = ImageStore::open(&root).expect("reopen");
        assert_eq!(
            store.resolve("127.0.0.1:5000/team/app:1").expect("kept").id,
            record.id
        );
        let by_digest = format!("127.0.0.1:5000/team/app@{}", sha256_digest(b"manifest"));
        assert_eq!(store.resolve(&by_digest).expect("by digest").id, record.id);
        let removed = store
            .remove("127.0.0.1:5000/team/app:1", false, &|_| None)
            .expect("rmi");
        assert_eq!(
            removed[..2],
            [
                crate::Deleted::Untagged("127.0.0.1:5000/team/app:1".into()),
                crate::Deleted::Untagged(by_digest),
            ]
        );
        assert!(names(&root.join("blobs/sha256")).is_empty());
        assert!(names(&root.join("remote")).is_empty());
        assert!(names(&root.join("layers")).is_empty());
    }

    #[test]
    fn bad_blobs_leave_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("image");
        let store = ImageStore::open(&root).expect("open");
        let f = fixture(MEDIA_OCI_LAYER);
        let mut corrupt = f.blobs[0].clone();
        let last = corrupt.len() - 12;
        corrupt[last] ^= 0xff;
        let truncated = &f.blobs[0][..f.blobs[0].len() / 2];
        let mut wrong_diff = f.layers[1].clone();
        wrong_diff.diff_id = f.layers[0].diff_id.clone();
        let mut unknown = f.layers[0].clone();
        unknown.media_type = "application/vnd.example.thing".into();
        let cases: Vec<(&PullLayer, &[u8])> = vec![
            (&f.layers[0], &corrupt),
            (&f.layers[0], truncated),
            (&f.layers[0], &f.blobs[1]),
            (&wrong_diff, &f.blobs[1]),
            (&unknown, &f.blobs[0]),
        ];
        for (layer, bytes) in cases {
            let err = store
                .stage_pulled_layer(layer, &mut &bytes[..])
                .expect_err("refused");
            assert!(
                matches!(
                    err,
                    ImageError::DigestMismatch { .. }
                        | ImageError::SizeMismatch { .. }
                        | ImageError::ReadArchive { .. }
                        | ImageError::DiffIdMismatch { .. }
                        | ImageError::UnsupportedLayerType { .. }
                ),
                "{err:?}"
            );
            assert!(names(&root.join("ingest")).is_empty(), "{err}");
        }
        // A staged layer never installed leaves nothing either.
        let staged = store
            .stage_pulled_layer(&f.layers[0], &mut &f.blobs[0][..])
            .expect("stage");
        drop(staged);
        assert!(names(&root.join("ingest")).is_empty());
        assert!(names(&root.join("blobs/sha256")).is_empty());
    }

    #[test]
    fn compressed_once_and_recorded_for_the_next_push() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("image");
        let store = ImageStore::open(&root).expect("open");
        let tar = tar_of(&[("x", &[7u8; 100_000])]);
        let record = store
            .import(&mut &tar[..], Some("local/app:1"), &[], None)
            .expect("import");
        let push = store.push_image("local/app:1").expect("push");
        assert!(push.layers[0].has_tar && push.layers[0].stored_blob().is_none());
        let mut sent = Vec::new();
        let blob = store
            .compress_layer(&push.layers[0].diff_id, &mut sent)
            .expect("compress");
        assert_eq!(sha256_digest(&sent), blob.digest);
        assert_eq!(blob.size, sent.len() as u64);
        assert_eq!(blob.media_type, MEDIA_DOCKER_LAYER_GZIP);
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&sent[..]), &mut back)
            .expect("gunzip");
        assert_eq!(back, tar);
        let mut sourced = blob.clone();
        sourced.sources = vec!["127.0.0.1:5000/local/app".into()];
        store
            .record_layer_blob(&push.layers[0].diff_id, &sourced)
            .expect("record");
        store
            .add_reference(
                &record.id,
                &Reference::parse(&format!("127.0.0.1:5000/local/app@{}", blob.digest))
                    .expect("ref"),
            )
            .expect("reference");
        drop(store);
        let store = ImageStore::open(&root).expect("reopen");
        let push = store.push_image("local/app:1").expect("push");
        let stored: &LayerBlob = push.layers[0].stored_blob().expect("kept");
        assert_eq!(stored.digest, blob.digest);
        assert_eq!(stored.sources, ["127.0.0.1:5000/local/app"]);
        let (mut file, size) = store.open_blob(&stored.digest).expect("open");
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes).expect("read");
        assert_eq!((bytes, size), (sent.clone(), sent.len() as u64));
        assert_eq!(
            store
                .resolve("local/app:1")
                .expect("image")
                .repo_digests
                .len(),
            1
        );
        // rmi by id with a tag and a digest of two repositories needs force, as Docker.
        assert!(store.remove(&record.id, false, &|_| None).is_err());
        store.remove(&record.id, true, &|_| None).expect("forced");
        assert!(names(&root.join("blobs/sha256")).is_empty());
        assert!(names(&root.join("remote")).is_empty());
    }
}
