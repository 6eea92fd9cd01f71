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
#[path = "old/protocol_v1.rs"]
#[allow(dead_code)]
mod v1;
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
    // A client built before the exchange (protocol version 1) is handed C and D as static peers.
    let old = v1_list(&aa.socket);
    for id in [idc, idd] {
        let p = old
            .iter()
            .find(|p| p.peer_id == *id)
            .unwrap_or_else(|| panic!("the version-1 client does not get {id}: {old:?}"));
        assert_eq!(p.source, v1::Source::Static, "{p:?}");
        assert_eq!(p.interfaces, ["exchange:10.94.0.2"], "{p:?}");
    }
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

/// The peers a client of protocol version 1 is given by the agent at `socket`.
fn v1_list(socket: &std::path::Path) -> Vec<v1::PeerInfo> {
    let mut s = std::os::unix::net::UnixStream::connect(socket).expect("the agent's socket");
    s.write_all(&v1::frame(&v1::ClientMsg::Hello {
        magic: "exo-discovery".into(),
        version: 1,
    }))
    .unwrap();
    match v1::read(&mut s) {
        Ok(v1::AgentMsg::Welcome { version: 1, .. }) => {}
        other => panic!("a version-1 hello: {other:?}"),
    }
    s.write_all(&v1::frame(&v1::ClientMsg::List)).unwrap();
    let mut peers = Vec::new();
    loop {
        match v1::read(&mut s) {
            Ok(v1::AgentMsg::SnapshotPart(part)) => peers.extend(part),
            Ok(v1::AgentMsg::Snapshot(rest)) => {
                peers.extend(rest);
                return peers;
            }
            other => panic!("a version-1 list: {other:?}"),
        }
    }
}

/// A host that answers the peer exchange, on its TCP port 5353, with one record whose signature
/// is broken. Returns the server's thread guard and the forged record's peer ID.
fn fake_exchange(n: &common::network::Net, f: &common::network::Host) -> (Stop, String) {
    use exo_discovery::wire::exchange::{Peer, Reply};
    let key = libp2p_identity::Keypair::generate_ed25519();
    let id = key.public().to_peer_id().to_base58();
    let mut signed = exo_discovery::wire::record::sign(
        &key,
        "exo",
        1,
        &["/ip4/0.0.0.0/tcp/4001".parse().unwrap()],
    )
    .unwrap();
    let last = signed.len() - 1;
    signed[last] ^= 1;
    let reply = exo_discovery::wire::protocol::encode(&Reply::Peers {
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

/// Asks the agent at `to` for its peers from `from` (a source address of the calling host's),
/// as an agent does: `Some(peers)` when answered with peers, `None` when the connection was
/// closed, refused or timed out without a reply.
fn ask_exchange(from: &str, to: &str) -> Option<Vec<exo_discovery::wire::exchange::Peer>> {
    use exo_discovery::wire::exchange::{Ask, Reply};
    match ask_at(from, to, &Ask::new("exo"))? {
        Reply::Peers { peers, .. } => Some(peers),
        Reply::Refused { .. } | Reply::View(_) => None,
    }
}

/// Sends `ask` from `from` to `to`'s exchange port: the reply, or `None` when there is none.
fn ask_at(
    from: &str,
    to: &str,
    ask: &exo_discovery::wire::exchange::Ask,
) -> Option<exo_discovery::wire::exchange::Reply> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
    s.bind(&std::net::SocketAddr::new(from.parse().ok()?, 0).into())
        .ok()?;
    let target: std::net::SocketAddr = format!("{to}:5353").parse().ok()?;
    s.connect_timeout(&target.into(), Duration::from_secs(2))
        .ok()?;
    let mut s: std::net::TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(&exo_discovery::wire::protocol::encode(ask))
        .ok()?;
    let mut prefix = [0u8; 4];
    s.read_exact(&mut prefix).ok()?;
    let mut body = vec![0; u32::from_be_bytes(prefix).min(1 << 20) as usize];
    s.read_exact(&mut body).ok()?;
    exo_discovery::wire::exchange::decode_reply(&body).ok()
}

#[test]
fn peer_exchange_answers_only_its_own_and_a_hog_cannot_shut_it_off() {
    let test = "peer_exchange_answers_only_its_own_and_a_hog_cannot_shut_it_off";
    let Some(mut n) = net(test) else {
        return;
    };
    // B: an agent with a node. S: a host on B's link that also holds addresses of two other
    // subnets, routed through it from B: to B, an asker from there is off the link, as a routed
    // host (or a forged source) is. H: a host on the link that hogs B's exchange.
    let l = n.link();
    let (b, s, h) = (n.host("b"), n.host("s"), n.host("h"));
    n.attach(&b, "eth0", &l, &["10.95.0.2/24"]);
    n.attach(
        &s,
        "eth0",
        &l,
        &["10.95.0.8/24", "10.96.0.8/32", "10.97.0.8/32"],
    );
    n.attach(&h, "eth0", &l, &["10.95.0.9/24"]);
    n.ip_in(&b, &["route", "add", "10.96.0.0/16", "via", "10.95.0.8"]);
    n.ip_in(&b, &["route", "add", "10.97.0.0/16", "via", "10.95.0.8"]);
    let ab = n.agent(&b, "agent-b", &["--exchange-allow", "10.97.0.0/24"]);
    let _lb = n.listen_on(&b, 4001);
    let (kb, idb) = n.keygen("b");
    let _nb = n.announce(&ab, &kb, &["/ip4/0.0.0.0/tcp/4001".into()]);

    // On the link: answered, with B's own node at the address it was reached at.
    let deadline = Instant::now() + WAIT;
    let own = loop {
        let got = n.in_ns(&s, || ask_exchange("10.95.0.8", "10.95.0.2"));
        match got {
            Some(peers) if !peers.is_empty() => break peers,
            _ if Instant::now() > deadline => panic!("B never answered an asker on its link"),
            _ => std::thread::sleep(Duration::from_millis(300)),
        }
    };
    let rec = exo_discovery::wire::record::verify(&own[0].signed, "exo").expect("B's own record");
    assert_eq!(rec.peer_id.to_base58(), idb);
    assert_eq!(
        own[0].ips,
        vec!["10.95.0.2".parse::<std::net::IpAddr>().unwrap()]
    );

    // Off the link and not allowed: refused before anything is read, and counted.
    let stranger = n.in_ns(&s, || ask_exchange("10.96.0.8", "10.95.0.2"));
    assert!(stranger.is_none(), "a stranger was told {stranger:?}");
    // Nor is it told the host's view of the mesh.
    let view = exo_discovery::wire::exchange::Ask::view("exo");
    let v = view.clone();
    let stranger = n.in_ns(&s, move || ask_at("10.96.0.8", "10.95.0.2", &v));
    assert!(stranger.is_none(), "a stranger was told {stranger:?}");
    let st = n.status(&ab);
    assert!(
        common::watch::dropped(&st, &["exchange-refused-stranger"]) >= 2,
        "{st}"
    );
    // Off the link but in a range the operator allowed: answered.
    std::thread::sleep(Duration::from_millis(1100));
    let allowed = n.in_ns(&s, || ask_exchange("10.97.0.8", "10.95.0.2"));
    assert!(
        allowed.is_some_and(|p| !p.is_empty()),
        "an allowed range is answered"
    );
    let allowed = n.in_ns(&s, move || ask_at("10.97.0.8", "10.95.0.2", &view));
    let Some(exo_discovery::wire::exchange::Reply::View(v)) = allowed else {
        panic!("an allowed range is given the view: {allowed:?}");
    };
    assert_eq!(v.announces, vec![idb]);

    // H holds 48 connections open (silent, or dripping a byte at a time), reopening each as
    // it is closed; meanwhile S asks six times.
    let stop = Stop::default();
    let hog = {
        let done = stop.0.clone();
        let ns = h.ns.clone();
        std::thread::spawn(move || {
            let fd = std::fs::File::open(format!("/var/run/netns/{ns}")).expect("netns");
            nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let mut conns: Vec<Option<std::net::TcpStream>> = (0..48).map(|_| None).collect();
            let mut opened = 0u64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                for (i, c) in conns.iter_mut().enumerate() {
                    let alive = c.as_mut().is_some_and(|s| {
                        // Half drip a byte of a never-ending frame; a closed one fails.
                        let mut b = [0u8; 1];
                        s.set_nonblocking(true).ok();
                        let gone = matches!(s.read(&mut b), Ok(0));
                        !gone && (i % 2 == 0 || s.write(&[0]).is_ok())
                    });
                    if !alive {
                        *c = std::net::TcpStream::connect_timeout(
                            &"10.95.0.2:5353".parse().unwrap(),
                            Duration::from_millis(200),
                        )
                        .ok();
                        opened += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            opened
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let (ticks, hog_start) = (common::proc::cpu_ticks(n.pid(&ab)), Instant::now());
    let mut answered = 0;
    for _ in 0..6 {
        if n.in_ns(&s, || ask_exchange("10.95.0.8", "10.95.0.2"))
            .is_some()
        {
            answered += 1;
        }
        std::thread::sleep(Duration::from_millis(1200));
    }
    drop(stop);
    let opened = hog.join().expect("hog");
    let ticks = common::proc::cpu_ticks(n.pid(&ab)) - ticks;
    eprintln!(
        "{test}: {answered} of 6 asks answered while one host opened {opened} connections in \
         {:.1} s; the agent used {ticks} CPU ticks (1/100 s) meanwhile",
        hog_start.elapsed().as_secs_f64()
    );
    assert_eq!(
        answered, 6,
        "asks answered while one host hogged the exchange"
    );
    let st = n.status(&ab);
    assert!(
        common::watch::dropped(&st, &["exchange-refused-per-ip"]) > 0,
        "{st}"
    );
}
