//! IPv4 and IPv6 subnets, MAC addresses, and the choice of a free subnet for a new network.
//!
//! A new network without `--subnet` gets the first /16 of berth's pool (172.18/16 … 172.31/16,
//! then 10.0/16 … 10.255/16) that overlaps neither a host route (read from `/proc/net/route`,
//! a constructor parameter) nor another berth network. 172.17/16 is never offered: it is
//! Docker's `docker0`, which may share the host. A `--ipv6` network without an IPv6 subnet
//! gets, the same way, the first free subnet of the daemon's IPv6 `default-address-pools`,
//! or of Docker's ULA /48 derived from the engine id when none is configured (host routes
//! from `/proc/net/ipv6_route`).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::NetworkError;
use crate::ipam::Subnet;

/// An IPv4 network: an address and a prefix length, normalised to the network address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Net {
    /// The network containing `addr` with `prefix` bits (host bits are cleared).
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, NetworkError> {
        if prefix > 32 {
            return Err(NetworkError::InvalidSubnet {
                subnet: format!("{addr}/{prefix}"),
            });
        }
        let bits = u32::from(addr) & mask(prefix);
        Ok(Self {
            addr: Ipv4Addr::from(bits),
            prefix,
        })
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The broadcast address (the last address of the network).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !mask(self.prefix))
    }

    /// Whether `ip` lies inside this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.addr)
    }

    /// Whether the two networks share any address (one contains the other).
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        let shorter = self.prefix.min(other.prefix);
        u32::from(self.addr) & mask(shorter) == u32::from(other.addr) & mask(shorter)
    }

    /// The `n`-th address of the network (0 is the network address itself).
    pub fn nth(&self, n: u32) -> Option<Ipv4Addr> {
        let size = 1u64 << (32 - u32::from(self.prefix));
        (u64::from(n) < size).then(|| Ipv4Addr::from(u32::from(self.addr) + n))
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = NetworkError;

    /// Parses `a.b.c.d/n`. Host bits must be zero, as Docker requires of `--subnet`.
    fn from_str(s: &str) -> Result<Self, NetworkError> {
        let bad = || NetworkError::InvalidSubnet {
            subnet: s.to_string(),
        };
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        let net = Ipv4Net::new(addr, prefix).map_err(|_| bad())?;
        if net.addr != addr {
            return Err(bad());
        }
        Ok(net)
    }
}

impl Ipv4Net {
    /// Parses `--subnet` as dockerd 20.10 takes it: host bits set are cleared
    /// (`10.5.3.7/16` is `10.5.0.0/16`).
    pub fn parse_masked(s: &str) -> Result<Self, NetworkError> {
        let bad = || NetworkError::InvalidSubnet {
            subnet: s.to_string(),
        };
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        Ipv4Net::new(addr, prefix).map_err(|_| bad())
    }
}

impl Serialize for Ipv4Net {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Net {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An IPv6 network: an address and a prefix length, normalised to the network address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv6Net {
    addr: Ipv6Addr,
    prefix: u8,
}

fn mask6(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    }
}

impl Ipv6Net {
    /// The network containing `addr` with `prefix` bits (host bits are cleared).
    pub fn new(addr: Ipv6Addr, prefix: u8) -> Result<Self, NetworkError> {
        if prefix > 128 {
            return Err(NetworkError::InvalidSubnet {
                subnet: format!("{addr}/{prefix}"),
            });
        }
        Ok(Self {
            addr: Ipv6Addr::from(u128::from(addr) & mask6(prefix)),
            prefix,
        })
    }

    /// Parses `--subnet` as dockerd takes it: host bits set are cleared
    /// (`fd00:1::7/64` is `fd00:1::/64`).
    pub fn parse_masked(s: &str) -> Result<Self, NetworkError> {
        let bad = || NetworkError::InvalidSubnet {
            subnet: s.to_string(),
        };
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv6Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        Ipv6Net::new(addr, prefix).map_err(|_| bad())
    }

    /// The network address.
    pub fn network(&self) -> Ipv6Addr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The last address of the network.
    pub fn last(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.addr) | !mask6(self.prefix))
    }

    /// Whether `ip` lies inside this network.
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & mask6(self.prefix) == u128::from(self.addr)
    }

    /// Whether the two networks share any address (one contains the other).
    pub fn overlaps(&self, other: &Ipv6Net) -> bool {
        let shorter = mask6(self.prefix.min(other.prefix));
        u128::from(self.addr) & shorter == u128::from(other.addr) & shorter
    }

    /// The `n`-th address of the network (0 is the network address itself).
    pub fn nth(&self, n: u128) -> Option<Ipv6Addr> {
        (n <= !mask6(self.prefix)).then(|| Ipv6Addr::from(u128::from(self.addr) + n))
    }
}

impl fmt::Display for Ipv6Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv6Net {
    type Err = NetworkError;

    /// Parses `fd00::/64` (host bits cleared, as for `--subnet`).
    fn from_str(s: &str) -> Result<Self, NetworkError> {
        Self::parse_masked(s)
    }
}

impl Serialize for Ipv6Net {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv6Net {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A 48-bit Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Docker's address for a container IP: `02:42` followed by the four bytes of the IP
    /// (172.18.0.2 → 02:42:ac:12:00:02), locally administered and unicast.
    pub fn from_ip(ip: Ipv4Addr) -> Self {
        let o = ip.octets();
        MacAddr([0x02, 0x42, o[0], o[1], o[2], o[3]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = NetworkError;

    /// Parses `aa:bb:cc:dd:ee:ff` (or with `-`). A multicast address is refused: the kernel
    /// would reject it for a veth anyway.
    fn from_str(s: &str) -> Result<Self, NetworkError> {
        let bad = || NetworkError::InvalidMac { mac: s.to_string() };
        let mut bytes = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut bytes {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() || bytes[0] & 1 == 1 {
            return Err(bad());
        }
        Ok(MacAddr(bytes))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Destinations of the host's IPv4 routes from the text of `/proc/net/route` (the default
/// route is left out: it overlaps everything and says nothing about what is in use).
pub fn parse_proc_routes(text: &str) -> Vec<Ipv4Net> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // Iface Destination Gateway Flags RefCnt Use Metric Mask ...; hex, little-endian.
            let dest = u32::from_str_radix(fields.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(fields.get(7)?, 16).ok()?;
            let prefix = u32::from_be(mask).leading_ones() as u8;
            (prefix > 0).then_some(())?;
            Ipv4Net::new(Ipv4Addr::from(u32::from_be(dest)), prefix).ok()
        })
        .collect()
}

/// The candidate subnets for networks without `--subnet`, in order of preference.
fn pool() -> impl Iterator<Item = Ipv4Net> {
    let private_172 = (18..=31u8).map(|b| Ipv4Addr::new(172, b, 0, 0));
    let private_10 = (0..=255u8).map(|b| Ipv4Addr::new(10, b, 0, 0));
    private_172
        .chain(private_10)
        .filter_map(|a| Ipv4Net::new(a, 16).ok())
}

/// The first pool subnet that overlaps none of `in_use` (host routes and existing networks).
pub fn choose_subnet(in_use: &[Ipv4Net]) -> Option<Ipv4Net> {
    pool().find(|candidate| !in_use.iter().any(|used| used.overlaps(candidate)))
}

/// One entry of the daemon's `default-address-pools`: subnets of `size` bits carved from
/// `base`, in address order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPool<N> {
    /// The range subnets are carved from.
    pub base: N,
    /// The prefix length of each subnet (at least `base`'s).
    pub size: u8,
}

/// An IPv4 entry of `default-address-pools`.
pub type Ipv4Pool = AddressPool<Ipv4Net>;

/// An IPv6 entry of `default-address-pools`.
pub type Ipv6Pool = AddressPool<Ipv6Net>;

impl<N: Subnet + fmt::Display> AddressPool<N> {
    /// A pool, or why not: `size` must lie between `base`'s prefix length and the family's
    /// longest (32, 128).
    pub fn new(base: N, size: u8) -> Result<Self, NetworkError> {
        if size < base.prefix_len() || size > N::MAX_PREFIX {
            return Err(NetworkError::InvalidSubnet {
                subnet: format!("{base} (size {size})"),
            });
        }
        Ok(Self { base, size })
    }
}

impl AddressPool<Ipv6Net> {
    /// Docker's default IPv6 pool (Docker 27 and later) when no IPv6 pool is configured: a
    /// ULA /48 of `fd00::/8` whose 40-bit Global ID is the low 40 bits of the first 8 bytes
    /// of SHA-256(`engine_id`), split into /64s, as RFC 4193 section 3.2.2 suggests. Stable
    /// while the engine id is.
    pub fn ula(engine_id: &str) -> Self {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(engine_id.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        let global_id = u128::from(u64::from_be_bytes(first) & ((1 << 40) - 1));
        let addr = Ipv6Addr::from((0xfdu128 << 120) | (global_id << 80));
        Self {
            base: Ipv6Net { addr, prefix: 48 },
            size: 64,
        }
    }
}

/// Destinations of the host's IPv6 routes from the text of `/proc/net/ipv6_route`, all
/// tables: the default route, the host's own addresses (local and anycast routes),
/// multicast and link-local routes are left out (they say nothing about which subnets a
/// network may take).
pub fn parse_proc_ipv6_routes(text: &str) -> Vec<Ipv6Net> {
    const RTF_LOCAL: u32 = 0x8000_0000;
    const RTF_ANYCAST: u32 = 0x0010_0000;
    let multicast = Ipv6Net::new(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8);
    let link_local = Ipv6Net::new(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10);
    let skipped = [multicast, link_local];
    text.lines()
        .filter_map(|line| {
            // dest dest_len src src_len next_hop metric refcnt use flags device; hex.
            let fields: Vec<&str> = line.split_whitespace().collect();
            let dest = u128::from_str_radix(fields.first()?, 16).ok()?;
            let prefix = u8::from_str_radix(fields.get(1)?, 16).ok()?;
            let flags = u32::from_str_radix(fields.get(8)?, 16).ok()?;
            (prefix > 0 && flags & (RTF_LOCAL | RTF_ANYCAST) == 0).then_some(())?;
            let net = Ipv6Net::new(Ipv6Addr::from(dest), prefix).ok()?;
            (!skipped.iter().flatten().any(|s| s.overlaps(&net))).then_some(net)
        })
        .collect()
}

/// The first subnet of `pools` (in order, each in address order) that overlaps none of
/// `in_use` (host routes and existing networks). Each step jumps past one subnet in use, so
/// a /48 split into /64s is never walked address by address.
pub fn choose_pooled<N: Subnet>(pools: &[AddressPool<N>], in_use: &[N]) -> Option<N> {
    pools.iter().find_map(|pool| {
        let end = pool.base.last();
        let mut candidate = N::of(pool.base.first(), pool.size)?;
        // At most one step per subnet in use: the candidate only moves forward past it.
        for _ in 0..=in_use.len() {
            let Some(used) = in_use.iter().find(|u| u.meets(&candidate)) else {
                return Some(candidate);
            };
            let past = candidate.last().max(used.last());
            let next = past.checked_add(1).filter(|n| *n <= end)?;
            candidate = N::of(next, pool.size)?;
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_pools_are_carved_in_order_past_what_is_in_use() {
        let v4 = |s: &str| s.parse::<Ipv4Net>().unwrap();
        let pools = [
            Ipv4Pool::new(v4("10.123.4.0/23"), 24).unwrap(),
            Ipv4Pool::new(v4("10.200.0.0/16"), 16).unwrap(),
        ];
        assert_eq!(choose_pooled(&pools, &[]), Some(v4("10.123.4.0/24")));
        // A route covering the first subnet and part of nothing else.
        let used = [v4("10.123.4.128/25")];
        assert_eq!(choose_pooled(&pools, &used), Some(v4("10.123.5.0/24")));
        let used = [v4("10.123.0.0/16")];
        assert_eq!(choose_pooled(&pools, &used), Some(v4("10.200.0.0/16")));
        let used = [v4("10.0.0.0/8")];
        assert_eq!(choose_pooled(&pools, &used), None);
        assert!(Ipv4Pool::new(v4("10.0.0.0/16"), 33).is_err());
        assert!(Ipv4Pool::new(v4("10.0.0.0/16"), 8).is_err());
    }

    #[test]
    fn subnet_parsing_and_arithmetic() {
        let net: Ipv4Net = "172.18.0.0/16".parse().unwrap();
        assert_eq!(net.broadcast(), Ipv4Addr::new(172, 18, 255, 255));
        assert!(net.contains(Ipv4Addr::new(172, 18, 3, 4)));
        assert!(!net.contains(Ipv4Addr::new(172, 19, 0, 1)));
        assert_eq!(net.nth(1), Some(Ipv4Addr::new(172, 18, 0, 1)));
        assert_eq!(net.nth(65536), None);
        assert!("172.18.0.1/16".parse::<Ipv4Net>().is_err(), "host bits set");
        assert_eq!(
            Ipv4Net::parse_masked("172.18.3.7/16").unwrap().to_string(),
            "172.18.0.0/16"
        );
        assert!(Ipv4Net::parse_masked("172.18.0.0/33").is_err());
        assert!("172.18.0.0/33".parse::<Ipv4Net>().is_err());
        assert!("172.18.0.0".parse::<Ipv4Net>().is_err());
        let small: Ipv4Net = "172.18.5.0/24".parse().unwrap();
        assert!(net.overlaps(&small) && small.overlaps(&net));
        let other: Ipv4Net = "172.19.0.0/16".parse().unwrap();
        assert!(!net.overlaps(&other));
    }

    #[test]
    fn ipv6_subnets() {
        let net = Ipv6Net::parse_masked("fd00:db8:1::7/64").unwrap();
        assert_eq!(net.to_string(), "fd00:db8:1::/64");
        assert_eq!(net.nth(1).unwrap().to_string(), "fd00:db8:1::1");
        assert_eq!(net.last().to_string(), "fd00:db8:1:0:ffff:ffff:ffff:ffff");
        assert!(net.contains("fd00:db8:1::abcd".parse().unwrap()));
        assert!(!net.contains("fd00:db8:2::1".parse().unwrap()));
        let wide = Ipv6Net::parse_masked("fd00:db8:1::/48").unwrap();
        assert!(wide.overlaps(&net) && net.overlaps(&wide));
        assert!(!net.overlaps(&Ipv6Net::parse_masked("fd00:db8:2::/64").unwrap()));
        let tiny = Ipv6Net::parse_masked("fd00::/127").unwrap();
        assert!(tiny.nth(1).is_some() && tiny.nth(2).is_none());
        for bad in ["fd00::/129", "fd00::", "10.0.0.0/8", "fd00::/x"] {
            assert!(Ipv6Net::parse_masked(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mac_derivation_matches_docker() {
        let mac = MacAddr::from_ip(Ipv4Addr::new(172, 18, 0, 2));
        assert_eq!(mac.to_string(), "02:42:ac:12:00:02");
        assert_eq!(
            MacAddr::from_ip(Ipv4Addr::new(10, 1, 255, 3)).to_string(),
            "02:42:0a:01:ff:03"
        );
    }

    #[test]
    fn mac_parsing() {
        let mac: MacAddr = "02:42:AC:11:00:09".parse().unwrap();
        assert_eq!(mac.0, [2, 0x42, 0xac, 0x11, 0, 9]);
        assert_eq!("02-00-00-00-00-01".parse::<MacAddr>().unwrap().0[5], 1);
        for bad in [
            "02:42:ac:11:00",
            "02:42:ac:11:00:09:01",
            "zz:42:ac:11:00:09",
            "01:00:5e:00:00:01",
            "2:42:ac:11:00:09",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad} accepted");
        }
    }

    const ROUTES: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
br-x\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
";

    #[test]
    fn routes_are_parsed_without_default() {
        let routes = parse_proc_routes(ROUTES);
        let shown: Vec<String> = routes.iter().map(|n| n.to_string()).collect();
        assert_eq!(shown, ["192.0.2.0/24", "172.17.0.0/16", "172.18.0.0/16"]);
    }

    #[test]
    fn subnet_choice_skips_used_ranges() {
        let routes = parse_proc_routes(ROUTES);
        assert_eq!(choose_subnet(&routes).unwrap().to_string(), "172.19.0.0/16");
        assert_eq!(choose_subnet(&[]).unwrap().to_string(), "172.18.0.0/16");
        // A small route inside a candidate rules the whole /16 out.
        let narrow = vec!["172.18.200.0/24".parse().unwrap()];
        assert_eq!(choose_subnet(&narrow).unwrap().to_string(), "172.19.0.0/16");
        // All of 172.16/12 taken: fall through to 10.x.
        let wide = vec!["172.16.0.0/12".parse().unwrap()];
        assert_eq!(choose_subnet(&wide).unwrap().to_string(), "10.0.0.0/16");
        let everything = vec![
            "172.16.0.0/12".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
        assert_eq!(choose_subnet(&everything), None);
    }

    #[test]
    fn ula_pool_is_dockers() {
        // Docker's own vectors (moby's TestDeriveULABaseNetwork).
        for (engine_id, base) in [
            ("", "fd42:98fc:1c14::/48"),
            (
                "499d4bc0-b0b3-416f-b1ee-cf6486315593",
                "fd62:fb69:18af::/48",
            ),
        ] {
            let pool = Ipv6Pool::ula(engine_id);
            assert_eq!((pool.base.to_string(), pool.size), (base.to_string(), 64));
        }
    }

    // This machine's /proc/net/ipv6_route, plus one of another table and a reject route.
    const ROUTES6: &str = "\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000003 00000000 00000003     eth0
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000004 00000000 80200001       lo
fd000000000000000000000000000000 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000003 00000000 00300001     eth0
fd000000000000000000000000000002 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000006 00000000 80200001     eth0
fe8000000000000000fc00fffe000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001     eth0
ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
fd000db8007700000000000000000000 30 00000000000000000000000000000000 00 00000000000000000000000000000000 00000400 00000001 00000000 00200200       lo
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
";

    #[test]
    fn ipv6_routes_are_parsed_without_default_local_multicast_or_link_local() {
        let shown: Vec<String> = parse_proc_ipv6_routes(ROUTES6)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["fd00::/64", "fd00:db8:77::/48"]);
    }

    #[test]
    fn ipv6_subnet_choice_skips_used_ranges_and_moves_to_the_next_pool() {
        let net = |s: &str| Ipv6Net::parse_masked(s).unwrap();
        let pool = |s: &str, size| Ipv6Pool::new(net(s), size).unwrap();
        let ula = Ipv6Pool::ula("");
        assert_eq!(
            choose_pooled(&[ula], &[]).unwrap().to_string(),
            "fd42:98fc:1c14::/64"
        );
        // A route inside the first /64, a wider one over the next two, a network after.
        let used = [
            net("fd42:98fc:1c14::5/128"),
            net("fd42:98fc:1c14:2::/63"),
            net("fd42:98fc:1c14:1::/64"),
            net("fd42:98fc:1c14:4::/64"),
        ];
        assert_eq!(
            choose_pooled(&[ula], &used).unwrap().to_string(),
            "fd42:98fc:1c14:5::/64"
        );
        // A used range wider than the whole pool, then the next pool.
        let pools = [pool("fd00:db8:80::/62", 64), pool("fd00:db8:90::/48", 80)];
        assert_eq!(
            choose_pooled(&pools, &[net("fd00:db8::/32")]),
            None,
            "both pools inside fd00:db8::/32"
        );
        let taken: Vec<Ipv6Net> = (0..4)
            .map(|i| net(&format!("fd00:db8:80:{i}::/64")))
            .collect();
        assert_eq!(
            choose_pooled(&pools, &taken).unwrap().to_string(),
            "fd00:db8:90::/80"
        );
        assert!(Ipv6Pool::new(net("fd00:db8::/48"), 40).is_err());
        assert!(Ipv6Pool::new(net("fd00:db8::/48"), 129).is_err());
        // The last subnet of the address space: no overflow past it.
        let top = [pool("ffff:ffff:ffff:ffff::/64", 64)];
        assert_eq!(
            choose_pooled(&top, &[net("ffff:ffff:ffff:ffff::/64")]),
            None
        );
    }
}
