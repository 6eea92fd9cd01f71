//! Older records: taken when the node itself stands behind them (its clock stepped back, it came
//! back elsewhere), refused when a third host replays them.

use super::*;

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
