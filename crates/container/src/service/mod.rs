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

use berth_api::models::EventMessageTypeEnum;
use berth_image::ImageStore;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use berth_volume::VolumeService;

use crate::store::{self, Paths, Record, Status};
use crate::{ContainerError, EventBus, spec};

mod archive;
mod attach;
mod commit;
mod create;
mod entry;
mod exec;
mod exit;
mod inspect;
mod list;
mod mounts;
mod network;
mod pause;
mod remove;
mod rootfs;
mod start;
mod stats;
mod stop;
mod top;
mod update;
mod wait;

pub use crate::life::Life;
pub use crate::logs::{LogChunk, LogStream, LogsOptions};
pub use archive::{ArchiveBody, ArchiveStream, PathStat, PutOptions};
pub use attach::{AttachOptions, Attachment};
pub use commit::CommitOptions;
pub use exec::ExecSession;
pub use list::{Counts, ListOptions};
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

    fn cgroup(&self, rec: &Record) -> berth_cgroups::Cgroup {
        berth_cgroups::Cgroup::new(
            std::path::Path::new("/sys/fs/cgroup"),
            &spec::cgroups_path(&rec.cgroup_parent, &rec.id),
        )
    }

    /// Called when the daemon stops. There is nothing to stop: each running container is
    /// owned by its monitor and keeps running, and a restart that was pending is made by the
    /// next daemon, which applies the restart policy when it finds the container exited.
    pub async fn shutdown(&self) {}
}

fn rec_id_short(id: &str) -> &str {
    &id[..12.min(id.len())]
}
