//! The lifecycle through the [`Monitor`] seam, without root: a fake monitor answers in memory
//! (it records each request as a typed [`Call`], and "exits" a container by writing the exit
//! line to its `Wait` conversation), over a real image store, volume service and record store
//! in a temp dir.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_api::models::{ContainerCreateBody, HostConfig, RestartPolicy, RestartPolicyNameEnum};
use berth_errdefs::{Classify, ErrorKind};
use berth_monitor::protocol::{ExitStatus, Ready, Request, Response};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::{ContainerService, ServiceConfig};
use crate::monitor::{BoxFuture, Conversation, Monitor};
use crate::store::Status;
use crate::{ContainerError, EventBus};

/// What the service asked of the fake monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Spawn,
    Wait,
    Start,
    Kill(i32),
    Other(String),
}

/// How the fake answers.
#[derive(Debug, Default)]
struct Script {
    /// `spawn` answers this error (the runtime could not create the container).
    spawn_error: Option<String>,
    /// `Start` answers this error (the exec failed) and the process exits with 127.
    start_error: Option<String>,
}

#[derive(Debug, Default)]
struct FakeMonitor {
    calls: Mutex<Vec<Call>>,
    /// The monitor's end of each open `Wait` conversation, by socket.
    waits: Mutex<HashMap<PathBuf, UnixStream>>,
    script: Mutex<Script>,
}

/// A connected pair: the service's side as a conversation, and the monitor's end.
fn conversation() -> (Conversation, UnixStream) {
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    let (rd, writer) = ours.into_split();
    let conv = Conversation {
        reader: BufReader::new(rd),
        writer,
    };
    (conv, theirs)
}

impl FakeMonitor {
    fn record(&self, call: Call) {
        self.calls.lock().expect("calls").push(call);
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls").clone()
    }

    /// The container behind `socket` exits with `code`: its Wait conversation gets the line.
    async fn exit(&self, socket: &Path, code: i32) {
        let stream = self.waits.lock().expect("waits").remove(socket);
        let Some(mut stream) = stream else {
            panic!("no Wait conversation open on {}", socket.display());
        };
        let exit = Response::Exited(ExitStatus {
            exit_code: code,
            finished_at: crate::store::now_rfc3339(),
            oom_killed: false,
            error: None,
        });
        let mut line = serde_json::to_vec(&exit).expect("encode");
        line.push(b'\n');
        stream.write_all(&line).await.expect("write exit line");
    }

    async fn answer(&self, socket: &Path, req: &Request) -> Response {
        match req {
            Request::Start => {
                self.record(Call::Start);
                let error = self.script.lock().expect("script").start_error.clone();
                match error {
                    Some(message) => {
                        self.exit(socket, 127).await;
                        Response::Error {
                            message,
                            exit_code: Some(127),
                        }
                    }
                    None => Response::Started {
                        pid: 4242,
                        started_at: crate::store::now_rfc3339(),
                    },
                }
            }
            Request::Kill { signal } => {
                self.record(Call::Kill(*signal));
                let running = self.waits.lock().expect("waits").contains_key(socket);
                if running {
                    self.exit(socket, 128 + signal).await;
                }
                Response::Ok
            }
            other => {
                self.record(Call::Other(format!("{other:?}")));
                Response::Ok
            }
        }
    }
}

impl Monitor for FakeMonitor {
    fn spawn<'a>(&'a self, run_dir: &'a Path) -> BoxFuture<'a, Result<Ready, ContainerError>> {
        Box::pin(async move {
            self.record(Call::Spawn);
            assert!(
                run_dir.join(berth_monitor::protocol::SPEC_FILE).is_file(),
                "the spec is written before the monitor starts"
            );
            let error = self.script.lock().expect("script").spawn_error.clone();
            Ok(Ready {
                pid: if error.is_some() { 0 } else { 4242 },
                error,
            })
        })
    }

    fn call<'a>(
        &'a self,
        socket: &'a Path,
        req: &'a Request,
    ) -> BoxFuture<'a, Result<(Response, Conversation), ContainerError>> {
        Box::pin(async move {
            let resp = self.answer(socket, req).await;
            Ok((resp, conversation().0))
        })
    }

    fn begin_wait<'a>(
        &'a self,
        socket: &'a Path,
    ) -> BoxFuture<'a, Result<Conversation, ContainerError>> {
        Box::pin(async move {
            self.record(Call::Wait);
            let (conv, theirs) = conversation();
            self.waits
                .lock()
                .expect("waits")
                .insert(socket.to_path_buf(), theirs);
            Ok(conv)
        })
    }
}

struct World {
    _dir: tempfile::TempDir,
    svc: Arc<ContainerService>,
    monitor: Arc<FakeMonitor>,
}

/// An image with `/etc/passwd` and `/bin/true` (a file: nothing runs it), as `test:latest`.
fn image_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, body) in [
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
        ("etc/group", "root:x:0:\n"),
        ("bin/true", "#!/bin/sh\n"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o755);
        h.set_cksum();
        b.append_data(&mut h, path, body.as_bytes())
            .expect("tar entry");
    }
    b.into_inner().expect("tar")
}

async fn world() -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_root = dir.path().join("data");
    let images = Arc::new(berth_image::ImageStore::open(&data_root.join("image")).expect("images"));
    images
        .import(&mut &image_tar()[..], Some("test:latest"), &[], None)
        .expect("import");
    let volumes = Arc::new(berth_volume::VolumeService::open(&data_root).expect("volumes"));
    let config = ServiceConfig::new(
        data_root,
        dir.path().join("run"),
        PathBuf::from("/nonexistent/berth"),
        "/berth-unit".into(),
    );
    let monitor = Arc::new(FakeMonitor::default());
    let svc =
        ContainerService::open_with(config, images, volumes, EventBus::new(), monitor.clone())
            .await
            .expect("open");
    World {
        _dir: dir,
        svc,
        monitor,
    }
}

fn body(host_config: HostConfig) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some("test".into()),
        cmd: Some(vec!["/bin/true".into()]),
        host_config: Some(host_config),
        ..Default::default()
    }
}

fn restart(name: RestartPolicyNameEnum, max: i64) -> HostConfig {
    HostConfig {
        restart_policy: Some(RestartPolicy {
            name: Some(name),
            maximum_retry_count: Some(max),
        }),
        ..Default::default()
    }
}

impl World {
    async fn create(&self, name: &str, hc: HostConfig) -> String {
        self.svc
            .create(Some(name.into()), body(hc))
            .await
            .expect("create")
            .id
    }

    async fn status(&self, id: &str) -> (Status, i64, i64) {
        let entry = self.svc.lookup(id).expect("lookup");
        let rec = entry.rec.lock().await;
        (rec.state.status, rec.state.exit_code, rec.restart_count)
    }

    fn socket(&self, id: &str) -> PathBuf {
        self.svc.lookup(id).expect("lookup").paths.socket()
    }

    /// Waits (bounded) until the container's lifecycle satisfies `pred`.
    async fn until(&self, id: &str, what: &str, pred: impl Fn(&crate::life::Life) -> bool) {
        let mut rx = self.svc.lookup(id).expect("lookup").life.subscribe();
        tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|l| pred(l)))
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .expect("life channel");
    }
}

#[tokio::test]
async fn create_start_stop_remove() {
    let w = world().await;
    let id = w.create("web", HostConfig::default()).await;
    assert_eq!(w.status(&id).await.0, Status::Created);
    let record = w.svc.lookup(&id).expect("lookup").paths.record();
    assert!(record.is_file(), "create writes the record");

    w.svc.start("web").await.expect("start");
    assert_eq!(w.status(&id).await.0, Status::Running);
    assert_eq!(w.monitor.calls(), [Call::Spawn, Call::Wait, Call::Start]);
    let on_disk: crate::store::Record =
        serde_json::from_slice(&std::fs::read(&record).expect("read")).expect("decode");
    assert_eq!(
        (on_disk.state.status, on_disk.state.pid),
        (Status::Running, 4242)
    );
    let err = w.svc.start("web").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotModified);

    let err = w.svc.remove("web", false, false).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.to_string().contains("container is running"), "{err}");

    w.svc.stop("web", None, Some(5)).await.expect("stop");
    let (status, code, _) = w.status(&id).await;
    assert_eq!((status, code), (Status::Exited, 128 + libc::SIGTERM as i64));
    assert_eq!(w.monitor.calls().last(), Some(&Call::Kill(libc::SIGTERM)));
    let run_dir = w.svc.lookup(&id).expect("lookup").paths.run_dir.clone();
    assert!(
        !run_dir.exists(),
        "the run dir goes once the exit is recorded"
    );
    let err = w.svc.stop("web", None, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotModified);

    let data_dir = w.svc.lookup(&id).expect("lookup").paths.data_dir.clone();
    w.svc.remove("web", false, false).await.expect("rm");
    assert!(!data_dir.exists());
    assert_eq!(
        w.svc.inspect("web", false).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn force_remove_kills_a_running_container() {
    let w = world().await;
    let id = w.create("web", HostConfig::default()).await;
    w.svc.start(&id).await.expect("start");
    w.svc.remove(&id, true, false).await.expect("rm -f");
    assert!(w.monitor.calls().contains(&Call::Kill(libc::SIGKILL)));
    assert!(w.svc.lookup(&id).is_err());
}

#[tokio::test]
async fn always_restarts_until_stopped() {
    let w = world().await;
    let id = w
        .create("svc", restart(RestartPolicyNameEnum::ALWAYS, 0))
        .await;
    w.svc.start(&id).await.expect("start");
    w.monitor.exit(&w.socket(&id), 0).await;
    w.until(&id, "the restart", |l| {
        l.exits == 1 && l.status == Status::Running
    })
    .await;
    assert_eq!(w.status(&id).await.2, 1, "restart count");
    let starts = w
        .monitor
        .calls()
        .iter()
        .filter(|c| **c == Call::Start)
        .count();
    assert_eq!(starts, 2);

    w.svc.stop(&id, None, Some(5)).await.expect("stop");
    let (status, _, count) = w.status(&id).await;
    assert_eq!(
        (status, count),
        (Status::Exited, 1),
        "a stopped container stays stopped"
    );
}

#[tokio::test]
async fn on_failure_gives_up_after_its_retries() {
    let w = world().await;
    let id = w
        .create("job", restart(RestartPolicyNameEnum::ON_FAILURE, 1))
        .await;
    w.svc.start(&id).await.expect("start");
    w.monitor.exit(&w.socket(&id), 3).await;
    w.until(&id, "the retry", |l| {
        l.exits == 1 && l.status == Status::Running
    })
    .await;
    w.monitor.exit(&w.socket(&id), 3).await;
    w.until(&id, "the final exit", |l| l.exits == 2).await;
    let (status, code, count) = w.status(&id).await;
    assert_eq!((status, code, count), (Status::Exited, 3, 1));

    let ok = w
        .create("ok", restart(RestartPolicyNameEnum::ON_FAILURE, 0))
        .await;
    w.svc.start(&ok).await.expect("start");
    w.monitor.exit(&w.socket(&ok), 0).await;
    w.until(&ok, "the exit", |l| l.exits == 1).await;
    assert_eq!(
        w.status(&ok).await.0,
        Status::Exited,
        "exit 0 is no failure"
    );
}

#[tokio::test]
async fn a_failed_spawn_leaves_the_container_created_with_its_error() {
    let w = world().await;
    let id = w.create("bad", HostConfig::default()).await;
    w.monitor.script.lock().expect("script").spawn_error = Some("no such runtime".into());
    let err = w.svc.start(&id).await.unwrap_err();
    assert!(matches!(err, ContainerError::StartFailed { .. }), "{err:?}");
    assert_eq!(err.to_string(), "no such runtime");
    let entry = w.svc.lookup(&id).expect("lookup");
    let rec = entry.rec.lock().await.clone();
    assert_eq!(rec.state.status, Status::Created);
    assert_eq!(
        (rec.state.exit_code, rec.state.error.as_str()),
        (128, "no such runtime")
    );
    assert!(!entry.paths.run_dir.exists());
}

#[tokio::test]
async fn a_failed_exec_is_reported_and_recorded() {
    let w = world().await;
    let id = w.create("noexec", HostConfig::default()).await;
    w.monitor.script.lock().expect("script").start_error =
        Some("exec: \"/bin/true\": permission denied".into());
    let err = w.svc.start(&id).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("failed to create task for container: exec: \"/bin/true\""),
        "{err}"
    );
    w.until(&id, "the recorded exit", |l| l.exits == 1).await;
    let (status, code, _) = w.status(&id).await;
    assert_eq!((status, code), (Status::Created, 127));
}

#[tokio::test]
async fn auto_remove_goes_after_a_failed_start() {
    let w = world().await;
    let hc = HostConfig {
        auto_remove: Some(true),
        ..Default::default()
    };
    let id = w.create("once", hc).await;
    w.monitor.script.lock().expect("script").spawn_error = Some("boom".into());
    w.svc.start(&id).await.unwrap_err();
    assert!(w.svc.lookup(&id).is_err(), "run --rm leaves nothing behind");
}

#[tokio::test]
async fn image_lookups_keep_their_class() {
    let w = world().await;
    let mut b = body(HostConfig::default());
    b.image = Some("nosuch".into());
    let err = w.svc.create(None, b).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(err.to_string(), "No such image: nosuch");
    let mut b = body(HostConfig::default());
    b.image = Some("Bad Reference!".into());
    let err = w.svc.create(None, b).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::InvalidArgument,
        "an invalid reference is a bad request, not a missing image: {err}"
    );
}

#[tokio::test]
async fn names_are_unique_and_renames_are_recorded() {
    let w = world().await;
    let id = w.create("aa", HostConfig::default()).await;
    let err = w
        .svc
        .create(Some("aa".into()), body(HostConfig::default()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    w.svc.rename("aa", "bb").await.expect("rename");
    let entry = w.svc.lookup("bb").expect("lookup by the new name");
    let on_disk: crate::store::Record =
        serde_json::from_slice(&std::fs::read(entry.paths.record()).expect("read"))
            .expect("decode");
    assert_eq!(on_disk.name, "bb");
    assert!(w.svc.lookup("aa").is_err());
    assert_eq!(entry.id, id);
}

#[tokio::test]
async fn joining_the_network_of_a_stopped_container_is_refused() {
    let w = world().await;
    w.create("host", HostConfig::default()).await;
    let hc = HostConfig {
        network_mode: Some("container:host".into()),
        ..Default::default()
    };
    let id = w.create("guest", hc).await;
    let err = w.svc.start(&id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(
        err.to_string()
            .starts_with("cannot join network of a non running container")
    );
    w.svc.start("host").await.expect("start host");
    // The joined container's record lock held by another operation does not matter.
    let host = w.svc.lookup("host").expect("lookup");
    let _held = host.rec.lock().await;
    w.svc.start(&id).await.expect("start guest");
}

#[tokio::test]
async fn a_kill_by_the_user_ends_the_restarts_and_answers_after_the_exit() {
    let w = world().await;
    for policy in [
        RestartPolicyNameEnum::ON_FAILURE,
        RestartPolicyNameEnum::ALWAYS,
    ] {
        let name = format!("k-{policy}");
        let id = w.create(&name, restart(policy, 0)).await;
        w.svc.start(&id).await.expect("start");
        w.svc.kill(&id, None).await.expect("kill");
        // The kill answered after the exit was recorded.
        let (status, code, count) = w.status(&id).await;
        assert_eq!((status, code, count), (Status::Exited, 137, 0), "{policy}");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(w.status(&id).await.0, Status::Exited, "{policy} restarted");
        // The next start restores the policy: an exit of its own restarts it.
        w.svc.start(&id).await.expect("start again");
        w.monitor.exit(&w.socket(&id), 3).await;
        w.until(&id, "the restart", |l| {
            l.exits == 2 && l.status == Status::Running
        })
        .await;
        w.svc.remove(&id, true, false).await.expect("rm -f");
    }
}

#[tokio::test]
async fn wait_returns_the_exit_of_the_current_run_of_an_always_container() {
    let w = world().await;
    let id = w
        .create("loop", restart(RestartPolicyNameEnum::ALWAYS, 0))
        .await;
    w.svc.start(&id).await.expect("start");
    let waiter = w
        .svc
        .wait(&id, super::WaitCondition::NotRunning)
        .await
        .expect("wait");
    w.monitor.exit(&w.socket(&id), 3).await;
    let answer = tokio::time::timeout(std::time::Duration::from_secs(5), waiter.result())
        .await
        .expect("wait answered while the policy restarts the container");
    assert_eq!(answer.status_code, 3);
    w.svc.remove(&id, true, false).await.expect("rm -f");
}
