//! One error that may repeat: the first occurrence is reported, repeats are counted and
//! summarised now and then, a different error is reported at once, and recovery is reported with
//! the count of repeats it ends. Pure: the clock is passed in.

use std::time::{Duration, Instant};

/// What to say about a failure or a recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// A new error (the first, or one that differs from the last): say it.
    First,
    /// The same error again, after `every` since the last report: say it happened `repeats`
    /// more times in the last `secs` seconds.
    Summary {
        /// Repeats since the last report.
        repeats: u64,
        /// Seconds since the last report.
        secs: u64,
    },
}

/// The state of one kind of error (a link's sends, a static host, the cache, …).
#[derive(Clone, Debug, Default)]
pub struct Repeated {
    current: Option<String>,
    repeats: u64,
    reported_at: Option<Instant>,
}

impl Repeated {
    /// It failed with `message`. Returns what to say, if anything: a new message always; the same
    /// message again only as a summary once `every` has passed (never when `every` is `None`).
    pub fn failed(
        &mut self,
        message: &str,
        now: Instant,
        every: Option<Duration>,
    ) -> Option<Report> {
        if self.current.as_deref() != Some(message) {
            self.current = Some(message.to_owned());
            self.repeats = 0;
            self.reported_at = Some(now);
            return Some(Report::First);
        }
        self.repeats += 1;
        let since = self.reported_at.unwrap_or(now);
        let elapsed = now.saturating_duration_since(since);
        match every {
            Some(every) if elapsed >= every => {
                let report = Report::Summary {
                    repeats: self.repeats,
                    secs: elapsed.as_secs(),
                };
                self.repeats = 0;
                self.reported_at = Some(now);
                Some(report)
            }
            _ => None,
        }
    }

    /// It worked. Returns `Some(repeats since the last report)` when this ends a failure.
    pub fn cleared(&mut self) -> Option<u64> {
        let was = self.current.take().map(|_| self.repeats);
        self.repeats = 0;
        self.reported_at = None;
        was
    }

    /// The error in force, if any.
    pub fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_reported_repeats_counted_and_summarised_then_recovery() {
        let t0 = crate::test_clock();
        let every = Some(Duration::from_secs(600));
        let mut r = Repeated::default();
        assert_eq!(r.cleared(), None, "no failure to end");
        assert_eq!(r.failed("EPERM", t0, every), Some(Report::First));
        assert_eq!(r.current(), Some("EPERM"));
        for i in 1..=5 {
            assert_eq!(r.failed("EPERM", t0 + Duration::from_secs(i), every), None);
        }
        assert_eq!(
            r.failed("EPERM", t0 + Duration::from_secs(600), every),
            Some(Report::Summary {
                repeats: 6,
                secs: 600
            })
        );
        assert_eq!(
            r.failed("EPERM", t0 + Duration::from_secs(601), every),
            None
        );
        // Another error is said at once.
        assert_eq!(
            r.failed("ENOBUFS", t0 + Duration::from_secs(602), every),
            Some(Report::First)
        );
        assert_eq!(
            r.failed("ENOBUFS", t0 + Duration::from_secs(603), every),
            None
        );
        assert_eq!(r.cleared(), Some(1));
        assert_eq!(r.current(), None);
        assert_eq!(r.failed("ENOBUFS", t0, every), Some(Report::First));
    }

    #[test]
    fn without_a_period_the_same_error_is_said_once() {
        let t0 = crate::test_clock();
        let mut r = Repeated::default();
        assert_eq!(r.failed("x", t0, None), Some(Report::First));
        assert_eq!(r.failed("x", t0 + Duration::from_secs(86_400), None), None);
    }
}
