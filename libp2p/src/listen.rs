//! The swarm's listen addresses and when to register them again. Pure, no I/O, the clock passed
//! in.
//!
//! A swarm listening on `0.0.0.0` and `::` reports one address per interface IP, one by one, as
//! it finds them; an interface that comes or goes does the same. Each change starts or extends a
//! burst; the burst is registered once it has been quiet for a moment (and at the latest a bound
//! after it began), with one freshly signed record.

use exo_discovery::record::{self, SignError, MAX_ADDRS};
use libp2p_identity::Keypair;
use multiaddr::{Multiaddr, Protocol};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// The listen addresses, and the burst of changes not yet registered.
pub(crate) struct Listen {
    addrs: Vec<Multiaddr>,
    /// When the pending burst began and when it last changed.
    burst: Option<(Instant, Instant)>,
    quiet: Duration,
    longest: Duration,
}

impl Listen {
    /// No addresses. A burst is registered `quiet` after its last change, and at the latest
    /// `longest` after its first.
    pub(crate) fn new(quiet: Duration, longest: Duration) -> Listen {
        Listen {
            addrs: Vec::new(),
            burst: None,
            quiet,
            longest,
        }
    }

    /// The swarm listens on `addr` now.
    pub(crate) fn add(&mut self, addr: &Multiaddr, now: Instant) {
        if !self.addrs.contains(addr) {
            self.addrs.push(addr.clone());
            self.changed(now);
        }
    }

    /// The swarm no longer listens on `addr`.
    pub(crate) fn remove(&mut self, addr: &Multiaddr, now: Instant) {
        let before = self.addrs.len();
        self.addrs.retain(|a| a != addr);
        if self.addrs.len() != before {
            self.changed(now);
        }
    }

    fn changed(&mut self, now: Instant) {
        let first = self.burst.map_or(now, |(first, _)| first);
        self.burst = Some((first, now));
    }

    /// The addresses now.
    pub(crate) fn addrs(&self) -> &[Multiaddr] {
        &self.addrs
    }

    /// Whether changes are waiting for their burst to end.
    pub(crate) fn pending(&self) -> bool {
        self.burst.is_some()
    }

    /// When the pending burst ends.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.burst
            .map(|(first, last)| (last + self.quiet).min(first + self.longest))
    }

    /// Whether a burst ended by `now` (it is then no longer pending): time to register.
    pub(crate) fn settle(&mut self, now: Instant) -> bool {
        match self.next_deadline() {
            Some(at) if at <= now => {
                self.burst = None;
                true
            }
            _ => false,
        }
    }
}

/// The next `seq`: this host's clock in microseconds, or one more than the last if the clock
/// went back (a record with a lower or equal `seq` would be taken for a replay).
pub(crate) fn next_seq(last: u64, clock_micros: u64) -> u64 {
    clock_micros.max(last.saturating_add(1))
}

/// A signed record of `addrs`, and the addresses it carries. When the swarm's addresses do not
/// fit in one record (many interfaces), loopback ones are left out, then the IPs of each family
/// are folded into the unspecified address (`/ip4/0.0.0.0/tcp/P`: the receiving agents fill in
/// the IPs they hear this host use on each link), and as a last resort the list is cut.
pub(crate) fn signed_record(
    key: &Keypair,
    namespace: &str,
    seq: u64,
    addrs: &[Multiaddr],
) -> Result<(Vec<u8>, Vec<Multiaddr>), SignError> {
    match record::sign(key, namespace, seq, addrs) {
        Ok(signed) => return Ok((signed, addrs.to_vec())),
        Err(SignError::TooLarge) => {}
        Err(e) => return Err(e),
    }
    let mut folded = fold(addrs);
    folded.truncate(MAX_ADDRS);
    loop {
        match record::sign(key, namespace, seq, &folded) {
            Ok(signed) => return Ok((signed, folded)),
            Err(SignError::TooLarge) if folded.len() > 1 => {
                folded.pop();
            }
            Err(e) => return Err(e),
        }
    }
}

/// `addrs` without loopback, each IP replaced by its family's unspecified address, duplicates
/// dropped (order kept).
fn fold(addrs: &[Multiaddr]) -> Vec<Multiaddr> {
    let mut out: Vec<Multiaddr> = Vec::new();
    for a in addrs {
        let mut rest = a.iter();
        let head = match rest.next() {
            Some(Protocol::Ip4(ip)) if ip.is_loopback() => continue,
            Some(Protocol::Ip6(ip)) if ip.is_loopback() => continue,
            Some(Protocol::Ip4(_)) => Protocol::Ip4(Ipv4Addr::UNSPECIFIED),
            Some(Protocol::Ip6(_)) => Protocol::Ip6(Ipv6Addr::UNSPECIFIED),
            _ => {
                if !out.contains(a) {
                    out.push(a.clone());
                }
                continue;
            }
        };
        let folded: Multiaddr = std::iter::once(head).chain(rest).collect();
        if !out.contains(&folded) {
            out.push(folded);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUIET: Duration = Duration::from_millis(150);
    const LONGEST: Duration = Duration::from_secs(1);

    fn ma(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_burst_of_changes_is_registered_once_when_it_has_been_quiet() {
        let t = crate::test_clock();
        let ms = Duration::from_millis;
        let mut l = Listen::new(QUIET, LONGEST);
        assert_eq!(l.next_deadline(), None);
        l.add(&ma("/ip4/10.0.0.1/tcp/4001"), t);
        l.add(&ma("/ip4/127.0.0.1/tcp/4001"), t + ms(2));
        l.add(&ma("/ip6/fd00::1/tcp/4002"), t + ms(100));
        assert!(l.pending());
        assert_eq!(l.next_deadline(), Some(t + ms(250)));
        assert!(!l.settle(t + ms(249)));
        assert!(l.settle(t + ms(250)));
        assert!(!l.settle(t + ms(400)), "one registration per burst");
        assert_eq!(l.addrs().len(), 3);

        // Nothing that changes nothing starts a burst.
        l.add(&ma("/ip4/10.0.0.1/tcp/4001"), t + ms(500));
        l.remove(&ma("/ip4/10.9.9.9/tcp/1"), t + ms(500));
        assert!(!l.pending());

        // A removal starts one.
        l.remove(&ma("/ip4/127.0.0.1/tcp/4001"), t + ms(600));
        assert_eq!(l.next_deadline(), Some(t + ms(750)));
        assert!(l.settle(t + ms(750)));
        assert_eq!(
            l.addrs(),
            [ma("/ip4/10.0.0.1/tcp/4001"), ma("/ip6/fd00::1/tcp/4002")]
        );
    }

    #[test]
    fn a_burst_that_never_goes_quiet_is_registered_after_the_longest_wait() {
        let t = crate::test_clock();
        let mut l = Listen::new(QUIET, LONGEST);
        // A change every 100 ms, for a second.
        for i in 0..=10u32 {
            let addr = ma(&format!("/ip4/10.0.0.{}/tcp/4001", i + 1));
            l.add(&addr, t + Duration::from_millis(100) * i);
        }
        assert_eq!(l.next_deadline(), Some(t + LONGEST));
        assert!(l.settle(t + LONGEST));
    }

    #[test]
    fn seq_follows_the_clock_and_never_goes_back() {
        assert_eq!(next_seq(0, 1_000), 1_000);
        assert_eq!(next_seq(1_000, 1_000), 1_001);
        assert_eq!(next_seq(5_000, 1_000), 5_001, "the clock went back");
        assert_eq!(next_seq(u64::MAX, 1), u64::MAX);
    }

    #[test]
    fn addresses_that_fit_are_signed_as_they_are() {
        let key = Keypair::generate_ed25519();
        let addrs = [ma("/ip4/10.0.0.1/tcp/4001"), ma("/ip4/127.0.0.1/tcp/4001")];
        let (signed, used) = signed_record(&key, "exo", 7, &addrs).unwrap();
        assert_eq!(used, addrs);
        let rec = record::verify(&signed, "exo").unwrap();
        assert_eq!(rec.seq, 7);
        assert_eq!(rec.addrs, addrs);
    }

    #[test]
    fn too_many_addresses_are_folded_into_the_unspecified_ones() {
        let key = Keypair::generate_ed25519();
        let mut addrs = vec![ma("/ip4/127.0.0.1/tcp/4001"), ma("/ip6/::1/tcp/4002")];
        for i in 1..=20 {
            addrs.push(ma(&format!("/ip4/10.0.{i}.1/tcp/4001")));
            addrs.push(ma(&format!("/ip6/fd00:{i:x}::1/tcp/4002")));
        }
        addrs.push(ma("/dns4/example.internal/tcp/4003"));
        let (signed, used) = signed_record(&key, "exo", 1, &addrs).unwrap();
        assert_eq!(
            used,
            [
                ma("/ip4/0.0.0.0/tcp/4001"),
                ma("/ip6/::/tcp/4002"),
                ma("/dns4/example.internal/tcp/4003")
            ]
        );
        assert_eq!(record::verify(&signed, "exo").unwrap().addrs, used);

        // Many distinct ports: cut to what fits.
        let ports: Vec<Multiaddr> = (1..=200)
            .map(|p| ma(&format!("/ip6/fd00::1/tcp/{p}/ws")))
            .collect();
        let (signed, used) = signed_record(&key, "exo", 1, &ports).unwrap();
        assert!(!used.is_empty() && used.len() <= MAX_ADDRS);
        assert!(signed.len() <= record::MAX_SIGNED_RECORD);

        // A namespace that cannot be signed is an error, not a loop.
        assert_eq!(
            signed_record(&key, "", 1, &addrs).unwrap_err(),
            SignError::Namespace
        );
    }
}
