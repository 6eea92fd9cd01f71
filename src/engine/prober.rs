//! Reachability bookkeeping: which addresses answered a probe (a TCP connect, run by the shell),
//! which to probe next, and when. Pure: the clock is passed in.
//!
//! Addresses wait in a queue ordered by when they are due (first come, first served among equals).
//! At most a few probes run per peer, per destination IP and in all; an address that does not
//! answer is retried with a doubling backoff. An address due while its IP is busy waits aside
//! (parked) until a probe of that IP ends, so one host announcing thousands of records makes
//! its own addresses wait, never another host's, and is never scanned again and again. Every
//! address the agent hands over ends in `/p2p/<peer>`, so the address itself says whose it is.
//!
//! A connect says only that something listens at an IP and port, not whose it is: a destination
//! probed for one peer, for whatever reason (reachability, a silence check, a goodbye, an older
//! record's test: [`Dests`]), is not probed for another within [`DEST_INTERVAL`]. Another peer's
//! address there shares the answer (it is reachable at once if the destination answered) or
//! waits until then. So records minted by the thousand, all naming one destination (a host on
//! the link whose source address was forged), cost it what one peer would: about a connection a
//! minute, a few more while forged goodbyes of them keep coming. A destination that refused once is
//! free for another peer at once, and after more refusals in a row sooner than a minute
//! ([`REFUSED_FIRST`], doubling up to [`DEST_INTERVAL`]): a node that left and comes back at once
//! on the same port with a new key is probed at once, while a closed port named by minted records
//! still costs about one connection a minute once its refusals add up.

use crate::wire::addrs::ip_of;
use libp2p_identity::PeerId;
use multiaddr::{Multiaddr, Protocol};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use super::stamp::Stamp;
use std::time::{Duration, Instant};

/// First retry delay of an address that did not answer; doubles up to [`MAX_RETRY`].
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest retry delay of an address that does not answer.
pub const MAX_RETRY: Duration = Duration::from_secs(60);
/// Probes running at once to one IP.
pub const MAX_PER_IP: usize = 2;
/// A destination (IP and port) probed for one peer is probed for another at most this often.
pub const DEST_INTERVAL: Duration = Duration::from_secs(60);
/// After a destination's first refusal it is free for another peer at once; after a second in a
/// row, this soon; each further refusal in a row doubles the wait, up to [`DEST_INTERVAL`].
pub const REFUSED_FIRST: Duration = Duration::from_secs(2);
/// An address whose destination is being probed for another peer is looked at again this soon:
/// that probe's answer stands for it (many peers of one host may share its node's port).
pub const IN_FLIGHT_RECHECK: Duration = Duration::from_millis(250);
/// Destinations remembered for that rule before the old ones are forgotten.
pub const MAX_DESTS: usize = 4096;

/// What is known of an address's reachability: one word, as most addresses followed answered
/// (a peer's every address answered stays followed while the peer is held).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Reach {
    /// Answered a probe.
    Ok,
    /// Not yet answered.
    Pending(Box<Pending>),
}

/// An address not yet answered: queued under `key` (when due, arrival order), or in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pending {
    key: (Instant, u64),
    backoff: Duration,
    in_flight: bool,
    /// Due, but waiting aside for its IP (not in the queue).
    parked: bool,
}

const _: () = assert!(std::mem::size_of::<Reach>() == std::mem::size_of::<usize>());

impl Reach {
    fn pending(key: (Instant, u64), backoff: Duration) -> Reach {
        Reach::Pending(Box::new(Pending {
            key,
            backoff,
            in_flight: false,
            parked: false,
        }))
    }
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Prober {
    /// By the address's fingerprint (keyed by `keys`: an address's bytes are kept where it is
    /// used, not here again).
    reach: super::keyed::ByFingerprint<Reach>,
    keys: super::keyed::Keys,
    queue: BTreeMap<(Instant, u64), Multiaddr>,
    next_key: u64,
    in_flight: usize,
    /// Probes in flight per peer and per IP: a few (at most as many as are in flight), looked
    /// at one by one (no hashing an 80-byte peer ID for each due address).
    per_peer: InFlight<PeerId>,
    per_ip: InFlight<IpAddr>,
    parked: HashMap<IpAddr, VecDeque<Multiaddr>>,
    /// Addresses found reachable by another peer's probe of their destination, not yet settled.
    shared: Vec<Multiaddr>,
}

/// An address [`Prober::due`] takes, as its scan read it.
struct Pick {
    key: (Instant, u64),
    dest: Option<(IpAddr, u16)>,
    ip: IpAddr,
    dest_print: Option<u64>,
    peer_print: u64,
}

/// How many probes are in flight per key (see [`Prober::per_peer`]); no key with none.
#[derive(Debug)]
struct InFlight<K>(Vec<(K, usize)>);

impl<K> Default for InFlight<K> {
    fn default() -> Self {
        InFlight(Vec::new())
    }
}

impl<K: PartialEq> InFlight<K> {
    fn get(&self, k: &K) -> usize {
        self.0.iter().find(|(x, _)| x == k).map_or(0, |(_, n)| *n)
    }
    fn add(&mut self, k: K) {
        match self.0.iter_mut().find(|(x, _)| *x == k) {
            Some((_, n)) => *n += 1,
            None => self.0.push((k, 1)),
        }
    }
    fn sub(&mut self, k: &K) {
        if let Some(i) = self.0.iter().position(|(x, _)| x == k) {
            self.0[i].1 -= 1;
            if self.0[i].1 == 0 {
                self.0.swap_remove(i);
            }
        }
    }
}

/// A destination's last probe.
#[derive(Clone, Copy, Debug)]
struct Dest {
    at: Stamp,
    /// The peer it was for, as a fingerprint (a peer ID is ten times larger).
    peer: u64,
    ok: Option<bool>,
    /// Refusals in a row at this destination, whichever peer they were for.
    refused: u32,
}

impl Dest {
    /// How long after its last probe the destination stays taken for other peers.
    fn interval(&self) -> Duration {
        match self.ok {
            // One refusal frees it at once (a node that left); each further one in a row
            // takes it for longer.
            Some(false) if self.refused <= 1 => Duration::ZERO,
            Some(false) => REFUSED_FIRST
                .saturating_mul(1 << self.refused.saturating_sub(2).min(6))
                .min(DEST_INTERVAL),
            _ => DEST_INTERVAL,
        }
    }
}

/// Every probe's destination (IP and port) lately, whatever it was for (reachability, a silence
/// check, a goodbye, an older record's test): when, for which peer, and whether it answered. A
/// probe of a destination for a peer other than the last one's, within [`DEST_INTERVAL`], is not
/// made: the last answer stands for it.
#[derive(Debug, Default)]
pub struct Dests {
    /// By the destination's fingerprint (keyed by `keys`, as the peers' are).
    map: super::keyed::ByFingerprint<Dest>,
    /// Keys the destinations' and peers' fingerprints (random per table: nobody can make two
    /// destinations or peer IDs that share one here).
    keys: super::keyed::Keys,
}

/// What the queue's scan reads of an address, read from it once: the peer its `/p2p/` names and
/// the IP it is at (an address without both is never probed), its TCP port, and the
/// fingerprints [`Dests`] files the peer and the destination by.
struct Target {
    peer: PeerId,
    ip: IpAddr,
    port: Option<u16>,
    peer_print: u64,
    dest_print: Option<u64>,
}

impl Dests {
    /// `a` as the queue's scan reads it (`None`: it names no peer or no IP).
    fn target(&self, a: &Multiaddr) -> Option<Target> {
        let (mut peer, mut port) = (None, None);
        for p in a.iter() {
            match p {
                Protocol::Tcp(n) if port.is_none() => port = Some(n),
                Protocol::P2p(id) if peer.is_none() => peer = Some(id),
                _ => {}
            }
        }
        let (peer, ip) = (peer?, ip_of(a)?);
        Some(Target {
            peer_print: self.keys.of(&peer),
            dest_print: port.map(|port| self.keys.of(&(ip, port))),
            peer,
            ip,
            port,
        })
    }

    /// A probe of `a` starts now (for the peer its `/p2p/` names).
    pub fn probed(&mut self, a: &Multiaddr, now: Instant) {
        let (dest, peer) = (self.dest(a), self.owner(a));
        self.probed_at(dest, peer, now);
    }

    /// A probe of a destination (by fingerprint) starts now, for a peer (by fingerprint).
    fn probed_at(&mut self, dest: Option<u64>, peer: Option<u64>, now: Instant) {
        if self.map.len() >= MAX_DESTS {
            let now = Stamp::of(now);
            self.map.retain(|_, d| now < d.at + DEST_INTERVAL);
        }
        if let (Some(d), Some(peer)) = (dest, peer) {
            let refused = self.map.get(&d).map_or(0, |old| old.refused);
            self.map.insert(
                d,
                Dest {
                    at: Stamp::of(now),
                    peer,
                    ok: None,
                    refused,
                },
            );
        }
    }

    /// A probe of `a` ended.
    pub fn result(&mut self, a: &Multiaddr, ok: bool) {
        let peer = self.owner(a);
        if let (Some(d), Some(peer)) = (self.dest(a).and_then(|d| self.map.get_mut(&d)), peer) {
            if d.peer == peer {
                d.ok = Some(ok);
                d.refused = if ok { 0 } else { d.refused.saturating_add(1) };
            }
        }
    }

    /// If `a`'s destination was probed for another peer lately (within [`DEST_INTERVAL`], or less
    /// after a refusal: [`REFUSED_FIRST`]): what came of
    /// it (`None` inside: not back yet). `None`: `a` may be probed.
    pub fn lately(&self, a: &Multiaddr, now: Instant) -> Option<Option<bool>> {
        let peer = self.owner(a)?;
        self.lately_at(self.dest(a)?, peer, now)
    }

    /// [`Dests::lately`], by the fingerprints of the destination and the peer.
    fn lately_at(&self, dest: u64, peer: u64, now: Instant) -> Option<Option<bool>> {
        let d = self.map.get(&dest)?;
        (d.peer != peer && Stamp::of(now) < d.at + d.interval()).then_some(d.ok)
    }

    /// The fingerprint of `a`'s destination.
    fn dest(&self, a: &Multiaddr) -> Option<u64> {
        dest_of(a).map(|d| self.keys.of(&d))
    }

    /// The fingerprint of the peer `a` names.
    fn owner(&self, a: &Multiaddr) -> Option<u64> {
        owner(a).map(|peer| self.keys.of(&peer))
    }

    /// When `a`'s destination may be probed for another peer again.
    fn free_at(&self, dest: u64) -> Option<Instant> {
        self.map
            .get(&dest)
            .map(|d| (d.at + d.interval()).instant())
    }
}

/// The IP and TCP port an address is at.
fn dest_of(a: &Multiaddr) -> Option<(IpAddr, u16)> {
    let port = a.iter().find_map(|p| match p {
        Protocol::Tcp(port) => Some(port),
        _ => None,
    })?;
    Some((ip_of(a)?, port))
}

/// Whether a TCP connect can check this address.
pub fn probeable(a: &Multiaddr) -> bool {
    a.iter().any(|p| matches!(p, Protocol::Tcp(_)))
}

/// The peer an address names (its `/p2p/` suffix).
pub fn owner(a: &Multiaddr) -> Option<PeerId> {
    a.iter().find_map(|p| match p {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

impl Prober {
    fn enqueue(&mut self, a: &Multiaddr, due: Instant) -> (Instant, u64) {
        self.next_key += 1;
        let key = (due, self.next_key);
        self.queue.insert(key, a.clone());
        key
    }

    /// Starts following these addresses (those not known yet are due now).
    pub fn track(&mut self, addrs: &[Multiaddr], now: Instant) {
        for a in addrs.iter().filter(|a| probeable(a)) {
            if !self.reach.contains_key(&self.keys.of(a)) {
                let key = self.enqueue(a, now);
                self.reach.insert(self.keys.of(&a), Reach::pending(key, FIRST_RETRY));
            }
        }
    }

    /// Whether `a` answered a probe.
    pub fn is_ok(&self, a: &Multiaddr) -> bool {
        self.reach.get(&self.keys.of(a)) == Some(&Reach::Ok)
    }

    /// Addresses to probe now, due and worth it (`wanted`: on a live link), at most `per_peer` in
    /// flight per peer and `total` in all. They are marked in flight.
    pub fn due(
        &mut self,
        now: Instant,
        total: usize,
        per_peer: usize,
        dests: &mut Dests,
        wanted: impl Fn(&PeerId, &Multiaddr) -> bool,
    ) -> Vec<(PeerId, Multiaddr)> {
        // What is taken, and beside it (in the same order) what was read of each: its key in
        // the queue, its destination, IP and the fingerprints of its destination and peer. Both
        // hold at most what `total` leaves room for, and are made once, at that size.
        let room = total.saturating_sub(self.in_flight);
        let mut out: Vec<(PeerId, Multiaddr)> = Vec::new();
        let mut picks: Vec<Pick> = Vec::new();
        let mut busy: Vec<((Instant, u64), IpAddr)> = Vec::new();
        let mut shared: Vec<(Instant, u64)> = Vec::new();
        let mut deferred: Vec<((Instant, u64), Instant)> = Vec::new();
        for (key, a) in self.queue.range(..=(now, u64::MAX)) {
            if picks.len() >= room {
                break;
            }
            let Some(t) = dests.target(a) else {
                continue;
            };
            let (peer, ip) = (t.peer, t.ip);
            let at_ip = self.per_ip.get(&ip) + picks.iter().filter(|p| p.ip == ip).count();
            if at_ip >= MAX_PER_IP {
                busy.push((*key, ip));
                continue;
            }
            let mine = self.per_peer.get(&peer)
                + picks.iter().filter(|p| p.peer_print == t.peer_print).count();
            if mine >= per_peer || !wanted(&peer, a) {
                continue;
            }
            let lately = t.dest_print.and_then(|d| dests.lately_at(d, t.peer_print, now));
            if let Some(ok) = lately {
                match (ok, t.dest_print.and_then(|d| dests.free_at(d))) {
                    (Some(true), _) => shared.push(*key),
                    // Another peer's probe there is not back yet: its answer will stand for this
                    // one, so look again soon (not a minute later, when the destination is free).
                    (None, Some(until)) => {
                        deferred.push((*key, until.min(now + IN_FLIGHT_RECHECK)))
                    }
                    (_, Some(until)) => deferred.push((*key, until)),
                    (_, None) => {}
                }
                continue;
            }
            let dest = t.port.map(|port| (ip, port));
            if picks.iter().any(|p| p.dest == dest) {
                continue; // one probe of a destination at a time
            }
            if picks.is_empty() {
                out.reserve_exact(room);
                picks.reserve_exact(room);
            }
            out.push((peer, a.clone()));
            picks.push(Pick {
                key: *key,
                dest,
                ip,
                dest_print: t.dest_print,
                peer_print: t.peer_print,
            });
        }
        for (key, ip) in busy {
            if let Some(a) = self.queue.remove(&key) {
                if let Some(Reach::Pending(p)) = self.reach.get_mut(&self.keys.of(&a)) {
                    p.parked = true;
                }
                self.parked.entry(ip).or_default().push_back(a);
            }
        }
        for key in shared {
            if let Some(a) = self.queue.remove(&key) {
                self.reach.insert(self.keys.of(&a), Reach::Ok);
                self.shared.push(a);
            }
        }
        for (key, until) in deferred {
            if let Some(a) = self.queue.remove(&key) {
                let new = self.enqueue(&a, until);
                if let Some(Reach::Pending(p)) = self.reach.get_mut(&self.keys.of(&a)) {
                    p.key = new;
                }
            }
        }
        for ((peer, a), pick) in out.iter().zip(picks) {
            self.queue.remove(&pick.key);
            dests.probed_at(pick.dest_print, Some(pick.peer_print), now);
            if let Some(Reach::Pending(p)) = self.reach.get_mut(&self.keys.of(a)) {
                p.in_flight = true;
            }
            self.in_flight += 1;
            self.per_peer.add(*peer);
            self.per_ip.add(pick.ip);
        }
        out
    }

    /// A probe of `ip` ended: the next address parked for it goes back in the queue, due now.
    fn unpark(&mut self, ip: IpAddr, now: Instant) {
        self.per_ip.sub(&ip);
        let Some(waiting) = self.parked.get_mut(&ip) else {
            return;
        };
        while let Some(a) = waiting.pop_front() {
            if matches!(self.reach.get(&self.keys.of(&a)), Some(Reach::Pending(p)) if p.parked) {
                let key = self.enqueue(&a, now);
                if let Some(Reach::Pending(p)) = self.reach.get_mut(&self.keys.of(&a)) {
                    p.key = key;
                    p.parked = false;
                }
                break;
            }
        }
        if self.parked.get(&ip).is_some_and(VecDeque::is_empty) {
            self.parked.remove(&ip);
        }
    }

    /// Addresses found reachable since the last call by another peer's probe of their
    /// destination (see the module docs).
    pub fn take_shared(&mut self) -> Vec<Multiaddr> {
        std::mem::take(&mut self.shared)
    }

    /// Probes running.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Stops following `a` (its peer is gone), unless a probe of it is running.
    pub fn forget(&mut self, a: &Multiaddr) {
        match self.reach.get(&self.keys.of(a)) {
            Some(Reach::Pending(p)) if !p.in_flight => {
                self.queue.remove(&p.key);
                self.reach.remove(&self.keys.of(a));
            }
            Some(Reach::Ok) => {
                self.reach.remove(&self.keys.of(a));
            }
            _ => {}
        }
    }

    /// A probe of `a` answered (`ok`) or not. Returns whether `a` has just become reachable.
    pub fn result(&mut self, a: &Multiaddr, ok: bool, now: Instant) -> bool {
        let Some(Reach::Pending(p)) = self.reach.get(&self.keys.of(a)) else {
            return false;
        };
        let Pending {
            key,
            backoff,
            in_flight,
            parked,
        } = **p;
        if parked {
            return false; // not probed: a stale report
        }
        if in_flight {
            self.in_flight = self.in_flight.saturating_sub(1);
            if let Some(ip) = ip_of(a) {
                self.unpark(ip, now);
            }
            if let Some(peer) = owner(a) {
                self.per_peer.sub(&peer);
            }
        } else {
            self.queue.remove(&key);
        }
        if ok {
            self.reach.insert(self.keys.of(&a), Reach::Ok);
            return true;
        }
        let key = self.enqueue(a, now + backoff);
        self.reach.insert(
            self.keys.of(a),
            Reach::pending(key, (backoff * 2).min(MAX_RETRY)),
        );
        false
    }

    /// Whether an address is due by `now` (held back by the limits, or queued due now), or an
    /// answer found by another peer's probe waits to be settled: work with no time of its own.
    pub fn has_work(&self, now: Instant) -> bool {
        !self.shared.is_empty() || self.queue.first_key_value().is_some_and(|((t, _), _)| *t <= now)
    }

    /// The earliest time after `now` an address becomes due. (Addresses due now but held back by
    /// the limits wait for a running probe to finish, which brings the caller back.)
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        self.queue
            .range((now + Duration::from_nanos(1), 0)..)
            .next()
            .map(|((t, _), _)| *t)
    }

    /// Addresses followed.
    pub fn len(&self) -> usize {
        self.reach.len()
    }

    #[cfg(any(test, feature = "internals"))]
    /// No address followed.
    pub fn is_empty(&self) -> bool {
        self.reach.is_empty()
    }

    /// The fingerprint `a` is followed under (see [`Prober::retain`]).
    pub fn fingerprint(&self, a: &Multiaddr) -> u64 {
        self.keys.of(a)
    }

    /// Forgets the addresses `used` says no longer matter, by their fingerprints (probes in
    /// flight are kept until they end).
    pub fn retain(&mut self, used: impl Fn(u64) -> bool) {
        let queue = &mut self.queue;
        self.reach.retain(|a, r| match r {
            Reach::Pending(p) if p.in_flight => true,
            Reach::Pending(p) => {
                let keep = used(*a);
                if !keep {
                    queue.remove(&p.key);
                }
                keep
            }
            Reach::Ok => used(*a),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An address of `peer` at an IP of its own (derived from its ID).
    fn addr(peer: &PeerId, port: u16) -> Multiaddr {
        let b = peer.to_bytes();
        let n = b[b.len() - 1];
        at(&format!("10.0.1.{n}"), peer, port)
    }

    fn at(ip: &str, peer: &PeerId, port: u16) -> Multiaddr {
        format!("/ip4/{ip}/tcp/{port}/p2p/{peer}").parse().unwrap()
    }

    #[test]
    fn one_busy_ip_makes_only_its_own_addresses_wait() {
        let t0 = crate::test_clock();
        let mut pr = Prober::default();
        let mut dests = Dests::default();
        // One host announces many peers at one IP; then a real peer at another IP.
        let flood: Vec<Multiaddr> = (0..100)
            .map(|i| at("10.0.0.66", &PeerId::random(), 4000 + i))
            .collect();
        pr.track(&flood, t0);
        let real = at("10.0.0.2", &PeerId::random(), 4001);
        pr.track(std::slice::from_ref(&real), t0);
        let due = pr.due(t0, 8, 2, &mut dests, |_, _| true);
        assert_eq!(due.len(), MAX_PER_IP + 1);
        assert!(due.iter().any(|(_, a)| *a == real), "{due:?}");
        // The rest of the flood waits aside, not in the queue.
        assert_eq!(pr.queue.len(), 0);
        assert!(pr.due(t0, 8, 2, &mut dests, |_, _| true).is_empty());
        // Each probe of the busy IP that ends lets one more of its addresses go.
        pr.result(&due[0].1, false, t0);
        let next = pr.due(t0, 8, 2, &mut dests, |_, _| true);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].1, flood[MAX_PER_IP]);
        // Forgotten addresses leave no trace, parked or not.
        for a in &flood {
            pr.forget(a);
        }
        assert_eq!(
            pr.len(),
            1 + MAX_PER_IP,
            "the real peer's and those in flight"
        );
    }

    #[test]
    fn limits_order_backoff_and_retain() {
        let p = PeerId::random();
        let q = PeerId::random();
        let t0 = crate::test_clock();
        let mut pr = Prober::default();
        let mut dests = Dests::default();
        let a: Vec<Multiaddr> = (1..=3).map(|i| addr(&p, i)).collect();
        pr.track(&a, t0);
        pr.track(&[addr(&q, 9)], t0);
        // Two per peer, in the order they came.
        let due = pr.due(t0, 8, 2, &mut dests, |_, _| true);
        assert_eq!(
            due,
            vec![(p, a[0].clone()), (p, a[1].clone()), (q, addr(&q, 9))]
        );
        assert!(pr.due(t0, 8, 2, &mut dests, |_, _| true).is_empty());
        assert!(pr.result(&a[0], true, t0));
        assert!(pr.is_ok(&a[0]));
        assert!(!pr.result(&a[1], false, t0));
        // The third gets its turn; the failed one waits for its backoff.
        assert_eq!(
            pr.due(t0, 8, 2, &mut dests, |_, _| true),
            vec![(p, a[2].clone())]
        );
        assert_eq!(pr.next_deadline(t0), Some(t0 + FIRST_RETRY));
        assert!(pr
            .due(t0 + FIRST_RETRY / 2, 8, 2, &mut dests, |_, _| true)
            .is_empty());
        assert_eq!(
            pr.due(t0 + FIRST_RETRY, 8, 2, &mut dests, |_, _| true),
            vec![(p, a[1].clone())]
        );
        pr.result(&a[1], false, t0 + FIRST_RETRY);
        assert_eq!(
            pr.next_deadline(t0 + FIRST_RETRY),
            Some(t0 + FIRST_RETRY * 3),
            "doubled"
        );
        // Not wanted (a dead link): skipped, kept.
        assert!(pr
            .due(t0 + FIRST_RETRY * 3, 8, 2, &mut dests, |_, _| false)
            .is_empty());
        // Only in-flight and used addresses survive a retain.
        let used = pr.fingerprint(&a[0]);
        pr.retain(|x| x == used);
        assert_eq!(pr.len(), 3, "a[0] used; a[2] and q's in flight");
        assert_eq!(pr.next_deadline(t0), None);
    }

    #[test]
    fn a_destination_is_probed_for_another_peer_at_most_once_a_minute() {
        let t0 = crate::test_clock();
        let mut pr = Prober::default();
        let mut dests = Dests::default();
        // Minted records by the hundred, all naming one destination that refuses.
        let minted: Vec<Multiaddr> = (0..100)
            .map(|_| at("10.0.0.22", &PeerId::random(), 22))
            .collect();
        pr.track(&minted, t0);
        let mut per_minute = [0; 3];
        let mut t = t0;
        while t < t0 + Duration::from_secs(180) {
            for (_, a) in pr.due(t, 8, 2, &mut dests, |_, _| true) {
                per_minute[(t - t0).as_secs() as usize / 60] += 1;
                dests.result(&a, false);
                pr.result(&a, false, t);
            }
            t += Duration::from_millis(500);
        }
        // The first minute: one peer's own retries (at 0, 1, 3, 7, 15 and 31 s), and one other
        // peer's probe right after the first refusal (a node that left may be back with a new
        // key); then about one a minute, whatever the number of records.
        assert_eq!(per_minute, [7, 1, 1]);
        // Once it answers, another peer's address there is reachable without a connect.
        let mut pr = Prober::default();
        let mut dests = Dests::default();
        let (p, q) = (PeerId::random(), PeerId::random());
        let (a, b) = (at("10.0.0.5", &p, 4001), at("10.0.0.5", &q, 4001));
        pr.track(std::slice::from_ref(&a), t0);
        assert_eq!(
            pr.due(t0, 8, 2, &mut dests, |_, _| true),
            vec![(p, a.clone())]
        );
        dests.result(&a, true);
        assert!(pr.result(&a, true, t0));
        pr.track(std::slice::from_ref(&b), t0);
        assert!(
            pr.due(t0, 8, 2, &mut dests, |_, _| true).is_empty(),
            "not probed again"
        );
        assert_eq!(pr.take_shared(), vec![b.clone()]);
        assert!(pr.is_ok(&b));
        // A peer's own retries follow its backoff, whatever others did.
        let c = at("10.0.0.6", &p, 4001);
        pr.track(std::slice::from_ref(&c), t0);
        assert_eq!(
            pr.due(t0, 8, 2, &mut dests, |_, _| true),
            vec![(p, c.clone())]
        );
        pr.result(&c, false, t0);
        assert_eq!(
            pr.due(t0 + FIRST_RETRY, 8, 2, &mut dests, |_, _| true),
            vec![(p, c)]
        );
    }

    #[test]
    fn a_peer_at_a_destination_being_probed_for_another_takes_its_answer_when_it_comes() {
        let t0 = crate::test_clock();
        let mut pr = Prober::default();
        let mut dests = Dests::default();
        let (p, q) = (PeerId::random(), PeerId::random());
        let (a, b) = (at("10.0.0.5", &p, 4001), at("10.0.0.5", &q, 4001));
        pr.track(&[a.clone(), b.clone()], t0);
        // One probe of the destination at a time.
        assert_eq!(
            pr.due(t0, 8, 2, &mut dests, |_, _| true),
            vec![(p, a.clone())]
        );
        assert!(pr.due(t0, 8, 2, &mut dests, |_, _| true).is_empty());
        // Not back yet at the next look: still waiting, no second probe.
        let t1 = t0 + IN_FLIGHT_RECHECK;
        assert!(pr.due(t1, 8, 2, &mut dests, |_, _| true).is_empty());
        // Back: the next look shares the answer, without a connect, well before a minute.
        dests.result(&a, true);
        assert!(pr.result(&a, true, t1));
        assert!(pr.due(t1 + IN_FLIGHT_RECHECK, 8, 2, &mut dests, |_, _| true).is_empty());
        assert_eq!(pr.take_shared(), vec![b.clone()]);
        assert!(pr.is_ok(&b));
    }

    #[test]
    fn a_new_peer_at_a_destination_that_just_refused_once_is_probed_at_once() {
        // A node leaves (its port refuses the goodbye's confirmation) and comes back at once on
        // the same port with a new key.
        let t0 = crate::test_clock();
        let mut pr = Prober::default();
        let mut dests = Dests::default();
        let (old, new) = (PeerId::random(), PeerId::random());
        let gone = at("10.0.0.5", &old, 4001);
        dests.probed(&gone, t0);
        dests.result(&gone, false);
        let back = at("10.0.0.5", &new, 4001);
        pr.track(std::slice::from_ref(&back), t0);
        assert_eq!(
            pr.due(t0, 8, 2, &mut dests, |_, _| true),
            vec![(new, back.clone())]
        );
        // A second refusal in a row, for yet another peer: that one waits.
        dests.result(&back, false);
        let third = at("10.0.0.5", &PeerId::random(), 4001);
        pr.track(std::slice::from_ref(&third), t0);
        assert!(pr.due(t0, 8, 2, &mut dests, |_, _| true).is_empty());
        assert_eq!(pr.due(t0 + REFUSED_FIRST, 8, 2, &mut dests, |_, _| true).len(), 1);
    }

    #[test]
    fn the_total_limit_holds_across_peers() {
        let t0 = crate::test_clock();
        let mut pr = Prober::default();
        let mut dests = Dests::default();
        for _ in 0..5 {
            pr.track(&[addr(&PeerId::random(), 1)], t0);
        }
        assert_eq!(pr.due(t0, 3, 2, &mut dests, |_, _| true).len(), 3);
        assert!(pr.due(t0, 3, 2, &mut dests, |_, _| true).is_empty());
        assert!(!probeable(&"/ip4/1.2.3.4/udp/5".parse().unwrap()));
    }
}
