//! Catching up by unicast: a record missed on a lossy link is asked for at once, not waited for.
//!
//! A multicast record is sent at most once a second (RFC 6762 §6), so a receiver that loses a
//! third of the packets misses the first three announcements of one node in 37, and waits for the
//! fourth (7 s) or the fifth (15 s). So for a few seconds after a node registers, its agent also
//! sends *presence queries*: a query for the node's own instance name, which nobody but that node
//! answers, from the agent's link socket. An agent that hears one naming an instance it does not
//! hold asks the sender by unicast, as it asks a static host (a legacy query to port 5353, from a
//! few ports at once), [`CATCH_UP_DELAY`] later (the announcement usually arrives first), and
//! again every [`CATCH_UP_EVERY`] while nothing answers, [`MAX_CATCH_UP_ROUNDS`] rounds at most.
//! The records in the reply are taken like multicast ones heard on that link: signature,
//! instance, replay rules, on-link addresses, reachability.
//!
//! Bounded for a hostile link: [`MAX_CATCH_UPS`] hosts followed at once (more are ignored until
//! room is made), [`MAX_CATCH_UPS_RUNNING`] asked at once, each host asked again only after
//! [`CATCH_UP_REST`] once it answered, refused or never answered. A spoofed presence query makes an
//! agent send one round of a few small datagrams to that address, once a minute at most.

use super::intake::{Offer, Where};
use super::{Action, Engine};
use crate::dns;
use crate::instance as mdns;
use crate::proto::Source;
use log::Level;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// After a presence query naming an unknown instance, the wait before asking its sender.
pub const CATCH_UP_DELAY: Duration = Duration::from_millis(200);
/// Between rounds of asking a host that has not answered (each round waits up to 100 ms).
pub const CATCH_UP_EVERY: Duration = Duration::from_millis(100);
/// Ports one round asks from at once: the host's kernel hands each query to one of its port-5353
/// sockets by a hash of the port, and only its announcing daemon answers (of two, for an agent).
pub const CATCH_UP_PORTS: usize = 6;
/// Rounds of asking one host before giving up.
pub const MAX_CATCH_UP_ROUNDS: u8 = 10;
/// Hosts followed at once.
pub const MAX_CATCH_UPS: usize = 64;
/// Hosts being asked at once.
pub const MAX_CATCH_UPS_RUNNING: usize = 16;
/// A host is not asked again this soon after it answered, refused or never answered.
pub const CATCH_UP_REST: Duration = Duration::from_secs(60);
/// Hosts remembered as resting.
pub const MAX_RESTING: usize = 1024;
/// Instance labels followed per host.
pub const MAX_LABELS: usize = 4;

/// One host to ask.
#[derive(Debug)]
struct Host {
    link: u32,
    /// The instances it named that this agent does not hold.
    labels: Vec<String>,
    next: Instant,
    rounds: u8,
    running: bool,
}

/// The hosts being caught up with, and those resting.
#[derive(Debug, Default)]
pub(super) struct CatchUps {
    hosts: HashMap<IpAddr, Host>,
    resting: HashMap<IpAddr, Instant>,
}

impl CatchUps {
    /// When the next round is due, if any. (While [`MAX_CATCH_UPS_RUNNING`] run, none: the end
    /// of one brings the engine back.)
    pub fn next_due(&self) -> Option<Instant> {
        let running = self.hosts.values().filter(|h| h.running).count();
        if running >= MAX_CATCH_UPS_RUNNING {
            return None;
        }
        self.hosts
            .values()
            .filter(|h| !h.running)
            .map(|h| h.next)
            .min()
    }

    fn rest(&mut self, ip: IpAddr, now: Instant) {
        self.hosts.remove(&ip);
        if self.resting.len() >= MAX_RESTING {
            self.resting.retain(|_, until| *until > now);
            if self.resting.len() >= MAX_RESTING {
                let oldest = self
                    .resting
                    .iter()
                    .min_by_key(|(_, t)| **t)
                    .map(|(i, _)| *i);
                if let Some(ip) = oldest {
                    self.resting.remove(&ip);
                }
            }
        }
        self.resting.insert(ip, now + CATCH_UP_REST);
    }
}

impl Engine {
    /// A query from `from` on link `index` named these instances: those this agent does not
    /// hold are asked for.
    pub(super) fn note_named(
        &mut self,
        index: u32,
        from: SocketAddr,
        named: Vec<String>,
        now: Instant,
    ) {
        if named.is_empty() || from.port() != crate::mcast::MDNS_PORT {
            return;
        }
        let ip = from.ip();
        let Some(link) = self.links.get(&index) else {
            return;
        };
        if link.iface.has_ip(&ip) {
            return; // our own
        }
        let unknown: Vec<String> = named
            .into_iter()
            .filter(|l| {
                !self.holds(l)
                    && mdns::parse_instance(l).is_some_and(|(p, _)| !self.regs.contains_key(&p))
            })
            .collect();
        if unknown.is_empty() {
            return;
        }
        let c = &mut self.catchups;
        if c.resting.get(&ip).is_some_and(|t| *t > now) {
            return;
        }
        if let Some(h) = c.hosts.get_mut(&ip) {
            for l in unknown {
                if h.labels.len() < MAX_LABELS && !h.labels.contains(&l) {
                    h.labels.push(l);
                }
            }
            return;
        }
        if c.hosts.len() >= MAX_CATCH_UPS {
            return;
        }
        let mut labels = unknown;
        labels.truncate(MAX_LABELS);
        c.hosts.insert(
            ip,
            Host {
                link: index,
                labels,
                next: now + CATCH_UP_DELAY,
                rounds: 0,
                running: false,
            },
        );
    }

    /// Whether the record an instance label stands for is held and its peer handed over (a
    /// record heard without a usable address is not enough).
    fn holds(&self, label: &str) -> bool {
        self.instances
            .get(label)
            .is_some_and(|p| self.table.is_visible(p))
    }

    /// Starts the rounds that are due (dropping hosts whose instances arrived meanwhile).
    pub(super) fn catch_up_due(&mut self, now: Instant) {
        if self.catchups.next_due().is_none_or(|t| t > now) {
            return;
        }
        let mut hosts = std::mem::take(&mut self.catchups.hosts);
        hosts.retain(|_, h| h.running || h.labels.iter().any(|l| !self.holds(l)));
        self.catchups.hosts = hosts;
        let wait = Duration::from_millis(self.cfg.probe_timeout_ms.clamp(50, 100));
        let mut running = self.catchups.hosts.values().filter(|h| h.running).count();
        for (ip, h) in self.catchups.hosts.iter_mut() {
            if running >= MAX_CATCH_UPS_RUNNING {
                break;
            }
            if h.running || h.next > now {
                continue;
            }
            h.running = true;
            h.rounds += 1;
            running += 1;
            self.actions.push_back(Action::AskPeer {
                link: h.link,
                ip: *ip,
                wait,
            });
        }
    }

    /// A round of asking `ip` ended: its records are taken in as heard on `link`.
    pub(super) fn on_peer_answered(
        &mut self,
        link: u32,
        ip: IpAddr,
        result: Result<Vec<Vec<u8>>, String>,
        now: Instant,
    ) {
        let Some(h) = self.catchups.hosts.get_mut(&ip) else {
            return;
        };
        h.running = false;
        let replies = match result {
            Ok(r) if r.is_empty() => {
                if h.rounds >= MAX_CATCH_UP_ROUNDS {
                    let rounds = h.rounds;
                    self.catchups.rest(ip, now);
                    self.log(Level::Debug, || {
                        format!("{ip} did not answer {rounds} rounds of unicast questions")
                    });
                } else {
                    h.next = now + CATCH_UP_EVERY;
                }
                return;
            }
            Ok(r) => r,
            Err(e) => {
                self.catchups.rest(ip, now);
                self.log(Level::Debug, || format!("cannot ask {ip} by unicast: {e}"));
                return;
            }
        };
        self.catchups.rest(ip, now);
        let Some(via) = self.links.get(&link).map(|l| l.via.clone()) else {
            return;
        };
        let mut taken = 0;
        for packet in replies {
            let Ok(rrs) = dns::records(&packet) else {
                continue;
            };
            let mut ips: Vec<IpAddr> = rrs.iter().filter_map(|r| r.ip).collect();
            ips.push(ip);
            ips.sort();
            ips.dedup();
            ips.truncate(crate::addrs::MAX_DIALABLE);
            for (label, signed) in dns::signed_records(&rrs) {
                // Only what is missing: a record already held and handed over (from multicast,
                // or the answer to another port of this round) would only narrow its addresses
                // to this family's.
                if self.holds(&label) {
                    continue;
                }
                let offer = Offer {
                    source: Source::Mdns,
                    via: via.clone(),
                    instance: Some(label),
                    signed,
                    addrs: Where::Link {
                        link,
                        ips: ips.clone(),
                    },
                };
                taken += usize::from(self.intake(offer, now));
            }
        }
        self.log(Level::Debug, || {
            format!("{via}: asked {ip} by unicast: {taken} record(s) taken")
        });
        if taken > 0 {
            self.count_drops(&via, "caught-up", taken as u64);
        }
    }
}
