//! The crate's one error type. Messages follow Docker's wording where clients or users
//! match on it (`network x not found`, `port is already allocated`, `has active endpoints`).

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use berth_errdefs::{Classify, ErrorKind};

/// Errors from network operations.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// No network has this name, id or id prefix.
    #[error("network {name} not found")]
    NotFound {
        /// What was asked for.
        name: String,
    },
    /// A network with this name exists already.
    #[error("network with name {name} already exists")]
    NameInUse {
        /// The name.
        name: String,
    },
    /// A subnet string is not `a.b.c.d/n` with zero host bits.
    #[error("invalid subnet {subnet}: expected an IPv4 network such as 10.10.0.0/16")]
    InvalidSubnet {
        /// The text given.
        subnet: String,
    },
    /// A gateway or ip-range lies outside the subnet.
    #[error("{what} {value} is not within subnet {subnet}")]
    OutsideSubnet {
        /// `gateway` or `ip-range`.
        what: &'static str,
        /// The offending value.
        value: String,
        /// The network's subnet.
        subnet: String,
    },
    /// The requested subnet overlaps another network or a host route.
    #[error(
        "invalid pool request: Pool overlaps with other one on this address space ({subnet} overlaps {other})"
    )]
    SubnetOverlap {
        /// The subnet asked for.
        subnet: String,
        /// What it overlaps: a network name or `host route a.b.c.d/n`.
        other: String,
    },
    /// Every subnet of berth's pool is in use.
    #[error(
        "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"
    )]
    NoFreeSubnet,
    /// `--ipv6` without an IPv6 subnet, and every subnet of the IPv6 pools is in use
    /// (Docker 28's words).
    #[error("all predefined address pools have been fully subnetted")]
    NoFreeSubnet6,
    /// A MAC address is malformed (or multicast).
    #[error("invalid MAC address: {mac}")]
    InvalidMac {
        /// The text given.
        mac: String,
    },
    /// A `-p` value or a `PortBindings` entry is malformed.
    #[error("invalid port specification {spec:?}: {reason}")]
    InvalidPortSpec {
        /// The text given.
        spec: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `filters` key or value `network ls` / `network prune` do not take.
    #[error(transparent)]
    Filter {
        /// Which, in moby's words.
        #[from]
        source: berth_api::filters::FilterError,
    },
    /// A driver, option or combination berth does not accept.
    #[error("invalid network option {option}: {reason}")]
    InvalidOption {
        /// The option (`driver`, `parent`, an `-o` key…).
        option: String,
        /// Why.
        reason: String,
    },
    /// The macvlan parent interface does not exist on the host.
    #[error("the requested parent interface {parent} was not found on the host")]
    ParentNotFound {
        /// The interface name.
        parent: String,
    },
    /// A network still has containers attached.
    #[error("error while removing network: network {name} id {id} has active endpoints")]
    ActiveEndpoints {
        /// The network name.
        name: String,
        /// Its id.
        id: String,
    },
    /// `bridge`, `host` and `none` always exist.
    #[error("{name} is a pre-defined network and cannot be removed")]
    Predefined {
        /// The network.
        name: String,
    },
    /// Containers join `host` and `none` through their namespace choice, not an endpoint.
    #[error("container cannot be connected to or disconnected from network {name}")]
    NotAttachable {
        /// The network.
        name: String,
    },
    /// Static addresses need a user network, as in Docker.
    #[error("user specified IP address is supported on user defined networks only")]
    StaticIpOnDefaultBridge,
    /// A static IP is not a host address of the network's subnet.
    #[error("invalid address {ip}: it does not belong to any of network {network}'s subnets")]
    AddressOutsideSubnet {
        /// The address.
        ip: IpAddr,
        /// The network.
        network: String,
    },
    /// A static IP is held by another container.
    #[error("address {ip} is already in use on network {network}")]
    AddressInUse {
        /// The address.
        ip: IpAddr,
        /// The network.
        network: String,
    },
    /// Every address of the pool is handed out.
    #[error("no available IPv4 addresses on network {network}")]
    PoolExhausted {
        /// The network.
        network: String,
    },
    /// The container already has an endpoint on this network.
    #[error("endpoint with name {container} already exists in network {network}")]
    AlreadyAttached {
        /// The container name.
        container: String,
        /// The network.
        network: String,
    },
    /// The container has no endpoint on this network.
    #[error("container {container} is not connected to network {network}")]
    NotAttached {
        /// The container id or name.
        container: String,
        /// The network.
        network: String,
    },
    /// A host port is taken (by another container or a host program).
    #[error(
        "Bind for {}:{host_port} failed: port is already allocated",
        bracketed(host_ip)
    )]
    PortAllocated {
        /// The host address.
        host_ip: IpAddr,
        /// The host port.
        host_port: u16,
    },
    /// Creating or inspecting a port-reservation socket failed.
    #[error("reserving host port {host_port}: {source}")]
    PortReserve {
        /// The port.
        host_port: u16,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A netlink request failed.
    #[error("netlink: {op}: {source}")]
    Netlink {
        /// What was being done, with the device name.
        op: String,
        /// The cause.
        #[source]
        source: rtnetlink::Error,
    },
    /// Entering a container's network namespace failed (it may have exited).
    #[error("entering network namespace of pid {pid}: {source}")]
    Netns {
        /// The container init pid.
        pid: i32,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Starting the worker thread or its event loop failed.
    #[error("starting netlink worker: {source}")]
    Worker {
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `nft` or `iptables` could not be run.
    #[error("running {program}: {source}")]
    Spawn {
        /// The program.
        program: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `nft` or `iptables` refused a change.
    #[error("{program} failed: {stderr}")]
    Firewall {
        /// The program.
        program: &'static str,
        /// Its error output.
        stderr: String,
    },
    /// Reading or writing a state or system file failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// `read`, `write`, `rename`, `remove`, `create`.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A state file is not valid JSON of the expected shape.
    #[error("corrupt network state {}: {source}", path.display())]
    CorruptState {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// The embedded DNS server could not bind its address.
    #[error("starting DNS server on {addr}: {source}")]
    DnsBind {
        /// The address.
        addr: Ipv4Addr,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// An address as it stands before `:port`: `0.0.0.0`, `[::]`.
pub(crate) fn bracketed(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    }
}

impl Classify for NetworkError {
    fn kind(&self) -> ErrorKind {
        match self {
            NetworkError::NotFound { .. } | NetworkError::NotAttached { .. } => ErrorKind::NotFound,
            NetworkError::NameInUse { .. }
            | NetworkError::AddressInUse { .. }
            | NetworkError::AlreadyAttached { .. }
            | NetworkError::PortAllocated { .. } => ErrorKind::Conflict,
            NetworkError::InvalidSubnet { .. }
            | NetworkError::OutsideSubnet { .. }
            | NetworkError::InvalidMac { .. }
            | NetworkError::InvalidPortSpec { .. }
            | NetworkError::InvalidOption { .. }
            | NetworkError::Filter { .. }
            | NetworkError::ParentNotFound { .. }
            | NetworkError::NotAttachable { .. }
            | NetworkError::StaticIpOnDefaultBridge
            | NetworkError::AddressOutsideSubnet { .. } => ErrorKind::InvalidArgument,
            NetworkError::SubnetOverlap { .. }
            | NetworkError::ActiveEndpoints { .. }
            | NetworkError::Predefined { .. } => ErrorKind::Forbidden,
            NetworkError::NoFreeSubnet
            | NetworkError::NoFreeSubnet6
            | NetworkError::PoolExhausted { .. } => ErrorKind::Unavailable,
            NetworkError::PortReserve { .. }
            | NetworkError::Netlink { .. }
            | NetworkError::Netns { .. }
            | NetworkError::Worker { .. }
            | NetworkError::Spawn { .. }
            | NetworkError::Firewall { .. }
            | NetworkError::Io { .. }
            | NetworkError::CorruptState { .. }
            | NetworkError::DnsBind { .. } => ErrorKind::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_wording_and_classes() {
        let e = NetworkError::NotFound { name: "x".into() };
        assert_eq!(e.to_string(), "network x not found");
        assert_eq!(e.kind().http_status(), 404);
        let e = NetworkError::ActiveEndpoints {
            name: "n".into(),
            id: "abc".into(),
        };
        assert_eq!(
            e.to_string(),
            "error while removing network: network n id abc has active endpoints"
        );
        assert_eq!(e.kind().http_status(), 403);
        let e = NetworkError::PortAllocated {
            host_ip: Ipv4Addr::UNSPECIFIED.into(),
            host_port: 8080,
        };
        assert_eq!(
            e.to_string(),
            "Bind for 0.0.0.0:8080 failed: port is already allocated"
        );
        assert_eq!(
            NetworkError::PortAllocated {
                host_ip: std::net::Ipv6Addr::UNSPECIFIED.into(),
                host_port: 8080,
            }
            .to_string(),
            "Bind for [::]:8080 failed: port is already allocated"
        );
        assert_eq!(e.kind().http_status(), 409);
        assert_eq!(
            NetworkError::InvalidMac { mac: "x".into() }
                .kind()
                .http_status(),
            400
        );
    }
}
