//! `HEAD`, `GET` and `PUT /containers/{id}/archive` (what `docker cp` and docker-py's
//! `get_archive`/`put_archive` call): the stat travels base64-encoded in
//! `X-Docker-Container-Path-Stat`, the content as a tar stream.
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use berth_container::{PathStat, PutOptions};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::AppState;
use crate::error::DaemonError;
use crate::query::Params;
use crate::responses::receiver_stream;

/// The header carrying the stat of the path.
pub const STAT_HEADER: &str = "x-docker-container-path-stat";

fn stat_header(stat: &PathStat) -> Option<HeaderValue> {
    let json = serde_json::to_vec(stat).ok()?;
    HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(json)).ok()
}

/// `HEAD`, `GET` or `PUT`, by method.
pub async fn archive(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
    request: Request,
) -> Result<Response, DaemonError> {
    let path = params
        .non_empty("path")
        .ok_or(DaemonError::MissingParameter { param: "path" })?
        .to_string();
    match *request.method() {
        Method::HEAD => {
            let stat = state.containers.archive_stat(&id, &path).await?;
            let mut response = StatusCode::OK.into_response();
            if let Some(v) = stat_header(&stat) {
                response.headers_mut().insert(STAT_HEADER, v);
            }
            Ok(response)
        }
        Method::PUT => {
            let options = PutOptions {
                no_overwrite_dir_non_dir: params.flag("noOverwriteDirNonDir"),
                copy_uid_gid: params.flag("copyUIDGID"),
            };
            let (tx, rx) = mpsc::channel(8);
            let mut body = request.into_body().into_data_stream();
            // The whole body is read even when the copy fails early: a client still writing
            // it would otherwise see a broken pipe instead of the answer.
            let feeder = tokio::spawn(async move {
                let mut tx = Some(tx);
                while let Some(chunk) = body.next().await {
                    let bytes = chunk?;
                    if let Some(sender) = &tx
                        && sender.send(bytes).await.is_err()
                    {
                        tx = None;
                    }
                }
                Ok(())
            });
            let result = state.containers.archive_put(&id, &path, options, rx).await;
            let fed = feeder.await;
            result?;
            if let Ok(Err(source)) = fed {
                return Err(DaemonError::ReadBody { source });
            }
            Ok(StatusCode::OK.into_response())
        }
        _ => {
            let (stat, stream) = state.containers.archive_get(&id, &path).await?;
            let mut response = Body::from_stream(receiver_stream(stream)).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-tar"),
            );
            if let Some(v) = stat_header(&stat) {
                headers.insert(STAT_HEADER, v);
            }
            Ok(response)
        }
    }
}
