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

use super::prober::{Dests, Prober};
use crate::wire::addrs::ip_of;
use crate::wire::protocol::{EventKind, PeerEvent, PeerInfo, Source, Verification};
use crate::wire::record::{Reject, VerifiedRecord};
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Most established peers (handed over, or handed over once and not yet forgotten). A cluster is
/// tens of machines, each announcing at most [`MAX_PEERS_PER_HOST`] nodes; a thousand leaves room.
/// It is part of the socket protocol: a node can rely on it.
pub use crate::wire::protocol::MAX_PEERS;
/// Most peers waiting for one of their addresses to answer a first probe. When full, the oldest
/// waiting peer is dropped for a newcomer: a flood of records that never answer costs this much
/// and no more, and a real peer, whose address answers in one round trip, gets through it.
pub const MAX_PENDING: usize = 256;
/// Most established peers whose addresses answered at one IP (an agent announces at most 16
/// nodes): one host cannot fill the table by minting keys that all point at itself.
pub const MAX_PEERS_PER_HOST: usize = 16;
/// Most ways in (links, static hosts) named in what the node is told of one peer.
pub const MAX_VIAS_SHOWN: usize = 16;
/// How long a peer none of whose links is live is remembered (then forgotten, or sooner when
/// the room is needed).
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

/// A live link not heard for these fractions of the timeout is checked: its peer's addresses that
/// way are probed ([`PeerTable::take_silent`]), and an answer keeps it live for one more timeout.
/// Silence alone is a weak sign on a link that loses packets; a host that vanished does not
/// answer, and times out as before.
pub const SILENCE_CHECKS: [(u32, u32); 2] = [(2, 3), (5, 6)];
/// A link kept live only by answers, with no packet heard at all, for this many timeouts is let go
/// (an address that answers is not proof that the same node still listens there).
pub const MAX_SILENT_TIMEOUTS: u32 = 5;

/// Why a peer the table was told of is not (or no longer) in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dropped {
    /// Waiting for a first answer, and pushed out by a newer waiting peer.
    PendingEvicted,
    /// Answered, but the table is full of live established peers.
    TableFull,
    /// Answered, but its host already has [`MAX_PEERS_PER_HOST`] established peers.
    HostFull,
}

impl Dropped {
    /// Short lower-case name, used in logs and status.
    pub fn as_str(self) -> &'static str {
        match self {
            Dropped::PendingEvicted => "pending-evicted",
            Dropped::TableFull => "table-full",
            Dropped::HostFull => "host-full",
        }
    }
}

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
    /// A static host's agent, by peer exchange, as configured.
    Exchange(String),
}

impl fmt::Display for Via {
    /// The name the node sees in a peer's `interfaces`: `eth0`, `static:HOST`, `cache`, `manual`,
    /// `exchange:HOST`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Via::Link(name) => f.write_str(name),
            Via::Static(host) => write!(f, "static:{host}"),
            Via::Cache => f.write_str("cache"),
            Via::Manual => f.write_str("manual"),
            Via::Exchange(host) => write!(f, "exchange:{host}"),
        }
    }
}

/// What is known of a peer through one [`Via`]: its addresses that way, and when it was last heard.
#[derive(Clone, Debug)]
struct Sighting {
    addrs: Vec<Multiaddr>,
    /// The announcer's own IPs that way: only packets from one of them keep the link live.
    ips: Vec<IpAddr>,
    /// Those of `ips` a packet naming the peer's record came from, on a link: only there are its
    /// addresses probed (an A record can name anyone; a packet's source is where its sender is).
    spoke_from: Vec<IpAddr>,
    /// `addrs` as the node is told them (formatted once).
    text: Vec<String>,
    last_heard: Instant,
    /// When a packet was last heard (`last_heard` also moves when a silence check is answered).
    spoke: Instant,
    /// Silence checks made since `last_heard` (see [`SILENCE_CHECKS`]).
    checks: u8,
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
    /// When it entered the table (its place in the pending queue).
    since: Instant,
    /// Handed over at least once (then it counts against [`MAX_PEERS`]; before, against
    /// [`MAX_PENDING`]): the IP its first handed-over address has.
    host: Option<Option<IpAddr>>,
    /// Since when none of its links is live (its place in the forgetting queue).
    dead_since: Option<Instant>,
    /// When it was last seen visible (the persistent cache keeps the most recent).
    verified_at: Option<Instant>,
    /// Where it was last handed over, kept while it is not handed over (its links may be gone):
    /// where a node that comes back with an older record is expected (see `engine/rewind.rs`).
    last_place: Vec<Multiaddr>,
    /// A goodbye of its record was confirmed (its node's ports refused) and no link came back
    /// since: the record held is known gone.
    departed: bool,
}

impl Entry {
    fn new(
        peer: &PeerId,
        seq: Option<u64>,
        signed: Option<Vec<u8>>,
        source: Source,
        now: Instant,
    ) -> Self {
        Entry {
            id: peer.to_base58(),
            seq,
            signed,
            source,
            links: Sightings::default(),
            sent: None,
            since: now,
            host: None,
            dead_since: None,
            verified_at: None,
            last_place: Vec::new(),
            departed: false,
        }
    }
}

/// Counters of records handled, by outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Records accepted (new or refreshed).
    pub accepted: u64,
    /// Records refused, by reason.
    pub rejected: BTreeMap<Reject, u64>,
    /// Peers dropped for room, by reason.
    pub dropped: BTreeMap<Dropped, u64>,
    /// The same, by the way the dropped peer was learned.
    pub dropped_via: BTreeMap<Via, BTreeMap<Dropped, u64>>,
}

/// How much of each bound is in use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Established peers (of [`MAX_PEERS`]).
    pub established: usize,
    /// Peers waiting for a first answer (of [`MAX_PENDING`]).
    pub pending: usize,
    /// Addresses the prober follows.
    pub probe_addrs: usize,
    /// Probes running.
    pub probes_in_flight: usize,
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
    /// Peers not yet established, by when they came.
    pending: BTreeSet<(Instant, PeerId)>,
    /// Peers none of whose links is live, by since when.
    dead: BTreeSet<(Instant, PeerId)>,
    /// Established peers.
    established: usize,
    /// Established peers per host IP.
    per_host: HashMap<Option<IpAddr>, usize>,
    /// The latest time any call was given.
    clock: Option<Instant>,
    /// Links come due for a silence check, not yet taken.
    silent: Vec<(PeerId, Via)>,
    /// Every probe's destination lately (see [`Dests`]).
    dests: Dests,
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
            pending: BTreeSet::new(),
            dead: BTreeSet::new(),
            established: 0,
            per_host: HashMap::new(),
            clock: None,
            silent: Vec::new(),
            dests: Dests::default(),
        }
    }

    /// Notes the time a call was given (the latest one dates what settling decides).
    fn tick(&mut self, now: Instant) -> Instant {
        self.clock = Some(self.clock.map_or(now, |c| c.max(now)));
        now
    }

    /// What the bounds hold now.
    pub fn usage(&self) -> Usage {
        Usage {
            established: self.established,
            pending: self.pending.len(),
            probe_addrs: self.prober.as_ref().map_or(0, Prober::len),
            probes_in_flight: self.prober.as_ref().map_or(0, Prober::in_flight),
        }
    }

    fn count_drop(&mut self, why: Dropped, via: Option<&Via>) {
        *self.counters.dropped.entry(why).or_default() += 1;
        if let Some(via) = via {
            *self
                .counters
                .dropped_via
                .entry(via.clone())
                .or_default()
                .entry(why)
                .or_default() += 1;
        }
    }

    /// Makes room for a new peer learned through `via` and files it. Without a prober a peer is
    /// established at once and needs a place in [`MAX_PEERS`] (a forgotten-worthy dead peer
    /// gives up its place, a live one never does); with one it waits in [`MAX_PENDING`], pushing
    /// out the oldest waiting peer when full. Returns whether it was filed.
    fn admit(&mut self, peer: PeerId, mut entry: Entry, via: &Via) -> bool {
        if self.prober.is_none() {
            if self.established >= MAX_PEERS && !self.evict_dead(|_| true) {
                self.count_drop(Dropped::TableFull, Some(via));
                return false;
            }
            entry.host = Some(None);
            self.established += 1;
        } else {
            if self.pending.len() >= MAX_PENDING {
                if let Some((_, old)) = self.pending.first().copied() {
                    let old_via = self.peers.get(&old).and_then(|e| e.links.first_via());
                    self.forget(&old);
                    self.count_drop(Dropped::PendingEvicted, old_via.as_ref());
                }
            }
            self.pending.insert((entry.since, peer));
        }
        self.peers.insert(peer, entry);
        true
    }

    /// Forgets the established peer that has been dead longest among those whose host `of_host`
    /// takes, if any, to make room among the established; returns whether one was. (Waiting
    /// peers that went dead are skipped: they hold no such place. There are at most
    /// [`MAX_PENDING`] of them to skip.)
    fn evict_dead(&mut self, of_host: impl Fn(Option<IpAddr>) -> bool) -> bool {
        let peers = &self.peers;
        let oldest = self
            .dead
            .iter()
            .find(|(_, p)| peers.get(p).and_then(|e| e.host).is_some_and(&of_host))
            .map(|(_, p)| *p);
        match oldest {
            Some(peer) => {
                self.forget(&peer);
                true
            }
            None => false,
        }
    }

    /// Removes `peer` and everything filed for it.
    fn forget(&mut self, peer: &PeerId) {
        if let (Some(prober), Some(e)) = (self.prober.as_mut(), self.peers.get(peer)) {
            for a in e.links.values().flat_map(|l| l.addrs.iter()) {
                prober.forget(a);
            }
        }
        self.clear_links(*peer);
        let Some(e) = self.peers.remove(peer) else {
            return;
        };
        self.pending.remove(&(e.since, *peer));
        if let Some(at) = e.dead_since {
            self.dead.remove(&(at, *peer));
        }
        if let Some(host) = e.host {
            self.established -= 1;
            if let Some(n) = self.per_host.get_mut(&host) {
                *n -= 1;
                if *n == 0 {
                    self.per_host.remove(&host);
                }
            }
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
            let at = link.last_heard + next_wake(link, via, timeout);
            expiries.insert(at, peer, via.clone());
            link.armed = Some(at);
        }
    }

    fn disarm(&mut self, peer: PeerId, via: &Via, link: &Sighting) {
        if let Some(at) = link.armed {
            self.expiries.remove(at, peer, via);
        }
    }

    /// Puts `link` in place of whatever `peer` had at `via` (the same record's sources stay
    /// known where its IPs stay).
    fn set_link(&mut self, peer: PeerId, via: &Via, mut link: Sighting) {
        Self::arm(&mut self.expiries, self.timeout, peer, via, &mut link);
        let old = self.peers.get_mut(&peer).and_then(|e| {
            if let Some(old) = e.links.get(via) {
                link.spoke_from = old
                    .spoke_from
                    .iter()
                    .filter(|ip| link.ips.contains(ip))
                    .copied()
                    .collect();
            }
            e.departed = false;
            e.links.insert(via.clone(), link)
        });
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
        prober.due(now, total, per_peer, &mut self.dests, |peer, a| {
            peers.get(peer).is_some_and(|e| {
                e.links
                    .iter()
                    .any(|(via, l)| l.live && l.addrs.contains(a) && shown(via, l, a))
            })
        })
    }

    /// A probe of `addr` (of any kind: a silence check, a goodbye, an older record's test) starts
    /// now: its destination is not probed for another peer within a minute (see [`Dests`]).
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
            .filter_map(super::prober::owner)
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
        let peer = super::prober::owner(addr);
        // An answer confirms a cached hint for one more timeout.
        if let Some(link) = peer
            .and_then(|p| self.peers.get_mut(&p))
            .and_then(|e| e.links.get_mut(&Via::Cache))
            .filter(|l| l.addrs.contains(addr))
        {
            link.last_heard = link.last_heard.max(now);
        }
        peer.and_then(|p| self.settle(&p)).into_iter().collect()
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
        let now = self.tick(now);
        let peer = record.peer_id;
        let Some(e) = self.peers.get(&peer) else {
            let entry = Entry::new(&peer, Some(record.seq), Some(record.signed), source, now);
            if !self.admit(peer, entry, via) {
                return Ok(None);
            }
            self.track(&addrs, now);
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
                // The same record again: a refresh, unless this way of learning it is new. Heard
                // with addresses of one family only (a packet of that family, a unicast answer),
                // it replaces that family's and keeps the other's: a renumbered interface drops
                // its old address, and an answer over IPv6 does not take IPv4 away.
                let mut addrs = addrs;
                if let Some(l) = e.links.get(via).filter(|l| l.live && l.source == source) {
                    let family = |a: &Multiaddr| ip_of(a).map(|ip| ip.is_ipv4());
                    let fresh: Vec<Option<bool>> = addrs.iter().map(family).collect();
                    for a in &l.addrs {
                        if addrs.len() < crate::wire::addrs::MAX_DIALABLE
                            && !fresh.contains(&family(a))
                            && !addrs.contains(a)
                        {
                            addrs.push(a.clone());
                        }
                    }
                }
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
                self.replace_record(record, source, via, addrs, now);
            }
        }
        Ok(self.settle(&peer))
    }

    /// Puts `record` in place of the peer's, whatever its seq: every link learned from the old
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
        self.clear_links(peer);
        if let Some(e) = self.peers.get_mut(&peer) {
            e.seq = Some(record.seq);
            e.signed = Some(record.signed);
            e.source = source;
        }
        self.set_link(peer, via, new_link(addrs, source, now));
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

    /// Where `peer` is known to be: every address of its links, through any way in, live or
    /// not, and, while it is not handed over, the addresses it was last handed over at (its
    /// links may all be gone: a confirmed goodbye, an interface that went).
    pub fn place_of(&self, peer: &PeerId) -> std::collections::HashSet<&Multiaddr> {
        self.peers
            .get(peer)
            .map(|e| {
                e.links
                    .values()
                    .flat_map(|l| l.addrs.iter())
                    .chain(&e.last_place)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A goodbye of `peer`'s record was confirmed (its node's ports refused it) on a link that
    /// had these addresses: once none of its links is live, the record held is known gone
    /// ([`PeerTable::is_gone`]). Those of the addresses no other link of it has no longer count
    /// as answering: a record that names them again (a replay, the node back) has them probed
    /// before they are handed over.
    pub fn departed(&mut self, peer: &PeerId, addrs: &[Multiaddr]) {
        let Some(e) = self.peers.get_mut(peer) else {
            return;
        };
        e.departed = true;
        let stale: Vec<&Multiaddr> = addrs
            .iter()
            .filter(|a| !e.links.values().any(|l| l.addrs.contains(a)))
            .collect();
        if let Some(prober) = self.prober.as_mut() {
            for a in stale {
                // Followed again (due at once) when a link names it; one still waiting for an
                // answer keeps its retries' pace.
                if prober.is_ok(a) {
                    prober.forget(a);
                }
            }
        }
    }

    /// Whether `peer`'s record is known gone: a goodbye of it was confirmed, none of its links
    /// is live, and none was heard or learned since.
    pub fn is_gone(&self, peer: &PeerId) -> bool {
        self.peers
            .get(peer)
            .is_some_and(|e| e.departed && !e.links.values().any(|l| l.live))
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
            Some(e) if e.seq.is_some() => return None,
            Some(_) => {}
            None => {
                if !self.admit(peer, Entry::new(&peer, None, None, source, now), via) {
                    return None;
                }
            }
        }
        self.track(&addrs, now);
        self.set_link(peer, via, new_link(addrs, source, now));
        self.settle(&peer)
    }

    /// The peer's instance was heard through `via` (any packet naming it): keeps that link live,
    /// and revives it if it had timed out.
    pub fn heard(&mut self, peer: &PeerId, via: &Via, now: Instant) -> Option<PeerEvent> {
        let now = self.tick(now);
        let e = self.peers.get_mut(peer)?;
        let link = e.links.get_mut(via)?;
        link.last_heard = link.last_heard.max(now);
        link.spoke = link.spoke.max(now);
        link.checks = 0;
        if link.live {
            return None;
        }
        link.live = true;
        Self::arm(&mut self.expiries, self.timeout, *peer, via, link);
        e.departed = false;
        self.settle(peer)
    }

    /// Links come due for a silence check since the last call: probe `probe_targets` of each, and
    /// report an answer with [`PeerTable::answered`].
    pub fn take_silent(&mut self) -> Vec<(PeerId, Via)> {
        std::mem::take(&mut self.silent)
    }

    /// Whether `peer`'s link through `via` still waits for a silence check (live, not heard since
    /// the check came due).
    pub fn needs_check(&self, peer: &PeerId, via: &Via) -> bool {
        self.peers
            .get(peer)
            .and_then(|e| e.links.get(via))
            .is_some_and(|l| l.live && l.checks > 0)
    }

    /// A silence check of `peer`'s link through `via` was answered: the link stays live for one
    /// more timeout (but not beyond [`MAX_SILENT_TIMEOUTS`] with no packet heard). Returns
    /// whether the link was live and kept.
    pub fn answered(&mut self, peer: &PeerId, via: &Via, now: Instant) -> bool {
        let now = self.tick(now);
        let Some(link) = self.peers.get_mut(peer).and_then(|e| e.links.get_mut(via)) else {
            return false;
        };
        if !link.live {
            return false;
        }
        link.last_heard = link.last_heard.max(now);
        link.checks = 0;
        true
    }

    /// Adds the announcer's IPs on `via` (the A/AAAA records it published there, beyond those its
    /// dialable addresses name): packets from them keep the link live too.
    pub fn note_ips(&mut self, peer: &PeerId, via: &Via, ips: &[IpAddr]) {
        let Some(link) = self.peers.get_mut(peer).and_then(|e| e.links.get_mut(via)) else {
            return;
        };
        for ip in ips {
            if link.ips.len() >= crate::wire::addrs::MAX_DIALABLE {
                break; // a host has a few; a list that keeps growing is someone else's doing
            }
            if let Err(i) = link.ips.binary_search(ip) {
                link.ips.insert(i, *ip);
            }
        }
    }

    /// A packet naming `peer`'s record came from `ip` on the link `via`: if `ip` is one of the
    /// announcer's own there, its addresses at `ip` may be probed from now on. Returns whether
    /// that is new (a probe may now be due).
    pub fn spoke(&mut self, peer: &PeerId, via: &Via, ip: &IpAddr) -> bool {
        let Some(link) = self.peers.get_mut(peer).and_then(|e| e.links.get_mut(via)) else {
            return false;
        };
        if link.spoke_from.contains(ip)
            || link.ips.binary_search(ip).is_err()
            || link.spoke_from.len() >= crate::wire::addrs::MAX_DIALABLE
        {
            return false;
        }
        link.spoke_from.push(*ip);
        true
    }

    /// Whether a packet from `ip` can speak for `peer` on `via`: `Some(true)` when `ip` is one
    /// of the peer's own addresses that way, `Some(false)` when it is not, `None` when no
    /// address of that family is known for it yet (its other family's records came first).
    pub fn sent_by(&self, peer: &PeerId, via: &Via, ip: &IpAddr) -> Option<bool> {
        let l = self.peers.get(peer).and_then(|e| e.links.get(via))?;
        if l.ips.binary_search(ip).is_ok() {
            return Some(true);
        }
        l.ips
            .iter()
            .any(|k| k.is_ipv4() == ip.is_ipv4())
            .then_some(false)
    }

    /// Up to `n` addresses of `peer` on `via` a probe can check, those that answered before first.
    pub fn probe_targets(&self, peer: &PeerId, via: &Via, n: usize) -> Vec<Multiaddr> {
        let Some(link) = self.peers.get(peer).and_then(|e| e.links.get(via)) else {
            return Vec::new();
        };
        let ok = |a: &Multiaddr| self.prober.as_ref().is_some_and(|p| p.is_ok(a));
        let mut v: Vec<&Multiaddr> = link
            .addrs
            .iter()
            .filter(|a| super::prober::probeable(a) && shown(via, link, a))
            .collect();
        v.sort_by_key(|a| !ok(a));
        v.into_iter().take(n).cloned().collect()
    }

    /// The peer said goodbye through `via` (or the link went away): drop that link now.
    pub fn remove_link(&mut self, peer: &PeerId, via: &Via) -> Option<PeerEvent> {
        self.remove_links(peer, std::slice::from_ref(via))
    }

    /// Drops these links of `peer` at once: one event for the lot.
    pub fn remove_links(&mut self, peer: &PeerId, vias: &[Via]) -> Option<PeerEvent> {
        let mut any = false;
        for via in vias {
            let Some(link) = self.peers.get_mut(peer)?.links.remove(via) else {
                continue;
            };
            self.disarm(*peer, via, &link);
            self.dropped += link.addrs.len();
            any = true;
        }
        any.then(|| self.settle(peer)).flatten()
    }

    /// Drops every peer's link through `via` (an interface vanished or stopped carrying mDNS, a
    /// static host was removed).
    pub fn remove_via(&mut self, via: &Via) -> Vec<PeerEvent> {
        self.remove_via_where(via, |_| true)
    }

    /// Drops every peer's link through `via` for which `gone` holds.
    fn remove_via_where(&mut self, via: &Via, gone: impl Fn(&Sighting) -> bool) -> Vec<PeerEvent> {
        let peers: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, e)| e.links.get(via).is_some_and(&gone))
            .map(|(p, _)| *p)
            .collect();
        peers
            .iter()
            .filter_map(|p| self.remove_link(p, via))
            .collect()
    }

    /// Marks links not heard within the timeout as dead; returns the resulting events.
    pub fn expire(&mut self, now: Instant) -> Vec<PeerEvent> {
        let now = self.tick(now);
        while let Some((since, peer)) = self.dead.first().copied() {
            if since + FORGET_AFTER > now {
                break;
            }
            self.forget(&peer);
        }
        let mut touched = Vec::new();
        while let Some((at, peer, via)) = self.expiries.pop_due(now) {
            let Some(e) = self.peers.get_mut(&peer) else {
                continue;
            };
            let established = e.host.is_some();
            let Some(link) = e.links.get_mut(&via) else {
                continue;
            };
            if link.armed != Some(at) {
                continue;
            }
            link.armed = None;
            let quiet = now.saturating_duration_since(link.last_heard);
            if quiet < self.timeout {
                // A check come due, or heard since it was filed: file it again under its real
                // time, after asking for the check.
                if checkable(&via)
                    && (link.checks as usize) < SILENCE_CHECKS.len()
                    && quiet >= check_after(self.timeout, link.checks)
                {
                    link.checks += 1;
                    if established && link.spoke + self.timeout * MAX_SILENT_TIMEOUTS > now {
                        self.silent.push((peer, via.clone()));
                    }
                }
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
        let forget = self.dead.first().map(|(t, _)| *t + FORGET_AFTER);
        expiry.into_iter().chain(probe).chain(forget).min()
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

    /// What the persistent cache keeps: the signed records of the [`MAX_PENDING`] peers most
    /// recently verified among those handed over now (most recent first; a peer that is gone is
    /// not written back), each with the addresses it is handed over at.
    /// (A cached peer waits for a probe again on the next start, so no more are worth keeping.)
    pub fn cache_entries(&self) -> Vec<crate::wire::cache::CachedPeer> {
        let mut seen: Vec<(Instant, &Entry)> = self
            .peers
            .values()
            .filter(|e| e.signed.is_some() && e.sent.is_some())
            .filter_map(|e| Some((e.verified_at?, e)))
            .collect();
        seen.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
        seen.into_iter()
            .filter_map(|(_, e)| {
                let signed = e.signed.clone()?;
                let addrs = e.sent.as_ref().map(|s| s.addrs.clone()).unwrap_or_else(|| {
                    let mut set = std::collections::BTreeSet::new();
                    e.links
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
            .filter(|e| e.signed.is_some() && e.sent.is_some())
            .filter(|e| e.links.iter().any(|(via, l)| l.live && first_hand(via)))
            .map(|e| (e.verified_at, e))
            .collect();
        let complete = seen.len() <= max;
        seen.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
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

    /// Drops every peer's link through `via` that was not heard since `since` (a static host's
    /// exchange reply that no longer lists it: the host no longer hears it).
    pub fn remove_unheard(&mut self, via: &Via, since: Instant) -> Vec<PeerEvent> {
        self.remove_via_where(via, |l| l.spoke < since)
    }

    /// Whether `peer` is established (handed over now or before, and not forgotten).
    pub fn is_established(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|e| e.host.is_some())
    }

    /// When `peer` was last heard through `via`, while that link is live.
    pub fn last_heard_on(&self, peer: &PeerId, via: &Via) -> Option<Instant> {
        self.peers
            .get(peer)
            .and_then(|e| e.links.get(via))
            .filter(|l| l.live)
            .map(|l| l.spoke)
    }

    /// Whether `peer` has addresses (answering or not) through `via`.
    pub fn has_addrs(&self, peer: &PeerId, via: &Via) -> bool {
        self.peers
            .get(peer)
            .and_then(|e| e.links.get(via))
            .is_some_and(|l| !l.addrs.is_empty())
    }

    /// Whether `peer` is handed over now.
    pub fn is_visible(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|e| e.sent.is_some())
    }

    /// Highest seq accepted from `peer`, kept after it expires so that replays stay refused.
    pub fn seq_of(&self, peer: &PeerId) -> Option<u64> {
        self.peers.get(peer).and_then(|e| e.seq)
    }

    /// Recomputes what the node should know of `peer` and says what changed.
    fn settle(&mut self, peer: &PeerId) -> Option<PeerEvent> {
        let now = self.clock?;
        let e = self.peers.get(peer)?;
        let cur = info(e, self.prober.as_ref());
        let alive = e.links.values().any(|l| l.live);
        let mut visible = !cur.addrs.is_empty();
        if visible && e.host.is_none() {
            visible = self.establish(peer, &cur);
        }
        self.file_dead(peer, alive, now);
        let e = self.peers.get_mut(peer)?;
        if visible {
            e.verified_at = Some(now);
            e.last_place.clear();
        } else if let Some(last) = &e.sent {
            // Handed over until now: remember where (its links may go next).
            e.last_place = last.addrs.iter().filter_map(|a| a.parse().ok()).collect();
        }
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
        event
    }

    /// A waiting peer answered: it takes a place among the established if there is room and its
    /// host has fewer than [`MAX_PEERS_PER_HOST`] (in both, a dead peer gives up its place, the
    /// longest dead first; a live one never does). Returns whether it did; if not, it is
    /// forgotten and counted.
    fn establish(&mut self, peer: &PeerId, cur: &PeerInfo) -> bool {
        let host = cur
            .addrs
            .first()
            .and_then(|a| a.parse::<Multiaddr>().ok())
            .and_then(|a| ip_of(&a));
        let via = self.peers.get(peer).and_then(|e| e.links.first_via());
        let why = if self.per_host.get(&host).copied().unwrap_or(0) >= MAX_PEERS_PER_HOST
            && !self.evict_dead(|h| h == host)
        {
            Some(Dropped::HostFull)
        } else if self.established >= MAX_PEERS && !self.evict_dead(|_| true) {
            Some(Dropped::TableFull)
        } else {
            None
        };
        if let Some(why) = why {
            self.forget(peer);
            self.count_drop(why, via.as_ref());
            return false;
        }
        let Some(e) = self.peers.get_mut(peer) else {
            return false;
        };
        self.pending.remove(&(e.since, *peer));
        e.host = Some(host);
        self.established += 1;
        *self.per_host.entry(host).or_default() += 1;
        true
    }

    /// Files `peer` in the forgetting queue when none of its links is live, and out of it when
    /// one is.
    fn file_dead(&mut self, peer: &PeerId, alive: bool, now: Instant) {
        let Some(e) = self.peers.get_mut(peer) else {
            return;
        };
        match (e.dead_since, alive) {
            (None, false) => {
                e.dead_since = Some(now);
                self.dead.insert((now, *peer));
            }
            (Some(at), true) => {
                e.dead_since = None;
                self.dead.remove(&(at, *peer));
            }
            _ => {}
        }
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
    fn first_via(&self) -> Option<Via> {
        self.0.first().map(|(v, _)| v.clone())
    }
}

fn new_link(addrs: Vec<Multiaddr>, source: Source, now: Instant) -> Sighting {
    let mut ips: Vec<IpAddr> = addrs.iter().filter_map(ip_of).collect();
    ips.sort();
    ips.dedup();
    Sighting {
        ips,
        spoke_from: Vec::new(),
        text: addrs.iter().map(|a| a.to_string()).collect(),
        addrs,
        last_heard: now,
        spoke: now,
        checks: 0,
        live: true,
        armed: None,
        source,
        // A manual peer stays until the operator's agent restarts. A cached one is a hint: it
        // must be confirmed (heard on a link, or its address answering) within the timeout.
        pinned: matches!(source, Source::Manual),
    }
}

/// Whether `a`, an address of `link` through `via`, may be probed: on a link only at an IP a
/// packet naming the record came from (`Sighting::spoke_from`), so that records anyone can mint,
/// whose A records name a third host, never make the agent connect there; elsewhere (a static
/// host, its peer exchange, the cache, the operator) at any. mDNS over IPv6 is sent from
/// link-local addresses, so a record's other IPv6 addresses on the link (which a libp2p node
/// needs: it cannot dial a link-local one) are probed once it spoke from a link-local one; there,
/// the prober's limit per destination (one connect a minute for other peers' records) is what
/// bounds a third host's cost.
fn shown(via: &Via, link: &Sighting, a: &Multiaddr) -> bool {
    if !matches!(via, Via::Link(_)) {
        return true;
    }
    match ip_of(a) {
        Some(IpAddr::V6(v6)) if !crate::wire::addrs::is_link_local_v6(&v6) => link
            .spoke_from
            .iter()
            .any(|ip| matches!(ip, IpAddr::V6(s) if crate::wire::addrs::is_link_local_v6(s))),
        Some(ip) => link.spoke_from.contains(&ip),
        None => false,
    }
}

/// Whether silence on `via` is checked before it counts: links, static hosts and their exchange,
/// where a packet or a reply can be lost (not the cache, whose hints a probe confirms anyway, nor
/// manual peers).
fn checkable(via: &Via) -> bool {
    matches!(via, Via::Link(_) | Via::Static(_) | Via::Exchange(_))
}

/// Whether `via` is first-hand: the peer itself was heard that way (see [`crate::wire::exchange`]).
fn first_hand(via: &Via) -> bool {
    matches!(via, Via::Link(_) | Via::Static(_))
}

/// How long after `last_heard` silence check number `n` (from 0) comes due.
fn check_after(timeout: Duration, n: u8) -> Duration {
    let (num, den) = SILENCE_CHECKS[(n as usize).min(SILENCE_CHECKS.len() - 1)];
    timeout * num / den
}

/// How long after `last_heard` the link next needs looking at: its next silence check, or its
/// timeout.
fn next_wake(link: &Sighting, via: &Via, timeout: Duration) -> Duration {
    if checkable(via) && (link.checks as usize) < SILENCE_CHECKS.len() {
        check_after(timeout, link.checks)
    } else {
        timeout
    }
}

/// What the node is told of a peer: the addresses of its live links (only those that answered a
/// probe, when a prober is given), the interfaces they came from, and how it was checked.
fn info(e: &Entry, prober: Option<&Prober>) -> PeerInfo {
    let mut addrs: Vec<String> = Vec::new();
    let mut interfaces = Vec::new();
    for (via, link) in e.links.iter().filter(|(_, l)| l.live) {
        if addrs.len() >= crate::wire::addrs::MAX_DIALABLE || interfaces.len() >= MAX_VIAS_SHOWN {
            break; // a peer's entry stays small: the node needs a few ways in, not all
        }
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
            if addrs.len() < crate::wire::addrs::MAX_DIALABLE && !addrs.contains(s) {
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
    use crate::wire::record;
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
    fn the_same_record_heard_with_another_familys_addresses_adds_them() {
        let k = Keypair::generate_ed25519();
        let t0 = crate::test_clock();
        let mut t = PeerTable::new(T).with_reachability(true);
        multicast(&mut t, &k, 1, 5, "eth0", "10.0.0.2", t0).unwrap();
        t.due_probes(t0, 8, 2);
        let v4 = dial(&k, "10.0.0.2", 5)[0].clone();
        assert_eq!(
            t.probe_result(&v4, true, t0)[0].event,
            EventKind::Discovered
        );
        // Then with only its IPv6 address (an answer by unicast over IPv6): added, and what
        // answered stays handed over meanwhile.
        let v6: Multiaddr = format!("/ip6/fd00::2/tcp/5/p2p/{}", k.public().to_peer_id())
            .parse()
            .unwrap();
        let seen = t.observe(
            rec(&k, 1, 5),
            Source::Mdns,
            &l("eth0"),
            vec![v6.clone()],
            t0,
        );
        assert_eq!(seen, Ok(None));
        assert_eq!(t.snapshot()[0].addrs, vec![v4.to_string()]);
        t.due_probes(t0, 8, 2);
        assert_eq!(t.probe_result(&v6, true, t0)[0].event, EventKind::Updated);
        assert_eq!(t.snapshot()[0].addrs.len(), 2);
        // Renumbered: an IPv4 address alone replaces the old IPv4 one; the IPv6 one stays.
        multicast(&mut t, &k, 1, 5, "eth0", "10.0.0.9", t0).unwrap();
        let new = dial(&k, "10.0.0.9", 5)[0].clone();
        t.due_probes(t0, 8, 2);
        t.probe_result(&new, true, t0);
        let mut shown = t.snapshot()[0].addrs.clone();
        shown.sort();
        assert_eq!(shown, vec![new.to_string(), v6.to_string()]);
    }

    #[test]
    fn goodbye_expires_and_timeout_expires_and_hearing_revives() {
        let k = Keypair::generate_ed25519();
        let p = k.public().to_peer_id();
        let t0 = crate::test_clock();
        let mut t = PeerTable::new(T);
        multicast(&mut t, &k, 1, 5, "eth0", "10.0.0.2", t0).unwrap();
        // First its silence check, two thirds into the timeout.
        assert_eq!(t.next_deadline(t0), Some(t0 + T * 2 / 3));
        assert!(t.expire(t0 + T - Duration::from_secs(1)).is_empty());
        assert!(t
            .heard(&p, &l("eth0"), t0 + Duration::from_secs(30))
            .is_none());
        // Hearing it moves the real deadline; the index catches up when the filed time comes.
        assert_eq!(t.next_deadline(t0), Some(t0 + T));
        assert!(t.expire(t0 + T).is_empty());
        assert_eq!(
            t.next_deadline(t0),
            Some(t0 + Duration::from_secs(30) + T * 2 / 3)
        );
        let ev = t.expire(t0 + Duration::from_secs(90));
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].event, EventKind::Expired);
        assert_eq!(
            ev[0].peer.addrs,
            vec![dial(&k, "10.0.0.2", 5)[0].to_string()]
        );
        // Dead, it is remembered (its seq refuses replays) until forgotten.
        assert_eq!(
            t.next_deadline(t0),
            Some(t0 + Duration::from_secs(90) + FORGET_AFTER)
        );
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
        assert!(
            t.due_probes(t0, 8, 2).is_empty(),
            "not probed before a packet of the record came from its IPs"
        );
        spoke_from_all(&mut t, &p, &addrs);
        assert!(t.snapshot().is_empty(), "nothing before a probe answers");
        assert_eq!(
            t.next_deadline(t0),
            Some(t0 + T * 2 / 3),
            "due probes are the caller's now; next is the link's silence check"
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
            t.observe(rec(&k, 1, 5), Source::Mdns, &l("eth0"), addrs.clone(), now)
                .unwrap();
            spoke_from_all(&mut t, &k.public().to_peer_id(), &addrs);
        }
        assert_eq!(t.due_probes(now, 3, 2).len(), 3);
        assert!(t.due_probes(now, 3, 2).is_empty());
    }

    /// Packets naming `p`'s record came from every IP of `addrs` on eth0.
    fn spoke_from_all(t: &mut PeerTable, p: &PeerId, addrs: &[Multiaddr]) {
        for ip in addrs.iter().filter_map(ip_of) {
            t.spoke(p, &l("eth0"), &ip);
        }
    }

    #[test]
    fn a_record_heard_on_a_link_is_probed_only_where_its_packets_came_from() {
        let k = Keypair::generate_ed25519();
        let p = k.public().to_peer_id();
        let t0 = crate::test_clock();
        let mut t = PeerTable::new(T).with_reachability(true);
        // Its A records name the sender and a third host; packets came from the sender only.
        let mut addrs = dial(&k, "10.0.0.2", 5);
        addrs.extend(dial(&k, "10.0.0.66", 22));
        t.observe(rec(&k, 1, 5), Source::Mdns, &l("eth0"), addrs.clone(), t0)
            .unwrap();
        assert!(t.due_probes(t0, 8, 2).is_empty());
        assert!(t.probe_targets(&p, &l("eth0"), 4).is_empty());
        assert!(t.spoke(&p, &l("eth0"), &"10.0.0.2".parse().unwrap()));
        assert!(
            !t.spoke(&p, &l("eth0"), &"10.0.0.2".parse().unwrap()),
            "known"
        );
        assert!(
            !t.spoke(&p, &l("eth0"), &"10.9.9.9".parse().unwrap()),
            "not one of its IPs"
        );
        assert_eq!(t.due_probes(t0, 8, 2), vec![(p, addrs[0].clone())]);
        assert_eq!(t.probe_targets(&p, &l("eth0"), 4), vec![addrs[0].clone()]);
        // The same record heard again with another address keeps what it learned.
        t.observe(
            rec(&k, 1, 5),
            Source::Mdns,
            &l("eth0"),
            addrs[..1].to_vec(),
            t0,
        )
        .unwrap();
        assert_eq!(t.probe_targets(&p, &l("eth0"), 4), vec![addrs[0].clone()]);
        // Elsewhere than a link, the IPs given are probed.
        let k2 = Keypair::generate_ed25519();
        let a2 = dial(&k2, "10.1.0.2", 5);
        t.observe(
            rec(&k2, 1, 5),
            Source::Static,
            &Via::Static("h".into()),
            a2.clone(),
            t0,
        )
        .unwrap();
        assert!(t
            .due_probes(t0, 8, 2)
            .contains(&(k2.public().to_peer_id(), a2[0].clone())));
    }

    /// `k`'s record at `ip`, made to answer its probe (with reachability on).
    fn answered(t: &mut PeerTable, k: &Keypair, ip: &str, now: Instant) -> Vec<PeerEvent> {
        let addrs = dial(k, ip, 5);
        t.observe(rec(k, 1, 5), Source::Mdns, &l("eth0"), addrs.clone(), now)
            .unwrap();
        spoke_from_all(t, &k.public().to_peer_id(), &addrs);
        t.probe_result(&addrs[0], true, now)
    }

    #[test]
    fn a_flood_of_records_that_never_answer_costs_the_pending_budget_and_no_more() {
        let t0 = crate::test_clock();
        let mut t = PeerTable::new(T).with_reachability(true);
        let real = Keypair::generate_ed25519();
        assert_eq!(
            answered(&mut t, &real, "10.0.0.2", t0)[0].event,
            EventKind::Discovered
        );
        for i in 0..4 * MAX_PENDING {
            let k = Keypair::generate_ed25519();
            let now = t0 + Duration::from_millis(i as u64);
            multicast(&mut t, &k, 1, 5, "eth0", "10.0.0.66", now).unwrap();
        }
        let u = t.usage();
        assert_eq!((u.established, u.pending), (1, MAX_PENDING));
        assert_eq!(t.peers.len(), 1 + MAX_PENDING);
        assert_eq!(
            t.counters().dropped.get(&Dropped::PendingEvicted),
            Some(&(3 * MAX_PENDING as u64))
        );
        assert_eq!(
            t.counters().dropped_via[&l("eth0")][&Dropped::PendingEvicted],
            3 * MAX_PENDING as u64
        );
        // A newcomer that answers gets in at once, whatever is waiting.
        let late = Keypair::generate_ed25519();
        let ev = answered(&mut t, &late, "10.0.0.3", t0 + T / 2);
        assert_eq!(ev[0].event, EventKind::Discovered);
        assert_eq!(t.snapshot().len(), 2);
    }

    #[test]
    fn one_host_cannot_fill_the_table_and_a_live_peer_is_never_pushed_out() {
        let t0 = crate::test_clock();
        let mut t = PeerTable::new(T).with_reachability(true);
        // Keys minted by one host, all pointing at an open port of its own.
        for _ in 0..MAX_PEERS_PER_HOST + 5 {
            answered(&mut t, &Keypair::generate_ed25519(), "10.0.0.66", t0);
        }
        assert_eq!(t.usage().established, MAX_PEERS_PER_HOST);
        assert_eq!(t.counters().dropped.get(&Dropped::HostFull), Some(&5));
        // Fill the rest of the table from many hosts; the next newcomer is refused, no live
        // peer is dropped for it.
        let mut i = 0u32;
        while t.usage().established < MAX_PEERS {
            i += 1;
            let ip = format!("10.{}.{}.{}", 1 + i / 65536, (i / 256) % 256, i % 256);
            answered(&mut t, &Keypair::generate_ed25519(), &ip, t0);
        }
        let first = t.snapshot();
        assert!(answered(&mut t, &Keypair::generate_ed25519(), "10.9.9.9", t0).is_empty());
        assert_eq!(t.counters().dropped.get(&Dropped::TableFull), Some(&1));
        assert_eq!(t.snapshot(), first);
        // Once peers have fallen silent, a newcomer takes the place of the longest dead.
        let later = t0 + T + Duration::from_secs(1);
        assert_eq!(t.expire(later).len(), MAX_PEERS);
        let ev = answered(&mut t, &Keypair::generate_ed25519(), "10.9.9.9", later);
        assert_eq!(ev[0].event, EventKind::Discovered);
        assert_eq!(t.usage().established, MAX_PEERS);
    }

    #[test]
    fn a_host_whose_node_restarts_with_new_keys_gets_each_one_in_and_keeps_its_live_ones() {
        let t0 = crate::test_clock();
        let mut t = PeerTable::new(T).with_reachability(true);
        // A node on 10.0.0.2 beside 15 others of its host, restarted with a fresh key many more
        // times than a host has places: each of its keys is found, the dead one giving up its
        // place.
        let live: Vec<Keypair> = (1..MAX_PEERS_PER_HOST)
            .map(|_| Keypair::generate_ed25519())
            .collect();
        for k in &live {
            answered(&mut t, k, "10.0.0.2", t0);
        }
        let mut now = t0;
        for round in 0..3 * MAX_PEERS_PER_HOST {
            let k = Keypair::generate_ed25519();
            let ev = answered(&mut t, &k, "10.0.0.2", now);
            assert_eq!(ev[0].event, EventKind::Discovered, "restart {round}");
            assert_eq!(t.usage().established, MAX_PEERS_PER_HOST);
            // The others are heard again; the restarted node falls silent and times out.
            for _ in 0..2 {
                now += T / 2 + Duration::from_millis(500);
                for k in &live {
                    multicast(&mut t, k, 1, 5, "eth0", "10.0.0.2", now).unwrap();
                }
            }
            let gone = t.expire(now);
            assert_eq!(gone.len(), 1, "restart {round}: {gone:?}");
            assert_eq!(gone[0].peer.peer_id, k.public().to_peer_id().to_string());
        }
        assert_eq!(t.counters().dropped.get(&Dropped::HostFull), None);
        let listed: BTreeSet<String> = t.snapshot().into_iter().map(|p| p.peer_id).collect();
        assert!(live
            .iter()
            .all(|k| listed.contains(&k.public().to_peer_id().to_string())));
        // With every place held by a live peer, a newcomer of that host is still refused.
        answered(&mut t, &Keypair::generate_ed25519(), "10.0.0.2", now);
        assert!(answered(&mut t, &Keypair::generate_ed25519(), "10.0.0.2", now).is_empty());
        assert_eq!(t.counters().dropped.get(&Dropped::HostFull), Some(&1));
    }

    #[test]
    fn the_ips_a_link_is_kept_live_from_are_bounded() {
        let k = Keypair::generate_ed25519();
        let p = k.public().to_peer_id();
        let mut t = PeerTable::new(T);
        multicast(&mut t, &k, 1, 5, "eth0", "10.0.0.2", crate::test_clock()).unwrap();
        for round in 0..10u8 {
            let ips: Vec<IpAddr> = (0..32u8).map(|i| IpAddr::from([10, 1, round, i])).collect();
            t.note_ips(&p, &l("eth0"), &ips);
        }
        let link = t.peers[&p].links.get(&l("eth0")).unwrap();
        assert_eq!(link.ips.len(), crate::wire::addrs::MAX_DIALABLE);
        assert_eq!(
            t.sent_by(&p, &l("eth0"), &"10.0.0.2".parse().unwrap()),
            Some(true)
        );
    }

    #[test]
    fn room_among_the_established_is_made_from_dead_established_peers_only() {
        let t0 = crate::test_clock();
        let mut t = PeerTable::new(T).with_reachability(true);
        // A waiting peer that never answers, and goes dead first.
        let waiting = Keypair::generate_ed25519();
        multicast(&mut t, &waiting, 1, 5, "eth0", "10.200.0.1", t0).unwrap();
        let t1 = t0 + Duration::from_secs(10);
        let mut i = 0u32;
        while t.usage().established < MAX_PEERS {
            i += 1;
            let ip = format!("10.{}.{}.{}", 1 + i / 65536, (i / 256) % 256, i % 256);
            answered(&mut t, &Keypair::generate_ed25519(), &ip, t1);
        }
        t.expire(t0 + T + Duration::from_secs(1));
        let later = t1 + T + Duration::from_secs(1);
        t.expire(later);
        let ev = answered(&mut t, &Keypair::generate_ed25519(), "10.9.9.9", later);
        assert_eq!(ev[0].event, EventKind::Discovered);
        assert_eq!(
            t.usage().established,
            MAX_PEERS,
            "never more than the bound"
        );
        assert!(t.peers.contains_key(&waiting.public().to_peer_id()));
    }

    #[test]
    fn dead_peers_are_forgotten_and_the_cache_keeps_the_most_recently_verified() {
        let t0 = crate::test_clock();
        let mut t = PeerTable::new(T);
        let keys: Vec<Keypair> = (0..3).map(|_| Keypair::generate_ed25519()).collect();
        for (i, k) in keys.iter().enumerate() {
            let now = t0 + Duration::from_secs(10 * i as u64);
            multicast(&mut t, k, 1, 5, "eth0", &format!("10.0.0.{}", i + 2), now).unwrap();
        }
        let cached = t.cache_entries();
        let order: Vec<PeerId> = cached
            .iter()
            .map(|c| record::verify(&c.signed, "exo").unwrap().peer_id)
            .collect();
        let ids: Vec<PeerId> = keys.iter().rev().map(|k| k.public().to_peer_id()).collect();
        assert_eq!(order, ids, "most recent first");
        // All fall silent; after FORGET_AFTER they are gone, seq and all.
        let dead = t0 + Duration::from_secs(20) + T;
        assert_eq!(t.expire(dead).len(), 3);
        assert!(
            t.cache_entries().is_empty(),
            "a peer that is gone is not written back"
        );
        assert!(t.expire(dead + FORGET_AFTER).is_empty());
        assert_eq!(t.peers.len(), 0);
        assert!(t.cache_entries().is_empty());
        assert_eq!(t.next_deadline(dead + FORGET_AFTER), None);
    }

    #[test]
    fn a_cached_peer_is_a_hint_that_expires_unless_confirmed() {
        let k = Keypair::generate_ed25519();
        let t0 = crate::test_clock();
        let mut t = PeerTable::new(T).with_reachability(true);
        let addrs = dial(&k, "10.0.0.2", 5);
        t.observe(rec(&k, 1, 5), Source::Cache, &Via::Cache, addrs.clone(), t0)
            .unwrap();
        assert_eq!(t.due_probes(t0, 8, 2).len(), 1);
        // Its address answers 30 s in: handed over, and confirmed for one more timeout.
        let later = t0 + Duration::from_secs(30);
        let ev = t.probe_result(&addrs[0], true, later);
        assert_eq!(ev[0].event, EventKind::Discovered);
        assert_eq!(ev[0].peer.source, Source::Cache);
        assert!(t.expire(t0 + T + Duration::from_secs(1)).is_empty());
        // Never heard on a link since: it expires like any peer, and is not written back.
        let ev = t.expire(later + T);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].event, EventKind::Expired);
        assert!(t.cache_entries().is_empty());
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
