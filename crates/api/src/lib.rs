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
/// berth's own version.
pub const BERTH_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The default socket the daemon listens on and the CLI talks to.
pub const DEFAULT_SOCKET: &str = "/run/berth/berth.sock";

pub mod convention;
pub mod filters;
pub mod progress;
pub mod shape;
pub mod stdcopy;
pub mod time;
