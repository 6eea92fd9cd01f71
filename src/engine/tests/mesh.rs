//! The mesh view: what another agent's view ask and the command's `Mesh` get, and who is asked.

use super::*;
use crate::wire::exchange::{Ask, Reply};

fn ask_view(r: &mut Rig, ip: &str) -> Reply {
    let a = r.input(Input::ExchangeAsked {
        id: 4,
        from: ip.parse().unwrap(),
        to: "10.0.0.1".parse().unwrap(),
        ask: Ask::view("exo"),
    });
    a.into_iter()
        .find_map(|a| match a {
            Action::AnswerExchange { id: 4, reply } => Some(reply),
            _ => None,
        })
        .expect("an answer")
}

#[test]
fn a_view_says_how_each_peer_is_known_and_what_failed() {
    let mut r = Rig::up(Config {
        verify_reachability: true,
        ..cfg()
    });
    let (seen, refusing) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let a = r.announced(&seen, 1);
    answer_probes(&mut r, a, true);
    let a = r.announced_from(&refusing, 1, IDX, &[[10, 0, 0, 3]]);
    assert!(answer_probes(&mut r, a, false) > 0, "its address was probed");
    r.input(register(&Keypair::generate_ed25519()));

    let Reply::View(v) = ask_view(&mut r, "10.0.0.5") else {
        panic!("a view expected");
    };
    assert_eq!(v.announces.len(), 1, "{v:?}");
    assert!(v.addrs.contains(&"10.0.0.1".parse().unwrap()));
    assert_eq!(v.links.len(), 2, "eth0 v4 and v6: {:?}", v.links);
    assert!(v.heard.iter().any(|h| h.ip == IpAddr::from([10, 0, 0, 2])));
    let id = |k: &Keypair| k.public().to_peer_id().to_base58();
    let s = v.peers.iter().find(|p| p.peer_id == id(&seen)).unwrap();
    assert_eq!((s.ways.as_slice(), s.verified), (&["v4:eth0".to_owned()][..], true));
    assert_eq!(s.age_secs, Some(0));
    let f = v.peers.iter().find(|p| p.peer_id == id(&refusing)).unwrap();
    assert!(!f.verified && f.ways.is_empty(), "{f:?}");
    assert!(
        f.missing[0].contains("probe failed") && f.missing[0].contains("/ip4/10.0.0.3/tcp/4001"),
        "{f:?}"
    );

    // Once a second per asker, apart from the peer exchange's own rule.
    assert!(matches!(ask_view(&mut r, "10.0.0.5"), Reply::Refused { why } if why.contains("within a second")));
    let a = r.input(Input::ExchangeAsked {
        id: 5,
        from: "10.0.0.5".parse().unwrap(),
        to: "10.0.0.1".parse().unwrap(),
        ask: Ask::new("exo"),
    });
    assert!(a.iter().any(|a| matches!(
        a,
        Action::AnswerExchange {
            id: 5,
            reply: Reply::Peers { .. }
        }
    )));
}

#[test]
fn mesh_asks_each_host_of_a_known_peer_once_and_replies_with_every_view() {
    let mut r = Rig::up(cfg());
    let (k1, k2, k3) = (
        Keypair::generate_ed25519(),
        Keypair::generate_ed25519(),
        Keypair::generate_ed25519(),
    );
    r.announced_from(&k1, 1, IDX, &[[10, 0, 0, 2]]);
    r.announced_from(&k2, 1, IDX, &[[10, 0, 0, 2]]);
    r.announced_from(&k3, 1, IDX, &[[10, 0, 0, 3]]);
    let a = r.input(Input::Client {
        id: 7,
        request: Request::Mesh,
    });
    let Some((local, targets)) = a.into_iter().find_map(|a| match a {
        Action::AskViews {
            client: 7,
            local,
            targets,
            ..
        } => Some((local, targets)),
        _ => None,
    }) else {
        panic!("no AskViews");
    };
    assert_eq!(local.asked, "local");
    assert!(local.view.is_ok());
    let mut hosts: Vec<(Vec<IpAddr>, usize)> =
        targets.iter().map(|t| (t.ips.clone(), t.expected.len())).collect();
    hosts.sort();
    assert_eq!(
        hosts,
        [
            (vec![IpAddr::from([10, 0, 0, 2])], 2),
            (vec![IpAddr::from([10, 0, 0, 3])], 1)
        ]
    );
    let a = r.input(Input::Viewed {
        client: 7,
        hosts: vec![local.clone()],
    });
    assert!(a.iter().any(|a| matches!(
        a,
        Action::Reply { client: 7, msg: AgentMsg::Mesh(h) } if h == &vec![local.clone()]
    )));
}

/// A peer relayed by the static host 10.9.9.9's agent at `ip`, verified from here.
fn relayed_peer(r: &mut Rig, k: &Keypair, ip: &str) {
    let a = r.input(Input::Exchanged {
        host: "10.9.9.9".into(),
        result: Ok(Reply::Peers {
            peers: vec![crate::wire::exchange::Peer {
                signed: signed(k, 1),
                ips: vec![ip.parse().unwrap()],
            }],
            complete: true,
        }),
    });
    answer_probes(r, a, true);
}

#[test]
fn mesh_asks_no_host_its_own_agent_would_not_answer() {
    let with = |allow: &[&str]| {
        Rig::up(Config {
            static_hosts: vec!["10.9.9.9".into()],
            exchange_allow: allow.iter().map(|a| a.to_string()).collect(),
            ..cfg()
        })
    };
    let mut r = with(&[]);
    let (near, far) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    r.announced_from(&near, 1, IDX, &[[10, 0, 0, 2]]);
    // A static host's agent may relay a record for any address: this one is on no link here.
    relayed_peer(&mut r, &far, "192.168.50.7");
    let id = |k: &Keypair| k.public().to_peer_id().to_base58();
    assert!(
        r.e.snapshot().iter().any(|p| p.peer_id == id(&far)),
        "the far peer is held"
    );
    let a = r.input(Input::Client {
        id: 7,
        request: Request::Mesh,
    });
    let Some((targets, unasked)) = a.into_iter().find_map(|a| match a {
        Action::AskViews {
            targets, unasked, ..
        } => Some((targets, unasked)),
        _ => None,
    }) else {
        panic!("no AskViews");
    };
    let asked: Vec<&Vec<IpAddr>> = targets.iter().map(|t| &t.ips).collect();
    assert_eq!(asked, [&vec![IpAddr::from([10, 0, 0, 2])]]);
    assert_eq!(unasked.len(), 1, "{unasked:?}");
    assert_eq!(unasked[0].asked, "192.168.50.7");
    assert_eq!(unasked[0].expected, [id(&far)]);
    assert!(
        matches!(&unasked[0].view, Err(why) if why.contains("not on a link of this host")),
        "{unasked:?}"
    );

    // The operator's word makes it askable: a range in exchange_allow.
    let mut r = with(&["192.168.50.0/24"]);
    relayed_peer(&mut r, &far, "192.168.50.7");
    let (targets, unasked) = r.e.mesh_targets();
    assert_eq!(
        (targets.len(), unasked.len()),
        (1, 0),
        "{targets:?} {unasked:?}"
    );
}
