//! Docker Engine API models and the conventions the CLI and the daemon share.
//!
//! The wire models are `bollard-stubs`' serde types, generated from Docker's own swagger, so
//! field names and shapes match what the docker CLI and docker-py send and expect. This crate
//! re-exports them as [`models`] and adds what berth needs beside them: the API version
//! constants, the stdcopy stream framing used by attach, exec and logs, and the conventions
//! both sides read alike: [`filters`] (Docker's `filters` parameter, labels, `until`) and
//! [`time`] (Go durations, Docker's timestamps).
#![forbid(unsafe_code)]

pub use bollard_stubs::models;

/// The API version berth advertises (Docker 25.0's).
pub const API_VERSION: &str = "1.44";
/// The lowest API version berth accepts.
pub const MIN_API_VERSION: &str = "1.24";
/// berth's own version (the crates').
pub const BERTH_VERSION: &str = env!("CARGO_PKG_VERSION");

static BUILD_VERSION: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// The version this binary reports (`berth version`, `/version`, `/info`): the one the binary
/// was built as (`BERTH_BUILD_VERSION` at build time, set by `src/main.rs` with
/// [`set_build_version`]), else [`BERTH_VERSION`].
pub fn version() -> &'static str {
    BUILD_VERSION.get().copied().unwrap_or(BERTH_VERSION)
}

/// Sets what [`version`] reports; the first call wins.
pub fn set_build_version(version: &'static str) {
    let _ = BUILD_VERSION.set(version);
}
/// The default socket the daemon listens on and the CLI talks to.
pub const DEFAULT_SOCKET: &str = "/run/berth/berth.sock";

pub mod convention;
pub mod filters;
pub mod progress;
pub mod shape;
pub mod stdcopy;
pub mod time;
