use super::*;
use crate::wire::protocol::Verification;
use crate::wire::record::{self, VerifiedRecord};
use libp2p_identity::Keypair;

use crate::engine::prober::FIRST_RETRY;

const T: Duration = Duration::from_secs(60);

fn l(name: &str) -> Via {
    Via::Multicast(name.into())
}

/// `k`'s record (seq, listening on `port`) heard by multicast on `link` from `ip`.
fn multicast(
    t: &mut PeerTable,
    k: &Keypair,
    seq: u64,
    port: u16,
    link: &str,
    ip: &str,
    now: Instant,
) -> Result<Option<PeerEvent>, Reject> {
    t.observe(
        rec(k, seq, port),
        Source::Mdns,
        &l(link),
        dial(k, ip, port),
        now,
    )
}

fn rec(k: &Keypair, seq: u64, port: u16) -> VerifiedRecord {
    let a: Multiaddr = format!("/ip4/0.0.0.0/tcp/{port}").parse().unwrap();
    record::verify(&record::sign(k, "exo", seq, &[a]).unwrap(), "exo").unwrap()
}

fn dial(k: &Keypair, ip: &str, port: u16) -> Vec<Multiaddr> {
    vec![
        format!("/ip4/{ip}/tcp/{port}/p2p/{}", k.public().to_peer_id())
            .parse()
            .unwrap(),
    ]
}

#[test]
fn discovered_once_then_same_record_on_a_second_link_is_an_update() {
    let k = Keypair::generate_ed25519();
    let now = crate::test_clock();
    let mut t = PeerTable::new(T);
    let e = multicast(&mut t, &k, 1, 5, "eth0", "10.0.0.2", now)
        .unwrap()
        .unwrap();
    assert_eq!(e.event, EventKind::Discovered);
    assert_eq!(e.peer.interfaces, vec!["eth0"]);
    // Same record again on the same link: nothing new.
    assert_eq!(
        multicast(&mut t, &k, 1, 5, "eth0", "10.0.0.2", now),
        Ok(None)
    );
    let e = multicast(&mut t, &k, 1, 5, "eth1", "10.1.0.2", now)
        .unwrap()
        .unwrap();
    assert_eq!(e.event, EventKind::Updated);
    assert_eq!(e.peer.interfaces, vec!["eth0", "eth1"]);
    assert_eq!(e.peer.addrs.len(), 2);
    assert_eq!(t.snapshot().len(), 1);
}

#[test]
fn newer_seq_replaces_all_old_addresses() {
    let k = Keypair::generate_ed25519();
    let now = crate::test_clock();
    let mut t = PeerTable::new(T);
    multicast(&mut t, &k, 1, 5, "eth0", "10.0.0.2", now).unwrap();
    multicast(&mut t, &k, 1, 5, "eth1", "10.1.0.2", now).unwrap();
    let e = multicast(&mut t, &k, 2, 6, "eth0", "10.0.0.2", now)
        .unwrap()
        .unwrap();
    assert_eq!(e.event, EventKind::Updated);
    assert_eq!(e.peer.addrs, vec![dial(&k, "10.0.0.2", 6)[0].to_string()]);
    assert_eq!(e.peer.seq, 2);
}

#[test]
fn older_seq_is_a_counted_replay() {
    let k = Keypair::generate_ed25519();
    let now = crate::test_clock();
    let mut t = PeerTable::new(T);
    multicast(&mut t, &k, 5, 5, "eth0", "10.0.0.2", now).unwrap();
    assert_eq!(
        multicast(&mut t, &k, 4, 9, "eth0", "10.0.0.2", now),
        Err(Reject::Replay)
    );
    assert_eq!(t.counters().rejected.get(&Reject::Replay), Some(&1));
    assert_eq!(t.snapshot()[0].seq, 5);
    // Even after the peer expired, the seq is remembered.
    t.remove_sighting(&k.public().to_peer_id(), &l("eth0"));
    assert!(t.snapshot().is_empty());
    assert_eq!(
        multicast(&mut t, &k, 4, 9, "eth0", "10.0.0.2", now),
        Err(Reject::Replay)
    );
}

#[test]
fn the_same_record_heard_with_another_familys_addresses_adds_them() {
    let k = Keypair::generate_ed25519();
    let t0 = crate::test_clock();
    let mut t = PeerTable::new(T).with_reachability(true);
    multicast(&mut t, &k, 1, 5, "eth0", "10.0.0.2", t0).unwrap();
    t.due_probes(t0, 8, 2);
    let v4 = dial(&k, "10.0.0.2", 5)[0].clone();
    assert_eq!(
        t.probe_result(&v4, true, t0)[0].event,
        EventKind::Discovered
    );
    // Then with only its IPv6 address (an answer by unicast over IPv6): added, and what
    // answered stays handed over meanwhile.
    let v6: Multiaddr = format!("/ip6/fd00::2/tcp/5/p2p/{}", k.public().to_peer_id())
        .parse()
        .unwrap();
    let seen = t.observe(
        rec(&k, 1, 5),
        Source::Mdns,
        &l("eth0"),
        vec![v6.clone()],
        t0,
    );
    assert_eq!(seen, Ok(None));
    assert_eq!(t.snapshot()[0].addrs, vec![v4.to_string()]);
    t.due_probes(t0, 8, 2);
    assert_eq!(t.probe_result(&v6, true, t0)[0].event, EventKind::Updated);
    assert_eq!(t.snapshot()[0].addrs.len(), 2);
    // Renumbered: an IPv4 address alone replaces the old IPv4 one; the IPv6 one stays.
    multicast(&mut t, &k, 1, 5, "eth0", "10.0.0.9", t0).unwrap();
    let new = dial(&k, "10.0.0.9", 5)[0].clone();
    t.due_probes(t0, 8, 2);
    t.probe_result(&new, true, t0);
    let mut shown = t.snapshot()[0].addrs.clone();
    shown.sort();
    assert_eq!(shown, vec![new.to_string(), v6.to_string()]);
}

#[test]
fn goodbye_expires_and_timeout_expires_and_hearing_revives() {
    let k = Keypair::generate_ed25519();
    let p = k.public().to_peer_id();
    let t0 = crate::test_clock();
    let mut t = PeerTable::new(T);
    multicast(&mut t, &k, 1, 5, "eth0", "10.0.0.2", t0).unwrap();
    // First its silence check, two thirds into the timeout.
    assert_eq!(t.next_deadline(t0), Some(t0 + T * 2 / 3));
    assert!(t.expire(t0 + T - Duration::from_secs(1)).is_empty());
    assert!(t
        .heard(&p, &l("eth0"), t0 + Duration::from_secs(30))
        .is_none());
    // Hearing it moves the real deadline; the index catches up when the filed time comes.
    assert_eq!(t.next_deadline(t0), Some(t0 + T));
    assert!(t.expire(t0 + T).is_empty());
    assert_eq!(
        t.next_deadline(t0),
        Some(t0 + Duration::from_secs(30) + T * 2 / 3)
    );
    let ev = t.expire(t0 + Duration::from_secs(90));
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].event, EventKind::Expired);
    assert_eq!(
        ev[0].peer.addrs,
        vec![dial(&k, "10.0.0.2", 5)[0].to_string()]
    );
    // Dead, it is remembered (its seq refuses replays) until forgotten.
    assert_eq!(
        t.next_deadline(t0),
        Some(t0 + Duration::from_secs(90) + FORGET_AFTER)
    );
    let ev = t
        .heard(&p, &l("eth0"), t0 + Duration::from_secs(100))
        .unwrap();
    assert_eq!(ev.event, EventKind::Discovered);
    let ev = t.remove_sighting(&p, &l("eth0")).unwrap();
    assert_eq!(ev.event, EventKind::Expired);
    assert!(t.heard(&p, &l("eth0"), t0).is_none(), "a goodbye is final");
}

#[test]
fn a_sighting_without_dialable_addresses_does_not_make_a_peer_visible() {
    let k = Keypair::generate_ed25519();
    let mut t = PeerTable::new(T);
    assert_eq!(
        t.observe(
            rec(&k, 1, 5),
            Source::Mdns,
            &l("eth0"),
            vec![],
            crate::test_clock()
        ),
        Ok(None)
    );
    assert!(t.snapshot().is_empty());
}

#[test]
fn unsigned_peers_are_reported_as_such_and_never_override_signed_ones() {
    let k = Keypair::generate_ed25519();
    let p = k.public().to_peer_id();
    let now = crate::test_clock();
    let mut t = PeerTable::new(T);
    let e = t
        .observe_unsigned(
            p,
            Source::Libp2pMdns,
            &l("eth0"),
            dial(&k, "10.0.0.9", 9),
            now,
        )
        .unwrap();
    assert_eq!(e.event, EventKind::Discovered);
    assert_eq!(e.peer.source, Source::Libp2pMdns);
    assert!(e.peer.verified.is_empty());
    assert_eq!(t.seq_of(&p), None);
    // The signed record takes over, and unsigned claims are ignored from then on.
    let e = multicast(&mut t, &k, 3, 5, "eth0", "10.0.0.2", now)
        .unwrap()
        .unwrap();
    assert_eq!(e.event, EventKind::Updated);
    assert_eq!(e.peer.source, Source::Mdns);
    assert_eq!(e.peer.verified, vec![Verification::Signature]);
    assert!(t
        .observe_unsigned(
            p,
            Source::Libp2pMdns,
            &l("eth0"),
            dial(&k, "10.6.6.6", 6),
            now
        )
        .is_none());
    assert_eq!(
        t.snapshot()[0].addrs,
        vec![dial(&k, "10.0.0.2", 5)[0].to_string()]
    );
}

#[test]
fn only_addresses_that_answer_are_handed_over_and_others_are_retried() {
    let k = Keypair::generate_ed25519();
    let p = k.public().to_peer_id();
    let t0 = crate::test_clock();
    let mut t = PeerTable::new(T).with_reachability(true);
    let mut addrs = dial(&k, "10.0.0.2", 5);
    addrs.extend(dial(&k, "172.17.0.1", 5));
    addrs.extend(dial(&k, "10.0.0.3", 5));
    assert_eq!(
        t.observe(rec(&k, 1, 5), Source::Mdns, &l("eth0"), addrs.clone(), t0),
        Ok(None)
    );
    assert!(
        t.due_probes(t0, 8, 2).is_empty(),
        "not probed before a packet of the record came from its IPs"
    );
    spoke_from_all(&mut t, &p, &addrs);
    assert!(t.snapshot().is_empty(), "nothing before a probe answers");
    assert_eq!(
        t.next_deadline(t0),
        Some(t0 + T * 2 / 3),
        "due probes are the caller's now; next is the link's silence check"
    );
    // At most two probes per peer at once.
    let due = t.due_probes(t0, 8, 2);
    assert_eq!(due.len(), 2);
    assert!(
        t.due_probes(t0, 8, 2).is_empty(),
        "in flight are not handed out twice"
    );
    let ev = t.probe_result(&addrs[0], true, t0);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].event, EventKind::Discovered);
    assert_eq!(ev[0].peer.addrs, vec![addrs[0].to_string()]);
    assert_eq!(
        ev[0].peer.verified,
        vec![Verification::Signature, Verification::Reachable]
    );
    // The docker-style address does not answer: withheld, retried after a backoff.
    assert!(t.probe_result(&addrs[1], false, t0).is_empty());
    let due = t.due_probes(t0, 8, 2);
    assert_eq!(due, vec![(p, addrs[2].clone())], "the third gets its turn");
    assert!(t.probe_result(&addrs[2], false, t0).is_empty());
    assert!(t
        .due_probes(t0 + Duration::from_millis(500), 8, 2)
        .is_empty());
    let again = t.due_probes(t0 + FIRST_RETRY, 8, 2);
    assert_eq!(again.len(), 2);
    t.probe_result(&addrs[1], false, t0 + FIRST_RETRY);
    // The retry doubles.
    assert!(t.due_probes(t0 + FIRST_RETRY * 2, 8, 2).is_empty());
    // Once it answers it is handed over.
    let ev = t.probe_result(&addrs[2], true, t0 + FIRST_RETRY);
    assert_eq!(ev[0].event, EventKind::Updated);
    assert_eq!(ev[0].peer.addrs.len(), 2);
    assert!(!ev[0].peer.addrs.contains(&addrs[1].to_string()));
}

#[test]
fn the_global_probe_limit_holds_across_peers() {
    let mut t = PeerTable::new(T).with_reachability(true);
    let now = crate::test_clock();
    for i in 0..5 {
        let k = Keypair::generate_ed25519();
        let addrs = dial(&k, &format!("10.0.0.{i}"), 5);
        t.observe(rec(&k, 1, 5), Source::Mdns, &l("eth0"), addrs.clone(), now)
            .unwrap();
        spoke_from_all(&mut t, &k.public().to_peer_id(), &addrs);
    }
    assert_eq!(t.due_probes(now, 3, 2).len(), 3);
    assert!(t.due_probes(now, 3, 2).is_empty());
}

/// Packets naming `p`'s record came from every IP of `addrs` on eth0.
fn spoke_from_all(t: &mut PeerTable, p: &PeerId, addrs: &[Multiaddr]) {
    for ip in addrs.iter().filter_map(ip_of) {
        t.spoke(p, &l("eth0"), &ip);
    }
}

#[test]
fn a_record_heard_on_a_link_is_probed_only_where_its_packets_came_from() {
    let k = Keypair::generate_ed25519();
    let p = k.public().to_peer_id();
    let t0 = crate::test_clock();
    let mut t = PeerTable::new(T).with_reachability(true);
    // Its A records name the sender and a third host; packets came from the sender only.
    let mut addrs = dial(&k, "10.0.0.2", 5);
    addrs.extend(dial(&k, "10.0.0.66", 22));
    t.observe(rec(&k, 1, 5), Source::Mdns, &l("eth0"), addrs.clone(), t0)
        .unwrap();
    assert!(t.due_probes(t0, 8, 2).is_empty());
    assert!(t.probe_targets(&p, &l("eth0"), 4).is_empty());
    assert!(t.spoke(&p, &l("eth0"), &"10.0.0.2".parse().unwrap()));
    assert!(
        !t.spoke(&p, &l("eth0"), &"10.0.0.2".parse().unwrap()),
        "known"
    );
    assert!(
        !t.spoke(&p, &l("eth0"), &"10.9.9.9".parse().unwrap()),
        "not one of its IPs"
    );
    assert_eq!(t.due_probes(t0, 8, 2), vec![(p, addrs[0].clone())]);
    assert_eq!(t.probe_targets(&p, &l("eth0"), 4), vec![addrs[0].clone()]);
    // The same record heard again with another address keeps what it learned.
    t.observe(
        rec(&k, 1, 5),
        Source::Mdns,
        &l("eth0"),
        addrs[..1].to_vec(),
        t0,
    )
    .unwrap();
    assert_eq!(t.probe_targets(&p, &l("eth0"), 4), vec![addrs[0].clone()]);
    // Elsewhere than a link, the IPs given are probed.
    let k2 = Keypair::generate_ed25519();
    let a2 = dial(&k2, "10.1.0.2", 5);
    t.observe(
        rec(&k2, 1, 5),
        Source::Static,
        &Via::Static("h".into()),
        a2.clone(),
        t0,
    )
    .unwrap();
    assert!(t
        .due_probes(t0, 8, 2)
        .contains(&(k2.public().to_peer_id(), a2[0].clone())));
}

/// `k`'s record at `ip`, made to answer its probe (with reachability on).
fn answered(t: &mut PeerTable, k: &Keypair, ip: &str, now: Instant) -> Vec<PeerEvent> {
    let addrs = dial(k, ip, 5);
    t.observe(rec(k, 1, 5), Source::Mdns, &l("eth0"), addrs.clone(), now)
        .unwrap();
    spoke_from_all(t, &k.public().to_peer_id(), &addrs);
    t.probe_result(&addrs[0], true, now)
}

#[test]
fn a_flood_of_records_that_never_answer_costs_the_pending_budget_and_no_more() {
    let t0 = crate::test_clock();
    let mut t = PeerTable::new(T).with_reachability(true);
    let real = Keypair::generate_ed25519();
    assert_eq!(
        answered(&mut t, &real, "10.0.0.2", t0)[0].event,
        EventKind::Discovered
    );
    for i in 0..4 * MAX_PENDING {
        let k = Keypair::generate_ed25519();
        let now = t0 + Duration::from_millis(i as u64);
        multicast(&mut t, &k, 1, 5, "eth0", "10.0.0.66", now).unwrap();
    }
    let u = t.usage();
    assert_eq!((u.established, u.pending), (1, MAX_PENDING));
    assert_eq!(t.peers.len(), 1 + MAX_PENDING);
    assert_eq!(
        t.counters().dropped.get(&Dropped::PendingEvicted),
        Some(&(3 * MAX_PENDING as u64))
    );
    assert_eq!(
        t.counters().dropped_via[&l("eth0")][&Dropped::PendingEvicted],
        3 * MAX_PENDING as u64
    );
    // A newcomer that answers gets in at once, whatever is waiting.
    let late = Keypair::generate_ed25519();
    let ev = answered(&mut t, &late, "10.0.0.3", t0 + T / 2);
    assert_eq!(ev[0].event, EventKind::Discovered);
    assert_eq!(t.snapshot().len(), 2);
}

#[test]
fn one_host_cannot_fill_the_table_and_a_live_peer_is_never_pushed_out() {
    let t0 = crate::test_clock();
    let mut t = PeerTable::new(T).with_reachability(true);
    // Keys minted by one host, all pointing at an open port of its own.
    for _ in 0..MAX_PEERS_PER_HOST + 5 {
        answered(&mut t, &Keypair::generate_ed25519(), "10.0.0.66", t0);
    }
    assert_eq!(t.usage().established, MAX_PEERS_PER_HOST);
    assert_eq!(t.counters().dropped.get(&Dropped::HostFull), Some(&5));
    // Fill the rest of the table from many hosts; the next newcomer is refused, no live
    // peer is dropped for it.
    let mut i = 0u32;
    while t.usage().established < MAX_PEERS {
        i += 1;
        let ip = format!("10.{}.{}.{}", 1 + i / 65536, (i / 256) % 256, i % 256);
        answered(&mut t, &Keypair::generate_ed25519(), &ip, t0);
    }
    let first = t.snapshot();
    assert!(answered(&mut t, &Keypair::generate_ed25519(), "10.9.9.9", t0).is_empty());
    assert_eq!(t.counters().dropped.get(&Dropped::TableFull), Some(&1));
    assert_eq!(t.snapshot(), first);
    // Once peers have fallen silent, a newcomer takes the place of the longest dead.
    let later = t0 + T + Duration::from_secs(1);
    assert_eq!(t.expire(later).len(), MAX_PEERS);
    let ev = answered(&mut t, &Keypair::generate_ed25519(), "10.9.9.9", later);
    assert_eq!(ev[0].event, EventKind::Discovered);
    assert_eq!(t.usage().established, MAX_PEERS);
}

#[test]
fn a_host_whose_node_restarts_with_new_keys_gets_each_one_in_and_keeps_its_live_ones() {
    let t0 = crate::test_clock();
    let mut t = PeerTable::new(T).with_reachability(true);
    // A node on 10.0.0.2 beside 15 others of its host, restarted with a fresh key many more
    // times than a host has places: each of its keys is found, the dead one giving up its
    // place.
    let live: Vec<Keypair> = (1..MAX_PEERS_PER_HOST)
        .map(|_| Keypair::generate_ed25519())
        .collect();
    for k in &live {
        answered(&mut t, k, "10.0.0.2", t0);
    }
    let mut now = t0;
    for round in 0..3 * MAX_PEERS_PER_HOST {
        let k = Keypair::generate_ed25519();
        let ev = answered(&mut t, &k, "10.0.0.2", now);
        assert_eq!(ev[0].event, EventKind::Discovered, "restart {round}");
        assert_eq!(t.usage().established, MAX_PEERS_PER_HOST);
        // The others are heard again; the restarted node falls silent and times out.
        for _ in 0..2 {
            now += T / 2 + Duration::from_millis(500);
            for k in &live {
                multicast(&mut t, k, 1, 5, "eth0", "10.0.0.2", now).unwrap();
            }
        }
        let gone = t.expire(now);
        assert_eq!(gone.len(), 1, "restart {round}: {gone:?}");
        assert_eq!(gone[0].peer.peer_id, k.public().to_peer_id().to_string());
    }
    assert_eq!(t.counters().dropped.get(&Dropped::HostFull), None);
    let listed: BTreeSet<String> = t.snapshot().into_iter().map(|p| p.peer_id).collect();
    assert!(live
        .iter()
        .all(|k| listed.contains(&k.public().to_peer_id().to_string())));
    // With every place held by a live peer, a newcomer of that host is still refused.
    answered(&mut t, &Keypair::generate_ed25519(), "10.0.0.2", now);
    assert!(answered(&mut t, &Keypair::generate_ed25519(), "10.0.0.2", now).is_empty());
    assert_eq!(t.counters().dropped.get(&Dropped::HostFull), Some(&1));
}

#[test]
fn the_ips_a_sighting_is_kept_live_from_are_bounded() {
    let k = Keypair::generate_ed25519();
    let p = k.public().to_peer_id();
    let mut t = PeerTable::new(T);
    multicast(&mut t, &k, 1, 5, "eth0", "10.0.0.2", crate::test_clock()).unwrap();
    for round in 0..10u8 {
        let ips: Vec<IpAddr> = (0..32u8).map(|i| IpAddr::from([10, 1, round, i])).collect();
        t.note_ips(&p, &l("eth0"), &ips);
    }
    let sighting = t.peers.get(&p).unwrap().sightings.get(&l("eth0")).unwrap();
    assert_eq!(sighting.ips.len(), crate::wire::addrs::MAX_DIALABLE);
    let own = "10.0.0.2".parse().unwrap();
    let now = crate::test_clock();
    assert_eq!(t.heard_from(&p, &l("eth0"), &own, now), HeardFrom::Live(None));
}

#[test]
fn the_ips_a_record_spoke_from_stay_marked_as_more_of_its_ips_are_learned() {
    let k = Keypair::generate_ed25519();
    let p = k.public().to_peer_id();
    let mut t = PeerTable::new(T);
    multicast(&mut t, &k, 1, 5, "eth0", "10.0.0.5", crate::test_clock()).unwrap();
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    assert!(t.spoke(&p, &l("eth0"), &ip("10.0.0.5")));
    assert!(!t.spoke(&p, &l("eth0"), &ip("10.0.0.5")), "not new");
    assert!(!t.spoke(&p, &l("eth0"), &ip("10.0.0.9")), "not one of its own");
    // Learned IPs sort before and after the one that spoke: it stays marked, they do not.
    t.note_ips(&p, &l("eth0"), &[ip("10.0.0.1"), ip("10.0.0.7"), ip("10.0.0.3")]);
    assert_eq!(t.spoke_from(&p, &l("eth0")), vec![ip("10.0.0.5")]);
    assert!(t.spoke(&p, &l("eth0"), &ip("10.0.0.1")));
    assert!(t.spoke(&p, &l("eth0"), &ip("10.0.0.7")));
    t.note_ips(&p, &l("eth0"), &[ip("10.0.0.0"), ip("10.0.0.6"), ip("10.0.0.8")]);
    let want: Vec<IpAddr> = ["10.0.0.1", "10.0.0.5", "10.0.0.7"].map(ip).to_vec();
    assert_eq!(t.spoke_from(&p, &l("eth0")), want);
    // Up to the last of MAX_DIALABLE places.
    let more: Vec<IpAddr> = (10..60u8).map(|i| IpAddr::from([10, 0, 0, i])).collect();
    t.note_ips(&p, &l("eth0"), &more);
    let ips = &t.peers.get(&p).unwrap().sightings.get(&l("eth0")).unwrap().ips;
    assert_eq!(ips.len(), crate::wire::addrs::MAX_DIALABLE);
    let last = *ips.last().unwrap();
    let dropped = more.iter().find(|a| !ips.contains(a)).copied().unwrap();
    assert!(t.spoke(&p, &l("eth0"), &last));
    assert!(!t.spoke(&p, &l("eth0"), &dropped), "not kept");
    let mut want = want;
    want.push(last);
    assert_eq!(t.spoke_from(&p, &l("eth0")), want);
}

#[test]
fn room_among_the_established_is_made_from_dead_established_peers_only() {
    let t0 = crate::test_clock();
    let mut t = PeerTable::new(T).with_reachability(true);
    // A waiting peer that never answers, and goes dead first.
    let waiting = Keypair::generate_ed25519();
    multicast(&mut t, &waiting, 1, 5, "eth0", "10.200.0.1", t0).unwrap();
    let t1 = t0 + Duration::from_secs(10);
    let mut i = 0u32;
    while t.usage().established < MAX_PEERS {
        i += 1;
        let ip = format!("10.{}.{}.{}", 1 + i / 65536, (i / 256) % 256, i % 256);
        answered(&mut t, &Keypair::generate_ed25519(), &ip, t1);
    }
    t.expire(t0 + T + Duration::from_secs(1));
    let later = t1 + T + Duration::from_secs(1);
    t.expire(later);
    let ev = answered(&mut t, &Keypair::generate_ed25519(), "10.9.9.9", later);
    assert_eq!(ev[0].event, EventKind::Discovered);
    assert_eq!(
        t.usage().established,
        MAX_PEERS,
        "never more than the bound"
    );
    assert!(t.peers.contains_key(&waiting.public().to_peer_id()));
}

#[test]
fn dead_peers_are_forgotten_and_the_cache_keeps_the_most_recently_verified() {
    let t0 = crate::test_clock();
    let mut t = PeerTable::new(T);
    let keys: Vec<Keypair> = (0..3).map(|_| Keypair::generate_ed25519()).collect();
    for (i, k) in keys.iter().enumerate() {
        let now = t0 + Duration::from_secs(10 * i as u64);
        multicast(&mut t, k, 1, 5, "eth0", &format!("10.0.0.{}", i + 2), now).unwrap();
    }
    let cached = t.cache_entries();
    let order: Vec<PeerId> = cached
        .iter()
        .map(|c| record::verify(&c.signed, "exo").unwrap().peer_id)
        .collect();
    let ids: Vec<PeerId> = keys.iter().rev().map(|k| k.public().to_peer_id()).collect();
    assert_eq!(order, ids, "most recent first");
    // All fall silent; after FORGET_AFTER they are gone, seq and all.
    let dead = t0 + Duration::from_secs(20) + T;
    assert_eq!(t.expire(dead).len(), 3);
    assert!(
        t.cache_entries().is_empty(),
        "a peer that is gone is not written back"
    );
    assert!(t.expire(dead + FORGET_AFTER).is_empty());
    assert_eq!(t.peers.len(), 0);
    assert!(t.cache_entries().is_empty());
    assert_eq!(t.next_deadline(dead + FORGET_AFTER), None);
}

#[test]
fn a_cached_peer_is_a_hint_that_expires_unless_confirmed() {
    let k = Keypair::generate_ed25519();
    let t0 = crate::test_clock();
    let mut t = PeerTable::new(T).with_reachability(true);
    let addrs = dial(&k, "10.0.0.2", 5);
    t.observe(rec(&k, 1, 5), Source::Cache, &Via::Cache, addrs.clone(), t0)
        .unwrap();
    assert_eq!(t.due_probes(t0, 8, 2).len(), 1);
    // Its address answers 30 s in: handed over, and confirmed for one more timeout.
    let later = t0 + Duration::from_secs(30);
    let ev = t.probe_result(&addrs[0], true, later);
    assert_eq!(ev[0].event, EventKind::Discovered);
    assert_eq!(ev[0].peer.source, Source::Cache);
    assert!(t.expire(t0 + T + Duration::from_secs(1)).is_empty());
    // Never heard on a link since: it expires like any peer, and is not written back.
    let ev = t.expire(later + T);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].event, EventKind::Expired);
    assert!(t.cache_entries().is_empty());
}

#[test]
fn losing_one_of_two_links_is_an_update_and_removing_the_iface_expires() {
    let k = Keypair::generate_ed25519();
    let p = k.public().to_peer_id();
    let now = crate::test_clock();
    let mut t = PeerTable::new(T);
    multicast(&mut t, &k, 1, 5, "eth0", "10.0.0.2", now).unwrap();
    multicast(&mut t, &k, 1, 5, "eth1", "10.1.0.2", now).unwrap();
    let e = t.remove_sighting(&p, &l("eth1")).unwrap();
    assert_eq!(e.event, EventKind::Updated);
    assert_eq!(e.peer.interfaces, vec!["eth0"]);
    let ev = t.remove_via(&l("eth0"));
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].event, EventKind::Expired);
}

#[test]
fn a_peers_sightings_stay_in_order_of_their_way_in_whatever_order_they_come_and_go() {
    let now = crate::test_clock();
    let s = |port: u16| new_sighting(vec![format!("/ip4/10.0.0.1/tcp/{port}").parse().unwrap()], Source::Mdns, now);
    let port = |l: &Sighting| l.addrs[0].to_string();
    let mut all = Sightings::default();
    for (name, p) in [("eth2", 2), ("eth0", 0), ("eth3", 3), ("eth1", 1)] {
        assert!(all.insert(l(name), s(p)).is_none());
    }
    let order: Vec<String> = all.iter().map(|(v, _)| v.to_string()).collect();
    assert_eq!(order, ["eth0", "eth1", "eth2", "eth3"]);
    assert_eq!(all.first_via(), Some(l("eth0")));
    // Replacing keeps the place; each is found where it is.
    assert!(all.insert(l("eth0"), s(10)).is_some());
    assert_eq!(port(all.get(&l("eth0")).unwrap()), "/ip4/10.0.0.1/tcp/10");
    assert_eq!(port(all.get(&l("eth3")).unwrap()), "/ip4/10.0.0.1/tcp/3");
    assert!(all.get(&l("eth4")).is_none());
    // The first leaves: the next takes its place.
    assert_eq!(port(&all.remove(&l("eth0")).unwrap()), "/ip4/10.0.0.1/tcp/10");
    assert_eq!(all.first_via(), Some(l("eth1")));
    assert!(all.remove(&l("eth0")).is_none());
    assert!(all.remove(&l("eth2")).is_some());
    all.get_mut(&l("eth3")).unwrap().checks = 2;
    let left: Vec<(String, u8)> = all.iter().map(|(v, l)| (v.to_string(), l.checks)).collect();
    assert_eq!(left, [("eth1".to_string(), 0), ("eth3".to_string(), 2)]);
    assert!(all.remove(&l("eth1")).is_some() && all.remove(&l("eth3")).is_some());
    assert!(all.first_via().is_none() && all.values().next().is_none());
}

#[test]
fn a_packet_naming_a_peer_keeps_it_live_only_from_its_own_ips() {
    let k = Keypair::generate_ed25519();
    let p = k.public().to_peer_id();
    let t0 = crate::test_clock();
    let mut t = PeerTable::new(T);
    multicast(&mut t, &k, 1, 5, "eth0", "10.0.0.2", t0).unwrap();
    let own: IpAddr = "10.0.0.2".parse().unwrap();
    let other: IpAddr = "10.0.0.9".parse().unwrap();
    let v6: IpAddr = "fe80::2".parse().unwrap();
    let late = t0 + T - Duration::from_secs(1);
    assert_eq!(t.heard_from(&p, &l("eth0"), &other, late), HeardFrom::Foreign);
    assert_eq!(t.heard_from(&p, &l("eth0"), &v6, late), HeardFrom::Unknown);
    assert_eq!(t.heard_from(&p, &l("eth1"), &own, late), HeardFrom::Unknown);
    assert_eq!(t.heard_from(&p, &l("eth0"), &own, late), HeardFrom::Live(None));
    assert_eq!(t.spoke_from(&p, &l("eth0")), &[own]);
    // Heard just before the timeout: live for one more.
    assert!(t.expire(t0 + T + Duration::from_secs(1)).is_empty());
    assert!(t.is_visible(&p));
    // Once timed out, a packet from its own IP brings it back.
    let expired = t.expire(late + T + Duration::from_secs(1));
    assert_eq!(expired.len(), 1);
    let back = t.heard_from(&p, &l("eth0"), &own, late + T + Duration::from_secs(2));
    assert!(matches!(back, HeardFrom::Live(Some(ref e)) if e.event == EventKind::Discovered));
}

