//! Taking a record in: a higher seq replaces the peer's record and every sighting learned from
//! the old one; the same seq refreshes, or adds a way in or a family's addresses; a lower seq is
//! a replay and is refused, unless the engine has decided the node itself stands behind it (its
//! clock stepped back: [`PeerTable::rewind`], see `engine/rewind.rs`). Unsigned peers never
//! override a signed record. Also where a peer is known to be, and whether its record is known
//! gone after a confirmed goodbye.

use super::{new_sighting, Entry, PeerTable, Via};
use crate::wire::addrs::ip_of;
use crate::wire::protocol::{PeerEvent, Source};
use crate::wire::record::{Reject, VerifiedRecord};
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use std::time::Instant;

impl PeerTable {
    /// A verified record learned through `via` (`source` says how), with the addresses dialable
    /// that way. Returns the event for the node, if any. An older seq is refused as a replay.
    pub fn observe(
        &mut self,
        record: VerifiedRecord,
        source: Source,
        via: &Via,
        addrs: Vec<Multiaddr>,
        now: Instant,
    ) -> Result<Option<PeerEvent>, Reject> {
        let now = self.tick(now);
        let peer = record.peer_id;
        let Some(e) = self.peers.get(&peer) else {
            let entry = Entry::new(Some(record.seq), Some(record.signed), source, now);
            if !self.admit(peer, entry, via) {
                return Ok(None);
            }
            self.track(&addrs, now);
            self.set_sighting(peer, via, new_sighting(addrs, source, now));
            self.counters.accepted += 1;
            return Ok(self.settle(&peer));
        };
        match e.seq() {
            Some(old) if record.seq < old => {
                self.count_reject(Reject::Replay);
                return Err(Reject::Replay);
            }
            Some(old) if record.seq == old => {
                // The same record again: a refresh, unless this way of learning it is new. Heard
                // with addresses of one family only (a packet of that family, a unicast answer),
                // it replaces that family's and keeps the other's: a renumbered interface drops
                // its old address, and an answer over IPv6 does not take IPv4 away.
                let mut addrs = addrs;
                if let Some(l) = e.sightings.get(via).filter(|l| l.live && l.source == source) {
                    let family = |a: &Multiaddr| ip_of(a).map(|ip| ip.is_ipv4());
                    let fresh: Vec<Option<bool>> = addrs.iter().map(family).collect();
                    for a in l.addrs.iter() {
                        if addrs.len() < crate::wire::addrs::MAX_DIALABLE
                            && !fresh.contains(&family(a))
                            && !addrs.contains(a)
                        {
                            addrs.push(a.clone());
                        }
                    }
                }
                let same = e
                    .sightings
                    .get(via)
                    .is_some_and(|l| l.live && l.source == source && *l.addrs == *addrs);
                self.counters.accepted += 1;
                if same {
                    self.heard(&peer, via, now);
                    return Ok(None);
                }
                self.track(&addrs, now);
                self.set_sighting(peer, via, new_sighting(addrs, source, now));
            }
            _ => {
                // Newer than what we had (or the first signed record of a peer known unsigned).
                self.replace_record(record, source, via, addrs, now);
            }
        }
        Ok(self.settle(&peer))
    }

    /// Puts `record` in place of the peer's, whatever its seq: every sighting learned from the old
    /// one goes, `via` carries the new one.
    fn replace_record(
        &mut self,
        record: VerifiedRecord,
        source: Source,
        via: &Via,
        addrs: Vec<Multiaddr>,
        now: Instant,
    ) {
        let peer = record.peer_id;
        self.track(&addrs, now);
        self.clear_sightings(peer);
        if let Some(e) = self.peers.get_mut(&peer) {
            e.set_seq(record.seq);
            e.signed = Some(record.signed);
            e.source = source;
        }
        self.set_sighting(peer, via, new_sighting(addrs, source, now));
        self.counters.accepted += 1;
    }

    /// Takes a record with a lower seq than the peer's (its clock stepped back), once the engine
    /// has decided the peer itself stands behind it (see `engine/rewind.rs`).
    pub fn rewind(
        &mut self,
        record: VerifiedRecord,
        source: Source,
        via: &Via,
        addrs: Vec<Multiaddr>,
        now: Instant,
    ) -> Option<PeerEvent> {
        let now = self.tick(now);
        let peer = record.peer_id;
        self.peers.get(&peer)?;
        self.replace_record(record, source, via, addrs, now);
        self.settle(&peer)
    }

    /// Where `peer` is known to be: every address of its sightings, through any way in, live or
    /// not, and, while it is not handed over, the addresses it was last handed over at (its
    /// sightings may all be gone: a confirmed goodbye, an interface that went).
    pub fn place_of(&self, peer: &PeerId) -> std::collections::HashSet<&Multiaddr> {
        self.peers
            .get(peer)
            .map(|e| {
                e.sightings
                    .values()
                    .flat_map(|l| l.addrs.iter())
                    .chain(e.last_place.iter())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A goodbye of `peer`'s record was confirmed (its node's ports refused it) on a sighting that
    /// had these addresses: once none of its sightings is live, the record held is known gone
    /// ([`PeerTable::is_gone`]). Those of the addresses no other sighting of it has no longer count
    /// as answering: a record that names them again (a replay, the node back) has them probed
    /// before they are handed over.
    pub fn departed(&mut self, peer: &PeerId, addrs: &[Multiaddr]) {
        let Some(e) = self.peers.get_mut(peer) else {
            return;
        };
        e.departed = true;
        let stale: Vec<&Multiaddr> = addrs
            .iter()
            .filter(|a| !e.sightings.values().any(|l| l.addrs.contains(a)))
            .collect();
        if let Some(prober) = self.prober.as_mut() {
            for a in stale {
                // Followed again (due at once) when a sighting names it; one still waiting for an
                // answer keeps its retries' pace.
                if prober.is_ok(a) {
                    prober.forget(a);
                }
            }
        }
    }

    /// Whether `peer`'s record is known gone: a goodbye of it was confirmed, none of its sightings
    /// is live, and none was heard or learned since.
    pub fn is_gone(&self, peer: &PeerId) -> bool {
        self.peers
            .get(peer)
            .is_some_and(|e| e.departed && !e.sightings.values().any(|l| l.live))
    }

    /// An unsigned peer (a stock libp2p-mdns node, a peer added by hand) learned through `via`
    /// with these dialable addresses. A peer known by a signed record is never overridden by an
    /// unsigned claim.
    pub fn observe_unsigned(
        &mut self,
        peer: PeerId,
        source: Source,
        via: &Via,
        addrs: Vec<Multiaddr>,
        now: Instant,
    ) -> Option<PeerEvent> {
        let now = self.tick(now);
        match self.peers.get(&peer) {
            Some(e) if e.seq().is_some() => return None,
            Some(_) => {}
            None => {
                if !self.admit(peer, Entry::new(None, None, source, now), via) {
                    return None;
                }
            }
        }
        self.track(&addrs, now);
        self.set_sighting(peer, via, new_sighting(addrs, source, now));
        self.settle(&peer)
    }
}
