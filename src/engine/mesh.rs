//! The mesh view (see [`crate::wire::mesh`]): what this agent hands `exo-discovery mesh` and other
//! agents' view asks, which hosts the command's agent asks, and who sent mDNS packets here.
//!
//! A view is the agent's own knowledge only: the peers it hands its node, how it learned each,
//! its links and why a family does not work there, and the addresses mDNS packets came from (so a
//! reader can tell "never heard a packet from that host" from "heard it, but no usable record").

use super::keyed::Fingerprinted;
use super::table::Via;
use super::{Action, Engine};
use crate::wire::mesh::{self, HostView, LinkView, Seen, View};
use crate::wire::net::Family;
use crate::wire::protocol::{AgentMsg, PeerInfo};
use std::collections::{BTreeSet, HashMap};
use std::hash::BuildHasherDefault;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long the command's agent waits for the other agents' views.
pub const VIEWS_WITHIN: Duration = Duration::from_secs(3);
/// Most hosts asked for their views at once.
pub const MAX_HOSTS_ASKED: usize = 256;

/// A map that keeps the most recently noted keys, in two generations: the keys noted since the
/// last turn, and those of the generation before, which goes when the new one holds `half`. It
/// holds at most `2 * half` keys, and at least the `half` most recently noted. Finding room takes
/// no pass over what is kept, where dropping the oldest quarter of one map took a pass over all of
/// it every `half / 2` new keys: on a crowded link keys come and go all the time (a thousand
/// hosts take turns in a few hundred packets), in every engine that hears them.
#[derive(Debug)]
struct Generations<K, V, S = std::collections::hash_map::RandomState> {
    new: HashMap<K, V, S>,
    /// The generation before (a key noted again since is in `new` too, where it counts).
    old: HashMap<K, V, S>,
}

impl<K, V, S: Default> Default for Generations<K, V, S> {
    fn default() -> Self {
        Generations {
            new: HashMap::default(),
            old: HashMap::default(),
        }
    }
}

impl<K: Eq + std::hash::Hash, V, S: std::hash::BuildHasher> Generations<K, V, S> {
    /// `key` was noted now, with `value`.
    fn note(&mut self, key: K, value: V, half: usize) {
        if let Some(v) = self.new.get_mut(&key) {
            *v = value;
            return;
        }
        if self.new.len() >= half {
            // The turn: the old generation goes, its room kept for the next.
            std::mem::swap(&mut self.new, &mut self.old);
            self.new.clear();
        }
        self.new.insert(key, value);
    }

    /// What `key` was last noted with, if it is kept.
    fn get(&self, key: &K) -> Option<&V> {
        self.new.get(key).or_else(|| self.old.get(key))
    }

    /// Every key kept, once, with what it was last noted with.
    fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        let old = self.old.iter().filter(|(k, _)| !self.new.contains_key(*k));
        self.new.iter().chain(old)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.iter().count()
    }
}

/// The addresses mDNS packets came from, per interface index: at most [`mesh::MAX_HEARD`], and
/// at least the [`mesh::MAX_HEARD`] / 2 most recent ([`Generations`]).
#[derive(Debug, Default)]
pub(super) struct HeardFrom {
    /// By link and the address's fingerprint ([`keyed::source_print`]: keyed by this process's
    /// secret, so no sender can pick addresses that share one): the address, and when.
    heard: Generations<(u32, u64), (IpAddr, Instant), BuildHasherDefault<Fingerprinted>>,
}

impl HeardFrom {
    /// A packet from `ip` on link `index`; `source` is the fingerprint of `ip`.
    pub fn note(&mut self, index: u32, ip: IpAddr, source: u64, now: Instant) {
        let value = (ip.to_canonical(), now);
        self.heard.note((index, source), value, mesh::MAX_HEARD / 2);
    }

    /// Every sender kept, once: link, address, when last heard.
    fn senders(&self) -> impl Iterator<Item = (u32, IpAddr, Instant)> + '_ {
        self.heard
            .iter()
            .map(|((index, _), (ip, at))| (*index, *ip, *at))
    }
}

/// The outcome of the most recent probes, by address: at most [`MAX_PROBES_KEPT`], and at least
/// the [`MAX_PROBES_KEPT`] / 2 most recent ([`Generations`]).
#[derive(Debug, Default)]
pub(super) struct ProbesSeen {
    last: Generations<multiaddr::Multiaddr, bool>,
}

/// Most probe outcomes kept for the view (the pending budget's size).
pub const MAX_PROBES_KEPT: usize = 256;

impl ProbesSeen {
    /// A probe of `addr` ended.
    pub fn note(&mut self, addr: &multiaddr::Multiaddr, ok: bool) {
        self.last.note(addr.clone(), ok, MAX_PROBES_KEPT / 2);
    }

    /// Whether the last probe of `addr` failed.
    fn failed(&self, addr: &multiaddr::Multiaddr) -> bool {
        self.last.get(addr).is_some_and(|ok| !ok)
    }
}

/// A host to ask: its addresses (the preferred first) and the peers known there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Addresses to try, in order.
    pub ips: Vec<IpAddr>,
    /// Peer IDs known at those addresses.
    pub expected: Vec<String>,
}

/// The short names of how a peer is known, from what the node is told of it: `v4:IFACE` and
/// `v6:IFACE` for a link (by the families of the peer's own IPs its packets came from there, as
/// `heard_from` gives them; by the families of its addresses when none is known, a record mdns-sd
/// resolved before any packet was matched to it), else `static`, `exchange`, `cache`, `manual`.
fn ways(p: &PeerInfo, links: &BTreeSet<&str>, heard_from: impl Fn(&str) -> Vec<IpAddr>) -> Vec<String> {
    let family = |ip: &IpAddr| if ip.is_ipv4() { "v4" } else { "v6" };
    let fams: BTreeSet<&str> = p
        .addrs
        .iter()
        .filter_map(|a| a.parse().ok().as_ref().and_then(crate::wire::addrs::ip_of))
        .map(|ip| family(&ip))
        .collect();
    let mut out = Vec::new();
    for i in &p.interfaces {
        if links.contains(i.as_str()) {
            let heard: BTreeSet<&str> = heard_from(i).iter().map(family).collect();
            let fams = if heard.is_empty() { &fams } else { &heard };
            out.extend(fams.iter().map(|f| format!("{f}:{i}")));
        } else {
            let kind = i.split(':').next().unwrap_or(i);
            out.push(kind.to_owned());
        }
    }
    out.dedup();
    out
}

/// The table's name for a way in, from its name in `interfaces`.
fn via_of(name: &str, links: &BTreeSet<&str>) -> Option<Via> {
    if links.contains(name) {
        return Some(Via::Multicast(name.into()));
    }
    match name.split_once(':') {
        Some(("static", h)) => Some(Via::Static(h.into())),
        Some(("exchange", h)) => Some(Via::Exchange(h.into())),
        _ if name == "cache" => Some(Via::Cache),
        _ if name == "manual" => Some(Via::Manual),
        _ => None,
    }
}

impl Engine {
    /// This agent's view, as of `now`.
    pub fn view(&self, now: Instant) -> View {
        let names: BTreeSet<&str> = self.links.values().map(|l| l.iface.name.as_str()).collect();
        let mut addrs: Vec<IpAddr> = Vec::new();
        let mut links = Vec::new();
        for l in self.links.values() {
            addrs.extend(l.iface.v4_addrs().map(IpAddr::V4));
            addrs.extend(l.iface.v6_addrs().map(IpAddr::V6));
            for f in [Family::V4, Family::V6] {
                let st = self.family_status(l, f);
                links.push(LinkView {
                    iface: l.iface.name.clone(),
                    family: short(f).to_owned(),
                    problem: st
                        .problem
                        .or_else(|| (!st.in_use).then(|| "not in use".to_owned())),
                });
            }
        }
        addrs.dedup();
        let v4_works = links.iter().any(|l| l.family == "v4" && l.problem.is_none());
        let mut heard: Vec<mesh::Heard> = self
            .heard_from
            .senders()
            .filter_map(|(index, ip, t)| {
                Some(mesh::Heard {
                    ip,
                    iface: self.links.get(&index)?.iface.name.clone(),
                    age_secs: now.saturating_duration_since(t).as_secs(),
                })
            })
            .collect();
        heard.sort_by_key(|h| (h.age_secs, h.ip));
        heard.truncate(mesh::MAX_HEARD);
        let mut peers: Vec<Seen> = self
            .table
            .snapshot()
            .into_iter()
            .take(mesh::MAX_PEERS)
            .map(|p| {
                let id = p.peer_id.parse::<libp2p_identity::PeerId>().ok();
                let ways = ways(&p, &names, |link| {
                    id.as_ref()
                        .map(|id| {
                            self.table.spoke_from(id, &Via::Multicast(link.into()))
                        })
                        .unwrap_or_default()
                });
                let age_secs = id.and_then(|id| {
                    p.interfaces
                        .iter()
                        .filter_map(|i| via_of(i, &names))
                        .filter_map(|via| self.table.last_heard_on(&id, &via))
                        .max()
                        .map(|t| now.saturating_duration_since(t).as_secs())
                });
                let multicast: Vec<&String> =
                    ways.iter().filter(|w| w.contains(':')).collect();
                let mut missing = Vec::new();
                if v4_works && !multicast.is_empty() && multicast.iter().all(|w| w.starts_with("v6:"))
                {
                    missing.push("heard only on IPv6".to_owned());
                }
                Seen {
                    peer_id: p.peer_id,
                    ways,
                    age_secs,
                    verified: true,
                    missing,
                }
            })
            .collect();
        peers.extend(self.unverified(now));
        peers.truncate(mesh::MAX_PEERS);
        View {
            announces: self.regs.keys().map(|k| k.to_string()).collect(),
            addrs,
            links,
            heard,
            peers,
        }
        .bounded()
    }

    /// The peers whose records were taken but that are not handed over: what their probes said.
    fn unverified(&self, now: Instant) -> Vec<Seen> {
        let mut pending: Vec<libp2p_identity::PeerId> = self
            .instances
            .peers()
            .filter(|k| self.table.seq_of(*k).is_some() && !self.table.is_visible(*k))
            .filter_map(|k| self.table.peer_of(k))
            .collect();
        pending.sort();
        pending.dedup();
        pending
            .into_iter()
            .map(|p| {
                let mut place: Vec<&multiaddr::Multiaddr> =
                    self.table.place_of(&p).into_iter().collect();
                place.sort();
                let failed: Vec<String> = place
                    .iter()
                    .filter(|a| {
                        self.probes_seen.failed(a)
                            || self.table.probed_lately(a, now) == Some(Some(false))
                    })
                    .map(|a| a.to_string())
                    .collect();
                let why = if !failed.is_empty() {
                    format!(
                        "not verified: its probe failed (refused or no answer) at {}",
                        failed.join(", ")
                    )
                } else if place.is_empty() {
                    let heard: Vec<IpAddr> = self
                        .links
                        .values()
                        .flat_map(|l| {
                            self.table
                                .spoke_from(&p, &Via::Multicast(l.iface.name.as_str().into()))
                        })
                        .collect();
                    if !heard.is_empty() && heard.iter().all(IpAddr::is_ipv6) {
                        // Its IPv4 packets never came, and its record offers no IPv6 address
                        // a packet came from: nothing to probe.
                        format!(
                            "heard only on IPv6 (from {}), and its record has no address usable \
                             from here",
                            heard[0]
                        )
                    } else {
                        "not verified: no address usable from here".to_owned()
                    }
                } else {
                    "not verified yet: its probe has not answered".to_owned()
                };
                Seen {
                    peer_id: p.to_string(),
                    ways: vec![],
                    age_secs: None,
                    verified: false,
                    missing: vec![why],
                }
            })
            .collect()
    }

    /// The hosts of the peers known now, each once, this host left out: the agents a `mesh`
    /// request asks, and those it does not. A host is asked only at the addresses whose agent
    /// could ask this one (on one of its links, a static host, or in `exchange_allow`): a signed
    /// record names whatever addresses its signer chose, and the view ask must not carry this
    /// host's connections anywhere such a record points.
    pub fn mesh_targets(&self) -> (Vec<Target>, Vec<Target>) {
        let own: BTreeSet<IpAddr> = self
            .links
            .values()
            .flat_map(|l| {
                l.iface
                    .v4_addrs()
                    .map(IpAddr::V4)
                    .chain(l.iface.v6_addrs().map(IpAddr::V6))
            })
            .collect();
        let mut hosts: Vec<Target> = Vec::new();
        let mut elsewhere: Vec<Target> = Vec::new();
        for p in self.table.snapshot() {
            let mut ips: Vec<IpAddr> = p
                .addrs
                .iter()
                .filter_map(|a| a.parse().ok().as_ref().and_then(crate::wire::addrs::ip_of))
                .map(|ip| ip.to_canonical())
                // A link-local address without its zone cannot be dialled from here.
                .filter(|ip| !matches!(ip, IpAddr::V6(v6) if crate::wire::addrs::is_link_local_v6(v6)))
                .collect();
            ips.sort_by_key(|ip| (ip.is_ipv6(), *ip));
            ips.dedup();
            if ips.is_empty() || ips.iter().any(|ip| own.contains(ip)) {
                continue;
            }
            let (ips, off): (Vec<IpAddr>, Vec<IpAddr>) = ips
                .into_iter()
                .partition(|ip| self.may_exchange(&std::net::SocketAddr::new(*ip, 0)));
            if ips.is_empty() {
                if elsewhere.len() < MAX_HOSTS_ASKED {
                    elsewhere.push(Target {
                        ips: off,
                        expected: vec![p.peer_id],
                    });
                }
                continue;
            }
            let full = hosts.len() >= MAX_HOSTS_ASKED;
            match hosts.iter_mut().find(|h| h.ips.iter().any(|ip| ips.contains(ip))) {
                Some(h) => {
                    h.expected.push(p.peer_id);
                    for ip in ips {
                        if !h.ips.contains(&ip) {
                            h.ips.push(ip);
                        }
                    }
                }
                None if !full => hosts.push(Target {
                    ips,
                    expected: vec![p.peer_id],
                }),
                None => {}
            }
        }
        (hosts, elsewhere)
    }

    /// `exo-discovery mesh` asked on the local socket by `client`.
    pub(super) fn on_mesh(&mut self, client: u64, now: Instant) {
        let local = HostView {
            asked: "local".to_owned(),
            expected: self.regs.keys().map(|k| k.to_string()).collect(),
            view: Ok(self.view(now)),
        };
        let not_asked = |t: Target, why: &str| HostView {
            asked: t.ips.first().map(|ip| ip.to_string()).unwrap_or_default(),
            expected: t.expected,
            view: Err(format!("not asked: {why}")),
        };
        let (targets, elsewhere) = self.mesh_targets();
        let elsewhere = elsewhere.into_iter().map(|t| {
            not_asked(
                t,
                "not on a link of this host, not a static host, not in exchange_allow",
            )
        });
        if !self.cfg.peer_exchange {
            let mut hosts = vec![local];
            hosts.extend(
                targets
                    .into_iter()
                    .map(|t| not_asked(t, "peer exchange is off on this agent")),
            );
            hosts.extend(elsewhere);
            self.reply(client, AgentMsg::Mesh(hosts));
            return;
        }
        self.actions.push_back(Action::AskViews {
            client,
            local,
            targets,
            unasked: elsewhere.collect(),
            within: VIEWS_WITHIN,
        });
    }
}

fn short(f: Family) -> &'static str {
    match f {
        Family::V4 => "v4",
        Family::V6 => "v6",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(addrs: &[&str], interfaces: &[&str]) -> PeerInfo {
        PeerInfo {
            peer_id: "p".into(),
            addrs: addrs.iter().map(|a| a.to_string()).collect(),
            interfaces: interfaces.iter().map(|a| a.to_string()).collect(),
            source: crate::wire::protocol::Source::Mdns,
            verified: vec![],
            seq: 1,
        }
    }

    #[test]
    fn ways_name_the_family_heard_on_a_link_and_the_kind_elsewhere() {
        let links: BTreeSet<&str> = ["eth0"].into_iter().collect();
        let p = info(
            &["/ip4/10.0.0.2/tcp/1", "/ip6/fd00::2/tcp/1"],
            &["eth0", "exchange:h", "static:h"],
        );
        // No packet matched yet: the families of its addresses.
        assert_eq!(
            ways(&p, &links, |_| vec![]),
            ["v4:eth0", "v6:eth0", "exchange", "static"]
        );
        // Its packets came only from its IPv6 link-local address there: only v6.
        let v6 = |_: &str| vec!["fe80::2".parse().unwrap()];
        assert_eq!(ways(&p, &links, v6), ["v6:eth0", "exchange", "static"]);
        assert_eq!(via_of("exchange:h", &links), Some(Via::Exchange("h".into())));
        assert_eq!(via_of("eth0", &links), Some(Via::Multicast("eth0".into())));
        assert_eq!(via_of("eth9", &links), None);
    }

    #[test]
    fn the_heard_senders_are_bounded_and_the_oldest_goes() {
        let t0 = crate::test_clock();
        let mut h = HeardFrom::default();
        for i in 0..(mesh::MAX_HEARD as u32 + 10) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            h.note(1, ip, crate::engine::keyed::source_print(ip), t0 + Duration::from_millis(u64::from(i)));
        }
        let kept: Vec<(u32, IpAddr, Instant)> = h.senders().collect();
        let held = |ip: [u8; 4]| kept.iter().any(|(link, kept, _)| *link == 1 && *kept == IpAddr::from(ip));
        assert!(kept.len() <= mesh::MAX_HEARD);
        assert!(kept.len() >= mesh::MAX_HEARD / 2);
        assert!(!held([10, 0, 0, 0]));
        // The most recent half, at least.
        let recent = (mesh::MAX_HEARD / 2) as u32;
        assert!((0x0a00_0000 + mesh::MAX_HEARD as u32 + 10 - recent..0x0a00_0000 + mesh::MAX_HEARD as u32 + 10)
            .all(|i| held(std::net::Ipv4Addr::from(i).octets())));
        // A sender heard again is listed once, with the time it was last heard.
        let again = IpAddr::from([10, 0, 0, 200]);
        h.note(1, again, crate::engine::keyed::source_print(again), t0 + Duration::from_secs(9));
        let listed: Vec<Instant> = h.senders().filter(|(_, ip, _)| *ip == again).map(|(_, _, t)| t).collect();
        assert_eq!(listed, [t0 + Duration::from_secs(9)]);
    }

    #[test]
    fn the_probe_outcomes_are_bounded_and_the_last_one_counts() {
        let mut p = ProbesSeen::default();
        let addr = |i: usize| format!("/ip4/10.0.0.1/tcp/{}", 1000 + i).parse().unwrap();
        p.note(&addr(0), false);
        assert!(p.failed(&addr(0)));
        p.note(&addr(0), true);
        assert!(!p.failed(&addr(0)));
        for i in 1..=2 * MAX_PROBES_KEPT {
            p.note(&addr(i), false);
            assert!(p.last.len() <= MAX_PROBES_KEPT);
        }
        assert!(!p.failed(&addr(0)) && p.last.get(&addr(0)).is_none());
        // The most recent half at least are kept, each with its last outcome.
        for i in MAX_PROBES_KEPT + MAX_PROBES_KEPT / 2 + 1..=2 * MAX_PROBES_KEPT {
            assert!(p.failed(&addr(i)), "{i}");
        }
        p.note(&addr(2 * MAX_PROBES_KEPT), true);
        assert!(!p.failed(&addr(2 * MAX_PROBES_KEPT)));
    }
}
