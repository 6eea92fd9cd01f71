//! Peer exchange (see [`crate::wire::exchange`]): who may ask, answering other agents' asks with
//! this host's own nodes and the peers handed over here, and taking in what a static host's agent
//! hands over.
//!
//! Who may ask: an agent on one of this agent's links (its address in one of the interface's
//! subnets or prefixes, or IPv6 link-local on the interface the connection came in on), one of
//! this agent's static hosts, or one in a range the operator listed (`exchange_allow`). Anyone
//! else is refused before a byte is read, so the cluster's membership is never told to a
//! stranger (RFC 6762 §11's rule for mDNS: act only on the local link). Each IP has
//! [`MAX_OPEN_PER_IP`] connections at once among [`MAX_OPEN`], and must send its ask within
//! [`ASK_WITHIN`]: one host holding connections open, or dripping bytes, holds two slots and no
//! more, and a legitimate asker still gets one.

use super::intake::{Offer, Where};
use super::table::Via;
use super::{Action, Engine};
use crate::wire::exchange::{self, Ask, Reply};
use crate::wire::protocol::Source;
use log::Level;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Exchange connections served at once; more are closed at once.
pub const MAX_OPEN: usize = 16;
/// Exchange connections served at once from one IP (an agent asks one at a time).
pub const MAX_OPEN_PER_IP: usize = 2;
/// How long an admitted asker has to send its whole ask (an agent sends it with the connection).
pub const ASK_WITHIN: Duration = Duration::from_millis(500);
/// How long a whole exchange may take on the answering side.
pub const SERVE_TIMEOUT: Duration = Duration::from_secs(2);

/// One asking IP is answered at most this often (an agent asks every `static_poll_secs`).
pub const ASK_INTERVAL: Duration = Duration::from_secs(1);
/// Asking IPs remembered for that rule; when more ask within one interval, the rest are refused.
pub const MAX_ASKERS: usize = 1024;

/// Who asked when.
#[derive(Debug, Default)]
pub(super) struct Askers {
    last: HashMap<IpAddr, Instant>,
    /// Asks refused by these rules.
    pub refused: u64,
    /// Connections refused before their ask, by reason (see [`Engine::on_exchange_opened`]).
    pub refused_open: BTreeMap<&'static str, u64>,
}

impl Askers {
    /// Whether `ip` may be answered now (and notes that it was).
    fn admit(&mut self, ip: IpAddr, now: Instant) -> Result<(), &'static str> {
        let why = if self
            .last
            .get(&ip)
            .is_some_and(|t| now.saturating_duration_since(*t) < ASK_INTERVAL)
        {
            Some("asked again within a second")
        } else if self.last.len() >= MAX_ASKERS && !self.last.contains_key(&ip) {
            self.last
                .retain(|_, t| now.saturating_duration_since(*t) < ASK_INTERVAL);
            (self.last.len() >= MAX_ASKERS).then_some("too many agents asking at once")
        } else {
            None
        };
        if let Some(why) = why {
            self.refused += 1;
            return Err(why);
        }
        self.last.insert(ip, now);
        Ok(())
    }

    /// Asking IPs remembered now.
    pub fn len(&self) -> usize {
        self.last.len()
    }
}

impl Engine {
    /// Whether `from` may ask at all: on one of the links, a static host, or in `exchange_allow`.
    pub(super) fn may_exchange(&self, from: &SocketAddr) -> bool {
        let ip = from.ip().to_canonical();
        let on_a_link = self.links.values().any(|l| match (&ip, from) {
            (IpAddr::V6(v6), SocketAddr::V6(sa)) if crate::wire::addrs::is_link_local_v6(v6) => {
                sa.scope_id() == l.iface.index
            }
            _ => crate::wire::addrs::on_link(&ip, &l.iface),
        });
        on_a_link
            || self.statics.values().any(|h| h.ips.contains(&ip))
            || self
                .cfg
                .exchange_allow_ranges()
                .iter()
                .any(|r| r.contains(&ip))
    }

    /// An exchange connection opened from `from` (`same_ip` and `open`: those already open):
    /// admitted, or closed at once and counted.
    pub(super) fn on_exchange_opened(
        &mut self,
        id: u64,
        from: SocketAddr,
        same_ip: usize,
        open: usize,
    ) {
        let refused = if !self.cfg.peer_exchange {
            Some("exchange-refused-off")
        } else if !self.may_exchange(&from) {
            Some("exchange-refused-stranger")
        } else if open >= MAX_OPEN {
            Some("exchange-refused-busy")
        } else if same_ip >= MAX_OPEN_PER_IP {
            Some("exchange-refused-per-ip")
        } else {
            None
        };
        if let Some(why) = refused {
            *self.askers.refused_open.entry(why).or_default() += 1;
            let n = self.askers.refused_open[why];
            if n == 1 && why == "exchange-refused-stranger" {
                self.log(Level::Info, || {
                    format!(
                        "peer exchange: {} refused: not on a link of this host, not a static host, not in \
                         exchange_allow (said once; counted as {why} in status)",
                        from.ip().to_canonical()
                    )
                });
            }
        }
        self.actions.push_back(Action::AdmitExchange {
            id,
            admit: refused.is_none(),
        });
    }

    /// Another agent asked, from `from`, reaching this host at `to`; answer it with
    /// [`Action::AnswerExchange`]: this host's own nodes (at `to`) and the peers handed over here.
    pub(super) fn on_exchange_asked(
        &mut self,
        id: u64,
        from: IpAddr,
        to: IpAddr,
        ask: Ask,
        now: Instant,
    ) {
        let refused = if !self.cfg.peer_exchange {
            Some("peer exchange is off on this agent".to_owned())
        } else if let Some(why) = exchange::refusal(&ask, &self.cfg.namespace) {
            Some(why)
        } else if let Err(why) = if ask.is_view() {
            self.view_askers.admit(from, now)
        } else {
            self.askers.admit(from, now)
        } {
            Some(why.to_owned())
        } else {
            None
        };
        let reply = match refused {
            Some(why) => {
                self.log(Level::Debug, || {
                    format!("peer exchange: {from} refused: {why}")
                });
                Reply::Refused { why }
            }
            None if ask.is_view() => {
                self.log(Level::Debug, || format!("mesh view handed to {from}"));
                Reply::View(self.view(now))
            }
            None => {
                let to = to.to_canonical();
                let own: Vec<exchange::Peer> = self
                    .regs
                    .values()
                    .filter(|_| crate::wire::addrs::owned_by_a_host(&to))
                    .map(|r| exchange::Peer {
                        signed: r.signed.clone(),
                        ips: vec![to],
                    })
                    .collect();
                let room = exchange::MAX_PEERS.saturating_sub(own.len());
                let (relayed, complete) = self.table.exchange_entries(room);
                let mut peers = own;
                peers.extend(relayed);
                self.log(Level::Debug, || {
                    format!("peer exchange: {} peers handed to {from}", peers.len())
                });
                Reply::Peers { peers, complete }
            }
        };
        self.actions.push_back(Action::AnswerExchange { id, reply });
    }

    /// Asks `host`'s agent for its peers, if peer exchange is on and its previous ask ended.
    pub(super) fn ask_exchange(&mut self, host: &str) {
        // Exchanged records are hints checked from here: without reachability checks, nothing
        // would check them.
        if !self.cfg.peer_exchange || !self.cfg.verify_reachability {
            return;
        }
        let Some(h) = self.statics.get_mut(host) else {
            return;
        };
        if h.exchanging {
            return;
        }
        h.exchanging = true;
        let spec = h.spec.clone();
        self.log(Level::Debug, || {
            format!("static host {host}: asking for its peers")
        });
        let timeout = Duration::from_millis(self.cfg.probe_timeout_ms.saturating_mul(3))
            .clamp(Duration::from_millis(500), Duration::from_secs(5));
        self.actions.push_back(Action::AskExchange {
            host: host.to_owned(),
            spec,
            timeout,
        });
    }

    /// What `host`'s agent handed over (or why not).
    pub(super) fn on_exchanged(
        &mut self,
        host: String,
        result: Result<Reply, String>,
        now: Instant,
    ) {
        let Some(h) = self.statics.get_mut(&host) else {
            return; // removed meanwhile
        };
        h.exchanging = false;
        h.exchange_ok = matches!(result, Ok(Reply::Peers { .. }));
        let (peers, complete) = match result {
            Ok(Reply::Peers { peers, complete }) => {
                if h.exchange_errors.cleared().is_some() {
                    self.log(Level::Info, || {
                        format!("static host {host}: peer exchange answering again")
                    });
                }
                (peers, complete)
            }
            Ok(Reply::Refused { why }) => {
                if h.exchange_errors.failed(&why, now, None).is_some() {
                    self.log(Level::Warn, || {
                        format!("static host {host}: peer exchange refused: {why}")
                    });
                }
                return;
            }
            Ok(Reply::View(_)) | Err(_) => {
                let e = match result {
                    Err(e) => e,
                    _ => "answered a view, not peers".to_owned(),
                };
                if h.exchange_errors.failed(&e, now, None).is_some() {
                    self.log(Level::Info, || {
                        format!("static host {host}: no peer exchange ({e}); its own records only")
                    });
                }
                return;
            }
        };
        self.log(Level::Debug, || {
            format!(
                "static host {host}: peer exchange handed {} peers",
                peers.len()
            )
        });
        let via = Via::Exchange(host.as_str().into());
        for p in peers {
            // Link-local addresses name a link of the host's, which this host cannot tell.
            let ips: Vec<IpAddr> = p
                .ips
                .into_iter()
                .filter(crate::wire::addrs::owned_by_a_host)
                .filter(|ip| !matches!(ip, IpAddr::V6(v6) if crate::wire::addrs::is_link_local_v6(v6)))
                .collect();
            self.intake(
                Offer {
                    source: Source::Exchange,
                    via: via.clone(),
                    instance: None,
                    signed: Ok(p.signed),
                    addrs: Where::Ips {
                        ips,
                        zone: String::new(),
                    },
                },
                now,
            );
        }
        if complete {
            for ev in self.table.remove_unheard(&via, now) {
                self.broadcast(ev);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ip_is_answered_once_a_second_and_the_askers_are_bounded() {
        let t0 = crate::test_clock();
        let mut a = Askers::default();
        let ip = |i: u32| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        assert!(a.admit(ip(1), t0).is_ok());
        assert!(a.admit(ip(1), t0 + Duration::from_millis(500)).is_err());
        assert!(a.admit(ip(1), t0 + Duration::from_millis(1000)).is_ok());
        for i in 2..=MAX_ASKERS as u32 {
            assert!(a.admit(ip(i), t0 + Duration::from_millis(1000)).is_ok());
        }
        let late = t0 + Duration::from_millis(1500);
        assert_eq!(
            a.admit(ip(5000), late),
            Err("too many agents asking at once")
        );
        // A second on, the old ones make room.
        assert!(a.admit(ip(5000), t0 + Duration::from_millis(2100)).is_ok());
        assert!(a.len() <= MAX_ASKERS);
        assert_eq!(a.refused, 2);
    }
}
