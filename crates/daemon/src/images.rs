//! Image endpoints, over the synchronous [`ImageStore`] (every store call runs through [`berth_fs::blocking`]).
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
use berth_api::models::{ImageDeleteResponseItem, ImageHistoryResponseItem, ImageSummary};
use berth_api::shape;
use berth_container::EventBus;
use berth_image::{Deleted, ImageRecord};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::error::DaemonError;
use crate::image_state::publish;
pub use crate::image_state::{ImageUsage, ImageUsageMap, ImagesState};
use crate::query::Params;
use crate::responses::{self, JSON, receiver_stream};

/// The image routes.
pub fn routes() -> Router<ImagesState> {
    Router::new()
        .route("/images/json", get(list))
        .route("/images/create", post(create))
        .route("/images/prune", post(prune))
        .route("/images/load", post(crate::archive::load))
        .route("/images/get", get(crate::archive::save_many))
        .route("/images/{*rest}", get(get_named).post(post_named))
        .route("/images/{*rest}", delete(remove))
        .route("/berth/images/bootstrap", post(bootstrap))
        .merge(crate::registry::routes())
}

/// `GET /images/json` shape of a record.
pub fn image_summary(record: &ImageRecord) -> ImageSummary {
    ImageSummary {
        id: record.id.clone(),
        parent_id: record.parent.clone().unwrap_or_default(),
        repo_tags: record.repo_tags.clone(),
        repo_digests: record.repo_digests.clone(),
        created: record.created,
        size: i64::try_from(record.size).unwrap_or(i64::MAX),
        shared_size: -1,
        labels: berth_image::labels(record),
        containers: -1,
        manifests: None,
        descriptor: None,
    }
}

async fn list(State(state): State<ImagesState>, params: Params) -> Result<Response, DaemonError> {
    let filters = params.filters()?;
    let all = params.flag("all");
    let store = Arc::clone(&state.store);
    let records = berth_fs::blocking(move || store.list_filtered(&filters, all)).await??;
    let summaries: Vec<ImageSummary> = records.iter().map(image_summary).collect();
    Ok(responses::shaped(StatusCode::OK, &summaries, |v| {
        shape::each(v, shape::image_summary)
    }))
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

/// overlay2's `GraphDriver.Data` of an image: its top layer's directory as `UpperDir`, the
/// ones under it, topmost first, as `LowerDir` (absent for one layer), as dockerd names them.
/// berth keeps no per-layer merged or work directory, so there is no `MergedDir`/`WorkDir`.
fn image_graph_data(layer_dirs: &[std::path::PathBuf]) -> Value {
    let mut data = serde_json::Map::new();
    if let Some((top, lower)) = layer_dirs.split_first() {
        data.insert("UpperDir".into(), json!(top.display().to_string()));
        if !lower.is_empty() {
            let lower: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
            data.insert("LowerDir".into(), json!(lower.join(":")));
        }
    }
    Value::Object(data)
}

/// `GET /images/{name}/json` body; `layer_dirs` are the image's layer directories, topmost
/// first.
pub fn image_inspect(record: &ImageRecord, layer_dirs: &[std::path::PathBuf]) -> Value {
    let other = &record.config.other;
    let layers = other
        .get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .cloned()
        .unwrap_or_else(|| json!([]));
    json!({
        "Id": record.id,
        "RepoTags": record.repo_tags,
        "RepoDigests": record.repo_digests,
        "Parent": record.parent.clone().unwrap_or_default(),
        "Comment": other.get("comment").cloned().unwrap_or_else(|| json!("")),
        "Created": created_rfc3339(record),
        "DockerVersion": "",
        "Author": record.config.author.clone().unwrap_or_default(),
        "Config": record.config.config.clone().unwrap_or_default(),
        "Architecture": record.config.architecture,
        "Os": record.config.os,
        "Size": record.size,
        "GraphDriver": { "Name": "overlay2", "Data": image_graph_data(layer_dirs) },
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
        let store = Arc::clone(&state.store);
        let (record, layer_dirs) = berth_fs::blocking(move || {
            let record = store.resolve(&name)?;
            // Removed in between: the record still answers, without directories.
            let dirs = store.layer_dirs(&record.id).unwrap_or_default();
            Ok::<_, DaemonError>((record, dirs))
        })
        .await??;
        Ok(responses::shaped(
            StatusCode::OK,
            &image_inspect(&record, &layer_dirs),
            shape::image_inspect,
        ))
    } else if let Some(name) = rest.strip_suffix("/history") {
        let name = name.to_owned();
        let store = Arc::clone(&state.store);
        let (record, sizes) = berth_fs::blocking(move || {
            let record = store.resolve(&name)?;
            let sizes = store.layer_sizes(&record.id)?;
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
    headers: axum::http::HeaderMap,
) -> Result<Response, DaemonError> {
    if let Some(name) = rest.strip_suffix("/tag") {
        tag(&state, name.to_owned(), &params).await
    } else if let Some(name) = rest.strip_suffix("/push") {
        crate::registry::push(&state, name, &params, &headers).await
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
    let store = Arc::clone(&state.store);
    let record = berth_fs::blocking(move || {
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
    let store = Arc::clone(&state.store);
    let (record, deleted) = berth_fs::blocking(move || {
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

/// `POST /images/prune` ([`ImageStore::prune`] decides what goes).
async fn prune(State(state): State<ImagesState>, params: Params) -> Result<Response, DaemonError> {
    let filters = params.filters()?;
    let usage = (state.usage)().await;
    let store = Arc::clone(&state.store);
    let pruned =
        berth_fs::blocking(move || store.prune(&filters, &|id| usage.get(id).cloned())).await??;
    let items: Vec<_> = pruned
        .deleted
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
        &json!({ "ImagesDeleted": items, "SpaceReclaimed": pruned.reclaimed }),
    ))
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
    if params.non_empty("fromImage").is_some() {
        return crate::registry::pull(&state, &params, request.headers()).await;
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
    if let Some(url) = &url {
        berth_distribution::client::http::check_url(url)?;
    }
    {
        let (reference, changes) = (reference.clone(), changes.clone());
        let store = Arc::clone(&state.store);
        berth_fs::blocking(move || store.check_import(reference.as_deref(), &changes)).await??;
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
    let runtime = tokio::runtime::Handle::current();
    let registry = Arc::clone(&state.registry);
    tokio::task::spawn_blocking(move || {
        let result = (|| -> Result<ImageRecord, DaemonError> {
            let (input, total): (Box<dyn std::io::Read + '_>, Option<u64>) = match &url {
                None => (Box::new(&mut body), total),
                Some(url) => {
                    // Fetched with the async client; read here through a bridge.
                    let download = runtime.block_on(registry.http().get(url))?;
                    let length = download.length;
                    let reader = StreamReader::new(download.into_stream());
                    (
                        Box::new(SyncIoBridge::new_with_handle(reader, runtime)),
                        length,
                    )
                }
            };
            let mut input = ProgressReader::new(input, total, &sender);
            Ok(store.import(
                &mut input,
                reference.as_deref(),
                &changes,
                message.as_deref(),
            )?)
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
    if name == "hello-world" {
        return bootstrap_hello(state, &params).await;
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
        let store = Arc::clone(&state.store);
        let result =
            berth_fs::blocking(move || store.bootstrap_busybox(&store_reference, &busybox))
                .await
                .map_err(DaemonError::from)
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

/// `POST /berth/images/bootstrap?name=hello-world`: the image of [`crate::hello`], imported.
async fn bootstrap_hello(state: ImagesState, params: &Params) -> Result<Response, DaemonError> {
    let reference = format!(
        "hello-world:{}",
        params.non_empty("tag").unwrap_or("latest")
    );
    let layer = crate::hello::layer_or_error()?;
    let store = Arc::clone(&state.store);
    let store_reference = reference.clone();
    let result = berth_fs::blocking(move || crate::hello::import(&store, &layer, &store_reference))
        .await
        .map_err(DaemonError::from)
        .and_then(|r| r.map_err(DaemonError::from));
    let mut lines = vec![json!({ "status": "Bootstrapping hello-world (built in)" })];
    lines.extend(bootstrap_outcome(&state.events, result, &reference));
    let body: Vec<u8> = lines
        .iter()
        .flat_map(|line| responses::json_line(line).to_vec())
        .collect();
    Ok(responses::streaming(
        JSON,
        futures_util::stream::once(async move { Bytes::from(body) }),
    ))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, tags: &[&str], created: i64) -> ImageRecord {
        ImageRecord {
            id: id.into(),
            repo_tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            repo_digests: Vec::new(),
            config: berth_image::ImageConfig::default(),
            size: 100,
            created,
            parent: None,
        }
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
        let inspect = image_inspect(
            &image,
            &[
                "/l/top/diff".into(),
                "/l/mid/diff".into(),
                "/l/base/diff".into(),
            ],
        );
        assert_eq!(inspect["Id"], "sha256:abc");
        assert_eq!(
            inspect["GraphDriver"]["Data"],
            json!({ "UpperDir": "/l/top/diff", "LowerDir": "/l/mid/diff:/l/base/diff" })
        );
        let one = image_inspect(&image, &["/l/top/diff".into()]);
        assert_eq!(
            one["GraphDriver"]["Data"],
            json!({ "UpperDir": "/l/top/diff" })
        );
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
