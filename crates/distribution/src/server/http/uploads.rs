//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (a session, a monolithic upload with
//! `?digest=`, or a cross-repository `?mount=&from=`), `PATCH` (a chunk with
//! `Content-Range`, or a stream without), `PUT ?digest=` (the last bytes, then verify and
//! commit), `GET` (status), `DELETE` (abandon).
//!
//! The bytes are hashed as they are written, on a blocking thread fed by the request body;
//! the running hash is kept in memory between chunks, so finishing costs no second pass. A
//! session whose hash is not in memory (after a restart) is hashed again from its file.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest as _, Sha256};

use super::{AppState, blocking, empty, header_value};
use crate::protocol::{CONTENT_DIGEST_HEADER, Digest, RepositoryName, UPLOAD_UUID_HEADER};
use crate::server::error::RegistryError;
use crate::server::storage::UploadId;

/// The running hash of a session: valid while `size` is the size of its file.
#[derive(Debug, Clone)]
struct HashState {
    hasher: Sha256,
    size: u64,
}

type Slot = Arc<tokio::sync::Mutex<Option<HashState>>>;

/// One slot per session in use: it serializes the session's requests and holds its hash.
#[derive(Debug, Default)]
pub(crate) struct UploadSlots(Mutex<HashMap<UploadId, Slot>>);

impl UploadSlots {
    fn get(&self, id: &UploadId) -> Slot {
        self.0
            .lock()
            .expect("upload slots lock")
            .entry(id.clone())
            .or_default()
            .clone()
    }

    fn remove(&self, id: &UploadId) {
        self.0.lock().expect("upload slots lock").remove(id);
    }

    /// Forgets sessions no longer on disk (purged).
    pub(crate) fn retain(&self, keep: impl Fn(&UploadId) -> bool) {
        self.0
            .lock()
            .expect("upload slots lock")
            .retain(|id, _| keep(id));
    }
}

fn upload_location(name: &RepositoryName, id: &UploadId) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

/// 202/204 with where the session stands (`Range: 0-<last byte>`, as distribution says it:
/// `0-0` for an empty session).
fn progress(status: StatusCode, name: &RepositoryName, id: &UploadId, size: u64) -> Response {
    let mut response = empty(status);
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, header_value(upload_location(name, id)));
    headers.insert(
        header::RANGE,
        header_value(format!("0-{}", size.saturating_sub(1))),
    );
    headers.insert(UPLOAD_UUID_HEADER, header_value(id.as_str()));
    response
}

fn created(name: &RepositoryName, digest: &Digest) -> Response {
    let mut response = empty(StatusCode::CREATED);
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        header_value(format!("/v2/{name}/blobs/{digest}")),
    );
    headers.insert(CONTENT_DIGEST_HEADER, header_value(digest.as_str()));
    response
}

fn query_digest(
    query: &HashMap<String, String>,
    key: &str,
) -> Result<Option<Digest>, RegistryError> {
    query
        .get(key)
        .map(|d| Digest::parse(d).map_err(|source| RegistryError::DigestInvalid { source }))
        .transpose()
}

pub(super) async fn start(
    state: &Arc<AppState>,
    name: RepositoryName,
    query: &HashMap<String, String>,
    request: Request,
) -> Result<Response, RegistryError> {
    if let Some(mount) = query_digest(query, "mount")? {
        let from = query
            .get("from")
            .map(|from| {
                RepositoryName::parse(from).map_err(|source| RegistryError::NameInvalid { source })
            })
            .transpose()?;
        if let Some(from) = from {
            let store = state.store.clone();
            let (target, digest) = (name.clone(), mount.clone());
            let mounted = blocking("mount blob", move || {
                Ok(store.repository_blob(&from, &digest)?.is_some()
                    && store.link_blob(&target, &digest)?)
            })
            .await?;
            if mounted {
                return Ok(created(&name, &mount));
            }
        }
        // Not mountable: an ordinary session, as the spec says.
    }
    let digest = query_digest(query, "digest")?;
    let store = state.store.clone();
    let target = name.clone();
    let id = blocking("start upload", move || store.start_upload(&target)).await?;
    match digest {
        Some(digest) => {
            let result = complete(state, &name, &id, &digest, request).await;
            if result.is_err() {
                let store = state.store.clone();
                let (name, id) = (name.clone(), id.clone());
                let _ = blocking("cancel upload", move || store.cancel_upload(&name, &id)).await;
            }
            result
        }
        None => Ok(progress(StatusCode::ACCEPTED, &name, &id, 0)),
    }
}

pub(super) async fn status(
    state: &Arc<AppState>,
    name: RepositoryName,
    id: UploadId,
) -> Result<Response, RegistryError> {
    let store = state.store.clone();
    let (target, session) = (name.clone(), id.clone());
    let size = blocking("upload status", move || {
        store.upload_size(&target, &session)
    })
    .await?;
    Ok(progress(StatusCode::NO_CONTENT, &name, &id, size))
}

pub(super) async fn patch(
    state: &Arc<AppState>,
    name: RepositoryName,
    id: UploadId,
    request: Request,
) -> Result<Response, RegistryError> {
    let slot = state.uploads.get(&id);
    let mut hash = slot.lock().await;
    let size = append(state, &name, &id, &mut hash, request).await?;
    Ok(progress(StatusCode::ACCEPTED, &name, &id, size))
}

pub(super) async fn finish(
    state: &Arc<AppState>,
    name: RepositoryName,
    id: UploadId,
    query: &HashMap<String, String>,
    request: Request,
) -> Result<Response, RegistryError> {
    let Some(digest) = query_digest(query, "digest")? else {
        // An unknown session is reported as such first, as distribution does.
        let store = state.store.clone();
        blocking("upload status", move || store.upload_size(&name, &id)).await?;
        return Err(RegistryError::DigestMissing);
    };
    complete(state, &name, &id, &digest, request).await
}

/// Appends the request's body (if any), verifies the whole against `digest` and commits.
async fn complete(
    state: &Arc<AppState>,
    name: &RepositoryName,
    id: &UploadId,
    digest: &Digest,
    request: Request,
) -> Result<Response, RegistryError> {
    let slot = state.uploads.get(id);
    let mut hash = slot.lock().await;
    append(state, name, id, &mut hash, request).await?;
    let current = match hash.take() {
        Some(current) => current,
        None => rehash(state, name, id).await?,
    };
    let actual = Digest::from_hasher(current.hasher);
    let store = state.store.clone();
    let (target, session, expected) = (name.clone(), id.clone(), digest.clone());
    let result = blocking("finish upload", move || {
        store.finish_upload(&target, &session, &expected, &actual)
    })
    .await;
    state.uploads.remove(id);
    result?;
    Ok(created(name, digest))
}

pub(super) async fn cancel(
    state: &Arc<AppState>,
    name: RepositoryName,
    id: UploadId,
) -> Result<Response, RegistryError> {
    let slot = state.uploads.get(&id);
    let _hash = slot.lock().await;
    let store = state.store.clone();
    let session = id.clone();
    blocking("cancel upload", move || {
        store.cancel_upload(&name, &session)
    })
    .await?;
    state.uploads.remove(&id);
    Ok(empty(StatusCode::NO_CONTENT))
}

async fn rehash(
    state: &Arc<AppState>,
    name: &RepositoryName,
    id: &UploadId,
) -> Result<HashState, RegistryError> {
    let store = state.store.clone();
    let (name, id) = (name.clone(), id.clone());
    let (hasher, size) = blocking("hash upload", move || store.hash_upload(&name, &id)).await?;
    Ok(HashState { hasher, size })
}

/// `Content-Range: <start>-<end>` (also `bytes <start>-<end>[/<total>]`).
fn content_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>, RegistryError> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default();
    let invalid = || RegistryError::ContentRange {
        value: text.to_owned(),
    };
    let spec = text.trim().trim_start_matches("bytes").trim();
    let spec = spec.split('/').next().unwrap_or_default();
    let (start, end) = spec.split_once('-').ok_or_else(invalid)?;
    let start: u64 = start.trim().parse().map_err(|_| invalid())?;
    let end: u64 = end.trim().parse().map_err(|_| invalid())?;
    if end < start {
        return Err(invalid());
    }
    if let Some(length) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && length != end - start + 1
    {
        return Err(invalid());
    }
    Ok(Some((start, end)))
}

/// Appends the request body to the session, hashing it; returns the new size. The caller
/// holds the session's slot.
async fn append(
    state: &Arc<AppState>,
    name: &RepositoryName,
    id: &UploadId,
    hash: &mut Option<HashState>,
    request: Request,
) -> Result<u64, RegistryError> {
    let range = content_range(request.headers())?;
    let store = state.store.clone();
    let (target, session) = (name.clone(), id.clone());
    let (file, size, path) =
        blocking("open upload", move || store.open_upload(&target, &session)).await?;
    let current = match hash.take() {
        Some(current) if current.size == size => current,
        _ => rehash(state, name, id).await?,
    };
    if let Some((start, _)) = range
        && start != size
    {
        *hash = Some(current);
        return Err(RegistryError::UploadOutOfOrder {
            offset: size,
            start,
        });
    }
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(8);
    let writer = tokio::task::spawn_blocking(move || write_chunks(file, &path, current, receiver));
    let mut stream = request.into_body().into_data_stream();
    let mut body_error = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => {
                if sender.send(bytes).await.is_err() {
                    // The writer stopped (a failed write): its error is reported below.
                    break;
                }
            }
            Err(error) => {
                body_error = Some(error);
                break;
            }
        }
    }
    drop(sender);
    let (state_after, written) = writer.await.map_err(|_| RegistryError::Internal {
        what: "write upload",
    })?;
    *hash = state_after;
    let size = written?;
    if let Some(source) = body_error {
        return Err(RegistryError::RequestBody { source });
    }
    Ok(size)
}

/// Writes chunks to the session file as they come, hashing them. Returns the hash state
/// (`None` when a failed write may have left bytes the hash did not see) and the new size.
fn write_chunks(
    mut file: File,
    path: &Path,
    mut current: HashState,
    mut receiver: tokio::sync::mpsc::Receiver<Bytes>,
) -> (Option<HashState>, Result<u64, RegistryError>) {
    while let Some(bytes) = receiver.blocking_recv() {
        if let Err(source) = file.write_all(&bytes) {
            return (
                None,
                Err(RegistryError::Io {
                    op: "write",
                    path: path.to_owned(),
                    source,
                }),
            );
        }
        current.hasher.update(&bytes);
        current.size += bytes.len() as u64;
    }
    let size = current.size;
    (Some(current), Ok(size))
}
