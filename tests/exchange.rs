//! Peer exchange: one static host brings the whole cluster. Runs in network namespaces (root; see
//! `common::network`) with nftables.
//!
//! Hosts A, B, C, D, E share one link. B, C, D and E hear each other by multicast; A hears no
//! mDNS but B's unicast answers (nftables on A's input drops multicast mDNS, and unicast mDNS
//! from anyone but B), as behind an access point that does not deliver multicast to it or a host
//! firewall that lets in only what it asked B. A's own announcements still go out, so B, C and D
//! learn A by multicast. A lists only B as a static host. E's node refuses connections from A.
//! F is not an agent: a host that answers the exchange with a record whose signature is broken.

// Linux only: it runs the agent in Linux network namespaces (`tests/common/network.rs`).
#![cfg(target_os = "linux")]

mod common;

use common::network::net;
use common::tools::have_tool;
use common::watch::is_event;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn one_static_host_brings_the_whole_cluster_and_only_what_checks_out_here() {
    let test = "one_static_host_brings_the_whole_cluster_and_only_what_checks_out_here";
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
    let hosts: Vec<_> = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let h = n.host(name);
            n.attach(&h, "eth0", &l, &[&format!("10.94.0.{}/24", i + 1)]);
            h
        })
        .collect();
    let (a, b, c, d, e, f) = (
        &hosts[0], &hosts[1], &hosts[2], &hosts[3], &hosts[4], &hosts[5],
    );
    n.nft(
        &a.ns,
        &[
            "add table inet mute",
            "add chain inet mute in { type filter hook input priority 0 ; }",
            "add rule inet mute in meta pkttype multicast udp dport 5353 drop",
            "add rule inet mute in meta nfproto ipv6 udp dport 5353 drop",
            "add rule inet mute in meta nfproto ipv6 udp sport 5353 drop",
            "add rule inet mute in ip saddr != 10.94.0.2 udp dport 5353 drop",
            "add rule inet mute in ip saddr != 10.94.0.2 udp sport 5353 drop",
        ],
    );
    n.nft(
        &e.ns,
        &[
            "add table inet fw",
            "add chain inet fw in { type filter hook input priority 0 ; }",
            "add rule inet fw in ip saddr 10.94.0.1 tcp dport 4001 drop",
        ],
    );
    let fake = fake_exchange(&n, f);

    // The cluster, settled, before A starts.
    let mut agents = Vec::new();
    let mut ids = Vec::new();
    let mut nodes = Vec::new();
    for (h, name) in [(b, "b"), (c, "c"), (d, "d"), (e, "e")] {
        let agent = n.agent(h, &format!("agent-{name}"), &[]);
        let listener = n.listen_on(h, 4001);
        let (key, id) = n.keygen(name);
        let ann = n.announce(&agent, &key, &["/ip4/0.0.0.0/tcp/4001".into()]);
        nodes.push((key, ann, listener));
        agents.push(agent);
        ids.push(id);
    }
    let (idb, idc, idd, ide) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    let mut wb = n.watch(&agents[0]);
    for id in [idc, idd, ide] {
        wb.wait_for_any(WAIT, |v| is_event(v, "discovered", id))
            .unwrap_or_else(|| panic!("B never found {id}: {:?}", wb.seen));
    }
    let mut wc = n.watch(&agents[1]);
    let mut wd = n.watch(&agents[2]);

    let start = Instant::now();
    let aa = n.agent(
        a,
        "agent-a",
        &["--static-host", "10.94.0.2", "--static-host", "10.94.0.6"],
    );
    let _la = n.listen_on(a, 4001);
    let (ka, ida) = n.keygen("a");
    let _na = n.announce(&aa, &ka, &["/ip4/0.0.0.0/tcp/4001".into()]);
    let mut wa = n.watch(&aa);
    let mut last = start;
    for (id, ip) in [(idc, "10.94.0.3"), (idd, "10.94.0.4")] {
        let (at, ev) = wa
            .wait_for_any(WAIT, |v| is_event(v, "discovered", id))
            .unwrap_or_else(|| panic!("A was never handed {id}: {:?}", wa.seen));
        assert_eq!(ev["source"], "exchange", "{ev}");
        assert_eq!(ev["interfaces"][0], "exchange:10.94.0.2", "{ev}");
        assert_eq!(
            ev["addrs"][0],
            format!("/ip4/{ip}/tcp/4001/p2p/{id}"),
            "{ev}"
        );
        last = last.max(at);
    }
    let took = last - start;
    eprintln!(
        "{test}: A's node handed C and D {} ms after A's agent started",
        took.as_millis()
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
    wa.wait_for_any(WAIT, |v| is_event(v, "discovered", idb))
        .unwrap_or_else(|| panic!("A never got B itself: {:?}", wa.seen));
    for (w, who) in [(&mut wb, "B"), (&mut wc, "C"), (&mut wd, "D")] {
        w.wait_for_any(WAIT, |v| is_event(v, "discovered", &ida))
            .unwrap_or_else(|| panic!("{who} never learned A: {:?}", w.seen));
    }

    // E is handed over by B, but its node does not answer A: withheld at A.
    wa.drain(Duration::from_secs(3));
    assert!(
        n.peers(&agents[0]).iter().any(|p| p["peer_id"] == *ide),
        "B hands E over"
    );
    assert!(
        !n.peers(&aa).iter().any(|p| p["peer_id"] == *ide),
        "E does not answer from A, so A withholds it"
    );
    // F's record fails its signature: refused and counted.
    let st = n.status(&aa);
    assert!(
        st["records_rejected"]["signature"].as_u64().unwrap_or(0) >= 1,
        "{st}"
    );
    assert!(
        !n.peers(&aa).iter().any(|p| p["peer_id"] == fake.1),
        "the forged record is never handed over"
    );

    // C's node restarts on a new port: A follows it through B.
    let (kc, annc, lc) = nodes.remove(1);
    n.stop(annc);
    drop(lc);
    let _lc = n.listen_on(c, 4002);
    let _nc = n.announce(&agents[1], &kc, &["/ip4/0.0.0.0/tcp/4002".into()]);
    let want = format!("/ip4/10.94.0.3/tcp/4002/p2p/{idc}");
    wa.wait_for_any(WAIT, |v| {
        v["peer_id"] == *idc
            && v["event"] != "expired"
            && v["addrs"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| *x == *want))
    })
    .unwrap_or_else(|| panic!("A did not follow C to its new port: {:?}", wa.seen));
    drop(fake);
}

/// A host that answers the peer exchange, on its TCP port 5353, with one record whose signature
/// is broken. Returns the server's thread guard and the forged record's peer ID.
fn fake_exchange(n: &common::network::Net, f: &common::network::Host) -> (Stop, String) {
    use exo_discovery::exchange::{Peer, Reply};
    let key = libp2p_identity::Keypair::generate_ed25519();
    let id = key.public().to_peer_id().to_base58();
    let mut signed =
        exo_discovery::record::sign(&key, "exo", 1, &["/ip4/0.0.0.0/tcp/4001".parse().unwrap()])
            .unwrap();
    let last = signed.len() - 1;
    signed[last] ^= 1;
    let reply = exo_discovery::proto::encode(&Reply::Peers {
        peers: vec![Peer {
            signed,
            ips: vec!["10.94.0.6".parse().unwrap()],
        }],
        complete: true,
    });
    let listener = n.in_ns(f, || {
        std::net::TcpListener::bind("0.0.0.0:5353").expect("bind")
    });
    listener.set_nonblocking(true).unwrap();
    let stop = Stop::default();
    let done = stop.0.clone();
    std::thread::spawn(move || {
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    let mut prefix = [0u8; 4];
                    if s.read_exact(&mut prefix).is_ok() {
                        let mut body = vec![0; u32::from_be_bytes(prefix).min(512) as usize];
                        let _ = s.read_exact(&mut body);
                        let _ = s.write_all(&reply);
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    (stop, id)
}

/// Stops the fake host's thread when dropped.
#[derive(Default)]
struct Stop(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
