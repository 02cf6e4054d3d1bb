//! The container service: every container's lifecycle, its state on disk, and its monitor.
//!
//! The daemon's HTTP layer calls [`ContainerService`]; this crate turns those calls into an OCI
//! runtime spec (via `berth-runtime`'s defaults), a root filesystem (via `berth-image`) and a
//! per-container monitor process (via `berth-monitor`'s protocol), and keeps the Docker-visible
//! state (`store`).
#![forbid(unsafe_code)]
#![deny(clippy::too_many_lines)]

pub mod error;
pub mod events;
mod life;
pub mod log_driver;
mod logs;
pub mod monitor;
pub mod monitor_client;
mod net;
pub mod perms;
pub mod service;
pub mod spec;
pub mod state;
mod stats;
pub mod store;

pub use error::ContainerError;
pub use events::EventBus;
pub use service::*;
