//! Static hosts (asked by unicast every `static_poll_secs`, one round at a time) and the
//! operator's requests: adding and removing hosts, adding a peer by hand.

use super::repeat::Repeated;
use super::table::Via;
use super::{Action, Engine, StaticReply};
use crate::wire::protocol::{ClientMsg, Source};
use crate::wire::net::HostSpec;
use log::Level;
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub use crate::wire::config::MAX_STATIC_HOSTS;
/// Most addresses remembered for a static host given by name.
pub const MAX_IPS_PER_HOST: usize = 8;

/// One static host.
#[derive(Debug)]
pub(super) struct StaticHost {
    pub spec: HostSpec,
    pub next_poll: Instant,
    pub in_flight: bool,
    pub errors: Repeated,
    /// Its agent's peer exchange is being asked.
    pub exchanging: bool,
    pub exchange_errors: Repeated,
    /// The addresses it was last asked at, and those it answered from: its agent may ask this
    /// one for peers (peer exchange).
    pub ips: Vec<IpAddr>,
    /// Its agent's last peer exchange answered (a host on a routed subnet answers only that way:
    /// mDNS answers only its own link).
    pub exchange_ok: bool,
}

impl StaticHost {
    /// When it is next asked (`None` while a round runs).
    pub fn due(&self) -> Option<Instant> {
        (!self.in_flight).then_some(self.next_poll)
    }
}

impl Engine {
    pub(super) fn add_host(&mut self, host: &str, now: Instant) -> Result<String, String> {
        let spec = HostSpec::parse(host)?;
        let spec_ip = match &spec {
            HostSpec::Ip { ip, .. } => Some(*ip),
            HostSpec::Name(_) => None,
        };
        if self.statics.len() >= MAX_STATIC_HOSTS && !self.statics.contains_key(host) {
            return Err(format!("at most {MAX_STATIC_HOSTS} static hosts"));
        }
        let every = self.cfg.static_poll_secs;
        self.log(Level::Info, || {
            format!("static host {host}: asking it by unicast every {every} s")
        });
        self.statics.insert(
            host.to_owned(),
            StaticHost {
                spec,
                next_poll: now,
                in_flight: false,
                errors: Repeated::default(),
                exchanging: false,
                exchange_errors: Repeated::default(),
                ips: match spec_ip {
                    Some(ip) => vec![ip],
                    None => Vec::new(),
                },
                exchange_ok: false,
            },
        );
        Ok(format!("asking {host} for its agent's records"))
    }

    pub(super) fn ask_due_statics(&mut self, now: Instant) {
        // Per port tried: a LAN answers in well under a millisecond, a VPN in tens.
        let wait = Duration::from_millis(self.cfg.probe_timeout_ms.clamp(100, 300));
        let mut due = Vec::new();
        for (host, h) in self.statics.iter_mut() {
            if h.due().is_some_and(|t| now >= t) {
                h.in_flight = true;
                self.actions.push_back(Action::AskStatic {
                    host: host.clone(),
                    spec: h.spec.clone(),
                    wait,
                });
                due.push(host.clone());
            }
        }
        for host in due {
            self.ask_exchange(&host);
        }
    }

    pub(super) fn on_static(
        &mut self,
        host: String,
        resolved: Vec<IpAddr>,
        result: Result<Vec<StaticReply>, String>,
        now: Instant,
    ) {
        let every = Duration::from_secs(self.cfg.static_poll_secs);
        let Some(h) = self.statics.get_mut(&host) else {
            return; // removed meanwhile
        };
        h.in_flight = false;
        h.next_poll = now + every;
        if let HostSpec::Name(_) = h.spec {
            let answered = result.iter().flatten().map(|(ip, _, _)| *ip);
            let mut ips: Vec<IpAddr> = resolved.into_iter().chain(answered).collect();
            ips.sort();
            ips.dedup();
            ips.truncate(MAX_IPS_PER_HOST);
            h.ips = ips;
        }
        match result {
            Ok(replies) => {
                if h.errors.cleared().is_some() {
                    self.log(Level::Info, || {
                        format!("static host {host}: answering again")
                    });
                }
                self.on_static_replies(&host, replies, now);
            }
            Err(e) => {
                if h.errors.failed(&e, now, None).is_some() {
                    self.log(Level::Warn, || format!("static host {host}: {e}"));
                }
            }
        }
    }

    pub(super) fn manage(&mut self, msg: ClientMsg, now: Instant) -> Result<String, String> {
        match msg {
            ClientMsg::AddHost { host } => self.add_host(&host, now),
            ClientMsg::RemoveHost { host } => {
                if self.statics.remove(&host).is_none() {
                    return Err(format!("{host} is not a static host"));
                }
                let mut events = self.table.remove_via(&Via::Static(host.as_str().into()));
                events.extend(self.table.remove_via(&Via::Exchange(host.as_str().into())));
                for ev in events {
                    self.broadcast(ev);
                }
                self.log(Level::Info, || format!("static host {host}: removed"));
                Ok(format!("no longer asking {host}"))
            }
            ClientMsg::AddPeer { multiaddr } => {
                let mut ma: multiaddr::Multiaddr = multiaddr
                    .parse()
                    .map_err(|e| format!("bad multiaddr {multiaddr:?}: {e}"))?;
                let Some(multiaddr::Protocol::P2p(peer)) = ma.pop() else {
                    return Err(format!("{multiaddr:?} must end in /p2p/<peer-id>"));
                };
                let full = ma.with(multiaddr::Protocol::P2p(peer));
                self.log(Level::Info, || format!("manual peer {peer} at {full}"));
                if let Some(ev) =
                    self.table
                        .observe_unsigned(peer, Source::Manual, &Via::Manual, vec![full], now)
                {
                    self.broadcast(ev);
                }
                Ok(format!("added {peer}"))
            }
            other => Err(format!("not a management request: {other:?}")),
        }
    }
}
