//! A link's query schedule (a `_p2p._udp` query on each family at doubling intervals, with the
//! peers held there as known answers), and which of its families carry mDNS, told by what became
//! of each query's send.
//!
//! A query on the settled schedule (the longest interval) lists every peer held on the link as
//! a known answer, in as many packets as they need (RFC 6762 §7.2: the TC bit tells responders to
//! wait for the rest), so that on a settled link nobody answers it, whatever its size; a link's
//! first queries carry one packet of them, the most recently heard. An agent that hears another's query listing nothing it
//! does not hold itself leaves its own next query out (RFC 6762 §7.3): whoever lacks something
//! the other query listed asks; everything the other query draws is multicast and heard by all.
//! Left out, the next is due a round later with up to an eighth of a round of jitter, so that
//! a link's agents do not all ask at once; one query per round goes on a settled link, not one
//! per agent. Only a query on the settled schedule (the longest interval) is left out, so a new
//! link's first queries all go; and only while every family's last send went, and at least every
//! 20 to 40 rounds one of ours goes anyway: a query's send is what tells whether a family
//! carries mDNS.

use super::{Sock, ERROR_SUMMARY_INTERVAL, KNOWN_ANSWER_TTL, LINK_DOWN_AFTER};
use super::{MAX_QUERIES_LEFT_OUT, MAX_QUERY_LEN, QUERY_CONTINUES_FOR, RETRY_AFTER_REFUSAL};
use crate::engine::labels::Label;
use crate::engine::repeat::Report;
use crate::engine::{Action, Engine, SendOutcome};
use crate::wire::net::{Family, SendClass};
use crate::engine::table::Filing;
use libp2p_identity::PeerId;
use log::Level;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Another agent's `_p2p._udp` query, while its packets come in.
#[derive(Debug)]
pub(in crate::engine) struct HeardQuery {
    from: IpAddr,
    /// When its last packet came.
    at: Instant,
    /// Every known answer it listed so far is held here too (or is one of ours).
    covered: bool,
}

impl Sock {
    /// A query's send outcome on this socket: whether the family is usable now, and what to say.
    fn took(&mut self, outcome: SendOutcome, name: &str, now: Instant) -> Option<(Level, String)> {
        match outcome {
            SendOutcome::Sent => {
                self.packets_out += 1;
                self.ever_sent = true;
                self.failing_since = None;
                let ended = self.errors.cleared();
                let was = std::mem::replace(&mut self.usable, true);
                match (was, ended) {
                    (false, Some(n)) if n > 0 => Some((
                        Level::Info,
                        format!("{name}: mDNS ok again (after {n} more refused sends)"),
                    )),
                    (false, _) => Some((Level::Info, format!("{name}: mDNS ok"))),
                    (true, Some(n)) => Some((
                        Level::Info,
                        format!("{name}: multicast sends go again (after {} refused)", n + 1),
                    )),
                    (true, None) => None,
                }
            }
            SendOutcome::Refused(f) => {
                let since = *self.failing_since.get_or_insert(now);
                let lasting = match f.class {
                    SendClass::Permanent => true,
                    SendClass::Policy => !self.ever_sent,
                    SendClass::Transient => false,
                };
                let down = lasting || now.saturating_duration_since(since) >= LINK_DOWN_AFTER;
                let was = self.usable;
                if down {
                    self.usable = false;
                }
                let errno = f.errno.map(|n| format!(" [errno {n}]")).unwrap_or_default();
                let report = self
                    .errors
                    .failed(&f.message, now, Some(ERROR_SUMMARY_INTERVAL));
                if was && down && report.is_none() {
                    // Refusals that were tolerated until now: the family goes out of use.
                    return Some((
                        Level::Warn,
                        format!(
                            "{name}: multicast sends refused for {} s: {}{errno}; not used until one goes",
                            now.saturating_duration_since(since).as_secs(),
                            f.message
                        ),
                    ));
                }
                match report? {
                    Report::First if !down => Some((
                        Level::Warn,
                        format!(
                            "{name}: multicast send refused: {}{errno} ({}); retrying, still in use \
                             unless sends keep failing for {} s",
                            f.message,
                            f.explanation,
                            LINK_DOWN_AFTER.as_secs()
                        ),
                    )),
                    Report::First => Some((
                        Level::Warn,
                        format!(
                            "{name}: multicast send refused: {}{errno} ({})",
                            f.message, f.explanation
                        ),
                    )),
                    Report::Summary { repeats, secs } => Some((
                        Level::Warn,
                        format!(
                            "{name}: multicast send still refused ({repeats} times in the last {secs} s): {}",
                            f.message
                        ),
                    )),
                }
            }
            SendOutcome::WouldBlock | SendOutcome::OpenFailed(_) => None,
        }
    }
}

impl Engine {
    pub(in crate::engine) fn query_due_links(&mut self, now: Instant) {
        let due: Vec<u32> = self
            .links
            .iter()
            .filter(|(_, l)| now >= l.next_query)
            .map(|(i, _)| *i)
            .collect();
        for index in due {
            self.query_link(index, now);
        }
    }

    /// Starts a query round: a `_p2p._udp` query on each family the interface has. Once every
    /// family has reported, the daemon is brought in line with what worked.
    pub(super) fn query_link(&mut self, index: u32, now: Instant) {
        let max = self.cfg.query_interval_max();
        let rounds = MAX_QUERIES_LEFT_OUT + (self.random() % u64::from(MAX_QUERIES_LEFT_OUT)) as u32;
        let Some(link) = self.links.get_mut(&index) else {
            return;
        };
        link.planned_every = link.query_every;
        let settled = link.query_every >= max;
        link.next_query = now + link.query_every;
        link.query_every = (link.query_every * 2).min(max);
        link.own_query_by = now + max * rounds;
        link.awaiting.clear();
        let mut packets = self.query_packets(index);
        if !settled {
            // A link's first queries, while the agents on it start: one packet, the peers heard
            // most recently in it, as when the known answers do not all fit. Listing them all
            // in every early query would be N packets of N/18 heard by N agents, and a held
            // answer (TC) costs a joiner 400 to 500 ms.
            packets.truncate(1);
            if let Some(p) = packets.first_mut() {
                p[2] &= !((crate::wire::dns::FLAG_TC >> 8) as u8);
            }
        }
        let more = packets.split_off(1);
        let packet = packets.pop().expect("a query is one packet at least");
        let Some(link) = self.links.get_mut(&index) else {
            return;
        };
        for family in [Family::V4, Family::V6] {
            if !family.present_on(&link.iface) {
                if link.socks.remove(&family).is_some() {
                    self.actions.push_back(Action::CloseSocket {
                        link: index,
                        family,
                    });
                }
                continue;
            }
            link.awaiting.insert(family);
            self.actions.push_back(Action::SendQuery {
                link: index,
                family,
                packet: packet.clone(),
            });
            if !more.is_empty() {
                self.actions.push_back(Action::SendPackets {
                    link: index,
                    family,
                    packets: more.clone(),
                });
            }
        }
        if link.awaiting.is_empty() {
            self.sync_daemon(index);
        }
    }

    /// This link's query: every peer handed over and live on it as a known answer (RFC 6762
    /// §7.1), in as many packets as they need (§7.2), so that only those it lacks answer.
    fn query_packets(&self, index: u32) -> Vec<Vec<u8>> {
        let Some(via) = self.links.get(&index).map(|l| &l.via) else {
            return vec![crate::wire::dns::ptr_query(crate::wire::dns::SERVICE)];
        };
        let mut known: Vec<(Instant, Filing, u64, PeerId)> = self
            .instances
            .peers()
            .filter_map(|k| {
                let (spoke, seq, peer) = self.table.known_answer(k, via)?;
                Some((spoke, *k, seq, peer))
            })
            .collect();
        known.sort_by_key(|k| std::cmp::Reverse((k.0, k.1, k.2)));
        // Each filing has one label (`note_instance` moves it), and a label a shed peer left
        // behind finds nothing: once each all the same, should two ever name one filing.
        known.dedup_by(|a, b| (a.0, a.1, a.2) == (b.0, b.1, b.2));
        // The labels' text is made again here (the index keeps fingerprints): one per known answer.
        let labels: Vec<String> = known
            .into_iter()
            .map(|(_, _, seq, peer)| crate::wire::instance::instance_label(&peer, seq))
            .collect();
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        crate::wire::dns::ptr_queries_known(
            crate::wire::dns::SERVICE,
            &labels,
            KNOWN_ANSWER_TTL,
            MAX_QUERY_LEN,
        )
    }

    /// A packet of another agent's `_p2p._udp` query on link `index` (multicast, from port
    /// 5353): its question (`asks`) or more of its known answers, and whether more follow
    /// (`truncated`). Once the query is whole, if every known answer it listed is held here too,
    /// our own next query would ask for nothing more: it is left out (RFC 6762 §7.3).
    pub(in crate::engine) fn service_query_heard(
        &mut self,
        index: u32,
        from: IpAddr,
        asks: bool,
        truncated: bool,
        known: &[Label],
        now: Instant,
    ) {
        let Some(link) = self.links.get(&index) else {
            return;
        };
        if link.iface.has_ip(&from) {
            return; // our own, looped back
        }
        // Whether this packet's known answers are all held here: looked at only while the query
        // so far is (every agent on the link reads every packet of every query).
        let held = || {
            known.iter().all(|label| {
                self.holds_via(&link.via, label.print())
                    || self.own_label(label).is_some()
            })
        };
        let covered = match &link.heard_query {
            _ if asks => held(),
            Some(q) if q.from == from && now.saturating_duration_since(q.at) < QUERY_CONTINUES_FOR => {
                q.covered && held()
            }
            _ => return,
        };
        let Some(link) = self.links.get_mut(&index) else {
            return;
        };
        let heard = HeardQuery {
            from,
            at: now,
            covered,
        };
        if truncated {
            link.heard_query = Some(heard);
            return;
        }
        link.heard_query = None;
        // Treated as our own query sent now, with jitter (an eighth of the interval at most),
        // so that the agents that heard it do not all ask at the same moment next time. Only
        // on a settled schedule (the longest interval), and while each family's last send
        // went: a query's send is what tells whether a family carries mDNS (again).
        let every = link.query_every;
        let max = self.cfg.query_interval_max();
        let families_fine = [Family::V4, Family::V6]
            .into_iter()
            .filter(|f| f.present_on(&link.iface))
            .all(|f| {
                link.socks
                    .get(&f)
                    .is_some_and(|s| s.usable && s.failing_since.is_none())
            });
        if !heard.covered
            || !families_fine
            || link.planned_every < max
            || link.next_query >= now + every
            || now + every >= link.own_query_by
        {
            return;
        }
        let jitter_nanos = (every / 8).as_nanos() as u64;
        let jitter = Duration::from_nanos(self.random() % jitter_nanos.max(1));
        let Some(link) = self.links.get_mut(&index) else {
            return;
        };
        link.next_query = now + every + jitter;
        link.query_every = (every * 2).min(max);
    }

    /// The next number of the engine's generator (xorshift64*).
    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(in crate::engine) fn on_query_sent(
        &mut self,
        index: u32,
        family: Family,
        outcome: SendOutcome,
        now: Instant,
    ) {
        let Some(link) = self.links.get_mut(&index) else {
            return;
        };
        let name = format!("{} {}", link.iface.name, family.as_str());
        let say = match outcome {
            SendOutcome::OpenFailed(f) => {
                link.socks.remove(&family);
                let errors = link.open_errors.entry(family).or_default();
                errors.failed(&f.message, now, None).map(|_| {
                    let errno = f.errno.map(|n| format!(" [errno {n}]")).unwrap_or_default();
                    (
                        Level::Warn,
                        format!("{name}: cannot use mDNS: {}{errno}", f.message),
                    )
                })
            }
            outcome => {
                link.open_errors.remove(&family);
                let refused = matches!(outcome, SendOutcome::Refused(_));
                let sock = link.socks.entry(family).or_default();
                let say = sock.took(outcome, &name, now);
                if refused && sock.usable {
                    link.next_query = link.next_query.min(now + RETRY_AFTER_REFUSAL);
                }
                say
            }
        };
        if let Some((level, line)) = say {
            self.log(level, || line);
        }
        let Some(link) = self.links.get_mut(&index) else {
            return;
        };
        if link.awaiting.remove(&family) && link.awaiting.is_empty() {
            self.sync_daemon(index);
        }
    }
}
