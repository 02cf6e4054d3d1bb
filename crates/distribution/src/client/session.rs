//! One conversation with one registry: the endpoint that answered, the credentials, and the
//! authorization those earned (a bearer token for the operation's scopes, or basic auth),
//! reused by every request of the operation — manifests, blobs, uploads, one token for all.
//! The requests of the distribution API are methods here; pull, push and search put them
//! together.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderName, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode, Uri};

use super::auth::{Credentials, TokenAnswer, TokenCache};
use super::endpoint::{Endpoint, RegistryOptions};
use super::error::ClientError;
use super::http::{self, Body, HttpClient, host_header};
use crate::protocol::auth::{Challenge, basic_authorization};
use crate::protocol::pagination::parse_next_link;
use crate::protocol::search::SearchResults;
use crate::protocol::{
    API_VERSION_HEADER, Accept, CONTENT_DIGEST_HEADER, Digest, ErrorBody, MAX_MANIFEST_SIZE,
};

/// Error bodies read at most this much.
const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// Configs, tag lists, catalogs and search answers read at most this much.
pub(crate) const DOCUMENT_LIMIT: usize = 16 * 1024 * 1024;

/// How a registry wants requests authorized, learnt from its challenge.
#[derive(Debug, Clone)]
enum Scheme {
    /// No challenge seen (yet).
    None,
    /// `WWW-Authenticate: Basic`.
    Basic,
    /// `WWW-Authenticate: Bearer realm=…`.
    Bearer(Challenge),
}

/// A registry conversation.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) http: HttpClient,
    pub(crate) endpoint: Endpoint,
    credentials: Credentials,
    tokens: Arc<TokenCache>,
    /// `repository:team/app:pull,push`, … asked for with every token.
    scopes: Vec<String>,
    scheme: Mutex<Scheme>,
}

/// A manifest as fetched.
#[derive(Debug, Clone)]
pub(crate) struct FetchedManifest {
    pub(crate) bytes: Vec<u8>,
    pub(crate) content_type: Option<String>,
    /// The digest of the bytes.
    pub(crate) digest: Digest,
}

/// What a mount request did.
#[derive(Debug)]
pub(crate) enum Mount {
    /// The blob is now in the repository.
    Mounted,
    /// The registry started an upload instead (at this location).
    Upload(String),
}

impl Session {
    /// Opens a conversation with `domain`: the first of its endpoints that answers `GET
    /// /v2/` (any status: a `401` tells how to authorize) is used for the rest.
    pub(crate) async fn open(
        http: &HttpClient,
        options: &RegistryOptions,
        tokens: &Arc<TokenCache>,
        domain: &str,
        credentials: Credentials,
        scopes: Vec<String>,
        pull: bool,
    ) -> Result<Self, ClientError> {
        let endpoints = options.endpoints(domain, pull).await;
        Self::open_among(http, tokens, endpoints, domain, credentials, scopes).await
    }

    /// [`Session::open`] with the first of `endpoints` (of `domain`) that answers.
    pub(crate) async fn open_among(
        http: &HttpClient,
        tokens: &Arc<TokenCache>,
        endpoints: Vec<Endpoint>,
        domain: &str,
        credentials: Credentials,
        scopes: Vec<String>,
    ) -> Result<Self, ClientError> {
        let mut last = None;
        for endpoint in endpoints {
            let session = Self {
                http: http.clone(),
                endpoint,
                credentials: credentials.clone(),
                tokens: Arc::clone(tokens),
                scopes: scopes.clone(),
                scheme: Mutex::new(Scheme::None),
            };
            match session.ping().await {
                Ok(()) => return Ok(session),
                Err(error) => {
                    tracing::debug!(base = %session.endpoint.base, %error, "registry endpoint failed");
                    last = Some(error);
                }
            }
        }
        Err(last.unwrap_or_else(|| ClientError::InvalidUrl {
            url: domain.to_owned(),
            reason: "no endpoint for this registry".to_owned(),
        }))
    }

    /// A conversation with a known endpoint, without a ping (Docker Hub's v1 index).
    pub(crate) fn with_endpoint(
        http: &HttpClient,
        tokens: &Arc<TokenCache>,
        endpoint: Endpoint,
        credentials: Credentials,
        scopes: Vec<String>,
    ) -> Self {
        Self {
            http: http.clone(),
            endpoint,
            credentials,
            tokens: Arc::clone(tokens),
            scopes,
            scheme: Mutex::new(Scheme::None),
        }
    }

    /// `GET /v2/`: learns the auth scheme. Anything but a registry's answer is an error.
    async fn ping(&self) -> Result<(), ClientError> {
        let url = self.url("/v2/");
        let request = Request::get(&url)
            .header(HOST, host_of_url(&url))
            .body(http::empty())
            .map_err(|e| invalid_url(&url, &e))?;
        let response = self.http.send(request, self.endpoint.tls).await?;
        match response.status() {
            StatusCode::UNAUTHORIZED => {
                self.learn(&response);
                Ok(())
            }
            status if status.is_success() => Ok(()),
            status
                if response.headers().contains_key(API_VERSION_HEADER)
                    || status == StatusCode::NOT_FOUND && self.endpoint.mirror =>
            {
                Ok(())
            }
            _ => Err(registry_error("GET", &url, response).await),
        }
    }

    /// Remembers the scheme of a `401`'s challenge.
    fn learn(&self, response: &Response<Incoming>) {
        let scheme = response
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|value| {
                if let Some(challenge) = Challenge::parse(value) {
                    Some(Scheme::Bearer(challenge))
                } else if value.trim_start().to_ascii_lowercase().starts_with("basic") {
                    Some(Scheme::Basic)
                } else {
                    None
                }
            });
        if let Some(scheme) = scheme {
            *self.scheme() = scheme;
        }
    }

    fn scheme(&self) -> std::sync::MutexGuard<'_, Scheme> {
        self.scheme
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `<base>/<path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint.base)
    }

    /// `<base>/v2/<repository>/<rest>`.
    pub(crate) fn repo_url(&self, repository: &str, rest: &str) -> String {
        self.url(&format!("/v2/{repository}/{rest}"))
    }

    /// The `Authorization` value for requests to this registry, fetching a token if the
    /// scheme needs one and none is cached (`refresh`: the cached one was refused).
    async fn authorization(&self, refresh: bool) -> Result<Option<String>, ClientError> {
        let scheme = self.scheme().clone();
        match scheme {
            Scheme::None => Ok(None),
            Scheme::Basic => Ok(match &self.credentials {
                Credentials::Basic { user, password } => Some(basic_authorization(user, password)),
                Credentials::Token(token) => Some(format!("Bearer {token}")),
                Credentials::Anonymous | Credentials::Identity { .. } => None,
            }),
            Scheme::Bearer(challenge) => {
                if let Credentials::Token(token) = &self.credentials {
                    return Ok(Some(format!("Bearer {token}")));
                }
                let mut scopes = self.scopes.clone();
                if let Some(scope) = &challenge.scope
                    && !scopes.contains(scope)
                {
                    scopes.push(scope.clone());
                }
                let key = TokenCache::key(
                    &challenge.realm,
                    &challenge.service,
                    &scopes,
                    &self.credentials.identity(),
                );
                if refresh {
                    self.tokens.forget(&key);
                } else if let Some(token) = self.tokens.get(&key) {
                    return Ok(Some(format!("Bearer {token}")));
                }
                let answer = self.fetch_token(&challenge, &scopes).await?;
                let token = answer
                    .bearer()
                    .ok_or_else(|| ClientError::InvalidDocument {
                        what: "token answer",
                        reference: challenge.realm.clone(),
                        reason: "no token in it".to_owned(),
                    })?
                    .to_owned();
                self.tokens.put(key, token.clone(), answer.expires_in);
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Asks the token endpoint of `challenge` for `scopes`.
    async fn fetch_token(
        &self,
        challenge: &Challenge,
        scopes: &[String],
    ) -> Result<TokenAnswer, ClientError> {
        let realm = http::check_url(&challenge.realm)?;
        let request = match &self.credentials {
            Credentials::Identity { token, .. } => {
                let mut form = form_urlencoded::Serializer::new(String::new());
                form.append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", token)
                    .append_pair("service", &challenge.service)
                    .append_pair("client_id", "berth");
                if !scopes.is_empty() {
                    form.append_pair("scope", &scopes.join(" "));
                }
                Request::post(realm.to_string())
                    .header(HOST, host_header(&realm))
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(http::full(form.finish()))
            }
            credentials => {
                let mut query = form_urlencoded::Serializer::new(String::new());
                query.append_pair("service", &challenge.service);
                for scope in scopes {
                    query.append_pair("scope", scope);
                }
                if let Credentials::Basic { user, .. } = credentials {
                    query.append_pair("account", user);
                }
                let separator = if realm.query().is_some() { '&' } else { '?' };
                let url = format!("{realm}{separator}{}", query.finish());
                let mut builder = Request::get(&url).header(HOST, host_header(&realm));
                if let Credentials::Basic { user, password } = credentials {
                    builder = builder.header(AUTHORIZATION, basic_authorization(user, password));
                }
                builder.body(http::empty())
            }
        }
        .map_err(|e| invalid_url(&challenge.realm, &e))?;
        let method = request.method().to_string();
        let url = request.uri().to_string();
        let response = self.http.send(request, self.endpoint.tls).await?;
        if !response.status().is_success() {
            return Err(match registry_error(&method, &url, response).await {
                ClientError::Registry {
                    status: 403,
                    message,
                    ..
                } => ClientError::Unauthorized {
                    method,
                    url: self.url("/v2/"),
                    message,
                },
                ClientError::Unauthorized { message, .. } => ClientError::Unauthorized {
                    method: "GET".to_owned(),
                    url: self.url("/v2/"),
                    message,
                },
                other => other,
            });
        }
        let bytes = http::read_body(response.into_body(), ERROR_BODY_LIMIT)
            .await
            .map_err(|e| connect_io(&method, &url, &e))?
            .map_err(|size| ClientError::InvalidDocument {
                what: "token answer",
                reference: url.clone(),
                reason: format!("{size} bytes is too large"),
            })?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::InvalidDocument {
            what: "token answer",
            reference: url,
            reason: e.to_string(),
        })
    }

    /// Sends a request to this registry (or a URL it redirected to: no credentials go
    /// elsewhere), authorized; a `401` is answered once, with a fresh token, when `body`
    /// can make the body again.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(HeaderName, String)],
        mut body: impl FnMut() -> Option<Body>,
    ) -> Result<Response<Incoming>, ClientError> {
        let same_host = host_of_url(url) == host_of_url(&self.endpoint.base);
        let mut refresh = false;
        loop {
            let Some(payload) = body() else {
                return Err(ClientError::Unauthorized {
                    method: method.to_string(),
                    url: url.to_owned(),
                    message: "the registry refused the credentials mid-upload".to_owned(),
                });
            };
            let mut builder = Request::builder()
                .method(method.clone())
                .uri(url)
                .header(HOST, host_of_url(url));
            if same_host && let Some(value) = self.authorization(refresh).await? {
                builder = builder.header(AUTHORIZATION, value);
            }
            for (name, value) in headers {
                builder = builder.header(name, value);
            }
            let request = builder.body(payload).map_err(|e| invalid_url(url, &e))?;
            let tls = if same_host {
                self.endpoint.tls
            } else {
                http::Tls::Verify
            };
            let response = self.http.send(request, tls).await?;
            if response.status() == StatusCode::UNAUTHORIZED && same_host && !refresh {
                let before_basic = matches!(*self.scheme(), Scheme::Basic);
                self.learn(&response);
                // A bearer scheme gets a fresh token; basic auth is worth a second try only
                // if it was not sent the first time.
                let retry = match &*self.scheme() {
                    Scheme::None => false,
                    Scheme::Basic => {
                        !before_basic
                            && matches!(
                                self.credentials,
                                Credentials::Basic { .. } | Credentials::Token(_)
                            )
                    }
                    Scheme::Bearer(_) => true,
                };
                if retry {
                    refresh = true;
                    continue;
                }
            }
            return Ok(response);
        }
    }

    /// A `GET` of a small document with an `Accept` list: its bytes (at most `limit`).
    async fn get_document(
        &self,
        url: &str,
        accept: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<u8>, Option<String>, Option<String>), ClientError> {
        let headers: Vec<(HeaderName, String)> = accept
            .map(|a| vec![(ACCEPT, a.to_owned())])
            .unwrap_or_default();
        let mut url = url.to_owned();
        for _ in 0..=http::MAX_REDIRECTS {
            let response = self
                .send(Method::GET, &url, &headers, || Some(http::empty()))
                .await?;
            if response.status().is_redirection() {
                url = http::absolute_location(&url, &response, "redirect")?;
                continue;
            }
            if !response.status().is_success() {
                return Err(registry_error("GET", &url, response).await);
            }
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let content_type = header(CONTENT_TYPE.as_str());
            let digest = header(CONTENT_DIGEST_HEADER);
            if let Some(length) = header(CONTENT_LENGTH.as_str()).and_then(|l| l.parse().ok())
                && length > limit
            {
                return Err(too_large(&url, length, limit));
            }
            let bytes = http::read_body(response.into_body(), limit)
                .await
                .map_err(|e| connect_io("GET", &url, &e))?
                .map_err(|size| too_large(&url, size, limit))?;
            return Ok((bytes, content_type, digest));
        }
        Err(ClientError::InvalidUrl {
            url,
            reason: "too many redirects".to_owned(),
        })
    }

    /// A manifest by tag or digest; its digest is checked when it was asked by digest.
    pub(crate) async fn get_manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<FetchedManifest, ClientError> {
        let url = self.repo_url(repository, &format!("manifests/{reference}"));
        let (bytes, content_type, _) = self
            .get_document(&url, Some(&Accept::all().header_value()), MAX_MANIFEST_SIZE)
            .await
            .map_err(|e| match e {
                ClientError::ManifestTooLarge { size, limit, .. } => {
                    ClientError::ManifestTooLarge {
                        reference: format!("{repository}:{reference}"),
                        size,
                        limit,
                    }
                }
                other => other,
            })?;
        let digest = Digest::of(&bytes);
        if reference.contains(':') && digest.as_str() != reference {
            return Err(ClientError::DocumentDigest {
                what: "manifest",
                digest: reference.to_owned(),
                actual: digest.to_string(),
            });
        }
        Ok(FetchedManifest {
            bytes,
            content_type,
            digest,
        })
    }

    /// A small blob (a config), its digest checked.
    pub(crate) async fn get_blob_bytes(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Vec<u8>, ClientError> {
        let url = self.repo_url(repository, &format!("blobs/{digest}"));
        let (bytes, _, _) = self.get_document(&url, None, DOCUMENT_LIMIT).await?;
        let actual = Digest::of(&bytes);
        if actual.as_str() != digest {
            return Err(ClientError::DocumentDigest {
                what: "config",
                digest: digest.to_owned(),
                actual: actual.to_string(),
            });
        }
        Ok(bytes)
    }

    /// A `GET` of a blob from `offset` on (a `Range` request), following redirects: the
    /// response, with its status checked (200, or 206 from the offset asked).
    pub(crate) async fn get_blob(
        &self,
        repository: &str,
        digest: &str,
        offset: u64,
    ) -> Result<(Response<Incoming>, u64), ClientError> {
        let mut url = self.repo_url(repository, &format!("blobs/{digest}"));
        let headers: Vec<(HeaderName, String)> = if offset > 0 {
            vec![(hyper::header::RANGE, format!("bytes={offset}-"))]
        } else {
            Vec::new()
        };
        for _ in 0..=http::MAX_REDIRECTS {
            let response = self
                .send(Method::GET, &url, &headers, || Some(http::empty()))
                .await?;
            match response.status() {
                status if status.is_redirection() => {
                    url = http::absolute_location(&url, &response, "redirect")?;
                }
                StatusCode::OK => return Ok((response, 0)),
                StatusCode::PARTIAL_CONTENT => {
                    let start = response
                        .headers()
                        .get(hyper::header::CONTENT_RANGE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("bytes "))
                        .and_then(|v| v.split('-').next())
                        .and_then(|v| v.parse::<u64>().ok());
                    if start != Some(offset) {
                        return Err(ClientError::Registry {
                            status: 206,
                            code: None,
                            message: format!("a range from {offset} was answered with another"),
                        });
                    }
                    return Ok((response, offset));
                }
                _ => return Err(registry_error("GET", &url, response).await),
            }
        }
        Err(ClientError::InvalidUrl {
            url,
            reason: "too many redirects".to_owned(),
        })
    }

    /// `HEAD` of a blob: its size when the repository has it.
    pub(crate) async fn blob_exists(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Option<u64>, ClientError> {
        let url = self.repo_url(repository, &format!("blobs/{digest}"));
        let response = self
            .send(Method::HEAD, &url, &[], || Some(http::empty()))
            .await?;
        match response.status() {
            status if status.is_success() || status.is_redirection() => Ok(Some(
                response
                    .headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(registry_error("HEAD", &url, response).await),
        }
    }

    /// Asks for `digest` of repository `from` to be mounted into `repository`.
    pub(crate) async fn mount(
        &self,
        repository: &str,
        digest: &str,
        from: &str,
    ) -> Result<Mount, ClientError> {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("mount", digest)
            .append_pair("from", from)
            .finish();
        let url = self.repo_url(repository, &format!("blobs/uploads/?{query}"));
        let response = self
            .send(
                Method::POST,
                &url,
                &[(CONTENT_LENGTH, "0".to_owned())],
                || Some(http::empty()),
            )
            .await?;
        match response.status() {
            StatusCode::CREATED => Ok(Mount::Mounted),
            StatusCode::ACCEPTED => Ok(Mount::Upload(http::absolute_location(
                &url,
                &response,
                "upload answer",
            )?)),
            _ => Err(registry_error("POST", &url, response).await),
        }
    }

    /// Starts an upload session: its location.
    pub(crate) async fn start_upload(&self, repository: &str) -> Result<String, ClientError> {
        let url = self.repo_url(repository, "blobs/uploads/");
        let response = self
            .send(
                Method::POST,
                &url,
                &[(CONTENT_LENGTH, "0".to_owned())],
                || Some(http::empty()),
            )
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(registry_error("POST", &url, response).await);
        }
        http::absolute_location(&url, &response, "upload answer")
    }

    /// Sends a whole blob of known digest and size to an upload `location` (one `PUT`).
    pub(crate) async fn put_blob(
        &self,
        location: &str,
        digest: &str,
        size: u64,
        body: Body,
    ) -> Result<(), ClientError> {
        let url = with_query(location, "digest", digest);
        let mut body = Some(body);
        let response = self
            .send(
                Method::PUT,
                &url,
                &[
                    (CONTENT_TYPE, "application/octet-stream".to_owned()),
                    (CONTENT_LENGTH, size.to_string()),
                ],
                || body.take(),
            )
            .await?;
        if response.status() != StatusCode::CREATED {
            return Err(registry_error("PUT", &url, response).await);
        }
        Ok(())
    }

    /// Streams a blob of unknown digest and size to an upload `location` (one chunked
    /// `PATCH`); the location to finish it at.
    pub(crate) async fn patch_blob(
        &self,
        location: &str,
        body: Body,
    ) -> Result<String, ClientError> {
        let mut body = Some(body);
        let response = self
            .send(
                Method::PATCH,
                location,
                &[(CONTENT_TYPE, "application/octet-stream".to_owned())],
                || body.take(),
            )
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(registry_error("PATCH", location, response).await);
        }
        http::absolute_location(location, &response, "upload answer")
    }

    /// Finishes an upload whose bytes were sent: `PUT ?digest=` without body.
    pub(crate) async fn finish_upload(
        &self,
        location: &str,
        digest: &str,
    ) -> Result<(), ClientError> {
        let url = with_query(location, "digest", digest);
        let response = self
            .send(
                Method::PUT,
                &url,
                &[(CONTENT_LENGTH, "0".to_owned())],
                || Some(http::empty()),
            )
            .await?;
        if response.status() != StatusCode::CREATED {
            return Err(registry_error("PUT", &url, response).await);
        }
        Ok(())
    }

    /// Abandons an upload session (best effort).
    pub(crate) async fn cancel_upload(&self, location: &str) {
        if let Err(error) = self
            .send(Method::DELETE, location, &[], || Some(http::empty()))
            .await
        {
            tracing::debug!(%error, "cancelling an upload");
        }
    }

    /// Puts a manifest under `reference`: the digest the registry computed.
    pub(crate) async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<String, ClientError> {
        let url = self.repo_url(repository, &format!("manifests/{reference}"));
        let length = bytes.len().to_string();
        let response = self
            .send(
                Method::PUT,
                &url,
                &[
                    (CONTENT_TYPE, media_type.to_owned()),
                    (CONTENT_LENGTH, length),
                ],
                || Some(http::full(bytes.clone())),
            )
            .await?;
        if response.status() != StatusCode::CREATED {
            return Err(registry_error("PUT", &url, response).await);
        }
        let computed = Digest::of(&bytes).to_string();
        let answered = response
            .headers()
            .get(CONTENT_DIGEST_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(&computed)
            .to_owned();
        if answered != computed {
            return Err(ClientError::DocumentDigest {
                what: "pushed manifest",
                digest: computed,
                actual: answered,
            });
        }
        Ok(computed)
    }

    /// Every page of a paginated list (`tags/list`, `_catalog`), each item at `field`.
    async fn list_pages(&self, first: String, field: &str) -> Result<Vec<String>, ClientError> {
        let mut url = first;
        let mut items = Vec::new();
        for _ in 0..10_000 {
            let response = self
                .send(Method::GET, &url, &[], || Some(http::empty()))
                .await?;
            if !response.status().is_success() {
                return Err(registry_error("GET", &url, response).await);
            }
            let next = response
                .headers()
                .get(hyper::header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_next_link);
            let bytes = http::read_body(response.into_body(), DOCUMENT_LIMIT)
                .await
                .map_err(|e| connect_io("GET", &url, &e))?
                .map_err(|size| too_large(&url, size, DOCUMENT_LIMIT))?;
            let page: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| ClientError::InvalidDocument {
                    what: "list",
                    reference: url.clone(),
                    reason: e.to_string(),
                })?;
            items.extend(
                page[field]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_owned)),
            );
            match next {
                Some(next) => {
                    url = http::resolve_location(
                        &url.parse::<Uri>().map_err(|e| invalid_url(&url, &e))?,
                        &next,
                    );
                }
                None => return Ok(items),
            }
        }
        Ok(items)
    }

    /// The repository's tags.
    pub(crate) async fn tags(&self, repository: &str) -> Result<Vec<String>, ClientError> {
        self.list_pages(self.repo_url(repository, "tags/list"), "tags")
            .await
    }

    /// The registry's repositories (`_catalog`).
    pub(crate) async fn catalog(&self) -> Result<Vec<String>, ClientError> {
        self.list_pages(self.url("/v2/_catalog?n=1000"), "repositories")
            .await
    }

    /// v1 search at `<index>/v1/search`; `None` when the registry has no search.
    pub(crate) async fn search_v1(
        &self,
        index: &str,
        query: &str,
        limit: usize,
    ) -> Result<Option<SearchResults>, ClientError> {
        let encoded = form_urlencoded::Serializer::new(String::new())
            .append_pair("q", query)
            .append_pair("n", &limit.to_string())
            .finish();
        let url = format!("{index}/v1/search?{encoded}");
        let response = match self
            .send(Method::GET, &url, &[], || Some(http::empty()))
            .await
        {
            Ok(response) => response,
            Err(error) => return Err(error),
        };
        match response.status() {
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => return Ok(None),
            status if !status.is_success() => {
                return Err(registry_error("GET", &url, response).await);
            }
            _ => {}
        }
        let bytes = http::read_body(response.into_body(), DOCUMENT_LIMIT)
            .await
            .map_err(|e| connect_io("GET", &url, &e))?
            .map_err(|size| too_large(&url, size, DOCUMENT_LIMIT))?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ClientError::InvalidDocument {
                what: "search answer",
                reference: url,
                reason: e.to_string(),
            })
    }
}

/// `host[:port]` of a URL.
fn host_of_url(url: &str) -> String {
    url.parse::<Uri>()
        .map(|u| host_header(&u))
        .unwrap_or_default()
}

fn invalid_url(url: &str, error: &dyn std::fmt::Display) -> ClientError {
    ClientError::InvalidUrl {
        url: url.to_owned(),
        reason: error.to_string(),
    }
}

fn connect_io(method: &str, url: &str, error: &std::io::Error) -> ClientError {
    ClientError::Connect {
        method: method.to_owned(),
        url: url.to_owned(),
        reason: error.to_string(),
        tls: false,
    }
}

fn too_large(url: &str, size: usize, limit: usize) -> ClientError {
    ClientError::ManifestTooLarge {
        reference: url.to_owned(),
        size,
        limit,
    }
}

/// `url` with `key=value` added to its query.
fn with_query(url: &str, key: &str, value: &str) -> String {
    let pair = form_urlencoded::Serializer::new(String::new())
        .append_pair(key, value)
        .finish();
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{pair}")
}

/// An error answer as an error: the first entry of a distribution error body, `401` as
/// [`ClientError::Unauthorized`].
pub(crate) async fn registry_error(
    method: &str,
    url: &str,
    response: Response<Incoming>,
) -> ClientError {
    let status = response.status().as_u16();
    let bytes = http::read_body(response.into_body(), ERROR_BODY_LIMIT)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let entry = serde_json::from_slice::<ErrorBody>(&bytes)
        .ok()
        .and_then(|body| body.errors.into_iter().next());
    let (code, message) = match entry {
        Some(entry) => (Some(entry.code), entry.message),
        None => {
            // A token endpoint's OAuth2 error, or plain text.
            let text = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| {
                    v.get("details")
                        .or_else(|| v.get("error_description"))
                        .or_else(|| v.get("error"))
                        .and_then(|e| e.as_str().map(str::to_owned))
                })
                .unwrap_or_else(|| {
                    String::from_utf8_lossy(&bytes)
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .chars()
                        .take(200)
                        .collect()
                });
            (None, text)
        }
    };
    if status == 401 {
        let message = if message.is_empty() {
            crate::protocol::ErrorCode::Unauthorized
                .message()
                .to_owned()
        } else {
            message
        };
        return ClientError::Unauthorized {
            method: method.to_owned(),
            url: url.to_owned(),
            message,
        };
    }
    ClientError::Registry {
        status,
        code,
        message,
    }
}
