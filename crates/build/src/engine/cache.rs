//! The build cache: which image a step made, by what the step started from and what it did.
//!
//! A record's key is the sha256 of the parent image id, the step's instruction after
//! expansion (its history line and the config it runs with) and, for `COPY`/`ADD`, the digest
//! of the content it reads (paths, modes, owners, link targets and bytes — not mtimes). The
//! images are ordinary images of the store (dangling intermediate images, parents of the
//! next step's image), so the layers they share are stored once.
//!
//! ```text
//! <data_root>/builder/cache.json   {"version": 1, "records": {key: {image, parent, description,
//!                                   size, created, last_used, usage_count}}}
//! ```
//!
//! The file is rewritten whole, atomically (temp file, fsync, rename), after each build that
//! added records; a record whose image is gone (removed by `rmi`, `image prune`) is dropped
//! when it is next looked up or listed.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use sha2::{Digest, Sha256};

use super::error::BuildError;

const VERSION: u32 = 1;

/// One cached step.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CacheRecord {
    /// The image the step made.
    pub image: String,
    /// The image it started from (none for `scratch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The step, as its history line reads.
    pub description: String,
    /// Bytes the step's layer added.
    pub size: u64,
    /// RFC 3339 creation time.
    pub created: String,
    /// RFC 3339 time of the last build that used it.
    pub last_used: String,
    /// How many builds made or used it.
    pub usage_count: u64,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct CacheFile {
    version: u32,
    records: BTreeMap<String, CacheRecord>,
}

/// The cache index, in memory and on disk.
#[derive(Debug)]
pub(crate) struct Cache {
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    file: CacheFile,
    /// Changed since the last save: records added or removed (saved durably), or only used.
    added: bool,
    used: bool,
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

impl Cache {
    /// Opens the index in `dir` (an empty one if there is none yet).
    pub(crate) fn open(dir: &Path) -> Result<Cache, BuildError> {
        let path = dir.join("cache.json");
        let file = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<CacheFile>(&bytes) {
                Ok(file) if file.version == VERSION => file,
                Ok(file) => {
                    return Err(BuildError::invalid(format!(
                        "build cache {}: unknown version {}",
                        path.display(),
                        file.version
                    )));
                }
                Err(error) => {
                    // A cache is only an optimisation: start afresh rather than refuse to start.
                    tracing::warn!(path = %path.display(), %error, "unreadable build cache index, starting empty");
                    CacheFile::default()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => CacheFile::default(),
            Err(e) => return Err(BuildError::io("read", &path)(e)),
        };
        Ok(Cache {
            path,
            state: Mutex::new(State {
                file: CacheFile {
                    version: VERSION,
                    records: file.records,
                },
                added: false,
                used: false,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The key of a step.
    pub(crate) fn key(parent: Option<&str>, parts: &[&str]) -> String {
        let mut h = Sha256::new();
        h.update(parent.unwrap_or("scratch").as_bytes());
        for part in parts {
            h.update([0u8]);
            h.update(part.as_bytes());
        }
        hex::encode(h.finalize())
    }

    /// The record of `key` whose image `exists`; marks it used. A record whose image is gone
    /// is dropped.
    pub(crate) fn get(&self, key: &str, exists: impl Fn(&str) -> bool) -> Option<CacheRecord> {
        let mut state = self.lock();
        let record = state.file.records.get(key)?.clone();
        if !exists(&record.image) {
            state.file.records.remove(key);
            state.added = true;
            return None;
        }
        let entry = state.file.records.get_mut(key)?;
        entry.last_used = now();
        entry.usage_count += 1;
        state.used = true;
        Some(record)
    }

    /// Records a step.
    pub(crate) fn insert(&self, key: String, record: CacheRecord) {
        let mut state = self.lock();
        state.file.records.insert(key, record);
        state.added = true;
    }

    /// Every record.
    pub(crate) fn records(&self) -> Vec<(String, CacheRecord)> {
        self.lock()
            .file
            .records
            .iter()
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect()
    }

    /// Removes records.
    pub(crate) fn remove(&self, keys: &[String]) {
        let mut state = self.lock();
        for key in keys {
            if state.file.records.remove(key).is_some() {
                state.added = true;
            }
        }
    }

    /// Writes the index if it changed: durably when records were added or removed; a change
    /// of use counts alone is not worth an fsync.
    pub(crate) fn save(&self) -> Result<(), BuildError> {
        let (bytes, durable) = {
            let mut state = self.lock();
            if !state.added && !state.used {
                return Ok(());
            }
            let durable = state.added;
            state.added = false;
            state.used = false;
            let bytes =
                serde_json::to_vec(&state.file).map_err(|e| BuildError::Task(e.to_string()))?;
            (bytes, durable)
        };
        berth_fs::write_atomic(&self.path, &bytes, durable)
            .map_err(|e| BuildError::io("write", &self.path)(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(image: &str) -> CacheRecord {
        CacheRecord {
            image: image.into(),
            parent: None,
            description: "RUN x".into(),
            size: 3,
            created: now(),
            last_used: now(),
            usage_count: 1,
        }
    }

    #[test]
    fn survives_a_reopen_and_drops_gone_images() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::open(tmp.path()).unwrap();
        let k1 = Cache::key(Some("sha256:a"), &["RUN x"]);
        let k2 = Cache::key(Some("sha256:a"), &["RUN y"]);
        assert_ne!(k1, k2);
        assert_ne!(k1, Cache::key(Some("sha256:b"), &["RUN x"]));
        cache.insert(k1.clone(), record("sha256:img1"));
        cache.insert(k2.clone(), record("sha256:img2"));
        cache.save().unwrap();
        let again = Cache::open(tmp.path()).unwrap();
        assert_eq!(again.records().len(), 2);
        let hit = again.get(&k1, |_| true).unwrap();
        assert_eq!(hit.image, "sha256:img1");
        assert!(again.get(&k2, |i| i != "sha256:img2").is_none());
        assert_eq!(again.records().len(), 1);
        again.save().unwrap();
        let third = Cache::open(tmp.path()).unwrap();
        assert_eq!(third.records()[0].1.usage_count, 2);
    }
}
