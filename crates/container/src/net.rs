//! How a container's Docker settings map onto the network service: the network mode, the
//! per-network endpoint choices (`--ip`, `--mac-address`, `--alias`), published ports
//! (`-p`, `-P`), and the `NetworkSettings` that `inspect` shows.
//!
//! Pure functions over API models; the calls into [`berth_network::NetworkService`] are in
//! `service/network.rs`.
use std::collections::HashMap;

use berth_api::models::{
    ContainerConfig, EndpointIpamConfig, EndpointSettings, HostConfig, NetworkSettings,
    PortBinding as ApiPortBinding,
};
use berth_network::{
    AttachOptions, Endpoint, MacAddr, NetworkError, PortBinding, Protocol, PublishedPort,
};
use serde_json::{Value, json};

/// What `HostConfig.NetworkMode` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NetMode {
    /// A private namespace with only `lo`.
    None,
    /// The host's namespace.
    Host,
    /// Another container's namespace (`container:NAME`).
    Container(String),
    /// A network of the network service (`bridge` or a user network).
    Network(String),
}

/// The mode of `hc`; empty and `default` mean the default bridge.
pub(crate) fn mode(hc: &HostConfig) -> NetMode {
    match hc.network_mode.as_deref().unwrap_or("") {
        "" | "default" | "bridge" => NetMode::Network("bridge".into()),
        "none" => NetMode::None,
        "host" => NetMode::Host,
        m => match m.strip_prefix("container:") {
            Some(other) => NetMode::Container(other.to_string()),
            None => NetMode::Network(m.to_string()),
        },
    }
}

/// The attach options for `network` from a container's (or a connect request's)
/// `EndpointSettings`.
pub(crate) fn attach_options(
    settings: Option<&EndpointSettings>,
) -> Result<AttachOptions, NetworkError> {
    let Some(s) = settings else {
        return Ok(AttachOptions::default());
    };
    let ip = match s
        .ipam_config
        .as_ref()
        .and_then(|c| c.ipv4_address.as_deref())
        .filter(|ip| !ip.is_empty())
    {
        Some(ip) => Some(ip.parse().map_err(|_| NetworkError::InvalidOption {
            option: "ip".into(),
            reason: format!("{ip:?} is not an IPv4 address"),
        })?),
        None => None,
    };
    let ip6 = match s
        .ipam_config
        .as_ref()
        .and_then(|c| c.ipv6_address.as_deref())
        .filter(|ip| !ip.is_empty())
    {
        Some(ip) => Some(ip.parse().map_err(|_| NetworkError::InvalidOption {
            option: "ip6".into(),
            reason: format!("{ip:?} is not an IPv6 address"),
        })?),
        None => None,
    };
    let mac = match s.mac_address.as_deref().filter(|m| !m.is_empty()) {
        Some(m) => Some(m.parse::<MacAddr>()?),
        None => None,
    };
    Ok(AttachOptions {
        ip,
        ip6,
        mac,
        aliases: s.aliases.clone().unwrap_or_default(),
    })
}

/// The ports to publish: `HostConfig.PortBindings`, plus every exposed port not bound there
/// when `PublishAllPorts` (`-P`) is set.
pub(crate) fn port_bindings(
    config: &ContainerConfig,
    hc: &HostConfig,
) -> Result<Vec<PortBinding>, NetworkError> {
    let mut out = Vec::new();
    let mut bound: Vec<String> = Vec::new();
    let mut keys: Vec<(&String, &Option<Vec<ApiPortBinding>>)> =
        hc.port_bindings.iter().flatten().collect();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    for (key, list) in keys {
        bound.push(normalize_port_key(key));
        let list = list.clone().unwrap_or_default();
        if list.is_empty() {
            out.push(PortBinding::from_docker(key, "", "")?);
        }
        for b in list {
            out.push(PortBinding::from_docker(
                key,
                b.host_ip.as_deref().unwrap_or(""),
                b.host_port.as_deref().unwrap_or(""),
            )?);
        }
    }
    if hc.publish_all_ports.unwrap_or(false) {
        let mut exposed: Vec<String> = config
            .exposed_ports
            .iter()
            .flatten()
            .map(|k| normalize_port_key(k))
            .collect();
        exposed.sort();
        exposed.dedup();
        for key in exposed.into_iter().filter(|k| !bound.contains(k)) {
            out.push(PortBinding::from_docker(&key, "", "")?);
        }
    }
    Ok(out)
}

fn normalize_port_key(key: &str) -> String {
    if key.contains('/') {
        key.to_string()
    } else {
        format!("{key}/tcp")
    }
}

/// `80/tcp` keys with their host bindings, as `NetworkSettings.Ports` and `port` show them:
/// every exposed port appears, published or not (`null`).
pub(crate) fn port_map(
    config: &ContainerConfig,
    published: &[PublishedPort],
) -> HashMap<String, Option<Vec<ApiPortBinding>>> {
    let mut map: HashMap<String, Option<Vec<ApiPortBinding>>> = HashMap::new();
    for key in config.exposed_ports.iter().flatten() {
        map.insert(normalize_port_key(key), None);
    }
    for p in published {
        let key = format!(
            "{}/{}",
            p.container_port,
            match p.protocol {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
            }
        );
        map.entry(key)
            .or_insert(None)
            .get_or_insert_with(Vec::new)
            .push(ApiPortBinding {
                host_ip: Some(p.host_ip.to_string()),
                host_port: Some(p.host_port.to_string()),
            });
    }
    map
}

/// A network's entry in `NetworkSettings.Networks`, from a live endpoint.
pub(crate) fn endpoint_settings(ep: &Endpoint) -> EndpointSettings {
    let s = &ep.settings;
    EndpointSettings {
        ipam_config: s.ipam_config.as_ref().map(|c| EndpointIpamConfig {
            ipv4_address: Some(c.ipv4_address.clone()),
            ipv6_address: (!c.ipv6_address.is_empty()).then(|| c.ipv6_address.clone()),
            ..Default::default()
        }),
        links: s.links.clone(),
        mac_address: Some(s.mac_address.clone()),
        aliases: s.aliases.clone(),
        driver_opts: None,
        gw_priority: Some(0),
        network_id: Some(s.network_id.clone()),
        endpoint_id: Some(s.endpoint_id.clone()),
        gateway: Some(s.gateway.clone()),
        ip_address: Some(s.ip_address.clone()),
        ip_prefix_len: Some(i64::from(s.ip_prefix_len)),
        ipv6_gateway: Some(s.ipv6_gateway.clone()),
        global_ipv6_address: Some(s.global_ipv6_address.clone()),
        global_ipv6_prefix_len: Some(i64::from(s.global_ipv6_prefix_len)),
        dns_names: s.dns_names.clone(),
    }
}

/// The entry of a network the container is configured for but not attached to now (it is
/// not running): the configured choices, no address.
pub(crate) fn configured_settings(settings: Option<&EndpointSettings>) -> EndpointSettings {
    let s = settings.cloned().unwrap_or_default();
    EndpointSettings {
        ipam_config: s.ipam_config,
        links: None,
        mac_address: Some(s.mac_address.unwrap_or_default()),
        aliases: s.aliases,
        driver_opts: None,
        gw_priority: Some(0),
        network_id: Some(s.network_id.unwrap_or_default()),
        endpoint_id: Some(String::new()),
        gateway: Some(String::new()),
        ip_address: Some(String::new()),
        ip_prefix_len: Some(0),
        ipv6_gateway: Some(String::new()),
        global_ipv6_address: Some(String::new()),
        global_ipv6_prefix_len: Some(0),
        dns_names: None,
    }
}

/// The top-level fields API 1.44 still shows in `NetworkSettings` (Docker fills them from
/// the default bridge endpoint; berth from the first network), which `inspect -f
/// '{{.NetworkSettings.IPAddress}}'` and scripts read. Merged into the serialized settings.
pub(crate) fn legacy_fields(
    settings: &NetworkSettings,
    first_network: Option<&str>,
    bridge_device: Option<&str>,
) -> Value {
    let ep = first_network.and_then(|n| settings.networks.as_ref()?.get(n));
    let text = |f: Option<&Option<String>>| f.cloned().flatten().unwrap_or_default();
    json!({
        "Bridge": bridge_device.unwrap_or(""),
        "HairpinMode": false,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "SecondaryIPAddresses": null,
        "SecondaryIPv6Addresses": null,
        "EndpointID": text(ep.map(|e| &e.endpoint_id)),
        "Gateway": text(ep.map(|e| &e.gateway)),
        "GlobalIPv6Address": text(ep.map(|e| &e.global_ipv6_address)),
        "GlobalIPv6PrefixLen": ep.and_then(|e| e.global_ipv6_prefix_len).unwrap_or(0),
        "IPAddress": text(ep.map(|e| &e.ip_address)),
        "IPPrefixLen": ep.and_then(|e| e.ip_prefix_len).unwrap_or(0),
        "IPv6Gateway": text(ep.map(|e| &e.ipv6_gateway)),
        "MacAddress": text(ep.map(|e| &e.mac_address)),
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn modes_parse() {
        let hc = |m: &str| HostConfig {
            network_mode: Some(m.into()),
            ..Default::default()
        };
        assert_eq!(mode(&hc("")), NetMode::Network("bridge".into()));
        assert_eq!(mode(&hc("default")), NetMode::Network("bridge".into()));
        assert_eq!(mode(&hc("none")), NetMode::None);
        assert_eq!(mode(&hc("host")), NetMode::Host);
        assert_eq!(mode(&hc("container:x")), NetMode::Container("x".into()));
        assert_eq!(mode(&hc("mynet")), NetMode::Network("mynet".into()));
    }

    #[test]
    fn bindings_and_publish_all() {
        let config = ContainerConfig {
            exposed_ports: Some(vec!["80/tcp".into(), "53/udp".into(), "8080/tcp".into()]),
            ..Default::default()
        };
        let hc = HostConfig {
            port_bindings: Some(HashMap::from([(
                "8080/tcp".to_string(),
                Some(vec![ApiPortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some("9090".into()),
                }]),
            )])),
            publish_all_ports: Some(true),
            ..Default::default()
        };
        let b = port_bindings(&config, &hc).unwrap();
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].container_port, 8080);
        assert_eq!(b[0].host_ip, Some(Ipv4Addr::LOCALHOST.into()));
        assert_eq!(b[0].host_ports, (9090, 9090));
        assert!(b[1..].iter().all(|p| p.host_ports == (0, 0)));
        assert!(b.iter().any(|p| p.protocol == Protocol::Udp));
    }

    #[test]
    fn bad_endpoint_settings_are_refused() {
        let s = EndpointSettings {
            mac_address: Some("zz:zz".into()),
            ..Default::default()
        };
        assert!(attach_options(Some(&s)).is_err());
        let s = EndpointSettings {
            ipam_config: Some(EndpointIpamConfig {
                ipv4_address: Some("10.1.2.300".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(attach_options(Some(&s)).is_err());
    }
}
