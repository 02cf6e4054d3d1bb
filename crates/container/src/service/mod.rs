//! The public face of the container service, as the daemon's HTTP layer calls it.
//!
//! Each container is an [`Entry`]: its record behind an async mutex (held for the length of a
//! lifecycle operation, never while waiting for an exit), a `watch` channel of its lifecycle
//! (what `wait`, `logs -f` and `stop` wait on), and attach requests waiting for the next start.
//! The monitor of a running container owns its process; the service talks to it over its socket
//! and learns of the exit through a `Wait` conversation opened before the process starts.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use berth_api::models::EventMessageTypeEnum;
use berth_errdefs::Classify;
use berth_errdefs::ErrorKind;
use berth_image::ImageStore;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use berth_volume::VolumeService;

use crate::monitor::Monitor;
use crate::monitor_client::MonitorClient;
use crate::store::{self, Paths, Record, Status};
use crate::{ContainerError, EventBus, spec};

mod archive;
mod attach;
mod build_step;
mod commit;
mod create;
mod entry;
mod exec;
mod exit;
mod filters;
mod health;
mod inspect;
mod links;
mod list;
mod mounts;
mod network;
mod pause;
mod reap;
mod remove;
mod restart_policy;
mod rootfs;
mod start;
mod stats;
mod stop;
mod top;
mod update;
mod wait;

#[cfg(test)]
mod lifecycle_tests;

pub use crate::life::Life;
pub use crate::logs::{LogChunk, LogStream, LogsOptions};
pub use archive::{ArchiveBody, ArchiveStream, PathStat, PutOptions};
pub use attach::{AttachOptions, Attachment};
pub use build_step::StepExit;
pub use commit::CommitOptions;
pub use exec::ExecSession;
pub use list::{Counts, ListOptions};
pub use rootfs::ExportStream;
pub use wait::{WaitCondition, WaitHandle};

use entry::{Entry, Index};
use exec::ExecEntry;

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
    /// The `RLIMIT_NOFILE` (soft, hard) the daemon was started with, before it raised its
    /// own: monitors, and so containers without `--ulimit nofile`, get it back.
    pub nofile_limit: Option<(u64, u64)>,
    /// `--userns-remap`: the user-namespace mapping of every container that does not opt
    /// out with `--userns=host` (its image layers are used as copies owned by the mapped ids).
    pub userns_remap: Option<berth_image::IdMapping>,
    /// The daemon's `--cpu-rt-period`/`--cpu-rt-runtime`: written into each container's
    /// cgroup parent (and its ancestors) before it starts, as dockerd does.
    pub cpu_rt: berth_cgroups::RtBudget,
    /// The daemon's `default-ulimits`: each container gets those whose names its own
    /// `--ulimit`s do not set.
    pub default_ulimits: Vec<berth_api::models::ResourcesUlimits>,
}

impl ServiceConfig {
    /// A configuration with no network service, runtimes, remapping or limits of the
    /// daemon's own: what tests and tools without a daemon use.
    pub fn new(data_root: PathBuf, run_root: PathBuf, exe: PathBuf, cgroup_parent: String) -> Self {
        Self {
            data_root,
            run_root,
            exe,
            runtimes: HashMap::new(),
            cgroup_parent,
            network: None,
            nofile_limit: None,
            userns_remap: None,
            cpu_rt: berth_cgroups::RtBudget::default(),
            default_ulimits: Vec::new(),
        }
    }
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
    /// The monitor side: spawns monitors and talks to them.
    monitor: Arc<dyn Monitor>,
}

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

use berth_fs::blocking;

/// An image lookup's error, keeping its class: only a missing image is `No such image` (a
/// 404 makes `docker run` pull); an invalid or ambiguous reference stays a bad request.
fn image_lookup_error(reference: &str) -> impl FnOnce(berth_image::ImageError) -> ContainerError {
    let reference = reference.to_string();
    move |source| match source.kind() {
        ErrorKind::NotFound => ContainerError::ImageNotFound { reference, source },
        _ => ContainerError::Image { source },
    }
}

fn parse_signal(s: &str) -> Result<i32> {
    berth_runtime::parse_signal(s).ok_or_else(|| invalid(format!("Invalid signal: {s}")))
}

impl ContainerService {
    /// Loads every container from disk, reconnects to running monitors, cleans up leftovers.
    /// Monitors are processes run from a sealed copy of `config.exe`.
    pub async fn open(
        config: ServiceConfig,
        images: Arc<ImageStore>,
        volumes: Arc<VolumeService>,
        events: EventBus,
    ) -> Result<Arc<Self>> {
        let monitor = {
            let exe = config.exe.clone();
            blocking(move || MonitorClient::new(&exe)).await??
        };
        Self::open_with(config, images, volumes, events, Arc::new(monitor)).await
    }

    /// [`ContainerService::open`] with the monitor side given (a fake in unit tests).
    pub async fn open_with(
        config: ServiceConfig,
        images: Arc<ImageStore>,
        volumes: Arc<VolumeService>,
        events: EventBus,
        monitor: Arc<dyn Monitor>,
    ) -> Result<Arc<Self>> {
        let records = {
            let (data_root, run_root) = (config.data_root.clone(), config.run_root.clone());
            blocking(move || load_records(&data_root, &run_root)).await??
        };
        let svc = Arc::new_cyclic(|me| ContainerService {
            monitor,
            cfg: config,
            images,
            volumes,
            events,
            index: std::sync::Mutex::new(Index::default()),
            execs: std::sync::Mutex::new(HashMap::new()),
            me: me.clone(),
        });
        let mut to_reconcile = Vec::new();
        let mut stray = Vec::new();
        {
            let mut idx = svc.lock_index();
            for r in records {
                let status = r.state.status;
                for m in &r.mount_points {
                    if !m.name.is_empty() {
                        svc.volumes.acquire(&m.name, &r.id);
                    }
                }
                idx.names.insert(r.name.clone(), r.id.clone());
                let id = r.id.clone();
                let entry = svc.new_entry(r);
                idx.by_id.insert(id, entry.clone());
                if status.is_up() || status == Status::Removing {
                    to_reconcile.push(entry);
                } else if entry.paths.run_dir.exists() {
                    // A run dir of a container its record says is not running: the daemon
                    // died during a start (or a removal). Whatever runs of it is ended.
                    stray.push(entry);
                }
            }
        }
        for entry in to_reconcile {
            svc.reconcile(entry).await;
        }
        for entry in stray {
            let rec = entry.rec.lock().await.clone();
            svc.end_stray_run(&entry, &rec).await;
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
            pid: r.state.pid,
            exits: 0,
            removed: false,
        });
        Arc::new(Entry {
            id: r.id.clone(),
            created: r.created.clone(),
            paths: Paths::new(&self.cfg.data_root, &self.cfg.run_root, &r.id),
            rec: tokio::sync::Mutex::new(r),
            life,
            pending_attach: std::sync::Mutex::new(Vec::new()),
            process: std::sync::Mutex::new(None),
            removal: std::sync::atomic::AtomicBool::new(false),
            exit_on_next: std::sync::atomic::AtomicBool::new(false),
        })
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

    /// dockerd's volume events of a run: `mount` of each volume at start (with its driver,
    /// destination, read/write and propagation), `unmount` at the exit (driver only).
    fn publish_volume_events(&self, r: &Record, action: &str) {
        for m in r
            .mount_points
            .iter()
            .filter(|m| m.kind == berth_volume::MountKind::Volume && !m.name.is_empty())
        {
            let mut a = HashMap::from([("driver".to_string(), m.driver.clone())]);
            if action != "create" {
                a.insert("container".into(), r.id.clone());
            }
            if action == "mount" {
                a.insert("destination".into(), m.destination.clone());
                a.insert("read/write".into(), m.rw.to_string());
                a.insert("propagation".into(), m.propagation.clone());
            }
            self.events
                .publish(EventMessageTypeEnum::VOLUME, action, &m.name, a);
        }
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

    fn cgroup(&self, rec: &Record) -> berth_cgroups::Cgroup {
        berth_cgroups::Cgroup::new(
            std::path::Path::new("/sys/fs/cgroup"),
            &spec::cgroups_path(&rec.cgroup_parent, &rec.id),
        )
    }

    /// Writes a container's record, on a blocking thread (how every record write after
    /// create's goes). For a change the client asked for: a failure fails the request.
    async fn save(&self, entry: &Entry, rec: &Record) -> Result<()> {
        let (paths, rec) = (entry.paths.clone(), rec.clone());
        blocking(move || store::save(&paths, &rec, false)).await?
    }

    /// [`Self::save`] for a change that has already happened (an exit, a started process):
    /// the record cannot refuse it, so a failed write is logged, and the next daemon
    /// reconciles the record with the monitor's state.
    async fn save_or_log(&self, entry: &Entry, rec: &Record) {
        if let Err(error) = self.save(entry, rec).await {
            tracing::error!(container_id = %entry.id, %error, status = rec.state.status.as_str(), "saving the container record failed");
        }
    }

    /// Called when the daemon stops. There is nothing to stop: each running container is
    /// owned by its monitor and keeps running, and a restart that was pending is made by the
    /// next daemon, which applies the restart policy when it finds the container exited.
    pub async fn shutdown(&self) {}
}

fn rec_id_short(id: &str) -> &str {
    &id[..12.min(id.len())]
}

/// Every record on disk, after removing the run dirs that have no record (leftovers of a
/// crash between creating a run dir and writing the record, or of a removal).
fn load_records(data_root: &Path, run_root: &Path) -> Result<Vec<Record>> {
    for (d, mode) in [
        (data_root.join("containers"), crate::perms::DATA_DIR_MODE),
        (run_root.join("containers"), crate::perms::RUN_DIR_MODE),
    ] {
        crate::perms::ensure_dir(&d, mode).map_err(io_err("create", &d))?;
    }
    crate::perms::tighten_existing(data_root, run_root);
    let records = store::load_all(data_root);
    let known: std::collections::HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
    if let Ok(dirs) = std::fs::read_dir(run_root.join("containers")) {
        for d in dirs.flatten() {
            if !known.contains(d.file_name().to_string_lossy().as_ref())
                && let Err(error) = std::fs::remove_dir_all(d.path())
            {
                tracing::warn!(path = %d.path().display(), %error, "removing a leftover run dir failed");
            }
        }
    }
    Ok(records)
}
