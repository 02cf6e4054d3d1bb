//! The public face of the container service, as the daemon's HTTP layer calls it.
//!
//! Each container is an [`Entry`]: its record behind an async mutex (held for the length of a
//! lifecycle operation, never while waiting for an exit), a `watch` channel of its lifecycle
//! (what `wait`, `logs -f` and `stop` wait on), and attach requests waiting for the next start.
//! The monitor of a running container owns its process; the service talks to it over its socket
//! and learns of the exit through a `Wait` conversation opened before the process starts.
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use berth_api::models::{
    ContainerConfig, ContainerCreateBody, ContainerCreateResponse, ContainerInspectResponse,
    ContainerPruneResponse, ContainerStatsResponse, ContainerSummary, ContainerTopResponse,
    ContainerUpdateBody, ContainerUpdateResponse, ContainerWaitResponse, EventMessageTypeEnum,
    ExecConfig, ExecInspectResponse, ExecStartConfig, HostConfig, RestartPolicyNameEnum,
};
use berth_api::stdcopy::StreamType;
use berth_image::ImageStore;
use berth_monitor::protocol::{self, ExitStatus, Request, Response};
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot, watch};

use berth_volume::VolumeService;

use crate::monitor_client::{self, Conversation};
use crate::store::{self, Paths, Record, Status};
use crate::{ContainerError, EventBus, spec};

mod commit;
mod network;
pub use commit::CommitOptions;

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
    /// The `berth` executable, re-executed as `berth monitor <run_dir>` (from a copy no one
    /// can write through, see [`berth_runtime::sealed_executable`]).
    pub exe: PathBuf,
    /// Configured OCI runtimes by name (`runc` → `/usr/sbin/runc`); nothing else runs.
    pub runtimes: HashMap<String, PathBuf>,
    /// The cgroup containers' cgroups are made under (`--cgroup-parent`, `/berth`), unless a
    /// container names its own (`HostConfig.CgroupParent`).
    pub cgroup_parent: String,
    /// The network service; without one every container gets a private namespace with only
    /// `lo` (what tests without root use).
    pub network: Option<Arc<berth_network::NetworkService>>,
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

/// The lifecycle a container's watchers see.
#[derive(Debug, Clone)]
pub struct Life {
    /// Current status.
    pub status: Status,
    /// Last exit code.
    pub exit_code: i64,
    /// How many times it exited (or failed to start) so far.
    pub exits: u64,
    /// It was removed.
    pub removed: bool,
}

/// The monitor connection an attachment reads from: ready now, or handed over at start.
#[derive(Debug)]
enum AttachSource {
    Ready(Conversation),
    Pending(oneshot::Receiver<Conversation>),
    /// Nothing to stream (stream=false): only the log replay, if any.
    None,
}

/// A validated attach request, ready to be run on the hijacked connection.
#[derive(Debug)]
pub struct Attachment {
    /// The container has a TTY (raw stream) or not (multiplexed).
    pub tty: bool,
    options: AttachOptions,
    source: AttachSource,
    backlog: Vec<LogChunk>,
}

impl Attachment {
    /// Pumps output to `conn` (framed unless TTY) and input from it, until the container exits
    /// or the client detaches; then closes `conn`.
    pub async fn run(self, conn: BoxConn) {
        use tokio::io::AsyncWriteExt;
        let (client_rd, mut client_wr) = tokio::io::split(conn);
        for c in &self.backlog {
            let bytes = if self.tty {
                c.data.to_vec()
            } else {
                berth_api::stdcopy::frame(c.stream, &c.data)
            };
            if client_wr.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let conv = match self.source {
            AttachSource::Ready(c) => c,
            AttachSource::Pending(rx) => match rx.await {
                Ok(c) => c,
                Err(_) => {
                    let _ = client_wr.shutdown().await;
                    return;
                }
            },
            AttachSource::None => {
                let _ = client_wr.shutdown().await;
                return;
            }
        };
        let keys = berth_api::convention::detach_keys(self.options.detach_keys.as_deref());
        pump(
            conv,
            client_rd,
            client_wr,
            self.tty,
            self.options.stdin,
            keys,
            None,
        )
        .await;
    }
}

/// Copies monitor frames to the client and client bytes to the monitor. Returns the exit code
/// carried by an exit frame, if one came.
async fn pump(
    conv: Conversation,
    mut client_rd: tokio::io::ReadHalf<BoxConn>,
    mut client_wr: tokio::io::WriteHalf<BoxConn>,
    tty: bool,
    stdin: bool,
    detach_keys: Vec<u8>,
    on_exit: Option<oneshot::Sender<i32>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Conversation {
        mut reader,
        mut writer,
    } = conv;
    let output = async move {
        let mut on_exit = on_exit;
        let mut header = [0u8; 8];
        let mut buf = Vec::new();
        loop {
            if reader.read_exact(&mut header).await.is_err() {
                break;
            }
            let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
            buf.resize(len, 0);
            if reader.read_exact(&mut buf).await.is_err() {
                break;
            }
            if header[0] == protocol::EXIT_FRAME {
                if let (Some(tx), Ok(b)) = (on_exit.take(), <[u8; 4]>::try_from(&buf[..])) {
                    let _ = tx.send(i32::from_be_bytes(b));
                }
                continue;
            }
            let res = if tty {
                client_wr.write_all(&buf).await
            } else {
                match client_wr.write_all(&header).await {
                    Ok(()) => client_wr.write_all(&buf).await,
                    Err(e) => Err(e),
                }
            };
            if res.is_err() {
                break;
            }
        }
        let _ = client_wr.flush().await;
        let _ = client_wr.shutdown().await;
    };
    let input = async move {
        if !stdin {
            // Keep the write half open: the monitor reads a half-close as stdin EOF.
            std::future::pending::<()>().await;
        }
        let mut buf = vec![0u8; 16 * 1024];
        let mut matched = 0usize;
        loop {
            let n = match client_rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut out = Vec::with_capacity(n);
            for &b in &buf[..n] {
                if !detach_keys.is_empty() && b == detach_keys[matched] {
                    matched += 1;
                    if matched == detach_keys.len() {
                        let _ = writer.write_all(&out).await;
                        return true;
                    }
                    continue;
                }
                out.extend_from_slice(&detach_keys[..matched]);
                matched = 0;
                out.push(b);
            }
            if writer.write_all(&out).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
        // Stdin is done; output goes on until the process exits.
        std::future::pending::<()>().await;
        false
    };
    tokio::select! {
        _ = output => {}
        _detached = input => {}
    }
}

/// A started exec, ready to be run on the hijacked connection.
#[derive(Debug)]
pub struct ExecSession {
    /// The exec has a TTY.
    pub tty: bool,
    exec: Arc<ExecEntry>,
    socket: PathBuf,
    request: protocol::ExecRequest,
    detach_keys: Vec<u8>,
    events: EventBus,
    attrs: HashMap<String, String>,
}

impl ExecSession {
    /// Pumps the exec's stdio over `conn` until it exits (None for a detached exec), recording
    /// the exit code before closing the stream.
    pub async fn run(self, conn: Option<BoxConn>) {
        use tokio::io::AsyncWriteExt;
        let stdin = self.request.attach_stdin && conn.is_some();
        let req = Request::Exec(Box::new(self.request));
        let started = monitor_client::call(&self.socket, &req).await;
        let (pid, conv) = match started {
            Ok((Response::ExecStarted { pid }, conv)) => (pid, conv),
            Ok((resp, _)) => {
                let (message, code) = match resp {
                    Response::Error { message, exit_code } => (message, exit_code.unwrap_or(126)),
                    other => (format!("unexpected monitor response {other:?}"), 126),
                };
                self.exec.finish(i64::from(code));
                if let Some(mut c) = conn {
                    let msg = format!("OCI runtime exec failed: {message}\r\n");
                    let bytes = if self.tty {
                        msg.into_bytes()
                    } else {
                        berth_api::stdcopy::frame(StreamType::Stdout, msg.as_bytes())
                    };
                    let _ = c.write_all(&bytes).await;
                    let _ = c.shutdown().await;
                }
                return;
            }
            Err(e) => {
                self.exec.finish(126);
                if let Some(mut c) = conn {
                    let msg = format!("{e}\r\n");
                    let _ = c
                        .write_all(&berth_api::stdcopy::frame(
                            StreamType::Stderr,
                            msg.as_bytes(),
                        ))
                        .await;
                    let _ = c.shutdown().await;
                }
                return;
            }
        };
        {
            let mut st = self.exec.state.lock().unwrap_or_else(|p| p.into_inner());
            st.running = true;
            st.pid = i64::from(pid);
        }
        let mut attrs = self.attrs.clone();
        attrs.insert("execID".into(), self.exec.id.clone());
        self.events.publish(
            EventMessageTypeEnum::CONTAINER,
            &format!("exec_start: {}", self.exec.cmdline()),
            &self.exec.container_id,
            attrs.clone(),
        );
        let (tx, rx) = oneshot::channel();
        match conn {
            Some(c) => {
                let (rd, wr) = tokio::io::split(c);
                // The exit code must be recorded before the client sees EOF (it inspects
                // the exec right after), so the pump hands it over before closing.
                let exec = self.exec.clone();
                let recorder = async move {
                    if let Ok(code) = rx.await {
                        exec.finish(i64::from(code));
                    }
                };
                tokio::join!(
                    pump(conv, rd, wr, self.tty, stdin, self.detach_keys, Some(tx)),
                    recorder
                );
            }
            None => {
                let exec = self.exec.clone();
                drain_exec(conv, tx).await;
                if let Ok(code) = rx.await {
                    exec.finish(i64::from(code));
                }
            }
        }
        // The monitor closed without an exit frame: the container went away.
        if self
            .exec
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .running
        {
            self.exec.finish(137);
        }
        attrs.insert("exitCode".into(), self.exec.exit_code().to_string());
        self.events.publish(
            EventMessageTypeEnum::CONTAINER,
            "exec_die",
            &self.exec.container_id,
            attrs,
        );
    }
}

async fn drain_exec(conv: Conversation, tx: oneshot::Sender<i32>) {
    use tokio::io::AsyncReadExt;
    let Conversation { mut reader, writer } = conv;
    let _keep_stdin_open = writer;
    let mut header = [0u8; 8];
    let mut buf = Vec::new();
    while reader.read_exact(&mut header).await.is_ok() {
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        buf.resize(len, 0);
        if reader.read_exact(&mut buf).await.is_err() {
            break;
        }
        if header[0] == protocol::EXIT_FRAME
            && let Ok(b) = <[u8; 4]>::try_from(&buf[..])
        {
            let _ = tx.send(i32::from_be_bytes(b));
            return;
        }
    }
}

/// A registered waiter; awaiting it yields the wait response.
#[derive(Debug)]
pub struct WaitHandle {
    entry: Arc<Entry>,
    rx: watch::Receiver<Life>,
    condition: WaitCondition,
    exits_at_start: u64,
}

impl WaitHandle {
    /// Waits for the condition.
    pub async fn result(mut self) -> ContainerWaitResponse {
        let _keep_alive = &self.entry;
        loop {
            let l = self.rx.borrow_and_update().clone();
            let done = match self.condition {
                WaitCondition::NotRunning => {
                    l.removed || !(l.status.is_alive() || l.status == Status::Restarting)
                }
                WaitCondition::NextExit => l.removed || l.exits > self.exits_at_start,
                WaitCondition::Removed => l.removed,
            };
            if done {
                return ContainerWaitResponse {
                    status_code: l.exit_code,
                    error: None,
                };
            }
            if self.rx.changed().await.is_err() {
                return ContainerWaitResponse {
                    status_code: l.exit_code,
                    error: None,
                };
            }
        }
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

#[derive(Debug)]
struct PendingAttach {
    request: Request,
    tx: oneshot::Sender<Conversation>,
}

/// One container.
#[derive(Debug)]
pub(crate) struct Entry {
    id: String,
    paths: Paths,
    rec: tokio::sync::Mutex<Record>,
    life: watch::Sender<Life>,
    pending_attach: std::sync::Mutex<Vec<PendingAttach>>,
    /// The OCI spec of the current run (exec builds on it).
    spec: std::sync::Mutex<Option<serde_json::Value>>,
}

impl Entry {
    fn set_life(&self, r: &Record, exited: bool, removed: bool) {
        self.life.send_modify(|l| {
            l.status = r.state.status;
            l.exit_code = r.state.exit_code;
            if exited {
                l.exits += 1;
            }
            l.removed |= removed;
        });
    }
}

#[derive(Debug, Default)]
struct ExecState {
    started: bool,
    running: bool,
    exit_code: Option<i64>,
    pid: i64,
}

/// One exec instance.
#[derive(Debug)]
pub(crate) struct ExecEntry {
    id: String,
    container_id: String,
    config: ExecConfig,
    state: std::sync::Mutex<ExecState>,
}

impl ExecEntry {
    fn finish(&self, code: i64) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.running = false;
        st.exit_code = Some(code);
    }
    fn exit_code(&self) -> i64 {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .exit_code
            .unwrap_or(0)
    }
    fn cmdline(&self) -> String {
        self.config.cmd.clone().unwrap_or_default().join(" ")
    }
}

#[derive(Debug, Default)]
struct Index {
    by_id: HashMap<String, Arc<Entry>>,
    names: HashMap<String, String>,
}

/// The container service.
#[derive(Debug)]
pub struct ContainerService {
    cfg: ServiceConfig,
    images: Arc<ImageStore>,
    volumes: Arc<VolumeService>,
    events: EventBus,
    index: std::sync::Mutex<Index>,
    execs: std::sync::Mutex<HashMap<String, Arc<ExecEntry>>>,
    me: Weak<ContainerService>,
    /// `cfg.exe` as a descriptor no one can write through; monitors run from it.
    sealed_exe: std::os::fd::OwnedFd,
}

mod archive;
mod mounts;

pub use archive::{ArchiveBody, ArchiveStream, PathStat, PutOptions};

fn conflict(message: impl Into<String>) -> ContainerError {
    ContainerError::Conflict {
        message: message.into(),
    }
}

fn invalid(message: impl Into<String>) -> ContainerError {
    ContainerError::InvalidArgument {
        message: message.into(),
    }
}

fn io_err(
    op: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> ContainerError {
    let path = path.to_path_buf();
    move |source| ContainerError::Io { op, path, source }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ContainerError::Internal {
            message: format!("background task failed: {e}"),
        })
}

fn parse_signal(s: &str) -> Result<i32> {
    berth_runtime::parse_signal(s).ok_or_else(|| invalid(format!("Invalid signal: {s}")))
}

impl ContainerService {
    /// Loads every container from disk, reconnects to running monitors, cleans up leftovers.
    pub async fn open(
        config: ServiceConfig,
        images: Arc<ImageStore>,
        volumes: Arc<VolumeService>,
        events: EventBus,
    ) -> Result<Arc<Self>> {
        for d in [
            config.data_root.join("containers"),
            config.run_root.join("containers"),
        ] {
            std::fs::create_dir_all(&d).map_err(io_err("create", &d))?;
        }
        let sealed_exe = berth_runtime::sealed_executable(&config.exe)
            .map_err(io_err("seal for monitors", &config.exe))?;
        let svc = Arc::new_cyclic(|me| ContainerService {
            sealed_exe,
            cfg: config.clone(),
            images,
            volumes,
            events,
            index: std::sync::Mutex::new(Index::default()),
            execs: std::sync::Mutex::new(HashMap::new()),
            me: me.clone(),
        });
        let records = {
            let root = config.data_root.clone();
            blocking(move || store::load_all(&root)).await?
        };
        let mut to_reconcile = Vec::new();
        {
            let mut idx = svc.lock_index();
            for r in records {
                let status = r.state.status;
                let entry = svc.new_entry(r.clone());
                for m in &r.mount_points {
                    if !m.name.is_empty() {
                        svc.volumes.acquire(&m.name, &r.id);
                    }
                }
                idx.names.insert(r.name.clone(), r.id.clone());
                idx.by_id.insert(r.id.clone(), entry.clone());
                if status.is_alive() || status == Status::Restarting || status == Status::Removing {
                    to_reconcile.push(entry);
                }
            }
        }
        // Run dirs with no record are leftovers of a crash.
        if let Ok(dirs) = std::fs::read_dir(config.run_root.join("containers")) {
            let idx = svc.lock_index();
            for d in dirs.flatten() {
                let name = d.file_name().to_string_lossy().to_string();
                if !idx.by_id.contains_key(&name) {
                    let _ = std::fs::remove_dir_all(d.path());
                }
            }
        }
        for entry in to_reconcile {
            svc.reconcile(entry).await;
        }
        Ok(svc)
    }

    /// The volume service containers take their volumes from.
    pub fn volumes(&self) -> &Arc<VolumeService> {
        &self.volumes
    }

    fn lock_index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new_entry(&self, r: Record) -> Arc<Entry> {
        let (life, _) = watch::channel(Life {
            status: r.state.status,
            exit_code: r.state.exit_code,
            exits: 0,
            removed: false,
        });
        Arc::new(Entry {
            id: r.id.clone(),
            paths: Paths::new(&self.cfg.data_root, &self.cfg.run_root, &r.id),
            rec: tokio::sync::Mutex::new(r),
            life,
            pending_attach: std::sync::Mutex::new(Vec::new()),
            spec: std::sync::Mutex::new(None),
        })
    }

    /// After a daemon restart: find the monitor of a container that was running.
    async fn reconcile(&self, entry: Arc<Entry>) {
        let socket = entry.paths.socket();
        if let Ok((Response::State { status, .. }, _)) =
            monitor_client::call(&socket, &Request::State).await
            && status != protocol::Status::Exited
            && let Ok(wait) = begin_wait(&socket).await
        {
            if let Ok(b) = std::fs::read(entry.paths.run_dir.join(protocol::SPEC_FILE)) {
                *entry.spec.lock().unwrap_or_else(|p| p.into_inner()) =
                    serde_json::from_slice(&b).ok();
            }
            self.spawn_exit_watcher(entry, wait, true);
            return;
        }
        let exit = read_exit_file(&entry.paths).unwrap_or_else(|| ExitStatus {
            exit_code: 255,
            finished_at: store::now_rfc3339(),
            oom_killed: false,
            error: Some("container monitor disappeared".into()),
        });
        self.handle_exit(entry, exit, true).await;
    }

    fn attrs(r: &Record) -> HashMap<String, String> {
        let mut a: HashMap<String, String> = r.config.labels.clone().unwrap_or_default();
        a.insert("name".into(), r.name.clone());
        a.insert("image".into(), r.config.image.clone().unwrap_or_default());
        a
    }

    fn publish(&self, r: &Record, action: &str, extra: &[(&str, String)]) {
        let mut a = Self::attrs(r);
        for (k, v) in extra {
            a.insert((*k).to_string(), v.clone());
        }
        self.events
            .publish(EventMessageTypeEnum::CONTAINER, action, &r.id, a);
    }

    /// Finds a container by full id, name, or unique id prefix.
    fn lookup(&self, reference: &str) -> Result<Arc<Entry>> {
        let idx = self.lock_index();
        if let Some(e) = idx.by_id.get(reference) {
            return Ok(e.clone());
        }
        let name = reference.strip_prefix('/').unwrap_or(reference);
        if let Some(id) = idx.names.get(name)
            && let Some(e) = idx.by_id.get(id)
        {
            return Ok(e.clone());
        }
        if !reference.is_empty() && reference.chars().all(|c| c.is_ascii_hexdigit()) {
            let mut found = idx.by_id.iter().filter(|(id, _)| id.starts_with(reference));
            if let Some((_, e)) = found.next() {
                if found.next().is_some() {
                    return Err(invalid(format!(
                        "multiple IDs found with provided prefix: {reference}"
                    )));
                }
                return Ok(e.clone());
            }
        }
        Err(ContainerError::NotFound {
            reference: reference.to_string(),
        })
    }

    /// `POST /containers/create?name=`.
    pub async fn create(
        &self,
        name: Option<String>,
        body: ContainerCreateBody,
    ) -> Result<ContainerCreateResponse> {
        let image_ref = body
            .image
            .clone()
            .filter(|i| !i.is_empty())
            .ok_or_else(|| invalid("No image specified"))?;
        let hc = body.host_config.clone().unwrap_or_default();
        spec::validate_host_config(&hc)?;
        let image = {
            let images = self.images.clone();
            let r = image_ref.clone();
            blocking(move || images.resolve(&r)).await?
        }
        .map_err(|_| ContainerError::ImageNotFound {
            reference: image_ref.clone(),
        })?;
        let mut config = ContainerConfig {
            hostname: body.hostname.filter(|h| !h.is_empty()),
            domainname: body.domainname,
            user: body.user,
            attach_stdin: body.attach_stdin,
            attach_stdout: body.attach_stdout,
            attach_stderr: body.attach_stderr,
            exposed_ports: body.exposed_ports,
            tty: Some(body.tty.unwrap_or(false)),
            open_stdin: Some(body.open_stdin.unwrap_or(false)),
            stdin_once: Some(body.stdin_once.unwrap_or(false)),
            env: body.env,
            cmd: body.cmd,
            healthcheck: body.healthcheck,
            args_escaped: body.args_escaped,
            image: Some(image_ref.clone()),
            volumes: body.volumes,
            working_dir: body.working_dir,
            entrypoint: body.entrypoint,
            network_disabled: body.network_disabled,
            on_build: body.on_build,
            labels: body.labels,
            stop_signal: body.stop_signal,
            stop_timeout: body.stop_timeout,
            shell: body.shell,
        };
        spec::merge_image_defaults(&mut config, &image.config);
        let argv = spec::command_line(&config)?;
        if let Some(sig) = config.stop_signal.as_deref() {
            parse_signal(sig)?;
        }
        let id = store::new_id();
        if config.hostname.is_none() {
            config.hostname = Some(if hc.network_mode.as_deref() == Some("host") {
                nix::unistd::gethostname()
                    .ok()
                    .and_then(|h| h.into_string().ok())
                    .unwrap_or_else(|| id[..12].to_string())
            } else {
                id[..12].to_string()
            });
        }
        let mut hc = hc;
        let endpoints = self
            .plan_networks(
                &mut hc,
                body.networking_config
                    .as_ref()
                    .and_then(|n| n.endpoints_config.as_ref()),
            )
            .await?;
        if hc
            .network_mode
            .as_deref()
            .is_none_or(|m| m.is_empty() || m == "default")
        {
            hc.network_mode = Some("bridge".into());
        }
        let log = hc.log_config.get_or_insert_with(Default::default);
        if log.typ.as_deref().is_none_or(str::is_empty) {
            log.typ = Some("json-file".into());
        }
        if log.typ.as_deref() != Some("json-file") {
            return Err(invalid(format!(
                "logging driver {:?} is not supported; use json-file",
                log.typ.as_deref().unwrap_or("")
            )));
        }
        if let Some(rt) = hc
            .runtime
            .as_deref()
            .filter(|r| !r.is_empty() && *r != "berth")
        {
            self.runtime_path(rt)?;
        }

        let requested = self.requested_mounts(&config, &hc)?;

        let cgroup_parent = hc
            .cgroup_parent
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| self.cfg.cgroup_parent.clone());
        // Reserve the name first, so two creates cannot both take it.
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let n = n.strip_prefix('/').unwrap_or(&n).to_string();
                if !store::valid_name(&n) {
                    return Err(invalid(format!(
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
                n
            }
            None => self.generate_name(),
        };
        {
            let mut idx = self.lock_index();
            if let Some(other) = idx.names.get(&name) {
                return Err(conflict(format!(
                    "Conflict. The container name \"/{name}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
                )));
            }
            idx.names.insert(name.clone(), id.clone());
        }
        let record = Record {
            version: store::RECORD_VERSION,
            id: id.clone(),
            name: name.clone(),
            created: store::now_rfc3339(),
            path: argv[0].clone(),
            args: argv[1..].to_vec(),
            config,
            host_config: hc,
            image_id: image.id.clone(),
            state: Default::default(),
            restart_count: 0,
            manually_stopped: false,
            endpoints,
            mount_points: Vec::new(),
            cgroup_parent,
        };
        let paths = Paths::new(&self.cfg.data_root, &self.cfg.run_root, &id);
        let made = {
            let images = self.images.clone();
            let volumes = self.volumes.clone();
            let (mut record, paths) = (record.clone(), paths.clone());
            blocking(move || -> Result<Record> {
                std::fs::create_dir_all(&paths.data_dir)
                    .map_err(io_err("create", &paths.data_dir))?;
                spec::write_etc_files(
                    &paths.data_dir,
                    record.config.hostname.as_deref().unwrap_or(""),
                    &record.host_config,
                )?;
                images
                    .prepare_rootfs(&record.id, &record.image_id)
                    .map_err(|e| ContainerError::Internal {
                        message: e.to_string(),
                    })?;
                let rootfs = images.rootfs(&record.id, &record.image_id).map_err(|e| {
                    ContainerError::Internal {
                        message: e.to_string(),
                    }
                })?;
                record.mount_points =
                    mounts::materialize(&volumes, &record.id, requested, &rootfs)?;
                if let Err(e) = store::save(&paths, &record, true) {
                    mounts::release_mounts(&volumes, &record.id, &record.mount_points, true);
                    return Err(e);
                }
                Ok(record)
            })
            .await?
        };
        let record = match made {
            Ok(r) => r,
            Err(e) => {
                // Leave nothing half-made.
                let _ = std::fs::remove_dir_all(&paths.data_dir);
                let _ = self.images.remove_rootfs(&id);
                self.lock_index().names.remove(&name);
                return Err(e);
            }
        };
        let entry = self.new_entry(record.clone());
        self.lock_index().by_id.insert(id.clone(), entry);
        self.publish(&record, "create", &[]);
        Ok(ContainerCreateResponse {
            id,
            warnings: vec![],
        })
    }

    fn generate_name(&self) -> String {
        const LEFT: [&str; 12] = [
            "brave", "calm", "eager", "fond", "keen", "lucid", "merry", "quirky", "sharp",
            "tender", "vivid", "witty",
        ];
        const RIGHT: [&str; 12] = [
            "archimedes",
            "babbage",
            "curie",
            "darwin",
            "euler",
            "fermat",
            "gauss",
            "hopper",
            "lovelace",
            "noether",
            "turing",
            "wright",
        ];
        let idx = self.lock_index();
        loop {
            let n = format!(
                "{}_{}",
                LEFT[rand::random_range(0..LEFT.len())],
                RIGHT[rand::random_range(0..RIGHT.len())]
            );
            if !idx.names.contains_key(&n) {
                return n;
            }
            let n2 = format!("{n}{}", rand::random_range(0..100));
            if !idx.names.contains_key(&n2) {
                return n2;
            }
        }
    }

    /// The binary of a configured OCI runtime. Only names the daemon was started with run
    /// (`--add-runtime NAME=PATH`, and `runc` when installed): a path given by a client would
    /// be any host program run as root.
    fn runtime_path(&self, name: &str) -> Result<PathBuf> {
        self.cfg
            .runtimes
            .get(name)
            .cloned()
            .ok_or_else(|| invalid(format!("Unknown runtime specified {name}")))
    }

    /// `POST /containers/{id}/start`; `NotModified` if running.
    pub async fn start(&self, reference: &str) -> Result<()> {
        let entry = self.lookup(reference)?;
        let mut rec = entry.rec.lock().await;
        match rec.state.status {
            Status::Running => return Err(ContainerError::NotModified),
            Status::Paused => {
                return Err(conflict(
                    "cannot start a paused container, try unpause instead",
                ));
            }
            Status::Removing => {
                return Err(conflict(
                    "container is marked for removal and cannot be started",
                ));
            }
            _ => {}
        }
        rec.manually_stopped = false;
        let started = self.start_locked(&entry, &mut rec).await;
        // `run --rm` whose start fails leaves no container behind, as dockerd does.
        if started.is_err() && rec.host_config.auto_remove.unwrap_or(false) {
            drop(rec);
            if let Err(error) = self.remove_entry(&entry, true).await {
                tracing::warn!(container_id = %entry.id, %error, "removing an auto-remove container after a failed start");
            }
        }
        started
    }

    /// Starts the container under its record lock.
    async fn start_locked(&self, entry: &Arc<Entry>, rec: &mut Record) -> Result<()> {
        let image_id = rec.image_id.clone();
        let rootfs = {
            let images = self.images.clone();
            let (id, image_id) = (rec.id.clone(), image_id.clone());
            blocking(move || {
                images.resolve(&image_id)?;
                images.rootfs(&id, &image_id)
            })
            .await?
        }
        .map_err(|_| ContainerError::ImageNotFound {
            reference: image_id.clone(),
        })?;
        let user = {
            let (u, rootfs) = (rec.config.user.clone().unwrap_or_default(), rootfs.clone());
            blocking(move || spec::resolve_user(&u, &rootfs)).await??
        };
        let join_netns = match rec
            .host_config
            .network_mode
            .as_deref()
            .and_then(|m| m.strip_prefix("container:"))
        {
            Some(other) => {
                let o = self.lookup(other)?;
                let pid = o
                    .rec
                    .try_lock()
                    .map(|r| (r.state.status, r.state.pid))
                    .unwrap_or((Status::Running, 0));
                if !pid.0.is_alive() || pid.1 <= 0 {
                    return Err(conflict(format!(
                        "cannot join network of a non running container: {}",
                        o.id
                    )));
                }
                Some(format!("/proc/{}/ns/net", pid.1))
            }
            None => None,
        };
        let argv: Vec<String> = std::iter::once(rec.path.clone())
            .chain(rec.args.iter().cloned())
            .collect();
        let spec_json = spec::build(spec::BuildInputs {
            id: &rec.id,
            argv,
            config: &rec.config,
            host_config: &rec.host_config,
            user,
            data_dir: &entry.paths.data_dir,
            join_netns,
            cgroup_parent: &rec.cgroup_parent,
            mounts: mounts::oci_mounts(&self.volumes, &rec.mount_points)?,
        })?;
        let runtime = match rec
            .host_config
            .runtime
            .as_deref()
            .filter(|r| !r.is_empty() && *r != "berth")
        {
            Some(r) => protocol::RuntimeKind::External(self.runtime_path(r)?),
            None => protocol::RuntimeKind::Builtin,
        };
        let log_opts = rec
            .host_config
            .log_config
            .as_ref()
            .and_then(|l| l.config.clone())
            .unwrap_or_default();
        let monitor_cfg = protocol::MonitorConfig {
            version: protocol::PROTOCOL_VERSION,
            id: rec.id.clone(),
            run_dir: entry.paths.run_dir.clone(),
            rootfs: Some(berth_runtime::OverlayMount {
                lowerdirs: rootfs.lowerdirs.clone(),
                upperdir: rootfs.upperdir.clone(),
                workdir: rootfs.workdir.clone(),
            }),
            log_path: entry.paths.log(&rec.id),
            log_max_size: log_opts
                .get("max-size")
                .and_then(|s| parse_size(s))
                .unwrap_or(20 * 1000 * 1000),
            log_max_files: log_opts
                .get("max-file")
                .and_then(|s| s.parse().ok())
                .unwrap_or(5),
            tty: rec.config.tty.unwrap_or(false),
            open_stdin: rec.config.open_stdin.unwrap_or(false),
            stdin_once: rec.config.stdin_once.unwrap_or(false),
            console_size: rec
                .host_config
                .console_size
                .as_ref()
                .filter(|s| s.len() == 2 && s[0] > 0)
                .map(|s| (s[0] as u16, s[1] as u16)),
            runtime,
        };
        self.prepare_resolv_conf(entry, rec).await?;
        let run_dir = entry.paths.run_dir.clone();
        {
            let (spec_json, monitor_cfg, run_dir) =
                (spec_json.clone(), monitor_cfg.clone(), run_dir.clone());
            blocking(move || -> Result<()> {
                let _ = std::fs::remove_dir_all(&run_dir);
                std::fs::create_dir_all(&run_dir).map_err(io_err("create", &run_dir))?;
                let encode_err = |e: serde_json::Error| ContainerError::Internal {
                    message: format!("encode run files: {e}"),
                };
                let spec_bytes = serde_json::to_vec(&spec_json).map_err(encode_err)?;
                let monitor_bytes = serde_json::to_vec(&monitor_cfg).map_err(encode_err)?;
                store::write_atomic(&run_dir.join(protocol::SPEC_FILE), &spec_bytes, false)?;
                store::write_atomic(&run_dir.join(protocol::CONFIG_FILE), &monitor_bytes, false)?;
                Ok(())
            })
            .await??;
        }
        let ready = monitor_client::spawn(&self.cfg.exe, &self.sealed_exe, &run_dir).await;
        let ready = match ready {
            Ok(r) if r.error.is_none() => r,
            Ok(r) => {
                return Err(self
                    .start_failed(entry, rec, r.error.unwrap_or_default(), 128)
                    .await);
            }
            Err(e) => return Err(self.start_failed(entry, rec, e.to_string(), 128).await),
        };
        let socket = entry.paths.socket();
        // The exit watcher and the attached clients connect before the process runs, so no
        // exit and no early output is missed.
        let wait = match begin_wait(&socket).await {
            Ok(w) => w,
            Err(e) => return Err(self.start_failed(entry, rec, e.to_string(), 128).await),
        };
        // The init exists, blocked before exec: give it its interfaces and ports now.
        if let Err(e) = self.setup_networks(entry, rec, ready.pid).await {
            self.kill_unstarted(entry).await;
            rec.state.error = e.to_string();
            rec.state.exit_code = 128;
            self.spawn_exit_watcher(entry.clone(), wait, false);
            return Err(e);
        }
        let pending: Vec<PendingAttach> = std::mem::take(
            &mut *entry
                .pending_attach
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for p in pending {
            if let Ok((Response::Ok, conv)) = monitor_client::call(&socket, &p.request).await {
                let _ = p.tx.send(conv);
            }
        }
        *entry.spec.lock().unwrap_or_else(|p| p.into_inner()) = Some(spec_json);
        match monitor_client::call(&socket, &Request::Start).await {
            Ok((Response::Started { pid, started_at }, _)) => {
                rec.state.status = Status::Running;
                rec.state.pid = i64::from(pid);
                rec.state.started_at = started_at;
                rec.state.error.clear();
                rec.state.oom_killed = false;
                let _ = store::save(&entry.paths, rec, false);
                entry.set_life(rec, false, false);
                self.publish(rec, "start", &[]);
                self.spawn_exit_watcher(entry.clone(), wait, true);
                Ok(())
            }
            Ok((Response::Error { message, exit_code }, _)) => {
                // The monitor records the failed exec as an exit; the watcher applies it.
                let code = exit_code.unwrap_or(128);
                rec.state.error = message.clone();
                rec.state.exit_code = i64::from(code);
                self.spawn_exit_watcher(entry.clone(), wait, false);
                Err(ContainerError::StartFailed {
                    message: format!("failed to create task for container: {message}: unknown"),
                })
            }
            Ok((other, _)) => Err(self
                .start_failed(
                    entry,
                    rec,
                    format!("unexpected monitor response {other:?}"),
                    128,
                )
                .await),
            Err(e) => Err(self.start_failed(entry, rec, e.to_string(), 128).await),
        }
    }

    /// Records a start that failed before the process existed.
    async fn start_failed(
        &self,
        entry: &Arc<Entry>,
        rec: &mut Record,
        message: String,
        code: i64,
    ) -> ContainerError {
        rec.state.error = message.clone();
        rec.state.exit_code = code;
        if rec.state.status != Status::Created {
            rec.state.status = Status::Exited;
        }
        let _ = store::save(&entry.paths, rec, false);
        let _ = std::fs::remove_dir_all(&entry.paths.run_dir);
        entry.set_life(rec, true, false);
        ContainerError::StartFailed { message }
    }

    fn spawn_exit_watcher(&self, entry: Arc<Entry>, wait: Conversation, started: bool) {
        let Some(me) = self.me.upgrade() else { return };
        tokio::spawn(async move {
            let exit = read_wait(wait)
                .await
                .or_else(|| read_exit_file(&entry.paths))
                .unwrap_or_else(|| ExitStatus {
                    exit_code: 255,
                    finished_at: store::now_rfc3339(),
                    oom_killed: false,
                    error: Some("container monitor disappeared".into()),
                });
            me.handle_exit(entry, exit, started).await;
        });
    }

    /// Applies an exit: state, events, waiters, then `--rm` or the restart policy.
    async fn handle_exit(&self, entry: Arc<Entry>, exit: ExitStatus, started: bool) {
        let mut rec = entry.rec.lock().await;
        if !started && rec.state.status == Status::Created {
            rec.state.exit_code = i64::from(exit.exit_code);
            if let Some(e) = &exit.error {
                rec.state.error = e.clone();
            }
        } else {
            rec.state.status = Status::Exited;
            rec.state.exit_code = i64::from(exit.exit_code);
            rec.state.finished_at = exit.finished_at.clone();
            rec.state.oom_killed = exit.oom_killed;
            if let Some(e) = &exit.error {
                rec.state.error = e.clone();
            }
        }
        rec.state.pid = 0;
        self.release_networks(&rec.id).await;
        *entry.spec.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let _ = std::fs::remove_dir_all(&entry.paths.run_dir);
        let _ = store::save(&entry.paths, &rec, false);
        if started {
            if exit.oom_killed {
                self.publish(&rec, "oom", &[]);
            }
            self.publish(&rec, "die", &[("exitCode", exit.exit_code.to_string())]);
        }
        let auto_remove = rec.host_config.auto_remove.unwrap_or(false);
        let restart = started && !auto_remove && self.should_restart(&rec);
        if restart {
            rec.state.status = Status::Restarting;
            let _ = store::save(&entry.paths, &rec, false);
        }
        entry.set_life(&rec, true, false);
        if auto_remove {
            drop(rec);
            let _ = self.remove_entry(&entry, true).await;
            return;
        }
        if restart {
            let backoff = Duration::from_millis(100u64 << rec.restart_count.clamp(0, 9));
            drop(rec);
            let Some(me) = self.me.upgrade() else { return };
            tokio::spawn(async move {
                tokio::time::sleep(backoff).await;
                let mut rec = entry.rec.lock().await;
                if rec.state.status != Status::Restarting {
                    return;
                }
                rec.restart_count += 1;
                if me.start_locked(&entry, &mut rec).await.is_ok() {
                    me.publish(&rec, "restart", &[]);
                } else {
                    rec.state.status = Status::Exited;
                    let _ = store::save(&entry.paths, &rec, false);
                    entry.set_life(&rec, false, false);
                }
            });
        }
    }

    fn should_restart(&self, rec: &Record) -> bool {
        let Some(rp) = rec.host_config.restart_policy.as_ref() else {
            return false;
        };
        match rp.name.unwrap_or(RestartPolicyNameEnum::EMPTY) {
            RestartPolicyNameEnum::ALWAYS | RestartPolicyNameEnum::UNLESS_STOPPED => {
                !rec.manually_stopped
            }
            RestartPolicyNameEnum::ON_FAILURE => {
                let max = rp.maximum_retry_count.unwrap_or(0);
                !rec.manually_stopped
                    && rec.state.exit_code != 0
                    && (max == 0 || rec.restart_count < max)
            }
            _ => false,
        }
    }

    /// `POST /containers/{id}/stop?signal=&t=`; `NotModified` if not running.
    pub async fn stop(
        &self,
        reference: &str,
        signal: Option<String>,
        timeout: Option<i64>,
    ) -> Result<()> {
        let entry = self.lookup(reference)?;
        let (sig, secs, paused) = {
            let mut rec = entry.rec.lock().await;
            if rec.state.status == Status::Restarting {
                rec.state.status = Status::Exited;
                rec.manually_stopped = true;
                let _ = store::save(&entry.paths, &rec, false);
                entry.set_life(&rec, false, false);
                return Ok(());
            }
            if !rec.state.status.is_alive() {
                return Err(ContainerError::NotModified);
            }
            rec.manually_stopped = true;
            let _ = store::save(&entry.paths, &rec, false);
            let sig = match signal.as_deref().filter(|s| !s.is_empty()) {
                Some(s) => parse_signal(s)?,
                None => rec
                    .config
                    .stop_signal
                    .as_deref()
                    .and_then(berth_runtime::parse_signal)
                    .unwrap_or(libc::SIGTERM),
            };
            let secs = timeout.or(rec.config.stop_timeout).unwrap_or(10);
            (sig, secs, rec.state.status == Status::Paused)
        };
        if paused {
            let _ = self.unpause(reference).await;
        }
        self.stop_entry(&entry, sig, secs).await;
        let rec = entry.rec.lock().await;
        self.publish(&rec, "stop", &[]);
        Ok(())
    }

    /// Signals, waits `secs` (negative: forever), then kills.
    async fn stop_entry(&self, entry: &Arc<Entry>, sig: i32, secs: i64) {
        let mut rx = entry.life.subscribe();
        let exits = rx.borrow().exits;
        let exited = |l: &Life| l.exits > exits || !l.status.is_alive();
        let socket = entry.paths.socket();
        if sig != libc::SIGKILL {
            let _ = monitor_client::call_ok(&socket, &Request::Kill { signal: sig }).await;
            let wait = async {
                let _ = rx.wait_for(exited).await;
            };
            if secs < 0 {
                wait.await;
                return;
            }
            if tokio::time::timeout(Duration::from_secs(secs as u64), wait)
                .await
                .is_ok()
            {
                return;
            }
        }
        let _ = monitor_client::call_ok(
            &socket,
            &Request::Kill {
                signal: libc::SIGKILL,
            },
        )
        .await;
        let _ = tokio::time::timeout(Duration::from_secs(30), rx.wait_for(exited)).await;
    }

    /// `POST /containers/{id}/restart?signal=&t=`.
    pub async fn restart(
        &self,
        reference: &str,
        signal: Option<String>,
        timeout: Option<i64>,
    ) -> Result<()> {
        match self.stop(reference, signal, timeout).await {
            Ok(()) | Err(ContainerError::NotModified) => {}
            Err(e) => return Err(e),
        }
        match self.start(reference).await {
            Ok(()) | Err(ContainerError::NotModified) => {}
            Err(e) => return Err(e),
        }
        let entry = self.lookup(reference)?;
        let rec = entry.rec.lock().await;
        self.publish(&rec, "restart", &[]);
        Ok(())
    }

    /// `POST /containers/{id}/kill?signal=` (`HUP`, `SIGHUP` or `1`).
    pub async fn kill(&self, reference: &str, signal: Option<String>) -> Result<()> {
        let entry = self.lookup(reference)?;
        let sig = match signal.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => parse_signal(s)?,
            None => libc::SIGKILL,
        };
        let rec = entry.rec.lock().await;
        if !rec.state.status.is_alive() {
            return Err(conflict(format!(
                "Cannot kill container: {}: Container {} is not running",
                reference, rec.id
            )));
        }
        let socket = entry.paths.socket();
        let name = rec.name.clone();
        let attrs_rec = rec.clone();
        drop(rec);
        monitor_client::call_ok(&socket, &Request::Kill { signal: sig })
            .await
            .map_err(|e| ContainerError::Internal {
                message: format!("Cannot kill container: {name}: {e}"),
            })?;
        self.publish(&attrs_rec, "kill", &[("signal", sig.to_string())]);
        Ok(())
    }

    /// `DELETE /containers/{id}?force=&v=`.
    pub async fn remove(&self, reference: &str, force: bool, volumes: bool) -> Result<()> {
        let entry = self.lookup(reference)?;
        {
            let mut rec = entry.rec.lock().await;
            match rec.state.status {
                Status::Running | Status::Paused | Status::Restarting if !force => {
                    let what = if rec.state.status == Status::Paused {
                        "paused"
                    } else if rec.state.status == Status::Restarting {
                        "restarting"
                    } else {
                        "running"
                    };
                    return Err(conflict(format!(
                        "cannot remove container \"/{}\": container is {what}: stop the container before removing or force remove",
                        rec.name
                    )));
                }
                Status::Removing => {
                    return Err(conflict(format!(
                        "removal of container {} is already in progress",
                        rec.id
                    )));
                }
                Status::Restarting => {
                    rec.state.status = Status::Exited;
                    entry.set_life(&rec, false, false);
                }
                _ => {}
            }
            if rec.state.status.is_alive() {
                rec.manually_stopped = true;
                rec.host_config.auto_remove = Some(false);
                let paused = rec.state.status == Status::Paused;
                drop(rec);
                if paused {
                    let _ = self.unpause(reference).await;
                }
                self.stop_entry(&entry, libc::SIGKILL, 0).await;
            }
        }
        self.remove_entry(&entry, volumes).await
    }

    async fn remove_entry(&self, entry: &Arc<Entry>, remove_volumes: bool) -> Result<()> {
        let mut rec = entry.rec.lock().await;
        if entry.life.borrow().removed {
            return Ok(());
        }
        rec.state.status = Status::Removing;
        let (images, id, paths) = (self.images.clone(), rec.id.clone(), entry.paths.clone());
        blocking(move || {
            let _ = images.remove_rootfs(&id);
            let _ = std::fs::remove_dir_all(&paths.run_dir);
            std::fs::remove_dir_all(&paths.data_dir).or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            })
        })
        .await?
        .map_err(io_err("remove", &entry.paths.data_dir))?;
        {
            let mut idx = self.lock_index();
            idx.by_id.remove(&rec.id);
            if idx.names.get(&rec.name) == Some(&rec.id) {
                idx.names.remove(&rec.name);
            }
        }
        self.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, e| e.container_id != rec.id);
        {
            let (volumes, id, points) = (
                self.volumes.clone(),
                rec.id.clone(),
                rec.mount_points.clone(),
            );
            blocking(move || mounts::release_mounts(&volumes, &id, &points, remove_volumes))
                .await?;
        }
        self.publish(&rec, "destroy", &[]);
        entry.set_life(&rec, false, true);
        Ok(())
    }

    fn cgroup(&self, rec: &Record) -> berth_cgroups::Cgroup {
        berth_cgroups::Cgroup::new(
            std::path::Path::new("/sys/fs/cgroup"),
            &spec::cgroups_path(&rec.cgroup_parent, &rec.id),
        )
    }

    /// `POST /containers/{id}/pause`.
    pub async fn pause(&self, reference: &str) -> Result<()> {
        let entry = self.lookup(reference)?;
        let mut rec = entry.rec.lock().await;
        match rec.state.status {
            Status::Running => {}
            Status::Paused => {
                return Err(conflict(format!("Container {} is already paused", rec.id)));
            }
            _ => return Err(conflict(format!("Container {} is not running", rec.id))),
        }
        let cg = self.cgroup(&rec);
        blocking(move || cg.freeze())
            .await?
            .map_err(|e| ContainerError::Internal {
                message: e.to_string(),
            })?;
        rec.state.status = Status::Paused;
        let _ = store::save(&entry.paths, &rec, false);
        entry.set_life(&rec, false, false);
        self.publish(&rec, "pause", &[]);
        Ok(())
    }

    /// `POST /containers/{id}/unpause`.
    pub async fn unpause(&self, reference: &str) -> Result<()> {
        let entry = self.lookup(reference)?;
        let mut rec = entry.rec.lock().await;
        if rec.state.status != Status::Paused {
            return Err(conflict(format!("Container {} is not paused", rec.id)));
        }
        let cg = self.cgroup(&rec);
        blocking(move || cg.thaw())
            .await?
            .map_err(|e| ContainerError::Internal {
                message: e.to_string(),
            })?;
        rec.state.status = Status::Running;
        let _ = store::save(&entry.paths, &rec, false);
        entry.set_life(&rec, false, false);
        self.publish(&rec, "unpause", &[]);
        Ok(())
    }

    /// `POST /containers/{id}/wait`: registers the waiter now (so the daemon can flush headers
    /// before the container is started), resolves later.
    pub async fn wait(&self, reference: &str, condition: WaitCondition) -> Result<WaitHandle> {
        let entry = self.lookup(reference)?;
        let rx = entry.life.subscribe();
        let exits_at_start = rx.borrow().exits;
        Ok(WaitHandle {
            entry,
            rx,
            condition,
            exits_at_start,
        })
    }

    /// `POST /containers/{id}/rename?name=`.
    pub async fn rename(&self, reference: &str, new_name: &str) -> Result<()> {
        let entry = self.lookup(reference)?;
        let new_name = new_name.strip_prefix('/').unwrap_or(new_name).to_string();
        if !store::valid_name(&new_name) {
            return Err(invalid(format!(
                "Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let mut rec = entry.rec.lock().await;
        if rec.name == new_name {
            return Err(invalid(
                "Renaming a container with the same name as its current name",
            ));
        }
        {
            let mut idx = self.lock_index();
            if let Some(other) = idx.names.get(&new_name) {
                return Err(conflict(format!(
                    "Conflict. The container name \"/{new_name}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
                )));
            }
            idx.names.remove(&rec.name);
            idx.names.insert(new_name.clone(), rec.id.clone());
        }
        let old = std::mem::replace(&mut rec.name, new_name);
        store::save(&entry.paths, &rec, false)?;
        self.rename_in_networks(&rec).await;
        self.publish(&rec, "rename", &[("oldName", format!("/{old}"))]);
        Ok(())
    }

    /// `POST /containers/{id}/update`.
    pub async fn update(
        &self,
        reference: &str,
        body: ContainerUpdateBody,
    ) -> Result<ContainerUpdateResponse> {
        let entry = self.lookup(reference)?;
        let mut rec = entry.rec.lock().await;
        let mut hc = rec.host_config.clone();
        macro_rules! take {
            ($($f:ident),*) => { $( if body.$f.is_some() { hc.$f = body.$f.clone(); } )* };
        }
        take!(
            memory,
            memory_swap,
            memory_reservation,
            nano_cpus,
            cpu_shares,
            cpu_period,
            cpu_quota,
            cpuset_cpus,
            pids_limit,
            restart_policy
        );
        if body.nano_cpus.is_some_and(|n| n > 0) {
            hc.cpu_quota = None;
        }
        spec::validate_host_config(&hc)?;
        if rec.host_config.auto_remove.unwrap_or(false)
            && body.restart_policy.as_ref().is_some_and(|r| {
                !matches!(
                    r.name,
                    None | Some(RestartPolicyNameEnum::NO) | Some(RestartPolicyNameEnum::EMPTY)
                )
            })
        {
            return Err(invalid(
                "Restart policy cannot be updated because AutoRemove is enabled for the container",
            ));
        }
        if rec.state.status.is_alive() {
            let res = cgroup_resources(&hc);
            let cg = self.cgroup(&rec);
            blocking(move || cg.update(&res))
                .await?
                .map_err(|e| ContainerError::Internal {
                    message: format!("Cannot update container {}: {e}", rec_id_short(&entry.id)),
                })?;
        }
        rec.host_config = hc;
        store::save(&entry.paths, &rec, false)?;
        self.publish(&rec, "update", &[]);
        Ok(ContainerUpdateResponse {
            warnings: Some(vec![]),
        })
    }

    /// `GET /containers/json`.
    pub async fn list(&self, options: ListOptions) -> Result<Vec<ContainerSummary>> {
        let entries: Vec<Arc<Entry>> = self.lock_index().by_id.values().cloned().collect();
        let mut recs = Vec::with_capacity(entries.len());
        for e in entries {
            recs.push(e.rec.lock().await.clone());
        }
        recs.sort_by(|a, b| b.created.cmp(&a.created));
        let f = &options.filters;
        let ancestors: Vec<String> = f
            .get("ancestor")
            .into_iter()
            .flatten()
            .filter_map(|a| self.images.resolve(a).ok().map(|i| i.id))
            .collect();
        let created_of = |r: &str| -> Option<String> {
            let e = self.lookup(r).ok()?;
            e.rec.try_lock().ok().map(|r| r.created.clone())
        };
        let before = f
            .get("before")
            .and_then(|v| v.first())
            .map(|r| {
                created_of(r).ok_or_else(|| ContainerError::NotFound {
                    reference: r.clone(),
                })
            })
            .transpose()?;
        let since = f
            .get("since")
            .and_then(|v| v.first())
            .map(|r| {
                created_of(r).ok_or_else(|| ContainerError::NotFound {
                    reference: r.clone(),
                })
            })
            .transpose()?;
        for key in f.keys() {
            if ![
                "id", "name", "status", "label", "ancestor", "exited", "before", "since",
                "network", "volume", "health", "is-task", "expose", "publish",
            ]
            .contains(&key.as_str())
            {
                return Err(invalid(format!("invalid filter '{key}'")));
            }
        }
        for s in f.get("status").into_iter().flatten() {
            if ![
                "created",
                "restarting",
                "running",
                "removing",
                "paused",
                "exited",
                "dead",
            ]
            .contains(&s.as_str())
            {
                return Err(invalid(format!("invalid filter 'status={s}'")));
            }
        }
        let all = options.all
            || options.limit.is_some()
            || f.contains_key("status")
            || f.contains_key("exited");
        let mut out = Vec::new();
        for r in recs {
            if !all && !r.state.status.is_alive() && r.state.status != Status::Restarting {
                continue;
            }
            let ok = f
                .get("id")
                .is_none_or(|v| v.iter().any(|p| r.id.starts_with(p.as_str())))
                && f.get("name")
                    .is_none_or(|v| v.iter().any(|n| r.name.contains(n.trim_start_matches('/'))))
                && f.get("status")
                    .is_none_or(|v| v.iter().any(|s| s == r.state.status.as_str()))
                && f.get("label")
                    .is_none_or(|v| v.iter().all(|l| label_matches(r.config.labels.as_ref(), l)))
                && f.get("ancestor").is_none_or(|v| {
                    ancestors.contains(&r.image_id)
                        || v.iter().any(|a| Some(a) == r.config.image.as_ref())
                })
                && f.get("exited").is_none_or(|v| {
                    r.state.status == Status::Exited
                        && v.iter()
                            .any(|c| c.parse::<i64>().ok() == Some(r.state.exit_code))
                })
                && f.get("volume").is_none_or(|v| {
                    v.iter().any(|x| {
                        r.mount_points
                            .iter()
                            .any(|m| m.name == *x || m.source == *x || m.destination == *x)
                    })
                })
                && before.as_ref().is_none_or(|b| r.created < *b)
                && since.as_ref().is_none_or(|s| r.created > *s)
                && self.network_filters_match(&r, f);
            if ok {
                out.push(self.summary(&r));
            }
            if options.limit.is_some_and(|l| out.len() >= l) {
                break;
            }
        }
        Ok(out)
    }

    fn summary(&self, r: &Record) -> ContainerSummary {
        use berth_api::models::{
            ContainerSummaryHostConfig, ContainerSummaryNetworkSettings,
            ContainerSummaryStateEnum as S,
        };
        let state = match r.state.status {
            Status::Created => S::CREATED,
            Status::Running => S::RUNNING,
            Status::Paused => S::PAUSED,
            Status::Restarting => S::RESTARTING,
            Status::Removing => S::REMOVING,
            Status::Exited => S::EXITED,
            Status::Dead => S::DEAD,
        };
        let command = std::iter::once(r.path.as_str())
            .chain(r.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        let (ports, networks) = self.summary_network(r);
        ContainerSummary {
            id: Some(r.id.clone()),
            names: Some(vec![format!("/{}", r.name)]),
            image: r.config.image.clone(),
            image_id: Some(r.image_id.clone()),
            command: Some(command),
            created: chrono::DateTime::parse_from_rfc3339(&r.created)
                .ok()
                .map(|t| t.timestamp()),
            ports: Some(ports),
            labels: Some(r.config.labels.clone().unwrap_or_default()),
            state: Some(state),
            status: Some(status_text(r)),
            host_config: Some(ContainerSummaryHostConfig {
                network_mode: r.host_config.network_mode.clone(),
                annotations: None,
            }),
            network_settings: Some(ContainerSummaryNetworkSettings {
                networks: Some(networks),
            }),
            mounts: Some(
                r.mount_points
                    .iter()
                    .map(berth_volume::MountPoint::to_api)
                    .collect(),
            ),
            ..Default::default()
        }
    }

    /// `GET /containers/{id}/json?size=`.
    pub async fn inspect(&self, reference: &str, size: bool) -> Result<ContainerInspectResponse> {
        let _ = size;
        let entry = self.lookup(reference)?;
        let r = entry.rec.lock().await.clone();
        Ok(self.inspect_record(&entry, &r))
    }

    fn inspect_record(&self, entry: &Entry, r: &Record) -> ContainerInspectResponse {
        use berth_api::models::{ContainerState, ContainerStateStatusEnum as S, DriverData};
        let status = match r.state.status {
            Status::Created => S::CREATED,
            Status::Running => S::RUNNING,
            Status::Paused => S::PAUSED,
            Status::Restarting => S::RESTARTING,
            Status::Removing => S::REMOVING,
            Status::Exited => S::EXITED,
            Status::Dead => S::DEAD,
        };
        let exec_ids: Vec<String> = self
            .execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|e| e.container_id == r.id)
            .map(|e| e.id.clone())
            .collect();
        let graph = self
            .images
            .rootfs(&r.id, &r.image_id)
            .ok()
            .map(|d| DriverData {
                name: "overlay2".into(),
                data: HashMap::from([
                    (
                        "LowerDir".to_string(),
                        d.lowerdirs
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(":"),
                    ),
                    ("UpperDir".to_string(), d.upperdir.display().to_string()),
                    ("WorkDir".to_string(), d.workdir.display().to_string()),
                ]),
            });
        let mounts = r
            .mount_points
            .iter()
            .map(berth_volume::MountPoint::to_api)
            .collect();
        ContainerInspectResponse {
            id: Some(r.id.clone()),
            created: Some(r.created.clone()),
            path: Some(r.path.clone()),
            args: Some(r.args.clone()),
            state: Some(ContainerState {
                status: Some(status),
                running: Some(matches!(r.state.status, Status::Running | Status::Paused)),
                paused: Some(r.state.status == Status::Paused),
                restarting: Some(r.state.status == Status::Restarting),
                oom_killed: Some(r.state.oom_killed),
                dead: Some(r.state.status == Status::Dead),
                pid: Some(r.state.pid),
                exit_code: Some(r.state.exit_code),
                error: Some(r.state.error.clone()),
                started_at: Some(r.state.started_at.clone()),
                finished_at: Some(r.state.finished_at.clone()),
                health: None,
            }),
            image: Some(r.image_id.clone()),
            resolv_conf_path: Some(
                entry
                    .paths
                    .data_dir
                    .join("resolv.conf")
                    .display()
                    .to_string(),
            ),
            hostname_path: Some(entry.paths.data_dir.join("hostname").display().to_string()),
            hosts_path: Some(entry.paths.data_dir.join("hosts").display().to_string()),
            log_path: Some(entry.paths.log(&r.id).display().to_string()),
            name: Some(format!("/{}", r.name)),
            restart_count: Some(r.restart_count),
            driver: Some("overlay2".into()),
            platform: Some("linux".into()),
            mount_label: Some(String::new()),
            process_label: Some(String::new()),
            app_armor_profile: Some(String::new()),
            exec_ids: (!exec_ids.is_empty()).then_some(exec_ids),
            host_config: Some(r.host_config.clone()),
            graph_driver: graph,
            mounts: Some(mounts),
            config: Some(r.config.clone()),
            network_settings: Some(self.network_settings(
                r,
                if r.state.pid > 0 {
                    format!("/proc/{}/ns/net", r.state.pid)
                } else {
                    String::new()
                },
            )),
            ..Default::default()
        }
    }

    /// `GET /containers/{id}/logs`.
    pub async fn logs(&self, reference: &str, options: LogsOptions) -> Result<LogStream> {
        let entry = self.lookup(reference)?;
        let tty = entry.rec.lock().await.config.tty.unwrap_or(false);
        let (tx, rx) = mpsc::channel(64);
        let log = entry.paths.log(&entry.id);
        let life = entry.life.subscribe();
        tokio::spawn(crate::logs::stream(log, options, life, tx));
        Ok(LogStream { tty, rx })
    }

    /// `POST /containers/{id}/attach`: validates, then the daemon answers 101 and runs it.
    pub async fn attach(&self, reference: &str, options: AttachOptions) -> Result<Attachment> {
        let entry = self.lookup(reference)?;
        let rec = entry.rec.lock().await;
        let tty = rec.config.tty.unwrap_or(false);
        let stdin = options.stdin && rec.config.open_stdin.unwrap_or(false);
        let request = Request::Attach {
            stdin,
            stdout: options.stdout,
            stderr: options.stderr,
        };
        let mut backlog = Vec::new();
        if options.logs {
            let o = LogsOptions {
                stdout: options.stdout,
                stderr: options.stderr,
                ..Default::default()
            };
            let (lines, _) = crate::logs::read_backlog(&entry.paths.log(&rec.id), &o);
            backlog = lines
                .into_iter()
                .map(|l| LogChunk {
                    stream: l.stream,
                    data: Bytes::from(l.text),
                })
                .collect();
        }
        let source = if !options.stream {
            AttachSource::None
        } else if rec.state.status.is_alive() {
            match monitor_client::call(&entry.paths.socket(), &request).await? {
                (Response::Ok, conv) => AttachSource::Ready(conv),
                (other, _) => {
                    return Err(ContainerError::Internal {
                        message: format!("attach refused by monitor: {other:?}"),
                    });
                }
            }
        } else {
            let (tx, rx) = oneshot::channel();
            entry
                .pending_attach
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(PendingAttach { request, tx });
            AttachSource::Pending(rx)
        };
        self.publish(&rec, "attach", &[]);
        Ok(Attachment {
            tty,
            options: AttachOptions { stdin, ..options },
            source,
            backlog,
        })
    }

    /// `POST /containers/{id}/resize?h=&w=`.
    pub async fn resize(&self, reference: &str, height: u16, width: u16) -> Result<()> {
        let entry = self.lookup(reference)?;
        let rec = entry.rec.lock().await;
        if !rec.state.status.is_alive() {
            return Err(conflict(format!("Container {} is not running", rec.id)));
        }
        drop(rec);
        monitor_client::call_ok(&entry.paths.socket(), &Request::Resize { height, width }).await
    }

    /// `POST /containers/{id}/exec`; returns the exec id.
    pub async fn exec_create(&self, reference: &str, config: ExecConfig) -> Result<String> {
        let entry = self.lookup(reference)?;
        let rec = entry.rec.lock().await;
        match rec.state.status {
            Status::Running => {}
            Status::Paused => {
                return Err(conflict(format!(
                    "Container {} is paused, unpause the container before exec",
                    rec.id
                )));
            }
            Status::Restarting => {
                return Err(conflict(format!(
                    "Container {} is restarting, wait until the container is running",
                    rec.id
                )));
            }
            _ => return Err(conflict(format!("Container {} is not running", rec.id))),
        }
        if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(invalid("No exec command specified"));
        }
        let id = store::new_id();
        let exec = Arc::new(ExecEntry {
            id: id.clone(),
            container_id: rec.id.clone(),
            config,
            state: Default::default(),
        });
        let cmd = exec.cmdline();
        self.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), exec);
        self.publish(
            &rec,
            &format!("exec_create: {cmd}"),
            &[("execID", id.clone())],
        );
        Ok(id)
    }

    fn exec_entry(&self, exec_id: &str) -> Result<Arc<ExecEntry>> {
        self.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(exec_id)
            .cloned()
            .ok_or_else(|| ContainerError::ExecNotFound {
                id: exec_id.to_string(),
            })
    }

    /// `POST /exec/{id}/start`: starts the process; the daemon then runs the session.
    pub async fn exec_start(&self, exec_id: &str, config: ExecStartConfig) -> Result<ExecSession> {
        let exec = self.exec_entry(exec_id)?;
        let entry = self.lookup(&exec.container_id)?;
        let rec = entry.rec.lock().await.clone();
        if rec.state.status != Status::Running {
            return Err(conflict(format!("Container {} is not running", rec.id)));
        }
        {
            let mut st = exec.state.lock().unwrap_or_else(|p| p.into_inner());
            if st.started {
                return Err(conflict(format!(
                    "Error: Exec command {exec_id} is already running"
                )));
            }
            st.started = true;
        }
        let base = entry
            .spec
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| conflict(format!("Container {} is not running", rec.id)))?;
        let c = &exec.config;
        let tty = config.tty.or(c.tty).unwrap_or(false);
        let mut process = base["process"].clone();
        process["args"] = serde_json::json!(c.cmd.clone().unwrap_or_default());
        process["terminal"] = serde_json::json!(tty);
        let mut env: Vec<String> = process["env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        for kv in c.env.iter().flatten() {
            let k = kv.split('=').next().unwrap_or("");
            env.retain(|e| e.split('=').next() != Some(k));
            env.push(kv.clone());
        }
        if tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        process["env"] = serde_json::json!(env);
        if let Some(w) = c.working_dir.as_ref().filter(|w| !w.is_empty()) {
            process["cwd"] = serde_json::json!(w);
        }
        if let Some(u) = c.user.as_ref().filter(|u| !u.is_empty()) {
            let rootfs = self.images.rootfs(&rec.id, &rec.image_id).map_err(|e| {
                ContainerError::Internal {
                    message: e.to_string(),
                }
            })?;
            let user = spec::resolve_user(u, &rootfs)?;
            process["user"] = serde_json::json!({"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids});
        }
        if c.privileged.unwrap_or(false) {
            let all = spec::all_capabilities();
            process["capabilities"] =
                serde_json::json!({"bounding": all, "effective": all, "permitted": all});
        }
        let size = config
            .console_size
            .clone()
            .or_else(|| c.console_size.clone())
            .filter(|s| s.len() == 2 && s[0] > 0)
            .map(|s| (s[0] as u16, s[1] as u16));
        if let Some((h, w)) = size {
            process["consoleSize"] = serde_json::json!({"height": h, "width": w});
        }
        let process: berth_runtime::Process =
            serde_json::from_value(process).map_err(|e| ContainerError::Internal {
                message: format!("exec process: {e}"),
            })?;
        Ok(ExecSession {
            tty,
            exec: exec.clone(),
            socket: entry.paths.socket(),
            request: protocol::ExecRequest {
                process,
                attach_stdin: c.attach_stdin.unwrap_or(false),
                console_size: size,
            },
            detach_keys: if tty {
                Vec::new()
            } else {
                berth_api::convention::detach_keys(c.detach_keys.as_deref())
            },
            events: self.events.clone(),
            attrs: Self::attrs(&rec),
        })
    }

    /// `GET /exec/{id}/json`.
    pub async fn exec_inspect(&self, exec_id: &str) -> Result<ExecInspectResponse> {
        let exec = self.exec_entry(exec_id)?;
        let st = exec.state.lock().unwrap_or_else(|p| p.into_inner());
        let c = &exec.config;
        let cmd = c.cmd.clone().unwrap_or_default();
        Ok(ExecInspectResponse {
            can_remove: Some(false),
            detach_keys: Some(c.detach_keys.clone().unwrap_or_default()),
            id: Some(exec.id.clone()),
            running: Some(st.running),
            exit_code: st.exit_code,
            process_config: Some(berth_api::models::ProcessConfig {
                privileged: Some(c.privileged.unwrap_or(false)),
                user: Some(c.user.clone().unwrap_or_default()),
                tty: Some(c.tty.unwrap_or(false)),
                entrypoint: cmd.first().cloned(),
                arguments: Some(cmd.iter().skip(1).cloned().collect()),
            }),
            open_stdin: Some(c.attach_stdin.unwrap_or(false)),
            open_stderr: Some(c.attach_stderr.unwrap_or(false)),
            open_stdout: Some(c.attach_stdout.unwrap_or(false)),
            container_id: Some(exec.container_id.clone()),
            pid: Some(st.pid),
        })
    }

    /// `POST /exec/{id}/resize?h=&w=`.
    pub async fn exec_resize(&self, exec_id: &str, height: u16, width: u16) -> Result<()> {
        let exec = self.exec_entry(exec_id)?;
        let pid = exec.state.lock().unwrap_or_else(|p| p.into_inner()).pid as i32;
        let entry = self.lookup(&exec.container_id)?;
        monitor_client::call_ok(
            &entry.paths.socket(),
            &Request::ExecResize { pid, height, width },
        )
        .await
    }

    /// `GET /containers/{id}/top?ps_args=`.
    pub async fn top(
        &self,
        reference: &str,
        ps_args: Option<String>,
    ) -> Result<ContainerTopResponse> {
        let entry = self.lookup(reference)?;
        let cg = {
            let rec = entry.rec.lock().await;
            if !rec.state.status.is_alive() {
                return Err(conflict(format!("Container {} is not running", rec.id)));
            }
            self.cgroup(&rec)
        };
        let pids = blocking(move || cg.pids())
            .await?
            .map_err(|e| ContainerError::Internal {
                message: e.to_string(),
            })?;
        let args: Vec<String> = ps_args
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| "-ef".into())
            .split_whitespace()
            .map(String::from)
            .collect();
        let out = tokio::process::Command::new("ps")
            .args(&args)
            .output()
            .await
            .map_err(io_err("run", std::path::Path::new("ps")))?;
        if !out.status.success() {
            return Err(ContainerError::Internal {
                message: format!("ps: {}", String::from_utf8_lossy(&out.stderr).trim()),
            });
        }
        parse_ps(&String::from_utf8_lossy(&out.stdout), &pids)
    }

    /// `GET /containers/{id}/stats?stream=&one-shot=`: one sample a second while streaming.
    pub async fn stats(
        &self,
        reference: &str,
        stream: bool,
    ) -> Result<mpsc::Receiver<ContainerStatsResponse>> {
        let entry = self.lookup(reference)?;
        let (tx, rx) = mpsc::channel(4);
        let (cg, name) = {
            let rec = entry.rec.lock().await;
            (self.cgroup(&rec), format!("/{}", rec.name))
        };
        tokio::spawn(crate::stats::run(
            entry.id.clone(),
            name,
            cg,
            entry.life.subscribe(),
            stream,
            tx,
        ));
        Ok(rx)
    }

    /// A container's id and the overlay dirs of its root filesystem.
    async fn rootfs_of(&self, reference: &str) -> Result<(String, berth_image::RootfsDirs)> {
        let entry = self.lookup(reference)?;
        let (id, image_id) = {
            let rec = entry.rec.lock().await;
            (rec.id.clone(), rec.image_id.clone())
        };
        let dirs = self
            .images
            .rootfs(&id, &image_id)
            .map_err(|e| ContainerError::Internal {
                message: e.to_string(),
            })?;
        Ok((id, dirs))
    }

    /// `GET /containers/{id}/changes`: what the container changed in its root filesystem.
    pub async fn changes(
        &self,
        reference: &str,
    ) -> Result<Vec<berth_api::models::FilesystemChange>> {
        use berth_api::models::{ChangeType, FilesystemChange};
        let (_, dirs) = self.rootfs_of(reference).await?;
        let changes = blocking(move || berth_image::changes(&dirs))
            .await?
            .map_err(|e| ContainerError::Internal {
                message: e.to_string(),
            })?;
        // The files berth bind-mounts (and so creates in the upper dir) are not the
        // container's doing; Docker keeps them in a hidden init layer and never reports them.
        // A directory reported changed only because of them goes too.
        const MOUNT_TARGETS: [&str; 3] = ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"];
        let kept: Vec<berth_image::Change> = changes
            .iter()
            .filter(|c| !MOUNT_TARGETS.contains(&c.path.as_str()))
            .cloned()
            .collect();
        let changes: Vec<berth_image::Change> = kept
            .iter()
            .filter(|c| {
                c.kind != berth_image::ChangeKind::Modified
                    || !MOUNT_TARGETS
                        .iter()
                        .any(|t| t.starts_with(&format!("{}/", c.path)))
                    || kept
                        .iter()
                        .any(|o| o.path.starts_with(&format!("{}/", c.path)))
            })
            .cloned()
            .collect();
        Ok(changes
            .into_iter()
            .map(|c| FilesystemChange {
                path: c.path,
                kind: match c.kind {
                    berth_image::ChangeKind::Modified => ChangeType::_0,
                    berth_image::ChangeKind::Added => ChangeType::_1,
                    berth_image::ChangeKind::Deleted => ChangeType::_2,
                },
            })
            .collect())
    }

    /// `GET /containers/{id}/export`: the container's root filesystem as a tar stream, written
    /// by a blocking task as the reader consumes it.
    pub async fn export(&self, reference: &str) -> Result<tokio::io::DuplexStream> {
        let (id, dirs) = self.rootfs_of(reference).await?;
        let (writer, reader) = tokio::io::duplex(256 * 1024);
        tokio::task::spawn_blocking(move || {
            let mut out = tokio_util::io::SyncIoBridge::new(writer);
            if let Err(e) = berth_image::export(&dirs, &mut out) {
                // The client sees a truncated tar; the reason goes to the log.
                tracing::warn!(container_id = %id, "export failed: {e}");
            }
        });
        Ok(reader)
    }

    /// `POST /containers/prune`.
    pub async fn prune(
        &self,
        filters: HashMap<String, Vec<String>>,
    ) -> Result<ContainerPruneResponse> {
        let entries: Vec<Arc<Entry>> = self.lock_index().by_id.values().cloned().collect();
        let mut deleted = Vec::new();
        for e in entries {
            let r = e.rec.lock().await.clone();
            if r.state.status.is_alive() || r.state.status == Status::Restarting {
                continue;
            }
            if !filters
                .get("label")
                .is_none_or(|v| v.iter().all(|l| label_matches(r.config.labels.as_ref(), l)))
            {
                continue;
            }
            if self.remove_entry(&e, false).await.is_ok() {
                deleted.push(r.id);
            }
        }
        Ok(ContainerPruneResponse {
            containers_deleted: Some(deleted),
            space_reclaimed: Some(0),
        })
    }

    /// Container counts by state, for `info`.
    pub async fn counts(&self) -> Counts {
        let lives: Vec<Life> = self
            .lock_index()
            .by_id
            .values()
            .map(|e| e.life.borrow().clone())
            .collect();
        let mut c = Counts::default();
        for l in lives {
            match l.status {
                Status::Running | Status::Restarting => c.running += 1,
                Status::Paused => c.paused += 1,
                _ => c.stopped += 1,
            }
        }
        c
    }

    /// For every image id in use: one container using it (its id) and whether it runs.
    pub async fn image_users(&self) -> HashMap<String, (String, bool)> {
        let entries: Vec<Arc<Entry>> = self.lock_index().by_id.values().cloned().collect();
        let mut out: HashMap<String, (String, bool)> = HashMap::new();
        for e in entries {
            let r = e.rec.lock().await;
            let running = r.state.status.is_alive();
            let slot = out
                .entry(r.image_id.clone())
                .or_insert_with(|| (r.id.clone(), running));
            if running && !slot.1 {
                *slot = (r.id.clone(), true);
            }
        }
        out
    }

    /// Called when the daemon stops. There is nothing to stop: each running container is
    /// owned by its monitor and keeps running, and a restart that was pending is made by the
    /// next daemon, which applies the restart policy when it finds the container exited.
    pub async fn shutdown(&self) {}
}

fn rec_id_short(id: &str) -> &str {
    &id[..12.min(id.len())]
}

/// Opens the `Wait` conversation without waiting for its answer.
async fn begin_wait(socket: &std::path::Path) -> Result<Conversation> {
    use tokio::io::AsyncWriteExt;
    let stream =
        tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|e| ContainerError::Internal {
                message: format!("container monitor is not answering: {e}"),
            })?;
    let (rd, mut writer) = stream.into_split();
    let mut line = serde_json::to_vec(&Request::Wait).map_err(|e| ContainerError::Internal {
        message: e.to_string(),
    })?;
    line.push(b'\n');
    writer
        .write_all(&line)
        .await
        .map_err(|e| ContainerError::Internal {
            message: e.to_string(),
        })?;
    Ok(Conversation {
        reader: tokio::io::BufReader::new(rd),
        writer,
    })
}

async fn read_wait(mut wait: Conversation) -> Option<ExitStatus> {
    use tokio::io::AsyncBufReadExt;
    let mut line = String::new();
    wait.reader.read_line(&mut line).await.ok()?;
    match serde_json::from_str::<Response>(&line).ok()? {
        Response::Exited(e) => Some(e),
        _ => None,
    }
}

fn read_exit_file(paths: &Paths) -> Option<ExitStatus> {
    let b = std::fs::read(paths.run_dir.join(protocol::EXIT_FILE)).ok()?;
    serde_json::from_slice(&b).ok()
}

fn label_matches(labels: Option<&HashMap<String, String>>, filter: &str) -> bool {
    let Some(labels) = labels else { return false };
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(filter),
    }
}

/// `20m`, `1g`, `100k`, `512` → bytes.
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1000u64),
        'm' => (&s[..s.len() - 1], 1000 * 1000),
        'g' => (&s[..s.len() - 1], 1000 * 1000 * 1000),
        _ => (s.as_str(), 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

/// berth-cgroups limits from a host config.
fn cgroup_resources(hc: &HostConfig) -> berth_cgroups::Resources {
    let r = spec::resources(hc);
    berth_cgroups::Resources {
        memory: r["memory"]["limit"].as_i64(),
        memory_swap: r["memory"]["swap"].as_i64(),
        memory_reservation: r["memory"]["reservation"].as_i64(),
        cpu_quota: r["cpu"]["quota"].as_i64(),
        cpu_period: r["cpu"]["period"].as_u64(),
        cpu_shares: r["cpu"]["shares"].as_u64(),
        cpuset_cpus: r["cpu"]["cpus"].as_str().map(String::from),
        pids_limit: r["pids"]["limit"].as_i64(),
        ..Default::default()
    }
}

/// Docker's `Up 5 minutes`, `Exited (0) 3 seconds ago`, `Created`.
fn status_text(r: &Record) -> String {
    let ago = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .map(|t| {
                berth_api::convention::human_duration(
                    chrono::Utc::now().signed_duration_since(t).num_seconds(),
                )
            })
            .unwrap_or_default()
    };
    match r.state.status {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}", ago(&r.state.started_at)),
        Status::Paused => format!("Up {} (Paused)", ago(&r.state.started_at)),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            r.state.exit_code,
            ago(&r.state.finished_at)
        ),
        Status::Removing => "Removal In Progress".into(),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            r.state.exit_code,
            ago(&r.state.finished_at)
        ),
        Status::Dead => "Dead".into(),
    }
}

/// Keeps the `ps` rows whose PID is in `pids`.
fn parse_ps(out: &str, pids: &[i32]) -> Result<ContainerTopResponse> {
    let mut lines = out.lines();
    let header = lines.next().unwrap_or("");
    let titles: Vec<String> = header.split_whitespace().map(String::from).collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| invalid("Couldn't find PID field in ps output"))?;
    let mut processes = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < titles.len() {
            continue;
        }
        let Ok(pid) = fields[pid_col].parse::<i32>() else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        let mut row: Vec<String> = fields[..titles.len() - 1]
            .iter()
            .map(|s| s.to_string())
            .collect();
        row.push(fields[titles.len() - 1..].join(" "));
        processes.push(row);
    }
    Ok(ContainerTopResponse {
        titles: Some(titles),
        processes: Some(processes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_rows_are_filtered_by_pid() {
        let out = "UID PID PPID C STIME TTY TIME CMD\nroot 10 1 0 10:00 ? 00:00:00 sleep 100\nroot 11 1 0 10:00 ? 00:00:00 other\n";
        let t = parse_ps(out, &[10]).unwrap();
        assert_eq!(
            t.processes.unwrap(),
            vec![vec![
                "root",
                "10",
                "1",
                "0",
                "10:00",
                "?",
                "00:00:00",
                "sleep 100"
            ]]
        );
        assert!(parse_ps("A B\n", &[]).is_err());
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("20m"), Some(20_000_000));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("x"), None);
    }
}
