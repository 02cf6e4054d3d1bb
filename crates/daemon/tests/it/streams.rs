//! Streaming and hijacked responses: headers must reach the client before any body exists.
use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::routing::post;
use berth_api::models::EventMessageTypeEnum;
use berth_api::stdcopy::{self, StreamType};
use berth_daemon::hijack;
use berth_daemon::responses::deferred_json;
use http_body_util::BodyExt;
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::harness::{TestDaemon, TestServer, send};

const PATIENCE: Duration = Duration::from_secs(5);

/// A test session: waits for the client's `ping`, answers a framed `pong`, then echoes its
/// remaining input on stderr until EOF.
async fn ping_pong(mut conn: berth_container::BoxConn) {
    let mut ping = [0u8; 4];
    if conn.read_exact(&mut ping).await.is_err() {
        return;
    }
    let reply = if &ping == b"ping" {
        &b"pong"[..]
    } else {
        &b"what"[..]
    };
    let _ = conn
        .write_all(&stdcopy::frame(StreamType::Stdout, reply))
        .await;
    let mut rest = Vec::new();
    let _ = conn.read_to_end(&mut rest).await;
    let _ = conn
        .write_all(&stdcopy::frame(StreamType::Stderr, &rest))
        .await;
    let _ = conn.shutdown().await;
}

#[tokio::test]
async fn hijack_answers_101_before_any_output() {
    let app = Router::new().route(
        "/attach",
        post(|mut request: Request| async move { hijack::upgrade(&mut request, false, ping_pong) }),
    );
    let server = TestServer::serve(tempfile::tempdir().expect("tempdir"), app);
    let response = tokio::time::timeout(
        PATIENCE,
        send(
            &server.socket,
            "POST",
            "/attach",
            &[("connection", "Upgrade"), ("upgrade", "tcp")],
            "",
        ),
    )
    .await
    .expect("the 101 must come before the session writes anything");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.docker.multiplexed-stream"
    );
    assert_eq!(response.headers()["upgrade"], "tcp");
    assert_eq!(response.headers()["connection"], "Upgrade");

    let upgraded = hyper::upgrade::on(response).await.expect("upgrade");
    let mut conn = TokioIo::new(upgraded);
    conn.write_all(b"ping").await.expect("write");
    let mut frame = [0u8; 12];
    conn.read_exact(&mut frame).await.expect("pong frame");
    assert_eq!(&frame[..8], &stdcopy::header(StreamType::Stdout, 4));
    assert_eq!(&frame[8..], b"pong");
    // Half-close, as the CLI does at stdin EOF: output must still arrive afterwards.
    conn.write_all(b"bye").await.expect("write");
    conn.shutdown().await.expect("half-close");
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, conn.read_to_end(&mut rest))
        .await
        .expect("session ends")
        .expect("read");
    assert_eq!(rest, stdcopy::frame(StreamType::Stderr, b"bye"));
    server.stop().await;
}

#[tokio::test]
async fn deferred_body_sends_headers_first() {
    let (release, released) = oneshot::channel::<i64>();
    let released = std::sync::Arc::new(std::sync::Mutex::new(Some(released)));
    let app = Router::new().route(
        "/wait",
        post(move || {
            let released = released.lock().expect("lock").take();
            async move {
                deferred_json(async move {
                    let code = match released {
                        Some(rx) => rx.await.unwrap_or(-1),
                        None => -1,
                    };
                    serde_json::json!({ "StatusCode": code, "Error": null })
                })
            }
        }),
    );
    let server = TestServer::serve(tempfile::tempdir().expect("tempdir"), app);
    let response = tokio::time::timeout(PATIENCE, send(&server.socket, "POST", "/wait", &[], ""))
        .await
        .expect("headers arrive while the body is still pending");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    release.send(7).expect("release");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(body, serde_json::json!({ "StatusCode": 7, "Error": null }));
    server.stop().await;
}

#[tokio::test]
async fn events_stream_each_message_as_it_happens() {
    let daemon = TestDaemon::start().await;
    let response = tokio::time::timeout(
        PATIENCE,
        send(
            daemon.socket(),
            "GET",
            "/v1.44/events?filters=%7B%22type%22%3A%5B%22image%22%5D%7D",
            &[],
            "",
        ),
    )
    .await
    .expect("events headers are sent at once");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");

    let attributes = HashMap::from([("name".to_owned(), "web".to_owned())]);
    daemon.events.publish(
        EventMessageTypeEnum::CONTAINER,
        "start",
        "c0ffee",
        attributes.clone(),
    );
    daemon.events.publish(
        EventMessageTypeEnum::IMAGE,
        "tag",
        "sha256:abc",
        HashMap::from([("name".to_owned(), "busybox:v2".to_owned())]),
    );
    let mut body = response.into_body();
    let frame = tokio::time::timeout(PATIENCE, body.frame())
        .await
        .expect("the image event is flushed on its own")
        .expect("a frame")
        .expect("no error");
    let data = frame.into_data().expect("data frame");
    let event: serde_json::Value = serde_json::from_slice(&data).expect("one JSON line");
    assert!(data.ends_with(b"\n"));
    assert_eq!(event["Type"], "image");
    assert_eq!(event["Action"], "tag");
    assert_eq!(event["status"], "tag");
    assert_eq!(event["id"], "sha256:abc");
    assert_eq!(event["Actor"]["Attributes"]["name"], "busybox:v2");
    drop(body);

    // `until` in the past: the stream ends at once, empty.
    let ended = tokio::time::timeout(
        PATIENCE,
        crate::harness::call(daemon.socket(), "GET", "/events?until=1", ""),
    )
    .await
    .expect("a past `until` ends the stream");
    assert_eq!(ended.status, StatusCode::OK);
    assert!(ended.body.is_empty());
    daemon.stop().await;
}
