//! Goodbyes are confirmed before they count, and a peer's are confirmed at most once per
//! [`GOODBYE_INTERVAL`].
//!
//! A goodbye is a bare TTL-0 packet anyone on the link can send, so for a peer's current instance
//! it is confirmed first: up to [`MAX_CONFIRM_PROBES`] of the peer's addresses on that link are
//! probed at once, and the link is dropped only if none answers (a departed node's port refuses
//! in one round trip). Confirmed on every goodbye, that is a connection pump: a host replaying a
//! live peer's announcement and then its goodbye every 1.5 s made every agent on the link connect
//! to that peer's node about 76 times a minute. So a peer's goodbyes are confirmed in *rounds*,
//! one at a time, starting at least [`GOODBYE_INTERVAL`] apart:
//!
//! - A goodbye with no round in the last interval starts one at once: a node that leaves is
//!   reported gone one round trip after its goodbye packet arrives. The link's socket reads the
//!   goodbye from the packet (`links/heard.rs`); mdns-sd reports it only a second later (RFC 6762
//!   §10.1's grace), and that report of the same goodbye is not taken again.
//!
//! A node that restarts (its process ends, so its connection to its agent closes, the agent
//! withdraws its record with a goodbye, and the new process registers a new record) is reported
//! `expired`, then `discovered` when its new record comes and its port answers: at the goodbye
//! its port refuses, as a departed node's does, and nothing tells the two apart but waiting.
//! Waiting a second for every departure to find out would cost every real departure that second;
//! the restart broke every connection to the node anyway, and the `discovered` event has its peers
//! dial it again as soon as it answers. A node whose port still answers (only its connection to
//! its agent restarted) refutes its goodbye, and its new record is one `updated`; so is a new
//! record that comes while the goodbye's probe is out (the refusal spoke of the old record).
//! - A goodbye heard while a round runs waits for its outcome.
//! - A goodbye heard after a round, within its interval, is answered by that round. If the node
//!   answered, the goodbye is refuted at once (counted as `goodbye-refuted`), and its link is
//!   confirmed again by one round when the interval ends: a node that really leaves right after
//!   a spoofed goodbye is reported then, at most an interval late. If nothing answered, the link
//!   is dropped at once (a node on several links says goodbye on each, and one round answers for
//!   all); unless the peer's record changed since (its node registered anew: a replay cannot
//!   bring a newer record), when a new round starts at once.
//! - A round at the interval's end probes up to [`MAX_CONFIRM_PROBES`] addresses in all, taken in
//!   turn from each link whose goodbye waited; a link left without a probe of its own is decided
//!   by the round's outcome.
//!
//! The cost holds by construction, however many goodbyes arrive: a round probes at most
//! [`MAX_CONFIRM_PROBES`] (4) addresses, and a peer's rounds start at least 20 s apart, so at
//! most 3 start in any minute: at most 4 × 3 = 12 connection attempts a minute per peer (more
//! only when the node itself registers new records more often than that). A silence
//! check's probes already out for the link are taken as the goodbye's, not doubled. State is kept
//! only for peers with a round in the last interval (peers whose current instance is known).
//!
//! A confirmed goodbye also tells the table (`PeerTable::departed`): the link's addresses no
//! longer count as answering, so a replay of the departed node's announcement has them probed
//! before anything is handed over, and the record held is known gone (see `rewind.rs`).

use super::silence::Check;
use super::table::Via;
use super::{Action, Engine, MAX_CONFIRM_PROBES};
use libp2p_identity::PeerId;
use log::Level;
use multiaddr::Multiaddr;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// A peer's goodbyes are confirmed by at most one round of probes per this interval.
pub const GOODBYE_INTERVAL: Duration = Duration::from_secs(20);

/// One round of probes confirming a peer's goodbyes, and what waits on it.
#[derive(Debug)]
struct Round {
    /// When it started: the next starts an interval later at the earliest.
    started: Instant,
    /// The seq of the record held when it started.
    seq: Option<u64>,
    /// A probe of it answered.
    answered: bool,
    /// All its probes are back.
    over: bool,
    /// Its links' goodbyes were refuted and counted before (a round at an interval's end).
    again: bool,
    /// Links whose goodbye waits for its outcome, and whether that goodbye was counted already.
    waiting: BTreeMap<Via, bool>,
    /// Links whose goodbye came after it, within its interval, and waits for the interval's end.
    deferred: BTreeSet<Via>,
    /// Links whose goodbye the link's socket heard within its interval: mdns-sd's report of the
    /// same goodbye, a second later, is not taken again.
    heard: BTreeSet<Via>,
}

/// Every peer's last round, and when each finished round's interval ends.
#[derive(Debug, Default)]
pub(super) struct Goodbyes {
    rounds: HashMap<PeerId, Round>,
    ends: BTreeSet<(Instant, PeerId)>,
}

impl Goodbyes {
    /// When the next interval ends, if one is running.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.ends.first().map(|(t, _)| *t)
    }
}

impl Engine {
    /// A goodbye of `peer`'s current instance, heard on `via` (see the module docs).
    pub(super) fn goodbye(&mut self, peer: PeerId, via: Via, now: Instant) {
        self.goodbyes_due(now);
        if self.table.probe_targets(&peer, &via, 1).is_empty() {
            // No address a probe can check (or no link that way at all): it goes at once.
            self.departed(peer, &via);
            return;
        }
        let mut probing = false;
        for (p, v, why) in self.confirming.values_mut() {
            if *p == peer && *v == via {
                // A silence check already probing these addresses decides the goodbye.
                *why = Check::Goodbye;
                probing = true;
            }
        }
        let seq = self.table.seq_of(&peer);
        match self.goodbyes.rounds.get_mut(&peer) {
            None => self.start_round(peer, vec![via], false, now),
            Some(_) if probing => {} // a probe already out for that link decides it
            Some(r) if !r.over => {
                r.waiting.entry(via).or_insert(false);
            }
            Some(r) if r.answered => {
                r.deferred.insert(via.clone());
                self.count_drops(&via, "goodbye-refuted", 1);
                self.log(Level::Debug, || {
                    format!("{via}: goodbye of {peer} refuted: it answered its last confirmation")
                });
            }
            Some(r) if r.seq == seq => self.confirmed_gone(peer, &via),
            // Its node registered a new record since (a replay cannot bring a newer one): the
            // last round says nothing of it, and a new round is no pump.
            Some(r) => {
                let mut vias: Vec<Via> = std::mem::take(&mut r.deferred).into_iter().collect();
                if !vias.contains(&via) {
                    vias.push(via);
                }
                self.start_round(peer, vias, false, now);
            }
        }
    }

    /// A goodbye of `peer`'s current instance, read by the link's socket from the packet itself
    /// on `via`: taken at once (see the module docs), and remembered so that mdns-sd's report of
    /// it a second later is not taken again.
    pub(super) fn goodbye_heard(&mut self, peer: PeerId, via: Via, now: Instant) {
        self.goodbye(peer, via.clone(), now);
        let seq = self.table.seq_of(&peer);
        if let Some(r) = self.goodbyes.rounds.get_mut(&peer) {
            if r.seq == seq {
                r.heard.insert(via);
            }
        }
    }

    /// Whether the link's socket already heard the goodbye mdns-sd reports now for `peer`'s
    /// current record on `via` (see [`Engine::goodbye_heard`]).
    pub(super) fn goodbye_was_heard(&self, peer: &PeerId, via: &Via) -> bool {
        let seq = self.table.seq_of(peer);
        self.goodbyes
            .rounds
            .get(peer)
            .is_some_and(|r| r.seq == seq && r.heard.contains(via))
    }

    /// Starts a round confirming the goodbyes of `peer` on `vias` (`again`: refuted and counted
    /// before, confirmed once more at an interval's end).
    fn start_round(&mut self, peer: PeerId, vias: Vec<Via>, again: bool, now: Instant) {
        let mut targets: Vec<(Via, Vec<Multiaddr>)> = Vec::new();
        let mut lately: Vec<Via> = Vec::new();
        let mut waiting = BTreeMap::new();
        for via in vias {
            let mut probing = false;
            for (p, v, why) in self.confirming.values_mut() {
                if *p == peer && *v == via {
                    // A silence check already probing these addresses decides the goodbye.
                    *why = Check::Goodbye;
                    probing = true;
                }
            }
            if probing {
                continue;
            }
            let mut list = self.table.probe_targets(&peer, &via, MAX_CONFIRM_PROBES);
            // A destination probed within a minute for another peer (records naming one
            // destination) is not probed again: its answer stands for this one.
            let mut answered_lately = false;
            list.retain(|a| match self.table.probed_lately(a, now) {
                Some(ok) => {
                    answered_lately |= ok == Some(true);
                    false
                }
                None => true,
            });
            if answered_lately {
                lately.push(via);
                continue;
            }
            if list.is_empty() {
                self.departed(peer, &via); // gone meanwhile, or nothing to probe
                continue;
            }
            targets.push((via, list));
        }
        // Up to MAX_CONFIRM_PROBES addresses in all, taken in turn from each link.
        let mut probes: Vec<(Multiaddr, Via)> = Vec::new();
        for i in 0..MAX_CONFIRM_PROBES {
            for (via, list) in &targets {
                if let Some(a) = list.get(i).filter(|_| probes.len() < MAX_CONFIRM_PROBES) {
                    probes.push((a.clone(), via.clone()));
                }
            }
        }
        for (via, _) in targets {
            if !probes.iter().any(|(_, v)| *v == via) {
                waiting.insert(via, again);
            }
        }
        let timeout = Duration::from_millis(self.cfg.probe_timeout_ms);
        for (addr, via) in &probes {
            self.table.note_probe(addr, now);
            self.confirming
                .insert(addr.clone(), (peer, via.clone(), Check::Goodbye));
            self.actions.push_back(Action::Probe {
                addr: addr.clone(),
                timeout,
            });
        }
        if !probes.is_empty() {
            self.log(Level::Debug, || {
                format!(
                    "goodbye of {peer}; probing {} address(es) to confirm",
                    probes.len()
                )
            });
        }
        // Links answered by another peer's probe of the same destination wait as refuted.
        for via in &lately {
            waiting.insert(via.clone(), again);
        }
        let round = Round {
            started: now,
            seq: self.table.seq_of(&peer),
            answered: !lately.is_empty(),
            over: false,
            again,
            waiting,
            deferred: BTreeSet::new(),
            heard: BTreeSet::new(),
        };
        self.goodbyes.rounds.insert(peer, round);
        if probes.is_empty() && self.goodbye_probes_out(&peer) == 0 {
            self.end_round(peer, now);
        }
    }

    /// A probe confirming a goodbye of `peer` on `via` ended; `done`: it was the last one out for
    /// that link. An answer refutes the goodbye; none from any of the link's addresses confirms
    /// it, and the link goes.
    pub(super) fn goodbye_probed(
        &mut self,
        peer: PeerId,
        via: Via,
        addr: &Multiaddr,
        ok: bool,
        done: bool,
        now: Instant,
    ) {
        let seq = self.table.seq_of(&peer);
        let round = self.goodbyes.rounds.get_mut(&peer).filter(|r| !r.over);
        let again = round.as_ref().is_some_and(|r| r.again);
        // Its node registered a new record while the probe was out (a restart quicker than a
        // round trip; a replay cannot bring a newer record): the refusal spoke of the old one.
        let replaced = round.as_ref().is_some_and(|r| r.seq != seq);
        let running = round.is_some();
        if let Some(r) = round {
            r.answered |= ok;
        }
        if ok {
            if again {
                self.log(Level::Debug, || {
                    format!("{via}: goodbye of {peer} refuted again: {addr} still answers")
                });
            } else {
                self.count_drops(&via, "goodbye-refuted", 1);
                self.log(Level::Info, || {
                    format!("{via}: goodbye of {peer} refuted: {addr} still answers")
                });
            }
        } else if done && !replaced {
            self.confirmed_gone(peer, &via);
        }
        if running && self.goodbye_probes_out(&peer) == 0 {
            self.end_round(peer, now);
        }
    }

    /// Probes confirming a goodbye of `peer` still out.
    fn goodbye_probes_out(&self, peer: &PeerId) -> usize {
        self.confirming
            .values()
            .filter(|(p, _, why)| p == peer && *why == Check::Goodbye)
            .count()
    }

    /// `peer`'s round is over: the goodbyes that waited for it are decided, and its interval
    /// runs until an interval after it started.
    fn end_round(&mut self, peer: PeerId, now: Instant) {
        let Some(r) = self.goodbyes.rounds.get_mut(&peer) else {
            return;
        };
        r.over = true;
        let answered = r.answered;
        let replaced = r.seq != self.table.seq_of(&peer);
        let waiting = std::mem::take(&mut r.waiting);
        let end = r.started + GOODBYE_INTERVAL;
        if answered {
            r.deferred.extend(waiting.keys().cloned());
        }
        self.goodbyes.ends.insert((end.max(now), peer));
        for (via, counted) in waiting {
            if replaced {
                continue; // the round spoke of a record its node replaced since
            } else if !answered {
                self.confirmed_gone(peer, &via);
            } else if !counted {
                self.count_drops(&via, "goodbye-refuted", 1);
            }
        }
    }

    /// Ends the intervals that are over by `now`: a peer whose goodbyes waited for the end gets
    /// one more round for them.
    pub(super) fn goodbyes_due(&mut self, now: Instant) {
        while let Some(&(at, peer)) = self.goodbyes.ends.first() {
            if at > now {
                break;
            }
            self.goodbyes.ends.pop_first();
            if self
                .goodbyes
                .rounds
                .get(&peer)
                .is_none_or(|r| !r.over || r.started + GOODBYE_INTERVAL > at)
            {
                continue; // a new round is running, or this end was a replaced round's
            }
            let Some(r) = self.goodbyes.rounds.remove(&peer) else {
                continue;
            };
            if !r.deferred.is_empty() {
                self.start_round(peer, r.deferred.into_iter().collect(), true, now);
            }
        }
    }

    /// A goodbye of `peer` on `via` confirmed: its node's ports refused. The link goes, its
    /// addresses no longer count as answering, and the record held is known gone once none of
    /// its links is live.
    fn confirmed_gone(&mut self, peer: PeerId, via: &Via) {
        let addrs = self.table.probe_targets(&peer, via, usize::MAX);
        self.departed(peer, via);
        self.table.departed(&peer, &addrs);
    }
}
