//! The HTTP face of the registry: routes of the distribution API (`/v2/…`), the token
//! endpoint (`/token`), and v1 search (`/v1/search`, `/v1/_ping`). Handlers parse and check
//! the request, ask the [`Store`] (on blocking threads), and shape the answer; every answer
//! carries `Docker-Distribution-API-Version: registry/2.0`, every error the spec's JSON body.
//!
//! Repository names contain `/`, so routing is by hand: the path is split at `/` and read
//! from its right-hand end (`…/blobs/uploads/<id>`, `…/manifests/<ref>`, `…/tags/list`).

mod blobs;
mod manifests;
mod search;
mod uploads;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::auth::{Access, Auth};
use super::error::RegistryError;
use super::storage::Store;
use crate::protocol::auth::parse_basic;
use crate::protocol::{
    API_VERSION, API_VERSION_HEADER, Digest, ErrorBody, ErrorCode, RepositoryName, Tag,
};

pub(crate) use uploads::UploadSlots;

/// The address a connection comes from (set by the accept loop).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    pub(crate) store: Arc<Store>,
    pub(crate) auth: Option<Auth>,
    pub(crate) read_only: bool,
    pub(crate) tls: bool,
    pub(crate) uploads: UploadSlots,
    /// Search descriptions by manifest digest.
    pub(crate) descriptions: Mutex<HashMap<Digest, String>>,
}

impl AppState {
    /// The state of a registry over `store`.
    pub fn new(store: Arc<Store>, auth: Option<Auth>, read_only: bool, tls: bool) -> Self {
        Self {
            store,
            auth,
            read_only,
            tls,
            uploads: UploadSlots::default(),
            descriptions: Mutex::new(HashMap::new()),
        }
    }
}

/// The registry's router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

/// A manifest reference: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tag(tag) => tag.fmt(f),
            Self::Digest(digest) => digest.fmt(f),
        }
    }
}

/// A parsed request path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Ping,
    Catalog,
    Token,
    Search,
    V1Ping,
    Tags(RepositoryName),
    Manifest(RepositoryName, Reference),
    Blob(RepositoryName, Digest),
    Upload(RepositoryName, Option<String>),
    Referrers(RepositoryName, Digest),
}

impl Route {
    fn parse(path: &str) -> Result<Self, RegistryError> {
        match path {
            "/v2" | "/v2/" => return Ok(Self::Ping),
            "/v2/_catalog" => return Ok(Self::Catalog),
            "/token" => return Ok(Self::Token),
            "/v1/search" => return Ok(Self::Search),
            "/v1/_ping" => return Ok(Self::V1Ping),
            _ => {}
        }
        let unknown = || RegistryError::RouteUnknown {
            path: path.to_owned(),
        };
        let rest = path.strip_prefix("/v2/").ok_or_else(unknown)?;
        let segments: Vec<String> = rest
            .split('/')
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let n = segments.len();
        let name = |end: usize| -> Result<RepositoryName, RegistryError> {
            RepositoryName::parse(&segments[..end].join("/"))
                .map_err(|source| RegistryError::NameInvalid { source })
        };
        let digest =
            |s: &str| Digest::parse(s).map_err(|source| RegistryError::DigestInvalid { source });
        let at = |i: usize| segments.get(i).map(String::as_str);
        if n >= 3 && at(n - 2) == Some("tags") && at(n - 1) == Some("list") {
            return Ok(Self::Tags(name(n - 2)?));
        }
        if n >= 4 && at(n - 3) == Some("blobs") && at(n - 2) == Some("uploads") {
            let id = Some(segments[n - 1].clone()).filter(|id| !id.is_empty());
            return Ok(Self::Upload(name(n - 3)?, id));
        }
        if n >= 3 && at(n - 2) == Some("blobs") && at(n - 1) == Some("uploads") {
            return Ok(Self::Upload(name(n - 2)?, None));
        }
        if n >= 3 && at(n - 2) == Some("blobs") {
            let name = name(n - 2)?;
            return Ok(Self::Blob(name, digest(&segments[n - 1])?));
        }
        if n >= 3 && at(n - 2) == Some("referrers") {
            let name = name(n - 2)?;
            return Ok(Self::Referrers(name, digest(&segments[n - 1])?));
        }
        if n >= 3 && at(n - 2) == Some("manifests") {
            let name = name(n - 2)?;
            let reference = &segments[n - 1];
            let reference = if reference.contains(':') {
                Reference::Digest(digest(reference)?)
            } else {
                Reference::Tag(Tag::parse(reference).map_err(|_| {
                    RegistryError::ReferenceInvalid {
                        reference: reference.clone(),
                    }
                })?)
            };
            return Ok(Self::Manifest(name, reference));
        }
        Err(unknown())
    }

    /// What the request needs of the authenticator.
    fn access(&self, method: &Method, query: &HashMap<String, String>) -> Vec<Access> {
        let repo = |name: &RepositoryName, action| Access::Repository {
            name: name.to_string(),
            action,
        };
        let write = |name: &RepositoryName| {
            if *method == Method::DELETE {
                repo(name, "delete")
            } else {
                repo(name, "push")
            }
        };
        let reading = matches!(*method, Method::GET | Method::HEAD);
        match self {
            Self::Ping => vec![Access::Authenticated],
            Self::Catalog | Self::Search => vec![Access::Catalog],
            Self::Token | Self::V1Ping => Vec::new(),
            Self::Tags(name) | Self::Referrers(name, _) => vec![repo(name, "pull")],
            Self::Manifest(name, _) | Self::Blob(name, _) if reading => vec![repo(name, "pull")],
            Self::Manifest(name, _) | Self::Blob(name, _) => vec![write(name)],
            Self::Upload(name, _) => {
                let mut access = vec![write(name)];
                if let Some(from) = query
                    .get("from")
                    .and_then(|from| RepositoryName::parse(from).ok())
                {
                    access.push(repo(&from, "pull"));
                }
                access
            }
        }
    }

    fn writes(&self, method: &Method) -> bool {
        match self {
            Self::Upload(..) => true,
            Self::Manifest(..) | Self::Blob(..) => {
                matches!(
                    *method,
                    Method::PUT | Method::DELETE | Method::POST | Method::PATCH
                )
            }
            _ => false,
        }
    }
}

async fn dispatch(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let mut response = match handle(&state, request).await {
        Ok(response) => response,
        Err(error) => {
            let status = error.http_status();
            if status >= 500 {
                tracing::error!(%method, url_path = %path, status, %error, "request failed");
            } else {
                tracing::debug!(%method, url_path = %path, status, %error, "request refused");
            }
            error.into_response()
        }
    };
    response
        .headers_mut()
        .insert(API_VERSION_HEADER, HeaderValue::from_static(API_VERSION));
    response
}

async fn handle(state: &Arc<AppState>, request: Request) -> Result<Response, RegistryError> {
    let route = Route::parse(request.uri().path())?;
    let method = request.method().clone();
    let query = query_map(request.uri().query());
    let peer = request.extensions().get::<Peer>().map(|p| p.0.ip());
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // The token endpoint and dockerd's v1 probe need nothing: they answer everyone.
    let access = route.access(&method, &query);
    if let Some(auth) = &state.auth
        && !access.is_empty()
    {
        let realm = realm(state, request.headers());
        auth.authorize(authorization.as_deref(), peer, &realm, &access)
            .await?;
    }
    if state.read_only && route.writes(&method) {
        return Err(RegistryError::ReadOnly);
    }
    match route {
        Route::Ping | Route::V1Ping => {
            only(&method, &[Method::GET, Method::HEAD])?;
            Ok(json(StatusCode::OK, &serde_json::json!({})))
        }
        Route::Catalog => {
            only(&method, &[Method::GET])?;
            manifests::catalog(state, request.uri().query().unwrap_or("")).await
        }
        Route::Search => {
            only(&method, &[Method::GET])?;
            search::search(state, &query).await
        }
        Route::Tags(name) => {
            only(&method, &[Method::GET])?;
            manifests::tags(state, name, request.uri().query().unwrap_or("")).await
        }
        Route::Referrers(name, digest) => {
            only(&method, &[Method::GET])?;
            manifests::referrers(state, name, digest, &query).await
        }
        Route::Manifest(name, reference) => match method {
            Method::GET | Method::HEAD => {
                manifests::get(
                    state,
                    name,
                    reference,
                    request.headers(),
                    method == Method::HEAD,
                )
                .await
            }
            Method::PUT => manifests::put(state, name, reference, request).await,
            Method::DELETE => manifests::delete(state, name, reference).await,
            _ => Err(not_allowed(&method)),
        },
        Route::Blob(name, digest) => match method {
            Method::GET | Method::HEAD => {
                blobs::get(
                    state,
                    name,
                    digest,
                    request.headers(),
                    method == Method::HEAD,
                )
                .await
            }
            Method::DELETE => blobs::delete(state, name, digest).await,
            _ => Err(not_allowed(&method)),
        },
        Route::Upload(name, None) => {
            only(&method, &[Method::POST])?;
            uploads::start(state, name, &query, request).await
        }
        Route::Upload(name, Some(id)) => {
            let id =
                super::storage::UploadId::parse(&id).ok_or(RegistryError::UploadUnknown { id })?;
            match method {
                Method::GET => uploads::status(state, name, id).await,
                Method::PATCH => uploads::patch(state, name, id, request).await,
                Method::PUT => uploads::finish(state, name, id, &query, request).await,
                Method::DELETE => uploads::cancel(state, name, id).await,
                _ => Err(not_allowed(&method)),
            }
        }
        Route::Token => token(state, request, peer, authorization).await,
    }
}

/// Answers the token endpoint: `GET /token?service=&scope=…` with basic credentials (or
/// none), or the OAuth2 form `POST /token` with `grant_type=password`.
async fn token(
    state: &Arc<AppState>,
    request: Request,
    peer: Option<IpAddr>,
    authorization: Option<String>,
) -> Result<Response, RegistryError> {
    let Some(auth) = &state.auth else {
        return Err(RegistryError::RouteUnknown {
            path: "/token".to_owned(),
        });
    };
    let (scopes, credentials) = match *request.method() {
        Method::GET => {
            let scopes = form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
                .filter(|(k, _)| k == "scope")
                .map(|(_, v)| v.into_owned())
                .collect::<Vec<_>>();
            (scopes, None)
        }
        Method::POST => {
            let body = read_limited(request.into_body(), 64 * 1024).await?;
            let form: HashMap<String, String> = form_urlencoded::parse(&body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            if form.get("grant_type").map(String::as_str) != Some("password") {
                return Err(RegistryError::MethodNotAllowed {
                    method: "POST /token without grant_type=password".to_owned(),
                });
            }
            let scopes = form.get("scope").cloned().into_iter().collect::<Vec<_>>();
            let credentials = Some((
                form.get("username").cloned().unwrap_or_default(),
                form.get("password").cloned().unwrap_or_default(),
            ));
            (scopes, credentials)
        }
        ref method => return Err(not_allowed(method)),
    };
    let credentials = credentials.or_else(|| authorization.as_deref().and_then(parse_basic));
    let authorization = if credentials.is_some() {
        None
    } else {
        authorization
    };
    let response = auth
        .issue_token(authorization.as_deref(), credentials, peer, &scopes)
        .await?;
    Ok(json(StatusCode::OK, &response))
}

/// The token endpoint's URL as the client reached this registry.
fn realm(state: &AppState, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    let scheme = if state.tls { "https" } else { "http" };
    format!("{scheme}://{host}/token")
}

fn only(method: &Method, allowed: &[Method]) -> Result<(), RegistryError> {
    if allowed.contains(method) {
        Ok(())
    } else {
        Err(not_allowed(method))
    }
}

fn not_allowed(method: &Method) -> RegistryError {
    RegistryError::MethodNotAllowed {
        method: method.to_string(),
    }
}

/// The query's pairs (the last of repeated keys).
fn query_map(query: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Runs store work on a blocking thread ([`berth_fs::blocking`]); a panic is an internal error.
async fn blocking<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, RegistryError> {
    berth_fs::blocking(work)
        .await
        .map_err(|_| RegistryError::Internal { what })?
}

/// Reads a whole body of at most `limit` bytes.
async fn read_limited(body: Body, limit: usize) -> Result<bytes::Bytes, RegistryError> {
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            Err(RegistryError::ManifestTooLarge { limit })
        }
        Err(error) => Err(RegistryError::RequestBody {
            source: axum::Error::new(error),
        }),
    }
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    let body = serde_json::to_vec(value).expect("answers serialize");
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// An answer with no body (and `Content-Length: 0`).
fn empty(status: StatusCode) -> Response {
    (status, [(header::CONTENT_LENGTH, "0")]).into_response()
}

fn header_value(value: impl AsRef<str>) -> HeaderValue {
    HeaderValue::from_str(value.as_ref()).expect("registry header values are visible ASCII")
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let code = self.code();
        let detail = match &self {
            Self::BlobUnknown { digest } | Self::ManifestBlobUnknown { digest } => {
                serde_json::json!({ "digest": digest })
            }
            Self::DigestMismatch { expected, actual } => {
                serde_json::json!({ "digest": expected, "actual": actual })
            }
            Self::NameUnknown { name } => serde_json::json!({ "name": name }),
            Self::ManifestUnknown { reference } => serde_json::json!({ "reference": reference }),
            _ => serde_json::Value::Null,
        };
        // Errors of the registry itself are logged in full; the client learns only that.
        let message = if code == ErrorCode::Unknown {
            code.message().to_owned()
        } else {
            self.to_string()
        };
        let mut response = json(status, &ErrorBody::single(code, message, detail));
        if let Some(challenge) = self.challenge() {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, header_value(challenge));
        }
        if let Self::TooManyRequests { retry_after } = &self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header_value(retry_after.to_string()));
        }
        response
    }
}

#[cfg(test)]
mod tests;
