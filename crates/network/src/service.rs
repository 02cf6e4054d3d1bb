//! The network service: networks, endpoints, published ports, and the host state behind
//! them (bridges, veths, nft table, iptables accept rules, DNS servers).
//!
//! Lifecycle of a container's networking, as the container service drives it:
//!
//! 1. the container init exists, blocked before exec: [`NetworkService::attach`] once per
//!    network (veth or macvlan created inside its namespace, address, default route, DNS
//!    names), then [`NetworkService::publish`] for `-p`/`-P`;
//! 2. `network connect`/`disconnect` while it runs: `attach` / [`NetworkService::detach`];
//! 3. the container exits: [`NetworkService::release`] frees addresses, ports, names and
//!    rules. No device is deleted: the kernel destroys the container's veth ends (and with
//!    them the host ends) when its namespace dies, which keeps the ~20 ms RCU wait of a
//!    veth deletion off the stop path.
//!
//! All methods block (netlink, `nft`); call them from a blocking task. One mutex guards the
//! state; `attach` does its netlink work outside it, after reserving the address.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use rand::RngCore;
use tracing::{instrument, warn};

use crate::addr::{
    Ipv4Net, Ipv4Pool, Ipv6Net, Ipv6Pool, MacAddr, choose_pooled, choose_subnet,
    parse_proc_ipv6_routes, parse_proc_routes,
};
use crate::dns::{DnsServer, NameTable, PeerTables, upstreams_from_resolv_conf};
use crate::error::NetworkError;
use crate::ipam::{Ipam, Ipam6};
use crate::iptables;
use crate::link::{self, InterfaceConfig};
use crate::model::{
    AttachOptions, ConfigReference, ContainerNet, CreateRequest, Endpoint, EndpointIpamConfig,
    EndpointSettings, Ipam as IpamJson, IpamConfig, NetworkContainer, NetworkInfo,
};
use crate::nft::{self, BridgeRules, PortRule};
use crate::ports::{PortBinding, PublishedPort, Reservation, proxy_loopback6, reserve};
use crate::store::{
    ContainerRecord, Driver, EndpointRecord, Ipv6Config, NetworkRecord, SCHEMA_VERSION, Store,
};

const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
const OPT_MTU: &str = "com.docker.network.driver.mtu";
const OPT_PARENT: &str = "parent";

/// Where the service keeps state and which host resources it uses. Host paths are
/// parameters so tests can point them elsewhere.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Persistent state (`/var/lib/berth`).
    pub data_root: PathBuf,
    /// Runtime state (`/run/berth`).
    pub run_root: PathBuf,
    /// The default bridge device (`berth0`); empty for no default bridge (`-b none`).
    pub default_bridge: String,
    /// berth's nft table in family `ip` (`berth`).
    pub nft_table: String,
    /// The host routing table (`/proc/net/route`), read to pick free subnets.
    pub host_routes: PathBuf,
    /// The host's IPv6 routes (`/proc/net/ipv6_route`), read to pick and check IPv6 subnets.
    pub host_routes6: PathBuf,
    /// The host resolver configuration (`/etc/resolv.conf`).
    pub resolv_conf: PathBuf,
    /// The sysctl tree (`/proc/sys`).
    pub proc_sys: PathBuf,
    /// The embedded DNS servers' port (53).
    pub dns_port: u16,
    /// `--bip`: the default bridge's gateway address and subnet, instead of a subnet from
    /// the pool.
    pub default_bridge_bip: Option<(Ipv4Addr, Ipv4Net)>,
    /// The default bridge's IPv6 subnet (`--ipv6 --fixed-cidr-v6`): it is then dual-stack.
    pub default_bridge_ipv6: Option<Ipv6Net>,
    /// `--ipv6` without `--fixed-cidr-v6`: the default bridge is dual-stack with a subnet
    /// from the IPv6 pools (kept once chosen), as with Docker 28.
    pub default_bridge_ipv6_pooled: bool,
    /// The IPv4 entries of the daemon's `default-address-pools`: where networks without a
    /// subnet get theirs, instead of berth's built-in pool, as with Docker.
    pub ipv4_pools: Vec<Ipv4Pool>,
    /// The IPv6 entries of the daemon's `default-address-pools`, where `--ipv6` networks
    /// without an IPv6 subnet get theirs; when empty, Docker's ULA /48 derived from
    /// `engine_id` ([`Ipv6Pool::ula`]).
    pub ipv6_pools: Vec<Ipv6Pool>,
    /// The engine id (`docker info`'s `ID`), from which the default IPv6 pool is derived.
    pub engine_id: String,
}

impl NetworkConfig {
    /// The production defaults under the given roots.
    pub fn new(data_root: &Path, run_root: &Path) -> Self {
        Self {
            data_root: data_root.to_path_buf(),
            run_root: run_root.to_path_buf(),
            default_bridge: "berth0".into(),
            nft_table: "berth".into(),
            host_routes: "/proc/net/route".into(),
            host_routes6: "/proc/net/ipv6_route".into(),
            resolv_conf: "/etc/resolv.conf".into(),
            proc_sys: "/proc/sys".into(),
            dns_port: 53,
            default_bridge_bip: None,
            default_bridge_ipv6: None,
            default_bridge_ipv6_pooled: false,
            ipv4_pools: Vec::new(),
            ipv6_pools: Vec::new(),
            engine_id: String::new(),
        }
    }

    /// The pools `--ipv6` networks without an IPv6 subnet take theirs from, as Docker 27
    /// and later: the configured IPv6 ones, else the ULA /48 derived from the engine id.
    fn ipv6_pools(&self) -> Vec<Ipv6Pool> {
        if self.ipv6_pools.is_empty() {
            vec![Ipv6Pool::ula(&self.engine_id)]
        } else {
            self.ipv6_pools.clone()
        }
    }
}

/// A network in memory.
#[derive(Debug)]
struct Net {
    record: NetworkRecord,
    ipam: Option<Ipam>,
    /// The IPv6 addresses of a dual-stack network.
    ipam6: Option<Ipam6>,
    names: NameTable,
    /// Per client address: the name tables of its container's other networks.
    peers: PeerTables,
    dns: Option<DnsServer>,
}

impl Net {
    fn has_dns(&self) -> bool {
        self.record.driver == Driver::Bridge && !self.record.default_bridge
    }
}

#[derive(Debug, Default)]
struct State {
    /// By id.
    networks: BTreeMap<String, Net>,
    /// By container id.
    containers: BTreeMap<String, ContainerRecord>,
    /// Held host ports, by container id.
    reservations: HashMap<String, Vec<Reservation>>,
}

/// The network service. See the module docs for the lifecycle.
#[derive(Debug)]
pub struct NetworkService {
    config: NetworkConfig,
    store: Store,
    state: Mutex<State>,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn netns_inode(pid: i32) -> Option<u64> {
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|m| m.ino())
}

/// A network name as dockerd takes it: anything but empty (spaces included); no control
/// characters, which no client means.
fn valid_name(name: &str) -> bool {
    !name.trim().is_empty() && !name.chars().any(char::is_control)
}

/// The IPv6 half of a create request: `EnableIPv6` with an IPv6 entry in `IPAM.Config`
/// (subnet with host bits cleared, gateway defaulting to the first address, `--ip-range`).
/// An IPv6 subnet needs `--ipv6`. `Ok(None)` with `--ipv6`: no IPv6 subnet is given, the
/// network takes one from the pools.
fn ipv6_request(req: &CreateRequest) -> Result<Option<Ipv6Config>, NetworkError> {
    let entry = req
        .ipam
        .iter()
        .flat_map(|i| &i.config)
        .find(|c| c.subnet.contains(':'));
    let Some(entry) = entry else {
        return Ok(None);
    };
    if !req.enable_ipv6 {
        return Err(NetworkError::InvalidOption {
            option: "subnet".into(),
            reason: format!("IPv6 subnet {} needs --ipv6 (EnableIPv6)", entry.subnet),
        });
    }
    let subnet = Ipv6Net::parse_masked(&entry.subnet)?;
    let outside = |what: &'static str, value: &str| NetworkError::OutsideSubnet {
        what,
        value: value.to_string(),
        subnet: subnet.to_string(),
    };
    let gateway = match entry.gateway.as_str() {
        "" => subnet.nth(1).ok_or_else(|| NetworkError::InvalidSubnet {
            subnet: subnet.to_string(),
        })?,
        g => g
            .parse::<Ipv6Addr>()
            .ok()
            .filter(|ip| subnet.contains(*ip) && *ip != subnet.network())
            .ok_or_else(|| outside("gateway", g))?,
    };
    let ip_range = match entry.ip_range.as_str() {
        "" => None,
        r => {
            let range = Ipv6Net::parse_masked(r)?;
            if !subnet.contains(range.network()) || range.prefix() < subnet.prefix() {
                return Err(outside("ip-range", r));
            }
            Some(range)
        }
    };
    Ok(Some(Ipv6Config {
        subnet,
        gateway,
        ip_range,
    }))
}

impl NetworkService {
    /// Loads state, makes sure the predefined networks exist, and re-applies the host state
    /// of every network (bridges, sysctls, iptables rules, nft table, DNS servers) so running
    /// containers keep their connectivity across a daemon restart. Containers whose network
    /// namespace is gone are released.
    #[instrument(skip_all)]
    pub fn open(config: NetworkConfig) -> Result<Self, NetworkError> {
        let store = Store::open(&config.data_root, &config.run_root)?;
        let service = Self {
            config,
            store,
            state: Mutex::new(State::default()),
        };
        let mut state = service.lock();
        for record in service.store.load_networks()? {
            let net = service.net_from_record(record);
            state.networks.insert(net.record.id.clone(), net);
        }
        service.ensure_predefined(&mut state)?;
        link::set_sysctl(&service.config.proc_sys, "net/ipv4/ip_forward", "1")?;
        // Hundreds of containers on one bridge overflow the default neighbour table
        // (gc_thresh3 = 1024 entries), and ARP then fails at random.
        for (key, min) in [
            ("gc_thresh1", 1024u32),
            ("gc_thresh2", 4096),
            ("gc_thresh3", 8192),
        ] {
            link::raise_sysctl(
                &service.config.proc_sys,
                &format!("net/ipv4/neigh/default/{key}"),
                min,
            )?;
        }
        let ids: Vec<String> = state.networks.keys().cloned().collect();
        for id in ids {
            let net = state.networks.get_mut(&id).expect("id taken from the map");
            service.bring_up(net)?;
        }
        for record in service.store.load_containers()? {
            let alive = netns_inode(record.netns_pid) == Some(record.netns_inode);
            if !alive {
                service.store.remove_container(&record.container_id)?;
                continue;
            }
            service.index_container(&mut state, &record);
            let mut held = Vec::new();
            for port in &record.ports {
                match hold(port) {
                    Ok(r) => held.push(r),
                    Err(err) => warn!(error = %err, "published port could not be re-reserved"),
                }
            }
            state.reservations.insert(record.container_id.clone(), held);
            refresh_peers(&state, &record);
            state.containers.insert(record.container_id.clone(), record);
        }
        service.apply_rules(&state)?;
        drop(state);
        Ok(service)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves state that is still consistent enough to
        // read; refusing all further network work would be worse.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn net_from_record(&self, record: NetworkRecord) -> Net {
        let ipam = record
            .subnet
            .map(|subnet| Ipam::new(&record.name, subnet, record.ip_range, record.gateway));
        let ipam6 = record
            .ipv6
            .map(|v6| Ipam6::new(&record.name, v6.subnet, v6.ip_range, v6.gateway));
        Net {
            record,
            ipam,
            ipam6,
            names: Arc::new(RwLock::new(HashMap::new())),
            peers: PeerTables::default(),
            dns: None,
        }
    }

    /// The default bridge's IPv6 half as the configuration wants it: `--fixed-cidr-v6`'s
    /// subnet; with `--ipv6` alone the pooled one it has, else the first free one of the pools.
    fn default_bridge_ipv6(&self, state: &State) -> Result<Option<Ipv6Config>, NetworkError> {
        if let Some(subnet) = self.config.default_bridge_ipv6 {
            return Ok(subnet.nth(1).map(|gateway| Ipv6Config {
                subnet,
                gateway,
                ip_range: None,
            }));
        }
        if !self.config.default_bridge_ipv6_pooled {
            return Ok(None);
        }
        // The one it has when that came from the pools (not from a `--fixed-cidr-v6` since
        // dropped).
        let pools = self.config.ipv6_pools();
        let current = state
            .networks
            .values()
            .find(|n| n.record.default_bridge)
            .and_then(|n| n.record.ipv6)
            .filter(|v6| pools.iter().any(|p| p.base.contains(v6.subnet.network())));
        match current {
            Some(v6) => Ok(Some(v6)),
            None => self.free_subnet6(state).map(Some),
        }
    }

    /// `--bip` given or changed since the default bridge was made: the old default bridge
    /// goes (record, device, forward rules) so that the one made next has the new address,
    /// unless containers are still attached to it (they keep it; a warning says so).
    fn apply_bip(&self, state: &mut State) -> Result<(), NetworkError> {
        let Some((gateway, subnet)) = self.config.default_bridge_bip else {
            return Ok(());
        };
        let Some(old) = state
            .networks
            .values()
            .find(|n| {
                n.record.default_bridge
                    && (n.record.subnet != Some(subnet) || n.record.gateway != Some(gateway))
            })
            .map(|n| n.record.id.clone())
        else {
            return Ok(());
        };
        let attached = self.store.load_containers()?.iter().any(|c| {
            netns_inode(c.netns_pid) == Some(c.netns_inode)
                && c.endpoints.iter().any(|e| e.network_id == old)
        });
        if attached {
            warn!(bip = %format!("{gateway}/{}", subnet.prefix()),
                "the default bridge keeps its address while containers are attached to it");
            return Ok(());
        }
        let net = state.networks.remove(&old).expect("found above");
        self.store.remove_network(&old)?;
        if let Some(device) = &net.record.device {
            revoke_forward(&net.record, device)?;
            link::delete_host_link(device)?;
        }
        Ok(())
    }

    /// Refuses `subnet` when it overlaps another network's IPv4 subnet.
    fn check_networks_overlap(state: &State, subnet: Ipv4Net) -> Result<(), NetworkError> {
        match state
            .networks
            .values()
            .find(|n| n.record.subnet.is_some_and(|s| s.overlaps(&subnet)))
        {
            Some(other) => Err(NetworkError::SubnetOverlap {
                subnet: subnet.to_string(),
                other: other.record.name.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The default bridge's subnet and gateway: `--bip`'s, else the first free pool subnet
    /// and its first address.
    fn default_bridge_subnet(&self, state: &State) -> Result<(Ipv4Net, Ipv4Addr), NetworkError> {
        if let Some((gateway, subnet)) = self.config.default_bridge_bip {
            Self::check_networks_overlap(state, subnet)?;
            return Ok((subnet, gateway));
        }
        let subnet = self.free_subnet(state)?;
        let gateway = subnet.nth(1).ok_or(NetworkError::NoFreeSubnet)?;
        Ok((subnet, gateway))
    }

    fn ensure_predefined(&self, state: &mut State) -> Result<(), NetworkError> {
        self.apply_bip(state)?;
        // `--ipv6 --fixed-cidr-v6` given or dropped since the default bridge was made.
        let wanted = self.default_bridge_ipv6(state)?;
        if let Some(net) = state
            .networks
            .values_mut()
            .find(|n| n.record.default_bridge && n.record.ipv6 != wanted)
        {
            let mut record = net.record.clone();
            record.ipv6 = wanted;
            self.store.save_network(&record)?;
            if let (None, Some(device)) = (wanted, &record.device) {
                // IPv6 turned off: the ip6tables accepts go (nothing else would take them).
                iptables::revoke(iptables::Family::V6, device)?;
            }
            *net = self.net_from_record(record);
        }
        for (name, driver) in [
            ("bridge", Driver::Bridge),
            ("host", Driver::Host),
            ("none", Driver::Null),
        ] {
            if state.networks.values().any(|n| n.record.name == name)
                || (driver == Driver::Bridge && self.config.default_bridge.is_empty())
            {
                continue;
            }
            let (subnet, gateway, device) = if driver == Driver::Bridge {
                let (subnet, gateway) = self.default_bridge_subnet(state)?;
                (
                    Some(subnet),
                    Some(gateway),
                    Some(self.config.default_bridge.clone()),
                )
            } else {
                (None, None, None)
            };
            let mut options = BTreeMap::new();
            if driver == Driver::Bridge {
                options.insert(
                    OPT_BRIDGE_NAME.to_string(),
                    self.config.default_bridge.clone(),
                );
            }
            let record = NetworkRecord {
                version: SCHEMA_VERSION,
                id: random_hex(32),
                name: name.to_string(),
                driver,
                created: now_rfc3339(),
                subnet,
                gateway,
                ip_range: None,
                internal: false,
                attachable: false,
                device,
                mtu: None,
                default_bridge: driver == Driver::Bridge,
                options,
                labels: BTreeMap::new(),
                ipv6: if driver == Driver::Bridge {
                    wanted
                } else {
                    None
                },
            };
            self.store.save_network(&record)?;
            let net = self.net_from_record(record);
            state.networks.insert(net.record.id.clone(), net);
        }
        Ok(())
    }

    fn host_routes(&self) -> Vec<Ipv4Net> {
        std::fs::read_to_string(&self.config.host_routes)
            .map(|text| parse_proc_routes(&text))
            .unwrap_or_default()
    }

    /// Host routes that are not our own bridges' (those are in `state` already).
    fn foreign_routes(&self, state: &State) -> Vec<Ipv4Net> {
        let ours: Vec<Ipv4Net> = state
            .networks
            .values()
            .filter_map(|n| n.record.subnet)
            .collect();
        self.host_routes()
            .into_iter()
            .filter(|r| !ours.contains(r))
            .collect()
    }

    /// The host's IPv6 routes that are not our own bridges' subnets.
    fn foreign_routes6(&self, state: &State) -> Vec<Ipv6Net> {
        let ours: Vec<Ipv6Net> = state
            .networks
            .values()
            .filter_map(|n| n.record.ipv6.map(|v6| v6.subnet))
            .collect();
        std::fs::read_to_string(&self.config.host_routes6)
            .map(|text| parse_proc_ipv6_routes(&text))
            .unwrap_or_default()
            .into_iter()
            .filter(|r| !ours.contains(r))
            .collect()
    }

    /// A `--ipv6` network's IPv6 half when it gives no subnet: the first free one of the
    /// pools, its first address the gateway.
    fn free_subnet6(&self, state: &State) -> Result<Ipv6Config, NetworkError> {
        let mut used = self.foreign_routes6(state);
        used.extend(
            state
                .networks
                .values()
                .filter_map(|n| n.record.ipv6.map(|v6| v6.subnet)),
        );
        let subnet =
            choose_pooled(&self.config.ipv6_pools(), &used).ok_or(NetworkError::NoFreeSubnet6)?;
        Ok(Ipv6Config {
            subnet,
            gateway: subnet.nth(1).ok_or(NetworkError::NoFreeSubnet6)?,
            ip_range: None,
        })
    }

    fn free_subnet(&self, state: &State) -> Result<Ipv4Net, NetworkError> {
        let mut used = self.foreign_routes(state);
        used.extend(state.networks.values().filter_map(|n| n.record.subnet));
        if self.config.ipv4_pools.is_empty() {
            choose_subnet(&used)
        } else {
            choose_pooled(&self.config.ipv4_pools, &used)
        }
        .ok_or(NetworkError::NoFreeSubnet)
    }

    /// Creates or re-checks the host side of a network. Returns whether a bridge was created
    /// (so a failed create can remove it).
    fn bring_up(&self, net: &mut Net) -> Result<bool, NetworkError> {
        let record = net.record.clone();
        let mut created = false;
        if record.driver == Driver::Bridge {
            let (Some(device), Some(subnet), Some(gateway)) =
                (&record.device, record.subnet, record.gateway)
            else {
                return Ok(false);
            };
            let gateway6 = record.ipv6.map(|v6| (v6.gateway, v6.subnet.prefix()));
            created = link::ensure_bridge(device, gateway, subnet.prefix(), gateway6, record.mtu)?;
            let result = (|| {
                link::set_sysctl(
                    &self.config.proc_sys,
                    &format!("net/ipv4/conf/{device}/route_localnet"),
                    "1",
                )?;
                if record.ipv6.is_some() {
                    // As dockerd for an IPv6 network: IPv6 on for the bridge, forwarding on.
                    link::set_sysctl(
                        &self.config.proc_sys,
                        &format!("net/ipv6/conf/{device}/disable_ipv6"),
                        "0",
                    )?;
                    link::set_sysctl(&self.config.proc_sys, "net/ipv6/conf/all/forwarding", "1")?;
                }
                allow_forward(&record, device)?;
                if net.has_dns() && net.dns.is_none() {
                    let addr = SocketAddr::V4(SocketAddrV4::new(gateway, self.config.dns_port));
                    net.dns = Some(DnsServer::start(
                        addr,
                        net.names.clone(),
                        net.peers.clone(),
                        self.upstreams(),
                    )?);
                }
                Ok(())
            })();
            if let Err(err) = result {
                if created {
                    let _ = revoke_forward(&record, device);
                    let _ = link::delete_host_link(device);
                }
                return Err(err);
            }
        }
        Ok(created)
    }

    fn upstreams(&self) -> Vec<SocketAddr> {
        std::fs::read_to_string(&self.config.resolv_conf)
            .map(|text| upstreams_from_resolv_conf(&text))
            .unwrap_or_default()
    }

    /// Rebuilds and loads berth's nft table from `state`.
    fn apply_rules(&self, state: &State) -> Result<(), NetworkError> {
        nft::apply(&self.ruleset(state))
    }

    fn ruleset(&self, state: &State) -> serde_json::Value {
        let bridges: Vec<BridgeRules> = state
            .networks
            .values()
            .filter(|n| n.record.driver == Driver::Bridge)
            .filter_map(|n| {
                Some(BridgeRules {
                    device: n.record.device.clone()?,
                    subnet: n.record.subnet?,
                    subnet6: n.record.ipv6.map(|v6| v6.subnet),
                    internal: n.record.internal,
                })
            })
            .collect();
        let ports: Vec<PortRule> = state
            .containers
            .values()
            .flat_map(|c| &c.ports)
            .map(|p| PortRule {
                protocol: p.protocol,
                host_ip: p.host_ip,
                host_port: p.host_port,
                container_ip: p.container_ip,
                container_port: p.container_port,
            })
            .collect();
        nft::ruleset(&self.config.nft_table, &bridges, &ports)
    }

    /// Adds a container's endpoints to the IPAM tables and DNS names.
    fn index_container(&self, state: &mut State, record: &ContainerRecord) {
        for ep in &record.endpoints {
            if let Some(net) = state.networks.get_mut(&ep.network_id) {
                if let Some(ipam) = &mut net.ipam {
                    let _ = ipam.allocate(&record.container_id, Some(ep.ip));
                }
                if let (Some(ipam6), Some(ip6)) = (&mut net.ipam6, ep.ip6) {
                    let _ = ipam6.allocate(&record.container_id, Some(ip6));
                }
                add_names(&net.names, &ep.dns_names, ep);
            }
        }
    }

    fn find<'a>(state: &'a State, name_or_id: &str) -> Result<&'a Net, NetworkError> {
        let id = Self::find_id(state, name_or_id)?;
        Ok(&state.networks[&id])
    }

    /// Docker's order: full id, then name, then unique id prefix.
    fn find_id(state: &State, name_or_id: &str) -> Result<String, NetworkError> {
        let not_found = || NetworkError::NotFound {
            name: name_or_id.to_string(),
        };
        if name_or_id.is_empty() {
            return Err(not_found());
        }
        if state.networks.contains_key(name_or_id) {
            return Ok(name_or_id.to_string());
        }
        if let Some(net) = state
            .networks
            .values()
            .find(|n| n.record.name == name_or_id)
        {
            return Ok(net.record.id.clone());
        }
        let mut matches = state
            .networks
            .keys()
            .filter(|id| id.starts_with(name_or_id));
        match (matches.next(), matches.next()) {
            (Some(id), None) => Ok(id.clone()),
            _ => Err(not_found()),
        }
    }

    /// A requested subnet: it may overlap no other network's, nor (for a bridge) a host
    /// route; a macvlan network shares its parent's subnet on purpose.
    fn check_subnet(
        &self,
        state: &State,
        subnet: Ipv4Net,
        driver: Driver,
    ) -> Result<Ipv4Net, NetworkError> {
        Self::check_networks_overlap(state, subnet)?;
        // A macvlan network shares its parent's subnet on purpose.
        if driver == Driver::Bridge
            && let Some(route) = self
                .foreign_routes(state)
                .into_iter()
                .find(|r| r.overlaps(&subnet))
        {
            return Err(NetworkError::SubnetOverlap {
                subnet: subnet.to_string(),
                other: format!("host route {route}"),
            });
        }
        Ok(subnet)
    }

    /// A requested IPv6 subnet, checked as [`check_subnet`](Self::check_subnet) checks an
    /// IPv4 one: against the other networks' IPv6 subnets and, for a bridge, the host's
    /// IPv6 routes.
    fn check_subnet6(
        &self,
        state: &State,
        subnet: Ipv6Net,
        driver: Driver,
    ) -> Result<(), NetworkError> {
        let overlap = |other: String| NetworkError::SubnetOverlap {
            subnet: subnet.to_string(),
            other,
        };
        if let Some(other) = state
            .networks
            .values()
            .find(|n| n.record.ipv6.is_some_and(|v6| v6.subnet.overlaps(&subnet)))
        {
            return Err(overlap(other.record.name.clone()));
        }
        if driver == Driver::Bridge
            && let Some(route) = self
                .foreign_routes6(state)
                .into_iter()
                .find(|r| r.overlaps(&subnet))
        {
            return Err(overlap(format!("host route {route}")));
        }
        Ok(())
    }

    /// Creates a network (`docker network create`).
    #[instrument(skip_all, fields(network = %req.name))]
    pub fn create(&self, req: &CreateRequest) -> Result<NetworkInfo, NetworkError> {
        let mut state = self.lock();
        if !valid_name(&req.name) {
            return Err(NetworkError::InvalidOption {
                option: "name".into(),
                reason: format!("invalid network name {:?}", req.name),
            });
        }
        if state.networks.values().any(|n| n.record.name == req.name) {
            return Err(NetworkError::NameInUse {
                name: req.name.clone(),
            });
        }
        let driver = match req.driver.as_str() {
            "" | "bridge" => Driver::Bridge,
            "macvlan" => Driver::Macvlan,
            other => {
                return Err(NetworkError::InvalidOption {
                    option: "driver".into(),
                    reason: format!("driver {other} is not supported (bridge, macvlan)"),
                });
            }
        };
        let ipam_config = req
            .ipam
            .iter()
            .flat_map(|i| &i.config)
            .find(|c| !c.subnet.contains(':'))
            .cloned()
            .unwrap_or_default();
        let ipv6 = match ipv6_request(req)? {
            Some(v6) => {
                self.check_subnet6(&state, v6.subnet, driver)?;
                Some(v6)
            }
            None if req.enable_ipv6 => Some(self.free_subnet6(&state)?),
            None => None,
        };
        let subnet = match ipam_config.subnet.as_str() {
            "" => None,
            s => Some(Ipv4Net::parse_masked(s)?),
        };
        let subnet = match subnet {
            Some(subnet) => self.check_subnet(&state, subnet, driver)?,
            None => self.free_subnet(&state)?,
        };
        let gateway = gateway_in(subnet, &ipam_config.gateway)?;
        let ip_range = ip_range_in(subnet, &ipam_config.ip_range)?;
        let mtu = match req.options.get(OPT_MTU) {
            None => None,
            Some(v) => Some(
                v.parse::<u32>()
                    .ok()
                    .filter(|m| (68..=65535).contains(m))
                    .ok_or_else(|| NetworkError::InvalidOption {
                        option: OPT_MTU.into(),
                        reason: format!("{v:?} is not an MTU"),
                    })?,
            ),
        };
        let id = random_hex(32);
        let device = device_for(&state, driver, &id, &req.options)?;
        let record = NetworkRecord {
            version: SCHEMA_VERSION,
            id: id.clone(),
            name: req.name.clone(),
            driver,
            created: now_rfc3339(),
            subnet: Some(subnet),
            gateway: Some(gateway),
            ip_range,
            internal: req.internal,
            attachable: req.attachable,
            device: Some(device),
            mtu,
            default_bridge: false,
            options: req.options.clone(),
            labels: req.labels.clone(),
            ipv6,
        };
        let mut net = self.net_from_record(record);
        let created = self.bring_up(&mut net)?;
        let undo = |net: &mut Net| {
            net.dns = None;
            if let (true, Some(device)) = (created, &net.record.device) {
                let _ = revoke_forward(&net.record, device);
                let _ = link::delete_host_link(device);
            }
        };
        if let Err(err) = self.store.save_network(&net.record) {
            undo(&mut net);
            return Err(err);
        }
        state.networks.insert(id.clone(), net);
        if let Err(err) = self.apply_rules(&state) {
            let mut net = state.networks.remove(&id).expect("inserted above");
            undo(&mut net);
            let _ = self.store.remove_network(&id);
            return Err(err);
        }
        Ok(self.info(&state, &state.networks[&id]))
    }

    /// Every network (`docker network ls`), predefined ones included.
    pub fn list(&self) -> Vec<NetworkInfo> {
        let state = self.lock();
        let mut out: Vec<NetworkInfo> = state
            .networks
            .values()
            .map(|n| self.info(&state, n))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// One network by name, id or unique id prefix.
    pub fn inspect(&self, name_or_id: &str) -> Result<NetworkInfo, NetworkError> {
        let state = self.lock();
        let net = Self::find(&state, name_or_id)?;
        Ok(self.info(&state, net))
    }

    fn info(&self, state: &State, net: &Net) -> NetworkInfo {
        let r = &net.record;
        let mut containers = BTreeMap::new();
        for c in state.containers.values() {
            for ep in c.endpoints.iter().filter(|e| e.network_id == r.id) {
                containers.insert(
                    c.container_id.clone(),
                    NetworkContainer {
                        name: c.name.clone(),
                        endpoint_id: ep.endpoint_id.clone(),
                        mac_address: ep.mac.to_string(),
                        ipv4_address: format!("{}/{}", ep.ip, r.subnet.map_or(32, |s| s.prefix())),
                        ipv6_address: match (ep.ip6, r.ipv6) {
                            (Some(ip6), Some(v6)) => format!("{ip6}/{}", v6.subnet.prefix()),
                            _ => String::new(),
                        },
                    },
                );
            }
        }
        let config = r
            .subnet
            .map(|subnet| IpamConfig {
                subnet: subnet.to_string(),
                gateway: r.gateway.map(|g| g.to_string()).unwrap_or_default(),
                ip_range: r.ip_range.map(|g| g.to_string()).unwrap_or_default(),
            })
            .into_iter()
            .chain(r.ipv6.map(|v6| IpamConfig {
                subnet: v6.subnet.to_string(),
                gateway: v6.gateway.to_string(),
                ip_range: v6.ip_range.map(|g| g.to_string()).unwrap_or_default(),
            }))
            .collect();
        NetworkInfo {
            name: r.name.clone(),
            id: r.id.clone(),
            created: r.created.clone(),
            scope: "local".into(),
            driver: r.driver.as_str().into(),
            enable_ipv4: matches!(r.driver, Driver::Bridge | Driver::Macvlan),
            enable_ipv6: r.ipv6.is_some(),
            ipam: IpamJson {
                driver: "default".into(),
                options: BTreeMap::new(),
                config,
            },
            internal: r.internal,
            attachable: r.attachable,
            ingress: false,
            config_from: ConfigReference::default(),
            config_only: false,
            containers,
            options: r.options.clone(),
            labels: r.labels.clone(),
        }
    }

    /// Removes a network (`docker network rm`): refused for predefined networks and while
    /// containers are attached.
    #[instrument(skip_all, fields(network = %name_or_id))]
    pub fn remove(&self, name_or_id: &str) -> Result<(), NetworkError> {
        let mut state = self.lock();
        let id = Self::find_id(&state, name_or_id)?;
        self.remove_locked(&mut state, &id)
    }

    fn remove_locked(&self, state: &mut State, id: &str) -> Result<(), NetworkError> {
        let net = &state.networks[id];
        if matches!(net.record.name.as_str(), "bridge" | "host" | "none") {
            return Err(NetworkError::Predefined {
                name: net.record.name.clone(),
            });
        }
        if state
            .containers
            .values()
            .any(|c| c.endpoints.iter().any(|e| e.network_id == id))
        {
            return Err(NetworkError::ActiveEndpoints {
                name: net.record.name.clone(),
                id: id.to_string(),
            });
        }
        let mut net = state.networks.remove(id).expect("found above");
        self.store.remove_network(id)?;
        net.dns = None;
        self.apply_rules(state)?;
        if let (Driver::Bridge, Some(device)) = (net.record.driver, &net.record.device) {
            revoke_forward(&net.record, device)?;
            link::delete_host_link(device)?;
        }
        Ok(())
    }

    /// Removes every user network without containers that passes `filters` (see
    /// [`network_matches`](crate::network_matches)); returns their names.
    pub fn prune(
        &self,
        filters: &berth_api::filters::Filters,
    ) -> Result<Vec<String>, NetworkError> {
        let mut state = self.lock();
        let mut excluded = Vec::new();
        for net in state.networks.values() {
            if !crate::model::network_matches(&self.info(&state, net), filters)? {
                excluded.push(net.record.id.clone());
            }
        }
        let unused: Vec<(String, String)> = state
            .networks
            .values()
            .filter(|n| !matches!(n.record.name.as_str(), "bridge" | "host" | "none"))
            .filter(|n| {
                !state
                    .containers
                    .values()
                    .any(|c| c.endpoints.iter().any(|e| e.network_id == n.record.id))
            })
            .filter(|n| !excluded.contains(&n.record.id))
            .map(|n| (n.record.id.clone(), n.record.name.clone()))
            .collect();
        let mut removed = Vec::new();
        for (id, name) in unused {
            self.remove_locked(&mut state, &id)?;
            removed.push(name);
        }
        Ok(removed)
    }

    /// Checks that `container` may join `network` and reserves its endpoint there (address,
    /// interface name, MAC, DNS names), under the lock; the caller makes the interface.
    fn reserve_endpoint(
        &self,
        container: &ContainerNet,
        network: &str,
        opts: &AttachOptions,
    ) -> Result<(NetworkRecord, EndpointRecord), NetworkError> {
        let mut state = self.lock();
        let id = Self::find_id(&state, network)?;
        let existing = state.containers.get(&container.id);
        if existing.is_some_and(|c| c.endpoints.iter().any(|e| e.network_id == id)) {
            return Err(NetworkError::AlreadyAttached {
                container: container.name.clone(),
                network: network.to_string(),
            });
        }
        let used_ifnames: Vec<String> = existing
            .map(|c| c.endpoints.iter().map(|e| e.ifname.clone()).collect())
            .unwrap_or_default();
        let net = state.networks.get_mut(&id).expect("found above");
        let r = net.record.clone();
        if matches!(r.driver, Driver::Host | Driver::Null) {
            return Err(NetworkError::NotAttachable { name: r.name });
        }
        if r.default_bridge && (opts.ip.is_some() || opts.ip6.is_some()) {
            return Err(NetworkError::StaticIpOnDefaultBridge);
        }
        if let (Some(ip6), None) = (opts.ip6, &net.ipam6) {
            return Err(NetworkError::AddressOutsideSubnet {
                ip: ip6.into(),
                network: r.name.clone(),
            });
        }
        let ipam = net
            .ipam
            .as_mut()
            .ok_or_else(|| NetworkError::NotAttachable {
                name: r.name.clone(),
            })?;
        let ip = ipam.allocate(&container.id, opts.ip)?;
        let ip6 = match &mut net.ipam6 {
            Some(ipam6) => match ipam6.allocate(&container.id, opts.ip6) {
                Ok(ip6) => Some(ip6),
                Err(err) => {
                    if let Some(ipam) = &mut net.ipam {
                        ipam.release(ip);
                    }
                    return Err(err);
                }
            },
            None => None,
        };
        let ifname = (0..)
            .map(|i| format!("eth{i}"))
            .find(|n| !used_ifnames.contains(n))
            .expect("an unbounded range");
        let endpoint_id = random_hex(32);
        let dns_names = if net.has_dns() {
            let mut names = vec![container.name.clone()];
            names.extend(opts.aliases.iter().cloned());
            names.push(container.id.chars().take(12).collect());
            names.dedup();
            names
        } else {
            Vec::new()
        };
        let ep = EndpointRecord {
            network_id: id,
            host_ifname: (r.driver == Driver::Bridge).then(|| format!("veth{}", &endpoint_id[..7])),
            endpoint_id,
            ip,
            mac: opts.mac.unwrap_or_else(|| MacAddr::from_ip(ip)),
            static_ip: opts.ip.is_some(),
            ip6,
            static_ip6: opts.ip6.is_some(),
            ifname,
            aliases: opts.aliases.clone(),
            dns_names,
        };
        Ok((r, ep))
    }

    /// Connects a container to a network: creates its interface inside the namespace of
    /// `netns_pid` (`eth0` for the first network, then `eth1`…), with address, MAC and
    /// default route, and registers its DNS names. Called after the container init exists
    /// and before it execs, or on a running container (`network connect`).
    #[instrument(skip_all, fields(container_id = %container.id, network = %network))]
    pub fn attach(
        &self,
        container: &ContainerNet,
        network: &str,
        netns_pid: i32,
        opts: &AttachOptions,
    ) -> Result<Endpoint, NetworkError> {
        let (record_net, ep) = self.reserve_endpoint(container, network, opts)?;
        let iface = InterfaceConfig {
            netns_pid,
            ifname: ep.ifname.clone(),
            mac: ep.mac,
            ip: ep.ip,
            prefix: record_net.subnet.map_or(32, |s| s.prefix()),
            gateway: if record_net.internal {
                None
            } else {
                record_net.gateway
            },
            ip6: ep.ip6.zip(record_net.ipv6.map(|v6| v6.subnet.prefix())),
            gateway6: record_net
                .ipv6
                .filter(|_| !record_net.internal)
                .map(|v6| v6.gateway),
            mtu: record_net.mtu,
        };
        let device = record_net.device.clone().unwrap_or_default();
        let made = match &ep.host_ifname {
            Some(host) => link::attach_veth(&device, host, &iface),
            None => link::attach_macvlan(&device, &iface),
        };
        let mut state = self.lock();
        let release_ip = |state: &mut State| {
            if let Some(net) = state.networks.get_mut(&ep.network_id) {
                if let Some(ipam) = &mut net.ipam {
                    ipam.release(ep.ip);
                }
                if let (Some(ipam6), Some(ip6)) = (&mut net.ipam6, ep.ip6) {
                    ipam6.release(ip6);
                }
            }
        };
        if let Err(err) = made {
            release_ip(&mut state);
            return Err(err);
        }
        let mut record = state
            .containers
            .get(&container.id)
            .cloned()
            .unwrap_or_else(|| ContainerRecord {
                version: SCHEMA_VERSION,
                container_id: container.id.clone(),
                name: container.name.clone(),
                netns_pid,
                netns_inode: netns_inode(netns_pid).unwrap_or(0),
                endpoints: Vec::new(),
                ports: Vec::new(),
            });
        record.endpoints.push(ep.clone());
        if let Err(err) = self.store.save_container(&record) {
            release_ip(&mut state);
            drop(state);
            let _ = self.remove_device(netns_pid, &ep);
            return Err(err);
        }
        if let Some(net) = state.networks.get(&ep.network_id) {
            add_names(&net.names, &ep.dns_names, &ep);
        }
        refresh_peers(&state, &record);
        state.containers.insert(container.id.clone(), record);
        Ok(endpoint_view(&record_net, &ep))
    }

    fn remove_device(&self, netns_pid: i32, ep: &EndpointRecord) -> Result<(), NetworkError> {
        match &ep.host_ifname {
            Some(host) => link::delete_host_link(host),
            None => link::delete_in_netns(netns_pid, &ep.ifname),
        }
    }

    /// Publishes ports of a container to the host (`-p`, `-P`), forwarding to its address
    /// on its first network. Either every binding is published or none is.
    #[instrument(skip_all, fields(container_id = %container_id))]
    pub fn publish(
        &self,
        container_id: &str,
        bindings: &[PortBinding],
    ) -> Result<Vec<PublishedPort>, NetworkError> {
        let mut state = self.lock();
        let record =
            state
                .containers
                .get(container_id)
                .ok_or_else(|| NetworkError::NotAttached {
                    container: container_id.to_string(),
                    network: "bridge".into(),
                })?;
        let Some((container_ip, container_ip6)) = record
            .endpoints
            .iter()
            .find(|e| {
                state
                    .networks
                    .get(&e.network_id)
                    .is_some_and(|n| n.record.driver == Driver::Bridge)
            })
            .map(|e| (e.ip, e.ip6))
        else {
            return Err(NetworkError::NotAttached {
                container: record.name.clone(),
                network: "bridge".into(),
            });
        };
        let mut published = Vec::new();
        let mut held = Vec::new();
        for b in bindings {
            // No host address: 0.0.0.0 and, for a container with an IPv6 address, [::] on
            // the same port, as dockerd publishes on a dual-stack host.
            let targets: Vec<(IpAddr, IpAddr)> = match b.host_ip {
                Some(host @ IpAddr::V4(_)) => vec![(host, container_ip.into())],
                Some(host @ IpAddr::V6(_)) => {
                    let ip6 = container_ip6.ok_or(NetworkError::InvalidPortSpec {
                        spec: host.to_string(),
                        reason: "the container has no IPv6 address to publish on",
                    })?;
                    vec![(host, ip6.into())]
                }
                None => std::iter::once((Ipv4Addr::UNSPECIFIED.into(), container_ip.into()))
                    .chain(container_ip6.map(|ip6| (Ipv6Addr::UNSPECIFIED.into(), ip6.into())))
                    .collect(),
            };
            let pairs = reserve_binding(b, &targets)?;
            for ((host_ip, container_ip), mut reservation) in targets.into_iter().zip(pairs) {
                if needs_proxy(host_ip) {
                    let target = SocketAddr::new(container_ip, b.container_port);
                    proxy_loopback6(&mut reservation, b.protocol, target)?;
                }
                published.push(PublishedPort {
                    container_port: b.container_port,
                    protocol: b.protocol,
                    host_ip,
                    host_port: reservation.port,
                    container_ip,
                });
                held.push(reservation);
            }
        }
        let mut record = record.clone();
        record.ports.extend(published.iter().cloned());
        self.store.save_container(&record)?;
        let previous = state
            .containers
            .insert(container_id.to_string(), record)
            .expect("found above");
        if let Err(err) = self.apply_rules(&state) {
            state
                .containers
                .insert(container_id.to_string(), previous.clone());
            let _ = self.store.save_container(&previous);
            return Err(err);
        }
        state
            .reservations
            .entry(container_id.to_string())
            .or_default()
            .extend(held);
        Ok(published)
    }

    /// Frees everything a container held (addresses, DNS names, ports and their rules) when
    /// it has exited. Devices are left to the kernel, which removes them with the
    /// namespace. Unknown containers are a no-op.
    #[instrument(skip_all, fields(container_id = %container_id))]
    pub fn release(&self, container_id: &str) -> Result<(), NetworkError> {
        let mut state = self.lock();
        let Some(record) = state.containers.remove(container_id) else {
            return Ok(());
        };
        for ep in &record.endpoints {
            forget_endpoint(&mut state, ep);
        }
        state.reservations.remove(container_id);
        self.store.remove_container(container_id)?;
        if !record.ports.is_empty() {
            self.apply_rules(&state)?;
        }
        Ok(())
    }

    /// Disconnects a running container from one network (`network disconnect`): its
    /// interface is deleted, and ports forwarded to that address are unpublished.
    #[instrument(skip_all, fields(container_id = %container_id, network = %network))]
    pub fn detach(&self, container_id: &str, network: &str) -> Result<(), NetworkError> {
        let mut state = self.lock();
        let id = Self::find_id(&state, network)?;
        let not_attached = || NetworkError::NotAttached {
            container: container_id.to_string(),
            network: network.to_string(),
        };
        let mut record = state
            .containers
            .get(container_id)
            .cloned()
            .ok_or_else(not_attached)?;
        let pos = record
            .endpoints
            .iter()
            .position(|e| e.network_id == id)
            .ok_or_else(not_attached)?;
        let ep = record.endpoints.remove(pos);
        let ports_before = record.ports.len();
        record.ports.retain(|p| {
            p.container_ip != IpAddr::from(ep.ip)
                && ep.ip6.map(IpAddr::from) != Some(p.container_ip)
        });
        let ports_changed = record.ports.len() != ports_before;
        self.remove_device(record.netns_pid, &ep)?;
        forget_endpoint(&mut state, &ep);
        if ports_changed {
            // Reservations are not tied to an address; re-take the ones still published.
            state.reservations.remove(container_id);
            let held: Vec<Reservation> = record.ports.iter().filter_map(|p| hold(p).ok()).collect();
            state.reservations.insert(container_id.to_string(), held);
        }
        if record.endpoints.is_empty() {
            self.store.remove_container(container_id)?;
            state.containers.remove(container_id);
            state.reservations.remove(container_id);
        } else {
            self.store.save_container(&record)?;
            refresh_peers(&state, &record);
            state.containers.insert(container_id.to_string(), record);
        }
        if ports_changed {
            self.apply_rules(&state)?;
        }
        Ok(())
    }

    /// Puts berth's firewall state back if something removed it (a firewall reload that
    /// flushed the ruleset, an admin deleting the table or the FORWARD accepts): the nft
    /// table is rebuilt from state and the accepts re-inserted. Returns whether the table had
    /// to be restored. The daemon calls this every few seconds.
    pub fn restore_firewall(&self) -> Result<bool, NetworkError> {
        let state = self.lock();
        let with_ip6 = state.networks.values().any(|n| n.record.ipv6.is_some());
        let missing = !nft::table_exists(&self.config.nft_table, with_ip6)?;
        if missing {
            warn!(table = %self.config.nft_table, "nft table gone; restoring it");
            self.apply_rules(&state)?;
        }
        for net in state.networks.values() {
            if let (Driver::Bridge, Some(device)) = (net.record.driver, &net.record.device) {
                allow_forward(&net.record, device)?;
            }
        }
        Ok(missing)
    }

    /// A running container was renamed: its DNS name follows on every user network.
    /// Unknown containers are a no-op.
    pub fn rename(&self, container_id: &str, new_name: &str) -> Result<(), NetworkError> {
        let mut state = self.lock();
        let Some(mut record) = state.containers.get(container_id).cloned() else {
            return Ok(());
        };
        let old = std::mem::replace(&mut record.name, new_name.to_string());
        for ep in &mut record.endpoints {
            let Some(net) = state.networks.get(&ep.network_id) else {
                continue;
            };
            let Some(pos) = ep.dns_names.iter().position(|n| *n == old) else {
                continue;
            };
            forget_names(&net.names, std::slice::from_ref(&old), ep);
            ep.dns_names[pos] = new_name.to_string();
            add_names(&net.names, &ep.dns_names, ep);
        }
        self.store.save_container(&record)?;
        state.containers.insert(container_id.to_string(), record);
        Ok(())
    }

    /// A container's endpoints, in attachment order.
    pub fn endpoints(&self, container_id: &str) -> Vec<Endpoint> {
        let state = self.lock();
        let Some(record) = state.containers.get(container_id) else {
            return Vec::new();
        };
        record
            .endpoints
            .iter()
            .filter_map(|ep| {
                state
                    .networks
                    .get(&ep.network_id)
                    .map(|n| endpoint_view(&n.record, ep))
            })
            .collect()
    }

    /// A container's published ports.
    pub fn published_ports(&self, container_id: &str) -> Vec<PublishedPort> {
        self.lock()
            .containers
            .get(container_id)
            .map(|c| c.ports.clone())
            .unwrap_or_default()
    }

    /// The resolv.conf for a container whose first network is `network`: the embedded DNS
    /// server on user networks, else the host's resolvers without loopback addresses (they
    /// would point into the container itself), falling back to Docker's public defaults.
    pub fn resolv_conf_for(&self, network: &str) -> Result<String, NetworkError> {
        let state = self.lock();
        let net = Self::find(&state, network)?;
        let host = std::fs::read_to_string(&self.config.resolv_conf).unwrap_or_default();
        let others: Vec<&str> = host
            .lines()
            .filter(|l| {
                l.starts_with("search") || l.starts_with("options") || l.starts_with("domain")
            })
            .collect();
        let mut out = String::new();
        if net.has_dns()
            && let Some(gateway) = net.record.gateway
        {
            out.push_str(&format!("nameserver {gateway}\n"));
        } else {
            let servers: Vec<String> = upstreams_from_resolv_conf(&host)
                .into_iter()
                .filter(|s| s.is_ipv4() && !s.ip().is_loopback())
                .map(|s| s.ip().to_string())
                .collect();
            let servers = if servers.is_empty() {
                vec!["8.8.8.8".to_string(), "8.8.4.4".to_string()]
            } else {
                servers
            };
            for s in servers {
                out.push_str(&format!("nameserver {s}\n"));
            }
        }
        for line in others {
            out.push_str(line);
            out.push('\n');
        }
        Ok(out)
    }

    /// The embedded DNS address of a network, if it has one.
    pub fn dns_address(&self, network: &str) -> Result<Option<SocketAddr>, NetworkError> {
        let state = self.lock();
        Ok(Self::find(&state, network)?.dns.as_ref().map(|d| d.addr()))
    }

    /// Removes every piece of host state this service made (DNS servers, bridges, iptables
    /// rules, the nft table) but keeps the state files. For tests and uninstall; running
    /// containers lose their networking.
    pub fn teardown(self) -> Result<(), NetworkError> {
        let mut state = self.lock();
        state.reservations.clear();
        for net in state.networks.values_mut() {
            net.dns = None;
        }
        nft::apply(&nft::teardown(&self.config.nft_table))?;
        for net in state.networks.values() {
            if let (Driver::Bridge, Some(device)) = (net.record.driver, &net.record.device) {
                revoke_forward(&net.record, device)?;
                link::delete_host_link(device)?;
            }
        }
        Ok(())
    }
}

/// The firewalls a network's bridge needs accepts in: iptables, and ip6tables when it is
/// dual-stack.
fn firewall_families(record: &NetworkRecord) -> impl Iterator<Item = iptables::Family> {
    std::iter::once(iptables::Family::V4).chain(record.ipv6.map(|_| iptables::Family::V6))
}

fn allow_forward(record: &NetworkRecord, device: &str) -> Result<(), NetworkError> {
    for family in firewall_families(record) {
        iptables::allow(family, device)?;
    }
    Ok(())
}

fn revoke_forward(record: &NetworkRecord, device: &str) -> Result<(), NetworkError> {
    for family in firewall_families(record) {
        iptables::revoke(family, device)?;
    }
    Ok(())
}

/// Whether a published port needs the `[::1]` proxy (see [`proxy_loopback6`]): TCP and
/// UDP on `[::]` and on `[::1]` itself.
fn needs_proxy(host_ip: IpAddr) -> bool {
    host_ip == IpAddr::V6(Ipv6Addr::UNSPECIFIED) || host_ip == IpAddr::V6(Ipv6Addr::LOCALHOST)
}

/// Re-takes the host port of a published port (daemon restart, `network disconnect`), with
/// its proxy when it has one.
fn hold(port: &PublishedPort) -> Result<Reservation, NetworkError> {
    let mut reservation = reserve(port.protocol, port.host_ip, port.host_port)?;
    if needs_proxy(port.host_ip) {
        let target = SocketAddr::new(port.container_ip, port.container_port);
        proxy_loopback6(&mut reservation, port.protocol, target)?;
    }
    Ok(reservation)
}

/// Reserves one binding's host port on every host address of `targets`: the same port on
/// each (the first free one of the binding's range, or one the kernel picks for the first
/// address and then takes on the others).
fn reserve_binding(
    b: &PortBinding,
    targets: &[(IpAddr, IpAddr)],
) -> Result<Vec<Reservation>, NetworkError> {
    let Some(((first_ip, _), rest)) = targets.split_first() else {
        return Ok(Vec::new());
    };
    let take_all = |port: u16| -> Result<Vec<Reservation>, NetworkError> {
        let first = reserve(b.protocol, *first_ip, port)?;
        let port = first.port;
        let mut all = vec![first];
        for (ip, _) in rest {
            all.push(reserve(b.protocol, *ip, port)?);
        }
        Ok(all)
    };
    if b.host_ports.0 == 0 {
        // A kernel-picked port may be taken on the other address: try a few.
        let mut last = None;
        for _ in 0..8 {
            match take_all(0) {
                Ok(all) => return Ok(all),
                Err(err) => last = Some(err),
            }
        }
        return Err(last.expect("tried at least once"));
    }
    (b.host_ports.0..=b.host_ports.1)
        .find_map(|port| take_all(port).ok())
        .ok_or(NetworkError::PortAllocated {
            host_ip: *first_ip,
            host_port: b.host_ports.0,
        })
}

/// An endpoint's addresses: IPv4, and IPv6 on a dual-stack network.
fn endpoint_ips(ep: &EndpointRecord) -> impl Iterator<Item = IpAddr> {
    std::iter::once(IpAddr::V4(ep.ip)).chain(ep.ip6.map(IpAddr::V6))
}

fn add_names(names: &NameTable, dns_names: &[String], ep: &EndpointRecord) {
    if dns_names.is_empty() {
        return;
    }
    let mut table = names.write().unwrap_or_else(|p| p.into_inner());
    for name in dns_names {
        let entry = table.entry(name.to_ascii_lowercase()).or_default();
        for ip in endpoint_ips(ep) {
            if !entry.contains(&ip) {
                entry.push(ip);
            }
        }
    }
}

/// Gives each of a container's addresses on a DNS network the name tables of its other DNS
/// networks (see [`PeerTables`]).
fn refresh_peers(state: &State, record: &ContainerRecord) {
    let dns_nets: Vec<(&EndpointRecord, &Net)> = record
        .endpoints
        .iter()
        .filter_map(|ep| Some((ep, state.networks.get(&ep.network_id)?)))
        .filter(|(_, net)| net.has_dns())
        .collect();
    for (ep, net) in &dns_nets {
        let others: Vec<NameTable> = dns_nets
            .iter()
            .filter(|(other, _)| other.network_id != ep.network_id)
            .map(|(_, n)| n.names.clone())
            .collect();
        let mut peers = net.peers.write().unwrap_or_else(|p| p.into_inner());
        if others.is_empty() {
            peers.remove(&ep.ip);
        } else {
            peers.insert(ep.ip, others);
        }
    }
}

fn forget_names(names: &NameTable, dns_names: &[String], ep: &EndpointRecord) {
    let mut table = names.write().unwrap_or_else(|p| p.into_inner());
    for name in dns_names {
        let key = name.to_ascii_lowercase();
        if let Some(ips) = table.get_mut(&key) {
            ips.retain(|x| !endpoint_ips(ep).any(|ip| ip == *x));
            if ips.is_empty() {
                table.remove(&key);
            }
        }
    }
}

fn forget_endpoint(state: &mut State, ep: &EndpointRecord) {
    if let Some(net) = state.networks.get_mut(&ep.network_id) {
        net.peers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ep.ip);
        if let Some(ipam) = &mut net.ipam {
            ipam.release(ep.ip);
        }
        if let (Some(ipam6), Some(ip6)) = (&mut net.ipam6, ep.ip6) {
            ipam6.release(ip6);
        }
        forget_names(&net.names, &ep.dns_names, ep);
    }
}

fn endpoint_view(net: &NetworkRecord, ep: &EndpointRecord) -> Endpoint {
    Endpoint {
        network_name: net.name.clone(),
        interface: ep.ifname.clone(),
        host_interface: ep.host_ifname.clone(),
        ip: ep.ip,
        ip6: ep.ip6,
        settings: EndpointSettings {
            ipam_config: (ep.static_ip || ep.static_ip6).then(|| EndpointIpamConfig {
                ipv4_address: if ep.static_ip {
                    ep.ip.to_string()
                } else {
                    String::new()
                },
                ipv6_address: match (ep.static_ip6, ep.ip6) {
                    (true, Some(ip6)) => ip6.to_string(),
                    _ => String::new(),
                },
            }),
            links: None,
            aliases: (!ep.aliases.is_empty()).then(|| ep.aliases.clone()),
            mac_address: ep.mac.to_string(),
            driver_opts: None,
            network_id: net.id.clone(),
            endpoint_id: ep.endpoint_id.clone(),
            gateway: net.gateway.map(|g| g.to_string()).unwrap_or_default(),
            ip_address: ep.ip.to_string(),
            ip_prefix_len: net.subnet.map_or(0, |s| s.prefix()),
            ipv6_gateway: match (ep.ip6, net.ipv6) {
                (Some(_), Some(v6)) => v6.gateway.to_string(),
                _ => String::new(),
            },
            global_ipv6_address: ep.ip6.map(|ip| ip.to_string()).unwrap_or_default(),
            global_ipv6_prefix_len: match (ep.ip6, net.ipv6) {
                (Some(_), Some(v6)) => v6.subnet.prefix(),
                _ => 0,
            },
            dns_names: (!ep.dns_names.is_empty()).then(|| ep.dns_names.clone()),
        },
    }
}

/// The gateway of a new network: `requested`, or the subnet's first address.
fn gateway_in(subnet: Ipv4Net, requested: &str) -> Result<Ipv4Addr, NetworkError> {
    Ok(match requested {
        "" => subnet.nth(1).ok_or_else(|| NetworkError::InvalidSubnet {
            subnet: subnet.to_string(),
        })?,
        g => {
            let ip: Ipv4Addr = g.parse().map_err(|_| NetworkError::OutsideSubnet {
                what: "gateway",
                value: g.to_string(),
                subnet: subnet.to_string(),
            })?;
            if !subnet.contains(ip) || ip == subnet.network() || ip == subnet.broadcast() {
                return Err(NetworkError::OutsideSubnet {
                    what: "gateway",
                    value: g.to_string(),
                    subnet: subnet.to_string(),
                });
            }
            ip
        }
    })
}

/// `--ip-range`: inside the subnet, no wider than it.
fn ip_range_in(subnet: Ipv4Net, range: &str) -> Result<Option<Ipv4Net>, NetworkError> {
    Ok(match range {
        "" => None,
        r => {
            let range: Ipv4Net = r.parse()?;
            if !subnet.contains(range.network()) || range.prefix() < subnet.prefix() {
                return Err(NetworkError::OutsideSubnet {
                    what: "ip-range",
                    value: r.to_string(),
                    subnet: subnet.to_string(),
                });
            }
            Some(range)
        }
    })
}

/// The host device of a new network: its bridge (`-o com.docker.network.bridge.name`, else
/// `br-<id12>`, not another network's) or, for macvlan, its existing parent interface.
fn device_for(
    state: &State,
    driver: Driver,
    id: &str,
    options: &BTreeMap<String, String>,
) -> Result<String, NetworkError> {
    Ok(match driver {
        Driver::Bridge => {
            let name = options
                .get(OPT_BRIDGE_NAME)
                .cloned()
                .unwrap_or_else(|| format!("br-{}", &id[..12]));
            if name.is_empty()
                || name.len() > 15
                || name.contains('/')
                || name.contains(char::is_whitespace)
            {
                return Err(NetworkError::InvalidOption {
                    option: OPT_BRIDGE_NAME.into(),
                    reason: format!("{name:?} is not a device name"),
                });
            }
            if state.networks.values().any(|n| {
                n.record.device.as_deref() == Some(name.as_str())
                    && n.record.driver == Driver::Bridge
            }) {
                return Err(NetworkError::InvalidOption {
                    option: OPT_BRIDGE_NAME.into(),
                    reason: format!("bridge {name} is used by another network"),
                });
            }
            name
        }
        _ => {
            let parent =
                options
                    .get(OPT_PARENT)
                    .cloned()
                    .ok_or_else(|| NetworkError::InvalidOption {
                        option: OPT_PARENT.into(),
                        reason: "a macvlan network needs -o parent=<host interface>".into(),
                    })?;
            if !link::host_link_exists(&parent) {
                return Err(NetworkError::ParentNotFound { parent });
            }
            parent
        }
    })
}
