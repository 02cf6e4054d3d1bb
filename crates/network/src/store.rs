//! Network state on disk.
//!
//! ```text
//! <data_root>/network/networks/<id>.json     one NetworkRecord per network (survives reboots)
//! <run_root>/network/containers/<id>.json    one ContainerRecord per attached container
//!                                            (endpoints and published ports; gone on reboot,
//!                                            like the containers themselves)
//! ```
//!
//! Every file carries `"version": 1` and is written atomically (temp file, rename), so a
//! crash leaves the old or the new file. Network records are also fsynced; container
//! records are not: they are on the container start path, and the only crash an fsync
//! would guard against (power loss) also ends the containers they describe. The IPAM tables are not stored: they are
//! rebuilt from the container records at start-up.

use std::collections::BTreeMap;
use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::addr::{Ipv4Net, Ipv6Net, MacAddr};
use crate::error::NetworkError;
use crate::ports::PublishedPort;

/// The schema version written into every file.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// How a network is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Driver {
    Bridge,
    Macvlan,
    Host,
    Null,
}

impl Driver {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Driver::Bridge => "bridge",
            Driver::Macvlan => "macvlan",
            Driver::Host => "host",
            Driver::Null => "null",
        }
    }
}

/// A network as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct NetworkRecord {
    pub version: u32,
    pub id: String,
    pub name: String,
    pub driver: Driver,
    pub created: String,
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub ip_range: Option<Ipv4Net>,
    pub internal: bool,
    pub attachable: bool,
    /// The bridge device (bridge driver) or the parent interface (macvlan).
    pub device: Option<String>,
    pub mtu: Option<u32>,
    /// Whether this is the predefined default bridge (`bridge`): no DNS, no static IPs.
    pub default_bridge: bool,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// The IPv6 half of a dual-stack network (`--ipv6`); absent in records written before
    /// berth had IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Config>,
}

/// A network's IPv6 subnet, gateway and `--ip-range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ipv6Config {
    pub subnet: Ipv6Net,
    pub gateway: Ipv6Addr,
    pub ip_range: Option<Ipv6Net>,
}

/// One attachment as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EndpointRecord {
    pub network_id: String,
    pub endpoint_id: String,
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
    pub static_ip: bool,
    /// The address on the network's IPv6 subnet (dual-stack networks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
    /// Whether `ip6` was asked for (`--ip6`).
    #[serde(default)]
    pub static_ip6: bool,
    pub ifname: String,
    pub host_ifname: Option<String>,
    pub aliases: Vec<String>,
    pub dns_names: Vec<String>,
}

/// A container's network state as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ContainerRecord {
    pub version: u32,
    pub container_id: String,
    pub name: String,
    pub netns_pid: i32,
    /// Inode of the container's network namespace, to tell it from a recycled pid.
    pub netns_inode: u64,
    pub endpoints: Vec<EndpointRecord>,
    pub ports: Vec<PublishedPort>,
}

/// The two state directories.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    networks: PathBuf,
    containers: PathBuf,
}

impl Store {
    pub(crate) fn open(data_root: &Path, run_root: &Path) -> Result<Self, NetworkError> {
        let store = Self {
            networks: data_root.join("network").join("networks"),
            containers: run_root.join("network").join("containers"),
        };
        for dir in [&store.networks, &store.containers] {
            fs::create_dir_all(dir).map_err(|source| NetworkError::Io {
                op: "create",
                path: dir.clone(),
                source,
            })?;
        }
        Ok(store)
    }

    pub(crate) fn load_networks(&self) -> Result<Vec<NetworkRecord>, NetworkError> {
        load_all(&self.networks)
    }

    pub(crate) fn load_containers(&self) -> Result<Vec<ContainerRecord>, NetworkError> {
        load_all(&self.containers)
    }

    pub(crate) fn save_network(&self, record: &NetworkRecord) -> Result<(), NetworkError> {
        write_atomic(
            &self.networks.join(format!("{}.json", record.id)),
            record,
            true,
        )
    }

    pub(crate) fn remove_network(&self, id: &str) -> Result<(), NetworkError> {
        remove(&self.networks.join(format!("{id}.json")))
    }

    pub(crate) fn save_container(&self, record: &ContainerRecord) -> Result<(), NetworkError> {
        write_atomic(
            &self
                .containers
                .join(format!("{}.json", record.container_id)),
            record,
            false,
        )
    }

    pub(crate) fn remove_container(&self, id: &str) -> Result<(), NetworkError> {
        remove(&self.containers.join(format!("{id}.json")))
    }
}

fn load_all<T: DeserializeOwned>(dir: &Path) -> Result<Vec<T>, NetworkError> {
    let entries = fs::read_dir(dir).map_err(|source| NetworkError::Io {
        op: "read",
        path: dir.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| NetworkError::Io {
                op: "read",
                path: dir.to_path_buf(),
                source,
            })?
            .path();
        if path.extension().is_none_or(|e| e != "json") {
            continue; // temp files of an interrupted write
        }
        let bytes = fs::read(&path).map_err(|source| NetworkError::Io {
            op: "read",
            path: path.clone(),
            source,
        })?;
        out.push(
            serde_json::from_slice(&bytes)
                .map_err(|source| NetworkError::CorruptState { path, source })?,
        );
    }
    Ok(out)
}

/// Serializes `value` and replaces `path` with it ([`berth_fs::write_atomic`]).
fn write_atomic<T: Serialize>(path: &Path, value: &T, durable: bool) -> Result<(), NetworkError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| NetworkError::CorruptState {
        path: path.to_path_buf(),
        source,
    })?;
    berth_fs::write_atomic(path, &bytes, durable).map_err(|e| NetworkError::Io {
        op: e.op,
        path: e.path,
        source: e.source,
    })
}

fn remove(path: &Path) -> Result<(), NetworkError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(NetworkError::Io {
            op: "remove",
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("data"), &dir.path().join("run")).unwrap();
        let record = NetworkRecord {
            version: SCHEMA_VERSION,
            id: "ab".repeat(32),
            name: "n".into(),
            driver: Driver::Bridge,
            created: "2026-01-01T00:00:00Z".into(),
            subnet: Some("172.20.0.0/16".parse().unwrap()),
            gateway: Some("172.20.0.1".parse().unwrap()),
            ip_range: None,
            internal: false,
            attachable: false,
            device: Some("br-abab".into()),
            mtu: None,
            default_bridge: false,
            options: BTreeMap::new(),
            labels: BTreeMap::from([("a".into(), "b".into())]),
            ipv6: None,
        };
        store.save_network(&record).unwrap();
        // A leftover temp file from a crash is ignored.
        fs::write(dir.path().join("data/network/networks/x.json.tmp"), "{").unwrap();
        let loaded = store.load_networks().unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].subnet, record.subnet);
        assert_eq!(loaded[0].labels, record.labels);
        store.remove_network(&record.id).unwrap();
        store.remove_network(&record.id).unwrap();
        assert!(store.load_networks().unwrap().is_empty());
        fs::write(dir.path().join("run/network/containers/c.json"), "{").unwrap();
        assert!(matches!(
            store.load_containers(),
            Err(NetworkError::CorruptState { .. })
        ));
    }
}
