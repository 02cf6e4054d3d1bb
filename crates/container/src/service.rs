//! The public face of the container service, as the daemon's HTTP layer calls it.
//!
//! DRAFT SIGNATURES: bodies are being written; the shapes below are the contract.
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use berth_api::models::{
    ContainerCreateBody, ContainerCreateResponse, ContainerInspectResponse, ContainerPruneResponse,
    ContainerStatsResponse, ContainerSummary, ContainerTopResponse, ContainerUpdateBody,
    ContainerUpdateResponse, ContainerWaitResponse, ExecConfig, ExecInspectResponse,
    ExecStartConfig,
};
use berth_api::stdcopy::StreamType;
use berth_image::ImageStore;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use crate::{ContainerError, EventBus};

/// Result of container operations.
pub type Result<T, E = ContainerError> = std::result::Result<T, E>;

/// A hijacked client connection (attach, exec start): a duplex byte stream. Reading 0 bytes
/// means the client half-closed (stdin EOF), not that it is gone.
pub trait Conn: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Conn for T {}
/// A boxed [`Conn`].
pub type BoxConn = Box<dyn Conn>;

/// Where the service keeps its state and how it starts monitors.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Data root, e.g. `/var/lib/berth`; containers live in `<data_root>/containers/<id>`.
    pub data_root: PathBuf,
    /// Run root, e.g. `/run/berth`; monitors live in `<run_root>/containers/<id>`.
    pub run_root: PathBuf,
    /// The `berth` executable, re-executed as `berth monitor <run_dir>`.
    pub exe: PathBuf,
    /// External OCI runtimes by name (`runc` → `/usr/sbin/runc`); `--runtime` may also be a path.
    pub runtimes: HashMap<String, PathBuf>,
}

/// `POST /containers/{id}/wait?condition=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    /// Return as soon as the container is not running (default).
    NotRunning,
    /// Wait for the next exit, even if not running now.
    NextExit,
    /// Wait until the container is removed.
    Removed,
}

/// `ps` options.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Include stopped containers.
    pub all: bool,
    /// Only the last N created (implies all).
    pub limit: Option<usize>,
    /// Compute SizeRw / SizeRootFs.
    pub size: bool,
    /// Filters, by key, each with its accepted values (`status` → [`running`]).
    pub filters: HashMap<String, Vec<String>>,
}

/// `logs` options.
#[derive(Debug, Clone, Default)]
pub struct LogsOptions {
    /// Keep streaming until the container stops.
    pub follow: bool,
    /// Include stdout.
    pub stdout: bool,
    /// Include stderr.
    pub stderr: bool,
    /// Only entries at or after this Unix time (seconds, fractional).
    pub since: Option<f64>,
    /// Only entries before this Unix time.
    pub until: Option<f64>,
    /// Prefix each line with its RFC3339Nano time and a space.
    pub timestamps: bool,
    /// Only the last N lines (None = all).
    pub tail: Option<usize>,
}

/// One piece of log output.
#[derive(Debug, Clone)]
pub struct LogChunk {
    /// stdout or stderr.
    pub stream: StreamType,
    /// The bytes, already prefixed with a timestamp if asked.
    pub data: Bytes,
}

/// A log stream: whether the container has a TTY (raw framing) and the chunks.
#[derive(Debug)]
pub struct LogStream {
    /// True when the container has a TTY: the daemon sends raw bytes, not frames.
    pub tty: bool,
    /// The chunks; the channel closes at the end.
    pub rx: mpsc::Receiver<LogChunk>,
}

/// `attach` options.
#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    /// Forward the client's input to the container's stdin.
    pub stdin: bool,
    /// Send stdout.
    pub stdout: bool,
    /// Send stderr.
    pub stderr: bool,
    /// Stream live output.
    pub stream: bool,
    /// Replay the logs first.
    pub logs: bool,
    /// Detach key sequence, e.g. `ctrl-p,ctrl-q`.
    pub detach_keys: Option<String>,
}

/// A validated attach request, ready to be run on the hijacked connection.
#[derive(Debug)]
pub struct Attachment {
    /// The container has a TTY (raw stream) or not (multiplexed).
    pub tty: bool,
}

impl Attachment {
    /// Pumps output to `conn` (framed unless TTY) and input from it, until the container exits
    /// or the client detaches; then closes `conn`.
    pub async fn run(self, conn: BoxConn) {
        let _ = conn;
        todo!()
    }
}

/// A started exec, ready to be run on the hijacked connection.
#[derive(Debug)]
pub struct ExecSession {
    /// The exec has a TTY.
    pub tty: bool,
}

impl ExecSession {
    /// Pumps the exec's stdio over `conn` until it exits (None for a detached exec), recording
    /// the exit code before closing the stream.
    pub async fn run(self, conn: Option<BoxConn>) {
        let _ = conn;
        todo!()
    }
}

/// A registered waiter; awaiting it yields the wait response.
#[derive(Debug)]
pub struct WaitHandle {}

impl WaitHandle {
    /// Waits for the condition.
    pub async fn result(self) -> ContainerWaitResponse {
        todo!()
    }
}

/// Counts for `docker info`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Running containers.
    pub running: usize,
    /// Paused containers.
    pub paused: usize,
    /// Stopped (created, exited) containers.
    pub stopped: usize,
}

/// The container service.
#[derive(Debug)]
pub struct ContainerService {}

#[allow(unused_variables, clippy::unused_async)]
impl ContainerService {
    /// Loads every container from disk, reconnects to running monitors, cleans up leftovers.
    pub async fn open(
        config: ServiceConfig,
        images: Arc<ImageStore>,
        events: EventBus,
    ) -> Result<Arc<Self>> {
        todo!()
    }
    /// `POST /containers/create?name=`.
    pub async fn create(
        &self,
        name: Option<String>,
        body: ContainerCreateBody,
    ) -> Result<ContainerCreateResponse> {
        todo!()
    }
    /// `POST /containers/{id}/start`; `NotModified` if running.
    pub async fn start(&self, reference: &str) -> Result<()> {
        todo!()
    }
    /// `POST /containers/{id}/stop?signal=&t=`; `NotModified` if not running.
    pub async fn stop(
        &self,
        reference: &str,
        signal: Option<String>,
        timeout: Option<i64>,
    ) -> Result<()> {
        todo!()
    }
    /// `POST /containers/{id}/restart?signal=&t=`.
    pub async fn restart(
        &self,
        reference: &str,
        signal: Option<String>,
        timeout: Option<i64>,
    ) -> Result<()> {
        todo!()
    }
    /// `POST /containers/{id}/kill?signal=` (`HUP`, `SIGHUP` or `1`).
    pub async fn kill(&self, reference: &str, signal: Option<String>) -> Result<()> {
        todo!()
    }
    /// `DELETE /containers/{id}?force=&v=`.
    pub async fn remove(&self, reference: &str, force: bool, volumes: bool) -> Result<()> {
        todo!()
    }
    /// `POST /containers/{id}/pause`.
    pub async fn pause(&self, reference: &str) -> Result<()> {
        todo!()
    }
    /// `POST /containers/{id}/unpause`.
    pub async fn unpause(&self, reference: &str) -> Result<()> {
        todo!()
    }
    /// `POST /containers/{id}/wait`: registers the waiter now (so the daemon can flush headers
    /// before the container is started), resolves later.
    pub async fn wait(&self, reference: &str, condition: WaitCondition) -> Result<WaitHandle> {
        todo!()
    }
    /// `POST /containers/{id}/rename?name=`.
    pub async fn rename(&self, reference: &str, new_name: &str) -> Result<()> {
        todo!()
    }
    /// `POST /containers/{id}/update`.
    pub async fn update(
        &self,
        reference: &str,
        body: ContainerUpdateBody,
    ) -> Result<ContainerUpdateResponse> {
        todo!()
    }
    /// `GET /containers/json`.
    pub async fn list(&self, options: ListOptions) -> Result<Vec<ContainerSummary>> {
        todo!()
    }
    /// `GET /containers/{id}/json?size=`.
    pub async fn inspect(&self, reference: &str, size: bool) -> Result<ContainerInspectResponse> {
        todo!()
    }
    /// `GET /containers/{id}/logs`.
    pub async fn logs(&self, reference: &str, options: LogsOptions) -> Result<LogStream> {
        todo!()
    }
    /// `POST /containers/{id}/attach`: validates, then the daemon answers 101 and runs it.
    pub async fn attach(&self, reference: &str, options: AttachOptions) -> Result<Attachment> {
        todo!()
    }
    /// `POST /containers/{id}/resize?h=&w=`.
    pub async fn resize(&self, reference: &str, height: u16, width: u16) -> Result<()> {
        todo!()
    }
    /// `POST /containers/{id}/exec`; returns the exec id.
    pub async fn exec_create(&self, reference: &str, config: ExecConfig) -> Result<String> {
        todo!()
    }
    /// `POST /exec/{id}/start`: starts the process; the daemon then runs the session.
    pub async fn exec_start(&self, exec_id: &str, config: ExecStartConfig) -> Result<ExecSession> {
        todo!()
    }
    /// `GET /exec/{id}/json`.
    pub async fn exec_inspect(&self, exec_id: &str) -> Result<ExecInspectResponse> {
        todo!()
    }
    /// `POST /exec/{id}/resize?h=&w=`.
    pub async fn exec_resize(&self, exec_id: &str, height: u16, width: u16) -> Result<()> {
        todo!()
    }
    /// `GET /containers/{id}/top?ps_args=`.
    pub async fn top(&self, reference: &str, ps_args: Option<String>) -> Result<ContainerTopResponse> {
        todo!()
    }
    /// `GET /containers/{id}/stats?stream=&one-shot=`: one sample a second while streaming.
    pub async fn stats(
        &self,
        reference: &str,
        stream: bool,
    ) -> Result<mpsc::Receiver<ContainerStatsResponse>> {
        todo!()
    }
    /// `POST /containers/prune`.
    pub async fn prune(&self, filters: HashMap<String, Vec<String>>) -> Result<ContainerPruneResponse> {
        todo!()
    }
    /// Container counts by state, for `info`.
    pub async fn counts(&self) -> Counts {
        todo!()
    }
    /// Whether any container (running or not) uses this image id (`sha256:…`).
    pub async fn image_in_use(&self, image_id: &str) -> bool {
        todo!()
    }
    /// Stops reconnect loops and restart timers; running containers keep running.
    pub async fn shutdown(&self) {
        todo!()
    }
}
