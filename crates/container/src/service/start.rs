//! `start`: the run's OCI spec and monitor config are written, the monitor spawned, networks
//! attached to the init (blocked before exec), parked attachments connected, then `Start`.
use std::sync::Arc;

use berth_monitor::protocol::{self, Request, Response};

use super::entry::{Entry, PendingAttach};
use super::exit::begin_wait;
use super::{ContainerService, Result, blocking, conflict, io_err, mounts};
use crate::monitor_client::{self};
use crate::store::{self, Record, Status};
use crate::{ContainerError, spec};

/// `20m`, `1g`, `100k`, `512` → bytes.
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

impl ContainerService {
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
    pub(super) async fn start_locked(&self, entry: &Arc<Entry>, rec: &mut Record) -> Result<()> {
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
        let (user, seccomp) = {
            let (u, rootfs) = (rec.config.user.clone().unwrap_or_default(), rootfs.clone());
            let hc = rec.host_config.clone();
            blocking(move || -> Result<_> {
                Ok((
                    spec::resolve_user(&u, &rootfs)?,
                    spec::seccomp::choice(&hc)?,
                ))
            })
            .await??
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
            seccomp,
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
        let _ = store::save(&entry.paths, rec, false);
        let _ = std::fs::remove_dir_all(&entry.paths.run_dir);
        entry.set_life(rec, true, false);
        ContainerError::StartFailed { message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("20m"), Some(20_000_000));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("x"), None);
    }
}
