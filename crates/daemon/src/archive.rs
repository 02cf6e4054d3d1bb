//! `save` and `load`: `GET /images/get`, `GET /images/{name}/get` and `POST /images/load`.
//!
//! Both stream. `save` resolves the names first (an unknown one is a plain 404), then a
//! blocking task writes the archive into 1 MiB chunks that go out as they fill; a failure
//! mid-way aborts the connection, so the client sees a broken transfer, never a tar that looks
//! complete. `load` reads the request body as it arrives and answers with Docker's JSON
//! message stream (`Loading layer` progress unless `quiet`, then `Loaded image: …`). As in
//! moby, an error before any message went out is a plain HTTP error with its status; after
//! that it is an `errorDetail` message.
//!
//! `BERTH_LOAD_SIZE_LIMIT` (bytes, in the daemon's environment) bounds how far a loaded
//! archive may expand; by default it is half the free space of the data root.
use std::io::{self, Write};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use berth_api::progress::JsonMessage;
use berth_image::{LoadOptions, LoadProgress, LoadedImage};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::error::DaemonError;
use crate::image_state::{ImagesState, publish};
use crate::query::Params;
use crate::responses::{self, JSON, receiver_stream};

/// Chunks of the archive sent to the client.
const CHUNK: usize = 1024 * 1024;

/// The environment variable that sets the load size limit.
pub const LOAD_SIZE_LIMIT_ENV: &str = "BERTH_LOAD_SIZE_LIMIT";

/// `GET /images/get?names=a&names=b:tag`.
pub async fn save_many(
    State(state): State<ImagesState>,
    params: Params,
) -> Result<Response, DaemonError> {
    let names: Vec<String> = params.all("names").into_iter().map(str::to_owned).collect();
    save(&state, names).await
}

/// `GET /images/{name}/get` and `GET /images/get`: the archive, streamed.
pub async fn save(state: &ImagesState, names: Vec<String>) -> Result<Response, DaemonError> {
    if names.is_empty() {
        return Err(DaemonError::MissingParameter { param: "names" });
    }
    let store = Arc::clone(&state.store);
    let set = berth_fs::blocking(move || store.save(&names)).await??;
    for id in set.image_ids() {
        publish(&state.events, "save", &id, &id);
    }
    let (sender, receiver) = mpsc::channel::<io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkSender {
            sender,
            buffer: BytesMut::with_capacity(CHUNK),
        };
        if let Err(e) = set.write_to(&mut out) {
            // The client sees the transfer break; the reason goes to the log.
            tracing::warn!(error = %e, "save failed");
            let _ = out
                .sender
                .blocking_send(Err(io::Error::other(e.to_string())));
        }
    });
    let body = axum::body::Body::from_stream(receiver_stream(receiver));
    Ok(responses::with_content_type(
        StatusCode::OK,
        "application/x-tar",
        body,
    ))
}

/// Collects written bytes into chunks and sends each full one to the response body.
struct ChunkSender {
    sender: mpsc::Sender<io::Result<Bytes>>,
    buffer: BytesMut,
}

impl ChunkSender {
    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = self.buffer.split().freeze();
        self.buffer.reserve(CHUNK);
        self.sender
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }
}

impl Write for ChunkSender {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// What the loading task reports.
enum LoadEvent {
    Line(Bytes),
    Done(Result<Vec<LoadedImage>, DaemonError>),
}

/// The load size limit from the daemon's environment, if set.
fn load_size_limit() -> Result<Option<u64>, DaemonError> {
    match std::env::var(LOAD_SIZE_LIMIT_ENV) {
        Ok(value) if !value.trim().is_empty() => {
            value
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| DaemonError::InvalidParameter {
                    param: LOAD_SIZE_LIMIT_ENV,
                    value,
                })
        }
        _ => Ok(None),
    }
}

/// `POST /images/load[?quiet=1]` with the archive as the body.
pub async fn load(
    State(state): State<ImagesState>,
    params: Params,
    request: Request,
) -> Result<Response, DaemonError> {
    let quiet = params.flag("quiet");
    let options = LoadOptions {
        size_limit: load_size_limit()?,
    };
    let body = request
        .into_body()
        .into_data_stream()
        .map(|chunk| chunk.map_err(io::Error::other));
    // The bridge blocks on the async body from the blocking thread; it must be made here.
    let mut input = SyncIoBridge::new(StreamReader::new(body));
    let (sender, mut receiver) = mpsc::channel::<LoadEvent>(16);
    let store = state.store.clone();
    let progress_sender = sender.clone();
    let task = tokio::task::spawn_blocking(move || {
        let mut progress = |p: LoadProgress<'_>| {
            if !quiet {
                let line = JsonMessage::progress("Loading layer", p.id, p.current, p.total);
                // Best effort: a slow reader loses progress lines, never stalls the load.
                let _ = progress_sender.try_send(LoadEvent::Line(line.to_line().into()));
            }
        };
        let result = store.load(&mut input, &options, &mut progress);
        if result.is_err() {
            // Read the rest of the upload, so the client gets the answer rather than a
            // broken pipe while it is still sending.
            let _ = io::copy(&mut input, &mut io::sink());
        }
        result
    });
    tokio::spawn(async move {
        let result = match task.await {
            Ok(result) => result.map_err(DaemonError::from),
            Err(source) => Err(DaemonError::Task { source }),
        };
        let _ = sender.send(LoadEvent::Done(result)).await;
    });
    let first = match receiver.recv().await {
        Some(LoadEvent::Done(Err(e))) => return Err(e),
        first => first,
    };
    let events = state.events.clone();
    let lines = futures_util::stream::unfold(
        (first, receiver, events),
        |(first, mut receiver, events)| async move {
            let event = match first {
                Some(event) => event,
                None => receiver.recv().await?,
            };
            let bytes = match event {
                LoadEvent::Line(line) => line,
                LoadEvent::Done(result) => finish(result, &events),
            };
            Some((bytes, (None, receiver, events)))
        },
    );
    Ok(responses::streaming(JSON, lines))
}

/// The closing messages of a load: what was loaded, or the error.
fn finish(
    result: Result<Vec<LoadedImage>, DaemonError>,
    events: &berth_container::EventBus,
) -> Bytes {
    let mut out = Vec::new();
    match result {
        Ok(images) => {
            for image in &images {
                for (tag, old) in &image.replaced {
                    let text = format!(
                        "The image {tag} already exists, renaming the old one with ID {old} to empty string\n"
                    );
                    out.extend(JsonMessage::stream(text).to_line());
                }
                for tag in &image.tags {
                    out.extend(JsonMessage::stream(format!("Loaded image: {tag}\n")).to_line());
                }
                if image.tags.is_empty() {
                    let text = format!("Loaded image ID: {}\n", image.id);
                    out.extend(JsonMessage::stream(text).to_line());
                }
                publish(events, "load", &image.id, &image.id);
            }
        }
        Err(e) => out.extend(JsonMessage::error(e.to_string()).to_line()),
    }
    Bytes::from(out)
}
