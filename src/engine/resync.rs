//! When a subscriber that fell behind is sent a fresh snapshot. Pure.
//!
//! The shell's fan-out never waits on a client: a subscriber whose queue is full misses the event,
//! its events are held back, and it waits for a snapshot in place of what it missed. The shell
//! says so ([`Input::Behind`](super::Input::Behind)); the snapshot is tried at once
//! ([`Action::Resync`]) and, while a subscriber still waits (its queue still full: it is not
//! reading), again every [`RESYNC_RETRY`]. That retry is one of the deadlines
//! [`Engine::poll_timeout`] reports, so the shell's loop has one timer.

use super::{Action, Engine};
use std::time::{Duration, Instant};

/// While a subscriber waits for its snapshot, it is tried this often.
pub const RESYNC_RETRY: Duration = Duration::from_millis(200);

impl Engine {
    /// A subscriber fell behind: its snapshot is tried now, unless a try is already due.
    pub(super) fn on_behind(&mut self, now: Instant) {
        self.resync_at.get_or_insert(now);
    }

    /// What became of a snapshot tried: while some subscriber still waits, it is tried again
    /// [`RESYNC_RETRY`] later.
    pub(super) fn on_resynced(&mut self, waiting: bool, now: Instant) {
        if waiting {
            let next = now + RESYNC_RETRY;
            self.resync_at = Some(self.resync_at.map_or(next, |t| t.min(next)));
        }
    }

    /// Tries the snapshot if it is due by `now`.
    pub(super) fn resync_due(&mut self, now: Instant) {
        if self.resync_at.is_some_and(|t| now >= t) {
            self.resync_at = None;
            self.actions
                .push_back(Action::Resync(self.table.snapshot()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Input;
    use crate::wire::config::Config;

    fn resyncs(e: &mut Engine) -> usize {
        std::iter::from_fn(|| e.poll_action())
            .filter(|a| matches!(a, Action::Resync(_)))
            .count()
    }

    #[test]
    fn a_subscriber_behind_is_sent_a_snapshot_at_once_then_every_retry_while_it_waits() {
        let t0 = crate::test_clock();
        let mut e = Engine::new(Config::default(), t0);
        e.handle_timeout(t0);
        assert_eq!(resyncs(&mut e), 0, "nobody waits");
        e.handle(Input::Behind, t0);
        assert_eq!(resyncs(&mut e), 1, "tried at once");
        e.handle(Input::Resynced { waiting: true }, t0);
        assert_eq!(resyncs(&mut e), 0);
        let retry = t0 + RESYNC_RETRY;
        assert!(
            e.poll_timeout().is_some_and(|t| t <= retry),
            "the retry is the engine's deadline: {:?}",
            e.poll_timeout().map(|t| t - t0)
        );
        e.handle_timeout(retry - Duration::from_millis(1));
        assert_eq!(resyncs(&mut e), 0, "not before the retry");
        e.handle_timeout(retry);
        assert_eq!(resyncs(&mut e), 1);
        e.handle(Input::Resynced { waiting: false }, retry);
        e.handle_timeout(retry + Duration::from_secs(10));
        assert_eq!(resyncs(&mut e), 0, "nobody waits any more");
    }

    #[test]
    fn more_subscribers_falling_behind_bring_no_more_snapshots_than_the_retries() {
        let t0 = crate::test_clock();
        let mut e = Engine::new(Config::default(), t0);
        e.handle(Input::Behind, t0);
        assert_eq!(resyncs(&mut e), 1);
        e.handle(Input::Resynced { waiting: true }, t0);
        for ms in 1..RESYNC_RETRY.as_millis() as u64 {
            e.handle(Input::Behind, t0 + Duration::from_millis(ms));
        }
        assert_eq!(resyncs(&mut e), 0, "one try is already due");
        e.handle_timeout(t0 + RESYNC_RETRY);
        assert_eq!(resyncs(&mut e), 1);
    }
}
