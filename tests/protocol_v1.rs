//! An older client keeps working: a client that said version 1 in its hello is sent nothing its
//! decoder (kept in `tests/old/protocol_v1.rs`, as it was built) cannot read. Pure: no agent runs here
//! (the agent's side, over a real socket: `tests/socket.rs` and `tests/exchange.rs`).

#[path = "old/protocol_v1.rs"]
#[allow(dead_code)]
mod v1;
use exo_discovery::wire::protocol::{
    self, AgentMsg, ErrorKind, EventKind, PeerEvent, PeerInfo, Source, Verification,
};
use exo_discovery::wire::protocol_json;
use exo_discovery::wire::record::Reject;

fn peer(id: &str, source: Source) -> PeerInfo {
    PeerInfo {
        peer_id: id.into(),
        addrs: vec![format!("/ip4/10.0.0.3/tcp/4001/p2p/{id}")],
        interfaces: vec![match source {
            Source::Exchange => "exchange:10.0.0.2".into(),
            _ => "eth0".into(),
        }],
        source,
        verified: vec![Verification::Signature, Verification::Reachable],
        seq: 7,
    }
}

fn old_peer(id: &str, source: v1::Source, interface: &str) -> v1::PeerInfo {
    v1::PeerInfo {
        peer_id: id.into(),
        addrs: vec![format!("/ip4/10.0.0.3/tcp/4001/p2p/{id}")],
        interfaces: vec![interface.into()],
        source,
        verified: vec![v1::Verification::Signature, v1::Verification::Reachable],
        seq: 7,
    }
}

/// The frame's body, as the agent sends it to a client of `version`.
fn sent(msg: &AgentMsg, version: u16) -> Vec<u8> {
    protocol::encode_reply(&protocol::for_version(msg.clone(), version))[4..].to_vec()
}

#[test]
fn the_agent_speaks_versions_one_and_two() {
    assert_eq!(protocol::negotiate(1), Some(1));
    assert_eq!(protocol::negotiate(2), Some(2));
    assert_eq!(protocol::negotiate(protocol::PROTOCOL_VERSION), Some(2));
    assert_eq!(protocol::negotiate(0), None);
    assert_eq!(protocol::negotiate(3), None);
}

#[test]
fn a_version_one_client_reads_an_exchange_peer_as_static() {
    let list = vec![peer("A", Source::Mdns), peer("B", Source::Exchange)];
    let want = vec![
        old_peer("A", v1::Source::Mdns, "eth0"),
        old_peer("B", v1::Source::Static, "exchange:10.0.0.2"),
    ];
    // What the agent sent before: a frame the old decoder cannot read at all.
    let snapshot = AgentMsg::Snapshot(list.clone());
    assert!(v1::decode(&sent(&snapshot, 2)).is_err());
    assert_eq!(
        v1::decode(&sent(&snapshot, 1)),
        Ok(v1::AgentMsg::Snapshot(want.clone()))
    );
    let part = AgentMsg::SnapshotPart(list.clone());
    assert_eq!(
        v1::decode(&sent(&part, 1)),
        Ok(v1::AgentMsg::SnapshotPart(want.clone()))
    );
    for (kind, old_kind) in [
        (EventKind::Discovered, v1::EventKind::Discovered),
        (EventKind::Updated, v1::EventKind::Updated),
        (EventKind::Expired, v1::EventKind::Expired),
    ] {
        let event = AgentMsg::Event(PeerEvent {
            event: kind,
            peer: list[1].clone(),
        });
        assert!(v1::decode(&sent(&event, 2)).is_err());
        assert_eq!(
            v1::decode(&sent(&event, 1)),
            Ok(v1::AgentMsg::Event(v1::PeerEvent {
                event: old_kind,
                peer: want[1].clone(),
            }))
        );
    }
    // A client of this version is told the truth.
    assert_eq!(protocol::for_version(snapshot.clone(), 2), snapshot);

    // In JSON lines too.
    let line = protocol_json::agent_line(&protocol::for_version(snapshot, 1));
    let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(v["snapshot"][1]["source"], "static", "{v}");
    assert_eq!(
        v["snapshot"][1]["interfaces"][0], "exchange:10.0.0.2",
        "{v}"
    );
    assert_eq!(v["snapshot"][0]["source"], "mdns", "{v}");
}

#[test]
fn every_other_message_reads_the_same_in_version_one() {
    let same = [
        (
            AgentMsg::Welcome {
                version: 1,
                namespace: "exo".into(),
            },
            v1::AgentMsg::Welcome {
                version: 1,
                namespace: "exo".into(),
            },
        ),
        (
            AgentMsg::Done {
                message: "ok".into(),
            },
            v1::AgentMsg::Done {
                message: "ok".into(),
            },
        ),
        (
            AgentMsg::Registered {
                peer_id: "A".into(),
            },
            v1::AgentMsg::Registered {
                peer_id: "A".into(),
            },
        ),
        (
            AgentMsg::Error {
                kind: ErrorKind::Rejected(Reject::Replay),
                message: "old".into(),
            },
            v1::AgentMsg::Error {
                kind: v1::ErrorKind::Rejected(v1::Reject::Replay),
                message: "old".into(),
            },
        ),
        (
            AgentMsg::Snapshot(vec![peer("C", Source::Cache)]),
            v1::AgentMsg::Snapshot(vec![old_peer("C", v1::Source::Cache, "eth0")]),
        ),
    ];
    for (msg, old) in same {
        assert_eq!(v1::decode(&sent(&msg, 1)), Ok(old.clone()), "{msg:?}");
        assert_eq!(v1::decode(&sent(&msg, 2)), Ok(old), "{msg:?}");
    }
}
