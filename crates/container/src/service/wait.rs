//! `wait`: waiters on a container's lifecycle (`not-running`, `next-exit`, `removed`).
use std::sync::Arc;

use berth_api::models::ContainerWaitResponse;
use tokio::sync::watch;

use super::entry::Entry;
use super::{ContainerService, Result};
use crate::life::Life;
use crate::store::Status;

/// `POST /containers/{id}/wait?condition=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    /// Return as soon as the container is not running (default).
    NotRunning,
    /// Wait for the next exit, even if not running now.
    NextExit,
    /// Wait until the container is removed.
    Removed,
}

/// A registered waiter; awaiting it yields the wait response.
#[derive(Debug)]
pub struct WaitHandle {
    pub(super) entry: Arc<Entry>,
    pub(super) rx: watch::Receiver<Life>,
    pub(super) condition: WaitCondition,
    pub(super) exits_at_start: u64,
}

impl WaitHandle {
    /// Waits for the condition.
    pub async fn result(mut self) -> ContainerWaitResponse {
        let _keep_alive = &self.entry;
        loop {
            let l = self.rx.borrow_and_update().clone();
            let done = match self.condition {
                // The end of the current run counts even when the restart policy already
                // restarts it (dockerd's `SetRestarting` notifies the stop waiters).
                WaitCondition::NotRunning => {
                    l.removed
                        || l.exits > self.exits_at_start
                        || !(l.status.is_alive() || l.status == Status::Restarting)
                }
                WaitCondition::NextExit => l.removed || l.exits > self.exits_at_start,
                WaitCondition::Removed => l.removed,
            };
            if done {
                return ContainerWaitResponse {
                    status_code: l.exit_code,
                    error: None,
                };
            }
            if self.rx.changed().await.is_err() {
                return ContainerWaitResponse {
                    status_code: l.exit_code,
                    error: None,
                };
            }
        }
    }
}

impl ContainerService {
    /// `POST /containers/{id}/wait`: registers the waiter now (so the daemon can flush headers
    /// before the container is started), resolves later.
    pub async fn wait(&self, reference: &str, condition: WaitCondition) -> Result<WaitHandle> {
        let entry = self.lookup(reference)?;
        let rx = entry.life.subscribe();
        let exits_at_start = rx.borrow().exits;
        Ok(WaitHandle {
            entry,
            rx,
            condition,
            exits_at_start,
        })
    }
}
