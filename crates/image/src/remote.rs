//! What berth knows of each layer's life on registries: the compressed (or plain) blobs that
//! carry it, which of them the content store keeps, and which repositories hold them.
//!
//! A layer is identified by its diff id (the digest of its uncompressed tar); on a registry it
//! travels as a blob of another digest (gzip or zstd of that tar). Pulling a layer keeps the
//! blob exactly as it came, and pushing one compresses it once and keeps the result, so the
//! same image always goes out as the same digests, and a layer whose blob a registry already
//! has (`HEAD`), or another repository of the same registry holds (cross-repository mount),
//! is not sent at all. Docker keeps the same facts (its `v2metadata-by-diffid`).
//!
//! One record per diff id, `remote/<diff id hex>.json`, replaced atomically:
//!
//! ```json
//! {"diff_id": "sha256:…", "tar_size": 206012416,
//!  "blobs": [{"digest": "sha256:…", "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
//!             "size": 74218811, "stored": true, "sources": ["127.0.0.1:5000/team/app"]}]}
//! ```
//!
//! `stored` blobs are in `blobs/sha256/` and belong to the layer: they go when the last image
//! using the diff id goes. A layer's data is always somewhere: its uncompressed tar (the blob
//! named by its diff id: bootstrap, import, load, commit) or a stored blob (pull).

use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::content::digest_hex;
use crate::error::ImageError;
use crate::manifest::LayerEncoding;

/// A blob that carries a layer on registries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerBlob {
    /// The blob's digest.
    pub digest: String,
    /// Its media type (says the compression).
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// Whether the content store keeps its bytes.
    #[serde(default)]
    pub stored: bool,
    /// Repositories known to hold it (normalized names: `127.0.0.1:5000/team/app`), most
    /// recent last.
    #[serde(default)]
    pub sources: Vec<String>,
}

impl LayerBlob {
    /// The blob's compression.
    pub fn encoding(&self) -> Option<LayerEncoding> {
        LayerEncoding::of_media_type(&self.media_type)
    }
}

/// Everything known of one layer (by diff id).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RemoteRecord {
    pub(crate) diff_id: String,
    /// Bytes of the uncompressed tar, when known (a `save` of a layer kept only compressed
    /// needs it before the first byte).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tar_size: Option<u64>,
    #[serde(default)]
    pub(crate) blobs: Vec<LayerBlob>,
}

/// Most repositories remembered per blob.
const MAX_SOURCES: usize = 16;

impl RemoteRecord {
    /// Adds what `blob` says (a new blob, a blob now stored, a repository holding it).
    /// Returns whether anything changed.
    pub(crate) fn merge(&mut self, blob: &LayerBlob) -> bool {
        let Some(known) = self.blobs.iter_mut().find(|b| b.digest == blob.digest) else {
            let mut blob = blob.clone();
            blob.sources.dedup();
            self.blobs.push(blob);
            return true;
        };
        let mut changed = false;
        if blob.stored && !known.stored {
            known.stored = true;
            changed = true;
        }
        for source in &blob.sources {
            if known.sources.last() != Some(source) {
                known.sources.retain(|s| s != source);
                known.sources.push(source.clone());
                if known.sources.len() > MAX_SOURCES {
                    known.sources.remove(0);
                }
                changed = true;
            }
        }
        changed
    }

    /// The digests of the blobs the content store keeps for this layer.
    pub(crate) fn stored_digests(&self) -> impl Iterator<Item = &str> {
        self.blobs
            .iter()
            .filter(|b| b.stored)
            .map(|b| b.digest.as_str())
    }
}

/// The records directory.
#[derive(Debug)]
pub(crate) struct RemoteDir {
    dir: PathBuf,
}

impl RemoteDir {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn file(&self, diff_id: &str) -> Option<PathBuf> {
        digest_hex(diff_id).map(|hex| self.dir.join(format!("{hex}.json")))
    }

    /// Writes a record (atomically, fsynced).
    pub(crate) fn save(&self, record: &RemoteRecord) -> Result<(), ImageError> {
        let Some(path) = self.file(&record.diff_id) else {
            return Ok(());
        };
        let bytes = serde_json::to_vec(record).expect("remote records always serialize");
        berth_fs::write_atomic(&path, &bytes, true).map_err(ImageError::from)
    }

    pub(crate) fn remove(&self, diff_id: &str) -> Result<(), ImageError> {
        let Some(path) = self.file(diff_id) else {
            return Ok(());
        };
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(ImageError::fs("remove", path)(e))
            }
            _ => Ok(()),
        }
    }

    /// Every record; unreadable ones are skipped with a warning (they only cost a
    /// recompression on the next push), and reported by the second value.
    pub(crate) fn load(&self) -> Result<(HashMap<String, RemoteRecord>, bool), ImageError> {
        let mut records = HashMap::new();
        let mut complete = true;
        let entries =
            std::fs::read_dir(&self.dir).map_err(ImageError::fs("read directory", &self.dir))?;
        for entry in entries {
            let entry = entry.map_err(ImageError::fs("read directory", &self.dir))?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let parsed = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    serde_json::from_slice::<RemoteRecord>(&bytes).map_err(|e| e.to_string())
                });
            match parsed {
                Ok(record) if self.file(&record.diff_id).as_ref() == Some(&path) => {
                    records.insert(record.diff_id.clone(), record);
                }
                Ok(_) => {
                    tracing::warn!(path = %path.display(), "remote record under the wrong name");
                    complete = false;
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "unreadable remote record");
                    complete = false;
                }
            }
        }
        Ok((records, complete))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(digest: &str, stored: bool, sources: &[&str]) -> LayerBlob {
        LayerBlob {
            digest: digest.into(),
            media_type: crate::manifest::MEDIA_DOCKER_LAYER_GZIP.into(),
            size: 10,
            stored,
            sources: sources.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn merge_adds_blobs_sources_and_storage() {
        let mut record = RemoteRecord {
            diff_id: "sha256:d".into(),
            ..RemoteRecord::default()
        };
        assert!(record.merge(&blob("sha256:a", false, &["r/x"])));
        assert!(
            !record.merge(&blob("sha256:a", false, &["r/x"])),
            "nothing new"
        );
        assert!(record.merge(&blob("sha256:a", true, &[])));
        assert!(record.merge(&blob("sha256:a", false, &["r/y"])));
        assert!(
            record.merge(&blob("sha256:a", false, &["r/x"])),
            "moved last"
        );
        assert_eq!(record.blobs[0].sources, ["r/y", "r/x"]);
        assert!(record.blobs[0].stored);
        assert!(record.merge(&blob("sha256:b", false, &[])));
        assert_eq!(record.stored_digests().collect::<Vec<_>>(), ["sha256:a"]);
        for n in 0..40 {
            record.merge(&blob("sha256:a", false, &[&format!("r/{n}")]));
        }
        assert_eq!(record.blobs[0].sources.len(), MAX_SOURCES);
        assert_eq!(
            record.blobs[0].sources.last().map(String::as_str),
            Some("r/39")
        );
    }

    #[test]
    fn records_round_trip_on_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let remote = RemoteDir::new(dir.path().to_owned());
        let diff_id = format!("sha256:{}", "ab".repeat(32));
        let record = RemoteRecord {
            diff_id: diff_id.clone(),
            tar_size: Some(1024),
            blobs: vec![blob("sha256:c", true, &["127.0.0.1:5000/a"])],
        };
        remote.save(&record).expect("save");
        std::fs::write(dir.path().join("junk.json"), b"{").expect("write");
        let (loaded, complete) = remote.load().expect("load");
        assert!(!complete);
        assert_eq!(loaded[&diff_id], record);
        remote.remove(&diff_id).expect("remove");
        remote.remove(&diff_id).expect("already gone");
        assert!(remote.load().expect("load").0.is_empty());
    }
}
