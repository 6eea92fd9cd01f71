//! Turning a record's listen addresses into addresses dialable from here. Pure, no I/O.
//!
//! Records say ports, links say IPs: an unspecified IP in a record is replaced by the addresses the
//! announcer published on the link where it was heard; a concrete IP is kept only when it is one of
//! those link addresses; loopback never leaves; an IPv6 link-local address gets the receiving
//! interface as zone (`/ip6zone/eth0/ip6/fe80::…`); every result ends in `/p2p/<peer>`. An
//! address heard by multicast must also lie on the receiving link ([`on_link`]).

use crate::wire::net::Iface;
use libp2p_identity::PeerId;
use multiaddr::{Multiaddr, Protocol};
use std::net::IpAddr;

/// Most addresses handed over for one peer through one link (a record may name 24 listen
/// addresses and a host many IPs: the product is cut here, never built in full).
pub const MAX_DIALABLE: usize = 32;

/// Whether `ip` can be a host's own address on a link: not unspecified, loopback, multicast or
/// broadcast, not an IPv4-mapped or -compatible IPv6 address, not NAT64 (`64:ff9b::/96`), not a
/// documentation range. Anything else would let an announcer make every agent, and every node,
/// connect to an address that is not its own (this host's loopback included).
pub fn owned_by_a_host(ip: &IpAddr) -> bool {
    if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() {
        return false;
    }
    match ip {
        IpAddr::V4(v4) => !v4.is_broadcast() && !v4.is_documentation(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let mapped_or_compatible = s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0);
            let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
            let documentation = s[0] == 0x2001 && s[1] == 0x0db8;
            !mapped_or_compatible && !nat64 && !documentation
        }
    }
}

/// Whether `ip` lies on the link of `iface`: an IPv4 address in one of its subnets, an IPv6 address
/// link-local or in one of its prefixes. An announcer heard by multicast is on the link, so its
/// other addresses would be reached through a router, if at all.
pub fn on_link(ip: &IpAddr, iface: &Iface) -> bool {
    match ip {
        IpAddr::V4(ip) => iface
            .v4
            .iter()
            .any(|(net, len)| same_prefix(u32::from(*ip).into(), u32::from(*net).into(), 32, *len)),
        IpAddr::V6(ip) => {
            is_link_local_v6(ip)
                || iface
                    .v6
                    .iter()
                    .any(|(net, len)| same_prefix(u128::from(*ip), u128::from(*net), 128, *len))
        }
    }
}

/// An address range written `10.0.0.0/8`, `fd00::/8` or a bare address (a range of one), as the
/// operator configures which hosts may ask for what (`exchange_allow`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The network's first address (host bits are ignored).
    pub net: IpAddr,
    /// The prefix length.
    pub len: u8,
}

impl Cidr {
    /// Parses `ADDR/LEN` or `ADDR`; the error names what is wrong with `s`.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let t = s.trim();
        let (addr, len) = match t.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (t, None),
        };
        let net: IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("{s:?} is not an address range (such as 10.0.0.0/8)"))?;
        let width = if net.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => width,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= width => n,
                _ => return Err(format!("{s:?}: the prefix length must be 0 to {width}")),
            },
        };
        Ok(Cidr { net, len })
    }

    /// Whether `ip` lies in the range (an IPv4 range never holds an IPv6 address, nor the
    /// reverse; an IPv4-mapped IPv6 address is taken as the IPv4 address it maps).
    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                same_prefix(u32::from(ip).into(), u32::from(net).into(), 32, self.len)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(u128::from(ip), u128::from(net), 128, self.len)
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.len)
    }
}

/// Whether `a` and `b`, addresses `width` bits wide, share their first `len` bits.
fn same_prefix(a: u128, b: u128, width: u32, len: u8) -> bool {
    (a ^ b)
        .checked_shr(width.saturating_sub(len.into()))
        .is_none_or(|d| d == 0)
}

/// The IP an address is at (its `/ip4/` or `/ip6/` component).
pub fn ip_of(a: &Multiaddr) -> Option<IpAddr> {
    a.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

pub use super::net::is_link_local_v6;

/// Addresses of `peer` dialable over the link `iface`, given the record's `listen` addresses and
/// the announcer's IPs on that link (`link_ips`). Sorted IPv4 first, then global IPv6, then
/// link-local; no duplicates.
pub fn dialable(
    peer: &PeerId,
    listen: &[Multiaddr],
    link_ips: &[IpAddr],
    iface: &str,
) -> Vec<Multiaddr> {
    dialable_within(peer, listen, link_ips, iface).0
}

/// `/p2p/<peer>` as a multiaddr's bytes, as [`Protocol::write_bytes`] writes it, in one
/// allocation (that writes the peer ID's bytes to a vector of their own first).
fn p2p_bytes(peer: &PeerId) -> Vec<u8> {
    /// The `p2p` protocol's code, as an unsigned varint.
    const P2P: [u8; 2] = [0xa5, 0x03];
    let mh = peer.as_ref();
    let len = mh.encoded_len();
    let mut out = Vec::with_capacity(P2P.len() + 2 + len);
    out.extend_from_slice(&P2P);
    // The length as an unsigned varint (a peer ID's is at most a few dozen bytes).
    let mut n = len;
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    let _ = mh.write(&mut out);
    out
}

/// [`dialable`], and whether more than [`MAX_DIALABLE`] were on offer (the rest were cut).
pub fn dialable_within(
    peer: &PeerId,
    listen: &[Multiaddr],
    link_ips: &[IpAddr],
    iface: &str,
) -> (Vec<Multiaddr>, bool) {
    let mut cut = false;
    let usable: Vec<IpAddr> = link_ips.iter().copied().filter(owned_by_a_host).collect();
    // At most MAX_DIALABLE: a duplicate is found by looking at each (no hashing them all).
    let mut out: Vec<(u8, Multiaddr)> = Vec::new();
    // Writes `p`'s bytes (to a vector: it cannot fail).
    fn write(buf: &mut Vec<u8>, p: Protocol<'_>) {
        let _ = p.write_bytes(buf);
    }
    // The `/p2p/` part every address ends with, written once.
    let p2p = p2p_bytes(peer);
    let mut buf = Vec::with_capacity(64);
    for addr in listen {
        // The IPs it stands for, among the link's usable ones.
        let first = addr.iter().next();
        let stands_for = |ip: &IpAddr| match first {
            Some(Protocol::Ip4(v4)) if v4.is_unspecified() => ip.is_ipv4(),
            Some(Protocol::Ip6(v6)) if v6.is_unspecified() => ip.is_ipv6(),
            Some(Protocol::Ip4(v4)) => *ip == IpAddr::V4(v4),
            Some(Protocol::Ip6(v6)) => *ip == IpAddr::V6(v6),
            _ => false,
        };
        for ip in usable.iter().filter(|ip| stands_for(ip)) {
            if out.len() >= MAX_DIALABLE {
                cut = true;
                break;
            }
            // Its bytes written out in one buffer, then kept in an allocation of their size for
            // as long as the peer is (pushing each protocol onto a Multiaddr copied it each time).
            buf.clear();
            let rank = match *ip {
                IpAddr::V4(v4) => {
                    write(&mut buf, Protocol::Ip4(v4));
                    0
                }
                IpAddr::V6(v6) => {
                    let zoned = is_link_local_v6(&v6);
                    if zoned {
                        write(&mut buf, Protocol::Ip6zone(iface.into()));
                    }
                    write(&mut buf, Protocol::Ip6(v6));
                    if zoned { 2 } else { 1 }
                }
            };
            for p in addr.iter().skip(1) {
                if !matches!(p, Protocol::P2p(_)) {
                    write(&mut buf, p);
                }
            }
            buf.extend_from_slice(&p2p);
            let Ok(ma) = Multiaddr::try_from(buf.to_vec()) else {
                continue;
            };
            if !out.iter().any(|(_, m)| *m == ma) {
                out.push((rank, ma));
            }
        }
    }
    out.sort_by_key(|(rank, _)| *rank);
    // Exactly as long as it is: the caller keeps it.
    let mut addrs = Vec::with_capacity(out.len());
    addrs.extend(out.into_iter().map(|(_, m)| m));
    (addrs, cut)
}

/// The TCP socket address of `/ip4/A/tcp/P/…`, `/ip6/A/tcp/P/…` or `/ip6zone/Z/ip6/A/tcp/P/…`;
/// `zone_index` turns a zone (interface name) into its index.
pub fn tcp_socket_addr(
    addr: &Multiaddr,
    zone_index: impl Fn(&str) -> Option<u32>,
) -> Option<std::net::SocketAddr> {
    use std::net::{SocketAddr, SocketAddrV6};
    let mut it = addr.iter();
    let mut first = it.next()?;
    let mut scope = 0;
    if let Protocol::Ip6zone(z) = &first {
        scope = zone_index(z)?;
        first = it.next()?;
    }
    let port = match it.next()? {
        Protocol::Tcp(p) => p,
        _ => return None,
    };
    match first {
        Protocol::Ip4(ip) => Some(SocketAddr::from((ip, port))),
        Protocol::Ip6(ip) => Some(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope))),
        _ => None,
    }
}

/// `addr`'s text, as `Multiaddr`'s `Display` writes it, with a `/p2p/` part naming `peer` written
/// as `peer_text` (its base58 text, made once for all of the peer's addresses: `Display` encodes
/// it again for each, and more slowly).
pub fn text(addr: &Multiaddr, peer: &PeerId, peer_text: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(addr.len() * 2 + peer_text.len());
    for p in addr.iter() {
        match p {
            Protocol::P2p(id) if id == *peer => {
                out.push_str("/p2p/");
                out.push_str(peer_text);
            }
            p => {
                let _ = write!(out, "{p}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_peer as peer;

    fn ma(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_p2p_part_is_written_as_the_multiaddr_crate_writes_it() {
        // An ed25519 key inlined (identity multihash), and a SHA-256 of a larger key.
        let sha = libp2p_identity::PeerId::from_multihash(
            multiaddr::multihash::Multihash::<64>::wrap(0x12, &[7; 32]).unwrap(),
        )
        .unwrap();
        for p in [peer(), sha] {
            let mut want = Vec::new();
            Protocol::P2p(p).write_bytes(&mut want).unwrap();
            assert_eq!(p2p_bytes(&p), want);
        }
    }

    #[test]
    fn unspecified_ips_take_the_link_addresses() {
        let p = peer();
        let link: Vec<IpAddr> = vec![
            "10.0.0.2".parse().unwrap(),
            "fe80::2".parse().unwrap(),
            "fd00::2".parse().unwrap(),
        ];
        let out = dialable(
            &p,
            &[ma("/ip4/0.0.0.0/tcp/4001"), ma("/ip6/::/tcp/4002")],
            &link,
            "eth1",
        );
        assert_eq!(
            out,
            vec![
                ma(&format!("/ip4/10.0.0.2/tcp/4001/p2p/{p}")),
                ma(&format!("/ip6/fd00::2/tcp/4002/p2p/{p}")),
                ma(&format!("/ip6zone/eth1/ip6/fe80::2/tcp/4002/p2p/{p}")),
            ]
        );
    }

    #[test]
    fn concrete_ips_of_other_links_and_loopback_are_dropped() {
        let p = peer();
        let link: Vec<IpAddr> = vec!["10.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap()];
        let out = dialable(
            &p,
            &[
                ma("/ip4/10.0.0.2/tcp/1"),
                ma("/ip4/172.17.0.1/tcp/1"),
                ma("/ip4/127.0.0.1/tcp/1"),
                ma("/ip6/::1/tcp/1"),
                ma("/dns4/example.com/tcp/1"),
            ],
            &link,
            "eth0",
        );
        assert_eq!(out, vec![ma(&format!("/ip4/10.0.0.2/tcp/1/p2p/{p}"))]);
    }

    #[test]
    fn ipv4_only_record_on_ipv6_only_link_gives_nothing() {
        let p = peer();
        let out = dialable(
            &p,
            &[ma("/ip4/0.0.0.0/tcp/1")],
            &["fe80::1".parse().unwrap()],
            "eth0",
        );
        assert!(out.is_empty());
    }

    #[test]
    fn socket_addresses_for_probes() {
        let zone = |z: &str| (z == "eth1").then_some(3);
        assert_eq!(
            tcp_socket_addr(
                &ma("/ip4/10.0.0.2/tcp/7/p2p/12D3KooWGz8FPgPJSNGXXR2GkwBS7urvGju8pQ3uN35Bssqckj4Y"),
                zone
            ),
            Some("10.0.0.2:7".parse().unwrap())
        );
        assert_eq!(
            tcp_socket_addr(&ma("/ip6zone/eth1/ip6/fe80::1/tcp/9"), zone),
            Some(std::net::SocketAddr::V6(std::net::SocketAddrV6::new(
                "fe80::1".parse().unwrap(),
                9,
                0,
                3
            )))
        );
        assert_eq!(
            tcp_socket_addr(&ma("/ip6zone/eth9/ip6/fe80::1/tcp/9"), zone),
            None
        );
        assert_eq!(
            tcp_socket_addr(&ma("/ip4/10.0.0.2/udp/7/quic-v1"), zone),
            None
        );
    }

    #[test]
    fn addresses_no_host_owns_are_never_handed_over() {
        let listen = [ma("/ip4/0.0.0.0/tcp/1"), ma("/ip6/::/tcp/1")];
        let bad: Vec<IpAddr> = [
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::10.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
            "255.255.255.255",
            "192.0.2.7",
            "224.0.0.251",
            "127.0.0.1",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        assert!(dialable(&peer(), &listen, &bad, "eth0").is_empty());
        let good: Vec<IpAddr> = ["10.0.0.2", "fd00::2"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(dialable(&peer(), &listen, &good, "eth0").len(), 2);
    }

    fn iface(v4: &[(&str, u8)], v6: &[(&str, u8)]) -> Iface {
        Iface {
            name: "eth0".into(),
            index: 2,
            up: true,
            multicast: true,
            loopback: false,
            point_to_point: false,
            v4: v4.iter().map(|(a, p)| (a.parse().unwrap(), *p)).collect(),
            v6: v6.iter().map(|(a, p)| (a.parse().unwrap(), *p)).collect(),
        }
    }

    fn on(ip: &str, i: &Iface) -> bool {
        on_link(&ip.parse().unwrap(), i)
    }

    #[test]
    fn ipv4_is_on_the_link_only_inside_one_of_its_subnets() {
        let i = iface(&[("10.0.0.1", 24), ("192.168.7.9", 30)], &[]);
        assert!(on("10.0.0.2", &i));
        assert!(on("10.0.0.255", &i));
        assert!(!on("10.0.1.2", &i), "the next /24");
        assert!(!on("172.17.0.2", &i));
        assert!(on("192.168.7.10", &i));
        assert!(!on("192.168.7.12", &i), "past the /30");
        assert!(
            !on("10.0.0.2", &iface(&[], &[("fe80::1", 64)])),
            "no IPv4 at all"
        );
    }

    #[test]
    fn a_slash_32_holds_its_address_alone_and_a_slash_0_everything() {
        let host = iface(&[("10.0.0.1", 32)], &[]);
        assert!(on("10.0.0.1", &host));
        assert!(!on("10.0.0.2", &host));
        let all = iface(&[("10.0.0.1", 0)], &[("fd00::1", 0)]);
        assert!(on("203.0.113.5", &all));
        assert!(on("255.255.255.254", &all));
        assert!(on("2a00::1", &all));
        let v6_host = iface(&[], &[("fd00::1", 128)]);
        assert!(on("fd00::1", &v6_host));
        assert!(!on("fd00::2", &v6_host));
    }

    #[test]
    fn ranges_parse_and_hold_their_addresses_only() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains(&"10.1.200.3".parse().unwrap()));
        assert!(!c.contains(&"10.2.0.1".parse().unwrap()));
        assert!(
            c.contains(&"::ffff:10.1.0.9".parse().unwrap()),
            "IPv4-mapped"
        );
        assert!(!c.contains(&"fd00::1".parse().unwrap()));
        let one = Cidr::parse("192.168.0.134").unwrap();
        assert_eq!(one.len, 32);
        assert!(one.contains(&"192.168.0.134".parse().unwrap()));
        assert!(!one.contains(&"192.168.0.135".parse().unwrap()));
        let v6 = Cidr::parse("fd00:1::/32").unwrap();
        assert!(v6.contains(&"fd00:1:2::5".parse().unwrap()));
        assert!(!v6.contains(&"10.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains(&"8.8.8.8".parse().unwrap()));
        assert_eq!(Cidr::parse("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        for bad in ["10.0.0.0/33", "fd00::/129", "mac.local", "10.0.0.0/x", ""] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ipv6_is_on_the_link_when_link_local_or_inside_one_of_its_prefixes() {
        let i = iface(&[("10.0.0.1", 24)], &[("fe80::1", 64), ("fd00:1::1", 64)]);
        assert!(on("fe80::2", &i));
        assert!(on("febf::2", &i), "all of fe80::/10");
        assert!(
            on("fe80::2", &iface(&[("10.0.0.1", 24)], &[])),
            "link-local even with no IPv6 prefix listed"
        );
        assert!(on("fd00:1::abcd", &i));
        assert!(!on("fd00:2::1", &i), "the next /64");
        assert!(!on("2001:4860::1", &i));
        assert!(!on("10.0.1.1", &i));
    }

    #[test]
    fn dialable_itself_keeps_routed_addresses() {
        // The on-link rule is the multicast path's; a static host's addresses go through as they are.
        let p = peer();
        let out = dialable(
            &p,
            &[ma("/ip4/0.0.0.0/tcp/1")],
            &["172.31.4.5".parse().unwrap()],
            "",
        );
        assert_eq!(out, vec![ma(&format!("/ip4/172.31.4.5/tcp/1/p2p/{p}"))]);
    }

    #[test]
    fn many_addresses_times_many_ips_are_cut_not_built() {
        let listen: Vec<Multiaddr> = (1..=24).map(|p| ma(&format!("/ip6/::/tcp/{p}"))).collect();
        let ips: Vec<IpAddr> = (1..=5000u16)
            .map(|i| IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i)))
            .collect();
        let out = dialable(&peer(), &listen, &ips, "eth0");
        assert_eq!(out.len(), MAX_DIALABLE);
    }

    #[test]
    fn an_address_text_is_what_display_writes() {
        let (p, other) = (peer(), peer());
        let p_text = crate::wire::base58::peer(&p);
        for a in [
            "/ip4/10.0.0.1/tcp/4001",
            "/ip6/fe80::1/udp/4001/quic-v1",
            "/ip6zone/eth0/ip6/fe80::1/tcp/4001",
            "/dns4/example.com/tcp/4001",
        ] {
            let a: Multiaddr = a.parse().unwrap();
            let named = a.clone().with(Protocol::P2p(p));
            let elsewhere = a.clone().with(Protocol::P2p(other));
            let relayed = elsewhere.clone().with(Protocol::P2pCircuit).with(Protocol::P2p(p));
            for m in [a, named, elsewhere, relayed] {
                assert_eq!(text(&m, &p, &p_text), m.to_string());
            }
        }
    }

    #[test]
    fn duplicates_collapse_and_p2p_is_not_doubled() {
        let p = peer();
        let out = dialable(
            &p,
            &[
                ma("/ip4/0.0.0.0/tcp/1"),
                ma(&format!("/ip4/10.0.0.2/tcp/1/p2p/{p}")),
            ],
            &["10.0.0.2".parse().unwrap()],
            "eth0",
        );
        assert_eq!(out, vec![ma(&format!("/ip4/10.0.0.2/tcp/1/p2p/{p}"))]);
    }
}
