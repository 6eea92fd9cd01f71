//! A forged packet cannot aim the agent at someone else. Host A runs an agent; host X, on the
//! same link, is hostile: it also holds an address of another subnet (to A, a forged off-link
//! source: A has a route there through X, so anything sent there would arrive). Host V, on the
//! link, is a bystander listening on TCP port 22.
//!
//! - A port scan by proxy: X announces records of freshly minted keys (anyone can mint them)
//!   whose A record names V and whose port is 22. A never connects to V: a record heard on a link
//!   is probed only at the address its packets came from. As a control, records X announces for
//!   its own address are probed there.
//! - A reflector: X sends presence queries naming made-up instances from its off-link address.
//!   A re-queries the link for them, by multicast, and sends nothing to that address.
//!
//! Needs root (network namespaces) and nftables; without them it prints one line and skips.

// Linux only: it runs the agent in Linux network namespaces (`tests/common/network.rs`).
#![cfg(target_os = "linux")]

mod common;

use common::forge::{fresh_announcement, send_at, sender};
use common::network::net;
use common::tools::have_tool;
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::Duration;

#[test]
fn minted_records_naming_a_third_host_never_make_the_agent_connect_there() {
    let test = "minted_records_naming_a_third_host_never_make_the_agent_connect_there";
    let Some(mut n) = net(test) else {
        return;
    };
    let l = n.link();
    let (a, x, v) = (n.host("a"), n.host("x"), n.host("v"));
    n.attach(&a, "eth0", &l, &["10.97.0.1/24"]);
    n.attach(&x, "eth0", &l, &["10.97.0.66/24"]);
    n.attach(&v, "eth0", &l, &["10.97.0.22/24"]);
    let aa = n.agent(&a, "agent-a", &[]);
    let (at_v, stop_v) = n.count_connections(&v, 22);
    let (at_x, stop_x) = n.count_connections(&x, 4001);
    std::thread::sleep(Duration::from_secs(1));
    // 100 records at 20 a second whose A record names V and whose port is 22, then 3 that name
    // X itself (the control).
    let victim = Ipv4Addr::new(10, 97, 0, 22);
    let mut packets: Vec<Vec<u8>> = (0..100).map(|_| fresh_announcement(victim, 22)).collect();
    packets.extend((0..3).map(|_| fresh_announcement(Ipv4Addr::new(10, 97, 0, 66), 4001)));
    let sock = n.in_ns(&x, || sender(Ipv4Addr::new(10, 97, 0, 66)));
    let sent = send_at(sock, packets, 20);
    assert_eq!(sent, 103);
    std::thread::sleep(Duration::from_secs(4));
    stop_v.store(true, Ordering::Relaxed);
    stop_x.store(true, Ordering::Relaxed);
    let (to_v, to_x) = (at_v.load(Ordering::Relaxed), at_x.load(Ordering::Relaxed));
    eprintln!(
        "{test}: 100 minted records naming V:22 made {to_v} connections to V; 3 naming X made \
         {to_x} to X"
    );
    assert_eq!(to_v, 0, "the agent connected to the third host");
    assert!(to_x >= 1, "the records of X's own address were not probed");
    // Nothing at V is handed over (so peer exchange has nothing about V to tell either).
    let peers = n.peers(&aa);
    assert!(
        peers.iter().all(|p| !p.to_string().contains("10.97.0.22")),
        "{peers:?}"
    );
    assert!(peers.len() <= 3, "{} peers handed over", peers.len());
}

#[test]
fn a_forged_presence_query_from_off_the_link_sends_nothing_there() {
    let test = "a_forged_presence_query_from_off_the_link_sends_nothing_there";
    if !have_tool(test, "nft", "nft (nftables)") {
        return;
    }
    let Some(mut n) = net(test) else {
        return;
    };
    let l = n.link();
    let (a, x) = (n.host("a"), n.host("x"));
    n.attach(&a, "eth0", &l, &["10.96.0.1/24"]);
    n.attach(&x, "eth0", &l, &["10.96.0.66/24", "10.196.0.66/32"]);
    n.ip_in(&a, &["route", "add", "10.196.0.0/24", "via", "10.96.0.66"]);
    n.nft(
        &a.ns,
        &[
            "add table inet aimed",
            "add counter inet aimed off_link",
            "add counter inet aimed group",
            "add chain inet aimed out { type filter hook output priority 0 ; }",
            "add rule inet aimed out ip daddr 10.196.0.0/24 counter name off_link",
            "add rule inet aimed out ip daddr 224.0.0.251 udp dport 5353 counter name group",
        ],
    );
    let _aa = n.agent(&a, "agent-a", &[]);
    std::thread::sleep(Duration::from_secs(3));
    let before = n.nft_counter(&a, "aimed", "group").0;
    // Ten presence queries (QU, from port 5353) from the off-link address, each naming four
    // made-up instances, 100 ms apart.
    let sock = n.in_ns(&x, || {
        let s = UdpSocket::bind((Ipv4Addr::new(10, 196, 0, 66), 5353)).expect("bind 5353");
        let r = socket2::SockRef::from(&s);
        r.set_multicast_if_v4(&Ipv4Addr::new(10, 96, 0, 66))
            .expect("multicast if");
        r.set_multicast_ttl_v4(255).expect("ttl");
        s
    });
    let forged = 10;
    for _ in 0..forged {
        let names: Vec<String> = (0..4)
            .map(|_| {
                let k = libp2p_identity::Keypair::generate_ed25519();
                let label =
                    exo_discovery::wire::instance::instance_label(&k.public().to_peer_id(), 1);
                exo_discovery::wire::instance::fullname(&label)
            })
            .collect();
        let q = exo_discovery::wire::dns::queries(&names, exo_discovery::wire::dns::TYPE_TXT, true);
        sock.send_to(&q, common::packets::GROUP).expect("send");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    let off = n.nft_counter(&a, "aimed", "off_link");
    let group = n.nft_counter(&a, "aimed", "group").0 - before;
    eprintln!(
        "{test}: {forged} forged presence queries from off the link: {} packets sent there, {group} \
         to the link's group",
        off.0
    );
    assert_eq!(off, (0, 0), "the agent sent to the forged address");
    // Re-queries go to the group, one packet per 100 ms at most (each naming what is missing),
    // for as long as the forged queries keep naming new instances (1 s) and twenty rounds
    // after (`MAX_REQUERIES`): about 31, the rest being the agent's and mdns-sd's own queries in
    // those 6 s (42 and 43 in all, measured). One packet per made-up instance and round would be 800.
    assert!(group >= 1, "no re-query at all");
    assert!(group <= 55, "{group} packets to the group");
}
