//! Endpoints of features berth does not have, answered as dockerd answers them when the
//! feature is off: swarm (`/swarm`, `/services`, `/nodes`, `/tasks`, `/secrets`, `/configs`:
//! 503 "This node is not a swarm manager…") and plugins (none installed). Clients depend on
//! these answers (docker-py's own test teardown lists services and secrets).
use axum::Json;
use axum::Router;
use axum::extract::Path;
use axum::routing::{any, get};
use serde_json::{Value, json};

use crate::AppState;
use crate::error::DaemonError;

/// The swarm resources: each answers 503 at its root and below, whatever the method.
const SWARM: [&str; 6] = ["swarm", "services", "nodes", "tasks", "secrets", "configs"];

/// The routes.
pub fn routes() -> Router<AppState> {
    let mut router = Router::new()
        .route("/plugins", get(plugins))
        .route("/plugins/{name}/json", get(plugin));
    for resource in SWARM {
        router = router
            .route(&format!("/{resource}"), any(not_swarm_manager))
            .route(&format!("/{resource}/{{*rest}}"), any(not_swarm_manager));
    }
    router
}

async fn not_swarm_manager() -> DaemonError {
    DaemonError::NotSwarmManager
}

/// `GET /plugins`: none.
async fn plugins() -> Json<Value> {
    Json(json!([]))
}

/// `GET /plugins/{name}/json`.
async fn plugin(Path(name): Path<String>) -> DaemonError {
    DaemonError::PluginNotFound { name }
}
