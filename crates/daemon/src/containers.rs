//! Container and exec endpoints: parse the request, call [`ContainerService`], shape the answer.
//!
//! [`ContainerService`]: berth_container::ContainerService
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post};
use berth_api::models::{ContainerCreateBody, ContainerUpdateBody, ExecConfig, ExecStartConfig};
use berth_api::shape;
use berth_api::stdcopy;
use berth_container::{AttachOptions, ListOptions, LogChunk, LogsOptions, WaitCondition};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::DaemonError;
use crate::hijack;
use crate::query::{Params, parse_body, parse_body_or_default};
use crate::responses::receiver_stream;
use crate::responses::{self, JSON};

/// The container and exec routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/json", get(list))
        .route("/containers/create", post(create))
        .route("/containers/prune", post(prune))
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/start", post(start))
        .route("/containers/{id}/stop", post(stop))
        .route("/containers/{id}/restart", post(restart))
        .route("/containers/{id}/kill", post(kill))
        .route("/containers/{id}", delete(remove))
        .route("/containers/{id}/{link}", any(remove_link))
        .route("/containers/{id}/pause", post(pause))
        .route("/containers/{id}/unpause", post(unpause))
        .route("/containers/{id}/wait", post(wait))
        .route("/containers/{id}/rename", post(rename))
        .route("/containers/{id}/update", post(update))
        .route("/containers/{id}/logs", get(logs))
        .route("/containers/{id}/attach", post(attach))
        .route("/containers/{id}/resize", post(resize))
        .route("/containers/{id}/exec", post(exec_create))
        .route("/containers/{id}/top", get(top))
        .route("/containers/{id}/stats", get(stats))
        .route("/containers/{id}/changes", get(changes))
        .route("/containers/{id}/export", get(export))
        .route(
            "/containers/{id}/archive",
            get(crate::copy::archive)
                .put(crate::copy::archive)
                .head(crate::copy::archive),
        )
        .route("/exec/{id}/start", post(exec_start))
        .route("/exec/{id}/json", get(exec_inspect))
        .route("/exec/{id}/resize", post(exec_resize))
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

async fn list(State(state): State<AppState>, params: Params) -> Result<Response, DaemonError> {
    let limit = params
        .parse::<i64>("limit")?
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n > 0);
    let options = ListOptions {
        all: params.flag("all"),
        limit,
        size: params.flag("size"),
        filters: params.filters()?,
    };
    let containers = state.containers.list(options).await?;
    Ok(responses::shaped(StatusCode::OK, &containers, |v| {
        shape::each(v, shape::container_summary)
    }))
}

async fn create(
    State(state): State<AppState>,
    params: Params,
    body: Bytes,
) -> Result<Response, DaemonError> {
    let mut config: ContainerCreateBody = parse_body(&body)?;
    // daemon.json's log-driver/log-opts (reloaded by SIGHUP) for what the request leaves out.
    match state.settings.read() {
        Ok(settings) => settings.apply_log_defaults(&mut config),
        Err(poisoned) => poisoned.into_inner().apply_log_defaults(&mut config),
    }
    let name = params.non_empty("name").map(str::to_owned);
    let created = state.containers.create(name, config).await?;
    Ok(responses::json(
        StatusCode::CREATED,
        &json!({ "Id": created.id, "Warnings": created.warnings }),
    ))
}

async fn prune(State(state): State<AppState>, params: Params) -> Result<Response, DaemonError> {
    let pruned = state.containers.prune(params.filters()?).await?;
    let mut body = serde_json::to_value(&pruned).unwrap_or(Value::Null);
    // Docker always sends both fields; `docker container prune` prints the reclaimed size.
    if let Value::Object(map) = &mut body {
        map.entry("ContainersDeleted").or_insert(json!([]));
        map.entry("SpaceReclaimed").or_insert(json!(0));
    }
    Ok(responses::json(StatusCode::OK, &body))
}

async fn inspect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, DaemonError> {
    let container = state
        .containers
        .inspect_json(&id, params.flag("size"))
        .await?;
    Ok(responses::shaped(
        StatusCode::OK,
        &container,
        shape::container_inspect,
    ))
}

async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, DaemonError> {
    state.containers.start(&id).await?;
    Ok(no_content())
}

async fn stop(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, DaemonError> {
    let signal = params.non_empty("signal").map(str::to_owned);
    state
        .containers
        .stop(&id, signal, params.parse("t")?)
        .await?;
    Ok(no_content())
}

async fn restart(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, DaemonError> {
    let signal = params.non_empty("signal").map(str::to_owned);
    state
        .containers
        .restart(&id, signal, params.parse("t")?)
        .await?;
    Ok(no_content())
}

async fn kill(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, DaemonError> {
    let signal = params.non_empty("signal").map(str::to_owned);
    state.containers.kill(&id, signal).await?;
    Ok(no_content())
}

async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, DaemonError> {
    state
        .containers
        .remove(&id, params.flag("force"), params.flag("v"))
        .await?;
    Ok(no_content())
}

/// `DELETE /containers/{parent}/{alias}?link=1`: removes a legacy link. Any other request
/// of that shape matches no route.
async fn remove_link(
    State(state): State<AppState>,
    method: axum::http::Method,
    Path((parent, alias)): Path<(String, String)>,
    params: Params,
) -> Result<Response, DaemonError> {
    if method != axum::http::Method::DELETE || !params.flag("link") {
        return Err(DaemonError::RouteNotFound);
    }
    state.containers.remove_link(&parent, &alias).await?;
    Ok(no_content())
}

async fn pause(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, DaemonError> {
    state.containers.pause(&id).await?;
    Ok(no_content())
}

async fn unpause(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, DaemonError> {
    state.containers.unpause(&id).await?;
    Ok(no_content())
}

/// `condition=` of `/wait`.
pub fn wait_condition(value: Option<&str>) -> Result<WaitCondition, DaemonError> {
    match value.unwrap_or_default() {
        "" | "not-running" => Ok(WaitCondition::NotRunning),
        "next-exit" => Ok(WaitCondition::NextExit),
        "removed" => Ok(WaitCondition::Removed),
        other => Err(DaemonError::InvalidWaitCondition {
            condition: other.to_owned(),
        }),
    }
}

/// `POST /containers/{id}/wait`: registers the waiter, sends the headers at once (the CLI
/// starts the container only after they arrive), and the body when the condition is met.
async fn wait(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, DaemonError> {
    let condition = wait_condition(params.get("condition"))?;
    let handle = state.containers.wait(&id, condition).await?;
    Ok(responses::deferred_json(async move {
        let result = handle.result().await;
        let mut body = serde_json::to_value(&result).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut body {
            map.entry("Error").or_insert(Value::Null);
        }
        body
    }))
}

async fn rename(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, DaemonError> {
    let name = params
        .non_empty("name")
        .ok_or(DaemonError::MissingParameter { param: "name" })?;
    state.containers.rename(&id, name).await?;
    Ok(no_content())
}

async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, DaemonError> {
    let update: ContainerUpdateBody = parse_body_or_default(&body)?;
    let updated = state.containers.update(&id, update).await?;
    let warnings = updated.warnings.unwrap_or_default();
    Ok(responses::json(
        StatusCode::OK,
        &json!({ "Warnings": warnings }),
    ))
}

/// One log chunk as the wire carries it: raw for a TTY, a stdcopy frame otherwise.
pub fn log_chunk_bytes(tty: bool, chunk: LogChunk) -> Bytes {
    if tty {
        chunk.data
    } else {
        Bytes::from(stdcopy::frame(chunk.stream, &chunk.data))
    }
}

/// `tail=`: `all` (or anything not a number) is everything.
fn parse_tail(value: Option<&str>) -> Option<usize> {
    value.and_then(|v| v.trim().parse().ok())
}

async fn logs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, DaemonError> {
    let options = LogsOptions {
        follow: params.flag("follow"),
        stdout: params.flag("stdout"),
        stderr: params.flag("stderr"),
        since: params.timestamp("since")?.filter(|&t| t > 0.0),
        until: params.timestamp("until")?.filter(|&t| t > 0.0),
        timestamps: params.flag("timestamps"),
        tail: parse_tail(params.get("tail")),
    };
    if !options.stdout && !options.stderr {
        return Err(DaemonError::NoLogStream);
    }
    let stream = state.containers.logs(&id, options).await?;
    let tty = stream.tty;
    let chunks = receiver_stream(stream.rx).map(move |chunk| log_chunk_bytes(tty, chunk));
    Ok(responses::streaming(
        hijack::stream_content_type(tty),
        chunks,
    ))
}

async fn attach(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
    mut request: Request,
) -> Result<Response, DaemonError> {
    if !hijack::wants_upgrade(request.headers()) {
        return Err(DaemonError::UpgradeRequired { endpoint: "attach" });
    }
    let options = AttachOptions {
        stdin: params.flag("stdin"),
        stdout: params.flag("stdout"),
        stderr: params.flag("stderr"),
        stream: params.flag("stream"),
        logs: params.flag("logs"),
        detach_keys: params.non_empty("detachKeys").map(str::to_owned),
    };
    // Validate before the 101: afterwards errors can only end the stream.
    let attachment = state.containers.attach(&id, options).await?;
    let tty = attachment.tty;
    Ok(hijack::upgrade(&mut request, tty, move |conn| {
        attachment.run(conn)
    }))
}

/// `h` and `w` of a resize.
fn console_size(params: &Params) -> Result<(u16, u16), DaemonError> {
    Ok((params.require("h")?, params.require("w")?))
}

async fn resize(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, DaemonError> {
    let (height, width) = console_size(&params)?;
    state.containers.resize(&id, height, width).await?;
    Ok(StatusCode::OK.into_response())
}

async fn exec_create(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, DaemonError> {
    let config: ExecConfig = parse_body(&body)?;
    let exec_id = state.containers.exec_create(&id, config).await?;
    Ok(responses::json(
        StatusCode::CREATED,
        &json!({ "Id": exec_id }),
    ))
}

async fn exec_start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    mut request: Request,
) -> Result<Response, DaemonError> {
    let upgrade = hijack::wants_upgrade(request.headers());
    let body = axum::body::to_bytes(std::mem::take(request.body_mut()), 1 << 20)
        .await
        .map_err(|source| DaemonError::ReadBody { source })?;
    let config: ExecStartConfig = parse_body_or_default(&body)?;
    let detach = config.detach.unwrap_or(false);
    if !detach && !upgrade {
        return Err(DaemonError::UpgradeRequired {
            endpoint: "exec start",
        });
    }
    let session = state.containers.exec_start(&id, config).await?;
    if detach {
        tokio::spawn(session.run(None));
        return Ok(StatusCode::OK.into_response());
    }
    let tty = session.tty;
    Ok(hijack::upgrade(&mut request, tty, move |conn| {
        session.run(Some(conn))
    }))
}

async fn exec_inspect(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, DaemonError> {
    let exec = state.containers.exec_inspect(&id).await?;
    Ok(responses::json(StatusCode::OK, &exec))
}

async fn exec_resize(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, DaemonError> {
    let (height, width) = console_size(&params)?;
    state.containers.exec_resize(&id, height, width).await?;
    Ok(StatusCode::OK.into_response())
}

async fn top(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, DaemonError> {
    let ps_args = params.non_empty("ps_args").map(str::to_owned);
    let processes = state.containers.top(&id, ps_args).await?;
    Ok(responses::json(StatusCode::OK, &processes))
}

/// `GET /containers/{id}/stats`: JSON lines, one per sample, while streaming; one object with
/// `stream=0` (or `one-shot=1`).
async fn stats(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, DaemonError> {
    let stream = params.flag_or("stream", true) && !params.flag("one-shot");
    let mut samples = state.containers.stats(&id, stream).await?;
    if stream {
        let lines = receiver_stream(samples).map(|sample| {
            let mut sample = serde_json::to_value(&sample).unwrap_or_default();
            shape::stats(&mut sample);
            responses::json_line(&sample)
        });
        return Ok(responses::streaming(JSON, lines));
    }
    let sample = samples.recv().await;
    Ok(responses::shaped(StatusCode::OK, &sample, shape::stats))
}

async fn changes(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, DaemonError> {
    let changes = state.containers.changes(&id).await?;
    Ok(responses::json(StatusCode::OK, &changes_body(changes)))
}

/// No change is `null`, as dockerd writes its nil list (bollard reads it as `None`).
fn changes_body(
    changes: Vec<berth_api::models::FilesystemChange>,
) -> Option<Vec<berth_api::models::FilesystemChange>> {
    (!changes.is_empty()).then_some(changes)
}

async fn export(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, DaemonError> {
    let reader = state.containers.export(&id).await?;
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(reader));
    Ok(responses::with_content_type(
        StatusCode::OK,
        "application/x-tar",
        body,
    ))
}

#[cfg(test)]
mod tests {
    use berth_api::stdcopy::StreamType;

    use super::*;

    #[test]
    fn no_changes_is_null() {
        assert_eq!(
            serde_json::to_string(&changes_body(Vec::new())).unwrap(),
            "null"
        );
        let one = berth_api::models::FilesystemChange {
            path: "/tmp".into(),
            kind: berth_api::models::ChangeType::_0,
        };
        assert!(
            serde_json::to_string(&changes_body(vec![one]))
                .unwrap()
                .starts_with("[{")
        );
    }

    #[test]
    fn wait_conditions() {
        assert_eq!(
            wait_condition(None).expect("default"),
            WaitCondition::NotRunning
        );
        assert_eq!(
            wait_condition(Some("not-running")).expect("ok"),
            WaitCondition::NotRunning
        );
        assert_eq!(
            wait_condition(Some("next-exit")).expect("ok"),
            WaitCondition::NextExit
        );
        assert_eq!(
            wait_condition(Some("removed")).expect("ok"),
            WaitCondition::Removed
        );
        assert!(matches!(
            wait_condition(Some("later")),
            Err(DaemonError::InvalidWaitCondition { .. })
        ));
    }

    #[test]
    fn malformed_bodies_carry_the_serde_reason() {
        let error = parse_body::<ContainerCreateBody>(br#"{"Image": 5}"#).expect_err("bad type");
        let message = error.to_string();
        assert!(message.contains("invalid type"), "{message}");
        assert!(matches!(error, DaemonError::InvalidBody { .. }));
        assert!(parse_body::<ContainerCreateBody>(b"{").is_err());
        let body: ContainerCreateBody =
            parse_body(br#"{"Image":"busybox","Cmd":["true"]}"#).expect("valid");
        assert_eq!(body.image.as_deref(), Some("busybox"));
        let empty: ExecStartConfig = parse_body_or_default(b"").expect("empty is default");
        assert_eq!(empty.detach, None);
    }

    #[test]
    fn log_chunks_are_framed_unless_tty() {
        let chunk = || LogChunk {
            stream: StreamType::Stderr,
            data: Bytes::from_static(b"hi\n"),
        };
        assert_eq!(&log_chunk_bytes(true, chunk())[..], b"hi\n");
        assert_eq!(
            &log_chunk_bytes(false, chunk())[..],
            &[2, 0, 0, 0, 0, 0, 0, 3, b'h', b'i', b'\n']
        );
        assert_eq!(parse_tail(Some("all")), None);
        assert_eq!(parse_tail(Some("10")), Some(10));
        assert_eq!(parse_tail(None), None);
    }
}
