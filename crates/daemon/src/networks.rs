//! Network endpoints: parse the request, call the network service (or, for connect and
//! disconnect, the container service), shape the answer.
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use berth_api::models::{EndpointSettings, EventMessageTypeEnum};
use berth_api::shape;
use berth_network::{CreateRequest, NetworkInfo, NetworkService, network_matches};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::error::DaemonError;
use crate::query::Params;
use crate::query::parse_body;
use crate::responses;

/// The network routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/networks", get(list))
        .route("/networks/create", post(create))
        .route("/networks/prune", post(prune))
        .route("/networks/{id}", get(inspect))
        .route("/networks/{id}", delete(remove))
        .route("/networks/{id}/connect", post(connect))
        .route("/networks/{id}/disconnect", post(disconnect))
}

/// dockerd's `network` event for the network itself (actor: its ID; `name` and `type`).
fn publish(state: &AppState, action: &str, info: &NetworkInfo) {
    let attributes = std::collections::HashMap::from([
        ("name".to_string(), info.name.clone()),
        ("type".to_string(), info.driver.clone()),
    ]);
    state
        .events
        .publish(EventMessageTypeEnum::NETWORK, action, &info.id, attributes);
}

fn service(state: &AppState) -> Result<Arc<NetworkService>, DaemonError> {
    state
        .containers
        .networks()
        .cloned()
        .ok_or(DaemonError::NotImplemented {
            feature: "networking (this daemon runs without a network service)",
        })
}

async fn list(State(state): State<AppState>, params: Params) -> Result<Response, DaemonError> {
    let filters = params.filters()?;
    let service = service(&state)?;
    let list = berth_fs::blocking(move || {
        let mut out = Vec::new();
        for info in service.list() {
            if network_matches(&info, &filters)? {
                out.push(info);
            }
        }
        Ok::<_, DaemonError>(out)
    })
    .await??;
    Ok(responses::shaped(StatusCode::OK, &list, |v| {
        shape::each(v, shape::network_summary)
    }))
}

async fn inspect(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, DaemonError> {
    let service = service(&state)?;
    let info = berth_fs::blocking(move || service.inspect(&id)).await??;
    Ok(responses::shaped(StatusCode::OK, &info, shape::network))
}

async fn create(State(state): State<AppState>, body: Bytes) -> Result<Response, DaemonError> {
    let request: CreateRequest = parse_body(&body)?;
    let service = service(&state)?;
    let info = berth_fs::blocking(move || service.create(&request)).await??;
    publish(&state, "create", &info);
    Ok(responses::json(
        StatusCode::CREATED,
        &json!({ "Id": info.id, "Warning": "" }),
    ))
}

async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, DaemonError> {
    let service = service(&state)?;
    let info = berth_fs::blocking(move || {
        let info = service.inspect(&id)?;
        service.remove(&info.id)?;
        Ok::<_, DaemonError>(info)
    })
    .await??;
    publish(&state, "destroy", &info);
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn prune(State(state): State<AppState>, params: Params) -> Result<Response, DaemonError> {
    let filters = params.filters()?;
    let service = service(&state)?;
    let (before, removed) = berth_fs::blocking(move || {
        let before = service.list();
        let removed = service.prune(&filters)?;
        Ok::<_, DaemonError>((before, removed))
    })
    .await??;
    for info in before.iter().filter(|n| removed.contains(&n.name)) {
        publish(&state, "destroy", info);
    }
    Ok(responses::json(
        StatusCode::OK,
        &json!({ "NetworksDeleted": removed }),
    ))
}

/// The body of `POST /networks/{id}/connect`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConnectBody {
    container: String,
    #[serde(default)]
    endpoint_config: Option<EndpointSettings>,
}

/// The body of `POST /networks/{id}/disconnect`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DisconnectBody {
    container: String,
}

async fn connect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, DaemonError> {
    let body: ConnectBody = parse_body(&body)?;
    state
        .containers
        .network_connect(&id, &body.container, body.endpoint_config)
        .await?;
    Ok(StatusCode::OK.into_response())
}

async fn disconnect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, DaemonError> {
    let body: DisconnectBody = parse_body(&body)?;
    state
        .containers
        .network_disconnect(&id, &body.container)
        .await?;
    Ok(StatusCode::OK.into_response())
}
