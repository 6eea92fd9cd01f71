//! How the command line shows what the agent and `doctor` report: pure functions from values to
//! text, without the final newline. No I/O.

use crate::agent::doctor::Report;
use crate::wire::protocol::{EventKind, PeerEvent, PeerInfo, Status};
use serde::Serialize;
use std::collections::BTreeMap;

/// Any report as indented JSON (`--json`, `--format json`).
pub fn json<T: Serialize>(value: &T) -> Result<String, String> {
    serde_json::to_string_pretty(value).map_err(|e| e.to_string())
}

/// `peers`: one [`peer`] after another, or `no peers`.
pub fn peers_text(list: &[PeerInfo]) -> String {
    if list.is_empty() {
        return "no peers".to_owned();
    }
    list.iter().map(peer).collect::<Vec<_>>().join("\n")
}

/// `peers --format csv`: every address of every peer, comma-separated.
pub fn peers_csv(list: &[PeerInfo]) -> String {
    crate::wire::peers_file::csv(list)
}

/// `peers --format zenoh`: every TCP address of every peer as a zenoh endpoint, comma-separated.
pub fn peers_zenoh(list: &[PeerInfo]) -> String {
    crate::wire::peers_file::zenoh(list)
}

/// One peer: its ID, interfaces and source, then one indented address a line.
pub fn peer(p: &PeerInfo) -> String {
    format!(
        "{} via {} [{}]\n  {}",
        p.peer_id,
        p.interfaces.join(","),
        serde_json::to_value(p.source)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        p.addrs.join("\n  ")
    )
}

/// `watch`: one event, as JSON on one line or as the event's word and the [`peer`].
pub fn event(ev: &PeerEvent, json: bool) -> String {
    if json {
        return ev.to_json().to_string();
    }
    let word = match ev.event {
        EventKind::Discovered => "discovered",
        EventKind::Updated => "updated",
        EventKind::Expired => "expired",
    };
    format!("{word} {}", peer(&ev.peer))
}

/// `status`: a summary line, the record counts, then every interface and static host.
pub fn status(st: &Status) -> String {
    let reasons = |m: &BTreeMap<String, u64>| {
        if m.is_empty() {
            "none".to_owned()
        } else {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let mut lines = vec![
        format!(
            "exo-discovery {} up {} s, namespace {:?}: {} peer(s), {} client(s), {} node(s) announced",
            st.version, st.uptime_secs, st.namespace, st.peers, st.clients, st.registrations
        ),
        format!(
            "records: {} accepted; refused: {}; dropped: {}",
            st.records_accepted,
            reasons(&st.records_rejected),
            reasons(&st.dropped)
        ),
        format!(
            "budget: {}",
            st.budget
                .iter()
                .map(|b| format!("{} {}/{}", b.name, b.used, b.max))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ];
    for i in &st.interfaces {
        lines.push(format!(
            "{} (index {}): records {} accepted, refused: {}; dropped: {}",
            i.name,
            i.index,
            i.records_accepted,
            reasons(&i.records_rejected),
            reasons(&i.dropped)
        ));
        for f in &i.families {
            let state = match (&f.in_use, &f.problem) {
                (true, None) => "in use".to_owned(),
                (true, Some(p)) => format!("in use ({p}; retrying)"),
                (false, Some(p)) => format!("not used: {p}"),
                (false, None) => "not used yet".to_owned(),
            };
            lines.push(format!(
                "  {}: {state}; packets in {}, queries out {}",
                f.family, f.packets_in, f.packets_out
            ));
        }
    }
    for u in &st.unused_interfaces {
        lines.push(format!("{}: not used: {}", u.name, u.why));
    }
    for h in &st.static_hosts {
        lines.push(format!(
            "static host {}: {}",
            h.host,
            h.last_error.as_deref().unwrap_or("answering")
        ));
    }
    lines.join("\n")
}

/// `doctor`: three lines per interface and family, or `no interface matches`.
pub fn doctor(report: &Report) -> String {
    if report.rows.is_empty() {
        return "no interface matches".to_owned();
    }
    report
        .rows
        .iter()
        .map(|r| {
            format!(
                "{} (index {}) {} [{}] {}\n  join: {}  send: {}  heard: {} speaker(s), {} instance(s)\n  => {}",
                r.interface,
                r.index,
                r.family,
                r.flags.join(","),
                if r.addresses.is_empty() { "-".to_owned() } else { r.addresses.join(" ") },
                r.join,
                r.send,
                r.speakers,
                r.instances,
                r.verdict
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::doctor::{Cause, Row};
    use crate::wire::protocol::{
        BudgetUse, FamilyStatus, IfaceStatus, Source, StaticHostStatus, UnusedIface, Verification,
    };

    fn p(id: &str, addrs: &[&str]) -> PeerInfo {
        PeerInfo {
            peer_id: id.into(),
            addrs: addrs.iter().map(|a| a.to_string()).collect(),
            interfaces: vec!["eth0".into()],
            source: Source::Mdns,
            verified: vec![Verification::Signature],
            seq: 1,
        }
    }

    fn two() -> Vec<PeerInfo> {
        vec![
            p(
                "A",
                &["/ip4/10.0.0.1/tcp/1/p2p/A", "/ip6/fd00::1/tcp/1/p2p/A"],
            ),
            p("B", &["/ip4/10.0.0.2/tcp/2/p2p/B"]),
        ]
    }

    #[test]
    fn csv_is_every_full_address_on_one_line() {
        assert_eq!(
            peers_csv(&two()),
            "/ip4/10.0.0.1/tcp/1/p2p/A,/ip6/fd00::1/tcp/1/p2p/A,/ip4/10.0.0.2/tcp/2/p2p/B"
        );
        assert_eq!(peers_csv(&[]), "");
    }

    #[test]
    fn zenoh_is_every_tcp_address_as_an_endpoint_on_one_line() {
        let id = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
        let list = [p(
            id,
            &[
                &format!("/ip4/10.0.0.1/tcp/1/p2p/{id}"),
                &format!("/ip6zone/eth0/ip6/fe80::1/tcp/1/p2p/{id}"),
            ],
        )];
        assert_eq!(
            peers_zenoh(&list),
            "tcp/10.0.0.1:1,tcp/[fe80::1]:1#iface=eth0"
        );
        assert_eq!(peers_zenoh(&[]), "");
    }

    #[test]
    fn text_is_one_block_per_peer_with_indented_addresses() {
        assert_eq!(
            peers_text(&two()),
            "A via eth0 [mdns]\n  /ip4/10.0.0.1/tcp/1/p2p/A\n  /ip6/fd00::1/tcp/1/p2p/A\n\
             B via eth0 [mdns]\n  /ip4/10.0.0.2/tcp/2/p2p/B"
        );
        assert_eq!(peers_text(&[]), "no peers");
        let mut cached = p("C", &["/ip4/10.0.0.3/tcp/3/p2p/C"]);
        cached.source = Source::Libp2pMdns;
        cached.interfaces.push("wlan0".into());
        assert_eq!(
            peer(&cached),
            "C via eth0,wlan0 [libp2p-mdns]\n  /ip4/10.0.0.3/tcp/3/p2p/C"
        );
    }

    #[test]
    fn json_is_the_indented_array() {
        let text = json(&two()).unwrap();
        assert!(text.starts_with("[\n  {\n    \"peer_id\": \"A\""), "{text}");
        let back: Vec<PeerInfo> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, two());
        assert_eq!(json(&Vec::<PeerInfo>::new()).unwrap(), "[]");
    }

    #[test]
    fn events_are_a_word_and_the_peer_or_one_json_line() {
        let ev = |event| PeerEvent {
            event,
            peer: p("B", &["/ip4/10.0.0.2/tcp/2/p2p/B"]),
        };
        assert_eq!(
            event(&ev(EventKind::Discovered), false),
            "discovered B via eth0 [mdns]\n  /ip4/10.0.0.2/tcp/2/p2p/B"
        );
        assert!(event(&ev(EventKind::Updated), false).starts_with("updated B via"));
        assert!(event(&ev(EventKind::Expired), false).starts_with("expired B via"));
        let line = event(&ev(EventKind::Expired), true);
        assert!(!line.contains('\n'), "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["event"], "expired");
        assert_eq!(v["peer_id"], "B");
    }

    #[test]
    fn status_lists_counts_interfaces_and_static_hosts() {
        let st = Status {
            version: "0.1.0".into(),
            uptime_secs: 42,
            namespace: "exo".into(),
            interfaces: vec![IfaceStatus {
                name: "eth0".into(),
                index: 2,
                families: vec![
                    FamilyStatus {
                        family: "IPv4".into(),
                        in_use: true,
                        problem: None,
                        packets_in: 10,
                        packets_out: 3,
                    },
                    FamilyStatus {
                        family: "IPv6".into(),
                        in_use: false,
                        problem: Some("no link-local address".into()),
                        packets_in: 0,
                        packets_out: 0,
                    },
                ],
                records_accepted: 4,
                records_rejected: BTreeMap::from([("replay".into(), 1)]),
                dropped: BTreeMap::from([("foreign-source".into(), 3)]),
            }],
            unused_interfaces: vec![UnusedIface {
                name: "lo".into(),
                why: "loopback".into(),
            }],
            peers: 1,
            clients: 2,
            registrations: 1,
            static_hosts: vec![
                StaticHostStatus {
                    host: "10.0.0.9".into(),
                    answering: true,
                    last_error: None,
                },
                StaticHostStatus {
                    host: "gone.local".into(),
                    answering: false,
                    last_error: Some("timed out".into()),
                },
            ],
            records_accepted: 4,
            records_rejected: BTreeMap::from([("replay".into(), 1), ("signature".into(), 2)]),
            dropped: BTreeMap::from([("foreign-source".into(), 3)]),
            budget: vec![BudgetUse {
                name: "peers".into(),
                used: 1,
                max: 1024,
            }],
        };
        assert_eq!(
            status(&st),
            "exo-discovery 0.1.0 up 42 s, namespace \"exo\": 1 peer(s), 2 client(s), 1 node(s) announced\n\
             records: 4 accepted; refused: replay 1, signature 2; dropped: foreign-source 3\n\
             budget: peers 1/1024\n\
             eth0 (index 2): records 4 accepted, refused: replay 1; dropped: foreign-source 3\n\
             \x20 IPv4: in use; packets in 10, queries out 3\n\
             \x20 IPv6: not used: no link-local address; packets in 0, queries out 0\n\
             lo: not used: loopback\n\
             static host 10.0.0.9: answering\n\
             static host gone.local: timed out"
        );
        let quiet = Status {
            interfaces: vec![],
            unused_interfaces: vec![],
            static_hosts: vec![],
            records_rejected: BTreeMap::new(),
            dropped: BTreeMap::new(),
            ..st
        };
        assert_eq!(
            status(&quiet).lines().nth(1),
            Some("records: 4 accepted; refused: none; dropped: none")
        );
    }

    #[test]
    fn doctor_shows_three_lines_a_row() {
        let row = |addresses: Vec<String>| Row {
            interface: "eth1".into(),
            index: 3,
            family: "IPv4",
            flags: vec!["up", "multicast"],
            addresses,
            join: "ok".into(),
            send: "Operation not permitted (os error 1)".into(),
            speakers: 0,
            instances: 0,
            cause: Cause::OutputFirewall,
            verdict: "multicast send refused".into(),
        };
        let report = Report {
            rows: vec![row(vec!["10.110.2.1".into()]), row(vec![])],
            usable: false,
        };
        assert_eq!(
            doctor(&report),
            "eth1 (index 3) IPv4 [up,multicast] 10.110.2.1\n\
             \x20 join: ok  send: Operation not permitted (os error 1)  heard: 0 speaker(s), 0 instance(s)\n\
             \x20 => multicast send refused\n\
             eth1 (index 3) IPv4 [up,multicast] -\n\
             \x20 join: ok  send: Operation not permitted (os error 1)  heard: 0 speaker(s), 0 instance(s)\n\
             \x20 => multicast send refused"
        );
        let none = Report {
            rows: vec![],
            usable: false,
        };
        assert_eq!(doctor(&none), "no interface matches");
        assert!(json(&none).unwrap().contains("\"usable\": false"));
    }
}
