//! The daemon's errors and the one place where an error becomes an HTTP response.
//!
//! Docker clients key their behaviour on the status code (404 makes `docker run` pull, 304 is
//! "nothing to do") and read the message from a `{"message": …}` body, but only when the
//! `Content-Type` is exactly `application/json`. [`error_response`] is the only function that
//! builds such a response; every error reaches it through [`Classify::kind`].
use std::path::PathBuf;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_container::ContainerError;
use berth_errdefs::{Classify, ErrorKind};
use berth_image::ImageError;

/// An error of the daemon: from a service, from a request, or from setting up the server.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A container service error, worded and classified by that service.
    #[error(transparent)]
    Container {
        /// The service error.
        #[from]
        source: ContainerError,
    },
    /// An image store error, worded and classified by the store.
    #[error(transparent)]
    Image {
        /// The store error.
        #[from]
        source: ImageError,
    },
    /// A network service error, worded and classified by that service.
    #[error(transparent)]
    Network {
        /// The service error.
        #[from]
        source: berth_network::NetworkError,
    },
    /// A builder error, worded and classified by the builder.
    #[error(transparent)]
    Build {
        /// The builder's error.
        #[from]
        source: berth_build::engine::BuildError,
    },
    /// A volume service error, worded and classified by that service.
    #[error(transparent)]
    Volume {
        /// The service error.
        #[from]
        source: berth_volume::VolumeError,
    },
    /// The path asked for an API version above the one berth speaks.
    #[error("client version {version} is too new. Maximum supported API version is {max}")]
    ApiVersionTooNew {
        /// The version in the path.
        version: String,
        /// berth's maximum.
        max: &'static str,
    },
    /// The path asked for an API version below the one berth accepts.
    #[error(
        "client version {version} is too old. Minimum supported API version is {min}, please upgrade your client to a newer version"
    )]
    ApiVersionTooOld {
        /// The version in the path.
        version: String,
        /// berth's minimum.
        min: &'static str,
    },
    /// No route matches the path.
    #[error("page not found")]
    RouteNotFound,
    /// A swarm endpoint: berth is never a swarm manager (dockerd's words, which clients
    /// such as docker-py's teardown match on).
    #[error(
        "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again."
    )]
    NotSwarmManager,
    /// `GET /plugins/{name}/json`: berth has no plugins.
    #[error("plugin {name:?} not found")]
    PluginNotFound {
        /// The name asked for.
        name: String,
    },
    /// A query parameter has a value that does not parse.
    #[error("invalid value for {param}: {value:?}")]
    InvalidParameter {
        /// The parameter.
        param: &'static str,
        /// What was sent.
        value: String,
    },
    /// A required query parameter is missing.
    #[error("{param} is a required parameter")]
    MissingParameter {
        /// The parameter.
        param: &'static str,
    },
    /// The query string itself does not parse.
    #[error("invalid query string: {source}")]
    InvalidQuery {
        /// The parser's reason.
        #[source]
        source: axum::extract::rejection::QueryRejection,
    },
    /// The `filters` parameter does not parse, or names a key or value the endpoint does not
    /// take.
    #[error(transparent)]
    Filter {
        /// Which, in moby's words.
        #[from]
        source: berth_api::filters::FilterError,
    },
    /// A JSON request body does not parse; the message is serde's reason, as Docker gives Go's.
    #[error("{source}")]
    InvalidBody {
        /// The JSON parser's reason.
        #[source]
        source: serde_json::Error,
    },
    /// Reading the request body failed.
    #[error("reading the request body: {source}")]
    ReadBody {
        /// The transport error.
        #[source]
        source: axum::Error,
    },
    /// `logs` without `stdout` and `stderr`.
    #[error("Bad parameters: you must choose at least one stream")]
    NoLogStream,
    /// `wait?condition=` with an unknown condition.
    #[error("invalid condition: {condition:?}")]
    InvalidWaitCondition {
        /// What was sent.
        condition: String,
    },
    /// attach or exec start without `Upgrade: tcp`: there is no connection to hijack.
    #[error("{endpoint} needs an upgraded connection (Connection: Upgrade, Upgrade: tcp)")]
    UpgradeRequired {
        /// The endpoint, for the message.
        endpoint: &'static str,
    },
    /// A registry client error (pull, push, login, search), worded and classified by the
    /// client.
    #[error(transparent)]
    Registry {
        /// The client error.
        #[from]
        source: berth_distribution::client::ClientError,
    },
    /// A registry flag of the daemon with a bad value.
    #[error("invalid registry option: {reason}")]
    InvalidRegistryFlag {
        /// Why.
        reason: String,
    },
    /// An `X-Registry-Auth` header that does not decode.
    #[error(transparent)]
    RegistryAuth {
        /// Why.
        #[from]
        source: berth_distribution::client::auth::AuthHeaderError,
    },
    /// `berth/images/bootstrap?name=` with a name berth cannot bootstrap.
    #[error(
        "cannot bootstrap {name:?}: only busybox, hello-world and debian:<suite> can be bootstrapped"
    )]
    UnknownBootstrap {
        /// The name asked for.
        name: String,
    },
    /// No busybox binary on the host to bootstrap from.
    #[error("no busybox found on this host (looked in PATH and /bin/busybox)")]
    BusyboxNotFound,
    /// An endpoint berth does not implement yet.
    #[error("{feature} is not implemented in berth yet")]
    NotImplemented {
        /// What is missing, e.g. `GET /containers/{id}/export`.
        feature: &'static str,
    },
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {source}")]
    Task {
        /// The join error.
        #[from]
        source: tokio::task::JoinError,
    },
    /// `berth daemon`'s flags do not parse (or `--help` was asked for: kind `DisplayHelp`).
    #[error("{source}")]
    Flags {
        /// clap's error, which renders its own usage.
        #[source]
        source: clap::Error,
    },
    /// `--userns-remap` names no usable user, group or subordinate ranges.
    #[error("--userns-remap: {message}")]
    UsernsRemap {
        /// What is wrong.
        message: String,
    },
    /// `--add-runtime` is not `NAME=/absolute/path`.
    #[error("invalid --add-runtime {spec:?}: expected NAME=/absolute/path")]
    InvalidRuntime {
        /// The value given.
        spec: String,
    },
    /// `--log-driver`/`--log-opt` name a driver or option Docker would refuse.
    #[error("{message}")]
    InvalidLogConfig {
        /// Docker's words.
        message: String,
    },
    /// `-H` is neither `unix://PATH` nor `tcp://HOST:PORT`.
    #[error("invalid host {host:?}: expected unix:///path or tcp://host:port")]
    InvalidHost {
        /// What was given.
        host: String,
    },
    /// Another daemon answers on the socket.
    #[error("another berth daemon is already listening on {path}")]
    AlreadyRunning {
        /// The socket.
        path: PathBuf,
    },
    /// A file operation while setting up or tearing down the daemon.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Binding the listening socket failed.
    #[error("listen on {host}: {source}")]
    Bind {
        /// The `-H` value.
        host: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server stopped with an error.
    #[error("serving the API: {source}")]
    Serve {
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file cannot be used (its own message, in Docker's words).
    #[error(transparent)]
    Config {
        /// What is wrong with it.
        #[from]
        source: crate::config_file::ConfigError,
    },
    /// Another daemon holds the data root's lock.
    #[error(
        "the data root {path} is in use by another berth daemon (pid {pid}); stop it first or choose another --data-root"
    )]
    DataRootInUse {
        /// The data root.
        path: PathBuf,
        /// The holder, as its lock file says (`unknown` when it cannot be read).
        pid: String,
    },
    /// `berth system reset`: the daemon did not stop when told to.
    #[error(
        "the berth daemon (pid {pid}) did not stop; stop it first (systemctl stop berth.socket berth.service)"
    )]
    DaemonDidNotStop {
        /// Its pid.
        pid: i32,
    },
    /// The data root's filesystem cannot hold overlay upper layers.
    #[error(
        "the data root {path} is on a filesystem without overlay support ({reason}); choose another --data-root"
    )]
    NoOverlay {
        /// The data root.
        path: PathBuf,
        /// What the check saw.
        reason: String,
    },
    /// `--group` names a group that does not exist.
    #[error("group {group:?} not found: create it (groupadd {group}) or choose another --group")]
    GroupNotFound {
        /// The group asked for.
        group: String,
    },
    /// The sockets systemd passed (`LISTEN_FDS`) cannot be used as asked.
    #[error("socket activation: {reason}")]
    Activation {
        /// Why.
        reason: String,
    },
}

impl Classify for DaemonError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Container { source } => source.kind(),
            Self::Image { source } => source.kind(),
            Self::Network { source } => source.kind(),
            Self::Volume { source } => source.kind(),
            Self::Build { source } => source.kind(),
            Self::Registry { source } => source.kind(),
            Self::RouteNotFound | Self::BusyboxNotFound | Self::PluginNotFound { .. } => {
                ErrorKind::NotFound
            }
            Self::NotSwarmManager => ErrorKind::Unavailable,
            Self::ApiVersionTooNew { .. }
            | Self::ApiVersionTooOld { .. }
            | Self::InvalidParameter { .. }
            | Self::MissingParameter { .. }
            | Self::InvalidQuery { .. }
            | Self::Filter { .. }
            | Self::InvalidBody { .. }
            | Self::ReadBody { .. }
            | Self::NoLogStream
            | Self::InvalidWaitCondition { .. }
            | Self::UpgradeRequired { .. }
            | Self::UnknownBootstrap { .. }
            | Self::RegistryAuth { .. }
            | Self::InvalidRegistryFlag { .. }
            | Self::Flags { .. }
            | Self::InvalidRuntime { .. }
            | Self::InvalidLogConfig { .. }
            | Self::UsernsRemap { .. }
            | Self::InvalidHost { .. }
            | Self::Config { .. }
            | Self::NoOverlay { .. }
            | Self::GroupNotFound { .. }
            | Self::Activation { .. } => ErrorKind::InvalidArgument,
            Self::AlreadyRunning { .. }
            | Self::DataRootInUse { .. }
            | Self::DaemonDidNotStop { .. } => ErrorKind::Conflict,
            Self::NotImplemented { .. } => ErrorKind::NotImplemented,
            Self::Task { .. } | Self::Io { .. } | Self::Bind { .. } | Self::Serve { .. } => {
                ErrorKind::Internal
            }
        }
    }
}

/// The error message a failed response carries, kept in the response's extensions so the
/// request-logging middleware can log it once, with the status.
#[derive(Debug, Clone)]
pub(crate) struct FailureMessage(pub(crate) String);

/// The one mapping from an error class to Docker's wire shape: the status from
/// [`ErrorKind::http_status`], a `{"message": …}` body with `Content-Type: application/json`
/// exactly, and no body at all for a 304.
pub fn error_response(kind: ErrorKind, message: &str) -> Response {
    let status =
        StatusCode::from_u16(kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = if status == StatusCode::NOT_MODIFIED {
        status.into_response()
    } else {
        let body = serde_json::json!({ "message": message }).to_string();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    };
    response
        .extensions_mut()
        .insert(FailureMessage(message.to_owned()));
    response
}

impl IntoResponse for DaemonError {
    fn into_response(self) -> Response {
        error_response(self.kind(), &self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;

    use super::*;

    async fn status_and_body(kind: ErrorKind) -> (u16, Option<String>, String) {
        let response = error_response(kind, "boom");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().expect("ascii").to_owned());
        let body = to_bytes(response.into_body(), 1024).await.expect("body");
        (
            status,
            content_type,
            String::from_utf8(body.to_vec()).expect("utf8"),
        )
    }

    async fn assert_json_error(kind: ErrorKind, expected: u16) {
        let (status, content_type, body) = status_and_body(kind).await;
        assert_eq!(status, expected, "{kind:?}");
        assert_eq!(content_type.as_deref(), Some("application/json"));
        assert_eq!(body, r#"{"message":"boom"}"#);
    }

    #[tokio::test]
    async fn not_found_is_404() {
        assert_json_error(ErrorKind::NotFound, 404).await;
    }

    #[tokio::test]
    async fn conflict_is_409() {
        assert_json_error(ErrorKind::Conflict, 409).await;
    }

    #[tokio::test]
    async fn invalid_argument_is_400() {
        assert_json_error(ErrorKind::InvalidArgument, 400).await;
    }

    #[tokio::test]
    async fn not_modified_is_304_without_body() {
        let (status, content_type, body) = status_and_body(ErrorKind::NotModified).await;
        assert_eq!(status, 304);
        assert_eq!(content_type, None);
        assert!(body.is_empty());
    }

    #[tokio::test]
    async fn unauthorized_is_401() {
        assert_json_error(ErrorKind::Unauthorized, 401).await;
    }

    #[tokio::test]
    async fn forbidden_is_403() {
        assert_json_error(ErrorKind::Forbidden, 403).await;
    }

    #[tokio::test]
    async fn not_implemented_is_501() {
        assert_json_error(ErrorKind::NotImplemented, 501).await;
    }

    #[tokio::test]
    async fn unavailable_is_503() {
        assert_json_error(ErrorKind::Unavailable, 503).await;
    }

    #[tokio::test]
    async fn internal_is_500() {
        assert_json_error(ErrorKind::Internal, 500).await;
    }

    #[tokio::test]
    async fn service_errors_keep_their_class_and_wording() {
        let error = DaemonError::from(ContainerError::NotFound {
            reference: "web".into(),
        });
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body = to_bytes(response.into_body(), 1024).await.expect("body");
        assert_eq!(&body[..], br#"{"message":"No such container: web"}"#);

        let error = DaemonError::from(ImageError::NotFound {
            reference: "nosuch".into(),
        });
        assert_eq!(error.into_response().status(), StatusCode::NOT_FOUND);
    }
}
