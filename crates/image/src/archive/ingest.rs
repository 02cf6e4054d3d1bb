//! `load`: an image archive (docker-archive or OCI layout) into the store, transactionally.
//!
//! The archive is read once, as a stream, whatever the order of its entries (Docker 20.10
//! writes `manifest.json` last, after the layers):
//! 1. **Stage.** Each entry that looks like a layer (a tar, or gzip/zstd) is unpacked into
//!    `ingest/layer-*` and stored as a pending uncompressed blob in `ingest/blob-*` while it is
//!    hashed twice (the raw bytes, for OCI blob names and descriptors; the uncompressed
//!    stream, for the diff id). Small files (JSON) are kept in memory. Whether an entry is
//!    really used is only known once the manifest is read, so a layer that fails to unpack is
//!    remembered, not reported, unless a manifest names it.
//! 2. **Check.** Manifests against configs (layer count, diff ids), blob names and descriptor
//!    sizes against content, tags, the OS. Nothing has been published yet.
//! 3. **Publish.** Per image: staged snapshots renamed into `layers/`, blobs committed, the
//!    config stored, the image record written (the commit point), tags set.
//!
//! Anything staged and not published (an error, or an entry no manifest names) is removed when
//! its guard drops, and the ingest area is emptied at every open, so a failed or interrupted
//! load leaves no trace. Expansion is bounded: the bytes decompressed from the archive and from
//! its layers each stop at [`LoadOptions::size_limit`] (by default half the free space of the
//! data root, as every layer byte is written twice: blob and snapshot).

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::ArchiveError;
use super::format::{
    self, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, INDEX_FILE, Index, MANIFEST_FILE,
    MEDIA_DOCKER_LIST, MEDIA_OCI_INDEX, Manifest, ManifestItem,
};
use crate::config::{ImageConfig, host_architecture};
use crate::content::{ContentStore, chain_id, sha256_digest};
use crate::error::ImageError;
use crate::import::{Compression, decompressed, detect_compression};
use crate::layer::{StagedLayer, stage_layer};
use crate::store::LoadLayer;
use crate::{ImageStore, Reference};

/// Files larger than this are never metadata.
const METADATA_MAX: u64 = 16 * 1024 * 1024;
/// All metadata kept in memory at once.
const METADATA_TOTAL_MAX: u64 = 64 * 1024 * 1024;
/// Symlinks followed to find a file.
const MAX_LINK_HOPS: usize = 16;
/// Nested indexes followed.
const MAX_INDEX_DEPTH: usize = 4;

/// How to load.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Most bytes the archive, and separately its layers, may expand to; `None` is half the
    /// free space of the data root.
    pub size_limit: Option<u64>,
}

/// Progress of one layer being read from the archive.
#[derive(Debug, Clone, Copy)]
pub struct LoadProgress<'a> {
    /// A short name for the layer (12 hex of its file name).
    pub id: &'a str,
    /// Bytes of the archive entry read.
    pub current: u64,
    /// Size of the archive entry.
    pub total: u64,
}

/// An image a load published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    /// `sha256:<hex>`.
    pub id: String,
    /// Tags set, familiar (`busybox:latest`), in archive order.
    pub tags: Vec<String>,
    /// Tags that named another image before: (tag, that image's id).
    pub replaced: Vec<(String, String)>,
}

impl ImageStore {
    /// Loads the images of an archive (plain, gzip or zstd) read from `input`, calling
    /// `progress` as layers are read. All or nothing per archive check: every image is
    /// verified before the first one is published.
    pub fn load(
        &self,
        input: &mut dyn Read,
        options: &LoadOptions,
        progress: &mut dyn FnMut(LoadProgress<'_>),
    ) -> Result<Vec<LoadedImage>, ImageError> {
        let (content, ingest) = self.ingest_area();
        let limit = match options.size_limit {
            Some(limit) => limit,
            None => free_space(ingest)? / 2,
        };
        let mut staged = read_archive(content, ingest, input, limit, progress)?;
        let images = staged.plan()?;
        // Every check passed: stage what the store lacks, then publish.
        let mut planned: HashSet<String> = HashSet::new();
        let mut installs = Vec::new();
        for image in images {
            let mut layers = Vec::new();
            let mut parent: Option<String> = None;
            for (path, diff_id) in &image.layers {
                let chain = chain_id(parent.as_deref(), diff_id);
                let layer = if planned.contains(&chain) || self.has_layer(&chain) {
                    None
                } else {
                    Some(staged.take_layer(content, ingest, path, diff_id)?)
                };
                planned.insert(chain.clone());
                layers.push(LoadLayer {
                    diff_id: diff_id.clone(),
                    staged: layer,
                });
                parent = Some(chain);
            }
            installs.push((image, layers));
        }
        let mut loaded = Vec::new();
        for (image, layers) in installs {
            let (record, replaced) =
                self.install_loaded(layers, &image.config_bytes, &image.tags)?;
            loaded.push(LoadedImage {
                id: record.id,
                tags: image.tags.iter().map(Reference::familiar).collect(),
                replaced: replaced
                    .into_iter()
                    .map(|(tag, id)| (tag.familiar(), id))
                    .collect(),
            });
        }
        Ok(loaded)
    }
}

fn free_space(dir: &Path) -> Result<u64, ImageError> {
    let stat = nix::sys::statvfs::statvfs(dir)
        .map_err(|errno| ImageError::fs("statvfs", dir)(errno.into()))?;
    Ok(stat.blocks_available().saturating_mul(stat.fragment_size()))
}

/// Bytes counted against a limit; the flag tells a limit stop from a read error.
#[derive(Debug)]
struct Budget {
    limit: u64,
    used: Cell<u64>,
    exceeded: Cell<bool>,
}

impl Budget {
    fn new(limit: u64) -> Self {
        Budget {
            limit,
            used: Cell::new(0),
            exceeded: Cell::new(false),
        }
    }
}

struct Limited<'a, R> {
    inner: R,
    budget: &'a Budget,
}

impl<R: Read> Read for Limited<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let used = self.budget.used.get() + n as u64;
        self.budget.used.set(used);
        if used > self.budget.limit {
            self.budget.exceeded.set(true);
            return Err(io::Error::other("size limit exceeded"));
        }
        Ok(n)
    }
}

/// Hashes (unless `hasher` is None) and counts the raw bytes of an archive entry, reporting
/// progress.
struct Hashing<'a, R> {
    inner: R,
    hasher: Option<Sha256>,
    read: u64,
    total: u64,
    reported: u64,
    id: &'a str,
    progress: &'a mut dyn FnMut(LoadProgress<'_>),
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        self.read += n as u64;
        // About every 1% (at least 512 KiB apart), and at the end.
        let step = (self.total / 100).max(512 * 1024);
        if self.read - self.reported >= step || (n > 0 && self.read == self.total) {
            self.reported = self.read;
            (self.progress)(LoadProgress {
                id: self.id,
                current: self.read,
                total: self.total,
            });
        }
        Ok(n)
    }
}

/// A layer candidate read from the archive.
#[derive(Debug)]
enum StagedEntry {
    Layer {
        /// Size of the entry as stored in the archive (maybe compressed); its digest was
        /// checked against its name when it was read.
        raw_size: u64,
        diff_id: String,
        /// The pending uncompressed blob, to stage again if the layer is needed twice.
        blob_path: PathBuf,
        layer: Option<StagedLayer>,
    },
    /// Not readable as a layer; reported only if a manifest names it.
    Failed(ImageError),
}

/// Everything read from an archive, staged and not yet checked.
#[derive(Debug, Default)]
struct Staged {
    files: HashMap<String, Vec<u8>>,
    layers: HashMap<String, StagedEntry>,
    /// Symlink or hard link → its target, both normalized archive paths.
    links: HashMap<String, String>,
}

/// An image that passed every check.
#[derive(Debug)]
struct PlannedImage {
    id: String,
    config_bytes: Vec<u8>,
    /// (archive path, diff id), bottom first.
    layers: Vec<(String, String)>,
    tags: Vec<Reference>,
}

fn read_archive(
    content: &ContentStore,
    ingest: &Path,
    input: &mut dyn Read,
    limit: u64,
    progress: &mut dyn FnMut(LoadProgress<'_>),
) -> Result<Staged, ImageError> {
    let outer_budget = Budget::new(limit);
    let layer_budget = Budget::new(limit);
    let stream = decompressed(input)?;
    let limited = Limited {
        inner: stream,
        budget: &outer_budget,
    };
    let over = |budget: &Budget| {
        budget
            .exceeded
            .get()
            .then_some(ArchiveError::SizeLimit { limit })
    };
    let mut archive = tar::Archive::new(limited);
    let mut staged = Staged::default();
    let mut metadata_total = 0u64;
    let entries = archive
        .entries()
        .map_err(|source| ImageError::ReadArchive {
            source: one_line(source),
        })?;
    for entry in entries {
        // A read error past the size limit is the limit's.
        let mut entry = entry.map_err(|source| {
            over(&outer_budget).map_or_else(
                || ImageError::ReadArchive {
                    source: one_line(source),
                },
                ImageError::from,
            )
        })?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = normalize(&raw)?;
        match classify(&entry, &name, &raw)? {
            Kind::Skip => continue,
            Kind::Link(target) => {
                staged.links.insert(name, target);
                continue;
            }
            Kind::File => {}
        }
        let size = entry.size();
        let mut head = Vec::with_capacity(512);
        (&mut entry)
            .take(512)
            .read_to_end(&mut head)
            .map_err(|source| read_error(source, &outer_budget, limit))?;
        let compressed = matches!(
            detect_compression(&head),
            Compression::Gzip | Compression::Zstd | Compression::Bzip2 | Compression::Xz
        );
        if compressed || looks_like_tar(&head) {
            let short = short_name(&name);
            let mut raw_reader = Hashing {
                inner: io::Cursor::new(head).chain(&mut entry),
                // A plain layer's raw bytes are the uncompressed stream, whose digest (the
                // diff id) staging computes anyway: hash them once.
                hasher: compressed.then(Sha256::new),
                read: 0,
                total: size,
                reported: 0,
                id: &short,
                progress: &mut *progress,
            };
            let result = stage_entry(content, ingest, &mut raw_reader, &layer_budget);
            if let Some(e) = over(&layer_budget).or_else(|| over(&outer_budget)) {
                return Err(e.into());
            }
            let result = match result {
                Err(e @ ImageError::Filesystem { .. }) => return Err(e),
                other => other,
            };
            // The raw digest covers the whole entry, also what follows a layer's end.
            io::copy(&mut raw_reader, &mut io::sink())
                .map_err(|source| read_error(source, &outer_budget, limit))?;
            let raw_size = raw_reader.read;
            if raw_size != size {
                return Err(truncated(&name));
            }
            let entry = layer_entry(&name, raw_size, raw_reader.hasher.take(), result)?;
            staged.layers.insert(name, entry);
        } else {
            let bytes = read_metadata(
                &mut entry,
                head,
                &name,
                metadata_total,
                &outer_budget,
                limit,
            )?;
            metadata_total += bytes.len() as u64;
            staged.files.insert(name, bytes);
        }
    }
    if let Some(e) = over(&outer_budget) {
        return Err(e.into());
    }
    Ok(staged)
}

/// What an archive entry is to the loader.
enum Kind {
    /// Directories and extension headers: nothing to keep.
    Skip,
    /// A symlink or hard link, and where it points (from the archive root).
    Link(String),
    /// A regular file: a layer or a metadata document.
    File,
}

/// Classifies an entry named `name` (`raw` as written in the archive); device nodes and other
/// kinds, and a file at the archive root, are refused.
fn classify<R: Read>(entry: &tar::Entry<'_, R>, name: &str, raw: &str) -> Result<Kind, ImageError> {
    let kind = entry.header().entry_type();
    match kind {
        tar::EntryType::Directory
        | tar::EntryType::XGlobalHeader
        | tar::EntryType::XHeader
        | tar::EntryType::GNULongName
        | tar::EntryType::GNULongLink => Ok(Kind::Skip),
        tar::EntryType::Symlink | tar::EntryType::Link => {
            let target = entry
                .link_name_bytes()
                .map(|t| String::from_utf8_lossy(&t).into_owned())
                .ok_or_else(|| ArchiveError::LinkOutside {
                    entry: raw.to_owned(),
                })?;
            Ok(Kind::Link(link_target(kind, name, &target, raw)?))
        }
        tar::EntryType::Regular | tar::EntryType::Continuous if name.is_empty() => {
            Err(ArchiveError::UnsafePath {
                entry: raw.to_owned(),
                reason: "a file cannot be the archive root",
            }
            .into())
        }
        tar::EntryType::Regular | tar::EntryType::Continuous => Ok(Kind::File),
        _ => Err(ArchiveError::UnexpectedEntry {
            entry: raw.to_owned(),
        }
        .into()),
    }
}

/// A metadata entry (manifest, config, `repositories`) read whole after its first bytes
/// `head`, within the metadata limits (`total` read so before), its name checked against its
/// digest when it is a blob.
fn read_metadata<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    head: Vec<u8>,
    name: &str,
    total: u64,
    budget: &Budget,
    limit: u64,
) -> Result<Vec<u8>, ImageError> {
    let size = entry.size();
    if size > METADATA_MAX || total + size > METADATA_TOTAL_MAX {
        return Err(ArchiveError::MetadataTooLarge {
            file: name.to_owned(),
            size,
        }
        .into());
    }
    let mut bytes = head;
    entry
        .read_to_end(&mut bytes)
        .map_err(|source| read_error(source, budget, limit))?;
    if bytes.len() as u64 != size {
        return Err(truncated(name));
    }
    check_blob_name(name, &sha256_digest(&bytes))?;
    Ok(bytes)
}

/// Where a link entry points, as a path from the archive root: a symlink's target is
/// relative to its own directory, a hard link's to the root; one that climbs out is refused.
fn link_target(
    kind: tar::EntryType,
    name: &str,
    target: &str,
    raw: &str,
) -> Result<String, ImageError> {
    let base = if kind == tar::EntryType::Symlink {
        name.rsplit_once('/').map_or("", |(dir, _)| dir)
    } else {
        "" // hard link names are relative to the archive root
    };
    resolve_relative(base, target).ok_or_else(|| {
        ArchiveError::LinkOutside {
            entry: raw.to_owned(),
        }
        .into()
    })
}

/// A layer candidate's staged entry: its raw digest (hashed while read, or the diff id of a
/// plain layer) must match a blob name; a candidate that did not unpack is kept as failed
/// (an error only if a manifest names it).
fn layer_entry(
    name: &str,
    raw_size: u64,
    hasher: Option<Sha256>,
    result: Result<StagedLayer, ImageError>,
) -> Result<StagedEntry, ImageError> {
    let raw_digest = match (hasher, &result) {
        (Some(hasher), _) => Some(format!("sha256:{}", hex::encode(hasher.finalize()))),
        (None, Ok(layer)) => Some(layer.blob.digest().to_owned()),
        // Not a layer after all: only an error if a manifest names it.
        (None, Err(_)) => None,
    };
    if let Some(digest) = &raw_digest {
        check_blob_name(name, digest)?;
    }
    Ok(match result {
        Ok(layer) => StagedEntry::Layer {
            raw_size,
            diff_id: layer.blob.digest().to_owned(),
            blob_path: layer.blob.path().to_owned(),
            layer: Some(layer),
        },
        Err(e) => StagedEntry::Failed(e),
    })
}

/// Unpacks one layer candidate from its raw (maybe compressed) stream.
fn stage_entry(
    content: &ContentStore,
    ingest: &Path,
    raw: &mut dyn Read,
    budget: &Budget,
) -> Result<StagedLayer, ImageError> {
    let stream = decompressed(raw)?;
    let mut limited = Limited {
        inner: stream,
        budget,
    };
    stage_layer(content, ingest, &mut limited, None)
}

/// Read errors can quote the bytes they choked on (the tar crate does): keep one short line.
fn one_line(source: io::Error) -> io::Error {
    let text = source.to_string();
    if !text.chars().any(char::is_control) && text.len() <= 200 {
        return source;
    }
    io::Error::new(source.kind(), one_line_text(&text))
}

/// `text` without control characters, at most 200 characters.
fn one_line_text(text: &str) -> String {
    let mut clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if text.chars().count() > 200 {
        clean.push('…');
    }
    clean
}

fn truncated(name: &str) -> ImageError {
    ImageError::ReadArchive {
        source: io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the archive is truncated (in {name})"),
        ),
    }
}

fn read_error(source: io::Error, budget: &Budget, limit: u64) -> ImageError {
    if budget.exceeded.get() {
        ArchiveError::SizeLimit { limit }.into()
    } else {
        ImageError::ReadArchive {
            source: one_line(source),
        }
    }
}

/// A content-addressed name (`blobs/sha256/<hex>`) must match its content.
fn check_blob_name(name: &str, digest: &str) -> Result<(), ArchiveError> {
    if let Some(hex) = name.strip_prefix("blobs/sha256/")
        && digest.strip_prefix("sha256:") != Some(hex)
    {
        return Err(ArchiveError::BlobDigest {
            file: name.to_owned(),
            expected: format!("sha256:{hex}"),
            actual: digest.to_owned(),
        });
    }
    Ok(())
}

/// A 512-byte tar header block with a valid checksum, or the zero block of an empty tar.
fn looks_like_tar(head: &[u8]) -> bool {
    if head.len() < 512 {
        return false;
    }
    let block = &head[..512];
    if block.iter().all(|&b| b == 0) {
        return true;
    }
    let field = &block[148..156];
    let text: String = field
        .iter()
        .take_while(|&&b| b != 0 && b != b' ')
        .skip_while(|&&b| b == b' ')
        .map(|&b| b as char)
        .collect();
    let Ok(stored) = u64::from_str_radix(text.trim(), 8) else {
        return false;
    };
    let sum: u64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                u64::from(b' ')
            } else {
                u64::from(b)
            }
        })
        .sum();
    sum == stored
}

/// 12 characters naming a layer in progress messages.
fn short_name(name: &str) -> String {
    let part = name
        .strip_prefix("blobs/sha256/")
        .or_else(|| name.strip_suffix("/layer.tar"))
        .unwrap_or(name);
    part.chars().take(12).collect()
}

/// An archive path made canonical: no leading `./`, no empty or `.` components. Absolute
/// paths and `..` are refused: an image archive has no business with either.
fn normalize(raw: &str) -> Result<String, ArchiveError> {
    if raw.starts_with('/') {
        return Err(ArchiveError::UnsafePath {
            entry: raw.to_owned(),
            reason: "absolute path",
        });
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(ArchiveError::UnsafePath {
                    entry: raw.to_owned(),
                    reason: "path contains '..'",
                });
            }
            part => parts.push(part),
        }
    }
    Ok(parts.join("/"))
}

/// `target` seen from directory `base`, inside the archive; None when it leaves it.
fn resolve_relative(base: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

impl Staged {
    /// The canonical path a manifest's `path` names, following links.
    fn resolve(&self, path: &str) -> Result<String, ArchiveError> {
        let mut current = normalize(path)?;
        for _ in 0..MAX_LINK_HOPS {
            match self.links.get(&current) {
                Some(target) => current = target.clone(),
                None => return Ok(current),
            }
        }
        Err(ArchiveError::MissingFile {
            file: path.to_owned(),
        })
    }

    fn file(&self, path: &str) -> Result<(String, &[u8]), ArchiveError> {
        let name = self.resolve(path)?;
        match self.files.get(&name) {
            Some(bytes) => Ok((name, bytes)),
            None => Err(ArchiveError::MissingFile {
                file: path.to_owned(),
            }),
        }
    }

    /// A layer a manifest names: its canonical path, diff id and raw size.
    fn layer(&self, path: &str) -> Result<(String, String, u64), ImageError> {
        let name = self.resolve(path)?;
        match self.layers.get(&name) {
            Some(StagedEntry::Layer {
                diff_id, raw_size, ..
            }) => Ok((name, diff_id.clone(), *raw_size)),
            Some(StagedEntry::Failed(error)) => Err(ArchiveError::BadLayer {
                file: path.to_owned(),
                reason: match error {
                    ImageError::ReadArchive { source } => one_line_text(&source.to_string()),
                    other => one_line_text(&other.to_string()),
                },
            }
            .into()),
            None if self.files.contains_key(&name) => Err(ArchiveError::BadLayer {
                file: path.to_owned(),
                reason: "not a tar archive".to_owned(),
            }
            .into()),
            None => Err(ArchiveError::MissingFile {
                file: path.to_owned(),
            }
            .into()),
        }
    }

    /// The staged snapshot of a layer; staged again from its blob when an earlier image took
    /// it for another chain.
    fn take_layer(
        &mut self,
        content: &ContentStore,
        ingest: &Path,
        path: &str,
        diff_id: &str,
    ) -> Result<StagedLayer, ImageError> {
        let Some(StagedEntry::Layer {
            layer, blob_path, ..
        }) = self.layers.get_mut(path)
        else {
            // Planning checked every layer it returns; this cannot be reached.
            return Err(ArchiveError::MissingFile {
                file: path.to_owned(),
            }
            .into());
        };
        if let Some(layer) = layer.take() {
            return Ok(layer);
        }
        let mut file =
            std::fs::File::open(&*blob_path).map_err(ImageError::fs("open", &*blob_path))?;
        stage_layer(content, ingest, &mut file, Some(diff_id))
    }

    /// Reads the manifest (docker-archive) or index (OCI layout) and checks every image.
    fn plan(&mut self) -> Result<Vec<PlannedImage>, ImageError> {
        let mut images: Vec<PlannedImage> = Vec::new();
        if self
            .resolve(MANIFEST_FILE)
            .is_ok_and(|n| self.files.contains_key(&n))
        {
            let (_, bytes) = self.file(MANIFEST_FILE)?;
            let items: Vec<ManifestItem> =
                serde_json::from_slice(bytes).map_err(|source| ArchiveError::BadManifest {
                    file: MANIFEST_FILE.to_owned(),
                    source,
                })?;
            for item in items {
                let (config_name, config_bytes) = self.file(&item.config)?;
                let config_bytes = config_bytes.to_vec();
                let mut tags = Vec::new();
                for tag in item.repo_tags.iter().flatten() {
                    tags.push(parse_tag(tag)?);
                }
                let image =
                    self.plan_image(&config_name, config_bytes, &item.layers, None, tags)?;
                merge(&mut images, image);
            }
        } else if self
            .resolve(INDEX_FILE)
            .is_ok_and(|n| self.files.contains_key(&n))
        {
            let (_, bytes) = self.file(INDEX_FILE)?;
            let index: Index =
                serde_json::from_slice(bytes).map_err(|source| ArchiveError::BadManifest {
                    file: INDEX_FILE.to_owned(),
                    source,
                })?;
            self.plan_index(&index, 0, &mut images)?;
        } else {
            return Err(ArchiveError::NoManifest.into());
        }
        Ok(images)
    }

    fn plan_index(
        &mut self,
        index: &Index,
        depth: usize,
        images: &mut Vec<PlannedImage>,
    ) -> Result<(), ImageError> {
        for descriptor in &index.manifests {
            let name = format::blob_path(&descriptor.digest);
            let (_, bytes) = self.file(&name)?;
            let bytes = bytes.to_vec();
            check_size(&name, descriptor.size, bytes.len() as u64)?;
            let nested = descriptor.media_type == MEDIA_OCI_INDEX
                || descriptor.media_type == MEDIA_DOCKER_LIST;
            if nested {
                if depth >= MAX_INDEX_DEPTH {
                    return Err(ArchiveError::BadManifest {
                        file: name,
                        source: serde::de::Error::custom("indexes nested too deep"),
                    }
                    .into());
                }
                let nested: Index = serde_json::from_slice(&bytes)
                    .map_err(|source| ArchiveError::BadManifest { file: name, source })?;
                let mut found = Vec::new();
                self.plan_index(&nested, depth + 1, &mut found)?;
                for mut image in found {
                    image.tags.extend(descriptor_tags(descriptor));
                    merge(images, image);
                }
                continue;
            }
            if descriptor.platform.as_ref().is_some_and(|p| {
                (!p.os.is_empty() && p.os != "linux")
                    || (!p.architecture.is_empty() && p.architecture != host_architecture())
            }) && depth > 0
            {
                continue; // another platform of a multi-platform image
            }
            let manifest: Manifest =
                serde_json::from_slice(&bytes).map_err(|source| ArchiveError::BadManifest {
                    file: name.clone(),
                    source,
                })?;
            let config_name = format::blob_path(&manifest.config.digest);
            let (config_name, config_bytes) = self.file(&config_name)?;
            let config_bytes = config_bytes.to_vec();
            check_size(
                &config_name,
                manifest.config.size,
                config_bytes.len() as u64,
            )?;
            let paths: Vec<String> = manifest
                .layers
                .iter()
                .map(|layer| format::blob_path(&layer.digest))
                .collect();
            let sizes: Vec<u64> = manifest.layers.iter().map(|layer| layer.size).collect();
            let tags = descriptor_tags(descriptor);
            let image = self.plan_image(&config_name, config_bytes, &paths, Some(&sizes), tags)?;
            merge(images, image);
        }
        Ok(())
    }

    fn plan_image(
        &mut self,
        config_name: &str,
        config_bytes: Vec<u8>,
        layer_paths: &[String],
        layer_sizes: Option<&[u64]>,
        tags: Vec<Reference>,
    ) -> Result<PlannedImage, ImageError> {
        let bad_config = |reason: String| ArchiveError::BadConfig {
            file: config_name.to_owned(),
            reason,
        };
        let config: ImageConfig =
            serde_json::from_slice(&config_bytes).map_err(|e| bad_config(e.to_string()))?;
        if !config.os.is_empty() && config.os != "linux" {
            return Err(ArchiveError::WrongOs { os: config.os }.into());
        }
        let diff_ids = config.diff_ids();
        if diff_ids.is_empty() {
            return Err(bad_config("the image has no layers".to_owned()).into());
        }
        if diff_ids.len() != layer_paths.len() {
            return Err(ArchiveError::LayerCount {
                expected: diff_ids.len(),
                actual: layer_paths.len(),
            }
            .into());
        }
        let mut layers = Vec::new();
        for (index, (path, expected)) in layer_paths.iter().zip(&diff_ids).enumerate() {
            let (name, diff_id, raw_size) = self.layer(path)?;
            if let Some(sizes) = layer_sizes {
                check_size(&name, sizes[index], raw_size)?;
            }
            if diff_id != *expected {
                return Err(ArchiveError::DiffIdMismatch {
                    index,
                    expected: expected.clone(),
                    actual: diff_id,
                }
                .into());
            }
            layers.push((name, diff_id));
        }
        Ok(PlannedImage {
            id: sha256_digest(&config_bytes),
            config_bytes,
            layers,
            tags,
        })
    }
}

fn check_size(file: &str, expected: u64, actual: u64) -> Result<(), ArchiveError> {
    if expected != actual {
        return Err(ArchiveError::BlobSize {
            file: file.to_owned(),
            expected,
            actual,
        });
    }
    Ok(())
}

/// The same image named twice (two tags, two descriptors) is one image with both tags.
fn merge(images: &mut Vec<PlannedImage>, image: PlannedImage) {
    match images.iter_mut().find(|i| i.id == image.id) {
        Some(existing) => {
            for tag in image.tags {
                if !existing.tags.contains(&tag) {
                    existing.tags.push(tag);
                }
            }
        }
        None => images.push(image),
    }
}

/// A `RepoTags` entry: `name:tag`, normalized.
fn parse_tag(tag: &str) -> Result<Reference, ArchiveError> {
    match Reference::parse(tag) {
        Ok(r) if r.tag().is_some() && r.digest().is_none() => Ok(r),
        _ => Err(ArchiveError::BadTag {
            tag: tag.to_owned(),
        }),
    }
}

/// The tag an OCI descriptor names: the full image name annotation, else a ref name that is
/// a full `name:tag` (a bare tag names no repository).
fn descriptor_tags(descriptor: &format::Descriptor) -> Vec<Reference> {
    [ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME]
        .iter()
        .filter_map(|key| descriptor.annotations.get(*key))
        .filter_map(|name| parse_tag(name).ok())
        .take(1)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_and_confined() {
        assert_eq!(normalize("./blobs//sha256/x").unwrap(), "blobs/sha256/x");
        assert!(normalize("/etc/passwd").is_err());
        assert!(normalize("a/../../b").is_err());
        assert_eq!(
            resolve_relative("a/b", "../c/layer.tar").as_deref(),
            Some("a/c/layer.tar")
        );
        assert_eq!(resolve_relative("a", "../x").as_deref(), Some("x"));
        assert_eq!(resolve_relative("a", "../../x"), None);
        assert_eq!(resolve_relative("a", "/x"), None);
        assert_eq!(short_name("blobs/sha256/0123456789abcdef"), "0123456789ab");
        assert_eq!(short_name("fedcba9876543210/layer.tar"), "fedcba987654");
    }

    #[test]
    fn recognizes_tar_headers() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_cksum();
        builder.append_data(&mut header, "f", &b"x"[..]).unwrap();
        let tar = builder.into_inner().unwrap();
        assert!(looks_like_tar(&tar[..512]));
        assert!(looks_like_tar(&[0u8; 512]));
        assert!(!looks_like_tar(b"{\"a\": 1}"));
        let mut bad = tar[..512].to_vec();
        bad[0] ^= 1;
        assert!(!looks_like_tar(&bad));
    }
}
