//! The registry client: `pull`, `push`, `login` and `search` against any registry of the OCI
//! distribution spec 1.1 or Docker's registry API v2 (`berth registry serve`, distribution,
//! Docker Hub…), and berth's one HTTP client ([`http`]), which `import URL` uses too.
//!
//! Written on hyper rather than on a registry crate (`oci-client` builds on reqwest and
//! buffers or hides what berth needs to control): each layer's bytes are handed to the image
//! store as they arrive, so a layer is verified, kept and unpacked in one pass
//! ([`berth_image::ImageStore::stage_pulled_layer`]); a dropped connection resumes with a
//! `Range` request and transient failures retry with backoff, invisibly to the unpacking;
//! progress is reported per layer in Docker's jsonmessage shape; and every request shares the
//! daemon's pooled connections.
//!
//! - [`endpoint`]: secure and insecure registries, mirrors, the daemon's registry options;
//! - [`auth`]: `X-Registry-Auth` credentials, bearer tokens and their cache;
//! - `session`: one conversation with a registry (authorization, the API's requests);
//! - `pull`, `push`, `search`, `login`: the operations, as methods of [`Distribution`].

pub mod auth;
pub mod endpoint;
pub mod error;
pub mod http;
mod inspect;
mod login;
mod progress;
mod pull;
mod push;
mod search;
mod session;

use std::sync::Arc;

use berth_image::{ImageStore, Reference};

pub use auth::{AuthConfig, Credentials};
pub use endpoint::{Insecure, RegistryOptions};
pub use error::ClientError;
pub use http::{Download, HttpClient};
pub use inspect::DistributionInspect;
pub use login::{LoginStatus, auth_for_reference, config_key, login_registry};
pub use progress::Progress;
pub use pull::{PreparedPull, PullRequest, PullSummary};
pub use push::{PushRequest, PushSummary};
pub use search::{SearchFilters, SearchRequest};

use self::auth::TokenCache;
use self::session::Session;
use crate::protocol::auth::Scope;

/// The daemon's registry client: its options, the HTTP client, cached tokens, and the image
/// store pulls go into and pushes come from.
#[derive(Debug)]
pub struct Distribution {
    http: HttpClient,
    options: RegistryOptions,
    tokens: Arc<TokenCache>,
    images: Arc<ImageStore>,
}

impl Distribution {
    /// The client of a daemon with these options, over its image store.
    pub fn new(images: Arc<ImageStore>, options: RegistryOptions) -> Result<Self, ClientError> {
        let http = HttpClient::new(options.certs_dir.as_deref())?;
        Ok(Self {
            http,
            options,
            tokens: Arc::new(TokenCache::default()),
            images,
        })
    }

    /// The HTTP client (`import URL` fetches with it).
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The options.
    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    /// A conversation with the registry of `name` about its repository, with `actions`
    /// (`pull`, `push`) on it and `pull` on `also` (mount sources).
    async fn session(
        &self,
        name: &Reference,
        actions: &[&str],
        also: &[String],
        auth: &AuthConfig,
    ) -> Result<Session, ClientError> {
        let endpoints = self
            .options
            .endpoints(name.domain(), !actions.contains(&"push"))
            .await;
        self.session_among(name, actions, also, auth, endpoints)
            .await
    }

    /// [`Distribution::session`] with the first of `endpoints` that answers.
    async fn session_among(
        &self,
        name: &Reference,
        actions: &[&str],
        also: &[String],
        auth: &AuthConfig,
        endpoints: Vec<endpoint::Endpoint>,
    ) -> Result<Session, ClientError> {
        let mut scopes = vec![Scope::repository(name.path(), actions).to_string()];
        scopes.extend(
            also.iter()
                .map(|path| Scope::repository(path, &["pull"]).to_string()),
        );
        Session::open_among(
            &self.http,
            &self.tokens,
            endpoints,
            name.domain(),
            auth.credentials(),
            scopes,
        )
        .await
    }
}

/// Parses a reference as users type it (`busybox`, `127.0.0.1:5000/a/b:1`, `x@sha256:…`).
pub fn parse_reference(reference: &str) -> Result<Reference, ClientError> {
    Reference::parse(reference).map_err(|source| ClientError::InvalidReference {
        reference: reference.to_owned(),
        source,
    })
}
