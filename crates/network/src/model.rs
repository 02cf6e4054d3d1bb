//! The public data shapes: requests, and results that serialize as Docker's JSON.
//!
//! [`NetworkInfo`] is Docker's `Network` object (`GET /networks/{id}`), [`EndpointSettings`]
//! is Docker's per-network entry of a container's `NetworkSettings.Networks`. Both are
//! PascalCase serde structs the daemon can hand out as they are. [`CreateRequest`]
//! deserializes from the body of `POST /networks/create`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use berth_api::filters::Filters;
use serde::{Deserialize, Serialize};

use crate::addr::MacAddr;

/// `null` as the type's default: clients send `"Options": null`, `"Config": null`, … where
/// dockerd's Go decoding reads a zero value.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Docker's `IPAM` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ipam {
    /// Always `default`.
    #[serde(default, deserialize_with = "nullable")]
    pub driver: String,
    /// IPAM driver options (kept, not interpreted).
    #[serde(default, deserialize_with = "nullable")]
    pub options: BTreeMap<String, String>,
    /// One entry per subnet: the IPv4 one, then the IPv6 one of a dual-stack network.
    #[serde(default, deserialize_with = "nullable")]
    pub config: Vec<IpamConfig>,
}

/// One subnet of a network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfig {
    /// `172.18.0.0/16`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub subnet: String,
    /// `172.18.0.1`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub gateway: String,
    /// The part of the subnet dynamic addresses come from.
    #[serde(
        default,
        deserialize_with = "nullable",
        rename = "IPRange",
        skip_serializing_if = "String::is_empty"
    )]
    pub ip_range: String,
}

/// The body of `POST /networks/create` (fields berth does not use are ignored).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateRequest {
    /// The network name.
    pub name: String,
    /// `bridge` (default) or `macvlan`.
    #[serde(default, deserialize_with = "nullable")]
    pub driver: String,
    /// Subnet, gateway and ip-range; empty to let berth choose.
    #[serde(default, rename = "IPAM")]
    pub ipam: Option<Ipam>,
    /// No NAT and no traffic in or out of the network.
    #[serde(default, deserialize_with = "nullable")]
    pub internal: bool,
    /// Accepted and reported (every berth network is attachable).
    #[serde(default, deserialize_with = "nullable")]
    pub attachable: bool,
    /// Driver options: `com.docker.network.bridge.name`, `com.docker.network.driver.mtu`,
    /// `parent` (macvlan); others are kept and reported.
    #[serde(default, deserialize_with = "nullable")]
    pub options: BTreeMap<String, String>,
    /// User labels.
    #[serde(default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    /// `--ipv6`: a dual-stack network (an IPv6 subnet must be given in `IPAM.Config`).
    #[serde(default, rename = "EnableIPv6", deserialize_with = "nullable")]
    pub enable_ipv6: bool,
}

/// Docker's `ConfigReference`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConfigReference {
    /// Always empty.
    pub network: String,
}

/// A container's entry in a network's `Containers` map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkContainer {
    /// The container name.
    pub name: String,
    /// The endpoint id (64 hex).
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The interface's MAC address.
    pub mac_address: String,
    /// `172.18.0.2/16`.
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    /// `fd00::2/64` on a dual-stack network, else empty.
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

/// Docker's `Network` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkInfo {
    /// The name.
    pub name: String,
    /// The id (64 hex).
    pub id: String,
    /// RFC 3339 creation time.
    pub created: String,
    /// Always `local`.
    pub scope: String,
    /// `bridge`, `macvlan`, `host` or `null`.
    pub driver: String,
    /// Whether IPv4 is on (true for bridge and macvlan networks).
    #[serde(rename = "EnableIPv4")]
    pub enable_ipv4: bool,
    /// Whether the network is dual-stack (`--ipv6`).
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    /// Addressing.
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    /// `--internal`.
    pub internal: bool,
    /// `--attachable`.
    pub attachable: bool,
    /// Always false.
    pub ingress: bool,
    /// Always empty.
    pub config_from: ConfigReference,
    /// Always false.
    pub config_only: bool,
    /// Attached containers by id.
    pub containers: BTreeMap<String, NetworkContainer>,
    /// Driver options.
    pub options: BTreeMap<String, String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// The container being attached.
#[derive(Debug, Clone)]
pub struct ContainerNet {
    /// The container id (64 hex).
    pub id: String,
    /// The container name, without a leading `/`.
    pub name: String,
}

/// Per-attachment choices (`--ip`, `--mac-address`, `--alias`, `network connect` options).
#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    /// A static address (user networks only).
    pub ip: Option<Ipv4Addr>,
    /// A static IPv6 address (`--ip6`; dual-stack user networks only).
    pub ip6: Option<Ipv6Addr>,
    /// A MAC address; derived from the IP when `None`.
    pub mac: Option<MacAddr>,
    /// Extra DNS names on this network.
    pub aliases: Vec<String>,
}

/// Docker's `IPAMConfig` of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointIpamConfig {
    /// The static address asked for.
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    /// The static IPv6 address asked for (`--ip6`), else empty.
    #[serde(
        default,
        rename = "IPv6Address",
        skip_serializing_if = "String::is_empty"
    )]
    pub ipv6_address: String,
}

/// Docker's `EndpointSettings` (a value of `NetworkSettings.Networks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSettings {
    /// The static address, when one was asked for.
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<EndpointIpamConfig>,
    /// Legacy links (always null).
    pub links: Option<Vec<String>>,
    /// User aliases.
    pub aliases: Option<Vec<String>>,
    /// The MAC address.
    pub mac_address: String,
    /// Driver options (always null).
    pub driver_opts: Option<BTreeMap<String, String>>,
    /// The network id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The network's gateway.
    pub gateway: String,
    /// The container's address.
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    /// The subnet's prefix length.
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    /// The network's IPv6 gateway (dual-stack networks), else empty.
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    /// The container's IPv6 address (dual-stack networks), else empty.
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    /// The IPv6 subnet's prefix length, else 0.
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: u8,
    /// Names the embedded DNS answers for (null on the default bridge, as in Docker).
    #[serde(rename = "DNSNames")]
    pub dns_names: Option<Vec<String>>,
}

/// A container's attachment to one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The network's name (the key in `NetworkSettings.Networks`).
    pub network_name: String,
    /// The interface inside the container (`eth0`, `eth1`…).
    pub interface: String,
    /// The host end of the veth pair (`veth1a2b3c4`); `None` for macvlan.
    pub host_interface: Option<String>,
    /// The container's address on this network.
    pub ip: Ipv4Addr,
    /// Its IPv6 address on a dual-stack network.
    pub ip6: Option<Ipv6Addr>,
    /// What `docker inspect` shows.
    pub settings: EndpointSettings,
}

/// Docker's /etc/hosts for a container: the loopback lines, then one line per endpoint
/// address with the hostname (IPv4, then IPv6 on a dual-stack network).
pub fn hosts_file(hostname: &str, endpoints: &[Endpoint]) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for endpoint in endpoints {
        out.push_str(&format!("{}\t{hostname}\n", endpoint.ip));
        if let Some(ip6) = endpoint.ip6 {
            out.push_str(&format!("{ip6}\t{hostname}\n"));
        }
    }
    out
}

/// The filter keys `docker network ls` and `network prune` take.
const FILTERS: [&str; 9] = [
    "dangling", "driver", "id", "label", "label!", "name", "scope", "type", "until",
];

/// Whether `info` passes `docker network ls --filter` / `network prune --filter` filters
/// (`driver`, `id` prefix, `label` and `label!` `k` or `k=v`, `name` substring, `scope`,
/// `type` custom|builtin, `dangling`, `until` as every prune takes it). Each key's values are
/// alternatives (but every `label` must hold); all keys must match. An unknown key is an error.
pub fn network_matches(info: &NetworkInfo, filters: &Filters) -> Result<bool, crate::NetworkError> {
    filters.validate(&FILTERS)?;
    let builtin = matches!(info.name.as_str(), "bridge" | "host" | "none");
    let dangling = match filters.bool("dangling")? {
        None => true,
        Some(dangling) => !builtin && info.containers.is_empty() == dangling,
    };
    let until = match filters.until(std::time::SystemTime::now())? {
        None => true,
        Some(until) => {
            let created = chrono::DateTime::parse_from_rfc3339(&info.created)
                .map(|t| t.timestamp())
                .unwrap_or(0);
            created < until.secs
        }
    };
    Ok(dangling
        && until
        && filters.labels_match(&info.labels)
        && filters.any("driver", |v| info.driver == v)
        && filters.any("id", |v| info.id.starts_with(v))
        && filters.any("name", |v| info.name.contains(v))
        && filters.any("scope", |v| info.scope == v)
        && filters.any("type", |v| match v {
            "custom" => !builtin,
            "builtin" => builtin,
            _ => false,
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(name: &str, labels: &[(&str, &str)], created: &str) -> NetworkInfo {
        NetworkInfo {
            name: name.into(),
            id: format!("{name}0123"),
            created: created.into(),
            scope: "local".into(),
            driver: "bridge".into(),
            enable_ipv4: true,
            enable_ipv6: false,
            ipam: Ipam::default(),
            internal: false,
            attachable: false,
            ingress: false,
            config_from: ConfigReference::default(),
            config_only: false,
            containers: BTreeMap::new(),
            options: BTreeMap::new(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn f(pairs: &[(&str, &str)]) -> Filters {
        let mut filters = Filters::new();
        for (k, v) in pairs {
            filters.add(*k, *v);
        }
        filters
    }

    #[test]
    fn filters_match_like_docker() {
        let n = net("web", &[("team", "a")], "2020-01-01T00:00:00Z");
        let ok = |pairs: &[(&str, &str)]| network_matches(&n, &f(pairs)).unwrap();
        assert!(ok(&[]));
        assert!(ok(&[("name", "we"), ("driver", "bridge")]));
        assert!(ok(&[("label", "team"), ("label", "team=a")]));
        assert!(!ok(&[("label", "team=b")]));
        assert!(ok(&[("label!", "team=b")]));
        assert!(!ok(&[("label!", "team")]));
        assert!(ok(&[("type", "custom"), ("dangling", "true")]));
        assert!(!ok(&[("type", "builtin")]));
        assert!(ok(&[("until", "1h")]));
        // Go durations as `image prune` takes them (this once failed: issue 11).
        assert!(ok(&[("until", "1h30m")]));
        assert!(ok(&[("until", "2.5h")]));
        assert!(ok(&[("until", "2020-01-01T00:00:01Z")]));
        assert!(!ok(&[("until", "2019-12-31")]));
        assert!(!ok(&[("until", "1500000000")]));
        assert!(ok(&[("id", "web0")]));
        assert!(network_matches(&n, &f(&[("until", "soon")])).is_err());
        assert!(network_matches(&n, &f(&[("bogus", "x")])).is_err());
        let bridge = net("bridge", &[], "2020-01-01T00:00:00Z");
        assert!(network_matches(&bridge, &f(&[("type", "builtin")])).unwrap());
    }
}
