//! Network endpoints: parse the request, call the network service (or, for connect and
//! disconnect, the container service), shape the answer.
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use berth_api::models::EndpointSettings;
use berth_network::{CreateRequest, NetworkService, network_matches};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::containers::parse_body;
use crate::error::DaemonError;
use crate::query::Params;
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

fn service(state: &AppState) -> Result<Arc<NetworkService>, DaemonError> {
    state
        .containers
        .networks()
        .cloned()
        .ok_or(DaemonError::NotImplemented {
            feature: "networking (this daemon runs without a network service)",
        })
}

/// Runs a blocking network-service call off the async runtime.
async fn blocking<T, F>(service: Arc<NetworkService>, f: F) -> Result<T, DaemonError>
where
    T: Send + 'static,
    F: FnOnce(&NetworkService) -> Result<T, berth_network::NetworkError> + Send + 'static,
{
    tokio::task::spawn_blocking(move || f(&service))
        .await
        .map_err(|source| DaemonError::Task { source })?
        .map_err(DaemonError::from)
}

async fn list(State(state): State<AppState>, params: Params) -> Result<Response, DaemonError> {
    let filters = params.filters()?.into_iter().collect();
    let list = blocking(service(&state)?, move |s| {
        let mut out = Vec::new();
        for info in s.list() {
            if network_matches(&info, &filters)? {
                out.push(info);
            }
        }
        Ok(out)
    })
    .await?;
    Ok(responses::json(StatusCode::OK, &list))
}

async fn inspect(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, DaemonError> {
    let info = blocking(service(&state)?, move |s| s.inspect(&id)).await?;
    Ok(responses::json(StatusCode::OK, &info))
}

async fn create(State(state): State<AppState>, body: Bytes) -> Result<Response, DaemonError> {
    let request: CreateRequest = parse_body(&body)?;
    let info = blocking(service(&state)?, move |s| s.create(&request)).await?;
    Ok(responses::json(
        StatusCode::CREATED,
        &json!({ "Id": info.id, "Warning": "" }),
    ))
}

async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, DaemonError> {
    blocking(service(&state)?, move |s| s.remove(&id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn prune(State(state): State<AppState>, params: Params) -> Result<Response, DaemonError> {
    let filters = params.filters()?.into_iter().collect();
    let removed = blocking(service(&state)?, move |s| s.prune(&filters)).await?;
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
