//! A hostile host on the same link, for real, in network namespaces: it floods validly signed
//! records from freshly minted keys, sends goodbyes for peers that are alive, and repeats the
//! name of a peer that is gone. The agents must keep finding real peers, stay small, report
//! departures only when they happen, and say what they dropped.
//!
//! Needs root (network namespaces); without it each test prints one line and skips.

// Linux only: it runs the agent in Linux network namespaces (`tests/common/network.rs`).
#![cfg(target_os = "linux")]

mod common;

use common::network::net;
use common::watch::{dropped, is_event};
use common::{forge, packets};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// The flood measures one agent's memory and pace: the other tests wait while it runs.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn a_flood_of_fresh_signed_records_neither_deafens_the_agent_nor_locks_a_real_peer_out() {
    let test =
        "a_flood_of_fresh_signed_records_neither_deafens_the_agent_nor_locks_a_real_peer_out";
    let Some(mut n) = net(test) else {
        return;
    };
    let f = forge::flood(&mut n, 50, 2000, 8, Duration::from_secs(3));
    println!(
        "{} of {} forged records sent in {:?}; real peer found {:?} after it announced during \
         the flood, {:?} after; agent peak RSS {} KiB; dropped {}",
        f.sent, f.offered, f.lasted, f.during, f.after, f.peak_rss_kib, f.status["dropped"]
    );
    assert!(f.sent * 10 >= f.offered * 9, "the flood was not sent");
    assert!(
        f.during.is_some(),
        "the real peer was not found during the flood"
    );
    assert!(
        f.after.is_some(),
        "a real peer was not found after the flood"
    );
    let eth0 = &f.status["interfaces"][0];
    assert!(
        dropped(eth0, &["host-full", "pending-evicted"]) > 0,
        "drops not counted per link: {}",
        f.status
    );
    for b in f.status["budget"].as_array().expect("budget") {
        assert!(b["used"].as_u64() <= b["max"].as_u64(), "over budget: {b}");
    }
    assert!(
        f.peers <= 2 + exo_discovery::engine::table::MAX_PEERS_PER_HOST,
        "one host got more than its share: {} peers",
        f.peers
    );
    assert!(
        f.peak_rss_kib < 16 * 1024,
        "agent peak RSS {} KiB, over the 16 MiB budget",
        f.peak_rss_kib
    );
}

/// Two agents' hosts and a forger on one link; `a`'s node announced on port 4001 and found by
/// `b`'s agent.
struct Scene {
    n: common::network::Net,
    aa: common::agents::Agent,
    ab: common::agents::Agent,
    wb: common::watch::Watch,
    /// The forger's socket.
    sock: std::net::UdpSocket,
    /// The node's peer ID.
    ida: String,
    /// Its current instance label.
    label: String,
    /// Its port.
    port: std::net::TcpListener,
    /// Its key file.
    key: std::path::PathBuf,
    /// The forger's IP.
    f_ip: Ipv4Addr,
    _ann: common::agents::Announce,
    _alone: std::sync::MutexGuard<'static, ()>,
}

fn announced_pair(test: &str, subnet: u8, extra: &[&str]) -> Option<Scene> {
    let alone = alone();
    let mut n = net(test)?;
    let l = n.link();
    let (a, b, f) = (n.host("a"), n.host("b"), n.host("f"));
    n.attach(&a, "eth0", &l, &[&format!("10.{subnet}.0.1/24")]);
    n.attach(&b, "eth0", &l, &[&format!("10.{subnet}.0.2/24")]);
    n.attach(&f, "eth0", &l, &[&format!("10.{subnet}.0.66/24")]);
    let aa = n.agent(&a, "agent-a", extra);
    let ab = n.agent(&b, "agent-b", extra);
    let port = n.listen_on(&a, 4001);
    let (ka, ida) = n.keygen("a");
    let mut wb = n.watch(&ab);
    let ann = n.announce(&aa, &ka, &["/ip4/0.0.0.0/tcp/4001".into()]);
    let (_, ev) = wb
        .wait_for(WAIT, |v| is_event(v, "discovered", &ida))
        .expect("discovered");
    let seq = ev["seq"].as_u64().expect("seq");
    let label = exo_discovery::wire::instance::instance_label(&ida.parse().unwrap(), seq);
    let f_ip = Ipv4Addr::new(10, subnet, 0, 66);
    let sock = n.in_ns(&f, move || forge::sender(f_ip));
    Some(Scene {
        n,
        aa,
        ab,
        wb,
        sock,
        ida,
        label,
        port,
        key: ka,
        f_ip,
        _ann: ann,
        _alone: alone,
    })
}

#[test]
fn a_spoofed_goodbye_never_expires_a_live_peer() {
    let Some(Scene {
        n,
        ab,
        mut wb,
        sock,
        ida,
        label,
        port: _port,
        _alone,
        ..
    }) = announced_pair("a_spoofed_goodbye_never_expires_a_live_peer", 51, &[])
    else {
        return;
    };
    // mdns-sd holds a goodbye's record for a second, and the node's next answer cancels it:
    // the forger repeats its goodbye until one lands in a quiet moment.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        sock.send_to(&packets::goodbye(&label), packets::GROUP)
            .unwrap();
        std::thread::sleep(Duration::from_millis(250));
    }
    let expired = wb.wait_for(Duration::from_secs(3), |v| is_event(v, "expired", &ida));
    assert!(expired.is_none(), "a spoofed goodbye expired the peer");
    assert_eq!(n.peers(&ab).len(), 1);
    let st = n.status(&ab);
    assert!(
        dropped(&st["interfaces"][0], &["goodbye-refuted"]) >= 1,
        "refuted goodbye not counted: {st}"
    );
}

#[test]
fn a_dead_peer_is_not_kept_alive_by_another_host_repeating_its_name() {
    let Some(Scene {
        mut n,
        aa,
        ab,
        mut wb,
        sock,
        ida,
        label,
        port,
        _ann,
        _alone,
        ..
    }) = announced_pair(
        "a_dead_peer_is_not_kept_alive_by_another_host_repeating_its_name",
        52,
        &["--peer-timeout", "6"],
    )
    else {
        return;
    };
    // The host vanishes: its agent is killed (no goodbye) and its node's port is gone.
    n.kill_agent(&aa);
    drop(port);
    let gone = Instant::now();
    let repeating = std::thread::spawn(move || {
        while gone.elapsed() < Duration::from_secs(12) {
            let _ = sock.send_to(&packets::mention(&label), packets::GROUP);
            std::thread::sleep(Duration::from_millis(250));
        }
    });
    let expired = wb.wait_for(Duration::from_secs(12), |v| is_event(v, "expired", &ida));
    repeating.join().unwrap();
    assert!(
        expired.is_some(),
        "the peer was kept alive by another host's packets"
    );
    let st = n.status(&ab);
    assert!(
        dropped(&st["interfaces"][0], &["foreign-source"]) >= 1,
        "foreign packets not counted: {st}"
    );
}

#[test]
fn a_node_whose_clock_stepped_back_is_taken_again_and_a_replay_changes_nothing() {
    let Some(Scene {
        mut n,
        aa,
        ab,
        mut wb,
        sock,
        ida,
        port: _port,
        key,
        f_ip,
        _ann,
        _alone,
        ..
    }) = announced_pair(
        "a_node_whose_clock_stepped_back_is_taken_again_and_a_replay_changes_nothing",
        53,
        &[],
    )
    else {
        return;
    };
    let held = n.peers(&ab)[0]["seq"].as_u64().unwrap();
    // The node restarts with its host's clock a day behind (same port: its port never closed).
    n.stop(_ann);
    let behind = held - 86_400_000_000;
    let started = Instant::now();
    let _again = n.announce_with(
        &aa,
        &key,
        &["/ip4/0.0.0.0/tcp/4001".into()],
        &["--seq", &behind.to_string()],
    );
    let (at, _) = wb
        .wait_for(WAIT, |v| v["peer_id"] == ida.as_str() && v["seq"] == behind)
        .unwrap_or_else(|| panic!("the node a day behind was not taken: {:?}", wb.seen));
    println!(
        "node a day behind taken {:?} after it announced",
        at - started
    );
    assert!(n.peers(&ab).iter().all(|p| p["seq"] == behind));

    // A third host replays an even older record of the node, naming a place of its own.
    let k = exo_discovery::cli::keyfile::read(&key).unwrap();
    let old = behind - 1_000_000;
    let listen = ["/ip4/0.0.0.0/tcp/4999".parse().unwrap()];
    let signed = exo_discovery::wire::record::sign(&k, "exo", old, &listen).unwrap();
    let label = exo_discovery::wire::instance::instance_label(&k.public().to_peer_id(), old);
    let replay = packets::announcement(&label, &signed, f_ip, 4999, 120);
    for _ in 0..3 {
        sock.send_to(&replay, packets::GROUP).unwrap();
        std::thread::sleep(Duration::from_millis(500));
    }
    wb.drain(Duration::from_secs(2));
    let peers = n.peers(&ab);
    assert_eq!(peers.len(), 1);
    assert_eq!(
        peers[0]["seq"], behind,
        "the replay changed the node's record"
    );
    assert!(
        common::watch::addrs(&peers[0])
            .iter()
            .all(|a| a.contains("/tcp/4001/")),
        "{peers:?}"
    );
    let st = n.status(&ab);
    assert!(
        st["records_rejected"]["replay"].as_u64().unwrap_or(0) >= 1,
        "the replay was not counted: {st}"
    );
}

#[test]
fn a_node_that_left_and_came_back_a_day_behind_on_its_port_is_taken_and_a_replay_is_not() {
    let _alone = alone();
    let Some(mut n) =
        net("a_node_that_left_and_came_back_a_day_behind_on_its_port_is_taken_and_a_replay_is_not")
    else {
        return;
    };
    let l = n.link();
    let (a, b, f) = (n.host("a"), n.host("b"), n.host("f"));
    n.attach(&a, "eth0", &l, &["10.56.0.1/24"]);
    n.attach(&b, "eth0", &l, &["10.56.0.2/24"]);
    n.attach(&f, "eth0", &l, &["10.56.0.66/24"]);
    let aa = n.agent(&a, "agent-a", &[]);
    let ab = n.agent(&b, "agent-b", &[]);
    let port = n.listen_on(&a, 4001);
    let (key, ida) = n.keygen("a");
    let mut wb = n.watch(&ab);
    let listen = [
        "/ip4/0.0.0.0/tcp/4001".to_string(),
        "/ip6/::/tcp/4001".into(),
    ];
    let ann = n.announce(&aa, &key, &listen);
    wb.wait_for(WAIT, |v| is_event(v, "discovered", &ida))
        .expect("discovered");
    let held = n.peers(&ab)[0]["seq"].as_u64().unwrap();
    // The node stops: its port closes, its agent says goodbye, and b reports it gone.
    drop(port);
    n.stop(ann);
    wb.wait_for(WAIT, |v| is_event(v, "expired", &ida))
        .expect("the goodbye was not taken");

    // A third host replays an older record of the departed node from its own address.
    let k = exo_discovery::cli::keyfile::read(&key).unwrap();
    let behind = held - 86_400_000_000;
    let old = behind - 1_000_000;
    let signed = exo_discovery::wire::record::sign(
        &k,
        "exo",
        old,
        &["/ip4/0.0.0.0/tcp/4001".parse().unwrap()],
    )
    .unwrap();
    let label = exo_discovery::wire::instance::instance_label(&k.public().to_peer_id(), old);
    let f_ip = Ipv4Addr::new(10, 56, 0, 66);
    let sock = n.in_ns(&f, move || forge::sender(f_ip));
    let replay = packets::announcement(&label, &signed, f_ip, 4001, 120);
    for _ in 0..3 {
        sock.send_to(&replay, packets::GROUP).unwrap();
        std::thread::sleep(Duration::from_millis(500));
    }
    wb.drain(Duration::from_secs(2));
    assert!(n.peers(&ab).is_empty(), "the replay brought it back");
    let st = n.status(&ab);
    assert!(
        st["records_rejected"]["replay"].as_u64().unwrap_or(0) >= 1,
        "the replay was not counted: {st}"
    );

    // The host rebooted with its clock a day behind: the node announces again on port 4001, and
    // listens there a moment later.
    let started = Instant::now();
    let _again = n.announce_with(&aa, &key, &listen, &["--seq", &behind.to_string()]);
    std::thread::sleep(Duration::from_millis(300));
    let _port = n.listen_on(&a, 4001);
    let (at, _) = wb
        .wait_for(WAIT, |v| v["peer_id"] == ida.as_str() && v["seq"] == behind)
        .unwrap_or_else(|| panic!("the node a day behind was not taken: {:?}", wb.seen));
    println!(
        "node back a day behind taken {:?} after it announced (it listened 300 ms after)",
        at - started
    );
    wb.drain(Duration::from_secs(2));
    let peers = n.peers(&ab);
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0]["seq"], behind);
}

#[test]
fn a_storm_of_replayed_announcements_and_goodbyes_costs_a_live_node_few_connections() {
    let Some(Scene {
        n,
        ab,
        mut wb,
        sock,
        ida,
        label,
        port,
        key,
        _ann,
        _alone,
        ..
    }) = announced_pair(
        "a_storm_of_replayed_announcements_and_goodbyes_costs_a_live_node_few_connections",
        54,
        &[],
    )
    else {
        return;
    };
    // The forger replays the node's own announcement (its current record, at its address) and
    // then its goodbye, every 1.5 s for 30 s; b's agent is the only one that probes the node.
    let seq = n.peers(&ab)[0]["seq"].as_u64().unwrap();
    let k = exo_discovery::cli::keyfile::read(&key).unwrap();
    let listen = ["/ip4/0.0.0.0/tcp/4001".parse().unwrap()];
    let signed = exo_discovery::wire::record::sign(&k, "exo", seq, &listen).unwrap();
    let announcement =
        packets::announcement(&label, &signed, Ipv4Addr::new(10, 54, 0, 1), 4001, 120);
    port.set_nonblocking(true).unwrap();
    while port.accept().is_ok() {} // the reachability probe that found it
    let storm = Duration::from_secs(30);
    let counting = std::thread::spawn(move || {
        let start = Instant::now();
        let mut connections = 0;
        while start.elapsed() < storm + Duration::from_secs(2) {
            match port.accept() {
                Ok(_) => connections += 1,
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        connections
    });
    let start = Instant::now();
    let mut goodbyes = 0;
    while start.elapsed() < storm {
        sock.send_to(&announcement, packets::GROUP).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        sock.send_to(&packets::goodbye(&label), packets::GROUP)
            .unwrap();
        goodbyes += 1;
        std::thread::sleep(Duration::from_millis(1480));
    }
    let connections = counting.join().unwrap();
    let st = n.status(&ab);
    let refuted = dropped(&st["interfaces"][0], &["goodbye-refuted"]);
    println!(
        "{goodbyes} replayed announcements and goodbyes in {storm:?}: {refuted} goodbyes refuted, \
         {connections} connections to the node's port"
    );
    assert!(
        wb.wait_for(Duration::from_secs(1), |v| is_event(v, "expired", &ida))
            .is_none(),
        "the storm expired the peer"
    );
    assert!(refuted >= 1, "no goodbye refuted: {st}");
    // At most one round of probes per 20 s: two rounds in 30 s, of at most 4 probes each.
    let rounds = 2;
    assert!(
        connections <= rounds * exo_discovery::engine::MAX_CONFIRM_PROBES,
        "{connections} connections in {storm:?}"
    );
}
