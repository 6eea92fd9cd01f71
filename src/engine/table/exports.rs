//! What the table hands out, all built from what the node is told: the peers visible now and
//! what the node is told of each (live addresses, answering ones only with a prober, the ways in,
//! how it was checked); the persistent cache's entries; peer exchange's entries (first-hand
//! peers only).

use super::{Entry, PeerTable, Via, MAX_PENDING};
use crate::engine::prober::Prober;
use crate::wire::addrs::ip_of;
use crate::wire::protocol::{PeerInfo, Source, Verification};
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use std::net::IpAddr;
use std::time::Instant;

/// Most ways in (interfaces, static hosts) named in what the node is told of one peer.
pub const MAX_VIAS_SHOWN: usize = 16;

impl PeerTable {
    /// Every visible peer.
    pub fn snapshot(&self) -> Vec<PeerInfo> {
        let mut v: Vec<PeerInfo> = self.peers.values().filter_map(|e| e.sent.clone()).collect();
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
        let mut seen: Vec<(Instant, &Entry)> = self
            .peers
            .values()
            .map(|e| &**e)
            .filter(|e| e.signed.is_some() && e.sent.is_some())
            .filter_map(|e| Some((e.verified_at?, e)))
            .collect();
        seen.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| shown_id(a.1).cmp(shown_id(b.1))));
        seen.into_iter()
            .filter_map(|(_, e)| {
                let signed = e.signed.clone()?;
                let addrs = e.sent.as_ref().map(|s| s.addrs.clone()).unwrap_or_else(|| {
                    let mut set = std::collections::BTreeSet::new();
                    e.sightings
                        .values()
                        .flat_map(|l| l.text.iter())
                        .filter(|a| set.insert(*a))
                        .cloned()
                        .collect()
                });
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
        let mut seen: Vec<(Option<Instant>, &Entry)> = self
            .peers
            .values()
            .map(|e| &**e)
            .filter(|e| e.signed.is_some() && e.sent.is_some())
            .filter(|e| e.sightings.iter().any(|(via, l)| l.live && first_hand(via)))
            .map(|e| (e.verified_at, e))
            .collect();
        let complete = seen.len() <= max;
        seen.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| shown_id(a.1).cmp(shown_id(b.1))));
        let peers = seen
            .into_iter()
            .filter_map(|(_, e)| {
                let mut ips: Vec<IpAddr> = Vec::new();
                for a in e.sent.as_ref().map(|s| s.addrs.as_slice()).unwrap_or(&[]) {
                    let ip = a.parse::<Multiaddr>().ok().as_ref().and_then(ip_of);
                    if let Some(ip) = ip.filter(|ip| !ips.contains(ip)) {
                        ips.push(ip);
                    }
                }
                ips.truncate(crate::wire::exchange::MAX_IPS);
                Some(crate::wire::exchange::Peer {
                    signed: e.signed.clone()?,
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

/// What the node is told of a peer: the addresses of its live sightings (only those that answered a
/// probe, when a prober is given), the interfaces they came from, and how it was checked.
/// The peer ID (base58) the node was told for a peer handed over now (the entries sorted by it are
/// those; another sorts first).
fn shown_id(e: &Entry) -> &str {
    e.sent.as_ref().map_or("", |s| s.peer_id.as_str())
}

pub(super) fn info(peer: &PeerId, e: &Entry, prober: Option<&Prober>) -> PeerInfo {
    let mut addrs: Vec<String> = Vec::new();
    let mut interfaces = Vec::new();
    for (via, sighting) in e.sightings.iter().filter(|(_, l)| l.live) {
        if addrs.len() >= crate::wire::addrs::MAX_DIALABLE || interfaces.len() >= MAX_VIAS_SHOWN {
            break; // a peer's entry stays small: the node needs a few ways in, not all
        }
        let ok: Vec<&String> = sighting
            .addrs
            .iter()
            .zip(&sighting.text)
            .filter(|(a, _)| prober.is_none_or(|p| p.is_ok(a)))
            .map(|(_, s)| s)
            .collect();
        if ok.is_empty() {
            continue;
        }
        interfaces.push(via.to_string());
        for s in ok {
            if addrs.len() < crate::wire::addrs::MAX_DIALABLE && !addrs.contains(s) {
                addrs.push(s.clone());
            }
        }
    }
    interfaces.sort();
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
    let mut verified = Vec::new();
    if e.seq.is_some() {
        verified.push(Verification::Signature);
    }
    if prober.is_some() {
        verified.push(Verification::Reachable);
    }
    PeerInfo {
        // Kept once, in what the node was told (formatted again only until it is told).
        peer_id: e
            .sent
            .as_ref()
            .map_or_else(|| peer.to_base58(), |s| s.peer_id.clone()),
        addrs,
        interfaces,
        source,
        verified,
        seq: e.seq.unwrap_or(0),
    }
}
