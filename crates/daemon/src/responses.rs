//! Response shapes beyond plain JSON: streams flushed per message (events, stats, logs, pull
//! progress) and a body that arrives later than its headers (`wait`); [`receiver_stream`] turns
//! the channel a producer task writes into such a stream.
//!
//! hyper writes the status line and headers as soon as the handler returns, before the body's
//! first chunk, so a client blocked on the headers (`docker run` waiting for `/wait` before it
//! calls `/start`) proceeds at once.
use std::convert::Infallible;
use std::future::Future;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::Stream;
use serde::Serialize;

/// `Content-Type: application/json`, exactly (clients compare it with `==`).
pub const JSON: &str = "application/json";

/// A JSON value followed by a newline: one message of a JSON-lines stream.
pub fn json_line<T: Serialize>(value: &T) -> Bytes {
    let mut line = serde_json::to_vec(value).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// A `status` response with a JSON body.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    with_content_type(status, JSON, Body::from(body))
}

/// A `status` response with `value` as JSON in dockerd's shape (`berth_api::shape`): the keys
/// the typed models skip that dockerd sends as `null`.
pub fn shaped<T: Serialize>(
    status: StatusCode,
    value: &T,
    shape: fn(&mut serde_json::Value),
) -> Response {
    let mut value = serde_json::to_value(value).unwrap_or_default();
    shape(&mut value);
    json(status, &value)
}

/// A response of `status` with `content_type` and `body`.
pub fn with_content_type(status: StatusCode, content_type: &'static str, body: Body) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A 200 whose body is `chunks`, each sent (and flushed) as it comes.
pub fn streaming<S>(content_type: &'static str, chunks: S) -> Response
where
    S: Stream<Item = Bytes> + Send + 'static,
{
    use futures_util::StreamExt;
    let body = Body::from_stream(chunks.map(Ok::<Bytes, Infallible>));
    with_content_type(StatusCode::OK, content_type, body)
}

/// A 200 JSON response whose headers go out now and whose body is `value` once it resolves.
pub fn deferred_json<F, T>(value: F) -> Response
where
    F: Future<Output = T> + Send + 'static,
    T: Serialize,
{
    let body = futures_util::stream::once(async move {
        let value = value.await;
        Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
    });
    streaming(JSON, body)
}

/// The messages of `receiver` as a stream, ending when every sender is gone.
pub fn receiver_stream<T: Send + 'static>(
    receiver: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}
