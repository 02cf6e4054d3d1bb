//! The per-container monitor: one small single-threaded process per container run.
//!
//! DRAFT (being implemented). The daemon writes a [`protocol::MonitorConfig`] to
//! `<run_dir>/monitor.json` and spawns `berth monitor <run_dir>` with its stdout on a pipe.
//! The monitor creates the container init (blocked before exec), binds `<run_dir>/monitor.sock`,
//! writes one [`protocol::Ready`] JSON line to its stdout, then serves the protocol.
pub mod protocol;

/// The monitor's entry point (`berth monitor <run_dir>`); returns the process exit code.
#[allow(unused_variables)]
pub fn run(run_dir: &std::path::Path) -> i32 {
    todo!()
}
