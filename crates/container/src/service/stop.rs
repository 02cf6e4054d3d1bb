//! `stop`, `kill` and `restart`.
use std::sync::Arc;
use std::time::Duration;

use berth_monitor::protocol::Request;

use super::entry::Entry;
use super::{ContainerService, Result, conflict, parse_signal};
use crate::ContainerError;
use crate::life::Life;
use crate::monitor_client::{self};
use crate::store::{self, Status};

impl ContainerService {
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
    pub(super) async fn stop_entry(&self, entry: &Arc<Entry>, sig: i32, secs: i64) {
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
}
