//! The one way in for a signed record, whatever brought it (multicast mDNS, a static host's
//! reply, peer exchange, the persistent cache): the node's own records are left out, the record is
//! verified (and must be the one its instance name stands for), counted per way in and in all,
//! merged into the table, and the table's event is broadcast. Also: stock libp2p-mdns peers
//! (unsigned). Addresses heard by multicast are kept only when they lie on the receiving link
//! (counted per link when they do not); those a static host's agent hands over by peer exchange may
//! be routed.

use super::table::Via;
use super::{Engine, StaticReply};
use crate::wire::dns;
use crate::wire::instance as mdns;
use crate::wire::stock::Libp2pPeer;
use crate::wire::protocol::Source;
use crate::wire::record::Reject;
use libp2p_identity::PeerId;
use log::Level;
use multiaddr::Multiaddr;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// Unsigned peers said one by one while `accept_unsigned` is off; the rest are only counted.
pub const MAX_UNSIGNED_LOGGED: usize = 256;

/// A signed record on its way in.
pub struct Offer {
    /// How it came.
    pub source: Source,
    /// Through what.
    pub via: Via,
    /// The instance label (or full name) it was published under; `None` for a cached record.
    pub instance: Option<String>,
    /// The signed bytes, or why there are none.
    pub signed: Result<Vec<u8>, Reject>,
    /// What says where the peer can be dialled.
    pub addrs: Where,
}

/// Where a record's peer can be dialled.
pub enum Where {
    /// At the announcer's IPs heard by multicast on a link (records say ports, links say IPs):
    /// those not on that link are dropped ([`crate::wire::addrs::on_link`]).
    Link {
        /// The link's interface index.
        link: u32,
        /// The announcer's IPs.
        ips: Vec<IpAddr>,
    },
    /// At the IPs a static host answered from, or those a static host's agent gave for a peer
    /// it relayed, routed or not (the reachability probe decides); `zone` is the interface name
    /// given to IPv6 link-local addresses.
    Ips {
        /// The announcer's IPs.
        ips: Vec<IpAddr>,
        /// Zone for link-local IPv6.
        zone: String,
    },
    /// At these addresses (already dialable, e.g. from the cache).
    Given(Vec<Multiaddr>),
}

impl Engine {
    /// Takes in one signed record. Returns whether it was accepted.
    pub(super) fn intake(&mut self, offer: Offer, now: Instant) -> bool {
        let claimed = match &offer.instance {
            Some(name) => match mdns::parse_instance(name) {
                Some((peer, label)) => Some((peer, label.to_owned())),
                None => return false, // not one of ours: another DNS-SD service's instance
            },
            None => None,
        };
        self.intake_claimed(offer, claimed, now)
    }

    /// [`Engine::intake`], with the peer and label its instance name says already read from it.
    fn intake_claimed(
        &mut self,
        offer: Offer,
        claimed: Option<(PeerId, String)>,
        now: Instant,
    ) -> bool {
        if claimed
            .as_ref()
            .is_some_and(|(p, _)| self.is_own(p))
        {
            return false; // our own node's record, echoed back
        }
        let verified = offer
            .signed
            .and_then(|s| (self.verifier)(&s, &self.cfg.namespace))
            .and_then(|rec| match &claimed {
                Some((peer, label)) => mdns::check_instance(rec, peer, label),
                None => Ok(rec),
            });
        let via = offer.via;
        let rec = match verified {
            Ok(rec) => rec,
            Err(why) => {
                self.table.count_reject(why);
                self.count(&via, Err(why));
                self.log(Level::Info, || {
                    let who = claimed.as_ref().map(|(p, _)| p.to_string());
                    let who = who.unwrap_or_default();
                    format!("{via}: record of {who} refused: {why}")
                });
                return false;
            }
        };
        if self.is_own(&rec.peer_id) {
            return false;
        }
        let peer = rec.peer_id;
        let seq = rec.seq;
        let before = self.table.seq_of(&peer);
        let mut senders = None;
        let ((dial, cut), ips) = match offer.addrs {
            Where::Link { link, ips } => {
                let (ips, zone) = self.on_link(link, ips);
                senders = Some(link);
                (
                    crate::wire::addrs::dialable_within(&peer, &rec.addrs, &ips, &zone),
                    ips,
                )
            }
            Where::Ips { ips, zone } => (
                crate::wire::addrs::dialable_within(&peer, &rec.addrs, &ips, &zone),
                ips,
            ),
            Where::Given(addrs) => ((addrs, false), Vec::new()),
        };
        if cut {
            self.count_drops(&via, "addresses-over-budget", 1);
        }
        let label = match &claimed {
            Some((_, label)) => label.clone(),
            None => mdns::instance_label(&peer, seq),
        };
        if before.is_some_and(|cur| seq < cur) {
            let older = super::rewind::Older {
                rec,
                source: offer.source,
                via,
                dial,
                ips,
                label,
            };
            return self.older_record(older, now);
        }
        match self.table.observe(rec, offer.source, &via, dial, now) {
            Ok(ev) => {
                let ips: Vec<IpAddr> = ips
                    .into_iter()
                    .filter(crate::wire::addrs::owned_by_a_host)
                    .collect();
                self.table.note_ips(&peer, &via, &ips);
                if let Some(link) = senders {
                    for ip in self.senders_of(link, &label) {
                        self.table.spoke(&peer, &via, &ip);
                    }
                }
                self.count(&via, Ok(()));
                if before != Some(seq) {
                    self.note_instance(peer, before, label);
                }
                if let Some(ev) = ev {
                    self.broadcast(ev);
                }
                true
            }
            Err(why) => {
                self.count(&via, Err(why));
                self.log(Level::Info, || {
                    format!("{via}: record of {peer} (seq {seq}) refused: {why}")
                });
                false
            }
        }
    }

    /// Keeps the label index in step with the newest record of `peer` (`old`: the seq it replaces).
    pub(super) fn note_instance(&mut self, peer: PeerId, old: Option<u64>, label: String) {
        if let Some(old) = old {
            self.instances.remove(&mdns::instance_label(&peer, old));
        }
        match self.table.filing_of(&peer) {
            Some(filing) => self.instances.insert(&label, filing),
            None => self.instances.remove(&label),
        }
        if self.instances.len() > 2 * super::table::MAX_PEERS {
            // Peers the table shed leave their label behind: drop those now and then.
            let table = &self.table;
            self.instances.retain(|k| {
                let p = table.peer_of(k)?;
                table.seq_of(&p).map(|s| mdns::instance_label(&p, s))
            });
        }
    }

    /// Counts `n` packets or peers dropped by one of the engine's rules, for the way they came.
    pub(super) fn count_drops(&mut self, via: &Via, why: &'static str, n: u64) {
        let stats = self.via_stats.entry(via.clone()).or_default();
        *stats.dropped.entry(why).or_default() += n;
    }

    /// The IPs of `ips` that lie on the link `index`, and the link's name (the zone of its
    /// link-local addresses); the others are dropped and counted for the link.
    fn on_link(&mut self, index: u32, ips: Vec<IpAddr>) -> (Vec<IpAddr>, String) {
        let Some(link) = self.links.get(&index) else {
            return (Vec::new(), String::new());
        };
        let (kept, off): (Vec<IpAddr>, Vec<IpAddr>) = ips
            .into_iter()
            .partition(|ip| crate::wire::addrs::on_link(ip, &link.iface));
        let name = link.iface.name.clone();
        if !off.is_empty() {
            let via = link.via.clone();
            *self
                .via_stats
                .entry(via)
                .or_default()
                .dropped
                .entry("address-off-link")
                .or_default() += off.len() as u64;
            self.log(Level::Debug, || {
                format!("{name}: {off:?} not on this link; dropped")
            });
        }
        (kept, name)
    }

    pub(super) fn count(&mut self, via: &Via, outcome: Result<(), Reject>) {
        let stats = self.via_stats.entry(via.clone()).or_default();
        match outcome {
            Ok(()) => stats.accepted += 1,
            Err(why) => *stats.rejected.entry(why).or_default() += 1,
        }
    }

    pub(super) fn on_resolved(
        &mut self,
        link: u32,
        fullname: &str,
        signed: Result<Vec<u8>, Reject>,
        ips: Vec<IpAddr>,
        now: Instant,
    ) {
        let Some(via) = self.links.get(&link).map(|l| l.via.clone()) else {
            return;
        };
        // Its name is read once, for the record's check and for whether its peer is established.
        let claimed = mdns::parse_instance(fullname).map(|(peer, label)| (peer, label.to_owned()));
        let peer = claimed.as_ref().map(|(peer, _)| *peer);
        if claimed.is_some() {
            let offer = Offer {
                source: Source::Mdns,
                via,
                instance: Some(fullname.to_owned()),
                signed,
                addrs: Where::Link { link, ips },
            };
            self.intake_claimed(offer, claimed, now);
        }
        if !peer.is_some_and(|peer| self.table.is_established(&peer)) {
            self.note_junk(link, now);
        }
    }

    pub(super) fn on_static_replies(
        &mut self,
        host: &str,
        replies: Vec<StaticReply>,
        now: Instant,
    ) {
        for (ip, zone, packet) in replies {
            let Ok(rrs) = dns::records(&packet) else {
                continue;
            };
            for (label, signed) in dns::signed_records(&rrs) {
                self.intake(
                    Offer {
                        source: Source::Static,
                        via: Via::Static(host.into()),
                        instance: Some(label),
                        signed,
                        addrs: Where::Ips {
                            ips: vec![ip],
                            zone: zone.clone().unwrap_or_default(),
                        },
                    },
                    now,
                );
            }
        }
    }

    pub(super) fn on_cache_loaded(
        &mut self,
        from: &str,
        result: Result<Vec<crate::wire::cache::CachedPeer>, String>,
        now: Instant,
    ) {
        let cached = match result {
            Ok(c) => c,
            Err(e) => {
                self.log(Level::Warn, || format!("peer cache: {e}"));
                return;
            }
        };
        let mut used = 0;
        for c in cached {
            let addrs = c.addrs.iter().filter_map(|a| a.parse().ok()).collect();
            let offer = Offer {
                source: Source::Cache,
                via: Via::Cache,
                instance: None,
                signed: Ok(c.signed),
                addrs: Where::Given(addrs),
            };
            if self.intake(offer, now) {
                used += 1;
            }
        }
        if used > 0 {
            self.log(Level::Info, || {
                format!("peer cache: {used} peers from {from} (handed over once they answer)")
            });
        }
    }

    /// A stock libp2p-mdns node at `from` described `p` on the link `index`: handed over only with
    /// `accept_unsigned` (logged once per peer otherwise), at `from` if it lies on that link.
    pub(super) fn on_libp2p_peer(
        &mut self,
        p: Libp2pPeer,
        index: u32,
        from: SocketAddr,
        now: Instant,
    ) {
        if self.is_own(&p.peer) || p.ttl == 0 {
            return;
        }
        let Some(iface) = self.links.get(&index).map(|l| l.iface.name.clone()) else {
            return;
        };
        if !self.cfg.accept_unsigned {
            // Each ignored peer is said once; past a bound, they are only counted (a flood of
            // made-up peer IDs costs no memory).
            let known = self.unsigned_ignored.contains(&p.peer);
            if !known && self.unsigned_ignored.len() < MAX_UNSIGNED_LOGGED {
                self.unsigned_ignored.insert(p.peer);
                self.log(Level::Info, || {
                    format!(
                        "{iface}: unsigned libp2p-mdns peer {} from {} ignored (accept_unsigned is off)",
                        p.peer,
                        from.ip()
                    )
                });
            } else if !known {
                self.unsigned_over += 1;
                if self.unsigned_over == 1 {
                    self.log(Level::Info, || {
                        format!(
                            "more than {MAX_UNSIGNED_LOGGED} unsigned libp2p-mdns peers ignored; \
                             the rest are not logged"
                        )
                    });
                }
            }
            return;
        }
        let (ips, zone) = self.on_link(index, vec![from.ip()]);
        let dial = crate::wire::addrs::dialable(&p.peer, &p.addrs, &ips, &zone);
        let via = Via::Multicast(iface.into());
        let ev = self
            .table
            .observe_unsigned(p.peer, Source::Libp2pMdns, &via, dial, now);
        // Its addresses are the packet's source: that is where it spoke from.
        self.table.spoke(&p.peer, &via, &from.ip());
        if let Some(ev) = ev {
            self.broadcast(ev);
        }
    }
}
