//! What a container's watchers (`wait`, `logs -f`, `stats`, `stop`) see of its lifecycle.
use crate::store::Status;

/// The lifecycle a container's watchers see.
#[derive(Debug, Clone)]
pub struct Life {
    /// Current status.
    pub status: Status,
    /// The init's pid while alive, else 0 (`--network container:X` reads it without
    /// waiting for X's record lock).
    pub pid: i64,
    /// Last exit code.
    pub exit_code: i64,
    /// How many times it exited (or failed to start) so far.
    pub exits: u64,
    /// It was removed.
    pub removed: bool,
}
