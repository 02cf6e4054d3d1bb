//! Blocking work off the async threads: what must go through here is the rule in
//! `docs/architecture.md` ("Blocking work in async code").
//!
//! Convention copy: the workspace's shared blocking helper replaces this one function.
use crate::ContainerError;

/// Runs `f` on tokio's blocking pool and waits for it; a panic or cancellation of the task
/// is an error of its own class.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ContainerError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|source| ContainerError::Task { source })
}
