//! `start`: the run's OCI spec and monitor config are written, the monitor spawned, networks
//! attached to the init (blocked before exec), parked attachments connected, then `Start`.
use std::sync::Arc;

use berth_monitor::protocol::{self, Request, Response};

use super::entry::{Entry, PendingAttach};
use super::{ContainerService, Result, blocking, conflict, io_err, mounts};
use crate::monitor::Conversation;
use crate::store::{Record, Status};
use crate::{ContainerError, spec};

/// `20m`, `1g`, `100k`, `512` → bytes (decimal units, as Docker's `--log-opt max-size`).
///
/// Convention copy: the workspace's shared size parser replaces this function.
pub(super) fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1000u64),
        'm' => (&s[..s.len() - 1], 1000 * 1000),
        'g' => (&s[..s.len() - 1], 1000 * 1000 * 1000),
        _ => (s.as_str(), 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

/// What a run needs written to its run dir before its monitor starts.
#[derive(Debug)]
struct RunFiles {
    spec: berth_runtime::Spec,
    monitor: protocol::MonitorConfig,
}

/// The monitor's log settings from `--log-opt` (Docker's defaults otherwise).
struct LogSettings {
    /// `max-size`.
    max_size: u64,
    /// `max-file`.
    max_files: u32,
    /// `mode`: `blocking` (the container waits for the log) or `non-blocking` (drops).
    mode: berth_monitor::logfile::LogMode,
    /// `max-buffer-size`: entries kept in memory while the log cannot take them.
    max_buffer_size: Option<u64>,
}

fn log_settings(rec: &Record) -> LogSettings {
    let opts = rec
        .host_config
        .log_config
        .as_ref()
        .and_then(|l| l.config.clone())
        .unwrap_or_default();
    LogSettings {
        max_size: opts
            .get("max-size")
            .and_then(|s| parse_size(s))
            .unwrap_or(20 * 1000 * 1000),
        max_files: opts
            .get("max-file")
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
        mode: match opts.get("mode").map(String::as_str) {
            Some("non-blocking") => berth_monitor::logfile::LogMode::NonBlocking,
            _ => berth_monitor::logfile::LogMode::Blocking,
        },
        max_buffer_size: opts.get("max-buffer-size").and_then(|s| parse_size(s)),
    }
}

impl ContainerService {
    /// `POST /containers/{id}/start`; `NotModified` if running.
    pub async fn start(&self, reference: &str) -> Result<()> {
        let entry = self.lookup(reference)?;
        let mut rec = entry.rec.lock().await;
        rec.state.status.can_start()?;
        rec.manually_stopped = false;
        let started = self.start_locked(&entry, &mut rec).await;
        // `run --rm` whose start fails leaves no container behind, as dockerd does.
        if started.is_err() && rec.host_config.auto_remove.unwrap_or(false) {
            drop(rec);
            if let Err(error) = self.remove_entry(&entry, true).await
                && !matches!(error, crate::ContainerError::NotFound { .. })
            {
                tracing::warn!(container_id = %entry.id, %error, "removing an auto-remove container after a failed start");
            }
        }
        started
    }

    /// Starts the container under its record lock: run files, monitor, networks, attachments,
    /// then the process.
    pub(super) async fn start_locked(&self, entry: &Arc<Entry>, rec: &mut Record) -> Result<()> {
        entry.set_exit_on_next(false);
        let files = self.run_files(entry, rec).await?;
        self.prepare_resolv_conf(entry, rec).await?;
        // Never two copies: whatever a lost run left in the cgroup dies first.
        self.kill_leftovers(entry, rec).await;
        let run_dir = entry.paths.run_dir.clone();
        if self.cfg.cpu_rt.is_set() {
            let (budget, parent) = (self.cfg.cpu_rt, rec.cgroup_parent.clone());
            blocking(move || budget.apply(std::path::Path::new("/sys/fs/cgroup"), &parent))
                .await?
                .map_err(|e| ContainerError::InvalidArgument {
                    message: format!("unable to init CPU RT controller: {e}"),
                })?;
        }
        {
            let (spec, monitor, run_dir, data_dir) = (
                files.spec.clone(),
                files.monitor.clone(),
                run_dir.clone(),
                entry.paths.data_dir.clone(),
            );
            blocking(move || write_run_files(&run_dir, &data_dir, &spec, &monitor)).await??;
        }
        let ready = match self.monitor.spawn(&run_dir).await {
            Ok(r) => match r.error {
                None => r,
                Some(message) => return Err(self.start_failed(entry, rec, message, 128).await),
            },
            Err(e) => return Err(self.start_failed(entry, rec, e.to_string(), 128).await),
        };
        let socket = entry.paths.socket();
        // The exit watcher and the attached clients connect before the process runs, so no
        // exit and no early output is missed.
        let wait = match self.monitor.begin_wait(&socket).await {
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
        self.connect_pending_attachments(entry).await;
        *entry.process.lock().unwrap_or_else(|p| p.into_inner()) = files.spec.process().clone();
        let answer = self.monitor.call(&socket, &Request::Start).await;
        self.record_start(entry, rec, answer, wait).await
    }

    /// Applies the monitor's answer to `Start`.
    async fn record_start(
        &self,
        entry: &Arc<Entry>,
        rec: &mut Record,
        answer: Result<(Response, Conversation)>,
        wait: Conversation,
    ) -> Result<()> {
        match answer {
            Ok((Response::Started { pid, started_at }, _)) => {
                rec.state.status = Status::Running;
                rec.state.pid = i64::from(pid);
                rec.state.started_at = started_at;
                rec.state.error.clear();
                rec.state.oom_killed = false;
                self.start_health(entry, rec);
                self.spawn_exit_watcher(entry.clone(), wait, true);
                if let Err(error) = self.save(entry, rec).await {
                    // A record that says "not running" must not hide a running process:
                    // kill it, and the exit watcher records the exit.
                    self.kill_unstarted(entry).await;
                    return Err(error);
                }
                entry.set_life(rec, false, false);
                self.publish_volume_events(rec, "mount");
                self.publish(rec, "start", &[]);
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
            Ok((other, _)) => {
                let message = format!("unexpected monitor response {other:?}");
                Err(self.start_failed(entry, rec, message, 128).await)
            }
            Err(e) => Err(self.start_failed(entry, rec, e.to_string(), 128).await),
        }
    }

    /// Hands the attachments parked before the start their monitor conversations.
    async fn connect_pending_attachments(&self, entry: &Entry) {
        let pending: Vec<PendingAttach> = std::mem::take(
            &mut *entry
                .pending_attach
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        let socket = entry.paths.socket();
        for p in pending {
            match self.monitor.call(&socket, &p.request).await {
                Ok((Response::Ok, conv)) => {
                    // The client may have gone meanwhile; its conversation then just closes.
                    let _ = p.tx.send(conv);
                }
                Ok((other, _)) => {
                    tracing::warn!(container_id = %entry.id, response = ?other, "the monitor refused a parked attach");
                }
                Err(error) => {
                    tracing::warn!(container_id = %entry.id, %error, "connecting a parked attach failed");
                }
            }
        }
    }

    /// The OCI spec and monitor config of the next run (disk reads in blocking tasks).
    async fn run_files(&self, entry: &Entry, rec: &Record) -> Result<RunFiles> {
        let rootfs = {
            let images = self.images.clone();
            let (id, image_id) = (rec.id.clone(), rec.image_id.clone());
            // The container's root keeps the layers it needs: it starts even if its image was
            // removed since (`rmi -f`), as in Docker.
            blocking(move || images.rootfs(&id, &image_id)).await?
        }
        .map_err(super::image_lookup_error(&rec.image_id))?;
        // The user's passwd entry, a seccomp profile given as a path, and volumes with
        // device options (mounted on the host first) all touch the disk.
        let (user, seccomp, mounts, block_io) = {
            let (u, rootfs) = (rec.config.user.clone().unwrap_or_default(), rootfs.clone());
            let group_add = rec.host_config.group_add.clone().unwrap_or_default();
            let (hc, points) = (rec.host_config.clone(), rec.mount_points.clone());
            let volumes = self.volumes.clone();
            blocking(move || -> Result<_> {
                let mut user = spec::resolve_user(&u, &rootfs)?;
                spec::add_groups(&mut user, &group_add, &rootfs)?;
                Ok((
                    user,
                    spec::seccomp::choice(&hc)?,
                    mounts::oci_mounts(&volumes, &points)?,
                    spec::block_io(&hc)?,
                ))
            })
            .await??
        };
        let links = self.links(rec).await?;
        let mut config = rec.config.clone();
        config.env = super::links::merge_env(&links, config.env.take());
        let argv: Vec<String> = std::iter::once(rec.path.clone())
            .chain(rec.args.iter().cloned())
            .collect();
        let host_config = spec::with_default_ulimits(&rec.host_config, &self.cfg.default_ulimits);
        let mut spec = spec::build(spec::BuildInputs {
            id: &rec.id,
            argv,
            config: &config,
            host_config: &host_config,
            user,
            data_dir: &entry.paths.data_dir,
            join_netns: self.joined_netns(rec)?,
            cgroup_parent: &rec.cgroup_parent,
            mounts,
            seccomp,
            block_io,
        })?;
        // A root made for `--userns-remap` runs in that mapping's user namespace.
        if let Some(map) = self.images.rootfs_mapping(&rec.id) {
            spec::apply_user_namespace(&mut spec, &map)?;
        }
        let runtime = match rec
            .host_config
            .runtime
            .as_deref()
            .filter(|r| !r.is_empty() && *r != "berth")
        {
            Some(r) => protocol::RuntimeKind::External(self.runtime_path(r)?),
            None => protocol::RuntimeKind::Builtin,
        };
        let log = log_settings(rec);
        let log_config = rec.host_config.log_config.as_ref();
        let log_driver = crate::log_driver::monitor_driver(
            log_config,
            &crate::log_driver::Who {
                id: &rec.id,
                name: rec.name.trim_start_matches('/'),
                image: rec.config.image.as_deref().unwrap_or_default(),
                image_id: rec.image_id.trim_start_matches("sha256:"),
            },
            std::path::Path::new(crate::log_driver::JOURNALD_SOCKET),
        )
        .map_err(super::invalid)?;
        let log_path = crate::log_driver::log_file(&entry.paths.data_dir, &rec.id, log_config);
        if let Some(dir) = log_path.parent() {
            // The data dir itself, or `local-logs` in it: no wider than the data dir.
            crate::perms::ensure_dir(dir, crate::perms::DATA_DIR_MODE)
                .map_err(io_err("create log directory", dir))?;
        }
        let monitor = protocol::MonitorConfig {
            version: protocol::PROTOCOL_VERSION,
            id: rec.id.clone(),
            run_dir: entry.paths.run_dir.clone(),
            rootfs: Some(berth_runtime::OverlayMount {
                lowerdirs: rootfs.lowerdirs.clone(),
                upperdir: rootfs.upperdir.clone(),
                workdir: rootfs.workdir.clone(),
                // Removed at its exit: no crash needs its writable layer, and its unmount
                // need not wait for the host file system's dirty pages.
                volatile: rec.host_config.auto_remove.unwrap_or(false),
            }),
            log_path,
            log_driver,
            log_max_size: log.max_size,
            log_max_files: log.max_files,
            log_mode: log.mode,
            log_max_buffer_size: log.max_buffer_size,
            tty: rec.config.tty.unwrap_or(false),
            open_stdin: rec.config.open_stdin.unwrap_or(false),
            stdin_once: rec.config.stdin_once.unwrap_or(false),
            console_size: spec::console_size(rec.host_config.console_size.as_ref()),
            runtime,
            nofile_limit: self.cfg.nofile_limit,
        };
        Ok(RunFiles { spec, monitor })
    }

    /// `--network container:X`: X's network namespace, if X runs. Read from X's lifecycle
    /// channel, so a lock X's own operation holds neither blocks nor misleads the answer.
    fn joined_netns(&self, rec: &Record) -> Result<Option<String>> {
        let Some(other) = rec
            .host_config
            .network_mode
            .as_deref()
            .and_then(|m| m.strip_prefix("container:"))
        else {
            return Ok(None);
        };
        let o = self.lookup(other)?;
        let (status, pid) = {
            let life = o.life.borrow();
            (life.status, life.pid)
        };
        if !status.is_alive() || pid <= 0 {
            return Err(conflict(format!(
                "cannot join network of a non running container: {}",
                o.id
            )));
        }
        Ok(Some(format!("/proc/{pid}/ns/net")))
    }

    /// Records a start that failed before the process existed.
    pub(super) async fn start_failed(
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
        // The request fails either way; the record keeps the reason if it can.
        self.save_or_log(entry, rec).await;
        self.remove_run_dir(entry).await;
        entry.set_life(rec, true, false);
        ContainerError::StartFailed { message }
    }
}

/// Writes a run's bundle: a fresh run dir with the OCI spec and the monitor config.
fn write_run_files(
    run_dir: &std::path::Path,
    data_dir: &std::path::Path,
    spec: &berth_runtime::Spec,
    monitor: &protocol::MonitorConfig,
) -> Result<()> {
    match std::fs::remove_dir_all(run_dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io_err("remove", run_dir)(e));
        }
        _ => {}
    }
    crate::perms::ensure_dir(run_dir, crate::perms::RUN_DIR_MODE)
        .map_err(io_err("create", run_dir))?;
    // In a user namespace (`--userns-remap`) the init, the mapped root, cannot create the
    // root's mount point in this root-owned dir: it is made here, and the mapped root's group
    // may pass through its run and data dirs (0710) to mount the root and the /etc files.
    let mapped_root_gid = spec.linux().as_ref().and_then(|l| {
        l.gid_mappings()
            .as_ref()?
            .iter()
            .find(|m| m.container_id() == 0)
            .map(|m| m.host_id())
    });
    if let Some(gid) = mapped_root_gid {
        for dir in [
            Some(run_dir),
            run_dir.parent(),
            data_dir.parent(),
            Some(data_dir),
        ]
        .into_iter()
        .flatten()
        {
            berth_fs::open_to_group(dir, gid).map_err(io_err("chown", dir))?;
        }
        let rootfs = run_dir.join("rootfs");
        std::fs::create_dir(&rootfs).map_err(io_err("create", &rootfs))?;
    }
    let encode = |what| move |source| ContainerError::Encode { what, source };
    let spec_bytes = serde_json::to_vec(spec).map_err(encode("OCI spec"))?;
    let monitor_bytes = serde_json::to_vec(monitor).map_err(encode("monitor config"))?;
    // The spec holds the container's environment (`-e` values): for root alone.
    berth_fs::write_atomic_private(&run_dir.join(protocol::SPEC_FILE), &spec_bytes, false)?;
    berth_fs::write_atomic_private(&run_dir.join(protocol::CONFIG_FILE), &monitor_bytes, false)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("20m"), Some(20_000_000));
        assert_eq!(parse_size("1g"), Some(1_000_000_000));
        assert_eq!(parse_size(" 100K "), Some(100_000));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("-1m"), None);
    }
}
