//! Interfaces and their links: which are followed, queries on each family and their schedule, send
//! errors and what they decide, the daemons, answers to stock libp2p-mdns nodes.

use super::*;

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

#[test]
fn stock_queries_get_each_record_answered_at_most_once_a_second() {
    let mut r = Rig::up(cfg());
    r.input(register(&Keypair::generate_ed25519()));
    let query = || {
        heard_on(IDX, Heard {
            family: Family::V4,
            from: "10.0.0.66:40000".parse().unwrap(),
            instances: Vec::new(),
            goodbyes: Vec::new(),
            libp2p_peers: Vec::new(),
            libp2p_query: true,
            named: Vec::new(),
            unicast: false,
            records: Vec::new(),
            service_query: None,
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
fn a_query_lists_every_peer_held_over_as_many_packets_as_needed() {
    let mut r = Rig::up(Config {
        query_interval_max_secs: 4,
        ..cfg()
    });
    let mut labels = Vec::new();
    for i in 0..30u8 {
        let k = Keypair::generate_ed25519();
        r.announced_from(&k, 1, IDX, &[[10, 0, 0, 10 + i]]);
        labels.push(crate::wire::instance::instance_label(
            &k.public().to_peer_id(),
            1,
        ));
    }
    // A link's first queries: one packet, as many known answers as fit, no TC bit.
    let v4_queries = |a: &[Action]| -> Vec<Vec<Vec<u8>>> {
        a.iter()
            .filter_map(|a| match a {
                Action::SendQuery {
                    family: Family::V4,
                    packet,
                    ..
                } => Some(vec![packet.clone()]),
                Action::SendPackets {
                    family: Family::V4,
                    packets,
                    ..
                } => Some(packets.clone()),
                _ => None,
            })
            .collect()
    };
    let early = v4_queries(&r.at(1.0));
    assert_eq!(early.len(), 1, "one packet");
    assert!(!crate::wire::dns::is_truncated(&early[0][0]));
    let rrs = crate::wire::dns::records(&early[0][0]).unwrap();
    let fit = crate::wire::dns::instances(&rrs).len();
    assert!(fit > 10 && fit < 30, "{fit} known answers");
    // On the settled schedule (the longest interval): all of them.
    let mut t = 1.0;
    let a = loop {
        t += 1.0;
        assert!(t < 20.0, "no query on the settled schedule");
        let a = r.at(t);
        if v4_queries(&a).len() > 1 {
            break a;
        }
    };
    // Per family: the question with the first known answers and the TC bit, then the rest.
    let mut listed = Vec::new();
    for a in &a {
        let packets = match a {
            Action::SendQuery {
                family: Family::V4,
                packet,
                ..
            } => {
                assert!(crate::wire::dns::is_truncated(packet));
                vec![packet.clone()]
            }
            Action::SendPackets {
                family: Family::V4,
                packets,
                ..
            } => packets.clone(),
            _ => continue,
        };
        for p in packets {
            let rrs = crate::wire::dns::records(&p).unwrap();
            listed.extend(crate::wire::dns::instances(&rrs).into_iter().map(|(l, _)| l));
        }
    }
    listed.sort();
    labels.sort();
    assert_eq!(listed, labels, "every peer held, once");
}

/// Another host's `_p2p._udp` query heard on eth0: its question and these known answers.
fn others_query(known: &[String], asks: bool, truncated: bool) -> Input {
    heard_on(IDX, Heard {
        service_query: Some(crate::engine::links::ServiceQuery {
            asks,
            truncated,
            known: known.iter().cloned().map(Label::new).collect(),
        }),
        ..packet_from("10.0.0.3:5353")
    })
}

/// When the queries went from `from` to `to` seconds, the `heard` inputs given at their times.
fn query_times(r: &mut Rig, from: f64, to: f64, heard: Vec<(f64, Input)>) -> Vec<f64> {
    let mut sent_at = Vec::new();
    let mut heard = heard;
    let mut tenth = (from * 10.0) as u32;
    while f64::from(tenth) / 10.0 <= to {
        let t = f64::from(tenth) / 10.0;
        let mut a = r.at(t);
        while heard.first().is_some_and(|(at, _)| *at <= t) {
            a.extend(r.input(heard.remove(0).1));
        }
        if !queries(&a).is_empty() {
            sent_at.push(t);
        }
        r.settle(a);
        tenth += 1;
    }
    sent_at
}

#[test]
fn a_query_heard_that_asks_for_what_ours_would_stands_for_ours() {
    let k = Keypair::generate_ed25519();
    let label = crate::wire::instance::instance_label(&k.public().to_peer_id(), 1);
    let stranger = crate::wire::instance::instance_label(
        &Keypair::generate_ed25519().public().to_peer_id(),
        1,
    );
    let held = vec![label.clone()];
    let rig = || {
        let mut r = Rig::up(cfg());
        r.announced(&k, 1);
        let early = query_times(&mut r, 0.1, 100.0, Vec::new());
        assert_eq!(early, vec![1.0, 3.0, 7.0, 15.0, 31.0, 63.0]);
        r
    };
    // Nothing heard: every 60 s.
    assert_eq!(query_times(&mut rig(), 100.1, 190.0, Vec::new()), vec![123.0, 183.0]);
    // Another agent asked at 122 s listing only what we hold: ours goes a round later, with up
    // to an eighth of a round of jitter.
    let sent = query_times(&mut rig(), 100.1, 190.0, vec![(122.0, others_query(&held, true, false))]);
    assert!(
        sent.len() == 1 && (182.0..=189.6).contains(&sent[0]),
        "{sent:?}"
    );
    // One listing a peer we do not hold: ours goes as planned (it draws that peer's answer).
    let unknown = vec![label.clone(), stranger.clone()];
    let sent = query_times(&mut rig(), 100.1, 190.0, vec![(122.0, others_query(&unknown, true, false))]);
    assert_eq!(sent, vec![123.0, 183.0]);
    // The same, with the stranger in the query's next packet (its TC bit set).
    let sent = query_times(
        &mut rig(),
        100.1,
        190.0,
        vec![
            (122.0, others_query(&held, true, true)),
            (122.0, others_query(&[stranger], false, false)),
        ],
    );
    assert_eq!(sent, vec![123.0, 183.0]);
    // Before the schedule reaches its longest interval, every query goes (a new link's first
    // queries are what finds its peers).
    let mut r = Rig::up(cfg());
    r.announced(&k, 1);
    let sent = query_times(&mut r, 0.1, 64.0, vec![(30.0, others_query(&held, true, false))]);
    assert_eq!(sent, vec![1.0, 3.0, 7.0, 15.0, 31.0, 63.0]);
}

#[test]
fn a_family_whose_last_query_was_refused_leaves_no_query_out() {
    let k = Keypair::generate_ed25519();
    let label = crate::wire::instance::instance_label(&k.public().to_peer_id(), 1);
    let mut r = Rig::up(cfg());
    r.announced(&k, 1);
    query_times(&mut r, 0.1, 100.0, Vec::new());
    // The query at 123 s: refused on IPv4 (a firewall rule now and then), sent on IPv6.
    let a = r.at(123.0);
    assert_eq!(queries(&a), vec![Family::V4, Family::V6]);
    r.input(Input::QuerySent {
        link: IDX,
        family: Family::V4,
        outcome: SendOutcome::Refused(SendFailure {
            errno: Some(1),
            message: "Operation not permitted".into(),
            explanation: "an output firewall rule refuses it",
            class: SendClass::Policy,
        }),
    });
    r.input(Input::QuerySent {
        link: IDX,
        family: Family::V6,
        outcome: SendOutcome::Sent,
    });
    // Another agent's query covering ours is heard before the retry a second later: the retry
    // goes all the same.
    let sent = query_times(&mut r, 123.1, 125.0, vec![(123.5, others_query(&[label], true, false))]);
    assert_eq!(sent, vec![124.0]);
}
