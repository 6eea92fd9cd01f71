//! Where the table keeps its entries: each with its peer ID (as its multihash's code and digest,
//! 44 bytes: [`Stored`]) in a numbered slot, found by a keyed fingerprint of the peer ID
//! ([`crate::engine::keyed`]). The table's indexes (the expiry index,
//! the pending and forgetting queues) name a peer by its slot: 4 bytes in place of an 80-byte
//! peer ID in each of their elements, and an index slot of 16 bytes in place of 88 in the map.
//!
//! A slot is reused once its peer is forgotten: whoever files a slot must take it out of their
//! index when the peer is forgotten (the table does, in `forget`). Or they keep a [`Filing`]: the
//! slot and the number of the filing that put the peer there, which finds the peer with no look
//! in the index, and nothing once the slot holds another filing.

use super::Entry;
use crate::engine::keyed::{ByFingerprint, Keys};
use libp2p_identity::PeerId;

/// A slot number: a peer's place while the table holds it.
pub type Slot = u32;

/// See the module docs.
#[derive(Debug, Default)]
pub struct Peers {
    slots: Vec<Option<Box<(Stored, Entry)>>>,
    /// Slots free for reuse.
    free: Vec<Slot>,
    /// The slot a peer ID was last found in: the table's work on one peer finds it by its peer
    /// ID several times in a row, and comparing it with the peer ID stored there costs less than
    /// its fingerprint (80 bytes through SipHash).
    last: std::cell::Cell<Slot>,
    index: ByFingerprint<Slot>,
    keys: Keys,
    /// The number the next filing takes (see [`Filing`]).
    filings: u32,
}

/// A peer's filing in one table ([`super::PeerTable::filing_of`]): its slot, and the number of
/// the filing that put it there. It finds the peer's entry with one look at the slot (no lookup
/// in the index, as a peer ID takes), for as long as that filing lasts: once the peer is
/// forgotten, it finds nothing, even when the peer is filed again (in a new filing) or its slot
/// goes to another. Filings are numbered in 32 bits: one would be mistaken for another only
/// after four billion more, in the same slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Filing {
    slot: Slot,
    number: u32,
}

/// What finds a held peer: its peer ID or its [`Filing`].
pub trait FindPeer {
    #[doc(hidden)]
    fn slot_in(&self, peers: &Peers) -> Option<Slot>;
}

impl FindPeer for PeerId {
    fn slot_in(&self, peers: &Peers) -> Option<Slot> {
        let holds = |slot: Slot| {
            let filed = peers.slots.get(slot as usize).and_then(Option::as_deref);
            filed.is_some_and(|f| f.0.is(self))
        };
        if holds(peers.last.get()) {
            return Some(peers.last.get());
        }
        let slot = *peers.index.get(&peers.keys.of(self))?;
        peers.last.set(slot);
        holds(slot).then_some(slot)
    }
}

/// A peer ID as its multihash's code and digest: 44 bytes where a [`PeerId`] takes 80 (its
/// multihash keeps room for a 64-byte digest; a peer ID's is at most 42: an inlined key, or a
/// SHA-256).
#[derive(Clone, Copy, Debug)]
pub(super) struct Stored {
    code: u8,
    len: u8,
    digest: [u8; MAX_DIGEST],
    /// The number of the filing that put it in its slot (see [`Filing`]; in room the entry
    /// beside it leaves anyway: the slot's allocation is no larger).
    filing: u32,
}

const MAX_DIGEST: usize = 42;

impl Stored {
    /// `peer` as stored (`None`: a peer ID no multihash code or digest this small holds, which
    /// libp2p does not make).
    fn of(peer: &PeerId) -> Option<Stored> {
        let mh = peer.as_ref();
        let d = mh.digest();
        let mut digest = [0; MAX_DIGEST];
        digest.get_mut(..d.len())?.copy_from_slice(d);
        Some(Stored {
            code: u8::try_from(mh.code()).ok()?,
            len: d.len() as u8,
            digest,
            filing: 0,
        })
    }

    fn digest(&self) -> &[u8] {
        &self.digest[..self.len as usize]
    }

    fn is(&self, peer: &PeerId) -> bool {
        let mh = peer.as_ref();
        mh.code() == u64::from(self.code) && mh.digest() == self.digest()
    }

    fn peer(&self) -> PeerId {
        multiaddr::multihash::Multihash::<64>::wrap(u64::from(self.code), self.digest())
            .ok()
            .and_then(|mh| PeerId::from_multihash(mh).ok())
            // Only a peer ID's own code and digest are stored (see `of`).
            .unwrap_or_else(|| unreachable!("a stored peer ID is a peer ID"))
    }
}

#[cfg(test)]
impl Filing {
    /// A filing of slot `slot` (for tests of what keeps filings).
    pub fn test(slot: Slot) -> Filing {
        Filing { slot, number: 0 }
    }
}

impl FindPeer for Filing {
    fn slot_in(&self, peers: &Peers) -> Option<Slot> {
        let filed = peers.slots.get(self.slot as usize)?.as_deref()?;
        (filed.0.filing == self.number).then_some(self.slot)
    }
}

impl Peers {
    /// `peer`'s slot, if the table holds it.
    pub(super) fn slot(&self, peer: &(impl FindPeer + ?Sized)) -> Option<Slot> {
        peer.slot_in(self)
    }

    /// `peer`'s filing, if the table holds it.
    pub(super) fn filing(&self, peer: &(impl FindPeer + ?Sized)) -> Option<Filing> {
        let slot = self.slot(peer)?;
        let filed = self.slots.get(slot as usize)?.as_deref()?;
        Some(Filing {
            slot,
            number: filed.0.filing,
        })
    }

    /// The peer in `slot`, and its entry.
    pub(super) fn at(&self, slot: Slot) -> Option<(PeerId, &Entry)> {
        self.slots
            .get(slot as usize)?
            .as_deref()
            .map(|(p, e)| (p.peer(), e))
    }

    /// The entry in `slot`.
    pub(super) fn entry_at(&self, slot: Slot) -> Option<&Entry> {
        self.slots.get(slot as usize)?.as_deref().map(|(_, e)| e)
    }

    /// The peer in `slot`.
    pub(super) fn peer_at(&self, slot: Slot) -> Option<PeerId> {
        self.at(slot).map(|(p, _)| p)
    }

    /// The peer in `slot`, and its entry to change.
    pub(super) fn at_mut(&mut self, slot: Slot) -> Option<(PeerId, &mut Entry)> {
        self.slots
            .get_mut(slot as usize)?
            .as_deref_mut()
            .map(|(p, e)| (p.peer(), e))
    }

    pub(super) fn get(&self, peer: &(impl FindPeer + ?Sized)) -> Option<&Entry> {
        self.slot(peer).and_then(|s| self.entry_at(s))
    }

    /// `peer`'s slot and its entry to change.
    pub(super) fn slot_mut(&mut self, peer: &(impl FindPeer + ?Sized)) -> Option<(Slot, &mut Entry)> {
        let slot = self.slot(peer)?;
        let (_, e) = self.slots[slot as usize].as_deref_mut()?;
        Some((slot, e))
    }

    pub(super) fn get_mut(&mut self, peer: &(impl FindPeer + ?Sized)) -> Option<&mut Entry> {
        self.slot_mut(peer).map(|(_, e)| e)
    }

    #[cfg(test)]
    pub(super) fn contains_key(&self, peer: &PeerId) -> bool {
        self.slot(peer).is_some()
    }

    /// Whether `peer` can be filed: it is not held, and no peer held shares its fingerprint (one
    /// in 2^64 for a pair of peers, and nobody can aim at it: the key is this table's secret).
    pub(super) fn has_room_for(&self, peer: &PeerId) -> bool {
        !self.index.contains_key(&self.keys.of(peer))
    }

    /// Files `peer` (see [`Peers::has_room_for`]: otherwise it is not filed) and returns its slot.
    pub(super) fn insert(&mut self, peer: PeerId, entry: Entry) -> Option<Slot> {
        let key = self.keys.of(&peer);
        if self.index.contains_key(&key) {
            return None;
        }
        let mut stored = Stored::of(&peer)?;
        stored.filing = self.filings;
        self.filings = self.filings.wrapping_add(1);
        let filed = Some(Box::new((stored, entry)));
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = filed;
                slot
            }
            None => {
                self.slots.push(filed);
                (self.slots.len() - 1) as Slot
            }
        };
        self.index.insert(key, slot);
        Some(slot)
    }

    /// Takes `peer` out; its slot is free for another.
    pub(super) fn remove(&mut self, peer: &PeerId) -> Option<(Slot, Entry)> {
        let slot = self.slot(peer)?;
        self.index.remove(&self.keys.of(peer));
        let (_, entry) = *self.slots[slot as usize].take()?;
        self.free.push(slot);
        Some((slot, entry))
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (PeerId, &Entry)> {
        self.slots.iter().flatten().map(|b| (b.0.peer(), &b.1))
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Entry> {
        self.iter().map(|(_, e)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::protocol::Source;

    use crate::test_peer as peer;

    fn entry(seq: u64) -> Entry {
        Entry::new(Some(seq), None, Source::Mdns, crate::test_clock())
    }

    #[test]
    fn a_filing_finds_its_peer_until_it_is_forgotten_and_takes_no_room() {
        let (a, b) = (peer(), peer());
        let mut peers = Peers::default();
        peers.insert(a, entry(1)).unwrap();
        let fa = peers.filing(&a).unwrap();
        assert_eq!(peers.slot(&fa), peers.slot(&a));
        assert_eq!(peers.get(&fa).and_then(Entry::seq), Some(1));
        // Forgotten: its slot goes to b, and a is filed again elsewhere.
        peers.remove(&a).unwrap();
        assert_eq!(peers.slot(&fa), None);
        peers.insert(b, entry(2)).unwrap();
        peers.insert(a, entry(3)).unwrap();
        assert_eq!(peers.slot(&fa), None, "neither b in its slot nor a's new filing");
        let fa2 = peers.filing(&a).unwrap();
        assert_ne!(fa, fa2);
        assert_eq!(peers.get(&fa2).and_then(Entry::seq), Some(3));
        // The filing's number is kept in room the entry leaves anyway.
        assert_eq!(
            std::mem::size_of::<(Stored, Entry)>(),
            std::mem::size_of::<([u8; 2 + MAX_DIGEST], Entry)>()
        );
    }

    #[test]
    fn a_stored_peer_id_is_the_peer_id_of_any_kind() {
        let mh = |code: u64, digest: &[u8]| {
            let mh = multiaddr::multihash::Multihash::<64>::wrap(code, digest).unwrap();
            PeerId::from_multihash(mh).unwrap()
        };
        // An ed25519 key inlined, a SHA-256 of a larger key, the longest inlined key.
        for p in [peer(), mh(0x12, &[7; 32]), mh(0x00, &[9; 42])] {
            let stored = Stored::of(&p).unwrap();
            assert_eq!(stored.peer(), p);
            assert!(stored.is(&p));
            assert!(!stored.is(&peer()));
        }
        assert!(!Stored::of(&mh(0x12, &[7; 32])).unwrap().is(&mh(0x00, &[7; 32])), "by code too");
    }

    #[test]
    fn a_peer_id_finds_its_own_slot_whichever_was_found_last() {
        let (a, b, c) = (peer(), peer(), peer());
        let mut peers = Peers::default();
        let sa = peers.insert(a, entry(1)).unwrap();
        let sb = peers.insert(b, entry(2)).unwrap();
        for (p, s) in [(a, Some(sa)), (a, Some(sa)), (b, Some(sb)), (c, None), (a, Some(sa))] {
            assert_eq!(peers.slot(&p), s);
        }
        // The slot found last is given to another peer: it finds that peer only.
        assert_eq!(peers.slot(&a), Some(sa));
        peers.remove(&a).unwrap();
        assert_eq!(peers.insert(c, entry(3)), Some(sa));
        assert_eq!(peers.slot(&a), None);
        assert_eq!(peers.slot(&c), Some(sa));
        assert_eq!(peers.get(&c).and_then(Entry::seq), Some(3));
    }

    #[test]
    fn a_forgotten_peers_slot_goes_to_the_next_and_its_peer_id_finds_nothing() {
        let (a, b, c) = (peer(), peer(), peer());
        let mut peers = Peers::default();
        let sa = peers.insert(a, entry(1)).unwrap();
        let sb = peers.insert(b, entry(2)).unwrap();
        assert_ne!(sa, sb);
        assert!(!peers.has_room_for(&a));
        assert_eq!(peers.insert(a, entry(3)).map(|_| ()), None, "held already");
        assert_eq!(peers.get(&a).and_then(Entry::seq), Some(1));
        let (slot, gone) = peers.remove(&a).unwrap();
        assert_eq!((slot, gone.seq()), (sa, Some(1)));
        assert_eq!(peers.get(&a).map(Entry::seq), None);
        let sc = peers.insert(c, entry(4)).unwrap();
        assert_eq!(sc, sa, "the free slot is taken again");
        assert_eq!(peers.slot(&a), None);
        assert_eq!(peers.peer_at(sc), Some(c));
        assert_eq!(peers.get(&b).and_then(Entry::seq), Some(2));
        let mut held: Vec<PeerId> = peers.iter().map(|(p, _)| p).collect();
        held.sort();
        let mut want = vec![b, c];
        want.sort();
        assert_eq!(held, want);
        assert_eq!(peers.len(), 2);
    }
}
