//! Listing network interfaces (does I/O: `getifaddrs`), and the pure comparison of two listings.

use std::net::{Ipv4Addr, Ipv6Addr};

/// One interface as the agent sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iface {
    /// Name, e.g. `eth0` or `en5`.
    pub name: String,
    /// Kernel interface index.
    pub index: u32,
    /// Administratively up and running.
    pub up: bool,
    /// Multicast-capable.
    pub multicast: bool,
    /// A loopback interface.
    pub loopback: bool,
    /// A point-to-point link (VPN tunnels and the like).
    pub point_to_point: bool,
    /// IPv4 addresses, each with its prefix length (`10.0.0.1/24` is `(10.0.0.1, 24)`).
    pub v4: Vec<(Ipv4Addr, u8)>,
    /// IPv6 addresses (link-local included), each with its prefix length.
    pub v6: Vec<(Ipv6Addr, u8)>,
}

impl Iface {
    /// Whether mDNS can be tried on it at all (up, multicast, not loopback unless allowed).
    pub fn can_multicast(&self) -> bool {
        self.up && (self.multicast || self.loopback)
    }

    /// Its IPv4 addresses, without their prefix lengths.
    pub fn v4_addrs(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.v4.iter().map(|(a, _)| *a)
    }

    /// Its IPv6 addresses, without their prefix lengths.
    pub fn v6_addrs(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.v6.iter().map(|(a, _)| *a)
    }

    /// Whether `ip` is one of its addresses.
    pub fn has_ip(&self, ip: &std::net::IpAddr) -> bool {
        match ip {
            std::net::IpAddr::V4(a) => self.v4_addrs().any(|x| x == *a),
            std::net::IpAddr::V6(a) => self.v6_addrs().any(|x| x == *a),
        }
    }

    /// Its IPv6 link-local addresses.
    pub fn link_local_v6(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.v6_addrs().filter(crate::addrs::is_link_local_v6)
    }

    /// Its addresses as `address/prefix`, separated by spaces (`-` for none), for logs.
    pub fn addresses(&self) -> String {
        let all: Vec<String> = self
            .v4
            .iter()
            .map(|(a, p)| format!("{a}/{p}"))
            .chain(self.v6.iter().map(|(a, p)| format!("{a}/{p}")))
            .collect();
        if all.is_empty() {
            "-".to_owned()
        } else {
            all.join(" ")
        }
    }
}

/// The prefix length of a netmask: its leading one bits.
fn prefix_len(mask: &[u8]) -> u8 {
    let mut n = 0;
    for b in mask {
        n += b.leading_ones() as u8;
        if *b != 0xff {
            break;
        }
    }
    n
}

/// Lists interfaces with their flags and addresses, in index order.
pub fn list() -> std::io::Result<Vec<Iface>> {
    use nix::net::if_::InterfaceFlags as F;
    let mut out: Vec<Iface> = Vec::new();
    for ifa in nix::ifaddrs::getifaddrs()? {
        let pos = match out.iter().position(|i| i.name == ifa.interface_name) {
            Some(p) => p,
            None => {
                let index = nix::net::if_::if_nametoindex(ifa.interface_name.as_str()).unwrap_or(0);
                out.push(Iface {
                    name: ifa.interface_name.clone(),
                    index,
                    up: ifa.flags.contains(F::IFF_UP) && ifa.flags.contains(F::IFF_RUNNING),
                    multicast: ifa.flags.contains(F::IFF_MULTICAST),
                    loopback: ifa.flags.contains(F::IFF_LOOPBACK),
                    point_to_point: ifa.flags.contains(F::IFF_POINTOPOINT),
                    v4: Vec::new(),
                    v6: Vec::new(),
                });
                out.len() - 1
            }
        };
        let Some(addr) = ifa.address else { continue };
        let iface = &mut out[pos];
        // No netmask: the address alone (a host route), the narrowest reading.
        let mask = ifa.netmask.as_ref();
        if let Some(sin) = addr.as_sockaddr_in() {
            let ip = sin.ip();
            let prefix = mask
                .and_then(|m| m.as_sockaddr_in())
                .map_or(32, |m| prefix_len(&m.ip().octets()));
            if !iface.v4.iter().any(|(a, _)| *a == ip) {
                iface.v4.push((ip, prefix));
            }
        } else if let Some(sin6) = addr.as_sockaddr_in6() {
            let ip = sin6.ip();
            let prefix = mask
                .and_then(|m| m.as_sockaddr_in6())
                .map_or(128, |m| prefix_len(&m.ip().octets()));
            if !iface.v6.iter().any(|(a, _)| *a == ip) {
                iface.v6.push((ip, prefix));
            }
        }
    }
    out.retain(|i| i.index != 0);
    out.sort_by_key(|i| i.index);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmasks_give_prefix_lengths() {
        assert_eq!(prefix_len(&[255, 255, 255, 0]), 24);
        assert_eq!(prefix_len(&[255, 255, 240, 0]), 20);
        assert_eq!(prefix_len(&[255; 4]), 32);
        assert_eq!(prefix_len(&[0; 4]), 0);
        let mut v6 = [0; 16];
        v6[..8].fill(0xff);
        assert_eq!(prefix_len(&v6), 64);
        assert_eq!(prefix_len(&[0xff; 16]), 128);
    }

    #[test]
    fn a_prefix_change_is_a_change() {
        let a = Iface {
            name: "eth0".into(),
            index: 2,
            up: true,
            multicast: true,
            loopback: false,
            point_to_point: false,
            v4: vec![(Ipv4Addr::new(10, 0, 0, 1), 24)],
            v6: vec![("fe80::1".parse().unwrap(), 64)],
        };
        let mut b = a.clone();
        b.v4[0].1 = 16;
        assert_ne!(a, b);
        assert_eq!(a.addresses(), "10.0.0.1/24 fe80::1/64");
    }
}
