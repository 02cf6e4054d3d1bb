//! What the lifecycle asks of a container's monitor: the seam between the container service
//! and the per-container monitor processes.
//!
//! [`Monitor`] is small on purpose: spawn a monitor for a run dir, send it one request, open
//! the `Wait` conversation. Start, kill, attach, exec, resize and state are requests of
//! `berth_monitor::protocol`. The daemon passes [`crate::monitor_client::MonitorClient`]
//! (real processes over unix sockets); the lifecycle's unit tests pass a fake that answers
//! in memory, so create → start → stop → rm and the restart policy run without root.
use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use berth_monitor::protocol::{Ready, Request, Response};
use tokio::io::BufReader;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use crate::ContainerError;

/// A boxed future, as the trait's methods return (so the trait can be a `dyn` object).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A connection after its request was answered: the reader keeps any stream bytes that
/// arrived with the response line.
#[derive(Debug)]
pub struct Conversation {
    /// Monitor → daemon (frames after an attach/exec, the exit line of a `Wait`).
    pub reader: BufReader<OwnedReadHalf>,
    /// Daemon → monitor (stdin bytes after an attach/exec).
    pub writer: OwnedWriteHalf,
}

/// The monitor side of the lifecycle.
pub trait Monitor: Send + Sync + std::fmt::Debug {
    /// Starts the monitor of a run dir (its `config.json` and monitor config are written)
    /// and resolves when it is ready: the init exists, blocked before exec.
    fn spawn<'a>(&'a self, run_dir: &'a Path) -> BoxFuture<'a, Result<Ready, ContainerError>>;

    /// Sends one request to the monitor at `socket` and reads its one-line answer.
    fn call<'a>(
        &'a self,
        socket: &'a Path,
        req: &'a Request,
    ) -> BoxFuture<'a, Result<(Response, Conversation), ContainerError>>;

    /// Asks the monitor at `socket`, which another daemon may have started, which protocol
    /// version it speaks ([`berth_monitor::protocol::monitor_version`]); one this berth cannot
    /// speak is [`ContainerError::MonitorVersion`], and from then on every request to it
    /// fails so, unsent. A fake speaks the current version.
    fn hello<'a>(&'a self, socket: &'a Path) -> BoxFuture<'a, Result<u32, ContainerError>> {
        let _ = socket;
        Box::pin(async { Ok(berth_monitor::protocol::PROTOCOL_VERSION) })
    }

    /// The refusal of the monitor at `socket` if [`Monitor::hello`] found its protocol
    /// unspeakable (no I/O: what the handshake left).
    fn refusal(&self, socket: &Path) -> Option<ContainerError> {
        let _ = socket;
        None
    }

    /// Opens the `Wait` conversation without waiting for its answer (the exit line).
    fn begin_wait<'a>(
        &'a self,
        socket: &'a Path,
    ) -> BoxFuture<'a, Result<Conversation, ContainerError>>;

    /// Kills (`SIGKILL`) the process of the monitor at `socket` that [`Monitor::refusal`]
    /// names, and forgets the refusal: `rm -f` of its container, which cannot be asked of a
    /// monitor this berth cannot speak to. Its container's processes die with it
    /// (`PR_SET_PDEATHSIG`) and with their cgroup. Whether a refused monitor was killed.
    fn end_refused(&self, socket: &Path) -> bool {
        let _ = socket;
        false
    }
}

/// Sends a request that expects `Ok`.
pub async fn call_ok(
    monitor: &dyn Monitor,
    socket: &Path,
    req: &Request,
) -> Result<(), ContainerError> {
    match monitor.call(socket, req).await?.0 {
        Response::Ok => Ok(()),
        Response::Error { message, .. } => Err(ContainerError::Monitor { message }),
        other => Err(ContainerError::MonitorProtocol {
            response: format!("{other:?}"),
        }),
    }
}
