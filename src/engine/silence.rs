//! Silence is checked before it counts: a peer's link not heard for two thirds of the timeout
//! (and again at five sixths) has up to [`MAX_SILENCE_PROBES`] of its addresses probed, and an
//! answer keeps the link live for one more timeout ([`PeerTable::answered`]). On a link that loses
//! a third of its multicast, a peer announcing twice a minute goes unheard for a whole timeout in
//! about one minute in eleven per pair: without the check, a cluster of thirty would see several
//! false departures a minute. A host that vanished answers nothing and times out exactly as
//! before; a node that left without a goodbye refuses.
//!
//! The checks run at most [`MAX_SILENCE_CHECKS_RUNNING`] at a time from a queue, so a link that
//! goes quiet as a whole (a partition, a switch reboot) is no connection storm.
//!
//! The same probes confirm a goodbye (see `goodbye.rs`): one map says which address is probed
//! for which peer's link, and why.
//!
//! [`PeerTable::answered`]: super::table::PeerTable::answered

use super::table::Via;
use super::{Action, Engine};
use libp2p_identity::PeerId;
use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

/// Addresses probed for one silence check.
pub const MAX_SILENCE_PROBES: usize = 2;
/// Silence checks running at once.
pub const MAX_SILENCE_CHECKS_RUNNING: usize = 16;

/// Why an address is being probed outside the prober's schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Check {
    /// The peer said goodbye on that link: none answering confirms it.
    Goodbye,
    /// The peer has not been heard on that link for a while: an answer keeps it.
    Silence,
}

/// Silence checks waiting for a free slot.
#[derive(Debug, Default)]
pub(super) struct Queue {
    waiting: VecDeque<(PeerId, Via)>,
    queued: HashSet<(PeerId, Via)>,
}

impl Queue {
    /// No silence check waits (one that does starts when a probe's end frees a slot).
    pub(super) fn is_idle(&self) -> bool {
        self.waiting.is_empty()
    }
}

impl Engine {
    /// Queues the links the table found silent and starts what the limit allows.
    pub(super) fn check_silent(&mut self) {
        for key in self.table.take_silent() {
            if self.silence.queued.insert(key.clone()) {
                self.silence.waiting.push_back(key);
            }
        }
        let timeout = Duration::from_millis(self.cfg.probe_timeout_ms);
        while self.silence_checks_running() < MAX_SILENCE_CHECKS_RUNNING {
            let Some(key) = self.silence.waiting.pop_front() else {
                break;
            };
            self.silence.queued.remove(&key);
            let (peer, via) = key;
            if !self.table.needs_check(&peer, &via)
                || self
                    .confirming
                    .values()
                    .any(|(p, v, _)| *p == peer && *v == via)
            {
                continue; // heard since, gone, or already being probed
            }
            let now = self.now;
            let mut answered_lately = false;
            for addr in self.table.probe_targets(&peer, &via, MAX_SILENCE_PROBES) {
                // Probed within a minute for another peer (records naming one destination):
                // its answer stands for this one, no second connection.
                match self.table.probed_lately(&addr, now) {
                    Some(ok) => {
                        answered_lately |= ok == Some(true);
                        continue;
                    }
                    None if self.confirming.contains_key(&addr) => continue,
                    None => {}
                }
                self.table.note_probe(&addr, now);
                self.confirming
                    .insert(addr.clone(), (peer, via.clone(), Check::Silence));
                self.actions.push_back(Action::Probe { addr, timeout });
            }
            if answered_lately {
                self.silence_answered(peer, &via, now);
            }
        }
    }

    /// Distinct links being checked for silence now.
    fn silence_checks_running(&self) -> usize {
        let mut links: Vec<(&PeerId, &Via)> = self
            .confirming
            .values()
            .filter(|(_, _, c)| *c == Check::Silence)
            .map(|(p, v, _)| (p, v))
            .collect();
        links.sort();
        links.dedup();
        links.len()
    }

    /// A silence check of `peer` on `via` was answered.
    pub(super) fn silence_answered(&mut self, peer: PeerId, via: &Via, now: Instant) {
        if self.table.answered(&peer, via, now) {
            self.count_drops(via, "silence-answered", 1);
        }
    }
}
