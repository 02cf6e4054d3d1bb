//! The HTTP layer end to end, in process (no sockets): requests through the router into a
//! store in a temp dir.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{AppState, Peer, router};
use crate::protocol::auth::basic_authorization;
use crate::protocol::{Digest, MAX_MANIFEST_SIZE};
use crate::server::auth::{Auth, AuthOptions};
use crate::server::storage::Store;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

struct Registry {
    dir: tempfile::TempDir,
    state: Arc<AppState>,
}

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The error code of an error answer.
    fn code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
}

impl Registry {
    fn new() -> Self {
        Self::with(|_| None, false)
    }

    fn with(auth: impl FnOnce(&Store) -> Option<Auth>, read_only: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(&dir.path().join("root")).expect("open"));
        let auth = auth(&store);
        let state = Arc::new(AppState::new(store, auth, read_only, false));
        Self { dir, state }
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut request = request.body(body.into()).expect("request");
        request
            .extensions_mut()
            .insert(Peer(SocketAddr::from(([127, 0, 0, 1], 40000))));
        let response = router(self.state.clone())
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(
            headers
                .get("docker-distribution-api-version")
                .map(|v| v.to_str().unwrap_or("")),
            Some("registry/2.0"),
            "{method} {uri}"
        );
        if !status.is_success() && status != StatusCode::NOT_MODIFIED && method != "HEAD" {
            assert_eq!(
                headers
                    .get("content-type")
                    .map(|v| v.to_str().unwrap_or("")),
                Some("application/json"),
                "errors are JSON: {method} {uri}"
            );
        }
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, uri: &str) -> Reply {
        self.call("GET", uri, &[], Body::empty()).await
    }

    /// A monolithic upload.
    async fn blob(&self, repo: &str, bytes: &[u8]) -> Digest {
        let digest = Digest::of(bytes);
        let reply = self
            .call(
                "POST",
                &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
                &[],
                bytes.to_vec(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
        digest
    }

    async fn manifest(&self, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) -> Reply {
        self.call(
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("content-type", media_type)],
            bytes.to_vec(),
        )
        .await
    }

    fn blob_count(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("root/blobs/sha256"))
            .expect("ls")
            .count()
    }

    fn upload_count(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("root/uploads"))
            .expect("ls")
            .count()
    }
}

fn image(config: &Digest, layers: &[&Digest], media_type: &str) -> Vec<u8> {
    let (config_type, layer_type) = if media_type == DOCKER_MANIFEST {
        (
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        )
    } else {
        (
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        )
    };
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": config_type, "digest": config.as_str(), "size": 2},
        "layers": layers.iter().map(|d| json!({"mediaType": layer_type, "digest": d.as_str(), "size": 1})).collect::<Vec<_>>(),
    }))
    .expect("json")
}

fn list(children: &[(&Digest, &str)], media_type: &str) -> Vec<u8> {
    let child_type = if media_type == DOCKER_LIST {
        DOCKER_MANIFEST
    } else {
        OCI_MANIFEST
    };
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": children.iter().map(|(d, arch)| json!({"mediaType": child_type, "digest": d.as_str(), "size": 1, "platform": {"architecture": arch, "os": "linux"}})).collect::<Vec<_>>(),
    }))
    .expect("json")
}

#[tokio::test]
async fn ping_errors_and_routes() {
    let registry = Registry::new();
    let reply = registry.get("/v2/").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({}));
    let reply = registry.get("/v2/nosuch/tags/list").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.code(), "NAME_UNKNOWN");
    assert_eq!(
        reply.json()["errors"][0]["detail"],
        json!({"name": "nosuch"})
    );
    let digest = Digest::of(b"x");
    for bad in [
        format!("/v2/Upper/blobs/{digest}"),
        format!("/v2/a/%2e%2e/b/blobs/{digest}"),
        format!("/v2/a/../b/blobs/{digest}"),
        format!("/v2/%2e%2e/%2e%2e/etc/blobs/{digest}"),
        format!("/v2/_catalog/x/blobs/{digest}"),
        "/v2/a//b/manifests/latest".to_owned(),
        format!("/v2/{}/tags/list", "a".repeat(256)),
    ] {
        let reply = registry.get(&bad).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(reply.code(), "NAME_INVALID", "{bad}");
    }
    let reply = registry.get("/v2/a/blobs/sha256:abc").await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    let reply = registry.get("/v2/a/manifests/-bad").await;
    assert_eq!(reply.code(), "MANIFEST_INVALID");
    let reply = registry.get("/v2/a/nothing").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = registry.get("/elsewhere").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = registry.call("PATCH", "/v2/", &[], Body::empty()).await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED")
    );
    let reply = registry.get(&format!("/v2/a/blobs/{digest}")).await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UNKNOWN")
    );
    assert_eq!(registry.get("/v1/_ping").await.status, StatusCode::OK);
    assert_eq!(
        registry.get("/token").await.status,
        StatusCode::NOT_FOUND,
        "no auth, no tokens"
    );
    // Nothing was created by refused requests.
    assert!(
        std::fs::read_dir(registry.dir.path().join("root/repositories"))
            .expect("ls")
            .next()
            .is_none()
    );
}

// One scenario: each upload form builds on the blobs the previous ones stored.
#[allow(clippy::too_many_lines)]
#[tokio::test]
async fn blob_uploads() {
    let registry = Registry::new();
    // Monolithic, then GET, HEAD and ranges.
    let digest = registry.blob("a/b", b"0123456789").await;
    let reply = registry.get(&format!("/v2/a/b/blobs/{digest}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(&reply.body[..], b"0123456789");
    assert_eq!(reply.header("docker-content-digest"), digest.as_str());
    assert_eq!(reply.header("content-length"), "10");
    let reply = registry
        .call(
            "HEAD",
            &format!("/v2/a/b/blobs/{digest}"),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(
        (reply.status, reply.header("content-length")),
        (StatusCode::OK, "10")
    );
    assert!(reply.body.is_empty());
    let reply = registry
        .call(
            "GET",
            &format!("/v2/a/b/blobs/{digest}"),
            &[("range", "bytes=2-4")],
            Body::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&reply.body[..], b"234");
    assert_eq!(reply.header("content-range"), "bytes 2-4/10");
    let reply = registry
        .call(
            "GET",
            &format!("/v2/a/b/blobs/{digest}"),
            &[("range", "bytes=10-")],
            Body::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::RANGE_NOT_SATISFIABLE);

    // Chunked: POST, PATCH with Content-Range, an out-of-order chunk refused, status, PUT.
    let content = b"chunk one|chunk two|last";
    let reply = registry
        .call("POST", "/v2/a/b/blobs/uploads/", &[], Body::empty())
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(reply.header("range"), "0-0");
    let location = reply.header("location").to_owned();
    let uuid = reply.header("docker-upload-uuid").to_owned();
    assert_eq!(location, format!("/v2/a/b/blobs/uploads/{uuid}"));
    let reply = registry
        .call(
            "PATCH",
            &location,
            &[("content-range", "0-9"), ("content-length", "10")],
            content[..10].to_vec(),
        )
        .await;
    assert_eq!(
        (reply.status, reply.header("range")),
        (StatusCode::ACCEPTED, "0-9")
    );
    let reply = registry
        .call(
            "PATCH",
            &location,
            &[("content-range", "5-14"), ("content-length", "10")],
            content[5..15].to_vec(),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID")
    );
    let reply = registry
        .call(
            "PATCH",
            &location,
            &[("content-range", "10-12"), ("content-length", "10")],
            content[10..20].to_vec(),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID")
    );
    // A streamed chunk (no Content-Range).
    let reply = registry
        .call("PATCH", &location, &[], content[10..20].to_vec())
        .await;
    assert_eq!(
        (reply.status, reply.header("range")),
        (StatusCode::ACCEPTED, "0-19")
    );
    let reply = registry.get(&location).await;
    assert_eq!(
        (reply.status, reply.header("range")),
        (StatusCode::NO_CONTENT, "0-19")
    );
    let full = Digest::of(content);
    let reply = registry
        .call(
            "PUT",
            &format!("{location}?digest={full}"),
            &[],
            content[20..].to_vec(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    assert_eq!(reply.header("location"), format!("/v2/a/b/blobs/{full}"));
    assert_eq!(
        &registry.get(&format!("/v2/a/b/blobs/{full}")).await.body[..],
        content
    );
    assert_eq!(
        registry.get(&location).await.code(),
        "BLOB_UPLOAD_UNKNOWN",
        "finished"
    );

    // A wrong digest: refused, nothing visible, no session left.
    let blobs = registry.blob_count();
    let wrong = Digest::of(b"not this");
    let reply = registry
        .call(
            "POST",
            &format!("/v2/a/b/blobs/uploads/?digest={wrong}"),
            &[],
            b"these bytes".to_vec(),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    let reply = registry
        .call("POST", "/v2/a/b/blobs/uploads/", &[], Body::empty())
        .await;
    let location = reply.header("location").to_owned();
    registry
        .call("PATCH", &location, &[], b"these bytes".to_vec())
        .await;
    let reply = registry
        .call(
            "PUT",
            &format!("{location}?digest={wrong}"),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(reply.code(), "DIGEST_INVALID");
    let reply = registry.call("PUT", &location, &[], Body::empty()).await;
    assert_eq!(
        reply.code(),
        "BLOB_UPLOAD_UNKNOWN",
        "the refused session is gone"
    );
    assert_eq!(registry.blob_count(), blobs);
    assert_eq!(registry.upload_count(), 0);
    for digest in [wrong, Digest::of(b"these bytes")] {
        assert_eq!(
            registry
                .get(&format!("/v2/a/b/blobs/{digest}"))
                .await
                .status,
            StatusCode::NOT_FOUND
        );
    }
    // A malformed digest is refused before any session starts.
    let reply = registry
        .call(
            "POST",
            "/v2/a/b/blobs/uploads/?digest=sha256:bad",
            &[],
            b"x".to_vec(),
        )
        .await;
    assert_eq!(reply.code(), "DIGEST_INVALID");
    assert_eq!(registry.upload_count(), 0);
    // PUT without a digest.
    let reply = registry
        .call("POST", "/v2/a/b/blobs/uploads", &[], Body::empty())
        .await;
    let location = reply.header("location").to_owned();
    let reply = registry.call("PUT", &location, &[], Body::empty()).await;
    assert_eq!(reply.code(), "DIGEST_INVALID");
    // Another repository cannot touch the session.
    let foreign = location.replace("/v2/a/b/", "/v2/c/");
    assert_eq!(registry.get(&foreign).await.code(), "BLOB_UPLOAD_UNKNOWN");
    assert_eq!(
        registry
            .call("DELETE", &location, &[], Body::empty())
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(registry.upload_count(), 0);
    let reply = registry.get("/v2/a/b/blobs/uploads/../../../x").await;
    assert!(reply.status.is_client_error());
}

#[tokio::test]
async fn large_blobs_stream_in_chunks() {
    let registry = Registry::new();
    // Larger than several read chunks, and not a multiple of one.
    let content: Vec<u8> = (0..5 * 1024 * 1024 + 12345u32)
        .map(|i| (i * 7 % 253) as u8)
        .collect();
    let digest = registry.blob("big", &content).await;
    let reply = registry.get(&format!("/v2/big/blobs/{digest}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-length"), content.len().to_string());
    assert!(reply.body[..] == content[..], "whole blob");
    // A range across chunk boundaries, and the tail.
    let (start, end) = (2 * 1024 * 1024 - 10, 4 * 1024 * 1024 + 10);
    let range = format!("bytes={start}-{end}");
    let reply = registry
        .call(
            "GET",
            &format!("/v2/big/blobs/{digest}"),
            &[("range", &range)],
            Body::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert!(reply.body[..] == content[start..=end]);
    let reply = registry
        .call(
            "GET",
            &format!("/v2/big/blobs/{digest}"),
            &[("range", "bytes=-3")],
            Body::empty(),
        )
        .await;
    assert_eq!(&reply.body[..], &content[content.len() - 3..]);
}

#[tokio::test]
async fn upload_resumes_after_the_hash_is_lost() {
    let registry = Registry::new();
    let reply = registry
        .call("POST", "/v2/r/blobs/uploads/", &[], Body::empty())
        .await;
    let location = reply.header("location").to_owned();
    registry
        .call("PATCH", &location, &[], b"first half ".to_vec())
        .await;
    // A restart: a new server over the same store has no running hash.
    let restarted = Registry {
        state: Arc::new(AppState::new(
            registry.state.store.clone(),
            None,
            false,
            false,
        )),
        dir: registry.dir,
    };
    let reply = restarted.get(&location).await;
    assert_eq!(reply.header("range"), "0-10");
    let reply = restarted
        .call(
            "PATCH",
            &location,
            &[("content-range", "11-21")],
            b"second half".to_vec(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    let digest = Digest::of(b"first half second half");
    let reply = restarted
        .call(
            "PUT",
            &format!("{location}?digest={digest}"),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
}

#[tokio::test]
async fn cross_repository_mount() {
    let registry = Registry::new();
    let digest = registry.blob("src", b"shared layer").await;
    let reply = registry
        .call(
            "POST",
            &format!("/v2/dst/blobs/uploads/?mount={digest}&from=src"),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.header("docker-content-digest"), digest.as_str());
    assert_eq!(
        registry
            .get(&format!("/v2/dst/blobs/{digest}"))
            .await
            .status,
        StatusCode::OK
    );
    // From a repository without the blob: an ordinary session starts.
    let other = Digest::of(b"elsewhere");
    let reply = registry
        .call(
            "POST",
            &format!("/v2/dst/blobs/uploads/?mount={other}&from=src"),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert!(reply.header("location").contains("/blobs/uploads/"));
    // A blob deleted from a repository stays in the others.
    let reply = registry
        .call(
            "DELETE",
            &format!("/v2/dst/blobs/{digest}"),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(
        registry
            .get(&format!("/v2/dst/blobs/{digest}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        registry
            .get(&format!("/v2/src/blobs/{digest}"))
            .await
            .status,
        StatusCode::OK
    );
}

// One scenario: manifests put, then fetched with each Accept combination.
#[allow(clippy::too_many_lines)]
#[tokio::test]
async fn manifests_and_negotiation() {
    let registry = Registry::new();
    let config = registry.blob("app", b"{}").await;
    let layer = registry.blob("app", b"layer").await;
    let docker = image(&config, &[&layer], DOCKER_MANIFEST);
    let reply = registry
        .manifest("app", "v1", DOCKER_MANIFEST, &docker)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    let digest = Digest::of(&docker);
    assert_eq!(reply.header("docker-content-digest"), digest.as_str());
    assert_eq!(
        reply.header("location"),
        format!("/v2/app/manifests/{digest}")
    );
    // Schema 2 is served whatever the Accept.
    for (uri, accept) in [
        ("/v2/app/manifests/v1", ""),
        (&*format!("/v2/app/manifests/{digest}"), DOCKER_MANIFEST),
    ] {
        let reply = registry
            .call("GET", uri, &[("accept", accept)], Body::empty())
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}");
        assert_eq!(&reply.body[..], &docker[..]);
        assert_eq!(reply.header("content-type"), DOCKER_MANIFEST);
        assert_eq!(reply.header("docker-content-digest"), digest.as_str());
    }
    let reply = registry
        .call("HEAD", "/v2/app/manifests/v1", &[], Body::empty())
        .await;
    assert_eq!(reply.header("content-length"), docker.len().to_string());
    assert!(reply.body.is_empty());
    let etag = format!("\"{digest}\"");
    let reply = registry
        .call(
            "GET",
            "/v2/app/manifests/v1",
            &[("if-none-match", &etag)],
            Body::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_MODIFIED);

    // OCI manifests need an Accept naming them.
    let oci = image(&config, &[&layer], OCI_MANIFEST);
    assert_eq!(
        registry
            .manifest("app", "oci", OCI_MANIFEST, &oci)
            .await
            .status,
        StatusCode::CREATED
    );
    let reply = registry
        .call(
            "GET",
            "/v2/app/manifests/oci",
            &[("accept", DOCKER_MANIFEST)],
            Body::empty(),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN")
    );
    let reply = registry
        .call(
            "GET",
            "/v2/app/manifests/oci",
            &[
                ("accept", DOCKER_MANIFEST),
                ("accept", &format!("{OCI_MANIFEST};q=0.5")),
            ],
            Body::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);

    // A Docker list by tag, to a client without list support: its linux/amd64 manifest.
    let arm = registry.blob("app", b"arm layer").await;
    let arm_manifest = image(&config, &[&arm], DOCKER_MANIFEST);
    registry
        .manifest(
            "app",
            &Digest::of(&arm_manifest).to_string(),
            DOCKER_MANIFEST,
            &arm_manifest,
        )
        .await;
    let docker_list = list(
        &[(&Digest::of(&arm_manifest), "arm64"), (&digest, "amd64")],
        DOCKER_LIST,
    );
    assert_eq!(
        registry
            .manifest("app", "multi", DOCKER_LIST, &docker_list)
            .await
            .status,
        StatusCode::CREATED
    );
    let reply = registry
        .call(
            "GET",
            "/v2/app/manifests/multi",
            &[("accept", DOCKER_MANIFEST)],
            Body::empty(),
        )
        .await;
    assert_eq!(reply.header("docker-content-digest"), digest.as_str());
    let reply = registry
        .call(
            "GET",
            "/v2/app/manifests/multi",
            &[("accept", &format!("{DOCKER_MANIFEST}, {DOCKER_LIST}"))],
            Body::empty(),
        )
        .await;
    assert_eq!(reply.header("content-type"), DOCKER_LIST);
    // An OCI index without Accept: unknown.
    let oci_index = list(&[(&Digest::of(&oci), "amd64")], OCI_INDEX);
    assert_eq!(
        registry
            .manifest("app", "idx", OCI_INDEX, &oci_index)
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        registry.get("/v2/app/manifests/idx").await.code(),
        "MANIFEST_UNKNOWN"
    );
    let reply = registry
        .call(
            "GET",
            "/v2/app/manifests/idx",
            &[("accept", OCI_INDEX)],
            Body::empty(),
        )
        .await;
    assert_eq!(&reply.body[..], &oci_index[..]);

    // Refusals: nothing stored by any of them.
    let tags_before = registry.get("/v2/app/tags/list").await.json();
    let missing = Digest::of(b"missing");
    let reply = registry
        .manifest(
            "app",
            "bad",
            DOCKER_MANIFEST,
            &image(&config, &[&missing], DOCKER_MANIFEST),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN")
    );
    assert_eq!(
        reply.json()["errors"][0]["detail"]["digest"],
        missing.as_str()
    );
    let reply = registry
        .manifest(
            "app",
            "bad",
            "application/vnd.example.unknown+json",
            &docker,
        )
        .await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_INVALID")
    );
    let reply = registry
        .manifest("app", "bad", DOCKER_MANIFEST, b"{\"schemaVersion\": 2")
        .await;
    assert_eq!(reply.code(), "MANIFEST_INVALID");
    let reply = registry
        .manifest("app", &missing.to_string(), DOCKER_MANIFEST, &docker)
        .await;
    assert_eq!(
        reply.code(),
        "DIGEST_INVALID",
        "body does not match the digest in the URL"
    );
    let mut huge = image(&config, &[&layer], OCI_MANIFEST);
    huge.pop();
    let padding = format!(
        ",\"annotations\":{{\"pad\":\"{}\"}}}}",
        "x".repeat(MAX_MANIFEST_SIZE)
    );
    huge.extend_from_slice(padding.as_bytes());
    let reply = registry.manifest("app", "huge", OCI_MANIFEST, &huge).await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "MANIFEST_INVALID")
    );
    let chunked = Body::from_stream(futures_util::stream::iter(
        huge.chunks(65536)
            .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    ));
    let reply = registry
        .call(
            "PUT",
            "/v2/app/manifests/huge",
            &[("content-type", OCI_MANIFEST)],
            chunked,
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "without Content-Length too"
    );
    assert_eq!(registry.get("/v2/app/tags/list").await.json(), tags_before);

    // Deletes: a tag, then a manifest by digest (with its remaining tags).
    let reply = registry
        .call("DELETE", "/v2/app/manifests/oci", &[], Body::empty())
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(
        registry.get("/v2/app/manifests/oci").await.code(),
        "MANIFEST_UNKNOWN"
    );
    let reply = registry
        .call(
            "DELETE",
            &format!("/v2/app/manifests/{digest}"),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(
        registry.get("/v2/app/manifests/v1").await.code(),
        "MANIFEST_UNKNOWN"
    );
    let reply = registry
        .call(
            "DELETE",
            &format!("/v2/app/manifests/{digest}"),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(reply.code(), "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn tags_catalog_and_pagination() {
    let registry = Registry::new();
    for repo in ["b", "a", "c/d"] {
        let config = registry.blob(repo, b"{}").await;
        let manifest = image(&config, &[], OCI_MANIFEST);
        for tag in ["v2", "v1", "latest"] {
            assert_eq!(
                registry
                    .manifest(repo, tag, OCI_MANIFEST, &manifest)
                    .await
                    .status,
                StatusCode::CREATED
            );
        }
    }
    let reply = registry.get("/v2/a/tags/list").await;
    assert_eq!(
        reply.json(),
        json!({"name": "a", "tags": ["latest", "v1", "v2"]})
    );
    assert_eq!(reply.header("link"), "");
    let reply = registry.get("/v2/c/d/tags/list?n=2").await;
    assert_eq!(reply.json()["tags"], json!(["latest", "v1"]));
    assert_eq!(
        reply.header("link"),
        "</v2/c/d/tags/list?last=v1&n=2>; rel=\"next\""
    );
    let reply = registry.get("/v2/c/d/tags/list?n=2&last=v1").await;
    assert_eq!(reply.json()["tags"], json!(["v2"]));
    assert_eq!(reply.header("link"), "");
    let reply = registry.get("/v2/_catalog").await;
    assert_eq!(reply.json(), json!({"repositories": ["a", "b", "c/d"]}));
    let reply = registry.get("/v2/_catalog?n=1").await;
    assert_eq!(reply.json(), json!({"repositories": ["a"]}));
    assert_eq!(
        reply.header("link"),
        "</v2/_catalog?last=a&n=1>; rel=\"next\""
    );
    let reply = registry.get("/v2/_catalog?n=5&last=a").await;
    assert_eq!(reply.json(), json!({"repositories": ["b", "c/d"]}));
    let reply = registry.get("/v2/_catalog?n=x").await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID")
    );
}

#[tokio::test]
async fn referrers_api() {
    let registry = Registry::new();
    let config = registry.blob("app", b"{}").await;
    let subject_bytes = image(&config, &[], OCI_MANIFEST);
    let subject = Digest::of(&subject_bytes);
    registry
        .manifest("app", "v1", OCI_MANIFEST, &subject_bytes)
        .await;
    let empty = registry.blob("app", b"{}").await;
    let mut referrers = Vec::new();
    for (artifact_type, note) in [
        ("application/vnd.example.sig", "sig"),
        ("application/vnd.example.sbom", "sbom"),
    ] {
        let bytes = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.as_str(), "size": 2},
            "layers": [],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject.as_str(), "size": subject_bytes.len()},
            "annotations": {"note": note},
        }))
        .expect("json");
        let digest = Digest::of(&bytes);
        let reply = registry
            .manifest("app", &digest.to_string(), OCI_MANIFEST, &bytes)
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
        assert_eq!(reply.header("oci-subject"), subject.as_str());
        referrers.push((digest, bytes.len()));
    }
    let reply = registry.get(&format!("/v2/app/referrers/{subject}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), OCI_INDEX);
    let index = reply.json();
    assert_eq!(index["mediaType"], OCI_INDEX);
    assert_eq!(index["manifests"].as_array().map(Vec::len), Some(2));
    let reply = registry
        .get(&format!(
            "/v2/app/referrers/{subject}?artifactType=application/vnd.example.sbom"
        ))
        .await;
    assert_eq!(reply.header("oci-filters-applied"), "artifactType");
    let manifests = reply.json()["manifests"].clone();
    assert_eq!(
        manifests,
        json!([{"mediaType": OCI_MANIFEST, "digest": referrers[1].0.as_str(), "size": referrers[1].1,
            "artifactType": "application/vnd.example.sbom", "annotations": {"note": "sbom"}}])
    );
    let none = registry
        .get(&format!("/v2/app/referrers/{}", Digest::of(b"nothing")))
        .await;
    assert_eq!(
        (none.status, none.json()["manifests"].clone()),
        (StatusCode::OK, json!([]))
    );
}

#[tokio::test]
async fn read_only() {
    let registry = Registry::with(|_| None, true);
    assert_eq!(registry.get("/v2/").await.status, StatusCode::OK);
    let reply = registry
        .call("POST", "/v2/a/blobs/uploads/", &[], Body::empty())
        .await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED")
    );
    let reply = registry.manifest("a", "v1", OCI_MANIFEST, b"{}").await;
    assert_eq!(reply.code(), "UNSUPPORTED");
    assert_eq!(registry.upload_count(), 0);
}

fn with_users(anonymous_pull: bool) -> impl FnOnce(&Store) -> Option<Auth> {
    move |store: &Store| {
        let path = store.root().join("../htpasswd");
        let hash = bcrypt::hash("s3cret", 4).expect("hash");
        std::fs::write(&path, format!("alice:{hash}\n")).expect("write");
        Some(
            Auth::load(
                &path,
                store.token_key().expect("key"),
                AuthOptions {
                    anonymous_pull,
                    service: "berth-registry".into(),
                    token_ttl: Duration::from_secs(60),
                },
            )
            .expect("auth"),
        )
    }
}

// One scenario: a login, then each scope checked against the token it got.
#[allow(clippy::too_many_lines)]
#[tokio::test]
async fn auth_challenge_token_and_scopes() {
    let registry = Registry::with(with_users(false), false);
    let reply = registry
        .call("GET", "/v2/", &[("host", "127.0.0.1:5000")], Body::empty())
        .await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
    );
    assert_eq!(
        reply.header("www-authenticate"),
        "Bearer realm=\"http://127.0.0.1:5000/token\",service=\"berth-registry\""
    );
    let reply = registry
        .call("POST", "/v2/a/blobs/uploads/", &[], Body::empty())
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(
        reply
            .header("www-authenticate")
            .contains("scope=\"repository:a:pull,push\"")
    );
    assert_eq!(registry.upload_count(), 0, "refused writes leave nothing");
    // Wrong password at the token endpoint.
    let wrong = basic_authorization("alice", "nope");
    let reply = registry
        .call(
            "GET",
            "/token?service=berth-registry&scope=repository:a:push",
            &[("authorization", &wrong)],
            Body::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // The docker flow: a token for the scope, then requests with it.
    let good = basic_authorization("alice", "s3cret");
    let reply = registry
        .call(
            "GET",
            "/token?service=berth-registry&scope=repository:a:pull,push&scope=repository:b:pull",
            &[("authorization", &good)],
            Body::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let token = reply.json()["token"].as_str().expect("token").to_owned();
    assert_eq!(reply.json()["access_token"], token.as_str());
    assert_eq!(reply.json()["expires_in"], 60);
    let bearer = format!("Bearer {token}");
    assert_eq!(
        registry
            .call("GET", "/v2/", &[("authorization", &bearer)], Body::empty())
            .await
            .status,
        StatusCode::OK
    );
    let digest = Digest::of(b"data");
    let reply = registry
        .call(
            "POST",
            &format!("/v2/a/blobs/uploads/?digest={digest}"),
            &[("authorization", &bearer)],
            b"data".to_vec(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    // Outside the token's scope: 401 insufficient_scope, DENIED.
    let reply = registry
        .call(
            "POST",
            &format!("/v2/b/blobs/uploads/?digest={digest}"),
            &[("authorization", &bearer)],
            b"data".to_vec(),
        )
        .await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (StatusCode::UNAUTHORIZED, "DENIED")
    );
    assert!(
        reply
            .header("www-authenticate")
            .contains("error=\"insufficient_scope\"")
    );
    // Mounting from a repository needs pull there too.
    let reply = registry
        .call(
            "POST",
            &format!("/v2/a/blobs/uploads/?mount={digest}&from=c"),
            &[("authorization", &bearer)],
            Body::empty(),
        )
        .await;
    assert_eq!(reply.code(), "DENIED");
    // Basic credentials work directly; the OAuth2 password form too.
    let reply = registry
        .call(
            "GET",
            &format!("/v2/a/blobs/{digest}"),
            &[("authorization", &good)],
            Body::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = registry
        .call(
            "POST",
            "/token",
            &[("content-type", "application/x-www-form-urlencoded")],
            "grant_type=password&username=alice&password=s3cret&service=berth-registry&scope=registry:catalog:*",
        )
        .await;
    let token = reply.json()["token"].as_str().expect("token").to_owned();
    let reply = registry
        .call(
            "GET",
            "/v2/_catalog",
            &[("authorization", &format!("Bearer {token}"))],
            Body::empty(),
        )
        .await;
    assert_eq!(reply.json(), json!({"repositories": []}));
    // A pull without credentials is refused without --anonymous-pull.
    assert_eq!(
        registry.get(&format!("/v2/a/blobs/{digest}")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        registry.get("/v1/search?q=a").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn anonymous_pull_and_failed_login_limit() {
    let registry = Registry::with(with_users(true), false);
    let good = basic_authorization("alice", "s3cret");
    let digest = Digest::of(b"public");
    let reply = registry
        .call(
            "POST",
            &format!("/v2/pub/blobs/uploads/?digest={digest}"),
            &[("authorization", &good)],
            b"public".to_vec(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(
        registry
            .get(&format!("/v2/pub/blobs/{digest}"))
            .await
            .status,
        StatusCode::OK
    );
    let reply = registry
        .call("POST", "/v2/pub/blobs/uploads/", &[], Body::empty())
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // An anonymous token carries pull only.
    let reply = registry.get("/token?scope=repository:pub:pull,push").await;
    let token = reply.json()["token"].as_str().expect("token").to_owned();
    let bearer = format!("Bearer {token}");
    let reply = registry
        .call(
            "GET",
            &format!("/v2/pub/blobs/{digest}"),
            &[("authorization", &bearer)],
            Body::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = registry
        .call(
            "POST",
            "/v2/pub/blobs/uploads/",
            &[("authorization", &bearer)],
            Body::empty(),
        )
        .await;
    assert_eq!(reply.code(), "DENIED");
    // Repeated wrong passwords: 429 (even for the right one) while the window lasts.
    let wrong = basic_authorization("alice", "guess");
    for _ in 0..crate::server::auth::MAX_FAILURES {
        assert_eq!(
            registry
                .call("GET", "/token", &[("authorization", &wrong)], Body::empty())
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }
    let reply = registry
        .call("GET", "/token", &[("authorization", &good)], Body::empty())
        .await;
    assert_eq!(
        (reply.status, reply.code().as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS")
    );
    assert!(!reply.header("retry-after").is_empty());
}

#[tokio::test]
async fn v1_search() {
    let registry = Registry::new();
    let described = registry
        .blob("team/web", br#"{"config":{"Labels":{"org.opencontainers.image.description":"A tiny Web Server"}}}"#)
        .await;
    let plain = registry.blob("busybox", b"{}").await;
    let other = registry.blob("tools/busy-box", b"{}").await;
    registry
        .manifest(
            "team/web",
            "latest",
            OCI_MANIFEST,
            &image(&described, &[], OCI_MANIFEST),
        )
        .await;
    registry
        .manifest(
            "busybox",
            "1.36",
            OCI_MANIFEST,
            &image(&plain, &[], OCI_MANIFEST),
        )
        .await;
    registry
        .manifest(
            "tools/busy-box",
            "v1",
            DOCKER_MANIFEST,
            &image(&other, &[], DOCKER_MANIFEST),
        )
        .await;
    let reply = registry.get("/v1/search?q=busy&n=25").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!({"num_results": 2, "query": "busy", "page": 1, "num_pages": 1, "page_size": 25, "results": [
            {"name": "busybox", "description": "", "star_count": 0, "is_official": false, "is_automated": false},
            {"name": "tools/busy-box", "description": "", "star_count": 0, "is_official": false, "is_automated": false},
        ]})
    );
    // Descriptions come from the config label, and match too.
    let reply = registry.get("/v1/search?q=web+server").await;
    assert_eq!(reply.json()["results"][0]["name"], "team/web");
    assert_eq!(
        reply.json()["results"][0]["description"],
        "A tiny Web Server"
    );
    // Pages.
    let reply = registry.get("/v1/search?q=&n=2&page=2").await;
    let body = reply.json();
    assert_eq!(
        (body["num_results"].clone(), body["num_pages"].clone()),
        (json!(3), json!(2))
    );
    assert_eq!(
        body["results"],
        json!([{"name": "tools/busy-box", "description": "", "star_count": 0, "is_official": false, "is_automated": false}])
    );
    assert_eq!(
        registry.get("/v1/search?q=nomatch").await.json()["results"],
        json!([])
    );
}
