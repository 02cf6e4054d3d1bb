//! IP address management for one network: which addresses of its subnet are handed out.
//!
//! One allocator, [`Pool`], for both families ([`Ipam`] for IPv4, [`Ipam6`] for IPv6). The
//! pool is the subnet, or its `--ip-range` when one is given, less the gateway and the
//! subnet's edges (IPv4: the network and broadcast addresses; IPv6: the subnet-router
//! anycast address). Dynamic allocation takes the next free address
//! after the last one handed out, wrapping around (as Docker does): a released address is
//! not reused at once, because the namespace of the container that held it may still be
//! dying, its interface still answering ARP for that address with the same MAC. A static
//! `--ip` may be any free host address of the subnet (Docker allows static addresses outside
//! `--ip-range`). The allocation table is not persisted on its own:
//! the service rebuilds it from the endpoints it knows at start-up.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::addr::{Ipv4Net, Ipv6Net};
use crate::error::NetworkError;

/// What the allocator needs of a subnet type: its addresses as numbers, and which of them
/// are never handed out besides the gateway.
pub trait Subnet: Copy + Debug {
    /// The address type (`Ipv4Addr`, `Ipv6Addr`).
    type Addr: Copy + Ord + Debug + Into<IpAddr>;
    /// The first address (the network address) as a number.
    fn first(&self) -> u128;
    /// The last address as a number.
    fn last(&self) -> u128;
    /// Whether `ip` lies inside the subnet.
    fn holds(&self, ip: Self::Addr) -> bool;
    /// Whether `ip` is an address of the subnet never handed out: IPv4's network and
    /// broadcast addresses (none in a /31 or /32), IPv6's subnet-router anycast address.
    fn is_edge(&self, ip: Self::Addr) -> bool;
    /// The address numbered `bits`.
    fn addr(bits: u128) -> Self::Addr;
    /// The number of `ip`.
    fn bits(ip: Self::Addr) -> u128;
    /// The longest prefix of the family (32, 128).
    const MAX_PREFIX: u8;
    /// The prefix length.
    fn prefix_len(&self) -> u8;
    /// The subnet of `prefix` bits holding the address numbered `bits`.
    fn of(bits: u128, prefix: u8) -> Option<Self>;
    /// Whether the two subnets share any address.
    fn meets(&self, other: &Self) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }
}

impl Subnet for Ipv4Net {
    type Addr = Ipv4Addr;
    fn first(&self) -> u128 {
        u32::from(self.network()).into()
    }
    fn last(&self) -> u128 {
        u32::from(self.broadcast()).into()
    }
    fn holds(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip)
    }
    fn is_edge(&self, ip: Ipv4Addr) -> bool {
        // /31 and /32 subnets have no network or broadcast address to skip.
        self.prefix() < 31 && (ip == self.network() || ip == self.broadcast())
    }
    fn addr(bits: u128) -> Ipv4Addr {
        // Only numbers of IPv4 subnets come back here.
        Ipv4Addr::from(u32::try_from(bits).unwrap_or(u32::MAX))
    }
    fn bits(ip: Ipv4Addr) -> u128 {
        u32::from(ip).into()
    }
    const MAX_PREFIX: u8 = 32;
    fn prefix_len(&self) -> u8 {
        self.prefix()
    }
    fn of(bits: u128, prefix: u8) -> Option<Self> {
        let addr = Ipv4Addr::from(u32::try_from(bits).ok()?);
        Ipv4Net::new(addr, prefix).ok()
    }
}

impl Subnet for Ipv6Net {
    type Addr = Ipv6Addr;
    fn first(&self) -> u128 {
        self.network().into()
    }
    fn last(&self) -> u128 {
        Ipv6Net::last(self).into()
    }
    fn holds(&self, ip: Ipv6Addr) -> bool {
        self.contains(ip)
    }
    fn is_edge(&self, ip: Ipv6Addr) -> bool {
        ip == self.network()
    }
    fn addr(bits: u128) -> Ipv6Addr {
        Ipv6Addr::from(bits)
    }
    fn bits(ip: Ipv6Addr) -> u128 {
        ip.into()
    }
    const MAX_PREFIX: u8 = 128;
    fn prefix_len(&self) -> u8 {
        self.prefix()
    }
    fn of(bits: u128, prefix: u8) -> Option<Self> {
        Ipv6Net::new(Ipv6Addr::from(bits), prefix).ok()
    }
}

/// The addresses of one network and who holds them, for either family.
#[derive(Debug, Clone)]
pub struct Pool<N: Subnet> {
    network: String,
    subnet: N,
    range: N,
    gateway: Option<N::Addr>,
    /// Address → holder (a container id).
    allocated: BTreeMap<N::Addr, String>,
    /// Where the next dynamic search starts.
    cursor: u128,
}

/// The IPv4 addresses of a network.
pub type Ipam = Pool<Ipv4Net>;

/// The IPv6 addresses of a dual-stack network: the gateway is the subnet's first address
/// (`::1`), containers get `::2`, `::3`… (the subnet-router anycast address `::` is never
/// handed out), as Docker's default IPAM does.
pub type Ipam6 = Pool<Ipv6Net>;

impl Pool<Ipv4Net> {
    /// A table for `subnet`, allocating dynamically from `range` (the subnet when `None`).
    /// `network` names the network in error messages.
    pub fn new(
        network: &str,
        subnet: Ipv4Net,
        range: Option<Ipv4Net>,
        gateway: Option<Ipv4Addr>,
    ) -> Self {
        Self::with(network, subnet, range, gateway)
    }
}

impl Pool<Ipv6Net> {
    /// A table for `subnet`, allocating dynamically from `range` (the subnet when `None`).
    pub fn new(network: &str, subnet: Ipv6Net, range: Option<Ipv6Net>, gateway: Ipv6Addr) -> Self {
        Self::with(network, subnet, range, Some(gateway))
    }
}

impl<N: Subnet> Pool<N> {
    fn with(network: &str, subnet: N, range: Option<N>, gateway: Option<N::Addr>) -> Self {
        Self {
            network: network.to_string(),
            subnet,
            range: range.unwrap_or(subnet),
            gateway,
            allocated: BTreeMap::new(),
            cursor: 0,
        }
    }

    fn usable(&self, ip: N::Addr) -> bool {
        self.subnet.holds(ip) && !self.subnet.is_edge(ip) && Some(ip) != self.gateway
    }

    /// Hands out `wanted` (a static address) or the next free address of the range.
    pub fn allocate(
        &mut self,
        holder: &str,
        wanted: Option<N::Addr>,
    ) -> Result<N::Addr, NetworkError> {
        let ip = match wanted {
            Some(ip) if !self.usable(ip) => {
                return Err(NetworkError::AddressOutsideSubnet {
                    ip: ip.into(),
                    network: self.network.clone(),
                });
            }
            Some(ip) if self.allocated.contains_key(&ip) => {
                return Err(NetworkError::AddressInUse {
                    ip: ip.into(),
                    network: self.network.clone(),
                });
            }
            Some(ip) => ip,
            None => self
                .next_free()
                .ok_or_else(|| NetworkError::PoolExhausted {
                    network: self.network.clone(),
                })?,
        };
        if wanted.is_none() {
            self.cursor = N::bits(ip).saturating_add(1);
        }
        self.allocated.insert(ip, holder.to_string());
        Ok(ip)
    }

    /// The first free address from the cursor on, wrapping round the range.
    fn next_free(&self) -> Option<N::Addr> {
        let (first, last) = (self.range.first(), self.range.last());
        let start = self.cursor.clamp(first, last);
        // Of any `allocated + 4` consecutive addresses of the range at least one is free
        // when any is (at most the allocated ones, two edges and the gateway are not), so
        // that many steps, wrapping round, find it: an IPv6 range is never walked whole.
        let steps = self.allocated.len() as u128 + 4;
        let size = (last - first).saturating_add(1);
        (0..steps.min(size))
            .map(|i| N::addr(first + (start - first + i) % size))
            .find(|ip| self.usable(*ip) && !self.allocated.contains_key(ip))
    }

    /// Gives `ip` back; a no-op when it was not handed out.
    pub fn release(&mut self, ip: N::Addr) {
        self.allocated.remove(&ip);
    }

    /// Who holds `ip`, if anyone.
    pub fn holder(&self, ip: N::Addr) -> Option<&str> {
        self.allocated.get(&ip).map(String::as_str)
    }

    /// How many addresses are handed out.
    pub fn in_use(&self) -> usize {
        self.allocated.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn dynamic_allocation_skips_gateway_and_reuses_released() {
        let mut ipam = Ipam::new("n", net("172.18.0.0/16"), None, Some(ip("172.18.0.1")));
        assert_eq!(ipam.allocate("a", None).unwrap(), ip("172.18.0.2"));
        assert_eq!(ipam.allocate("b", None).unwrap(), ip("172.18.0.3"));
        ipam.release(ip("172.18.0.2"));
        assert_eq!(ipam.holder(ip("172.18.0.3")), Some("b"));
        // Not reused at once: the next address comes first.
        assert_eq!(ipam.allocate("c", None).unwrap(), ip("172.18.0.4"));
        assert_eq!(ipam.in_use(), 2);
    }

    #[test]
    fn static_addresses_are_checked() {
        let mut ipam = Ipam::new("n", net("10.9.0.0/24"), None, Some(ip("10.9.0.1")));
        assert_eq!(
            ipam.allocate("a", Some(ip("10.9.0.50"))).unwrap(),
            ip("10.9.0.50")
        );
        let taken = ipam.allocate("b", Some(ip("10.9.0.50"))).unwrap_err();
        assert!(
            matches!(taken, NetworkError::AddressInUse { .. }),
            "{taken}"
        );
        for bad in ["10.9.1.5", "10.9.0.0", "10.9.0.255", "10.9.0.1"] {
            let err = ipam.allocate("b", Some(ip(bad))).unwrap_err();
            assert!(
                matches!(err, NetworkError::AddressOutsideSubnet { .. }),
                "{bad}: {err}"
            );
        }
        // A dynamic allocation does not hand out the static one.
        assert_eq!(ipam.allocate("c", None).unwrap(), ip("10.9.0.2"));
    }

    #[test]
    fn ip_range_limits_dynamic_but_not_static() {
        let mut ipam = Ipam::new(
            "n",
            net("10.9.0.0/16"),
            Some(net("10.9.5.0/30")),
            Some(ip("10.9.0.1")),
        );
        // 10.9.5.0 and 10.9.5.3 are inside the subnet, so usable.
        let got: Vec<Ipv4Addr> = (0..4)
            .map(|i| ipam.allocate(&i.to_string(), None).unwrap())
            .collect();
        assert_eq!(
            got,
            [
                ip("10.9.5.0"),
                ip("10.9.5.1"),
                ip("10.9.5.2"),
                ip("10.9.5.3")
            ]
        );
        let err = ipam.allocate("x", None).unwrap_err();
        assert!(matches!(err, NetworkError::PoolExhausted { .. }), "{err}");
        assert_eq!(
            ipam.allocate("y", Some(ip("10.9.7.7"))).unwrap(),
            ip("10.9.7.7")
        );
    }

    #[test]
    fn exhaustion_and_release() {
        let mut ipam = Ipam::new("n", net("192.168.77.0/29"), None, Some(ip("192.168.77.1")));
        // .0 network, .1 gateway, .7 broadcast: 5 usable.
        for _ in 0..5 {
            ipam.allocate("c", None).unwrap();
        }
        assert!(ipam.allocate("c", None).is_err());
        ipam.release(ip("192.168.77.4"));
        // Full circle: the search wraps around to the one free address.
        assert_eq!(ipam.allocate("d", None).unwrap(), ip("192.168.77.4"));
    }

    #[test]
    fn ipv6_allocation_starts_at_two_and_checks_statics() {
        let subnet: Ipv6Net = "fd00:db8:1::/64".parse().unwrap();
        let gw: Ipv6Addr = "fd00:db8:1::1".parse().unwrap();
        let mut ipam = Ipam6::new("n", subnet, None, gw);
        assert_eq!(
            ipam.allocate("a", None).unwrap().to_string(),
            "fd00:db8:1::2"
        );
        let fixed: Ipv6Addr = "fd00:db8:1::3".parse().unwrap();
        assert_eq!(ipam.allocate("b", Some(fixed)).unwrap(), fixed);
        assert_eq!(
            ipam.allocate("c", None).unwrap().to_string(),
            "fd00:db8:1::4"
        );
        for bad in ["fd00:db8:1::", "fd00:db8:1::1", "fd00:db8:2::5"] {
            let err = ipam.allocate("d", Some(bad.parse().unwrap())).unwrap_err();
            assert!(
                matches!(err, NetworkError::AddressOutsideSubnet { .. }),
                "{bad}"
            );
        }
        assert!(matches!(
            ipam.allocate("d", Some(fixed)),
            Err(NetworkError::AddressInUse { .. })
        ));
        ipam.release(fixed);
        assert_eq!(ipam.allocate("e", Some(fixed)).unwrap(), fixed);
        // A tiny range wraps round and runs out.
        let small: Ipv6Net = "fd00:db8:1::/126".parse().unwrap();
        let mut ipam = Ipam6::new("n", small, None, gw);
        assert!(ipam.allocate("a", None).is_ok() && ipam.allocate("b", None).is_ok());
        assert!(matches!(
            ipam.allocate("c", None),
            Err(NetworkError::PoolExhausted { .. })
        ));
    }

    #[test]
    fn ipv6_range_wraps_to_the_one_free_address_and_reports_holders() {
        let subnet: Ipv6Net = "fd00:db8:2::/64".parse().unwrap();
        let range: Ipv6Net = "fd00:db8:2::/125".parse().unwrap();
        let gw: Ipv6Addr = "fd00:db8:2::1".parse().unwrap();
        let mut ipam = Ipam6::new("n", subnet, Some(range), gw);
        // ::0 (anycast) and ::1 (gateway) are out: ::2 … ::7 are the six of the range.
        let got: Vec<String> = (0..6)
            .map(|i| ipam.allocate(&i.to_string(), None).unwrap().to_string())
            .collect();
        assert_eq!(got.first().map(String::as_str), Some("fd00:db8:2::2"));
        assert_eq!(got.last().map(String::as_str), Some("fd00:db8:2::7"));
        assert_eq!(ipam.in_use(), 6);
        let third: Ipv6Addr = "fd00:db8:2::4".parse().unwrap();
        assert_eq!(ipam.holder(third), Some("2"));
        ipam.release(third);
        assert_eq!(ipam.allocate("x", None).unwrap(), third);
        // A static address outside the range but inside the subnet is fine.
        let outside: Ipv6Addr = "fd00:db8:2::100".parse().unwrap();
        assert_eq!(ipam.allocate("y", Some(outside)).unwrap(), outside);
        assert!(matches!(
            ipam.allocate("z", None),
            Err(NetworkError::PoolExhausted { .. })
        ));
    }
}
