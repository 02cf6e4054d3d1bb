//! The API's JSON bodies as a client sends them, through the daemon's own router and services
//! (a data root of the harness's own, the busybox image bootstrapped when the host has one):
//! `POST /containers/create`, `/containers/{id}/exec`, `/volumes/create`,
//! `/networks/create` and `/commit`. No request may panic; every answer is an HTTP status.
//! The first input byte picks the endpoint, the rest is the body.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use berth_container::{ContainerService, EventBus, ServiceConfig};
use berth_daemon::{AppState, HostPaths, SystemFacts, router};
use berth_image::ImageStore;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

struct Harness {
    runtime: tokio::runtime::Runtime,
    app: Router,
    _dir: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("berth-fuzz-api-")
            .tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .expect("scratch directory");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let data_root = dir.path().join("data");
        let app = runtime.block_on(async {
            let images = Arc::new(ImageStore::open(&data_root.join("image")).expect("image store"));
            let busybox = Path::new("/bin/busybox");
            if busybox.is_file() {
                let _ = images.bootstrap_busybox("busybox:latest", busybox);
            }
            let events = EventBus::new();
            let containers = ContainerService::open(
                ServiceConfig::new(
                    data_root.clone(),
                    dir.path().join("run"),
                    PathBuf::from("/bin/false"),
                    format!("berth-fuzz-{}", std::process::id()),
                ),
                Arc::clone(&images),
                Arc::new(berth_volume::VolumeService::open(&data_root).expect("volumes")),
                events.clone(),
            )
            .await
            .expect("container service");
            let facts = SystemFacts::gather(
                &HostPaths::default(),
                "FUZZ".into(),
                &data_root,
                Path::new("/bin/false"),
            );
            let registry = Arc::new(
                berth_daemon::distribution::client::Distribution::new(
                    Arc::clone(&images),
                    berth_daemon::distribution::client::RegistryOptions::default(),
                )
                .expect("registry client"),
            );
            router(AppState::new(
                containers,
                images,
                Arc::new(facts),
                events,
                None,
                registry,
            ))
        });
        Harness {
            runtime,
            app,
            _dir: dir,
        }
    })
}

fn request(app: &Router, method: &str, uri: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let request = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request");
    let response = harness()
        .runtime
        .block_on(app.clone().oneshot(request))
        .expect("infallible");
    let status = response.status().as_u16();
    let bytes = harness()
        .runtime
        .block_on(axum::body::to_bytes(response.into_body(), 1 << 20))
        .map(|b| b.to_vec())
        .unwrap_or_default();
    (status, bytes)
}

fuzz_target!(|input: &[u8]| {
    let Some((which, body)) = input.split_first() else {
        return;
    };
    let app = &harness().app;
    let body = body.to_vec();
    let (status, answer) = match which % 5 {
        0 => request(app, "POST", "/v1.44/containers/create", body),
        1 => {
            // An existing (never started) container to exec into.
            let (_, created) = request(
                app,
                "POST",
                "/containers/create?name=fuzz-exec",
                br#"{"Image":"busybox","Cmd":["true"]}"#.to_vec(),
            );
            let _ = created;
            request(app, "POST", "/containers/fuzz-exec/exec", body)
        }
        2 => request(app, "POST", "/volumes/create", body),
        3 => request(app, "POST", "/networks/create", body),
        _ => request(app, "POST", "/commit?container=fuzz-exec", body),
    };
    assert!((100..600).contains(&status));
    if status == 201 && which % 5 == 0 {
        // Keep the data root small: remove what was made.
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&answer)
            && let Some(id) = value["Id"].as_str()
        {
            let _ = request(
                app,
                "DELETE",
                &format!("/containers/{id}?force=1"),
                Vec::new(),
            );
        }
    }
    if status == 201 && which % 5 == 2 {
        let _ = request(
            app,
            "POST",
            "/volumes/prune?filters=%7B%22all%22%3A%5B%22true%22%5D%7D",
            Vec::new(),
        );
    }
});
