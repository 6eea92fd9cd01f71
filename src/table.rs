//! The peer table: verified records merged by seq, per-link liveness, expiry and events. Pure, no I/O;
//! the clock is passed in.
//!
//! A peer is known per link (interface) where its record was heard. A link stays *live* while the
//! peer is heard on it at least once per timeout; a goodbye removes it at once. The peer is visible
//! (handed to the node) while at least one live link yields a dialable address. A record with a
//! higher seq replaces the old one and drops every link learned from the old one (restart on a new
//! port: only the new addresses remain); a lower seq is a replay and is refused.

use crate::proto::{EventKind, PeerEvent, PeerInfo, Source, Verification};
use crate::record::{Reject, VerifiedRecord};
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Most peers the table holds; records of further peers are ignored until some expire.
pub const MAX_PEERS: usize = 4096;

#[derive(Clone, Debug)]
struct Link {
    addrs: Vec<Multiaddr>,
    last_heard: Instant,
    live: bool,
}

#[derive(Clone, Debug)]
struct Entry {
    peer: PeerId,
    /// Highest seq accepted; `None` for an unsigned peer.
    seq: Option<u64>,
    source: Source,
    links: BTreeMap<String, Link>,
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
}

impl PeerTable {
    /// An empty table expiring links not heard for `timeout`.
    pub fn new(timeout: Duration) -> Self {
        PeerTable {
            peers: HashMap::new(),
            timeout,
            counters: Counters::default(),
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

    /// A verified record heard on `iface`, with the addresses dialable over that link.
    /// Returns the event for the node, if any. An older seq is refused as a replay.
    pub fn observe(
        &mut self,
        record: VerifiedRecord,
        iface: &str,
        addrs: Vec<Multiaddr>,
        now: Instant,
    ) -> Result<Option<PeerEvent>, Reject> {
        let peer = record.peer_id;
        if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_PEERS {
            return Ok(None);
        }
        let link = Link {
            addrs,
            last_heard: now,
            live: true,
        };
        match self.peers.get_mut(&peer) {
            Some(Entry { seq: Some(old), .. }) if record.seq < *old => {
                self.count_reject(Reject::Replay);
                return Err(Reject::Replay);
            }
            Some(e) if e.seq == Some(record.seq) => {
                e.links.insert(iface.to_owned(), link);
            }
            Some(e) => {
                // Newer than what we had (or the first signed record of a peer known unsigned).
                e.seq = Some(record.seq);
                e.source = Source::Mdns;
                e.links.clear();
                e.links.insert(iface.to_owned(), link);
            }
            None => {
                let mut links = BTreeMap::new();
                links.insert(iface.to_owned(), link);
                self.peers.insert(
                    peer,
                    Entry {
                        peer,
                        seq: Some(record.seq),
                        source: Source::Mdns,
                        links,
                        sent: None,
                    },
                );
            }
        }
        self.counters.accepted += 1;
        Ok(self.settle(&peer))
    }

    /// An unsigned peer (e.g. a stock libp2p-mdns node) heard on `iface` with these dialable
    /// addresses. A peer known by a signed record is never overridden by an unsigned claim.
    pub fn observe_unsigned(
        &mut self,
        peer: PeerId,
        source: Source,
        iface: &str,
        addrs: Vec<Multiaddr>,
        now: Instant,
    ) -> Option<PeerEvent> {
        if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_PEERS {
            return None;
        }
        let e = self.peers.entry(peer).or_insert_with(|| Entry {
            peer,
            seq: None,
            source,
            links: BTreeMap::new(),
            sent: None,
        });
        if e.seq.is_some() {
            return None;
        }
        e.links.insert(
            iface.to_owned(),
            Link {
                addrs,
                last_heard: now,
                live: true,
            },
        );
        self.settle(&peer)
    }

    /// The peer's instance was heard on `iface` (any packet naming it): keeps that link live,
    /// and revives it if it had timed out.
    pub fn heard(&mut self, peer: &PeerId, iface: &str, now: Instant) -> Option<PeerEvent> {
        let link = self.peers.get_mut(peer)?.links.get_mut(iface)?;
        link.last_heard = now;
        if link.live {
            return None;
        }
        link.live = true;
        self.settle(peer)
    }

    /// The peer said goodbye on `iface` (or the link went away): drop that link now.
    pub fn remove_link(&mut self, peer: &PeerId, iface: &str) -> Option<PeerEvent> {
        self.peers.get_mut(peer)?.links.remove(iface)?;
        self.settle(peer)
    }

    /// Drops every peer's link on `iface` (the interface vanished or stopped carrying mDNS).
    pub fn remove_iface(&mut self, iface: &str) -> Vec<PeerEvent> {
        let peers: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, e)| e.links.contains_key(iface))
            .map(|(p, _)| *p)
            .collect();
        peers
            .iter()
            .filter_map(|p| self.remove_link(p, iface))
            .collect()
    }

    /// Marks links not heard within the timeout as dead; returns the resulting events.
    pub fn expire(&mut self, now: Instant) -> Vec<PeerEvent> {
        let mut touched = Vec::new();
        for (peer, e) in self.peers.iter_mut() {
            for link in e.links.values_mut() {
                if link.live && now.saturating_duration_since(link.last_heard) >= self.timeout {
                    link.live = false;
                    touched.push(*peer);
                }
            }
        }
        touched.dedup();
        touched.iter().filter_map(|p| self.settle(p)).collect()
    }

    /// When [`PeerTable::expire`] next has work, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.peers
            .values()
            .flat_map(|e| e.links.values())
            .filter(|l| l.live)
            .map(|l| l.last_heard + self.timeout)
            .min()
    }

    /// Every visible peer.
    pub fn snapshot(&self) -> Vec<PeerInfo> {
        let mut v: Vec<PeerInfo> = self.peers.values().filter_map(|e| e.sent.clone()).collect();
        v.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        v
    }

    /// Highest seq accepted from `peer`, kept after it expires so that replays stay refused.
    pub fn seq_of(&self, peer: &PeerId) -> Option<u64> {
        self.peers.get(peer).and_then(|e| e.seq)
    }

    /// Recomputes what the node should know of `peer` and says what changed.
    fn settle(&mut self, peer: &PeerId) -> Option<PeerEvent> {
        let e = self.peers.get_mut(peer)?;
        let cur = info(e);
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

fn info(e: &Entry) -> PeerInfo {
    let mut addrs: Vec<String> = Vec::new();
    let mut interfaces = Vec::new();
    for (name, link) in e.links.iter().filter(|(_, l)| l.live) {
        if link.addrs.is_empty() {
            continue;
        }
        interfaces.push(name.clone());
        for a in &link.addrs {
            let s = a.to_string();
            if !addrs.contains(&s) {
                addrs.push(s);
            }
        }
    }
    PeerInfo {
        peer_id: e.peer.to_base58(),
        addrs,
        interfaces,
        source: e.source,
        verified: if e.seq.is_some() {
            vec![Verification::Signature]
        } else {
            Vec::new()
        },
        seq: e.seq.unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record;
    use libp2p_identity::Keypair;

    const T: Duration = Duration::from_secs(60);

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
        let now = Instant::now();
        let mut t = PeerTable::new(T);
        let e = t
            .observe(rec(&k, 1, 5), "eth0", dial(&k, "10.0.0.2", 5), now)
            .unwrap()
            .unwrap();
        assert_eq!(e.event, EventKind::Discovered);
        assert_eq!(e.peer.interfaces, vec!["eth0"]);
        // Same record again on the same link: nothing new.
        assert_eq!(
            t.observe(rec(&k, 1, 5), "eth0", dial(&k, "10.0.0.2", 5), now),
            Ok(None)
        );
        let e = t
            .observe(rec(&k, 1, 5), "eth1", dial(&k, "10.1.0.2", 5), now)
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
        let now = Instant::now();
        let mut t = PeerTable::new(T);
        t.observe(rec(&k, 1, 5), "eth0", dial(&k, "10.0.0.2", 5), now)
            .unwrap();
        t.observe(rec(&k, 1, 5), "eth1", dial(&k, "10.1.0.2", 5), now)
            .unwrap();
        let e = t
            .observe(rec(&k, 2, 6), "eth0", dial(&k, "10.0.0.2", 6), now)
            .unwrap()
            .unwrap();
        assert_eq!(e.event, EventKind::Updated);
        assert_eq!(e.peer.addrs, vec![dial(&k, "10.0.0.2", 6)[0].to_string()]);
        assert_eq!(e.peer.seq, 2);
    }

    #[test]
    fn older_seq_is_a_counted_replay() {
        let k = Keypair::generate_ed25519();
        let now = Instant::now();
        let mut t = PeerTable::new(T);
        t.observe(rec(&k, 5, 5), "eth0", dial(&k, "10.0.0.2", 5), now)
            .unwrap();
        assert_eq!(
            t.observe(rec(&k, 4, 9), "eth0", dial(&k, "10.0.0.2", 9), now),
            Err(Reject::Replay)
        );
        assert_eq!(t.counters().rejected.get(&Reject::Replay), Some(&1));
        assert_eq!(t.snapshot()[0].seq, 5);
        // Even after the peer expired, the seq is remembered.
        t.remove_link(&k.public().to_peer_id(), "eth0");
        assert!(t.snapshot().is_empty());
        assert_eq!(
            t.observe(rec(&k, 4, 9), "eth0", dial(&k, "10.0.0.2", 9), now),
            Err(Reject::Replay)
        );
    }

    #[test]
    fn goodbye_expires_and_timeout_expires_and_hearing_revives() {
        let k = Keypair::generate_ed25519();
        let p = k.public().to_peer_id();
        let t0 = Instant::now();
        let mut t = PeerTable::new(T);
        t.observe(rec(&k, 1, 5), "eth0", dial(&k, "10.0.0.2", 5), t0)
            .unwrap();
        assert_eq!(t.next_deadline(), Some(t0 + T));
        assert!(t.expire(t0 + T - Duration::from_secs(1)).is_empty());
        assert!(t.heard(&p, "eth0", t0 + Duration::from_secs(30)).is_none());
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_secs(30) + T));
        let ev = t.expire(t0 + Duration::from_secs(90));
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].event, EventKind::Expired);
        assert_eq!(
            ev[0].peer.addrs,
            vec![dial(&k, "10.0.0.2", 5)[0].to_string()]
        );
        assert_eq!(t.next_deadline(), None);
        let ev = t.heard(&p, "eth0", t0 + Duration::from_secs(100)).unwrap();
        assert_eq!(ev.event, EventKind::Discovered);
        let ev = t.remove_link(&p, "eth0").unwrap();
        assert_eq!(ev.event, EventKind::Expired);
        assert!(t.heard(&p, "eth0", t0).is_none(), "a goodbye is final");
    }

    #[test]
    fn a_link_without_dialable_addresses_does_not_make_a_peer_visible() {
        let k = Keypair::generate_ed25519();
        let mut t = PeerTable::new(T);
        assert_eq!(
            t.observe(rec(&k, 1, 5), "eth0", vec![], Instant::now()),
            Ok(None)
        );
        assert!(t.snapshot().is_empty());
    }

    #[test]
    fn unsigned_peers_are_reported_as_such_and_never_override_signed_ones() {
        let k = Keypair::generate_ed25519();
        let p = k.public().to_peer_id();
        let now = Instant::now();
        let mut t = PeerTable::new(T);
        let e = t
            .observe_unsigned(p, Source::Libp2pMdns, "eth0", dial(&k, "10.0.0.9", 9), now)
            .unwrap();
        assert_eq!(e.event, EventKind::Discovered);
        assert_eq!(e.peer.source, Source::Libp2pMdns);
        assert!(e.peer.verified.is_empty());
        assert_eq!(t.seq_of(&p), None);
        // The signed record takes over, and unsigned claims are ignored from then on.
        let e = t
            .observe(rec(&k, 3, 5), "eth0", dial(&k, "10.0.0.2", 5), now)
            .unwrap()
            .unwrap();
        assert_eq!(e.event, EventKind::Updated);
        assert_eq!(e.peer.source, Source::Mdns);
        assert_eq!(e.peer.verified, vec![Verification::Signature]);
        assert!(t
            .observe_unsigned(p, Source::Libp2pMdns, "eth0", dial(&k, "10.6.6.6", 6), now)
            .is_none());
        assert_eq!(
            t.snapshot()[0].addrs,
            vec![dial(&k, "10.0.0.2", 5)[0].to_string()]
        );
    }

    #[test]
    fn losing_one_of_two_links_is_an_update_and_removing_the_iface_expires() {
        let k = Keypair::generate_ed25519();
        let p = k.public().to_peer_id();
        let now = Instant::now();
        let mut t = PeerTable::new(T);
        t.observe(rec(&k, 1, 5), "eth0", dial(&k, "10.0.0.2", 5), now)
            .unwrap();
        t.observe(rec(&k, 1, 5), "eth1", dial(&k, "10.1.0.2", 5), now)
            .unwrap();
        let e = t.remove_link(&p, "eth1").unwrap();
        assert_eq!(e.event, EventKind::Updated);
        assert_eq!(e.peer.interfaces, vec!["eth0"]);
        let ev = t.remove_iface("eth0");
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].event, EventKind::Expired);
    }
}
