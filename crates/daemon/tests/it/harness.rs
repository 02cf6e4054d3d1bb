//! A daemon on a temp-dir socket and a minimal HTTP/1.1 client for it.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use berth_container::{ContainerService, EventBus, ServiceConfig};
use berth_daemon::server::{bind_unix, serve_until};
use berth_daemon::{AppState, DaemonError, HostPaths, SystemFacts, router};
use berth_image::ImageStore;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{HeaderMap, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A served router on `<tempdir>/berth.sock`; everything goes with the temp dir.
pub struct TestServer {
    /// Kept so the socket's directory lives as long as the server.
    _dir: tempfile::TempDir,
    pub socket: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), DaemonError>>>,
}

impl TestServer {
    /// Serves `app`.
    pub fn serve(dir: tempfile::TempDir, app: Router) -> Self {
        let socket = dir.path().join("berth.sock");
        let listener = bind_unix(&socket).expect("bind the test socket");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_until(listener, app, async move {
            let _ = stopped.await;
        }));
        Self {
            _dir: dir,
            socket,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops serving and waits for the server to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server result");
        }
    }
}

/// The whole daemon (real image store and container service) in a temp dir.
pub struct TestDaemon {
    pub server: TestServer,
    pub events: EventBus,
}

/// Where the host's static busybox is, if this machine has one.
pub fn host_busybox() -> Option<PathBuf> {
    let path = PathBuf::from("/bin/busybox");
    path.is_file().then_some(path)
}

impl TestDaemon {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_root = dir.path().join("data");
        let run_root = dir.path().join("run");
        let images =
            Arc::new(ImageStore::open(&data_root.join("image")).expect("open the image store"));
        let events = EventBus::new();
        let containers = ContainerService::open(
            ServiceConfig::new(
                data_root.clone(),
                run_root,
                PathBuf::from("/bin/false"),
                format!("berth-daemon-test-{}", std::process::id()),
            ),
            Arc::clone(&images),
            Arc::new(berth_volume::VolumeService::open(&data_root).expect("open volumes")),
            events.clone(),
        )
        .await
        .expect("open the container service");
        let facts = SystemFacts::gather(
            &HostPaths::default(),
            "TEST-ENGINE".into(),
            &data_root,
            Path::new("/usr/bin/berth"),
        );
        let registry = Arc::new(
            berth_daemon::distribution::client::Distribution::new(
                Arc::clone(&images),
                berth_daemon::distribution::client::RegistryOptions::default(),
            )
            .expect("registry client"),
        );
        let builder = berth_build::engine::Builder::open(
            &berth_build::engine::BuilderConfig {
                data_root: data_root.clone(),
                context_limit: None,
            },
            Arc::clone(&images),
            Arc::clone(&containers),
        )
        .expect("open the builder");
        let state = AppState::new(
            containers,
            images,
            Arc::new(facts),
            events.clone(),
            host_busybox(),
            registry,
        )
        .with_builder(Arc::new(builder));
        Self {
            server: TestServer::serve(dir, router(state)),
            events,
        }
    }

    pub fn socket(&self) -> &Path {
        &self.server.socket
    }

    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// Sends one request on a fresh connection (upgrades allowed) and returns the response head
/// as soon as it arrives.
pub async fn send(
    socket: &Path,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Response<Incoming> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection.with_upgrades());
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "api.moby.localhost");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(body.into())).expect("request");
    sender.send_request(request).await.expect("response")
}

/// A whole response.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON lines.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect()
    }
}

/// Sends a request and reads the whole response.
pub async fn call(socket: &Path, method: &str, uri: &str, body: impl Into<Bytes>) -> Answer {
    let response = send(socket, method, uri, &[], body).await;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

/// A rootfs tarball of one file, `hello.txt`, holding `data`.
pub fn one_file_tar(data: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_700_000_000);
    header.set_cksum();
    builder
        .append_data(&mut header, "hello.txt", data)
        .expect("append");
    builder.into_inner().expect("finish tar")
}
