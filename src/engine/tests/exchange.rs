//! Peer exchange: who is answered, what is handed over, and how exchanged records are checked.

use super::*;
use crate::engine::exchange;

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
