//! The body of the aimed bench, Linux only: see `../aimed.rs`.

#[path = "../../tests/common/mod.rs"]
mod common;

use common::forge::{fresh_announcement, raw_sender, send_at, send_spoofed, sender, spoofed};
use common::network::{Host, Net};
use common::packets::GROUP;
use exo_discovery::wire::{dns, instance};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const AGENTS: usize = 3;

/// What the agents' hosts sent, summed: to the forged subnet, to the mDNS group, and by unicast
/// from port 5353 to X's on-link address.
#[derive(Clone, Copy, Debug, Default)]
struct Sent {
    off_link: u64,
    group: u64,
    to_x: u64,
}

fn sent(n: &Net, hosts: &[Host]) -> Sent {
    let mut s = Sent::default();
    for h in hosts {
        s.off_link += n.nft_counter(h, "aimed", "off_link").0;
        s.group += n.nft_counter(h, "aimed", "group").0;
        s.to_x += n.nft_counter(h, "aimed", "to_x").0;
    }
    s
}

fn since(a: Sent, b: Sent) -> Sent {
    Sent {
        off_link: a.off_link - b.off_link,
        group: a.group - b.group,
        to_x: a.to_x - b.to_x,
    }
}

/// A UDP socket in X bound to `ip:port`, multicasting on X's link.
fn socket_in(n: &Net, x: &Host, ip: Ipv4Addr, port: u16) -> UdpSocket {
    n.in_ns(x, move || {
        let s = UdpSocket::bind((ip, port)).expect("bind");
        let r = socket2::SockRef::from(&s);
        r.set_multicast_if_v4(&Ipv4Addr::new(10, 95, 0, 66))
            .expect("multicast if");
        r.set_multicast_ttl_v4(255).expect("ttl");
        s
    })
}

/// Makes one forged packet of a case.
type Forge = Box<dyn Fn() -> Vec<u8>>;

fn made_up() -> String {
    let k = libp2p_identity::Keypair::generate_ed25519();
    instance::fullname(&instance::instance_label(&k.public().to_peer_id(), 1))
}

pub fn main() {
    let Some(mut n) = common::network::net("bench-aimed") else {
        return;
    };
    let forged: usize = common::env_or("EXO_AIMED_FORGED", 100);
    let flood_secs: u64 = common::env_or("EXO_AIMED_SECS", 60);
    let l = n.link();
    let x = n.host("x");
    let v = n.host("v");
    n.attach(&x, "eth0", &l, &["10.95.0.66/24", "10.195.0.66/32"]);
    n.attach(&v, "eth0", &l, &["10.95.0.22/24"]);
    n.ip_in(&x, &["route", "add", "224.0.0.0/4", "dev", "eth0"]);
    let mut hosts = Vec::new();
    let mut agents = Vec::new();
    let mut labels = Vec::new();
    let mut anns = Vec::new();
    let mut listeners = Vec::new();
    for i in 0..AGENTS {
        let h = n.host(&format!("a{i}"));
        n.attach(&h, "eth0", &l, &[&format!("10.95.0.{}/24", i + 1)]);
        n.ip_in(&h, &["route", "add", "10.195.0.0/24", "via", "10.95.0.66"]);
        n.nft(
            &h.ns,
            &[
                "add table inet aimed",
                "add counter inet aimed off_link",
                "add counter inet aimed group",
                "add counter inet aimed to_x",
                "add chain inet aimed out { type filter hook output priority 0 ; }",
                "add rule inet aimed out ip daddr 10.195.0.0/24 counter name off_link",
                "add rule inet aimed out ip daddr 224.0.0.251 udp dport 5353 counter name group",
                "add rule inet aimed out ip daddr 10.95.0.66 udp sport 5353 counter name to_x",
            ],
        );
        let a = n.agent(&h, &format!("agent-{i}"), &[]);
        listeners.push(n.listen_on(&h, 4001));
        let (k, id) = n.keygen(&format!("k{i}"));
        anns.push(n.announce(&a, &k, &["/ip4/0.0.0.0/tcp/4001".into()]));
        agents.push(a);
        labels.push(id);
        hosts.push(h);
    }
    // The first agent's own instance, as its peers list it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let own = loop {
        let peers = n.peers(&agents[1]);
        if let Some(p) = peers.iter().find(|p| p["peer_id"] == *labels[0]) {
            let seq = p["seq"].as_u64().unwrap_or(0);
            let peer: libp2p_identity::PeerId = labels[0].parse().expect("peer id");
            break instance::fullname(&instance::instance_label(&peer, seq));
        }
        assert!(
            Instant::now() < deadline,
            "the agents never found each other"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // Let the start-up traffic settle, then measure what a quiet window costs.
    std::thread::sleep(Duration::from_secs(20));
    let window = Duration::from_millis(50) * forged as u32 + Duration::from_secs(3);
    let b0 = sent(&n, &hosts);
    std::thread::sleep(window);
    let quiet = since(sent(&n, &hosts), b0);
    println!(
        "{AGENTS} agents, {forged} forged packets per case at 20 a second; a quiet window of \
         {:.1} s: {} packets to the group",
        window.as_secs_f64(),
        quiet.group
    );
    println!("| forged packet | from | to the forged address | to the link's group | unicast to X on the link |");
    println!("| --- | --- | --- | --- | --- |");
    let cases: Vec<(&str, Forge, u16)> = vec![
        (
            "presence query (QU) naming 4 made-up instances",
            Box::new(|| {
                dns::queries(
                    &(0..4).map(|_| made_up()).collect::<Vec<_>>(),
                    dns::TYPE_TXT,
                    true,
                )
            }),
            5353,
        ),
        (
            "re-query (QM) for a real node's record",
            Box::new({
                let own = own.clone();
                move || dns::queries(std::slice::from_ref(&own), dns::TYPE_TXT, false)
            }),
            5353,
        ),
        (
            "one-shot query (legacy unicast) for `_p2p._udp.local`",
            Box::new(|| dns::ptr_query(dns::SERVICE)),
            40000,
        ),
    ];
    for (what, make, port) in &cases {
        for (from, ip) in [
            ("off the link", Ipv4Addr::new(10, 195, 0, 66)),
            ("on the link", Ipv4Addr::new(10, 95, 0, 66)),
        ] {
            let sock = socket_in(&n, &x, ip, *port);
            let before = sent(&n, &hosts);
            let start = Instant::now();
            for _ in 0..forged {
                let _ = sock.send_to(&make(), GROUP);
                std::thread::sleep(Duration::from_millis(50));
            }
            std::thread::sleep(window.saturating_sub(start.elapsed()));
            let d = since(sent(&n, &hosts), before);
            let per = |x: u64| x as f64 / forged as f64;
            println!(
                "| {what} | {from} | {:.2} | {:.2} ({:.2} above a quiet window) | {:.2} |",
                per(d.off_link),
                per(d.group),
                per(d.group.saturating_sub(quiet.group)),
                per(d.to_x)
            );
            // Let re-queries and rests run out before the next case.
            std::thread::sleep(Duration::from_secs(6));
        }
    }
    // Peer exchange asked from off the link: is anything read, is anything answered?
    let answered = n.in_ns(&x, move || {
        let mut answered = 0;
        for i in 0..10u8 {
            let target = std::net::SocketAddr::from(([10, 95, 0, 1 + i % AGENTS as u8], 5353));
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                .expect("socket");
            if s.bind(&std::net::SocketAddr::from(([10, 195, 0, 66], 0)).into())
                .is_err()
                || s.connect_timeout(&target.into(), Duration::from_secs(1))
                    .is_err()
            {
                continue;
            }
            let mut s: std::net::TcpStream = s.into();
            use std::io::{Read, Write};
            let ask = exo_discovery::wire::exchange::Ask::new("exo");
            let _ = s.write_all(&exo_discovery::wire::protocol::encode(&ask));
            let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
            let mut b = [0u8; 4];
            if s.read_exact(&mut b).is_ok() {
                answered += 1;
            }
        }
        answered
    });
    println!("peer exchange asked 10 times from off the link: {answered} answered");

    // Minted records naming V's port 22, from X's own address, then with V's address forged.
    let (at_v, stop) = n.count_connections(&v, 22);
    for rate in [10u32, 100] {
        let x_ip = Ipv4Addr::new(10, 95, 0, 66);
        let victim = Ipv4Addr::new(10, 95, 0, 22);
        let count = rate as usize * flood_secs as usize;
        let packets: Vec<Vec<u8>> = (0..count).map(|_| fresh_announcement(victim, 22)).collect();
        let before = at_v.load(Ordering::Relaxed);
        let sock = n.in_ns(&x, move || sender(x_ip));
        send_at(sock, packets, rate);
        std::thread::sleep(Duration::from_secs(2));
        let own = at_v.load(Ordering::Relaxed) - before;
        let packets: Vec<Vec<u8>> = (0..count)
            .map(|_| {
                spoofed(
                    SocketAddrV4::new(victim, 5353),
                    GROUP,
                    &fresh_announcement(victim, 22),
                )
            })
            .collect();
        let before = at_v.load(Ordering::Relaxed);
        let sent_spoofed = n.in_ns(&x, move || {
            let raw = raw_sender();
            let start = Instant::now();
            let mut ok = 0;
            for (i, p) in packets.iter().enumerate() {
                let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
                if let Some(w) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(w);
                }
                ok += usize::from(send_spoofed(&raw, GROUP, p));
            }
            ok
        });
        std::thread::sleep(Duration::from_secs(2));
        let forged_src = at_v.load(Ordering::Relaxed) - before;
        let per_min = |c: usize| c as f64 * 60.0 / flood_secs as f64 / AGENTS as f64;
        println!(
            "minted records naming V:22 at {rate}/s for {flood_secs} s: from X's own address, \
             {own} connects to V ({:.1} a minute per agent); with V's address forged as the \
             source ({sent_spoofed} sent), {forged_src} connects ({:.1} a minute per agent)",
            per_min(own),
            per_min(forged_src)
        );
    }
    stop.store(true, Ordering::Relaxed);
    drop(anns);
    drop(listeners);
}
