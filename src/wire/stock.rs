//! The stock rust-libp2p mDNS dialect (pure: no I/O): recognise their queries, read the peers their
//! responses describe, and build responses in the form they parse.

use crate::wire::dns::{is_response, questions, write_name, Rr, SERVICE, TYPE_PTR, TYPE_TXT};

/// Largest packet the agent sends: one unfragmented datagram on a 1,500-byte link, IPv6 header
/// and UDP header included.
pub const MAX_SEND: usize = 1500 - 40 - 8;

/// Whether a packet is a stock libp2p-mdns query: a query for `_p2p._udp.local` PTR.
pub fn is_service_query(packet: &[u8]) -> bool {
    !is_response(packet)
        && questions(packet).is_ok_and(|q| {
            q.iter()
                .any(|(n, t)| *t == TYPE_PTR && n.eq_ignore_ascii_case(SERVICE))
        })
}

/// A peer as a stock libp2p-mdns response describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Libp2pPeer {
    /// The peer, from the `/p2p/` suffix of its addresses (all must agree).
    pub peer: libp2p_identity::PeerId,
    /// Its addresses, without `/p2p/`.
    pub addrs: Vec<multiaddr::Multiaddr>,
    /// The PTR record's TTL, in seconds.
    pub ttl: u32,
}

/// Peers in a libp2p-mdns style response: PTR `_p2p._udp.local` → `<label>` in the answers, TXT
/// `dnsaddr=<multiaddr>/p2p/<id>` records named `<label>` in the additional section.
pub fn libp2p_peers(rrs: &[Rr]) -> Vec<Libp2pPeer> {
    let mut out = Vec::new();
    for ptr in rrs
        .iter()
        .filter(|r| r.section == 0 && r.rtype == TYPE_PTR && r.name.eq_ignore_ascii_case(SERVICE))
    {
        let Some(target) = &ptr.ptr else { continue };
        let mut peer = None;
        let mut addrs = Vec::new();
        let txts = rrs.iter().filter(|r| {
            r.section == 2 && r.rtype == TYPE_TXT && r.name.eq_ignore_ascii_case(target)
        });
        for s in txts.flat_map(|r| r.txt.iter()) {
            let Some(rest) = s.strip_prefix(b"dnsaddr=") else {
                continue;
            };
            let Ok(mut ma) = std::str::from_utf8(rest)
                .map_err(|_| ())
                .and_then(|t| t.parse::<multiaddr::Multiaddr>().map_err(|_| ()))
            else {
                continue;
            };
            let Some(multiaddr::Protocol::P2p(id)) = ma.pop() else {
                continue;
            };
            match peer {
                None => peer = Some(id),
                Some(p) if p != id => continue,
                Some(_) => {}
            }
            addrs.push(ma);
        }
        if let Some(peer) = peer {
            out.push(Libp2pPeer {
                peer,
                addrs,
                ttl: ptr.ttl,
            });
        }
    }
    out
}

/// Responses in the form stock libp2p-mdns nodes parse: one PTR `_p2p._udp.local` → `<label>` in
/// the answers and one TXT `dnsaddr=<addr>` per address in the additional section, split so that
/// no packet exceeds [`MAX_SEND`]. Values over 255 bytes are left out. TTL 0 is a goodbye.
pub fn libp2p_response(label: &str, dnsaddrs: &[String], ttl: u32) -> Vec<Vec<u8>> {
    let target = format!("{label}.{SERVICE}");
    let head = |n_txt: usize| {
        let mut p = vec![0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0];
        p.extend_from_slice(&(n_txt as u16).to_be_bytes());
        write_name(&mut p, SERVICE);
        p.extend_from_slice(&TYPE_PTR.to_be_bytes());
        p.extend_from_slice(&1u16.to_be_bytes());
        p.extend_from_slice(&ttl.to_be_bytes());
        let mut name = Vec::new();
        write_name(&mut name, &target);
        p.extend_from_slice(&(name.len() as u16).to_be_bytes());
        let target_at = p.len() as u16;
        p.extend_from_slice(&name);
        (p, target_at)
    };
    let txt_rr = |target_at: u16, value: &str| {
        let mut r = vec![0xc0 | (target_at >> 8) as u8, target_at as u8];
        r.extend_from_slice(&TYPE_TXT.to_be_bytes());
        r.extend_from_slice(&1u16.to_be_bytes());
        r.extend_from_slice(&ttl.to_be_bytes());
        r.extend_from_slice(&((value.len() + 1) as u16).to_be_bytes());
        r.push(value.len() as u8);
        r.extend_from_slice(value.as_bytes());
        r
    };
    let values: Vec<String> = dnsaddrs
        .iter()
        .map(|a| format!("dnsaddr={a}"))
        .filter(|v| v.len() <= 255)
        .collect();
    let mut packets = Vec::new();
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let (probe, target_at) = head(0);
    let mut size = probe.len();
    for v in &values {
        let rr = txt_rr(target_at, v);
        if !batch.is_empty() && size + rr.len() > MAX_SEND {
            packets.push(std::mem::take(&mut batch));
            size = probe.len();
        }
        size += rr.len();
        batch.push(rr);
    }
    packets.push(batch);
    packets
        .into_iter()
        .map(|rrs| {
            let (mut p, _) = head(rrs.len());
            for rr in rrs {
                p.extend_from_slice(&rr);
            }
            p
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::dns::{ptr_query, records};

    #[test]
    fn libp2p_responses_round_trip_and_stay_under_the_mtu() {
        let p = libp2p_identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        let addrs: Vec<String> = (0..30)
            .map(|i| format!("/ip4/10.0.0.{i}/tcp/4001/p2p/{p}"))
            .collect();
        let packets = libp2p_response("abc", &addrs, 360);
        assert!(
            packets.len() > 1,
            "thirty addresses need more than one packet"
        );
        let mut all = Vec::new();
        for pk in &packets {
            assert!(pk.len() <= MAX_SEND, "{}", pk.len());
            assert!(is_response(pk));
            let rrs = records(pk).unwrap();
            assert_eq!(rrs[0].section, 0);
            assert_eq!(rrs[0].ptr.as_deref(), Some("abc._p2p._udp.local"));
            let peers = libp2p_peers(&rrs);
            assert_eq!(peers.len(), 1);
            assert_eq!(peers[0].peer, p);
            assert_eq!(peers[0].ttl, 360);
            all.extend(peers[0].addrs.iter().map(|a| format!("{a}/p2p/{p}")));
        }
        assert_eq!(all, addrs);
    }

    #[test]
    fn a_stock_libp2p_query_is_recognised() {
        // What libp2p-mdns 0.49 sends: random id, no flags, one PTR question.
        let mut q = ptr_query(SERVICE);
        q[0] = 0x12;
        q[1] = 0x34;
        assert!(is_service_query(&q));
        assert!(!is_service_query(&ptr_query("_http._tcp.local")));
        let (p, _) = (libp2p_response("x", &[], 1), ());
        assert!(!is_service_query(&p[0]));
    }

    #[test]
    fn peers_with_mixed_ids_keep_the_first() {
        let a = libp2p_identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        let b = libp2p_identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        let pk = &libp2p_response(
            "l",
            &[
                format!("/ip4/1.2.3.4/tcp/1/p2p/{a}"),
                format!("/ip4/1.2.3.5/tcp/1/p2p/{b}"),
            ],
            60,
        )[0];
        let peers = libp2p_peers(&records(pk).unwrap());
        assert_eq!(peers[0].peer, a);
        assert_eq!(peers[0].addrs.len(), 1);
    }
}
