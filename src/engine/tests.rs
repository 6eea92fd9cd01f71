//! The engine's decisions, one test each, on a simulated clock: inputs in, actions checked.

use super::*;
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
            a.extend(self.input(Input::Heard(Heard {
                link,
                family: Family::V4,
                from: SocketAddr::new(IpAddr::V4(Ipv4Addr::from(*ip)), 5353),
                instances: vec![(label.clone(), 120)],
                libp2p_peers: Vec::new(),
                libp2p_query: false,
                named: Vec::new(),
                unicast: false,
                records: Vec::new(),
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

fn heard(k: &Keypair, seq: u64, ttl: u32) -> Input {
    let label = crate::wire::instance::instance_label(&k.public().to_peer_id(), seq);
    Input::Heard(Heard {
        link: IDX,
        family: Family::V4,
        from: "10.0.0.2:5353".parse().unwrap(),
        instances: vec![(label, ttl)],
        libp2p_peers: Vec::new(),
        libp2p_query: false,
        named: Vec::new(),
        unicast: false,
        records: Vec::new(),
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

#[test]
fn an_interface_is_queried_on_both_families_and_its_daemon_runs_on_those_that_send() {
    let mut r = Rig::new(cfg());
    assert!(matches!(r.at(0.0)[..], [Action::ListInterfaces]));
    let a = r.input(Input::Interfaces(Ok(vec![eth0()])));
    assert!(a.iter().any(|a| matches!(a, Action::AddLink(_))));
    assert_eq!(queries(&a), vec![Family::V4, Family::V6]);
    // The daemon waits for the whole round.
    let a = r.input(Input::QuerySent {
        link: IDX,
        family: Family::V4,
        outcome: SendOutcome::Sent,
    });
    assert!(!a.iter().any(|a| matches!(a, Action::SetDaemon { .. })));
    let a = r.input(Input::QuerySent {
        link: IDX,
        family: Family::V6,
        outcome: SendOutcome::Refused(SendFailure {
            errno: Some(1),
            message: "Operation not permitted".into(),
            explanation: "an output firewall rule refuses it",
            class: SendClass::Policy,
        }),
    });
    assert!(a
        .iter()
        .any(|a| matches!(a, Action::SetDaemon { families, .. } if *families == [Family::V4])));
    assert!(logs(&a).iter().any(
        |l| l.contains("eth0 IPv6: multicast send refused: Operation not permitted [errno 1]")
    ));
    let st = r.e.status(r.now);
    assert!(st.interfaces[0].families[0].in_use);
    assert!(!st.interfaces[0].families[1].in_use);
    assert!(st.interfaces[0].families[1]
        .problem
        .as_deref()
        .is_some_and(|p| p.contains("refused")));
}

#[test]
fn queries_back_off_from_one_second_to_the_cap() {
    let mut r = Rig::up(cfg());
    // Cap: the configured 60 s (at most the peer timeout).
    let mut sent_at = Vec::new();
    for tenth in 1..=1000 {
        let t = tenth as f64 / 10.0;
        let a = r.at(t);
        if !queries(&a).is_empty() {
            sent_at.push(t);
        }
        r.settle(a);
    }
    assert_eq!(sent_at, vec![1.0, 3.0, 7.0, 15.0, 31.0, 63.0]);
    assert_eq!(r.e.config().query_interval_max(), Duration::from_secs(60));
}

#[test]
fn a_repeated_send_error_is_said_once_summarised_and_its_end_reported() {
    let mut r = Rig::up(cfg());
    let refused = || {
        SendOutcome::Refused(SendFailure {
            errno: Some(105),
            message: "No buffer space available".into(),
            explanation: "x",
            class: SendClass::Transient,
        })
    };
    let mut said = Vec::new();
    for i in 0..40 {
        r.at(30.0 * i as f64);
        said.extend(logs(&r.input(Input::QuerySent {
            link: IDX,
            family: Family::V4,
            outcome: refused(),
        })));
    }
    let refusals: Vec<&String> = said.iter().filter(|l| l.contains("refused")).collect();
    assert_eq!(refusals.len(), 3, "{said:?}");
    assert!(refusals[0].contains("retrying, still in use"), "{said:?}");
    assert!(
        refusals[1].contains("refused for 30 s") && refusals[1].contains("not used"),
        "{said:?}"
    );
    assert!(
        refusals[2].contains("still refused (20 times in the last 600 s)"),
        "{said:?}"
    );
    let a = r.input(Input::QuerySent {
        link: IDX,
        family: Family::V4,
        outcome: SendOutcome::Sent,
    });
    assert!(logs(&a)
        .iter()
        .any(|l| l.contains("eth0 IPv4: mDNS ok again (after 19 more refused sends)")));
}

#[test]
fn a_socket_that_cannot_open_is_said_once_and_shown_in_status() {
    let mut r = Rig::new(cfg());
    r.at(0.0);
    r.input(Input::Interfaces(Ok(vec![eth0()])));
    let fail = |r: &mut Rig| {
        r.input(Input::QuerySent {
            link: IDX,
            family: Family::V6,
            outcome: SendOutcome::OpenFailed(SendFailure {
                errno: Some(19),
                message: "join failed: No such device".into(),
                explanation: "",
                class: SendClass::Permanent,
            }),
        })
    };
    assert_eq!(
        logs(&fail(&mut r)),
        vec!["eth0 IPv6: cannot use mDNS: join failed: No such device [errno 19]"]
    );
    assert!(logs(&fail(&mut r)).is_empty());
    let st = r.e.status(r.now);
    assert_eq!(
        st.interfaces[0].families[1].problem.as_deref(),
        Some("join failed: No such device")
    );
}

/// Every query from now on is refused with `class`; returns the actions of `secs` seconds.
fn refuse_queries_for(
    r: &mut Rig,
    from: f64,
    secs: f64,
    errno: i32,
    class: SendClass,
) -> Vec<Action> {
    let mut all = Vec::new();
    let mut t = from;
    while t <= from + secs {
        for a in r.at(t) {
            match a {
                Action::SendQuery { link, family, .. } => all.extend(r.input(Input::QuerySent {
                    link,
                    family,
                    outcome: SendOutcome::Refused(SendFailure {
                        errno: Some(errno),
                        message: "refused".into(),
                        explanation: "",
                        class,
                    }),
                })),
                other => all.push(other),
            }
        }
        t += 0.5;
    }
    all
}

#[test]
fn a_link_that_stops_carrying_mdns_drops_its_peers_and_daemon_only_once_sends_keep_failing() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    assert_eq!(events(&r.announced(&k, 1))[0].0, EventKind::Discovered);
    // Sends went before: a firewall that starts refusing is tolerated (and retried every
    // second) for ten seconds...
    let a = refuse_queries_for(&mut r, 1.0, 9.0, 1, SendClass::Policy);
    assert!(events(&a).is_empty(), "{a:?}");
    assert!(!a.iter().any(|a| matches!(a, Action::SetDaemon { .. })));
    let st = r.e.status(r.now);
    assert!(st.interfaces[0].families.iter().all(|f| f.in_use));
    assert!(st.interfaces[0].families[0]
        .problem
        .as_deref()
        .is_some_and(|p| p.contains("refused")));
    // ...then the link goes out of use, and its peers with it.
    let a = refuse_queries_for(&mut r, 10.5, 2.0, 1, SendClass::Policy);
    assert!(a
        .iter()
        .any(|a| matches!(a, Action::SetDaemon { families, .. } if families.is_empty())));
    assert_eq!(events(&a)[0].0, EventKind::Expired);
    assert!(
        logs(&a).iter().any(|l| l.contains("refused for 1")),
        "{:?}",
        logs(&a)
    );
}

#[test]
fn refusals_now_and_then_change_nothing_and_a_lasting_errno_acts_at_once() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    r.announced(&k, 1);
    // One query in ten refused (a rate limit, a busy queue), for a simulated minute.
    let mut n = 0;
    let mut all = Vec::new();
    for tenth in 1..=600 {
        for a in r.at(tenth as f64 / 10.0) {
            match a {
                Action::SendQuery { link, family, .. } => {
                    n += 1;
                    let outcome = if n % 10 == 0 {
                        SendOutcome::Refused(SendFailure {
                            errno: Some(105),
                            message: "No buffer space available".into(),
                            explanation: "",
                            class: SendClass::Transient,
                        })
                    } else {
                        SendOutcome::Sent
                    };
                    all.extend(r.input(Input::QuerySent {
                        link,
                        family,
                        outcome,
                    }));
                }
                other => all.push(other),
            }
        }
        r.input(heard(&k, 1, 120));
    }
    assert!(n >= 10);
    assert!(events(&all).is_empty(), "{:?}", events(&all));
    assert!(!all.iter().any(|a| matches!(a, Action::SetDaemon { .. })));
    // No route (a permanent errno) takes the family out at once.
    let a = refuse_queries_for(&mut r, 61.0, 70.0, 101, SendClass::Permanent);
    assert!(a
        .iter()
        .any(|a| matches!(a, Action::SetDaemon { families, .. } if families.is_empty())));
}

#[test]
fn a_registration_is_announced_at_once_then_at_doubling_gaps_then_every_interval() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    let a = r.input(Input::Client {
        id: 7,
        request: Request::Register(signed(&k, 5)),
    });
    assert!(matches!(
        &a[..],
        [
            ..,
            Action::Reply {
                client: 7,
                msg: AgentMsg::Registered { .. }
            }
        ]
    ));
    let label = crate::wire::instance::instance_label(&k.public().to_peer_id(), 5);
    assert_eq!(announced(&a), vec![label.clone()]);
    let mut times = Vec::new();
    for tenth in 1..=450 {
        let a = r.at(tenth as f64 / 10.0);
        if !announced(&a).is_empty() {
            times.push(tenth as f64 / 10.0);
        }
        r.settle(a);
    }
    assert_eq!(times, vec![1.2, 3.2, 7.2, 15.2, 30.0]);
}

#[test]
fn a_registration_may_replace_only_an_older_record_and_goes_with_its_connection() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    let reg = |r: &mut Rig, seq| {
        r.input(Input::Client {
            id: 7,
            request: Request::Register(signed(&k, seq)),
        })
    };
    reg(&mut r, 5);
    let a = reg(&mut r, 9);
    let old = crate::wire::instance::instance_label(&k.public().to_peer_id(), 5);
    assert!(a
        .iter()
        .any(|a| matches!(a, Action::Withdraw { label, .. } if *label == old)));
    let a = reg(&mut r, 3);
    assert!(matches!(
        &a[..],
        [Action::Reply {
            msg: AgentMsg::Error {
                kind: crate::wire::protocol::ErrorKind::Rejected(Reject::Replay),
                ..
            },
            ..
        }]
    ));
    let other = record::sign(&k, "lab", 10, &[]).unwrap();
    let a = r.input(Input::Client {
        id: 7,
        request: Request::Register(other),
    });
    assert!(
        matches!(&a[..], [Action::Reply { msg: AgentMsg::Error { message, .. }, .. }] if message.contains("\"lab\""))
    );
    for _ in 1..registrations::MAX_REGISTRATIONS {
        reg_new(&mut r);
    }
    let a = reg_new(&mut r);
    assert!(matches!(
        &a[..],
        [Action::Reply {
            msg: AgentMsg::Error {
                kind: crate::wire::protocol::ErrorKind::Limit,
                ..
            },
            ..
        }]
    ));
    let a = r.input(Input::Client {
        id: 7,
        request: Request::Gone,
    });
    let withdrawn = a
        .iter()
        .filter(|a| matches!(a, Action::Withdraw { .. }))
        .count();
    assert_eq!(withdrawn, registrations::MAX_REGISTRATIONS);
    assert_eq!(r.e.status(r.now).registrations, 0);
}

fn reg_new(r: &mut Rig) -> Vec<Action> {
    let k = Keypair::generate_ed25519();
    r.input(Input::Client {
        id: 7,
        request: Request::Register(signed(&k, 1)),
    })
}

#[test]
fn one_intake_counts_records_from_every_way_in_alike() {
    let mut r = Rig::up(cfg());
    let (k1, k2, k3) = (
        Keypair::generate_ed25519(),
        Keypair::generate_ed25519(),
        Keypair::generate_ed25519(),
    );
    // Multicast: accepted; a forged one (another key's record under k2's name) refused.
    r.announced(&k1, 1);
    let mut forged = resolved(&k2, 1);
    if let Input::Resolved { signed: s, .. } = &mut forged {
        *s = Ok(signed(&k3, 1));
    }
    r.input(forged);
    // A static host's reply carrying k2's record, and a stale replay of k1's.
    r.input(Input::Client {
        id: 1,
        request: Request::Manage(ClientMsg::AddHost {
            host: "10.9.9.9".into(),
        }),
    });
    let reply = txt_response(
        &crate::wire::instance::instance_label(&k2.public().to_peer_id(), 4),
        &signed(&k2, 4),
    );
    let a = r.input(Input::StaticReplied {
        host: "10.9.9.9".into(),
        resolved: Vec::new(),
        result: Ok(vec![(IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9)), None, reply)]),
    });
    assert_eq!(events(&a).len(), 1, "{a:?}");
    // The cache: k3's record, and k1's older one (a replay).
    let cached = |k: &Keypair, seq| crate::wire::cache::CachedPeer {
        signed: signed(k, seq),
        addrs: vec![format!(
            "/ip4/10.0.0.3/tcp/4001/p2p/{}",
            k.public().to_peer_id()
        )],
    };
    r.input(Input::CacheLoaded {
        from: "/state".into(),
        result: Ok(vec![cached(&k3, 2), cached(&k1, 0)]),
    });
    let st = r.e.status(r.now);
    assert_eq!(
        st.records_accepted, 3,
        "k1 by multicast, k2 from the static host, k3 from the cache"
    );
    assert_eq!(st.records_rejected.get("peer-id-mismatch"), Some(&1));
    assert_eq!(st.records_rejected.get("replay"), Some(&1));
    assert_eq!(st.interfaces[0].records_accepted, 1);
    assert_eq!(
        st.interfaces[0].records_rejected.get("peer-id-mismatch"),
        Some(&1)
    );
    let peers = r.e.snapshot();
    assert_eq!(peers.len(), 3);
    let by = |k: &Keypair| {
        peers
            .iter()
            .find(|p| p.peer_id == k.public().to_peer_id().to_base58())
            .unwrap()
            .clone()
    };
    assert_eq!(by(&k1).source, Source::Mdns);
    assert_eq!(by(&k2).interfaces, vec!["static:10.9.9.9"]);
    assert_eq!(by(&k3).interfaces, vec!["cache"]);
}

#[test]
fn the_nodes_own_record_echoed_back_is_neither_taken_nor_counted() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    r.input(Input::Client {
        id: 7,
        request: Request::Register(signed(&k, 1)),
    });
    assert!(events(&r.announced(&k, 1)).is_empty());
    let st = r.e.status(r.now);
    assert_eq!(st.records_accepted, 0);
    assert!(st.records_rejected.is_empty());
}

#[test]
fn only_the_current_instance_keeps_a_peer_alive_and_a_goodbye_drops_it_at_once() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    r.announced(&k, 1);
    r.announced(&k, 2);
    // Kept alive past the 60 s timeout by packets naming its current instance.
    for s in [20.0, 40.0, 60.0, 80.0] {
        r.at(s);
        r.input(heard(&k, 2, 120));
    }
    assert!(events(&r.at(100.0)).is_empty());
    // An old instance or a TTL-0 answer is no sign of life.
    r.input(heard(&k, 1, 120));
    r.input(heard(&k, 2, 0));
    let a = r.at(140.0);
    assert_eq!(
        events(&a),
        vec![(EventKind::Expired, k.public().to_peer_id().to_base58())]
    );
    // Back when heard again; then the goodbye of the old instance changes nothing, its own does.
    assert_eq!(
        events(&r.input(heard(&k, 2, 120)))[0].0,
        EventKind::Discovered
    );
    let bye = |seq| {
        let label = crate::wire::instance::instance_label(&k.public().to_peer_id(), seq);
        Input::Removed {
            link: IDX,
            fullname: crate::wire::instance::fullname(&label),
        }
    };
    assert!(events(&r.input(bye(1))).is_empty());
    // Its own goodbye is confirmed first: its address is probed, and refuses.
    let a = r.input(bye(2));
    assert!(events(&a).is_empty(), "not before the confirmation");
    let addr = probe_of(&a);
    let a = r.input(Input::Probed { addr, ok: false });
    assert_eq!(events(&a)[0].0, EventKind::Expired);
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

#[test]
fn a_goodbye_whose_peer_still_answers_is_refuted_and_counted() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    assert_eq!(events(&r.announced(&k, 1))[0].0, EventKind::Discovered);
    let a = r.input(goodbye(&k, 1));
    assert!(events(&a).is_empty());
    let addr = probe_of(&a);
    assert_eq!(
        addr.to_string(),
        format!("/ip4/10.0.0.2/tcp/4001/p2p/{}", k.public().to_peer_id())
    );
    // A second goodbye while the first is being confirmed sends no second probe.
    assert!(r
        .input(goodbye(&k, 1))
        .iter()
        .all(|a| !matches!(a, Action::Probe { .. })));
    assert!(events(&r.input(Input::Probed { addr, ok: true })).is_empty());
    assert_eq!(r.e.snapshot().len(), 1, "the peer stays");
    let st = r.e.status(r.now);
    assert_eq!(st.dropped.get("goodbye-refuted"), Some(&1));
    assert_eq!(st.interfaces[0].dropped.get("goodbye-refuted"), Some(&1));
    // It still times out like any peer when it falls silent.
    assert_eq!(events(&r.at(61.0))[0].0, EventKind::Expired);
}

#[test]
fn a_silent_peer_is_probed_before_it_times_out_and_kept_while_it_answers() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    assert_eq!(events(&r.announced(&k, 1))[0].0, EventKind::Discovered);
    // Not heard for two thirds of the timeout: its address is probed; it answers, and stays
    // past the timeout.
    assert!(r
        .at(39.0)
        .iter()
        .all(|a| !matches!(a, Action::Probe { .. })));
    let addr = probe_of(&r.at(40.5));
    assert!(events(&r.input(Input::Probed { addr, ok: true })).is_empty());
    assert!(events(&r.at(75.0)).is_empty(), "kept past the timeout");
    assert_eq!(r.e.status(r.now).dropped.get("silence-answered"), Some(&1));
    // Next time nothing answers (twice: at two thirds and five sixths): it times out as ever,
    // a timeout after the last answer.
    let addr = probe_of(&r.at(81.0));
    assert!(events(&r.input(Input::Probed { addr, ok: false })).is_empty());
    let addr = probe_of(&r.at(91.0));
    assert!(events(&r.input(Input::Probed { addr, ok: false })).is_empty());
    assert!(events(&r.at(100.0)).is_empty());
    assert_eq!(events(&r.at(101.0))[0].0, EventKind::Expired);
}

#[test]
fn answers_alone_keep_a_silent_peer_for_a_few_timeouts_at_most() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    r.announced(&k, 1);
    let mut t = 0.0;
    let expired_at = loop {
        t += 1.0;
        assert!(t < 1000.0, "never let go");
        let a = r.at(t);
        if !events(&a).is_empty() {
            break t;
        }
        for a in a {
            if let Action::Probe { addr, .. } = a {
                r.input(Input::Probed { addr, ok: true });
            }
        }
    };
    let cap = 60.0 * f64::from(table::MAX_SILENT_TIMEOUTS);
    assert!(
        (cap..=cap + 61.0).contains(&expired_at),
        "let go at {expired_at} s"
    );
    // A packet heard brings it back, and then answers count again.
    assert_eq!(
        events(&r.input(heard(&k, 1, 120)))[0].0,
        EventKind::Discovered
    );
}

#[test]
fn only_packets_from_the_peers_own_addresses_keep_it_alive() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    r.announced(&k, 1);
    let spoofed = |k: &Keypair| match heard(k, 1, 120) {
        Input::Heard(h) => Input::Heard(Heard {
            from: "10.0.0.66:5353".parse().unwrap(),
            ..h
        }),
        _ => unreachable!(),
    };
    let other_family = |k: &Keypair| match heard(k, 1, 120) {
        Input::Heard(h) => Input::Heard(Heard {
            from: "[fe80::66]:5353".parse().unwrap(),
            family: Family::V6,
            ..h
        }),
        _ => unreachable!(),
    };
    for s in [20.0, 40.0, 59.0] {
        r.at(s);
        r.input(spoofed(&k));
        // From a family none of its known addresses has: no sign of life, and no blame.
        r.input(other_family(&k));
    }
    assert_eq!(events(&r.at(60.5))[0].0, EventKind::Expired);
    let st = r.e.status(r.now);
    assert_eq!(st.interfaces[0].dropped.get("foreign-source"), Some(&3));
    // Its own packet revives it.
    assert_eq!(
        events(&r.input(heard(&k, 1, 120)))[0].0,
        EventKind::Discovered
    );
}

#[test]
fn addresses_are_handed_over_once_a_probe_answers() {
    let mut r = Rig::up(Config::default());
    let k = Keypair::generate_ed25519();
    let a = r.announced(&k, 1);
    assert!(events(&a).is_empty());
    let Some(Action::Probe { addr, .. }) = a.iter().find(|a| matches!(a, Action::Probe { .. }))
    else {
        panic!("no probe: {a:?}");
    };
    let addr = addr.clone();
    assert_eq!(
        addr.to_string(),
        format!("/ip4/10.0.0.2/tcp/4001/p2p/{}", k.public().to_peer_id())
    );
    let a = r.input(Input::Probed {
        addr: addr.clone(),
        ok: false,
    });
    assert!(events(&a).is_empty());
    // Retried after a second.
    assert!(r.at(0.5).iter().all(|a| !matches!(a, Action::Probe { .. })));
    assert!(r.at(1.0).iter().any(|a| matches!(a, Action::Probe { .. })));
    let a = r.input(Input::Probed { addr, ok: true });
    assert_eq!(events(&a)[0].0, EventKind::Discovered);
}

#[test]
fn the_cache_is_written_after_changes_at_most_every_five_seconds_and_a_failure_said_once() {
    let mut r = Rig::up(cfg());
    let writes = |a: &[Action]| {
        a.iter()
            .filter_map(|a| match a {
                Action::WriteCache(entries) => Some(entries.len()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert!(writes(&r.at(10.0)).is_empty(), "nothing changed");
    let first = r.input(resolved(&Keypair::generate_ed25519(), 1));
    assert_eq!(
        writes(&first),
        vec![1],
        "the first change is written at once"
    );
    r.at(12.0);
    assert!(
        writes(&r.input(resolved(&Keypair::generate_ed25519(), 1))).is_empty(),
        "too soon"
    );
    assert!(writes(&r.at(14.9)).is_empty());
    assert_eq!(writes(&r.at(15.0)), vec![2]);
    assert_eq!(
        logs(&r.input(Input::CacheWritten(Err("disk full".into())))).len(),
        1
    );
    assert!(logs(&r.input(Input::CacheWritten(Err("disk full".into())))).is_empty());
}

#[test]
fn a_static_host_is_asked_one_round_at_a_time_every_poll_interval() {
    let mut r = Rig::new(Config {
        static_hosts: vec!["10.9.9.9".into()],
        ..cfg()
    });
    let asks = |a: &[Action]| {
        a.iter()
            .filter(|a| matches!(a, Action::AskStatic { .. }))
            .count()
    };
    assert_eq!(asks(&r.at(0.0)), 1, "asked at start");
    assert_eq!(asks(&r.at(30.0)), 0, "not again while a round runs");
    let failed = |r: &mut Rig| {
        r.input(Input::StaticReplied {
            host: "10.9.9.9".into(),
            resolved: Vec::new(),
            result: Err("no answer".into()),
        })
    };
    assert_eq!(
        logs(&failed(&mut r)),
        vec!["static host 10.9.9.9: no answer"]
    );
    assert_eq!(asks(&r.at(34.0)), 0);
    assert_eq!(asks(&r.at(35.0)), 1, "static_poll_secs later");
    assert!(
        logs(&failed(&mut r)).is_empty(),
        "the same error is said once"
    );
    let a = r.input(Input::StaticReplied {
        host: "10.9.9.9".into(),
        resolved: Vec::new(),
        result: Ok(Vec::new()),
    });
    assert_eq!(logs(&a), vec!["static host 10.9.9.9: answering again"]);
    assert!(r.e.status(r.now).static_hosts[0].answering);
}

#[test]
fn interfaces_that_change_or_vanish_are_followed() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    r.input(register(&k));
    let mut changed = eth0();
    changed.v4 = vec![(Ipv4Addr::new(10, 0, 0, 77), 24)];
    let a = r.input(Input::Interfaces(Ok(vec![changed])));
    assert!(matches!(a[1], Action::UpdateLink(_)));
    assert_eq!(queries(&a), vec![Family::V4, Family::V6]);
    assert_eq!(announced(&a).len(), 1, "re-announced with the new address");
    r.input(resolved(&Keypair::generate_ed25519(), 1));
    let a = r.input(Input::Interfaces(Ok(Vec::new())));
    assert!(a
        .iter()
        .any(|a| matches!(a, Action::RemoveLink { link: IDX })));
    assert_eq!(events(&a)[0].0, EventKind::Expired);
    assert_eq!(r.e.status(r.now).interfaces.len(), 0);
}

#[test]
fn a_prefix_change_is_an_interface_change() {
    let mut r = Rig::up(cfg());
    let mut changed = eth0();
    changed.v4[0].1 = 16;
    let a = r.input(Input::Interfaces(Ok(vec![changed])));
    assert!(
        a.iter().any(|a| matches!(a, Action::UpdateLink(_))),
        "{a:?}"
    );
    assert!(logs(&a).contains(&"interface eth0 changed: 10.0.0.1/16 fe80::1/64".to_owned()));
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

#[test]
fn multicast_addresses_off_the_receiving_link_are_dropped_and_counted() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    let label = crate::wire::instance::instance_label(&k.public().to_peer_id(), 1);
    let listen = [
        "/ip4/0.0.0.0/tcp/4001".parse().unwrap(),
        "/ip6/::/tcp/4001".parse().unwrap(),
    ];
    r.input(Input::Resolved {
        link: IDX,
        fullname: crate::wire::instance::fullname(&label),
        signed: Ok(record::sign(&k, "exo", 1, &listen).unwrap()),
        ips: [
            "10.0.0.2",
            "192.168.5.5",
            "10.0.1.2",
            "fe80::2",
            "fd00:9::2",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect(),
    });
    let id = k.public().to_peer_id();
    assert_eq!(
        handed_over(&r, &k),
        vec![
            format!("/ip4/10.0.0.2/tcp/4001/p2p/{id}"),
            format!("/ip6zone/eth0/ip6/fe80::2/tcp/4001/p2p/{id}"),
        ]
    );
    let st = r.e.status(r.now);
    assert_eq!(st.interfaces[0].dropped.get("address-off-link"), Some(&3));
    assert_eq!(st.interfaces[0].records_accepted, 1);
}

#[test]
fn a_static_hosts_routed_address_is_kept() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    r.input(Input::Client {
        id: 1,
        request: Request::Manage(ClientMsg::AddHost {
            host: "172.16.0.9".into(),
        }),
    });
    let reply = txt_response(
        &crate::wire::instance::instance_label(&k.public().to_peer_id(), 1),
        &signed(&k, 1),
    );
    r.input(Input::StaticReplied {
        host: "172.16.0.9".into(),
        resolved: Vec::new(),
        result: Ok(vec![(
            IpAddr::V4(Ipv4Addr::new(172, 16, 0, 9)),
            None,
            reply,
        )]),
    });
    assert_eq!(
        handed_over(&r, &k),
        vec![format!(
            "/ip4/172.16.0.9/tcp/4001/p2p/{}",
            k.public().to_peer_id()
        )]
    );
    assert_eq!(
        r.e.status(r.now).interfaces[0]
            .dropped
            .get("address-off-link"),
        None
    );
}

#[test]
fn a_stock_node_heard_from_off_the_link_is_not_handed_over() {
    let mut r = Rig::up(Config {
        accept_unsigned: true,
        ..cfg()
    });
    let stock = |from: &str| {
        let peer = Keypair::generate_ed25519().public().to_peer_id();
        let heard = Input::Heard(Heard {
            link: IDX,
            family: Family::V4,
            from: from.parse().unwrap(),
            instances: Vec::new(),
            libp2p_peers: vec![crate::wire::stock::Libp2pPeer {
                peer,
                addrs: vec!["/ip4/0.0.0.0/tcp/1".parse().unwrap()],
                ttl: 360,
            }],
            libp2p_query: false,
            named: Vec::new(),
            unicast: false,
            records: Vec::new(),
        });
        (peer, heard)
    };
    let (_, off) = stock("192.168.5.5:5353");
    r.input(off);
    assert!(r.e.snapshot().is_empty());
    assert_eq!(
        r.e.status(r.now).interfaces[0]
            .dropped
            .get("address-off-link"),
        Some(&1)
    );
    let (on, heard) = stock("10.0.0.66:5353");
    r.input(heard);
    let peers = r.e.snapshot();
    assert_eq!(peers.len(), 1);
    assert_eq!(
        peers[0].addrs,
        vec![format!("/ip4/10.0.0.66/tcp/1/p2p/{on}")]
    );
}

fn register(k: &Keypair) -> Input {
    Input::Client {
        id: 7,
        request: Request::Register(signed(k, 1)),
    }
}

#[test]
fn shutdown_writes_the_cache_says_goodbye_and_ends() {
    let mut r = Rig::up(cfg());
    r.input(resolved(&Keypair::generate_ed25519(), 1));
    r.at(1.0);
    r.input(resolved(&Keypair::generate_ed25519(), 1));
    let a = r.input(Input::Shutdown);
    assert!(
        a.iter()
            .any(|a| matches!(a, Action::WriteCache(e) if e.len() == 2)),
        "the change not yet written"
    );
    assert!(matches!(a.last(), Some(Action::Exit)));
    assert_eq!(r.e.poll_timeout(), None);
    assert!(r.at(100.0).is_empty());
}

#[test]
fn a_flood_of_unsigned_peer_ids_is_said_up_to_a_bound_and_costs_no_memory() {
    let mut r = Rig::up(cfg());
    let mut said = 0;
    for i in 0..2000u32 {
        let peer = Keypair::generate_ed25519().public().to_peer_id();
        let a = r.input(Input::Heard(Heard {
            link: IDX,
            family: Family::V4,
            from: "10.0.0.66:40000".parse().unwrap(),
            instances: Vec::new(),
            libp2p_peers: vec![crate::wire::stock::Libp2pPeer {
                peer,
                addrs: vec![format!("/ip4/10.0.{}.{}/tcp/1", i / 250, i % 250)
                    .parse()
                    .unwrap()],
                ttl: 360,
            }],
            libp2p_query: false,
            named: Vec::new(),
            unicast: false,
            records: Vec::new(),
        }));
        said += logs(&a).len();
    }
    assert_eq!(
        said,
        intake::MAX_UNSIGNED_LOGGED + 1,
        "one line each up to the bound, then one"
    );
    assert!(r.e.unsigned_ignored.len() <= intake::MAX_UNSIGNED_LOGGED);
    assert!(r.e.snapshot().is_empty(), "none handed over");
}

#[test]
fn stock_queries_get_each_record_answered_at_most_once_a_second() {
    let mut r = Rig::up(cfg());
    r.input(register(&Keypair::generate_ed25519()));
    let query = || {
        Input::Heard(Heard {
            link: IDX,
            family: Family::V4,
            from: "10.0.0.66:40000".parse().unwrap(),
            instances: Vec::new(),
            libp2p_peers: Vec::new(),
            libp2p_query: true,
            named: Vec::new(),
            unicast: false,
            records: Vec::new(),
        })
    };
    // (Not the node's presence queries, also sent from the link socket.)
    let answers = |a: &[Action]| {
        a.iter()
            .filter(|a| {
                matches!(a, Action::SendPackets { packets, .. }
                    if packets.iter().all(|p| crate::wire::dns::is_response(p)))
            })
            .count()
    };
    let mut sent = 0;
    for i in 0..500 {
        r.now = r.t0 + Duration::from_millis(100 + i);
        sent += answers(&r.input(query()));
    }
    assert_eq!(sent, 1, "500 queries in half a second, one answer");
    r.now = r.t0 + Duration::from_millis(1100);
    assert_eq!(answers(&r.input(query())), 1, "a second later, again");
}

#[test]
fn junk_from_mdns_sd_gets_its_browsing_daemon_replaced_and_an_overflow_browses_again() {
    let mut r = Rig::up(Config::default());
    let restarts = |a: &[Action]| {
        a.iter()
            .filter(|a| matches!(a, Action::RestartBrowser { link: IDX }))
            .count()
    };
    // Records of fresh keys that never answer a probe: waiting, never established.
    let mut seen = 0;
    for i in 0..crate::engine::links::BROWSER_JUNK_LIMIT * 2 {
        if i % 64 == 0 {
            r.at(i as f64 / 1000.0);
        }
        seen += restarts(&r.input(resolved(&Keypair::generate_ed25519(), 1)));
    }
    assert_eq!(
        seen,
        2,
        "once per {} junk records",
        crate::engine::links::BROWSER_JUNK_LIMIT
    );
    let st = r.e.status(r.now);
    assert_eq!(st.interfaces[0].dropped.get("browse-reset"), Some(&2));
    // A peer that answers is no junk: it does not count towards a reset.
    let k = Keypair::generate_ed25519();
    let a = r.announced(&k, 1);
    assert_eq!(restarts(&a), 0);
    // mdns-sd dropped the subscription: browse again at once.
    let a = r.input(Input::BrowseEnded { link: IDX });
    assert_eq!(restarts(&a), 1);
    let st = r.e.status(r.now);
    assert_eq!(st.interfaces[0].dropped.get("browse-overflow"), Some(&1));
}

#[test]
fn a_confirmed_goodbye_removes_what_the_cache_said_of_the_peer_too() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    let id = k.public().to_peer_id();
    r.input(Input::CacheLoaded {
        from: "test".into(),
        result: Ok(vec![crate::wire::cache::CachedPeer {
            signed: signed(&k, 1),
            addrs: vec![format!("/ip4/10.0.0.2/tcp/4001/p2p/{id}")],
        }]),
    });
    assert_eq!(r.e.snapshot()[0].interfaces, vec!["cache"]);
    r.announced(&k, 1);
    assert_eq!(r.e.snapshot()[0].interfaces, vec!["cache", "eth0"]);
    let addr = probe_of(&r.input(goodbye(&k, 1)));
    let a = r.input(Input::Probed { addr, ok: false });
    assert_eq!(events(&a), vec![(EventKind::Expired, id.to_base58())]);
    assert!(r.e.snapshot().is_empty());
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

#[test]
fn a_node_whose_clock_stepped_back_is_taken_at_the_same_place_at_once() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    let day = 86_400_000_000;
    r.input(resolved(&k, 2 * day));
    // The node restarts with its clock a day behind, on the same port.
    let a = r.announced(&k, day);
    assert_eq!(events(&a)[0].0, EventKind::Updated);
    assert_eq!(r.e.snapshot()[0].seq, day);
    assert!(probes_of(&a).is_empty());
    // Its new instance keeps it alive; the old one no longer does.
    r.at(50.0);
    r.input(heard(&k, day, 120));
    r.input(heard(&k, 2 * day, 120));
    assert!(events(&r.at(70.0)).is_empty());
    assert_eq!(r.e.status(r.now).records_rejected.get("replay"), None);
}

#[test]
fn an_older_record_elsewhere_is_taken_only_if_the_node_answers_there_and_not_where_it_was() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    let id = k.public().to_peer_id();
    r.input(resolved_at(&k, 1000, [10, 0, 0, 2], 4001));
    // A replay of an older record from another place, while the node still answers: refused.
    let a = r.input(resolved_at(&k, 500, [10, 0, 0, 7], 5001));
    let probes = probes_of(&a);
    assert_eq!(probes.len(), 2, "{a:?}");
    let held = format!("/ip4/10.0.0.2/tcp/4001/p2p/{id}");
    let older = format!("/ip4/10.0.0.7/tcp/5001/p2p/{id}");
    assert!(probes.iter().any(|p| p.to_string() == held));
    assert!(probes.iter().any(|p| p.to_string() == older));
    for addr in probes {
        let ok = addr.to_string() == held;
        assert!(events(&r.input(Input::Probed { addr, ok })).is_empty());
    }
    assert_eq!(r.e.snapshot()[0].seq, 1000);
    assert_eq!(r.e.status(r.now).records_rejected.get("replay"), Some(&1));
    // Again within five seconds: refused without a probe.
    let a = r.input(resolved_at(&k, 500, [10, 0, 0, 7], 5001));
    assert!(probes_of(&a).is_empty());
    assert_eq!(r.e.status(r.now).records_rejected.get("replay"), Some(&2));
    // The node moved with its clock behind: its old port refuses, the new one answers.
    r.at(10.0);
    let a = r.input(resolved_at(&k, 600, [10, 0, 0, 7], 5001));
    let mut got = Vec::new();
    for addr in probes_of(&a) {
        let ok = addr.to_string() != held;
        got.extend(events(&r.input(Input::Probed { addr, ok })));
    }
    assert_eq!(got, vec![(EventKind::Updated, id.to_base58())]);
    let now = &r.e.snapshot()[0];
    assert_eq!((now.seq, now.addrs.clone()), (600, vec![older]));
}

/// A query from `from` naming `k`'s instance of `seq`: a presence query (`unicast`, QU) or
/// another agent's re-query (QM).
fn named(k: &Keypair, seq: u64, from: &str, unicast: bool) -> Input {
    let label = crate::wire::instance::instance_label(&k.public().to_peer_id(), seq);
    Input::Heard(Heard {
        link: IDX,
        family: Family::V4,
        from: from.parse().unwrap(),
        instances: Vec::new(),
        libp2p_peers: Vec::new(),
        libp2p_query: false,
        named: vec![label],
        unicast,
        records: Vec::new(),
    })
}

fn presence(k: &Keypair, seq: u64, from: &str) -> Input {
    named(k, seq, from, true)
}

/// The packets multicast on a link socket, and the instances each query names.
fn multicast(a: &[Action]) -> Vec<(Family, Vec<u8>)> {
    a.iter()
        .filter_map(|a| match a {
            Action::SendPackets {
                link: IDX,
                family,
                packets,
            } => Some(
                packets
                    .iter()
                    .map(|p| (*family, p.clone()))
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect()
}

/// The instances named by the re-queries among `a`'s multicast packets over IPv4 (each goes on
/// both families: an answer carries its own family's addresses only).
fn requeried(a: &[Action]) -> Vec<String> {
    let on = |family: Family| -> Vec<String> {
        multicast(a)
            .iter()
            .filter(|(f, p)| {
                *f == family && !crate::wire::dns::is_response(p) && !crate::wire::dns::wants_unicast(p)
            })
            .flat_map(|(_, p)| crate::wire::dns::asked_instances(p, 4))
            .collect()
    };
    let v4 = on(Family::V4);
    assert_eq!(v4, on(Family::V6), "both families are asked");
    v4
}

/// Nothing in `a` goes anywhere but a link's multicast group, a probe or a static host.
fn no_unicast_to_the_link(a: &[Action]) {
    for a in a {
        assert!(
            matches!(
                a,
                Action::SendPackets { .. }
                    | Action::SendQuery { .. }
                    | Action::Log { .. }
                    | Action::Broadcast(_)
                    | Action::WritePeersFile(_)
                    | Action::ListInterfaces
            ),
            "{a:?}"
        );
    }
}

/// The answer an agent multicasts for `k`'s instance of `seq`, heard from `from`.
fn answer_from(k: &Keypair, seq: u64, from: &str) -> Input {
    let label = crate::wire::instance::instance_label(&k.public().to_peer_id(), seq);
    let packet = crate::wire::dns::instance_answer(
        &label,
        "exo-x.local.",
        4001,
        &record::to_txt(&signed(k, seq)),
        &["10.0.0.99".parse().unwrap()],
        120,
    );
    let from: SocketAddr = from.parse().unwrap();
    Input::Heard(Heard::parse(IDX, Family::V4, from, &packet).unwrap())
}

#[test]
fn a_query_naming_a_missed_instance_is_asked_again_on_the_link_never_by_unicast() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    let label = crate::wire::instance::instance_label(&k.public().to_peer_id(), 1);
    // Heard only the presence query (the announcement was lost): re-queried a moment later, by
    // multicast on that link, asking for a multicast answer.
    let a = r.input(presence(&k, 1, "10.0.0.2:5353"));
    assert!(requeried(&a).is_empty());
    let a = r.at(catchup::REQUERY_DELAY.as_secs_f64());
    no_unicast_to_the_link(&a);
    assert_eq!(requeried(&a), vec![label.clone()]);
    // Nothing answered: again every interval, then given up.
    let mut rounds = 1;
    let mut t = catchup::REQUERY_DELAY.as_secs_f64();
    while t < 3.0 {
        t += 0.01;
        let a = r.at(t);
        no_unicast_to_the_link(&a);
        rounds += requeried(&a).len();
    }
    assert_eq!(rounds, usize::from(catchup::MAX_REQUERIES));
    // Resting: another presence query brings nothing for a while.
    r.input(presence(&k, 1, "10.0.0.2:5353"));
    assert!(requeried(&r.at(t + 1.0)).is_empty());
    // Another instance: an answer from its agent is taken as heard on the link, at the
    // answer's source (not the address its A record claims).
    let k2 = Keypair::generate_ed25519();
    r.input(presence(&k2, 1, "10.0.0.3:5353"));
    assert_eq!(requeried(&r.at(t + 1.1)).len(), 1);
    let a = r.input(answer_from(&k2, 1, "10.0.0.3:5353"));
    assert_eq!(
        events(&a),
        vec![(EventKind::Discovered, k2.public().to_peer_id().to_base58())]
    );
    let held = r.e.snapshot();
    let p = held
        .iter()
        .find(|p| p.peer_id == k2.public().to_peer_id().to_base58())
        .unwrap();
    assert_eq!(
        p.addrs,
        vec![format!(
            "/ip4/10.0.0.3/tcp/4001/p2p/{}",
            k2.public().to_peer_id()
        )]
    );
    let st = r.e.status(r.now);
    assert_eq!(st.interfaces[0].dropped.get("caught-up"), Some(&1));
    assert!(
        requeried(&r.at(t + 1.5)).is_empty(),
        "held: no more re-queries"
    );
}

#[test]
fn another_agents_requery_holds_ours_back_and_answers_are_taken_only_when_wanted() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    r.input(presence(&k, 1, "10.0.0.2:5353"));
    // Another agent re-queried just before ours was due: its answer will reach us too.
    r.at(0.01);
    r.input(named(&k, 1, "10.0.0.7:5353", false));
    assert!(requeried(&r.at(0.05)).is_empty());
    assert_eq!(
        requeried(&r.at(0.12)).len(),
        1,
        "then ours, one interval on"
    );
    // An answer carrying a record nobody here wants is left to mdns-sd.
    let other = Keypair::generate_ed25519();
    assert!(events(&r.input(answer_from(&other, 1, "10.0.0.4:5353"))).is_empty());
    // From ourselves, from another port, or for a record held: no re-query.
    let own = Keypair::generate_ed25519();
    r.input(presence(&own, 1, "10.0.0.1:5353"));
    r.input(presence(&own, 1, "10.0.0.3:40000"));
    let known = Keypair::generate_ed25519();
    r.announced(&known, 1);
    r.input(presence(&known, 1, "10.0.0.2:5353"));
    let a = r.at(0.5);
    let label = |k: &Keypair| crate::wire::instance::instance_label(&k.public().to_peer_id(), 1);
    for k in [&own, &known] {
        assert!(!requeried(&a).contains(&label(k)));
    }
}

#[test]
fn an_agent_answers_a_requery_for_its_own_record_by_multicast_at_most_once_per_interval() {
    let mut r = Rig::up(cfg());
    let own = Keypair::generate_ed25519();
    r.input(register(&own));
    let label = crate::wire::instance::instance_label(&own.public().to_peer_id(), 1);
    let answers = |a: &[Action]| -> Vec<Vec<u8>> {
        multicast(a)
            .into_iter()
            .filter(|(f, p)| *f == Family::V4 && crate::wire::dns::is_response(p))
            .map(|(_, p)| p)
            .collect()
    };
    r.at(0.5);
    let a = r.input(named(&own, 1, "10.0.0.2:5353", false));
    no_unicast_to_the_link(&a);
    let got = answers(&a);
    assert_eq!(got.len(), 1, "{a:?}");
    let rrs = crate::wire::dns::records(&got[0]).unwrap();
    let recs = crate::wire::dns::signed_records(&rrs);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].0, label);
    assert_eq!(recs[0].1.as_deref().ok(), Some(&signed(&own, 1)[..]));
    let ips: Vec<IpAddr> = rrs.iter().filter_map(|r| r.ip).collect();
    assert_eq!(ips, vec!["10.0.0.1".parse::<IpAddr>().unwrap()]);
    // A second re-query within the interval: the first answer serves it.
    assert!(answers(&r.input(named(&own, 1, "10.0.0.3:5353", false))).is_empty());
    r.at(0.5 + catchup::ANSWER_EVERY.as_secs_f64());
    assert_eq!(
        answers(&r.input(named(&own, 1, "10.0.0.3:5353", false))).len(),
        1
    );
    // A presence query (QU), our own looped back, or one from another port: no answer.
    r.at(1.0);
    for q in [
        named(&own, 1, "10.0.0.2:5353", true),
        named(&own, 1, "10.0.0.1:5353", false),
        named(&own, 1, "10.0.0.2:40000", false),
    ] {
        assert!(answers(&r.input(q)).is_empty());
    }
}

#[test]
fn forged_queries_cost_a_bounded_number_of_requeries_all_to_the_link() {
    let mut r = Rig::up(cfg());
    // 500 queries naming made-up instances, from made-up sources on and off the link.
    for i in 0..500u32 {
        let k = Keypair::generate_ed25519();
        let from = format!("10.{}.{}.{}:5353", i % 2, 1 + i / 250, 1 + i % 250);
        r.input(named(&k, 1, &from, i % 3 == 0));
    }
    // At most one re-query packet per interval on the link and family, naming a few; the
    // instances followed are bounded; nothing is sent anywhere but the link's group.
    let mut packets = 0;
    let mut t = 0.0;
    while t < 2.0 {
        t += 0.01;
        let a = r.at(t);
        no_unicast_to_the_link(&a);
        packets += multicast(&a)
            .iter()
            .filter(|(f, p)| *f == Family::V4 && !crate::wire::dns::is_response(p))
            .count();
    }
    let most = (2.0 / catchup::REQUERY_EVERY.as_secs_f64()).ceil() as usize + 1;
    assert!(
        packets > 0 && packets <= most,
        "{packets} re-query packets in 2 s"
    );
}

#[test]
fn a_query_lists_the_peers_held_on_its_link_as_known_answers() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    r.announced(&k, 1);
    let label = crate::wire::instance::instance_label(&k.public().to_peer_id(), 1);
    let a = r.at(1.0);
    let packets: Vec<&Vec<u8>> = a
        .iter()
        .filter_map(|a| match a {
            Action::SendQuery { packet, .. } => Some(packet),
            _ => None,
        })
        .collect();
    assert_eq!(packets.len(), 2, "both families");
    for p in packets {
        let rrs = crate::wire::dns::records(p).unwrap();
        assert_eq!(crate::wire::dns::instances(&rrs), vec![(label.clone(), 4500)]);
    }
}

#[test]
fn a_periodic_announcement_is_skipped_where_the_record_just_went_out() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    r.input(register(&k));
    let label = crate::wire::instance::instance_label(&k.public().to_peer_id(), 1);
    for t in 1..=20 {
        let a = r.at(f64::from(t));
        r.settle(a);
    }
    // Our daemon answered someone's query 10 s before the periodic announcement is due: the
    // link socket hears it looped back, from our own address.
    r.at(20.0);
    let own = Input::Heard(Heard {
        link: IDX,
        family: Family::V4,
        from: "10.0.0.1:5353".parse().unwrap(),
        instances: vec![(label.clone(), 120)],
        libp2p_peers: Vec::new(),
        libp2p_query: false,
        named: Vec::new(),
        unicast: false,
        records: Vec::new(),
    });
    r.input(own);
    assert!(announced(&r.at(30.0)).is_empty(), "refreshed 10 s ago");
    assert_eq!(announced(&r.at(60.0)), vec![label], "then as usual");
}

fn peers_files(a: &[Action]) -> Vec<usize> {
    a.iter()
        .filter_map(|a| match a {
            Action::WritePeersFile(list) => Some(list.len()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_peers_file_is_written_at_start_then_after_changes_at_most_every_100_ms() {
    // Without one configured, never.
    let mut r = Rig::new(cfg());
    assert!(peers_files(&r.at(0.0)).is_empty());
    let mut r = Rig::new(Config {
        peers_file: Some("/run/peers.json".into()),
        ..cfg()
    });
    let a = r.at(0.0);
    assert_eq!(peers_files(&a), vec![0], "written at start, empty");
    r.settle(a);
    let k1 = Keypair::generate_ed25519();
    let k2 = Keypair::generate_ed25519();
    r.now = r.t0 + Duration::from_millis(1000);
    assert_eq!(peers_files(&r.announced(&k1, 1)), vec![1]);
    // A second change within 100 ms waits for the interval, then both are in one write.
    r.now = r.t0 + Duration::from_millis(1050);
    assert!(peers_files(&r.announced(&k2, 1)).is_empty());
    assert!(r
        .e
        .poll_timeout()
        .is_some_and(|t| t <= r.t0 + Duration::from_millis(1100)));
    assert_eq!(peers_files(&r.at(1.1)), vec![2]);
    assert!(peers_files(&r.at(5.0)).is_empty(), "nothing changed");
    // A failed write is said once.
    let fail = || Input::PeersFileWritten(Err("/run/peers.json: Permission denied".into()));
    assert_eq!(logs(&r.input(fail())).len(), 1);
    assert!(logs(&r.input(fail())).is_empty());
    assert_eq!(logs(&r.input(Input::PeersFileWritten(Ok(())))).len(), 1);
}

fn exchanged(peers: Vec<crate::wire::exchange::Peer>, complete: bool) -> Input {
    Input::Exchanged {
        host: "10.9.9.9".into(),
        result: Ok(crate::wire::exchange::Reply::Peers { peers, complete }),
    }
}

fn relayed(k: &Keypair, seq: u64, ips: &[&str]) -> crate::wire::exchange::Peer {
    crate::wire::exchange::Peer {
        signed: signed(k, seq),
        ips: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
    }
}

fn ask_from(r: &mut Rig, ip: &str, namespace: &str) -> crate::wire::exchange::Reply {
    let a = r.input(Input::ExchangeAsked {
        id: 3,
        from: ip.parse().unwrap(),
        to: "10.0.0.1".parse().unwrap(),
        ask: crate::wire::exchange::Ask::new(namespace),
    });
    a.into_iter()
        .find_map(|a| match a {
            Action::AnswerExchange { id: 3, reply } => Some(reply),
            _ => None,
        })
        .expect("an answer")
}

#[test]
fn peer_exchange_hands_over_first_hand_peers_only_and_refuses_what_it_must() {
    let mut r = Rig::up(Config {
        static_hosts: vec!["10.9.9.9".into()],
        ..cfg()
    });
    let (heard_here, got_by_exchange) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    r.announced(&heard_here, 1);
    let a = r.input(exchanged(
        vec![relayed(&got_by_exchange, 1, &["10.0.0.3"])],
        true,
    ));
    assert_eq!(
        events(&a).len(),
        1,
        "the exchanged peer is handed over here"
    );
    let crate::wire::exchange::Reply::Peers { peers, complete } = ask_from(&mut r, "10.0.0.5", "exo")
    else {
        panic!("peers expected");
    };
    assert!(complete);
    assert_eq!(
        peers.len(),
        1,
        "one hop: what came by exchange is not passed on"
    );
    assert_eq!(peers[0].signed, signed(&heard_here, 1));
    assert_eq!(peers[0].ips, vec!["10.0.0.2".parse::<IpAddr>().unwrap()]);
    let again = ask_from(&mut r, "10.0.0.5", "exo");
    assert!(
        matches!(&again, crate::wire::exchange::Reply::Refused { why } if why.contains("within a second")),
        "{again:?}"
    );
    let other = ask_from(&mut r, "10.0.0.6", "lab");
    assert!(
        matches!(&other, crate::wire::exchange::Reply::Refused { why } if why.contains("\"lab\"")),
        "{other:?}"
    );
    r.at(1.0);
    assert!(matches!(
        ask_from(&mut r, "10.0.0.5", "exo"),
        crate::wire::exchange::Reply::Peers { .. }
    ));
    assert_eq!(r.e.status(r.now).dropped.get("exchange-refused"), Some(&1));
    let mut off = Rig::up(Config {
        peer_exchange: false,
        ..cfg()
    });
    assert!(matches!(
        ask_from(&mut off, "10.0.0.5", "exo"),
        crate::wire::exchange::Reply::Refused { .. }
    ));
}

/// Whether an exchange connection from `from` (with `same_ip` and `open` already open) is let in.
fn admitted(r: &mut Rig, from: &str, same_ip: usize, open: usize) -> bool {
    let a = r.input(Input::ExchangeOpened {
        id: 9,
        from: from.parse().unwrap(),
        same_ip,
        open,
    });
    a.into_iter()
        .find_map(|a| match a {
            Action::AdmitExchange { id: 9, admit } => Some(admit),
            _ => None,
        })
        .expect("a verdict")
}

#[test]
fn peer_exchange_answers_only_the_link_static_hosts_and_allowed_ranges() {
    let mut r = Rig::up(Config {
        static_hosts: vec!["172.16.5.5".into(), "host.example".into()],
        exchange_allow: vec!["192.168.7.0/24".into()],
        ..cfg()
    });
    // On the link: in eth0's subnet, or link-local on eth0 itself.
    assert!(admitted(&mut r, "10.0.0.5:40000", 0, 0));
    assert!(admitted(&mut r, &format!("[fe80::5%{IDX}]:40000"), 0, 0));
    // A static host, an allowed range; a named static host by the addresses it resolved to.
    assert!(admitted(&mut r, "172.16.5.5:40000", 0, 0));
    assert!(admitted(&mut r, "192.168.7.200:40000", 0, 0));
    assert!(!admitted(&mut r, "172.16.9.9:40000", 0, 0));
    r.input(Input::StaticReplied {
        host: "host.example".into(),
        resolved: vec!["172.16.9.9".parse().unwrap()],
        result: Err("no answer".into()),
    });
    assert!(admitted(&mut r, "172.16.9.9:40000", 0, 0));
    // Strangers: another subnet, link-local from another interface, a routed IPv6 address.
    assert!(!admitted(&mut r, "10.0.1.5:40000", 0, 0));
    assert!(!admitted(&mut r, "[fe80::5%9]:40000", 0, 0));
    assert!(!admitted(&mut r, "[fe80::5]:40000", 0, 0));
    assert!(!admitted(&mut r, "[2001:db8::5]:40000", 0, 0));
    // Two at once per IP, sixteen in all.
    assert!(admitted(&mut r, "10.0.0.5:40000", 1, 1));
    assert!(!admitted(&mut r, "10.0.0.5:40000", 2, 2));
    assert!(!admitted(&mut r, "10.0.0.6:40000", 0, exchange::MAX_OPEN));
    let st = r.e.status(r.now);
    assert_eq!(st.dropped.get("exchange-refused-stranger"), Some(&5));
    assert_eq!(st.dropped.get("exchange-refused-per-ip"), Some(&1));
    assert_eq!(st.dropped.get("exchange-refused-busy"), Some(&1));
}

#[test]
fn peer_exchange_hands_over_this_hosts_own_nodes_where_the_asker_reached_it() {
    let mut r = Rig::up(cfg());
    let own = Keypair::generate_ed25519();
    r.input(register(&own));
    let crate::wire::exchange::Reply::Peers { peers, complete } = ask_from(&mut r, "10.0.0.5", "exo")
    else {
        panic!("peers expected");
    };
    assert!(complete);
    assert_eq!(peers.len(), 1, "{peers:?}");
    assert_eq!(peers[0].signed, signed(&own, 1));
    assert_eq!(peers[0].ips, vec!["10.0.0.1".parse::<IpAddr>().unwrap()]);
}

#[test]
fn exchanged_records_are_checked_from_here_and_follow_the_host() {
    let mut r = Rig::new(Config {
        static_hosts: vec!["10.9.9.9".into()],
        ..Config::default()
    });
    let first = r.at(0.0);
    let rest = r.settle(first);
    assert!(
        rest.iter()
            .any(|a| matches!(a, Action::AskExchange { host, .. } if host == "10.9.9.9")),
        "the static host's agent is asked for its peers too: {rest:?}"
    );
    let k = Keypair::generate_ed25519();
    let id = k.public().to_peer_id();
    let a = r.input(exchanged(
        vec![relayed(&k, 1, &["10.0.0.3", "fe80::3"])],
        true,
    ));
    let probes: Vec<String> = a
        .iter()
        .filter_map(|a| match a {
            Action::Probe { addr, .. } => Some(addr.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        probes,
        vec![format!("/ip4/10.0.0.3/tcp/4001/p2p/{id}")],
        "the record's port at the IPs given; a link-local IP of the host's links is not used"
    );
    assert!(events(&a).is_empty(), "withheld until it answers from here");
    let a = r.input(Input::Probed {
        addr: probes[0].parse().unwrap(),
        ok: true,
    });
    let ev = a
        .iter()
        .find_map(|a| match a {
            Action::Broadcast(ev) => Some(ev.clone()),
            _ => None,
        })
        .expect("handed over once it answered");
    assert_eq!(ev.event, EventKind::Discovered);
    assert_eq!(ev.peer.source, Source::Exchange);
    assert_eq!(ev.peer.interfaces, vec!["exchange:10.9.9.9"]);

    let forged = Keypair::generate_ed25519();
    let mut bad = relayed(&forged, 1, &["10.0.0.4"]);
    let last = bad.signed.len() - 1;
    bad.signed[last] ^= 1;
    let a = r.input(exchanged(vec![relayed(&k, 1, &["10.0.0.3"]), bad], false));
    assert!(events(&a).is_empty());
    let st = r.e.status(r.now);
    assert_eq!(st.records_rejected.get("signature"), Some(&1), "{st:?}");

    r.at(5.0);
    let a = r.input(exchanged(Vec::new(), false));
    assert!(
        events(&a).is_empty(),
        "an incomplete reply proves no departure"
    );
    let a = r.input(exchanged(Vec::new(), true));
    assert_eq!(
        events(&a),
        vec![(EventKind::Expired, id.to_base58())],
        "the host no longer hears it"
    );
    let a = r.input(Input::Exchanged {
        host: "10.9.9.9".into(),
        result: Err("connection refused".into()),
    });
    assert_eq!(logs(&a).len(), 1);
    let a = r.input(Input::Exchanged {
        host: "10.9.9.9".into(),
        result: Err("connection refused".into()),
    });
    assert!(logs(&a).is_empty(), "said once");
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

#[test]
fn a_record_whose_packets_were_heard_before_mdns_sd_reported_it_is_probed_at_once() {
    // Both families' announcements reach the link sockets first; mdns-sd then reports the record
    // with its IPv6 address only, and a moment later with both.
    let mut r = Rig::up(Config::default());
    let k = Keypair::generate_ed25519();
    let label = crate::wire::instance::instance_label(&k.public().to_peer_id(), 1);
    let from = |ip: &str| {
        let mut h = Heard::parse(
            IDX,
            Family::V4,
            ip.parse().unwrap(),
            &crate::wire::dns::ptr_query(crate::wire::dns::SERVICE),
        )
        .unwrap();
        h.instances = vec![(label.clone(), 120)];
        Input::Heard(h)
    };
    r.input(from("10.0.0.2:5353"));
    r.input(from("[fe80::2]:5353"));
    let resolved_with = |ips: &[&str]| Input::Resolved {
        link: IDX,
        fullname: crate::wire::instance::fullname(&label),
        signed: Ok(signed(&k, 1)),
        ips: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
    };
    let mut probes = probes_of(&r.input(resolved_with(&["fe80::2"])));
    probes.extend(probes_of(&r.input(resolved_with(&["10.0.0.2", "fe80::2"]))));
    assert_eq!(
        probes.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        vec![format!(
            "/ip4/10.0.0.2/tcp/4001/p2p/{}",
            k.public().to_peer_id()
        )],
        "its IPv4 address is probed at once, not at the next announcement"
    );
}

#[test]
fn records_minted_for_one_destination_cost_it_what_one_peer_would() {
    // A host with raw sockets forges a bystander's source address (10.0.0.9) and announces 16
    // records of fresh keys naming its port 22, which answers; then it keeps sending their
    // goodbyes. Reachability, silence checks and goodbye rounds all probe that destination.
    let mut r = Rig::up(Config::default());
    let keys: Vec<Keypair> = (0..16).map(|_| Keypair::generate_ed25519()).collect();
    let mut per_minute = [0usize; 10];
    let mut count = |r: &mut Rig, a: Vec<Action>, t: f64| {
        per_minute[(t / 60.0) as usize] += answer_probes(r, a, true);
    };
    for k in &keys {
        let a = r.input(resolved_at(k, 1, [10, 0, 0, 9], 22));
        count(&mut r, a, 0.0);
        let label = crate::wire::instance::instance_label(&k.public().to_peer_id(), 1);
        let mut heard = Heard::parse(
            IDX,
            Family::V4,
            "10.0.0.9:5353".parse().unwrap(),
            &crate::wire::dns::ptr_query(crate::wire::dns::SERVICE),
        )
        .unwrap();
        heard.instances = vec![(label, 120)];
        let a = r.input(Input::Heard(heard));
        count(&mut r, a, 0.0);
    }
    assert!(
        !r.e.snapshot().is_empty(),
        "handed over: the destination answers"
    );
    let mut t = 0.5;
    while t < 600.0 {
        let a = r.at(t);
        count(&mut r, a, t);
        let k = &keys[(t * 2.0) as usize % keys.len()];
        let a = r.input(goodbye(k, 1));
        count(&mut r, a, t);
        t += 0.5;
    }
    eprintln!("connections to the destination per minute: {per_minute:?}");
    // As one peer there would cost: its goodbye rounds (at most 3 a minute, one address each)
    // and silence checks, however many records name the destination. (One connection per
    // record's probe, goodbye and check would be hundreds.)
    assert!(
        per_minute.iter().all(|n| *n <= 6),
        "connections per minute: {per_minute:?}"
    );
}

#[test]
fn a_goodbye_storm_against_a_live_peer_costs_at_most_twelve_probes_a_minute() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    // A peer with five addresses on the link: a round probes four of them.
    let ips = [
        [10, 0, 0, 2],
        [10, 0, 0, 3],
        [10, 0, 0, 4],
        [10, 0, 0, 5],
        [10, 0, 0, 6],
    ];
    r.announced_from(&k, 1, IDX, &ips);
    // Another host replays its announcement and then its goodbye every 1.5 s for ten minutes
    // (each goodbye reaches the engine, as mdns-sd reports one for every announcement it took).
    let mut per_minute = [0; 10];
    let mut goodbyes = 0;
    let mut t = 1.0;
    while t < 600.0 {
        let due = r.at(t);
        let mut n = answer_probes(&mut r, due, true);
        r.announced_from(&k, 1, IDX, &ips);
        let a = r.input(goodbye(&k, 1));
        goodbyes += 1;
        assert!(events(&a).is_empty(), "{a:?}");
        n += answer_probes(&mut r, a, true);
        per_minute[(t / 60.0) as usize] += n;
        t += 1.5;
    }
    eprintln!("probes per minute: {per_minute:?}, goodbyes {goodbyes}");
    let per_round = MAX_CONFIRM_PROBES;
    let rounds_a_minute = (60.0 / goodbye::GOODBYE_INTERVAL.as_secs_f64()) as usize;
    assert!(
        per_minute.iter().all(|n| *n <= per_round * rounds_a_minute),
        "probes per minute: {per_minute:?}"
    );
    assert!(per_minute.iter().all(|n| *n > 0), "{per_minute:?}");
    assert_eq!(per_round * rounds_a_minute, 12);
    // The peer stayed, and every goodbye was refuted.
    assert_eq!(r.e.snapshot().len(), 1);
    let st = r.e.status(r.now);
    assert_eq!(st.dropped.get("goodbye-refuted"), Some(&goodbyes));
}

#[test]
fn a_node_that_leaves_right_after_a_refuted_goodbye_is_reported_when_the_interval_ends() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    let id = k.public().to_peer_id().to_base58();
    r.at(1.0);
    r.announced(&k, 1);
    // A spoofed goodbye: its address is probed and answers.
    let addr = probe_of(&r.input(goodbye(&k, 1)));
    r.input(Input::Probed { addr, ok: true });
    // Five seconds later the node really leaves: its goodbye is answered by the last
    // confirmation (refuted at once, nothing probed).
    r.at(6.0);
    let a = r.input(goodbye(&k, 1));
    assert!(probes_of(&a).is_empty() && events(&a).is_empty(), "{a:?}");
    let st = r.e.status(r.now);
    assert_eq!(st.dropped.get("goodbye-refuted"), Some(&2));
    // When the interval ends, it is confirmed: the port refuses, the peer is reported gone.
    let end = 1.0 + goodbye::GOODBYE_INTERVAL.as_secs_f64();
    assert!(probes_of(&r.at(end - 0.01)).is_empty());
    assert_eq!(
        r.e.poll_timeout(),
        Some(r.t0 + Duration::from_secs_f64(end)),
        "the engine asks to be woken when the interval ends"
    );
    let addr = probe_of(&r.at(end));
    let a = r.input(Input::Probed { addr, ok: false });
    assert_eq!(events(&a), vec![(EventKind::Expired, id)]);
    assert_eq!(r.e.status(r.now).dropped.get("goodbye-refuted"), Some(&2));
}

#[test]
fn a_plain_departure_is_confirmed_at_once() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    let id = k.public().to_peer_id().to_base58();
    r.announced(&k, 1);
    let addr = probe_of(&r.input(goodbye(&k, 1)));
    let a = r.input(Input::Probed { addr, ok: false });
    assert_eq!(events(&a), vec![(EventKind::Expired, id.clone())]);
    // Back long after (a replayed or repeated announcement), and gone again: at once too.
    r.at(100.0);
    assert_eq!(events(&r.announced(&k, 1))[0].0, EventKind::Discovered);
    let addr = probe_of(&r.input(goodbye(&k, 1)));
    let a = r.input(Input::Probed { addr, ok: false });
    assert_eq!(events(&a), vec![(EventKind::Expired, id)]);
}

#[test]
fn a_node_that_restarts_and_leaves_again_within_the_interval_is_reported_gone_at_once() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    let id = k.public().to_peer_id().to_base58();
    r.announced(&k, 1);
    let addr = probe_of(&r.input(goodbye(&k, 1)));
    r.input(Input::Probed { addr, ok: false });
    // Two seconds later its node registers a new record, and leaves again: the last round spoke
    // of the old record, so a new one confirms this goodbye at once.
    r.at(2.0);
    assert_eq!(events(&r.announced(&k, 2))[0].0, EventKind::Discovered);
    r.at(4.0);
    let addr = probe_of(&r.input(goodbye(&k, 2)));
    let a = r.input(Input::Probed { addr, ok: false });
    assert_eq!(events(&a), vec![(EventKind::Expired, id)]);
}

fn eth1() -> Iface {
    Iface {
        name: "eth1".into(),
        index: IDX + 1,
        v4: vec![(Ipv4Addr::new(10, 1, 0, 1), 24)],
        v6: Vec::new(),
        ..eth0()
    }
}

fn goodbye_on(k: &Keypair, seq: u64, link: u32) -> Input {
    match goodbye(k, seq) {
        Input::Removed { fullname, .. } => Input::Removed { link, fullname },
        _ => unreachable!(),
    }
}

#[test]
fn a_node_on_two_links_that_leaves_is_reported_gone_on_both_at_once() {
    let mut r = Rig::up(cfg());
    let a = r.input(Input::Interfaces(Ok(vec![eth0(), eth1()])));
    r.settle(a);
    let (k, j) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    for (k, host) in [(&k, 2), (&j, 3)] {
        r.announced_from(k, 1, IDX, &[[10, 0, 0, host]]);
        r.announced_from(k, 1, IDX + 1, &[[10, 1, 0, host]]);
    }
    assert_eq!(r.e.snapshot()[0].interfaces, vec!["eth0", "eth1"]);
    // k's goodbyes come on both links, the second while the first is being confirmed: it
    // waits for the outcome.
    let a = r.input(goodbye_on(&k, 1, IDX));
    assert!(probes_of(&r.input(goodbye_on(&k, 1, IDX + 1))).is_empty());
    let got = events(&r.input(Input::Probed {
        addr: probe_of(&a),
        ok: false,
    }));
    assert_eq!(got.last().map(|e| e.0), Some(EventKind::Expired), "{got:?}");
    // j's come one after the other: the first round's outcome answers the second at once.
    let a = r.input(goodbye_on(&j, 1, IDX));
    let got = events(&r.input(Input::Probed {
        addr: probe_of(&a),
        ok: false,
    }));
    assert_eq!(got[0].0, EventKind::Updated);
    let a = r.input(goodbye_on(&j, 1, IDX + 1));
    assert!(probes_of(&a).is_empty());
    assert_eq!(events(&a)[0].0, EventKind::Expired);
    assert!(r.e.snapshot().is_empty());
}

#[test]
fn a_node_that_left_and_came_back_a_day_behind_on_its_ports_is_taken_at_once() {
    let mut r = Rig::up(Config::default());
    let k = Keypair::generate_ed25519();
    let id = k.public().to_peer_id().to_base58();
    let day = 86_400_000_000;
    let a = r.announced(&k, 2 * day);
    answer_probes(&mut r, a, true);
    assert_eq!(r.e.snapshot()[0].seq, 2 * day);
    // It says goodbye: its port refuses, and it is reported gone.
    let addr = probe_of(&r.input(goodbye(&k, 2 * day)));
    let a = r.input(Input::Probed { addr, ok: false });
    assert_eq!(events(&a), vec![(EventKind::Expired, id.clone())]);
    // Its host reboots with the clock a day behind; the node announces again on the same port,
    // a moment before it listens there. It is where the node was: taken at once, with nothing
    // to test (the reachability probe finds the port closed yet).
    r.at(30.0);
    let a = r.announced(&k, day);
    assert_eq!(answer_probes(&mut r, a, false), 1);
    assert_eq!(r.e.table.seq_of(&k.public().to_peer_id()), Some(day));
    // Handed over once its port answers the reachability probe, with its new seq.
    let a = r.at(31.0);
    assert_eq!(probes_of(&a).len(), 1, "{a:?}");
    let mut got = Vec::new();
    for addr in probes_of(&a) {
        got.extend(events(&r.input(Input::Probed { addr, ok: true })));
    }
    assert_eq!(got, vec![(EventKind::Discovered, id)]);
    assert_eq!(r.e.snapshot()[0].seq, day);
    assert_eq!(r.e.status(r.now).records_rejected.get("replay"), None);
    // Its new instance keeps it alive.
    r.at(70.0);
    r.input(heard(&k, day, 120));
    assert!(events(&r.at(95.0)).is_empty());
    assert_eq!(r.e.snapshot()[0].seq, day);
}

#[test]
fn a_third_hosts_replay_of_an_older_record_of_a_departed_peer_is_refused() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    let id = k.public().to_peer_id();
    r.input(resolved_at(&k, 1000, [10, 0, 0, 2], 4001));
    r.input(heard(&k, 1000, 120));
    let addr = probe_of(&r.input(goodbye(&k, 1000)));
    r.input(Input::Probed { addr, ok: false });
    assert!(r.e.snapshot().is_empty());
    // Another host announces an older record of the departed node from its own address: that
    // address is probed (the record held is known gone: its address is not asked again), and
    // does not answer.
    r.at(10.0);
    let a = r.input(resolved_at(&k, 500, [10, 0, 0, 66], 4001));
    let probes = probes_of(&a);
    assert_eq!(
        probes.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        vec![format!("/ip4/10.0.0.66/tcp/4001/p2p/{id}")]
    );
    for addr in probes {
        assert!(events(&r.input(Input::Probed { addr, ok: false })).is_empty());
    }
    assert!(r.e.snapshot().is_empty());
    assert_eq!(r.e.table.seq_of(&id), Some(1000));
    assert_eq!(r.e.status(r.now).records_rejected.get("replay"), Some(&1));
}

#[test]
fn a_test_of_an_older_record_naming_an_address_of_the_held_one_is_decided() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    let id = k.public().to_peer_id();
    let held = format!("/ip4/10.0.0.2/tcp/4001/p2p/{id}");
    let elsewhere = format!("/ip4/10.0.0.7/tcp/4001/p2p/{id}");
    r.input(resolved_from(&k, 1000, IDX, &[[10, 0, 0, 2]]));
    // An older record naming the held address and another: the held address is probed once,
    // for the record held; it answers, and the older record is refused.
    let a = r.input(resolved_from(&k, 500, IDX, &[[10, 0, 0, 2], [10, 0, 0, 7]]));
    let mut probes: Vec<String> = probes_of(&a).iter().map(|p| p.to_string()).collect();
    probes.sort();
    assert_eq!(probes, vec![held.clone(), elsewhere.clone()]);
    for addr in probes_of(&a) {
        r.input(Input::Probed { addr, ok: true });
    }
    assert_eq!(r.e.snapshot()[0].seq, 1000);
    assert_eq!(r.e.status(r.now).records_rejected.get("replay"), Some(&1));
    // Later the node is only at the other address (its clock stepped back, it moved): the
    // test runs again, and the older record is taken.
    r.at(10.0);
    let a = r.input(resolved_from(&k, 600, IDX, &[[10, 0, 0, 2], [10, 0, 0, 7]]));
    assert_eq!(probes_of(&a).len(), 2, "{a:?}");
    for addr in probes_of(&a) {
        let ok = addr.to_string() == elsewhere;
        r.input(Input::Probed { addr, ok });
    }
    assert_eq!(r.e.snapshot()[0].seq, 600);
}

#[test]
fn a_replayed_announcement_of_a_departed_node_is_not_handed_over_again() {
    let mut r = Rig::up(Config::default());
    let k = Keypair::generate_ed25519();
    let a = r.announced(&k, 1);
    answer_probes(&mut r, a, true);
    assert_eq!(r.e.snapshot().len(), 1);
    let addr = probe_of(&r.input(goodbye(&k, 1)));
    r.input(Input::Probed { addr, ok: false });
    assert!(r.e.snapshot().is_empty());
    // Another host replays its last announcement: its address refused the goodbye's
    // confirmation, so it is probed again before it is handed over, and refuses.
    r.at(5.0);
    let a = r.announced(&k, 1);
    assert!(events(&a).is_empty(), "{a:?}");
    assert_eq!(answer_probes(&mut r, a, false), 1);
    assert!(r.e.snapshot().is_empty());
}
