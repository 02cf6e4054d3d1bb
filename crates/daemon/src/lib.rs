//! berth's Docker Engine API server (API 1.44), over a unix socket or TCP.
//!
//! The HTTP layer is thin: each handler parses the request, calls a typed service
//! ([`ContainerService`], [`ImageStore`]) and turns the result, or the error's
//! [`berth_errdefs::ErrorKind`], into Docker's wire shape. Conventions every route shares
//! (`/v1.NN` prefixes, global headers, 404s, failure logging) live in [`router`]; hijacked
//! connections (attach, exec) in [`hijack`]; accepting and serving connections (timeouts of
//! idle and slow clients, shedding before descriptors run out) in [`connections`]; the
//! process lifecycle (directories, pid file, signals, reload) in [`server`]; the configuration
//! (flags over `/etc/berth/daemon.json`) in [`config`] and [`config_file`]; listening sockets,
//! systemd socket activation and readiness in [`listeners`]; the start-up checks (the data
//! root's lock, overlay support) in [`guard`].
//!
//! On disk the daemon itself owns only:
//!
//! ```text
//! <exec_root>/berth.sock   the API socket (mode 0660, group `berth` when it exists)
//! <exec_root>/berth.pid    the daemon's pid while it runs
//! <data_root>/berth.lock   flock(2)ed while the daemon runs, holding its pid (one daemon per
//!                          data root)
//! <data_root>/engine-id    the engine ID `docker info` shows, made once
//! ```
//!
//! Everything else belongs to the services (`<data_root>/image`, `<data_root>/containers`, …).
#![deny(unsafe_code)]
#![recursion_limit = "256"]

pub mod archive;
pub mod build;
mod commit;
pub mod config;
pub mod config_file;
pub mod connections;
pub mod containers;
pub mod copy;
pub mod error;
mod features_off;
pub mod guard;
pub mod hello;
pub mod hijack;
mod image_state;
pub mod images;
pub mod listeners;
pub mod networks;
pub mod query;
pub mod registry;
pub mod reset;
pub mod responses;
pub mod router;
pub mod server;
mod sys;
pub mod system;
pub mod userns;
pub mod volumes;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use berth_container::{ContainerService, EventBus};
use berth_distribution::client::Distribution;
use berth_image::ImageStore;

pub use berth_distribution as distribution;
pub use config::{
    DaemonConfig, ListenAddress, command, parse_args, parse_reset_args, reset_command,
};
pub use error::DaemonError;
pub use image_state::{ImageUsage, ImageUsageMap, ImagesState};
pub use server::{Hooks, run, run_with};
pub use system::{HostPaths, SystemFacts};

/// Everything the handlers reach: the services and the host facts.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The container service.
    pub containers: Arc<ContainerService>,
    /// The image store and what image endpoints need beside it.
    pub images: ImagesState,
    /// Host facts for `/version` and `/info`.
    pub system: Arc<SystemFacts>,
    /// The engine's event stream.
    pub events: EventBus,
    /// The builder (`POST /build`), when the daemon has one.
    pub builder: Option<Arc<berth_build::engine::Builder>>,
    /// The configuration file's reloadable settings in force (`/info` shows them).
    pub settings: config_file::SharedSettings,
}

impl AppState {
    /// Wires the services; image deletes ask `containers` which images are in use.
    pub fn new(
        containers: Arc<ContainerService>,
        images: Arc<ImageStore>,
        system: Arc<SystemFacts>,
        events: EventBus,
        busybox: Option<PathBuf>,
        registry: Arc<Distribution>,
    ) -> Self {
        let usage = container_image_usage(Arc::clone(&containers));
        Self {
            containers,
            images: ImagesState {
                store: images,
                events: events.clone(),
                usage,
                busybox,
                registry,
            },
            system,
            events,
            builder: None,
            settings: config_file::SharedSettings::default(),
        }
    }

    /// The same state with a builder for `POST /build`.
    #[must_use]
    pub fn with_builder(mut self, builder: Arc<berth_build::engine::Builder>) -> Self {
        self.builder = Some(builder);
        self
    }

    /// With the daemon's reloadable settings (the ones `SIGHUP` changes).
    #[must_use]
    pub fn with_settings(mut self, settings: config_file::SharedSettings) -> Self {
        self.settings = settings;
        self
    }
}

/// Image usage as the container service reports it.
fn container_image_usage(containers: Arc<ContainerService>) -> ImageUsage {
    Arc::new(move || {
        let containers = Arc::clone(&containers);
        Box::pin(async move { containers.image_users().await })
    })
}

/// The complete API: every route, wrapped in the shared conventions.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .merge(system::static_routes().with_state(Arc::clone(&state.system)))
        .merge(images::routes().with_state(state.images.clone()))
        .merge(
            system::routes()
                .merge(containers::routes())
                .merge(networks::routes())
                .merge(volumes::routes())
                .merge(commit::routes())
                .merge(build::routes())
                .merge(features_off::routes())
                .with_state(state),
        );
    router::with_api_conventions(routes)
}
