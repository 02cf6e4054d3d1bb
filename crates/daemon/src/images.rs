//! Image endpoints, over the synchronous [`ImageStore`] (every call runs in `spawn_blocking`).
//!
//! Image names in paths are not escaped and contain `/` and `:` (`localhost:5000/a/b:v1`),
//! so `/images/{*rest}` is matched greedily and the action is taken from the suffix
//! (`…/json`, `…/history`, `…/tag`, `…/push`, `…/get`), as moby's router does.
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use berth_api::models::{
    EventMessageTypeEnum, ImageDeleteResponseItem, ImageHistoryResponseItem, ImageSummary,
};
use berth_container::EventBus;
use berth_image::{Deleted, ImageRecord, ImageStore, Reference};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::error::DaemonError;
use crate::query::Params;
use crate::responses::{self, JSON};

/// For each image id used by a container: that container's id, and whether it is running.
pub type ImageUsageMap = HashMap<String, (String, bool)>;

/// Collects [`ImageUsageMap`] from the container service when an image is deleted.
pub type ImageUsage = Arc<dyn Fn() -> BoxFuture<'static, ImageUsageMap> + Send + Sync>;

/// What the image endpoints need.
#[derive(Clone)]
pub struct ImagesState {
    /// The store.
    pub store: Arc<ImageStore>,
    /// Where image events go.
    pub events: EventBus,
    /// Which images containers use (asked before a delete).
    pub usage: ImageUsage,
    /// The busybox to bootstrap from; `None` searches `PATH`, then `/bin/busybox`.
    pub busybox: Option<PathBuf>,
}

impl std::fmt::Debug for ImagesState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImagesState")
            .field("store", &self.store)
            .field("busybox", &self.busybox)
            .finish_non_exhaustive()
    }
}

/// The image routes.
pub fn routes() -> Router<ImagesState> {
    Router::new()
        .route("/images/json", get(list))
        .route("/images/create", post(create))
        .route("/images/prune", post(prune))
        .route("/images/load", post(crate::archive::load))
        .route("/images/get", get(crate::archive::save_many))
        .route("/images/search", get(not_implemented_search))
        .route("/images/{*rest}", get(get_named).post(post_named))
        .route("/images/{*rest}", delete(remove))
        .route("/berth/images/bootstrap", post(bootstrap))
}

/// Runs a store call off the async workers.
pub(crate) async fn blocking<T, F>(store: &Arc<ImageStore>, call: F) -> Result<T, DaemonError>
where
    F: FnOnce(&ImageStore) -> T + Send + 'static,
    T: Send + 'static,
{
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || call(&store))
        .await
        .map_err(|source| DaemonError::Task { source })
}

/// `GET /images/json` shape of a record.
pub fn image_summary(record: &ImageRecord) -> ImageSummary {
    ImageSummary {
        id: record.id.clone(),
        parent_id: record.parent.clone().unwrap_or_default(),
        repo_tags: record.repo_tags.clone(),
        repo_digests: Vec::new(),
        created: record.created,
        size: i64::try_from(record.size).unwrap_or(i64::MAX),
        shared_size: -1,
        labels: labels(record),
        containers: -1,
        manifests: None,
        descriptor: None,
    }
}

fn labels(record: &ImageRecord) -> HashMap<String, String> {
    record
        .config
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default()
}

/// Go's `path.Match` for the patterns `images --filter reference=` uses: `*` does not cross
/// `/`, `?` is one character.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (pattern, text): (Vec<char>, Vec<char>) =
        (pattern.chars().collect(), text.chars().collect());
    fn matches(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != '/')
                .any(|i| matches(rest, &t[i..])),
            Some(('?', rest)) => t.first().is_some_and(|&c| c != '/') && matches(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && matches(rest, &t[1..]),
        }
    }
    matches(&pattern, &text)
}

/// Whether any of the record's names matches a `reference` pattern (with or without tag).
fn reference_matches(record: &ImageRecord, pattern: &str) -> bool {
    record.repo_tags.iter().any(|tagged| {
        let name = tagged.rsplit_once(':').map_or(tagged.as_str(), |(n, tag)| {
            if tag.contains('/') {
                tagged.as_str()
            } else {
                n
            }
        });
        glob_match(pattern, tagged) || glob_match(pattern, name)
    })
}

/// Whether a record passes the `images` filters (`dangling`, `reference`, `label`; `before` and
/// `since` are resolved to creation times by the caller).
fn image_matches(
    record: &ImageRecord,
    filters: &HashMap<String, Vec<String>>,
    before: Option<i64>,
    since: Option<i64>,
) -> bool {
    let dangling = record.repo_tags.is_empty();
    if let Some(values) = filters.get("dangling")
        && !values
            .iter()
            .any(|v| crate::query::parse_bool(v) == dangling)
    {
        return false;
    }
    if let Some(patterns) = filters.get("reference")
        && !patterns.iter().any(|p| reference_matches(record, p))
    {
        return false;
    }
    if let Some(wanted) = filters.get("label") {
        let labels = labels(record);
        // Every label filter must hold.
        let all = wanted.iter().all(|w| match w.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
            None => labels.contains_key(w),
        });
        if !all {
            return false;
        }
    }
    before.is_none_or(|b| record.created < b) && since.is_none_or(|s| record.created > s)
}

/// Refuses filter keys outside `accepted`, as Docker does (`invalid filter 'bogus'`).
fn check_filter_keys(
    filters: &HashMap<String, Vec<String>>,
    accepted: &[&str],
) -> Result<(), DaemonError> {
    match filters.keys().find(|key| !accepted.contains(&key.as_str())) {
        Some(key) => Err(DaemonError::InvalidFilterValue {
            filter: key.clone(),
        }),
        None => Ok(()),
    }
}

async fn list(State(state): State<ImagesState>, params: Params) -> Result<Response, DaemonError> {
    let filters = params.filters()?;
    check_filter_keys(
        &filters,
        &["dangling", "label", "before", "since", "reference", "until"],
    )?;
    let before = filters.get("before").and_then(|v| v.first()).cloned();
    let since = filters.get("since").and_then(|v| v.first()).cloned();
    let until = filters
        .get("until")
        .and_then(|v| v.first())
        .map(|v| parse_until(v, chrono::Utc::now().timestamp()))
        .transpose()?;
    let all = params.flag("all");
    let summaries = blocking(&state.store, move |store| {
        let created = |reference: Option<String>| -> Result<Option<i64>, DaemonError> {
            reference
                .map(|r| store.resolve(&r).map(|record| record.created))
                .transpose()
                .map_err(DaemonError::from)
        };
        let (before, since) = (created(before)?, created(since)?);
        let mut records = store.list();
        records.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        // Without `all`, untagged images that others were committed on are intermediate.
        let parents: std::collections::HashSet<String> =
            records.iter().filter_map(|r| r.parent.clone()).collect();
        Ok::<_, DaemonError>(
            records
                .iter()
                .filter(|r| all || !r.repo_tags.is_empty() || !parents.contains(&r.id))
                .filter(|r| image_matches(r, &filters, before, since))
                .filter(|r| until.is_none_or(|until| r.created < until))
                .map(image_summary)
                .collect::<Vec<_>>(),
        )
    })
    .await??;
    Ok(responses::json(StatusCode::OK, &summaries))
}

/// The `/system/df` body: images (each layer counted once in `LayersSize`, `SharedSize` and
/// `Containers` per image), containers as listed with sizes, and `volumes` as the volume
/// service reports them.
pub fn disk_usage_body(
    usage: &berth_image::DiskUsage,
    containers: &[berth_api::models::ContainerSummary],
    volumes: Vec<Value>,
) -> Value {
    let mut users: HashMap<&str, i64> = HashMap::new();
    for container in containers {
        if let Some(id) = container.image_id.as_deref() {
            *users.entry(id).or_default() += 1;
        }
    }
    let mut images: Vec<(ImageSummary, i64)> = usage
        .images
        .iter()
        .map(|(record, shared)| {
            let mut summary = image_summary(record);
            summary.shared_size = i64::try_from(*shared).unwrap_or(i64::MAX);
            summary.containers = users.get(record.id.as_str()).copied().unwrap_or(0);
            (summary, record.created)
        })
        .collect();
    images.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.id.cmp(&b.0.id)));
    let images: Vec<ImageSummary> = images.into_iter().map(|(summary, _)| summary).collect();
    json!({
        "LayersSize": usage.layers_size,
        "Images": images,
        "Containers": containers,
        "Volumes": volumes,
        "BuildCache": [],
    })
}

/// RFC 3339 time of a record: the config's own string, else from the Unix time.
fn created_rfc3339(record: &ImageRecord) -> String {
    record.config.created.clone().unwrap_or_else(|| {
        chrono::DateTime::from_timestamp(record.created, 0)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    })
}

/// `GET /images/{name}/json` body.
pub fn image_inspect(record: &ImageRecord) -> Value {
    let other = &record.config.other;
    let layers = other
        .get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .cloned()
        .unwrap_or_else(|| json!([]));
    json!({
        "Id": record.id,
        "RepoTags": record.repo_tags,
        "RepoDigests": [],
        "Parent": record.parent.clone().unwrap_or_default(),
        "Comment": other.get("comment").cloned().unwrap_or_else(|| json!("")),
        "Created": created_rfc3339(record),
        "DockerVersion": "",
        "Author": record.config.author.clone().unwrap_or_default(),
        "Config": record.config.config.clone().unwrap_or_default(),
        "Architecture": record.config.architecture,
        "Os": record.config.os,
        "Size": record.size,
        "GraphDriver": { "Name": "overlay2", "Data": {} },
        "RootFS": { "Type": "layers", "Layers": layers },
        "Metadata": { "LastTagTime": "0001-01-01T00:00:00Z" },
    })
}

/// `GET /images/{name}/history` body, newest first.
pub fn image_history(record: &ImageRecord, layer_sizes: &[u64]) -> Vec<ImageHistoryResponseItem> {
    let entries = record
        .config
        .other
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let created_at = |entry: &Value| {
        entry
            .get("created")
            .and_then(Value::as_str)
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map_or(record.created, |t| t.timestamp())
    };
    let text = |entry: &Value, key: &str| {
        entry
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let is_layer = |entry: &Value| {
        !entry
            .get("empty_layer")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    // Entries that made a layer take the layers' sizes, bottom first.
    let size = i64::try_from(record.size).unwrap_or(i64::MAX);
    let mut sizes = layer_sizes.iter();
    let mut items: Vec<_> = entries
        .iter()
        .map(|entry| ImageHistoryResponseItem {
            id: "<missing>".into(),
            created: created_at(entry),
            created_by: text(entry, "created_by"),
            tags: Vec::new(),
            size: if is_layer(entry) {
                sizes
                    .next()
                    .map_or(0, |s| i64::try_from(*s).unwrap_or(i64::MAX))
            } else {
                0
            },
            comment: text(entry, "comment"),
        })
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if items.is_empty() {
        items.push(ImageHistoryResponseItem {
            id: String::new(),
            created: record.created,
            created_by: String::new(),
            tags: Vec::new(),
            size,
            comment: String::new(),
        });
    }
    items[0].id = record.id.clone();
    items[0].tags = record.repo_tags.clone();
    items
}

async fn get_named(
    State(state): State<ImagesState>,
    Path(rest): Path<String>,
) -> Result<Response, DaemonError> {
    if let Some(name) = rest.strip_suffix("/json") {
        let name = name.to_owned();
        let record = blocking(&state.store, move |s| s.resolve(&name)).await??;
        Ok(responses::json(StatusCode::OK, &image_inspect(&record)))
    } else if let Some(name) = rest.strip_suffix("/history") {
        let name = name.to_owned();
        let (record, sizes) = blocking(&state.store, move |s| {
            let record = s.resolve(&name)?;
            let sizes = s.layer_sizes(&record.id)?;
            Ok::<_, DaemonError>((record, sizes))
        })
        .await??;
        Ok(responses::json(
            StatusCode::OK,
            &image_history(&record, &sizes),
        ))
    } else if let Some(name) = rest.strip_suffix("/get") {
        crate::archive::save(&state, vec![name.to_owned()]).await
    } else {
        Err(DaemonError::RouteNotFound)
    }
}

async fn post_named(
    State(state): State<ImagesState>,
    Path(rest): Path<String>,
    params: Params,
) -> Result<Response, DaemonError> {
    if let Some(name) = rest.strip_suffix("/tag") {
        tag(&state, name.to_owned(), &params).await
    } else if rest.ends_with("/push") {
        Err(DaemonError::NotImplemented {
            feature: "POST /images/{name}/push",
        })
    } else {
        Err(DaemonError::RouteNotFound)
    }
}

/// `repo[:tag]`, where `repo` may already carry the tag (`myimp:v2`).
fn tagged_reference(repo: &str, tag: Option<&str>) -> String {
    let last = repo.rsplit('/').next().unwrap_or(repo);
    match tag {
        Some(tag) if !last.contains(':') && !repo.contains('@') => format!("{repo}:{tag}"),
        _ => repo.to_owned(),
    }
}

/// A reference as users write it (`docker.io/library/x` → `x:latest`), as events name images.
fn familiar(reference: &str) -> String {
    Reference::parse(reference).map_or_else(
        |_| reference.to_owned(),
        |parsed| parsed.with_default_tag().familiar(),
    )
}

pub(crate) fn publish(events: &EventBus, action: &str, image_id: &str, name: &str) {
    let name = if name.starts_with("sha256:") {
        name.to_owned()
    } else {
        familiar(name)
    };
    let attributes = HashMap::from([("name".to_owned(), name)]);
    events.publish(EventMessageTypeEnum::IMAGE, action, image_id, attributes);
}

async fn tag(
    state: &ImagesState,
    source: String,
    params: &Params,
) -> Result<Response, DaemonError> {
    let repo = params
        .non_empty("repo")
        .ok_or(DaemonError::MissingParameter { param: "repo" })?;
    let target = tagged_reference(repo, params.non_empty("tag"));
    let target_for_store = target.clone();
    let record = blocking(&state.store, move |store| {
        let record = store.resolve(&source)?;
        store.tag(&source, &target_for_store)?;
        Ok::<_, DaemonError>(record)
    })
    .await??;
    publish(&state.events, "tag", &record.id, &target);
    Ok(StatusCode::CREATED.into_response())
}

async fn remove(
    State(state): State<ImagesState>,
    Path(reference): Path<String>,
    params: Params,
) -> Result<Response, DaemonError> {
    let force = params.flag("force");
    let prune_parents = !params.flag("noprune");
    let usage = (state.usage)().await;
    let (record, deleted) = blocking(&state.store, move |store| {
        let record = store.resolve(&reference)?;
        let in_use = |image_id: &str| usage.get(image_id).cloned();
        let deleted = store.remove_with(&reference, force, prune_parents, &in_use)?;
        Ok::<_, DaemonError>((record, deleted))
    })
    .await??;
    let items: Vec<_> = deleted
        .into_iter()
        .map(|entry| match entry {
            Deleted::Untagged(name) => {
                publish(&state.events, "untag", &record.id, &name);
                ImageDeleteResponseItem {
                    untagged: Some(name),
                    deleted: None,
                }
            }
            Deleted::Deleted(id) => {
                publish(&state.events, "delete", &id, &id);
                ImageDeleteResponseItem {
                    untagged: None,
                    deleted: Some(id),
                }
            }
        })
        .collect();
    Ok(responses::json(StatusCode::OK, &items))
}

/// `POST /images/prune`: removes unused dangling images (all unused with `dangling=false`),
/// older than `until`, matching the `label` / `label!` filters. Untagged parents go with their
/// last child.
async fn prune(State(state): State<ImagesState>, params: Params) -> Result<Response, DaemonError> {
    let filters = params.filters()?;
    check_filter_keys(&filters, &["dangling", "label", "label!", "until"])?;
    let dangling_only = filters
        .get("dangling")
        .is_none_or(|v| v.iter().any(|v| crate::query::parse_bool(v)));
    let until = filters
        .get("until")
        .and_then(|v| v.first())
        .map(|v| parse_until(v, chrono::Utc::now().timestamp()))
        .transpose()?;
    let usage = (state.usage)().await;
    let (deleted, reclaimed) = blocking(&state.store, move |store| {
        let before = store.disk_usage().layers_size;
        let mut deleted = Vec::new();
        let records = store.list();
        let parents: std::collections::HashSet<String> =
            records.iter().filter_map(|r| r.parent.clone()).collect();
        for record in records {
            if usage.contains_key(&record.id)
                || (dangling_only && !record.repo_tags.is_empty())
                || parents.contains(&record.id)
                || until.is_some_and(|until| record.created >= until)
                || !prune_labels_match(&record, &filters)
            {
                continue;
            }
            // Refused removals (a container appeared meanwhile) are skipped, as moby does.
            if let Ok(entries) = store.remove(&record.id, true, &|id| usage.get(id).cloned()) {
                deleted.extend(entries);
            }
        }
        let after = store.disk_usage().layers_size;
        (deleted, before.saturating_sub(after))
    })
    .await?;
    let items: Vec<_> = deleted
        .into_iter()
        .map(|entry| match entry {
            Deleted::Untagged(name) => json!({ "Untagged": name }),
            Deleted::Deleted(id) => {
                publish(&state.events, "delete", &id, &id);
                json!({ "Deleted": id })
            }
        })
        .collect();
    Ok(responses::json(
        StatusCode::OK,
        &json!({ "ImagesDeleted": items, "SpaceReclaimed": reclaimed }),
    ))
}

/// `label=k`, `label=k=v` must all hold; `label!=k`, `label!=k=v` must all not.
fn prune_labels_match(record: &ImageRecord, filters: &HashMap<String, Vec<String>>) -> bool {
    let labels = labels(record);
    let holds = |wanted: &String| match wanted.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(wanted),
    };
    filters.get("label").is_none_or(|w| w.iter().all(holds))
        && filters.get("label!").is_none_or(|w| !w.iter().any(holds))
}

/// An `until` filter: a Go duration before `now` (`24h`, `1h30m`, `90s`), a Unix time, or an
/// RFC 3339 time; as Unix seconds.
fn parse_until(value: &str, now: i64) -> Result<i64, DaemonError> {
    let invalid = || DaemonError::InvalidFilterValue {
        filter: format!("until={value}"),
    };
    if let Ok(seconds) = value.parse::<f64>() {
        return Ok(seconds as i64);
    }
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(time.timestamp());
    }
    let mut total = 0f64;
    let mut number = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push(chars.next().unwrap_or('s'));
        }
        let n: f64 = number.parse().map_err(|_| invalid())?;
        number.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return Err(invalid()),
        };
    }
    if !number.is_empty() || total == 0.0 && value != "0s" {
        return Err(invalid());
    }
    Ok(now - total as i64)
}

/// `POST /images/create`: import from the request body (`fromSrc=-`) or an `http://` URL,
/// answered as a jsonmessage stream (`Importing` progress, then `{"status": <id>}`); pulls are
/// refused plainly until berth has a registry client. What can be refused without reading
/// the archive (reference, changes, URL) is refused with a status before the stream starts.
async fn create(
    State(state): State<ImagesState>,
    params: Params,
    request: Request,
) -> Result<Response, DaemonError> {
    if let Some(image) = params.non_empty("fromImage") {
        return Err(DaemonError::PullUnavailable {
            image: tagged_reference(image, params.non_empty("tag")),
        });
    }
    let source = params
        .non_empty("fromSrc")
        .ok_or(DaemonError::MissingParameter { param: "fromImage" })?
        .to_owned();
    let reference = params
        .non_empty("repo")
        .map(|repo| tagged_reference(repo, params.non_empty("tag")));
    let changes: Vec<String> = params
        .all("changes")
        .into_iter()
        .map(str::to_owned)
        .collect();
    // As Docker: a source without a scheme is an http URL.
    let url = (source != "-").then(|| {
        if source.contains("://") {
            source.clone()
        } else {
            format!("http://{source}")
        }
    });
    let message = params
        .non_empty("message")
        .map(str::to_owned)
        .or_else(|| url.as_ref().map(|_| format!("Imported from {source}")));
    {
        let (reference, changes, url) = (reference.clone(), changes.clone(), url.clone());
        blocking(&state.store, move |store| {
            store.check_import(reference.as_deref(), &changes, url.as_deref())
        })
        .await??;
    }
    let total = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = request
        .into_body()
        .into_data_stream()
        .map(|chunk| chunk.map_err(std::io::Error::other));
    // The bridge blocks on the async body from the blocking thread; it must be made here,
    // inside the runtime.
    let mut body = SyncIoBridge::new(StreamReader::new(body));
    let (sender, receiver) = mpsc::channel::<Bytes>(16);
    let store = Arc::clone(&state.store);
    let events = state.events.clone();
    tokio::task::spawn_blocking(move || {
        let result = (|| {
            let (input, total): (Box<dyn std::io::Read + '_>, Option<u64>) = match &url {
                None => (Box::new(&mut body), total),
                Some(url) => {
                    let download = berth_image::fetch(url)?;
                    let length = download.length;
                    (Box::new(download), length)
                }
            };
            let mut input = ProgressReader::new(input, total, &sender);
            store.import(
                &mut input,
                reference.as_deref(),
                &changes,
                message.as_deref(),
            )
        })();
        let line = match result {
            Ok(record) => {
                publish(
                    &events,
                    "import",
                    &record.id,
                    reference.as_deref().unwrap_or(&record.id),
                );
                json!({ "status": record.id })
            }
            Err(error) => {
                tracing::info!(image_ref = ?reference, "import failed: {error}");
                // Read (and drop) the rest of an upload, so the client gets to read this
                // answer instead of failing to write into a closed connection.
                if url.is_none() {
                    let _ = std::io::copy(
                        &mut std::io::Read::take(&mut body, DRAIN_LIMIT),
                        &mut std::io::sink(),
                    );
                }
                let message = error.to_string();
                json!({ "errorDetail": { "message": message }, "error": message })
            }
        };
        let _ = sender.blocking_send(responses::json_line(&line));
    });
    Ok(responses::streaming(JSON, receiver_stream(receiver)))
}

/// How much of a failed upload is read and dropped before the connection is let go.
const DRAIN_LIMIT: u64 = 4 << 30;

/// Counts what the import reads and reports it as jsonmessage progress, at most every
/// quarter second.
struct ProgressReader<'a> {
    inner: Box<dyn std::io::Read + 'a>,
    total: Option<u64>,
    current: u64,
    last: std::time::Instant,
    sender: &'a mpsc::Sender<Bytes>,
}

impl<'a> ProgressReader<'a> {
    fn new(
        inner: Box<dyn std::io::Read + 'a>,
        total: Option<u64>,
        sender: &'a mpsc::Sender<Bytes>,
    ) -> Self {
        Self {
            inner,
            total,
            current: 0,
            last: std::time::Instant::now(),
            sender,
        }
    }
}

impl std::io::Read for ProgressReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.current += n as u64;
        if self.last.elapsed() >= std::time::Duration::from_millis(250) {
            self.last = std::time::Instant::now();
            let mut detail = json!({ "current": self.current });
            if let Some(total) = self.total {
                detail["total"] = json!(total);
            }
            let line = json!({ "status": "Importing", "progressDetail": detail, "id": "" });
            // A client that went away stops getting progress; the import goes on.
            let _ = self.sender.try_send(responses::json_line(&line));
        }
        Ok(n)
    }
}

/// The host's busybox: `PATH` first, then `/bin/busybox`.
fn find_busybox() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("busybox"))
        .chain(std::iter::once(PathBuf::from("/bin/busybox")))
        .find(|candidate| candidate.is_file())
}

/// `POST /berth/images/bootstrap?name=busybox&tag=latest`: a JSON-lines progress stream.
async fn bootstrap(
    State(state): State<ImagesState>,
    params: Params,
) -> Result<Response, DaemonError> {
    let name = params.non_empty("name").unwrap_or("busybox").to_owned();
    if name == "debian" {
        return bootstrap_debian(state, &params).await;
    }
    if name != "busybox" {
        return Err(DaemonError::UnknownBootstrap { name });
    }
    let reference = format!("{name}:{}", params.non_empty("tag").unwrap_or("latest"));
    let busybox = state
        .busybox
        .clone()
        .or_else(find_busybox)
        .ok_or(DaemonError::BusyboxNotFound)?;
    let (sender, receiver) = mpsc::channel::<Bytes>(4);
    let first = responses::json_line(&json!({
        "status": format!("Bootstrapping {name} from {}", busybox.display()),
    }));
    tokio::spawn(async move {
        let _ = sender.send(first).await;
        let store_reference = reference.clone();
        let result = blocking(&state.store, move |store| {
            store.bootstrap_busybox(&store_reference, &busybox)
        })
        .await
        .and_then(|r| r.map_err(DaemonError::from));
        let lines = bootstrap_outcome(&state.events, result, &reference);
        for line in lines {
            if sender.send(responses::json_line(&line)).await.is_err() {
                break;
            }
        }
    });
    Ok(responses::streaming(JSON, receiver_stream(receiver)))
}

/// The closing jsonmessage lines of a bootstrap: the tag and the image id, or the error.
fn bootstrap_outcome<E: std::fmt::Display>(
    events: &EventBus,
    result: Result<ImageRecord, E>,
    reference: &str,
) -> Vec<Value> {
    match result {
        Ok(record) => {
            publish(events, "import", &record.id, reference);
            vec![
                json!({ "status": format!("Tagged {reference}") }),
                json!({ "aux": { "ID": record.id } }),
            ]
        }
        Err(error) => {
            let message = error.to_string();
            vec![json!({ "errorDetail": { "message": message }, "error": message })]
        }
    }
}

/// `POST /berth/images/bootstrap?name=debian&tag=<suite>[&mirror=URL]`: debootstrap's output
/// as jsonmessage status lines, then the image id (`aux.ID`), as for busybox.
async fn bootstrap_debian(state: ImagesState, params: &Params) -> Result<Response, DaemonError> {
    let tag = params.non_empty("tag").unwrap_or("latest").to_owned();
    let suite = if tag == "latest" {
        "stable".to_owned()
    } else {
        tag.clone()
    };
    let reference = format!("debian:{tag}");
    let mirror = params.non_empty("mirror").map_or_else(
        || {
            berth_image::default_debian_mirror(std::path::Path::new("/etc/apt"))
                .unwrap_or_else(|| berth_image::FALLBACK_DEBIAN_MIRROR.to_owned())
        },
        str::to_owned,
    );
    let (sender, receiver) = mpsc::channel::<Bytes>(64);
    let first = responses::json_line(&json!({
        "status": format!("Bootstrapping {reference} from {mirror} (debootstrap --variant=minbase {suite})"),
    }));
    let _ = sender.try_send(first);
    let store = Arc::clone(&state.store);
    tokio::task::spawn_blocking(move || {
        let mut progress = |line: &str| {
            let _ = sender.blocking_send(responses::json_line(&json!({ "status": line })));
        };
        let result = store.bootstrap_debian(&reference, &suite, &mirror, &mut progress);
        let lines = bootstrap_outcome(&state.events, result, &reference);
        for line in lines {
            if sender.blocking_send(responses::json_line(&line)).is_err() {
                break;
            }
        }
    });
    Ok(responses::streaming(JSON, receiver_stream(receiver)))
}

/// The messages of `receiver` as a stream, ending when every sender is gone.
pub fn receiver_stream<T: Send + 'static>(
    receiver: mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}

async fn not_implemented_search() -> DaemonError {
    DaemonError::NotImplemented {
        feature: "GET /images/search",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, tags: &[&str], created: i64) -> ImageRecord {
        ImageRecord {
            id: id.into(),
            repo_tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            config: berth_image::ImageConfig::default(),
            size: 100,
            created,
            parent: None,
        }
    }

    #[test]
    fn until_takes_durations_and_times() {
        assert_eq!(parse_until("24h", 100_000).expect("h"), 100_000 - 86_400);
        assert_eq!(parse_until("1h30m", 10_000).expect("hm"), 10_000 - 5_400);
        assert_eq!(parse_until("90s", 100).expect("s"), 10);
        assert_eq!(parse_until("1700000000", 0).expect("unix"), 1_700_000_000);
        assert_eq!(
            parse_until("2023-11-14T22:13:20Z", 0).expect("rfc3339"),
            1_700_000_000
        );
        assert!(parse_until("soon", 0).is_err());
        assert!(parse_until("10", 0).is_ok());
        assert!(parse_until("10x", 0).is_err());
    }

    #[test]
    fn globs_like_go_path_match() {
        assert!(glob_match("busy*", "busybox"));
        assert!(glob_match("busybox:*", "busybox:latest"));
        assert!(glob_match("b?sybox", "busybox"));
        assert!(!glob_match("busy*", "localhost/busybox"));
        assert!(!glob_match("*", "a/b"));
        assert!(glob_match("*/busybox", "localhost/busybox"));
        assert!(!glob_match("alpine", "busybox"));
    }

    #[test]
    fn image_filters() {
        let tagged = record("sha256:a", &["busybox:latest", "localhost:5000/x/y:v2"], 10);
        let dangling = record("sha256:b", &[], 20);
        let f = |json: &str| crate::query::parse_filters(json).expect("filters");
        assert!(image_matches(&tagged, &f("{}"), None, None));
        assert!(image_matches(
            &dangling,
            &f(r#"{"dangling":{"true":true}}"#),
            None,
            None
        ));
        assert!(!image_matches(
            &tagged,
            &f(r#"{"dangling":{"true":true}}"#),
            None,
            None
        ));
        assert!(image_matches(
            &tagged,
            &f(r#"{"dangling":["false"]}"#),
            None,
            None
        ));
        assert!(image_matches(
            &tagged,
            &f(r#"{"reference":{"busy*":true}}"#),
            None,
            None
        ));
        assert!(image_matches(
            &tagged,
            &f(r#"{"reference":["localhost:5000/x/y"]}"#),
            None,
            None
        ));
        assert!(!image_matches(
            &tagged,
            &f(r#"{"reference":["alpine"]}"#),
            None,
            None
        ));
        assert!(!image_matches(
            &dangling,
            &f(r#"{"reference":["busy*"]}"#),
            None,
            None
        ));
        assert!(!image_matches(
            &tagged,
            &f(r#"{"label":["a=b"]}"#),
            None,
            None
        ));
        assert!(image_matches(&tagged, &f("{}"), Some(11), None));
        assert!(!image_matches(&tagged, &f("{}"), Some(10), None));
        assert!(image_matches(&dangling, &f("{}"), None, Some(10)));
        assert!(!image_matches(&tagged, &f("{}"), None, Some(10)));
    }

    #[test]
    fn disk_usage_counts_containers_and_shared_bytes() {
        let usage = berth_image::DiskUsage {
            layers_size: 150,
            images: vec![
                (record("sha256:aa", &["a:1"], 10), 100),
                (record("sha256:bb", &[], 20), 100),
            ],
        };
        let containers = vec![
            berth_api::models::ContainerSummary {
                image_id: Some("sha256:aa".into()),
                ..Default::default()
            },
            berth_api::models::ContainerSummary {
                image_id: Some("sha256:aa".into()),
                ..Default::default()
            },
        ];
        let body = disk_usage_body(&usage, &containers, vec![json!({"Name": "v"})]);
        assert_eq!(body["LayersSize"], 150);
        assert_eq!(body["Images"][0]["Id"], "sha256:bb", "newest first");
        assert_eq!(body["Images"][1]["Containers"], 2);
        assert_eq!(body["Images"][0]["Containers"], 0);
        assert_eq!(body["Images"][1]["SharedSize"], 100);
        assert_eq!(body["Containers"].as_array().map(Vec::len), Some(2));
        assert_eq!(body["Volumes"][0]["Name"], "v");
        assert_eq!(body["BuildCache"], json!([]));
    }

    #[test]
    fn event_names_are_familiar() {
        assert_eq!(familiar("docker.io/library/x"), "x:latest");
        assert_eq!(familiar("docker.io/library/x:y"), "x:y");
        assert_eq!(
            familiar("localhost:5000/team/imp:v2"),
            "localhost:5000/team/imp:v2"
        );
    }

    #[test]
    fn references_with_and_without_tags() {
        assert_eq!(tagged_reference("myimp", Some("v2")), "myimp:v2");
        assert_eq!(tagged_reference("myimp:v2", None), "myimp:v2");
        assert_eq!(tagged_reference("myimp:v2", Some("v3")), "myimp:v2");
        assert_eq!(tagged_reference("myimp", None), "myimp");
        assert_eq!(
            tagged_reference("localhost:5000/busybox", Some("v2")),
            "localhost:5000/busybox:v2"
        );
    }

    #[test]
    fn inspect_and_history_shapes() {
        let mut image = record("sha256:abc", &["busybox:latest"], 1_700_000_000);
        image.config.architecture = "amd64".into();
        image.config.os = "linux".into();
        image.config.other.insert(
            "rootfs".into(),
            json!({ "type": "layers", "diff_ids": ["sha256:l1"] }),
        );
        image.config.other.insert(
            "history".into(),
            json!([
                { "created": "2023-11-14T22:13:20Z", "created_by": "bootstrap" },
                { "created": "2023-11-14T22:13:21Z", "created_by": "CMD [\"sh\"]", "empty_layer": true },
            ]),
        );
        let inspect = image_inspect(&image);
        assert_eq!(inspect["Id"], "sha256:abc");
        assert_eq!(inspect["RepoTags"][0], "busybox:latest");
        assert_eq!(inspect["Created"], "2023-11-14T22:13:20Z");
        assert_eq!(inspect["GraphDriver"]["Name"], "overlay2");
        assert_eq!(inspect["RootFS"]["Type"], "layers");
        assert_eq!(inspect["RootFS"]["Layers"][0], "sha256:l1");
        assert_eq!(inspect["Architecture"], "amd64");
        assert_eq!(inspect["Os"], "linux");
        assert_eq!(inspect["Size"], 100);

        let history = image_history(&image, &[100]);
        assert_eq!(history.len(), 2);
        assert_eq!(history[0].id, "sha256:abc");
        assert_eq!(history[0].created_by, "CMD [\"sh\"]");
        assert_eq!(history[0].size, 0);
        assert_eq!(history[0].tags, vec!["busybox:latest"]);
        assert_eq!(history[1].id, "<missing>");
        assert_eq!(history[1].size, 100);
        assert_eq!(history[1].created, 1_700_000_000);

        let summary = image_summary(&image);
        assert_eq!(summary.shared_size, -1);
        assert_eq!(summary.containers, -1);
        assert_eq!(summary.parent_id, "");
    }
}
