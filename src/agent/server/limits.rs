//! The local socket's bounds as plain values (pure: no I/O, the clock passed in): the byte
//! budget that the unfinished requests of all connections share, and the roster of open
//! connections that says which one makes room for a newcomer and when an idle one is closed.
//!
//! A connection holds the first [`OWN_BYTES`] of an unfinished request on its own; every byte of
//! buffer beyond that is taken from one [`Budget`] of [`SHARED_BYTES`] for all connections, as
//! the request grows, and given back when it is decoded or the connection ends. So however many
//! connections hold half-sent requests, together they hold at most
//! `MAX_CONNECTIONS × OWN_BYTES + SHARED_BYTES` (1 MiB + 4 MiB), and a real request (a few KiB at
//! most) always has room.

use crate::wire::frame::grown;
use crate::wire::protocol::MAX_FRAME;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Bytes of an unfinished request a connection holds outside the shared budget: four times the
/// largest real request (a `Register` of a 900-byte record is under 2 KiB even as a JSON line of
/// hex), so the command line and nodes never wait on the budget.
pub const OWN_BYTES: usize = 8 * 1024;

/// Bytes beyond [`OWN_BYTES`] that the unfinished requests of all connections may hold together:
/// four requests of the largest size ([`MAX_FRAME`]) at once. No real request needs any of it;
/// it keeps the protocol's frame cap usable while a few hundred half-sent megabytes cannot
/// accumulate.
pub const SHARED_BYTES: usize = 4 * MAX_FRAME;

/// What a buffer of `capacity` bytes costs the shared budget.
pub fn charge(capacity: usize) -> usize {
    capacity.saturating_sub(OWN_BYTES)
}

/// The buffer of one unfinished request, as the budget sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hold {
    /// Its capacity, in bytes.
    pub capacity: usize,
    /// What it took from the budget.
    pub charged: usize,
}

/// The bytes all connections' unfinished requests may take beyond their own [`OWN_BYTES`].
#[derive(Debug)]
pub struct Budget {
    total: usize,
    used: usize,
}

impl Budget {
    /// A budget of `total` bytes, none used.
    pub fn new(total: usize) -> Budget {
        Budget { total, used: 0 }
    }

    /// Bytes taken now.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Room for the buffer `hold` to hold `needed` bytes of a request of at most `cap`: its new
    /// capacity (doubled where the budget allows, else exactly `needed`), the extra charge
    /// taken. `None` when even `needed` does not fit; then nothing is taken.
    pub fn grow(&mut self, hold: Hold, needed: usize, cap: usize) -> Option<Hold> {
        if needed <= hold.capacity {
            return Some(hold);
        }
        for capacity in [grown(hold.capacity, needed, cap), needed] {
            let charged = charge(capacity).max(hold.charged);
            let extra = charged - hold.charged;
            if extra <= self.total - self.used {
                self.used += extra;
                return Some(Hold { capacity, charged });
            }
        }
        None
    }

    /// Gives back what `hold` took (its request was decoded, or its connection ended).
    pub fn release(&mut self, hold: Hold) {
        self.used = self.used.saturating_sub(hold.charged);
    }
}

/// What to do with a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Serve it: there is room.
    Take,
    /// Serve it in place of this connection, which is to be closed: the one idle longest among
    /// those that neither registered nor subscribed.
    InPlaceOf(u64),
    /// Refuse it: every open connection registered a node or subscribed.
    Refuse,
}

/// One open connection.
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// When it connected or last sent a request.
    active: Instant,
    /// It sent `Register` or `Subscribe`: a node's connection, quiet for as long as it likes.
    settled: bool,
}

/// The open connections (including those still in the handshake), by connection ID. Every
/// operation is a map look-up, but [`Roster::admit`] at the limit, which scans them all (at most
/// the limit, 128).
#[derive(Debug)]
pub struct Roster {
    max: usize,
    open: BTreeMap<u64, Entry>,
}

impl Roster {
    /// No connection yet; at most `max` at once.
    pub fn new(max: usize) -> Roster {
        Roster {
            max,
            open: BTreeMap::new(),
        }
    }

    /// Connections open now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.open.len()
    }

    /// A new connection `id` (never used before) at `now`. Unless refused it is counted from
    /// now, and one it takes the place of is forgotten at once.
    pub fn admit(&mut self, id: u64, now: Instant) -> Admit {
        let verdict = if self.open.len() < self.max {
            Admit::Take
        } else {
            match self
                .open
                .iter()
                .filter(|(_, e)| !e.settled)
                .min_by_key(|(id, e)| (e.active, **id))
            {
                Some((&old, _)) => Admit::InPlaceOf(old),
                None => return Admit::Refuse,
            }
        };
        if let Admit::InPlaceOf(old) = verdict {
            self.open.remove(&old);
        }
        self.open.insert(
            id,
            Entry {
                active: now,
                settled: false,
            },
        );
        verdict
    }

    /// `id` sent a request at `now`; `settles` when it is `Register` or `Subscribe`.
    pub fn request(&mut self, id: u64, now: Instant, settles: bool) {
        if let Some(e) = self.open.get_mut(&id) {
            e.active = now;
            e.settled |= settles;
        }
    }

    /// `id` closed.
    pub fn leave(&mut self, id: u64) {
        self.open.remove(&id);
    }

    /// When `id` is to be closed for sending nothing: `idle` after its last request (or its
    /// connection), unless it registered or subscribed.
    pub fn idle_deadline(&self, id: u64, idle: Duration) -> Option<Instant> {
        self.open
            .get(&id)
            .filter(|e| !e.settled)
            .map(|e| e.active + idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_holds_its_own_bytes_and_takes_the_rest_from_the_budget() {
        assert_eq!(charge(0), 0);
        assert_eq!(charge(OWN_BYTES), 0);
        assert_eq!(charge(OWN_BYTES + 1), 1);
        let mut b = Budget::new(SHARED_BYTES);
        // A small request costs the budget nothing, however it grows.
        let mut h = Hold::default();
        for needed in [1, 100, 3000, OWN_BYTES] {
            h = b.grow(h, needed, MAX_FRAME).unwrap();
            assert!(h.capacity >= needed);
        }
        assert_eq!(b.used(), 0);
        // Past its own bytes, it is charged for its capacity, not only for its length.
        let h = b.grow(h, OWN_BYTES + 1, MAX_FRAME).unwrap();
        assert_eq!(h.capacity, 2 * OWN_BYTES);
        assert_eq!(h.charged, OWN_BYTES);
        assert_eq!(b.used(), OWN_BYTES);
        b.release(h);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn a_buffer_doubles_up_to_its_cap_and_never_past_it() {
        assert_eq!(grown(0, 10, 100), 10);
        assert_eq!(grown(10, 11, 100), 20);
        assert_eq!(grown(80, 90, 100), 100);
        assert_eq!(grown(100, 100, 100), 100);
        // A binary frame's cap is its declared length.
        assert_eq!(grown(512 * 1024, 512 * 1024 + 1, 600 * 1024), 600 * 1024);
        // More than the cap is the caller's mistake, and still gets what it needs.
        assert_eq!(grown(100, 150, 100), 150);
    }

    #[test]
    fn all_connections_together_hold_at_most_the_budget() {
        let mut b = Budget::new(SHARED_BYTES);
        // Connections each holding a request of the largest size, read in 8 KiB pieces.
        let mut holds = Vec::new();
        let mut refused = 0;
        for _ in 0..127 {
            let mut h = Hold::default();
            let mut len = 0;
            let full = loop {
                if len == MAX_FRAME {
                    break true;
                }
                len += 8 * 1024;
                match b.grow(h, len, MAX_FRAME) {
                    Some(more) => h = more,
                    None => break false,
                }
            };
            if full {
                holds.push(h);
            } else {
                refused += 1;
                b.release(h);
            }
            assert!(b.used() <= SHARED_BYTES);
        }
        // Four fit whole (each charged its capacity beyond its own bytes); the rest are refused.
        assert_eq!(holds.len(), 4, "{holds:?}");
        assert_eq!(refused, 123);
        assert_eq!(b.used(), 4 * (MAX_FRAME - OWN_BYTES));
        // A small request still fits, and a large one is refused without taking anything.
        assert!(b.grow(Hold::default(), 2000, MAX_FRAME).is_some());
        let before = b.used();
        let big = Hold {
            capacity: OWN_BYTES,
            charged: 0,
        };
        assert_eq!(b.grow(big, 6 * OWN_BYTES, MAX_FRAME), None);
        assert_eq!(b.used(), before);
        // Once one is decoded, another as large fits.
        b.release(holds.pop().unwrap());
        let mut h = Hold::default();
        for len in (1..=128).map(|k| k * 8 * 1024) {
            h = b.grow(h, len, MAX_FRAME).expect("room again");
        }
        assert_eq!(h.capacity, MAX_FRAME);
    }

    #[test]
    fn when_doubling_does_not_fit_exactly_what_is_needed_may() {
        let k = 1024;
        let mut b = Budget::new(OWN_BYTES + 12 * k);
        let h = b.grow(Hold::default(), OWN_BYTES, MAX_FRAME).unwrap();
        let h = b.grow(h, OWN_BYTES + 1, MAX_FRAME).unwrap();
        assert_eq!(h.capacity, 2 * OWN_BYTES);
        assert_eq!(b.used(), OWN_BYTES);
        // Doubling again would charge 3 × OWN_BYTES, more than the budget; the exact need fits.
        let h = b.grow(h, 2 * OWN_BYTES + 4 * k, MAX_FRAME).unwrap();
        assert_eq!(h.capacity, 2 * OWN_BYTES + 4 * k);
        assert_eq!(h.charged, OWN_BYTES + 4 * k);
        assert_eq!(b.used(), OWN_BYTES + 4 * k);
    }

    #[test]
    fn a_newcomer_takes_the_place_of_the_longest_idle_unsettled_connection() {
        let t0 = crate::test_clock();
        let s = Duration::from_secs;
        let mut r = Roster::new(3);
        assert_eq!(r.admit(1, t0), Admit::Take);
        assert_eq!(r.admit(2, t0 + s(1)), Admit::Take);
        assert_eq!(r.admit(3, t0 + s(2)), Admit::Take);
        assert_eq!(r.len(), 3);
        // 1 registers, 2 asks something later than 3 connected: 3 has been idle longest.
        r.request(1, t0 + s(3), true);
        r.request(2, t0 + s(4), false);
        assert_eq!(r.admit(4, t0 + s(5)), Admit::InPlaceOf(3));
        assert_eq!(r.len(), 3);
        // Then 2; then the newcomer 4, which is still in its handshake.
        assert_eq!(r.admit(5, t0 + s(6)), Admit::InPlaceOf(2));
        assert_eq!(r.admit(6, t0 + s(7)), Admit::InPlaceOf(4));
        // Once every connection registered or subscribed, the newcomer is refused.
        r.request(5, t0 + s(8), true);
        r.request(6, t0 + s(8), true);
        assert_eq!(r.admit(7, t0 + s(9)), Admit::Refuse);
        assert_eq!(r.len(), 3);
        // A connection that closes makes room.
        r.leave(5);
        assert_eq!(r.admit(8, t0 + s(10)), Admit::Take);
    }

    #[test]
    fn of_connections_idle_as_long_the_oldest_goes_first() {
        let t0 = crate::test_clock();
        let mut r = Roster::new(2);
        r.admit(9, t0);
        r.admit(4, t0);
        assert_eq!(r.admit(10, t0), Admit::InPlaceOf(4));
        assert_eq!(r.admit(11, t0), Admit::InPlaceOf(9));
    }

    #[test]
    fn only_a_connection_that_neither_registered_nor_subscribed_has_an_idle_deadline() {
        let t0 = crate::test_clock();
        let idle = Duration::from_secs(30);
        let mut r = Roster::new(8);
        r.admit(1, t0);
        r.admit(2, t0);
        assert_eq!(r.idle_deadline(1, idle), Some(t0 + idle));
        // Every request starts the wait again.
        r.request(1, t0 + Duration::from_secs(20), false);
        assert_eq!(
            r.idle_deadline(1, idle),
            Some(t0 + Duration::from_secs(20) + idle)
        );
        // Registering (or subscribing) ends it for good, whatever comes after.
        r.request(2, t0 + Duration::from_secs(1), true);
        r.request(2, t0 + Duration::from_secs(2), false);
        assert_eq!(r.idle_deadline(2, idle), None);
        // A connection that is gone has none.
        r.leave(1);
        assert_eq!(r.idle_deadline(1, idle), None);
    }
}
