//! Catching up on a lossy link, by multicast only: a record missed is asked for again on the link
//! where it was missed, and its node's agent answers there.
//!
//! A multicast record is sent at most once a second by mdns-sd (RFC 6762 §6), so a receiver that
//! loses a third of the packets misses the first three announcements of one node in 37, and waits
//! for the fourth (7 s) or the fifth (15 s). So for a few seconds after a node registers, its
//! agent also sends *presence queries* (`registrations.rs`): a query for the node's own instance
//! name, asking for a unicast answer (QU), which nobody answers. An agent that hears a query naming
//! an instance it does not hold *re-queries* for it: a multicast query (QM) for that instance on
//! that link (on each family: an answer carries the addresses of its own family only),
//! [`REQUERY_DELAY`] later (the announcement usually arrives first), then
//! every [`REQUERY_EVERY`] while it is still missing, [`MAX_REQUERIES`] times at most after the
//! last presence query it heard. The node's
//! agent answers a re-query for one of its records from another host at once, by multicast, with
//! the whole instance (PTR, SRV, TXT and the link's addresses, as mdns-sd announces it). Every
//! agent that missed the record takes it from that one answer, so an agent that hears another's
//! re-query for an instance it wants waits one more [`REQUERY_EVERY`] before its own (duplicate
//! question suppression, RFC 6762 §7.3). A record taken from an answer passes every check a record
//! heard on the link passes (signature, instance, replays), and the answer's source is the one
//! address it is dialled at.
//!
//! The arithmetic: the six presence queries all go in the first 0.7 s, so a receiver losing a
//! third of the packets misses them and the announcement one time in 4,600; one that heard any of
//! them asks every 100 ms, and a round succeeds when its re-query reaches the node's agent and the
//! answer comes back (0.7 × 0.7 alone; more with other agents' re-queries, whose answers it hears
//! too). In the simulator (one family, 30 % loss per receiver; `tests/sim`'s
//! `tail_of_a_simultaneous_start`), 10 agents starting together all found each other within 1 s in
//! 282 of 300 runs (the rest by 1.2 s, mdns-sd's second announcement), and 30 agents within 2 s in
//! 199 of 200; the unicast rounds this design replaced managed 81 of 300 and 154 of 200.
//!
//! Twenty rounds, not ten, before an instance rests: a round fails about half the time at that
//! loss, so ten failed in a row for one followed instance in 1,000 or so, and at a thousand agents
//! (hundreds of thousands of instances followed) that left a few pairs to the periodic queries at
//! 3, 7 or 15 s in most starts. Twenty fail together one time in 700,000.
//!
//! A record taken once and forgotten since (pushed out of the pending budget by a crowd of newer
//! peers, or dead for long) is taken again the same way, from the next response that carries it
//! (counted as `taken-again`): mdns-sd reports a record it resolved once, until it changes or
//! expires, so without this such a peer stayed missing until the browsing daemon was replaced.
//! No packet is sent for it. Each such record is tried at most once per [`AGAIN_EVERY`]: a host
//! replaying the records of peers the table forgot (it costs that host nothing) makes the agent
//! check at most [`MAX_RESTING`] signatures per interval, not one per record per packet.
//!
//! Never a weapon (RFC 6762 §11): nothing here goes by unicast, so a forged source address gets
//! nothing; every packet goes to the link's multicast group with TTL 255 and never leaves the link.
//! An answer is sent only for the agent's own records, only for a query from another host, at
//! most once per [`ANSWER_EVERY`] per record, link and family: at most one packet per query heard
//! (mdns-sd's responder on the same host also answers the query, with the bare TXT record, at
//! most once a second per record: RFC 6762 §6's limit).
//! Re-queries are bounded whatever the link says: [`MAX_WANTED`] instances followed at once (up to
//! [`MAX_WAITING`] more wait for room, the newest kept), one re-query packet per [`REQUERY_EVERY`]
//! per link and family
//! (naming up to [`MAX_LABELS`] instances), at most [`MAX_REQUERIES`] for one instance after each
//! presence query naming it, and an instance given up rests for [`REQUERY_REST`]. A forged query
//! naming made-up instances costs each agent at most [`MAX_REQUERIES`] small packets to the
//! link's group, and a flood of them at most ten a second per link and family.

use super::intake::{Offer, Where};
use super::keyed::{ByFingerprint, Shuffled};
use super::labels::Label;
use super::table::Via;
use super::{Action, Engine};
use crate::wire::instance as mdns;
use crate::wire::net::Family;
use crate::wire::protocol::Source;
use crate::wire::record::Reject;
use log::Level;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// After a query naming an unknown instance, the wait before re-querying for it.
pub const REQUERY_DELAY: Duration = Duration::from_millis(20);
/// Between re-queries for an instance still missing, and between two re-query packets on one
/// link and family.
pub const REQUERY_EVERY: Duration = Duration::from_millis(100);
/// Re-queries for one instance before giving up (2 s of asking).
pub const MAX_REQUERIES: u8 = 20;
/// An instance given up is not re-queried again this soon.
pub const REQUERY_REST: Duration = Duration::from_secs(5);
/// Instances followed at once.
pub const MAX_WANTED: usize = 64;
/// Instances named while [`MAX_WANTED`] were followed, kept to follow once there is room (the
/// oldest go first, and go when more are named).
pub const MAX_WAITING: usize = 64;
/// Instances remembered as resting.
pub const MAX_RESTING: usize = 1024;
/// Instance labels taken from one packet (named by a query, or carried by a response).
pub const MAX_LABELS: usize = 16;
/// An own record is multicast as an answer to re-queries at most this often per link and family.
pub const ANSWER_EVERY: Duration = Duration::from_millis(50);
/// TTL of the records in an answer: mdns-sd's for an instance's SRV and TXT.
pub const ANSWER_TTL: u32 = 120;
/// A record forgotten since it was taken is tried again at most this often (each try checks its
/// signature): a host replaying such records gets at most [`MAX_RESTING`] checks per interval.
pub const AGAIN_EVERY: Duration = Duration::from_secs(5);

/// One instance being re-queried for (on every family of its link: an answer carries the
/// addresses of its own family only).
#[derive(Debug)]
struct Wanted {
    next: Instant,
    sent: u8,
    /// The peer its label names.
    peer: libp2p_identity::PeerId,
    /// Its label.
    label: String,
}

/// The instances being caught up on, those resting, and when each own record was last answered.
#[derive(Debug, Default)]
pub(super) struct CatchUps {
    /// By link and instance label's fingerprint ([`Label::print`]: keyed by this process's
    /// secret, so a packet cannot name two labels that share one). In an order of this agent's
    /// own ([`Shuffled`]): while more are due than a packet names, the agents that follow the
    /// same instances ask for different ones first, not all for the same few.
    wanted: HashMap<(u32, u64), Wanted, Shuffled>,
    /// Instances given up, by label's fingerprint: until when each rests.
    resting: ByFingerprint<Instant>,
    /// Records forgotten since they were taken, by label's fingerprint: when each was last
    /// tried again.
    tried_again: ByFingerprint<Instant>,
    /// Own records answered, by link, family and label.
    answered: HashMap<(u32, Family, String), Instant>,
    /// When each link and family may send its next re-query packet.
    next_packet: HashMap<(u32, Family), Instant>,
    /// When the next re-query is due ([`CatchUps::refresh`]), kept so that asking is cheap.
    due: Option<Instant>,
    /// Instances named while `wanted` was full, oldest first (at most [`MAX_WAITING`]): by link,
    /// label's fingerprint and label. At a crowd's start an agent misses hundreds of records at
    /// once, and one whose every announcement, presence query and answer it lost is named only
    /// while it still follows others: without this, such a pair waited for the periodic queries.
    waiting: VecDeque<(u32, u64, Box<str>)>,
}

impl CatchUps {
    /// When the next re-query is due, if any.
    pub fn next_due(&self) -> Option<Instant> {
        self.due
    }

    /// When an instance of link `link` due at `next` may be asked for: held back by that
    /// link's gate.
    fn gated(&self, link: u32, next: Instant) -> Instant {
        let gate = [Family::V4, Family::V6]
            .iter()
            .filter_map(|f| self.next_packet.get(&(link, *f)).copied())
            .min();
        gate.map_or(next, |g| g.max(next))
    }

    /// Works out [`CatchUps::next_due`] again (after the instances or the gates changed): the
    /// soonest instance of each link, held back by that link's gate (the gate holds every
    /// instance of its link alike, so the soonest one per link is enough).
    fn refresh(&mut self) {
        let mut soonest: Vec<(u32, Instant)> = Vec::new();
        for ((link, _), w) in &self.wanted {
            match soonest.iter_mut().find(|(l, _)| l == link) {
                Some((_, t)) => *t = (*t).min(w.next),
                None => soonest.push((*link, w.next)),
            }
        }
        self.due = soonest
            .into_iter()
            .map(|(link, next)| self.gated(link, next))
            .min();
    }

    /// One more instance followed: [`CatchUps::next_due`] is the sooner of what it was and
    /// when this one may be asked for (without going over the others again).
    fn follow(&mut self, link: u32, print: u64, wanted: Wanted) {
        let at = self.gated(link, wanted.next);
        self.due = Some(self.due.map_or(at, |d| d.min(at)));
        self.wanted.insert((link, print), wanted);
    }

    /// `label` (on `link`, by fingerprint `print`) was named while `wanted` was full: it waits
    /// for room, unless it waits already.
    fn wait(&mut self, link: u32, print: u64, label: &str) {
        if self.waiting.iter().any(|(l, p, _)| *l == link && *p == print) {
            return;
        }
        if self.waiting.len() >= MAX_WAITING {
            self.waiting.pop_front();
        }
        self.waiting.push_back((link, print, label.into()));
    }

    /// Instances followed now.
    #[cfg(test)]
    pub(super) fn wanted_len(&self) -> usize {
        self.wanted.len()
    }

    /// Whether [`CatchUps::next_due`] is what going over every instance again gives.
    #[cfg(test)]
    pub(super) fn due_is_exact(&mut self) -> bool {
        let kept = self.due;
        self.refresh();
        kept == self.due
    }

    fn rest(&mut self, print: u64, now: Instant) {
        if self.resting.len() >= MAX_RESTING {
            self.resting.retain(|_, until| *until > now);
            if self.resting.len() >= MAX_RESTING {
                let oldest = self
                    .resting
                    .iter()
                    .min_by_key(|(_, t)| **t)
                    .map(|(l, _)| *l);
                if let Some(l) = oldest {
                    self.resting.remove(&l);
                }
            }
        }
        self.resting.insert(print, now + REQUERY_REST);
    }

    /// Whether the forgotten record `label` may be tried again now (at most once per
    /// [`AGAIN_EVERY`], and while at most [`MAX_RESTING`] labels were tried within one); if so,
    /// the try is noted.
    fn try_again(&mut self, print: u64, now: Instant) -> bool {
        let recent = |at: &Instant| now.saturating_duration_since(*at) < AGAIN_EVERY;
        if self.tried_again.get(&print).is_some_and(recent) {
            return false;
        }
        if self.tried_again.len() >= MAX_RESTING && !self.tried_again.contains_key(&print) {
            self.tried_again.retain(|_, at| recent(at));
            if self.tried_again.len() >= MAX_RESTING {
                return false;
            }
        }
        self.tried_again.insert(print, now);
        true
    }
}

impl Engine {
    /// A query from `from` on link `index` named these instances: those of our own nodes are
    /// answered (a re-query from another host), the others that are missing are re-queried for.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn note_named(
        &mut self,
        index: u32,
        family: Family,
        from: SocketAddr,
        named: &[Label],
        unicast: bool,
        now: Instant,
    ) {
        if named.is_empty() || from.port() != crate::wire::net::MDNS_PORT {
            return;
        }
        let Some(link) = self.links.get(&index) else {
            return;
        };
        if link.iface.has_ip(&from.ip()) {
            return; // our own, looped back
        }
        let via = link.via.clone();
        // Whether the next re-query may now be due later than `due` says (see below).
        let mut later = false;
        for label in named.iter().take(MAX_LABELS) {
            if self.own_label(label).is_some() {
                if !unicast {
                    self.answer_requery(index, family, label, now);
                }
                continue;
            }
            if self.holds_via(&via, label.print()) {
                continue;
            }
            let key = (index, label.print());
            let c = &mut self.catchups;
            if let Some(w) = c.wanted.get_mut(&key) {
                // Its label named a peer when it was taken (decoded once, then).
                if super::registrations::own(&self.regs, &w.peer) {
                    continue;
                }
                if unicast {
                    // Its node is still saying it is new: keep asking.
                    w.sent = 0;
                } else {
                    // Another agent asked for it: the answer will reach us too. Only an
                    // instance due no later than the next re-query can make that later (the
                    // soonest of its link); the others leave it as it is.
                    later |= c.due.is_none_or(|d| w.next <= d);
                    w.next = w.next.max(now + REQUERY_EVERY);
                }
                continue;
            }
            // Checked before the label is decoded (the costly part): most labels a busy link
            // names find no room.
            if c.resting.get(&key.1).is_some_and(|t| *t > now) {
                continue;
            }
            if c.wanted.len() >= MAX_WANTED {
                c.wait(key.0, key.1, label);
                continue;
            }
            let wait = if unicast {
                REQUERY_DELAY
            } else {
                REQUERY_EVERY
            };
            if let Some(wanted) = self.to_follow(label, now + wait) {
                self.catchups.follow(key.0, key.1, wanted);
            }
        }
        // Only the instances followed set when the next re-query is due.
        if later {
            self.catchups.refresh();
        }
    }

    /// Whether the record an instance label stands for is held with addresses through link
    /// `index` (asking again would only bring the same; whether they answer is the prober's
    /// business). One heard only over a family it has no address for (an IPv4-only record
    /// answered over IPv6) is still missing there.
    pub(super) fn holds(&self, index: u32, print: u64) -> bool {
        self.links
            .get(&index)
            .is_some_and(|l| self.holds_via(&l.via, print))
    }

    /// [`Engine::holds`], for a link's way in found once for every label of a packet.
    pub(super) fn holds_via(&self, via: &Via, print: u64) -> bool {
        self.instances
            .get(print)
            .is_some_and(|p| self.table.has_addrs(&p, via))
    }

    /// Whether `label` names the newest record of a peer taken before and forgotten since
    /// (pushed out of the pending budget by newer peers, or dead for long): mdns-sd reports a
    /// record it resolved once, until it changes or expires, so such a record is taken again
    /// from the next packet that carries it, as a record caught up on is.
    pub(super) fn forgot(&self, label: &Label) -> bool {
        self.instances
            .get(label.print())
            .is_some_and(|p| self.table.seq_of(&p).is_none())
    }

    /// `label` followed from now on, first asked for at `next`: `None` when it names no peer, or
    /// one of our own nodes (the label is decoded here, the costly part of following).
    fn to_follow(&self, label: &str, next: Instant) -> Option<Wanted> {
        let peer = mdns::parse_instance(label)
            .map(|(p, _)| p)
            .filter(|p| !self.is_own(p))?;
        Some(Wanted {
            next,
            sent: 0,
            peer,
            label: label.to_string(),
        })
    }

    /// Whether `label` is being caught up on, on link `index`.
    pub(super) fn wants(&self, index: u32, label: &Label) -> bool {
        self.catchups.wanted.contains_key(&(index, label.print()))
    }

    /// Sends the re-queries that are due (dropping instances that arrived meanwhile, and resting
    /// those asked for often enough).
    pub(super) fn catch_up_due(&mut self, now: Instant) {
        if self.catchups.next_due().is_none_or(|t| t > now) {
            return;
        }
        let mut wanted = std::mem::take(&mut self.catchups.wanted);
        let mut done = Vec::new();
        wanted.retain(|(link, print), w| {
            let held = self.holds(*link, *print);
            let keep = !held && (w.sent < MAX_REQUERIES || w.next > now);
            if !keep && w.sent >= MAX_REQUERIES {
                done.push(*print);
            }
            keep
        });
        for print in done {
            self.catchups.rest(print, now);
        }
        // Room made: the instances named while there was none follow, oldest first, unless they
        // arrived meanwhile (asked for a moment later, as after a presence query).
        while wanted.len() < MAX_WANTED {
            let Some((link, print, label)) = self.catchups.waiting.pop_front() else {
                break;
            };
            let resting = self.catchups.resting.get(&print).is_some_and(|t| *t > now);
            if resting || wanted.contains_key(&(link, print)) || self.holds(link, print) {
                continue;
            }
            if let Some(w) = self.to_follow(&label, now + REQUERY_DELAY) {
                wanted.insert((link, print), w);
            }
        }
        // One packet per link and family, naming what is due there, on every family that sends.
        let mut due: HashMap<u32, Vec<String>> = HashMap::new();
        for ((link, _), w) in wanted.iter_mut() {
            let gated = [Family::V4, Family::V6].iter().all(|f| {
                self.catchups
                    .next_packet
                    .get(&(*link, *f))
                    .is_some_and(|g| *g > now)
            });
            if w.next > now || gated {
                continue;
            }
            let names = due.entry(*link).or_default();
            if names.len() < MAX_LABELS {
                names.push(mdns::fullname(&w.label));
                w.sent += 1;
                w.next = now + REQUERY_EVERY;
            }
        }
        self.catchups.wanted = wanted;
        for (link, names) in due {
            let Some(l) = self.links.get(&link) else {
                continue;
            };
            for (family, sock) in &l.socks {
                let key = (link, *family);
                if !sock.usable
                    || self
                        .catchups
                        .next_packet
                        .get(&key)
                        .is_some_and(|g| *g > now)
                {
                    continue;
                }
                self.catchups.next_packet.insert(key, now + REQUERY_EVERY);
                self.actions.push_back(Action::SendPackets {
                    link,
                    family: *family,
                    packets: vec![crate::wire::dns::queries(&names, crate::wire::dns::TYPE_TXT, false)],
                });
            }
        }
        self.catchups
            .next_packet
            .retain(|_, t| now.saturating_duration_since(*t) < REQUERY_EVERY);
        self.catchups.refresh();
    }

    /// Answers another host's re-query for our record `label` by multicast on that link and
    /// family: at most once per [`ANSWER_EVERY`].
    fn answer_requery(&mut self, index: u32, family: Family, label: &Label, now: Instant) {
        let key = (index, family, label.to_string());
        if self
            .catchups
            .answered
            .get(&key)
            .is_some_and(|t| now < *t + ANSWER_EVERY)
        {
            return;
        }
        let Some(link) = self.links.get(&index) else {
            return;
        };
        if !link.socks.get(&family).is_some_and(|s| s.usable) {
            return;
        }
        let Some(r) = self.own_label(label) else {
            return;
        };
        let ips: Vec<IpAddr> = match family {
            Family::V4 => link.iface.v4_addrs().map(IpAddr::V4).collect(),
            Family::V6 => link.iface.v6_addrs().map(IpAddr::V6).collect(),
        };
        let a = &r.announcement;
        let packet = crate::wire::dns::instance_answer(
            label,
            &mdns::host_name(&a.peer, label),
            a.port,
            &a.txt,
            &ips,
            ANSWER_TTL,
        );
        self.catchups
            .answered
            .retain(|_, t| now.saturating_duration_since(*t) < ANSWER_EVERY);
        self.catchups.answered.insert(key, now);
        self.actions.push_back(Action::SendPackets {
            link: index,
            family,
            packets: vec![packet],
        });
    }

    /// Records a response heard on link `index` from `from` carried: those being caught up on are
    /// taken as heard on that link, at the response's source address only.
    pub(super) fn take_caught_up(
        &mut self,
        index: u32,
        from: SocketAddr,
        records: &[(Label, Result<Vec<u8>, Reject>)],
        now: Instant,
    ) {
        let Some(via) = self.links.get(&index).map(|l| l.via.clone()) else {
            return;
        };
        let (mut taken, mut again) = (0, 0);
        for (label, signed) in records {
            let forgot = self.forgot(label);
            if !(forgot || self.wants(index, label)) || self.holds_via(&via, label.print()) {
                continue;
            }
            if forgot && !self.catchups.try_again(label.print(), now) {
                continue;
            }
            let offer = Offer {
                source: Source::Mdns,
                via: via.clone(),
                instance: Some(label.to_string()),
                signed: signed.clone(),
                addrs: Where::Link {
                    link: index,
                    ips: vec![from.ip()],
                },
            };
            let took = usize::from(self.intake(offer, now));
            if forgot {
                again += took;
            } else {
                taken += took;
            }
        }
        if again > 0 {
            self.log(Level::Debug, || {
                format!(
                    "{via}: {again} record(s) taken again from {}, forgotten since they were \
                     first taken",
                    from.ip()
                )
            });
            self.count_drops(&via, "taken-again", again as u64);
        }
        if taken > 0 {
            self.log(Level::Debug, || {
                format!("{via}: {taken} record(s) caught up from {}", from.ip())
            });
            self.count_drops(&via, "caught-up", taken as u64);
        }
    }
}

