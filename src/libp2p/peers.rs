//! What the node knows of its peers, and the `Discovered` / `Expired` pairs each word of the agent
//! changes in it. Pure, no I/O, the clock passed in.
//!
//! The agent speaks of whole peers (a snapshot, `discovered` / `updated` with every address,
//! `expired`); a libp2p node hears of `(peer, address)` pairs, as libp2p-mdns reports them: an
//! address new to the node is discovered, one no longer handed over is expired. Addresses keep
//! their `/p2p/<peer>` suffix (libp2p-mdns's do too).
//!
//! A snapshot replaces what was known, but the first after a reconnection comes from an agent
//! that may have just started and not heard everyone yet: the peers it leaves out are held for
//! a grace period, and expire only if the agent does not name them before it ends.

use crate::proto::{EventKind, PeerEvent, PeerInfo};
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Most peers known at once (the agent's own table holds a quarter of this); more are ignored.
pub(crate) const MAX_PEERS: usize = 4 * crate::engine::table::MAX_PEERS;
/// Most addresses kept for one peer; more are ignored.
pub(crate) const MAX_ADDRS_PER_PEER: usize = 64;

/// The pairs one change discovered and expired.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Changes {
    /// Addresses new to the node.
    pub(crate) discovered: Vec<(PeerId, Multiaddr)>,
    /// Addresses no longer valid.
    pub(crate) expired: Vec<(PeerId, Multiaddr)>,
}

impl Changes {
    fn append(&mut self, mut other: Changes) {
        self.discovered.append(&mut other.discovered);
        self.expired.append(&mut other.expired);
    }
}

/// See the module docs.
pub(crate) struct Peers {
    local: PeerId,
    grace: Duration,
    known: BTreeMap<PeerId, Vec<Multiaddr>>,
    /// Known peers the agent has not named since it came back, and when they expire.
    unconfirmed: BTreeMap<PeerId, Instant>,
    /// The next snapshot is the first from a (perhaps restarted) agent.
    reconnected: bool,
}

impl Peers {
    /// Nothing known; this node (`local`) is never a peer of itself.
    pub(crate) fn new(local: PeerId, grace: Duration) -> Peers {
        Peers {
            local,
            grace,
            known: BTreeMap::new(),
            unconfirmed: BTreeMap::new(),
            reconnected: false,
        }
    }

    /// The addresses known for `peer` (each ending in `/p2p/<peer>`).
    pub(crate) fn addresses(&self, peer: &PeerId) -> &[Multiaddr] {
        self.known.get(peer).map_or(&[], Vec::as_slice)
    }

    /// The peers known, with their addresses.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&PeerId, &[Multiaddr])> {
        self.known.iter().map(|(p, a)| (p, a.as_slice()))
    }

    /// The connection to the agent was lost: the next snapshot may come from a new agent.
    pub(crate) fn disconnected(&mut self) {
        self.reconnected = true;
    }

    /// A snapshot: every peer the agent hands over now.
    pub(crate) fn snapshot(&mut self, peers: Vec<PeerInfo>, now: Instant) -> Changes {
        let after_reconnection = std::mem::take(&mut self.reconnected);
        let mut named = BTreeSet::new();
        let mut out = Changes::default();
        for info in peers {
            let Some((peer, addrs)) = self.parse(&info) else {
                continue;
            };
            if named.insert(peer) {
                out.append(self.set(peer, addrs));
            }
        }
        let absent: Vec<PeerId> = self
            .known
            .keys()
            .filter(|p| !named.contains(p))
            .copied()
            .collect();
        for peer in absent {
            if after_reconnection || self.unconfirmed.contains_key(&peer) {
                self.unconfirmed.entry(peer).or_insert(now + self.grace);
            } else {
                out.append(self.set(peer, Vec::new()));
            }
        }
        out
    }

    /// One event of the subscription.
    pub(crate) fn event(&mut self, ev: PeerEvent) -> Changes {
        let Some((peer, addrs)) = self.parse(&ev.peer) else {
            return Changes::default();
        };
        match ev.event {
            EventKind::Discovered | EventKind::Updated => self.set(peer, addrs),
            EventKind::Expired => self.set(peer, Vec::new()),
        }
    }

    /// Expires the peers a returning agent did not name within the grace period.
    pub(crate) fn on_timeout(&mut self, now: Instant) -> Changes {
        let due: Vec<PeerId> = self
            .unconfirmed
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(p, _)| *p)
            .collect();
        let mut out = Changes::default();
        for peer in due {
            out.append(self.set(peer, Vec::new()));
        }
        out
    }

    /// When [`Peers::on_timeout`] has something to do.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.unconfirmed.values().min().copied()
    }

    /// Makes `addrs` the addresses of `peer` (none: forgotten); what that discovered and expired.
    fn set(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) -> Changes {
        self.unconfirmed.remove(&peer);
        let old = if addrs.is_empty() {
            self.known.remove(&peer).unwrap_or_default()
        } else if !self.known.contains_key(&peer) && self.known.len() >= MAX_PEERS {
            log::debug!("ignoring peer {peer}: {MAX_PEERS} peers known already");
            return Changes::default();
        } else {
            self.known.insert(peer, addrs.clone()).unwrap_or_default()
        };
        Changes {
            discovered: addrs
                .iter()
                .filter(|a| !old.contains(a))
                .map(|a| (peer, a.clone()))
                .collect(),
            expired: old
                .into_iter()
                .filter(|a| !addrs.contains(a))
                .map(|a| (peer, a))
                .collect(),
        }
    }

    /// The peer ID and its dialable addresses, each ending in `/p2p/<peer>`: addresses naming
    /// another peer, or that do not parse, are left out; `None` for a bad peer ID or this node.
    fn parse(&self, info: &PeerInfo) -> Option<(PeerId, Vec<Multiaddr>)> {
        let peer: PeerId = match info.peer_id.parse() {
            Ok(p) => p,
            Err(e) => {
                log::debug!(
                    "the agent handed over a bad peer ID {:?}: {e}",
                    info.peer_id
                );
                return None;
            }
        };
        if peer == self.local {
            return None;
        }
        let mut addrs: Vec<Multiaddr> = Vec::new();
        for a in &info.addrs {
            let Ok(addr) = a.parse::<Multiaddr>() else {
                log::debug!("the agent handed over a bad multiaddr {a:?} for {peer}");
                continue;
            };
            let Ok(addr) = addr.with_p2p(peer) else {
                log::debug!("the agent handed over {a} for {peer}, which names another peer");
                continue;
            };
            if !addrs.contains(&addr) && addrs.len() < MAX_ADDRS_PER_PEER {
                addrs.push(addr);
            }
        }
        Some((peer, addrs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Source;

    fn id(n: u8) -> PeerId {
        libp2p_identity::Keypair::ed25519_from_bytes([n; 32])
            .expect("key")
            .public()
            .to_peer_id()
    }

    fn info(peer: PeerId, ports: &[u16]) -> PeerInfo {
        PeerInfo {
            peer_id: peer.to_string(),
            addrs: ports
                .iter()
                .map(|p| format!("/ip4/10.0.0.1/tcp/{p}/p2p/{peer}"))
                .collect(),
            interfaces: vec!["eth0".into()],
            source: Source::Mdns,
            verified: vec![],
            seq: 1,
        }
    }

    fn pairs(peer: PeerId, ports: &[u16]) -> Vec<(PeerId, Multiaddr)> {
        ports
            .iter()
            .map(|p| {
                (
                    peer,
                    format!("/ip4/10.0.0.1/tcp/{p}/p2p/{peer}").parse().unwrap(),
                )
            })
            .collect()
    }

    fn ev(event: EventKind, peer: PeerId, ports: &[u16]) -> PeerEvent {
        PeerEvent {
            event,
            peer: info(peer, ports),
        }
    }

    const GRACE: Duration = Duration::from_secs(10);

    #[test]
    fn an_update_discovers_the_added_addresses_and_expires_the_removed() {
        let t = crate::test_clock();
        let (a, b) = (id(1), id(2));
        let mut p = Peers::new(id(0), GRACE);
        let c = p.snapshot(vec![info(a, &[1, 2])], t);
        assert_eq!(c.discovered, pairs(a, &[1, 2]));
        assert!(c.expired.is_empty());

        let c = p.event(ev(EventKind::Updated, a, &[2, 3]));
        assert_eq!(c.discovered, pairs(a, &[3]));
        assert_eq!(c.expired, pairs(a, &[1]));
        assert_eq!(
            p.addresses(&a),
            &pairs(a, &[2, 3])
                .into_iter()
                .map(|x| x.1)
                .collect::<Vec<_>>()[..]
        );

        // The same again changes nothing; a new peer is discovered; expired forgets all.
        assert_eq!(
            p.event(ev(EventKind::Updated, a, &[3, 2])),
            Changes::default()
        );
        assert_eq!(
            p.event(ev(EventKind::Discovered, b, &[9])).discovered,
            pairs(b, &[9])
        );
        let c = p.event(ev(EventKind::Expired, a, &[3]));
        assert_eq!(
            c.expired,
            pairs(a, &[3, 2]),
            "every address known, not the event's"
        );
        assert!(p.addresses(&a).is_empty());
        // An `expired` for a peer never known, or an update with no usable address.
        assert_eq!(
            p.event(ev(EventKind::Expired, id(7), &[1])),
            Changes::default()
        );
        let c = p.event(ev(EventKind::Updated, b, &[]));
        assert_eq!(c.expired, pairs(b, &[9]));
        assert_eq!(p.iter().count(), 0);
    }

    #[test]
    fn a_snapshot_is_diffed_against_what_was_known() {
        let t = crate::test_clock();
        let (a, b, c) = (id(1), id(2), id(3));
        let mut p = Peers::new(id(0), GRACE);
        p.snapshot(vec![info(a, &[1]), info(b, &[2])], t);
        // A resynchronisation on a live connection (a slow reader): absent means gone.
        let ch = p.snapshot(vec![info(a, &[1, 5]), info(c, &[3])], t);
        assert_eq!(ch.discovered, [pairs(a, &[5]), pairs(c, &[3])].concat());
        assert_eq!(ch.expired, pairs(b, &[2]));
        assert_eq!(p.next_deadline(), None);
    }

    #[test]
    fn after_a_reconnection_the_absent_are_held_for_the_grace_period() {
        let t = crate::test_clock();
        let (a, b, c) = (id(1), id(2), id(3));
        let mut p = Peers::new(id(0), GRACE);
        p.snapshot(vec![info(a, &[1]), info(b, &[2]), info(c, &[3])], t);

        // The agent restarts and knows only `a` so far: nothing expires at once.
        p.disconnected();
        let ch = p.snapshot(vec![info(a, &[1])], t);
        assert_eq!(ch, Changes::default());
        assert_eq!(p.next_deadline(), Some(t + GRACE));
        assert_eq!(p.addresses(&b).len(), 1, "still dialable meanwhile");

        // It hears `b` again, with a new address: only that is news.
        let ch = p.event(ev(EventKind::Discovered, b, &[2, 4]));
        assert_eq!(ch.discovered, pairs(b, &[4]));
        assert!(ch.expired.is_empty());

        // Before the end of the grace nothing goes; at its end `c`, never named again, expires.
        assert_eq!(
            p.on_timeout(t + GRACE - Duration::from_millis(1)),
            Changes::default()
        );
        let ch = p.on_timeout(t + GRACE);
        assert_eq!(ch.expired, pairs(c, &[3]));
        assert_eq!(p.next_deadline(), None);
        assert_eq!(p.iter().count(), 2);
    }

    #[test]
    fn a_second_reconnection_does_not_extend_the_grace() {
        let t = crate::test_clock();
        let a = id(1);
        let mut p = Peers::new(id(0), GRACE);
        p.snapshot(vec![info(a, &[1])], t);
        p.disconnected();
        p.snapshot(vec![], t);
        p.disconnected();
        p.snapshot(vec![], t + Duration::from_secs(5));
        assert_eq!(p.next_deadline(), Some(t + GRACE));
        // A later snapshot on the same connection leaves it waiting too; the grace ends on time.
        assert_eq!(
            p.snapshot(vec![], t + Duration::from_secs(6)),
            Changes::default()
        );
        assert_eq!(p.on_timeout(t + GRACE).expired, pairs(a, &[1]));
    }

    #[test]
    fn addresses_get_the_p2p_suffix_and_nothing_bad_gets_through() {
        let t = crate::test_clock();
        let (me, a, other) = (id(0), id(1), id(2));
        let mut p = Peers::new(me, GRACE);
        let mut i = info(a, &[]);
        i.addrs = vec![
            "/ip4/10.0.0.1/tcp/1".into(),               // suffix added
            format!("/ip4/10.0.0.1/tcp/1/p2p/{a}"),     // the same: once
            format!("/ip4/10.0.0.1/tcp/2/p2p/{other}"), // another peer's: left out
            "not a multiaddr".into(),
        ];
        let mut bad = info(a, &[1]);
        bad.peer_id = "not a peer".into();
        let ch = p.snapshot(vec![i, bad, info(me, &[7])], t);
        assert_eq!(ch.discovered, pairs(a, &[1]));
        assert!(p.addresses(&me).is_empty(), "this node is not its own peer");

        // Too many addresses are cut; too many peers are ignored.
        let mut many = info(a, &[]);
        many.addrs = (0..1000)
            .map(|i| format!("/ip4/10.0.0.1/tcp/{i}"))
            .collect();
        p.event(PeerEvent {
            event: EventKind::Updated,
            peer: many,
        });
        assert_eq!(p.addresses(&a).len(), MAX_ADDRS_PER_PEER);
    }

    #[test]
    fn the_known_peers_are_bounded() {
        let t = crate::test_clock();
        let mut p = Peers::new(id(0), GRACE);
        let keys: Vec<PeerId> = (0..MAX_PEERS + 3).map(|_| PeerId::random()).collect();
        let ch = p.snapshot(keys.iter().map(|k| info(*k, &[1])).collect(), t);
        assert_eq!(ch.discovered.len(), MAX_PEERS);
        assert_eq!(p.iter().count(), MAX_PEERS);
    }
}
