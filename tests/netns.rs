//! The agent on real (namespace) networks: discovery over IPv4 and IPv6, multi-homed hosts,
//! departure, restart, forged records. Needs root; skips with one line where namespaces cannot
//! be made.

// Linux only: it runs the agent in Linux network namespaces (`tests/common/network.rs`).
#![cfg(target_os = "linux")]

mod common;

use common::agents::Agent;
use common::network::{net, Host, Net};
use common::tools::have_tool;
use common::watch::{addrs, is_event};
use exo_discovery::wire::{instance, record};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

fn any_addrs(port: u16) -> Vec<String> {
    vec![
        format!("/ip4/0.0.0.0/tcp/{port}"),
        format!("/ip6/::/tcp/{port}"),
    ]
}

/// Two hosts on one link, each with an agent.
fn pair(test: &str) -> Option<(Net, Host, Host, Agent, Agent)> {
    let mut n = net(test)?;
    let l = n.link();
    let a = n.host("a");
    let b = n.host("b");
    n.attach(&a, "eth0", &l, &["10.20.0.1/24", "fd20::1/64"]);
    n.attach(&b, "eth0", &l, &["10.20.0.2/24", "fd20::2/64"]);
    let aa = n.agent(&a, "agent-a", &[]);
    let ab = n.agent(&b, "agent-b", &[]);
    Some((n, a, b, aa, ab))
}

#[test]
fn two_hosts_see_each_other_over_ipv4_and_ipv6() {
    let Some((mut n, a, b, aa, ab)) = pair("two_hosts_see_each_other_over_ipv4_and_ipv6") else {
        return;
    };
    let la = n.listen(&a);
    let lb = n.listen(&b);
    let (ka, ida) = n.keygen("a");
    let (kb, idb) = n.keygen("b");
    let mut wa = n.watch(&aa);
    let mut wb = n.watch(&ab);
    let _ann_a = n.announce(&aa, &ka, &any_addrs(la.local_addr().unwrap().port()));
    let _ann_b = n.announce(&ab, &kb, &any_addrs(lb.local_addr().unwrap().port()));
    let lla = n.link_local(&a, "eth0");
    let llb = n.link_local(&b, "eth0");

    // b hears a on IPv4, global IPv6 and link-local IPv6 (zone: b's interface).
    let want_a = |v: &serde_json::Value| {
        let x = addrs(v);
        v["peer_id"] == ida.as_str()
            && v["event"] != "expired"
            && x.iter().any(|s| s.starts_with("/ip4/10.20.0.1/tcp/"))
            && x.iter().any(|s| s.starts_with("/ip6/fd20::1/tcp/"))
            && x.iter()
                .any(|s| s.starts_with(&format!("/ip6zone/eth0/ip6/{lla}/tcp/")))
    };
    let (_, ev) = wb
        .wait_for(WAIT, want_a)
        .unwrap_or_else(|| panic!("b never got a with all its addresses: {:?}", wb.seen));
    assert_eq!(ev["interfaces"], serde_json::json!(["eth0"]));
    assert_eq!(ev["source"], "mdns");
    assert_eq!(
        ev["verified"],
        serde_json::json!(["signature", "reachable"])
    );
    for s in addrs(&ev) {
        assert!(s.ends_with(&format!("/p2p/{ida}")), "{s}");
        assert!(n.dials(&b, &s), "b cannot dial a at {s}");
    }
    let want_b = |v: &serde_json::Value| {
        let x = addrs(v);
        v["peer_id"] == idb.as_str()
            && v["event"] != "expired"
            && x.iter().any(|s| s.starts_with("/ip4/10.20.0.2/tcp/"))
            && x.iter()
                .any(|s| s.starts_with(&format!("/ip6zone/eth0/ip6/{llb}/tcp/")))
    };
    let (_, ev) = wa
        .wait_for(WAIT, want_b)
        .unwrap_or_else(|| panic!("a never got b: {:?}", wa.seen));
    for s in addrs(&ev) {
        assert!(n.dials(&a, &s), "a cannot dial b at {s}");
    }
    // A node is never handed itself, and `peers --json` agrees with the events.
    let peers_b = n.peers(&ab);
    assert_eq!(peers_b.len(), 1, "{peers_b:?}");
    assert_eq!(peers_b[0]["peer_id"], ida.as_str());
    drop((la, lb));
}

#[test]
fn ipv6_only_link_carries_discovery() {
    let Some(mut n) = net("ipv6_only_link_carries_discovery") else {
        return;
    };
    let l = n.link();
    let a = n.host("a");
    let b = n.host("b");
    n.attach(&a, "eth0", &l, &[]);
    n.attach(&b, "eth0", &l, &[]);
    let aa = n.agent(&a, "agent-a", &[]);
    let ab = n.agent(&b, "agent-b", &[]);
    let la = n.listen(&a);
    let (ka, ida) = n.keygen("a");
    let mut wb = n.watch(&ab);
    let _ann = n.announce(&aa, &ka, &any_addrs(la.local_addr().unwrap().port()));
    let lla = n.link_local(&a, "eth0");
    let (_, ev) = wb
        .wait_for(WAIT, |v| {
            v["peer_id"] == ida.as_str() && v["event"] == "discovered"
        })
        .unwrap_or_else(|| panic!("nothing over IPv6 link-local: {:?}", wb.seen));
    let x = addrs(&ev);
    assert!(!x.is_empty());
    for s in &x {
        assert!(
            s.starts_with(&format!("/ip6zone/eth0/ip6/{lla}/tcp/")),
            "only the link-local address exists here: {s}"
        );
        assert!(n.dials(&b, s), "cannot dial {s}");
    }
}

#[test]
fn multi_homed_host_default_route_elsewhere() {
    let Some(mut n) = net("multi_homed_host_default_route_elsewhere") else {
        return;
    };
    let l1 = n.link();
    let l2 = n.link();
    let m = n.host("m");
    let p1 = n.host("p1");
    let p2 = n.host("p2");
    // m: eth0 on l1 (IPv4 + link-local, default routes there), eth1 on l2 (IPv6 link-local only).
    n.attach(&m, "eth0", &l1, &["10.30.0.1/24"]);
    n.attach(&m, "eth1", &l2, &[]);
    n.ip_in(
        &m,
        &[
            "route",
            "add",
            "default",
            "via",
            "10.30.0.254",
            "dev",
            "eth0",
        ],
    );
    n.ip_in(
        &m,
        &[
            "-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0",
        ],
    );
    n.attach(&p1, "eth0", &l1, &["10.30.0.2/24"]);
    n.attach(&p2, "eth0", &l2, &[]);
    let am = n.agent(&m, "agent-m", &[]);
    let a1 = n.agent(&p1, "agent-p1", &[]);
    let a2 = n.agent(&p2, "agent-p2", &[]);
    let (lm, l1s, l2s) = (n.listen(&m), n.listen(&p1), n.listen(&p2));
    let (km, idm) = n.keygen("m");
    let (k1, id1) = n.keygen("p1");
    let (k2, id2) = n.keygen("p2");
    let (mut wm, mut w1, mut w2) = (n.watch(&am), n.watch(&a1), n.watch(&a2));
    let _x = n.announce(&am, &km, &any_addrs(lm.local_addr().unwrap().port()));
    let _y = n.announce(&a1, &k1, &any_addrs(l1s.local_addr().unwrap().port()));
    let _z = n.announce(&a2, &k2, &any_addrs(l2s.local_addr().unwrap().port()));
    let ll_m0 = n.link_local(&m, "eth0");
    let ll_m1 = n.link_local(&m, "eth1");
    let ll_p2 = n.link_local(&p2, "eth0");

    // m gets p1 over eth0 (IPv4 among them) and p2 over eth1 (link-local only), in either order.
    let (_, e1) = wm
        .wait_for_any(WAIT, |v| {
            v["peer_id"] == id1.as_str()
                && addrs(v).iter().any(|s| s.starts_with("/ip4/10.30.0.2/"))
        })
        .unwrap_or_else(|| panic!("m never got p1: {:?}", wm.seen));
    assert_eq!(e1["interfaces"], serde_json::json!(["eth0"]));
    let (_, e2) = wm
        .wait_for_any(WAIT, |v| {
            v["peer_id"] == id2.as_str() && v["event"] != "expired"
        })
        .unwrap_or_else(|| panic!("m never got p2: {:?}", wm.seen));
    assert_eq!(e2["interfaces"], serde_json::json!(["eth1"]));
    for s in addrs(&e2) {
        assert!(
            s.starts_with(&format!("/ip6zone/eth1/ip6/{ll_p2}/")),
            "p2 is reachable from m only over eth1: {s}"
        );
    }
    for s in addrs(&e1).iter().chain(addrs(&e2).iter()) {
        assert!(n.dials(&m, s), "m cannot dial {s}");
    }

    // p1 gets m with m's l1 addresses only; p2 gets m with m's l2 link-local only.
    let (_, m1) = w1
        .wait_for(WAIT, |v| {
            v["peer_id"] == idm.as_str()
                && addrs(v).iter().any(|s| s.starts_with("/ip4/10.30.0.1/"))
                && addrs(v).iter().any(|s| s.contains(&ll_m0))
        })
        .unwrap_or_else(|| panic!("p1 never got m: {:?}", w1.seen));
    let (_, m2) = w2
        .wait_for(WAIT, |v| {
            v["peer_id"] == idm.as_str() && v["event"] != "expired"
        })
        .unwrap_or_else(|| panic!("p2 never got m: {:?}", w2.seen));
    for s in addrs(&m1) {
        assert!(
            !s.contains(&ll_m1),
            "p1 was given m's address on the other link: {s}"
        );
        assert!(n.dials(&p1, &s), "p1 cannot dial m at {s}");
    }
    for s in addrs(&m2) {
        assert!(
            s.starts_with(&format!("/ip6zone/eth0/ip6/{ll_m1}/")),
            "p2 was given an address not on its link: {s}"
        );
        assert!(n.dials(&p2, &s), "p2 cannot dial m at {s}");
    }
    // p1 and p2 share no link: neither is handed the other.
    w1.drain(Duration::from_millis(500));
    assert!(w1.current(&id2).is_none(), "p1 got p2 across links");
    drop((lm, l1s, l2s));
}

#[test]
fn departure_and_restart_on_a_new_port() {
    let Some((mut n, a, b, aa, ab)) = pair("departure_and_restart_on_a_new_port") else {
        return;
    };
    let _ = &b;
    let l4001 = n.listen_on(&a, 4001);
    let _l5001 = n.listen_on(&a, 5001);
    let (ka, ida) = n.keygen("a");
    let mut wb = n.watch(&ab);
    let ann = n.announce(&aa, &ka, &["/ip4/0.0.0.0/tcp/4001".into()]);
    wb.wait_for(WAIT, |v| is_event(v, "discovered", &ida))
        .expect("discovered");

    // Departure: the node's port closes and its goodbye removes it at once, long before the
    // 60 s liveness timeout (the goodbye is confirmed by a probe, which the closed port refuses).
    drop(l4001);
    let stopped = n.stop(ann);
    let (at, _) = wb
        .wait_for(WAIT, |v| is_event(v, "expired", &ida))
        .unwrap_or_else(|| panic!("never expired: {:?}", wb.seen));
    let took = at - stopped;
    // The goodbye is read from its packet, not taken from mdns-sd a second later.
    assert!(took < Duration::from_millis(500), "departure took {took:?}");
    assert!(n.peers(&ab).is_empty());

    // Back on 4001, then a quick restart on 5001: only 5001 remains, without a gap.
    let _l4001 = n.listen_on(&a, 4001);
    let ann = n.announce(&aa, &ka, &["/ip4/0.0.0.0/tcp/4001".into()]);
    wb.wait_for(WAIT, |v| is_event(v, "discovered", &ida))
        .unwrap_or_else(|| panic!("not rediscovered: {:?}", wb.seen));
    n.stop(ann);
    let _ann = n.announce(&aa, &ka, &["/ip4/0.0.0.0/tcp/5001".into()]);
    let (_, ev) = wb
        .wait_for(WAIT, |v| {
            v["peer_id"] == ida.as_str()
                && v["event"] != "expired"
                && addrs(v).iter().any(|s| s.contains("/tcp/5001/"))
        })
        .unwrap_or_else(|| panic!("restart not followed: {:?}", wb.seen));
    assert_eq!(
        addrs(&ev),
        vec![format!("/ip4/10.20.0.1/tcp/5001/p2p/{ida}")],
        "only the new address"
    );
    wb.drain(Duration::from_secs(3));
    let now = wb
        .current(&ida)
        .expect("still there after the old record's goodbye");
    assert_eq!(addrs(&now), addrs(&ev));
    let peers = n.peers(&ab);
    assert_eq!(peers.len(), 1);
    assert_eq!(addrs(&peers[0]), addrs(&ev));
}

#[test]
fn a_node_that_restarts_on_its_port_is_expired_and_discovered_when_it_answers() {
    let Some((mut n, a, _b, aa, ab)) =
        pair("a_node_that_restarts_on_its_port_is_expired_and_discovered_when_it_answers")
    else {
        return;
    };
    let (ka, ida) = n.keygen("a");
    let mut wb = n.watch(&ab);
    let port = n.listen_on(&a, 4001);
    let ann = n.announce(&aa, &ka, &["/ip4/0.0.0.0/tcp/4001".into()]);
    wb.wait_for(WAIT, |v| is_event(v, "discovered", &ida))
        .expect("discovered");
    let from = wb.seen.len();
    // The node's process restarts: its port closes with it, its agent says goodbye, and the new
    // process listens on the same port and registers a new record 300 ms later, or once B's agent
    // reported the old one gone when that takes longer (a loaded machine: a new record that
    // comes while the goodbye's probe is out is rightly one `updated`; how soon a departure is
    // reported is measured in the discovery bench).
    drop(port);
    let stopped = n.stop(ann);
    wb.wait_for(WAIT, |v| is_event(v, "expired", &ida))
        .unwrap_or_else(|| panic!("not expired: {:?}", wb.seen));
    if let Some(left) = Duration::from_millis(300).checked_sub(stopped.elapsed()) {
        std::thread::sleep(left);
    }
    let _port = n.listen_on(&a, 4001);
    let _ann = n.announce(&aa, &ka, &["/ip4/0.0.0.0/tcp/4001".into()]);
    wb.wait_for(WAIT, |v| is_event(v, "discovered", &ida))
        .unwrap_or_else(|| panic!("not rediscovered: {:?}", wb.seen));
    wb.drain(Duration::from_secs(2));
    let events: Vec<&str> = wb.seen[from..]
        .iter()
        .filter(|(_, v)| v["peer_id"] == ida.as_str())
        .map(|(_, v)| v["event"].as_str().unwrap_or(""))
        .collect();
    // Gone (its port refused), then back once its new record came and its port answered.
    assert_eq!(events, ["expired", "discovered"], "{:?}", wb.seen);
    assert_eq!(n.peers(&ab).len(), 1);
}

/// Publishes arbitrary TXT under an instance label from inside `host`, with mdns-sd.
fn publish(
    n: &Net,
    host: &Host,
    ip: &str,
    label: String,
    txt: Vec<(String, Vec<u8>)>,
) -> mdns_sd::ServiceDaemon {
    let ip = ip.to_owned();
    n.in_ns(host, move || {
        let d = mdns_sd::ServiceDaemon::new().expect("daemon");
        d.disable_interface(mdns_sd::IfKind::All).unwrap();
        d.enable_interface(mdns_sd::IfKind::Name("eth0".into()))
            .unwrap();
        let props: Vec<mdns_sd::TxtProperty> = txt
            .iter()
            .map(|(k, v)| mdns_sd::TxtProperty::from((k.as_str(), v.as_slice())))
            .collect();
        let host_name = format!("forger-{}.local.", &label[label.len() - 6..]);
        let mut info = mdns_sd::ServiceInfo::new(
            instance::SERVICE_TYPE,
            &label,
            &host_name,
            ip.as_str(),
            4001,
            props,
        )
        .expect("service info");
        info.set_requires_probe(false);
        d.register(info).expect("register");
        d
    })
}

#[test]
fn forged_and_replayed_records_are_never_handed_over() {
    let Some((mut n, a, b, aa, ab)) = pair("forged_and_replayed_records_are_never_handed_over")
    else {
        return;
    };
    let _ = &b;
    let l = "br1".to_owned();
    let f = n.host("f");
    n.attach(&f, "eth0", &l, &["10.20.0.66/24"]);
    // Everything forged would even be reachable: only verification can keep it out.
    let _listeners: Vec<_> = [6666, 7777, 8888, 9999, 5555]
        .iter()
        .map(|p| n.listen_on(&f, *p))
        .chain([n.listen_on(&a, 4001)])
        .collect();
    let mut wb = n.watch(&ab);

    // The real node announces through its agent (current seq = wall-clock micros).
    let (ka, ida) = n.keygen("a");
    let _ann = n.announce(&aa, &ka, &["/ip4/0.0.0.0/tcp/4001".into()]);
    wb.wait_for(WAIT, |v| is_event(v, "discovered", &ida))
        .expect("the real node is discovered");
    let _ = &a;

    let key =
        libp2p_identity::Keypair::from_protobuf_encoding(&std::fs::read(&ka).unwrap()).unwrap();
    let victim = key.public().to_peer_id();

    // 1. A replay: an old record of the real node (seq 1), pointing elsewhere.
    let old = record::sign(&key, "exo", 1, &["/ip4/0.0.0.0/tcp/6666".parse().unwrap()]).unwrap();
    let _d1 = publish(
        &n,
        &f,
        "10.20.0.66",
        instance::instance_label(&victim, 1),
        record::to_txt(&old),
    );

    // 2. A bad signature: a fresh key's record with one signature bit flipped.
    let k2 = libp2p_identity::Keypair::generate_ed25519();
    let p2 = k2.public().to_peer_id();
    let mut bad = record::sign(&k2, "exo", 5, &["/ip4/0.0.0.0/tcp/7777".parse().unwrap()]).unwrap();
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    let _d2 = publish(
        &n,
        &f,
        "10.20.0.66",
        instance::instance_label(&p2, 5),
        record::to_txt(&bad),
    );

    // 3. A peer-ID mismatch: a valid record of the attacker's key published as the victim.
    let k3 = libp2p_identity::Keypair::generate_ed25519();
    let good3 = record::sign(&k3, "exo", 9, &["/ip4/0.0.0.0/tcp/8888".parse().unwrap()]).unwrap();
    let _d3 = publish(
        &n,
        &f,
        "10.20.0.66",
        instance::instance_label(&victim, 9),
        record::to_txt(&good3),
    );

    // 4. Another namespace's valid record.
    let k4 = libp2p_identity::Keypair::generate_ed25519();
    let other = record::sign(
        &k4,
        "elsewhere",
        3,
        &["/ip4/0.0.0.0/tcp/9999".parse().unwrap()],
    )
    .unwrap();
    let p4 = k4.public().to_peer_id();
    let _d4 = publish(
        &n,
        &f,
        "10.20.0.66",
        instance::instance_label(&p4, 3),
        record::to_txt(&other),
    );

    // Control: an honest record published the same way is accepted, so the forgeries were heard.
    let k5 = libp2p_identity::Keypair::generate_ed25519();
    let p5 = k5.public().to_peer_id();
    let honest = record::sign(&k5, "exo", 2, &["/ip4/0.0.0.0/tcp/5555".parse().unwrap()]).unwrap();
    let _d5 = publish(
        &n,
        &f,
        "10.20.0.66",
        instance::instance_label(&p5, 2),
        record::to_txt(&honest),
    );
    wb.wait_for(WAIT, |v| is_event(v, "discovered", &p5.to_base58()))
        .unwrap_or_else(|| panic!("the honest control record was not accepted: {:?}", wb.seen));
    wb.drain(Duration::from_secs(2));

    for (_, v) in &wb.seen {
        let s = addrs(v).join(" ");
        assert!(
            !s.contains("6666")
                && !s.contains("7777")
                && !s.contains("8888")
                && !s.contains("9999"),
            "a forged address was handed over: {v}"
        );
        assert_ne!(v["peer_id"], p2.to_base58().as_str());
        assert_ne!(v["peer_id"], p4.to_base58().as_str());
    }
    let peers = n.peers(&ab);
    let real = peers
        .iter()
        .find(|p| p["peer_id"] == ida.as_str())
        .expect("real node kept");
    assert_eq!(
        addrs(real),
        vec![format!("/ip4/10.20.0.1/tcp/4001/p2p/{ida}")]
    );
    // Each refusal was counted (the agent logs every refusal with its reason).
    let log = std::fs::read_to_string(&ab.log).unwrap();
    for why in [
        "older than a record already seen (replay)",
        "bad signature",
        "peer ID does not match the signing key",
        "wrong namespace",
    ] {
        assert!(
            log.contains(why),
            "no refusal for {why:?} in the log:\n{log}"
        );
    }
}

#[test]
fn a_registration_is_sent_twice_a_second_apart_on_the_wire() {
    let Some((mut n, _a, b, aa, _ab)) =
        pair("a_registration_is_sent_twice_a_second_apart_on_the_wire")
    else {
        return;
    };
    // A plain listener on b's link, built like the agent's own per-link socket.
    let sock = n.in_ns(&b, || {
        let ifs = exo_discovery::agent::iface::list().expect("interfaces");
        let eth0 = ifs.into_iter().find(|i| i.name == "eth0").expect("eth0");
        exo_discovery::agent::link_socket::open(&eth0, exo_discovery::wire::net::Family::V4)
            .expect("socket")
    });
    sock.set_nonblocking(false).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let (ka, ida) = n.keygen("a");
    let _ann = n.announce(&aa, &ka, &["/ip4/0.0.0.0/tcp/4001".into()]);
    let start = std::time::Instant::now();
    let mut heard = Vec::new();
    let mut buf = [0u8; 9000];
    while start.elapsed() < Duration::from_secs(4) {
        let Ok((len, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let packet = &buf[..len];
        if !exo_discovery::wire::dns::is_response(packet) || from.port() != 5353 {
            continue;
        }
        let rrs = exo_discovery::wire::dns::records(packet).expect("the agent sends valid DNS");
        // The instance's SRV record with a live TTL: an announcement, or a reply to someone's
        // query (mdns-sd multicasts a record at most once a second, so a reply may stand in for
        // the repeat; to every host on the link they are the same).
        let announces = rrs
            .iter()
            .any(|r| r.rtype == 33 && r.ttl > 0 && r.name.starts_with(&format!("{ida}-")));
        if announces {
            heard.push(start.elapsed());
        }
    }
    assert!(heard.len() >= 2, "announcements heard at {heard:?}");
    let gap = heard[1] - heard[0];
    assert!(
        gap >= Duration::from_millis(900) && gap <= Duration::from_millis(1600),
        "RFC 6762 §8.3 wants the repeat one second later: {heard:?}"
    );
}

#[test]
fn clusters_with_different_namespaces_never_see_each_other() {
    let Some(mut n) = net("clusters_with_different_namespaces_never_see_each_other") else {
        return;
    };
    let l = n.link();
    let hosts: Vec<Host> = ["a", "b", "c", "d"].iter().map(|h| n.host(h)).collect();
    for (i, h) in hosts.iter().enumerate() {
        n.attach(h, "eth0", &l, &[&format!("10.21.0.{}/24", i + 1)]);
    }
    // a and b in the default namespace ("exo"), c and d in "lab".
    let agents = [
        n.agent(&hosts[0], "agent-a", &[]),
        n.agent(&hosts[1], "agent-b", &[]),
        n.agent(&hosts[2], "agent-c", &["--namespace", "lab"]),
        n.agent(&hosts[3], "agent-d", &["--namespace", "lab"]),
    ];
    let _listeners: Vec<_> = hosts.iter().map(|h| n.listen_on(h, 4001)).collect();
    let mut ids = Vec::new();
    let mut anns = Vec::new();
    for (i, ag) in agents.iter().enumerate() {
        let (k, id) = n.keygen(&format!("k{i}"));
        anns.push(n.announce(ag, &k, &["/ip4/0.0.0.0/tcp/4001".into()]));
        ids.push(id);
    }
    let mut wb = n.watch(&agents[1]);
    let mut wd = n.watch(&agents[3]);
    wb.wait_for(WAIT, |v| is_event(v, "discovered", &ids[0]))
        .expect("b finds a (same namespace)");
    wd.wait_for(WAIT, |v| is_event(v, "discovered", &ids[2]))
        .expect("d finds c (same namespace)");
    wb.drain(Duration::from_secs(2));
    wd.drain(Duration::from_secs(1));
    for (w, foreign) in [(&wb, [&ids[2], &ids[3]]), (&wd, [&ids[0], &ids[1]])] {
        for id in foreign {
            assert!(
                w.seen.iter().all(|(_, v)| v["peer_id"] != id.as_str()),
                "a peer of the other namespace was handed over: {id}"
            );
        }
    }
    let log = std::fs::read_to_string(&agents[1].log).unwrap();
    assert!(
        log.contains("wrong namespace"),
        "foreign records are refused, not unheard"
    );
}

#[test]
fn addresses_that_do_not_answer_are_withheld_until_they_do() {
    let Some((mut n, a, _b, aa, ab)) =
        pair("addresses_that_do_not_answer_are_withheld_until_they_do")
    else {
        return;
    };
    // 4101 answers; 4102 refuses (nothing listens yet); 4103 is dropped by a firewall (no answer).
    let _open = n.listen_on(&a, 4101);
    let _firewalled = n.listen_on(&a, 4103);
    let have_nft = n.exec(&a, &["nft", "add table inet fw"]).status.success()
        && n.exec(
            &a,
            &[
                "nft",
                "add chain inet fw in { type filter hook input priority 0 ; }",
            ],
        )
        .status
        .success()
        && n.exec(&a, &["nft", "add rule inet fw in tcp dport 4103 drop"])
            .status
            .success();
    if !have_nft {
        eprintln!("(nft unavailable: the firewalled port is only refused here, not dropped)");
    }
    let (ka, ida) = n.keygen("a");
    let mut wb = n.watch(&ab);
    let _ann = n.announce(
        &aa,
        &ka,
        &[
            "/ip4/0.0.0.0/tcp/4101".into(),
            "/ip4/0.0.0.0/tcp/4102".into(),
            "/ip4/0.0.0.0/tcp/4103".into(),
        ],
    );
    let (_, ev) = wb.discovered_with(
        WAIT,
        &ida,
        &[format!("/ip4/10.20.0.1/tcp/4101/p2p/{ida}")],
        "never discovered",
    );
    assert_eq!(
        ev["verified"],
        serde_json::json!(["signature", "reachable"])
    );
    // Now 4102 starts answering: it is handed over after a retry.
    let _late = n.listen_on(&a, 4102);
    let (_, ev) = wb
        .wait_for(Duration::from_secs(30), |v| {
            addrs(v).iter().any(|s| s.contains("/tcp/4102/"))
        })
        .unwrap_or_else(|| panic!("the late listener was never handed over: {:?}", wb.seen));
    assert_eq!(ev["event"], "updated");
    wb.drain(Duration::from_secs(2));
    for (_, v) in &wb.seen {
        assert!(
            !addrs(v).iter().any(|s| s.contains("/tcp/4103/")),
            "an address that never answered was handed over: {v}"
        );
    }
    // `peers` agrees: the two that answered.
    let peers = n.peers(&ab);
    assert_eq!(addrs(&peers[0]).len(), 2);
}

#[test]
fn status_reports_interfaces_counters_and_refusals() {
    let test = "status_reports_interfaces_counters_and_refusals";
    if !have_tool(test, "nft", "nft (nftables)") {
        return;
    }
    let Some(mut n) = net(test) else {
        return;
    };
    let (l1, l2, l3) = (n.link(), n.link(), n.link());
    let m = n.host("m");
    let p = n.host("p");
    let f = n.host("f");
    n.attach(&m, "eth0", &l1, &["10.22.0.1/24"]);
    n.attach(&m, "eth1", &l2, &["10.22.1.1/24"]);
    n.attach(&m, "eth2", &l3, &["10.22.2.1/24"]);
    n.attach(&p, "eth0", &l1, &["10.22.0.2/24"]);
    n.attach(&f, "eth0", &l1, &["10.22.0.66/24"]);
    n.nft(
        &m.ns,
        &[
            "add table inet fw",
            "add chain inet fw o { type filter hook output priority 0 ; }",
            "add rule inet fw o oifname \"eth1\" udp dport 5353 drop",
        ],
    );
    let am = n.agent(&m, "agent-m", &["--exclude-interface", "eth2"]);
    let ap = n.agent(&p, "agent-p", &[]);
    let _listener = n.listen_on(&p, 4001);
    let (kp, idp) = n.keygen("p");
    let _ann = n.announce(&ap, &kp, &["/ip4/0.0.0.0/tcp/4001".into()]);
    let mut wm = n.watch(&am);
    wm.wait_for(WAIT, |v| is_event(v, "discovered", &idp))
        .expect("p discovered");
    // A forged record on the same link: refused and counted.
    let k = libp2p_identity::Keypair::generate_ed25519();
    let mut bad = record::sign(&k, "exo", 5, &["/ip4/0.0.0.0/tcp/7777".parse().unwrap()]).unwrap();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let _forger = publish(
        &n,
        &f,
        "10.22.0.66",
        instance::instance_label(&k.public().to_peer_id(), 5),
        record::to_txt(&bad),
    );
    let status = || {
        let out = std::process::Command::new(common::bin_path())
            .args(["status", "--json", "--socket"])
            .arg(&am.socket)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let mut st = status();
    for _ in 0..50 {
        if st["records_rejected"]["signature"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        st = status();
    }
    assert_eq!(st["namespace"], "exo");
    assert_eq!(st["peers"], 1, "{st}");
    assert!(st["clients"].as_u64().unwrap() >= 1, "{st}");
    assert!(st["records_accepted"].as_u64().unwrap() >= 1, "{st}");
    assert!(
        st["records_rejected"]["signature"].as_u64().unwrap() >= 1,
        "{st}"
    );
    let ifaces = st["interfaces"].as_array().unwrap();
    let find = |name: &str| ifaces.iter().find(|i| i["name"] == name).cloned();
    let eth0 = find("eth0").expect("eth0 in use");
    assert_eq!(eth0["families"][0]["family"], "IPv4");
    assert_eq!(eth0["families"][0]["in_use"], true);
    assert!(
        eth0["families"][0]["packets_in"].as_u64().unwrap() > 0,
        "{eth0}"
    );
    assert!(
        eth0["families"][0]["packets_out"].as_u64().unwrap() > 0,
        "{eth0}"
    );
    assert!(
        eth0["records_rejected"]["signature"].as_u64().unwrap() >= 1,
        "{eth0}"
    );
    let eth1 = find("eth1").expect("eth1 listed");
    assert_eq!(eth1["families"][0]["in_use"], false);
    assert!(
        eth1["families"][0]["problem"]
            .as_str()
            .unwrap()
            .contains("refused"),
        "{eth1}"
    );
    let unused = st["unused_interfaces"].to_string();
    assert!(
        unused.contains("\"eth2\"") && unused.contains("excluded"),
        "{unused}"
    );
    assert!(
        unused.contains("\"lo\"") && unused.contains("loopback"),
        "{unused}"
    );
    let text = std::process::Command::new(common::bin_path())
        .args(["status", "--socket"])
        .arg(&am.socket)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("eth1 (index") && text.contains("not used: multicast send refused"),
        "{text}"
    );
    println!("{text}");
}
