//! The peer table: verified records merged by seq, per-source liveness, expiry and events. Pure,
//! no I/O; the clock is passed in.
//!
//! A peer is known per [`Via`] (a link, a static host, the cache, the operator) where its record
//! was learned. A link stays *live* while the peer is heard on it at least once per timeout; a
//! goodbye removes it at once. The peer is visible (handed to the node) while at least one live
//! link yields a dialable address. A record with a higher seq replaces the old one and drops every
//! link learned from the old one (restart on a new port: only the new addresses remain); a lower
//! seq is a replay and is refused.
//!
//! With reachability verification on, an address is handed over only once a probe has answered;
//! the [`Prober`] schedules the probes, the table says which addresses are worth probing (those on
//! live links) and settles a peer when one of its addresses answers.
//!
//! Every operation costs O(log n) in the number of peers or less, except those that name a whole
//! link ([`PeerTable::remove_via`]) or the whole table ([`PeerTable::snapshot`],
//! [`PeerTable::cache_entries`]): a table of thousands of peers is never scanned per packet.

use super::prober::Prober;
use crate::proto::{EventKind, PeerEvent, PeerInfo, Source, Verification};
use crate::record::{Reject, VerifiedRecord};
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

/// Most peers the table holds; records of further peers are ignored until some expire.
pub const MAX_PEERS: usize = 4096;

/// Where a peer was learned: the key of its per-source liveness.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Via {
    /// A local link, by interface name.
    Link(String),
    /// A static host asked by unicast, as configured.
    Static(String),
    /// The persistent cache of an earlier run.
    Cache,
    /// The operator (`add-peer`).
    Manual,
}

impl fmt::Display for Via {
    /// The name the node sees in a peer's `interfaces`: `eth0`, `static:HOST`, `cache`, `manual`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Via::Link(name) => f.write_str(name),
            Via::Static(host) => write!(f, "static:{host}"),
            Via::Cache => f.write_str("cache"),
            Via::Manual => f.write_str("manual"),
        }
    }
}

/// What is known of a peer through one [`Via`]: its addresses that way, and when it was last heard.
#[derive(Clone, Debug)]
struct Sighting {
    addrs: Vec<Multiaddr>,
    /// `addrs` as the node is told them (formatted once).
    text: Vec<String>,
    last_heard: Instant,
    live: bool,
    /// The time it is filed under in the expiry index (a lower bound of when it times out:
    /// hearing it again only moves `last_heard`, and the index catches up when that time comes).
    armed: Option<Instant>,
    /// How this link learned the peer.
    source: Source,
    /// Never times out (a peer the operator added by hand, a cached peer).
    pinned: bool,
}

#[derive(Clone, Debug)]
struct Entry {
    /// The peer in base58, as the node is told it.
    id: String,
    /// Highest seq accepted; `None` for an unsigned peer.
    seq: Option<u64>,
    /// The signed record of that seq (for the persistent cache).
    signed: Option<Vec<u8>>,
    source: Source,
    links: Sightings,
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
    /// Reachability, when addresses must answer a probe before they are handed over.
    prober: Option<Prober>,
    /// When each live, unpinned link times out.
    expiries: Expiries,
    /// Addresses dropped from links since the prober was last pruned.
    dropped: usize,
}

impl PeerTable {
    /// An empty table expiring links not heard for `timeout`.
    pub fn new(timeout: Duration) -> Self {
        PeerTable {
            peers: HashMap::new(),
            timeout,
            counters: Counters::default(),
            prober: None,
            expiries: Expiries::default(),
            dropped: 0,
        }
    }

    /// Turns reachability verification on or off.
    pub fn with_reachability(mut self, verify: bool) -> Self {
        self.prober = verify.then(Prober::default);
        self
    }

    /// Files a live, unpinned link in the expiry index.
    fn arm(
        expiries: &mut Expiries,
        timeout: Duration,
        peer: PeerId,
        via: &Via,
        link: &mut Sighting,
    ) {
        if link.live && !link.pinned && link.armed.is_none() {
            let at = link.last_heard + timeout;
            expiries.insert(at, peer, via.clone());
            link.armed = Some(at);
        }
    }

    fn disarm(&mut self, peer: PeerId, via: &Via, link: &Sighting) {
        if let Some(at) = link.armed {
            self.expiries.remove(at, peer, via);
        }
    }

    /// Puts `link` in place of whatever `peer` had at `via`.
    fn set_link(&mut self, peer: PeerId, via: &Via, mut link: Sighting) {
        Self::arm(&mut self.expiries, self.timeout, peer, via, &mut link);
        let old = self
            .peers
            .get_mut(&peer)
            .and_then(|e| e.links.insert(via.clone(), link));
        if let Some(old) = old {
            self.disarm(peer, via, &old);
            self.dropped += old.addrs.len();
        }
    }

    /// Drops every link of `peer`.
    fn clear_links(&mut self, peer: PeerId) {
        let Some(e) = self.peers.get_mut(&peer) else {
            return;
        };
        let old = std::mem::take(&mut e.links);
        for (via, link) in old.iter() {
            self.disarm(peer, via, link);
            self.dropped += link.addrs.len();
        }
    }

    /// Addresses to probe now: due, not already being probed, TCP, on a live link; at most
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
        prober.due(now, total, per_peer, |peer, a| {
            peers
                .get(peer)
                .is_some_and(|e| e.links.values().any(|l| l.live && l.addrs.contains(a)))
        })
    }

    /// A probe of `addr` answered (`ok`) or not; returns the events this causes.
    pub fn probe_result(&mut self, addr: &Multiaddr, ok: bool, now: Instant) -> Vec<PeerEvent> {
        let Some(prober) = self.prober.as_mut() else {
            return Vec::new();
        };
        if !prober.result(addr, ok, now) {
            return Vec::new();
        }
        super::prober::owner(addr)
            .and_then(|p| self.settle(&p))
            .into_iter()
            .collect()
    }

    fn track(&mut self, addrs: &[Multiaddr], now: Instant) {
        if let Some(p) = self.prober.as_mut() {
            p.track(addrs, now);
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
        let peer = record.peer_id;
        let Some(e) = self.peers.get(&peer) else {
            if self.peers.len() >= MAX_PEERS {
                return Ok(None);
            }
            self.track(&addrs, now);
            self.peers.insert(
                peer,
                Entry {
                    id: peer.to_base58(),
                    seq: Some(record.seq),
                    signed: Some(record.signed),
                    source,
                    links: Sightings::default(),
                    sent: None,
                },
            );
            self.set_link(peer, via, new_link(addrs, source, now));
            self.counters.accepted += 1;
            return Ok(self.settle(&peer));
        };
        match e.seq {
            Some(old) if record.seq < old => {
                self.count_reject(Reject::Replay);
                return Err(Reject::Replay);
            }
            Some(old) if record.seq == old => {
                // The same record again: a refresh, unless this way of learning it is new.
                let same = e
                    .links
                    .get(via)
                    .is_some_and(|l| l.live && l.source == source && l.addrs == addrs);
                self.counters.accepted += 1;
                if same {
                    self.heard(&peer, via, now);
                    return Ok(None);
                }
                self.track(&addrs, now);
                self.set_link(peer, via, new_link(addrs, source, now));
            }
            _ => {
                // Newer than what we had (or the first signed record of a peer known unsigned).
                self.track(&addrs, now);
                self.clear_links(peer);
                if let Some(e) = self.peers.get_mut(&peer) {
                    e.seq = Some(record.seq);
                    e.signed = Some(record.signed);
                    e.source = source;
                }
                self.set_link(peer, via, new_link(addrs, source, now));
                self.counters.accepted += 1;
            }
        }
        Ok(self.settle(&peer))
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
        match self.peers.get(&peer) {
            Some(e) if e.seq.is_some() => return None,
            Some(_) => {}
            None if self.peers.len() >= MAX_PEERS => return None,
            None => {
                self.peers.insert(
                    peer,
                    Entry {
                        id: peer.to_base58(),
                        seq: None,
                        signed: None,
                        source,
                        links: Sightings::default(),
                        sent: None,
                    },
                );
            }
        }
        self.track(&addrs, now);
        self.set_link(peer, via, new_link(addrs, source, now));
        self.settle(&peer)
    }

    /// The peer's instance was heard through `via` (any packet naming it): keeps that link live,
    /// and revives it if it had timed out.
    pub fn heard(&mut self, peer: &PeerId, via: &Via, now: Instant) -> Option<PeerEvent> {
        let link = self.peers.get_mut(peer)?.links.get_mut(via)?;
        link.last_heard = link.last_heard.max(now);
        if link.live {
            return None;
        }
        link.live = true;
        Self::arm(&mut self.expiries, self.timeout, *peer, via, link);
        self.settle(peer)
    }

    /// The peer said goodbye through `via` (or the link went away): drop that link now.
    pub fn remove_link(&mut self, peer: &PeerId, via: &Via) -> Option<PeerEvent> {
        let link = self.peers.get_mut(peer)?.links.remove(via)?;
        self.disarm(*peer, via, &link);
        self.dropped += link.addrs.len();
        self.settle(peer)
    }

    /// Drops every peer's link through `via` (an interface vanished or stopped carrying mDNS, a
    /// static host was removed).
    pub fn remove_via(&mut self, via: &Via) -> Vec<PeerEvent> {
        let peers: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, e)| e.links.contains_key(via))
            .map(|(p, _)| *p)
            .collect();
        peers
            .iter()
            .filter_map(|p| self.remove_link(p, via))
            .collect()
    }

    /// Marks links not heard within the timeout as dead; returns the resulting events.
    pub fn expire(&mut self, now: Instant) -> Vec<PeerEvent> {
        let mut touched = Vec::new();
        while let Some((at, peer, via)) = self.expiries.pop_due(now) {
            let Some(link) = self
                .peers
                .get_mut(&peer)
                .and_then(|e| e.links.get_mut(&via))
            else {
                continue;
            };
            if link.armed != Some(at) {
                continue;
            }
            link.armed = None;
            if now.saturating_duration_since(link.last_heard) < self.timeout {
                // Heard since it was filed: file it again under its real time.
                Self::arm(&mut self.expiries, self.timeout, peer, &via, link);
            } else {
                link.live = false;
                touched.push(peer);
            }
        }
        touched.sort();
        touched.dedup();
        let events = touched.iter().filter_map(|p| self.settle(p)).collect();
        self.prune_prober();
        events
    }

    /// Forgets the reachability of addresses no link carries any more, once enough were dropped
    /// that a pass over the table pays for itself.
    fn prune_prober(&mut self) {
        let Some(prober) = self.prober.as_mut() else {
            return;
        };
        if self.dropped < 64 || self.dropped < prober.len() / 2 {
            return;
        }
        self.dropped = 0;
        let used: std::collections::HashSet<&Multiaddr> = self
            .peers
            .values()
            .flat_map(|e| e.links.values())
            .flat_map(|l| l.addrs.iter())
            .collect();
        prober.retain(|a| used.contains(a));
    }

    /// When [`PeerTable::expire`] or [`PeerTable::due_probes`] next has work, if ever, after
    /// `now`. (A probe due now but held back by the concurrency limits waits for a running probe
    /// to finish, which brings the caller back.)
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let expiry = self.expiries.first;
        let probe = self.prober.as_ref().and_then(|p| p.next_deadline(now));
        expiry.into_iter().chain(probe).min()
    }

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

    /// What the persistent cache keeps: every signed peer's record and the addresses any link
    /// gave for it.
    pub fn cache_entries(&self) -> Vec<crate::cache::CachedPeer> {
        let mut out: Vec<crate::cache::CachedPeer> = self
            .peers
            .values()
            .filter_map(|e| {
                let signed = e.signed.clone()?;
                let mut addrs: Vec<String> = Vec::new();
                for a in e.links.values().flat_map(|l| l.text.iter()) {
                    if !addrs.contains(a) {
                        addrs.push(a.clone());
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
        let cur = info(e, self.prober.as_ref());
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

/// The expiry index: every live, unpinned sighting under the time it is filed for, and the
/// earliest of those times at hand (it is checked on every input).
#[derive(Debug, Default)]
struct Expiries {
    set: BTreeSet<(Instant, PeerId, Via)>,
    first: Option<Instant>,
}

impl Expiries {
    fn insert(&mut self, at: Instant, peer: PeerId, via: Via) {
        self.set.insert((at, peer, via));
        self.first = Some(self.first.map_or(at, |f| f.min(at)));
    }

    fn remove(&mut self, at: Instant, peer: PeerId, via: &Via) {
        if self.set.remove(&(at, peer, via.clone())) && self.first == Some(at) {
            self.first = self.set.first().map(|(t, _, _)| *t);
        }
    }

    /// The earliest entry, if it is due by `now`.
    fn pop_due(&mut self, now: Instant) -> Option<(Instant, PeerId, Via)> {
        if self.first.is_none_or(|t| t > now) {
            return None;
        }
        let entry = self.set.pop_first();
        self.first = self.set.first().map(|(t, _, _)| *t);
        entry
    }
}

/// A peer's links, by way in, in order (a peer has one or two: a small sorted vector is both
/// smaller and faster than a map).
#[derive(Clone, Debug, Default)]
struct Sightings(Vec<(Via, Sighting)>);

impl Sightings {
    fn pos(&self, via: &Via) -> Result<usize, usize> {
        self.0.binary_search_by(|(v, _)| v.cmp(via))
    }
    fn get(&self, via: &Via) -> Option<&Sighting> {
        self.pos(via).ok().map(|i| &self.0[i].1)
    }
    fn get_mut(&mut self, via: &Via) -> Option<&mut Sighting> {
        self.pos(via).ok().map(|i| &mut self.0[i].1)
    }
    fn contains_key(&self, via: &Via) -> bool {
        self.pos(via).is_ok()
    }
    fn insert(&mut self, via: Via, link: Sighting) -> Option<Sighting> {
        match self.pos(&via) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, link)),
            Err(i) => {
                self.0.insert(i, (via, link));
                None
            }
        }
    }
    fn remove(&mut self, via: &Via) -> Option<Sighting> {
        self.pos(via).ok().map(|i| self.0.remove(i).1)
    }
    fn values(&self) -> impl Iterator<Item = &Sighting> {
        self.0.iter().map(|(_, l)| l)
    }
    fn iter(&self) -> impl Iterator<Item = (&Via, &Sighting)> {
        self.0.iter().map(|(v, l)| (v, l))
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn new_link(addrs: Vec<Multiaddr>, source: Source, now: Instant) -> Sighting {
    Sighting {
        text: addrs.iter().map(|a| a.to_string()).collect(),
        addrs,
        last_heard: now,
        live: true,
        armed: None,
        source,
        // Neither is heard to stay: a cached peer stays until a newer record replaces it, a
        // manual one until the operator's agent restarts.
        pinned: matches!(source, Source::Cache | Source::Manual),
    }
}

/// What the node is told of a peer: the addresses of its live links (only those that answered a
/// probe, when a prober is given), the interfaces they came from, and how it was checked.
fn info(e: &Entry, prober: Option<&Prober>) -> PeerInfo {
    let mut addrs: Vec<String> = Vec::new();
    let mut interfaces = Vec::new();
    for (via, link) in e.links.iter().filter(|(_, l)| l.live) {
        let ok: Vec<&String> = link
            .addrs
            .iter()
            .zip(&link.text)
            .filter(|(a, _)| prober.is_none_or(|p| p.is_ok(a)))
            .map(|(_, s)| s)
            .collect();
        if ok.is_empty() {
            continue;
        }
        interfaces.push(via.to_string());
        for s in ok {
            if !addrs.contains(s) {
                addrs.push(s.clone());
            }
        }
    }
    interfaces.sort();
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
    if prober.is_some() {
        verified.push(Verification::Reachable);
    }
    PeerInfo {
        peer_id: e.id.clone(),
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

    use crate::engine::prober::FIRST_RETRY;

    const T: Duration = Duration::from_secs(60);

    fn l(name: &str) -> Via {
        Via::Link(name.into())
    }

    /// `k`'s record (seq, listening on `port`) heard by multicast on `link` from `ip`.
    fn multicast(
        t: &mut PeerTable,
        k: &Keypair,
        seq: u64,
        port: u16,
        link: &str,
        ip: &str,
        now: Instant,
    ) -> Result<Option<PeerEvent>, Reject> {
        t.observe(
            rec(k, seq, port),
            Source::Mdns,
            &l(link),
            dial(k, ip, port),
            now,
        )
    }

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
        let now = crate::test_clock();
        let mut t = PeerTable::new(T);
        let e = multicast(&mut t, &k, 1, 5, "eth0", "10.0.0.2", now)
            .unwrap()
            .unwrap();
        assert_eq!(e.event, EventKind::Discovered);
        assert_eq!(e.peer.interfaces, vec!["eth0"]);
        // Same record again on the same link: nothing new.
        assert_eq!(
            multicast(&mut t, &k, 1, 5, "eth0", "10.0.0.2", now),
            Ok(None)
        );
        let e = multicast(&mut t, &k, 1, 5, "eth1", "10.1.0.2", now)
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
        let now = crate::test_clock();
        let mut t = PeerTable::new(T);
        multicast(&mut t, &k, 1, 5, "eth0", "10.0.0.2", now).unwrap();
        multicast(&mut t, &k, 1, 5, "eth1", "10.1.0.2", now).unwrap();
        let e = multicast(&mut t, &k, 2, 6, "eth0", "10.0.0.2", now)
            .unwrap()
            .unwrap();
        assert_eq!(e.event, EventKind::Updated);
        assert_eq!(e.peer.addrs, vec![dial(&k, "10.0.0.2", 6)[0].to_string()]);
        assert_eq!(e.peer.seq, 2);
    }

    #[test]
    fn older_seq_is_a_counted_replay() {
        let k = Keypair::generate_ed25519();
        let now = crate::test_clock();
        let mut t = PeerTable::new(T);
        multicast(&mut t, &k, 5, 5, "eth0", "10.0.0.2", now).unwrap();
        assert_eq!(
            multicast(&mut t, &k, 4, 9, "eth0", "10.0.0.2", now),
            Err(Reject::Replay)
        );
        assert_eq!(t.counters().rejected.get(&Reject::Replay), Some(&1));
        assert_eq!(t.snapshot()[0].seq, 5);
        // Even after the peer expired, the seq is remembered.
        t.remove_link(&k.public().to_peer_id(), &l("eth0"));
        assert!(t.snapshot().is_empty());
        assert_eq!(
            multicast(&mut t, &k, 4, 9, "eth0", "10.0.0.2", now),
            Err(Reject::Replay)
        );
    }

    #[test]
    fn goodbye_expires_and_timeout_expires_and_hearing_revives() {
        let k = Keypair::generate_ed25519();
        let p = k.public().to_peer_id();
        let t0 = crate::test_clock();
        let mut t = PeerTable::new(T);
        multicast(&mut t, &k, 1, 5, "eth0", "10.0.0.2", t0).unwrap();
        assert_eq!(t.next_deadline(t0), Some(t0 + T));
        assert!(t.expire(t0 + T - Duration::from_secs(1)).is_empty());
        assert!(t
            .heard(&p, &l("eth0"), t0 + Duration::from_secs(30))
            .is_none());
        // Hearing it moves the real deadline; the index catches up when the filed time comes.
        assert_eq!(t.next_deadline(t0), Some(t0 + T));
        assert!(t.expire(t0 + T).is_empty());
        assert_eq!(t.next_deadline(t0), Some(t0 + Duration::from_secs(30) + T));
        let ev = t.expire(t0 + Duration::from_secs(90));
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].event, EventKind::Expired);
        assert_eq!(
            ev[0].peer.addrs,
            vec![dial(&k, "10.0.0.2", 5)[0].to_string()]
        );
        assert_eq!(t.next_deadline(t0), None);
        let ev = t
            .heard(&p, &l("eth0"), t0 + Duration::from_secs(100))
            .unwrap();
        assert_eq!(ev.event, EventKind::Discovered);
        let ev = t.remove_link(&p, &l("eth0")).unwrap();
        assert_eq!(ev.event, EventKind::Expired);
        assert!(t.heard(&p, &l("eth0"), t0).is_none(), "a goodbye is final");
    }

    #[test]
    fn a_link_without_dialable_addresses_does_not_make_a_peer_visible() {
        let k = Keypair::generate_ed25519();
        let mut t = PeerTable::new(T);
        assert_eq!(
            t.observe(
                rec(&k, 1, 5),
                Source::Mdns,
                &l("eth0"),
                vec![],
                crate::test_clock()
            ),
            Ok(None)
        );
        assert!(t.snapshot().is_empty());
    }

    #[test]
    fn unsigned_peers_are_reported_as_such_and_never_override_signed_ones() {
        let k = Keypair::generate_ed25519();
        let p = k.public().to_peer_id();
        let now = crate::test_clock();
        let mut t = PeerTable::new(T);
        let e = t
            .observe_unsigned(
                p,
                Source::Libp2pMdns,
                &l("eth0"),
                dial(&k, "10.0.0.9", 9),
                now,
            )
            .unwrap();
        assert_eq!(e.event, EventKind::Discovered);
        assert_eq!(e.peer.source, Source::Libp2pMdns);
        assert!(e.peer.verified.is_empty());
        assert_eq!(t.seq_of(&p), None);
        // The signed record takes over, and unsigned claims are ignored from then on.
        let e = multicast(&mut t, &k, 3, 5, "eth0", "10.0.0.2", now)
            .unwrap()
            .unwrap();
        assert_eq!(e.event, EventKind::Updated);
        assert_eq!(e.peer.source, Source::Mdns);
        assert_eq!(e.peer.verified, vec![Verification::Signature]);
        assert!(t
            .observe_unsigned(
                p,
                Source::Libp2pMdns,
                &l("eth0"),
                dial(&k, "10.6.6.6", 6),
                now
            )
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
        let t0 = crate::test_clock();
        let mut t = PeerTable::new(T).with_reachability(true);
        let mut addrs = dial(&k, "10.0.0.2", 5);
        addrs.extend(dial(&k, "172.17.0.1", 5));
        addrs.extend(dial(&k, "10.0.0.3", 5));
        assert_eq!(
            t.observe(rec(&k, 1, 5), Source::Mdns, &l("eth0"), addrs.clone(), t0),
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
        let now = crate::test_clock();
        for i in 0..5 {
            let k = Keypair::generate_ed25519();
            let addrs = dial(&k, &format!("10.0.0.{i}"), 5);
            t.observe(rec(&k, 1, 5), Source::Mdns, &l("eth0"), addrs, now)
                .unwrap();
        }
        assert_eq!(t.due_probes(now, 3, 2).len(), 3);
        assert!(t.due_probes(now, 3, 2).is_empty());
    }

    #[test]
    fn losing_one_of_two_links_is_an_update_and_removing_the_iface_expires() {
        let k = Keypair::generate_ed25519();
        let p = k.public().to_peer_id();
        let now = crate::test_clock();
        let mut t = PeerTable::new(T);
        multicast(&mut t, &k, 1, 5, "eth0", "10.0.0.2", now).unwrap();
        multicast(&mut t, &k, 1, 5, "eth1", "10.1.0.2", now).unwrap();
        let e = t.remove_link(&p, &l("eth1")).unwrap();
        assert_eq!(e.event, EventKind::Updated);
        assert_eq!(e.peer.interfaces, vec!["eth0"]);
        let ev = t.remove_via(&l("eth0"));
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].event, EventKind::Expired);
    }
}
