//! The engine's decisions, one test each, on a simulated clock: inputs in, actions checked.
//!
//! This file is the rig every test drives (an engine on a clock the test moves) and the helpers
//! the tests share; each file beside it tests one concern.

mod catchup;
mod exchange;
mod files;
mod goodbye;
mod intake;
mod links;
mod mesh;
mod reachability;
mod registrations;
mod rewind;
mod statics;

use super::*;
use crate::engine::links::heard::Label;
use crate::wire::protocol::{EventKind, Source};
use crate::wire::net::SendClass;
use crate::wire::record;
use libp2p_identity::Keypair;
use std::net::{Ipv4Addr, Ipv6Addr};

const IDX: u32 = 2;

fn eth0() -> Iface {
    Iface {
        name: "eth0".into(),
        index: IDX,
        up: true,
        multicast: true,
        loopback: false,
        point_to_point: false,
        v4: vec![(Ipv4Addr::new(10, 0, 0, 1), 24)],
        v6: vec![("fe80::1".parse::<Ipv6Addr>().unwrap(), 64)],
    }
}

/// An engine on a clock the test moves.
struct Rig {
    e: Engine,
    t0: Instant,
    now: Instant,
}

impl Rig {
    fn new(cfg: Config) -> Rig {
        let t0 = crate::test_clock();
        Rig {
            e: Engine::new(cfg, t0),
            t0,
            now: t0,
        }
    }

    /// Moves the clock to `secs` after the start and lets due work happen.
    fn at(&mut self, secs: f64) -> Vec<Action> {
        self.now = self.t0 + Duration::from_secs_f64(secs);
        self.e.handle_timeout(self.now);
        self.take()
    }

    fn input(&mut self, i: Input) -> Vec<Action> {
        self.e.handle(i, self.now);
        self.take()
    }

    /// `k`'s record of `seq` comes in on eth0 from 10.0.0.2 as the agent gets it: mdns-sd
    /// resolves it, and the link socket hears the packet that carried it.
    fn announced(&mut self, k: &Keypair, seq: u64) -> Vec<Action> {
        let mut a = self.input(resolved(k, seq));
        a.extend(self.input(heard(k, seq, 120)));
        a
    }

    /// `k`'s record of `seq` resolved on link `link` from these IPs, and a packet naming it heard
    /// from each (see [`Rig::announced`]).
    fn announced_from(&mut self, k: &Keypair, seq: u64, link: u32, ips: &[[u8; 4]]) -> Vec<Action> {
        let mut a = self.input(resolved_from(k, seq, link, ips));
        let label = crate::wire::instance::instance_label(&k.public().to_peer_id(), seq);
        for ip in ips {
            a.extend(self.input(heard_on(link, Heard {
                family: Family::V4,
                from: SocketAddr::new(IpAddr::V4(Ipv4Addr::from(*ip)), 5353),
                instances: vec![(Label::new(label.clone()), 120)],
                goodbyes: Vec::new(),
                libp2p_peers: Vec::new(),
                libp2p_query: false,
                named: Vec::new(),
                unicast: false,
                records: Vec::new(),
                service_query: None,
            })));
        }
        a
    }

    fn take(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.e.poll_action()).collect()
    }

    /// Answers every query as sent and every daemon change as done; returns the other actions.
    fn settle(&mut self, mut actions: Vec<Action>) -> Vec<Action> {
        let mut rest = Vec::new();
        while !actions.is_empty() {
            for a in std::mem::take(&mut actions) {
                match a {
                    Action::SendQuery { link, family, .. } => {
                        actions.extend(self.input(Input::QuerySent {
                            link,
                            family,
                            outcome: SendOutcome::Sent,
                        }))
                    }
                    Action::SetDaemon { link, families } if !families.is_empty() => {
                        actions.extend(self.input(Input::DaemonSet {
                            link,
                            families,
                            result: Ok(()),
                        }))
                    }
                    Action::ListInterfaces => {
                        actions.extend(self.input(Input::Interfaces(Ok(vec![eth0()]))))
                    }
                    other => rest.push(other),
                }
            }
        }
        rest
    }

    /// Starts with eth0 up, both families working.
    fn up(cfg: Config) -> Rig {
        let mut r = Rig::new(cfg);
        let first = r.at(0.0);
        r.settle(first);
        r
    }
}

fn cfg() -> Config {
    Config {
        verify_reachability: false,
        ..Config::default()
    }
}

fn signed(k: &Keypair, seq: u64) -> Vec<u8> {
    record::sign(k, "exo", seq, &["/ip4/0.0.0.0/tcp/4001".parse().unwrap()]).unwrap()
}

fn resolved(k: &Keypair, seq: u64) -> Input {
    let label = crate::wire::instance::instance_label(&k.public().to_peer_id(), seq);
    Input::Resolved {
        link: IDX,
        fullname: crate::wire::instance::fullname(&label),
        signed: Ok(signed(k, seq)),
        ips: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))],
    }
}

/// The address a peer whose record [`resolved`] reported is dialled and probed at.
fn v4_addr(k: &Keypair) -> String {
    format!("/ip4/10.0.0.2/tcp/4001/p2p/{}", k.public().to_peer_id())
}

/// What a link's socket heard on link `link`.
fn heard_on(link: u32, heard: Heard) -> Input {
    Input::Heard { link, heard }
}

/// A multicast packet on eth0 over IPv4 from `from` that says nothing yet: fill in what it says.
fn packet_from(from: &str) -> Heard {
    Heard {
        family: Family::V4,
        from: from.parse().unwrap(),
        instances: Vec::new(),
        goodbyes: Vec::new(),
        libp2p_peers: Vec::new(),
        libp2p_query: false,
        named: Vec::new(),
        unicast: false,
        records: Vec::new(),
        service_query: None,
    }
}

fn heard(k: &Keypair, seq: u64, ttl: u32) -> Input {
    let label = crate::wire::instance::instance_label(&k.public().to_peer_id(), seq);
    heard_on(IDX, Heard {
        instances: vec![(Label::new(label), ttl)],
        ..packet_from("10.0.0.2:5353")
    })
}

/// A DNS response with the PTR and TXT of one instance carrying a signed record, as an agent
/// answers a query.
fn txt_response(label: &str, signed: &[u8]) -> Vec<u8> {
    let target = format!("{label}._p2p._udp.local");
    let mut p = vec![0, 0, 0x84, 0, 0, 0, 0, 2, 0, 0, 0, 0];
    crate::wire::dns::write_name(&mut p, crate::wire::dns::SERVICE);
    p.extend_from_slice(&[0, 12, 0, 1, 0, 0, 0, 120]);
    let mut name = Vec::new();
    crate::wire::dns::write_name(&mut name, &target);
    p.extend_from_slice(&(name.len() as u16).to_be_bytes());
    p.extend_from_slice(&name);
    crate::wire::dns::write_name(&mut p, &target);
    p.extend_from_slice(&[0, 16, 0, 1, 0, 0, 0, 120]);
    let mut rdata = Vec::new();
    for (k, v) in record::to_txt(signed) {
        rdata.push((k.len() + 1 + v.len()) as u8);
        rdata.extend_from_slice(k.as_bytes());
        rdata.push(b'=');
        rdata.extend_from_slice(&v);
    }
    p.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    p.extend_from_slice(&rdata);
    p
}

fn events(actions: &[Action]) -> Vec<(EventKind, String)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Broadcast(ev) => Some((ev.event, ev.peer.peer_id.clone())),
            _ => None,
        })
        .collect()
}

fn logs(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Log { line, .. } => Some(line.clone()),
            _ => None,
        })
        .collect()
}

fn queries(actions: &[Action]) -> Vec<Family> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SendQuery { family, .. } => Some(*family),
            _ => None,
        })
        .collect()
}

fn announced(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Announce { announcement, .. } => Some(announcement.label.clone()),
            _ => None,
        })
        .collect()
}

/// The address the actions probe (there must be exactly one).
fn probe_of(a: &[Action]) -> Multiaddr {
    let probes: Vec<&Multiaddr> = a
        .iter()
        .filter_map(|a| match a {
            Action::Probe { addr, .. } => Some(addr),
            _ => None,
        })
        .collect();
    assert_eq!(probes.len(), 1, "{a:?}");
    probes[0].clone()
}

fn goodbye(k: &Keypair, seq: u64) -> Input {
    let label = crate::wire::instance::instance_label(&k.public().to_peer_id(), seq);
    Input::Removed {
        link: IDX,
        fullname: crate::wire::instance::fullname(&label),
    }
}

/// The addresses handed over for `k`'s peer.
fn handed_over(r: &Rig, k: &Keypair) -> Vec<String> {
    let id = k.public().to_peer_id();
    r.e.snapshot()
        .into_iter()
        .find(|p| p.peer_id == id.to_base58())
        .map(|p| p.addrs)
        .unwrap_or_default()
}

fn register(k: &Keypair) -> Input {
    Input::Client {
        id: 7,
        request: Request::Register(signed(k, 1)),
    }
}

/// `k`'s record of `seq` resolved on eth0 from `ip`, listening on `port`.
fn resolved_at(k: &Keypair, seq: u64, ip: [u8; 4], port: u16) -> Input {
    let label = crate::wire::instance::instance_label(&k.public().to_peer_id(), seq);
    let listen = [format!("/ip4/0.0.0.0/tcp/{port}").parse().unwrap()];
    Input::Resolved {
        link: IDX,
        fullname: crate::wire::instance::fullname(&label),
        signed: Ok(record::sign(k, "exo", seq, &listen).unwrap()),
        ips: vec![IpAddr::V4(Ipv4Addr::from(ip))],
    }
}

/// Every address the actions probe.
fn probes_of(a: &[Action]) -> Vec<Multiaddr> {
    a.iter()
        .filter_map(|a| match a {
            Action::Probe { addr, .. } => Some(addr.clone()),
            _ => None,
        })
        .collect()
}

/// `k`'s record of `seq` (listening on port 4001) resolved on link `link` from these IPs.
fn resolved_from(k: &Keypair, seq: u64, link: u32, ips: &[[u8; 4]]) -> Input {
    let label = crate::wire::instance::instance_label(&k.public().to_peer_id(), seq);
    Input::Resolved {
        link,
        fullname: crate::wire::instance::fullname(&label),
        signed: Ok(signed(k, seq)),
        ips: ips
            .iter()
            .map(|ip| IpAddr::V4(Ipv4Addr::from(*ip)))
            .collect(),
    }
}

/// Answers every probe among `actions` with `ok`, and those that answering brings, until none
/// is left; returns how many were answered.
fn answer_probes(r: &mut Rig, actions: Vec<Action>, ok: bool) -> usize {
    let mut n = 0;
    let mut queue = probes_of(&actions);
    while let Some(addr) = queue.pop() {
        n += 1;
        queue.extend(probes_of(&r.input(Input::Probed { addr, ok })));
    }
    n
}
