//! What the table hands out, all built from what the node is told: the peers visible now and
//! what the node is told of each (live addresses, answering ones only with a prober, the ways in,
//! how it was checked); the persistent cache's entries; peer exchange's entries (first-hand
//! peers only).

use super::{Entry, PeerTable, Via, MAX_PENDING};
use crate::engine::prober::Prober;
use crate::engine::few::Few;
use crate::wire::addrs::ip_of;
use crate::wire::protocol::{PeerInfo, Source, Verification};
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use std::net::IpAddr;
use crate::engine::stamp::Stamp;

/// Most ways in (interfaces, static hosts) named in what the node is told of one peer.
pub const MAX_VIAS_SHOWN: usize = 16;

impl PeerTable {
    /// Every visible peer.
    pub fn snapshot(&self) -> Vec<PeerInfo> {
        let mut v: Vec<PeerInfo> = self
            .peers
            .iter()
            .filter_map(|(peer, e)| Some(e.sent.as_ref()?.render(&peer)))
            .collect();
        v.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        v
    }

    /// Peers visible now.
    pub fn visible(&self) -> usize {
        self.peers.values().filter(|e| e.sent.is_some()).count()
    }

    /// What the persistent cache keeps: the signed records of the [`MAX_PENDING`] peers most
    /// recently verified among those handed over now (most recent first; a peer that is gone is
    /// not written back), each with the addresses it is handed over at.
    /// (A cached peer waits for a probe again on the next start, so no more are worth keeping.)
    pub fn cache_entries(&self) -> Vec<crate::wire::cache::CachedPeer> {
        let mut seen: Vec<(Stamp, PeerId, &Entry)> = self
            .peers
            .iter()
            .filter(|(_, e)| e.signed.is_some() && e.sent.is_some())
            .filter_map(|(peer, e)| Some((e.verified_at?, peer, e)))
            .collect();
        seen.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        seen.into_iter()
            .filter_map(|(_, _, e)| {
                let signed = e.signed.as_deref()?.to_vec();
                let addrs: Vec<String> = e.sent.as_ref()?.addrs.iter().map(|a| a.to_string()).collect();
                (!addrs.is_empty()).then_some(crate::wire::cache::CachedPeer { signed, addrs })
            })
            .take(MAX_PENDING)
            .collect()
    }

    /// What peer exchange hands another agent: the signed records of the peers handed over now
    /// that were heard first-hand (on a link or from a static host, never by exchange), most
    /// recently verified first, with the IPs they are handed over at; at most `max`, and whether
    /// every such peer fits.
    pub fn exchange_entries(&self, max: usize) -> (Vec<crate::wire::exchange::Peer>, bool) {
        let mut seen: Vec<(Option<Stamp>, PeerId, &Entry)> = self
            .peers
            .iter()
            .filter(|(_, e)| e.signed.is_some() && e.sent.is_some())
            .filter(|(_, e)| e.sightings.iter().any(|(via, l)| l.live && first_hand(via)))
            .map(|(peer, e)| (e.verified_at, peer, e))
            .collect();
        let complete = seen.len() <= max;
        seen.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let peers = seen
            .into_iter()
            .filter_map(|(_, _, e)| {
                let mut ips: Vec<IpAddr> = Vec::new();
                for a in e.sent.as_ref().map(|s| &s.addrs[..]).unwrap_or(&[]) {
                    if let Some(ip) = ip_of(a).filter(|ip| !ips.contains(ip)) {
                        ips.push(ip);
                    }
                }
                ips.truncate(crate::wire::exchange::MAX_IPS);
                Some(crate::wire::exchange::Peer {
                    signed: e.signed.as_deref()?.to_vec(),
                    ips,
                })
            })
            .filter(|p| !p.ips.is_empty())
            .take(max)
            .collect();
        (peers, complete)
    }
}

/// Whether `via` is first-hand: the peer itself was heard that way (see [`crate::wire::exchange`]).
fn first_hand(via: &Via) -> bool {
    matches!(via, Via::Multicast(_) | Via::Static(_))
}

/// What the node was told of a peer, kept compact: its addresses share their bytes with the
/// sightings they came from, its ways in are the sightings' own names, and nothing is formatted.
/// It is rendered as the node's [`PeerInfo`] only for an event or a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Shown {
    /// Dialable addresses (each ending in `/p2p/<peer ID>`).
    pub(super) addrs: Few<Multiaddr>,
    /// The ways in they came from, in the sightings' order.
    vias: Few<Via>,
    source: Source,
    /// The record's seq (0 for an unsigned peer, as the node is told it).
    seq: u64,
    /// Its record is signed (packed beside the other flags: 8 bytes less than an `Option`).
    signed: bool,
    reachable: bool,
}

impl Shown {
    /// As the node is told it.
    pub(super) fn render(&self, peer: &PeerId) -> PeerInfo {
        let mut interfaces: Vec<String> = self.vias.iter().map(|v| v.to_string()).collect();
        interfaces.sort();
        let mut verified = Vec::new();
        if self.signed {
            verified.push(Verification::Signature);
        }
        if self.reachable {
            verified.push(Verification::Reachable);
        }
        let peer_id = crate::wire::base58::peer(peer);
        PeerInfo {
            addrs: (self.addrs.iter())
                .map(|a| crate::wire::addrs::text(a, peer, &peer_id))
                .collect(),
            peer_id,
            interfaces,
            source: self.source,
            verified,
            seq: self.seq,
        }
    }
}

/// What the node is told of a peer: the addresses of its live sightings (only those that answered a
/// probe, when a prober is given), the ways in they came from, and how it was checked.
pub(super) fn info(e: &Entry, prober: Option<&Prober>) -> Shown {
    // Room for what the live sightings hold (usually exactly what is kept: no shrinking after).
    let live = || e.sightings.values().filter(|l| l.live);
    let mut addrs: Vec<Multiaddr> = Vec::with_capacity(
        live()
            .map(|l| l.addrs.len())
            .sum::<usize>()
            .min(crate::wire::addrs::MAX_DIALABLE),
    );
    let mut vias = Vec::with_capacity(live().count().min(MAX_VIAS_SHOWN));
    for (via, sighting) in e.sightings.iter().filter(|(_, l)| l.live) {
        if addrs.len() >= crate::wire::addrs::MAX_DIALABLE || vias.len() >= MAX_VIAS_SHOWN {
            break; // a peer's entry stays small: the node needs a few ways in, not all
        }
        let mut ok = sighting
            .addrs
            .iter()
            .filter(|a| prober.is_none_or(|p| p.is_ok(a)))
            .peekable();
        if ok.peek().is_none() {
            continue;
        }
        vias.push(via.clone());
        for a in ok {
            if addrs.len() < crate::wire::addrs::MAX_DIALABLE && !addrs.contains(a) {
                addrs.push(a.clone());
            }
        }
    }
    // Where it was learned: multicast first, then the static host, then the rest.
    let source = e
        .sightings
        .values()
        .filter(|l| l.live)
        .map(|l| l.source)
        .min_by_key(|s| match s {
            Source::Mdns => 0,
            Source::Static => 1,
            Source::Manual => 2,
            Source::Exchange => 3,
            Source::Cache => 4,
            _ => 5,
        })
        .unwrap_or(e.source);
    // Kept while the peer is handed over, with no room to grow (boxed: no capacity kept either;
    // a reallocation only when the prober held some back).
    Shown {
        addrs: addrs.into(),
        vias: vias.into(),
        source,
        seq: e.seq().unwrap_or(0),
        signed: e.seq().is_some(),
        reachable: prober.is_some(),
    }
}
