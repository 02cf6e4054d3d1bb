//! `POST /commit`: a container becomes an image.
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use berth_container::CommitOptions;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::DaemonError;
use crate::query::Params;
use crate::responses;

/// The commit route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/commit", post(commit))
}

/// `repo` plus `tag` as one reference (`repo` may carry its own tag).
fn reference(params: &Params) -> Option<String> {
    let repo = params.non_empty("repo")?;
    let last = repo.rsplit('/').next().unwrap_or(repo);
    Some(match params.non_empty("tag") {
        Some(tag) if !last.contains(':') => format!("{repo}:{tag}"),
        _ => repo.to_owned(),
    })
}

async fn commit(
    State(state): State<AppState>,
    params: Params,
    body: Bytes,
) -> Result<Response, DaemonError> {
    let container = params
        .non_empty("container")
        .ok_or(DaemonError::MissingParameter { param: "container" })?
        .to_owned();
    // The docker CLI sends `null` or a (partial) container config.
    let config = Some(crate::query::parse_body::<Value>(&body)?).filter(Value::is_object);
    let options = CommitOptions {
        reference: reference(&params),
        comment: params.non_empty("comment").map(str::to_owned),
        author: params.non_empty("author").map(str::to_owned),
        changes: params
            .all("changes")
            .into_iter()
            .map(str::to_owned)
            .collect(),
        pause: params.flag_or("pause", true),
        config,
    };
    let record = state.containers.commit(&container, options).await?;
    Ok(responses::json(
        StatusCode::CREATED,
        &json!({ "Id": record.id }),
    ))
}
