//! The container records on disk and their in-memory index.
//!
//! Layout (owned by this crate):
//! ```text
//! <data_root>/containers/<id>/config.v2.json   the record (atomic writes: temp + rename)
//!                            /hostname, hosts, resolv.conf   bind-mounted into the container
//!                            /<id>-json.log[.N]               written by the monitor
//! <run_root>/containers/<id>/                  the monitor's run dir and OCI bundle
//! ```
//! The record carries a schema `version`; readers accept older versions and fill defaults.
use std::path::{Path, PathBuf};

use berth_api::models::{ContainerConfig, HostConfig};
use serde::{Deserialize, Serialize};

use crate::ContainerError;

/// Schema version of `config.v2.json`.
pub const RECORD_VERSION: u32 = 1;
/// Docker's zero time, printed for times that never happened.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

pub use crate::state::Status;

/// The state part of a record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateRecord {
    /// Lifecycle state.
    pub status: Status,
    /// Init pid while alive, else 0.
    pub pid: i64,
    /// Last exit code.
    pub exit_code: i64,
    /// Last error (start failure).
    pub error: String,
    /// RFC3339Nano.
    pub started_at: String,
    /// RFC3339Nano.
    pub finished_at: String,
    /// Killed by the OOM killer on its last run.
    pub oom_killed: bool,
    /// The healthcheck's state, once a run with a healthcheck started (`State.Health`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<berth_api::models::Health>,
}

impl Default for StateRecord {
    fn default() -> Self {
        Self {
            status: Status::Created,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
            oom_killed: false,
            health: None,
        }
    }
}

/// Everything berth keeps about a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// Schema version.
    #[serde(default)]
    pub version: u32,
    /// 64-hex id.
    pub id: String,
    /// Name without the leading slash.
    pub name: String,
    /// RFC3339Nano creation time.
    pub created: String,
    /// The executable (first of entrypoint + cmd).
    pub path: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// The container config as created (image defaults merged).
    pub config: ContainerConfig,
    /// Host config.
    pub host_config: HostConfig,
    /// `sha256:…` image id.
    pub image_id: String,
    /// Lifecycle.
    #[serde(default)]
    pub state: StateRecord,
    /// Times the restart policy restarted it.
    #[serde(default)]
    pub restart_count: i64,
    /// Stopped by the user (restart policies `always`/`unless-stopped` respect it).
    #[serde(default)]
    pub manually_stopped: bool,
    /// The networks it joins at start, in order (the network mode's first), with the
    /// endpoint choices (`--ip`, `--mac-address`, `--alias`, `network connect`).
    #[serde(default)]
    pub endpoints: Vec<(String, berth_api::models::EndpointSettings)>,
    /// Binds, volumes and tmpfs mounts, resolved at create (`inspect`'s `Mounts`).
    #[serde(default)]
    pub mount_points: Vec<berth_volume::MountPoint>,
    /// The cgroup its cgroup is made under (the daemon's `--cgroup-parent` at create, or
    /// `HostConfig.CgroupParent`); records older than the field were made under `/berth`.
    #[serde(default = "default_cgroup_parent")]
    pub cgroup_parent: String,
}

/// Where containers' cgroups go unless configured otherwise.
pub fn default_cgroup_parent() -> String {
    "/berth".to_owned()
}

/// Where a container's files are.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `<data_root>/containers/<id>`.
    pub data_dir: PathBuf,
    /// `<run_root>/containers/<id>`.
    pub run_dir: PathBuf,
}

impl Paths {
    /// Paths of container `id`.
    pub fn new(data_root: &Path, run_root: &Path, id: &str) -> Self {
        Self {
            data_dir: data_root.join("containers").join(id),
            run_dir: run_root.join("containers").join(id),
        }
    }
    /// The record file.
    pub fn record(&self) -> PathBuf {
        self.data_dir.join("config.v2.json")
    }
    /// The json-file log.
    pub fn log(&self, id: &str) -> PathBuf {
        self.data_dir.join(format!("{id}-json.log"))
    }
    /// The monitor socket.
    pub fn socket(&self) -> PathBuf {
        self.run_dir.join(berth_monitor::protocol::SOCKET_FILE)
    }
}

/// Saves a record (atomically; durable on creation only, later states are re-derivable from
/// the monitor).
pub fn save(paths: &Paths, record: &Record, durable: bool) -> Result<(), ContainerError> {
    let bytes = serde_json::to_vec(record).map_err(|source| ContainerError::Encode {
        what: "container record",
        source,
    })?;
    Ok(berth_fs::write_atomic_private(
        &paths.record(),
        &bytes,
        durable,
    )?)
}

/// Loads every record under `<data_root>/containers`; unreadable ones are skipped and logged.
pub fn load_all(data_root: &Path) -> Vec<Record> {
    let dir = data_root.join("containers");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        remove_temp_files(&e.path());
        let p = e.path().join("config.v2.json");
        match std::fs::read(&p) {
            Ok(b) => match serde_json::from_slice::<Record>(&b) {
                Ok(mut r) => {
                    migrate_binds(&mut r);
                    out.push(r);
                }
                Err(err) => tracing::warn!(path = %p.display(), "skipping bad record: {err}"),
            },
            Err(err) => tracing::warn!(path = %p.display(), "skipping unreadable record: {err}"),
        }
    }
    out
}

/// Removes what an atomic write interrupted by a crash left in a container's directory.
fn remove_temp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if berth_fs::is_temp_name(&e.file_name())
            && let Err(err) = std::fs::remove_file(e.path())
        {
            tracing::warn!(path = %e.path().display(), "removing a stray temp file failed: {err}");
        }
    }
}

/// Records written before mount points existed kept only `Binds` (host paths): turn those into
/// mount points, so such containers keep their binds.
fn migrate_binds(r: &mut Record) {
    if !r.mount_points.is_empty() {
        return;
    }
    for b in r.host_config.binds.iter().flatten() {
        if let Ok(m) = berth_volume::mounts::parse_bind(b)
            && m.kind == berth_volume::MountKind::Bind
        {
            r.mount_points.push(m);
        }
    }
}

/// Docker's rule for container names.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    name.len() >= 2 && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A new random 64-hex id.
pub fn new_id() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// RFC3339 with nanoseconds, UTC, as Docker prints times.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_docker_rules() {
        assert!(valid_name("web-1"));
        assert!(valid_name("a.b_c"));
        assert!(!valid_name("-x"));
        assert!(!valid_name("a"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(""));
    }

    #[test]
    fn ids_are_64_hex() {
        let id = new_id();
        assert_eq!(id.len(), 64);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
