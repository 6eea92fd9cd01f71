//! Asking a static host's agent for its records by unicast (does I/O).
//!
//! A DNS-SD query for `_p2p._udp.local` PTR sent from an ephemeral port straight to the host's port
//! 5353 is a "legacy unicast" query (RFC 6762 §6.7): the host's mDNS responder answers it by
//! unicast to that port, with the instances' TXT (the signed records) as additional records. It
//! works where multicast does not (client isolation, IGMP snooping) on the host's own link: a
//! responder answers such a query only from an on-link address (RFC 6762 §11), so a host on a
//! routed subnet is reached by peer exchange instead.
//!
//! A multi-homed host runs one responder per interface, all on port 5353; the kernel hands a
//! unicast query to one of them by a hash of the sender's address and port, and only the one of
//! the interface it arrived on answers. So each round asks from several ports at once.

use async_io::{Async, Timer};
use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV6, UdpSocket};
use std::time::Duration;
use crate::wire::net::HostSpec;

/// Queries sent per round, each from its own port.
const PORTS_PER_ROUND: usize = 4;

/// The addresses to ask, with the zone (interface name) of link-local ones. Names go to the
/// system resolver on a helper thread.
pub async fn resolve(spec: &HostSpec) -> Result<Vec<(SocketAddr, Option<String>)>, String> {
    match spec {
        HostSpec::Ip { ip, zone } => {
            let scope = match zone {
                Some(z) => nix::net::if_::if_nametoindex(z.as_str())
                    .map_err(|e| format!("no interface {z}: {e}"))?,
                None => 0,
            };
            let sa = match ip {
                IpAddr::V4(_) => SocketAddr::new(*ip, 5353),
                IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(*v6, 5353, 0, scope)),
            };
            Ok(vec![(sa, zone.clone())])
        }
        HostSpec::Name(name) => {
            let name = name.clone();
            let addrs = smol::unblock(move || {
                use std::net::ToSocketAddrs;
                (name.as_str(), 5353u16)
                    .to_socket_addrs()
                    .map(|it| it.collect::<Vec<_>>())
            })
            .await
            .map_err(|e| format!("cannot resolve: {e}"))?;
            if addrs.is_empty() {
                return Err("the name resolves to no address".into());
            }
            Ok(addrs.into_iter().map(|a| (a, None)).collect())
        }
    }
}

/// A query ID nobody off the path can guess (the responder echoes it: RFC 6762 §6.7).
fn random_id() -> [u8; 2] {
    use std::hash::{BuildHasher, RandomState};
    let x = RandomState::new().hash_one(std::time::Instant::now());
    [(x >> 8) as u8, x as u8]
}

/// The unspecified address of `target`'s family, any port: where a fresh asking socket binds.
fn any_port(target: SocketAddr) -> SocketAddr {
    match target {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    }
}

/// `query` with a fresh random ID in its header, and the ID.
fn with_fresh_id(query: &[u8]) -> ([u8; 2], Vec<u8>) {
    let id = random_id();
    let mut q = query.to_vec();
    if let Some(head) = q.get_mut(..2) {
        head.copy_from_slice(&id);
    }
    (id, q)
}

/// Whether `packet` from `from` answers the query with ID `id` sent to `target`: it must come from
/// the host and port asked, and carry the same ID (anything else is a spoofed or stray reply).
fn is_answer(from: SocketAddr, target: SocketAddr, id: [u8; 2], packet: &[u8]) -> bool {
    from.ip() == target.ip() && from.port() == target.port() && packet.get(..2) == Some(&id[..])
}

/// Asks `target` from up to `PORTS_PER_ROUND` (4) fresh ports in turn, each with a fresh random
/// query ID, each waiting `wait` for answers (`is_answer`); stops at the first port that got any.
pub async fn ask(target: SocketAddr, query: &[u8], wait: Duration) -> io::Result<Vec<Vec<u8>>> {
    let bind = any_port(target);
    let mut buf = vec![0u8; crate::wire::dns::MAX_PACKET];
    for _ in 0..PORTS_PER_ROUND {
        let sock = Async::<UdpSocket>::bind(bind)?;
        let (id, query) = with_fresh_id(query);
        sock.send_to(&query, target).await?;
        let mut replies = Vec::new();
        let deadline = std::time::Instant::now() + wait;
        loop {
            let got =
                futures_lite::future::or(async { Some(sock.recv_from(&mut buf).await) }, async {
                    Timer::at(deadline).await;
                    None
                })
                .await;
            match got {
                Some(Ok((n, from))) if is_answer(from, target, id, &buf[..n]) => {
                    replies.push(buf[..n].to_vec());
                    // More may follow (one reply per instance): a short grace, then done.
                    let grace = std::time::Instant::now() + Duration::from_millis(50);
                    if grace < deadline {
                        let more = futures_lite::future::or(
                            async { Some(sock.recv_from(&mut buf).await) },
                            async {
                                Timer::at(grace).await;
                                None
                            },
                        )
                        .await;
                        match more {
                            Some(Ok((n, from))) if is_answer(from, target, id, &buf[..n]) => {
                                replies.push(buf[..n].to_vec())
                            }
                            _ => break,
                        }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        if !replies.is_empty() {
            return Ok(replies);
        }
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_host_and_port_asked_with_the_same_id_answer() {
        let target: SocketAddr = "10.0.0.9:5353".parse().unwrap();
        let reply = [0x12, 0x34, 0x84, 0];
        assert!(is_answer(target, target, [0x12, 0x34], &reply));
        assert!(
            !is_answer(target, target, [0x12, 0x35], &reply),
            "another ID"
        );
        let other_port: SocketAddr = "10.0.0.9:40000".parse().unwrap();
        assert!(
            !is_answer(other_port, target, [0x12, 0x34], &reply),
            "another port"
        );
        let other_ip: SocketAddr = "10.0.0.8:5353".parse().unwrap();
        assert!(
            !is_answer(other_ip, target, [0x12, 0x34], &reply),
            "another host"
        );
        assert!(
            !is_answer(target, target, [0x12, 0x34], &[0x12]),
            "too short"
        );
        let ids: std::collections::HashSet<[u8; 2]> = (0..8).map(|_| random_id()).collect();
        assert!(ids.len() > 1, "query IDs do not change: {ids:?}");
    }

    #[test]
    fn host_specs() {
        assert_eq!(
            HostSpec::parse("192.168.0.134"),
            Ok(HostSpec::Ip {
                ip: "192.168.0.134".parse().unwrap(),
                zone: None
            })
        );
        assert_eq!(
            HostSpec::parse("fe80::1%en5"),
            Ok(HostSpec::Ip {
                ip: "fe80::1".parse().unwrap(),
                zone: Some("en5".into())
            })
        );
        assert_eq!(
            HostSpec::parse("[fd00::1]"),
            Ok(HostSpec::Ip {
                ip: "fd00::1".parse().unwrap(),
                zone: None
            })
        );
        assert_eq!(
            HostSpec::parse("mac-studio.local"),
            Ok(HostSpec::Name("mac-studio.local".into()))
        );
        assert!(HostSpec::parse("").is_err());
        assert!(HostSpec::parse("10.0.0.1%eth0").is_err());
        assert!(HostSpec::parse("fe80::1%").is_err());
        assert!(HostSpec::parse("not a host").is_err());
        assert!(HostSpec::parse("a..b").is_err());
    }
}
