//! Published ports: the `-p` syntax, Docker's `PortBindings` form, and host-port reservation.
//!
//! Traffic to a published port is forwarded in the kernel (DNAT, see `nft`), so no process
//! listens on the host port. To keep other programs (and other containers) off it, berth
//! binds a socket to the host address and port and holds it while the port is published
//! (TCP sockets are bound but not listening, so they never accept a connection). A port
//! that cannot be bound is reported as Docker does: `Bind for 0.0.0.0:8080 failed: port is
//! already allocated`. A port of 0 lets the kernel pick a free one.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, SockaddrIn6, bind, getsockname, listen,
    setsockopt, socket, sockopt,
};
use serde::{Deserialize, Serialize};

use crate::error::NetworkError;

/// A transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (the default).
    Tcp,
    /// UDP.
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

impl FromStr for Protocol {
    type Err = NetworkError;

    fn from_str(s: &str) -> Result<Self, NetworkError> {
        match s {
            "" | "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            other => Err(NetworkError::InvalidPortSpec {
                spec: other.to_string(),
                reason: "unsupported protocol",
            }),
        }
    }
}

/// A request to publish one container port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortBinding {
    /// The port inside the container.
    pub container_port: u16,
    /// Its protocol.
    pub protocol: Protocol,
    /// The host address to accept on; `None` means every address (0.0.0.0, and :: when the
    /// container has an IPv6 address).
    pub host_ip: Option<IpAddr>,
    /// The host ports to choose from (inclusive); `(0, 0)` means any free port.
    pub host_ports: (u16, u16),
}

impl PortBinding {
    /// One binding from Docker's `HostConfig.PortBindings` form: the key (`80/tcp`) and one
    /// `{HostIp, HostPort}` entry (`HostPort` may be empty, a port, or a range `8000-8010`).
    pub fn from_docker(key: &str, host_ip: &str, host_port: &str) -> Result<Self, NetworkError> {
        let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
        let bad = |reason| NetworkError::InvalidPortSpec {
            spec: key.to_string(),
            reason,
        };
        let container_port = parse_port(port).ok_or_else(|| bad("invalid container port"))?;
        let host_ip = match host_ip {
            "" => None,
            ip => Some(ip.parse().map_err(|_| NetworkError::InvalidPortSpec {
                spec: ip.to_string(),
                reason: "invalid host IP address",
            })?),
        };
        let host_ports =
            parse_port_range(host_port).ok_or_else(|| NetworkError::InvalidPortSpec {
                spec: host_port.to_string(),
                reason: "invalid host port",
            })?;
        Ok(Self {
            container_port,
            protocol: proto.parse()?,
            host_ip,
            host_ports,
        })
    }
}

/// Parses one `-p` value: `CTR`, `HOST:CTR`, `IP:HOST:CTR`, `IP::CTR`, each with an optional
/// `/tcp` or `/udp`; host and container parts may be equal-length ranges (`8000-8001:80-81`).
pub fn parse_publish_spec(spec: &str) -> Result<Vec<PortBinding>, NetworkError> {
    let bad = |reason| NetworkError::InvalidPortSpec {
        spec: spec.to_string(),
        reason,
    };
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((rest, proto)) => (rest, proto.parse::<Protocol>()?),
        None => (spec, Protocol::Tcp),
    };
    // `[::1]:8080:80`: an IPv6 host address in brackets.
    let (bracketed, rest) = match rest.strip_prefix('[') {
        Some(r) => {
            let (ip, after) = r.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            let after = after
                .strip_prefix(':')
                .ok_or_else(|| bad("invalid host IP"))?;
            (Some(ip), after)
        }
        None => (None, rest),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, ctr) = match (bracketed, parts.as_slice()) {
        (None, [ctr]) => ("", "", *ctr),
        (None, [host, ctr]) => ("", *host, *ctr),
        (None, [ip, host, ctr]) => (*ip, *host, *ctr),
        (Some(ip), [host, ctr]) => (ip, *host, *ctr),
        _ => return Err(bad("too many colons")),
    };
    let host_ip: Option<IpAddr> = match ip {
        "" => None,
        ip => Some(ip.parse().map_err(|_| bad("invalid host IP address"))?),
    };
    if bracketed.is_some() && !host_ip.is_some_and(|ip| ip.is_ipv6()) {
        return Err(bad("only IPv6 addresses go in brackets"));
    }
    let (ctr_first, ctr_last) = parse_port_range(ctr)
        .filter(|(first, _)| *first != 0)
        .ok_or_else(|| bad("invalid container port"))?;
    let (host_first, host_last) = parse_port_range(host).ok_or_else(|| bad("invalid host port"))?;
    let count = ctr_last - ctr_first;
    if host_first != 0 && ctr_last != ctr_first && host_last - host_first != count {
        return Err(bad("host and container port ranges differ in length"));
    }
    Ok((0..=count)
        .map(|i| PortBinding {
            container_port: ctr_first + i,
            protocol: proto,
            host_ip,
            host_ports: if host_first == 0 {
                (0, 0)
            } else if count == 0 {
                (host_first, host_last)
            } else {
                (host_first + i, host_first + i)
            },
        })
        .collect())
}

fn parse_port(s: &str) -> Option<u16> {
    s.parse::<u16>().ok().filter(|p| *p != 0)
}

/// `""` → (0, 0); `"80"` → (80, 80); `"80-90"` → (80, 90).
fn parse_port_range(s: &str) -> Option<(u16, u16)> {
    if s.is_empty() {
        return Some((0, 0));
    }
    match s.split_once('-') {
        None => parse_port(s).map(|p| (p, p)),
        Some((a, b)) => {
            let (a, b) = (parse_port(a)?, parse_port(b)?);
            (a <= b).then_some((a, b))
        }
    }
}

/// A port that is published: where it is reachable on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PublishedPort {
    /// The port inside the container.
    pub container_port: u16,
    /// Its protocol.
    pub protocol: Protocol,
    /// The host address (0.0.0.0 or :: for all).
    pub host_ip: IpAddr,
    /// The host port.
    pub host_port: u16,
    /// The container address the port is forwarded to (of the same family as `host_ip`).
    pub container_ip: IpAddr,
}

impl PublishedPort {
    /// The `NetworkSettings.Ports` key: `80/tcp`.
    pub fn docker_key(&self) -> String {
        format!("{}/{}", self.container_port, self.protocol)
    }
}

/// A held host port: the bound socket keeps anyone else from binding it.
#[derive(Debug)]
pub(crate) struct Reservation {
    /// Kept for its effect (closing it frees the port), and the listener of a proxy.
    socket: OwnedFd,
    pub(crate) port: u16,
    /// Whether a [`proxy_loopback6`] thread accepts on `socket`.
    proxied: bool,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.proxied {
            // Wakes the proxy's blocked accept() (with an error), which ends its thread.
            let _ = nix::sys::socket::shutdown(
                self.socket.as_raw_fd(),
                nix::sys::socket::Shutdown::Both,
            );
        }
    }
}

/// IPv6 has no `route_localnet`: the kernel drops a packet from `::1` that DNAT sends out
/// of a bridge. So `[::1]:PORT` is served as dockerd's userland proxy does: the DNAT rules
/// leave `::1` alone, the traffic lands on the reservation's `[::]:PORT` socket (every other
/// address is DNATed before it), and a thread relays it to `target`: TCP connections (the
/// socket then listens) or UDP datagrams (see [`relay_udp`]). The thread ends when the
/// reservation is dropped.
pub(crate) fn proxy_loopback6(
    reservation: &mut Reservation,
    protocol: Protocol,
    target: SocketAddr,
) -> Result<(), NetworkError> {
    let port = reservation.port;
    let reserve_err = |source| NetworkError::PortReserve {
        host_port: port,
        source,
    };
    let fd = reservation.socket.try_clone().map_err(reserve_err)?;
    let name = format!("proxy6-{protocol}-{port}");
    let spawned = match protocol {
        Protocol::Tcp => {
            listen(&fd, Backlog::new(128).unwrap_or(Backlog::MAXCONN))
                .map_err(|errno| reserve_err(errno.into()))?;
            let listener = std::net::TcpListener::from(fd);
            std::thread::Builder::new().name(name).spawn(move || {
                // Bounded by the listener: accept fails once the reservation shuts it down.
                while let Ok((client, _)) = listener.accept() {
                    let _ = std::thread::Builder::new()
                        .name("proxy6-conn".into())
                        .spawn(move || relay(client, target));
                }
            })
        }
        Protocol::Udp => {
            let socket = std::net::UdpSocket::from(fd);
            std::thread::Builder::new()
                .name(name)
                .spawn(move || relay_udp(&socket, target, UDP_IDLE))
        }
    };
    spawned.map_err(|source| NetworkError::Worker { source })?;
    reservation.proxied = true;
    Ok(())
}

/// How long a UDP flow of the `[::1]` proxy lives without a reply from the container
/// (docker-proxy's `UDPConnTrackTimeout`).
const UDP_IDLE: Duration = Duration::from_secs(90);

/// At most this many UDP clients at once; datagrams of further ones are dropped.
const UDP_MAX_FLOWS: usize = 1024;

/// The flows of one UDP proxy, by client address: each a socket connected to the target.
type Flows = Arc<Mutex<HashMap<SocketAddr, UdpSocket>>>;

/// The UDP half of the `[::1]` proxy, as docker-proxy's: each client address gets a flow,
/// a socket connected to `target`; datagrams from the client go out on it, and a thread per
/// flow sends the replies back to the client from `socket` (so they come from `[::1]:PORT`)
/// until the flow has been idle for `idle`. Ends, with every flow, when the reservation
/// shuts `socket` down (a receive then returns without a sender).
fn relay_udp(socket: &UdpSocket, target: SocketAddr, idle: Duration) {
    let flows: Flows = Arc::default();
    let closed = Arc::new(AtomicBool::new(false));
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, client) =
            match nix::sys::socket::recvfrom::<SockaddrIn6>(socket.as_raw_fd(), &mut buf) {
                Ok((n, Some(from))) => (n, SocketAddr::V6(SocketAddrV6::from(from))),
                Err(nix::errno::Errno::EINTR) => continue,
                // No sender: woken by the shutdown. Any other error: the socket is unusable.
                Ok((_, None)) | Err(_) => break,
            };
        let mut table = flows.lock().unwrap_or_else(|p| p.into_inner());
        if !table.contains_key(&client) {
            if table.len() >= UDP_MAX_FLOWS {
                continue;
            }
            match udp_flow(socket, target, client, idle, &flows, &closed) {
                Ok(flow) => table.insert(client, flow),
                Err(_) => continue,
            };
        }
        if let Some(flow) = table.get(&client) {
            let _ = flow.send(&buf[..n]);
        }
    }
    closed.store(true, Ordering::SeqCst);
    for flow in flows.lock().unwrap_or_else(|p| p.into_inner()).values() {
        // Wakes the flow's blocked receive, which then sees `closed`.
        let _ = nix::sys::socket::shutdown(flow.as_raw_fd(), nix::sys::socket::Shutdown::Both);
    }
}

/// A new flow of [`relay_udp`] for `client`: its socket to `target` and the thread that
/// relays the replies, which removes the flow when it ends.
fn udp_flow(
    socket: &UdpSocket,
    target: SocketAddr,
    client: SocketAddr,
    idle: Duration,
    flows: &Flows,
    closed: &Arc<AtomicBool>,
) -> std::io::Result<UdpSocket> {
    let any: SocketAddr = match target {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let flow = UdpSocket::bind(any)?;
    flow.connect(target)?;
    flow.set_read_timeout(Some(idle))?;
    let (upstream, reply_to) = (flow.try_clone()?, socket.try_clone()?);
    let (flows, closed) = (flows.clone(), closed.clone());
    std::thread::Builder::new()
        .name("proxy6-udp-flow".into())
        .spawn(move || {
            let mut buf = vec![0u8; 65536];
            loop {
                let got = upstream.recv(&mut buf);
                if closed.load(Ordering::SeqCst) {
                    return;
                }
                match got {
                    Ok(n) => {
                        let _ = reply_to.send_to(&buf[..n], client);
                    }
                    // The container's port is closed (ICMP unreachable): the flow stays.
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::Interrupted
                        ) => {}
                    // Idle for `idle` (or broken): the flow ends.
                    Err(_) => break,
                }
            }
            flows
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&client);
        })?;
    Ok(flow)
}

/// Copies both ways between `client` and a new connection to `target` until both close.
fn relay(client: std::net::TcpStream, target: SocketAddr) {
    use std::net::{Shutdown, TcpStream};
    let Ok(server) = TcpStream::connect_timeout(&target, std::time::Duration::from_secs(5)) else {
        return;
    };
    let (Ok(mut client_r), Ok(mut server_w)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let upstream = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_r, &mut server_w);
        let _ = server_w.shutdown(Shutdown::Write);
    });
    let (mut server_r, mut client_w) = (server, client);
    let _ = std::io::copy(&mut server_r, &mut client_w);
    let _ = client_w.shutdown(Shutdown::Write);
    let _ = upstream.join();
}

/// Binds `ip:port` for `protocol` (port 0: any free port) and returns the held socket.
pub(crate) fn reserve(
    protocol: Protocol,
    ip: IpAddr,
    port: u16,
) -> Result<Reservation, NetworkError> {
    let in_use = || NetworkError::PortAllocated {
        host_ip: ip,
        host_port: port,
    };
    let kind = match protocol {
        Protocol::Tcp => SockType::Stream,
        Protocol::Udp => SockType::Datagram,
    };
    let family = match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    let reserve_err = |errno: nix::errno::Errno| NetworkError::PortReserve {
        host_port: port,
        source: errno.into(),
    };
    let socket = socket(family, kind, SockFlag::SOCK_CLOEXEC, None).map_err(reserve_err)?;
    // `[::]:PORT` is its own reservation beside `0.0.0.0:PORT`, as dockerd's pair of them.
    if ip.is_ipv6() {
        setsockopt(&socket, sockopt::Ipv6V6Only, &true).map_err(reserve_err)?;
    }
    // TCP: SO_REUSEADDR, as dockerd, so a port whose last connections are in TIME_WAIT can
    // be published again; the socket then listens (backlog 0; the DNAT rules take the
    // traffic before it), because on Linux a bind with SO_REUSEADDR conflicts only with a
    // listening socket: two sockets that are merely bound could share the port. UDP has no
    // TIME_WAIT and no listen, so it keeps the plain bind that excludes any other.
    if protocol == Protocol::Tcp {
        setsockopt(&socket, sockopt::ReuseAddr, &true).map_err(|errno| {
            NetworkError::PortReserve {
                host_port: port,
                source: errno.into(),
            }
        })?;
    }
    let fd = socket.as_raw_fd();
    match ip {
        IpAddr::V4(ip) => bind(fd, &SockaddrIn::from(SocketAddrV4::new(ip, port))),
        IpAddr::V6(ip) => bind(fd, &SockaddrIn6::from(SocketAddrV6::new(ip, port, 0, 0))),
    }
    .map_err(|_| in_use())?;
    if protocol == Protocol::Tcp {
        listen(&socket, Backlog::new(0).unwrap_or(Backlog::MAXCONN)).map_err(|_| in_use())?;
    }
    let bound = match ip {
        IpAddr::V4(_) => getsockname::<SockaddrIn>(fd).map(|a| a.port()),
        IpAddr::V6(_) => getsockname::<SockaddrIn6>(fd).map(|a| a.port()),
    }
    .map_err(reserve_err)?;
    Ok(Reservation {
        socket,
        port: bound,
        proxied: false,
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn one(spec: &str) -> PortBinding {
        let mut all = parse_publish_spec(spec).unwrap();
        assert_eq!(all.len(), 1, "{spec}");
        all.remove(0)
    }

    #[test]
    fn a_port_in_time_wait_can_be_reserved_and_a_reservation_is_exclusive() {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (server, _) = listener.accept().unwrap();
        // The server closes first: its end (127.0.0.1:port) goes to TIME_WAIT.
        drop(server);
        let _ = client.read(&mut [0u8; 1]);
        drop(client);
        drop(listener);
        let held =
            reserve(Protocol::Tcp, Ipv4Addr::LOCALHOST.into(), port).expect("TIME_WAIT port");
        assert_eq!(held.port, port);
        assert!(matches!(
            reserve(Protocol::Tcp, Ipv4Addr::LOCALHOST.into(), port),
            Err(NetworkError::PortAllocated { .. })
        ));
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_err());
        let udp = reserve(Protocol::Udp, Ipv4Addr::LOCALHOST.into(), 0).unwrap();
        assert!(matches!(
            reserve(Protocol::Udp, Ipv4Addr::LOCALHOST.into(), udp.port),
            Err(NetworkError::PortAllocated { .. })
        ));
    }

    /// An echo server on `[::1]` standing in for a container's UDP port: it answers each
    /// datagram with `echo:` before it, `count` times.
    fn udp_echo(count: usize) -> (SocketAddr, std::thread::JoinHandle<()>) {
        let server = UdpSocket::bind("[::1]:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let addr = server.local_addr().unwrap();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            for _ in 0..count {
                let Ok((n, from)) = server.recv_from(&mut buf) else {
                    return;
                };
                let reply = [b"echo:", &buf[..n]].concat();
                server.send_to(&reply, from).unwrap();
            }
        });
        (addr, thread)
    }

    #[test]
    fn udp_proxy_relays_datagrams_both_ways_and_ends_with_its_reservation() {
        let (target, echo) = udp_echo(3);
        let mut held = reserve(Protocol::Udp, Ipv6Addr::UNSPECIFIED.into(), 0).unwrap();
        let port = held.port;
        proxy_loopback6(&mut held, Protocol::Udp, target).unwrap();
        // Two clients, each answered on its own address, from [::1]:PORT.
        let clients: Vec<UdpSocket> = (0..2)
            .map(|_| {
                let c = UdpSocket::bind("[::1]:0").unwrap();
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                c.connect(("::1", port)).unwrap();
                c
            })
            .collect();
        let mut buf = [0u8; 100];
        for (i, msg) in [(0, "one"), (1, "two"), (0, "three")] {
            clients[i].send(msg.as_bytes()).unwrap();
            let n = clients[i]
                .recv(&mut buf)
                .expect("a reply through the proxy");
            assert_eq!(&buf[..n], format!("echo:{msg}").as_bytes());
        }
        echo.join().unwrap();
        // The reservation gone, the proxy and its flows end and the port is free again.
        drop(held);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while UdpSocket::bind(("::", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "port {port} still held"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn publish_specs() {
        let b = one("8080:80");
        assert_eq!(
            (b.container_port, b.host_ports, b.host_ip),
            (80, (8080, 8080), None)
        );
        assert_eq!(b.protocol, Protocol::Tcp);
        let b = one("127.0.0.1:9000:90/udp");
        assert_eq!(b.host_ip, Some(Ipv4Addr::LOCALHOST.into()));
        assert_eq!(
            (b.container_port, b.host_ports, b.protocol),
            (90, (9000, 9000), Protocol::Udp)
        );
        let b = one("80");
        assert_eq!(b.host_ports, (0, 0));
        let b = one("127.0.0.1::80");
        assert_eq!(
            (b.host_ip, b.host_ports),
            (Some(Ipv4Addr::LOCALHOST.into()), (0, 0))
        );
        let b = one("8000-8010:80");
        assert_eq!(b.host_ports, (8000, 8010));
        let b = one("[::1]:8080:80/udp");
        assert_eq!(b.host_ip, Some("::1".parse().unwrap()));
        assert_eq!((b.host_ports, b.container_port), ((8080, 8080), 80));
        let b = one("[fd00::1]::80");
        assert_eq!(
            (b.host_ip.unwrap().to_string(), b.host_ports),
            ("fd00::1".into(), (0, 0))
        );
        let range = parse_publish_spec("8000-8001:80-81").unwrap();
        assert_eq!(range[1].container_port, 81);
        assert_eq!(range[1].host_ports, (8001, 8001));
    }

    #[test]
    fn bad_publish_specs() {
        for bad in [
            "",
            "0",
            "x:80",
            "80:x",
            "1.2.3:80:80",
            "8080:80/sctp",
            "a:b:c:d",
            "70000:80",
            "8000-8002:80-81",
            "90-80:80",
            "[::1:80:80",
            "[127.0.0.1]:80:80",
            "[::1]:80",
        ] {
            assert!(parse_publish_spec(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn docker_port_bindings() {
        let b = PortBinding::from_docker("80/tcp", "", "8080").unwrap();
        assert_eq!(
            (b.container_port, b.host_ports, b.host_ip),
            (80, (8080, 8080), None)
        );
        let b = PortBinding::from_docker("53/udp", "127.0.0.1", "").unwrap();
        assert_eq!((b.protocol, b.host_ports), (Protocol::Udp, (0, 0)));
        assert!(PortBinding::from_docker("80/tcp", "nope", "1").is_err());
        assert!(PortBinding::from_docker("x/tcp", "", "1").is_err());
    }

    #[test]
    fn reservation_holds_the_port() {
        let held = reserve(Protocol::Tcp, Ipv4Addr::LOCALHOST.into(), 0).unwrap();
        assert_ne!(held.port, 0);
        let err = reserve(Protocol::Tcp, Ipv4Addr::LOCALHOST.into(), held.port).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Bind for 127.0.0.1:{} failed: port is already allocated",
                held.port
            )
        );
        let port = held.port;
        drop(held);
        reserve(Protocol::Tcp, Ipv4Addr::LOCALHOST.into(), port).unwrap();
        let udp = reserve(Protocol::Udp, Ipv4Addr::LOCALHOST.into(), 0).unwrap();
        assert!(reserve(Protocol::Udp, Ipv4Addr::LOCALHOST.into(), udp.port).is_err());
    }
}
