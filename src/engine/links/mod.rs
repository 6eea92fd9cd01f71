//! Links: which interfaces are followed, when each is queried, which of its families really carry
//! mDNS (a family is usable while the query sends on it succeed), which families its mdns-sd
//! daemon runs on, what its own socket heard, and answers to stock libp2p-mdns nodes.
//!
//! This file holds a link's state and its lifecycle (an interface listed, renumbered, gone) and
//! what ends a peer's link (a confirmed goodbye); the rest is split by seam:
//! - [`query`]: the query schedule, and which families carry mDNS by what became of each send;
//! - [`daemon`]: keeping the link's mdns-sd daemon on exactly those families, and what it reports
//!   besides records (an instance gone, junk piling up, its subscription dropped);
//! - [`heard`]: the one way in for a datagram the link's socket received: reading it
//!   ([`Heard::parse`]), liveness by source address, and answers to stock libp2p-mdns nodes.

pub mod daemon;
pub mod heard;
pub mod query;

pub use heard::{Datagram, Heard};
#[cfg(test)]
pub use heard::ServiceQuery;

use super::repeat::Repeated;
use super::silence::Check;
use super::table::Via;
use super::{Action, Engine};
use crate::wire::net::Family;
use crate::wire::net::Iface;
use libp2p_identity::PeerId;
use log::Level;
use multiaddr::Multiaddr;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
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
/// Largest packet of a query the agent sends (known answers beyond it go on in the next packets,
/// RFC 6762 §7.2).
pub const MAX_QUERY_LEN: usize = 1400;
/// Rounds of the longest query interval a link's own query may be left out, because other agents'
/// queries asked for what ours would (RFC 6762 §7.3), before ours goes anyway (a query's send is
/// what tells whether the family still carries mDNS): between this and twice this, drawn anew
/// after each query of ours.
pub const MAX_QUERIES_LEFT_OUT: u32 = 20;
/// The continuation of a query heard (its next packet of known answers) is waited for this long.
pub const QUERY_CONTINUES_FOR: Duration = Duration::from_secs(1);

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
    /// The interval before [`Link::next_query`] (the longest one: the schedule has settled).
    pub planned_every: Duration,
    /// Our own query goes by then at the latest, however many others' queries asked for what
    /// ours would (see [`MAX_QUERIES_LEFT_OUT`]).
    pub own_query_by: Instant,
    /// Another agent's `_p2p._udp` query being heard (its known answers may come in several
    /// packets), and whether all it listed so far is held here too.
    pub heard_query: Option<query::HeardQuery>,
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
                via: Via::Multicast(iface.name.as_str().into()),
                iface,
                socks: BTreeMap::new(),
                open_errors: BTreeMap::new(),
                daemon: Vec::new(),
                awaiting: BTreeSet::new(),
                next_query: now,
                query_every: FIRST_QUERY_INTERVAL,
                planned_every: Duration::ZERO,
                own_query_by: now,
                heard_query: None,
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
        link.via = Via::Multicast(iface.name.as_str().into());
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
}
