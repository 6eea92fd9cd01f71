//! An agent's view of the mesh, as one agent hands it to another (the exchange's "view" ask, see
//! [`crate::wire::exchange`]) and as the agent hands the views to `exo-discovery mesh`. Pure.
//!
//! A view says who the host is (the peer IDs its agent announces, its addresses), how each of its
//! links does per family (and why not), which hosts it heard mDNS packets from, and each peer it
//! knows: how, since when, whether verified. Everything is bounded: a view decoded from another
//! agent is cut to [`MAX_PEERS`] peers, [`MAX_LINKS`] links, [`MAX_HEARD`] senders and
//! [`MAX_TEXT`] bytes a string.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Most peers in one view.
pub const MAX_PEERS: usize = 1024;
/// Most links in one view.
pub const MAX_LINKS: usize = 32;
/// Most mDNS senders in one view.
pub const MAX_HEARD: usize = 256;
/// Most addresses or announced peer IDs of the host, and ways of one peer.
pub const MAX_SMALL: usize = 16;
/// Longest string kept, in bytes.
pub const MAX_TEXT: usize = 200;

/// One agent's view.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// The peer IDs its agent announces (its nodes).
    pub announces: Vec<String>,
    /// The host's addresses, on the links it uses.
    pub addrs: Vec<IpAddr>,
    /// Its links, per family.
    pub links: Vec<LinkView>,
    /// Hosts it heard mDNS packets from, by address.
    pub heard: Vec<Heard>,
    /// The peers it hands its node, then those whose records it holds unverified.
    pub peers: Vec<Seen>,
}

/// One link and family of the observer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkView {
    /// Interface name.
    pub iface: String,
    /// `v4` or `v6`.
    pub family: String,
    /// Why the family does not work on the link (`None`: it does).
    pub problem: Option<String>,
}

/// An address mDNS packets came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heard {
    /// The sender's address.
    pub ip: IpAddr,
    /// The interface it came in on.
    pub iface: String,
    /// Seconds since the last packet.
    pub age_secs: u64,
}

/// One peer the observer knows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// Base58 peer ID.
    pub peer_id: String,
    /// How: `v4:IFACE`, `v6:IFACE` (multicast on IFACE, at addresses of that family),
    /// `static`, `exchange`, `cache`, `manual`.
    pub ways: Vec<String>,
    /// Seconds since it was last heard (any way), if known.
    pub age_secs: Option<u64>,
    /// Handed to the node (verified as the agent is configured to).
    pub verified: bool,
    /// What the observer knows is missing (`heard only on IPv6`, `not verified: its probe failed
    /// … at ADDR`, …).
    pub missing: Vec<String>,
}

fn cut(s: &mut String) {
    if s.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

impl View {
    /// The view cut to its bounds (as decoded from another agent).
    pub fn bounded(mut self) -> View {
        self.announces.truncate(MAX_SMALL);
        self.announces.iter_mut().for_each(cut);
        self.addrs.truncate(MAX_SMALL);
        self.links.truncate(MAX_LINKS);
        for l in &mut self.links {
            cut(&mut l.iface);
            cut(&mut l.family);
            if let Some(p) = &mut l.problem {
                cut(p);
            }
        }
        self.heard.truncate(MAX_HEARD);
        self.heard.iter_mut().for_each(|h| cut(&mut h.iface));
        self.peers.truncate(MAX_PEERS);
        for p in &mut self.peers {
            cut(&mut p.peer_id);
            p.ways.truncate(MAX_SMALL);
            p.ways.iter_mut().for_each(cut);
            p.missing.truncate(MAX_SMALL);
            p.missing.iter_mut().for_each(cut);
        }
        self
    }
}

/// One host's answer to `mesh`: the view it gave, or why there is none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostView {
    /// Where it was asked (`local` for the agent asked by the command).
    pub asked: String,
    /// The peer IDs expected there (those the asking agent knows at that address).
    pub expected: Vec<String>,
    /// Its view, or why not (`did not answer: …`, `refused: …`).
    pub view: Result<View, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_over_its_bounds_is_cut() {
        let seen = Seen {
            peer_id: "é".repeat(300),
            ways: vec!["v4:eth0".into(); 40],
            age_secs: Some(1),
            verified: true,
            missing: vec![],
        };
        let v = View {
            peers: vec![seen; MAX_PEERS + 3],
            addrs: vec![IpAddr::from([10, 0, 0, 1]); 40],
            ..View::default()
        }
        .bounded();
        assert_eq!(v.peers.len(), MAX_PEERS);
        assert_eq!(v.addrs.len(), MAX_SMALL);
        assert_eq!(v.peers[0].ways.len(), MAX_SMALL);
        assert!(v.peers[0].peer_id.len() <= MAX_TEXT);
    }
}
