//! `GET /v1/search?q=&n=&page=`: the v1 index search Docker's `search` speaks, over the
//! registry's own repositories (a private registry of distribution has none).
//!
//! A repository matches when the query is part of its name or description (case ignored;
//! an empty query matches all). Its description is the `org.opencontainers.image.description`
//! annotation of its `latest` (else first) tag's manifest, or that label of its image
//! config; for an index, of its `linux/amd64` (else first) manifest. Descriptions are
//! remembered by manifest digest.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;

use super::{AppState, blocking, json};
use crate::protocol::manifest::ParsedManifest;
use crate::protocol::pagination::PageSizeError;
use crate::protocol::search::{SearchResult, SearchResults};
use crate::protocol::{Digest, RepositoryName, Tag};
use crate::server::error::RegistryError;
use crate::server::storage::Store;

/// The annotation and label a description is read from.
pub const DESCRIPTION_KEY: &str = "org.opencontainers.image.description";
const DEFAULT_PAGE_SIZE: usize = 25;
const MAX_PAGE_SIZE: usize = 100;
/// Largest config read for a description.
const CONFIG_LIMIT: u64 = 1024 * 1024;
/// Descriptions remembered before the cache is emptied.
const CACHE_LIMIT: usize = 4096;

pub(super) async fn search(
    state: &Arc<AppState>,
    query: &HashMap<String, String>,
) -> Result<Response, RegistryError> {
    let number = |key: &str, default: usize| -> Result<usize, RegistryError> {
        match query.get(key).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(value) => value.parse().map_err(|_| RegistryError::PageSize {
                source: PageSizeError {
                    value: value.clone(),
                },
            }),
        }
    };
    let page_size = number("n", DEFAULT_PAGE_SIZE)?.clamp(1, MAX_PAGE_SIZE);
    let page = number("page", 1)?.max(1);
    let term = query.get("q").cloned().unwrap_or_default();
    let needle = term.to_lowercase();
    let state = state.clone();
    let matches = blocking("search", move || {
        let mut matches = Vec::new();
        for name in state.store.repositories()? {
            let description = description(&state, &name).unwrap_or_default();
            if needle.is_empty()
                || name.as_str().contains(&needle)
                || description.to_lowercase().contains(&needle)
            {
                matches.push(SearchResult {
                    name: name.to_string(),
                    description,
                    star_count: 0,
                    is_official: false,
                    is_automated: false,
                });
            }
        }
        Ok(matches)
    })
    .await?;
    let num_results = matches.len();
    let results = matches
        .into_iter()
        .skip((page - 1).saturating_mul(page_size))
        .take(page_size)
        .collect();
    Ok(json(
        StatusCode::OK,
        &SearchResults {
            num_results,
            query: term,
            results,
            page,
            num_pages: num_results.div_ceil(page_size),
            page_size,
        },
    ))
}

/// The description of a repository (see the module documentation); `None` when it has none
/// or it cannot be read.
fn description(state: &AppState, name: &RepositoryName) -> Option<String> {
    let store = &state.store;
    let tags = store.tags(name).ok()??;
    let tag = tags
        .iter()
        .find(|t| *t == "latest")
        .or_else(|| tags.first())?;
    let digest = store.resolve_tag(name, &Tag::parse(tag).ok()?).ok()??;
    if let Some(known) = state
        .descriptions
        .lock()
        .expect("descriptions lock")
        .get(&digest)
    {
        return Some(known.clone());
    }
    let found = describe(store, name, &digest, 0).unwrap_or_default();
    let mut cache = state.descriptions.lock().expect("descriptions lock");
    if cache.len() >= CACHE_LIMIT {
        cache.clear();
    }
    cache.insert(digest, found.clone());
    Some(found)
}

fn describe(store: &Store, name: &RepositoryName, digest: &Digest, depth: u8) -> Option<String> {
    let stored = store.manifest(name, digest).ok()??;
    let parsed = ParsedManifest::parse(Some(&stored.media_type), &stored.bytes).ok()?;
    if let Some(description) = parsed.artifact.annotations.get(DESCRIPTION_KEY) {
        return Some(description.clone());
    }
    if parsed.kind.is_index() {
        if depth > 0 {
            return None;
        }
        let child = parsed
            .manifests
            .iter()
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
            })
            .or_else(|| parsed.manifests.first())?;
        return describe(store, name, &Digest::parse(&child.digest).ok()?, depth + 1);
    }
    let config = Digest::parse(&parsed.config?.digest).ok()?;
    let bytes = store.read_blob(name, &config, CONFIG_LIMIT).ok()??;
    let config: berth_image::ImageConfig = serde_json::from_slice(&bytes).ok()?;
    config.config?.labels?.get(DESCRIPTION_KEY).cloned()
}
