//! `save` and `load` over the socket: the archive out, back in, and errors in Docker's shape.
use hyper::StatusCode;

use crate::harness::{TestDaemon, call, one_file_tar};

#[tokio::test]
async fn save_then_load_and_errors() {
    let daemon = TestDaemon::start().await;
    let socket = daemon.socket();
    let imported = call(
        socket,
        "POST",
        "/v1.44/images/create?fromSrc=-&repo=arc:v1",
        one_file_tar(b"saved and loaded\n"),
    )
    .await;
    assert_eq!(imported.status, StatusCode::OK, "{}", imported.text());

    let saved = call(socket, "GET", "/v1.44/images/get?names=arc:v1", "").await;
    assert_eq!(saved.status, StatusCode::OK);
    assert_eq!(saved.headers["content-type"], "application/x-tar");
    let single = call(socket, "GET", "/v1.44/images/arc:v1/get", "").await;
    assert_eq!(
        single.body, saved.body,
        "both routes write the same archive"
    );
    let mut archive = tar::Archive::new(&saved.body[..]);
    let names: Vec<String> = archive
        .entries()
        .expect("tar")
        .map(|e| {
            e.expect("entry")
                .path()
                .expect("path")
                .display()
                .to_string()
        })
        .collect();
    assert!(names.contains(&"manifest.json".to_owned()), "{names:?}");

    let removed = call(socket, "DELETE", "/images/arc:v1", "").await;
    assert_eq!(removed.status, StatusCode::OK);
    let loaded = call(
        socket,
        "POST",
        "/v1.44/images/load?quiet=0",
        saved.body.clone(),
    )
    .await;
    assert_eq!(loaded.status, StatusCode::OK, "{}", loaded.text());
    assert_eq!(loaded.headers["content-type"], "application/json");
    let lines = loaded.json_lines();
    assert!(
        lines.iter().any(|l| l["status"] == "Loading layer"
            && l["progressDetail"]["total"].as_u64().is_some_and(|t| t > 0)),
        "{lines:?}"
    );
    assert_eq!(
        lines.last().expect("lines")["stream"],
        "Loaded image: arc:v1\n"
    );
    let quiet = call(socket, "POST", "/images/load?quiet=1", saved.body.clone()).await;
    let lines = quiet.json_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");

    let missing = call(socket, "GET", "/v1.44/images/get?names=nosuch", "").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["message"], "No such image: nosuch:latest");
    let garbage = call(socket, "POST", "/images/load?quiet=1", &b"{}"[..]).await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
    assert_eq!(garbage.headers["content-type"], "application/json");
    assert!(
        garbage.json()["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("invalid")),
        "{}",
        garbage.text()
    );
    daemon.stop().await;
}
