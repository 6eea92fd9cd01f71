//! Links that change under the agent: interfaces that come and go, interface globs, a link whose
//! multicast is refused, and hosts that vanish without a goodbye. Needs root; skips with one line
//! where namespaces cannot be made.

// Linux only: it runs the agent in Linux network namespaces (`tests/common/network.rs`).
#![cfg(target_os = "linux")]

mod common;

use common::network::net;
use common::tools::have_tool;
use common::watch::{addrs, is_event};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

/// Whether nft runs here; where the namespace tests are required, its absence is a failure.
fn have_nft(test: &str) -> bool {
    let have = have_tool(test, "nft", "nft (nftables)");
    assert!(
        have || std::env::var("EXO_DISCOVERY_REQUIRE_NETNS").is_err(),
        "{test}: nft missing"
    );
    have
}

#[test]
fn interfaces_that_appear_and_vanish_are_followed_and_globs_obeyed() {
    let Some(mut n) = net("interfaces_that_appear_and_vanish_are_followed_and_globs_obeyed") else {
        return;
    };
    let (l1, l2, l3) = (n.link(), n.link(), n.link());
    let a = n.host("a");
    let c = n.host("c");
    let d = n.host("d");
    n.attach(&a, "eth0", &l1, &["10.50.1.1/24"]);
    n.attach(&c, "eth0", &l2, &["10.50.2.3/24"]);
    n.attach(&d, "eth0", &l3, &["10.50.3.4/24"]);
    let aa = n.agent(&a, "agent-a", &["--exclude-interface", "eth2"]);
    let ac = n.agent(&c, "agent-c", &[]);
    let ad = n.agent(&d, "agent-d", &[]);
    let _listeners = [
        n.listen_on(&a, 4001),
        n.listen_on(&c, 4001),
        n.listen_on(&d, 4001),
    ];
    let (kc, idc) = n.keygen("c");
    let (kd, idd) = n.keygen("d");
    let _c = n.announce(&ac, &kc, &["/ip4/0.0.0.0/tcp/4001".into()]);
    let _d = n.announce(&ad, &kd, &["/ip4/0.0.0.0/tcp/4001".into()]);
    let mut wa = n.watch(&aa);

    // A new interface on a running agent is picked up.
    n.attach(&a, "eth1", &l2, &["10.50.2.1/24"]);
    let plugged = Instant::now();
    let (at, ev) = wa.discovered_with(
        WAIT,
        &idc,
        &[format!("/ip4/10.50.2.3/tcp/4001/p2p/{idc}")],
        "c on the new interface never came",
    );
    assert_eq!(ev["interfaces"], serde_json::json!(["eth1"]));
    println!("new interface to discovered: {:?}", at - plugged);

    // An excluded interface is never used.
    n.attach(&a, "eth2", &l3, &["10.50.3.1/24"]);
    wa.drain(Duration::from_secs(4));
    assert!(wa.current(&idd).is_none(), "d was found on excluded eth2");

    // A changed address is picked up: c now reaches a over its new address only.
    let mut wc = n.watch(&ac);
    let (ka, ida) = n.keygen("a");
    let _a = n.announce(&aa, &ka, &["/ip4/0.0.0.0/tcp/4001".into()]);
    wc.wait_for(WAIT, |v| {
        v["peer_id"] == ida.as_str() && addrs(v).iter().any(|s| s.contains("/10.50.2.1/"))
    })
    .unwrap_or_else(|| panic!("c never got a: {:?}", wc.seen));
    // (Deleting a primary address deletes its secondaries: renumber as DHCP does, del then add.)
    n.ip_in(&a, &["addr", "del", "10.50.2.1/24", "dev", "eth1"]);
    n.ip_in(&a, &["addr", "add", "10.50.2.9/24", "dev", "eth1"]);
    wc.wait_for(WAIT, |v| {
        v["peer_id"] == ida.as_str()
            && v["event"] != "expired"
            && addrs(v) == vec![format!("/ip4/10.50.2.9/tcp/4001/p2p/{ida}")]
    })
    .unwrap_or_else(|| panic!("c never saw a's new address alone: {:?}", wc.seen));

    // The interface vanishes: its peers go with it.
    n.ip_in(&a, &["link", "del", "eth1"]);
    wa.wait_for(WAIT, |v| is_event(v, "expired", &idc))
        .unwrap_or_else(|| panic!("c outlived the interface: {:?}", wa.seen));
}

#[test]
fn a_link_refusing_multicast_is_reported_once_and_others_keep_working() {
    let test = "a_link_refusing_multicast_is_reported_once_and_others_keep_working";
    if !have_nft(test) {
        return;
    }
    let Some(mut n) = net(test) else {
        return;
    };
    let (l1, l2) = (n.link(), n.link());
    let m = n.host("m");
    let p = n.host("p");
    n.attach(&m, "eth0", &l1, &["10.60.1.1/24"]);
    n.attach(&m, "eth1", &l2, &["10.60.2.1/24"]);
    n.attach(&p, "eth0", &l1, &["10.60.1.2/24"]);
    n.nft(
        &m.ns,
        &[
            "add table inet block",
            "add chain inet block out { type filter hook output priority 0 ; }",
            "add rule inet block out oifname \"eth1\" udp dport 5353 drop",
        ],
    );
    let am = n.agent(&m, "agent-m", &[]);
    let ap = n.agent(&p, "agent-p", &[]);
    let _listener = n.listen_on(&p, 4001);
    let (kp, idp) = n.keygen("p");
    let _p = n.announce(&ap, &kp, &["/ip4/0.0.0.0/tcp/4001".into()]);
    let mut wm = n.watch(&am);
    wm.wait_for(WAIT, |v| is_event(v, "discovered", &idp))
        .unwrap_or_else(|| panic!("the healthy link stopped working: {:?}", wm.seen));
    // Several query rounds later the refusal is still reported once per family.
    std::thread::sleep(Duration::from_secs(4));
    let log = std::fs::read_to_string(&am.log).unwrap();
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("eth1 IPv4: multicast send refused"))
        .collect();
    assert_eq!(refusals.len(), 1, "log:\n{log}");
    assert!(
        refusals[0].contains("errno 1") && refusals[0].contains("firewall"),
        "{}",
        refusals[0]
    );
    assert!(log.contains("eth0 IPv4: mDNS ok"), "log:\n{log}");
    // The refused link is not used: m's announcement is not made there either.
    assert!(!log.contains("eth1 IPv4: mDNS ok"), "log:\n{log}");
}

#[test]
fn a_host_that_vanishes_without_goodbye_expires_and_live_ones_do_not() {
    let Some(mut n) = net("a_host_that_vanishes_without_goodbye_expires_and_live_ones_do_not")
    else {
        return;
    };
    let l = n.link();
    let a = n.host("a");
    let b = n.host("b");
    n.attach(&a, "eth0", &l, &["10.70.0.1/24"]);
    n.attach(&b, "eth0", &l, &["10.70.0.2/24"]);
    // a re-announces only every 30 s (default); b expires peers after 6 s of silence. b's own
    // queries, and its probe of a silent peer, must keep a alive.
    let aa = n.agent(&a, "agent-a", &[]);
    let ab = n.agent(&b, "agent-b", &["--peer-timeout", "6"]);
    let listener = n.listen_on(&a, 4001);
    let (ka, ida) = n.keygen("a");
    let _a = n.announce(&aa, &ka, &["/ip4/0.0.0.0/tcp/4001".into()]);
    let mut wb = n.watch(&ab);
    wb.wait_for(WAIT, |v| is_event(v, "discovered", &ida))
        .expect("discovered");
    wb.drain(Duration::from_secs(15));
    assert!(
        wb.current(&ida).is_some(),
        "a live peer expired: {:?}",
        wb.seen
    );
    // Power cut: the agent and the node die with no goodbye (the node's port no longer
    // answers the check b makes of a silent peer).
    drop(listener);
    let pid = n.pid(&aa);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let killed = Instant::now();
    let (at, _) = wb
        .wait_for(Duration::from_secs(30), |v| is_event(v, "expired", &ida))
        .unwrap_or_else(|| panic!("a vanished host was never dropped: {:?}", wb.seen));
    let took = at - killed;
    assert!(took >= Duration::from_secs(2), "expired too soon: {took:?}");
    println!("vanished host dropped after {took:?} (timeout 6 s)");
}

#[test]
fn sends_refused_now_and_then_cause_no_false_departures() {
    let test = "sends_refused_now_and_then_cause_no_false_departures";
    if !have_nft(test) {
        return;
    }
    let Some(mut n) = net(test) else {
        return;
    };
    let l = n.link();
    let names = ["a", "b", "c", "d"];
    let hosts: Vec<_> = names.iter().map(|h| n.host(h)).collect();
    for (i, h) in hosts.iter().enumerate() {
        n.attach(h, "eth0", &l, &[&format!("10.61.0.{}/24", i + 1)]);
        // A rate-limiting output rule: one mDNS send in ten is refused (EPERM to the sender).
        n.nft(
            &h.ns,
            &[
                "add table inet lossy",
                "add chain inet lossy out { type filter hook output priority 0 ; }",
                "add rule inet lossy out udp dport 5353 numgen random mod 100 < 10 drop",
            ],
        );
    }
    let agents: Vec<_> = hosts
        .iter()
        .zip(names)
        .map(|(h, name)| n.agent(h, &format!("agent-{name}"), &["--peer-timeout", "10"]))
        .collect();
    let _listeners: Vec<_> = hosts.iter().map(|h| n.listen_on(h, 4001)).collect();
    let mut ids = Vec::new();
    let mut anns = Vec::new();
    for (agent, name) in agents.iter().zip(names) {
        let (k, id) = n.keygen(name);
        anns.push(n.announce(agent, &k, &["/ip4/0.0.0.0/tcp/4001".into()]));
        ids.push(id);
    }
    let mut watches: Vec<_> = agents.iter().map(|a| n.watch(a)).collect();
    // Longer than the other tests' wait: an agent whose first IPv4 send is refused takes that
    // family for a firewall's lasting refusal (no send ever went) until one of its next queries
    // goes, and its daemons leave IPv4 alone until then.
    let deadline = Instant::now() + 3 * WAIT;
    for (i, w) in watches.iter_mut().enumerate() {
        let others = || ids.iter().enumerate().filter(move |(j, _)| *j != i);
        while others().any(|(_, id)| w.current(id).is_none()) {
            assert!(
                Instant::now() < deadline,
                "{} did not find every other host: {:?}",
                names[i],
                w.seen
            );
            w.drain(Duration::from_millis(200));
        }
    }
    let found: Vec<usize> = watches.iter().map(|w| w.seen.len()).collect();
    // Three peer timeouts of refusals now and then; nobody left.
    std::thread::sleep(Duration::from_secs(30));
    let mut refused = 0;
    for ((w, a), from) in watches.iter_mut().zip(&agents).zip(found) {
        w.drain(Duration::from_millis(200));
        let expired: Vec<_> = w.seen[from..]
            .iter()
            .filter(|(_, v)| v["event"] == "expired")
            .collect();
        assert!(expired.is_empty(), "false departures: {expired:?}");
        // Refused queries are reported as such, other refused packets (answers, re-queries)
        // at debug level.
        let log = std::fs::read_to_string(&a.log).unwrap();
        refused += log.matches("multicast send refused").count()
            + log
                .matches("packet not sent: Operation not permitted")
                .count();
    }
    assert!(
        refused > 0,
        "the rule refused no send: the test tested nothing"
    );
}

#[test]
fn a_restarted_agent_announces_its_node_again_and_watchers_resynchronise() {
    let Some(mut n) = net("a_restarted_agent_announces_its_node_again_and_watchers_resynchronise")
    else {
        return;
    };
    let l = n.link();
    let (a, b) = (n.host("a"), n.host("b"));
    n.attach(&a, "eth0", &l, &["10.62.0.1/24"]);
    n.attach(&b, "eth0", &l, &["10.62.0.2/24"]);
    let aa = n.agent(&a, "agent-a", &[]);
    let ab = n.agent(&b, "agent-b", &[]);
    let _ports = (n.listen_on(&a, 4001), n.listen_on(&b, 4001));
    let (ka, ida) = n.keygen("a");
    let (kb, idb) = n.keygen("b");
    let _na = n.announce(&aa, &ka, &["/ip4/0.0.0.0/tcp/4001".into()]);
    let _nb = n.announce(&ab, &kb, &["/ip4/0.0.0.0/tcp/4001".into()]);
    let mut wb = n.watch(&ab);
    wb.wait_for(WAIT, |v| is_event(v, "discovered", &ida))
        .expect("b finds a");

    // a's agent is restarted under its running node.
    n.stop_agent(&aa);
    let aa = n.agent(&a, "agent-a", &[]);
    let back = Instant::now();
    let registered = loop {
        let st = n.status(&aa);
        if st["registrations"] == 1 {
            break back.elapsed();
        }
        assert!(
            back.elapsed() < WAIT,
            "the node never registered again: {st}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    println!("node registered again {registered:?} after its agent was back");
    let mut wa = n.watch(&aa);
    wa.wait_for(WAIT, |v| is_event(v, "discovered", &idb))
        .expect("the restarted agent finds b again");
    // b never saw a's node leave: the goodbyes of a's dying agent were refuted by its open port.
    wb.drain(Duration::from_millis(500));
    assert!(
        !wb.seen.iter().any(|(_, v)| is_event(v, "expired", &ida)),
        "b saw a's node leave: {:?}",
        wb.seen
    );

    // b's agent is restarted: the running watch on b reconnects and is told a's node again.
    n.stop_agent(&ab);
    let from = wb.seen.len();
    let _ab = n.agent(&b, "agent-b", &[]);
    let deadline = Instant::now() + WAIT;
    while !wb.seen[from..]
        .iter()
        .any(|(_, v)| is_event(v, "discovered", &ida))
    {
        assert!(
            Instant::now() < deadline,
            "the watch never resynchronised: {:?}",
            wb.seen
        );
        wb.drain(Duration::from_millis(200));
    }
}
