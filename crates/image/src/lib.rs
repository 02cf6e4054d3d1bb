//! The image store: image configs, tags, unpacked layer snapshots, container root filesystems,
//! and the ways images arrive offline (bootstrap from the host's busybox, import of a tarball,
//! load of a `docker save` archive; [`SaveSet`] writes one).
//!
//! An image is a config document (its id is the sha256 of the config's bytes) that lists
//! layers by *diff id* (the sha256 of the uncompressed layer tar). Each stack of layers is
//! unpacked once, as a read-only snapshot named by its OCI *chain id*, and shared by every
//! image and container that stands on it. A container's root is an overlay of those snapshots
//! (lowerdirs) under its own writable layer; this crate prepares the directories and never
//! mounts anything (the runtime does).
//!
//! # On-disk layout (schema version 1)
//!
//! ```text
//! <data_root>/image/
//!   version                      "1": the schema version; an unknown one refuses to open
//!   blobs/sha256/<hex>           content store: config JSON (stored bytes, never re-serialized)
//!                                and uncompressed layer tars (digest = diff id); written to
//!                                ingest/ first, size+digest checked, fsynced, renamed here
//!   ingest/                      blobs and layers being written (import, load, commit,
//!                                debootstrap targets); emptied at open
//!   layers/<chain hex>/diff/     one unpacked read-only snapshot per layer chain
//!   layers/<chain hex>/meta.json {"diff_id", "parent" (chain id or null), "size"}
//!   images/<id hex>.json         {"layers": [chain ids, bottom first], "size", "parent"?}: the
//!                                image exists when this file does (written after its blobs
//!                                and layers); `parent` is the image a commit started from
//!   repositories.json            {"Repositories": {repo: {normalized ref: image id}}}
//!   containers/<id>/meta.json    {"image", "layers"}: keeps the layers of a container's root
//!   containers/<id>/diff/        the container's writable layer (overlay upperdir)
//!   containers/<id>/work/        overlay workdir
//!   trash/                       trees being deleted (renamed here first); emptied at open
//! ```
//!
//! Metadata files are replaced atomically (temp file, fsync, rename). Layers are reference
//! counted by chain id over images and containers: deleting the last user removes the
//! snapshot. At open, layers and blobs no image or container references (left by a crash
//! between steps) are removed; so every new kind of blob must be counted as referenced in
//! `store::remove_orphans`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::PathBuf;

mod archive;
mod bootstrap;
mod changes;
mod commit;
mod compress;
mod config;
mod content;
mod debian;
mod diff;
mod error;
mod export;
mod filter;
mod import;
mod layer;
pub mod manifest;
mod persist;
mod pull;
mod push;
mod reference;
mod remap;
mod remote;
mod store;
mod tarwrite;

pub use archive::{ArchiveError, LoadOptions, LoadProgress, LoadedImage, SaveSet};
pub use changes::apply_changes;
pub use commit::{CommitRequest, EMPTY_LAYER_DIGEST};
pub use config::{ImageConfig, RunConfig, host_architecture};
pub use content::{chain_id, sha256_digest};
pub use debian::{FALLBACK_DEBIAN_MIRROR, default_debian_mirror};
pub use diff::{Change, ChangeKind, changes};
pub use error::{DeleteConflictReason, ImageError, short_id};
pub use export::{export, export_mapped};
pub use filter::{Pruned, labels};
pub use import::{Compression, decompressed, detect_compression};
pub use layer::{LayerMeta, StagedPull, apply_tar};
pub use manifest::LayerEncoding;
pub use pull::{PullLayer, PullOutcome, PulledImage};
pub use push::{PushImage, PushLayer};
pub use reference::{
    DEFAULT_DOMAIN, DEFAULT_TAG, Reference, ReferenceError, is_valid_digest,
    is_valid_path_component, is_valid_repository_path, is_valid_tag,
};
pub use remap::IdMapping;
pub use remote::LayerBlob;
pub use store::{ChildImage, DiskUsage, ImageHold, ImageStore, SCHEMA_VERSION};

/// An image as the store knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRecord {
    /// `sha256:<64 hex>` (digest of the config JSON).
    pub id: String,
    /// Familiar `repo:tag` names (`busybox:latest`), sorted.
    pub repo_tags: Vec<String>,
    /// Familiar `repo@digest` names (`busybox@sha256:…`): the manifests this image was pulled
    /// by or pushed as, sorted.
    pub repo_digests: Vec<String>,
    /// The parsed config.
    pub config: ImageConfig,
    /// Sum of layer sizes in bytes.
    pub size: u64,
    /// Creation time, Unix seconds.
    pub created: i64,
    /// The image it was committed from, while that image exists.
    pub parent: Option<String>,
}

/// One entry of an `rmi` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// A tag was removed.
    Untagged(String),
    /// The image (or a layer) was deleted.
    Deleted(String),
}

/// The directories of a container's overlay root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsDirs {
    /// Layers, topmost first.
    pub lowerdirs: Vec<PathBuf>,
    /// Writable layer.
    pub upperdir: PathBuf,
    /// overlayfs work dir.
    pub workdir: PathBuf,
}
