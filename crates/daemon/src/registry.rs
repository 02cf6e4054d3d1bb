//! The registry endpoints: `POST /images/create?fromImage=` (pull), `POST /images/{name}/push`,
//! `POST /auth`, `GET /images/search`, `GET /distribution/{name}/json`, over
//! [`berth_distribution::client::Distribution`].
//!
//! What can be refused before any transfer (a bad reference, unknown repository, wrong
//! credentials, no local tag) is answered with a status and Docker's words; once the transfer
//! starts the answer is a 200 jsonmessage stream whose last line carries any error, as
//! dockerd's.
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use berth_api::progress::JsonMessage;
use berth_distribution::client::{
    AuthConfig, Progress, PullRequest, PushRequest, SearchFilters, SearchRequest,
};
use bytes::Bytes;
use serde_json::json;
use tokio::sync::mpsc;

use crate::error::DaemonError;
use crate::image_state::{ImagesState, publish};
use crate::query::{Params, parse_body};
use crate::responses::{self, JSON, receiver_stream};

/// The routes that are not under `/images/{name}` (that one is matched by [`crate::images`]).
pub fn routes() -> Router<ImagesState> {
    Router::new()
        .route("/auth", post(auth))
        .route("/images/search", get(search))
        .route("/distribution/{*rest}", get(distribution_inspect))
}

/// The credentials of `X-Registry-Auth` (none when absent).
fn registry_auth(headers: &HeaderMap) -> Result<AuthConfig, DaemonError> {
    match headers.get("x-registry-auth") {
        None => Ok(AuthConfig::default()),
        Some(value) => {
            let text = value.to_str().map_err(|_| DaemonError::InvalidParameter {
                param: "X-Registry-Auth",
                value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
            })?;
            Ok(AuthConfig::from_header(text)?)
        }
    }
}

/// `fromImage` with `tag`: a digest tag makes `name@digest` (the docker CLI sends a digest
/// reference as `fromImage=name&tag=sha256:…`).
fn pull_reference(image: &str, tag: Option<&str>) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    match tag {
        Some(_) if image.contains('@') || last.contains(':') => image.to_owned(),
        Some(tag) if tag.contains(':') => format!("{image}@{tag}"),
        Some(tag) => format!("{image}:{tag}"),
        None => image.to_owned(),
    }
}

/// A progress sink writing jsonmessage lines to `sender` (unbounded: a slow client must not
/// stall the transfer; messages are small and throttled per layer).
fn progress_to(sender: mpsc::UnboundedSender<Bytes>) -> Progress {
    Progress::new(move |message: JsonMessage| {
        let _ = sender.send(Bytes::from(message.to_line()));
    })
}

/// A bounded receiver fed from an unbounded one, as [`receiver_stream`] takes.
fn stream_of(
    mut receiver: mpsc::UnboundedReceiver<Bytes>,
) -> impl futures_util::Stream<Item = Bytes> + Send + 'static {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        while let Some(line) = receiver.recv().await {
            if tx.send(line).await.is_err() {
                // The client went away; keep draining so the transfer is not blocked.
                while receiver.recv().await.is_some() {}
                return;
            }
        }
    });
    receiver_stream(rx)
}

/// `POST /images/create?fromImage=…[&tag=…][&platform=…]`.
pub(crate) async fn pull(
    state: &ImagesState,
    params: &Params,
    headers: &HeaderMap,
) -> Result<Response, DaemonError> {
    let image = params
        .non_empty("fromImage")
        .ok_or(DaemonError::MissingParameter { param: "fromImage" })?;
    let tag = params.non_empty("tag");
    let request = PullRequest {
        reference: pull_reference(image, tag),
        // As dockerd: no tag (and none in the name) pulls every tag (`pull -a`).
        all_tags: tag.is_none() && !image.contains('@') && {
            let last = image.rsplit('/').next().unwrap_or(image);
            !last.contains(':')
        },
        platform: params.non_empty("platform").map(str::to_owned),
        auth: registry_auth(headers)?,
    };
    let prepared = state.registry.prepare_pull(&request).await?;
    let (sender, receiver) = mpsc::unbounded_channel();
    let events = state.events.clone();
    tokio::spawn(async move {
        let progress = progress_to(sender.clone());
        match prepared.run(&progress).await {
            Ok(summary) => {
                for (name, id) in &summary.images {
                    publish(&events, "pull", id, name);
                }
            }
            Err(error) => {
                tracing::info!(image = %request.reference, "pull failed: {error}");
                let _ = sender.send(Bytes::from(JsonMessage::error(error.to_string()).to_line()));
            }
        }
    });
    Ok(responses::streaming(JSON, stream_of(receiver)))
}

/// `POST /images/{name}/push[?tag=…]`.
pub(crate) async fn push(
    state: &ImagesState,
    name: &str,
    params: &Params,
    headers: &HeaderMap,
) -> Result<Response, DaemonError> {
    let reference = match params.non_empty("tag") {
        Some(tag) => format!("{name}:{tag}"),
        None => name.to_owned(),
    };
    let auth = registry_auth(headers)?;
    let request = PushRequest {
        reference: reference.clone(),
        auth: auth.clone(),
    };
    let targets = state.registry.push_targets(&request).await?;
    let (sender, receiver) = mpsc::unbounded_channel();
    let registry = Arc::clone(&state.registry);
    let events = state.events.clone();
    tokio::spawn(async move {
        let progress = progress_to(sender.clone());
        match registry.push(&targets, &auth, &progress).await {
            Ok(summary) => {
                for (tag, digest, _) in &summary.pushed {
                    publish(&events, "push", digest, tag);
                }
            }
            Err(error) => {
                tracing::info!(image = %reference, "push failed: {error}");
                let _ = sender.send(Bytes::from(JsonMessage::error(error.to_string()).to_line()));
            }
        }
    });
    Ok(responses::streaming(JSON, stream_of(receiver)))
}

/// `POST /auth`: checks credentials against a registry.
async fn auth(State(state): State<ImagesState>, body: Bytes) -> Result<Response, DaemonError> {
    let config: AuthConfig = parse_body(&body)?;
    let status = state.registry.login(&config).await?;
    Ok(responses::json(
        StatusCode::OK,
        &json!({ "Status": status.status, "IdentityToken": status.identity_token }),
    ))
}

/// `GET /images/search?term=&limit=&filters=`.
async fn search(
    State(state): State<ImagesState>,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, DaemonError> {
    let term = params
        .non_empty("term")
        .ok_or(DaemonError::MissingParameter { param: "term" })?
        .to_owned();
    let filters = params.filters()?;
    filters.validate(&["is-automated", "is-official", "stars"])?;
    let stars = match filters.values("stars").next() {
        None => None,
        Some(value) => Some(
            value
                .parse::<u64>()
                .map_err(|_| DaemonError::InvalidParameter {
                    param: "filters",
                    value: format!("stars={value}"),
                })?,
        ),
    };
    let request = SearchRequest {
        term,
        limit: params.parse::<i64>("limit")?,
        filters: SearchFilters {
            is_official: filters.bool("is-official")?,
            is_automated: filters.bool("is-automated")?,
            stars,
        },
        auth: registry_auth(&headers)?,
    };
    let results = state.registry.search(&request).await?;
    Ok(responses::json(StatusCode::OK, &results))
}

/// `GET /distribution/{name}/json`.
async fn distribution_inspect(
    State(state): State<ImagesState>,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> Result<Response, DaemonError> {
    let name = rest
        .strip_suffix("/json")
        .ok_or(DaemonError::RouteNotFound)?;
    let auth = registry_auth(&headers)?;
    let inspect = state.registry.inspect(name, &auth).await?;
    Ok(responses::json(StatusCode::OK, &inspect))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_references() {
        assert_eq!(pull_reference("busybox", Some("latest")), "busybox:latest");
        assert_eq!(pull_reference("busybox", None), "busybox");
        assert_eq!(pull_reference("a/b", Some("sha256:abc")), "a/b@sha256:abc");
        assert_eq!(
            pull_reference("127.0.0.1:5000/a:v1", Some("latest")),
            "127.0.0.1:5000/a:v1"
        );
        assert_eq!(
            pull_reference("127.0.0.1:5000/a", Some("v2")),
            "127.0.0.1:5000/a:v2"
        );
    }
}
