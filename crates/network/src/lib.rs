//! Container networking for berth: the default bridge and user networks (bridge and
//! macvlan drivers), veth pairs, IPAM, NAT and published ports in one nftables table of
//! berth's own, accept rules under an iptables `FORWARD DROP` policy, and an embedded DNS
//! server per user network.
//!
//! [`NetworkService`] is the one entry point; the daemon builds it with
//! [`NetworkService::open`] at start-up and the container service calls
//! [`attach`](NetworkService::attach) / [`publish`](NetworkService::publish) while a
//! container's init waits before exec, and [`release`](NetworkService::release) when it
//! exits. Results serialize as Docker's JSON ([`NetworkInfo`], [`EndpointSettings`]).
//!
//! Where each piece of host state lives and how it is rebuilt is described in the modules:
//! `store` (files), `link` (devices), `nft` (rules), `iptables`, `dns`.
//!
//! # Example
//!
//! ```no_run
//! use std::path::Path;
//! use berth_network::{AttachOptions, ContainerNet, NetworkConfig, NetworkService, parse_publish_spec};
//!
//! let service = NetworkService::open(NetworkConfig::new(Path::new("/var/lib/berth"), Path::new("/run/berth")))?;
//! let container = ContainerNet { id: "0123abcd".repeat(8), name: "web".into() };
//! let init_pid = 4242; // blocked before exec
//! let endpoint = service.attach(&container, "bridge", init_pid, &AttachOptions::default())?;
//! println!("{} {}", endpoint.ip, endpoint.settings.mac_address);
//! service.publish(&container.id, &parse_publish_spec("8080:80")?)?;
//! // … the container exits:
//! service.release(&container.id)?;
//! # Ok::<(), berth_network::NetworkError>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod addr;
pub mod dns;
mod error;
mod ipam;
mod iptables;
mod link;
mod model;
mod nft;
mod ports;
mod service;
mod store;

pub use addr::{
    Ipv4Net, Ipv4Pool, Ipv6Net, Ipv6Pool, MacAddr, choose_pooled, choose_subnet,
    parse_proc_ipv6_routes, parse_proc_routes,
};
pub use error::NetworkError;
pub use ipam::Ipam as AddressPool;
pub use model::{
    AttachOptions, ConfigReference, ContainerNet, CreateRequest, Endpoint, EndpointIpamConfig,
    EndpointSettings, Ipam, IpamConfig, NetworkContainer, NetworkInfo, hosts_file, network_matches,
};
pub use ports::{PortBinding, Protocol, PublishedPort, parse_publish_spec};
pub use service::{NetworkConfig, NetworkService};
