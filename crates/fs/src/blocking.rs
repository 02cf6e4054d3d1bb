//! Blocking work from async code: the one helper the daemon and the container service call
//! synchronous services and file I/O through (feature `tokio`).
//!
//! Anything that may wait on a disk or a lock held across I/O (a store's file reads and
//! writes, an fsync, a directory walk, a subprocess) runs here, never inline on an async
//! worker: a slow disk would otherwise stall every connection the worker serves. (A
//! producer that feeds a streamed response and is not awaited in place — `save`, `load`,
//! `import`, `bootstrap` — is spawned with `tokio::task::spawn_blocking` itself.)
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let length = berth_fs::blocking(|| std::fs::metadata("/").map(|m| m.len()))
//!     .await
//!     .expect("the closure does not panic");
//! assert!(length.is_ok());
//! # }
//! ```

/// Runs `work` on tokio's blocking pool and returns what it returned.
///
/// The error is tokio's [`JoinError`](tokio::task::JoinError): `work` panicked, or the
/// runtime shut down before it ran. Each crate's error type maps it (`From<JoinError>`, an
/// internal error), so a fallible `work` reads `blocking(move || store.op()).await??`.
pub async fn blocking<T, F>(work: F) -> Result<T, tokio::task::JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_value_and_reports_a_panic() {
        assert_eq!(blocking(|| 7).await.expect("ran"), 7);
        let error = blocking(|| -> u8 { panic!("boom") })
            .await
            .expect_err("panicked");
        assert!(error.is_panic());
    }
}
