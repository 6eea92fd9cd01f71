//! The peers file: a file kept equal to what `peers --json` (or `peers --format csv`, or
//! `peers --format zenoh`) prints, for programs that do not speak the socket. This is its text,
//! pure; the agent's `files` module replaces the file atomically, so that a reader sees the old
//! whole or the new whole.

use crate::wire::config::PeersFormat;
use crate::wire::protocol::PeerInfo;
use multiaddr::{Multiaddr, Protocol};
use std::net::IpAddr;

/// The file's text for `list`: `peers --json`'s output, or `peers --format csv`'s or `zenoh`'s,
/// with a newline.
pub fn render(list: &[PeerInfo], format: PeersFormat) -> String {
    let mut s = match format {
        PeersFormat::Json => serde_json::to_string_pretty(list).unwrap_or_else(|_| "[]".into()),
        PeersFormat::Csv => csv(list),
        PeersFormat::Zenoh => zenoh(list),
    };
    s.push('\n');
    s
}

/// Every address of every peer, comma-separated (`peers --format csv`).
pub fn csv(list: &[PeerInfo]) -> String {
    list.iter()
        .flat_map(|p| p.addrs.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(",")
}

/// Every plain TCP address of every peer as a zenoh endpoint, comma-separated, in order and
/// without duplicates (`peers --format zenoh`): what a zenoh program takes in its config's
/// `connect/endpoints`, or today's Exo in `EXO_ZENOH_CONNECT`. See [`zenoh_endpoint`].
pub fn zenoh(list: &[PeerInfo]) -> String {
    // A full table is a thousand peers with up to 32 addresses each: duplicates are found by
    // hashing, not by a search of the list so far.
    let mut seen = std::collections::HashSet::new();
    list.iter()
        .flat_map(|p| p.addrs.iter())
        .filter_map(|a| zenoh_endpoint(a))
        .filter(|e| seen.insert(e.clone()))
        .collect::<Vec<_>>()
        .join(",")
}

/// One address as a zenoh endpoint: `/ip4/A/tcp/P` → `tcp/A:P`, `/ip6/A/tcp/P` → `tcp/[A]:P`,
/// `/ip6zone/Z/ip6/A/tcp/P` → `tcp/[A]:P#iface=Z` (zenoh binds the connection to the interface;
/// it does not connect with `%Z` in the address), each optionally followed by `/p2p/<peer>`,
/// which zenoh has no use for. `None` for anything else: QUIC, websockets, DNS names, an IPv6
/// link-local address without its zone (no host could dial it), or a zone with a character
/// that zenoh's endpoint syntax or the comma-separated list would read as a separator.
pub fn zenoh_endpoint(addr: &str) -> Option<String> {
    let ma: Multiaddr = addr.parse().ok()?;
    let mut parts = ma.iter().peekable();
    let zone = match parts.peek() {
        Some(Protocol::Ip6zone(z)) => {
            let z = z.to_string();
            parts.next();
            Some(z)
        }
        _ => None,
    };
    let ip = match (parts.next()?, &zone) {
        (Protocol::Ip4(ip), None) => IpAddr::V4(ip),
        (Protocol::Ip6(ip), _) => IpAddr::V6(ip),
        _ => return None,
    };
    let Protocol::Tcp(port) = parts.next()? else {
        return None;
    };
    match (parts.next(), parts.next()) {
        (None, _) | (Some(Protocol::P2p(_)), None) => {}
        _ => return None,
    }
    match (ip, zone) {
        (IpAddr::V4(v4), _) => Some(format!("tcp/{v4}:{port}")),
        (IpAddr::V6(v6), None) if crate::wire::net::is_link_local_v6(&v6) => None,
        (IpAddr::V6(v6), None) => Some(format!("tcp/[{v6}]:{port}")),
        (IpAddr::V6(_), Some(z)) if z.is_empty() || z.contains([',', ';', '#', '=', '?', '/']) => {
            None
        }
        (IpAddr::V6(v6), Some(z)) => Some(format!("tcp/[{v6}]:{port}#iface={z}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::protocol::Source;

    fn p(id: &str, addrs: &[&str]) -> PeerInfo {
        PeerInfo {
            peer_id: id.into(),
            addrs: addrs.iter().map(|a| a.to_string()).collect(),
            interfaces: vec!["eth0".into()],
            source: Source::Mdns,
            seq: 1,
            verified: Vec::new(),
        }
    }

    #[test]
    fn json_reads_back_and_csv_is_one_line() {
        let list = vec![p("a", &["/ip4/10.0.0.1/tcp/1/p2p/a"]), p("b", &["x", "y"])];
        let text = render(&list, PeersFormat::Json);
        let back: Vec<PeerInfo> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, list);
        assert_eq!(render(&[], PeersFormat::Json), "[]\n");
        assert_eq!(
            render(&list, PeersFormat::Csv),
            "/ip4/10.0.0.1/tcp/1/p2p/a,x,y\n"
        );
    }

    #[test]
    fn zenoh_endpoints_are_every_plain_tcp_address_once_in_order() {
        let id = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
        let list = vec![
            p(
                id,
                &[
                    &format!("/ip4/10.0.0.2/tcp/52414/p2p/{id}"),
                    &format!("/ip6/fd00::2/tcp/52414/p2p/{id}"),
                    &format!("/ip6zone/eth0/ip6/fe80::2/tcp/52414/p2p/{id}"),
                    &format!("/ip4/10.0.0.2/udp/52414/quic-v1/p2p/{id}"),
                    &format!("/ip4/10.0.0.2/tcp/52415/ws/p2p/{id}"),
                    &format!("/dns4/node.lan/tcp/52414/p2p/{id}"),
                ],
            ),
            p(
                "b",
                &[
                    "/ip4/10.0.0.3/tcp/7447",
                    "/ip4/10.0.0.2/tcp/52414",
                    "not an address",
                ],
            ),
        ];
        assert_eq!(
            zenoh(&list),
            "tcp/10.0.0.2:52414,tcp/[fd00::2]:52414,tcp/[fe80::2]:52414#iface=eth0,\
             tcp/10.0.0.3:7447"
        );
        assert_eq!(
            render(&list[1..], PeersFormat::Zenoh),
            "tcp/10.0.0.3:7447,tcp/10.0.0.2:52414\n"
        );
        assert_eq!(render(&[], PeersFormat::Zenoh), "\n");
    }

    #[test]
    fn only_addresses_zenoh_can_dial_become_endpoints() {
        let cases = [
            ("/ip4/10.0.0.2/tcp/1", Some("tcp/10.0.0.2:1")),
            ("/ip6/fd00::2/tcp/1", Some("tcp/[fd00::2]:1")),
            ("/ip6zone/en5/ip6/fe80::1/tcp/1", Some("tcp/[fe80::1]:1#iface=en5")),
            // Link-local without its zone: no host could say which link.
            ("/ip6/fe80::1/tcp/1", None),
            // A zone with a separator would break the endpoint or the list.
            ("/ip6zone/a,b/ip6/fe80::1/tcp/1", None),
            ("/ip6zone/a#b/ip6/fe80::1/tcp/1", None),
            ("/ip6zone/eth0/ip4/10.0.0.2/tcp/1", None),
            ("/ip4/10.0.0.2/udp/1/quic-v1", None),
            ("/ip4/10.0.0.2/tcp/1/tls/ws", None),
            ("/ip4/10.0.0.2/tcp/1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit", None),
            ("/dns/node.lan/tcp/1", None),
            ("/ip4/10.0.0.2", None),
            ("", None),
        ];
        for (addr, want) in cases {
            assert_eq!(zenoh_endpoint(addr).as_deref(), want, "{addr}");
        }
    }
}
