//! Garbage collection: `berth registry gc` removes the blobs no manifest references (and,
//! with `--delete-untagged`, the manifests no tag reaches, as distribution's
//! `garbage-collect -m`).
//!
//! Mark: every manifest of every repository is kept, or with `delete_untagged` only those a
//! tag reaches, through index entries and through referrers of kept manifests (so signatures
//! and SBOMs stay with their image); each kept manifest marks itself, its config and layers.
//! Sweep: every blob not marked and not touched within the grace period is removed, and the
//! repository links to it with it. The whole run holds `gc.lock` exclusively (see the module
//! above), so no commit of a running server interleaves with it.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{Store, StoredManifest, list_dir, remove_file};
use crate::protocol::manifest::ParsedManifest;
use crate::protocol::{Digest, RepositoryName};
use crate::server::error::RegistryError;

/// What a collection may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcOptions {
    /// Report only; remove nothing.
    pub dry_run: bool,
    /// Also remove manifests no tag reaches.
    pub delete_untagged: bool,
    /// Blobs and manifests modified more recently than this are kept.
    pub grace: Duration,
}

/// What a collection removed (or, dry, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs referenced by a kept manifest.
    pub blobs_marked: usize,
    /// Unreferenced blobs kept because they are younger than the grace period.
    pub blobs_young: usize,
    /// Blobs removed, with their sizes.
    pub blobs_removed: Vec<(Digest, u64)>,
    /// Manifests removed from repositories.
    pub manifests_removed: Vec<(RepositoryName, Digest)>,
}

impl GcReport {
    /// Bytes freed by removing blobs.
    pub fn bytes_freed(&self) -> u64 {
        self.blobs_removed.iter().map(|(_, size)| size).sum()
    }
}

impl Store {
    /// Runs a collection (see the module documentation).
    pub fn collect_garbage(&self, options: &GcOptions) -> Result<GcReport, RegistryError> {
        let lock_path = self.root.join("gc.lock");
        let lock = fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(RegistryError::io("open", &lock_path))?;
        if options.dry_run {
            lock.lock_shared()
        } else {
            lock.lock()
        }
        .map_err(RegistryError::io("lock", &lock_path))?;
        let now = SystemTime::now();
        let young = |path: &Path| -> bool {
            fs::metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() < options.grace)
        };
        let mut report = GcReport::default();
        let mut marked: HashSet<Digest> = HashSet::new();
        let repositories = self.repositories()?;
        for name in &repositories {
            let revisions = self.revisions(name)?;
            let mut manifests: HashMap<Digest, (StoredManifest, ParsedManifest)> = HashMap::new();
            for digest in &revisions {
                let Some(stored) = self.manifest(name, digest)? else {
                    continue;
                };
                let parsed = ParsedManifest::parse(Some(&stored.media_type), &stored.bytes)
                    .map_err(|source| RegistryError::ManifestInvalid { source })?;
                manifests.insert(digest.clone(), (stored, parsed));
            }
            let kept = if options.delete_untagged {
                self.tagged_or_young(name, &manifests, &young)?
            } else {
                manifests.keys().cloned().collect()
            };
            for (digest, (stored, parsed)) in &manifests {
                if kept.contains(digest) {
                    marked.insert(digest.clone());
                    marked.extend(parsed.required_blobs());
                } else {
                    if !options.dry_run {
                        self.remove_revision(name, stored)?;
                    }
                    report
                        .manifests_removed
                        .push((name.clone(), digest.clone()));
                }
            }
        }
        report.blobs_marked = marked.len();
        for hex in list_dir(&self.blobs_dir())? {
            let Ok(digest) = Digest::parse(&format!("sha256:{hex}")) else {
                continue;
            };
            if marked.contains(&digest) {
                continue;
            }
            let path = self.blob_path(&digest);
            if young(&path) {
                report.blobs_young += 1;
                continue;
            }
            let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if !options.dry_run {
                remove_file(&path)?;
            }
            report.blobs_removed.push((digest, size));
        }
        report.blobs_removed.sort();
        report.manifests_removed.sort();
        if !options.dry_run {
            let removed: HashSet<&Digest> = report.blobs_removed.iter().map(|(d, _)| d).collect();
            for name in &repositories {
                for digest in &removed {
                    remove_file(&self.layer_link(name, digest))?;
                }
                self.remove_temp_files(name)?;
            }
        }
        Ok(report)
    }

    /// The manifests of `name` that `--delete-untagged` keeps: tagged ones, ones just put (a
    /// push whose tag is still to come), the children of kept indexes and the referrers of
    /// kept manifests.
    fn tagged_or_young(
        &self,
        name: &RepositoryName,
        manifests: &HashMap<Digest, (StoredManifest, ParsedManifest)>,
        young: &dyn Fn(&Path) -> bool,
    ) -> Result<HashSet<Digest>, RegistryError> {
        let mut kept: HashSet<Digest> = self
            .tag_map(name)?
            .into_values()
            .filter(|d| manifests.contains_key(d))
            .collect();
        kept.extend(
            manifests
                .keys()
                .filter(|d| young(&self.revision_link(name, d)))
                .cloned(),
        );
        loop {
            let before = kept.len();
            for (digest, (_, parsed)) in manifests {
                if kept.contains(digest) {
                    let children = parsed.child_manifests();
                    kept.extend(children.into_iter().filter(|c| manifests.contains_key(c)));
                } else if parsed.subject_digest().is_some_and(|s| kept.contains(&s)) {
                    kept.insert(digest.clone());
                }
            }
            if kept.len() == before {
                return Ok(kept);
            }
        }
    }

    /// Removes temp files a crash left between write and rename in a repository's records.
    fn remove_temp_files(&self, name: &RepositoryName) -> Result<(), RegistryError> {
        let referrers = self
            .repository_dir(name)
            .join(super::REFERRERS)
            .join("sha256");
        let mut dirs = vec![
            self.repository_dir(name).join(super::LAYERS).join("sha256"),
            self.revisions_dir(name),
            self.tags_dir(name),
        ];
        dirs.extend(list_dir(&referrers)?.into_iter().map(|s| referrers.join(s)));
        for dir in dirs {
            for entry in super::list_all(&dir)? {
                if entry.to_string_lossy().starts_with(super::TEMP_PREFIX) {
                    remove_file(&dir.join(entry))?;
                }
            }
        }
        Ok(())
    }
}
