//! Manifests (`GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`), tags lists,
//! the catalog and the referrers API.
//!
//! Content negotiation is distribution's: an OCI manifest or index is served only to a
//! client whose `Accept` names its type (else `MANIFEST_UNKNOWN`); a Docker manifest list
//! asked for by tag by a client that does not accept lists is answered with its
//! `linux/amd64` manifest; Docker schema 2 manifests are served to anyone (berth has no
//! schema 1).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap};
use axum::response::Response;
use berth_image::manifest::{Index, MEDIA_OCI_INDEX};

use super::{AppState, Reference, blocking, empty, header_value, json, read_limited};
use crate::protocol::manifest::{Accept, ManifestKind, ParsedManifest};
use crate::protocol::pagination::{PageRequest, next_link};
use crate::protocol::{
    CONTENT_DIGEST_HEADER, Digest, FILTERS_APPLIED_HEADER, MAX_MANIFEST_SIZE, RepositoryName,
    SUBJECT_HEADER,
};
use crate::server::error::RegistryError;
use crate::server::storage::StoredManifest;

/// Entries of a catalog page when the client gives no `n` (distribution's default).
const CATALOG_PAGE: usize = 1000;

pub(super) async fn get(
    state: &Arc<AppState>,
    name: RepositoryName,
    reference: Reference,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response, RegistryError> {
    let accept = Accept::from_headers(
        headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    let by_tag = matches!(reference, Reference::Tag(_));
    let store = state.store.clone();
    let wanted = reference.clone();
    let if_none_match: Vec<String> = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.trim().trim_matches('"').to_owned())
        .collect();
    let found = blocking(
        "read manifest",
        move || -> Result<Option<StoredManifest>, RegistryError> {
            let digest = match &wanted {
                Reference::Digest(digest) => digest.clone(),
                Reference::Tag(tag) => match store.resolve_tag(&name, tag)? {
                    Some(digest) => digest,
                    None => return Ok(None),
                },
            };
            let Some(stored) = store.manifest(&name, &digest)? else {
                return Ok(None);
            };
            negotiate(&store, &name, stored, accept, by_tag).map(Some)
        },
    )
    .await?;
    let Some(stored) = found else {
        return Err(RegistryError::ManifestUnknown {
            reference: reference.to_string(),
        });
    };
    if if_none_match
        .iter()
        .any(|etag| etag == stored.digest.as_str())
    {
        let mut response = empty(StatusCode::NOT_MODIFIED);
        response
            .headers_mut()
            .insert(CONTENT_DIGEST_HEADER, header_value(stored.digest.as_str()));
        return Ok(response);
    }
    let length = stored.bytes.len();
    let mut response = Response::new(if head {
        axum::body::Body::empty()
    } else {
        axum::body::Body::from(stored.bytes)
    });
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, header_value(&stored.media_type));
    out.insert(header::CONTENT_LENGTH, header_value(length.to_string()));
    out.insert(CONTENT_DIGEST_HEADER, header_value(stored.digest.as_str()));
    out.insert(header::ETAG, header_value(format!("\"{}\"", stored.digest)));
    Ok(response)
}

/// What the client gets of `stored`, given what it accepts (see the module documentation).
fn negotiate(
    store: &crate::server::storage::Store,
    name: &RepositoryName,
    stored: StoredManifest,
    accept: Accept,
    by_tag: bool,
) -> Result<StoredManifest, RegistryError> {
    match ManifestKind::from_media_type(&stored.media_type) {
        Some(ManifestKind::OciManifest) if !accept.allows(ManifestKind::OciManifest) => {
            Err(RegistryError::ManifestNotAccepted {
                message: "OCI manifest found, but accept header does not support OCI manifests",
            })
        }
        Some(ManifestKind::OciIndex) if !accept.allows(ManifestKind::OciIndex) => {
            Err(RegistryError::ManifestNotAccepted {
                message: "OCI index found, but accept header does not support OCI indexes",
            })
        }
        Some(ManifestKind::DockerList) if by_tag && !accept.allows(ManifestKind::DockerList) => {
            let parsed = ParsedManifest::parse(Some(&stored.media_type), &stored.bytes)
                .map_err(|source| RegistryError::ManifestInvalid { source })?;
            let unknown = || RegistryError::ManifestUnknown {
                reference: stored.digest.to_string(),
            };
            let child = parsed
                .manifests
                .iter()
                .find(|d| {
                    d.platform
                        .as_ref()
                        .is_some_and(|p| p.architecture == "amd64" && p.os == "linux")
                })
                .and_then(|d| Digest::parse(&d.digest).ok())
                .ok_or_else(unknown)?;
            let child = store.manifest(name, &child)?.ok_or_else(unknown)?;
            if ManifestKind::from_media_type(&child.media_type)
                == Some(ManifestKind::DockerManifest)
                && !accept.allows(ManifestKind::DockerManifest)
            {
                return Err(RegistryError::ManifestNotAccepted {
                    message: "Schema 2 manifest not supported by client",
                });
            }
            Ok(child)
        }
        _ => Ok(stored),
    }
}

pub(super) async fn put(
    state: &Arc<AppState>,
    name: RepositoryName,
    reference: Reference,
    request: Request,
) -> Result<Response, RegistryError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_MANIFEST_SIZE as u64) {
        return Err(RegistryError::ManifestTooLarge {
            limit: MAX_MANIFEST_SIZE,
        });
    }
    let bytes = read_limited(request.into_body(), MAX_MANIFEST_SIZE).await?;
    let parsed = ParsedManifest::parse(content_type.as_deref(), &bytes)
        .map_err(|source| RegistryError::ManifestInvalid { source })?;
    let tag = match &reference {
        Reference::Digest(expected) => {
            let actual = Digest::of(&bytes);
            if actual != *expected {
                return Err(RegistryError::DigestMismatch {
                    expected: expected.to_string(),
                    actual: actual.to_string(),
                });
            }
            None
        }
        Reference::Tag(tag) => Some(tag.clone()),
    };
    let subject = parsed.subject_digest();
    let store = state.store.clone();
    let target = name.clone();
    let digest = blocking("put manifest", move || {
        store.put_manifest(&target, tag.as_ref(), &bytes, &parsed)
    })
    .await?;
    let mut response = empty(StatusCode::CREATED);
    let out = response.headers_mut();
    out.insert(
        header::LOCATION,
        header_value(format!("/v2/{name}/manifests/{digest}")),
    );
    out.insert(CONTENT_DIGEST_HEADER, header_value(digest.as_str()));
    if let Some(subject) = subject {
        out.insert(SUBJECT_HEADER, header_value(subject.as_str()));
    }
    Ok(response)
}

pub(super) async fn delete(
    state: &Arc<AppState>,
    name: RepositoryName,
    reference: Reference,
) -> Result<Response, RegistryError> {
    let store = state.store.clone();
    blocking("delete manifest", move || match &reference {
        Reference::Digest(digest) => store.delete_manifest(&name, digest),
        Reference::Tag(tag) => store.delete_tag(&name, tag),
    })
    .await?;
    Ok(empty(StatusCode::ACCEPTED))
}

pub(super) async fn tags(
    state: &Arc<AppState>,
    name: RepositoryName,
    query: &str,
) -> Result<Response, RegistryError> {
    let page =
        PageRequest::from_query(query).map_err(|source| RegistryError::PageSize { source })?;
    let store = state.store.clone();
    let target = name.clone();
    let Some(tags) = blocking("list tags", move || store.tags(&target)).await? else {
        return Err(RegistryError::NameUnknown {
            name: name.to_string(),
        });
    };
    let (shown, more) = page.apply(&tags, None);
    let mut response = json(
        StatusCode::OK,
        &serde_json::json!({ "name": name.as_str(), "tags": shown }),
    );
    if more && let Some(last) = shown.last() {
        let link = next_link(&format!("/v2/{name}/tags/list"), shown.len(), last);
        response
            .headers_mut()
            .insert(header::LINK, header_value(link));
    }
    Ok(response)
}

pub(super) async fn catalog(state: &Arc<AppState>, query: &str) -> Result<Response, RegistryError> {
    let page =
        PageRequest::from_query(query).map_err(|source| RegistryError::PageSize { source })?;
    let store = state.store.clone();
    let names: Vec<String> = blocking("list repositories", move || store.repositories())
        .await?
        .into_iter()
        .map(|n| n.to_string())
        .collect();
    let (shown, more) = page.apply(&names, Some(CATALOG_PAGE));
    let mut response = json(
        StatusCode::OK,
        &serde_json::json!({ "repositories": shown }),
    );
    if more && let Some(last) = shown.last() {
        response.headers_mut().insert(
            header::LINK,
            header_value(next_link("/v2/_catalog", shown.len(), last)),
        );
    }
    Ok(response)
}

pub(super) async fn referrers(
    state: &Arc<AppState>,
    name: RepositoryName,
    subject: Digest,
    query: &HashMap<String, String>,
) -> Result<Response, RegistryError> {
    let store = state.store.clone();
    let mut manifests =
        blocking("list referrers", move || store.referrers(&name, &subject)).await?;
    let filter = query.get("artifactType").filter(|t| !t.is_empty());
    if let Some(artifact_type) = filter {
        manifests.retain(|d| d.artifact_type.as_deref() == Some(artifact_type.as_str()));
    }
    let index = Index {
        schema_version: 2,
        media_type: MEDIA_OCI_INDEX.to_owned(),
        manifests,
        ..Index::default()
    };
    let mut response = json(StatusCode::OK, &index);
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, header_value(MEDIA_OCI_INDEX));
    if filter.is_some() {
        out.insert(FILTERS_APPLIED_HEADER, header_value("artifactType"));
    }
    Ok(response)
}
