//! The label index: which peer's newest record each instance label stands for, for what the link
//! sockets hear (every instance a packet names is looked up here).
//!
//! A label is kept as a 64-bit fingerprint, keyed at random per process, not as its text: the
//! index holds one per peer the table holds, and more for peers it shed, and the text (a peer ID
//! in base58 and a tag, about 60 bytes, in an allocation of its own) took more room than the rest
//! of the slot. Nobody outside this process knows the key, so nobody can make a label that shares
//! a fingerprint with another; the text of a peer's label is made again from its peer ID and seq
//! when it is needed (the known answers of this host's own query). A label a packet names comes
//! with its fingerprint ([`Label`]), made where the packet is read: once, however many engines
//! take the packet in.
//!
//! The peer is kept as its filing in the table ([`Filing`], 8 bytes), not as its 80-byte peer ID:
//! the table finds its entry by that with one look at its slot (neither hashing the peer ID nor
//! looking in the table's index: this is done for every instance a packet names), and a peer the
//! table shed is found by nothing (its label still says the record was taken once: see
//! `catchup.rs`). A peer is filed again only as one of its records is taken, which files its
//! label again too.

use super::keyed::{label_print, ByFingerprint};
use super::table::Filing;

/// An instance label as a packet named it, and its fingerprint in the index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    text: String,
    print: u64,
}

impl Label {
    /// `text` and its fingerprint.
    pub fn new(text: String) -> Label {
        let print = label_print(&text);
        Label { text, print }
    }

    /// Its fingerprint in the index.
    pub(super) fn print(&self) -> u64 {
        self.print
    }
}

impl std::ops::Deref for Label {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

/// See the module docs.
#[derive(Default)]
pub(super) struct Labels {
    map: ByFingerprint<Filing>,
}

impl Labels {
    /// The peer whose newest record the label of fingerprint `print` stands for, if any.
    pub(super) fn get(&self, print: u64) -> Option<Filing> {
        self.map.get(&print).copied()
    }

    /// The peer whose newest record `label` stands for, if any.
    pub(super) fn get_text(&self, label: &str) -> Option<Filing> {
        self.get(label_print(label))
    }

    /// `label` now stands for `peer`'s newest record.
    pub(super) fn insert(&mut self, label: &str, peer: Filing) {
        self.map.insert(label_print(label), peer);
    }

    /// `label` stands for nothing any more.
    pub(super) fn remove(&mut self, label: &str) {
        self.map.remove(&label_print(label));
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Keeps the labels of the peers for which `keep` gives the label that stands for them
    /// (`None`: none does any more).
    pub(super) fn retain(&mut self, keep: impl Fn(&Filing) -> Option<String>) {
        self.map
            .retain(|k, p| keep(p).is_some_and(|label| label_print(&label) == *k));
    }

    /// Every peer a label stands for.
    pub(super) fn peers(&self) -> impl Iterator<Item = &Filing> {
        self.map.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_finds_its_peer_until_it_is_removed_or_no_longer_stands_for_it() {
        let (a, b) = (Filing::test(0), Filing::test(1));
        let mut labels = Labels::default();
        labels.insert("a-000001", a);
        labels.insert("b-000001", b);
        assert_eq!(labels.get_text("a-000001"), Some(a));
        assert_eq!(labels.get(Label::new("a-000001".into()).print()), Some(a), "read from a packet");
        assert_eq!(labels.get_text("A-000001"), None, "the text as it is, as before");
        assert_eq!(labels.get_text("a-000002"), None);
        labels.remove("a-000001");
        assert_eq!(labels.get_text("a-000001"), None);
        labels.insert("a-000002", a);
        // b's record moved on: its old label goes, a's stays.
        labels.retain(|p| Some(if *p == a { "a-000002" } else { "b-000002" }.to_owned()));
        assert_eq!(labels.get_text("a-000002"), Some(a));
        assert_eq!(labels.get_text("b-000001"), None);
        assert_eq!(labels.len(), 1);
        labels.retain(|_| None);
        assert_eq!(labels.peers().count(), 0);
    }
}
