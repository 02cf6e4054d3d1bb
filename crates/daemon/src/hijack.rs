//! Hijacked connections (attach, exec start): answer `101 UPGRADED` at once, then hand the raw
//! duplex socket to the session.
//!
//! The Docker client requires the 101 before any output exists (`docker run` attaches, and
//! only calls `/start` once the attach response has arrived), so the session runs in its own
//! task after the upgrade completes. The stream is raw for a TTY and stdcopy-framed otherwise;
//! the Content-Type says which.
use std::future::Future;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_container::BoxConn;
use hyper_util::rt::TokioIo;

/// Content-Type of a TTY stream.
pub const RAW_STREAM: &str = "application/vnd.docker.raw-stream";
/// Content-Type of a stdcopy-framed stream.
pub const MULTIPLEXED_STREAM: &str = "application/vnd.docker.multiplexed-stream";

/// Whether the client asked to upgrade the connection (`Upgrade: tcp`).
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
}

/// The stream Content-Type for a session with or without a TTY.
pub fn stream_content_type(tty: bool) -> &'static str {
    if tty { RAW_STREAM } else { MULTIPLEXED_STREAM }
}

/// Answers 101 now and runs `session` on the connection once hyper hands it over.
pub fn upgrade<F, Fut>(request: &mut Request, tty: bool, session: F) -> Response
where
    F: FnOnce(BoxConn) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let on_upgrade = hyper::upgrade::on(request);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => session(Box::new(TokioIo::new(upgraded))).await,
            Err(error) => tracing::warn!(%error, "connection upgrade failed"),
        }
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(stream_content_type(tty)),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    response
}
