//! The peer table: verified records merged by seq, per-source liveness, expiry and events. Pure,
//! no I/O; the clock is passed in.
//!
//! A peer is known per [`Via`] (multicast on a link, a static host, the cache, the operator)
//! where its record was learned: one *sighting* each. A sighting stays *live* while the peer is
//! heard that way at least once per timeout; a goodbye removes it at once. The peer is visible
//! (handed to the node) while at least one live sighting yields a dialable address. A record with
//! a higher seq replaces the old one and drops every sighting learned from the old one (restart on
//! a new port: only the new addresses remain); a lower seq is a replay and is refused.
//!
//! With reachability verification on, an address is handed over only once a probe has answered;
//! the [`Prober`] schedules the probes, the table says which addresses are worth probing (those on
//! live sightings) and settles a peer when one of its addresses answers.
//!
//! Every operation costs O(log n) in the number of peers or less, except those that name a whole
//! way in ([`PeerTable::remove_via`]) or the whole table ([`PeerTable::snapshot`],
//! [`PeerTable::cache_entries`]): a table of thousands of peers is never scanned per packet.
//!
//! The table's rules, one file each:
//! - `merge`: taking a record in (a newer seq replaces, the same seq refreshes, an older one is
//!   a replay), unsigned peers, the rewind to an older record;
//! - `bounds`: who gets a place (pending, established, per host), who gives one up, forgetting;
//! - `liveness`: hearing, silence checks, timeouts, goodbyes, the expiry index;
//! - `probes`: the hand-off to the [`Prober`]: what is worth probing, and what its results settle;
//! - `exports`: what the table hands out: the node's view of each peer, the persistent cache's
//!   entries, peer exchange's entries.

mod bounds;
mod exports;
mod liveness;
mod merge;
mod probes;
mod slots;
#[cfg(test)]
mod tests;

pub use bounds::{Dropped, FORGET_AFTER, MAX_PEERS, MAX_PENDING};
pub use liveness::HeardFrom;
pub use slots::{FindPeer, Filing};
// What the tests measure the table against.
#[cfg(any(test, feature = "internals"))]
pub use bounds::{Usage, MAX_PEERS_PER_HOST};
#[cfg(any(test, feature = "internals"))]
pub use exports::MAX_VIAS_SHOWN;
#[cfg(any(test, feature = "internals"))]
pub use liveness::{MAX_SILENT_TIMEOUTS, SILENCE_CHECKS};

use super::prober::{Dests, Prober};
use crate::wire::addrs::ip_of;
use crate::wire::protocol::{EventKind, PeerEvent, Source};
use crate::wire::record::Reject;
use super::few::Few;
use exports::{info, Shown};
use liveness::Expiries;
use slots::Slot;
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use super::stamp::Stamp;
use std::time::{Duration, Instant};

/// Where a peer was learned: the key of its per-source liveness.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Via {
    /// Multicast (mDNS) on a local link, by interface name.
    Multicast(Name),
    /// A static host asked by unicast, as configured.
    Static(Name),
    /// The persistent cache of an earlier run.
    Cache,
    /// The operator (`add-peer`).
    Manual,
    /// A static host's agent, by peer exchange, as configured.
    Exchange(Name),
}

/// The name in a [`Via`] (an interface, a static host), shared: every sighting learned through a
/// link holds the link's own, so that finding a peer's sighting through a link (for every
/// instance a packet names) compares two pointers, not two strings kept apart in memory.
/// Compared, ordered and hashed as the text it holds.
#[derive(Clone, Debug)]
pub struct Name(std::sync::Arc<str>);

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for Name {}

impl Ord for Name {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if std::sync::Arc::ptr_eq(&self.0, &other.0) {
            return std::cmp::Ordering::Equal;
        }
        self.0.cmp(&other.0)
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::hash::Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        Name(s.into())
    }
}

impl From<String> for Name {
    fn from(s: String) -> Self {
        Name(s.into())
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Via {
    /// The name the node sees in a peer's `interfaces`: `eth0`, `static:HOST`, `cache`, `manual`,
    /// `exchange:HOST`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Via::Multicast(name) => f.write_str(name),
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
    /// Kept as long as the peer is, with no room to grow (most peers have one per link).
    addrs: Few<Multiaddr>,
    /// The announcer's own IPs that way, sorted: only packets from one of them keep the sighting
    /// live (it seldom grows).
    ips: Few<IpAddr>,
    /// Those of `ips` a packet naming the peer's record came from, on a link: only there are its
    /// addresses probed (an A record can name anyone; a packet's source is where its sender is).
    /// Bit `i` stands for `ips[i]` (`ips` holds at most [`MAX_DIALABLE`]).
    spoke_from: u32,
    last_heard: Stamp,
    /// When a packet was last heard (`last_heard` also moves when a silence check is answered).
    spoke: Stamp,
    /// Silence checks made since `last_heard` (see [`SILENCE_CHECKS`]).
    checks: u8,
    live: bool,
    /// The time it is filed under in the expiry index (a lower bound of when it times out:
    /// hearing it again only moves `last_heard`, and the index catches up when that time comes).
    armed: Option<Stamp>,
    /// How the peer was learned this way.
    source: Source,
    /// Never times out (a peer the operator added by hand, a cached peer).
    pinned: bool,
}

impl Sighting {
    /// A packet naming the peer came from `ip`: noted among `spoke_from` if it is one of its own
    /// IPs this way. Returns whether it was new there.
    fn note_spoke(&mut self, ip: &IpAddr) -> bool {
        let Some(bit) = self.ips.binary_search(ip).ok().and_then(speaker_bit) else {
            return false;
        };
        let new = self.spoke_from & bit == 0;
        self.spoke_from |= bit;
        new
    }

    /// Those of its own IPs a packet naming the peer's record came from this way.
    fn spoke_from(&self) -> impl Iterator<Item = &IpAddr> {
        self.ips
            .iter()
            .enumerate()
            .filter(|(i, _)| speaker_bit(*i).is_some_and(|b| self.spoke_from & b != 0))
            .map(|(_, ip)| ip)
    }

    /// Adds `ip` to its own IPs this way (kept sorted; those that spoke stay marked).
    fn add_ip(&mut self, ip: IpAddr) {
        if self.ips.len() >= MAX_DIALABLE {
            return; // a host has a few; a list that keeps growing is someone else's doing
        }
        if let Err(i) = self.ips.binary_search(&ip) {
            let mut ips = self.ips.to_vec();
            ips.insert(i, ip);
            self.ips = ips.into();
            let below = self.spoke_from & ((1u32 << i) - 1);
            let above = (self.spoke_from >> i).checked_shl(i as u32 + 1).unwrap_or(0);
            self.spoke_from = below | above;
        }
    }

    /// The peer was heard this way at `now`: no silence check is owed. Returns whether the
    /// sighting was live already (otherwise the caller revives it).
    fn note_heard(&mut self, now: Stamp) -> bool {
        self.last_heard = self.last_heard.max(now);
        self.spoke = self.spoke.max(now);
        self.checks = 0;
        self.live
    }
}

#[derive(Clone, Debug)]
struct Entry {
    /// Highest seq accepted, if `signed_peer` (read through [`Entry::seq`]; apart from the
    /// flag, not an `Option`: 8 bytes less in every entry).
    seq_value: u64,
    signed_peer: bool,
    /// The signed record of that seq (for the persistent cache), as verified.
    signed: Option<std::sync::Arc<[u8]>>,
    source: Source,
    sightings: Sightings,
    /// What the node was last told of this peer; `None` while it is not visible.
    sent: Option<Shown>,
    /// When it entered the table (its place in the pending queue).
    since: Stamp,
    /// Handed over at least once (then it counts against [`MAX_PEERS`]; before, against
    /// [`MAX_PENDING`]): the IP its first handed-over address has.
    host: Option<Option<IpAddr>>,
    /// Since when none of its sightings is live (its place in the forgetting queue).
    dead_since: Option<Stamp>,
    /// When it was last seen visible (the persistent cache keeps the most recent).
    verified_at: Option<Stamp>,
    /// Where it was last handed over, kept while it is not handed over (its sightings may be gone):
    /// where a node that comes back with an older record is expected (see `engine/rewind.rs`).
    last_place: Box<[Multiaddr]>,
    /// A goodbye of its record was confirmed (its node's ports refused) and no sighting came back
    /// since: the record held is known gone.
    departed: bool,
}

impl Entry {
    fn new(
        seq: Option<u64>,
        signed: Option<std::sync::Arc<[u8]>>,
        source: Source,
        now: Instant,
    ) -> Self {
        Entry {
            seq_value: seq.unwrap_or(0),
            signed_peer: seq.is_some(),
            signed,
            source,
            sightings: Sightings::default(),
            sent: None,
            since: Stamp::of(now),
            host: None,
            dead_since: None,
            verified_at: None,
            last_place: Box::default(),
            departed: false,
        }
    }

    /// Highest seq accepted; `None` for an unsigned peer.
    fn seq(&self) -> Option<u64> {
        self.signed_peer.then_some(self.seq_value)
    }

    fn set_seq(&mut self, seq: u64) {
        self.seq_value = seq;
        self.signed_peer = true;
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

/// The table. See the module docs.
#[derive(Debug)]
pub struct PeerTable {
    peers: slots::Peers,
    timeout: Duration,
    counters: Counters,
    /// Reachability, when addresses must answer a probe before they are handed over.
    prober: Option<Prober>,
    /// When each live, unpinned sighting times out.
    expiries: Expiries,
    /// Addresses dropped from sightings since the prober was last pruned.
    dropped: usize,
    /// Peers not yet established, by when they came (then by slot).
    pending: BTreeSet<(Stamp, Slot)>,
    /// Peers none of whose sightings is live, by since when (then by slot).
    dead: BTreeSet<(Stamp, Slot)>,
    /// Established peers.
    established: usize,
    /// Established peers per host IP, by its fingerprint (keyed by `host_keys`).
    per_host: crate::engine::keyed::ByFingerprint<u32>,
    host_keys: crate::engine::keyed::Keys,
    /// The latest time any call was given.
    clock: Option<Instant>,
    /// Links come due for a silence check, not yet taken.
    silent: Vec<(PeerId, Via)>,
    /// Every probe's destination lately (see [`Dests`]).
    dests: Dests,
}

impl PeerTable {
    /// An empty table expiring sightings not heard for `timeout`.
    pub fn new(timeout: Duration) -> Self {
        PeerTable {
            peers: slots::Peers::default(),
            timeout,
            counters: Counters::default(),
            prober: None,
            expiries: Expiries::default(),
            dropped: 0,
            pending: BTreeSet::new(),
            dead: BTreeSet::new(),
            established: 0,
            per_host: Default::default(),
            host_keys: Default::default(),
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

    /// Counts a record refused before it reached the table (signature, namespace, …).
    pub fn count_reject(&mut self, why: Reject) {
        *self.counters.rejected.entry(why).or_default() += 1;
    }

    /// What was accepted and refused so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Puts `sighting` in place of whatever `peer` had at `via` (the same record's sources stay
    /// known where its IPs stay).
    fn set_sighting(&mut self, peer: PeerId, via: &Via, mut sighting: Sighting) {
        let Some(slot) = self.peers.slot(&peer) else {
            return;
        };
        Self::arm(&mut self.expiries, self.timeout, slot, via, &mut sighting);
        let old = self.peers.get_mut(&peer).and_then(|e| {
            if let Some(old) = e.sightings.get(via) {
                for ip in old.spoke_from() {
                    sighting.note_spoke(ip);
                }
            }
            e.departed = false;
            e.sightings.insert(via.clone(), sighting)
        });
        if let Some(old) = old {
            self.disarm(slot, via, &old);
            self.dropped += old.addrs.len();
        }
    }

    /// Drops every sighting of `peer`.
    fn clear_sightings(&mut self, peer: PeerId) {
        let Some((slot, e)) = self.peers.slot_mut(&peer) else {
            return;
        };
        let old = std::mem::take(&mut e.sightings);
        for (via, sighting) in old.iter() {
            self.disarm(slot, via, sighting);
            self.dropped += sighting.addrs.len();
        }
    }

    /// Whether `peer` is established (handed over now or before, and not forgotten).
    pub fn is_established(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|e| e.host.is_some())
    }

    /// Whether `peer` has addresses (answering or not) through `via`.
    pub fn has_addrs(&self, peer: &(impl FindPeer + ?Sized), via: &Via) -> bool {
        self.peers
            .get(peer)
            .and_then(|e| e.sightings.get(via))
            .is_some_and(|l| !l.addrs.is_empty())
    }

    /// Whether `peer` is handed over now.
    pub fn is_visible(&self, peer: &(impl FindPeer + ?Sized)) -> bool {
        self.peers.get(peer).is_some_and(|e| e.sent.is_some())
    }

    /// `peer`'s filing, while it is held (see [`Filing`]).
    pub fn filing_of(&self, peer: &PeerId) -> Option<Filing> {
        self.peers.filing(peer)
    }

    /// The peer `key` finds, if it is held.
    pub fn peer_of(&self, key: &(impl FindPeer + ?Sized)) -> Option<PeerId> {
        self.peers.slot(key).and_then(|s| self.peers.at(s)).map(|(p, _)| p)
    }

    /// What this host's query lists of `peer` as a known answer through `via`, while it is
    /// handed over and live there: when it last spoke there, its record's seq, and its peer ID
    /// (one lookup, where [`PeerTable::is_visible`], [`PeerTable::last_heard_on`],
    /// [`PeerTable::seq_of`] and [`PeerTable::peer_of`] take four).
    pub fn known_answer(
        &self,
        peer: &(impl FindPeer + ?Sized),
        via: &Via,
    ) -> Option<(Instant, u64, PeerId)> {
        let slot = self.peers.slot(peer)?;
        let e = self.peers.entry_at(slot).filter(|e| e.sent.is_some())?;
        let spoke = e.sightings.get(via).filter(|l| l.live)?.spoke.instant();
        Some((spoke, e.seq()?, self.peers.peer_at(slot)?))
    }

    /// Highest seq accepted from `peer`, kept after it expires so that replays stay refused.
    pub fn seq_of(&self, peer: &(impl FindPeer + ?Sized)) -> Option<u64> {
        self.peers.get(peer).and_then(Entry::seq)
    }

    /// Recomputes what the node should know of `peer` and says what changed.
    fn settle(&mut self, peer: &PeerId) -> Option<PeerEvent> {
        let now = self.clock?;
        let e = self.peers.get(peer)?;
        let cur = info(e, self.prober.as_ref());
        let alive = e.sightings.values().any(|l| l.live);
        let mut visible = !cur.addrs.is_empty();
        if visible && e.host.is_none() {
            visible = self.establish(peer, &cur);
        }
        self.file_dead(peer, alive, now);
        let e = self.peers.get_mut(peer)?;
        if visible {
            e.verified_at = Some(Stamp::of(now));
            e.last_place = Box::default();
        } else if let Some(last) = &e.sent {
            // Handed over until now: remember where (its sightings may go next).
            e.last_place = last.addrs.to_vec().into_boxed_slice();
        }
        let event = match (&e.sent, visible) {
            (None, true) => Some((EventKind::Discovered, &cur)),
            (Some(last), false) => Some((EventKind::Expired, last)),
            (Some(last), true) if *last != cur => Some((EventKind::Updated, &cur)),
            _ => None,
        }
        .map(|(event, shown)| PeerEvent {
            event,
            peer: shown.render(peer),
        });
        e.sent = visible.then_some(cur);
        event
    }
}

/// A peer's sightings, by way in, in order. Most peers have one, kept inline (finding it is
/// reading the entry, not following one more pointer: that is done for every instance a packet
/// names); the others follow in a small sorted vector (smaller and faster than a map).
#[derive(Clone, Debug, Default)]
struct Sightings {
    /// The first in order; `None` only when there is none at all.
    first: Option<(Via, Sighting)>,
    /// The rest, in order, each after `first` (`None` while there is none: most peers have one).
    /// Boxed on purpose: 8 bytes in every entry, where a vector takes 24.
    #[allow(clippy::box_collection)]
    rest: Option<Box<Vec<(Via, Sighting)>>>,
}

impl Sightings {
    fn rest(&self) -> &[(Via, Sighting)] {
        self.rest.as_deref().map_or(&[], Vec::as_slice)
    }
    fn rest_mut(&mut self) -> &mut Vec<(Via, Sighting)> {
        self.rest.get_or_insert_with(Default::default)
    }
    /// Takes the `i`th of the rest out.
    fn take_rest(&mut self, i: usize) -> (Via, Sighting) {
        let rest = self.rest_mut();
        let out = rest.remove(i);
        if rest.is_empty() {
            self.rest = None;
        }
        out
    }
    fn pos(&self, via: &Via) -> Result<usize, usize> {
        self.rest().binary_search_by(|(v, _)| v.cmp(via))
    }
    fn get(&self, via: &Via) -> Option<&Sighting> {
        match &self.first {
            Some((v, l)) if v == via => Some(l),
            Some(_) => self.pos(via).ok().map(|i| &self.rest()[i].1),
            None => None,
        }
    }
    fn get_mut(&mut self, via: &Via) -> Option<&mut Sighting> {
        if self.first.as_ref()?.0 == *via {
            return self.first.as_mut().map(|(_, l)| l);
        }
        let i = self.pos(via).ok()?;
        Some(&mut self.rest_mut()[i].1)
    }
    fn insert(&mut self, via: Via, sighting: Sighting) -> Option<Sighting> {
        let Some((first, l)) = &mut self.first else {
            self.first = Some((via, sighting));
            return None;
        };
        match via.cmp(first) {
            std::cmp::Ordering::Equal => return Some(std::mem::replace(l, sighting)),
            std::cmp::Ordering::Less => {
                let old = self.first.replace((via, sighting));
                let rest = self.rest_mut();
                // One slot more, not the four a growing vector takes first.
                rest.reserve_exact(1);
                rest.extend(old);
                rest.rotate_right(1);
                return None;
            }
            std::cmp::Ordering::Greater => {}
        }
        match self.pos(&via) {
            Ok(i) => Some(std::mem::replace(&mut self.rest_mut()[i].1, sighting)),
            Err(i) => {
                let rest = self.rest_mut();
                rest.reserve_exact(1);
                rest.insert(i, (via, sighting));
                None
            }
        }
    }
    fn remove(&mut self, via: &Via) -> Option<Sighting> {
        if self.first.as_ref().is_some_and(|(v, _)| v == via) {
            let next = (!self.rest().is_empty()).then(|| self.take_rest(0));
            return std::mem::replace(&mut self.first, next).map(|(_, l)| l);
        }
        self.first.as_ref()?;
        let i = self.pos(via).ok()?;
        Some(self.take_rest(i).1)
    }
    fn iter(&self) -> impl Iterator<Item = (&Via, &Sighting)> {
        self.first
            .iter()
            .chain(self.rest().iter())
            .map(|(v, l)| (v, l))
    }
    fn values(&self) -> impl Iterator<Item = &Sighting> {
        self.iter().map(|(_, l)| l)
    }
    fn first_via(&self) -> Option<Via> {
        self.first.as_ref().map(|(v, _)| v.clone())
    }
}

/// The bit of `spoke_from` that stands for `ips[i]`.
fn speaker_bit(i: usize) -> Option<u32> {
    (i < MAX_DIALABLE).then(|| 1u32 << i)
}

const MAX_DIALABLE: usize = crate::wire::addrs::MAX_DIALABLE;
const _: () = assert!(MAX_DIALABLE <= u32::BITS as usize);

fn new_sighting(addrs: Vec<Multiaddr>, source: Source, now: Instant) -> Sighting {
    let mut ips: Vec<IpAddr> = Vec::with_capacity(addrs.len());
    ips.extend(addrs.iter().filter_map(ip_of));
    ips.sort();
    ips.dedup();
    Sighting {
        ips: ips.into(),
        spoke_from: 0,
        addrs: addrs.into(),
        last_heard: Stamp::of(now),
        spoke: Stamp::of(now),
        checks: 0,
        live: true,
        armed: None,
        source,
        // A manual peer stays until the operator's agent restarts. A cached one is a hint: it
        // must be confirmed (heard on a link, or its address answering) within the timeout.
        pinned: matches!(source, Source::Manual),
    }
}
