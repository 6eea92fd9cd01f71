//! A link's query schedule (a `_p2p._udp` query on each family at doubling intervals, with the
//! peers held there as known answers), and which of its families carry mDNS, told by what became
//! of each query's send.

use super::{Sock, ERROR_SUMMARY_INTERVAL, KNOWN_ANSWER_TTL, LINK_DOWN_AFTER};
use super::{MAX_QUERY_LEN, RETRY_AFTER_REFUSAL};
use crate::engine::repeat::Report;
use crate::engine::{Action, Engine, SendOutcome};
use crate::wire::net::{Family, SendClass};
use log::Level;
use std::time::Instant;
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
        let Some(link) = self.links.get_mut(&index) else {
            return;
        };
        link.next_query = now + link.query_every;
        link.query_every = (link.query_every * 2).min(max);
        link.awaiting.clear();
        let packet = self.query_packet(index);
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
        }
        if link.awaiting.is_empty() {
            self.sync_daemon(index);
        }
    }

    /// This link's query: the peers handed over and live on it as known answers (RFC 6762
    /// §7.1), so that only those it lacks answer. When they do not all fit, those heard longest
    /// ago are left out: their answers refresh them.
    fn query_packet(&self, index: u32) -> Vec<u8> {
        let Some(via) = self.links.get(&index).map(|l| &l.via) else {
            return crate::wire::dns::ptr_query(crate::wire::dns::SERVICE);
        };
        let mut known: Vec<(Instant, &str)> = self
            .instances
            .iter()
            .filter(|(_, p)| self.table.is_visible(p))
            .filter_map(|(label, p)| Some((self.table.last_heard_on(p, via)?, label.as_str())))
            .collect();
        known.sort_by(|a, b| b.cmp(a));
        let labels: Vec<&str> = known.into_iter().map(|(_, l)| l).collect();
        crate::wire::dns::ptr_query_known(
            crate::wire::dns::SERVICE,
            &labels,
            KNOWN_ANSWER_TTL,
            MAX_QUERY_LEN,
        )
        .0
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
