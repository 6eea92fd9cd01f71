//! A record older than the one the agent holds: a replay, or the node itself after its clock
//! stepped back (a host without a real-time clock, rebooted before NTP; a clock once ahead,
//! corrected). A node signs with `seq` = its clock, so a lower `seq` alone cannot tell them apart;
//! where the node is can. Where it is known to be ([`PeerTable::place_of`]): every address of its
//! links, live or not, and, once it is no longer handed over, the addresses it was last handed
//! over at (a confirmed goodbye removes its links; the table keeps those addresses as long as it
//! remembers the dead peer).
//!
//! - The older record's addresses are all among those (the node restarted on the same ports,
//!   whether it never left or left with a goodbye): it is taken at once, whether its port answers
//!   yet or not. Nothing a replay could bring back differs: the reachability probe still decides
//!   what is handed over.
//! - The record held is known gone (a goodbye of it was confirmed: its node's ports refused it,
//!   and nothing brought a link back since): up to two of the older record's other addresses are
//!   probed, and it is taken if one answers (the node came back elsewhere). A third host replaying
//!   an older record names its own addresses, where nothing answers for the departed node, and is
//!   refused.
//! - Otherwise the two are put to the test: up to two addresses of the record held are probed,
//!   and two of the older record's others (an address both name is probed once, for the record
//!   held). The older record is taken only if none of the held record's addresses answers and one
//!   of its own does (the node moved: its old ports refuse, its new ones answer). A replay from a
//!   third host names addresses that do not answer, or competes with a node that still does;
//!   either way it changes nothing.
//!
//! A record refused is counted as a `replay`. An older record from the persistent cache is
//! refused at once: the cache only hints.
//!
//! At most [`MAX_CHALLENGES`] tests run at once, one per peer, and a peer is tested at most once
//! per [`CHALLENGE_INTERVAL`]: replayed records cost a bounded number of connection attempts.
//!
//! [`PeerTable::place_of`]: super::table::PeerTable::place_of

use super::table::Via;
use super::{Action, Engine};
use crate::wire::protocol::Source;
use crate::wire::record::{Reject, VerifiedRecord};
use libp2p_identity::PeerId;
use log::Level;
use multiaddr::Multiaddr;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Tests of an older record running at once.
pub const MAX_CHALLENGES: usize = 16;
/// A peer's older records are tested at most this often.
pub const CHALLENGE_INTERVAL: Duration = Duration::from_secs(5);
/// Addresses probed on each side of a test.
const PROBES_PER_SIDE: usize = 2;

/// A verified record with a lower `seq` than the one held, and what came with it.
pub struct Older {
    /// The record.
    pub rec: VerifiedRecord,
    /// How it came.
    pub source: Source,
    /// Through what.
    pub via: Via,
    /// Its dialable addresses that way.
    pub dial: Vec<Multiaddr>,
    /// The announcer's IPs that way.
    pub ips: Vec<IpAddr>,
    /// The instance label it was published under.
    pub label: String,
}

/// A test under way.
pub(super) struct Challenge {
    older: Older,
    /// Probes of the held record's addresses not yet back, and whether one answered.
    held_left: usize,
    held_ok: bool,
    /// The same for the older record's addresses.
    older_left: usize,
    older_ok: bool,
}

/// The tests under way, and when each peer was last tested.
#[derive(Default)]
pub(super) struct Challenges {
    running: HashMap<PeerId, Challenge>,
    /// Probe address → (peer, whether it is the older record's).
    probes: HashMap<Multiaddr, (PeerId, bool)>,
    last: HashMap<PeerId, Instant>,
}

impl Engine {
    /// Takes in a record older than the one held for its peer (see the module docs). Returns
    /// whether it was taken.
    pub(super) fn older_record(&mut self, older: Older, now: Instant) -> bool {
        let peer = older.rec.peer_id;
        if older.source == Source::Cache {
            self.refuse_older(&older);
            return false;
        }
        let place = self.table.place_of(&peer);
        let same_place = !older.dial.is_empty() && older.dial.iter().all(|a| place.contains(a));
        if same_place {
            self.take_older(older, now);
            return true;
        }
        // Only where the two records differ tells them apart: an address both name is probed
        // once, for the record held (its answering keeps the record held). A record known gone
        // is not asked again: its node's ports refused its goodbye.
        let mut held: Vec<&Multiaddr> = place
            .iter()
            .copied()
            .filter(|a| super::prober::probeable(a))
            .collect();
        held.sort();
        if self.table.is_gone(&peer) {
            held.clear();
        }
        let held: Vec<Multiaddr> = held.into_iter().take(PROBES_PER_SIDE).cloned().collect();
        let own: Vec<Multiaddr> = older
            .dial
            .iter()
            .filter(|a| super::prober::probeable(a) && !place.contains(a))
            .take(PROBES_PER_SIDE)
            .cloned()
            .collect();
        let c = &mut self.challenges;
        let recent = c
            .last
            .get(&peer)
            .is_some_and(|t| now < *t + CHALLENGE_INTERVAL);
        if own.is_empty()
            || recent
            || c.running.contains_key(&peer)
            || c.running.len() >= MAX_CHALLENGES
        {
            self.refuse_older(&older);
            return false;
        }
        if c.last.len() >= 4 * MAX_CHALLENGES {
            c.last.retain(|_, t| now < *t + CHALLENGE_INTERVAL);
        }
        c.last.insert(peer, now);
        let timeout = Duration::from_millis(self.cfg.probe_timeout_ms);
        for (addr, mine) in held
            .iter()
            .map(|a| (a, false))
            .chain(own.iter().map(|a| (a, true)))
        {
            c.probes.insert(addr.clone(), (peer, mine));
            self.table.note_probe(addr, now);
            self.actions.push_back(Action::Probe {
                addr: addr.clone(),
                timeout,
            });
        }
        let (seq, via) = (older.rec.seq, older.via.clone());
        c.running.insert(
            peer,
            Challenge {
                older,
                held_left: held.len(),
                held_ok: false,
                older_left: own.len(),
                older_ok: false,
            },
        );
        self.log(Level::Info, || {
            format!("{via}: record of {peer} with a lower seq ({seq}); probing where it and the record held say the node is")
        });
        false // not yet: the probes decide
    }

    /// A probe of a test ended. Returns whether it was one.
    pub(super) fn on_challenge_probe(&mut self, addr: &Multiaddr, ok: bool, now: Instant) -> bool {
        let Some((peer, mine)) = self.challenges.probes.remove(addr) else {
            return false;
        };
        let Some(c) = self.challenges.running.get_mut(&peer) else {
            return true;
        };
        if mine {
            c.older_left = c.older_left.saturating_sub(1);
            c.older_ok |= ok;
        } else {
            c.held_left = c.held_left.saturating_sub(1);
            c.held_ok |= ok;
        }
        // Decided as soon as the outcome cannot change.
        let moved = !c.held_ok && c.held_left == 0 && c.older_ok;
        let stays = c.held_ok || (c.older_left == 0 && !c.older_ok);
        if !moved && !stays {
            return true;
        }
        let Some(c) = self.challenges.running.remove(&peer) else {
            return true;
        };
        self.challenges.probes.retain(|_, (p, _)| *p != peer);
        if moved {
            self.log(Level::Info, || {
                format!(
                    "{}: {peer} answers where its record of seq {} says, not where the newer one did: taken (its clock stepped back)",
                    c.older.via, c.older.rec.seq
                )
            });
            self.take_older(c.older, now);
        } else {
            self.refuse_older(&c.older);
        }
        true
    }

    fn take_older(&mut self, older: Older, now: Instant) {
        let peer = older.rec.peer_id;
        let before = self.table.seq_of(&peer);
        let Older {
            rec,
            source,
            via,
            dial,
            ips,
            label,
        } = older;
        let ev = self.table.rewind(rec, source, &via, dial, now);
        self.table.note_ips(&peer, &via, &ips);
        self.count(&via, Ok(()));
        self.note_instance(peer, before, label);
        if let Some(ev) = ev {
            self.broadcast(ev);
        }
    }

    fn refuse_older(&mut self, older: &Older) {
        let why = Reject::Replay;
        self.table.count_reject(why);
        self.count(&older.via, Err(why));
        let (via, peer, seq) = (&older.via, older.rec.peer_id, older.rec.seq);
        self.log(Level::Info, || {
            format!("{via}: record of {peer} (seq {seq}) refused: {why}")
        });
    }
}
