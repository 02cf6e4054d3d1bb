//! `POST /build` and `POST /build/prune`: the request's parameters become a
//! [`BuildRequest`], the body (the context tar) is read by the builder on a blocking thread,
//! and the builder's progress lines are the response. An error before any line was sent is
//! an HTTP error (as dockerd answers a bad Dockerfile); after, it ends the stream as an
//! `errorDetail`. The build runs in a task of its own: a client that goes away cancels it
//! (the builder notices the closed stream) and the builder cleans up.
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::Response;
use axum::routing::post;
use berth_api::progress::{ErrorDetail, JsonMessage};
use berth_build::engine::{BuildEvent, BuildRequest, Builder, PruneOptions};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::query::Params;
use crate::responses::{self, JSON};
use crate::{AppState, DaemonError};

/// The build routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/build", post(build))
        .route("/build/prune", post(prune))
}

fn builder(state: &AppState) -> Result<Arc<Builder>, DaemonError> {
    state.builder.clone().ok_or(DaemonError::NotImplemented {
        feature: "POST /build (no builder configured)",
    })
}

fn json_param<T: serde::de::DeserializeOwned + Default>(
    params: &Params,
    key: &'static str,
) -> Result<T, DaemonError> {
    match params.non_empty(key) {
        None => Ok(T::default()),
        Some(value) => serde_json::from_str(value).map_err(|_| DaemonError::InvalidParameter {
            param: key,
            value: value.to_owned(),
        }),
    }
}

/// The request's parameters, as moby's `newImageBuildOptions` reads them.
fn build_request(params: &Params) -> Result<BuildRequest, DaemonError> {
    let args: BTreeMap<String, Option<String>> = json_param(params, "buildargs")?;
    let labels: BTreeMap<String, String> = json_param(params, "labels")?;
    let cache_from: Vec<String> = json_param(params, "cachefrom")?;
    let extra_hosts = params
        .all("extrahosts")
        .iter()
        .flat_map(|v| v.split(','))
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(BuildRequest {
        tags: params
            .all("t")
            .into_iter()
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
        dockerfile: params
            .non_empty("dockerfile")
            .unwrap_or("Dockerfile")
            .to_owned(),
        // An argument without a value (`--build-arg X` with X unset) is not passed.
        build_args: args
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect(),
        target: params.non_empty("target").map(str::to_owned),
        no_cache: params.flag("nocache"),
        pull: params
            .non_empty("pull")
            .is_some_and(crate::query::parse_bool),
        remove: params.flag_or("rm", true),
        force_remove: params.flag("forcerm"),
        quiet: params.flag("q"),
        labels,
        network_mode: params
            .non_empty("networkmode")
            .unwrap_or("default")
            .to_owned(),
        extra_hosts,
        shm_size: params.parse("shmsize")?.filter(|s: &i64| *s > 0),
        cache_from,
        platform: params.non_empty("platform").map(str::to_owned),
        remote: params.non_empty("remote").map(str::to_owned),
        registry_auths: Default::default(),
    })
}

/// The stream's closing error line.
fn error_line(error: &berth_build::engine::BuildError) -> Bytes {
    let message = error.to_string();
    Bytes::from(
        JsonMessage {
            error_detail: Some(ErrorDetail {
                code: Some(error.code()),
                message: message.clone(),
            }),
            error: Some(message),
            ..Default::default()
        }
        .to_line(),
    )
}

/// `POST /build`.
async fn build(
    State(state): State<AppState>,
    params: Params,
    request: Request,
) -> Result<Response, DaemonError> {
    let builder = builder(&state)?;
    let mut req = build_request(&params)?;
    if let Some(value) = request.headers().get("x-registry-config") {
        let text = value.to_str().map_err(|_| DaemonError::InvalidParameter {
            param: "X-Registry-Config",
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
        })?;
        req.registry_auths = berth_distribution::client::AuthConfig::map_from_header(text)?;
    }
    builder.check(&req)?;
    let body = request
        .into_body()
        .into_data_stream()
        .map(|chunk| chunk.map_err(std::io::Error::other));
    // The bridge blocks on the async body from the builder's blocking thread; made here.
    let body = SyncIoBridge::new(StreamReader::new(body));
    let (events, mut receiver) = mpsc::channel::<BuildEvent>(64);
    tokio::spawn(async move { builder.build(req, Box::new(body), events).await });
    let first = match receiver.recv().await {
        Some(BuildEvent::Done(Err(e))) => return Err(e.into()),
        first => first,
    };
    // The stream ends with `Done` (the builder's cleanup after it is not waited for).
    let lines =
        futures_util::stream::unfold((first, Some(receiver)), |(first, receiver)| async move {
            let mut receiver = receiver?;
            let event = match first {
                Some(event) => event,
                None => receiver.recv().await?,
            };
            Some(match event {
                BuildEvent::Line(line) => (line, (None, Some(receiver))),
                BuildEvent::Done(Ok(_)) => (Bytes::new(), (None, None)),
                BuildEvent::Done(Err(error)) => (error_line(&error), (None, None)),
            })
        });
    Ok(responses::streaming(JSON, lines))
}

/// `POST /build/prune?all=&keep-storage=&filters=`.
async fn prune(State(state): State<AppState>, params: Params) -> Result<Response, DaemonError> {
    let builder = builder(&state)?;
    let options = PruneOptions {
        all: params.flag("all"),
        keep_storage: params.parse("keep-storage")?.unwrap_or(0),
        filters: params.filters()?,
    };
    let report = builder.prune(options).await?;
    Ok(responses::json(axum::http::StatusCode::OK, &report))
}
