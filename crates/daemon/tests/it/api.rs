//! Request/response endpoints over the socket, against the real services.
use hyper::StatusCode;

use crate::harness::{TestDaemon, call, host_busybox, one_file_tar};

#[tokio::test]
async fn ping_version_and_info() {
    let daemon = TestDaemon::start().await;
    let socket = daemon.socket();

    let ping = call(socket, "HEAD", "/_ping", "").await;
    assert_eq!(ping.status, StatusCode::OK);
    assert_eq!(ping.headers["api-version"], "1.44");
    assert_eq!(ping.headers["swarm"], "inactive");
    assert!(ping.body.is_empty());
    let ping = call(socket, "GET", "/v1.44/_ping", "").await;
    assert_eq!(ping.text(), "OK");

    let version = call(socket, "GET", "/version", "").await;
    assert_eq!(version.status, StatusCode::OK);
    assert_eq!(version.json()["ApiVersion"], "1.44");

    let info = call(socket, "GET", "/v1.44/info", "").await;
    assert_eq!(info.status, StatusCode::OK);
    assert_eq!(info.headers["content-type"], "application/json");
    let info = info.json();
    assert_eq!(info["ID"], "TEST-ENGINE");
    assert_eq!(info["Containers"], 0);
    assert_eq!(info["Images"], 0);
    assert_eq!(info["Driver"], "overlay2");

    let df = call(socket, "GET", "/system/df", "").await.json();
    assert_eq!(df["LayersSize"], 0);
    assert!(df["Images"].as_array().is_some_and(Vec::is_empty));
    // No build cache: dockerd's nil slice.
    assert!(df["BuildCache"].is_null());

    let too_new = call(socket, "GET", "/v1.99/info", "").await;
    assert_eq!(too_new.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        too_new.json()["message"],
        "client version 1.99 is too new. Maximum supported API version is 1.44"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn container_errors_use_docker_wording_and_status() {
    let daemon = TestDaemon::start().await;
    let socket = daemon.socket();

    let list = call(socket, "GET", "/v1.44/containers/json?all=1", "").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.json(), serde_json::json!([]));

    let missing = call(socket, "GET", "/v1.44/containers/nope/json", "").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.headers["content-type"], "application/json");
    assert_eq!(missing.json()["message"], "No such container: nope");
    let missing = call(socket, "DELETE", "/containers/nope?force=1", "").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let malformed = call(socket, "POST", "/containers/create", "{\"Image\":").await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert!(
        malformed.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("EOF"))
    );

    let no_stream = call(socket, "GET", "/containers/nope/logs", "").await;
    assert_eq!(no_stream.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        no_stream.json()["message"],
        "Bad parameters: you must choose at least one stream"
    );

    let bad_condition = call(socket, "POST", "/containers/nope/wait?condition=later", "").await;
    assert_eq!(bad_condition.status, StatusCode::BAD_REQUEST);

    // Attach validates before it hijacks: a plain JSON 404, not a 101.
    let attach = crate::harness::send(
        socket,
        "POST",
        "/v1.44/containers/nope/attach?stream=1&stdout=1",
        &[("connection", "Upgrade"), ("upgrade", "tcp")],
        "",
    )
    .await;
    assert_eq!(attach.status(), StatusCode::NOT_FOUND);

    for path in ["changes", "export"] {
        let answer = call(socket, "GET", &format!("/containers/nope/{path}"), "").await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            answer.json()["message"],
            "No such container: nope",
            "{path}"
        );
    }
    let archive = call(socket, "GET", "/containers/nope/archive?path=/", "").await;
    assert_eq!(archive.status, StatusCode::NOT_FOUND);

    let unknown = call(socket, "GET", "/no/such/route", "").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json()["message"], "page not found");

    let pruned = call(socket, "POST", "/containers/prune", "").await;
    assert_eq!(pruned.status, StatusCode::OK);
    assert!(
        pruned.json()["ContainersDeleted"].is_array()
            || pruned.json()["ContainersDeleted"].is_null()
    );
    let build = call(socket, "POST", "/v1.44/build/prune?all=1", "").await;
    assert_eq!(build.text(), r#"{"CachesDeleted":[],"SpaceReclaimed":0}"#);
    daemon.stop().await;
}

#[tokio::test]
async fn pull_from_an_absent_registry_fails_plainly() {
    let daemon = TestDaemon::start().await;
    // Nothing listens on loopback port 1: refused before any stream starts, one line.
    let answer = call(
        daemon.socket(),
        "POST",
        "/v1.44/images/create?fromImage=127.0.0.1%3A1%2Fnosuchimage&tag=latest",
        "",
    )
    .await;
    assert!(answer.status.is_server_error(), "{:?}", answer.status);
    let message = answer.json()["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("http://127.0.0.1:1/v2/"), "{message}");
    assert!(!message.contains('\n'), "{message}");
    let bad = call(
        daemon.socket(),
        "POST",
        "/v1.44/images/create?fromImage=a%2F..%2Fb&tag=latest",
        "",
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    let bootstrap = call(
        daemon.socket(),
        "POST",
        "/berth/images/bootstrap?name=alpine",
        "",
    )
    .await;
    assert_eq!(bootstrap.status, StatusCode::BAD_REQUEST);
    daemon.stop().await;
}

#[tokio::test]
// One end-to-end scenario: each step builds on the state the previous ones left.
#[allow(clippy::too_many_lines)]
async fn import_tag_inspect_and_remove() {
    let daemon = TestDaemon::start().await;
    let socket = daemon.socket();
    let mut events = daemon.events.subscribe();

    let imported = call(
        socket,
        "POST",
        "/v1.44/images/create?fromSrc=-&repo=imp:v1&message=hi&changes=CMD+%5B%22sh%22%5D",
        one_file_tar(b"hello from an import\n"),
    )
    .await;
    assert_eq!(imported.status, StatusCode::OK, "{}", imported.text());
    assert_eq!(imported.headers["content-type"], "application/json");
    let lines = imported.json_lines();
    let id = lines
        .last()
        .and_then(|l| l["status"].as_str())
        .expect("status line")
        .to_owned();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");

    let inspect = call(socket, "GET", "/images/imp:v1/json", "").await;
    assert_eq!(inspect.status, StatusCode::OK);
    let inspect = inspect.json();
    assert_eq!(inspect["Id"], id.as_str());
    assert_eq!(inspect["RepoTags"], serde_json::json!(["imp:v1"]));
    assert_eq!(inspect["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(inspect["RootFS"]["Type"], "layers");
    assert_eq!(
        inspect["RootFS"]["Layers"].as_array().map(Vec::len),
        Some(1)
    );

    let tag = call(
        socket,
        "POST",
        "/images/imp:v1/tag?repo=localhost:5000/team/imp&tag=v2",
        "",
    )
    .await;
    assert_eq!(tag.status, StatusCode::CREATED, "{}", tag.text());
    let by_path = call(
        socket,
        "GET",
        "/v1.44/images/localhost:5000/team/imp:v2/json",
        "",
    )
    .await;
    assert_eq!(by_path.status, StatusCode::OK);
    assert_eq!(by_path.json()["Id"], id.as_str());

    let history = call(socket, "GET", "/images/imp:v1/history", "")
        .await
        .json();
    assert_eq!(history[0]["Id"], id.as_str());

    let listed = call(
        socket,
        "GET",
        "/images/json?filters=%7B%22reference%22%3A%7B%22imp%22%3Atrue%7D%7D",
        "",
    )
    .await
    .json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert_eq!(listed[0]["SharedSize"], -1);
    assert_eq!(listed[0]["Containers"], -1);
    let none = call(
        socket,
        "GET",
        "/images/json?filters=%7B%22dangling%22%3A%5B%22true%22%5D%7D",
        "",
    )
    .await
    .json();
    assert_eq!(none, serde_json::json!([]));

    let untag = call(socket, "DELETE", "/images/localhost:5000/team/imp:v2", "").await;
    assert_eq!(untag.status, StatusCode::OK, "{}", untag.text());
    let untag = untag.json();
    assert_eq!(untag.as_array().map(Vec::len), Some(1));
    assert!(
        untag[0]["Untagged"]
            .as_str()
            .is_some_and(|t| t.contains("team/imp:v2"))
    );

    let gone = call(socket, "DELETE", "/images/imp:v1", "").await;
    assert_eq!(gone.status, StatusCode::OK, "{}", gone.text());
    let gone = gone.json();
    assert!(
        gone.as_array()
            .is_some_and(|items| items.iter().any(|item| item["Deleted"] == id.as_str()))
    );

    let missing = call(socket, "GET", "/images/imp:v1/json", "").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        missing.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("No such image"))
    );

    let mut actions = Vec::new();
    while let Ok(event) = events.try_recv() {
        actions.push(event.action.unwrap_or_default());
    }
    assert_eq!(actions.first().map(String::as_str), Some("import"));
    assert!(actions.contains(&"tag".to_owned()));
    assert!(actions.contains(&"untag".to_owned()));
    assert!(actions.contains(&"delete".to_owned()));
    daemon.stop().await;
}

#[tokio::test]
async fn bootstrap_busybox_then_refuse_removal_while_used() {
    let Some(_) = host_busybox() else {
        println!("skipped: no /bin/busybox on this host");
        return;
    };
    let daemon = TestDaemon::start().await;
    let socket = daemon.socket();

    let bootstrap = call(
        socket,
        "POST",
        "/berth/images/bootstrap?name=busybox&tag=latest",
        "",
    )
    .await;
    assert_eq!(bootstrap.status, StatusCode::OK);
    assert_eq!(bootstrap.headers["content-type"], "application/json");
    let lines = bootstrap.json_lines();
    assert_eq!(
        lines[0]["status"],
        "Bootstrapping busybox from /bin/busybox"
    );
    let id = lines
        .iter()
        .find_map(|l| l["aux"]["ID"].as_str())
        .unwrap_or_else(|| panic!("no aux ID in {lines:?}"))
        .to_owned();

    let created = call(
        socket,
        "POST",
        "/v1.44/containers/create?name=user",
        r#"{"Image":"busybox","Cmd":["true"]}"#,
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let container = created.json();
    assert_eq!(container["Warnings"], serde_json::json!([]));

    let refused = call(socket, "DELETE", &format!("/images/{id}"), "").await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text());

    let info = call(socket, "GET", "/info", "").await.json();
    assert_eq!(info["Images"], 1);
    assert_eq!(info["Containers"], 1);
    assert_eq!(info["ContainersStopped"], 1);

    let removed = call(socket, "DELETE", "/containers/user", "").await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.text());
    let deleted = call(socket, "DELETE", "/images/busybox", "").await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text());
    daemon.stop().await;
}

#[tokio::test]
async fn run_refuses_to_steal_a_live_socket() {
    let daemon = TestDaemon::start().await;
    let root = tempfile::tempdir().expect("tempdir");
    let config = berth_daemon::DaemonConfig {
        hosts: vec![format!("unix://{}", daemon.socket().display())],
        data_root: root.path().join("data"),
        exec_root: root.path().join("run"),
        exe: "/bin/false".into(),
        log_level: None,
        ..Default::default()
    };
    let error = berth_daemon::run(config.clone())
        .await
        .expect_err("a daemon already answers there");
    assert!(matches!(
        error,
        berth_daemon::DaemonError::AlreadyRunning { .. }
    ));
    assert!(
        !config.pid_file().exists(),
        "the other daemon's pid file is not touched"
    );
    // The live daemon still answers.
    assert_eq!(
        call(daemon.socket(), "GET", "/_ping", "").await.text(),
        "OK"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn volumes_answer_with_docker_shapes_and_statuses() {
    let daemon = TestDaemon::start().await;
    let socket = daemon.socket();
    let created = call(
        socket,
        "POST",
        "/v1.44/volumes/create",
        r#"{"Name":"apivol","Driver":"local","Labels":{"x":"y"}}"#,
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let v = created.json();
    assert_eq!(v["Name"], "apivol");
    assert_eq!(v["Scope"], "local");
    assert_eq!(v["Labels"]["x"], "y");
    assert!(
        v["Mountpoint"]
            .as_str()
            .is_some_and(|m| m.ends_with("/volumes/apivol/_data"))
    );

    let list = call(socket, "GET", "/volumes", "").await.json();
    assert_eq!(list["Volumes"][0]["Name"], "apivol");
    assert!(list["Warnings"].is_null());

    let missing = call(socket, "GET", "/volumes/nope", "").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.headers["content-type"], "application/json");
    assert_eq!(missing.json()["message"], "get nope: no such volume");

    let bad = call(socket, "POST", "/volumes/create", r#"{"Name":"../x"}"#).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("includes invalid characters"))
    );
    let bad_filter = call(
        socket,
        "GET",
        "/volumes?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D",
        "",
    )
    .await;
    assert_eq!(bad_filter.status, StatusCode::BAD_REQUEST);

    let anon = call(socket, "POST", "/volumes/create", "{}").await.json();
    let pruned = call(socket, "POST", "/volumes/prune", "").await.json();
    assert_eq!(pruned["VolumesDeleted"][0], anon["Name"]);

    let removed = call(socket, "DELETE", "/volumes/apivol", "").await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let again = call(socket, "DELETE", "/volumes/apivol", "").await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let forced = call(socket, "DELETE", "/volumes/apivol?force=1", "").await;
    assert_eq!(forced.status, StatusCode::NO_CONTENT);

    let no_path = call(socket, "HEAD", "/containers/nope/archive", "").await;
    assert_eq!(no_path.status, StatusCode::BAD_REQUEST);
}
