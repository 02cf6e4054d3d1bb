//! The build cache as `system df` shows it and as `builder prune` removes it.
//!
//! A record is *shared* when its image is still needed by something else than the cache: a
//! tag, an image built on it that is tagged, or a container. Shared records take no space of
//! their own; the others are what `builder prune` reclaims (with `--all`, every record goes,
//! and the images nothing else needs with them). `keep-storage` keeps the most recently used
//! records up to that many bytes.
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use berth_api::filters::Filters;

use super::error::BuildError;
use super::{Builder, cache::CacheRecord};

/// One record of the cache, in Docker's `BuildCache` shape.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CacheUsage {
    /// The record's key (hex).
    #[serde(rename = "ID")]
    pub id: String,
    /// The key of the record its image's parent came from, if any.
    pub parent: String,
    /// Same, as a list (API ≥ 1.42).
    pub parents: Vec<String>,
    /// Always `regular`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The step.
    pub description: String,
    /// Being used by a build right now (never, between builds).
    pub in_use: bool,
    /// Needed by an image or container besides the cache.
    pub shared: bool,
    /// Bytes of the step's layer.
    pub size: u64,
    /// When it was made.
    pub created_at: String,
    /// When a build last used it.
    pub last_used_at: String,
    /// How many builds made or used it.
    pub usage_count: u64,
}

/// `POST /build/prune`.
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// `all`: shared records too.
    pub all: bool,
    /// `keep-storage`: bytes of cache to keep.
    pub keep_storage: u64,
    /// `filters`: `until`, `id`, `description`, `type`, `shared`, `private`, `inuse`, `parent`.
    pub filters: Filters,
}

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PruneReport {
    /// Keys of the records removed.
    pub caches_deleted: Vec<String>,
    /// Bytes freed.
    pub space_reclaimed: u64,
}

/// Images needed besides the cache: tagged ones, their ancestors, and the ancestors of what
/// containers use.
fn needed(
    images: &berth_image::ImageStore,
    users: &HashMap<String, (String, bool)>,
) -> HashSet<String> {
    let all = images.list();
    let by_id: HashMap<&str, &berth_image::ImageRecord> =
        all.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut out = HashSet::new();
    let roots = all
        .iter()
        .filter(|r| !r.repo_tags.is_empty() || users.contains_key(&r.id))
        .map(|r| r.id.clone());
    for root in roots {
        let mut next = Some(root);
        while let Some(id) = next {
            if !out.insert(id.clone()) {
                break;
            }
            next = by_id.get(id.as_str()).and_then(|r| r.parent.clone());
        }
    }
    out
}

fn usage_of(
    records: &[(String, CacheRecord)],
    needed: &HashSet<String>,
    exists: impl Fn(&str) -> bool,
) -> Vec<CacheUsage> {
    let by_image: HashMap<&str, &str> = records
        .iter()
        .map(|(k, r)| (r.image.as_str(), k.as_str()))
        .collect();
    records
        .iter()
        .filter(|(_, r)| exists(&r.image))
        .map(|(key, r)| {
            let parent = r
                .parent
                .as_deref()
                .and_then(|p| by_image.get(p))
                .map(|k| (*k).to_owned())
                .unwrap_or_default();
            CacheUsage {
                id: key.clone(),
                parents: if parent.is_empty() {
                    Vec::new()
                } else {
                    vec![parent.clone()]
                },
                parent,
                kind: "regular".into(),
                description: r.description.clone(),
                in_use: false,
                shared: needed.contains(&r.image),
                size: r.size,
                created_at: r.created.clone(),
                last_used_at: r.last_used.clone(),
                usage_count: r.usage_count,
            }
        })
        .collect()
}

fn matches(filters: &Filters, u: &CacheUsage, until: Option<berth_api::time::Timestamp>) -> bool {
    let time = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp())
            .unwrap_or(0)
    };
    filters.keys().all(|key| match key {
        "until" => until.is_none_or(|t| time(&u.last_used_at) < t.secs),
        "id" => filters.any(key, |v| u.id.starts_with(v)),
        "parent" => filters.any(key, |v| u.parent.starts_with(v)),
        "description" => filters.any(key, |v| u.description.contains(v)),
        "type" => filters.any(key, |v| v == "regular"),
        "inuse" => false,
        "shared" => u.shared,
        "private" => !u.shared,
        _ => false,
    })
}

impl Builder {
    /// The cache, for `system df`.
    pub async fn usage(self: &Arc<Self>) -> Result<Vec<CacheUsage>, BuildError> {
        let users = self.containers.image_users().await;
        let me = Arc::clone(self);
        berth_fs::blocking(move || {
            let needed = needed(&me.images, &users);
            let records = me.cache.records();
            let gone: Vec<String> = records
                .iter()
                .filter(|(_, r)| !me.images.exists(&r.image))
                .map(|(k, _)| k.clone())
                .collect();
            if !gone.is_empty() {
                me.cache.remove(&gone);
                me.cache.save()?;
            }
            Ok(usage_of(&records, &needed, |i| me.images.exists(i)))
        })
        .await?
    }

    /// `POST /build/prune`: removes records (and the images only they kept).
    pub async fn prune(self: &Arc<Self>, options: PruneOptions) -> Result<PruneReport, BuildError> {
        options
            .filters
            .validate(&[
                "until",
                "id",
                "parent",
                "description",
                "type",
                "inuse",
                "shared",
                "private",
            ])
            .map_err(|e| BuildError::invalid(e.to_string()))?;
        let until = options
            .filters
            .until(SystemTime::now())
            .map_err(|e| BuildError::invalid(e.to_string()))?;
        let users = self.containers.image_users().await;
        let me = Arc::clone(self);
        berth_fs::blocking(move || {
            let needed = needed(&me.images, &users);
            let records = me.cache.records();
            let mut usage = usage_of(&records, &needed, |i| me.images.exists(i));
            // Least recently used first.
            usage.sort_by(|a, b| a.last_used_at.cmp(&b.last_used_at));
            let mut total: u64 = usage.iter().filter(|u| !u.shared).map(|u| u.size).sum();
            let mut remove = Vec::new();
            for u in &usage {
                if options.keep_storage > 0 && total <= options.keep_storage {
                    break;
                }
                if (u.shared && !options.all) || !matches(&options.filters, u, until) {
                    continue;
                }
                if !u.shared {
                    total = total.saturating_sub(u.size);
                }
                remove.push(u.clone());
            }
            let image_of: HashMap<&str, &str> = records
                .iter()
                .map(|(k, r)| (k.as_str(), r.image.as_str()))
                .collect();
            let keys: Vec<String> = remove.iter().map(|u| u.id.clone()).collect();
            me.cache.remove(&keys);
            // Images nothing needs any more, children before parents (a parent with a child
            // left is refused, and tried again once the child is gone).
            let in_use = |id: &str| users.get(id).cloned();
            let mut pending: Vec<&CacheUsage> = remove.iter().filter(|u| !u.shared).collect();
            let mut reclaimed = 0;
            loop {
                let before = pending.len();
                pending.retain(|u| {
                    let Some(image) = image_of.get(u.id.as_str()) else {
                        return false;
                    };
                    match me.images.remove_with(image, false, false, &in_use) {
                        Ok(_) => {
                            reclaimed += u.size;
                            false
                        }
                        Err(_) => true,
                    }
                });
                if pending.is_empty() || pending.len() == before {
                    break;
                }
            }
            me.cache.save()?;
            Ok(PruneReport {
                caches_deleted: keys,
                space_reclaimed: reclaimed,
            })
        })
        .await?
    }
}
