//! The local node's own records: what a registration may replace, when it is announced (at once,
//! then at doubling gaps, [`EXTRA_ANNOUNCEMENTS`], until the periodic announcements every
//! `announce_interval_secs` take over), and the goodbyes when it is withdrawn or its connection
//! closes.

use super::labels::Label;
use super::{Action, Engine};
use crate::wire::instance::{self as mdns, Announcement};
use crate::wire::net::Family;
use crate::wire::protocol::{AgentMsg, ErrorKind};
use crate::wire::record::{self, Reject};
use libp2p_identity::PeerId;
use log::Level;
use multiaddr::Multiaddr;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Most nodes one agent announces at once.
pub const MAX_REGISTRATIONS: usize = 16;
/// Delay of the second announcement of a new registration (RFC 6762 §8.3: at least two, one
/// second apart; mdns-sd 0.21 skips its own second one for mixed-case names such as peer IDs).
/// mdns-sd drops a record multicast again within one second (RFC 6762 §6), and the first
/// announcement leaves the daemon a little after `register` returns: hence the margin.
pub const SECOND_ANNOUNCEMENT: Duration = Duration::from_millis(1200);

/// When a new registration is announced again after the first, before the periodic
/// announcements: gaps doubling from [`SECOND_ANNOUNCEMENT`] (RFC 6762 §8.3 allows up to eight
/// announcements at doubling intervals). On a link that loses a third of the packets to each
/// receiver, three announcements in the first 3.2 s leave one receiver in 37 without it: those
/// catch up by asking the link again, brought by the presence queries ([`PRESENCE_QUERIES`]).
pub const EXTRA_ANNOUNCEMENTS: [Duration; 4] = [
    SECOND_ANNOUNCEMENT,
    Duration::from_millis(3200),
    Duration::from_millis(7200),
    Duration::from_millis(15200),
];

/// When a new registration's presence query goes out (see `catchup.rs`): a query for the node's
/// own instance name, after which an agent that missed the announcement asks the link for it
/// again. All in the first second, before mdns-sd may multicast the record again: a receiver
/// that loses a third of the packets misses the announcement and all six one time in 4,600.
pub const PRESENCE_QUERIES: [Duration; 6] = [
    Duration::from_millis(80),
    Duration::from_millis(160),
    Duration::from_millis(250),
    Duration::from_millis(350),
    Duration::from_millis(500),
    Duration::from_millis(700),
];

/// What every input asks of the registrations, kept in the engine itself and made again whenever
/// a registration comes, goes or is announced: their instance labels' fingerprints (every instance
/// every packet names is compared with them, in every engine that hears it) and when the soonest
/// is next due (asked after every input). A look at the registrations themselves is a read from
/// memory or two more each time (their map, each registration, its vectors of times).
#[derive(Debug, Default)]
pub(super) struct Own {
    prints: [u64; MAX_REGISTRATIONS],
    len: usize,
    /// When the soonest registration is next due ([`Registration::due`]).
    pub due: Option<Instant>,
}

impl Own {
    fn of(regs: &HashMap<PeerId, Registration>) -> Own {
        let mut own = Own::default();
        for (slot, r) in own.prints.iter_mut().zip(regs.values()) {
            *slot = r.label_print;
            own.len += 1;
        }
        own.due = regs.values().map(Registration::due).min();
        own
    }

    fn has(&self, print: u64) -> bool {
        self.prints[..self.len].contains(&print)
    }
}

/// One node announced by this agent.
#[derive(Debug)]
pub(super) struct Registration {
    /// The connection that registered it.
    pub conn: u64,
    pub seq: u64,
    pub addrs: Vec<Multiaddr>,
    /// The signed record (handed over by peer exchange).
    pub signed: Vec<u8>,
    pub announcement: Announcement,
    /// The fingerprint of its instance label ([`crate::engine::keyed::label_print`]): what a
    /// label a packet names is compared with (every agent on a link reads every name asked for).
    pub label_print: u64,
    /// Extra announcements still due (soonest first), before the periodic ones.
    pub extra: Vec<Instant>,
    /// Presence queries still due (soonest first).
    pub presence: Vec<Instant>,
    /// When the link socket last heard the agent's own daemon multicast this record on each link
    /// (an answer to someone's query): a periodic announcement so soon after refreshes nobody.
    pub multicast_on: HashMap<u32, Instant>,
    pub next_announce: Instant,
}

impl Registration {
    /// When it is next announced.
    pub fn due(&self) -> Instant {
        let announce = self.extra.first().copied().unwrap_or(self.next_announce);
        self.presence.first().map_or(announce, |p| announce.min(*p))
    }
}

/// Whether `peer` is one of the nodes in `regs` ([`Engine::is_own`], for where the rest of the
/// engine is borrowed).
pub(super) fn own(regs: &HashMap<PeerId, Registration>, peer: &PeerId) -> bool {
    regs.keys().any(|p| p == peer)
}

impl Engine {
    /// Whether `peer` is one of this agent's own nodes: a look at each of the few
    /// ([`MAX_REGISTRATIONS`]), cheaper than hashing an 80-byte peer ID, for every record and
    /// instance heard.
    pub(super) fn is_own(&self, peer: &PeerId) -> bool {
        own(&self.regs, peer)
    }

    /// The registration whose instance label a packet named, found by the label's fingerprint
    /// (kept in the engine itself: see [`Own`]).
    pub(super) fn own_label(&self, label: &Label) -> Option<&Registration> {
        if !self.own.has(label.print()) {
            return None;
        }
        self.regs.values().find(|r| r.label_print == label.print())
    }

    /// A node's `Register`: verified, checked against what it replaces, announced at once.
    pub(super) fn register(&mut self, id: u64, signed: Vec<u8>, now: Instant) -> AgentMsg {
        let rejected = |why: Reject, message: String| AgentMsg::Error {
            kind: ErrorKind::Rejected(why),
            message,
        };
        let rec = match (self.verifier)(&signed, &self.cfg.namespace) {
            Ok(r) => r,
            Err(Reject::Namespace) => {
                let theirs = record::verify_any_namespace(&signed)
                    .map(|r| r.namespace)
                    .unwrap_or_default();
                return rejected(
                    Reject::Namespace,
                    format!(
                        "wrong namespace: the record says {theirs:?}, the agent serves {:?}",
                        self.cfg.namespace
                    ),
                );
            }
            Err(why) => return rejected(why, format!("record refused: {why}")),
        };
        if let Some(old) = self.regs.get(&rec.peer_id) {
            if rec.seq < old.seq {
                return rejected(
                    Reject::Replay,
                    format!("record refused: seq {} is older than {}", rec.seq, old.seq),
                );
            }
        } else if self.regs.len() >= MAX_REGISTRATIONS {
            return AgentMsg::Error {
                kind: ErrorKind::Limit,
                message: format!("the agent announces at most {MAX_REGISTRATIONS} nodes"),
            };
        }
        let port = rec
            .addrs
            .iter()
            .find_map(|a| {
                a.iter().find_map(|p| match p {
                    multiaddr::Protocol::Tcp(port) => Some(port),
                    _ => None,
                })
            })
            .unwrap_or(0);
        let peer = rec.peer_id;
        let label = mdns::instance_label(&peer, rec.seq);
        let label_print = crate::engine::keyed::label_print(&label);
        if let Some(old) = self.regs.get(&peer) {
            if old.announcement.label != label {
                let (old_label, old_addrs) = (old.announcement.label.clone(), old.addrs.clone());
                self.withdraw(&peer, &old_label, &old_addrs);
            }
        }
        self.log(Level::Info, || {
            format!(
                "registering {peer} (seq {}): {:?}",
                rec.seq,
                rec.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>()
            )
        });
        self.regs.insert(
            peer,
            Registration {
                conn: id,
                seq: rec.seq,
                addrs: rec.addrs,
                signed: signed.clone(),
                announcement: Announcement {
                    peer,
                    label,
                    txt: record::to_txt(&signed),
                    port,
                },
                label_print,
                extra: EXTRA_ANNOUNCEMENTS
                    .iter()
                    .map(|d| now + *d)
                    .filter(|t| *t < now + Duration::from_secs(self.cfg.announce_interval_secs))
                    .collect(),
                presence: PRESENCE_QUERIES.iter().map(|d| now + *d).collect(),
                multicast_on: HashMap::new(),
                next_announce: now + Duration::from_secs(self.cfg.announce_interval_secs),
            },
        );
        self.own = Own::of(&self.regs);
        self.announce(&peer, None);
        AgentMsg::Registered {
            peer_id: peer.to_base58(),
        }
    }

    /// Announces the registrations whose time has come, and schedules their next announcement.
    pub(super) fn announce_due(&mut self, now: Instant) {
        let due: Vec<PeerId> = self
            .regs
            .iter()
            .filter(|(_, r)| now >= r.due())
            .map(|(p, _)| *p)
            .collect();
        let every = Duration::from_secs(self.cfg.announce_interval_secs);
        let mut present = Vec::new();
        for peer in due {
            if let Some(r) = self.regs.get_mut(&peer) {
                if r.presence.first().is_some_and(|t| now >= *t) {
                    r.presence.retain(|t| *t > now);
                    present.push(mdns::fullname(&r.announcement.label));
                }
                let announce = r.extra.first().copied().unwrap_or(r.next_announce);
                if now < announce {
                    continue;
                }
            }
            let periodic = self
                .regs
                .get(&peer)
                .is_some_and(|r| r.extra.first().is_none_or(|t| now < *t));
            // A periodic one not on a link where its record went out within half an interval
            // (answering someone's query): that refreshed every peer there already.
            let fresh_after = periodic.then(|| now.checked_sub(every / 2).unwrap_or(now));
            self.announce(&peer, fresh_after);
            if let Some(r) = self.regs.get_mut(&peer) {
                if r.extra.first().is_some_and(|t| now >= *t) {
                    r.extra.retain(|t| *t > now);
                } else {
                    r.next_announce = now + every;
                }
            }
        }
        self.own = Own::of(&self.regs);
        self.send_presence(&present);
    }

    /// The link socket heard a multicast from this host naming `label` with a TTL: if it is one
    /// of our registrations, its record just went out on that link.
    pub(super) fn note_own_multicast(&mut self, index: u32, label: &Label, now: Instant) {
        if let Some(r) = self
            .regs
            .values_mut()
            .find(|r| r.label_print == label.print())
        {
            r.multicast_on.insert(index, now);
        }
    }

    /// Sends one presence query naming `names` on every link and family whose socket sends.
    fn send_presence(&mut self, names: &[String]) {
        if names.is_empty() {
            return;
        }
        let packet = crate::wire::dns::queries(names, crate::wire::dns::TYPE_TXT, true);
        for (index, link) in &self.links {
            for (family, sock) in &link.socks {
                if sock.usable {
                    self.actions.push_back(Action::SendPackets {
                        link: *index,
                        family: *family,
                        packets: vec![packet.clone()],
                    });
                }
            }
        }
    }

    /// Announces one registration on every link whose daemon runs; with `fresh_after`, not on a
    /// link where its record was multicast after that time.
    fn announce(&mut self, peer: &PeerId, fresh_after: Option<Instant>) {
        let Some(r) = self.regs.get(peer) else { return };
        for (index, link) in &self.links {
            let fresh = fresh_after
                .is_some_and(|since| r.multicast_on.get(index).is_some_and(|t| *t > since));
            if !link.daemon.is_empty() && !fresh {
                self.actions.push_back(Action::Announce {
                    link: *index,
                    announcement: r.announcement.clone(),
                });
            }
        }
    }

    /// Announces every registration on one link (its daemon started or its addresses changed).
    pub(super) fn reannounce_on(&mut self, index: u32) {
        if self.links.get(&index).is_none_or(|l| l.daemon.is_empty()) {
            return;
        }
        for r in self.regs.values() {
            self.actions.push_back(Action::Announce {
                link: index,
                announcement: r.announcement.clone(),
            });
        }
    }

    /// Sends goodbyes for one registration on every link (to stock libp2p-mdns nodes too).
    fn withdraw(&mut self, peer: &PeerId, label: &str, addrs: &[Multiaddr]) {
        let mut out = Vec::new();
        for (index, link) in &self.links {
            if !link.daemon.is_empty() {
                out.push(Action::Withdraw {
                    link: *index,
                    label: label.to_owned(),
                });
            }
            if link.libp2p_seen {
                for family in [Family::V4, Family::V6] {
                    out.extend(self.libp2p_packets(*index, family, peer, addrs, label, 0));
                }
            }
        }
        self.actions.extend(out);
    }

    /// A connection closed: its registrations are withdrawn at once.
    pub(super) fn withdraw_connection(&mut self, id: u64) {
        let mine: Vec<PeerId> = self
            .regs
            .iter()
            .filter(|(_, r)| r.conn == id)
            .map(|(p, _)| *p)
            .collect();
        for peer in mine {
            let Some(r) = self.regs.remove(&peer) else {
                continue;
            };
            self.own = Own::of(&self.regs);
            self.log(Level::Info, || {
                format!("withdrawing {peer}: its connection closed")
            });
            self.withdraw(&peer, &r.announcement.label, &r.addrs);
        }
    }
}
