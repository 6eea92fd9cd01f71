//! The one way in for a datagram a link's socket received ([`Datagram`]): read into a [`Heard`]
//! (pure, here, with the engine's rules: which source port speaks which dialect, how many names
//! and records one packet may bring), once however many engines hear it, then taken in: liveness
//! by source address, goodbyes (confirmed as they arrive), senders of records not yet held,
//! catching up, and answers to stock libp2p-mdns nodes.

use super::{ANSWER_INTERVAL, LIBP2P_TTL, MAX_SENDERS, SENDERS_FOR};
use crate::engine::catchup::MAX_LABELS;
use crate::engine::keyed;
pub use crate::engine::labels::Label;
use crate::engine::table::HeardFrom;
use crate::engine::{make_room, Action, Engine};
use crate::wire::net::Family;
use crate::wire::record::Reject;
use crate::wire::stock::Libp2pPeer;
use log::Level;
use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::Instant;

/// A datagram as a link's socket received it: the socket's family, the sender and the bytes;
/// and what they say, read once, when an engine first takes it in. One datagram heard by many
/// engines (the simulator hands every packet to every engine on its link) is read once for all.
#[derive(Debug)]
pub struct Datagram {
    family: Family,
    from: SocketAddr,
    bytes: Box<[u8]>,
    /// The fingerprint of the sender's address ([`keyed::source_print`]).
    source: u64,
    read: OnceLock<Option<Heard>>,
}

impl Datagram {
    /// A datagram from `from`, received on a socket of `family`.
    pub fn new(family: Family, from: SocketAddr, bytes: impl Into<Box<[u8]>>) -> Datagram {
        Datagram {
            family,
            from,
            bytes: bytes.into(),
            source: keyed::source_print(from.ip()),
            read: OnceLock::new(),
        }
    }

    /// The fingerprint of the sender's address, made once for every engine that takes it in.
    pub fn source_print(&self) -> u64 {
        self.source
    }

    /// What it says ([`Heard::parse`]; `None`: not a DNS packet worth a look), read the first
    /// time it is asked for.
    pub fn heard(&self) -> Option<&Heard> {
        self.read
            .get_or_init(|| Heard::parse(self.family, self.from, &self.bytes))
            .as_ref()
    }
}

/// What a link's own socket heard in one datagram.
#[derive(Debug)]
pub struct Heard {
    /// The socket's family.
    pub family: Family,
    /// The sender.
    pub from: SocketAddr,
    /// `_p2p._udp` instance labels a response named, with their TTLs.
    pub instances: Vec<(Label, u32)>,
    /// Instances a response from port 5353 withdrew (a TTL-0 PTR: a goodbye), by label.
    pub goodbyes: Vec<Label>,
    /// Peers a stock libp2p-mdns node described (responses from a port other than 5353).
    pub libp2p_peers: Vec<Libp2pPeer>,
    /// A stock libp2p-mdns node asked for `_p2p._udp.local` (from a port other than 5353).
    pub libp2p_query: bool,
    /// Instance labels a query from port 5353 asked about by name: a node's presence query, or
    /// another agent's re-query for a record it missed (see `catchup.rs`).
    pub named: Vec<Label>,
    /// That query asked for a unicast answer (QU): a presence query. A re-query does not.
    pub unicast: bool,
    /// The signed records a response carried, by instance label (taken only for records being
    /// caught up on: mdns-sd resolves the rest).
    pub records: Vec<(Label, Result<Vec<u8>, Reject>)>,
    /// A packet of another host's multicast `_p2p._udp` query from port 5353 (see
    /// [`ServiceQuery`]).
    pub service_query: Option<ServiceQuery>,
}

/// A packet of a multicast (QM) `_p2p._udp` query: its question, or more of its known answers.
#[derive(Debug, PartialEq, Eq)]
pub struct ServiceQuery {
    /// It asks (the query's first packet); otherwise it only lists more known answers.
    pub asks: bool,
    /// The TC bit: more known answers follow (RFC 6762 §7.2).
    pub truncated: bool,
    /// The instance labels it lists as known answers.
    pub known: Vec<Label>,
}

impl ServiceQuery {
    /// What a query packet from port 5353 says, if it is a packet of a `_p2p._udp` query, given
    /// its questions and QU bit as [`Heard::parse`] read them (every agent on the link reads
    /// every packet of every query: once is enough).
    fn read(packet: &[u8], qs: &[(String, u16)], unicast: bool) -> Option<ServiceQuery> {
        use crate::wire::dns;
        let asks = qs
            .iter()
            .any(|(n, t)| *t == dns::TYPE_PTR && n.eq_ignore_ascii_case(dns::SERVICE))
            && !unicast;
        let known: Vec<Label> = dns::instances(&dns::records(packet).ok()?)
            .into_iter()
            .map(|(label, _)| Label::new(label))
            .collect();
        (asks || (qs.is_empty() && !known.is_empty())).then(|| ServiceQuery {
            asks,
            truncated: dns::is_truncated(packet),
            known,
        })
    }
}

impl Heard {
    /// What a link's socket heard in one datagram from `from`, read from its bytes (`None`: not a
    /// DNS packet worth a look). Responses are reduced to the `_p2p._udp` instances they name,
    /// the signed records they carry and the stock libp2p-mdns peers they describe; queries to
    /// the instances they name, and stock libp2p-mdns queries are flagged for an answer.
    pub fn parse(family: Family, from: SocketAddr, packet: &[u8]) -> Option<Heard> {
        // Stock libp2p-mdns nodes speak from an ephemeral port; mDNS responders from 5353.
        let stock = from.port() != crate::wire::net::MDNS_PORT;
        let mut heard = Heard {
            family,
            from,
            instances: Vec::new(),
            goodbyes: Vec::new(),
            libp2p_peers: Vec::new(),
            libp2p_query: false,
            named: Vec::new(),
            unicast: false,
            records: Vec::new(),
            service_query: None,
        };
        if crate::wire::dns::is_response(packet) {
            let rrs = crate::wire::dns::records(packet).ok()?;
            heard.instances = labelled(crate::wire::dns::instances(&rrs));
            if stock {
                heard.libp2p_peers = crate::wire::stock::libp2p_peers(&rrs);
            } else {
                let mut records = crate::wire::dns::signed_records(&rrs);
                records.truncate(MAX_LABELS);
                heard.records = labelled(records);
                let mut goodbyes = crate::wire::dns::goodbyes(&rrs);
                goodbyes.truncate(MAX_LABELS);
                heard.goodbyes = goodbyes.into_iter().map(Label::new).collect();
            }
        } else if stock {
            heard.libp2p_query = crate::wire::stock::is_service_query(packet);
        } else {
            // The questions are read once, for the instances they name and for the service query.
            let qs = crate::wire::dns::questions(packet).unwrap_or_default();
            heard.named = crate::wire::dns::instances_asked(&qs, MAX_LABELS)
                .into_iter()
                .map(Label::new)
                .collect();
            heard.unicast = crate::wire::dns::wants_unicast(packet);
            heard.service_query = ServiceQuery::read(packet, &qs, heard.unicast);
        }
        Some(heard)
    }
}

/// Labels read with something each ([`Label`]: fingerprinted once, here).
fn labelled<T>(read: Vec<(String, T)>) -> Vec<(Label, T)> {
    read.into_iter().map(|(l, t)| (Label::new(l), t)).collect()
}

impl Engine {
    /// What a link's socket heard on link `index`.
    pub(in crate::engine) fn on_heard(
        &mut self,
        index: u32,
        heard: &Heard,
        source: u64,
        now: Instant,
    ) {
        let Heard {
            family,
            from,
            instances,
            goodbyes,
            libp2p_peers,
            libp2p_query,
            named,
            unicast,
            records,
            service_query,
        } = heard;
        let (family, from) = (*family, *from);
        *self.packets_in.entry((index, family)).or_default() += 1;
        self.heard_from.note(index, from.ip(), source, now);
        if let Some(q) = service_query {
            self.service_query_heard(index, from.ip(), q.asks, q.truncated, &q.known, now);
        }
        self.note_named(index, family, from, named, *unicast, now);
        let Some(own) = self.links.get(&index).map(|l| l.iface.has_ip(&from.ip())) else {
            return;
        };
        if !own && !records.is_empty() {
            self.take_caught_up(index, from, records, now);
        }
        if !own && !goodbyes.is_empty() {
            self.goodbyes_heard(index, goodbyes, now);
        }
        if own {
            // Our own daemon's multicast, looped back: which of our records went out.
            for (label, ttl) in instances {
                if *ttl > 0 {
                    self.note_own_multicast(index, label, now);
                }
            }
        }
        let Some(link) = self.links.get(&index) else {
            return;
        };
        let mut revived = Vec::new();
        let mut foreign = 0;
        let mut unknown = Vec::new();
        for (label, ttl) in instances {
            if *ttl == 0 {
                continue;
            }
            // Only the newest record of a peer keeps it alive (not an old instance repeated),
            // and only in a packet from one of the peer's own addresses on this link.
            let Some(peer) = self.instances.get(label.print()) else {
                if !own {
                    unknown.push(label.to_string());
                }
                continue;
            };
            match self.table.heard_from(&peer, &link.via, &from.ip(), now) {
                HeardFrom::Live(event) => revived.extend(event),
                HeardFrom::Foreign => foreign += 1,
                // Cannot tell yet (none of its addresses of that family is known): no sign
                // of life, no blame; remembered in case mdns-sd reports them next.
                HeardFrom::Unknown => unknown.push(label.to_string()),
            }
        }
        if foreign > 0 {
            let via = link.via.clone();
            self.count_drops(&via, "foreign-source", foreign);
        }
        if !unknown.is_empty() {
            self.note_senders(index, unknown, from.ip(), now);
        }
        for ev in revived {
            self.broadcast(ev);
        }
        for p in libp2p_peers {
            self.on_libp2p_peer(p.clone(), index, from, now);
        }
        if *libp2p_query {
            self.answer_libp2p(index, family, now);
        }
    }

    /// A packet on link `index` withdrew these instances. The goodbye of a peer's current
    /// instance is confirmed at once, as the packet arrives: mdns-sd reports it only a second
    /// later (RFC 6762 §10.1's grace), and the confirmation's probe decides (see `goodbye.rs`).
    fn goodbyes_heard(&mut self, index: u32, labels: &[Label], now: Instant) {
        let Some(via) = self.links.get(&index).map(|l| l.via.clone()) else {
            return;
        };
        for label in labels {
            // The goodbye of a replaced record says nothing about the current one.
            let peer = self.instances.get(label.print());
            if let Some(peer) = peer.and_then(|k| self.table.peer_of(&k)) {
                self.goodbye_heard(peer, via.clone(), now);
            }
        }
    }

    /// Packets naming these records, not held yet, came from `ip` on link `index`.
    fn note_senders(&mut self, index: u32, labels: Vec<String>, ip: IpAddr, now: Instant) {
        let Some(link) = self.links.get_mut(&index) else {
            return;
        };
        for label in labels {
            if link.senders.len() >= MAX_SENDERS && !link.senders.contains_key(&label) {
                link.senders
                    .retain(|_, (_, at)| now.saturating_duration_since(*at) < SENDERS_FOR);
                // Still full (a crowd of new records within seconds): the oldest quarter goes,
                // not the newest sender, whose record mdns-sd reports next (a record whose
                // sender was not kept waits for its next packet before it is probed).
                make_room(&mut link.senders, MAX_SENDERS, |(_, at)| *at);
            }
            let (ips, at) = link.senders.entry(label).or_insert((Vec::new(), now));
            *at = now;
            if !ips.contains(&ip) && ips.len() < crate::wire::addrs::MAX_DIALABLE {
                ips.push(ip);
            }
        }
    }

    /// The senders heard for record `label` on link `index` before it was taken (see
    /// [`Link::senders`]). They stay (until they age out): mdns-sd may report the record again
    /// with more of its addresses, one family's after the other's.
    pub(in crate::engine) fn senders_of(&self, index: u32, label: &str) -> Vec<IpAddr> {
        self.links
            .get(&index)
            .and_then(|l| l.senders.get(label))
            .map(|(ips, _)| ips.clone())
            .unwrap_or_default()
    }

    /// What a stock libp2p-mdns node on this link and family should dial for a registration:
    /// concrete addresses of this interface (IPv6 link-local left out: such nodes take no zone).
    pub(in crate::engine) fn libp2p_packets(
        &self,
        index: u32,
        family: Family,
        peer: &libp2p_identity::PeerId,
        listen: &[multiaddr::Multiaddr],
        label: &str,
        ttl: u32,
    ) -> Option<Action> {
        let link = self.links.get(&index)?;
        if !link.socks.get(&family).is_some_and(|s| s.usable) {
            return None;
        }
        let ips: Vec<IpAddr> = match family {
            Family::V4 => link.iface.v4_addrs().map(IpAddr::V4).collect(),
            Family::V6 => link
                .iface
                .v6_addrs()
                .filter(|a| !crate::wire::addrs::is_link_local_v6(a))
                .map(IpAddr::V6)
                .collect(),
        };
        let addrs: Vec<String> = crate::wire::addrs::dialable(peer, listen, &ips, &link.iface.name)
            .iter()
            .map(|a| a.to_string())
            .collect();
        if addrs.is_empty() {
            return None;
        }
        Some(Action::SendPackets {
            link: index,
            family,
            packets: crate::wire::stock::libp2p_response(label, &addrs, ttl),
        })
    }

    /// Answers a stock libp2p-mdns query in the form it parses, by multicast on the link: each
    /// record at most once a second per link and family (RFC 6762 §6), however many ask.
    fn answer_libp2p(&mut self, index: u32, family: Family, now: Instant) {
        let Some(link) = self.links.get_mut(&index) else {
            return;
        };
        if !link.libp2p_seen {
            link.libp2p_seen = true;
            let name = link.iface.name.clone();
            self.log(Level::Info, || {
                format!("{name}: a stock libp2p-mdns node is asking; answering it")
            });
        }
        let Some(link) = self.links.get_mut(&index) else {
            return;
        };
        // Forget what no longer limits anything (registrations come and go).
        link.answered
            .retain(|_, at| now.saturating_duration_since(*at) < ANSWER_INTERVAL);
        let due: Vec<&crate::engine::registrations::Registration> = self
            .regs
            .values()
            .filter(|r| {
                !link
                    .answered
                    .contains_key(&(family, r.announcement.label.clone()))
            })
            .collect();
        let mut answers = Vec::new();
        let mut sent = Vec::new();
        for r in due {
            let label = &r.announcement.label;
            if let Some(a) = self.libp2p_packets(
                index,
                family,
                &r.announcement.peer,
                &r.addrs,
                label,
                LIBP2P_TTL,
            ) {
                answers.push(a);
                sent.push((family, label.clone()));
            }
        }
        if let Some(link) = self.links.get_mut(&index) {
            link.answered.extend(sent.into_iter().map(|k| (k, now)));
        }
        self.actions.extend(answers);
    }
}
