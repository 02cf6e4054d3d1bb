//! The registry's store: blobs once for all repositories, upload sessions, and per
//! repository the links that make blobs, manifests, tags and referrers visible in it.
//!
//! # On-disk layout (schema version 1)
//!
//! ```text
//! <root>/
//!   version                         "1": the schema version; another one refuses to open
//!   token.key                       32 random bytes (0600) signing the bearer tokens
//!   gc.lock                         flock: `registry gc` holds it exclusively for its whole run,
//!                                   the server shared around every commit (see below)
//!   blobs/sha256/<hex>              every blob and manifest, once, named by its digest; only
//!                                   ever renamed here after its size and digest were checked
//!   uploads/<id>/data               the bytes of an upload session so far (id: 32 hex digits,
//!                                   made by the server); resumable after a restart
//!   uploads/<id>/info.json          {"repository", "started" (unix seconds)}
//!   tmp/                            manifests being written; emptied at open
//!   repositories/<name>/            one directory per path component of the name
//!     _layers/sha256/<hex>          a blob is in the repository (pull access reaches it)
//!     _manifests/revisions/sha256/<hex>   {"mediaType"}: a manifest of the repository
//!     _manifests/tags/<tag>         "sha256:<hex>": the manifest the tag points at
//!     _referrers/sha256/<subject hex>/<hex>   the descriptor of a manifest whose `subject`
//!                                   is <subject hex> (OCI 1.1 referrers)
//! ```
//!
//! Names and tags are validated before they become path components ([`RepositoryName`],
//! [`Tag`], [`Digest`], [`UploadId`]): every component holds only `[a-z0-9._-]` (tags also
//! upper case) and starts with an alphanumeric character or `_` for tags, so it is never `.`,
//! `..`, empty, or one of the `_`-prefixed directories above, and the store never joins a
//! client's string into a path unchecked. Every record is written to a temp file, fsynced and
//! renamed (a crash leaves the old or the new record); names starting with `.` are temp files,
//! ignored by readers and removed by `gc`.
//!
//! # Commits and garbage collection
//!
//! A blob becomes visible by a rename after verification, so a crash at any instant leaves no
//! partial blob under `blobs/`. The steps that make content reachable (finishing an upload,
//! mounting, putting a manifest, deleting) run under a shared lock of `gc.lock`; `registry
//! gc` takes it exclusively, so those steps wait while a collection runs and never interleave
//! with its mark and sweep, while uploads in progress go on. Blobs and manifests younger than
//! the collector's grace period are never collected, so a push between its layer uploads and
//! its manifest survives a collection (distribution requires the registry to be read-only
//! during `garbage-collect`; berth needs neither a restart nor read-only mode).

mod gc;
mod uploads;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use berth_image::manifest::Descriptor;
use serde::{Deserialize, Serialize};

pub use gc::{GcOptions, GcReport};
pub use uploads::{UploadId, UploadInfo};

use super::error::RegistryError;
use crate::protocol::manifest::ParsedManifest;
use crate::protocol::{Digest, MAX_MANIFEST_SIZE, RepositoryName, Tag};

/// The layout version this berth writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

const MANIFESTS: &str = "_manifests";
const LAYERS: &str = "_layers";
const REFERRERS: &str = "_referrers";
const TEMP_PREFIX: char = '.';

/// The record of a manifest revision.
#[derive(Debug, Serialize, Deserialize)]
struct Revision {
    #[serde(rename = "mediaType")]
    media_type: String,
}

/// A manifest as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredManifest {
    /// Its digest.
    pub digest: Digest,
    /// The media type it was put with.
    pub media_type: String,
    /// Its bytes, as put.
    pub bytes: Vec<u8>,
}

/// An open blob.
#[derive(Debug)]
pub struct BlobFile {
    /// The file.
    pub file: File,
    /// Its size.
    pub size: u64,
}

/// The registry's store (see the module documentation for its layout).
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
}

/// Held while a commit runs: a shared lock of `gc.lock` (released when dropped, with the
/// file).
#[derive(Debug)]
pub(crate) struct CommitGuard {
    _lock: File,
}

impl Store {
    /// Opens the store at `root`, which must exist and hold one (`registry gc`).
    pub fn open_existing(root: &Path) -> Result<Self, RegistryError> {
        let version = root.join("version");
        if !exists(&version)? {
            return Err(RegistryError::NotARegistry {
                path: root.to_owned(),
            });
        }
        Self::open(root)
    }

    /// Opens (creating if need be) the store at `root`.
    pub fn open(root: &Path) -> Result<Self, RegistryError> {
        let store = Self {
            root: root.to_owned(),
        };
        mkdir(root)?;
        let version_path = root.join("version");
        match fs::read_to_string(&version_path) {
            Ok(found) if found.trim() == SCHEMA_VERSION.to_string() => {}
            Ok(found) => {
                return Err(RegistryError::LayoutVersion {
                    path: version_path,
                    found: found.trim().to_owned(),
                    expected: SCHEMA_VERSION,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                write_atomic(&version_path, SCHEMA_VERSION.to_string().as_bytes())?;
            }
            Err(e) => return Err(RegistryError::io("read", &version_path)(e)),
        }
        for dir in [
            store.blobs_dir(),
            store.uploads_dir(),
            store.tmp_dir(),
            store.repositories_dir(),
        ] {
            mkdir(&dir)?;
        }
        empty_dir(&store.tmp_dir())?;
        Ok(store)
    }

    /// The store's root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn repositories_dir(&self) -> PathBuf {
        self.root.join("repositories")
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    fn repository_dir(&self, name: &RepositoryName) -> PathBuf {
        let mut path = self.repositories_dir();
        path.extend(name.components());
        path
    }

    fn layer_link(&self, name: &RepositoryName, digest: &Digest) -> PathBuf {
        self.repository_dir(name)
            .join(LAYERS)
            .join("sha256")
            .join(digest.hex())
    }

    fn revisions_dir(&self, name: &RepositoryName) -> PathBuf {
        self.repository_dir(name)
            .join(MANIFESTS)
            .join("revisions/sha256")
    }

    fn revision_link(&self, name: &RepositoryName, digest: &Digest) -> PathBuf {
        self.revisions_dir(name).join(digest.hex())
    }

    fn tags_dir(&self, name: &RepositoryName) -> PathBuf {
        self.repository_dir(name).join(MANIFESTS).join("tags")
    }

    fn referrers_dir(&self, name: &RepositoryName, subject: &Digest) -> PathBuf {
        self.repository_dir(name)
            .join(REFERRERS)
            .join("sha256")
            .join(subject.hex())
    }

    /// The 32-byte key that signs bearer tokens, made at first use (0600).
    pub fn token_key(&self) -> Result<[u8; 32], RegistryError> {
        let path = self.root.join("token.key");
        match fs::read(&path) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut key = [0; 32];
                key.copy_from_slice(&bytes);
                return Ok(key);
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(RegistryError::io("read", &path)(e)),
        }
        let key: [u8; 32] = rand::random();
        write_atomic(&path, &key)?;
        Ok(key)
    }

    /// Takes the shared side of `gc.lock` (blocks while a collection runs).
    pub(crate) fn commit_guard(&self) -> Result<CommitGuard, RegistryError> {
        let path = self.root.join("gc.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(RegistryError::io("open", &path))?;
        file.lock_shared()
            .map_err(RegistryError::io("lock (shared)", &path))?;
        Ok(CommitGuard { _lock: file })
    }

    // ----- blobs -----

    /// The size of a stored blob, if stored.
    fn blob_size(&self, digest: &Digest) -> Result<Option<u64>, RegistryError> {
        let path = self.blob_path(digest);
        match fs::metadata(&path) {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RegistryError::io("stat", &path)(e)),
        }
    }

    /// The size of a blob of the repository (a layer or config linked into it, or one of its
    /// manifests), if it has it.
    pub fn repository_blob(
        &self,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        if !exists(&self.layer_link(name, digest))? && !exists(&self.revision_link(name, digest))? {
            return Ok(None);
        }
        self.blob_size(digest)
    }

    /// Opens a blob of the repository.
    pub fn open_blob(
        &self,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<BlobFile, RegistryError> {
        let unknown = || RegistryError::BlobUnknown {
            digest: digest.to_string(),
        };
        if self.repository_blob(name, digest)?.is_none() {
            return Err(unknown());
        }
        let path = self.blob_path(digest);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(unknown()),
            Err(e) => return Err(RegistryError::io("open", &path)(e)),
        };
        let size = file
            .metadata()
            .map_err(RegistryError::io("stat", &path))?
            .len();
        Ok(BlobFile { file, size })
    }

    /// The bytes of a small blob of the repository (at most `limit`; `None` if it does not
    /// have it or it is larger).
    pub fn read_blob(
        &self,
        name: &RepositoryName,
        digest: &Digest,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, RegistryError> {
        let blob = match self.open_blob(name, digest) {
            Ok(blob) => blob,
            Err(RegistryError::BlobUnknown { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        if blob.size > limit {
            return Ok(None);
        }
        let mut bytes = Vec::with_capacity(blob.size as usize);
        let path = self.blob_path(digest);
        blob.file
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(RegistryError::io("read", &path))?;
        Ok(Some(bytes))
    }

    /// Makes a stored blob part of the repository (`mount`). `false` if the blob is not
    /// stored.
    pub fn link_blob(&self, name: &RepositoryName, digest: &Digest) -> Result<bool, RegistryError> {
        let _guard = self.commit_guard()?;
        if !self.touch_blob(digest)? {
            return Ok(false);
        }
        self.write_layer_link(name, digest)?;
        Ok(true)
    }

    fn write_layer_link(
        &self,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        let link = self.layer_link(name, digest);
        if !exists(&link)? {
            write_atomic(&link, digest.as_str().as_bytes())?;
        }
        Ok(())
    }

    /// Marks a stored blob as just used (a collection spares it for its grace period).
    /// `false` if it is not stored.
    fn touch_blob(&self, digest: &Digest) -> Result<bool, RegistryError> {
        let path = self.blob_path(digest);
        match File::open(&path) {
            Ok(file) => {
                file.set_modified(SystemTime::now())
                    .map_err(RegistryError::io("touch", &path))?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(RegistryError::io("open", &path)(e)),
        }
    }

    /// Removes a blob from the repository (its bytes stay until a collection finds them
    /// unreferenced).
    pub fn unlink_blob(&self, name: &RepositoryName, digest: &Digest) -> Result<(), RegistryError> {
        let _guard = self.commit_guard()?;
        let link = self.layer_link(name, digest);
        if !remove_file(&link)? {
            return Err(RegistryError::BlobUnknown {
                digest: digest.to_string(),
            });
        }
        Ok(())
    }

    /// Moves a verified file into the blob store (same filesystem): it becomes visible whole
    /// or not at all. If the blob is already stored, the file is dropped and the stored blob
    /// touched.
    fn install_blob(&self, file: &Path, digest: &Digest) -> Result<(), RegistryError> {
        if self.touch_blob(digest)? {
            fs::remove_file(file).map_err(RegistryError::io("remove", file))?;
            return Ok(());
        }
        // A collection spares blobs by age: the age of a new blob starts now, not at the
        // last write of a session that may have stayed open for long.
        File::open(file)
            .and_then(|f| f.set_modified(SystemTime::now()))
            .map_err(RegistryError::io("touch", file))?;
        let target = self.blob_path(digest);
        fs::rename(file, &target).map_err(RegistryError::io("rename into place", &target))?;
        sync_dir(&self.blobs_dir())
    }

    // ----- manifests -----

    /// Checks a manifest against the repository and stores it (and the tag, when given).
    /// Every blob it needs must be in the repository, every manifest an index lists must be
    /// one of the repository's manifests.
    pub fn put_manifest(
        &self,
        name: &RepositoryName,
        tag: Option<&Tag>,
        bytes: &[u8],
        parsed: &ParsedManifest,
    ) -> Result<Digest, RegistryError> {
        let digest = Digest::of(bytes);
        let _guard = self.commit_guard()?;
        for blob in parsed.required_blobs() {
            if !exists(&self.layer_link(name, &blob))? || self.blob_size(&blob)?.is_none() {
                return Err(RegistryError::ManifestBlobUnknown {
                    digest: blob.to_string(),
                });
            }
        }
        for child in parsed.child_manifests() {
            if !exists(&self.revision_link(name, &child))? || self.blob_size(&child)?.is_none() {
                return Err(RegistryError::ManifestBlobUnknown {
                    digest: child.to_string(),
                });
            }
        }
        if !self.touch_blob(&digest)? {
            let temp = self.tmp_dir().join(format!(
                "manifest-{}",
                hex::encode(rand::random::<[u8; 8]>())
            ));
            let result =
                write_durable(&temp, bytes).and_then(|()| self.install_blob(&temp, &digest));
            if result.is_err() {
                let _ = fs::remove_file(&temp);
            }
            result?;
        }
        let revision = Revision {
            media_type: parsed.kind.media_type().to_owned(),
        };
        write_atomic(
            &self.revision_link(name, &digest),
            &serde_json::to_vec(&revision).expect("revisions serialize"),
        )?;
        if let Some(subject) = parsed.subject_digest() {
            let descriptor = parsed.referrer_descriptor(&digest, bytes.len() as u64);
            write_atomic(
                &self.referrers_dir(name, &subject).join(digest.hex()),
                &serde_json::to_vec(&descriptor).expect("descriptors serialize"),
            )?;
        }
        if let Some(tag) = tag {
            write_atomic(
                &self.tags_dir(name).join(tag.as_str()),
                digest.as_str().as_bytes(),
            )?;
        }
        Ok(digest)
    }

    /// The digest a tag points at.
    pub fn resolve_tag(
        &self,
        name: &RepositoryName,
        tag: &Tag,
    ) -> Result<Option<Digest>, RegistryError> {
        let path = self.tags_dir(name).join(tag.as_str());
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Digest::parse(text.trim()).ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RegistryError::io("read", &path)(e)),
        }
    }

    /// A manifest of the repository, by digest.
    pub fn manifest(
        &self,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<StoredManifest>, RegistryError> {
        let link = self.revision_link(name, digest);
        let revision: Revision = match fs::read(&link) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| RegistryError::Corrupt {
                    path: link.clone(),
                    source,
                })?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(RegistryError::io("read", &link)(e)),
        };
        let path = self.blob_path(digest);
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(file) => file
                .take(MAX_MANIFEST_SIZE as u64 + 1)
                .read_to_end(&mut bytes)
                .map_err(RegistryError::io("read", &path))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(RegistryError::io("open", &path)(e)),
        };
        Ok(Some(StoredManifest {
            digest: digest.clone(),
            media_type: revision.media_type,
            bytes,
        }))
    }

    /// Deletes a manifest from the repository: its revision, every tag pointing at it, its
    /// referrers entry.
    pub fn delete_manifest(
        &self,
        name: &RepositoryName,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        let _guard = self.commit_guard()?;
        let Some(stored) = self.manifest(name, digest)? else {
            return Err(RegistryError::ManifestUnknown {
                reference: digest.to_string(),
            });
        };
        self.remove_revision(name, &stored)?;
        for (tag, target) in self.tag_map(name)? {
            if target == *digest {
                let path = self.tags_dir(name).join(&tag);
                remove_file(&path)?;
            }
        }
        Ok(())
    }

    /// Removes a revision and its referrers entry (tags are the caller's).
    fn remove_revision(
        &self,
        name: &RepositoryName,
        stored: &StoredManifest,
    ) -> Result<(), RegistryError> {
        if let Ok(parsed) = ParsedManifest::parse(Some(&stored.media_type), &stored.bytes)
            && let Some(subject) = parsed.subject_digest()
        {
            let dir = self.referrers_dir(name, &subject);
            remove_file(&dir.join(stored.digest.hex()))?;
            let _ = fs::remove_dir(&dir);
        }
        remove_file(&self.revision_link(name, &stored.digest))?;
        Ok(())
    }

    /// Deletes a tag (the manifest stays).
    pub fn delete_tag(&self, name: &RepositoryName, tag: &Tag) -> Result<(), RegistryError> {
        let _guard = self.commit_guard()?;
        if !remove_file(&self.tags_dir(name).join(tag.as_str()))? {
            return Err(RegistryError::ManifestUnknown {
                reference: tag.to_string(),
            });
        }
        Ok(())
    }

    /// Whether the repository exists (has ever had a manifest).
    pub fn repository_exists(&self, name: &RepositoryName) -> Result<bool, RegistryError> {
        exists(&self.repository_dir(name).join(MANIFESTS))
    }

    /// The repository's tags, sorted; `None` if the repository does not exist.
    pub fn tags(&self, name: &RepositoryName) -> Result<Option<Vec<String>>, RegistryError> {
        if !self.repository_exists(name)? {
            return Ok(None);
        }
        Ok(Some(self.tag_map(name)?.into_keys().collect()))
    }

    /// Tag → digest, for every tag of the repository.
    fn tag_map(&self, name: &RepositoryName) -> Result<BTreeMap<String, Digest>, RegistryError> {
        let dir = self.tags_dir(name);
        let mut tags = BTreeMap::new();
        for entry in list_dir(&dir)? {
            let Ok(tag) = Tag::parse(&entry) else {
                continue;
            };
            if let Some(digest) = self.resolve_tag(name, &tag)? {
                tags.insert(entry, digest);
            }
        }
        Ok(tags)
    }

    /// The digests of the repository's manifests.
    fn revisions(&self, name: &RepositoryName) -> Result<Vec<Digest>, RegistryError> {
        Ok(list_dir(&self.revisions_dir(name))?
            .into_iter()
            .filter_map(|hex| Digest::parse(&format!("sha256:{hex}")).ok())
            .collect())
    }

    /// Every repository with a manifest, sorted. The walk is iterative and never enters the
    /// `_`-prefixed record directories.
    pub fn repositories(&self) -> Result<Vec<RepositoryName>, RegistryError> {
        let mut found = Vec::new();
        let mut pending = vec![(self.repositories_dir(), String::new())];
        while let Some((dir, prefix)) = pending.pop() {
            for entry in list_dir(&dir)? {
                if entry == MANIFESTS && !prefix.is_empty() {
                    if let Ok(name) = RepositoryName::parse(&prefix) {
                        found.push(name);
                    }
                    continue;
                }
                if !berth_image::is_valid_path_component(&entry) {
                    continue;
                }
                let path = dir.join(&entry);
                if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                    let name = if prefix.is_empty() {
                        entry
                    } else {
                        format!("{prefix}/{entry}")
                    };
                    pending.push((path, name));
                }
            }
        }
        found.sort();
        Ok(found)
    }

    /// The descriptors of the repository's manifests whose subject is `subject`, sorted by
    /// digest.
    pub fn referrers(
        &self,
        name: &RepositoryName,
        subject: &Digest,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let dir = self.referrers_dir(name, subject);
        let mut descriptors = Vec::new();
        for entry in list_dir(&dir)? {
            let Ok(digest) = Digest::parse(&format!("sha256:{entry}")) else {
                continue;
            };
            // A referrer whose revision was deleted is not listed.
            if !exists(&self.revision_link(name, &digest))? {
                continue;
            }
            let path = dir.join(&entry);
            let bytes = fs::read(&path).map_err(RegistryError::io("read", &path))?;
            let descriptor: Descriptor = serde_json::from_slice(&bytes)
                .map_err(|source| RegistryError::Corrupt { path, source })?;
            descriptors.push(descriptor);
        }
        Ok(descriptors)
    }
}

/// `true` if `path` exists.
fn exists(path: &Path) -> Result<bool, RegistryError> {
    path.try_exists().map_err(RegistryError::io("stat", path))
}

/// Creates a directory (and parents) with mode 0700 (0755 components above the root stay as
/// they are).
fn mkdir(path: &Path) -> Result<(), RegistryError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(RegistryError::io("create directory", path))
}

/// The names in a directory, temp files left out; empty if it does not exist.
fn list_dir(dir: &Path) -> Result<Vec<String>, RegistryError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RegistryError::io("read directory", dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(RegistryError::io("read directory", dir))?;
        if let Ok(name) = entry.file_name().into_string()
            && !name.starts_with(TEMP_PREFIX)
        {
            names.push(name);
        }
    }
    Ok(names)
}

/// Removes a file; `false` if it was not there.
fn remove_file(path: &Path) -> Result<bool, RegistryError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(RegistryError::io("remove", path)(e)),
    }
}

/// Removes everything in a directory.
fn empty_dir(dir: &Path) -> Result<(), RegistryError> {
    for name in list_all(dir)? {
        let path = dir.join(name);
        let result = if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        match result {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(RegistryError::io("remove", &path)(e));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Every name in a directory, temp files included.
fn list_all(dir: &Path) -> Result<Vec<std::ffi::OsString>, RegistryError> {
    match fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(RegistryError::io("read directory", dir)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(RegistryError::io("read directory", dir)(e)),
    }
}

/// Writes a new file and fsyncs it.
fn write_durable(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    let mut file = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(RegistryError::io("create", path))?;
    file.write_all(bytes)
        .map_err(RegistryError::io("write", path))?;
    file.sync_all().map_err(RegistryError::io("fsync", path))
}

/// Replaces `path` atomically and durably ([`berth_fs::write_atomic`]); parent directories are
/// created as needed. Its temp file's name starts with [`TEMP_PREFIX`], so listings skip it.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    mkdir(path.parent().expect("records live in a directory"))?;
    berth_fs::write_atomic(path, bytes, berth_fs::Durability::Durable).map_err(|e| {
        RegistryError::Io {
            op: e.op,
            path: e.path,
            source: e.source,
        }
    })
}

/// fsyncs a directory (renames and creations in it become durable).
fn sync_dir(dir: &Path) -> Result<(), RegistryError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(RegistryError::io("fsync directory", dir))
}

#[cfg(test)]
mod tests;
