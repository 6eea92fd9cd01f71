//! Static hosts: one round at a time, and their routed addresses.

use super::*;

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
