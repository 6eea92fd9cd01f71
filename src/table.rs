//! The peer table: verified records merged by seq, per-link liveness, expiry and events. Pure, no I/O;
//! the clock is passed in.
//!
//! A peer is known per link (interface) where its record was heard. A link stays *live* while the
//! peer is heard on it at least once per timeout; a goodbye removes it at once. The peer is visible
//! (handed to the node) while at least one live link yields a dialable address. A record with a
//! higher seq replaces the old one and drops every link learned from the old one (restart on a new
//! port: only the new addresses remain); a lower seq is a replay and is refused.
//!
//! With reachability verification on, an address is handed over only once a probe (a TCP connect,
//! run by the shell) has answered: [`PeerTable::due_probes`] says which addresses to try now, at
//! most a few per peer and in all; [`PeerTable::probe_result`] records the outcome. Addresses
//! that do not answer are retried with a doubling backoff and handed over when they do.

use crate::proto::{EventKind, PeerEvent, PeerInfo, Source, Verification};
use crate::record::{Reject, VerifiedRecord};
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Most peers the table holds; records of further peers are ignored until some expire.
pub const MAX_PEERS: usize = 4096;
/// First retry delay of an address that did not answer; doubles up to [`MAX_RETRY`].
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest retry delay of an address that does not answer.
pub const MAX_RETRY: Duration = Duration::from_secs(60);

/// What is known of an address's reachability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reach {
    /// Answered a probe.
    Ok,
    /// Not yet answered: probe again at `next`; `in_flight` while a probe runs.
    Pending {
        next: Instant,
        backoff: Duration,
        in_flight: bool,
    },
}

#[derive(Clone, Debug)]
struct Link {
    addrs: Vec<Multiaddr>,
    last_heard: Instant,
    live: bool,
    /// How this link learned the peer.
    source: Source,
    /// Never times out (a peer the operator added by hand).
    pinned: bool,
}

#[derive(Clone, Debug)]
struct Entry {
    peer: PeerId,
    /// Highest seq accepted; `None` for an unsigned peer.
    seq: Option<u64>,
    /// The signed record of that seq (for the persistent cache).
    signed: Option<Vec<u8>>,
    source: Source,
    links: BTreeMap<String, Link>,
    /// What the node was last told of this peer; `None` while it is not visible.
    sent: Option<PeerInfo>,
}

/// Counters of records handled, by outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Records accepted (new or refreshed).
    pub accepted: u64,
    /// Records refused, by reason.
    pub rejected: BTreeMap<Reject, u64>,
}

/// The table. See the module docs.
#[derive(Debug)]
pub struct PeerTable {
    peers: HashMap<PeerId, Entry>,
    timeout: Duration,
    counters: Counters,
    /// Whether addresses must answer a probe before they are handed over.
    verify: bool,
    reach: HashMap<Multiaddr, Reach>,
}

impl PeerTable {
    /// An empty table expiring links not heard for `timeout`.
    pub fn new(timeout: Duration) -> Self {
        PeerTable {
            peers: HashMap::new(),
            timeout,
            counters: Counters::default(),
            verify: false,
            reach: HashMap::new(),
        }
    }

    /// Turns reachability verification on or off.
    pub fn with_reachability(mut self, verify: bool) -> Self {
        self.verify = verify;
        self
    }

    /// Addresses to probe now: due, not already being probed, TCP, on a live link; at most
    /// `per_peer` probes in flight per peer and `total` in all. They are marked in flight.
    pub fn due_probes(
        &mut self,
        now: Instant,
        total: usize,
        per_peer: usize,
    ) -> Vec<(PeerId, Multiaddr)> {
        if !self.verify {
            return Vec::new();
        }
        let mut in_flight = self
            .reach
            .values()
            .filter(|r| {
                matches!(
                    r,
                    Reach::Pending {
                        in_flight: true,
                        ..
                    }
                )
            })
            .count();
        let mut out = Vec::new();
        for (peer, e) in &self.peers {
            let addrs: Vec<&Multiaddr> = e
                .links
                .values()
                .filter(|l| l.live)
                .flat_map(|l| l.addrs.iter())
                .collect();
            let mut mine = addrs
                .iter()
                .filter(|a| {
                    matches!(
                        self.reach.get(**a),
                        Some(Reach::Pending {
                            in_flight: true,
                            ..
                        })
                    )
                })
                .count();
            for a in addrs {
                if in_flight >= total {
                    return out;
                }
                if mine >= per_peer {
                    break;
                }
                if let Some(Reach::Pending {
                    next,
                    in_flight: flying @ false,
                    ..
                }) = self.reach.get_mut(a)
                {
                    if *next <= now {
                        *flying = true;
                        in_flight += 1;
                        mine += 1;
                        out.push((*peer, a.clone()));
                    }
                }
            }
        }
        out
    }

    /// A probe of `addr` answered (`ok`) or not; returns the events this causes.
    pub fn probe_result(&mut self, addr: &Multiaddr, ok: bool, now: Instant) -> Vec<PeerEvent> {
        let Some(r) = self.reach.get_mut(addr) else {
            return Vec::new();
        };
        *r = match (*r, ok) {
            (_, true) => Reach::Ok,
            (Reach::Pending { backoff, .. }, false) => Reach::Pending {
                next: now + backoff,
                backoff: (backoff * 2).min(MAX_RETRY),
                in_flight: false,
            },
            (Reach::Ok, false) => Reach::Ok,
        };
        if !ok {
            return Vec::new();
        }
        let peers: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, e)| e.links.values().any(|l| l.addrs.contains(addr)))
            .map(|(p, _)| *p)
            .collect();
        peers.iter().filter_map(|p| self.settle(p)).collect()
    }

    fn track(&mut self, addrs: &[Multiaddr], now: Instant) {
        if !self.verify {
            return;
        }
        for a in addrs.iter().filter(|a| probeable(a)) {
            self.reach.entry(a.clone()).or_insert(Reach::Pending {
                next: now,
                backoff: FIRST_RETRY,
                in_flight: false,
            });
        }
    }

    /// Counts a record refused before it reached the table (signature, namespace, …).
    pub fn count_reject(&mut self, why: Reject) {
        *self.counters.rejected.entry(why).or_default() += 1;
    }

    /// What was accepted and refused so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// A verified record heard on `iface`, with the addresses dialable over that link.
    /// Returns the event for the node, if any. An older seq is refused as a replay.
    pub fn observe(
        &mut self,
        record: VerifiedRecord,
        iface: &str,
        addrs: Vec<Multiaddr>,
        now: Instant,
    ) -> Result<Option<PeerEvent>, Reject> {
        self.observe_from(record, Source::Mdns, iface, addrs, now)
    }

    /// As [`PeerTable::observe`], for a record learned another way than multicast (`link` then
    /// names where from, e.g. `static:host`).
    pub fn observe_from(
        &mut self,
        record: VerifiedRecord,
        source: Source,
        iface: &str,
        addrs: Vec<Multiaddr>,
        now: Instant,
    ) -> Result<Option<PeerEvent>, Reject> {
        let peer = record.peer_id;
        if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_PEERS {
            return Ok(None);
        }
        if self
            .peers
            .get(&peer)
            .and_then(|e| e.seq)
            .is_none_or(|old| record.seq >= old)
        {
            self.track(&addrs, now);
        }
        let link = Link {
            addrs,
            last_heard: now,
            live: true,
            source,
            // A cached peer stays until a newer record replaces it (it is not heard to stay).
            pinned: source == Source::Cache,
        };
        match self.peers.get_mut(&peer) {
            Some(Entry { seq: Some(old), .. }) if record.seq < *old => {
                self.count_reject(Reject::Replay);
                return Err(Reject::Replay);
            }
            Some(e) if e.seq == Some(record.seq) => {
                e.links.insert(iface.to_owned(), link);
            }
            Some(e) => {
                // Newer than what we had (or the first signed record of a peer known unsigned).
                e.seq = Some(record.seq);
                e.signed = Some(record.signed.clone());
                e.source = source;
                e.links.clear();
                e.links.insert(iface.to_owned(), link);
            }
            None => {
                let mut links = BTreeMap::new();
                links.insert(iface.to_owned(), link);
                self.peers.insert(
                    peer,
                    Entry {
                        peer,
                        seq: Some(record.seq),
                        signed: Some(record.signed.clone()),
                        source,
                        links,
                        sent: None,
                    },
                );
            }
        }
        self.counters.accepted += 1;
        Ok(self.settle(&peer))
    }

    /// An unsigned peer (e.g. a stock libp2p-mdns node) heard on `iface` with these dialable
    /// addresses. A peer known by a signed record is never overridden by an unsigned claim.
    pub fn observe_unsigned(
        &mut self,
        peer: PeerId,
        source: Source,
        iface: &str,
        addrs: Vec<Multiaddr>,
        now: Instant,
    ) -> Option<PeerEvent> {
        if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_PEERS {
            return None;
        }
        let e = self.peers.entry(peer).or_insert_with(|| Entry {
            peer,
            seq: None,
            signed: None,
            source,
            links: BTreeMap::new(),
            sent: None,
        });
        if e.seq.is_some() {
            return None;
        }
        self.track(&addrs, now);
        let e = self.peers.get_mut(&peer)?;
        e.links.insert(
            iface.to_owned(),
            Link {
                addrs,
                last_heard: now,
                live: true,
                source,
                pinned: source == Source::Manual,
            },
        );
        self.settle(&peer)
    }

    /// The peer's instance was heard on `iface` (any packet naming it): keeps that link live,
    /// and revives it if it had timed out.
    pub fn heard(&mut self, peer: &PeerId, iface: &str, now: Instant) -> Option<PeerEvent> {
        let link = self.peers.get_mut(peer)?.links.get_mut(iface)?;
        link.last_heard = now;
        if link.live {
            return None;
        }
        link.live = true;
        self.settle(peer)
    }

    /// The peer said goodbye on `iface` (or the link went away): drop that link now.
    pub fn remove_link(&mut self, peer: &PeerId, iface: &str) -> Option<PeerEvent> {
        self.peers.get_mut(peer)?.links.remove(iface)?;
        self.settle(peer)
    }

    /// Drops every peer's link on `iface` (the interface vanished or stopped carrying mDNS).
    pub fn remove_iface(&mut self, iface: &str) -> Vec<PeerEvent> {
        let peers: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, e)| e.links.contains_key(iface))
            .map(|(p, _)| *p)
            .collect();
        peers
            .iter()
            .filter_map(|p| self.remove_link(p, iface))
            .collect()
    }

    /// Marks links not heard within the timeout as dead; returns the resulting events.
    pub fn expire(&mut self, now: Instant) -> Vec<PeerEvent> {
        let mut touched = Vec::new();
        for (peer, e) in self.peers.iter_mut() {
            for link in e.links.values_mut() {
                if link.live
                    && !link.pinned
                    && now.saturating_duration_since(link.last_heard) >= self.timeout
                {
                    link.live = false;
                    touched.push(*peer);
                }
            }
        }
        touched.dedup();
        let events = touched.iter().filter_map(|p| self.settle(p)).collect();
        // Forget the reachability of addresses no link carries any more.
        if self.reach.len() > 64 {
            let used: std::collections::HashSet<&Multiaddr> = self
                .peers
                .values()
                .flat_map(|e| e.links.values())
                .flat_map(|l| l.addrs.iter())
                .collect();
            self.reach.retain(|a, _| used.contains(a));
        }
        events
    }

    /// When [`PeerTable::expire`] or [`PeerTable::due_probes`] next has work, if ever, after
    /// `now`. (A probe due now but held back by the concurrency limits waits for a running probe
    /// to finish, which brings the caller back.)
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let live = self
            .peers
            .values()
            .flat_map(|e| e.links.values())
            .filter(|l| l.live);
        let expiry = live
            .clone()
            .filter(|l| !l.pinned)
            .map(|l| l.last_heard + self.timeout)
            .min();
        let probe = live
            .flat_map(|l| l.addrs.iter())
            .filter_map(|a| match self.reach.get(a) {
                Some(Reach::Pending {
                    next,
                    in_flight: false,
                    ..
                }) if *next > now => Some(*next),
                _ => None,
            })
            .min();
        expiry.into_iter().chain(probe).min()
    }

    /// Every visible peer.
    pub fn snapshot(&self) -> Vec<PeerInfo> {
        let mut v: Vec<PeerInfo> = self.peers.values().filter_map(|e| e.sent.clone()).collect();
        v.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        v
    }

    /// What the persistent cache keeps: every signed peer's record and the addresses any link
    /// gave for it.
    pub fn cache_entries(&self) -> Vec<crate::cache::CachedPeer> {
        let mut out: Vec<crate::cache::CachedPeer> = self
            .peers
            .values()
            .filter_map(|e| {
                let signed = e.signed.clone()?;
                let mut addrs: Vec<String> = Vec::new();
                for a in e.links.values().flat_map(|l| l.addrs.iter()) {
                    let s = a.to_string();
                    if !addrs.contains(&s) {
                        addrs.push(s);
                    }
                }
                (!addrs.is_empty()).then_some(crate::cache::CachedPeer { signed, addrs })
            })
            .collect();
        out.sort_by(|a, b| a.signed.cmp(&b.signed));
        out
    }

    /// Highest seq accepted from `peer`, kept after it expires so that replays stay refused.
    pub fn seq_of(&self, peer: &PeerId) -> Option<u64> {
        self.peers.get(peer).and_then(|e| e.seq)
    }

    /// Recomputes what the node should know of `peer` and says what changed.
    fn settle(&mut self, peer: &PeerId) -> Option<PeerEvent> {
        let e = self.peers.get_mut(peer)?;
        let cur = info(e, self.verify.then_some(&self.reach));
        let visible = !cur.addrs.is_empty();
        let event = match (&e.sent, visible) {
            (None, true) => Some(PeerEvent {
                event: EventKind::Discovered,
                peer: cur.clone(),
            }),
            (Some(last), false) => Some(PeerEvent {
                event: EventKind::Expired,
                peer: last.clone(),
            }),
            (Some(last), true) if *last != cur => Some(PeerEvent {
                event: EventKind::Updated,
                peer: cur.clone(),
            }),
            _ => None,
        };
        e.sent = visible.then_some(cur);
        if e.links.is_empty() && self.peers.len() > MAX_PEERS / 2 {
            // Link-less entries only remember the seq (replay protection); shed them under pressure.
            self.peers.retain(|_, e| !e.links.is_empty());
        }
        event
    }
}

/// Whether a TCP connect can check this address.
pub fn probeable(a: &Multiaddr) -> bool {
    a.iter().any(|p| matches!(p, multiaddr::Protocol::Tcp(_)))
}

/// What the node is told of a peer: the addresses of its live links (only those that answered a
/// probe, when `reach` is given), the interfaces they came from, and how it was checked.
fn info(e: &Entry, reach: Option<&HashMap<Multiaddr, Reach>>) -> PeerInfo {
    let mut addrs: Vec<String> = Vec::new();
    let mut interfaces = Vec::new();
    for (name, link) in e.links.iter().filter(|(_, l)| l.live) {
        let ok: Vec<&Multiaddr> = link
            .addrs
            .iter()
            .filter(|a| reach.is_none_or(|r| r.get(*a) == Some(&Reach::Ok)))
            .collect();
        if ok.is_empty() {
            continue;
        }
        interfaces.push(name.clone());
        for a in ok {
            let s = a.to_string();
            if !addrs.contains(&s) {
                addrs.push(s);
            }
        }
    }
    // Where it was learned: multicast first, then the static host, then the rest.
    let source = e
        .links
        .values()
        .filter(|l| l.live)
        .map(|l| l.source)
        .min_by_key(|s| match s {
            Source::Mdns => 0,
            Source::Static => 1,
            Source::Manual => 2,
            Source::Cache => 3,
            _ => 4,
        })
        .unwrap_or(e.source);
    let mut verified = Vec::new();
    if e.seq.is_some() {
        verified.push(Verification::Signature);
    }
    if reach.is_some() {
        verified.push(Verification::Reachable);
    }
    PeerInfo {
        peer_id: e.peer.to_base58(),
        addrs,
        interfaces,
        source,
        verified,
        seq: e.seq.unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record;
    use libp2p_identity::Keypair;

    const T: Duration = Duration::from_secs(60);

    fn rec(k: &Keypair, seq: u64, port: u16) -> VerifiedRecord {
        let a: Multiaddr = format!("/ip4/0.0.0.0/tcp/{port}").parse().unwrap();
        record::verify(&record::sign(k, "exo", seq, &[a]).unwrap(), "exo").unwrap()
    }

    fn dial(k: &Keypair, ip: &str, port: u16) -> Vec<Multiaddr> {
        vec![
            format!("/ip4/{ip}/tcp/{port}/p2p/{}", k.public().to_peer_id())
                .parse()
                .unwrap(),
        ]
    }

    #[test]
    fn discovered_once_then_same_record_on_a_second_link_is_an_update() {
        let k = Keypair::generate_ed25519();
        let now = Instant::now();
        let mut t = PeerTable::new(T);
        let e = t
            .observe(rec(&k, 1, 5), "eth0", dial(&k, "10.0.0.2", 5), now)
            .unwrap()
            .unwrap();
        assert_eq!(e.event, EventKind::Discovered);
        assert_eq!(e.peer.interfaces, vec!["eth0"]);
        // Same record again on the same link: nothing new.
        assert_eq!(
            t.observe(rec(&k, 1, 5), "eth0", dial(&k, "10.0.0.2", 5), now),
            Ok(None)
        );
        let e = t
            .observe(rec(&k, 1, 5), "eth1", dial(&k, "10.1.0.2", 5), now)
            .unwrap()
            .unwrap();
        assert_eq!(e.event, EventKind::Updated);
        assert_eq!(e.peer.interfaces, vec!["eth0", "eth1"]);
        assert_eq!(e.peer.addrs.len(), 2);
        assert_eq!(t.snapshot().len(), 1);
    }

    #[test]
    fn newer_seq_replaces_all_old_addresses() {
        let k = Keypair::generate_ed25519();
        let now = Instant::now();
        let mut t = PeerTable::new(T);
        t.observe(rec(&k, 1, 5), "eth0", dial(&k, "10.0.0.2", 5), now)
            .unwrap();
        t.observe(rec(&k, 1, 5), "eth1", dial(&k, "10.1.0.2", 5), now)
            .unwrap();
        let e = t
            .observe(rec(&k, 2, 6), "eth0", dial(&k, "10.0.0.2", 6), now)
            .unwrap()
            .unwrap();
        assert_eq!(e.event, EventKind::Updated);
        assert_eq!(e.peer.addrs, vec![dial(&k, "10.0.0.2", 6)[0].to_string()]);
        assert_eq!(e.peer.seq, 2);
    }

    #[test]
    fn older_seq_is_a_counted_replay() {
        let k = Keypair::generate_ed25519();
        let now = Instant::now();
        let mut t = PeerTable::new(T);
        t.observe(rec(&k, 5, 5), "eth0", dial(&k, "10.0.0.2", 5), now)
            .unwrap();
        assert_eq!(
            t.observe(rec(&k, 4, 9), "eth0", dial(&k, "10.0.0.2", 9), now),
            Err(Reject::Replay)
        );
        assert_eq!(t.counters().rejected.get(&Reject::Replay), Some(&1));
        assert_eq!(t.snapshot()[0].seq, 5);
        // Even after the peer expired, the seq is remembered.
        t.remove_link(&k.public().to_peer_id(), "eth0");
        assert!(t.snapshot().is_empty());
        assert_eq!(
            t.observe(rec(&k, 4, 9), "eth0", dial(&k, "10.0.0.2", 9), now),
            Err(Reject::Replay)
        );
    }

    #[test]
    fn goodbye_expires_and_timeout_expires_and_hearing_revives() {
        let k = Keypair::generate_ed25519();
        let p = k.public().to_peer_id();
        let t0 = Instant::now();
        let mut t = PeerTable::new(T);
        t.observe(rec(&k, 1, 5), "eth0", dial(&k, "10.0.0.2", 5), t0)
            .unwrap();
        assert_eq!(t.next_deadline(t0), Some(t0 + T));
        assert!(t.expire(t0 + T - Duration::from_secs(1)).is_empty());
        assert!(t.heard(&p, "eth0", t0 + Duration::from_secs(30)).is_none());
        assert_eq!(t.next_deadline(t0), Some(t0 + Duration::from_secs(30) + T));
        let ev = t.expire(t0 + Duration::from_secs(90));
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].event, EventKind::Expired);
        assert_eq!(
            ev[0].peer.addrs,
            vec![dial(&k, "10.0.0.2", 5)[0].to_string()]
        );
        assert_eq!(t.next_deadline(t0), None);
        let ev = t.heard(&p, "eth0", t0 + Duration::from_secs(100)).unwrap();
        assert_eq!(ev.event, EventKind::Discovered);
        let ev = t.remove_link(&p, "eth0").unwrap();
        assert_eq!(ev.event, EventKind::Expired);
        assert!(t.heard(&p, "eth0", t0).is_none(), "a goodbye is final");
    }

    #[test]
    fn a_link_without_dialable_addresses_does_not_make_a_peer_visible() {
        let k = Keypair::generate_ed25519();
        let mut t = PeerTable::new(T);
        assert_eq!(
            t.observe(rec(&k, 1, 5), "eth0", vec![], Instant::now()),
            Ok(None)
        );
        assert!(t.snapshot().is_empty());
    }

    #[test]
    fn unsigned_peers_are_reported_as_such_and_never_override_signed_ones() {
        let k = Keypair::generate_ed25519();
        let p = k.public().to_peer_id();
        let now = Instant::now();
        let mut t = PeerTable::new(T);
        let e = t
            .observe_unsigned(p, Source::Libp2pMdns, "eth0", dial(&k, "10.0.0.9", 9), now)
            .unwrap();
        assert_eq!(e.event, EventKind::Discovered);
        assert_eq!(e.peer.source, Source::Libp2pMdns);
        assert!(e.peer.verified.is_empty());
        assert_eq!(t.seq_of(&p), None);
        // The signed record takes over, and unsigned claims are ignored from then on.
        let e = t
            .observe(rec(&k, 3, 5), "eth0", dial(&k, "10.0.0.2", 5), now)
            .unwrap()
            .unwrap();
        assert_eq!(e.event, EventKind::Updated);
        assert_eq!(e.peer.source, Source::Mdns);
        assert_eq!(e.peer.verified, vec![Verification::Signature]);
        assert!(t
            .observe_unsigned(p, Source::Libp2pMdns, "eth0", dial(&k, "10.6.6.6", 6), now)
            .is_none());
        assert_eq!(
            t.snapshot()[0].addrs,
            vec![dial(&k, "10.0.0.2", 5)[0].to_string()]
        );
    }

    #[test]
    fn only_addresses_that_answer_are_handed_over_and_others_are_retried() {
        let k = Keypair::generate_ed25519();
        let p = k.public().to_peer_id();
        let t0 = Instant::now();
        let mut t = PeerTable::new(T).with_reachability(true);
        let mut addrs = dial(&k, "10.0.0.2", 5);
        addrs.extend(dial(&k, "172.17.0.1", 5));
        addrs.extend(dial(&k, "10.0.0.3", 5));
        assert_eq!(
            t.observe(rec(&k, 1, 5), "eth0", addrs.clone(), t0),
            Ok(None)
        );
        assert!(t.snapshot().is_empty(), "nothing before a probe answers");
        assert_eq!(
            t.next_deadline(t0),
            Some(t0 + T),
            "due probes are the caller's now"
        );
        // At most two probes per peer at once.
        let due = t.due_probes(t0, 8, 2);
        assert_eq!(due.len(), 2);
        assert!(
            t.due_probes(t0, 8, 2).is_empty(),
            "in flight are not handed out twice"
        );
        let ev = t.probe_result(&addrs[0], true, t0);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].event, EventKind::Discovered);
        assert_eq!(ev[0].peer.addrs, vec![addrs[0].to_string()]);
        assert_eq!(
            ev[0].peer.verified,
            vec![Verification::Signature, Verification::Reachable]
        );
        // The docker-style address does not answer: withheld, retried after a backoff.
        assert!(t.probe_result(&addrs[1], false, t0).is_empty());
        let due = t.due_probes(t0, 8, 2);
        assert_eq!(due, vec![(p, addrs[2].clone())], "the third gets its turn");
        assert!(t.probe_result(&addrs[2], false, t0).is_empty());
        assert!(t
            .due_probes(t0 + Duration::from_millis(500), 8, 2)
            .is_empty());
        let again = t.due_probes(t0 + FIRST_RETRY, 8, 2);
        assert_eq!(again.len(), 2);
        t.probe_result(&addrs[1], false, t0 + FIRST_RETRY);
        // The retry doubles.
        assert!(t.due_probes(t0 + FIRST_RETRY * 2, 8, 2).is_empty());
        // Once it answers it is handed over.
        let ev = t.probe_result(&addrs[2], true, t0 + FIRST_RETRY);
        assert_eq!(ev[0].event, EventKind::Updated);
        assert_eq!(ev[0].peer.addrs.len(), 2);
        assert!(!ev[0].peer.addrs.contains(&addrs[1].to_string()));
    }

    #[test]
    fn the_global_probe_limit_holds_across_peers() {
        let mut t = PeerTable::new(T).with_reachability(true);
        let now = Instant::now();
        for i in 0..5 {
            let k = Keypair::generate_ed25519();
            let addrs = dial(&k, &format!("10.0.0.{i}"), 5);
            t.observe(rec(&k, 1, 5), "eth0", addrs, now).unwrap();
        }
        assert_eq!(t.due_probes(now, 3, 2).len(), 3);
        assert!(t.due_probes(now, 3, 2).is_empty());
    }

    #[test]
    fn losing_one_of_two_links_is_an_update_and_removing_the_iface_expires() {
        let k = Keypair::generate_ed25519();
        let p = k.public().to_peer_id();
        let now = Instant::now();
        let mut t = PeerTable::new(T);
        t.observe(rec(&k, 1, 5), "eth0", dial(&k, "10.0.0.2", 5), now)
            .unwrap();
        t.observe(rec(&k, 1, 5), "eth1", dial(&k, "10.1.0.2", 5), now)
            .unwrap();
        let e = t.remove_link(&p, "eth1").unwrap();
        assert_eq!(e.event, EventKind::Updated);
        assert_eq!(e.peer.interfaces, vec!["eth0"]);
        let ev = t.remove_iface("eth0");
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].event, EventKind::Expired);
    }
}
