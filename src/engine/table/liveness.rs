//! Whether a peer is still there, per way in: hearing it keeps that way live, silence is checked
//! before it counts ([`SILENCE_CHECKS`], answered by a probe), not being heard for the timeout
//! ends it, and a goodbye or a vanished interface or host removes it at once. Which packets may
//! keep it live (those from the announcer's own IPs). The expiry index files every live, unpinned
//! way in under the time it next needs looking at, so that expiry never scans the table; the
//! table's next deadline.

use super::{PeerTable, Sighting, Slot, Via, FORGET_AFTER};
use crate::wire::protocol::PeerEvent;
use libp2p_identity::PeerId;
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use crate::engine::stamp::Stamp;
use std::time::{Duration, Instant};

/// What a packet naming a peer's instance says of it (see [`PeerTable::heard_from`]).
#[derive(Debug, PartialEq)]
pub enum HeardFrom {
    /// It came from one of the peer's own IPs that way: the sighting is live (with the event,
    /// when hearing it revived it).
    Live(Option<PeerEvent>),
    /// It came from an IP of a family the peer has others of there: it does not speak for it.
    Foreign,
    /// Cannot tell: the peer has no sighting that way, or no IP of that family there yet.
    Unknown,
}

/// A live sighting not heard for these fractions of the timeout is checked: its peer's addresses
/// that way are probed ([`PeerTable::take_silent`]), and an answer keeps it live for one more
/// timeout. Silence alone is a weak sign on a link that loses packets; a host that vanished does
/// not answer, and times out as before.
pub const SILENCE_CHECKS: [(u32, u32); 2] = [(2, 3), (5, 6)];

/// A sighting kept live only by answers, with no packet heard at all, for this many timeouts is let
/// go (an address that answers is not proof that the same node still listens there).
pub const MAX_SILENT_TIMEOUTS: u32 = 5;

impl PeerTable {
    /// Files a live, unpinned sighting in the expiry index.
    pub(super) fn arm(
        expiries: &mut Expiries,
        timeout: Duration,
        slot: Slot,
        via: &Via,
        sighting: &mut Sighting,
    ) {
        if sighting.live && !sighting.pinned && sighting.armed.is_none() {
            let at = sighting.last_heard + next_wake(sighting, via, timeout);
            expiries.insert(at, slot, via.clone());
            sighting.armed = Some(at);
        }
    }

    pub(super) fn disarm(&mut self, slot: Slot, via: &Via, sighting: &Sighting) {
        if let Some(at) = sighting.armed {
            self.expiries.remove(at, slot, via);
        }
    }

    /// The peer's instance was heard through `via` (any packet naming it): keeps that sighting
    /// live, and revives it if it had timed out.
    pub fn heard(&mut self, peer: &PeerId, via: &Via, now: Instant) -> Option<PeerEvent> {
        let now = self.tick(now);
        let (slot, e) = self.peers.slot_mut(peer)?;
        let sighting = e.sightings.get_mut(via)?;
        if sighting.note_heard(Stamp::of(now)) {
            return None;
        }
        sighting.live = true;
        Self::arm(&mut self.expiries, self.timeout, slot, via, sighting);
        e.departed = false;
        self.settle(peer)
    }

    /// A packet from `ip` on `via` named the peer's instance. It speaks for the peer when `ip` is
    /// one of the peer's own IPs that way: then it is [`PeerTable::spoke`] and
    /// [`PeerTable::heard`] at once, with one lookup of the peer (this is done for every instance
    /// every packet names). From an IP of a family none of whose addresses is known for the peer
    /// there yet (its other family's records came first), nothing can be told.
    pub fn heard_from(
        &mut self,
        peer: &(impl super::FindPeer + ?Sized),
        via: &Via,
        ip: &IpAddr,
        now: Instant,
    ) -> HeardFrom {
        let now = self.tick(now);
        let Some((slot, sighting)) = self
            .peers
            .slot_mut(peer)
            .and_then(|(slot, e)| Some((slot, e.sightings.get_mut(via)?)))
        else {
            return HeardFrom::Unknown;
        };
        if sighting.ips.binary_search(ip).is_err() {
            return if sighting.ips.iter().any(|k| k.is_ipv4() == ip.is_ipv4()) {
                HeardFrom::Foreign
            } else {
                HeardFrom::Unknown
            };
        }
        sighting.note_spoke(ip);
        if sighting.note_heard(Stamp::of(now)) {
            return HeardFrom::Live(None);
        }
        let Some(peer) = self.peers.peer_at(slot) else {
            return HeardFrom::Live(None);
        };
        HeardFrom::Live(self.heard(&peer, via, now))
    }

    /// Links come due for a silence check since the last call: probe `probe_targets` of each, and
    /// report an answer with [`PeerTable::answered`].
    pub fn take_silent(&mut self) -> Vec<(PeerId, Via)> {
        std::mem::take(&mut self.silent)
    }

    /// Whether `peer`'s sighting through `via` still waits for a silence check (live, not heard
    /// since the check came due).
    pub fn needs_check(&self, peer: &PeerId, via: &Via) -> bool {
        self.peers
            .get(peer)
            .and_then(|e| e.sightings.get(via))
            .is_some_and(|l| l.live && l.checks > 0)
    }

    /// A silence check of `peer`'s sighting through `via` was answered: it stays live for one
    /// more timeout (but not beyond [`MAX_SILENT_TIMEOUTS`] with no packet heard). Returns
    /// whether the sighting was live and kept.
    pub fn answered(&mut self, peer: &PeerId, via: &Via, now: Instant) -> bool {
        let now = self.tick(now);
        let Some(sighting) = self.peers.get_mut(peer).and_then(|e| e.sightings.get_mut(via)) else {
            return false;
        };
        if !sighting.live {
            return false;
        }
        sighting.last_heard = sighting.last_heard.max(Stamp::of(now));
        sighting.checks = 0;
        true
    }

    /// Adds the announcer's IPs on `via` (the A/AAAA records it published there, beyond those its
    /// dialable addresses name): packets from them keep the sighting live too.
    pub fn note_ips(&mut self, peer: &PeerId, via: &Via, ips: &[IpAddr]) {
        let Some(sighting) = self.peers.get_mut(peer).and_then(|e| e.sightings.get_mut(via)) else {
            return;
        };
        for ip in ips {
            sighting.add_ip(*ip);
        }
    }

    /// When `peer` was last heard through `via`, while that sighting is live.
    pub fn last_heard_on(&self, peer: &(impl super::FindPeer + ?Sized), via: &Via) -> Option<Instant> {
        self.peers
            .get(peer)
            .and_then(|e| e.sightings.get(via))
            .filter(|l| l.live)
            .map(|l| l.spoke.instant())
    }

    /// The peer said goodbye through `via` (or the link went away): drop that sighting now.
    pub fn remove_sighting(&mut self, peer: &PeerId, via: &Via) -> Option<PeerEvent> {
        self.remove_sightings(peer, std::slice::from_ref(via))
    }

    /// Drops these sightings of `peer` at once: one event for the lot.
    pub fn remove_sightings(&mut self, peer: &PeerId, vias: &[Via]) -> Option<PeerEvent> {
        let mut any = false;
        let slot = self.peers.slot(peer)?;
        for via in vias {
            let Some(sighting) = self.peers.get_mut(peer)?.sightings.remove(via) else {
                continue;
            };
            self.disarm(slot, via, &sighting);
            self.dropped += sighting.addrs.len();
            any = true;
        }
        any.then(|| self.settle(peer)).flatten()
    }

    /// Drops every peer's sighting through `via` (an interface vanished or stopped carrying mDNS, a
    /// static host was removed).
    pub fn remove_via(&mut self, via: &Via) -> Vec<PeerEvent> {
        self.remove_via_where(via, |_| true)
    }

    /// Drops every peer's sighting through `via` for which `gone` holds.
    fn remove_via_where(&mut self, via: &Via, gone: impl Fn(&Sighting) -> bool) -> Vec<PeerEvent> {
        let peers: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, e)| e.sightings.get(via).is_some_and(&gone))
            .map(|(p, _)| p)
            .collect();
        peers
            .iter()
            .filter_map(|p| self.remove_sighting(p, via))
            .collect()
    }

    /// Drops every peer's sighting through `via` that was not heard since `since` (a static host's
    /// exchange reply that no longer lists it: the host no longer hears it).
    pub fn remove_unheard(&mut self, via: &Via, since: Instant) -> Vec<PeerEvent> {
        let since = Stamp::of(since);
        self.remove_via_where(via, |l| l.spoke < since)
    }

    /// Marks sightings not heard within the timeout as dead; returns the resulting events.
    pub fn expire(&mut self, now: Instant) -> Vec<PeerEvent> {
        let now = Stamp::of(self.tick(now));
        while let Some((since, slot)) = self.dead.first().copied() {
            if since + FORGET_AFTER > now {
                break;
            }
            match self.peers.peer_at(slot) {
                Some(peer) => self.forget(&peer),
                None => {
                    self.dead.pop_first();
                }
            }
        }
        let mut touched = Vec::new();
        while let Some((at, slot, via)) = self.expiries.pop_due(now) {
            let Some((peer, e)) = self.peers.at_mut(slot) else {
                continue;
            };
            let established = e.host.is_some();
            let Some(sighting) = e.sightings.get_mut(&via) else {
                continue;
            };
            if sighting.armed != Some(at) {
                continue;
            }
            sighting.armed = None;
            let quiet = now.since(sighting.last_heard);
            if quiet < self.timeout {
                // A check come due, or heard since it was filed: file it again under its real
                // time, after asking for the check.
                if checkable(&via)
                    && (sighting.checks as usize) < SILENCE_CHECKS.len()
                    && quiet >= check_after(self.timeout, sighting.checks)
                {
                    sighting.checks += 1;
                    if established && sighting.spoke + self.timeout * MAX_SILENT_TIMEOUTS > now {
                        self.silent.push((peer, via.clone()));
                    }
                }
                Self::arm(&mut self.expiries, self.timeout, slot, &via, sighting);
            } else {
                sighting.live = false;
                touched.push(peer);
            }
        }
        touched.sort();
        touched.dedup();
        let events = touched.iter().filter_map(|p| self.settle(p)).collect();
        self.prune_prober();
        events
    }

    /// When [`PeerTable::expire`] or [`PeerTable::due_probes`] next has work, if ever, after
    /// `now`. (A probe due now but held back by the concurrency limits waits for a running probe
    /// to finish, which brings the caller back.)
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let expiry = self.expiries.first.map(Stamp::instant);
        let probe = self.prober.as_ref().and_then(|p| p.next_deadline(now));
        let forget = self.dead.first().map(|(t, _)| (*t + FORGET_AFTER).instant());
        expiry.into_iter().chain(probe).chain(forget).min()
    }
}

/// Ways in numbered by the expiry index before it numbers again those still in use.
const MAX_VIA_NUMBERS: usize = 256;

/// The expiry index: every live, unpinned sighting under the time it is filed for, and the
/// earliest of those times at hand (it is checked on every input). A sighting's way in is filed
/// as a small number (the ways in are few: links, static hosts, the cache, the operator), which
/// halves an element.
#[derive(Debug, Default)]
pub(super) struct Expiries {
    set: BTreeSet<(Stamp, Slot, u32)>,
    first: Option<Stamp>,
    /// Every way in filed so far, by its number (all named by this host's configuration and
    /// interfaces: few; renumbered past [`MAX_VIA_NUMBERS`], for a host whose interfaces come
    /// and go under new names).
    vias: Vec<Via>,
    numbers: HashMap<Via, u32>,
}

impl Expiries {
    fn insert(&mut self, at: Stamp, slot: Slot, via: Via) {
        let n = match self.numbers.get(&via) {
            Some(n) => *n,
            None => {
                if self.vias.len() >= MAX_VIA_NUMBERS {
                    self.renumber();
                }
                let n = self.vias.len() as u32;
                self.vias.push(via.clone());
                self.numbers.insert(via, n);
                n
            }
        };
        self.set.insert((at, slot, n));
        self.first = Some(self.first.map_or(at, |f| f.min(at)));
    }

    fn remove(&mut self, at: Stamp, slot: Slot, via: &Via) {
        let Some(n) = self.numbers.get(via) else {
            return;
        };
        if self.set.remove(&(at, slot, *n)) && self.first == Some(at) {
            self.first = self.set.first().map(|(t, _, _)| *t);
        }
    }

    /// Numbers again only the ways in still filed.
    fn renumber(&mut self) {
        let set = std::mem::take(&mut self.set);
        let vias = std::mem::take(&mut self.vias);
        self.numbers.clear();
        self.first = None;
        for (at, slot, n) in set {
            self.insert(at, slot, vias[n as usize].clone());
        }
    }

    /// The earliest entry, if it is due by `now`.
    fn pop_due(&mut self, now: Stamp) -> Option<(Stamp, Slot, Via)> {
        if self.first.is_none_or(|t| t > now) {
            return None;
        }
        let (at, slot, n) = self.set.pop_first()?;
        self.first = self.set.first().map(|(t, _, _)| *t);
        Some((at, slot, self.vias[n as usize].clone()))
    }
}

/// Whether silence on `via` is checked before it counts: multicast on a link, static hosts and
/// their exchange, where a packet or a reply can be lost (not the cache, whose hints a probe
/// confirms anyway, nor manual peers).
fn checkable(via: &Via) -> bool {
    matches!(via, Via::Multicast(_) | Via::Static(_) | Via::Exchange(_))
}

/// How long after `last_heard` silence check number `n` (from 0) comes due.
fn check_after(timeout: Duration, n: u8) -> Duration {
    let (num, den) = SILENCE_CHECKS[(n as usize).min(SILENCE_CHECKS.len() - 1)];
    timeout * num / den
}

/// How long after `last_heard` the sighting next needs looking at: its next silence check, or its
/// timeout.
fn next_wake(sighting: &Sighting, via: &Via, timeout: Duration) -> Duration {
    if checkable(via) && (sighting.checks as usize) < SILENCE_CHECKS.len() {
        check_after(timeout, sighting.checks)
    } else {
        timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expiry_index_files_ways_in_by_number_and_gives_each_back_as_it_was_filed() {
        let t0 = crate::test_clock();
        let at = |s: u64| Stamp::of(t0 + Duration::from_secs(s));
        let via = |i: usize| Via::Multicast(format!("veth{i}").as_str().into());
        let mut e = Expiries::default();
        // Interfaces that come and go under new names: each filed, most taken out again.
        let kept = [3, 150, 299, 400];
        for i in 0..500 {
            e.insert(at(i as u64), i as Slot, via(i));
            if !kept.contains(&i) {
                e.remove(at(i as u64), i as Slot, &via(i));
            }
        }
        assert!(e.vias.len() <= MAX_VIA_NUMBERS, "numbered again: {}", e.vias.len());
        e.insert(at(1000), 7, via(150));
        e.remove(at(1000), 7, &via(999)); // never filed: nothing happens
        let mut due = Vec::new();
        while let Some(entry) = e.pop_due(at(2000)) {
            due.push(entry);
        }
        let want: Vec<(Stamp, Slot, Via)> = kept
            .iter()
            .map(|&i| (at(i as u64), i as Slot, via(i)))
            .chain([(at(1000), 7, via(150))])
            .collect();
        assert_eq!(due, want);
        assert_eq!(e.first, None);
    }
}
