//! The hand-off to the [`Prober`] (reachability verification): which addresses are worth
//! probing (on live ways in; on a link, only at an IP the announcer's packets came from), the
//! destinations probed lately whatever the reason, and what a probe's answer settles. Addresses
//! no way in carries any more are pruned from the prober in batches.

use super::{PeerTable, Sighting, Via};
use crate::engine::prober::{self, Prober};
use crate::wire::addrs::ip_of;
use crate::wire::protocol::PeerEvent;
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use std::net::IpAddr;
use crate::engine::stamp::Stamp;
use std::time::Instant;

impl PeerTable {
    /// Turns reachability verification on or off.
    pub fn with_reachability(mut self, verify: bool) -> Self {
        self.prober = verify.then(Prober::default);
        self
    }

    /// Addresses to probe now: due, not already being probed, TCP, on a live sighting; at most
    /// `per_peer` probes in flight per peer and `total` in all. They are marked in flight.
    pub fn due_probes(
        &mut self,
        now: Instant,
        total: usize,
        per_peer: usize,
    ) -> Vec<(PeerId, Multiaddr)> {
        let peers = &self.peers;
        let Some(prober) = self.prober.as_mut() else {
            return Vec::new();
        };
        prober.due(now, total, per_peer, &mut self.dests, |peer, a| {
            peers.get(peer).is_some_and(|e| {
                e.sightings
                    .iter()
                    .any(|(via, l)| l.live && l.addrs.contains(a) && shown(via, l, a))
            })
        })
    }

    /// A probe of `addr` (of any kind: a silence check, a goodbye, an older record's test) starts
    /// now: its destination is not probed for another peer within a minute (see
    /// [`Dests`](prober::Dests)).
    pub fn note_probe(&mut self, addr: &Multiaddr, now: Instant) {
        self.dests.probed(addr, now);
    }

    /// A probe of `addr`, of any kind, ended.
    pub fn note_probe_result(&mut self, addr: &Multiaddr, ok: bool) {
        self.dests.result(addr, ok);
    }

    /// Whether `addr`'s destination was probed within a minute for another peer, and what came
    /// of it (`Some(None)`: not back yet); `None`: it may be probed.
    pub fn probed_lately(&self, addr: &Multiaddr, now: Instant) -> Option<Option<bool>> {
        self.dests.lately(addr, now)
    }

    /// Whether there is probing work with no time of its own (see `Engine::has_work`): an
    /// address due by `now` (held back or new), a shared answer to settle, a silence check
    /// asked for, or the prober to prune.
    pub fn has_work(&self, now: Instant) -> bool {
        !self.silent.is_empty()
            || self.prober.as_ref().is_some_and(|p| p.has_work(now))
            || self.prune_due()
    }

    /// Whether the prober follows enough addresses the table dropped since it was last pruned
    /// (at least 64, and at least half of those it follows) to be pruned now.
    fn prune_due(&self) -> bool {
        self.prober
            .as_ref()
            .is_some_and(|p| self.dropped >= 64 && self.dropped >= p.len() / 2)
    }

    /// Addresses the prober found reachable through another peer's probe of the same destination
    /// (see [`Prober`]) are settled; returns the events this causes.
    pub fn shared_answers(&mut self, now: Instant) -> Vec<PeerEvent> {
        self.tick(now);
        let Some(prober) = self.prober.as_mut() else {
            return Vec::new();
        };
        let mut peers: Vec<PeerId> = prober
            .take_shared()
            .iter()
            .filter_map(prober::owner)
            .collect();
        peers.sort();
        peers.dedup();
        peers.iter().filter_map(|p| self.settle(p)).collect()
    }

    /// A probe of `addr` answered (`ok`) or not; returns the events this causes.
    pub fn probe_result(&mut self, addr: &Multiaddr, ok: bool, now: Instant) -> Vec<PeerEvent> {
        let now = self.tick(now);
        let Some(prober) = self.prober.as_mut() else {
            return Vec::new();
        };
        if !prober.result(addr, ok, now) {
            return Vec::new();
        }
        let peer = prober::owner(addr);
        // An answer confirms a cached hint for one more timeout.
        if let Some(sighting) = peer
            .and_then(|p| self.peers.get_mut(&p))
            .and_then(|e| e.sightings.get_mut(&Via::Cache))
            .filter(|l| l.addrs.contains(addr))
        {
            sighting.last_heard = sighting.last_heard.max(Stamp::of(now));
        }
        peer.and_then(|p| self.settle(&p)).into_iter().collect()
    }

    pub(super) fn track(&mut self, addrs: &[Multiaddr], now: Instant) {
        if let Some(p) = self.prober.as_mut() {
            p.track(addrs, now);
        }
    }

    /// A packet naming `peer`'s record came from `ip` on the link `via`: if `ip` is one of the
    /// announcer's own there, its addresses at `ip` may be probed from now on. Returns whether
    /// that is new (a probe may now be due).
    pub fn spoke(&mut self, peer: &PeerId, via: &Via, ip: &IpAddr) -> bool {
        let Some(sighting) = self.peers.get_mut(peer).and_then(|e| e.sightings.get_mut(via)) else {
            return false;
        };
        sighting.note_spoke(ip)
    }

    /// The peer's own IPs that mDNS packets naming its record came from on `via`, in order: the
    /// families it was heard on.
    pub fn spoke_from(&self, peer: &PeerId, via: &Via) -> Vec<IpAddr> {
        self.peers
            .get(peer)
            .and_then(|e| e.sightings.get(via))
            .map_or_else(Vec::new, |s| s.spoke_from().copied().collect())
    }

    /// Up to `n` addresses of `peer` on `via` a probe can check, those that answered before first.
    pub fn probe_targets(&self, peer: &PeerId, via: &Via, n: usize) -> Vec<Multiaddr> {
        let Some(sighting) = self.peers.get(peer).and_then(|e| e.sightings.get(via)) else {
            return Vec::new();
        };
        let ok = |a: &Multiaddr| self.prober.as_ref().is_some_and(|p| p.is_ok(a));
        let mut v: Vec<&Multiaddr> = sighting
            .addrs
            .iter()
            .filter(|a| prober::probeable(a) && shown(via, sighting, a))
            .collect();
        v.sort_by_key(|a| !ok(a));
        v.into_iter().take(n).cloned().collect()
    }

    /// Forgets the reachability of addresses no sighting carries any more, once enough were dropped
    /// that a pass over the table pays for itself.
    pub(super) fn prune_prober(&mut self) {
        if !self.prune_due() {
            return;
        }
        let Some(prober) = self.prober.as_mut() else {
            return;
        };
        self.dropped = 0;
        let used: std::collections::HashSet<u64> = self
            .peers
            .values()
            .flat_map(|e| e.sightings.values())
            .flat_map(|l| l.addrs.iter())
            .map(|a| prober.fingerprint(a))
            .collect();
        prober.retain(|a| used.contains(&a));
    }
}

/// Whether `a`, an address of `sighting` through `via`, may be probed: on a link only at an IP a
/// packet naming the record came from (`Sighting::spoke_from`), so that records anyone can mint,
/// whose A records name a third host, never make the agent connect there; elsewhere (a static
/// host, its peer exchange, the cache, the operator) at any. mDNS over IPv6 is sent from
/// link-local addresses, so a record's other IPv6 addresses on the link (which a libp2p node
/// needs: it cannot dial a link-local one) are probed once it spoke from a link-local one; there,
/// the prober's limit per destination (one connect a minute for other peers' records) is what
/// bounds a third host's cost.
fn shown(via: &Via, sighting: &Sighting, a: &Multiaddr) -> bool {
    if !matches!(via, Via::Multicast(_)) {
        return true;
    }
    match ip_of(a) {
        Some(IpAddr::V6(v6)) if !crate::wire::addrs::is_link_local_v6(&v6) => sighting
            .spoke_from()
            .any(|ip| matches!(ip, IpAddr::V6(s) if crate::wire::addrs::is_link_local_v6(s))),
        Some(ip) => sighting.spoke_from().any(|s| *s == ip),
        None => false,
    }
}
