//! The `status` report: interfaces in use and why others are not, counters, peers, clients.

use super::links::Link;
use super::Engine;
use crate::mcast::Family;
use crate::proto::{FamilyStatus, IfaceStatus, StaticHostStatus, Status, UnusedIface};
use crate::record::Reject;
use std::collections::BTreeMap;
use std::time::Instant;

fn names(m: &BTreeMap<Reject, u64>) -> BTreeMap<String, u64> {
    m.iter().map(|(k, v)| (k.as_str().to_owned(), *v)).collect()
}

impl Engine {
    fn family_status(&self, l: &Link, f: Family) -> FamilyStatus {
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
                    addresses_off_link: stats.map_or(0, |s| s.off_link),
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
                .map(|(h, s)| StaticHostStatus {
                    host: h.clone(),
                    answering: s.errors.current().is_none(),
                    last_error: s.errors.current().map(str::to_owned),
                })
                .collect(),
            records_accepted: counters.accepted,
            records_rejected: names(&counters.rejected),
        }
    }
}
