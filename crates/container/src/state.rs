//! A container's lifecycle state and the moves each state allows.
//!
//! ```text
//!            start              pause
//! Created ─────────> Running <───────> Paused
//!    ^                │   ^  unpause     │
//!    │ (start failed) │   │ restart      │ stop/kill (unpaused first)
//!    │     exit/stop  v   │ policy       v
//!    └──────────── Exited ──> Restarting ─┘
//!                    │
//!                    └─ rm ──> Removing ──> (gone)
//! ```
//!
//! Each verb asks its state first (`can_start()`, `can_pause()`, …); a refusal is the error the
//! client sees, in Docker's words, so the checks live here once and are tested per state.
use serde::{Deserialize, Serialize};

use crate::ContainerError;

/// A container's lifecycle state, as Docker names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created, never started (or start failed before exec).
    Created,
    /// Running.
    Running,
    /// Frozen.
    Paused,
    /// Waiting to be restarted by its restart policy.
    Restarting,
    /// Being removed.
    Removing,
    /// Exited.
    Exited,
    /// Broken beyond use.
    Dead,
}

fn conflict(message: String) -> ContainerError {
    ContainerError::Conflict { message }
}

impl Status {
    /// Every state, for tests and tables.
    pub const ALL: [Status; 7] = [
        Status::Created,
        Status::Running,
        Status::Paused,
        Status::Restarting,
        Status::Removing,
        Status::Exited,
        Status::Dead,
    ];

    /// Docker's lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// Whether a process is alive (running or paused).
    pub fn is_alive(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }

    /// Alive or about to be restarted: what `ps` lists without `-a`, what `wait` and
    /// `logs -f` keep waiting on, and what `rm` without `-f` and `prune` leave alone.
    pub fn is_up(self) -> bool {
        self.is_alive() || self == Status::Restarting
    }

    /// `start`: `NotModified` when running.
    pub fn can_start(self) -> Result<(), ContainerError> {
        match self {
            Status::Running => Err(ContainerError::NotModified),
            Status::Paused => Err(conflict(
                "cannot start a paused container, try unpause instead".into(),
            )),
            Status::Removing => Err(conflict(
                "container is marked for removal and cannot be started".into(),
            )),
            Status::Created | Status::Restarting | Status::Exited | Status::Dead => Ok(()),
        }
    }

    /// `stop`: `NotModified` unless alive or waiting for a restart (which stop cancels).
    pub fn can_stop(self) -> Result<(), ContainerError> {
        if self.is_up() {
            Ok(())
        } else {
            Err(ContainerError::NotModified)
        }
    }

    /// `kill` of container `id`, named `reference` by the client.
    pub fn can_kill(self, reference: &str, id: &str) -> Result<(), ContainerError> {
        if self.is_alive() {
            Ok(())
        } else {
            Err(conflict(format!(
                "Cannot kill container: {reference}: Container {id} is not running"
            )))
        }
    }

    /// `rm` (with `-f` when `force`) of container `id` named `name`.
    pub fn can_remove(self, force: bool, name: &str, id: &str) -> Result<(), ContainerError> {
        let what = match self {
            Status::Removing => {
                return Err(conflict(format!(
                    "removal of container {id} is already in progress"
                )));
            }
            _ if force => return Ok(()),
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Created | Status::Exited | Status::Dead => return Ok(()),
        };
        Err(conflict(format!(
            "cannot remove container \"/{name}\": container is {what}: stop the container before removing or force remove"
        )))
    }

    /// `pause`.
    pub fn can_pause(self, id: &str) -> Result<(), ContainerError> {
        match self {
            Status::Running => Ok(()),
            Status::Paused => Err(conflict(format!("Container {id} is already paused"))),
            _ => Err(conflict(format!("Container {id} is not running"))),
        }
    }

    /// `unpause`.
    pub fn can_unpause(self, id: &str) -> Result<(), ContainerError> {
        match self {
            Status::Paused => Ok(()),
            _ => Err(conflict(format!("Container {id} is not paused"))),
        }
    }

    /// `exec` (create).
    pub fn can_exec(self, id: &str) -> Result<(), ContainerError> {
        match self {
            Status::Running => Ok(()),
            Status::Paused => Err(conflict(format!(
                "Container {id} is paused, unpause the container before exec"
            ))),
            Status::Restarting => Err(conflict(format!(
                "Container {id} is restarting, wait until the container is running"
            ))),
            _ => Err(conflict(format!("Container {id} is not running"))),
        }
    }

    /// `exec` start: only into a running (not paused) container.
    pub fn can_exec_start(self, id: &str) -> Result<(), ContainerError> {
        match self {
            Status::Running => Ok(()),
            _ => Err(conflict(format!("Container {id} is not running"))),
        }
    }

    /// What needs a live process: `top`, `resize`.
    pub fn require_alive(self, id: &str) -> Result<(), ContainerError> {
        if self.is_alive() {
            Ok(())
        } else {
            Err(conflict(format!("Container {id} is not running")))
        }
    }
}

#[cfg(test)]
mod tests {
    use berth_errdefs::{Classify, ErrorKind};

    use super::*;

    /// The class and message of a refusal, or None when the move is allowed.
    fn verdict(r: Result<(), ContainerError>) -> Option<(ErrorKind, String)> {
        r.err().map(|e| (e.kind(), e.to_string()))
    }

    fn conflict_msg(m: &str) -> Option<(ErrorKind, String)> {
        Some((ErrorKind::Conflict, m.to_string()))
    }

    #[test]
    fn start_per_state() {
        for s in Status::ALL {
            let want = match s {
                Status::Running => Some((
                    ErrorKind::NotModified,
                    "container already in requested state".to_string(),
                )),
                Status::Paused => {
                    conflict_msg("cannot start a paused container, try unpause instead")
                }
                Status::Removing => {
                    conflict_msg("container is marked for removal and cannot be started")
                }
                _ => None,
            };
            assert_eq!(verdict(s.can_start()), want, "{s:?}");
        }
    }

    #[test]
    fn stop_per_state() {
        for s in Status::ALL {
            let allowed = matches!(s, Status::Running | Status::Paused | Status::Restarting);
            let v = verdict(s.can_stop());
            assert_eq!(v.is_none(), allowed, "{s:?}");
            if let Some((kind, _)) = v {
                assert_eq!(kind, ErrorKind::NotModified, "{s:?}");
            }
        }
    }

    #[test]
    fn kill_per_state() {
        for s in Status::ALL {
            let want = (!s.is_alive())
                .then(|| conflict_msg("Cannot kill container: web: Container abc is not running"))
                .flatten();
            assert_eq!(verdict(s.can_kill("web", "abc")), want, "{s:?}");
        }
    }

    #[test]
    fn remove_per_state() {
        let busy = |what: &str| {
            conflict_msg(&format!(
                "cannot remove container \"/web\": container is {what}: stop the container before removing or force remove"
            ))
        };
        let in_progress = conflict_msg("removal of container abc is already in progress");
        for s in Status::ALL {
            let (plain, forced) = match s {
                Status::Running => (busy("running"), None),
                Status::Paused => (busy("paused"), None),
                Status::Restarting => (busy("restarting"), None),
                Status::Removing => (in_progress.clone(), in_progress.clone()),
                Status::Created | Status::Exited | Status::Dead => (None, None),
            };
            assert_eq!(verdict(s.can_remove(false, "web", "abc")), plain, "{s:?}");
            assert_eq!(
                verdict(s.can_remove(true, "web", "abc")),
                forced,
                "{s:?} -f"
            );
        }
    }

    #[test]
    fn pause_and_unpause_per_state() {
        for s in Status::ALL {
            let pause = match s {
                Status::Running => None,
                Status::Paused => conflict_msg("Container abc is already paused"),
                _ => conflict_msg("Container abc is not running"),
            };
            assert_eq!(verdict(s.can_pause("abc")), pause, "{s:?}");
            let unpause = (s != Status::Paused)
                .then(|| conflict_msg("Container abc is not paused"))
                .flatten();
            assert_eq!(verdict(s.can_unpause("abc")), unpause, "{s:?}");
        }
    }

    #[test]
    fn exec_per_state() {
        for s in Status::ALL {
            let create = match s {
                Status::Running => None,
                Status::Paused => {
                    conflict_msg("Container abc is paused, unpause the container before exec")
                }
                Status::Restarting => {
                    conflict_msg("Container abc is restarting, wait until the container is running")
                }
                _ => conflict_msg("Container abc is not running"),
            };
            assert_eq!(verdict(s.can_exec("abc")), create, "{s:?}");
            let start = (s != Status::Running)
                .then(|| conflict_msg("Container abc is not running"))
                .flatten();
            assert_eq!(verdict(s.can_exec_start("abc")), start, "{s:?}");
        }
    }

    #[test]
    fn alive_and_up_per_state() {
        for s in Status::ALL {
            let alive = matches!(s, Status::Running | Status::Paused);
            assert_eq!(s.is_alive(), alive, "{s:?}");
            assert_eq!(s.is_up(), alive || s == Status::Restarting, "{s:?}");
            assert_eq!(s.require_alive("abc").is_ok(), alive, "{s:?}");
            // The names round-trip through the record's JSON.
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
    }
}
