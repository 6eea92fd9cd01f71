//! Goodbyes: confirmed by probes before a live peer is dropped, at a bounded cost, and departures
//! on one or more links.

use super::*;
use crate::engine::goodbye;

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
        v4_addr(&k)
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

/// The goodbye packet of `k`'s record of `seq` (every record with TTL 0, as mdns-sd sends it
/// when a registration is withdrawn) as eth0's socket receives it from `from`.
fn goodbye_packet(k: &Keypair, seq: u64, from: [u8; 4]) -> Input {
    let label = crate::wire::instance::instance_label(&k.public().to_peer_id(), seq);
    let ip = IpAddr::V4(Ipv4Addr::from(from));
    let bytes = crate::wire::dns::instance_answer(&label, "exo-x.local.", 4001, &[], &[ip], 0);
    Input::Datagram {
        link: IDX,
        datagram: Datagram::new(Family::V4, SocketAddr::new(ip, 5353), bytes).into(),
    }
}

#[test]
fn a_departure_is_confirmed_as_its_goodbye_arrives_not_a_second_later() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    let id = k.public().to_peer_id().to_base58();
    r.at(1.0);
    r.announced(&k, 1);
    // The link's socket reads the goodbye from the packet: its port is probed at once.
    let addr = probe_of(&r.input(goodbye_packet(&k, 1, [10, 0, 0, 2])));
    let a = r.input(Input::Probed { addr, ok: false });
    assert_eq!(events(&a), vec![(EventKind::Expired, id)]);
    // mdns-sd's report of the same goodbye, after RFC 6762's second of grace, changes nothing.
    r.at(2.0);
    let a = r.input(goodbye(&k, 1));
    assert!(probes_of(&a).is_empty() && events(&a).is_empty(), "{a:?}");
    assert!(r.e.snapshot().is_empty());
}

#[test]
fn a_spoofed_goodbye_packet_changes_nothing_and_is_counted_once() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    r.at(1.0);
    r.announced(&k, 1);
    // Another host sends the node's goodbye: probed at once, the node's port answers.
    let a = r.input(goodbye_packet(&k, 1, [10, 0, 0, 9]));
    assert!(events(&a).is_empty());
    let a = r.input(Input::Probed {
        addr: probe_of(&a),
        ok: true,
    });
    assert!(events(&a).is_empty(), "{a:?}");
    // mdns-sd reports the same goodbye a second later: not probed, not counted again.
    r.at(2.0);
    let a = r.input(goodbye(&k, 1));
    assert!(probes_of(&a).is_empty() && events(&a).is_empty(), "{a:?}");
    assert_eq!(r.e.snapshot().len(), 1, "the peer stays");
    assert_eq!(r.e.status(r.now).dropped.get("goodbye-refuted"), Some(&1));
}

#[test]
fn the_goodbye_of_a_replaced_record_read_from_its_packet_changes_nothing() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    r.at(1.0);
    r.announced(&k, 1);
    r.announced(&k, 2);
    let a = r.input(goodbye_packet(&k, 1, [10, 0, 0, 2]));
    assert!(probes_of(&a).is_empty() && events(&a).is_empty(), "{a:?}");
    assert_eq!(r.e.snapshot().len(), 1);
}

#[test]
fn a_node_that_re_registers_while_its_port_answers_is_one_update() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    let id = k.public().to_peer_id().to_base58();
    r.at(1.0);
    r.announced(&k, 1);
    // Its connection to its agent closed and came back (the node's listener stayed up): the
    // goodbye is refuted by its port, and the new record, 300 ms later, is an update.
    let a = r.input(goodbye_packet(&k, 1, [10, 0, 0, 2]));
    let a = r.input(Input::Probed {
        addr: probe_of(&a),
        ok: true,
    });
    assert!(events(&a).is_empty(), "{a:?}");
    r.at(1.3);
    let got = events(&r.announced(&k, 2));
    assert_eq!(got, vec![(EventKind::Updated, id)]);
}

#[test]
fn a_node_whose_port_refused_its_goodbye_and_that_returns_is_expired_then_discovered() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    let id = k.public().to_peer_id().to_base58();
    r.at(1.0);
    r.announced(&k, 1);
    // A restart of the node's process: its port closed with it, the goodbye is confirmed (the
    // node is gone, and every connection to it broke), and its return 300 ms later on the same
    // port is a new discovery.
    let a = r.input(goodbye_packet(&k, 1, [10, 0, 0, 2]));
    let a = r.input(Input::Probed {
        addr: probe_of(&a),
        ok: false,
    });
    assert_eq!(events(&a), vec![(EventKind::Expired, id.clone())]);
    r.at(1.3);
    let mut got = Vec::new();
    let mut a = r.announced(&k, 2);
    while !a.is_empty() {
        got.extend(events(&a));
        let probes = probes_of(&a);
        a = Vec::new();
        for addr in probes {
            a.extend(r.input(Input::Probed { addr, ok: true }));
        }
    }
    assert_eq!(got, vec![(EventKind::Discovered, id)]);
}

#[test]
fn a_restart_quicker_than_the_goodbyes_probe_keeps_the_new_record() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    let id = k.public().to_peer_id().to_base58();
    r.at(1.0);
    r.announced(&k, 1);
    let addr = probe_of(&r.input(goodbye_packet(&k, 1, [10, 0, 0, 2])));
    // The node's new record comes while the probe is out, and then the probe is refused: the
    // refusal spoke of the record it replaced.
    assert_eq!(events(&r.announced(&k, 2)), vec![(EventKind::Updated, id)]);
    let a = r.input(Input::Probed { addr, ok: false });
    assert!(events(&a).is_empty(), "{a:?}");
    assert_eq!(r.e.snapshot().len(), 1, "the new record stays");
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
