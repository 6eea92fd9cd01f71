//! The `status` report: interfaces in use and why others are not, counters, peers, clients.

use super::links::Link;
use super::Engine;
use crate::wire::net::Family;
use crate::wire::protocol::{BudgetUse, FamilyStatus, IfaceStatus, StaticHostStatus, Status, UnusedIface};
use crate::wire::record::Reject;
use std::collections::BTreeMap;
use std::time::Instant;

fn names(m: &BTreeMap<Reject, u64>) -> BTreeMap<String, u64> {
    m.iter().map(|(k, v)| (k.as_str().to_owned(), *v)).collect()
}

/// Adds drop counts of either kind (the table's, the engine's) under their names.
fn add_drops<'a>(
    into: &mut BTreeMap<String, u64>,
    from: impl IntoIterator<Item = (&'a str, &'a u64)>,
) {
    for (k, v) in from {
        *into.entry(k.to_owned()).or_default() += v;
    }
}

impl Engine {
    pub(super) fn family_status(&self, l: &Link, f: Family) -> FamilyStatus {
        let sock = l.socks.get(&f);
        let problem = if !f.present_on(&l.iface) {
            Some(match f {
                Family::V4 => "no IPv4 address".to_owned(),
                Family::V6 => "no IPv6 link-local address".to_owned(),
            })
        } else if let Some(e) = l.open_errors.get(&f).and_then(|e| e.current()) {
            Some(e.to_owned())
        } else {
            sock.and_then(|s| s.errors.current())
                .map(|e| format!("multicast send refused: {e}"))
        };
        FamilyStatus {
            family: f.as_str().to_owned(),
            in_use: sock.is_some_and(|s| s.usable),
            problem,
            packets_in: self
                .packets_in
                .get(&(l.iface.index, f))
                .copied()
                .unwrap_or(0),
            packets_out: sock.map_or(0, |s| s.packets_out),
        }
    }

    /// The report, as of `now`.
    pub fn status(&self, now: Instant) -> Status {
        let interfaces = self
            .links
            .values()
            .map(|l| {
                let stats = self.via_stats.get(&l.via);
                let mut dropped = BTreeMap::new();
                if let Some(s) = stats {
                    add_drops(&mut dropped, s.dropped.iter().map(|(k, v)| (*k, v)));
                }
                if let Some(d) = self.table.counters().dropped_via.get(&l.via) {
                    add_drops(&mut dropped, d.iter().map(|(k, v)| (k.as_str(), v)));
                }
                let families = [Family::V4, Family::V6]
                    .into_iter()
                    .map(|f| self.family_status(l, f))
                    .collect();
                IfaceStatus {
                    name: l.iface.name.clone(),
                    index: l.iface.index,
                    families,
                    records_accepted: stats.map_or(0, |s| s.accepted),
                    records_rejected: stats.map(|s| names(&s.rejected)).unwrap_or_default(),
                    dropped,
                }
            })
            .collect();
        let unused_interfaces = self
            .listed
            .iter()
            .filter(|i| !self.links.contains_key(&i.index))
            .map(|i| {
                let why = if i.loopback && !self.cfg.loopback {
                    "loopback (not used unless loopback = true)"
                } else if !self.cfg.wants_interface(&i.name, i.loopback) {
                    "excluded by the interfaces / exclude_interfaces globs"
                } else if !i.up {
                    "down"
                } else if !i.multicast {
                    "no MULTICAST flag"
                } else {
                    "not yet picked up"
                };
                UnusedIface {
                    name: i.name.clone(),
                    why: why.to_owned(),
                }
            })
            .collect();
        let counters = self.table.counters();
        let mut dropped = BTreeMap::new();
        add_drops(
            &mut dropped,
            counters.dropped.iter().map(|(k, v)| (k.as_str(), v)),
        );
        for s in self.via_stats.values() {
            add_drops(&mut dropped, s.dropped.iter().map(|(k, v)| (*k, v)));
        }
        if self.unsigned_over > 0 {
            dropped.insert("unsigned-not-logged".into(), self.unsigned_over);
        }
        if self.askers.refused > 0 {
            dropped.insert("exchange-refused".into(), self.askers.refused);
        }
        add_drops(
            &mut dropped,
            self.askers.refused_open.iter().map(|(k, v)| (*k, v)),
        );
        Status {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_secs: now.saturating_duration_since(self.started).as_secs(),
            namespace: self.cfg.namespace.clone(),
            interfaces,
            unused_interfaces,
            peers: self.table.visible(),
            clients: self.clients.len(),
            registrations: self.regs.len(),
            static_hosts: self
                .statics
                .iter()
                .map(|(h, s)| {
                    // A host on a routed subnet answers by peer exchange only.
                    let answering = s.errors.current().is_none() || s.exchange_ok;
                    StaticHostStatus {
                        host: h.clone(),
                        answering,
                        last_error: s.errors.current().filter(|_| !answering).map(str::to_owned),
                    }
                })
                .collect(),
            records_accepted: counters.accepted,
            records_rejected: names(&counters.rejected),
            dropped,
            budget: self.budget(),
        }
    }

    /// Every bound the engine keeps, with its use.
    fn budget(&self) -> Vec<BudgetUse> {
        use super::table::{MAX_PEERS, MAX_PENDING};
        let u = self.table.usage();
        let b = |name: &str, used: usize, max: usize| BudgetUse {
            name: name.to_owned(),
            used: used as u64,
            max: max as u64,
        };
        vec![
            b("peers", u.established, MAX_PEERS),
            b("pending", u.pending, MAX_PENDING),
            b("probes", u.probes_in_flight, super::MAX_PROBES),
            b(
                "clients",
                self.clients.len(),
                crate::wire::protocol::MAX_CONNECTIONS,
            ),
            b(
                "exchange-askers",
                self.askers.len(),
                super::exchange::MAX_ASKERS,
            ),
            b(
                "unsigned-logged",
                self.unsigned_ignored.len(),
                super::intake::MAX_UNSIGNED_LOGGED,
            ),
        ]
    }
}
