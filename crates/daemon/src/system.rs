//! System endpoints: `/_ping`, `/version`, `/info`, `/events`, `/system/df`.
//!
//! Host facts (kernel, OS, CPUs, memory, cgroup version) are read once at start-up into
//! [`SystemFacts`], from paths given by [`HostPaths`] so tests can use a fake root.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use berth_api::filters::{Filters, label_matches};
use berth_api::models::{EventMessage, EventMessageTypeEnum};
use berth_api::shape;
use berth_api::{API_VERSION, MIN_API_VERSION};
use berth_container::{Counts, ListOptions};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::AppState;
use crate::error::DaemonError;
use crate::query::Params;
use crate::responses::{self, JSON};

/// Host files the facts are read from.
#[derive(Debug, Clone)]
pub struct HostPaths {
    /// `/proc`.
    pub proc: PathBuf,
    /// `/sys/fs/cgroup`.
    pub cgroup: PathBuf,
    /// `/etc/os-release`.
    pub os_release: PathBuf,
    /// Where runc would be, `/usr/sbin/runc`.
    pub runc: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        Self {
            proc: PathBuf::from("/proc"),
            cgroup: PathBuf::from("/sys/fs/cgroup"),
            os_release: PathBuf::from("/etc/os-release"),
            runc: PathBuf::from("/usr/sbin/runc"),
        }
    }
}

/// What `/version` and `/info` report about the host and this daemon; gathered once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemFacts {
    /// The engine id (stable across restarts).
    pub id: String,
    /// Host name.
    pub name: String,
    /// `uname -r`.
    pub kernel_version: String,
    /// `PRETTY_NAME` of os-release.
    pub operating_system: String,
    /// CPUs available.
    pub ncpu: usize,
    /// Total memory, bytes.
    pub mem_total: u64,
    /// `"1"` or `"2"`.
    pub cgroup_version: &'static str,
    /// The memory controller is available.
    pub memory_limit: bool,
    /// Swap accounting is available.
    pub swap_limit: bool,
    /// `--data-root`.
    pub data_root: PathBuf,
    /// The berth binary (the `berth` runtime).
    pub exe: PathBuf,
    /// runc, when installed.
    pub runc: Option<PathBuf>,
    /// The OCI runtimes containers may name: runc when installed, then `--add-runtime`'s.
    pub runtimes: Vec<(String, PathBuf)>,
    /// `--userns-remap` is on (`info` lists `name=userns`).
    pub userns_remap: bool,
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

/// `PRETTY_NAME` from an os-release file.
fn pretty_name(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|line| {
        let value = line.strip_prefix("PRETTY_NAME=")?;
        Some(value.trim().trim_matches('"').to_owned())
    })
}

/// `MemTotal` from /proc/meminfo, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl SystemFacts {
    /// Reads the host facts.
    pub fn gather(paths: &HostPaths, id: String, data_root: &Path, exe: &Path) -> Self {
        let cgroup_v2 = paths.cgroup.join("cgroup.controllers").exists();
        let (memory_limit, swap_limit) = if cgroup_v2 {
            let controllers =
                read_trimmed(&paths.cgroup.join("cgroup.controllers")).unwrap_or_default();
            let memory = controllers.split_whitespace().any(|c| c == "memory");
            (memory, memory)
        } else {
            let memory = paths.cgroup.join("memory");
            (
                memory.exists(),
                memory.join("memory.memsw.limit_in_bytes").exists(),
            )
        };
        Self {
            id,
            name: read_trimmed(&paths.proc.join("sys/kernel/hostname")).unwrap_or_default(),
            kernel_version: read_trimmed(&paths.proc.join("sys/kernel/osrelease"))
                .unwrap_or_default(),
            operating_system: read_trimmed(&paths.os_release)
                .and_then(|s| pretty_name(&s))
                .unwrap_or_else(|| "Linux".to_owned()),
            ncpu: std::thread::available_parallelism().map_or(1, usize::from),
            mem_total: read_trimmed(&paths.proc.join("meminfo"))
                .and_then(|s| mem_total(&s))
                .unwrap_or(0),
            cgroup_version: if cgroup_v2 { "2" } else { "1" },
            memory_limit,
            swap_limit,
            data_root: data_root.to_owned(),
            exe: exe.to_owned(),
            runc: paths.runc.exists().then(|| paths.runc.clone()),
            runtimes: paths
                .runc
                .exists()
                .then(|| ("runc".to_owned(), paths.runc.clone()))
                .into_iter()
                .collect(),
            userns_remap: false,
        }
    }
}

/// Go's name for this machine's architecture, as `/version` reports it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// The git commit berth was built from, when the build recorded it.
const GIT_COMMIT: &str = match option_env!("BERTH_GIT_COMMIT") {
    Some(commit) => commit,
    None => "unknown",
};

/// The `/version` body.
pub fn version_body(facts: &SystemFacts) -> Value {
    json!({
        "Platform": { "Name": "berth" },
        "Components": [{
            "Name": "Engine",
            "Version": berth_api::version(),
            "Details": {
                "ApiVersion": API_VERSION,
                "Arch": go_arch(),
                "BuildTime": "",
                "Experimental": "false",
                "GitCommit": GIT_COMMIT,
                "GoVersion": "rust",
                "KernelVersion": facts.kernel_version,
                "MinAPIVersion": MIN_API_VERSION,
                "Os": "linux",
            },
        }],
        "Version": berth_api::version(),
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": GIT_COMMIT,
        "GoVersion": "rust",
        "Os": "linux",
        "Arch": go_arch(),
        "KernelVersion": facts.kernel_version,
        "BuildTime": "",
    })
}

/// The `/info` body.
pub fn info_body(facts: &SystemFacts, counts: Counts, images: usize) -> Value {
    let mut runtimes = json!({ "berth": { "path": facts.exe } });
    for (name, path) in &facts.runtimes {
        runtimes[name] = json!({ "path": path });
    }
    json!({
        "ID": facts.id,
        "Containers": counts.running + counts.paused + counts.stopped,
        "ContainersRunning": counts.running,
        "ContainersPaused": counts.paused,
        "ContainersStopped": counts.stopped,
        "Images": images,
        "Driver": "overlay2",
        "DriverStatus": [
            ["Backing Filesystem", "extfs"],
            ["Supports d_type", "true"],
            ["Using metacopy", "false"],
            ["Native Overlay Diff", "true"],
        ],
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "null"],
            "Authorization": null,
            "Log": ["journald", "json-file", "local", "syslog"],
        },
        "MemoryLimit": facts.memory_limit,
        "SwapLimit": facts.swap_limit,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "CPUSet": true,
        "PidsLimit": true,
        "IPv4Forwarding": true,
        "Debug": false,
        "NFd": 0,
        // Where the memory controller has `memory.oom_control` (v1), as dockerd reports it.
        "OomKillDisable": facts.cgroup_version == "1" && facts.memory_limit,
        "NGoroutines": 0,
        "SystemTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": facts.cgroup_version,
        "NEventsListener": 0,
        "KernelVersion": facts.kernel_version,
        "OperatingSystem": facts.operating_system,
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "IndexConfigs": {
                "docker.io": {
                    "Name": "docker.io",
                    "Mirrors": [],
                    "Secure": true,
                    "Official": true,
                },
            },
            "InsecureRegistryCIDRs": ["::1/128", "127.0.0.0/8"],
            "Mirrors": null,
            "AllowNondistributableArtifactsCIDRs": [],
            "AllowNondistributableArtifactsHostnames": [],
        },
        "NCPU": facts.ncpu,
        "MemTotal": facts.mem_total,
        "GenericResources": null,
        "DockerRootDir": facts.data_root,
        "HttpProxy": "",
        "HttpsProxy": "",
        "NoProxy": "",
        "Name": facts.name,
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": berth_api::version(),
        "Runtimes": runtimes,
        "DefaultRuntime": "berth",
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": false,
            "Error": "",
            "RemoteManagers": null,
        },
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "",
        "SecurityOptions": security_options(facts),
        // dockerd's nil slice when nothing is wrong.
        "Warnings": null,
        // dockerd names the containerd, runc and docker-init commits; berth has none of them.
        "ContainerdCommit": { "ID": "", "Expected": "" },
        "RuncCommit": { "ID": "", "Expected": "" },
        "InitCommit": { "ID": "", "Expected": "" },
        "BridgeNfIptables": bridge_nf("iptables"),
        "BridgeNfIp6tables": bridge_nf("ip6tables"),
    })
}

/// Whether bridged traffic passes the host's `ip(6)tables` (`br_netfilter`), as dockerd's
/// `BridgeNfIptables` says it.
fn bridge_nf(table: &str) -> bool {
    std::fs::read_to_string(format!("/proc/sys/net/bridge/bridge-nf-call-{table}"))
        .is_ok_and(|v| v.trim() == "1")
}

/// `info`'s `SecurityOptions`, as dockerd lists them.
fn security_options(facts: &SystemFacts) -> Vec<&'static str> {
    let mut options = vec!["name=seccomp,profile=builtin"];
    if facts.userns_remap {
        options.push("name=userns");
    }
    options
}

/// Routes that need only the host facts.
pub fn static_routes() -> Router<Arc<SystemFacts>> {
    Router::new()
        .route("/_ping", get(ping).head(ping_head))
        .route("/version", get(version))
}

/// Routes that need the services.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/info", get(info))
        .route("/events", get(events))
        .route("/system/df", get(disk_usage))
}

/// `/_ping` headers, for GET and HEAD alike.
fn ping_response(body: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert("builder-version", HeaderValue::from_static("1"));
    headers.insert("swarm", HeaderValue::from_static("inactive"));
    response
}

async fn ping() -> Response {
    ping_response("OK")
}

async fn ping_head() -> Response {
    let mut response = ping_response("");
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    response
}

async fn version(State(facts): State<Arc<SystemFacts>>) -> Response {
    responses::json(StatusCode::OK, &version_body(&facts))
}

async fn info(State(state): State<AppState>) -> Result<Response, DaemonError> {
    let counts = state.containers.counts().await;
    let store = state.images.store.clone();
    let images = berth_fs::blocking(move || store.list().len()).await?;
    let mut body = info_body(&state.system, counts, images);
    let settings = match state.settings.read() {
        Ok(settings) => settings.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    apply_settings(&mut body, &settings);
    Ok(responses::json(StatusCode::OK, &body))
}

/// The configuration's effective values in `/info`, in Docker's places: `Debug`,
/// `LoggingDriver`, and `RegistryConfig` (insecure registries as CIDRs or index names,
/// mirrors).
pub fn apply_settings(body: &mut Value, settings: &crate::config_file::Reloadable) {
    body["Debug"] = json!(settings.debug);
    body["LoggingDriver"] = json!(settings.log_driver.as_deref().unwrap_or("json-file"));
    let mirrors = &settings.registry_mirrors;
    let registry = &mut body["RegistryConfig"];
    registry["Mirrors"] = json!(mirrors);
    registry["IndexConfigs"]["docker.io"]["Mirrors"] = json!(mirrors);
    let mut cidrs = vec![json!("::1/128"), json!("127.0.0.0/8")];
    for insecure in &settings.insecure_registries {
        if insecure.contains('/') {
            cidrs.push(json!(insecure));
        } else {
            registry["IndexConfigs"][insecure] = json!({
                "Name": insecure,
                "Mirrors": [],
                "Secure": false,
                "Official": false,
            });
        }
    }
    registry["InsecureRegistryCIDRs"] = json!(cidrs);
}

async fn disk_usage(State(state): State<AppState>) -> Result<Response, DaemonError> {
    let containers = state
        .containers
        .list(ListOptions {
            all: true,
            size: true,
            ..ListOptions::default()
        })
        .await?;
    let store = state.images.store.clone();
    let usage = berth_fs::blocking(move || store.disk_usage()).await?;
    let service = state.containers.volumes().clone();
    let volumes: Vec<Value> = berth_fs::blocking(move || service.usage())
        .await?
        .iter()
        .filter_map(|v| serde_json::to_value(v).ok())
        .collect();
    let mut body = crate::images::disk_usage_body(&usage, &containers, volumes);
    if let Some(builder) = &state.builder {
        body["BuildCache"] = serde_json::to_value(builder.usage().await?).unwrap_or_default();
    }
    Ok(responses::shaped(StatusCode::OK, &body, shape::system_df))
}

/// An event as the wire carries it: the bollard message plus the deprecated `status`, `id`
/// and `from` fields that clients below API 1.30 read.
pub fn event_json(message: &EventMessage) -> Value {
    let mut value = serde_json::to_value(message).unwrap_or(Value::Null);
    let actor_id = message.actor.as_ref().and_then(|a| a.id.clone());
    let attributes = message.actor.as_ref().and_then(|a| a.attributes.as_ref());
    if let Value::Object(map) = &mut value
        && matches!(
            message.typ,
            Some(EventMessageTypeEnum::CONTAINER | EventMessageTypeEnum::IMAGE)
        )
    {
        if let Some(action) = &message.action {
            map.insert("status".into(), json!(action));
        }
        if let Some(id) = actor_id {
            map.insert("id".into(), json!(id));
        }
        if message.typ == Some(EventMessageTypeEnum::CONTAINER)
            && let Some(image) = attributes.and_then(|a| a.get("image"))
        {
            map.insert("from".into(), json!(image));
        }
    }
    value
}

/// Whether `message` passes the `/events` filters (`type`, `event`, `container`, `image`,
/// `label`); values of one key are alternatives (every `label` must hold), keys must all
/// match, and keys of object types berth has no events of match nothing.
pub fn event_matches(filters: &Filters, message: &EventMessage) -> bool {
    let typ = message.typ.map(|t| t.to_string()).unwrap_or_default();
    let action = message.action.as_deref().unwrap_or_default();
    let id = message
        .actor
        .as_ref()
        .and_then(|a| a.id.as_deref())
        .unwrap_or_default();
    let attributes = message.actor.as_ref().and_then(|a| a.attributes.as_ref());
    let attribute = |key: &str| attributes.and_then(|a| a.get(key)).map(String::as_str);
    let names_object = |wanted: &str| {
        !wanted.is_empty() && (id.starts_with(wanted) || attribute("name") == Some(wanted))
    };
    filters.keys().all(|key| match key {
        "type" => filters.any(key, |v| v == typ),
        // `exec_start: sh` style actions match by their prefix before `:`.
        "event" => filters.any(key, |v| v == action || action.split(':').next() == Some(v)),
        "container" => typ == "container" && filters.any(key, names_object),
        "image" => match typ.as_str() {
            "image" => filters.any(key, names_object),
            "container" => filters.any(key, |v| attribute("image") == Some(v)),
            _ => false,
        },
        "label" => filters
            .values(key)
            .all(|filter| label_matches(&attributes, filter)),
        _ => false,
    })
}

async fn events(State(state): State<AppState>, params: Params) -> Result<Response, DaemonError> {
    let filters = params.filters()?;
    let until = params.timestamp("until")?;
    // Replay what the bus kept since `since`, then follow live events, with no gap.
    let since = params.timestamp("since")?;
    let (past, receiver) = match since {
        Some(since) => state
            .events
            .replay_and_subscribe((since.floor() * 1e9) as i64),
        None => (Vec::new(), state.events.subscribe()),
    };
    let past: std::collections::VecDeque<_> = past.into();
    let deadline = until.map(|until| {
        let now = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
        tokio::time::Instant::now() + Duration::from_secs_f64((until - now).max(0.0))
    });
    let stream = futures_util::stream::unfold((past, receiver), move |(mut past, mut receiver)| {
        let filters = filters.clone();
        async move {
            loop {
                if let Some(message) = past.pop_front() {
                    let at = message.time.unwrap_or_default() as f64;
                    if until.is_some_and(|until| at > until) {
                        return None;
                    }
                    if event_matches(&filters, &message) {
                        let line: Bytes = responses::json_line(&event_json(&message));
                        return Some((line, (past, receiver)));
                    }
                    continue;
                }
                let next = match deadline {
                    Some(deadline) => {
                        match tokio::time::timeout_at(deadline, receiver.recv()).await {
                            Ok(next) => next,
                            Err(_elapsed) => return None,
                        }
                    }
                    None => receiver.recv().await,
                };
                match next {
                    Ok(message) => {
                        let at = message.time.unwrap_or_default() as f64;
                        if since.is_some_and(|since| at < since.floor())
                            || !event_matches(&filters, &message)
                        {
                            continue;
                        }
                        let line: Bytes = responses::json_line(&event_json(&message));
                        return Some((line, (past, receiver)));
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "events subscriber lagged");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    });
    Ok(responses::streaming(JSON, stream))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use axum::body::{Body, to_bytes};
    use axum::extract::Request;
    use berth_api::models::EventActor;
    use tower::ServiceExt;

    use super::*;
    use crate::router::with_api_conventions;

    fn fake_host(root: &Path, cgroup_v2: bool) -> HostPaths {
        let proc = root.join("proc");
        std::fs::create_dir_all(proc.join("sys/kernel")).expect("mkdir");
        std::fs::write(proc.join("sys/kernel/hostname"), "box\n").expect("write");
        std::fs::write(proc.join("sys/kernel/osrelease"), "6.18.0-test\n").expect("write");
        std::fs::write(
            proc.join("meminfo"),
            "MemTotal:        2048 kB\nMemFree: 1 kB\n",
        )
        .expect("write");
        let cgroup = root.join("cgroup");
        if cgroup_v2 {
            std::fs::create_dir_all(&cgroup).expect("mkdir");
            std::fs::write(cgroup.join("cgroup.controllers"), "cpu memory pids\n").expect("write");
        } else {
            std::fs::create_dir_all(cgroup.join("memory")).expect("mkdir");
        }
        let os_release = root.join("os-release");
        std::fs::write(
            &os_release,
            "NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
        )
        .expect("write");
        HostPaths {
            proc,
            cgroup,
            os_release,
            runc: root.join("runc"),
        }
    }

    fn facts(root: &Path, cgroup_v2: bool) -> SystemFacts {
        SystemFacts::gather(
            &fake_host(root, cgroup_v2),
            "ENGINE-ID".into(),
            Path::new("/var/lib/berth"),
            Path::new("/usr/bin/berth"),
        )
    }

    #[test]
    fn facts_come_from_the_host_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let v1 = facts(&dir.path().join("v1"), false);
        assert_eq!(v1.name, "box");
        assert_eq!(v1.kernel_version, "6.18.0-test");
        assert_eq!(v1.operating_system, "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(v1.mem_total, 2048 * 1024);
        assert_eq!(v1.cgroup_version, "1");
        assert!(v1.memory_limit);
        assert!(!v1.swap_limit);
        assert_eq!(v1.runc, None);
        let v2 = facts(&dir.path().join("v2"), true);
        assert_eq!(v2.cgroup_version, "2");
        assert!(v2.memory_limit);
    }

    #[test]
    fn info_has_the_fields_clients_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut facts = facts(dir.path(), false);
        facts.runc = Some(PathBuf::from("/usr/sbin/runc"));
        facts.runtimes = vec![("runc".to_owned(), PathBuf::from("/usr/sbin/runc"))];
        let counts = Counts {
            running: 2,
            paused: 1,
            stopped: 3,
        };
        let info = info_body(&facts, counts, 4);
        assert_eq!(info["ID"], "ENGINE-ID");
        assert_eq!(info["Containers"], 6);
        assert_eq!(info["ContainersRunning"], 2);
        assert_eq!(info["ContainersPaused"], 1);
        assert_eq!(info["ContainersStopped"], 3);
        assert_eq!(info["Images"], 4);
        assert_eq!(info["Driver"], "overlay2");
        assert_eq!(info["CgroupDriver"], "cgroupfs");
        assert_eq!(info["CgroupVersion"], "1");
        assert_eq!(info["KernelVersion"], "6.18.0-test");
        assert_eq!(info["OperatingSystem"], "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(info["OSType"], "linux");
        assert_eq!(info["Name"], "box");
        assert_eq!(info["DockerRootDir"], "/var/lib/berth");
        assert_eq!(info["Runtimes"]["berth"]["path"], "/usr/bin/berth");
        assert_eq!(info["Runtimes"]["runc"]["path"], "/usr/sbin/runc");
        assert_eq!(info["DefaultRuntime"], "berth");
        assert_eq!(info["LoggingDriver"], "json-file");
        assert_eq!(info["Swarm"]["LocalNodeState"], "inactive");
        assert_eq!(info["Swarm"]["ControlAvailable"], false);
        assert_eq!(info["SecurityOptions"][0], "name=seccomp,profile=builtin");
        assert!(info["RegistryConfig"]["IndexConfigs"].is_object());
        assert!(info["Warnings"].is_null());
        assert!(info["NCPU"].as_u64().is_some_and(|n| n >= 1));
    }

    async fn call(facts: SystemFacts, method: &str, uri: &str) -> Response {
        let app = with_api_conventions(static_routes().with_state(Arc::new(facts)));
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .expect("request");
        app.oneshot(request).await.expect("infallible")
    }

    async fn body_text(response: Response) -> String {
        let body = to_bytes(response.into_body(), 1 << 20).await.expect("body");
        String::from_utf8(body.to_vec()).expect("utf8")
    }

    #[tokio::test]
    async fn ping_get_and_head() {
        let dir = tempfile::tempdir().expect("tempdir");
        for uri in ["/_ping", "/v1.44/_ping"] {
            let response = call(facts(dir.path(), false), "GET", uri).await;
            assert_eq!(response.status(), StatusCode::OK);
            let headers = response.headers();
            assert_eq!(headers["api-version"], "1.44");
            assert_eq!(headers["builder-version"], "1");
            assert_eq!(headers["swarm"], "inactive");
            assert_eq!(headers["ostype"], "linux");
            assert_eq!(headers["docker-experimental"], "false");
            assert_eq!(
                headers["cache-control"],
                "no-cache, no-store, must-revalidate"
            );
            assert_eq!(headers["pragma"], "no-cache");
            assert_eq!(body_text(response).await, "OK");
        }
        let response = call(facts(dir.path(), false), "HEAD", "/_ping").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["api-version"], "1.44");
        assert_eq!(response.headers()["content-length"], "0");
        assert_eq!(body_text(response).await, "");
    }

    #[tokio::test]
    async fn version_shape() {
        let dir = tempfile::tempdir().expect("tempdir");
        let response = call(facts(dir.path(), false), "GET", "/version").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "application/json");
        let version: Value = serde_json::from_str(&body_text(response).await).expect("json");
        assert_eq!(version["ApiVersion"], "1.44");
        assert_eq!(version["MinAPIVersion"], "1.24");
        assert_eq!(version["Platform"]["Name"], "berth");
        assert_eq!(version["KernelVersion"], "6.18.0-test");
        assert_eq!(version["Os"], "linux");
        let engine = &version["Components"][0];
        assert_eq!(engine["Name"], "Engine");
        assert_eq!(engine["Details"]["ApiVersion"], "1.44");
        assert_eq!(engine["Details"]["MinAPIVersion"], "1.24");
        assert_eq!(engine["Details"]["Experimental"], "false");
        assert!(engine["Details"]["GoVersion"].as_str().is_some());
    }

    fn container_event(action: &str, name: &str, image: &str) -> EventMessage {
        EventMessage {
            typ: Some(EventMessageTypeEnum::CONTAINER),
            action: Some(action.into()),
            actor: Some(EventActor {
                id: Some("c0ffee".into()),
                attributes: Some(HashMap::from([
                    ("name".to_owned(), name.to_owned()),
                    ("image".to_owned(), image.to_owned()),
                    ("com.example".to_owned(), "yes".to_owned()),
                ])),
            }),
            scope: None,
            time: Some(1_700_000_000),
            time_nano: Some(1_700_000_000_000_000_000),
        }
    }

    #[test]
    fn container_events_keep_the_deprecated_fields() {
        let value = event_json(&container_event("start", "web", "busybox"));
        assert_eq!(value["Type"], "container");
        assert_eq!(value["Action"], "start");
        assert_eq!(value["status"], "start");
        assert_eq!(value["id"], "c0ffee");
        assert_eq!(value["from"], "busybox");
        assert_eq!(value["Actor"]["Attributes"]["name"], "web");
    }

    #[test]
    fn event_filters() {
        let event = container_event("die", "web", "busybox");
        let filters = |json: &str| Filters::parse(json).expect("filters");
        assert!(event_matches(&filters("{}"), &event));
        assert!(event_matches(&filters(r#"{"type":["container"]}"#), &event));
        assert!(!event_matches(&filters(r#"{"type":["image"]}"#), &event));
        assert!(event_matches(
            &filters(r#"{"event":["start","die"]}"#),
            &event
        ));
        assert!(!event_matches(&filters(r#"{"event":["start"]}"#), &event));
        assert!(event_matches(&filters(r#"{"container":["web"]}"#), &event));
        assert!(event_matches(&filters(r#"{"container":["c0f"]}"#), &event));
        assert!(!event_matches(&filters(r#"{"container":["db"]}"#), &event));
        assert!(event_matches(&filters(r#"{"image":["busybox"]}"#), &event));
        assert!(event_matches(
            &filters(r#"{"label":["com.example=yes"]}"#),
            &event
        ));
        assert!(event_matches(
            &filters(r#"{"label":["com.example"]}"#),
            &event
        ));
        assert!(!event_matches(
            &filters(r#"{"label":["com.example=no"]}"#),
            &event
        ));
        assert!(
            !event_matches(&filters(r#"{"label":["com.example=yes","other"]}"#), &event),
            "every label must hold, as in moby"
        );
        assert!(!event_matches(
            &filters(r#"{"type":{"container":true},"event":{"start":true}}"#),
            &event
        ));
    }
}
