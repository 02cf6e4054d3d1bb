//! Network devices over netlink: bridges, veth pairs, macvlan children, addresses, routes.
//!
//! Each operation runs on a short-lived worker thread with its own single-threaded tokio
//! loop and netlink socket. A netlink socket belongs to the network namespace it was
//! created in, and `setns` changes only the calling thread, so work inside a container's
//! namespace happens on a thread that first joins `/proc/<pid>/ns/net` and then opens its
//! socket; that thread is never reused. Running on our own thread also makes these calls
//! safe to make from a blocking task of the daemon's runtime.
//!
//! A container's interface is created directly inside its namespace (the veth peer carries
//! `IFLA_NET_NS_PID` and its final name and MAC), so nothing is moved or renamed afterwards.

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use futures_util::TryStreamExt;
use nix::sched::CloneFlags;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, MacVlanMode};
use rtnetlink::{
    Handle, LinkBridge, LinkMacVlan, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

use crate::addr::MacAddr;
use crate::error::NetworkError;

const EEXIST: i32 = 17;
const ENODEV: i32 = 19;
const ENOENT: i32 = 2;

/// The errno of a netlink NACK, if that is what `err` is.
fn errno(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => Some(-msg.raw_code()),
        _ => None,
    }
}

fn netlink_err(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetworkError {
    let op = op.into();
    move |source| NetworkError::Netlink { op, source }
}

/// Runs `job` with a fresh netlink handle on a worker thread, inside the network namespace
/// of `netns_pid` when given (else the caller's, i.e. the host's).
fn with_netlink<T, F>(netns_pid: Option<i32>, job: F) -> Result<T, NetworkError>
where
    T: Send,
    F: AsyncFnOnce(Handle) -> Result<T, NetworkError> + Send,
{
    std::thread::scope(|scope| {
        let worker = scope.spawn(move || {
            if let Some(pid) = netns_pid {
                let netns_err = |source| NetworkError::Netns { pid, source };
                let ns = File::open(format!("/proc/{pid}/ns/net")).map_err(netns_err)?;
                nix::sched::setns(ns, CloneFlags::CLONE_NEWNET)
                    .map_err(|errno| netns_err(io::Error::from(errno)))?;
            }
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .map_err(|source| NetworkError::Worker { source })?;
            runtime.block_on(async move {
                let (connection, handle, _) = rtnetlink::new_connection()
                    .map_err(|source| NetworkError::Worker { source })?;
                tokio::spawn(connection);
                job(handle).await
            })
        });
        worker.join().unwrap_or_else(|_| {
            Err(NetworkError::Worker {
                source: io::Error::other("netlink worker panicked"),
            })
        })
    })
}

/// Runs `job` on one worker thread with two netlink handles: one in the host namespace and
/// one inside the namespace of `netns_pid`. A netlink socket keeps the namespace it was
/// opened in, so the worker opens the host socket, joins the container's namespace, then
/// opens the second: one thread and one event loop for a whole attachment, which keeps a
/// thread hand-off (costly on a loaded host) off the container start path.
fn with_netlink_pair<T, F>(netns_pid: i32, job: F) -> Result<T, NetworkError>
where
    T: Send,
    F: AsyncFnOnce(Handle, Handle) -> Result<T, NetworkError> + Send,
{
    std::thread::scope(|scope| {
        let worker = scope.spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .map_err(|source| NetworkError::Worker { source })?;
            runtime.block_on(async move {
                let worker_err = |source| NetworkError::Worker { source };
                let (connection, host, _) = rtnetlink::new_connection().map_err(worker_err)?;
                tokio::spawn(connection);
                let netns_err = |source| NetworkError::Netns {
                    pid: netns_pid,
                    source,
                };
                let ns = File::open(format!("/proc/{netns_pid}/ns/net")).map_err(netns_err)?;
                nix::sched::setns(ns, CloneFlags::CLONE_NEWNET)
                    .map_err(|errno| netns_err(io::Error::from(errno)))?;
                let (connection, inside, _) = rtnetlink::new_connection().map_err(worker_err)?;
                tokio::spawn(connection);
                job(host, inside).await
            })
        });
        worker.join().unwrap_or_else(|_| {
            Err(NetworkError::Worker {
                source: io::Error::other("netlink worker panicked"),
            })
        })
    })
}

async fn index_of(handle: &Handle, name: &str) -> Result<Option<u32>, NetworkError> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(link)) => Ok(Some(link.header.index)),
        Ok(None) => Ok(None),
        Err(err) if matches!(errno(&err), Some(ENODEV | ENOENT)) => Ok(None),
        Err(err) => Err(netlink_err(format!("find link {name}"))(err)),
    }
}

/// Whether a device called `name` exists in the host namespace (read from sysfs).
pub(crate) fn host_link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Adds `ip/prefix` to interface `index` (an address it has already is fine). IPv6
/// addresses skip duplicate address detection (`nodad`): they are berth's to hand out, and
/// DAD would leave them unusable for a second or more after start.
async fn add_address(
    handle: &Handle,
    index: u32,
    ip: IpAddr,
    prefix: u8,
    what: &str,
    exist_ok: bool,
) -> Result<(), NetworkError> {
    let mut req = handle.address().add(index, ip, prefix);
    if ip.is_ipv6() {
        req.message_mut()
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    match req.execute().await {
        Ok(()) => Ok(()),
        Err(err) if exist_ok && errno(&err) == Some(EEXIST) => Ok(()),
        Err(err) => Err(netlink_err(format!("address {ip}/{prefix} on {what}"))(err)),
    }
}

/// Creates bridge `name` with `gateway/prefix` (and the IPv6 gateway of a dual-stack
/// network) and brings it up; an existing bridge gets the addresses it lacks. Returns
/// whether the bridge was created.
pub(crate) fn ensure_bridge(
    name: &str,
    gateway: Ipv4Addr,
    prefix: u8,
    gateway6: Option<(Ipv6Addr, u8)>,
    mtu: Option<u32>,
) -> Result<bool, NetworkError> {
    with_netlink(None, async |handle: Handle| {
        let mut created = false;
        let index = match index_of(&handle, name).await? {
            Some(index) => index,
            None => {
                // A fixed address: otherwise the bridge takes the lowest MAC of its ports and
                // changes it as containers come and go, leaving stale gateway ARP entries in
                // the containers. Derived from the gateway IP, which no container holds.
                let mut builder =
                    LinkBridge::new(name).address(MacAddr::from_ip(gateway).0.to_vec());
                if let Some(mtu) = mtu {
                    builder = builder.mtu(mtu);
                }
                handle
                    .link()
                    .add(builder.build())
                    .execute()
                    .await
                    .map_err(netlink_err(format!("create bridge {name}")))?;
                created = true;
                index_of(&handle, name)
                    .await?
                    .ok_or_else(|| NetworkError::Netlink {
                        op: format!("find new bridge {name}"),
                        source: rtnetlink::Error::RequestFailed,
                    })?
            }
        };
        add_address(&handle, index, gateway.into(), prefix, name, true).await?;
        if let Some((gateway6, prefix6)) = gateway6 {
            add_address(&handle, index, gateway6.into(), prefix6, name, true).await?;
        }
        handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(netlink_err(format!("bring up {name}")))?;
        Ok(created)
    })
}

/// Deletes a host device (a bridge, or the host end of a veth pair, which takes its peer
/// with it). A device that is already gone is not an error.
pub(crate) fn delete_host_link(name: &str) -> Result<(), NetworkError> {
    with_netlink(None, async |handle: Handle| {
        delete_link(&handle, name).await
    })
}

async fn delete_link(handle: &Handle, name: &str) -> Result<(), NetworkError> {
    let Some(index) = index_of(handle, name).await? else {
        return Ok(());
    };
    match handle.link().del(index).execute().await {
        Ok(()) => Ok(()),
        Err(err) if matches!(errno(&err), Some(ENODEV | ENOENT)) => Ok(()),
        Err(err) => Err(netlink_err(format!("delete {name}"))(err)),
    }
}

/// Deletes interface `ifname` inside the namespace of `netns_pid` (a macvlan child). A
/// namespace or device that is gone is not an error.
pub(crate) fn delete_in_netns(netns_pid: i32, ifname: &str) -> Result<(), NetworkError> {
    match with_netlink(Some(netns_pid), async |handle: Handle| {
        delete_link(&handle, ifname).await
    }) {
        Err(NetworkError::Netns { .. }) => Ok(()),
        other => other,
    }
}

/// The container side of an interface: its address and default route.
#[derive(Debug, Clone)]
pub(crate) struct InterfaceConfig {
    pub netns_pid: i32,
    pub ifname: String,
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    /// The default route's gateway; `None` for internal networks, or when the container
    /// already has a default route through an earlier network.
    pub gateway: Option<Ipv4Addr>,
    /// The IPv6 address and prefix on a dual-stack network.
    pub ip6: Option<(Ipv6Addr, u8)>,
    /// The IPv6 default route's gateway (as `gateway`).
    pub gateway6: Option<Ipv6Addr>,
    pub mtu: Option<u32>,
}

/// Creates a veth pair: `host_name` on `bridge`, its peer `iface.ifname` inside the
/// container, then configures the container side.
pub(crate) fn attach_veth(
    bridge: &str,
    host_name: &str,
    iface: &InterfaceConfig,
) -> Result<(), NetworkError> {
    let bridge_index = read_ifindex(bridge)?;
    with_netlink_pair(iface.netns_pid, async |handle: Handle, inside: Handle| {
        let mut peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(iface.ifname.clone())
            .address(iface.mac.0.to_vec())
            .setns_by_pid(iface.netns_pid as u32);
        let mut host = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(host_name.to_string())
            .controller(bridge_index)
            .up();
        if let Some(mtu) = iface.mtu {
            peer = peer.mtu(mtu);
            host = host.mtu(mtu);
        }
        let host = host
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
            .build();
        handle
            .link()
            .add(host)
            .execute()
            .await
            .map_err(netlink_err(format!("create veth {host_name} on {bridge}")))?;
        if let Err(err) = configure(&inside, iface).await {
            // Nothing half-made: the pair goes with its host end.
            let _ = delete_link(&handle, host_name).await;
            return Err(err);
        }
        Ok(())
    })
}

/// Creates a macvlan child of host device `parent` as `iface.ifname` inside the container,
/// then configures it.
pub(crate) fn attach_macvlan(parent: &str, iface: &InterfaceConfig) -> Result<(), NetworkError> {
    let parent_index = read_ifindex(parent)?;
    with_netlink(None, async |handle: Handle| {
        let mut child = LinkMacVlan::new(&iface.ifname, parent_index, MacVlanMode::Bridge)
            .address(iface.mac.0.to_vec())
            .setns_by_pid(iface.netns_pid as u32);
        if let Some(mtu) = iface.mtu {
            child = child.mtu(mtu);
        }
        handle
            .link()
            .add(child.build())
            .execute()
            .await
            .map_err(netlink_err(format!("create macvlan on {parent}")))
    })?;
    if let Err(err) = configure_inside(iface) {
        let _ = delete_in_netns(iface.netns_pid, &iface.ifname);
        return Err(err);
    }
    Ok(())
}

/// Inside the container: address, link up, loopback up, default route.
fn configure_inside(iface: &InterfaceConfig) -> Result<(), NetworkError> {
    with_netlink(Some(iface.netns_pid), async |handle: Handle| {
        configure(&handle, iface).await
    })
}

/// [`configure_inside`] with a handle in the container's namespace.
async fn configure(handle: &Handle, iface: &InterfaceConfig) -> Result<(), NetworkError> {
    {
        let name = &iface.ifname;
        let index = index_of(handle, name)
            .await?
            .ok_or_else(|| NetworkError::Netlink {
                op: format!("find {name} in container"),
                source: rtnetlink::Error::RequestFailed,
            })?;
        add_address(handle, index, iface.ip.into(), iface.prefix, name, false).await?;
        if let Some((ip6, prefix6)) = iface.ip6 {
            // The worker thread is inside the container's namespace, so /proc/sys/net is
            // the container's: IPv6 on for this interface, as Docker does.
            // No duplicate address detection, for the link-local address either: every
            // address is usable as soon as the container starts.
            for (key, value) in [("disable_ipv6", "0"), ("accept_dad", "0")] {
                set_sysctl(
                    Path::new("/proc/sys"),
                    &format!("net/ipv6/conf/{name}/{key}"),
                    value,
                )?;
            }
            add_address(handle, index, ip6.into(), prefix6, name, false).await?;
        }
        handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(netlink_err(format!("bring up {name}")))?;
        // Loopback is always index 1 in a network namespace (LOOPBACK_IFINDEX).
        handle
            .link()
            .set(LinkUnspec::new_with_index(1).up().build())
            .execute()
            .await
            .map_err(netlink_err("bring up lo"))?;
        if let Some(gateway) = iface.gateway {
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(gateway)
                .output_interface(index)
                .build();
            match handle.route().add(route).execute().await {
                Ok(()) => {}
                // An earlier network already gave the container its default route.
                Err(err) if errno(&err) == Some(EEXIST) => {}
                Err(err) => return Err(netlink_err(format!("default route via {gateway}"))(err)),
            }
        }
        if let Some(gateway6) = iface.gateway6 {
            let route = RouteMessageBuilder::<Ipv6Addr>::new()
                .gateway(gateway6)
                .output_interface(index)
                .build();
            match handle.route().add(route).execute().await {
                Ok(()) => {}
                Err(err) if errno(&err) == Some(EEXIST) => {}
                Err(err) => return Err(netlink_err(format!("default route via {gateway6}"))(err)),
            }
        }
        Ok(())
    }
}

/// The interface index of host device `name`, from sysfs (no netlink round trip).
fn read_ifindex(name: &str) -> Result<u32, NetworkError> {
    let path = Path::new("/sys/class/net").join(name).join("ifindex");
    let text = std::fs::read_to_string(&path).map_err(|source| NetworkError::Io {
        op: "read",
        path: path.clone(),
        source,
    })?;
    text.trim().parse().map_err(|_| NetworkError::Io {
        op: "parse",
        path,
        source: io::Error::from(io::ErrorKind::InvalidData),
    })
}

/// Raises a numeric sysctl to at least `min` (never lowers one an admin set higher).
pub(crate) fn raise_sysctl(proc_sys: &Path, key: &str, min: u32) -> Result<(), NetworkError> {
    let path = proc_sys.join(key);
    let current = std::fs::read_to_string(&path)
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok());
    match current {
        Some(v) if v >= min => Ok(()),
        // A sysctl tree without the key (a test fixture, an odd kernel): nothing to raise.
        None if !path.exists() => Ok(()),
        _ => set_sysctl(proc_sys, key, &min.to_string()),
    }
}

/// Writes a sysctl file under `proc_sys` (e.g. `net/ipv4/ip_forward`), skipping the write
/// when it already holds `value`.
pub(crate) fn set_sysctl(proc_sys: &Path, key: &str, value: &str) -> Result<(), NetworkError> {
    let path = proc_sys.join(key);
    if std::fs::read_to_string(&path).is_ok_and(|cur| cur.trim() == value) {
        return Ok(());
    }
    std::fs::write(&path, value).map_err(|source| NetworkError::Io {
        op: "write",
        path,
        source,
    })
}
