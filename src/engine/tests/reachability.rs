//! Liveness and reachability: which packets keep a peer alive, silence checks, addresses handed
//! over once a probe answers, and what minted records cost the hosts they name.

use super::*;

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
        Input::Heard { link, heard: h } => heard_on(link, Heard {
            from: "10.0.0.66:5353".parse().unwrap(),
            ..h
        }),
        _ => unreachable!(),
    };
    let other_family = |k: &Keypair| match heard(k, 1, 120) {
        Input::Heard { link, heard: h } => heard_on(link, Heard {
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
        v4_addr(&k)
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
fn a_record_whose_packets_were_heard_before_mdns_sd_reported_it_is_probed_at_once() {
    // Both families' announcements reach the link sockets first; mdns-sd then reports the record
    // with its IPv6 address only, and a moment later with both.
    let mut r = Rig::up(Config::default());
    let k = Keypair::generate_ed25519();
    let label = crate::wire::instance::instance_label(&k.public().to_peer_id(), 1);
    let from = |ip: &str| {
        let mut h = Heard::parse(
            Family::V4,
            ip.parse().unwrap(),
            &crate::wire::dns::ptr_query(crate::wire::dns::SERVICE),
        )
        .unwrap();
        h.instances = vec![(Label::new(label.clone()), 120)];
        heard_on(IDX, h)
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
        vec![v4_addr(&k)],
        "its IPv4 address is probed at once, not at the next announcement"
    );
}

#[test]
fn the_records_of_a_crowd_heard_before_mdns_sd_reported_them_are_probed_at_once() {
    // More new records than the senders kept per link reach the link socket within a moment (a
    // crowd of nodes starting together); mdns-sd then reports the newest.
    let mut r = Rig::up(Config::default());
    let keys: Vec<Keypair> = (0..crate::engine::links::MAX_SENDERS + 64)
        .map(|_| Keypair::generate_ed25519())
        .collect();
    for (i, k) in keys.iter().enumerate() {
        r.at(i as f64 * 0.001);
        r.input(heard(k, 1, 120));
    }
    let last = keys.last().unwrap();
    let probes = probes_of(&r.input(resolved(last, 1)));
    assert_eq!(
        probes.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        vec![v4_addr(last)],
        "its address is probed at once, not at its next announcement"
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
            Family::V4,
            "10.0.0.9:5353".parse().unwrap(),
            &crate::wire::dns::ptr_query(crate::wire::dns::SERVICE),
        )
        .unwrap();
        heard.instances = vec![(Label::new(label), 120)];
        let a = r.input(heard_on(IDX, heard));
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
fn probes_held_back_by_the_limit_go_as_running_ones_end_with_no_timer() {
    // More peers than probes may run at once, each at an address of its own: the first ones are
    // probed as their records come in, and each probe's end lets the next go at once (the
    // engine's work after an input, not the shell's timer, which has nothing due meanwhile).
    let mut r = Rig::up(Config::default());
    let keys: Vec<Keypair> = (0..crate::engine::MAX_PROBES + 4)
        .map(|_| Keypair::generate_ed25519())
        .collect();
    let mut running = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let ip = [10, 0, 0, 10 + i as u8];
        running.extend(probes_of(&r.input(resolved_at(k, 1, ip, 4001))));
        let label = crate::wire::instance::instance_label(&k.public().to_peer_id(), 1);
        let mut h = packet_from(&format!("10.0.0.{}:5353", 10 + i));
        h.instances = vec![(Label::new(label), 120)];
        running.extend(probes_of(&r.input(heard_on(IDX, h))));
    }
    assert_eq!(running.len(), crate::engine::MAX_PROBES, "{running:?}");
    let mut discovered = 0;
    while let Some(addr) = running.pop() {
        let a = r.input(Input::Probed { addr, ok: true });
        discovered += events(&a).len();
        running.extend(probes_of(&a));
    }
    assert_eq!(discovered, keys.len(), "every peer probed and handed over");
}
