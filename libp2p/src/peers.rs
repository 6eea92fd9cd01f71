//! What the node knows of its peers, and the `Discovered` / `Expired` pairs each word of the agent
//! changes in it. Pure, no I/O, the clock passed in.
//!
//! The agent speaks of whole peers (a snapshot, `discovered` / `updated` with every address,
//! `expired`); a libp2p node hears of `(peer, address)` pairs, as libp2p-mdns reports them: an
//! address new to the node is discovered, one no longer handed over is expired. Addresses keep
//! their `/p2p/<peer>` suffix (libp2p-mdns's do too).
//!
//! The agent's word is not always the last one on an address. It learns a peer's addresses
//! family by family (the IPv4 and IPv6 announcements of a new record are separate packets), so
//! an update naming no address of one family is no evidence that the family's addresses are
//! gone: those are held for [`FAMILY_HOLD`], and expire then unless named again; an update that
//! names other addresses of the same family, or an `expired`, is believed at once. And the first
//! snapshot after a reconnection comes from an agent that may have just started and not heard
//! everyone yet: for a grace period after it (the resynchronisation), every address the agent
//! does not name is held, and expires at the end of the grace if still not named.

use exo_discovery::protocol::{EventKind, PeerEvent, PeerInfo};
use libp2p_identity::PeerId;
use multiaddr::{Multiaddr, Protocol};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Most peers known at once (the agent's own table holds a quarter of this); more are ignored.
pub(crate) const MAX_PEERS: usize = 4 * exo_discovery::protocol::MAX_PEERS;
/// Most addresses kept for one peer; more are ignored.
pub(crate) const MAX_ADDRS_PER_PEER: usize = 64;
/// How long an address is held when an update names no address of its family.
pub(crate) const FAMILY_HOLD: Duration = Duration::from_secs(5);

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
    /// What the swarm is told: the addresses the agent hands over, and those held.
    known: BTreeMap<PeerId, Vec<Multiaddr>>,
    /// Known addresses the agent no longer names, and when they expire.
    held: BTreeMap<PeerId, Vec<(Multiaddr, Instant)>>,
    /// The end of the resynchronisation's grace, while it lasts.
    resync_until: Option<Instant>,
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
            held: BTreeMap::new(),
            resync_until: None,
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
        if std::mem::take(&mut self.reconnected) {
            // A second reconnection within the grace does not extend it.
            let end = self.resync_until.filter(|end| *end > now);
            self.resync_until = Some(end.unwrap_or(now + self.grace));
        }
        let mut named = BTreeSet::new();
        let mut out = Changes::default();
        for info in peers {
            let Some((peer, addrs)) = self.parse(&info) else {
                continue;
            };
            if named.insert(peer) {
                out.append(self.set(peer, addrs, now));
            }
        }
        let absent: Vec<PeerId> = self
            .known
            .keys()
            .filter(|p| !named.contains(p))
            .copied()
            .collect();
        for peer in absent {
            out.append(self.set(peer, Vec::new(), now));
        }
        out
    }

    /// One event of the subscription.
    pub(crate) fn event(&mut self, ev: PeerEvent, now: Instant) -> Changes {
        let Some((peer, addrs)) = self.parse(&ev.peer) else {
            return Changes::default();
        };
        match ev.event {
            EventKind::Discovered | EventKind::Updated => self.set(peer, addrs, now),
            EventKind::Expired => self.forget(peer),
        }
    }

    /// Expires the held addresses whose time is up.
    pub(crate) fn on_timeout(&mut self, now: Instant) -> Changes {
        if self.resync_until.is_some_and(|end| end <= now) {
            self.resync_until = None;
        }
        let mut out = Changes::default();
        let peers: Vec<PeerId> = self.held.keys().copied().collect();
        for peer in peers {
            let Some(held) = self.held.get_mut(&peer) else {
                continue;
            };
            let due: Vec<Multiaddr> = held
                .iter()
                .filter(|(_, at)| *at <= now)
                .map(|(a, _)| a.clone())
                .collect();
            held.retain(|(_, at)| *at > now);
            if held.is_empty() {
                self.held.remove(&peer);
            }
            if let Some(addrs) = self.known.get_mut(&peer) {
                addrs.retain(|a| !due.contains(a));
                if addrs.is_empty() {
                    self.known.remove(&peer);
                }
            }
            out.expired.extend(due.into_iter().map(|a| (peer, a)));
        }
        out
    }

    /// When [`Peers::on_timeout`] has something to do.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let held = self.held.values().flatten().map(|(_, at)| *at);
        held.chain(self.resync_until).min()
    }

    /// The agent hands over `addrs` for `peer` (none: it hands over nothing for it now). What
    /// that discovered and expired; the addresses left out that are not expired are held.
    fn set(&mut self, peer: PeerId, addrs: Vec<Multiaddr>, now: Instant) -> Changes {
        let resync_end = self.resync_until.filter(|end| now < *end);
        let old = self.known.get(&peer).cloned().unwrap_or_default();
        if old.is_empty() && !addrs.is_empty() && self.known.len() >= MAX_PEERS {
            log::debug!("ignoring peer {peer}: {MAX_PEERS} peers known already");
            return Changes::default();
        }
        let was_held = self.held.remove(&peer).unwrap_or_default();
        let named: BTreeSet<Family> = addrs.iter().map(family).collect();
        let mut held = Vec::new();
        let mut expired = Vec::new();
        for a in old.iter().filter(|a| !addrs.contains(a)) {
            let since = was_held.iter().find(|(h, _)| h == a).map(|(_, at)| *at);
            let until = match resync_end {
                Some(end) => Some(since.map_or(end, |at| at.max(end))),
                None if named.contains(&family(a)) => None,
                None => Some(since.unwrap_or(now + FAMILY_HOLD)),
            };
            match until {
                Some(at) => held.push((a.clone(), at)),
                None => expired.push((peer, a.clone())),
            }
        }
        let discovered = addrs
            .iter()
            .filter(|a| !old.contains(a))
            .map(|a| (peer, a.clone()))
            .collect();
        let mut now_known = addrs;
        now_known.extend(held.iter().map(|(a, _)| a.clone()));
        if !held.is_empty() {
            self.held.insert(peer, held);
        }
        if now_known.is_empty() {
            self.known.remove(&peer);
        } else {
            self.known.insert(peer, now_known);
        }
        Changes {
            discovered,
            expired,
        }
    }

    /// The agent says `peer` is gone: every address known expires, held ones too.
    fn forget(&mut self, peer: PeerId) -> Changes {
        self.held.remove(&peer);
        let old = self.known.remove(&peer).unwrap_or_default();
        Changes {
            discovered: Vec::new(),
            expired: old.into_iter().map(|a| (peer, a)).collect(),
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

/// An address's IP family, as the agent hears them (separately).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Family {
    V4,
    V6,
    Other,
}

fn family(a: &Multiaddr) -> Family {
    match a.iter().next() {
        Some(Protocol::Ip4(_) | Protocol::Dns4(_)) => Family::V4,
        Some(Protocol::Ip6(_) | Protocol::Ip6zone(_) | Protocol::Dns6(_)) => Family::V6,
        _ => Family::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use exo_discovery::protocol::Source;

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

        let c = p.event(ev(EventKind::Updated, a, &[2, 3]), t);
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
            p.event(ev(EventKind::Updated, a, &[3, 2]), t),
            Changes::default()
        );
        assert_eq!(
            p.event(ev(EventKind::Discovered, b, &[9]), t).discovered,
            pairs(b, &[9])
        );
        let c = p.event(ev(EventKind::Expired, a, &[3]), t);
        assert_eq!(
            c.expired,
            pairs(a, &[3, 2]),
            "every address known, not the event's"
        );
        assert!(p.addresses(&a).is_empty());
        // An `expired` for a peer never known, or an update with no usable address.
        assert_eq!(
            p.event(ev(EventKind::Expired, id(7), &[1]), t),
            Changes::default()
        );
        // An update with no address at all names no family: held, then expired.
        assert_eq!(
            p.event(ev(EventKind::Updated, b, &[]), t),
            Changes::default()
        );
        assert_eq!(p.next_deadline(), Some(t + FAMILY_HOLD));
        assert_eq!(p.on_timeout(t + FAMILY_HOLD).expired, pairs(b, &[9]));
        assert_eq!(p.iter().count(), 0);
        assert_eq!(p.next_deadline(), None);
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
        // `b`, left out, had no address of a family named for it: held a moment, then expired.
        assert!(ch.expired.is_empty());
        assert_eq!(p.on_timeout(t + FAMILY_HOLD).expired, pairs(b, &[2]));
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
        let ch = p.event(ev(EventKind::Discovered, b, &[2, 4]), t);
        assert_eq!(ch.discovered, pairs(b, &[4]));
        assert!(ch.expired.is_empty());

        // Before the end of the grace nothing goes; at its end `c`, never named again, expires.
        let before = t + GRACE - Duration::from_millis(1);
        assert_eq!(p.on_timeout(before), Changes::default());
        let ch = p.on_timeout(t + GRACE);
        assert_eq!(ch.expired, pairs(c, &[3]));
        assert_eq!(p.next_deadline(), None);
        assert_eq!(p.iter().count(), 2);
    }

    #[test]
    fn a_restarted_agent_naming_a_peer_family_by_family_expires_nothing() {
        let t = crate::test_clock();
        let a = id(1);
        let mut p = Peers::new(id(0), GRACE);
        p.snapshot(vec![info(a, &[1, 2])], t);
        p.disconnected();
        // First heard on one family, then on both.
        assert_eq!(p.snapshot(vec![info(a, &[1])], t), Changes::default());
        assert_eq!(p.addresses(&a).len(), 2);
        let later = t + Duration::from_millis(30);
        assert_eq!(
            p.event(ev(EventKind::Updated, a, &[1, 2]), later),
            Changes::default()
        );
        assert_eq!(p.on_timeout(t + GRACE), Changes::default());
        assert_eq!(p.addresses(&a).len(), 2);
        // After the grace, a change is a change again.
        let ch = p.event(ev(EventKind::Updated, a, &[2]), t + GRACE);
        assert_eq!(ch.expired, pairs(a, &[1]));
    }

    fn at(peer: PeerId, addrs: &[&str]) -> PeerEvent {
        let mut peer_info = info(peer, &[]);
        peer_info.addrs = addrs.iter().map(|a| format!("{a}/p2p/{peer}")).collect();
        PeerEvent {
            event: EventKind::Updated,
            peer: peer_info,
        }
    }

    fn pair(peer: PeerId, addr: &str) -> (PeerId, Multiaddr) {
        (peer, format!("{addr}/p2p/{peer}").parse().unwrap())
    }

    #[test]
    fn an_update_naming_one_family_leaves_the_other_for_a_moment() {
        let t = crate::test_clock();
        let ms = Duration::from_millis;
        let a = id(1);
        let (v4, v6) = ("/ip4/10.0.0.1/tcp/1", "/ip6zone/eth0/ip6/fe80::1/tcp/1");
        let mut p = Peers::new(id(0), GRACE);
        p.event(at(a, &[v4, v6]), t);
        // A new record of the same addresses, heard on IPv4 first, then on IPv6: no change.
        assert_eq!(p.event(at(a, &[v4]), t), Changes::default());
        assert_eq!(p.addresses(&a).len(), 2);
        assert_eq!(p.event(at(a, &[v4, v6]), t + ms(3)), Changes::default());
        assert_eq!(p.next_deadline(), None);

        // The node restarted on new ports, heard family by family: each family's old address
        // expires once the same family's new one is named.
        let (v4b, v6b) = ("/ip4/10.0.0.1/tcp/2", "/ip6/fd00::1/tcp/2");
        let ch = p.event(at(a, &[v4b]), t + ms(10));
        assert_eq!(ch.discovered, [pair(a, v4b)]);
        assert_eq!(ch.expired, [pair(a, v4)]);
        let ch = p.event(at(a, &[v4b, v6b]), t + ms(12));
        assert_eq!(ch.discovered, [pair(a, v6b)]);
        assert_eq!(ch.expired, [pair(a, v6)]);

        // A family no longer named at all goes when its hold ends, counted from when it left.
        assert_eq!(p.event(at(a, &[v4b]), t + ms(20)), Changes::default());
        assert_eq!(p.event(at(a, &[v4b]), t + ms(900)), Changes::default());
        assert_eq!(
            p.on_timeout(t + ms(20) + FAMILY_HOLD).expired,
            [pair(a, v6b)]
        );
        assert_eq!(p.addresses(&a).len(), 1);
    }

    #[test]
    fn a_port_changed_during_the_outage_expires_at_the_end_of_the_grace() {
        let t = crate::test_clock();
        let (a, b) = (id(1), id(2));
        let mut p = Peers::new(id(0), GRACE);
        p.snapshot(vec![info(a, &[1]), info(b, &[2])], t);
        p.disconnected();
        let ch = p.snapshot(vec![info(a, &[5])], t);
        assert_eq!(ch.discovered, pairs(a, &[5]), "the new port at once");
        assert!(ch.expired.is_empty(), "the old one held");
        // The agent's word that a peer is gone is believed at once, even during the grace.
        let ch = p.event(ev(EventKind::Expired, b, &[2]), t);
        assert_eq!(ch.expired, pairs(b, &[2]));
        let ch = p.on_timeout(t + GRACE);
        assert_eq!(ch.expired, pairs(a, &[1]));
        assert_eq!(p.iter().count(), 1);
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
        let ch = p.snapshot(vec![], t + Duration::from_secs(6));
        assert_eq!(ch, Changes::default());
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
        p.event(
            PeerEvent {
                event: EventKind::Updated,
                peer: many,
            },
            t,
        );
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
