//! When multicast cannot work: static hosts asked by unicast, and peers added by hand. Needs root
//! and nftables (to block multicast on the test link); skips with one line otherwise.

// Linux only: it runs the agent in Linux network namespaces (`tests/common/network.rs`).
#![cfg(target_os = "linux")]

mod common;

use common::bin_path;
use common::network::net;
use common::tools::have_tool;
use common::watch::{addrs, is_event};
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn static_hosts_find_each_other_where_multicast_is_dropped() {
    let test = "static_hosts_find_each_other_where_multicast_is_dropped";
    if !have_tool(test, "nft", "nft (nftables)") {
        return;
    }
    let Some(mut n) = net(test) else {
        return;
    };
    let l = n.link();
    n.block_multicast();
    let a = n.host("a");
    let b = n.host("b");
    n.attach(&a, "eth0", &l, &["10.95.0.1/24"]);
    n.attach(&b, "eth0", &l, &["10.95.0.2/24"]);
    let _listeners = [
        n.listen_on(&a, 4001),
        n.listen_on(&a, 4002),
        n.listen_on(&b, 4001),
    ];
    // a knows b from its command line; b learns a at run time.
    let aa = n.agent(&a, "agent-a", &["--static-host", "10.95.0.2"]);
    let ab = n.agent(&b, "agent-b", &[]);
    let out = Command::new(bin_path())
        .args(["add-host", "10.95.0.1", "--socket"])
        .arg(&ab.socket)
        .output()
        .unwrap();
    assert!(out.status.success(), "add-host: {out:?}");
    let (ka, ida) = n.keygen("a");
    let (kb, idb) = n.keygen("b");
    let mut wa = n.watch(&aa);
    let mut wb = n.watch(&ab);
    let started = std::time::Instant::now();
    let ann_a = n.announce(&aa, &ka, &["/ip4/0.0.0.0/tcp/4001".into()]);
    let _ann_b = n.announce(&ab, &kb, &["/ip4/0.0.0.0/tcp/4001".into()]);
    let (at, ev) = wb.discovered_with(
        WAIT,
        &ida,
        &[format!("/ip4/10.95.0.1/tcp/4001/p2p/{ida}")],
        "b never got a",
    );
    // The host's one-shot answer and its agent's peer exchange (which carries the host's own
    // nodes too) go out in the same round: whichever comes first brings it.
    let by_static_host =
        |ev: &serde_json::Value| ev["source"] == "static" || ev["source"] == "exchange";
    assert!(by_static_host(&ev), "{ev}");
    println!("announce to handoff via a static host: {:?}", at - started);
    assert_eq!(
        ev["verified"],
        serde_json::json!(["signature", "reachable"])
    );
    let (_, ev) = wa
        .wait_for(WAIT, |v| is_event(v, "discovered", &idb))
        .unwrap_or_else(|| panic!("a never got b: {:?}", wa.seen));
    assert!(by_static_host(&ev), "{ev}");
    // And the one-shot answers do come (the host is on the link): both ways are named.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let listed = n.peers(&ab);
        let a_there = listed.iter().find(|p| p["peer_id"] == *ida);
        if a_there.is_some_and(|p| p.to_string().contains("static:10.95.0.1")) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "b never named the static host's one-shot answer: {listed:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // a's node restarts on a new port: b follows it through the static host.
    n.stop(ann_a);
    let _ann_a = n.announce(&aa, &ka, &["/ip4/0.0.0.0/tcp/4002".into()]);
    wb.wait_for(WAIT, |v| {
        v["peer_id"] == ida.as_str()
            && v["event"] != "expired"
            && addrs(v) == vec![format!("/ip4/10.95.0.1/tcp/4002/p2p/{ida}")]
    })
    .unwrap_or_else(|| panic!("the restart was not followed: {:?}", wb.seen));

    // Multicast really was blocked: nothing came by mDNS.
    for (_, v) in wa.seen.iter().chain(wb.seen.iter()) {
        assert_ne!(v["source"], "mdns", "multicast got through: {v}");
    }

    // remove-host: b stops asking, and a's node goes away at b.
    let out = Command::new(bin_path())
        .args(["remove-host", "10.95.0.1", "--socket"])
        .arg(&ab.socket)
        .output()
        .unwrap();
    assert!(out.status.success(), "remove-host: {out:?}");
    wb.wait_for(WAIT, |v| is_event(v, "expired", &ida))
        .unwrap_or_else(|| panic!("a outlived remove-host: {:?}", wb.seen));

    // And add-host again: a comes back (the first question goes out at once).
    let asked = std::time::Instant::now();
    let out = Command::new(bin_path())
        .args(["add-host", "10.95.0.1", "--socket"])
        .arg(&ab.socket)
        .output()
        .unwrap();
    assert!(out.status.success(), "add-host: {out:?}");
    let (at, _) = wb
        .wait_for(WAIT, |v| is_event(v, "discovered", &ida))
        .unwrap_or_else(|| panic!("a did not come back: {:?}", wb.seen));
    println!("add-host to handoff: {:?}", at - asked);
}

#[test]
fn a_peer_added_by_hand_is_handed_over_once_it_answers() {
    let Some(mut n) = net("a_peer_added_by_hand_is_handed_over_once_it_answers") else {
        return;
    };
    let l = n.link();
    let a = n.host("a");
    let b = n.host("b");
    n.attach(&a, "eth0", &l, &["10.96.0.1/24"]);
    n.attach(&b, "eth0", &l, &["10.96.0.2/24"]);
    let ab = n.agent(&b, "agent-b", &[]);
    let (_, ida) = n.keygen("a");
    let mut wb = n.watch(&ab);
    let manual = format!("/ip4/10.96.0.1/tcp/4005/p2p/{ida}");
    let run = |args: &[&str]| {
        Command::new(bin_path())
            .args(args)
            .arg("--socket")
            .arg(&ab.socket)
            .output()
            .unwrap()
    };
    let out = run(&["add-peer", &manual]);
    assert!(out.status.success(), "add-peer: {out:?}");
    // Nothing listens yet: withheld.
    wb.drain(Duration::from_secs(2));
    assert!(wb.current(&ida).is_none(), "handed over before it answered");
    let _listener = n.listen_on(&a, 4005);
    let (_, ev) = wb.discovered_with(
        Duration::from_secs(30),
        &ida,
        std::slice::from_ref(&manual),
        "never handed over",
    );
    assert_eq!(ev["source"], "manual");
    assert_eq!(ev["verified"], serde_json::json!(["reachable"]));
    // Bad input is one clear line.
    let out = run(&["add-peer", "/ip4/10.96.0.1/tcp/4005"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/p2p/"));
    let out = run(&["add-host", "not a host"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither an IP address nor a host name"));
}

#[test]
fn a_restarted_agent_hands_over_cached_peers_when_multicast_is_gone() {
    let test = "a_restarted_agent_hands_over_cached_peers_when_multicast_is_gone";
    if !have_tool(test, "nft", "nft (nftables)") {
        return;
    }
    let Some(mut n) = net(test) else {
        return;
    };
    let l = n.link();
    let a = n.host("a");
    let b = n.host("b");
    n.attach(&a, "eth0", &l, &["10.97.0.1/24"]);
    n.attach(&b, "eth0", &l, &["10.97.0.2/24"]);
    let _listener = n.listen_on(&b, 4001);
    let state = n.dir.join("a-state");
    let state_s = state.to_str().unwrap().to_owned();
    let aa = n.agent(&a, "agent-a", &["--state-dir", &state_s]);
    let ab = n.agent(&b, "agent-b", &[]);
    let (kb, idb) = n.keygen("b");
    let _ann = n.announce(&ab, &kb, &["/ip4/0.0.0.0/tcp/4001".into()]);
    let mut wa = n.watch(&aa);
    let (_, ev) = wa
        .wait_for(WAIT, |v| is_event(v, "discovered", &idb))
        .expect("a finds b by multicast first");
    assert_eq!(ev["source"], "mdns");

    // a's agent stops; multicast dies; a's agent comes back.
    n.stop_agent(&aa);
    assert!(state.join("peers.cache").exists(), "no cache written");
    n.block_multicast();
    let restarted = std::time::Instant::now();
    let aa = n.agent(&a, "agent-a2", &["--state-dir", &state_s]);
    let mut wa = n.watch(&aa);
    let (at, ev) = wa.discovered_with(
        WAIT,
        &idb,
        &[format!("/ip4/10.97.0.2/tcp/4001/p2p/{idb}")],
        "the cached peer was not handed over",
    );
    assert_eq!(ev["source"], "cache");
    println!("cold start to handoff from the cache: {:?}", at - restarted);
    assert_eq!(
        ev["verified"],
        serde_json::json!(["signature", "reachable"])
    );

    // A corrupt cache is reported in one line and ignored.
    n.stop_agent(&aa);
    std::fs::write(state.join("peers.cache"), b"\x01\x05garbage").unwrap();
    let aa = n.agent(&a, "agent-a3", &["--state-dir", &state_s]);
    assert!(n.peers(&aa).is_empty());
    let log = std::fs::read_to_string(&aa.log).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("peer cache")).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains("corrupt"), "{}", lines[0]);
}

#[test]
fn a_routed_static_host_gives_its_node_by_peer_exchange_to_the_ranges_it_allows() {
    let test = "a_routed_static_host_gives_its_node_by_peer_exchange_to_the_ranges_it_allows";
    let Some(mut n) = net(test) else {
        return;
    };
    // A and C on one subnet, B on another, R routing between them. mDNS answers only its own
    // link, so A's one-shot queries to B go unanswered; B's agent answers A's peer exchange
    // because B's operator allowed A's subnet... but only A's half of it.
    let (l1, l2) = (n.link(), n.link());
    let (a, c, r, b) = (n.host("a"), n.host("c"), n.host("r"), n.host("b"));
    n.attach(&a, "eth0", &l1, &["10.81.0.1/24"]);
    n.attach(&c, "eth0", &l1, &["10.81.0.200/24"]);
    n.attach(&r, "eth0", &l1, &["10.81.0.254/24"]);
    n.attach(&r, "eth1", &l2, &["10.82.0.254/24"]);
    n.attach(&b, "eth0", &l2, &["10.82.0.1/24"]);
    let out = n.exec(&r, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    assert!(out.status.success(), "{out:?}");
    for h in [&a, &c] {
        n.ip_in(h, &["route", "add", "default", "via", "10.81.0.254"]);
    }
    n.ip_in(&b, &["route", "add", "default", "via", "10.82.0.254"]);
    let ab = n.agent(&b, "agent-b", &["--exchange-allow", "10.81.0.0/25"]);
    let _lb = n.listen_on(&b, 4001);
    let (kb, idb) = n.keygen("b");
    let _nb = n.announce(&ab, &kb, &["/ip4/0.0.0.0/tcp/4001".into()]);
    let aa = n.agent(&a, "agent-a", &["--static-host", "10.82.0.1"]);
    let ac = n.agent(&c, "agent-c", &["--static-host", "10.82.0.1"]);
    let mut wa = n.watch(&aa);
    let (_, ev) = wa
        .wait_for(WAIT, |v| is_event(v, "discovered", &idb))
        .unwrap_or_else(|| panic!("A never got B's node: {:?}", wa.seen));
    assert_eq!(ev["source"], "exchange", "{ev}");
    assert_eq!(ev["interfaces"][0], "exchange:10.82.0.1", "{ev}");
    assert_eq!(
        addrs(&ev),
        vec![format!("/ip4/10.82.0.1/tcp/4001/p2p/{idb}")],
        "{ev}"
    );
    let st = n.status(&aa);
    assert_eq!(st["static_hosts"][0]["answering"], true, "{st}");
    // C, in the other half of the subnet, is a stranger to B: nothing, and B counts it.
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        !n.peers(&ac).iter().any(|p| p["peer_id"] == *idb),
        "C was handed B's node"
    );
    let st = n.status(&ab);
    assert!(
        common::watch::dropped(&st, &["exchange-refused-stranger"]) >= 1,
        "{st}"
    );
}
