//! The image store: image configs, tags, unpacked layer snapshots, container root filesystems,
//! and the ways images arrive offline (bootstrap from the host's busybox, import of a tarball).
//!
//! DRAFT SIGNATURES (being implemented): the shapes below are the contract.
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Docker image config (`application/vnd.docker.container.image.v1+json`), the parts berth
/// reads and writes; unknown fields are kept.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImageConfig {
    /// Defaults for containers of this image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<RunConfig>,
    /// RFC3339 creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// `amd64`.
    #[serde(default)]
    pub architecture: String,
    /// `linux`.
    #[serde(default)]
    pub os: String,
    /// Everything else, kept verbatim (rootfs, history, …).
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// The container defaults an image carries (Docker's `config` object).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    /// `uid[:gid]` or a user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `KEY=value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Default command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<HashMap<String, String>>,
    /// `80/tcp` → {}.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<HashMap<String, serde_json::Value>>,
    /// `/data` → {}.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<HashMap<String, serde_json::Value>>,
    /// Stop signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

/// An image as the store knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRecord {
    /// `sha256:<64 hex>` (digest of the config JSON).
    pub id: String,
    /// Familiar `repo:tag` names (`busybox:latest`).
    pub repo_tags: Vec<String>,
    /// The parsed config.
    pub config: ImageConfig,
    /// Sum of layer sizes in bytes.
    pub size: u64,
    /// Creation time, Unix seconds.
    pub created: i64,
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

/// Errors of the image store.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No image matches.
    #[error("No such image: {reference}")]
    NotFound {
        /// What the user typed.
        reference: String,
    },
}

/// The image store under `<data_root>/image`.
#[derive(Debug)]
pub struct ImageStore {}

#[allow(unused_variables)]
impl ImageStore {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: &Path) -> Result<Self, ImageError> {
        todo!()
    }
    /// Resolves a name (`busybox`, `busybox:latest`, `docker.io/library/busybox:latest`), a full
    /// or `sha256:`-prefixed ID, or a unique ID prefix.
    pub fn resolve(&self, reference: &str) -> Result<ImageRecord, ImageError> {
        todo!()
    }
    /// Every image.
    pub fn list(&self) -> Vec<ImageRecord> {
        todo!()
    }
    /// Creates the overlay dirs of a container's root from `image_id`'s layers.
    pub fn prepare_rootfs(&self, container_id: &str, image_id: &str) -> Result<RootfsDirs, ImageError> {
        todo!()
    }
    /// The overlay dirs of an existing container root.
    pub fn rootfs(&self, container_id: &str, image_id: &str) -> Result<RootfsDirs, ImageError> {
        todo!()
    }
    /// Removes a container's writable layer (crash-safe: renamed into trash first).
    pub fn remove_rootfs(&self, container_id: &str) -> Result<(), ImageError> {
        todo!()
    }
    /// Makes a busybox image from the host's static busybox.
    pub fn bootstrap_busybox(&self, reference: &str, busybox: &Path) -> Result<ImageRecord, ImageError> {
        todo!()
    }
    /// Imports a rootfs tarball (plain, gzip or zstd) as a one-layer image.
    pub fn import(
        &self,
        tar: &mut dyn Read,
        reference: Option<&str>,
        changes: &[String],
        message: Option<&str>,
    ) -> Result<ImageRecord, ImageError> {
        todo!()
    }
    /// Adds a tag.
    pub fn tag(&self, source: &str, target: &str) -> Result<(), ImageError> {
        todo!()
    }
    /// `rmi`: untags, and deletes the image when no tag is left (or by ID). `in_use` returns,
    /// for an image id, a container using it (its id, and whether it is running); such images
    /// are refused (409, Docker's wording) unless `force` — and never while running.
    pub fn remove(
        &self,
        reference: &str,
        force: bool,
        in_use: &dyn Fn(&str) -> Option<(String, bool)>,
    ) -> Result<Vec<Deleted>, ImageError> {
        todo!()
    }
}
