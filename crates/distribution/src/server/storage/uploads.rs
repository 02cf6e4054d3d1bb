//! Upload sessions: `uploads/<id>/data` grows as chunks arrive; finishing verifies the
//! whole and renames it into the blob store. Sessions live on disk, so a restarted server
//! resumes them: the size of `data` is what was received.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{Store, list_dir, mkdir, remove_file, sync_dir, write_atomic};
use crate::protocol::{Digest, RepositoryName};
use crate::server::error::RegistryError;

/// An upload session id: 32 lowercase hex digits, made by the server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UploadId(String);

impl UploadId {
    fn new() -> Self {
        Self(hex::encode(rand::random::<[u8; 16]>()))
    }

    /// Checks an id a client sent back.
    pub fn parse(id: &str) -> Option<Self> {
        (id.len() == 32
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| Self(id.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The record of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadInfo {
    /// The repository it uploads into.
    pub repository: String,
    /// When it started (unix seconds).
    pub started: u64,
}

const READ_CHUNK: usize = 1024 * 1024;

impl Store {
    pub(super) fn uploads_dir(&self) -> PathBuf {
        self.root.join("uploads")
    }

    fn upload_dir(&self, id: &UploadId) -> PathBuf {
        self.uploads_dir().join(id.as_str())
    }

    /// Where the session's bytes are.
    fn upload_data(&self, id: &UploadId) -> PathBuf {
        self.upload_dir(id).join("data")
    }

    /// Whether a session is on disk.
    pub fn upload_exists(&self, id: &UploadId) -> bool {
        self.upload_dir(id).exists()
    }

    /// Starts a session for `name`.
    pub fn start_upload(&self, name: &RepositoryName) -> Result<UploadId, RegistryError> {
        let id = UploadId::new();
        let dir = self.upload_dir(&id);
        mkdir(&dir)?;
        let data = self.upload_data(&id);
        File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&data)
            .map_err(RegistryError::io("create", &data))?;
        let info = UploadInfo {
            repository: name.to_string(),
            started: now_secs(),
        };
        write_atomic(
            &dir.join("info.json"),
            &serde_json::to_vec(&info).expect("upload records serialize"),
        )?;
        Ok(id)
    }

    /// The session's record, if it exists and belongs to `name`.
    fn upload_info(
        &self,
        name: &RepositoryName,
        id: &UploadId,
    ) -> Result<UploadInfo, RegistryError> {
        let unknown = || RegistryError::UploadUnknown { id: id.to_string() };
        let path = self.upload_dir(id).join("info.json");
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(unknown()),
            Err(e) => return Err(RegistryError::io("read", &path)(e)),
        };
        let info: UploadInfo = serde_json::from_slice(&bytes)
            .map_err(|source| RegistryError::Corrupt { path, source })?;
        if info.repository != name.as_str() {
            return Err(unknown());
        }
        Ok(info)
    }

    /// Bytes received so far.
    pub fn upload_size(&self, name: &RepositoryName, id: &UploadId) -> Result<u64, RegistryError> {
        self.upload_info(name, id)?;
        let data = self.upload_data(id);
        match fs::metadata(&data) {
            Ok(meta) => Ok(meta.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(RegistryError::UploadUnknown { id: id.to_string() })
            }
            Err(e) => Err(RegistryError::io("stat", &data)(e)),
        }
    }

    /// Opens the session's bytes for appending; also returns the size so far and the path.
    pub fn open_upload(
        &self,
        name: &RepositoryName,
        id: &UploadId,
    ) -> Result<(File, u64, PathBuf), RegistryError> {
        self.upload_info(name, id)?;
        let data = self.upload_data(id);
        let file = File::options()
            .append(true)
            .open(&data)
            .map_err(RegistryError::io("open", &data))?;
        let size = file
            .metadata()
            .map_err(RegistryError::io("stat", &data))?
            .len();
        Ok((file, size, data))
    }

    /// Hashes what the session holds (after a restart, or after a failed write left bytes
    /// the running hash did not see).
    pub fn hash_upload(
        &self,
        name: &RepositoryName,
        id: &UploadId,
    ) -> Result<(Sha256, u64), RegistryError> {
        self.upload_info(name, id)?;
        let data = self.upload_data(id);
        let mut file = File::open(&data).map_err(RegistryError::io("open", &data))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0; READ_CHUNK];
        loop {
            let n = file
                .read(&mut buf)
                .map_err(RegistryError::io("read", &data))?;
            if n == 0 {
                return Ok((hasher, size));
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
    }

    /// Finishes a session whose content has digest `actual`: refused (and the session
    /// removed) unless it is `expected`; else the bytes are fsynced, renamed into the blob
    /// store and linked into the repository.
    pub fn finish_upload(
        &self,
        name: &RepositoryName,
        id: &UploadId,
        expected: &Digest,
        actual: &Digest,
    ) -> Result<(), RegistryError> {
        self.upload_info(name, id)?;
        if expected != actual {
            self.cancel_upload(name, id)?;
            return Err(RegistryError::DigestMismatch {
                expected: expected.to_string(),
                actual: actual.to_string(),
            });
        }
        let data = self.upload_data(id);
        File::open(&data)
            .and_then(|f| f.sync_all())
            .map_err(RegistryError::io("fsync", &data))?;
        let _guard = self.commit_guard()?;
        self.install_blob(&data, expected)?;
        self.write_layer_link(name, expected)?;
        self.remove_upload_dir(id)
    }

    /// Abandons a session.
    pub fn cancel_upload(&self, name: &RepositoryName, id: &UploadId) -> Result<(), RegistryError> {
        self.upload_info(name, id)?;
        self.remove_upload_dir(id)
    }

    fn remove_upload_dir(&self, id: &UploadId) -> Result<(), RegistryError> {
        let dir = self.upload_dir(id);
        remove_file(&dir.join("data"))?;
        remove_file(&dir.join("info.json"))?;
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(RegistryError::io("remove", &dir)(e))
            }
            _ => sync_dir(&self.uploads_dir()),
        }
    }

    /// Removes sessions started more than `max_age` ago (and unreadable leftovers); returns
    /// how many.
    pub fn purge_uploads(&self, max_age: Duration) -> Result<usize, RegistryError> {
        let cutoff = now_secs().saturating_sub(max_age.as_secs());
        let mut purged = 0;
        for entry in list_dir(&self.uploads_dir())? {
            let Some(id) = UploadId::parse(&entry) else {
                continue;
            };
            let path = self.upload_dir(&id).join("info.json");
            let stale = match fs::read(&path) {
                Ok(bytes) => serde_json::from_slice::<UploadInfo>(&bytes)
                    .map(|info| info.started < cutoff)
                    .unwrap_or(true),
                // A session whose record a crash never wrote: judge by the directory's age.
                Err(_) => fs::metadata(self.upload_dir(&id))
                    .and_then(|m| m.modified())
                    .map(|t| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) < cutoff)
                    .unwrap_or(true),
            };
            if stale {
                self.remove_upload_dir(&id)?;
                purged += 1;
            }
        }
        Ok(purged)
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
