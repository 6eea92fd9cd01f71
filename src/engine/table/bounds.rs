//! The table's bounds: who gets a place and who gives one up. A new peer waits among the
//! [`MAX_PENDING`] until one of its addresses answers (or is established at once without a
//! prober); an established one takes a place among the [`MAX_PEERS`] and among its host's
//! [`MAX_PEERS_PER_HOST`]. Room is made from the longest-dead established peers only, never from
//! a live one; the oldest waiting peer gives way to a newcomer. A peer dead for [`FORGET_AFTER`]
//! is forgotten. Every drop is counted by reason and by way in.

use super::{Entry, PeerTable, Via};
use crate::engine::prober::Prober;
use crate::wire::addrs::ip_of;
use libp2p_identity::PeerId;
use std::net::IpAddr;
use crate::engine::stamp::Stamp;
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

/// How long a peer none of whose sightings is live is remembered (then forgotten, or sooner when
/// the room is needed).
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

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

impl PeerTable {
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
    pub(super) fn admit(&mut self, peer: PeerId, mut entry: Entry, via: &Via) -> bool {
        if !self.peers.has_room_for(&peer) {
            return false;
        }
        if self.prober.is_none() {
            if self.established >= MAX_PEERS && !self.evict_dead(|_| true) {
                self.count_drop(Dropped::TableFull, Some(via));
                return false;
            }
            entry.host = Some(None);
            self.established += 1;
        } else {
            if self.pending.len() >= MAX_PENDING {
                if let Some(old) = self.pending.first().and_then(|(_, s)| self.peers.peer_at(*s)) {
                    let old_via = self.peers.get(&old).and_then(|e| e.sightings.first_via());
                    self.forget(&old);
                    self.count_drop(Dropped::PendingEvicted, old_via.as_ref());
                }
            }
            let since = entry.since;
            let Some(slot) = self.peers.insert(peer, entry) else {
                return false;
            };
            self.pending.insert((since, slot));
            return true;
        }
        self.peers.insert(peer, entry).is_some()
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
            .find(|(_, s)| peers.entry_at(*s).is_some_and(|e| e.host.is_some_and(&of_host)))
            .and_then(|(_, s)| peers.peer_at(*s));
        match oldest {
            Some(peer) => {
                self.forget(&peer);
                true
            }
            None => false,
        }
    }

    /// Removes `peer` and everything filed for it.
    pub(super) fn forget(&mut self, peer: &PeerId) {
        if let (Some(prober), Some(e)) = (self.prober.as_mut(), self.peers.get(peer)) {
            for a in e.sightings.values().flat_map(|l| l.addrs.iter()) {
                prober.forget(a);
            }
        }
        self.clear_sightings(*peer);
        let Some((slot, e)) = self.peers.remove(peer) else {
            return;
        };
        self.pending.remove(&(e.since, slot));
        if let Some(at) = e.dead_since {
            self.dead.remove(&(at, slot));
        }
        if let Some(host) = e.host {
            self.established -= 1;
            let key = self.host_keys.of(&host);
            if let Some(n) = self.per_host.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    self.per_host.remove(&key);
                }
            }
        }
    }

    /// A waiting peer answered: it takes a place among the established if there is room and its
    /// host has fewer than [`MAX_PEERS_PER_HOST`] (in both, a dead peer gives up its place, the
    /// longest dead first; a live one never does). Returns whether it did; if not, it is
    /// forgotten and counted.
    pub(super) fn establish(&mut self, peer: &PeerId, cur: &super::Shown) -> bool {
        let host = cur.addrs.first().and_then(ip_of);
        let via = self.peers.get(peer).and_then(|e| e.sightings.first_via());
        let key = self.host_keys.of(&host);
        let why = if self.per_host.get(&key).copied().unwrap_or(0) as usize >= MAX_PEERS_PER_HOST
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
        let Some((slot, e)) = self.peers.slot_mut(peer) else {
            return false;
        };
        self.pending.remove(&(e.since, slot));
        e.host = Some(host);
        self.established += 1;
        *self.per_host.entry(key).or_default() += 1;
        true
    }

    /// Files `peer` in the forgetting queue when none of its sightings is live, and out of it when
    /// one is.
    pub(super) fn file_dead(&mut self, peer: &PeerId, alive: bool, now: Instant) {
        let Some((slot, e)) = self.peers.slot_mut(peer) else {
            return;
        };
        match (e.dead_since, alive) {
            (None, false) => {
                let now = Stamp::of(now);
                e.dead_since = Some(now);
                self.dead.insert((now, slot));
            }
            (Some(at), true) => {
                e.dead_since = None;
                self.dead.remove(&(at, slot));
            }
            _ => {}
        }
    }
}
