//! Links: which interfaces are followed, when each is queried, which of its families really carry
//! mDNS (a family is usable while the query sends on it succeed), which families its mdns-sd
//! daemon runs on, what its own socket heard, and answers to stock libp2p-mdns nodes.

use super::repeat::{Repeated, Report};
use super::silence::Check;
use super::table::Via;
use super::{Action, Engine, Heard, SendOutcome};
use crate::wire::net::SendClass;
use crate::wire::net::Iface;
use crate::wire::instance as mdns;
use crate::wire::net::Family;
use libp2p_identity::PeerId;
use log::Level;
use multiaddr::Multiaddr;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// A family whose sends keep being refused for this long (every send since) is declared unusable;
/// a shorter run of refusals, unless lasting by its errno, leaves it in use.
pub const LINK_DOWN_AFTER: Duration = Duration::from_secs(10);
/// After a refused send that leaves the family in use, the next query goes this soon.
pub const RETRY_AFTER_REFUSAL: Duration = Duration::from_secs(1);

/// A repeated send error is summarised at most this often.
pub const ERROR_SUMMARY_INTERVAL: Duration = Duration::from_secs(600);
/// First interval between `_p2p._udp` queries on a link; doubles up to the configured maximum.
pub const FIRST_QUERY_INTERVAL: Duration = Duration::from_secs(1);
/// A record is multicast as an answer at most this often per link and family (RFC 6762 §6).
pub const ANSWER_INTERVAL: Duration = Duration::from_secs(1);
/// Records of peers that are not established that a link's browsing daemon may take in before it
/// is replaced: mdns-sd scans its whole cache on every packet, so what a flood leaves there must
/// be dropped often (a real cluster never comes near it).
pub const BROWSER_JUNK_LIMIT: usize = 512;
/// A browsing daemon is replaced at most this often for junk.
pub const BROWSER_RESTART_INTERVAL: Duration = Duration::from_millis(250);

/// TTL given to the known answers of the agent's queries: what mdns-sd gives the PTR records
/// agents announce (a known answer with more than half the responder's TTL silences it).
pub const KNOWN_ANSWER_TTL: u32 = 4500;
/// Largest query the agent sends (known answers beyond it are left out: those peers answer).
pub const MAX_QUERY_LEN: usize = 1400;

/// TTL of answers to stock libp2p-mdns nodes: theirs (6 minutes), as they re-query every 5.
pub const LIBP2P_TTL: u32 = 360;

/// Senders of records not yet held remembered per link ([`Link::senders`]), and for how long.
pub const MAX_SENDERS: usize = 256;
/// See [`MAX_SENDERS`].
pub const SENDERS_FOR: Duration = Duration::from_secs(5);

/// One family's socket on a link, as far as the engine knows it.
#[derive(Debug, Default)]
pub(super) struct Sock {
    /// The last query sent on it left.
    pub usable: bool,
    /// Refused sends.
    pub errors: Repeated,
    /// Queries sent.
    pub packets_out: u64,
    /// A send ever went on it.
    pub ever_sent: bool,
    /// Since when every send has been refused.
    pub failing_since: Option<Instant>,
}

/// One followed interface.
#[derive(Debug)]
pub(super) struct Link {
    pub iface: Iface,
    /// What the table files this link's peers under.
    pub via: Via,
    /// Families whose socket is open.
    pub socks: BTreeMap<Family, Sock>,
    /// Families whose socket could not be opened, and why.
    pub open_errors: BTreeMap<Family, Repeated>,
    /// Families the mdns-sd daemon runs on (empty: no daemon).
    pub daemon: Vec<Family>,
    /// Families whose query of the current round has not reported yet.
    pub awaiting: BTreeSet<Family>,
    pub next_query: Instant,
    pub query_every: Duration,
    /// A stock libp2p-mdns node asked on this link: answer it, and send it goodbyes.
    pub libp2p_seen: bool,
    /// When each record (by family and label) was last multicast as an answer to such a node.
    pub answered: HashMap<(Family, String), Instant>,
    /// Records mdns-sd reported for peers that are not established (refused, waiting, dropped)
    /// since its browsing daemon last started: roughly the junk its cache holds.
    pub junk: usize,
    /// When the browsing daemon was last replaced.
    pub browser_started: Option<Instant>,
    /// Where packets naming records not (yet) held came from, by instance label: mdns-sd may
    /// report a record after the link socket heard the packet that carried it, and the record's
    /// addresses are probed only at its sender's (see `PeerTable::spoke`).
    pub senders: HashMap<String, (Vec<IpAddr>, Instant)>,
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

impl Heard {
    /// What a link's socket heard in one datagram from `from`, read from its bytes (`None`: not a
    /// DNS packet worth a look). Responses are reduced to the `_p2p._udp` instances they name,
    /// the signed records they carry and the stock libp2p-mdns peers they describe; queries to
    /// the instances they name, and stock libp2p-mdns queries are flagged for an answer.
    pub fn parse(link: u32, family: Family, from: SocketAddr, packet: &[u8]) -> Option<Heard> {
        // Stock libp2p-mdns nodes speak from an ephemeral port; mDNS responders from 5353.
        let stock = from.port() != crate::wire::net::MDNS_PORT;
        let mut heard = Heard {
            link,
            family,
            from,
            instances: Vec::new(),
            libp2p_peers: Vec::new(),
            libp2p_query: false,
            named: Vec::new(),
            unicast: false,
            records: Vec::new(),
        };
        if crate::wire::dns::is_response(packet) {
            let rrs = crate::wire::dns::records(packet).ok()?;
            heard.instances = crate::wire::dns::instances(&rrs);
            if stock {
                heard.libp2p_peers = crate::wire::stock::libp2p_peers(&rrs);
            } else {
                heard.records = crate::wire::dns::signed_records(&rrs);
                heard.records.truncate(super::catchup::MAX_LABELS);
            }
        } else if stock {
            heard.libp2p_query = crate::wire::stock::is_service_query(packet);
        } else {
            heard.named = crate::wire::dns::asked_instances(packet, super::catchup::MAX_LABELS);
            heard.unicast = crate::wire::dns::wants_unicast(packet);
        }
        Some(heard)
    }
}

impl Engine {
    pub(super) fn on_interfaces(&mut self, list: Result<Vec<Iface>, String>, now: Instant) {
        let list = match list {
            Ok(l) => {
                self.list_error.cleared();
                l
            }
            Err(e) => {
                if self.list_error.failed(&e, now, None).is_some() {
                    self.log(Level::Warn, || format!("cannot list interfaces: {e}"));
                }
                return;
            }
        };
        let wanted: Vec<Iface> = list
            .iter()
            .filter(|i| self.cfg.wants_interface(&i.name, i.loopback) && i.can_multicast())
            .cloned()
            .collect();
        self.listed = list;
        let gone: Vec<u32> = self
            .links
            .keys()
            .filter(|idx| !wanted.iter().any(|i| i.index == **idx))
            .copied()
            .collect();
        for index in gone {
            self.drop_link(index, "interface gone or down");
        }
        for iface in wanted {
            match self.links.get(&iface.index) {
                None => self.add_link(iface, now),
                Some(l) if l.iface != iface => self.readdress_link(iface, now),
                Some(_) => {}
            }
        }
    }

    fn add_link(&mut self, iface: Iface, now: Instant) {
        self.log(Level::Info, || {
            format!(
                "interface {} (index {}): {}",
                iface.name,
                iface.index,
                iface.addresses()
            )
        });
        let index = iface.index;
        self.actions.push_back(Action::AddLink(iface.clone()));
        self.links.insert(
            index,
            Link {
                via: Via::Multicast(iface.name.clone()),
                iface,
                socks: BTreeMap::new(),
                open_errors: BTreeMap::new(),
                daemon: Vec::new(),
                awaiting: BTreeSet::new(),
                next_query: now,
                query_every: FIRST_QUERY_INTERVAL,
                libp2p_seen: false,
                answered: HashMap::new(),
                junk: 0,
                browser_started: None,
                senders: HashMap::new(),
            },
        );
        self.query_link(index, now);
    }

    /// Addresses or flags changed: reopen the sockets, re-announce with the new addresses.
    fn readdress_link(&mut self, iface: Iface, now: Instant) {
        self.log(Level::Info, || {
            format!("interface {} changed: {}", iface.name, iface.addresses())
        });
        let index = iface.index;
        self.actions.push_back(Action::UpdateLink(iface.clone()));
        let Some(link) = self.links.get_mut(&index) else {
            return;
        };
        link.via = Via::Multicast(iface.name.clone());
        link.iface = iface;
        link.socks.clear();
        link.open_errors.clear();
        link.next_query = now;
        link.query_every = FIRST_QUERY_INTERVAL;
        self.query_link(index, now);
        self.reannounce_on(index);
    }

    fn drop_link(&mut self, index: u32, why: &str) {
        let Some(link) = self.links.remove(&index) else {
            return;
        };
        self.log(Level::Info, || {
            format!("interface {}: no longer used ({why})", link.iface.name)
        });
        self.actions.push_back(Action::RemoveLink { link: index });
        for ev in self.table.remove_via(&link.via) {
            self.broadcast(ev);
        }
    }

    pub(super) fn query_due_links(&mut self, now: Instant) {
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
    fn query_link(&mut self, index: u32, now: Instant) {
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

    pub(super) fn on_query_sent(
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

    /// Starts, adjusts or stops the link's mdns-sd daemon so that it runs on exactly the families
    /// whose socket works.
    fn sync_daemon(&mut self, index: u32) {
        let Some(link) = self.links.get_mut(&index) else {
            return;
        };
        let usable: Vec<Family> = link
            .socks
            .iter()
            .filter(|(_, s)| s.usable)
            .map(|(f, _)| *f)
            .collect();
        if usable == link.daemon {
            return;
        }
        if usable.is_empty() {
            link.daemon.clear();
            let via = link.via.clone();
            self.actions.push_back(Action::SetDaemon {
                link: index,
                families: Vec::new(),
            });
            for ev in self.table.remove_via(&via) {
                self.broadcast(ev);
            }
            return;
        }
        self.actions.push_back(Action::SetDaemon {
            link: index,
            families: usable,
        });
    }

    pub(super) fn on_daemon_set(
        &mut self,
        index: u32,
        families: Vec<Family>,
        result: Result<(), String>,
    ) {
        let Some(link) = self.links.get_mut(&index) else {
            return;
        };
        match result {
            Ok(()) => {
                link.daemon = families;
                self.reannounce_on(index);
            }
            Err(e) => {
                let line = if link.daemon.is_empty() {
                    format!("{}: cannot start mdns-sd: {e}", link.iface.name)
                } else {
                    format!("{}: mdns-sd: {e}", link.iface.name)
                };
                self.log(Level::Warn, || line);
            }
        }
    }

    /// mdns-sd reports an instance gone (a goodbye, or its records ran out). A goodbye is a bare
    /// TTL-0 packet anyone on the link can send, so for a peer's current instance it is first
    /// confirmed by probing the peer's addresses on that link, at most once per peer per
    /// interval (see `goodbye.rs`).
    pub(super) fn on_removed(&mut self, index: u32, fullname: &str, now: Instant) {
        let Some(link) = self.links.get(&index) else {
            return;
        };
        let via = link.via.clone();
        let Some((peer, label)) = mdns::parse_instance(fullname) else {
            return;
        };
        // The goodbye of a replaced record says nothing about the current one.
        if self.instances.get(label) != Some(&peer) {
            return;
        }
        self.goodbye(peer, via, now);
    }

    /// mdns-sd reported a record of a peer that is not established on link `index`; once enough
    /// piled up in its cache, its browsing daemon is replaced (see [`BROWSER_JUNK_LIMIT`]).
    pub(super) fn note_junk(&mut self, index: u32, now: Instant) {
        let Some(link) = self.links.get_mut(&index) else {
            return;
        };
        link.junk += 1;
        let due = link
            .browser_started
            .is_none_or(|t| now >= t + BROWSER_RESTART_INTERVAL);
        if link.junk >= BROWSER_JUNK_LIMIT && due && !link.daemon.is_empty() {
            let first = link.browser_started.is_none();
            let (name, via, junk) = (link.iface.name.clone(), link.via.clone(), link.junk);
            self.restart_browser(index, now);
            self.count_drops(&via, "browse-reset", 1);
            let level = if first { Level::Warn } else { Level::Debug };
            self.log(level, || {
                format!(
                    "{name}: {junk} records of peers that are not established came through \
                     mdns-sd; its browsing daemon is replaced to drop them (counted as \
                     browse-reset in status)"
                )
            });
        }
    }

    /// The link's browsing daemon stopped reporting: browse again with a fresh one.
    pub(super) fn on_browse_ended(&mut self, index: u32, now: Instant) {
        let Some(link) = self.links.get(&index) else {
            return;
        };
        if link.daemon.is_empty() {
            return; // stopped on purpose
        }
        let (name, via) = (link.iface.name.clone(), link.via.clone());
        let first = !self
            .via_stats
            .get(&via)
            .is_some_and(|s| s.dropped.contains_key("browse-overflow"));
        self.count_drops(&via, "browse-overflow", 1);
        self.restart_browser(index, now);
        let level = if first { Level::Warn } else { Level::Debug };
        self.log(level, || {
            format!(
                "{name}: mdns-sd dropped its browse subscription (its event queue overflowed); \
                 browsing again (counted as browse-overflow in status)"
            )
        });
    }

    fn restart_browser(&mut self, index: u32, now: Instant) {
        if let Some(link) = self.links.get_mut(&index) {
            link.junk = 0;
            link.browser_started = Some(now);
            self.actions
                .push_back(Action::RestartBrowser { link: index });
        }
    }

    /// A probe sent to confirm a goodbye or check a silence ended. An answer refutes the goodbye
    /// (the peer stays, and the goodbye is counted as `goodbye-refuted`) or keeps the silent link
    /// live; once every probe of a goodbye failed, the link is dropped (a silent one is left to
    /// time out). Returns whether the probe was one of these.
    pub(super) fn on_confirm_probe(&mut self, addr: &Multiaddr, ok: bool, now: Instant) -> bool {
        let Some((peer, via, why)) = self.confirming.remove(addr) else {
            return false;
        };
        let same = |(p, v, _): &(PeerId, Via, Check)| *p == peer && *v == via;
        if ok {
            self.confirming.retain(|_, pv| !same(pv));
        }
        let done = !self.confirming.values().any(same);
        match why {
            Check::Goodbye => self.goodbye_probed(peer, via, addr, ok, done, now),
            Check::Silence if ok => self.silence_answered(peer, &via, now),
            Check::Silence => {}
        }
        true
    }

    /// A confirmed goodbye of `peer` through `via`: that link goes, and so does what the cache
    /// said of it (a hint the peer itself has just contradicted).
    pub(super) fn departed(&mut self, peer: PeerId, via: &Via) {
        if let Some(ev) = self.table.remove_sightings(&peer, &[via.clone(), Via::Cache]) {
            self.broadcast(ev);
        }
    }

    pub(super) fn on_heard(&mut self, heard: Heard, now: Instant) {
        let Heard {
            link: index,
            family,
            from,
            instances,
            libp2p_peers,
            libp2p_query,
            named,
            unicast,
            records,
        } = heard;
        *self.packets_in.entry((index, family)).or_default() += 1;
        self.note_named(index, family, from, named, unicast, now);
        let Some(own) = self.links.get(&index).map(|l| l.iface.has_ip(&from.ip())) else {
            return;
        };
        if !own && !records.is_empty() {
            self.take_caught_up(index, from, records, now);
        }
        if own {
            // Our own daemon's multicast, looped back: which of our records went out.
            for (label, ttl) in &instances {
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
            if ttl == 0 {
                continue;
            }
            // Only the newest record of a peer keeps it alive (not an old instance repeated),
            // and only in a packet from one of the peer's own addresses on this link.
            let Some(peer) = self.instances.get(&label) else {
                if !own {
                    unknown.push(label);
                }
                continue;
            };
            match self.table.sent_by(peer, &link.via, &from.ip()) {
                Some(true) => {
                    self.table.spoke(peer, &link.via, &from.ip());
                }
                Some(false) => {
                    foreign += 1;
                    continue;
                }
                None => {
                    // Cannot tell yet (none of its addresses of that family is known): no sign
                    // of life, no blame; remembered in case mdns-sd reports them next.
                    unknown.push(label);
                    continue;
                }
            }
            revived.extend(self.table.heard(peer, &link.via, now));
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
            self.on_libp2p_peer(p, index, from, now);
        }
        if libp2p_query {
            self.answer_libp2p(index, family, now);
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
                if link.senders.len() >= MAX_SENDERS {
                    return;
                }
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
    pub(super) fn senders_of(&self, index: u32, label: &str) -> Vec<IpAddr> {
        self.links
            .get(&index)
            .and_then(|l| l.senders.get(label))
            .map(|(ips, _)| ips.clone())
            .unwrap_or_default()
    }

    /// What a stock libp2p-mdns node on this link and family should dial for a registration:
    /// concrete addresses of this interface (IPv6 link-local left out: such nodes take no zone).
    pub(super) fn libp2p_packets(
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
        let due: Vec<&super::registrations::Registration> = self
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
