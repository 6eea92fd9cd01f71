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
    /// IPv4 addresses.
    pub v4: Vec<Ipv4Addr>,
    /// IPv6 addresses (link-local included).
    pub v6: Vec<Ipv6Addr>,
}

impl Iface {
    /// Whether mDNS can be tried on it at all (up, multicast, not loopback unless allowed).
    pub fn can_multicast(&self) -> bool {
        self.up && (self.multicast || self.loopback)
    }

    /// Its IPv6 link-local addresses.
    pub fn link_local_v6(&self) -> impl Iterator<Item = &Ipv6Addr> {
        self.v6.iter().filter(|a| crate::addrs::is_link_local_v6(a))
    }
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
        if let Some(sin) = addr.as_sockaddr_in() {
            let ip = sin.ip();
            if !iface.v4.contains(&ip) {
                iface.v4.push(ip);
            }
        } else if let Some(sin6) = addr.as_sockaddr_in6() {
            let ip = sin6.ip();
            if !iface.v6.contains(&ip) {
                iface.v6.push(ip);
            }
        }
    }
    out.retain(|i| i.index != 0);
    out.sort_by_key(|i| i.index);
    Ok(out)
}
