//! Progress in Docker's jsonmessage shape, as the docker CLI draws it: one line per layer id
//! (`Pulling fs layer`, `Downloading [==>   ]`, `Pull complete`, …), status lines between.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use berth_api::progress::{JsonMessage, ProgressDetail};

/// Where an operation's messages go (the daemon turns them into the response's lines).
#[derive(Clone)]
pub struct Progress {
    sink: Arc<dyn Fn(JsonMessage) + Send + Sync>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

/// Byte counts are reported at most this often per layer.
const INTERVAL: Duration = Duration::from_millis(100);

impl Progress {
    /// Messages go to `sink`.
    pub fn new(sink: impl Fn(JsonMessage) + Send + Sync + 'static) -> Self {
        Self {
            sink: Arc::new(sink),
        }
    }

    /// Messages go nowhere.
    pub fn none() -> Self {
        Self::new(|_| {})
    }

    /// Sends one message.
    pub fn send(&self, message: JsonMessage) {
        (self.sink)(message);
    }

    /// A status line (`Digest: …`).
    pub fn status(&self, status: impl Into<String>) {
        self.send(JsonMessage::status(status, None));
    }

    /// A status line about `id` with no counts (`Pulling fs layer`): Docker sends an empty
    /// `progressDetail`, which makes it the id's line on a terminal.
    pub fn layer(&self, id: &str, status: &str) {
        self.send(JsonMessage {
            status: Some(status.to_owned()),
            id: Some(id.to_owned()),
            progress_detail: Some(ProgressDetail::default()),
            ..JsonMessage::default()
        });
    }

    /// Counts of `id`'s work.
    pub fn counts(&self, id: &str, status: &str, current: u64, total: u64) {
        self.send(JsonMessage::progress(status, id, current, total));
    }
}

/// Throttled byte counts of one layer.
#[derive(Debug)]
pub(crate) struct Counter {
    progress: Progress,
    id: String,
    status: &'static str,
    total: u64,
    last: std::sync::Mutex<Instant>,
    current: AtomicU64,
}

impl Counter {
    pub(crate) fn new(progress: Progress, id: &str, status: &'static str, total: u64) -> Self {
        Self {
            progress,
            id: id.to_owned(),
            status,
            total,
            last: std::sync::Mutex::new(Instant::now() - INTERVAL),
            current: AtomicU64::new(0),
        }
    }

    /// `current` bytes are done; reported if the last report is old enough, or at the end.
    pub(crate) fn update(&self, current: u64) {
        self.current.store(current, Ordering::Relaxed);
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.elapsed() >= INTERVAL || current == self.total {
            *last = Instant::now();
            self.progress
                .counts(&self.id, self.status, current, self.total);
        }
    }
}

/// Docker's short id of a digest: 12 hex digits.
pub(crate) fn short(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, hex)| hex);
    hex.chars().take(12).collect()
}
