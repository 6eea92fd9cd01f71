//! `exo-discovery mesh`: who sees whom, and why not. Runs in network namespaces (root; see
//! `common::network`) with nftables.
//!
//! Hosts A to E share one link. A's input drops B's multicast mDNS (IPv4 and IPv6), so A
//! never hears B, while B hears A and C hears both. D's node refuses A's connections, so A holds
//! D's record but never verifies it. D's input drops E's IPv4 multicast mDNS, and E's node listens
//! on IPv4 only: D hears E on IPv6 only, with nothing it may probe. `mesh` at C asks the other
//! agents for their views and shows A–B missing in one direction only, A–D unverified and D–E
//! heard on IPv6 only, each with its reason, and E, whose agent has peer exchange off, as not
//! answering; its picture is well-formed SVG.

// Linux only: it runs the agent in Linux network namespaces (`tests/common/network.rs`).
#![cfg(target_os = "linux")]

mod common;

use common::network::net;
use common::tools::have_tool;
use common::watch::is_event;
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// The cell of the row whose label is `host` and the column of `peer`.
fn cell<'a>(m: &'a Value, host: &str, peer: &str) -> &'a Value {
    let row = m["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .position(|h| h["label"] == host)
        .unwrap_or_else(|| panic!("no row {host}: {m}"));
    let col = m["peers"]
        .as_array()
        .unwrap()
        .iter()
        .position(|p| p == peer)
        .unwrap_or_else(|| panic!("no column {peer}: {m}"));
    let cells = m["cells"].as_array().unwrap();
    cells
        .iter()
        .find(|c| c["observer"] == row && c["peer"] == col)
        .unwrap()
}

fn ways(c: &Value) -> Vec<String> {
    c["ways"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn mesh_shows_a_one_way_block_with_its_reason_and_draws_it() {
    let test = "mesh_shows_a_one_way_block_with_its_reason_and_draws_it";
    if !have_tool(test, "nft", "nft (nftables)") {
        assert!(
            std::env::var_os("EXO_DISCOVERY_REQUIRE_NETNS").is_none(),
            "{test}: nft missing"
        );
        return;
    }
    let Some(mut n) = net(test) else {
        return;
    };
    let l = n.link();
    let hosts: Vec<_> = ["a", "b", "c", "d", "e"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let h = n.host(name);
            n.attach(&h, "eth0", &l, &[&format!("10.71.0.{}/24", i + 1)]);
            h
        })
        .collect();
    let (a, b, c, d, e) = (&hosts[0], &hosts[1], &hosts[2], &hosts[3], &hosts[4]);
    let b6 = n.link_local(b, "eth0");
    n.nft(
        &a.ns,
        &[
            "add table inet mute",
            "add chain inet mute in { type filter hook input priority 0 ; }",
            "add rule inet mute in meta pkttype multicast ip saddr 10.71.0.2 udp dport 5353 drop",
            &format!(
                "add rule inet mute in meta pkttype multicast ip6 saddr {b6} udp dport 5353 drop"
            ),
        ],
    );
    n.nft(
        &d.ns,
        &[
            "add table inet fw",
            "add chain inet fw in { type filter hook input priority 0 ; }",
            "add rule inet fw in ip saddr 10.71.0.1 tcp dport 4001 reject with tcp reset",
            "add rule inet fw in meta pkttype multicast ip saddr 10.71.0.5 udp dport 5353 drop",
        ],
    );
    let mut agents = Vec::new();
    let mut ids = Vec::new();
    let mut nodes = Vec::new();
    let none: &[&str] = &[];
    for (h, name, flags) in [
        (a, "a", none),
        (b, "b", none),
        (c, "c", none),
        (d, "d", none),
        (e, "e", &["--no-peer-exchange"][..]),
    ] {
        let agent = n.agent(h, &format!("agent-{name}"), flags);
        let listener = n.listen_on(h, 4001);
        let (key, id) = n.keygen(name);
        let ann = n.announce(&agent, &key, &["/ip4/0.0.0.0/tcp/4001".into()]);
        nodes.push((key, ann, listener));
        agents.push(agent);
        ids.push(id);
    }
    let (ida, idb, idc, idd, ide) = (&ids[0], &ids[1], &ids[2], &ids[3], &ids[4]);
    for (agent, who, sees) in [
        (&agents[1], "B", [ida, idc, idd, ide]),
        (&agents[2], "C", [ida, idb, idd, ide]),
    ] {
        let mut w = n.watch(agent);
        for id in sees {
            w.wait_for_any(WAIT, |v| is_event(v, "discovered", id))
                .unwrap_or_else(|| panic!("{who} never found {id}: {:?}", w.seen));
        }
    }
    let mut wa = n.watch(&agents[0]);
    wa.wait_for_any(WAIT, |v| is_event(v, "discovered", idc))
        .unwrap_or_else(|| panic!("A never found C: {:?}", wa.seen));
    // A's queries went out long since, and B answered them by multicast: A still has no B.
    wa.drain(Duration::from_secs(3));
    for id in [idb, idd] {
        assert!(
            !wa.seen.iter().any(|(_, v)| is_event(v, "discovered", id)),
            "A was handed {id} through the block: {:?}",
            wa.seen
        );
    }

    let svg = n.dir.join("mesh.svg");
    let start = Instant::now();
    let out = Command::new(common::bin_path())
        .args(["mesh", "--json", "--socket"])
        .arg(&agents[2].socket)
        .arg("--svg")
        .arg(&svg)
        .output()
        .expect("mesh");
    let took = start.elapsed();
    assert!(out.status.success(), "mesh: {out:?}");
    let m: Value = serde_json::from_slice(&out.stdout).expect("mesh --json is JSON");
    eprintln!("{test}: mesh of 5 hosts took {} ms", took.as_millis());

    // Every host gave its view; A's row misses B, with the reason; the others are whole.
    let labels: Vec<&str> = m["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["label"].as_str().unwrap())
        .collect();
    let mut others = labels[1..].to_vec();
    others.sort();
    assert_eq!(
        (labels[0], others),
        (
            "10.71.0.3",
            vec!["10.71.0.1", "10.71.0.2", "10.71.0.4", "10.71.0.5"]
        ),
        "{m}"
    );
    // Every agent but E's gave its view: E's does not answer peer exchange.
    for h in m["hosts"].as_array().unwrap() {
        if h["label"] == "10.71.0.5" {
            let why = h["no_view"].as_str().unwrap_or_default();
            assert!(
                why.starts_with("did not answer") && why.contains("10.71.0.5:5353"),
                "{h}"
            );
            assert_eq!(h["peers"], serde_json::json!([ide]), "{h}");
        } else {
            assert!(h["no_view"].is_null(), "{h}");
        }
    }
    let ab = cell(&m, "10.71.0.1", idb);
    assert!(ways(ab).is_empty(), "{ab}");
    let why = ab["reason"].as_str().unwrap_or_default();
    assert!(
        why.contains("no mDNS packet heard from its host") && why.contains("10.71.0.2"),
        "{why}"
    );
    let ad = cell(&m, "10.71.0.1", idd);
    assert!(ways(ad).is_empty(), "{ad}");
    let why = ad["reason"].as_str().unwrap_or_default();
    assert!(
        why.contains(
            "not verified: its probe failed (refused or no answer) at /ip4/10.71.0.4/tcp/4001"
        ),
        "{why}"
    );
    // E's node listens on IPv4 only, and D heard E's packets only from its IPv6 link-local
    // address: nothing D may probe, so E is missing there, with the reason.
    let de = cell(&m, "10.71.0.4", ide);
    assert!(ways(de).is_empty(), "{de}");
    assert!(
        de["reason"]
            .as_str()
            .is_some_and(|r| r.contains("heard only on IPv6")),
        "{de}"
    );
    for (host, peer, way) in [
        ("10.71.0.4", ida, "v4:eth0"),
        ("10.71.0.2", idd, "v4:eth0"),
        ("10.71.0.2", ida, "v4:eth0"),
        ("10.71.0.2", idc, "v4:eth0"),
        ("10.71.0.1", idc, "v4:eth0"),
        ("10.71.0.3", ida, "v4:eth0"),
        ("10.71.0.3", ide, "v4:eth0"),
        ("10.71.0.3", idb, "v4:eth0"),
    ] {
        let c = cell(&m, host, peer);
        assert!(ways(c).iter().any(|w| w == way), "{host} -> {peer}: {c}");
        assert!(c["age_secs"].as_u64().is_some_and(|a| a < 30), "{c}");
    }
    for (host, peer) in [
        ("10.71.0.1", ida),
        ("10.71.0.2", idb),
        ("10.71.0.3", idc),
        ("10.71.0.4", idd),
    ] {
        assert_eq!(ways(cell(&m, host, peer)), ["self"]);
    }

    // The text matrix says the same (a second later: an agent answers one view ask a second per
    // asker), and the picture is well-formed SVG naming the missing pair.
    std::thread::sleep(Duration::from_millis(1100));
    let text = Command::new(common::bin_path())
        .args(["mesh", "--socket"])
        .arg(&agents[2].socket)
        .output()
        .expect("mesh");
    let text = String::from_utf8_lossy(&text.stdout);
    let short: String = idb.chars().skip(idb.len() - 6).collect();
    assert!(
        text.contains(&format!(
            "10.71.0.1 -> {short}: no mDNS packet heard from its host"
        )),
        "{text}"
    );
    let picture = std::fs::read_to_string(&svg).expect("the SVG was written");
    let mut r = quick_xml::Reader::from_str(&picture);
    r.config_mut().check_end_names = true;
    let (mut depth, mut root, mut texts) = (0usize, None, String::new());
    loop {
        match r.read_event() {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(quick_xml::events::Event::Start(e)) => {
                if depth == 0 {
                    root = Some(e.name().as_ref().to_owned());
                }
                depth += 1;
            }
            Ok(quick_xml::events::Event::End(_)) => depth -= 1,
            Ok(quick_xml::events::Event::Text(t)) => texts.push_str(&t.into_inner()),
            Ok(_) => {}
            Err(e) => panic!("the SVG is not well-formed: {e}\n{picture}"),
        }
    }
    assert_eq!((root.as_deref(), depth), (Some("svg"), 0), "{picture}");
    assert!(
        texts.contains(&format!("10.71.0.1 does not see {short} (10.71.0.2)")),
        "{texts}"
    );
    assert!(texts.contains("10.71.0.5: did not answer"), "{texts}");
}
