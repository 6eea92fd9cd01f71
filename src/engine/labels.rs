//! The label index: which peer's newest record each instance label stands for, for what the link
//! sockets hear (every instance a packet names is looked up here).
//!
//! A label is kept as a 64-bit fingerprint, keyed at random per engine, not as its text: the
//! index holds one per peer the table holds, and more for peers it shed, and the text (a peer ID
//! in base58 and a tag, about 60 bytes, in an allocation of its own) took more room than the rest
//! of the slot. Nobody outside this process knows the key, so nobody can make a label that shares
//! a fingerprint with another; the text of a peer's label is made again from its peer ID and seq
//! when it is needed (the known answers of this host's own query).
//!
//! The peer is kept as its key in the table ([`PeerKey`], 8 bytes), not as its 80-byte peer ID:
//! the table finds it by that key without hashing the peer ID again, and a peer the table shed
//! is found by nothing (its label still says the record was taken once: see `catchup.rs`).

use super::keyed::{ByFingerprint, Keys};
use super::table::PeerKey;

/// See the module docs.
#[derive(Default)]
pub(super) struct Labels {
    map: ByFingerprint<PeerKey>,
    keys: Keys,
}

impl Labels {
    fn key(&self, label: &str) -> u64 {
        self.keys.of(label)
    }

    /// The peer whose newest record `label` stands for, if any.
    pub(super) fn get(&self, label: &str) -> Option<PeerKey> {
        self.map.get(&self.key(label)).copied()
    }

    /// `label` now stands for `peer`'s newest record.
    pub(super) fn insert(&mut self, label: &str, peer: PeerKey) {
        self.map.insert(self.key(label), peer);
    }

    /// `label` stands for nothing any more.
    pub(super) fn remove(&mut self, label: &str) {
        self.map.remove(&self.key(label));
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Keeps the labels of the peers for which `keep` gives the label that stands for them
    /// (`None`: none does any more).
    pub(super) fn retain(&mut self, keep: impl Fn(&PeerKey) -> Option<String>) {
        let keys = &self.keys;
        self.map
            .retain(|k, p| keep(p).is_some_and(|label| keys.of(label.as_str()) == *k));
    }

    /// Every peer a label stands for.
    pub(super) fn peers(&self) -> impl Iterator<Item = &PeerKey> {
        self.map.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_peer as peer;

    #[test]
    fn a_label_finds_its_peer_until_it_is_removed_or_no_longer_stands_for_it() {
        let table = crate::engine::table::PeerTable::new(std::time::Duration::from_secs(60));
        let (a, b) = (table.key_of(&peer()), table.key_of(&peer()));
        let mut labels = Labels::default();
        labels.insert("a-000001", a);
        labels.insert("b-000001", b);
        assert_eq!(labels.get("a-000001"), Some(a));
        assert_eq!(labels.get("A-000001"), None, "the text as it is, as before");
        assert_eq!(labels.get("a-000002"), None);
        labels.remove("a-000001");
        assert_eq!(labels.get("a-000001"), None);
        labels.insert("a-000002", a);
        // b's record moved on: its old label goes, a's stays.
        labels.retain(|p| Some(if *p == a { "a-000002" } else { "b-000002" }.to_owned()));
        assert_eq!(labels.get("a-000002"), Some(a));
        assert_eq!(labels.get("b-000001"), None);
        assert_eq!(labels.len(), 1);
        labels.retain(|_| None);
        assert_eq!(labels.peers().count(), 0);
    }
}
