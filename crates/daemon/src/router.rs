//! Routing conventions shared by every endpoint: the optional `/v1.NN` prefix, the headers on
//! every response, the 404 for unknown paths, and logging each failed request once.
//!
//! The prefix is stripped in a middleware that wraps the whole [`Router`] (a `Router::layer`
//! runs after routing, too late to change the path), so each route is declared once, bare.
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use berth_api::{API_VERSION, BERTH_VERSION, MIN_API_VERSION};
use tower::Layer;

use crate::error::{DaemonError, FailureMessage};

/// The `Server` header: Docker's `Docker/<version> (<os>)` shape, which clients parse for the OS.
pub fn server_header() -> String {
    format!("Docker/{BERTH_VERSION}+berth (linux)")
}

/// Wraps `routes` in the API conventions; the result is what the daemon serves.
pub fn with_api_conventions(routes: Router) -> Router {
    let routes = routes.fallback(|| async { DaemonError::RouteNotFound });
    Router::new().fallback_service(axum::middleware::from_fn(api_middleware).layer(routes))
}

/// Strips the version prefix, refuses versions out of range, adds the global headers and logs
/// failures.
async fn api_middleware(mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let mut response = match strip_version(request.uri()) {
        Err(error) => error.into_response(),
        Ok(rewritten) => {
            if let Some(uri) = rewritten {
                *request.uri_mut() = uri;
            }
            next.run(request).await
        }
    };
    add_global_headers(response.headers_mut());
    let status = response.status();
    if status.is_client_error() || status.is_server_error() {
        let message = response
            .extensions()
            .get::<FailureMessage>()
            .map_or("", |m| m.0.as_str());
        if status.is_server_error() {
            tracing::error!(%method, %path, status = status.as_u16(), message, "request failed");
        } else {
            tracing::info!(%method, %path, status = status.as_u16(), message, "request failed");
        }
    }
    response
}

/// The headers moby puts on every response.
fn add_global_headers(headers: &mut HeaderMap) {
    headers.insert("api-version", HeaderValue::from_static(API_VERSION));
    headers.insert("ostype", HeaderValue::from_static("linux"));
    headers.insert("docker-experimental", HeaderValue::from_static("false"));
    if let Ok(server) = HeaderValue::from_str(&server_header()) {
        headers.insert("server", server);
    }
}

/// Compares two API versions the way moby's `versions.Compare` does (dot-separated numbers,
/// missing parts are 0), without overflow: a part is compared by its digits, so
/// `99999999999999999999.1` is simply newer than any supported version.
fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let number = |s: &str| s.trim_start_matches('0').to_owned();
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (
            number(a.get(i).copied().unwrap_or("")),
            number(b.get(i).copied().unwrap_or("")),
        );
        let order = x.len().cmp(&y.len()).then_with(|| x.cmp(&y));
        if order.is_ne() {
            return order;
        }
    }
    std::cmp::Ordering::Equal
}

/// The path without its `/v1.NN` prefix (`None` when there is none), or the negotiation error.
pub fn strip_version(uri: &Uri) -> Result<Option<Uri>, DaemonError> {
    let path = uri.path();
    let Some(after_v) = path.strip_prefix("/v") else {
        return Ok(None);
    };
    let (version, rest) = after_v.split_at(after_v.find('/').unwrap_or(after_v.len()));
    let looks_like_version = !version.is_empty()
        && version.starts_with(|c: char| c.is_ascii_digit())
        && version.chars().all(|c| c.is_ascii_digit() || c == '.');
    if !looks_like_version {
        return Ok(None);
    }
    // Every version moby's router matches (`[0-9.]+`) is checked against the range.
    if compare_versions(version, API_VERSION).is_gt() {
        return Err(DaemonError::ApiVersionTooNew {
            version: version.to_owned(),
            max: API_VERSION,
        });
    }
    if compare_versions(version, MIN_API_VERSION).is_lt() {
        return Err(DaemonError::ApiVersionTooOld {
            version: version.to_owned(),
            min: MIN_API_VERSION,
        });
    }
    let rest = if rest.is_empty() { "/" } else { rest };
    let path_and_query = match uri.query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(
        path_and_query
            .parse()
            .map_err(|_| DaemonError::RouteNotFound)?,
    );
    Uri::from_parts(parts)
        .map(Some)
        .map_err(|_| DaemonError::RouteNotFound)
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::StatusCode;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    fn rewrite(path: &str) -> Result<Option<String>, DaemonError> {
        strip_version(&path.parse().expect("uri")).map(|u| u.map(|u| u.to_string()))
    }

    #[test]
    fn version_prefix_is_stripped_with_the_query_kept() {
        assert_eq!(
            rewrite("/v1.44/containers/json?all=1").expect("ok"),
            Some("/containers/json?all=1".into())
        );
        assert_eq!(
            rewrite("/v1.24/images/localhost:5000/busybox/json").expect("ok"),
            Some("/images/localhost:5000/busybox/json".into())
        );
        assert_eq!(rewrite("/v1.41/_ping").expect("ok"), Some("/_ping".into()));
        assert_eq!(rewrite("/containers/json").expect("ok"), None);
        // Paths that merely start with `v` are not versions.
        assert_eq!(rewrite("/volumes").expect("ok"), None);
        assert_eq!(rewrite("/v/x").expect("ok"), None);
    }

    #[test]
    fn huge_versions_are_too_new_not_overflows() {
        use std::cmp::Ordering;
        assert_eq!(compare_versions("1.44", "1.44"), Ordering::Equal);
        assert_eq!(compare_versions("1.044", "1.44"), Ordering::Equal);
        assert_eq!(compare_versions("1.9", "1.44"), Ordering::Less);
        assert_eq!(compare_versions("2", "1.44"), Ordering::Greater);
        assert_eq!(compare_versions("1.44.1", "1.44"), Ordering::Greater);
        assert_eq!(
            compare_versions("99999999999999999999.1", "1.44"),
            Ordering::Greater
        );
        for v in [
            "v99999999999999999999.1",
            "v1.99999999999999999999",
            "v1.44.99",
        ] {
            let uri: Uri = format!("/{v}/version").parse().unwrap();
            let error = strip_version(&uri).unwrap_err();
            assert!(error.to_string().contains("is too new"), "{v}: {error}");
        }
    }

    #[test]
    fn versions_out_of_range_are_refused() {
        let error = rewrite("/v1.99/info").expect_err("too new");
        assert_eq!(
            error.to_string(),
            "client version 1.99 is too new. Maximum supported API version is 1.44"
        );
        let error = rewrite("/v1.12/info").expect_err("too old");
        assert!(
            error.to_string().starts_with(
                "client version 1.12 is too old. Minimum supported API version is 1.24"
            )
        );
        assert!(rewrite("/v2.0/info").is_err());
        assert!(rewrite("/v1.45/info").is_err());
    }

    async fn call(router: Router, method: &str, uri: &str) -> (StatusCode, HeaderMap, String) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .expect("request");
        let response = router.oneshot(request).await.expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = to_bytes(response.into_body(), 1 << 20).await.expect("body");
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn conventions_apply_to_every_response() {
        let app = with_api_conventions(Router::new().route("/hello", get(|| async { "hi" })));
        for uri in ["/hello", "/v1.44/hello", "/v1.30/hello"] {
            let (status, headers, body) = call(app.clone(), "GET", uri).await;
            assert_eq!(status, StatusCode::OK, "{uri}");
            assert_eq!(body, "hi");
            assert_eq!(headers["api-version"], "1.44");
            assert_eq!(headers["ostype"], "linux");
            assert_eq!(headers["docker-experimental"], "false");
            let server = headers["server"].to_str().expect("ascii");
            assert!(server.starts_with("Docker/") && server.ends_with(" (linux)"));
        }

        let (status, headers, body) = call(app.clone(), "GET", "/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(body, r#"{"message":"page not found"}"#);
        assert_eq!(headers["api-version"], "1.44");

        let (status, headers, body) = call(app, "GET", "/v1.99/hello").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(headers["content-type"], "application/json");
        assert!(body.contains("client version 1.99 is too new"));
    }
}
