//! Entry points for the fuzz targets (`fuzz/`) and for the test that replays their corpora
//! (`tests/fuzz_corpora.rs`). Pure: each takes bytes anyone could send and must never panic,
//! whatever they are.

use crate::engine::{Engine, Input};
use crate::wire::config::{Config, Overrides};
use crate::wire::protocol::{AgentMsg, ClientMsg};
use crate::wire::{cache, dns, instance, protocol, record, stock};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

/// A datagram as a link socket or a static host's reply brings it: the DNS reader and everything
/// that reads its records (instances, signed records, stock libp2p-mdns peers, queries).
pub fn dns_packet(data: &[u8]) {
    let _ = dns::is_response(data);
    let _ = dns::questions(data);
    let _ = stock::is_service_query(data);
    if let Ok(rrs) = dns::records(data) {
        let _ = dns::instances(&rrs);
        let _ = dns::signed_records(&rrs);
        let _ = stock::libp2p_peers(&rrs);
    }
}

/// A signed record: decode and verify, in the agent's namespace and in any; and the same bytes
/// as TXT strings (`key=value`, each behind a length byte) reassembled into a record.
pub fn signed_record(data: &[u8]) {
    let _ = record::verify(data, "exo");
    let _ = record::verify_any_namespace(data);
    let mut strings: Vec<&[u8]> = Vec::new();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let take = (len as usize).min(tail.len());
        strings.push(&tail[..take]);
        rest = &tail[take..];
    }
    let kv: Vec<(&[u8], &[u8])> = strings
        .iter()
        .map(|s| match s.iter().position(|b| *b == b'=') {
            Some(i) => (&s[..i], &s[i + 1..]),
            None => (*s, &s[s.len()..]),
        })
        .collect();
    if let Ok(signed) = record::from_txt(|key| {
        kv.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key.as_bytes()))
            .map(|(_, v)| *v)
    }) {
        let _ = record::verify(&signed, "exo");
    }
}

/// A frame on the local socket: the length prefix, then the body as either side's message.
pub fn socket_frame(data: &[u8]) {
    let Some((prefix, body)) = data.split_first_chunk::<4>() else {
        return;
    };
    if let Ok(n) = protocol::body_len(*prefix) {
        let body = &body[..n.min(body.len())];
        let _ = protocol::decode::<ClientMsg>(body);
        let _ = protocol::decode::<AgentMsg>(body);
    }
}

/// A line on the local socket in JSON mode, read as a request (and any signed record in it as
/// the agent would check it).
pub fn json_line(data: &[u8]) {
    if let Ok(ClientMsg::Register { signed_record }) =
        crate::wire::protocol_json::parse_request(data)
    {
        let _ = record::verify(&signed_record, "exo");
    }
}

/// The persistent cache file.
pub fn cache_file(data: &[u8]) {
    let _ = cache::decode(data);
}

/// The configuration file, merged as `run` merges it.
pub fn config_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(file) = Overrides::from_toml(text) {
        let _ = Config::merge(&file, &Overrides::default());
    }
    let _ = Config::from_toml(text);
}

/// A datagram received on a link, handed as it came to a whole engine (which reads it) that
/// announces a node of its own on that link: responses (records, liveness, stock libp2p-mdns
/// peers), queries (presence queries, re-queries, its own record asked for), from the sender the
/// first byte picks, and what the engine does after (re-queries, answers, probes). The path a
/// packet from anyone on the link takes.
pub fn link_datagram(data: &[u8]) {
    use crate::engine::{Request, SendOutcome};
    use crate::wire::net::Family;
    use crate::wire::net::Iface;
    use std::net::{Ipv6Addr, SocketAddr};
    use std::time::Duration;
    let Some((&pick, packet)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    let eth0 = Iface {
        name: "eth0".into(),
        index: 2,
        up: true,
        multicast: true,
        loopback: false,
        point_to_point: false,
        v4: vec![(Ipv4Addr::new(10, 0, 0, 1), 24)],
        v6: vec![(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1), 64)],
    };
    let mut engine = Engine::new(Config::default(), now);
    engine.handle(Input::Interfaces(Ok(vec![eth0])), now);
    for family in [Family::V4, Family::V6] {
        let sent = Input::QuerySent {
            link: 2,
            family,
            outcome: SendOutcome::Sent,
        };
        engine.handle(sent, now);
    }
    let daemon = Input::DaemonSet {
        link: 2,
        families: vec![Family::V4, Family::V6],
        result: Ok(()),
    };
    engine.handle(daemon, now);
    // A node of its own, so that a query naming its record is answered.
    if let Ok(k) = libp2p_identity::Keypair::ed25519_from_bytes([7u8; 32]) {
        let addr: Option<multiaddr::Multiaddr> = "/ip4/0.0.0.0/tcp/4001".parse().ok();
        if let Some(signed) = addr.and_then(|a| record::sign(&k, "exo", 1, &[a]).ok()) {
            for request in [Request::Connected, Request::Register(signed)] {
                engine.handle(Input::Client { id: 1, request }, now);
            }
        }
    }
    let (ip, family) = match pick % 4 {
        0 => (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), Family::V4),
        1 => (IpAddr::V4(Ipv4Addr::new(172, 16, 0, 2)), Family::V4),
        2 => (
            IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2)),
            Family::V6,
        ),
        _ => (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), Family::V4),
    };
    let port = if pick & 4 == 0 { 5353 } else { 40000 };
    let from = SocketAddr::new(ip, port);
    let datagram = Input::Datagram {
        link: 2,
        datagram: crate::engine::Datagram::new(family, from, packet).into(),
    };
    engine.handle(datagram, now);
    for ms in [20, 120, 1000, 5000] {
        engine.handle_timeout(now + Duration::from_millis(ms));
        while engine.poll_action().is_some() {}
    }
    let _ = engine.snapshot();
}

/// An instance name as a packet may carry it.
pub fn instance_name(data: &[u8]) {
    let name = String::from_utf8_lossy(data);
    if let Some((peer, label)) = instance::parse_instance(&name) {
        let _ = instance::instance_label(&peer, 0);
        let _ = label.len();
    }
}

/// A static host's reply taken in by a whole engine: the path from bytes to the peer table.
pub fn static_reply(data: &[u8]) {
    let now = Instant::now();
    let cfg = Config {
        static_hosts: vec!["10.0.0.9".into()],
        ..Config::default()
    };
    let mut engine = Engine::new(cfg, now);
    let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9));
    engine.handle(
        Input::StaticReplied {
            host: "10.0.0.9".into(),
            resolved: vec![ip],
            result: Ok(vec![(ip, None, data.to_vec())]),
        },
        now,
    );
    while engine.poll_action().is_some() {}
    let _ = engine.snapshot();
}

/// Peer exchange from both ends: the bytes as another agent's ask taken in by an engine, and as a
/// static host's reply decoded and taken in by an engine (the path from bytes to the peer table).
pub fn exchange_frame(data: &[u8]) {
    let now = Instant::now();
    let cfg = Config {
        static_hosts: vec!["10.0.0.9".into()],
        ..Config::default()
    };
    let mut engine = Engine::new(cfg, now);
    if let Ok(ask) = protocol::decode::<crate::wire::exchange::Ask>(data) {
        engine.handle(
            Input::ExchangeAsked {
                id: 1,
                from: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 8)),
                to: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                ask,
            },
            now,
        );
    }
    engine.handle(
        Input::Exchanged {
            host: "10.0.0.9".into(),
            result: crate::wire::exchange::decode_reply(data),
        },
        now,
    );
    while engine.poll_action().is_some() {}
    let _ = engine.snapshot();
}
