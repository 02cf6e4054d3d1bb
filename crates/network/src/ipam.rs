//! IP address management for one network: which addresses of its subnet are handed out.
//!
//! The pool is the subnet, or its `--ip-range` when one is given, less the network address,
//! the broadcast address and the gateway. Dynamic allocation takes the next free address
//! after the last one handed out, wrapping around (as Docker does): a released address is
//! not reused at once, because the namespace of the container that held it may still be
//! dying, its interface still answering ARP for that address with the same MAC. A static `--ip` may be any free host address of the subnet (Docker allows
//! static addresses outside `--ip-range`). The allocation table is not persisted on its own:
//! the service rebuilds it from the endpoints it knows at start-up.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::addr::{Ipv4Net, Ipv6Net};
use crate::error::NetworkError;

/// The addresses of one network and who holds them.
#[derive(Debug, Clone)]
pub struct Ipam {
    network: String,
    subnet: Ipv4Net,
    range: Ipv4Net,
    gateway: Option<Ipv4Addr>,
    /// Address → holder (a container id).
    allocated: BTreeMap<Ipv4Addr, String>,
    /// Where the next dynamic search starts.
    cursor: u32,
}

impl Ipam {
    /// A table for `subnet`, allocating dynamically from `range` (the subnet when `None`).
    /// `network` names the network in error messages.
    pub fn new(
        network: &str,
        subnet: Ipv4Net,
        range: Option<Ipv4Net>,
        gateway: Option<Ipv4Addr>,
    ) -> Self {
        Self {
            network: network.to_string(),
            subnet,
            range: range.unwrap_or(subnet),
            gateway,
            allocated: BTreeMap::new(),
            cursor: 0,
        }
    }

    fn usable(&self, ip: Ipv4Addr) -> bool {
        // /31 and /32 subnets have no network or broadcast address to skip.
        let edges = self.subnet.prefix() < 31
            && (ip == self.subnet.network() || ip == self.subnet.broadcast());
        self.subnet.contains(ip) && !edges && Some(ip) != self.gateway
    }

    /// Hands out `wanted` (a static address) or the lowest free address of the range.
    pub fn allocate(
        &mut self,
        holder: &str,
        wanted: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, NetworkError> {
        let ip = match wanted {
            Some(ip) => {
                if !self.usable(ip) {
                    return Err(NetworkError::AddressOutsideSubnet {
                        ip: ip.into(),
                        network: self.network.clone(),
                    });
                }
                if self.allocated.contains_key(&ip) {
                    return Err(NetworkError::AddressInUse {
                        ip: ip.into(),
                        network: self.network.clone(),
                    });
                }
                ip
            }
            None => {
                let first = u32::from(self.range.network());
                let last = u32::from(self.range.broadcast());
                let start = self.cursor.clamp(first, last);
                (start..=last)
                    .chain(first..start)
                    .map(Ipv4Addr::from)
                    .find(|ip| self.usable(*ip) && !self.allocated.contains_key(ip))
                    .ok_or_else(|| NetworkError::PoolExhausted {
                        network: self.network.clone(),
                    })?
            }
        };
        if wanted.is_none() {
            self.cursor = u32::from(ip).saturating_add(1);
        }
        self.allocated.insert(ip, holder.to_string());
        Ok(ip)
    }

    /// Gives `ip` back; a no-op when it was not handed out.
    pub fn release(&mut self, ip: Ipv4Addr) {
        self.allocated.remove(&ip);
    }

    /// Who holds `ip`, if anyone.
    pub fn holder(&self, ip: Ipv4Addr) -> Option<&str> {
        self.allocated.get(&ip).map(String::as_str)
    }

    /// How many addresses are handed out.
    pub fn in_use(&self) -> usize {
        self.allocated.len()
    }
}

/// The IPv6 addresses of a dual-stack network: the gateway is the subnet's first address
/// (`::1`), containers get `::2`, `::3`… (the subnet-router anycast address `::` is never
/// handed out), as Docker's default IPAM does.
#[derive(Debug, Clone)]
pub struct Ipam6 {
    network: String,
    subnet: Ipv6Net,
    range: Ipv6Net,
    gateway: Ipv6Addr,
    allocated: BTreeMap<Ipv6Addr, String>,
    cursor: u128,
}

impl Ipam6 {
    /// A table for `subnet`, allocating dynamically from `range` (the subnet when `None`).
    pub fn new(network: &str, subnet: Ipv6Net, range: Option<Ipv6Net>, gateway: Ipv6Addr) -> Self {
        Self {
            network: network.to_string(),
            subnet,
            range: range.unwrap_or(subnet),
            gateway,
            allocated: BTreeMap::new(),
            cursor: 0,
        }
    }

    fn usable(&self, ip: Ipv6Addr) -> bool {
        self.subnet.contains(ip) && ip != self.subnet.network() && ip != self.gateway
    }

    /// Hands out `wanted` (a static address) or the next free address of the range.
    pub fn allocate(
        &mut self,
        holder: &str,
        wanted: Option<Ipv6Addr>,
    ) -> Result<Ipv6Addr, NetworkError> {
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
            None => {
                let first = u128::from(self.range.network());
                let last = u128::from(self.range.last());
                let start = self.cursor.clamp(first, last);
                // At most `allocated + 2` addresses are unusable: that many steps (wrapping
                // round the range) find a free one if there is any.
                let steps = self.allocated.len() as u128 + 3;
                let size = last - first + 1;
                (0..steps.min(size))
                    .map(|i| Ipv6Addr::from(first + (start - first + i) % size))
                    .find(|ip| self.usable(*ip) && !self.allocated.contains_key(ip))
                    .ok_or_else(|| NetworkError::PoolExhausted {
                        network: self.network.clone(),
                    })?
            }
        };
        if wanted.is_none() {
            self.cursor = u128::from(ip).saturating_add(1);
        }
        self.allocated.insert(ip, holder.to_string());
        Ok(ip)
    }

    /// Gives `ip` back; a no-op when it was not handed out.
    pub fn release(&mut self, ip: Ipv6Addr) {
        self.allocated.remove(&ip);
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
}
