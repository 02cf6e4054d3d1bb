//! `/volumes` endpoints: parse the request, call [`berth_volume::VolumeService`], shape the
//! answer.
use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use berth_api::models::EventMessageTypeEnum;
use berth_api::shape;
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::error::DaemonError;
use crate::query::Params;
use crate::query::parse_body;
use crate::responses;

/// The volume routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/volumes", get(list))
        .route("/volumes/create", post(create))
        .route("/volumes/prune", post(prune))
        .route("/volumes/{name}", get(inspect).delete(remove))
}

/// A `volume` event, as `docker events` shows them.
fn publish(state: &AppState, action: &str, name: &str) {
    let attributes = HashMap::from([("driver".to_string(), "local".to_string())]);
    state
        .events
        .publish(EventMessageTypeEnum::VOLUME, action, name, attributes);
}

async fn list(State(state): State<AppState>, params: Params) -> Result<Response, DaemonError> {
    let filters = params.filters()?;
    let volumes = state.containers.volumes().clone();
    let list = berth_fs::blocking(move || volumes.list(&filters)).await??;
    Ok(responses::shaped(
        StatusCode::OK,
        &json!({ "Volumes": list, "Warnings": null }),
        |v| {
            if let Some(list) = v.get_mut("Volumes") {
                shape::each(list, shape::volume);
            }
        },
    ))
}

#[derive(Debug, Default, Deserialize)]
struct CreateBody {
    #[serde(rename = "Name", default)]
    name: Option<String>,
    #[serde(rename = "Driver", default)]
    driver: Option<String>,
    #[serde(rename = "DriverOpts", default)]
    driver_opts: Option<HashMap<String, String>>,
    #[serde(rename = "Labels", default)]
    labels: Option<HashMap<String, String>>,
}

async fn create(State(state): State<AppState>, body: Bytes) -> Result<Response, DaemonError> {
    let body: Option<CreateBody> = parse_body(&body)?;
    let body = body.unwrap_or_default();
    let volumes = state.containers.volumes().clone();
    let volume = berth_fs::blocking(move || {
        volumes.create(
            body.name.as_deref(),
            body.driver.as_deref(),
            body.driver_opts.unwrap_or_default(),
            body.labels.unwrap_or_default(),
        )
    })
    .await??;
    publish(&state, "create", &volume.name);
    Ok(responses::shaped(
        StatusCode::CREATED,
        &volume,
        shape::volume,
    ))
}

async fn inspect(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, DaemonError> {
    let volumes = state.containers.volumes().clone();
    let volume = berth_fs::blocking(move || volumes.inspect(&name)).await??;
    Ok(responses::shaped(StatusCode::OK, &volume, shape::volume))
}

async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
    params: Params,
) -> Result<Response, DaemonError> {
    let force = params.flag("force");
    let volumes = state.containers.volumes().clone();
    let existed = volumes.exists(&name);
    let removed = name.clone();
    berth_fs::blocking(move || volumes.remove(&name, force)).await??;
    if existed {
        publish(&state, "destroy", &removed);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn prune(State(state): State<AppState>, params: Params) -> Result<Response, DaemonError> {
    let filters = params.filters()?;
    let volumes = state.containers.volumes().clone();
    let pruned = berth_fs::blocking(move || volumes.prune(&filters)).await??;
    for name in &pruned.deleted {
        publish(&state, "destroy", name);
    }
    Ok(responses::json(
        StatusCode::OK,
        &json!({ "VolumesDeleted": pruned.deleted, "SpaceReclaimed": pruned.space }),
    ))
}
