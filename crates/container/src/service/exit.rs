//! Exits: the watcher of a run's `Wait` conversation, recording an exit, `--rm`, the restart
//! policy, and finding running monitors again after a daemon restart.
use std::sync::Arc;
use std::time::Duration;

use berth_api::models::RestartPolicyNameEnum;
use berth_monitor::protocol::{self, ExitStatus, Request, Response};

use super::entry::Entry;
use super::{ContainerService, Result};
use crate::ContainerError;
use crate::monitor_client::{self, Conversation};
use crate::store::{self, Paths, Record, Status};

/// Opens the `Wait` conversation without waiting for its answer.
pub(super) async fn begin_wait(socket: &std::path::Path) -> Result<Conversation> {
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

pub(super) async fn read_wait(mut wait: Conversation) -> Option<ExitStatus> {
    use tokio::io::AsyncBufReadExt;
    let mut line = String::new();
    wait.reader.read_line(&mut line).await.ok()?;
    match serde_json::from_str::<Response>(&line).ok()? {
        Response::Exited(e) => Some(e),
        _ => None,
    }
}

pub(super) fn read_exit_file(paths: &Paths) -> Option<ExitStatus> {
    let b = std::fs::read(paths.run_dir.join(protocol::EXIT_FILE)).ok()?;
    serde_json::from_slice(&b).ok()
}

impl ContainerService {
    /// After a daemon restart: find the monitor of a container that was running.
    pub(super) async fn reconcile(&self, entry: Arc<Entry>) {
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

    pub(super) fn spawn_exit_watcher(&self, entry: Arc<Entry>, wait: Conversation, started: bool) {
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
    pub(super) async fn handle_exit(&self, entry: Arc<Entry>, exit: ExitStatus, started: bool) {
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

    pub(super) fn should_restart(&self, rec: &Record) -> bool {
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
}
