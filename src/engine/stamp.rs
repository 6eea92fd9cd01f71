//! A point in time in 8 bytes, for state kept per peer: an [`Instant`] takes 16 (and an
//! `Option<Instant>` as many), and the table keeps six per peer and one per entry of its expiry
//! index. A stamp is the signed number of nanoseconds from one reference instant of the process,
//! biased so that it is never zero: an `Option<Stamp>` is 8 bytes too. Stamps order as the
//! instants they were made from, and give them back exactly; they reach about 292 years either
//! side of the reference, and saturate beyond.

use std::num::NonZeroU64;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// See the module docs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub(crate) struct Stamp(NonZeroU64);

/// Added to the offset (so that the unsigned order is the signed one).
const BIAS: i128 = 1 << 63;

/// The process's reference instant, taken the first time a stamp is made or read. Instants
/// before it are negative offsets: nothing depends on when it was taken.
fn reference() -> Instant {
    static REFERENCE: OnceLock<Instant> = OnceLock::new();
    *REFERENCE.get_or_init(Instant::now)
}

impl Stamp {
    /// The stamp of `t`.
    pub(crate) fn of(t: Instant) -> Stamp {
        let r = reference();
        let offset = match t.checked_duration_since(r) {
            Some(d) => d.as_nanos() as i128,
            None => -(r.duration_since(t).as_nanos() as i128),
        };
        Stamp::from_offset(offset)
    }

    fn from_offset(offset: i128) -> Stamp {
        let biased = offset.saturating_add(BIAS).clamp(1, u64::MAX as i128) as u64;
        Stamp(NonZeroU64::new(biased).unwrap_or(NonZeroU64::MIN))
    }

    fn offset(self) -> i128 {
        self.0.get() as i128 - BIAS
    }

    /// The instant it stands for.
    pub(crate) fn instant(self) -> Instant {
        let r = reference();
        let offset = self.offset();
        let d = Duration::from_nanos(offset.unsigned_abs().min(u64::MAX as u128) as u64);
        let t = if offset >= 0 {
            r.checked_add(d)
        } else {
            r.checked_sub(d)
        };
        t.unwrap_or(r)
    }

    /// How long after `earlier` it is (zero if it is not after it).
    pub(crate) fn since(self, earlier: Stamp) -> Duration {
        let d = (self.offset() - earlier.offset()).max(0);
        Duration::from_nanos(d.min(u64::MAX as i128) as u64)
    }
}

/// `d` later (saturating).
impl std::ops::Add<Duration> for Stamp {
    type Output = Stamp;
    fn add(self, d: Duration) -> Stamp {
        Stamp::from_offset(self.offset() + d.as_nanos().min(u64::MAX as u128) as i128)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_orders_as_its_instant_gives_it_back_and_fits_in_eight_bytes_optional_or_not() {
        assert_eq!(std::mem::size_of::<Option<Stamp>>(), 8);
        let now = crate::test_clock();
        let earlier = now.checked_sub(Duration::from_secs(5)).unwrap_or(now);
        let times = [
            earlier,
            now,
            now + Duration::from_nanos(1),
            now + Duration::from_secs(30 * 86_400),
        ];
        for (i, t) in times.iter().enumerate() {
            assert_eq!(Stamp::of(*t).instant(), *t, "given back exactly");
            for u in &times[i..] {
                assert_eq!(Stamp::of(*t) <= Stamp::of(*u), t <= u, "ordered as the instants");
                assert_eq!(
                    Stamp::of(*u).since(Stamp::of(*t)),
                    u.saturating_duration_since(*t)
                );
                assert_eq!(Stamp::of(*t).since(Stamp::of(*u)), Duration::ZERO);
            }
        }
        let d = Duration::from_millis(1500);
        assert_eq!((Stamp::of(now) + d).instant(), now + d);
        assert_eq!(Stamp::of(now) + Duration::MAX, Stamp::from_offset(i128::MAX));
    }
}
