//! Listing network interfaces (does I/O: `getifaddrs`), and the pure comparison of two listings.

use crate::wire::net::Iface;

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
    use std::net::Ipv4Addr;

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
