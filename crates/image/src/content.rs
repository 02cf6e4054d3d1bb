//! The content store: immutable blobs named by their sha256 digest.
//!
//! A blob is written to `ingest/` while it is hashed, then its size and digest are checked,
//! it is fsynced and renamed to `blobs/sha256/<hex>`. A blob is therefore visible only once
//! complete and verified; an abandoned ingest file is removed when its [`PendingBlob`] drops,
//! or at the next open.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::ImageError;
use crate::persist;
use crate::reference::is_full_hex_id;

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// OCI chain id: `chainid(L0) = diffid(L0)`, `chainid(Ln) = sha256(chainid(Ln-1) + " " + diffid(Ln))`.
pub fn chain_id(parent: Option<&str>, diff_id: &str) -> String {
    match parent {
        None => diff_id.to_owned(),
        Some(parent) => sha256_digest(format!("{parent} {diff_id}").as_bytes()),
    }
}

/// The hex part of a `sha256:<hex>` digest, if it is one.
pub(crate) fn digest_hex(digest: &str) -> Option<&str> {
    digest
        .strip_prefix("sha256:")
        .filter(|hex| is_full_hex_id(hex))
}

/// The blob directory and its ingest area.
#[derive(Debug)]
pub(crate) struct ContentStore {
    blobs: PathBuf,
    ingest: PathBuf,
}

/// A blob being written: everything written is hashed and counted.
#[derive(Debug)]
pub(crate) struct IngestWriter {
    path: PathBuf,
    file: BufWriter<File>,
    hasher: Sha256,
    size: u64,
}

/// A complete blob in the ingest area, not yet visible, fsynced (or, from
/// [`IngestWriter::finish_unsynced`], to be synced by its caller before it is committed).
/// Dropping it removes it.
#[derive(Debug)]
pub(crate) struct PendingBlob {
    path: PathBuf,
    digest: String,
    size: u64,
}

impl ContentStore {
    pub(crate) fn new(blobs: PathBuf, ingest: PathBuf) -> Self {
        Self { blobs, ingest }
    }

    /// `blobs/sha256/`.
    pub(crate) fn blobs_dir(&self) -> &Path {
        &self.blobs
    }

    pub(crate) fn path_of(&self, digest: &str) -> Option<PathBuf> {
        digest_hex(digest).map(|hex| self.blobs.join(hex))
    }

    pub(crate) fn start(&self) -> Result<IngestWriter, ImageError> {
        let path = self
            .ingest
            .join(format!("blob-{}", persist::random_suffix()));
        let file = File::create_new(&path).map_err(ImageError::fs("create", &path))?;
        Ok(IngestWriter {
            path,
            file: BufWriter::with_capacity(256 * 1024, file),
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Makes a verified pending blob visible.
    pub(crate) fn commit(&self, mut pending: PendingBlob) -> Result<String, ImageError> {
        let target = self
            .path_of(&pending.digest)
            .expect("pending digests are sha256");
        fs::rename(&pending.path, &target)
            .map_err(ImageError::fs("rename blob into place", &target))?;
        pending.path = PathBuf::new();
        Ok(std::mem::take(&mut pending.digest))
    }

    /// Stores `bytes` as a blob and returns its digest.
    pub(crate) fn put(&self, bytes: &[u8]) -> Result<String, ImageError> {
        let mut writer = self.start()?;
        writer
            .write_all(bytes)
            .map_err(ImageError::fs("write", &writer.path))?;
        let pending = writer.finish()?;
        self.commit(pending)
    }

    pub(crate) fn read(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let path = self.path_of(digest).ok_or_else(|| ImageError::NotFound {
            reference: digest.to_owned(),
        })?;
        fs::read(&path).map_err(ImageError::fs("read blob", &path))
    }

    pub(crate) fn remove(&self, digest: &str) -> Result<(), ImageError> {
        let Some(path) = self.path_of(digest) else {
            return Ok(());
        };
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(ImageError::fs("remove blob", &path)(e))
            }
            _ => Ok(()),
        }
    }

    /// Every stored digest.
    pub(crate) fn list(&self) -> Result<Vec<String>, ImageError> {
        let mut digests = Vec::new();
        for entry in
            fs::read_dir(&self.blobs).map_err(ImageError::fs("read directory", &self.blobs))?
        {
            let entry = entry.map_err(ImageError::fs("read directory", &self.blobs))?;
            if let Some(name) = entry
                .file_name()
                .to_str()
                .filter(|name| is_full_hex_id(name))
            {
                digests.push(format!("sha256:{name}"));
            }
        }
        Ok(digests)
    }
}

impl IngestWriter {
    /// Flushes and fsyncs; the content's digest and size are now known.
    pub(crate) fn finish(self) -> Result<PendingBlob, ImageError> {
        self.finish_as(true)
    }

    /// [`IngestWriter::finish`] without the fsync, for a caller that syncs the whole file
    /// system before the blob becomes visible (a pull: one `syncfs` for all its layers).
    pub(crate) fn finish_unsynced(self) -> Result<PendingBlob, ImageError> {
        self.finish_as(false)
    }

    fn finish_as(mut self, sync: bool) -> Result<PendingBlob, ImageError> {
        self.file
            .flush()
            .map_err(ImageError::fs("write", &self.path))?;
        if sync {
            self.file
                .get_ref()
                .sync_all()
                .map_err(ImageError::fs("fsync", &self.path))?;
        }
        let digest = format!("sha256:{}", hex::encode(self.hasher.finalize_reset()));
        Ok(PendingBlob {
            path: std::mem::take(&mut self.path),
            digest,
            size: self.size,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Write for IngestWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.file.write(buf)?;
        self.hasher.update(&buf[..written]);
        self.size += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for IngestWriter {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl PendingBlob {
    pub(crate) fn digest(&self) -> &str {
        &self.digest
    }

    /// Where the blob waits in the ingest area.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Checks the content against what the sender announced.
    pub(crate) fn verify(
        &self,
        expected_digest: &str,
        expected_size: Option<u64>,
    ) -> Result<(), ImageError> {
        if self.digest != expected_digest {
            return Err(ImageError::DigestMismatch {
                expected: expected_digest.to_owned(),
                actual: self.digest.clone(),
            });
        }
        match expected_size {
            Some(expected) if expected != self.size => Err(ImageError::SizeMismatch {
                digest: self.digest.clone(),
                expected,
                actual: self.size,
            }),
            _ => Ok(()),
        }
    }
}

impl Drop for PendingBlob {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> ContentStore {
        fs::create_dir_all(dir.join("blobs")).expect("mkdir");
        fs::create_dir_all(dir.join("ingest")).expect("mkdir");
        ContentStore::new(dir.join("blobs"), dir.join("ingest"))
    }

    #[test]
    fn digests_and_chain_ids() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let l0 = sha256_digest(b"layer0");
        let l1 = sha256_digest(b"layer1");
        assert_eq!(chain_id(None, &l0), l0);
        assert_eq!(
            chain_id(Some(&l0), &l1),
            sha256_digest(format!("{l0} {l1}").as_bytes())
        );
    }

    #[test]
    fn put_read_verify_and_abandon() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(dir.path());
        let digest = store.put(b"hello").expect("put");
        assert_eq!(digest, sha256_digest(b"hello"));
        assert_eq!(store.read(&digest).expect("read"), b"hello");
        assert_eq!(store.list().expect("list"), std::slice::from_ref(&digest));

        let mut writer = store.start().expect("start");
        writer.write_all(b"other").expect("write");
        let pending = writer.finish().expect("finish");
        assert_eq!(pending.size(), 5);
        assert!(matches!(
            pending.verify(&digest, None),
            Err(ImageError::DigestMismatch { .. })
        ));
        assert!(matches!(
            pending.verify(pending.digest(), Some(4)),
            Err(ImageError::SizeMismatch { .. })
        ));
        drop(pending);
        assert_eq!(
            fs::read_dir(dir.path().join("ingest")).expect("ls").count(),
            0,
            "abandoned blob removed"
        );
        let writer = store.start().expect("start");
        drop(writer);
        assert_eq!(
            fs::read_dir(dir.path().join("ingest")).expect("ls").count(),
            0,
            "abandoned write removed"
        );
        store.remove(&digest).expect("remove");
        assert!(store.list().expect("list").is_empty());
    }
}
