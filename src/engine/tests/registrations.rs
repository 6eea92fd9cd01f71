//! The node's own records: what a registration may replace, and when it is announced.

use super::*;
use crate::engine::registrations;

#[test]
fn a_registration_is_announced_at_once_then_at_doubling_gaps_then_every_interval() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    let a = r.input(Input::Client {
        id: 7,
        request: Request::Register(signed(&k, 5)),
    });
    assert!(matches!(
        &a[..],
        [
            ..,
            Action::Reply {
                client: 7,
                msg: AgentMsg::Registered { .. }
            }
        ]
    ));
    let label = crate::wire::instance::instance_label(&k.public().to_peer_id(), 5);
    assert_eq!(announced(&a), vec![label.clone()]);
    let mut times = Vec::new();
    for tenth in 1..=450 {
        let a = r.at(tenth as f64 / 10.0);
        if !announced(&a).is_empty() {
            times.push(tenth as f64 / 10.0);
        }
        r.settle(a);
    }
    assert_eq!(times, vec![1.2, 3.2, 7.2, 15.2, 30.0]);
}

#[test]
fn a_registration_may_replace_only_an_older_record_and_goes_with_its_connection() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    let reg = |r: &mut Rig, seq| {
        r.input(Input::Client {
            id: 7,
            request: Request::Register(signed(&k, seq)),
        })
    };
    reg(&mut r, 5);
    let a = reg(&mut r, 9);
    let old = crate::wire::instance::instance_label(&k.public().to_peer_id(), 5);
    assert!(a
        .iter()
        .any(|a| matches!(a, Action::Withdraw { label, .. } if *label == old)));
    let a = reg(&mut r, 3);
    assert!(matches!(
        &a[..],
        [Action::Reply {
            msg: AgentMsg::Error {
                kind: crate::wire::protocol::ErrorKind::Rejected(Reject::Replay),
                ..
            },
            ..
        }]
    ));
    let other = record::sign(&k, "lab", 10, &[]).unwrap();
    let a = r.input(Input::Client {
        id: 7,
        request: Request::Register(other),
    });
    assert!(
        matches!(&a[..], [Action::Reply { msg: AgentMsg::Error { message, .. }, .. }] if message.contains("\"lab\""))
    );
    for _ in 1..registrations::MAX_REGISTRATIONS {
        reg_new(&mut r);
    }
    let a = reg_new(&mut r);
    assert!(matches!(
        &a[..],
        [Action::Reply {
            msg: AgentMsg::Error {
                kind: crate::wire::protocol::ErrorKind::Limit,
                ..
            },
            ..
        }]
    ));
    let a = r.input(Input::Client {
        id: 7,
        request: Request::Gone,
    });
    let withdrawn = a
        .iter()
        .filter(|a| matches!(a, Action::Withdraw { .. }))
        .count();
    assert_eq!(withdrawn, registrations::MAX_REGISTRATIONS);
    assert_eq!(r.e.status(r.now).registrations, 0);
}

fn reg_new(r: &mut Rig) -> Vec<Action> {
    let k = Keypair::generate_ed25519();
    r.input(Input::Client {
        id: 7,
        request: Request::Register(signed(&k, 1)),
    })
}

#[test]
fn a_periodic_announcement_is_skipped_where_the_record_just_went_out() {
    let mut r = Rig::up(cfg());
    let k = Keypair::generate_ed25519();
    r.input(register(&k));
    let label = crate::wire::instance::instance_label(&k.public().to_peer_id(), 1);
    for t in 1..=20 {
        let a = r.at(f64::from(t));
        r.settle(a);
    }
    // Our daemon answered someone's query 10 s before the periodic announcement is due: the
    // link socket hears it looped back, from our own address.
    r.at(20.0);
    let own = heard_on(IDX, Heard {
        family: Family::V4,
        from: "10.0.0.1:5353".parse().unwrap(),
        instances: vec![(Label::new(label.clone()), 120)],
        goodbyes: Vec::new(),
        libp2p_peers: Vec::new(),
        libp2p_query: false,
        named: Vec::new(),
        unicast: false,
        records: Vec::new(),
        service_query: None,
    });
    r.input(own);
    assert!(announced(&r.at(30.0)).is_empty(), "refreshed 10 s ago");
    assert_eq!(announced(&r.at(60.0)), vec![label], "then as usual");
}
