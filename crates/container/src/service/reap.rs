//! What a run can leave behind when its monitor or the daemon dies at the wrong moment:
//! processes in the container's cgroup that no monitor watches, and monitors of runs whose
//! record never said they started. Nothing of a container may outlive what its record says
//! (issue 10, items 10 and 11): `rm`, a lost monitor, a start and a daemon start-up all end
//! here first.
use std::time::{Duration, Instant};

use berth_cgroups::Cgroup;
use berth_monitor::protocol::{self, Request, Response};

use super::entry::Entry;
use super::{ContainerService, blocking};
use crate::monitor::call_ok;
use crate::store::Record;

/// How long the processes of a killed cgroup get to be gone.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a stray monitor gets to report its container's exit after `SIGKILL`.
const STRAY_EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the cgroup (or a cgroup nested in it) still holds a process.
fn populated(cgroup: &Cgroup) -> bool {
    if let Some(dir) = cgroup.unified_dir()
        && let Ok(events) = std::fs::read_to_string(dir.join("cgroup.events"))
    {
        return events.lines().any(|l| l.trim() == "populated 1");
    }
    cgroup.pids().is_ok_and(|p| !p.is_empty())
}

/// Kills every process in `cgroup` (`cgroup.kill` on v2; freeze, `SIGKILL` each, thaw
/// otherwise), waits until they are gone, and removes it. Blocking; returns how many
/// processes were found (0 when there was no cgroup or it was empty).
pub(super) fn kill_cgroup(cgroup: &Cgroup) -> usize {
    let found = cgroup.pids().map_or(0, |p| p.len());
    if found > 0 || populated(cgroup) {
        let killed = cgroup
            .unified_dir()
            .is_some_and(|dir| std::fs::write(dir.join("cgroup.kill"), "1").is_ok());
        if !killed {
            // A frozen cgroup cannot fork new members while its list is walked.
            let frozen = cgroup.freeze().is_ok();
            for pid in cgroup.pids().unwrap_or_default() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            if frozen {
                let _ = cgroup.thaw();
            }
        }
        let deadline = Instant::now() + KILL_TIMEOUT;
        while populated(cgroup) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    if let Err(error) = cgroup.destroy() {
        tracing::warn!(%error, "removing a container's cgroup failed");
    }
    found
}

impl ContainerService {
    /// Kills whatever runs in the container's cgroup and removes the cgroup (off the async
    /// threads). Called when nothing should run there: before an exit of a lost monitor is
    /// recorded, before a start, and by `rm`.
    pub(super) async fn kill_leftovers(&self, entry: &Entry, rec: &Record) {
        let cgroup = self.cgroup(rec);
        match blocking(move || kill_cgroup(&cgroup)).await {
            Ok(0) | Err(_) => {}
            Ok(n) => {
                tracing::warn!(container_id = %entry.id, processes = n, "killed processes no monitor watched");
            }
        }
    }

    /// Ends a run its record does not account for: a monitor that answers (the daemon died
    /// during `start`, before the record said so) is made to kill its container, and what
    /// is left in the cgroup, the networks and the run dir go. Returns whether a monitor
    /// answered.
    pub(super) async fn end_stray_run(&self, entry: &Entry, rec: &Record) -> bool {
        let socket = entry.paths.socket();
        let answered = match self.monitor.call(&socket, &Request::State).await {
            Ok((Response::State { status, .. }, _)) => {
                if status != protocol::Status::Exited
                    && let Ok(wait) = self.monitor.begin_wait(&socket).await
                {
                    let kill = Request::Kill {
                        signal: libc::SIGKILL,
                    };
                    if let Err(error) = call_ok(&*self.monitor, &socket, &kill).await {
                        tracing::warn!(container_id = %entry.id, %error, "killing a stray run failed");
                    }
                    let exited =
                        tokio::time::timeout(STRAY_EXIT_TIMEOUT, super::exit::read_wait(wait))
                            .await;
                    if exited.is_err() {
                        tracing::warn!(container_id = %entry.id, "a stray run did not exit");
                    }
                }
                true
            }
            _ => false,
        };
        if answered {
            tracing::warn!(container_id = %entry.id, status = rec.state.status.as_str(), "ended a run its record did not account for");
        }
        self.kill_leftovers(entry, rec).await;
        self.release_networks(rec).await;
        self.remove_run_dir(entry).await;
        answered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_cgroup_is_nothing_to_kill() {
        let t = tempfile::tempdir().unwrap();
        let cgroup = Cgroup::with_version(t.path(), "berth/none", berth_cgroups::CgroupVersion::V2);
        assert_eq!(kill_cgroup(&cgroup), 0);
    }
}
