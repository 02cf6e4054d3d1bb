//! One container in the service's memory: its record, lifecycle channel and parked attachments.
use std::collections::HashMap;
use std::sync::Arc;

use berth_monitor::protocol::Request;
use tokio::sync::{oneshot, watch};

use crate::life::Life;
use crate::monitor::Conversation;
use crate::store::{Paths, Record};

#[derive(Debug)]
pub(super) struct PendingAttach {
    pub(super) request: Request,
    pub(super) tx: oneshot::Sender<Conversation>,
}

/// One container.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(super) id: String,
    /// When it was created (never changes; `ps --filter before/since` read it unlocked).
    pub(super) created: String,
    pub(super) paths: Paths,
    pub(super) rec: tokio::sync::Mutex<Record>,
    pub(super) life: watch::Sender<Life>,
    pub(super) pending_attach: std::sync::Mutex<Vec<PendingAttach>>,
    /// The init's process in the current run's OCI spec: an exec builds on it (only this
    /// part of the spec is kept; the rest, its seccomp profile above all, is large).
    pub(super) process: std::sync::Mutex<Option<berth_runtime::Process>>,
    /// A `rm` holds it from its first step (a `rm -f` stops the container first) to the
    /// last: a second `rm` meanwhile is told the removal is in progress, as dockerd tells.
    pub(super) removal: std::sync::atomic::AtomicBool,
    /// The user stopped or killed the current run (dockerd's `ExitOnNext`, which cancels its
    /// restart manager): its exit is not followed by a restart, whatever the policy. Reset
    /// by the next start; not kept across a daemon restart, as in dockerd.
    pub(super) exit_on_next: std::sync::atomic::AtomicBool,
}

/// A removal's claim on its container (see [`Entry::removal`]); released when dropped.
#[derive(Debug)]
pub(super) struct RemovalClaim<'a>(&'a Entry);

impl<'a> RemovalClaim<'a> {
    /// Claims the removal of `entry`, or says another one is in progress.
    pub(super) fn take(entry: &'a Entry) -> Result<Self, crate::ContainerError> {
        use std::sync::atomic::Ordering;
        if entry.removal.swap(true, Ordering::AcqRel) {
            return Err(crate::ContainerError::Conflict {
                message: format!("removal of container {} is already in progress", entry.id),
            });
        }
        Ok(Self(entry))
    }
}

impl Drop for RemovalClaim<'_> {
    fn drop(&mut self) {
        self.0
            .removal
            .store(false, std::sync::atomic::Ordering::Release);
    }
}

impl Entry {
    pub(super) fn set_exit_on_next(&self, value: bool) {
        self.exit_on_next
            .store(value, std::sync::atomic::Ordering::SeqCst);
    }

    pub(super) fn exits_on_next(&self) -> bool {
        self.exit_on_next.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(super) fn set_life(&self, r: &Record, exited: bool, removed: bool) {
        self.life.send_modify(|l| {
            l.status = r.state.status;
            l.exit_code = r.state.exit_code;
            l.pid = r.state.pid;
            if exited {
                l.exits += 1;
            }
            l.removed |= removed;
        });
    }
}

#[derive(Debug, Default)]
pub(super) struct Index {
    pub(super) by_id: HashMap<String, Arc<Entry>>,
    pub(super) names: HashMap<String, String>,
}
