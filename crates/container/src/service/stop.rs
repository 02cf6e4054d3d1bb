//! `stop`, `kill` and `restart`.
use std::sync::Arc;
use std::time::Duration;

use berth_monitor::protocol::Request;

use super::entry::Entry;
use super::{ContainerService, Result, parse_signal};
use crate::ContainerError;
use crate::life::Life;
use crate::monitor::call_ok;
use crate::store::Status;

/// The signal `stop` sends: the request's, else the container's `StopSignal`, else SIGTERM.
fn stop_signal(requested: Option<&str>, configured: Option<&str>) -> Result<i32> {
    match requested.filter(|s| !s.is_empty()) {
        Some(s) => parse_signal(s),
        None => Ok(configured
            .and_then(berth_runtime::parse_signal)
            .unwrap_or(libc::SIGTERM)),
    }
}

/// Whether a kill with `sig` ends the current run's restarts (dockerd's `ExitOnNext` in
/// `killWithSignal`): SIGKILL, the container's stop signal, or any signal when it has none.
fn ends_restarts(sig: i32, configured: Option<&str>) -> bool {
    match configured.filter(|s| !s.is_empty()) {
        Some(s) if sig != libc::SIGKILL => berth_runtime::parse_signal(s) == Some(sig),
        _ => true,
    }
}

impl ContainerService {
    /// `POST /containers/{id}/stop?signal=&t=`; `NotModified` if not running.
    pub async fn stop(
        &self,
        reference: &str,
        signal: Option<String>,
        timeout: Option<i64>,
    ) -> Result<()> {
        let entry = self.lookup(reference)?;
        // A monitor this berth cannot speak to would never be told: say so, change nothing.
        if let Some(refused) = self.monitor.refusal(&entry.paths.socket()) {
            return Err(refused);
        }
        let (sig, secs, paused) = {
            let mut rec = entry.rec.lock().await;
            rec.state.status.can_stop()?;
            let sig = stop_signal(signal.as_deref(), rec.config.stop_signal.as_deref())?;
            // The restart policy must see the stop even if the daemon dies next: the record
            // is written before anything is signalled, and a failed write fails the stop.
            let mut next = rec.clone();
            next.manually_stopped = true;
            let cancel_restart = next.state.status == Status::Restarting;
            if cancel_restart {
                next.state.status = Status::Exited;
            }
            self.save(&entry, &next).await?;
            *rec = next;
            entry.set_exit_on_next(true);
            if cancel_restart {
                entry.set_life(&rec, false, false);
                return Ok(());
            }
            let secs = timeout.or(rec.config.stop_timeout).unwrap_or(10);
            (sig, secs, rec.state.status == Status::Paused)
        };
        if paused && let Err(error) = self.unpause(reference).await {
            // SIGKILL still ends a frozen process; a catchable signal waits for the timeout.
            tracing::warn!(container_id = %entry.id, %error, "unpausing before stop failed");
        }
        self.stop_entry(&entry, sig, secs).await;
        let rec = entry.rec.lock().await;
        self.publish(&rec, "stop", &[]);
        Ok(())
    }

    /// Signals, waits `secs` (negative: forever), then kills. Never fails: a monitor that
    /// cannot be reached has gone with its process, and its exit watcher records the exit.
    pub(super) async fn stop_entry(&self, entry: &Arc<Entry>, sig: i32, secs: i64) {
        let mut rx = entry.life.subscribe();
        let exits = rx.borrow().exits;
        let exited = |l: &Life| l.exits > exits || !l.status.is_alive();
        let socket = entry.paths.socket();
        if sig != libc::SIGKILL {
            self.signal_for_stop(entry, &socket, sig).await;
            let wait = async {
                // An Err means the entry is gone (removed): nothing left to wait for.
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
        self.signal_for_stop(entry, &socket, libc::SIGKILL).await;
        // Bounded: past it the caller goes on; the exit watcher still records the exit.
        if tokio::time::timeout(Duration::from_secs(30), rx.wait_for(exited))
            .await
            .is_err()
        {
            tracing::warn!(container_id = %entry.id, "no exit 30 s after SIGKILL");
        }
    }

    async fn signal_for_stop(&self, entry: &Entry, socket: &std::path::Path, signal: i32) {
        if let Err(error) = call_ok(&*self.monitor, socket, &Request::Kill { signal }).await {
            tracing::debug!(container_id = %entry.id, %error, signal, "signalling for stop failed");
        }
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

    /// `POST /containers/{id}/kill?signal=` (`HUP`, `SIGHUP` or `1`). As dockerd: any kill
    /// marks the container stopped by the user; its stop signal, SIGKILL, or any signal when
    /// it has no `StopSignal` ends the restarts of this run; a SIGKILL returns only once the
    /// container has exited.
    pub async fn kill(&self, reference: &str, signal: Option<String>) -> Result<()> {
        let entry = self.lookup(reference)?;
        let sig = match signal.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => parse_signal(s)?,
            None => libc::SIGKILL,
        };
        let mut rec = entry.rec.lock().await;
        rec.state.status.can_kill(reference, &rec.id)?;
        if !rec.manually_stopped {
            let mut next = rec.clone();
            next.manually_stopped = true;
            self.save(&entry, &next).await?;
            *rec = next;
        }
        if ends_restarts(sig, rec.config.stop_signal.as_deref()) {
            entry.set_exit_on_next(true);
        }
        let mut rx = entry.life.subscribe();
        let exits = rx.borrow().exits;
        let socket = entry.paths.socket();
        let attrs_rec = rec.clone();
        drop(rec);
        call_ok(&*self.monitor, &socket, &Request::Kill { signal: sig })
            .await
            .map_err(|e| ContainerError::Kill {
                name: attrs_rec.name.clone(),
                source: Box::new(e),
            })?;
        self.publish(&attrs_rec, "kill", &[("signal", sig.to_string())]);
        if sig == libc::SIGKILL {
            let exited = |l: &Life| l.exits > exits || !l.status.is_alive();
            if tokio::time::timeout(Duration::from_secs(30), rx.wait_for(exited))
                .await
                .is_err()
            {
                tracing::warn!(container_id = %entry.id, "no exit 30 s after kill");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kills_end_restarts_as_dockerd_decides() {
        assert!(ends_restarts(libc::SIGKILL, None));
        assert!(ends_restarts(libc::SIGKILL, Some("SIGUSR1")));
        assert!(
            ends_restarts(libc::SIGHUP, None),
            "no stop signal: any signal"
        );
        assert!(ends_restarts(libc::SIGUSR1, Some("SIGUSR1")));
        assert!(!ends_restarts(libc::SIGHUP, Some("SIGUSR1")));
    }

    #[test]
    fn stop_signal_comes_from_request_then_config() {
        assert_eq!(stop_signal(None, None).unwrap(), libc::SIGTERM);
        assert_eq!(
            stop_signal(Some(""), Some("SIGUSR1")).unwrap(),
            libc::SIGUSR1
        );
        assert_eq!(
            stop_signal(Some("KILL"), Some("SIGUSR1")).unwrap(),
            libc::SIGKILL
        );
        assert_eq!(stop_signal(Some("9"), None).unwrap(), 9);
        assert_eq!(stop_signal(None, Some("bogus")).unwrap(), libc::SIGTERM);
        assert_eq!(
            stop_signal(Some("bogus"), None).unwrap_err().to_string(),
            "Invalid signal: bogus"
        );
    }
}
