//! Catching up on what was missed: re-queries on the link (never by unicast), held back by another
//! agent's, answers for the node's own records, and the cost of forged queries.

use super::*;
use crate::engine::catchup;

/// A query from `from` naming `k`'s instance of `seq`: a presence query (`unicast`, QU) or
/// another agent's re-query (QM).
fn named(k: &Keypair, seq: u64, from: &str, unicast: bool) -> Input {
    let label = crate::wire::instance::instance_label(&k.public().to_peer_id(), seq);
    heard_on(IDX, Heard {
        family: Family::V4,
        from: from.parse().unwrap(),
        instances: Vec::new(),
        goodbyes: Vec::new(),
        libp2p_peers: Vec::new(),
        libp2p_query: false,
        named: vec![Label::new(label)],
        unicast,
        records: Vec::new(),
        service_query: None,
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
            .flat_map(|(_, p)| {
                let qs = crate::wire::dns::questions(p).unwrap_or_default();
                crate::wire::dns::instances_asked(&qs, 4)
            })
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
    heard_on(IDX, Heard::parse(Family::V4, from, &packet).unwrap())
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
fn a_record_pushed_out_of_the_pending_budget_is_taken_again_from_the_next_packet_carrying_it() {
    let mut r = Rig::up(Config {
        verify_reachability: true,
        ..cfg()
    });
    // More new peers at once than the pending budget holds: the first is pushed out.
    let keys: Vec<Keypair> = (0..=crate::engine::table::MAX_PENDING)
        .map(|_| Keypair::generate_ed25519())
        .collect();
    for k in &keys {
        r.input(resolved(k, 1));
    }
    let out: Vec<&Keypair> = keys
        .iter()
        .filter(|k| r.e.table.seq_of(&k.public().to_peer_id()).is_none())
        .collect();
    assert_eq!(out.len(), 1, "one pushed out");
    let first = out[0].public().to_peer_id();
    // mdns-sd will not report it again; the next announcement the link socket hears carries it.
    r.input(answer_from(out[0], 1, "10.0.0.2:5353"));
    assert_eq!(r.e.table.seq_of(&first), Some(1));
    let st = r.e.status(r.now);
    assert_eq!(st.interfaces[0].dropped.get("taken-again"), Some(&1));
    // Pushed out once more, and replayed at once: a forgotten record is tried again (its
    // signature checked) at most once per interval, however often packets carry it.
    let more: Vec<Keypair> = (0..crate::engine::table::MAX_PENDING)
        .map(|_| Keypair::generate_ed25519())
        .collect();
    for k in &more {
        r.input(resolved(k, 1));
    }
    assert_eq!(r.e.table.seq_of(&first), None, "pushed out again");
    for _ in 0..3 {
        r.input(answer_from(out[0], 1, "10.0.0.2:5353"));
    }
    assert_eq!(r.e.table.seq_of(&first), None, "not tried again within the interval");
    r.at(catchup::AGAIN_EVERY.as_secs_f64() + 0.1);
    r.input(answer_from(out[0], 1, "10.0.0.2:5353"));
    assert_eq!(r.e.table.seq_of(&first), Some(1), "tried again after it");
    let st = r.e.status(r.now);
    assert_eq!(st.interfaces[0].dropped.get("taken-again"), Some(&2));
    // A record never taken is not taken from a packet (mdns-sd's report brings it).
    let stranger = Keypair::generate_ed25519();
    r.input(answer_from(&stranger, 1, "10.0.0.3:5353"));
    assert_eq!(r.e.table.seq_of(&stranger.public().to_peer_id()), None);
}

#[test]
fn when_the_next_requery_is_due_stays_exact_as_queries_name_instances_and_requeries_go() {
    let mut r = Rig::up(cfg());
    let crowd: Vec<Keypair> = (0..40).map(|_| Keypair::generate_ed25519()).collect();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // Another agent's re-query for a: ours waits a whole interval. A presence query for b: b is
    // asked for first. b put off by another's re-query: a is next.
    let (a, b) = (&crowd[0], &crowd[1]);
    let label = |k: &Keypair| crate::wire::instance::instance_label(&k.public().to_peer_id(), 1);
    r.input(named(a, 1, "10.0.0.7:5353", false));
    assert!(r.e.catchups.due_is_exact(), "one followed");
    r.now = r.t0 + Duration::from_millis(5);
    r.input(presence(b, 1, "10.0.0.8:5353"));
    assert!(r.e.catchups.due_is_exact(), "a sooner one followed");
    r.now = r.t0 + Duration::from_millis(10);
    r.input(named(b, 1, "10.0.0.9:5353", false));
    assert!(r.e.catchups.due_is_exact(), "the soonest put off");
    assert!(requeried(&r.at(0.025)).is_empty(), "b's re-query waits");
    assert_eq!(requeried(&r.at(0.100)), vec![label(a)], "a's does not");
    let mut ms = 200u64;
    let (mut followed, mut sent) = (0, 0);
    for step in 0..3000 {
        ms += next() % 10;
        let now = r.t0 + Duration::from_millis(ms);
        // Work that came due first, as the shell's timer brings it.
        if r.e.poll_timeout().is_some_and(|t| t <= now) {
            sent += requeried(&r.at(ms as f64 / 1000.0)).len();
            assert!(r.e.catchups.due_is_exact(), "step {step}, after the timer");
        }
        r.now = now;
        let k = &crowd[(next() % 40) as usize];
        let from = format!("10.0.0.{}:5353", 10 + next() % 20);
        r.input(named(k, 1 + next() % 3, &from, next() % 3 == 0));
        followed = followed.max(r.e.catchups.wanted_len());
        assert!(r.e.catchups.due_is_exact(), "step {step}");
    }
    assert!(followed > 10 && sent > 10, "{followed} followed at once, {sent} asked for");
}

#[test]
fn an_instance_named_while_the_followed_are_full_is_asked_for_once_there_is_room() {
    let mut r = Rig::up(cfg());
    let label = |k: &Keypair| crate::wire::instance::instance_label(&k.public().to_peer_id(), 1);
    let asked = |a: &[Action]| -> Vec<String> {
        multicast(a)
            .iter()
            .filter(|(f, p)| *f == Family::V4 && !crate::wire::dns::is_response(p))
            .flat_map(|(_, p)| {
                let qs = crate::wire::dns::questions(p).unwrap_or_default();
                crate::wire::dns::instances_asked(&qs, catchup::MAX_LABELS)
            })
            .collect()
    };
    // As many missed instances as are followed at once, then one more: its every announcement,
    // presence query and answer lost but one presence query, heard while the others filled it.
    let crowd: Vec<Keypair> = (0..catchup::MAX_WANTED).map(|_| Keypair::generate_ed25519()).collect();
    for (i, k) in crowd.iter().enumerate() {
        r.input(presence(k, 1, &format!("10.0.0.{}:5353", 10 + i)));
    }
    let late = Keypair::generate_ed25519();
    r.input(presence(&late, 1, "10.0.0.200:5353"));
    assert_eq!(r.e.catchups.wanted_len(), catchup::MAX_WANTED);
    // The first few answers arrive: the late one takes their room, and is asked for in turn. A
    // packet names 16 of the 61 due, the same 16 each round until they rest (2 s): in the worst
    // order the late one is in the fourth group, asked for after about 6 s.
    let mut t = 0.0;
    for (i, k) in crowd.iter().take(4).enumerate() {
        r.input(answer_from(k, 1, &format!("10.0.0.{}:5353", 10 + i)));
    }
    let mut late_asked = None;
    while t < 10.0 && late_asked.is_none() {
        t += 0.01;
        let a = r.at(t);
        if asked(&a).contains(&label(&late)) {
            late_asked = Some(t);
        }
    }
    assert!(late_asked.is_some(), "the late instance was never asked for");
    assert!(r.e.catchups.wanted_len() <= catchup::MAX_WANTED);
}
