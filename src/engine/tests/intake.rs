//! One intake for every way a record comes in: counting, the node's own record echoed back,
//! addresses off the receiving link, stock libp2p-mdns nodes, floods of unsigned peers.

use super::*;
use crate::engine::intake;

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
fn a_stock_node_heard_from_off_the_link_is_not_handed_over() {
    let mut r = Rig::up(Config {
        accept_unsigned: true,
        ..cfg()
    });
    let stock = |from: &str| {
        let peer = Keypair::generate_ed25519().public().to_peer_id();
        let heard = heard_on(IDX, Heard {
            family: Family::V4,
            from: from.parse().unwrap(),
            instances: Vec::new(),
            goodbyes: Vec::new(),
            libp2p_peers: vec![crate::wire::stock::Libp2pPeer {
                peer,
                addrs: vec!["/ip4/0.0.0.0/tcp/1".parse().unwrap()],
                ttl: 360,
            }],
            libp2p_query: false,
            named: Vec::new(),
            unicast: false,
            records: Vec::new(),
            service_query: None,
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

#[test]
fn a_flood_of_unsigned_peer_ids_is_said_up_to_a_bound_and_costs_no_memory() {
    let mut r = Rig::up(cfg());
    let mut said = 0;
    for i in 0..2000u32 {
        let peer = Keypair::generate_ed25519().public().to_peer_id();
        let a = r.input(heard_on(IDX, Heard {
            family: Family::V4,
            from: "10.0.0.66:40000".parse().unwrap(),
            instances: Vec::new(),
            goodbyes: Vec::new(),
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
            service_query: None,
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
