//! Exits: the watcher of a run's `Wait` conversation, recording an exit, `--rm`, the restart
//! policy, and finding running monitors again after a daemon restart.
use std::sync::Arc;

use berth_monitor::protocol::{self, ExitStatus, Request, Response};

use super::entry::Entry;
use super::restart_policy;
use super::{ContainerService, blocking};
use crate::monitor::Conversation;
use crate::store::{self, Paths, Record, Status};

/// How often a failed save of an exit is tried again.
const SAVE_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// The part of a run's `config.json` the service keeps (serde skips the rest unparsed).
#[derive(Debug, serde::Deserialize)]
struct SpecProcess {
    process: Option<berth_runtime::Process>,
}

/// Reads the exit line of a `Wait` conversation (None if the monitor went away first).
pub(super) async fn read_wait(mut wait: Conversation) -> Option<ExitStatus> {
    use tokio::io::AsyncBufReadExt;
    let mut line = String::new();
    wait.reader.read_line(&mut line).await.ok()?;
    match serde_json::from_str::<Response>(&line).ok()? {
        Response::Exited(e) => Some(e),
        _ => None,
    }
}

/// The exit the monitor wrote to the run dir, if any (a small file, read inline).
fn read_exit_file(paths: &Paths) -> Option<ExitStatus> {
    let b = std::fs::read(paths.run_dir.join(protocol::EXIT_FILE)).ok()?;
    serde_json::from_slice(&b).ok()
}

/// The exit recorded when neither the monitor nor its exit file tells one.
fn monitor_disappeared() -> ExitStatus {
    ExitStatus {
        exit_code: 255,
        finished_at: store::now_rfc3339(),
        oom_killed: false,
        error: Some("container monitor disappeared".into()),
    }
}

/// What an exit does to a record: the state of the run that ended.
fn apply_exit(rec: &mut Record, exit: &ExitStatus, started: bool) {
    if started || rec.state.status != Status::Created {
        rec.state.status = Status::Exited;
        rec.state.finished_at = exit.finished_at.clone();
        rec.state.oom_killed = exit.oom_killed;
    }
    rec.state.exit_code = i64::from(exit.exit_code);
    if let Some(e) = &exit.error {
        rec.state.error = e.clone();
    }
    rec.state.pid = 0;
    // dockerd reports a stopped probe loop as unhealthy ("for compatibility reasons").
    if let Some(h) = rec.state.health.as_mut() {
        h.status = Some(berth_api::models::HealthStatusEnum::UNHEALTHY);
    }
}

impl ContainerService {
    /// After a daemon restart: find the monitor of a container that was running.
    pub(super) async fn reconcile(&self, entry: Arc<Entry>) {
        let socket = entry.paths.socket();
        // A monitor of another berth: spoken to in its version, or, when this berth cannot,
        // left running (not taken for lost, which would kill its container) and said so.
        if let Err(error @ crate::ContainerError::MonitorVersion { .. }) =
            self.monitor.hello(&socket).await
        {
            tracing::error!(container_id = %entry.id, "{error}");
            entry.rec.lock().await.state.error = error.to_string();
            return;
        }
        if let Ok((Response::State { status, .. }, _)) =
            self.monitor.call(&socket, &Request::State).await
            && status != protocol::Status::Exited
            && let Ok(wait) = self.monitor.begin_wait(&socket).await
        {
            // The spec (with its seccomp profile) is tens of KiB: read off the async threads,
            // keeping only its process.
            let path = entry.paths.run_dir.join(protocol::SPEC_FILE);
            let process = blocking(move || {
                let bytes = std::fs::read(path).ok()?;
                serde_json::from_slice::<SpecProcess>(&bytes).ok()?.process
            })
            .await
            .ok()
            .flatten();
            *entry.process.lock().unwrap_or_else(|p| p.into_inner()) = process;
            {
                let rec = entry.rec.lock().await;
                self.resume_health(&entry, &rec);
            }
            self.spawn_exit_watcher(entry, wait, true);
            return;
        }
        self.monitor_lost(&entry).await;
        let exit = read_exit_file(&entry.paths).unwrap_or_else(monitor_disappeared);
        self.handle_exit(entry, exit, true).await;
    }

    /// The monitor of a run is gone (killed, crashed) or never answered: before its exit is
    /// recorded, nothing of the container may still run. Its processes die with the monitor
    /// (`PR_SET_PDEATHSIG`); what escaped that (`--pid host`, a process that was joining) is
    /// killed with the cgroup, which goes too, so the next start runs the only copy.
    async fn monitor_lost(&self, entry: &Arc<Entry>) {
        let rec = entry.rec.lock().await.clone();
        self.kill_leftovers(entry, &rec).await;
    }

    /// Waits, in a task of its own, for the exit line of `wait` and applies it.
    pub(super) fn spawn_exit_watcher(&self, entry: Arc<Entry>, wait: Conversation, started: bool) {
        let Some(me) = self.me.upgrade() else { return };
        tokio::spawn(async move {
            let exit = match read_wait(wait).await {
                Some(exit) => exit,
                None => {
                    me.monitor_lost(&entry).await;
                    read_exit_file(&entry.paths).unwrap_or_else(monitor_disappeared)
                }
            };
            me.handle_exit(entry, exit, started).await;
        });
    }

    /// Applies an exit: state, events, waiters, then `--rm` or the restart policy.
    pub(super) async fn handle_exit(&self, entry: Arc<Entry>, exit: ExitStatus, started: bool) {
        let mut rec = entry.rec.lock().await;
        if entry.life.borrow().removed {
            // `rm` ended the run itself (a stray one) and removed the container.
            return;
        }
        apply_exit(&mut rec, &exit, started);
        *entry.process.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let auto_remove = rec.host_config.auto_remove.unwrap_or(false);
        let restart = started
            && !auto_remove
            && !entry.exits_on_next()
            && restart_policy::should_restart(&rec);
        if restart {
            rec.state.status = Status::Restarting;
        }
        // The run dir holds exit.json: it goes only once the record holds the exit, so a
        // failed write leaves the next daemon the evidence.
        match self.save(&entry, &rec).await {
            Ok(()) => self.remove_run_dir(&entry).await,
            Err(error) => {
                tracing::error!(container_id = %entry.id, %error, "recording an exit failed; its run dir is kept, the save retried");
                self.retry_exit_save(entry.clone());
            }
        }
        if started {
            if exit.oom_killed {
                self.publish(&rec, "oom", &[]);
            }
            self.publish(&rec, "die", &[("exitCode", exit.exit_code.to_string())]);
        }
        // After `die`, as dockerd: its network `disconnect`s, then the volumes' `unmount`s.
        self.release_networks(&rec).await;
        if started {
            self.publish_volume_events(&rec, "unmount");
        }
        entry.set_life(&rec, true, false);
        if auto_remove {
            drop(rec);
            if let Err(error) = self.remove_entry(&entry, true).await
                && !matches!(error, crate::ContainerError::NotFound { .. })
            {
                tracing::warn!(container_id = %entry.id, %error, "removing an auto-remove container after its exit failed");
            }
            return;
        }
        if restart {
            let backoff = restart_policy::backoff(rec.restart_count);
            drop(rec);
            let Some(me) = self.me.upgrade() else { return };
            tokio::spawn(async move {
                tokio::time::sleep(backoff).await;
                me.restart_by_policy(&entry).await;
            });
        }
    }

    /// Saves an exit whose first save failed (a full disk), every [`SAVE_RETRY`] until it is
    /// written, then removes the run dir (the evidence a next daemon would read otherwise).
    /// A start or a removal of the container meanwhile takes the record over.
    fn retry_exit_save(&self, entry: Arc<Entry>) {
        let Some(me) = self.me.upgrade() else { return };
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SAVE_RETRY).await;
                let rec = entry.rec.lock().await;
                if entry.life.borrow().removed || rec.state.status.is_alive() {
                    return;
                }
                if me.save(&entry, &rec).await.is_ok() {
                    tracing::info!(container_id = %entry.id, "recorded the exit on a retry");
                    me.remove_run_dir(&entry).await;
                    return;
                }
            }
        });
    }

    /// The restart the policy decided, after its backoff (unless `stop`/`rm` came first).
    async fn restart_by_policy(&self, entry: &Arc<Entry>) {
        let mut rec = entry.rec.lock().await;
        if rec.state.status != Status::Restarting {
            return;
        }
        rec.restart_count += 1;
        match self.start_locked(entry, &mut rec).await {
            Ok(()) => self.publish(&rec, "restart", &[]),
            Err(error) => {
                tracing::warn!(container_id = %entry.id, %error, "restart by policy failed");
                rec.state.status = Status::Exited;
                self.save_or_log(entry, &rec).await;
                entry.set_life(&rec, false, false);
            }
        }
    }

    /// Removes a run's directory (its bundle, socket and exit file) off the async threads.
    pub(super) async fn remove_run_dir(&self, entry: &Entry) {
        let dir = entry.paths.run_dir.clone();
        let removed = blocking(move || match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        })
        .await;
        if let Ok(Err(error)) = removed {
            tracing::warn!(container_id = %entry.id, %error, "removing the run dir failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: i32) -> ExitStatus {
        ExitStatus {
            exit_code: code,
            finished_at: "2026-01-01T00:00:00Z".into(),
            oom_killed: code == 137,
            error: None,
        }
    }

    fn record(status: Status) -> Record {
        let mut r: Record = serde_json::from_value(serde_json::json!({
            "id": "c", "name": "n", "created": "", "path": "true", "args": [],
            "config": {}, "host_config": {}, "image_id": "sha256:x",
        }))
        .expect("a minimal record decodes");
        r.state.status = status;
        r.state.pid = 42;
        r
    }

    #[test]
    fn an_exit_of_a_run_records_exited() {
        let mut r = record(Status::Running);
        apply_exit(&mut r, &exit(137), true);
        assert_eq!(r.state.status, Status::Exited);
        assert_eq!((r.state.exit_code, r.state.pid), (137, 0));
        assert!(r.state.oom_killed);
        assert_eq!(r.state.finished_at, "2026-01-01T00:00:00Z");
    }

    #[test]
    fn a_failed_first_start_stays_created_with_its_error() {
        let mut r = record(Status::Created);
        let mut e = exit(127);
        e.error = Some("exec: \"nope\": executable file not found in $PATH".into());
        apply_exit(&mut r, &e, false);
        assert_eq!(r.state.status, Status::Created);
        assert_eq!(r.state.exit_code, 127);
        assert!(r.state.error.contains("executable file not found"));
        assert_eq!(r.state.finished_at, store::ZERO_TIME);
    }

    #[test]
    fn the_process_is_read_back_from_a_written_spec() {
        let spec = berth_runtime::base_spec();
        let bytes = serde_json::to_vec(&spec).unwrap();
        let read: SpecProcess = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(read.process.as_ref(), spec.process().as_ref());
        assert!(read.process.is_some());
    }
}
