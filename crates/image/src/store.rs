//! [`ImageStore`]: the index of images and tags over the content store and layer snapshots,
//! and the container root filesystems built on them. The on-disk layout is in the crate docs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, DirBuilder};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::json;

use crate::changes::apply_changes;
use crate::commit::{self, CommitRequest, EMPTY_LAYER_DIGEST};
use crate::config::{self, ImageConfig, NewConfig, RunConfig};
use crate::content::{ContentStore, chain_id, digest_hex};
use crate::error::{DeleteConflictReason, ImageError};
use crate::layer::{LayerMeta, StagedLayer, StagingDir, stage_layer};
use crate::reference::{Reference, is_full_hex_id, is_lower_hex};
use crate::remote::{RemoteDir, RemoteRecord};
use crate::{Deleted, ImageRecord, RootfsDirs, bootstrap, import, persist};

mod child;
pub use child::ChildImage;

/// `system df` for images.
#[derive(Debug, Clone)]
pub struct DiskUsage {
    /// Every layer snapshot once, in bytes.
    pub layers_size: u64,
    /// Each image with the bytes it shares with other images.
    pub images: Vec<(ImageRecord, u64)>,
}

/// The layout version this code reads and writes (`<root>/version`).
pub const SCHEMA_VERSION: u32 = 1;

/// The image store under `<data_root>/image`.
#[derive(Debug)]
pub struct ImageStore {
    pub(crate) paths: Paths,
    pub(crate) content: ContentStore,
    pub(crate) remote: RemoteDir,
    index: Mutex<Index>,
}

#[derive(Debug)]
pub(crate) struct Paths {
    pub(crate) layers: PathBuf,
    images: PathBuf,
    containers: PathBuf,
    pub(crate) ingest: PathBuf,
    trash: PathBuf,
    repositories: PathBuf,
}

/// The in-memory view of the metadata files, rebuilt at open.
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Image id → image.
    pub(crate) images: HashMap<String, ImageEntry>,
    /// Normalized reference (`docker.io/library/busybox:latest`) → image id.
    pub(crate) tags: BTreeMap<String, String>,
    /// Container id → the layers its root uses.
    containers: HashMap<String, ContainerMeta>,
    /// Image id → creates holding it (see [`ImageStore::hold`]).
    holds: HashMap<String, usize>,
    /// Diff id → the registry blobs known to carry the layer.
    pub(crate) remote: HashMap<String, RemoteRecord>,
}

#[derive(Debug, Clone)]
pub(crate) struct ImageEntry {
    pub(crate) config: ImageConfig,
    /// Chain ids, bottom layer first.
    pub(crate) layers: Vec<String>,
    size: u64,
    /// The image this one was committed from.
    parent: Option<String>,
}

/// `images/<hex>.json`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ImageMeta {
    layers: Vec<String>,
    size: u64,
    /// The image this one was committed from (absent before commit existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parent: Option<String>,
}

/// `containers/<id>/meta.json`: kept so the layers stay referenced even if the image is
/// force-removed while the container exists.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct ContainerMeta {
    image: String,
    layers: Vec<String>,
    /// `--userns-remap`: the mapping whose layer copies the container stacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    remap: Option<crate::IdMapping>,
}

/// `repositories.json`, in Docker's shape: repository name → reference → image id.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct RepositoriesFile {
    #[serde(rename = "Repositories", default)]
    repositories: BTreeMap<String, BTreeMap<String, String>>,
}

/// How a reference matched.
pub(crate) enum Resolved {
    /// By a tag; the normalized reference.
    Name(Reference),
    /// By full id or id prefix.
    Id,
}

impl ImageStore {
    /// Opens (creating if needed) the store at `root`: checks the schema version, empties the
    /// trash and the ingest area, rebuilds the index, and removes layers and blobs that no
    /// image or container references (left by a crash mid-import or mid-delete).
    pub fn open(root: &Path) -> Result<Self, ImageError> {
        let paths = Paths {
            layers: root.join("layers"),
            images: root.join("images"),
            containers: root.join("containers"),
            ingest: root.join("ingest"),
            trash: root.join("trash"),
            repositories: root.join("repositories.json"),
        };
        let blobs = root.join("blobs").join("sha256");
        let remote = root.join("remote");
        for dir in [
            root,
            &blobs,
            &remote,
            &paths.layers,
            &paths.images,
            &paths.containers,
            &paths.ingest,
            &paths.trash,
        ] {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(ImageError::fs("create directory", dir))?;
        }
        // An older berth made the root 0755: only root may look inside (dockerd's `image/`
        // is 0700 too); a stricter mode is kept.
        let mode = fs::metadata(root)
            .map_err(ImageError::fs("stat", root))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            fs::set_permissions(root, fs::Permissions::from_mode(mode & 0o700))
                .map_err(ImageError::fs("chmod", root))?;
        }
        check_schema_version(&root.join("version"))?;
        persist::empty_dir(&paths.trash)?;
        persist::empty_dir(&paths.ingest)?;
        persist::mark_top_dir(&paths.ingest);
        persist::remove_stray_temps(root)?;
        persist::remove_stray_temps(&paths.images)?;
        persist::remove_stray_temps(&remote)?;

        let content = ContentStore::new(blobs, paths.ingest.clone());
        let store = Self {
            paths,
            content,
            remote: RemoteDir::new(remote),
            index: Mutex::new(Index::default()),
        };
        let complete = store.load_index()?;
        if complete {
            store.remove_orphans()?;
        }
        Ok(store)
    }

    /// Resolves a name (`busybox`, `busybox:latest`, `docker.io/library/busybox:latest`), a full
    /// or `sha256:`-prefixed ID, or a unique ID prefix.
    pub fn resolve(&self, reference: &str) -> Result<ImageRecord, ImageError> {
        let index = self.lock();
        let (id, _) = resolve_id(&index, reference)?;
        Ok(index.record(&id))
    }

    /// Resolves `reference` and holds the image until the guard is dropped: a container
    /// create holds its image from resolving it until its writable layer is made (from then on
    /// the container itself keeps the image), so an `rmi -f` meanwhile only untags it.
    pub fn hold(self: &Arc<Self>, reference: &str) -> Result<ImageHold, ImageError> {
        let mut index = self.lock();
        let (id, _) = resolve_id(&index, reference)?;
        let record = index.record(&id);
        *index.holds.entry(id.clone()).or_default() += 1;
        Ok(ImageHold {
            store: Arc::clone(self),
            id,
            record,
        })
    }

    /// Every image, newest first.
    pub fn list(&self) -> Vec<ImageRecord> {
        let index = self.lock();
        let mut records: Vec<ImageRecord> =
            index.images.keys().map(|id| index.record(id)).collect();
        records.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
        records
    }

    /// The raw config bytes of an image (its id is their digest).
    pub fn config_bytes(&self, image_id: &str) -> Result<Vec<u8>, ImageError> {
        let id = {
            let index = self.lock();
            resolve_id(&index, image_id)?.0
        };
        self.content.read(&id)
    }

    /// Creates the overlay dirs of a container's root from `image_id`'s layers.
    pub fn prepare_rootfs(
        &self,
        container_id: &str,
        image_id: &str,
    ) -> Result<RootfsDirs, ImageError> {
        self.prepare_rootfs_mapped(container_id, image_id, None)
    }

    /// [`Self::prepare_rootfs`] for a container in a user namespace (`--userns-remap`): its
    /// lower layers are copies owned by the mapped ids (made once per layer and mapping,
    /// see [`crate::IdMapping`]), its writable layer is owned by the mapped root.
    pub fn prepare_rootfs_mapped(
        &self,
        container_id: &str,
        image_id: &str,
        map: Option<&crate::IdMapping>,
    ) -> Result<RootfsDirs, ImageError> {
        check_container_id(container_id)?;
        if let Some(map) = map {
            // The copies are made outside the index lock (they take a while the first
            // time); the image is held by its caller meanwhile, as for any create.
            let layers = {
                let index = self.lock();
                let (id, _) = resolve_id(&index, image_id)?;
                index.images[&id].layers.clone()
            };
            if let Some((_, gid)) = map.root() {
                // The mapped root must pass through the store to reach its layers (as
                // dockerd's remapped root: 0710, group of the mapped root).
                let root = self.paths.layers.parent().unwrap_or(&self.paths.layers);
                for dir in [root, &self.paths.layers, &self.paths.containers] {
                    crate::remap::open_to_group(dir, gid)?;
                }
            }
            for chain in &layers {
                crate::remap::ensure_copy(&self.layer_dir(chain), map)?;
            }
        }
        let mut index = self.lock();
        let (id, _) = resolve_id(&index, image_id)?;
        let layers = index.images[&id].layers.clone();
        let dir = self.paths.containers.join(container_id);
        let mkdir = |path: &Path| {
            DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(path)
                .map_err(ImageError::fs("create directory", path))
        };
        mkdir(&dir)?;
        let meta = ContainerMeta {
            image: id,
            layers,
            remap: map.cloned(),
        };
        // Not fsynced: this is on the container start path, and a crash here only loses a
        // container that never ran.
        berth_fs::write_atomic(&dir.join("meta.json"), &to_json(&meta), false)?;
        let dirs = self.rootfs_dirs(container_id, &meta);
        mkdir(&dirs.upperdir)?;
        mkdir(&dirs.workdir)?;
        if let Some((uid, gid)) = map.and_then(crate::IdMapping::root) {
            for d in [&dirs.upperdir, &dirs.workdir] {
                std::os::unix::fs::chown(d, Some(uid), Some(gid))
                    .map_err(ImageError::fs("chown", d))?;
            }
        }
        index.containers.insert(container_id.to_owned(), meta);
        Ok(dirs)
    }

    /// The overlay dirs of an existing container root.
    pub fn rootfs(&self, container_id: &str, image_id: &str) -> Result<RootfsDirs, ImageError> {
        check_container_id(container_id)?;
        let index = self.lock();
        match index.containers.get(container_id) {
            Some(meta) => Ok(self.rootfs_dirs(container_id, meta)),
            None => {
                tracing::debug!(
                    container_id,
                    image_ref = image_id,
                    "no root filesystem recorded"
                );
                Err(ImageError::RootfsNotFound {
                    container_id: container_id.to_owned(),
                })
            }
        }
    }

    /// Removes a container's writable layer (crash-safe: renamed into trash first), and the
    /// layers only it still used.
    pub fn remove_rootfs(&self, container_id: &str) -> Result<(), ImageError> {
        check_container_id(container_id)?;
        let mut index = self.lock();
        persist::remove_via_trash(&self.paths.trash, &self.paths.containers.join(container_id))?;
        if let Some(meta) = index.containers.remove(container_id) {
            self.remove_unused_layers(&index, &meta.layers)?;
        }
        Ok(())
    }

    /// Makes a busybox image from the host's static busybox.
    pub fn bootstrap_busybox(
        &self,
        reference: &str,
        busybox: &Path,
    ) -> Result<ImageRecord, ImageError> {
        let tag = parse_tag_target(reference)?;
        let layer = bootstrap::busybox_layer(busybox)?;
        let staged = stage_layer(&self.content, &self.paths.ingest, &mut &layer.tar[..], None)?;
        let diff_ids = [staged.blob.digest().to_owned()];
        let config = config::serialize_new(&NewConfig {
            run: &bootstrap::busybox_run_config(),
            created: &layer.created,
            diff_ids: &diff_ids,
            history: vec![
                json!({ "created": layer.created, "created_by": "berth image bootstrap busybox" }),
            ],
            comment: None,
            author: None,
        });
        self.install_image(Vec::new(), vec![staged], config, Some(tag), None)
    }

    /// Makes a Debian image with `debootstrap --variant=minbase <suite> <mirror>`; each line
    /// debootstrap prints goes to `progress`. Nothing is left behind if it fails.
    pub fn bootstrap_debian(
        &self,
        reference: &str,
        suite: &str,
        mirror: &str,
        progress: &mut dyn FnMut(&str),
    ) -> Result<ImageRecord, ImageError> {
        let tag = parse_tag_target(reference)?;
        crate::debian::check_args(suite, mirror)?;
        let (dir, diff) = crate::layer::StagingDir::create(&self.paths.ingest)?;
        crate::debian::debootstrap(suite, mirror, &diff, progress)?;
        progress("Writing the layer");
        let mut writer = self.content.start()?;
        let tree = RootfsDirs {
            lowerdirs: Vec::new(),
            upperdir: diff.clone(),
            workdir: diff.clone(),
        };
        crate::export::export(&tree, &mut writer)?;
        crate::layer::sync_snapshot(&diff)?;
        let blob = writer.finish()?;
        let size = tree_size(&diff)?;
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let diff_ids = [blob.digest().to_owned()];
        let run = RunConfig {
            env: Some(vec![berth_fs::DEFAULT_PATH_ENV.to_owned()]),
            cmd: Some(vec!["bash".to_owned()]),
            ..RunConfig::default()
        };
        let config = config::serialize_new(&NewConfig {
            run: &run,
            created: &created,
            diff_ids: &diff_ids,
            history: vec![json!({
                "created": created,
                "created_by": format!(
                    "berth image bootstrap debian:{suite} (debootstrap --variant=minbase {suite} {mirror})"
                ),
            })],
            comment: None,
            author: None,
        });
        let staged = StagedLayer { dir, blob, size };
        self.install_image(Vec::new(), vec![staged], config, Some(tag), None)
    }

    /// Checks what an import can be refused for before its archive is read: the reference
    /// and the changes.
    pub fn check_import(
        &self,
        reference: Option<&str>,
        changes: &[String],
    ) -> Result<(), ImageError> {
        reference.map(parse_tag_target).transpose()?;
        apply_changes(&RunConfig::default(), changes)?;
        Ok(())
    }

    /// Imports a rootfs tarball (plain, gzip or zstd) as a one-layer image.
    pub fn import(
        &self,
        tar: &mut dyn Read,
        reference: Option<&str>,
        changes: &[String],
        message: Option<&str>,
    ) -> Result<ImageRecord, ImageError> {
        // Everything that can be refused is checked before anything is written.
        let tag = reference.map(parse_tag_target).transpose()?;
        let run = apply_changes(&RunConfig::default(), changes)?;
        let mut stream = import::decompressed(tar)?;
        let staged = stage_layer(&self.content, &self.paths.ingest, &mut stream, None)?;
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let comment = message
            .filter(|m| !m.is_empty())
            .unwrap_or("Imported from -");
        let diff_ids = [staged.blob.digest().to_owned()];
        let config = config::serialize_new(&NewConfig {
            run: &run,
            created: &created,
            diff_ids: &diff_ids,
            history: vec![json!({ "created": created, "comment": comment })],
            comment: Some(comment),
            author: None,
        });
        self.install_image(Vec::new(), vec![staged], config, tag, None)
    }

    /// `commit`: the container's writable layer becomes a layer on top of its image's, and
    /// the container's config (with `changes`) the new image's defaults. The caller pauses
    /// the container. Nothing is written if a change or the reference is refused.
    pub fn commit(&self, request: &CommitRequest) -> Result<ImageRecord, ImageError> {
        check_container_id(&request.container_id)?;
        let tag = request
            .reference
            .as_deref()
            .map(parse_tag_target)
            .transpose()?;
        let run = apply_changes(&request.config, &request.changes)?;
        let (container, parent) = {
            let index = self.lock();
            let container = index
                .containers
                .get(&request.container_id)
                .cloned()
                .ok_or_else(|| ImageError::RootfsNotFound {
                    container_id: request.container_id.clone(),
                })?;
            let parent = index.images.get(&container.image).cloned();
            (container, parent)
        };
        let upper = self
            .paths
            .containers
            .join(&request.container_id)
            .join("diff");
        let staged = commit::stage_upper_mapped(
            &self.content,
            &self.paths.ingest,
            &upper,
            &request.exclude,
            container.remap.as_ref(),
        )?;
        let mut diff_ids = Vec::new();
        for chain in &container.layers {
            diff_ids.push(self.layer_meta(chain)?.diff_id);
        }
        let mut history: Vec<serde_json::Value> = parent
            .as_ref()
            .and_then(|p| p.config.other.get("history"))
            .and_then(serde_json::Value::as_array)
            .cloned()
            .unwrap_or_default();
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let empty = staged.blob.digest() == EMPTY_LAYER_DIGEST;
        let mut entry = serde_json::Map::new();
        entry.insert("created".into(), json!(created));
        if let Some(author) = request.author.as_deref().filter(|a| !a.is_empty()) {
            entry.insert("author".into(), json!(author));
        }
        entry.insert("created_by".into(), json!(request.created_by));
        if let Some(comment) = request.comment.as_deref().filter(|c| !c.is_empty()) {
            entry.insert("comment".into(), json!(comment));
        }
        if empty {
            entry.insert("empty_layer".into(), json!(true));
        } else {
            diff_ids.push(staged.blob.digest().to_owned());
        }
        history.push(serde_json::Value::Object(entry));
        let config = config::serialize_new(&NewConfig {
            run: &run,
            created: &created,
            diff_ids: &diff_ids,
            history,
            comment: request.comment.as_deref().filter(|c| !c.is_empty()),
            author: request.author.as_deref().filter(|a| !a.is_empty()),
        });
        let staged = if empty { Vec::new() } else { vec![staged] };
        let parent_id = parent.is_some().then(|| container.image.clone());
        self.install_image(container.layers, staged, config, tag, parent_id)
    }

    pub(crate) fn layer_meta(&self, chain: &str) -> Result<LayerMeta, ImageError> {
        read_json(&self.layer_dir(chain).join("meta.json"))
    }

    /// Adds a tag.
    pub fn tag(&self, source: &str, target: &str) -> Result<(), ImageError> {
        let tag = parse_tag_target(target)?;
        let mut index = self.lock();
        let (id, _) = resolve_id(&index, source)?;
        let previous = index.tags.insert(tag.to_string(), id);
        if let Err(e) = self.save_repositories(&index) {
            match previous {
                Some(previous) => index.tags.insert(tag.to_string(), previous),
                None => index.tags.remove(&tag.to_string()),
            };
            return Err(e);
        }
        Ok(())
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
        self.remove_with(reference, force, true, in_use)
    }

    /// [`ImageStore::remove`], and with `prune_parents` (Docker's default, off with
    /// `--no-prune`) the untagged parents that nothing else uses go too.
    pub fn remove_with(
        &self,
        reference: &str,
        force: bool,
        prune_parents: bool,
        in_use: &dyn Fn(&str) -> Option<(String, bool)>,
    ) -> Result<Vec<Deleted>, ImageError> {
        let mut index = self.lock();
        let (id, resolved) = resolve_id(&index, reference)?;
        let tags: Vec<String> = index
            .tags
            .iter()
            .filter(|(_, image)| **image == id)
            .map(|(tag, _)| tag.clone())
            .collect();
        let mut records = Vec::new();
        match resolved {
            Resolved::Name(name) => {
                if !force
                    && tags.len() == 1
                    && let Some((container_id, _)) = in_use(&id)
                {
                    return Err(ImageError::ReferenceInUse {
                        reference: reference.to_owned(),
                        container_id,
                        image_id: id,
                    });
                }
                let removed = references_going_with(&name, &tags);
                self.untag(&mut index, &removed)?;
                records.extend(removed.iter().map(|r| Deleted::Untagged(familiar(r))));
                if tags.len() > removed.len() {
                    return Ok(records);
                }
                // The image is now dangling; as in Docker, a container using it (or an image
                // on top of it) keeps it without making the untag an error. A create that
                // holds it keeps it even when forced: its container must be able to start.
                if delete_conflict(&id, force, in_use).is_some()
                    || index.has_children(&id)
                    || index.keeps(&id)
                {
                    return Ok(records);
                }
            }
            Resolved::Id => {
                if !force && !is_single_reference(&tags) {
                    return Err(ImageError::DeleteConflict {
                        image_id: id,
                        reason: DeleteConflictReason::MultipleRepositories,
                    });
                }
                if let Some(reason) = delete_conflict(&id, force, in_use) {
                    return Err(ImageError::DeleteConflict {
                        image_id: id,
                        reason,
                    });
                }
                if index.has_children(&id) {
                    return Err(ImageError::DeleteConflict {
                        image_id: id,
                        reason: DeleteConflictReason::HasChildren,
                    });
                }
                self.untag(&mut index, &tags)?;
                records.extend(tags.iter().map(|tag| Deleted::Untagged(familiar(tag))));
                // A create in progress holds it: the image stays, dangling, for that container.
                if index.keeps(&id) {
                    return Ok(records);
                }
            }
        }
        let mut parent = index.images.get(&id).and_then(|entry| entry.parent.clone());
        self.delete_image(&mut index, &id, &mut records)?;
        while prune_parents && let Some(candidate) = parent.take() {
            let prunable = index.images.contains_key(&candidate)
                && !index.tags.values().any(|image| *image == candidate)
                && !index.has_children(&candidate)
                && in_use(&candidate).is_none();
            if prunable {
                parent = index.images[&candidate].parent.clone();
                self.delete_image(&mut index, &candidate, &mut records)?;
            }
        }
        Ok(records)
    }

    /// The sizes of an image's layers (sum of their regular files), bottom first.
    pub fn layer_sizes(&self, reference: &str) -> Result<Vec<u64>, ImageError> {
        let layers = {
            let index = self.lock();
            let (id, _) = resolve_id(&index, reference)?;
            index.images[&id].layers.clone()
        };
        Ok(layers
            .iter()
            .map(|chain| self.layer_meta(chain).map_or(0, |meta| meta.size))
            .collect())
    }

    /// What the images take on disk: every layer snapshot counted once, and per image the
    /// bytes of its layers that other images use too (Docker's `SharedSize`).
    pub fn disk_usage(&self) -> DiskUsage {
        let index = self.lock();
        let mut users: HashMap<&str, usize> = HashMap::new();
        for entry in index.images.values() {
            let unique: HashSet<&String> = entry.layers.iter().collect();
            for chain in unique {
                *users.entry(chain.as_str()).or_default() += 1;
            }
        }
        let sizes: HashMap<&str, u64> = users
            .keys()
            .map(|chain| (*chain, self.layer_meta(chain).map_or(0, |meta| meta.size)))
            .collect();
        let images = index
            .images
            .iter()
            .map(|(id, entry)| {
                let shared = entry
                    .layers
                    .iter()
                    .filter(|chain| users.get(chain.as_str()).copied().unwrap_or(0) > 1)
                    .map(|chain| sizes.get(chain.as_str()).copied().unwrap_or(0))
                    .sum();
                (index.record(id), shared)
            })
            .collect();
        DiskUsage {
            layers_size: sizes.values().sum(),
            images,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Index> {
        // A panic while holding the lock leaves the index as consistent as the files are.
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The user-namespace mapping a container's root was made for (`--userns-remap`).
    pub fn rootfs_mapping(&self, container_id: &str) -> Option<crate::IdMapping> {
        let index = self.lock();
        index.containers.get(container_id)?.remap.clone()
    }

    fn rootfs_dirs(&self, container_id: &str, meta: &ContainerMeta) -> RootfsDirs {
        let dir = self.paths.containers.join(container_id);
        let diff = match &meta.remap {
            Some(map) => format!("diff-{}", map.key()),
            None => "diff".to_owned(),
        };
        RootfsDirs {
            lowerdirs: meta
                .layers
                .iter()
                .rev()
                .map(|chain| self.layer_dir(chain).join(&diff))
                .collect(),
            upperdir: dir.join("diff"),
            workdir: dir.join("work"),
        }
    }

    pub(crate) fn layer_dir(&self, chain: &str) -> PathBuf {
        self.paths.layers.join(digest_hex(chain).unwrap_or(chain))
    }

    /// Makes staged layers and a config an image: layers into `layers/`, blobs into place,
    /// then the image record (the commit point), then the tag.
    fn install_image(
        &self,
        base: Vec<String>,
        staged: Vec<StagedLayer>,
        config_bytes: Vec<u8>,
        tag: Option<Reference>,
        parent_image: Option<String>,
    ) -> Result<ImageRecord, ImageError> {
        let config: ImageConfig = serde_json::from_slice(&config_bytes).map_err(|source| {
            ImageError::CorruptMetadata {
                path: PathBuf::from("<new config>"),
                source,
            }
        })?;
        let mut index = self.lock();
        let mut size: u64 = base
            .iter()
            .filter_map(|chain| self.layer_meta(chain).ok())
            .map(|meta| meta.size)
            .sum();
        let mut parent: Option<String> = base.last().cloned();
        let mut layers = base;
        for layer in staged {
            let chain = chain_id(parent.as_deref(), layer.blob.digest());
            size += layer.size;
            let StagedLayer {
                dir,
                blob,
                size: layer_size,
            } = layer;
            let diff_id = blob.digest().to_owned();
            self.install_layer(dir, &diff_id, layer_size, parent.as_deref(), &chain)?;
            self.content.commit(blob)?;
            layers.push(chain.clone());
            parent = Some(chain);
        }
        persist::sync_dir(&self.paths.layers)?;
        let id = self.record_image(
            &mut index,
            &config_bytes,
            config,
            layers,
            size,
            parent_image,
        )?;
        if let Some(tag) = tag {
            index.tags.insert(tag.to_string(), id.clone());
            self.save_repositories(&index)?;
        }
        tracing::debug!(image_id = %id, "image installed");
        Ok(index.record(&id))
    }

    /// The commit point of a new image: its config blob, its record on disk, then its index
    /// entry. Returns the image id.
    pub(crate) fn record_image(
        &self,
        index: &mut Index,
        config_bytes: &[u8],
        config: ImageConfig,
        layers: Vec<String>,
        size: u64,
        parent: Option<String>,
    ) -> Result<String, ImageError> {
        let id = self.content.put(config_bytes)?;
        let hex = digest_hex(&id).expect("content digests are sha256");
        let meta = ImageMeta {
            layers: layers.clone(),
            size,
            parent: parent.clone(),
        };
        berth_fs::write_atomic(
            &self.paths.images.join(format!("{hex}.json")),
            &to_json(&meta),
            true,
        )?;
        index.images.insert(
            id.clone(),
            ImageEntry {
                config,
                layers,
                size,
                parent,
            },
        );
        Ok(id)
    }

    /// Renames a staged snapshot into place as layer `chain` (unless it is there already);
    /// the caller commits the layer's blob.
    pub(crate) fn install_layer(
        &self,
        dir: StagingDir,
        diff_id: &str,
        size: u64,
        parent: Option<&str>,
        chain: &str,
    ) -> Result<(), ImageError> {
        let target = self.layer_dir(chain);
        if fs::symlink_metadata(&target).is_err() {
            let meta = LayerMeta {
                diff_id: diff_id.to_owned(),
                parent: parent.map(str::to_owned),
                size,
            };
            let meta_path = dir.path().join("meta.json");
            fs::write(&meta_path, to_json(&meta)).map_err(ImageError::fs("write", &meta_path))?;
            fs::rename(dir.path(), &target)
                .map_err(ImageError::fs("rename layer into place", &target))?;
            dir.keep();
        }
        Ok(())
    }

    fn untag(&self, index: &mut Index, tags: &[String]) -> Result<(), ImageError> {
        let removed: Vec<(String, String)> = tags
            .iter()
            .filter_map(|tag| index.tags.remove(tag).map(|id| (tag.clone(), id)))
            .collect();
        if let Err(e) = self.save_repositories(index) {
            index.tags.extend(removed);
            return Err(e);
        }
        Ok(())
    }

    fn delete_image(
        &self,
        index: &mut Index,
        id: &str,
        records: &mut Vec<Deleted>,
    ) -> Result<(), ImageError> {
        let Some(entry) = index.images.remove(id) else {
            return Ok(());
        };
        index.tags.retain(|_, image| image != id);
        let hex = digest_hex(id).expect("image ids are sha256 digests");
        let meta_path = self.paths.images.join(format!("{hex}.json"));
        if let Err(e) = fs::remove_file(&meta_path)
            && e.kind() != io::ErrorKind::NotFound
        {
            index.images.insert(id.to_owned(), entry);
            return Err(ImageError::fs("remove", meta_path)(e));
        }
        records.push(Deleted::Deleted(id.to_owned()));
        // From here on the image is gone; what follows frees space, and a crash in it leaves
        // orphans that the next open removes.
        self.content.remove(id)?;
        let used_diff_ids: HashSet<String> = index
            .images
            .values()
            .flat_map(|image| image.config.diff_ids())
            .collect();
        for diff_id in entry.config.diff_ids() {
            if !used_diff_ids.contains(&diff_id) {
                self.content.remove(&diff_id)?;
                if let Some(record) = index.remote.remove(&diff_id) {
                    self.remote.remove(&diff_id)?;
                    for digest in record.stored_digests() {
                        self.content.remove(digest)?;
                    }
                }
            }
        }
        let removed = self.remove_unused_layers(index, &entry.layers)?;
        records.extend(removed.into_iter().map(Deleted::Deleted));
        Ok(())
    }

    /// Removes those of `candidates` that no image or container uses; returns them.
    fn remove_unused_layers(
        &self,
        index: &Index,
        candidates: &[String],
    ) -> Result<Vec<String>, ImageError> {
        let used = index.used_layers();
        let mut removed = Vec::new();
        for chain in candidates.iter().rev() {
            if !used.contains(chain) && !removed.contains(chain) {
                persist::remove_via_trash(&self.paths.trash, &self.layer_dir(chain))?;
                removed.push(chain.clone());
            }
        }
        Ok(removed)
    }

    pub(crate) fn save_repositories(&self, index: &Index) -> Result<(), ImageError> {
        let mut file = RepositoriesFile::default();
        for (tag, id) in &index.tags {
            let name = Reference::parse(tag)
                .map(|r| r.name())
                .unwrap_or_else(|_| tag.clone());
            file.repositories
                .entry(name)
                .or_default()
                .insert(tag.clone(), id.clone());
        }
        berth_fs::write_atomic(&self.paths.repositories, &to_json(&file), true)
            .map_err(ImageError::from)
    }

    /// Reads the metadata files into the index. Returns whether every file was readable
    /// (orphan removal is only safe then).
    fn load_index(&self) -> Result<bool, ImageError> {
        let mut index = self.lock();
        let mut complete = true;
        for entry in read_dir(&self.paths.images)? {
            let path = entry.path();
            let Some(hex) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            if !is_full_hex_id(hex) {
                continue;
            }
            let id = format!("sha256:{hex}");
            let loaded = read_json::<ImageMeta>(&path).and_then(|meta| {
                let bytes = self.content.read(&id)?;
                let config = serde_json::from_slice(&bytes).map_err(|source| {
                    ImageError::CorruptMetadata {
                        path: self.content.path_of(&id).unwrap_or_default(),
                        source,
                    }
                })?;
                Ok(ImageEntry {
                    config,
                    layers: meta.layers,
                    size: meta.size,
                    parent: meta.parent,
                })
            });
            match loaded {
                Ok(image) => {
                    index.images.insert(id, image);
                }
                Err(e) => {
                    tracing::warn!(image_id = %id, error = %e, "skipping unreadable image");
                    complete = false;
                }
            }
        }
        let (remote, remote_complete) = self.remote.load()?;
        index.remote = remote;
        complete &= remote_complete;
        if self.paths.repositories.exists() {
            let file: RepositoriesFile = read_json(&self.paths.repositories)?;
            for (tag, id) in file.repositories.into_values().flatten() {
                if index.images.contains_key(&id) {
                    index.tags.insert(tag, id);
                } else {
                    tracing::warn!(image_ref = %tag, image_id = %id, "dropping tag of a missing image");
                }
            }
        }
        for entry in read_dir(&self.paths.containers)? {
            let dir = entry.path();
            let Some(container_id) = dir.file_name().and_then(|n| n.to_str()).map(str::to_owned)
            else {
                continue;
            };
            persist::remove_stray_temps(&dir)?;
            match read_json::<ContainerMeta>(&dir.join("meta.json")) {
                Ok(meta) => {
                    index.containers.insert(container_id, meta);
                }
                Err(e) => {
                    tracing::warn!(container_id, error = %e, "container root without readable metadata");
                    complete = false;
                }
            }
        }
        Ok(complete)
    }

    fn remove_orphans(&self) -> Result<(), ImageError> {
        let mut index = self.lock();
        let used_layers = index.used_layers();
        for entry in read_dir(&self.paths.layers)? {
            let name = entry.file_name();
            let Some(hex) = name.to_str().filter(|n| is_full_hex_id(n)) else {
                continue;
            };
            if !used_layers.contains(&format!("sha256:{hex}")) {
                tracing::info!(path = %entry.path().display(), "removing orphan layer");
                persist::remove_via_trash(&self.paths.trash, &entry.path())?;
            }
        }
        let mut used_blobs: HashSet<String> = index.images.keys().cloned().collect();
        used_blobs.extend(
            index
                .images
                .values()
                .flat_map(|image| image.config.diff_ids()),
        );
        let orphan_records: Vec<String> = index
            .remote
            .keys()
            .filter(|diff_id| !used_blobs.contains(*diff_id))
            .cloned()
            .collect();
        for diff_id in orphan_records {
            tracing::info!(digest = %diff_id, "removing orphan remote record");
            self.remote.remove(&diff_id)?;
            index.remote.remove(&diff_id);
        }
        for record in index.remote.values() {
            used_blobs.extend(record.stored_digests().map(str::to_owned));
        }
        for digest in self.content.list()? {
            if !used_blobs.contains(&digest) {
                tracing::info!(digest = %digest, "removing orphan blob");
                self.content.remove(&digest)?;
            }
        }
        Ok(())
    }
}

impl Index {
    /// Whether a create holds image `id` (it has not made its container's root yet; once it
    /// has, the root keeps the layers it needs and the image may go, as in Docker).
    fn keeps(&self, id: &str) -> bool {
        self.holds.get(id).is_some_and(|n| *n > 0)
    }

    pub(crate) fn record(&self, id: &str) -> ImageRecord {
        let entry = &self.images[id];
        let (mut repo_digests, mut repo_tags): (Vec<String>, Vec<String>) = self
            .tags
            .iter()
            .filter(|(_, image)| *image == id)
            .map(|(tag, _)| tag.clone())
            .partition(|tag| is_digest_reference(tag));
        for names in [&mut repo_tags, &mut repo_digests] {
            for name in names.iter_mut() {
                *name = familiar(name);
            }
            names.sort();
        }
        ImageRecord {
            id: id.to_owned(),
            repo_tags,
            repo_digests,
            config: entry.config.clone(),
            size: entry.size,
            created: entry.config.created_unix(),
            parent: entry.parent.clone().filter(|p| self.images.contains_key(p)),
        }
    }

    fn has_children(&self, id: &str) -> bool {
        self.images
            .values()
            .any(|entry| entry.parent.as_deref() == Some(id))
    }

    fn used_layers(&self) -> HashSet<String> {
        let images = self.images.values().flat_map(|image| image.layers.iter());
        let containers = self
            .containers
            .values()
            .flat_map(|container| container.layers.iter());
        images.chain(containers).cloned().collect()
    }
}

/// An image as `save` writes it ([`crate::archive`]): everything is read or opened under the
/// store's lock, so a concurrent `rmi` cannot pull a layer from under the archive.
#[derive(Debug)]
pub(crate) struct SavedImage {
    pub(crate) id: String,
    pub(crate) config_bytes: Vec<u8>,
    pub(crate) config: ImageConfig,
    /// Diff id, the open layer blob, its size.
    pub(crate) layers: Vec<(String, LayerSource, u64)>,
    /// The tags asked for, normalized.
    pub(crate) tags: Vec<Reference>,
}

/// Where a layer's uncompressed tar comes from, for `save`.
#[derive(Debug)]
pub(crate) enum LayerSource {
    /// The tar blob itself.
    Tar(fs::File),
    /// A stored registry blob (pulled), decompressed on the way out.
    Compressed(fs::File),
}

/// A layer of an image being loaded: its diff id and, unless the store already has its
/// snapshot, the staged one.
#[derive(Debug)]
pub(crate) struct LoadLayer {
    pub(crate) diff_id: String,
    pub(crate) staged: Option<StagedLayer>,
}

/// What the archive module (save and load) needs of the store.
impl ImageStore {
    /// The images `names` name, each once, with the tags that name them: a `name:tag` brings
    /// that tag, a bare repository name all of its tags, an id none.
    pub(crate) fn images_to_save(&self, names: &[String]) -> Result<Vec<SavedImage>, ImageError> {
        let index = self.lock();
        let mut wanted: Vec<(String, Vec<Reference>)> = Vec::new();
        let mut add = |id: String, tag: Option<Reference>| {
            let position = match wanted.iter().position(|(w, _)| *w == id) {
                Some(p) => p,
                None => {
                    wanted.push((id, Vec::new()));
                    wanted.len() - 1
                }
            };
            if let Some(tag) = tag
                && !wanted[position].1.contains(&tag)
            {
                wanted[position].1.push(tag);
            }
        };
        for name in names {
            let bare = Reference::parse(name)
                .ok()
                .filter(|r| r.tag().is_none() && r.digest().is_none());
            if let Some(bare) = &bare {
                let repo = bare.name();
                let tagged: Vec<(Reference, String)> = index
                    .tags
                    .iter()
                    .filter_map(|(tag, id)| {
                        let r = Reference::parse(tag).ok()?;
                        (r.name() == repo).then(|| (r, id.clone()))
                    })
                    .collect();
                if !tagged.is_empty() {
                    for (tag, id) in tagged {
                        add(id, Some(tag));
                    }
                    continue;
                }
            }
            match resolve_id(&index, name)? {
                (id, Resolved::Name(tag)) => add(id, Some(tag)),
                (id, Resolved::Id) => add(id, None),
            }
        }
        let mut images = Vec::new();
        for (id, tags) in wanted {
            let entry = &index.images[&id];
            let config_bytes = self.content.read(&id)?;
            let mut layers = Vec::new();
            for diff_id in entry.config.diff_ids() {
                let (source, size) = self.layer_source(&index, &diff_id)?;
                layers.push((diff_id, source, size));
            }
            images.push(SavedImage {
                id,
                config_bytes,
                config: entry.config.clone(),
                layers,
                tags,
            });
        }
        Ok(images)
    }

    /// A layer's uncompressed tar for `save`, and its size: the tar blob, or a stored
    /// registry blob of the layer (a pulled layer keeps only that) decompressed.
    fn layer_source(&self, index: &Index, diff_id: &str) -> Result<(LayerSource, u64), ImageError> {
        let open = |digest: &str| -> Result<Option<(fs::File, u64)>, ImageError> {
            let Some(path) = self.content.path_of(digest) else {
                return Ok(None);
            };
            match fs::File::open(&path) {
                Ok(file) => {
                    let size = file
                        .metadata()
                        .map_err(ImageError::fs("stat", &path))?
                        .len();
                    Ok(Some((file, size)))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(ImageError::fs("open layer", &path)(e)),
            }
        };
        if let Some((file, size)) = open(diff_id)? {
            return Ok((LayerSource::Tar(file), size));
        }
        let record = index.remote.get(diff_id);
        let tar_size = record.and_then(|r| r.tar_size);
        for digest in record.into_iter().flat_map(RemoteRecord::stored_digests) {
            if let (Some((file, _)), Some(tar_size)) = (open(digest)?, tar_size) {
                return Ok((LayerSource::Compressed(file), tar_size));
            }
        }
        Err(ImageError::LayerContentMissing {
            diff_id: diff_id.to_owned(),
        })
    }

    /// The content store and the ingest directory, where loads stage their layers.
    pub(crate) fn ingest_area(&self) -> (&ContentStore, &Path) {
        (&self.content, &self.paths.ingest)
    }

    /// Whether the snapshot of layer chain `chain` exists.
    pub(crate) fn has_layer(&self, chain: &str) -> bool {
        fs::symlink_metadata(self.layer_dir(chain)).is_ok()
    }

    /// Publishes a loaded image: staged layers into place, blobs committed, the config, the
    /// image record (the commit point), then the tags. Returns the record and, for each tag
    /// that named another image before, that image's id.
    pub(crate) fn install_loaded(
        &self,
        layers: Vec<LoadLayer>,
        config_bytes: &[u8],
        tags: &[Reference],
    ) -> Result<(ImageRecord, Vec<(Reference, String)>), ImageError> {
        let config: ImageConfig =
            serde_json::from_slice(config_bytes).map_err(|source| ImageError::CorruptMetadata {
                path: PathBuf::from("<loaded config>"),
                source,
            })?;
        let mut index = self.lock();
        let mut parent: Option<String> = None;
        let mut chains = Vec::new();
        let mut size = 0;
        for layer in layers {
            let chain = chain_id(parent.as_deref(), &layer.diff_id);
            match layer.staged {
                Some(staged) => {
                    let StagedLayer {
                        dir,
                        blob,
                        size: layer_size,
                    } = staged;
                    size += layer_size;
                    self.install_layer(dir, &layer.diff_id, layer_size, parent.as_deref(), &chain)?;
                    self.content.commit(blob)?;
                }
                None => {
                    let meta: LayerMeta = read_json(&self.layer_dir(&chain).join("meta.json"))?;
                    size += meta.size;
                }
            }
            chains.push(chain.clone());
            parent = Some(chain);
        }
        persist::sync_dir(&self.paths.layers)?;
        let id = self.record_image(&mut index, config_bytes, config, chains, size, None)?;
        let mut replaced = Vec::new();
        if !tags.is_empty() {
            for tag in tags {
                if let Some(previous) = index.tags.insert(tag.to_string(), id.clone())
                    && previous != id
                {
                    replaced.push((tag.clone(), previous));
                }
            }
            self.save_repositories(&index)?;
        }
        tracing::debug!(image_id = %id, "image loaded");
        Ok((index.record(&id), replaced))
    }
}

/// Resolution order: full id, then name (tag defaults to `latest`), then unique id prefix.
pub(crate) fn resolve_id(index: &Index, reference: &str) -> Result<(String, Resolved), ImageError> {
    let hex_part = reference.strip_prefix("sha256:").unwrap_or(reference);
    if is_full_hex_id(hex_part) {
        let id = format!("sha256:{hex_part}");
        if index.images.contains_key(&id) {
            return Ok((id, Resolved::Id));
        }
    }
    let parsed = Reference::parse(reference).map(Reference::with_default_tag);
    if let Ok(name) = &parsed
        && let Some(id) = index.tags.get(&name.to_string())
    {
        return Ok((id.clone(), Resolved::Name(name.clone())));
    }
    let hex_like = is_lower_hex(hex_part);
    if hex_like {
        let mut matches = index
            .images
            .keys()
            .filter(|id| id["sha256:".len()..].starts_with(hex_part));
        if let Some(first) = matches.next() {
            if matches.next().is_some() {
                return Err(ImageError::AmbiguousReference {
                    prefix: reference.to_owned(),
                });
            }
            return Ok((first.clone(), Resolved::Id));
        }
    }
    Err(match parsed {
        Ok(name) => ImageError::NotFound {
            reference: name.familiar(),
        },
        Err(_) if hex_like => ImageError::NotFound {
            reference: reference.to_owned(),
        },
        Err(problem) => ImageError::InvalidReference {
            reference: reference.to_owned(),
            problem,
        },
    })
}

/// An image held by a create (see [`ImageStore::hold`]); released when dropped.
#[derive(Debug)]
pub struct ImageHold {
    store: Arc<ImageStore>,
    id: String,
    record: ImageRecord,
}

impl ImageHold {
    /// The held image.
    pub fn record(&self) -> &ImageRecord {
        &self.record
    }
}

impl Drop for ImageHold {
    fn drop(&mut self) {
        let mut index = self.store.lock();
        if let Some(n) = index.holds.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                index.holds.remove(&self.id);
            }
        }
    }
}

/// The references an `rmi` of `name` removes, among the image's `references`: `name`, and when
/// it is a tag and no other tag of its repository remains, that repository's digest
/// references too (moby's rule: a pulled image's `repo@digest` goes with its last tag).
fn references_going_with(name: &Reference, references: &[String]) -> Vec<String> {
    let mut removed = vec![name.to_string()];
    if name.digest().is_some() {
        return removed;
    }
    let same_repository: Vec<Reference> = references
        .iter()
        .filter_map(|r| Reference::parse(r).ok())
        .filter(|r| r.name() == name.name() && r != name)
        .collect();
    if same_repository.iter().all(|r| r.digest().is_some()) {
        removed.extend(same_repository.iter().map(Reference::to_string));
    }
    removed
}

/// moby's `isSingleReference`: at most one tag, and every digest reference in the tag's
/// repository. Only such an image may be deleted by id without force.
fn is_single_reference(references: &[String]) -> bool {
    let parsed: Vec<Reference> = references
        .iter()
        .filter_map(|r| Reference::parse(r).ok())
        .collect();
    let tags = parsed.iter().filter(|r| r.digest().is_none()).count();
    let names: HashSet<String> = parsed.iter().map(Reference::name).collect();
    tags <= 1 && names.len() <= 1
}

/// What `rmi` would run into: a running container always, a stopped one unless forced.
fn delete_conflict(
    id: &str,
    force: bool,
    in_use: &dyn Fn(&str) -> Option<(String, bool)>,
) -> Option<DeleteConflictReason> {
    match in_use(id) {
        Some((container_id, true)) => Some(DeleteConflictReason::RunningContainer { container_id }),
        Some((container_id, false)) if !force => {
            Some(DeleteConflictReason::StoppedContainer { container_id })
        }
        _ => None,
    }
}

/// A reference that may become a tag: valid, no digest, `latest` by default.
fn parse_tag_target(reference: &str) -> Result<Reference, ImageError> {
    let parsed = Reference::parse(reference).map_err(|problem| ImageError::InvalidReference {
        reference: reference.to_owned(),
        problem,
    })?;
    if parsed.digest().is_some() {
        return Err(ImageError::TagWithDigest {
            reference: reference.to_owned(),
        });
    }
    Ok(parsed.with_default_tag())
}

/// Whether a stored reference is `name@digest` (a RepoDigest) rather than a tag.
fn is_digest_reference(normalized: &str) -> bool {
    normalized.contains('@')
}

fn familiar(normalized: &str) -> String {
    Reference::parse(normalized).map_or_else(|_| normalized.to_owned(), |r| r.familiar())
}

/// Container ids become directory names: no separators, no dot names.
fn check_container_id(container_id: &str) -> Result<(), ImageError> {
    let valid = !container_id.is_empty()
        && container_id.len() <= 128
        && !container_id.starts_with('.')
        && container_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(ImageError::InvalidContainerId {
            container_id: container_id.to_owned(),
        })
    }
}

fn check_schema_version(path: &Path) -> Result<(), ImageError> {
    match fs::read_to_string(path) {
        Ok(found) if found.trim() == SCHEMA_VERSION.to_string() => Ok(()),
        Ok(found) => Err(ImageError::UnsupportedSchema {
            path: path.to_owned(),
            found: found.trim().to_owned(),
            supported: SCHEMA_VERSION,
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            berth_fs::write_atomic(path, format!("{SCHEMA_VERSION}\n").as_bytes(), true)
                .map_err(ImageError::from)
        }
        Err(e) => Err(ImageError::fs("read", path)(e)),
    }
}

/// The bytes of a tree's regular files, each inode once.
fn tree_size(root: &Path) -> Result<u64, ImageError> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in read_dir(&dir)? {
            let meta = entry
                .metadata()
                .map_err(ImageError::fs("stat", entry.path()))?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() && seen.insert(meta.ino()) {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>, ImageError> {
    fs::read_dir(dir)
        .and_then(|entries| entries.collect::<Result<Vec<_>, _>>())
        .map_err(ImageError::fs("read directory", dir))
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ImageError> {
    let bytes = fs::read(path).map_err(ImageError::fs("read", path))?;
    serde_json::from_slice(&bytes).map_err(|source| ImageError::CorruptMetadata {
        path: path.to_owned(),
        source,
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("metadata structs always serialize")
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::time::Instant;

    use berth_errdefs::Classify;

    use super::*;

    const BUSYBOX: &str = "/bin/busybox";

    fn open_store() -> (tempfile::TempDir, ImageStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ImageStore::open(&dir.path().join("image")).expect("open");
        (dir, store)
    }

    /// The ingest area is marked as a top directory (see `persist::mark_top_dir`), where the
    /// file system keeps the flag (ext2/3/4; tmpfs, xfs and btrfs have none).
    #[test]
    fn ingest_is_a_top_directory() {
        use rustix::fs::{IFlags, ioctl_getflags, ioctl_setflags};
        let (dir, _store) = open_store();
        let flags = |path: &Path| {
            let file = fs::File::open(path).expect("open");
            ioctl_getflags(&file).expect("flags")
        };
        let probe = dir.path().join("probe");
        fs::create_dir(&probe).expect("mkdir");
        let file = fs::File::open(&probe).expect("open");
        let supported = ioctl_getflags(&file)
            .and_then(|f| ioctl_setflags(&file, f | IFlags::TOPDIR))
            .is_ok()
            && flags(&probe).contains(IFlags::TOPDIR);
        if !supported {
            eprintln!("skipped: the temp dir's file system has no FS_TOPDIR_FL");
            return;
        }
        assert!(flags(&dir.path().join("image/ingest")).contains(IFlags::TOPDIR));
    }

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

    fn import(
        store: &ImageStore,
        tar: &[u8],
        tag: Option<&str>,
        changes: &[&str],
    ) -> Result<ImageRecord, ImageError> {
        let changes: Vec<String> = changes.iter().map(|c| (*c).to_owned()).collect();
        store.import(&mut &tar[..], tag, &changes, None)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Blobs, layers, images and tags on disk, to check that failures leave nothing.
    fn disk_state(root: &Path) -> (Vec<String>, Vec<String>, Vec<String>, String) {
        let repositories = fs::read_to_string(root.join("repositories.json")).unwrap_or_default();
        assert!(names(&root.join("ingest")).is_empty(), "ingest area empty");
        assert!(names(&root.join("trash")).is_empty(), "trash empty");
        (
            names(&root.join("blobs/sha256")),
            names(&root.join("layers")),
            names(&root.join("images")),
            repositories,
        )
    }

    fn nobody_uses(_: &str) -> Option<(String, bool)> {
        None
    }

    #[test]
    fn bootstrap_busybox_builds_a_runnable_layer_idempotently() {
        if !Path::new(BUSYBOX).exists() {
            println!("skipping: {BUSYBOX} not installed");
            return;
        }
        let (dir, store) = open_store();
        let started = Instant::now();
        let record = store
            .bootstrap_busybox("busybox", Path::new(BUSYBOX))
            .expect("bootstrap");
        let elapsed = started.elapsed();
        println!("bootstrap took {elapsed:?}");
        assert!(elapsed.as_millis() < 1000, "bootstrap took {elapsed:?}");
        assert_eq!(record.repo_tags, ["busybox:latest"]);
        let run = record.config.config.as_ref().expect("run config");
        assert_eq!(
            run.env.as_deref(),
            Some(&[berth_fs::DEFAULT_PATH_ENV.to_owned()][..])
        );
        assert_eq!(run.cmd.as_deref(), Some(&["sh".to_owned()][..]));
        assert_eq!(record.config.os, "linux");
        assert_eq!(record.config.architecture, config::host_architecture());
        let history = record.config.other["history"].as_array().expect("history");
        assert_eq!(history.len(), 1);
        assert_eq!(history[0]["created_by"], "berth image bootstrap busybox");
        assert_eq!(record.config.other["rootfs"]["type"], "layers");
        assert_eq!(record.config.diff_ids().len(), 1);
        assert!(record.size >= fs::metadata(BUSYBOX).expect("stat").len());

        let dirs = store.prepare_rootfs("c1", &record.id).expect("prepare");
        let rootfs = &dirs.lowerdirs[0];
        let binary = fs::metadata(rootfs.join("bin/busybox")).expect("busybox copied");
        assert_eq!(binary.mode() & 0o7777, 0o755);
        assert_eq!(binary.len(), fs::metadata(BUSYBOX).expect("stat").len());
        assert_eq!(
            fs::read_link(rootfs.join("bin/sh")).expect("sh applet"),
            Path::new("busybox")
        );
        assert_eq!(
            fs::read_link(rootfs.join("bin/ls")).expect("ls applet"),
            Path::new("busybox")
        );
        let passwd = fs::read_to_string(rootfs.join("etc/passwd")).expect("passwd");
        assert!(passwd.starts_with("root:x:0:0:"));
        assert!(passwd.contains("nobody:x:65534:65534:") && passwd.contains("user:x:1000:1000:"));
        assert!(
            fs::read_to_string(rootfs.join("etc/group"))
                .expect("group")
                .contains("user:x:1000:")
        );
        assert_eq!(
            fs::metadata(rootfs.join("tmp"))
                .expect("tmp")
                .permissions()
                .mode()
                & 0o7777,
            0o1777
        );
        for dir in ["root", "home", "var", "proc", "sys", "dev", "etc"] {
            assert!(rootfs.join(dir).is_dir(), "{dir}");
        }
        assert!(!rootfs.join("etc/hostname").exists());
        // The applets really are busybox: run one through the layer's own binary.
        let output = std::process::Command::new(rootfs.join("bin/busybox"))
            .arg("true")
            .status()
            .expect("run");
        assert!(output.success());

        let again = store
            .bootstrap_busybox("busybox:latest", Path::new(BUSYBOX))
            .expect("bootstrap again");
        assert_eq!(again.id, record.id, "same binary, same image id");
        let config = store.config_bytes(&record.id).expect("config");
        assert_eq!(crate::content::sha256_digest(&config), record.id);
        let (blobs, layers, images, _) = disk_state(&dir.path().join("image"));
        assert_eq!((blobs.len(), layers.len(), images.len()), (2, 1, 1));
    }

    fn rich_tar() -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o755);
        dir.set_size(0);
        builder.append_data(&mut dir, "etc/", &[][..]).expect("dir");
        let mut file = tar::Header::new_gnu();
        file.set_entry_type(tar::EntryType::Regular);
        file.set_mode(0o640);
        file.set_size(6);
        file.set_mtime(1_500_000_000);
        builder
            .append_data(&mut file, "etc/config", &b"value\n"[..])
            .expect("file");
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        builder
            .append_link(&mut link, "etc/link", "config")
            .expect("symlink");
        let mut hard = tar::Header::new_gnu();
        hard.set_entry_type(tar::EntryType::Link);
        hard.set_size(0);
        builder
            .append_link(&mut hard, "hard", "etc/config")
            .expect("hardlink");
        builder.into_inner().expect("finish")
    }

    #[test]
    fn imports_plain_gzip_and_zstd() {
        let (_dir, store) = open_store();
        let plain = rich_tar();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&plain).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let zst = zstd::encode_all(&plain[..], 3).expect("zstd");
        let mut ids = Vec::new();
        for (name, bytes) in [("plain", &plain), ("gzip", &gz), ("zstd", &zst)] {
            let tag = format!("imp:{name}");
            let record =
                import(&store, bytes, Some(&tag), &[r#"CMD ["sh"]"#, "ENV A=1"]).expect(name);
            assert_eq!(record.repo_tags, std::slice::from_ref(&tag));
            assert_eq!(record.size, 6, "{name}");
            // The diff id is the digest of the uncompressed stream, whatever the transport.
            assert_eq!(
                record.config.diff_ids(),
                [crate::content::sha256_digest(&plain)],
                "{name}"
            );
            let run = record.config.config.as_ref().expect("config");
            assert_eq!(run.cmd.as_deref(), Some(&["sh".to_owned()][..]));
            assert_eq!(run.env.as_deref(), Some(&["A=1".to_owned()][..]));
            assert_eq!(record.config.comment(), Some("Imported from -"));
            assert_eq!(
                record.config.other["history"][0]["comment"],
                "Imported from -"
            );
            let dirs = store.prepare_rootfs(name, &record.id).expect("prepare");
            let layer = &dirs.lowerdirs[0];
            assert_eq!(
                fs::read(layer.join("etc/config")).expect("file"),
                b"value\n"
            );
            let meta = fs::metadata(layer.join("etc/config")).expect("stat");
            assert_eq!((meta.mode() & 0o7777, meta.mtime()), (0o640, 1_500_000_000));
            assert_eq!(
                fs::read_link(layer.join("etc/link")).expect("link"),
                Path::new("config")
            );
            assert_eq!(
                fs::metadata(layer.join("hard")).expect("stat").ino(),
                meta.ino()
            );
            ids.push((record.id, dirs.lowerdirs));
        }
        // One snapshot shared by the three images.
        assert!(ids.windows(2).all(|pair| pair[0].1 == pair[1].1));
        let message = store
            .import(&mut &plain[..], None, &[], Some("hello"))
            .expect("import with message");
        assert_eq!(message.config.comment(), Some("hello"));
        assert!(message.repo_tags.is_empty());
    }

    #[test]
    fn refused_imports_leave_nothing_behind() {
        let (dir, store) = open_store();
        let root = dir.path().join("image");
        let before = disk_state(&root);

        let mut escape = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..4].copy_from_slice(b"../x");
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(1);
        header.set_mode(0o644);
        header.set_cksum();
        escape.append(&header, &b"x"[..]).expect("append");
        let escape = escape.into_inner().expect("finish");

        let mut through_symlink = tar::Builder::new(Vec::new());
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        through_symlink
            .append_link(&mut link, "link", "/")
            .expect("symlink");
        let mut file = tar::Header::new_gnu();
        file.set_size(1);
        file.set_mode(0o644);
        file.set_entry_type(tar::EntryType::Regular);
        through_symlink
            .append_data(&mut file, "link/etc/x", &b"x"[..])
            .expect("file");
        let through_symlink = through_symlink.into_inner().expect("finish");

        let mut hardlink = tar::Builder::new(Vec::new());
        let mut hard = tar::Header::new_gnu();
        hard.set_entry_type(tar::EntryType::Link);
        hard.set_size(0);
        hardlink
            .append_link(&mut hard, "passwd", "/etc/passwd")
            .expect("hardlink");
        let hardlink = hardlink.into_inner().expect("finish");

        let mut big = tar_of(&[("a", &[1u8; 5000][..]), ("b", b"b")]);
        big.truncate(2048);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar_of(&[("a", &[1u8; 50_000][..])]))
            .expect("gzip");
        let mut truncated_gz = gz.finish().expect("gzip");
        truncated_gz.truncate(truncated_gz.len() / 2);

        let good = tar_of(&[("ok", b"ok")]);
        type Case<'a> = (&'a str, Vec<u8>, Option<&'a str>, Vec<&'a str>);
        let cases: Vec<Case<'_>> = vec![
            ("dotdot", escape, Some("x:1"), vec![]),
            ("symlink escape", through_symlink, Some("x:1"), vec![]),
            ("hardlink to /etc/passwd", hardlink, Some("x:1"), vec![]),
            ("truncated", big, Some("x:1"), vec![]),
            ("truncated gzip", truncated_gz, Some("x:1"), vec![]),
            ("bad change", good.clone(), Some("x:1"), vec!["RUN echo"]),
            ("bad reference", good.clone(), Some("Upper:1"), vec![]),
            (
                "digest reference",
                good,
                Some("x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
                vec![],
            ),
        ];
        for (name, bytes, tag, changes) in cases {
            let err = import(&store, &bytes, tag, &changes).expect_err(name);
            assert_eq!(err.kind().http_status(), 400, "{name}: {err}");
            assert_eq!(disk_state(&root), before, "{name} left something behind");
            assert!(store.list().is_empty(), "{name}");
        }
        assert!(!Path::new("/etc/x").exists());
        let err = import(&store, b"", None, &["RUN x"]).expect_err("run");
        assert_eq!(err.to_string(), "run is not a valid change command");
    }

    #[test]
    fn resolves_by_name_id_and_prefix() {
        let (_dir, store) = open_store();
        let record = import(
            &store,
            &tar_of(&[("f", b"1")]),
            Some("localhost:5000/app:v1"),
            &[],
        )
        .expect("import");
        let hex = &record.id["sha256:".len()..];
        for reference in [
            "localhost:5000/app:v1",
            record.id.as_str(),
            hex,
            &hex[..12],
            &format!("sha256:{}", &hex[..5]),
        ] {
            assert_eq!(
                store.resolve(reference).expect(reference).id,
                record.id,
                "{reference}"
            );
        }
        assert_eq!(record.repo_tags, ["localhost:5000/app:v1"]);
        store.tag(&record.id, "busybox").expect("tag");
        for reference in [
            "busybox",
            "busybox:latest",
            "library/busybox",
            "docker.io/library/busybox:latest",
        ] {
            assert_eq!(
                store.resolve(reference).expect(reference).id,
                record.id,
                "{reference}"
            );
        }
        let err = store.resolve("nosuchimage").expect_err("missing");
        assert_eq!(err.to_string(), "No such image: nosuchimage:latest");
        assert_eq!(err.kind().http_status(), 404);
        assert_eq!(
            store
                .resolve("abcdef12")
                .expect_err("missing")
                .kind()
                .http_status(),
            404
        );
        let err = store.resolve("Foo").expect_err("invalid");
        assert_eq!(
            err.to_string(),
            "invalid reference format: repository name (library/Foo) must be lowercase"
        );
        assert_eq!(err.kind().http_status(), 400);

        // Make images until two ids share a first hex digit: that prefix is ambiguous.
        let mut seen: HashMap<char, String> = HashMap::new();
        seen.insert(hex.chars().next().expect("hex"), record.id.clone());
        for i in 0..64 {
            let other = import(
                &store,
                &tar_of(&[("f", format!("{i}").as_bytes())]),
                None,
                &[],
            )
            .expect("import");
            let first = other.id["sha256:".len()..].chars().next().expect("hex");
            if let Some(previous) = seen.insert(first, other.id.clone()) {
                let err = store.resolve(&first.to_string()).expect_err("ambiguous");
                assert!(
                    matches!(err, ImageError::AmbiguousReference { .. }),
                    "{err}"
                );
                // A longer prefix still tells them apart.
                assert_eq!(
                    store.resolve(&other.id[7..20]).expect("unique").id,
                    other.id
                );
                assert_eq!(
                    store.resolve(&previous[7..20]).expect("unique").id,
                    previous
                );
                return;
            }
        }
        panic!("17 distinct first digits cannot exist");
    }

    #[test]
    fn rmi_untags_then_deletes_with_layer_refcounts() {
        let (dir, store) = open_store();
        let root = dir.path().join("image");
        let tar = tar_of(&[("shared", b"layer")]);
        let a = import(&store, &tar, Some("a:1"), &["USER a"]).expect("import a");
        let b = import(&store, &tar, Some("b:1"), &["USER b"]).expect("import b");
        assert_ne!(a.id, b.id);
        let chain = a.config.diff_ids()[0].clone();
        store.tag("a:1", "a:2").expect("tag");
        assert_eq!(
            store.resolve("a:2").expect("tagged").repo_tags,
            ["a:1", "a:2"]
        );

        let err = store
            .remove(&a.id, false, &nobody_uses)
            .expect_err("two tags");
        assert_eq!(
            err.to_string(),
            format!(
                "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                &a.id[7..19]
            )
        );
        assert_eq!(err.kind().http_status(), 409);
        assert_eq!(
            store.remove("a:1", false, &nobody_uses).expect("untag"),
            [Deleted::Untagged("a:1".into())]
        );
        assert_eq!(
            store.resolve(&a.id).expect("still there").repo_tags,
            ["a:2"]
        );
        let removed = store.remove("a:2", false, &nobody_uses).expect("delete");
        assert_eq!(
            removed,
            [
                Deleted::Untagged("a:2".into()),
                Deleted::Deleted(a.id.clone())
            ]
        );
        assert!(
            root.join("layers").join(&chain[7..]).is_dir(),
            "layer still used by b"
        );
        assert!(
            root.join("blobs/sha256").join(&chain[7..]).is_file(),
            "layer blob still used by b"
        );
        assert!(
            !root.join("blobs/sha256").join(&a.id[7..]).exists(),
            "config blob deleted"
        );

        store.tag("b:1", "other/repo:x").expect("tag");
        let removed = store
            .remove(&b.id, true, &nobody_uses)
            .expect("forced delete by id");
        assert_eq!(
            removed,
            [
                Deleted::Untagged("b:1".into()),
                Deleted::Untagged("other/repo:x".into()),
                Deleted::Deleted(b.id.clone()),
                Deleted::Deleted(chain.clone()),
            ]
        );
        let (blobs, layers, images, repositories) = disk_state(&root);
        assert!(
            blobs.is_empty() && layers.is_empty() && images.is_empty(),
            "{blobs:?} {layers:?} {images:?}"
        );
        assert!(!repositories.contains("sha256"));
        assert_eq!(
            store
                .remove("b:1", false, &nobody_uses)
                .expect_err("gone")
                .to_string(),
            "No such image: b:1"
        );
    }

    #[test]
    fn rmi_conflicts_with_containers() {
        let (_dir, store) = open_store();
        let image = import(&store, &tar_of(&[("f", b"x")]), Some("busybox"), &[]).expect("import");
        let container = "c0ffee".repeat(10) + "abcd";
        let stopped = |_: &str| Some((container.clone(), false));
        let running = |_: &str| Some((container.clone(), true));

        let err = store
            .remove("busybox", false, &stopped)
            .expect_err("in use");
        assert_eq!(
            err.to_string(),
            format!(
                "conflict: unable to remove repository reference \"busybox\" (must force) - container c0ffeec0ffee is using its referenced image {}",
                &image.id[7..19]
            )
        );
        let err = store
            .remove(&image.id, false, &stopped)
            .expect_err("in use");
        assert_eq!(
            err.to_string(),
            format!(
                "conflict: unable to delete {} (must be forced) - image is being used by stopped container c0ffeec0ffee",
                &image.id[7..19]
            )
        );
        let err = store
            .remove(&image.id, true, &running)
            .expect_err("running");
        assert_eq!(
            err.to_string(),
            format!(
                "conflict: unable to delete {} (cannot be forced) - image is being used by running container c0ffeec0ffee",
                &image.id[7..19]
            )
        );
        assert_eq!(store.resolve("busybox").expect("unchanged").id, image.id);

        // By name with force: untagged, but a running container keeps the image (dangling).
        assert_eq!(
            store.remove("busybox", true, &running).expect("untag"),
            [Deleted::Untagged("busybox:latest".into())]
        );
        assert!(store.resolve(&image.id).expect("kept").repo_tags.is_empty());
        // Once the container stops, force deletes it.
        let removed = store
            .remove(&image.id[7..15], true, &stopped)
            .expect("forced");
        assert_eq!(removed[0], Deleted::Deleted(image.id.clone()));
    }

    #[test]
    fn a_held_or_used_image_is_only_untagged_even_when_forced() {
        let (_dir, store) = open_store();
        let store = Arc::new(store);
        let image = import(&store, &tar_of(&[("f", b"x")]), Some("held"), &[]).expect("import");
        let nobody = |_: &str| None;
        let hold = store.hold("held").expect("hold");
        assert_eq!(hold.record().id, image.id);
        assert_eq!(
            store.remove("held", true, &nobody).expect("untag"),
            [Deleted::Untagged("held:latest".into())]
        );
        assert!(
            store
                .remove(&image.id, true, &nobody)
                .expect("kept")
                .is_empty()
        );
        // The create makes its container's root from it: the root keeps its layers, and the
        // image may go once the hold is released.
        let container = "c0ffee".repeat(10) + "abcd";
        let dirs = store.prepare_rootfs(&container, &image.id).expect("rootfs");
        drop(hold);
        let removed = store.remove(&image.id, true, &nobody).expect("deleted");
        assert_eq!(removed[0], Deleted::Deleted(image.id.clone()));
        assert_eq!(store.rootfs(&container, &image.id).expect("root"), dirs);
        assert!(dirs.lowerdirs[0].is_dir());
        assert!(matches!(
            store.hold("held"),
            Err(ImageError::NotFound { .. })
        ));
    }

    #[test]
    fn rootfs_lifecycle_keeps_layers_while_used() {
        let (dir, store) = open_store();
        let root = dir.path().join("image");
        let image = import(&store, &tar_of(&[("f", b"x")]), Some("img"), &[]).expect("import");
        let chain_hex = image.config.diff_ids()[0][7..].to_owned();
        let dirs = store.prepare_rootfs("ctr1", "img").expect("prepare");
        assert_eq!(
            dirs.lowerdirs,
            [root.join("layers").join(&chain_hex).join("diff")]
        );
        assert_eq!(dirs.upperdir, root.join("containers/ctr1/diff"));
        assert_eq!(dirs.workdir, root.join("containers/ctr1/work"));
        for path in [&dirs.upperdir, &dirs.workdir] {
            let meta = fs::metadata(path).expect("created");
            assert!(meta.is_dir());
            assert_eq!(meta.mode() & 0o777, 0o755);
        }
        assert_eq!(store.rootfs("ctr1", &image.id).expect("rootfs"), dirs);
        assert!(matches!(
            store.rootfs("ctr2", &image.id),
            Err(ImageError::RootfsNotFound { .. })
        ));
        assert!(matches!(
            store.prepare_rootfs("../evil", &image.id),
            Err(ImageError::InvalidContainerId { .. })
        ));
        assert!(matches!(
            store.prepare_rootfs("ctr2", "nosuch"),
            Err(ImageError::NotFound { .. })
        ));

        // Force-removing the image (its container is stopped) keeps the container's layers.
        let removed = store
            .remove("img", true, &|_| Some(("ctr1".into(), false)))
            .expect("forced");
        assert_eq!(
            removed,
            [
                Deleted::Untagged("img:latest".into()),
                Deleted::Deleted(image.id.clone())
            ]
        );
        assert!(dirs.lowerdirs[0].is_dir());
        fs::write(dirs.upperdir.join("written"), b"by the container").expect("write");
        // A daemon restart still knows the container's root.
        drop(store);
        let store = ImageStore::open(&root).expect("reopen");
        assert_eq!(
            store
                .rootfs("ctr1", &image.id)
                .expect("rootfs after reopen"),
            dirs
        );
        assert!(
            dirs.lowerdirs[0].is_dir(),
            "orphan scan keeps layers containers use"
        );

        store.remove_rootfs("ctr1").expect("remove");
        assert!(!root.join("containers/ctr1").exists());
        assert!(!dirs.lowerdirs[0].exists(), "last user gone, layer removed");
        store.remove_rootfs("ctr1").expect("idempotent");
        let (_, layers, _, _) = disk_state(&root);
        assert!(layers.is_empty());
    }

    #[test]
    fn reopen_rebuilds_index_and_survives_crashes() {
        let (dir, store) = open_store();
        let root = dir.path().join("image");
        let image = import(&store, &tar_of(&[("f", b"x")]), Some("keep:1"), &[]).expect("import");
        drop(store);
        let repositories = fs::read(root.join("repositories.json")).expect("repositories");

        // A crash between writing the temp file and the rename, a crash in the middle of a
        // delete (trash), of an ingest, and of an import before its image was recorded.
        fs::write(
            root.join(".repositories.json.tmp-0123"),
            b"{\"Repositories\":{}} torn",
        )
        .expect("temp");
        fs::create_dir_all(root.join("trash/half-deleted/sub")).expect("trash");
        fs::write(root.join("ingest/blob-partial"), b"partial").expect("ingest");
        let orphan_layer = root.join("layers").join("ab".repeat(32));
        fs::create_dir_all(orphan_layer.join("diff")).expect("orphan layer");
        let orphan_blob = root.join("blobs/sha256").join("cd".repeat(32));
        fs::write(&orphan_blob, b"orphan").expect("orphan blob");

        let started = Instant::now();
        let store = ImageStore::open(&root).expect("reopen");
        println!("open took {:?}", started.elapsed());
        assert_eq!(store.resolve("keep:1").expect("tag survives").id, image.id);
        assert_eq!(store.list().len(), 1);
        assert_eq!(store.list()[0].size, 1);
        assert_eq!(
            fs::read(root.join("repositories.json")).expect("repositories"),
            repositories,
            "old state kept"
        );
        assert!(!root.join(".repositories.json.tmp-0123").exists());
        assert!(!orphan_layer.exists() && !orphan_blob.exists());
        let _ = disk_state(&root); // ingest and trash are empty
        drop(store);

        fs::write(root.join("version"), "99\n").expect("version");
        let err = ImageStore::open(&root).expect_err("newer schema");
        assert!(matches!(err, ImageError::UnsupportedSchema { .. }), "{err}");
    }
}
