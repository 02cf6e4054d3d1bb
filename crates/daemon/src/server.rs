//! The daemon process: directories, pid file, the listening socket, serving until a signal,
//! and an orderly stop. Containers keep running when the daemon stops: each has its own
//! monitor, and the next daemon reconnects to them.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use berth_container::{ContainerService, EventBus, ServiceConfig};
use berth_image::ImageStore;
use berth_network::NetworkService;
use tokio::signal::unix::{SignalKind, signal};

use crate::config::DaemonConfig;
use crate::config_file::SharedSettings;
use crate::connections::{self, Accept, Limits};
use crate::error::DaemonError;
use crate::guard;
use crate::listeners::{self, Activation, Listener};
use crate::system::{HostPaths, SystemFacts};
use crate::{AppState, router};

/// How long open requests get to finish after a stop signal; streams such as `events` or
/// `logs -f` never finish by themselves.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DaemonError {
    let path = path.to_owned();
    move |source| DaemonError::Io { op, path, source }
}

/// Sets the binary's log level (`debug`, `info`, …).
pub type SetLogLevel = Arc<dyn Fn(&str) + Send + Sync>;

/// What the binary lets the daemon change in it while it runs.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Sets the log level (`debug`, `info`, …): `SIGHUP` with a changed `debug`.
    pub set_log_level: Option<SetLogLevel>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("set_log_level", &self.set_log_level.is_some())
            .finish()
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(config: DaemonConfig) -> Result<(), DaemonError> {
    run_with(config, Hooks::default()).await
}

/// Runs the daemon until SIGTERM or SIGINT; `SIGHUP` reloads the configuration file.
pub async fn run_with(config: DaemonConfig, hooks: Hooks) -> Result<(), DaemonError> {
    // Every connection, container pipe, monitor socket and layer file is a descriptor: use
    // all the hard limit allows.
    let started_with =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).ok();
    match connections::raise_nofile_limit() {
        Ok((old, new)) if old != new => {
            tracing::info!(from = old, to = new, "raised the open file limit");
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot raise the open file limit"),
    }
    let mut activation = Activation::from_env();
    config.listen_addresses()?;
    // Refused before anything is touched: a live daemon's socket, a group that does not exist.
    listeners::check_free(&config, &activation).await?;
    let etc_group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let gid = listeners::socket_group(&config, &etc_group)?;
    // Docker's modes, tightened on an older install's directories (see berth_container::perms).
    for (dir, mode) in [
        (&config.data_root, berth_container::perms::DATA_ROOT_MODE),
        (&config.exec_root, berth_container::perms::RUN_ROOT_MODE),
    ] {
        berth_container::perms::ensure_dir(dir, mode).map_err(io_error("create", dir))?;
    }
    let _lock = guard::lock_data_root(&config.data_root)?;
    guard::check_overlay(&config.data_root)?;
    let pid_file = config.pid_file();
    std::fs::write(&pid_file, format!("{}\n", std::process::id()))
        .map_err(io_error("write", &pid_file))?;
    let result = open_and_serve(&config, &mut activation, gid, &hooks, started_with).await;
    if let Err(error) = std::fs::remove_file(&pid_file) {
        tracing::warn!(path = %pid_file.display(), %error, "could not remove the pid file");
    }
    result
}

/// Opens the volume service (under the remapped root's own directory with `--userns-remap`).
async fn open_volumes(
    config: &DaemonConfig,
    map: Option<berth_fs::IdMapping>,
) -> Result<berth_volume::VolumeService, DaemonError> {
    let data_root = config.data_root.clone();
    let volumes = berth_fs::blocking(move || {
        berth_volume::VolumeService::open_mapped(&data_root, map.as_ref())
    })
    .await?;
    Ok(volumes.map_err(berth_container::ContainerError::from)?)
}

/// How often the daemon checks that its firewall rules are still loaded.
const FIREWALL_CHECK: Duration = Duration::from_secs(5);

/// Opens the network service: loads networks, re-creates their bridges and rules, and
/// keeps running containers' connectivity.
async fn open_network(
    config: &DaemonConfig,
    engine_id: String,
) -> Result<Arc<NetworkService>, DaemonError> {
    let mut net_config = crate::reset::network_config(config)?;
    // The default IPv6 pool is derived from it, as Docker's.
    net_config.engine_id = engine_id;
    let service = berth_fs::blocking(move || NetworkService::open(net_config)).await??;
    let service = Arc::new(service);
    // A firewall reload (`nft flush ruleset`, firewalld) drops berth's table: put it back.
    let watched = Arc::downgrade(&service);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FIREWALL_CHECK);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(service) = watched.upgrade() else {
                return;
            };
            let checked = berth_fs::blocking(move || service.restore_firewall()).await;
            // A check that could not run (no descriptors left, nft failing) is told apart
            // from a table that is gone: only the latter is restored.
            if let Ok(Err(error)) = checked {
                tracing::warn!(%error, "checking the firewall rules failed");
            }
        }
    });
    Ok(service)
}

async fn open_and_serve(
    config: &DaemonConfig,
    activation: &mut Activation,
    gid: Option<u32>,
    hooks: &Hooks,
    nofile_limit: Option<(u64, u64)>,
) -> Result<(), DaemonError> {
    if config.cpu_rt.is_set() {
        // dockerd's start-up check; the budget itself is written as containers start.
        config
            .cpu_rt
            .check(std::path::Path::new("/sys/fs/cgroup"))
            .map_err(|e| DaemonError::Container { source: e.into() })?;
    }
    let engine_id = engine_id(&config.data_root)?;
    let mut facts = SystemFacts::gather(
        &HostPaths::default(),
        engine_id.clone(),
        &config.data_root,
        &config.exe,
    );
    facts.runtimes.extend(config.runtimes.iter().cloned());
    facts.userns_remap = config.userns_remap.is_some();
    let userns_remap = match config.userns_remap.clone() {
        Some(value) => {
            let data_root = config.data_root.clone();
            Some(
                berth_fs::blocking(move || {
                    let map = crate::userns::resolve(&value, &crate::userns::IdFiles::host())?;
                    crate::userns::open_data_root(&data_root, &map)?;
                    Ok::<_, DaemonError>(map)
                })
                .await??,
            )
        }
        None => None,
    };
    let facts = Arc::new(facts);
    let image_root = config.data_root.join("image");
    let images = berth_fs::blocking(move || ImageStore::open(&image_root)).await??;
    let images = Arc::new(images);
    // The registry client reads its CA certificates at its first request, not here (they
    // cost tens of ms and ~1.5 MiB, and most daemons never pull). The networks' host state (an
    // `nft` run) is restored beside the volumes.
    let registry = Arc::new(berth_distribution::client::Distribution::new(
        Arc::clone(&images),
        config.registry_options()?,
    )?);
    let events = EventBus::new();
    let (network, volumes) = tokio::try_join!(
        open_network(config, engine_id),
        open_volumes(config, userns_remap.clone())
    )?;
    let service_config = ServiceConfig {
        data_root: config.data_root.clone(),
        run_root: config.exec_root.clone(),
        exe: config.exe.clone(),
        runtimes: facts.runtimes.iter().cloned().collect(),
        cgroup_parent: config.cgroup_parent.clone(),
        userns_remap,
        cpu_rt: config.cpu_rt,
        network: Some(network),
        nofile_limit,
        default_ulimits: config.api_default_ulimits(),
    };
    let containers = ContainerService::open(
        service_config,
        Arc::clone(&images),
        Arc::new(volumes),
        events.clone(),
    )
    .await?;
    let builder = {
        let config = berth_build::engine::BuilderConfig {
            data_root: config.data_root.clone(),
            context_limit: build_context_limit()?,
        };
        let (images, containers) = (Arc::clone(&images), Arc::clone(&containers));
        let builder = berth_fs::blocking(move || {
            berth_build::engine::Builder::open(&config, images, containers)
        })
        .await??;
        // What a daemon stopped in the middle of a step left.
        builder.remove_interrupted_steps().await;
        builder
    };
    let settings: SharedSettings = Arc::new(std::sync::RwLock::new(config.reloadable.clone()));
    let app = router(
        AppState::new(
            Arc::clone(&containers),
            images,
            facts,
            events,
            None,
            Arc::clone(&registry),
        )
        .with_builder(Arc::new(builder.with_registry(Arc::clone(&registry))))
        .with_settings(Arc::clone(&settings)),
    );
    let listeners = listeners::open(config, activation, gid).await?;
    let served = serve_all(listeners, app, config, hooks, &settings).await;
    containers.shutdown().await;
    served
}

/// Binds the socket with mode 0660 and, when the group exists, group `berth`.
pub fn bind_unix(path: &Path) -> Result<tokio::net::UnixListener, DaemonError> {
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    listeners::bind_unix_with_group(path, listeners::group_id(&groups, "berth"))
}

/// Serves every listener until SIGTERM or SIGINT; tells systemd when it is ready, reloading
/// and stopping; `SIGHUP` reloads the configuration file's reloadable keys into `settings`.
async fn serve_all(
    listeners: Vec<Listener>,
    app: Router,
    config: &DaemonConfig,
    hooks: &Hooks,
    settings: &SharedSettings,
) -> Result<(), DaemonError> {
    let signal_error = |source| DaemonError::Serve { source };
    let mut terminate = signal(SignalKind::terminate()).map_err(signal_error)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(signal_error)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(signal_error)?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    let mut bound = Vec::new();
    for listener in listeners {
        let mut stop_rx = stop_rx.clone();
        let stop = async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        };
        let app = app.clone();
        tasks.push(match listener {
            Listener::Unix {
                listener,
                bound: path,
            } => {
                let address = listener.local_addr().ok();
                let socket = address.as_ref().and_then(|a| a.as_pathname());
                tracing::info!(socket = ?socket, activated = path.is_none(), "API listening");
                bound.extend(path);
                tokio::spawn(serve_until(listener, app, stop))
            }
            Listener::Tcp(listener) => {
                tracing::info!(address = ?listener.local_addr().ok(), "API listening");
                tokio::spawn(serve_until(listener, app, stop))
            }
        });
    }
    listeners::notify("READY=1\nSTATUS=serving the API");
    loop {
        tokio::select! {
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = hangup.recv() => reload(config, hooks, settings),
        }
    }
    listeners::notify("STOPPING=1");
    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    for path in bound {
        if let Err(error) = std::fs::remove_file(&path) {
            tracing::warn!(path = %path.display(), %error, "could not remove the socket");
        }
    }
    Ok(())
}

/// `SIGHUP`: re-reads the configuration file; a file that does not parse changes nothing.
fn reload(config: &DaemonConfig, hooks: &Hooks, settings: &SharedSettings) {
    listeners::notify("RELOADING=1");
    match config.reload() {
        Ok(reloaded) => {
            if config.log_level.is_none()
                && let Some(set) = &hooks.set_log_level
            {
                set(if reloaded.debug { "debug" } else { "info" });
                tracing::debug!("debug logging on");
            }
            tracing::info!(settings = ?reloaded, "configuration reloaded");
            match settings.write() {
                Ok(mut current) => *current = reloaded,
                Err(poisoned) => *poisoned.into_inner() = reloaded,
            }
        }
        Err(error) => tracing::error!(%error, "configuration not reloaded"),
    }
    listeners::notify("READY=1");
}

/// `<data_root>/engine-id`, made on first start from the kernel's random UUID.
fn engine_id(data_root: &Path) -> Result<String, DaemonError> {
    let path = data_root.join("engine-id");
    if let Ok(id) = std::fs::read_to_string(&path)
        && !id.trim().is_empty()
    {
        return Ok(id.trim().to_owned());
    }
    let uuid_path = PathBuf::from("/proc/sys/kernel/random/uuid");
    let id = std::fs::read_to_string(&uuid_path)
        .map_err(io_error("read", &uuid_path))?
        .trim()
        .to_ascii_uppercase();
    berth_fs::write_atomic(
        &path,
        format!("{id}\n").as_bytes(),
        berth_fs::Durability::Volatile,
    )
    .map_err(|e| io_error(e.op, &e.path)(e.source))?;
    Ok(id)
}

/// Serves until SIGTERM or SIGINT, then gives open requests [`DRAIN_TIMEOUT`] to finish.
pub async fn serve_until_signal<L: Accept>(listener: L, app: Router) -> Result<(), DaemonError> {
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|source| DaemonError::Serve { source })?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|source| DaemonError::Serve { source })?;
    let stop = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    };
    serve_until(listener, app, stop).await
}

/// Serves until `stop` resolves, then gives open requests [`DRAIN_TIMEOUT`] to finish.
/// Connections are handled as [`crate::connections`] describes (timeouts, shedding, backoff).
pub async fn serve_until<L, F>(listener: L, app: Router, stop: F) -> Result<(), DaemonError>
where
    L: Accept,
    F: std::future::Future<Output = ()> + Send,
{
    connections::serve(listener, app, Limits::current(), stop, DRAIN_TIMEOUT).await;
    Ok(())
}

/// `BERTH_BUILD_CONTEXT_LIMIT`: the most bytes a build context may unpack to (the free disk
/// space is the limit in any case).
fn build_context_limit() -> Result<Option<u64>, DaemonError> {
    match std::env::var("BERTH_BUILD_CONTEXT_LIMIT") {
        Ok(value) if !value.trim().is_empty() => {
            value
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| DaemonError::InvalidParameter {
                    param: "BERTH_BUILD_CONTEXT_LIMIT",
                    value,
                })
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_id_is_made_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = engine_id(dir.path()).expect("made");
        assert_eq!(first.len(), 36);
        assert_eq!(engine_id(dir.path()).expect("read back"), first);
    }
}
