//! The embedded DNS server of a user network (as in Docker, the default bridge has none).
//!
//! Each user network gets one UDP server on its gateway address, port 53, run by a thread of
//! the daemon; containers on the network get `nameserver <gateway>` in their resolv.conf.
//! The server answers A queries for the names of the containers on that network (container
//! name, aliases, short id), answers other record types for those names with an empty
//! NOERROR, and forwards everything else to the host's resolvers (from `/etc/resolv.conf`),
//! or answers NXDOMAIN when there are none. Only the message subset needed for that is
//! encoded: one question, A answers with a compression pointer to it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::NetworkError;

/// Record type A.
pub const TYPE_A: u16 = 1;
/// The AAAA record type (an IPv6 address).
pub const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
/// Response code: no error.
pub const RCODE_NOERROR: u8 = 0;
/// Response code: server failure.
pub const RCODE_SERVFAIL: u8 = 2;
/// Response code: the name does not exist.
pub const RCODE_NXDOMAIN: u8 = 3;
const TTL_SECONDS: u32 = 600;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// At most this many forwarded queries are in flight per server; more get SERVFAIL.
const MAX_FORWARDS: usize = 64;

/// A decoded single-question query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The transaction id.
    pub id: u16,
    /// The flags word as received (opcode, RD…).
    pub flags: u16,
    /// The name asked for, lower-case, without the trailing dot.
    pub name: String,
    /// The record type asked for.
    pub qtype: u16,
    /// The class asked for.
    pub qclass: u16,
    /// The question section as received, echoed in the answer.
    question: Vec<u8>,
}

/// Decodes a query with exactly one question; `None` for anything else (answers, malformed
/// packets, compression in the question).
pub fn parse_query(packet: &[u8]) -> Option<Query> {
    let header = packet.get(..12)?;
    let id = u16::from_be_bytes([header[0], header[1]]);
    let flags = u16::from_be_bytes([header[2], header[3]]);
    let qdcount = u16::from_be_bytes([header[4], header[5]]);
    if flags & 0x8000 != 0 || qdcount != 1 {
        return None;
    }
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*packet.get(pos)?);
        pos += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        let label = packet.get(pos..pos + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        pos += len;
    }
    let tail = packet.get(pos..pos + 4)?;
    let qtype = u16::from_be_bytes([tail[0], tail[1]]);
    let qclass = u16::from_be_bytes([tail[2], tail[3]]);
    Some(Query {
        id,
        flags,
        name: labels.join("."),
        qtype,
        qclass,
        question: packet[12..pos + 4].to_vec(),
    })
}

/// Encodes a query for `name` (used by tests and health checks).
pub fn encode_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out
}

/// Encodes the answer to `query`: `rcode` and one A (IPv4) or AAAA (IPv6) record per
/// address.
pub fn encode_response(query: &Query, rcode: u8, answers: &[IpAddr]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + query.question.len() + 16 * answers.len());
    out.extend_from_slice(&query.id.to_be_bytes());
    // QR, the query's opcode and RD, AA (we are the authority for container names), RA.
    let flags = 0x8000 | (query.flags & 0x7900) | 0x0400 | 0x0080 | u16::from(rcode & 0xf);
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&query.question);
    for ip in answers {
        let (rtype, data) = match ip {
            IpAddr::V4(ip) => (TYPE_A, ip.octets().to_vec()),
            IpAddr::V6(ip) => (TYPE_AAAA, ip.octets().to_vec()),
        };
        out.extend_from_slice(&0xc00cu16.to_be_bytes()); // pointer to the question's name
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&TTL_SECONDS.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(&data);
    }
    out
}

/// Reads a response: its id, rcode and A-record addresses (used by tests).
pub fn decode_response(packet: &[u8]) -> Option<(u16, u8, Vec<Ipv4Addr>)> {
    let id = u16::from_be_bytes([*packet.first()?, *packet.get(1)?]);
    let rcode = packet.get(3)? & 0xf;
    let ancount = u16::from_be_bytes([*packet.get(6)?, *packet.get(7)?]);
    let mut pos = 12;
    // Skip the question: labels up to the zero byte, then type and class.
    while *packet.get(pos)? != 0 {
        pos += usize::from(packet[pos]) + 1;
    }
    pos += 5;
    let mut addrs = Vec::new();
    for _ in 0..ancount {
        // Name: either a pointer (2 bytes) or labels.
        if packet.get(pos)? & 0xc0 == 0xc0 {
            pos += 2;
        } else {
            while *packet.get(pos)? != 0 {
                pos += usize::from(packet[pos]) + 1;
            }
            pos += 1;
        }
        let fixed = packet.get(pos..pos + 10)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        pos += 10;
        let data = packet.get(pos..pos + rdlen)?;
        if rtype == TYPE_A && rdlen == 4 {
            addrs.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        pos += rdlen;
    }
    Some((id, rcode, addrs))
}

/// Name → addresses (IPv4, and IPv6 on a dual-stack network) for one network, shared
/// between the service and the server thread.
pub type NameTable = Arc<RwLock<HashMap<String, Vec<IpAddr>>>>;

/// Client address on this network → the name tables of the client's other networks. A
/// container on several user networks asks the server of its first one (its resolv.conf
/// has one nameserver), and must still find the names of all its networks, as with
/// Docker's per-container resolver.
pub type PeerTables = Arc<RwLock<HashMap<Ipv4Addr, Vec<NameTable>>>>;

fn lookup(names: &NameTable, name: &str) -> Option<Vec<IpAddr>> {
    names.read().ok().and_then(|t| t.get(name).cloned())
}

/// What the server does with one query.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Answer(Vec<u8>),
    Forward,
}

fn decide(
    query: &Query,
    names: &NameTable,
    others: &[NameTable],
    have_upstreams: bool,
) -> Decision {
    let known =
        lookup(names, &query.name).or_else(|| others.iter().find_map(|t| lookup(t, &query.name)));
    match known {
        Some(addrs) if query.qclass == CLASS_IN && matches!(query.qtype, TYPE_A | TYPE_AAAA) => {
            let v6 = query.qtype == TYPE_AAAA;
            let addrs: Vec<IpAddr> = addrs.into_iter().filter(|a| a.is_ipv6() == v6).collect();
            Decision::Answer(encode_response(query, RCODE_NOERROR, &addrs))
        }
        // The name exists, just not with that record type (AAAA on an IPv4-only network:
        // no records, as Docker's resolver).
        Some(_) => Decision::Answer(encode_response(query, RCODE_NOERROR, &[])),
        None if have_upstreams => Decision::Forward,
        None => Decision::Answer(encode_response(query, RCODE_NXDOMAIN, &[])),
    }
}

/// Sends `packet` to each upstream in turn and returns the first answer.
fn forward(packet: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.set_read_timeout(Some(UPSTREAM_TIMEOUT)).ok()?;
    let mut buf = vec![0u8; 4096];
    for upstream in upstreams {
        if socket.send_to(packet, upstream).is_err() {
            continue;
        }
        if let Ok((n, from)) = socket.recv_from(&mut buf)
            && from == *upstream
            && buf.get(..2) == packet.get(..2)
        {
            return Some(buf[..n].to_vec());
        }
    }
    None
}

/// The host's resolvers from the text of resolv.conf, as socket addresses on port 53.
pub fn upstreams_from_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            let ip: std::net::IpAddr = words.next()?.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

/// A running DNS server; dropping it stops the thread.
#[derive(Debug)]
pub struct DnsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    /// Binds `addr` (UDP) and serves `names` (and, per client, its `peers` tables),
    /// forwarding unknown names to `upstreams`.
    pub fn start(
        addr: SocketAddr,
        names: NameTable,
        peers: PeerTables,
        upstreams: Vec<SocketAddr>,
    ) -> Result<Self, NetworkError> {
        let bind_err = |source| NetworkError::DnsBind {
            addr: match addr {
                SocketAddr::V4(a) => *a.ip(),
                SocketAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
            },
            source,
        };
        let socket = UdpSocket::bind(addr).map_err(bind_err)?;
        // A periodic wake-up bounds how long a stop can take if the wake packet is lost.
        socket
            .set_read_timeout(Some(Duration::from_millis(500)))
            .map_err(bind_err)?;
        let addr = socket.local_addr().map_err(bind_err)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("dns-{addr}"))
            .spawn(move || serve(socket, names, peers, Arc::new(upstreams), thread_stop))
            .map_err(|source| NetworkError::Worker { source })?;
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Ok(waker) = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)) {
            let _ = waker.send_to(&[], self.addr);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    socket: UdpSocket,
    names: NameTable,
    peers: PeerTables,
    upstreams: Arc<Vec<SocketAddr>>,
    stop: Arc<AtomicBool>,
) {
    let socket = Arc::new(socket);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::SeqCst) {
        let Ok((n, peer)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Some(query) = parse_query(&buf[..n]) else {
            continue;
        };
        let others = match peer {
            SocketAddr::V4(p) => peers
                .read()
                .ok()
                .and_then(|t| t.get(p.ip()).cloned())
                .unwrap_or_default(),
            SocketAddr::V6(_) => Vec::new(),
        };
        match decide(&query, &names, &others, !upstreams.is_empty()) {
            Decision::Answer(reply) => {
                let _ = socket.send_to(&reply, peer);
            }
            Decision::Forward => {
                if in_flight.fetch_add(1, Ordering::SeqCst) >= MAX_FORWARDS {
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    let _ = socket.send_to(&encode_response(&query, RCODE_SERVFAIL, &[]), peer);
                    continue;
                }
                let (socket, upstreams, counter) =
                    (socket.clone(), upstreams.clone(), in_flight.clone());
                let packet = buf[..n].to_vec();
                // Forwarding waits on the network; it must not hold up local answers.
                let spawned = std::thread::Builder::new()
                    .name("dns-forward".into())
                    .spawn(move || {
                        let reply = forward(&packet, &upstreams)
                            .unwrap_or_else(|| encode_response(&query, RCODE_SERVFAIL, &[]));
                        let _ = socket.send_to(&reply, peer);
                        counter.fetch_sub(1, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(&str, &str)]) -> NameTable {
        let mut map: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for (name, ip) in entries {
            map.entry(name.to_string())
                .or_default()
                .push(ip.parse().unwrap());
        }
        Arc::new(RwLock::new(map))
    }

    #[test]
    fn query_round_trip() {
        let packet = encode_query(0x1234, "Web.", TYPE_A);
        let q = parse_query(&packet).unwrap();
        assert_eq!(
            (q.id, q.name.as_str(), q.qtype, q.qclass),
            (0x1234, "web", TYPE_A, 1)
        );
        assert_eq!(q.flags & 0x0100, 0x0100);
        let reply = encode_response(
            &q,
            RCODE_NOERROR,
            &["172.20.0.5".parse().unwrap(), "172.20.0.6".parse().unwrap()],
        );
        let (id, rcode, addrs) = decode_response(&reply).unwrap();
        assert_eq!((id, rcode), (0x1234, RCODE_NOERROR));
        assert_eq!(
            addrs,
            [
                "172.20.0.5".parse::<Ipv4Addr>().unwrap(),
                "172.20.0.6".parse().unwrap()
            ]
        );
        assert!(parse_query(&reply).is_none(), "a response is not a query");
        assert!(parse_query(&packet[..15]).is_none(), "truncated");
    }

    #[test]
    fn decisions() {
        let names = table(&[("web", "172.20.0.5")]);
        let other = [table(&[("db", "172.30.0.9")])];
        let ask = |name: &str, qtype: u16, upstreams: bool| {
            decide(
                &parse_query(&encode_query(7, name, qtype)).unwrap(),
                &names,
                &[],
                upstreams,
            )
        };
        // A client on another network too finds that network's names.
        let Decision::Answer(a) = decide(
            &parse_query(&encode_query(8, "db", TYPE_A)).unwrap(),
            &names,
            &other,
            true,
        ) else {
            panic!("a name of the client's other network forwarded")
        };
        assert_eq!(
            decode_response(&a).unwrap().2,
            ["172.30.0.9".parse::<Ipv4Addr>().unwrap()]
        );
        assert_eq!(ask("db", TYPE_A, true), Decision::Forward);
        let Decision::Answer(a) = ask("WEB", TYPE_A, true) else {
            panic!("known name forwarded")
        };
        assert_eq!(
            decode_response(&a).unwrap().2,
            ["172.20.0.5".parse::<Ipv4Addr>().unwrap()]
        );
        let Decision::Answer(aaaa) = ask("web", 28, true) else {
            panic!()
        };
        assert_eq!(decode_response(&aaaa).unwrap().1, RCODE_NOERROR);
        assert!(decode_response(&aaaa).unwrap().2.is_empty());
        // A dual-stack container: A gets the IPv4 address, AAAA the IPv6 one.
        names
            .write()
            .unwrap()
            .get_mut("web")
            .unwrap()
            .push("fd00:db8:1::5".parse().unwrap());
        let Decision::Answer(a) = ask("web", TYPE_A, true) else {
            panic!()
        };
        assert_eq!(decode_response(&a).unwrap().2.len(), 1);
        let Decision::Answer(aaaa) = ask("web", TYPE_AAAA, true) else {
            panic!()
        };
        let ancount = u16::from_be_bytes([aaaa[6], aaaa[7]]);
        assert_eq!(ancount, 1);
        let tail = &aaaa[aaaa.len() - 16..];
        assert_eq!(
            tail,
            "fd00:db8:1::5"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
        assert_eq!(ask("example.org", TYPE_A, true), Decision::Forward);
        let Decision::Answer(nx) = ask("example.org", TYPE_A, false) else {
            panic!()
        };
        assert_eq!(decode_response(&nx).unwrap().1, RCODE_NXDOMAIN);
    }

    #[test]
    fn resolv_conf_upstreams() {
        let ups = upstreams_from_resolv_conf(
            "# x\nnameserver 10.0.0.53\nsearch lan\nnameserver ::1\nnameserver bad\n",
        );
        assert_eq!(
            ups,
            [
                "10.0.0.53:53".parse::<SocketAddr>().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn server_answers_and_forwards_over_loopback() {
        // A fake upstream on loopback that answers everything with 10.9.9.9.
        let upstream = UdpSocket::bind("127.0.0.1:0").unwrap();
        upstream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let upstream_addr = upstream.local_addr().unwrap();
        let fake = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let (n, peer) = upstream.recv_from(&mut buf).unwrap();
            let q = parse_query(&buf[..n]).unwrap();
            upstream
                .send_to(
                    &encode_response(&q, RCODE_NOERROR, &["10.9.9.9".parse().unwrap()]),
                    peer,
                )
                .unwrap();
            q.name
        });
        let names = table(&[("db", "172.21.0.3")]);
        let server = DnsServer::start(
            "127.0.0.1:0".parse().unwrap(),
            names.clone(),
            PeerTables::default(),
            vec![upstream_addr],
        )
        .unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 512];
        let ask = |name: &str, buf: &mut [u8]| {
            client
                .send_to(&encode_query(9, name, TYPE_A), server.addr())
                .unwrap();
            let (n, _) = client.recv_from(buf).unwrap();
            decode_response(&buf[..n]).unwrap()
        };
        assert_eq!(
            ask("db", &mut buf).2,
            ["172.21.0.3".parse::<Ipv4Addr>().unwrap()]
        );
        assert_eq!(
            ask("elsewhere.test", &mut buf).2,
            ["10.9.9.9".parse::<Ipv4Addr>().unwrap()]
        );
        assert_eq!(fake.join().unwrap(), "elsewhere.test");
        // Updates to the table are seen at once.
        names
            .write()
            .unwrap()
            .insert("cache".into(), vec!["172.21.0.4".parse().unwrap()]);
        assert_eq!(
            ask("cache", &mut buf).2,
            ["172.21.0.4".parse::<Ipv4Addr>().unwrap()]
        );
        drop(server);
    }
}
