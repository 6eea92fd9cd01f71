//! Reflection: a one-shot mDNS query (sent from a port other than 5353, a "legacy unicast" query,
//! RFC 6762 §6.7) is answered by unicast to its source, so a forged source address would turn
//! every agent on the link into a reflector aimed at that address. The agent's mdns-sd (patched,
//! `vendor/mdns-sd/PATCHES.md`) answers it only when the source is on the link (RFC 6762 §11).
//!
//! Host A runs an agent announcing a node; host X, on the same link, asks from an ephemeral port,
//! once from its on-link address (answered by unicast, as before) and once from an address on
//! another subnet. X really holds that address, and A has a route to its subnet through X, so an
//! answer would be delivered: to A this is exactly a forged off-link source. What A sends to that
//! subnet is counted by nftables in A's output chain. Both families: IPv4 (10.198.0.66/32 beside
//! 10.98.0.66/24) and IPv6 (fd98::66/128 beside X's link-local address).
//!
//! Needs root (network namespaces) and nftables; without them it prints one line and skips.

// Linux only: it runs the agent in Linux network namespaces (`tests/common/network.rs`).
#![cfg(target_os = "linux")]

mod common;

use common::network::{net, Host, Net};
use common::tools::have_tool;
use exo_discovery::wire::dns;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// One-shot queries sent from the off-link address, per family.
const OFF_LINK_QUERIES: usize = 20;

/// A UDP socket in `host` bound to `ip` on an ephemeral port, multicasting on `ifname`.
fn querier(n: &Net, host: &Host, ip: IpAddr, ifname: &'static str) -> UdpSocket {
    n.in_ns(host, move || {
        let index = nix::net::if_::if_nametoindex(ifname).expect("interface index");
        let bind = match ip {
            IpAddr::V4(_) => SocketAddr::new(ip, 0),
            IpAddr::V6(v6) => {
                let scope = if v6.is_unicast_link_local() { index } else { 0 };
                SocketAddr::V6(SocketAddrV6::new(v6, 0, 0, scope))
            }
        };
        let s = UdpSocket::bind(bind).expect("bind querier");
        let sock = socket2::SockRef::from(&s);
        match ip {
            IpAddr::V4(v4) => {
                sock.set_multicast_if_v4(&v4).expect("multicast if");
                sock.set_multicast_ttl_v4(255).expect("multicast ttl");
            }
            IpAddr::V6(_) => {
                sock.set_multicast_if_v6(index).expect("multicast if");
                sock.set_multicast_hops_v6(255).expect("multicast hops");
            }
        }
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("read timeout");
        assert_ne!(s.local_addr().expect("local addr").port(), 5353);
        s
    })
}

/// The mDNS group of the family of `ip`.
fn group(ip: IpAddr) -> SocketAddr {
    match ip {
        IpAddr::V4(_) => SocketAddr::new(Ipv4Addr::new(224, 0, 0, 251).into(), 5353),
        IpAddr::V6(_) => {
            SocketAddr::new(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xfb).into(), 5353)
        }
    }
}

/// A one-shot question for `_p2p._udp.local` PTR.
fn query() -> Vec<u8> {
    dns::ptr_query(dns::SERVICE)
}

/// Whether `packet` is an answer naming an instance of `_p2p._udp.local`.
fn names_an_instance(packet: &[u8]) -> bool {
    dns::is_response(packet)
        && dns::records(packet).is_ok_and(|rrs| !dns::instances(&rrs).is_empty())
}

/// Everything `sock` receives within `d`: (sender, packet).
fn received(sock: &UdpSocket, d: Duration) -> Vec<(SocketAddr, Vec<u8>)> {
    let deadline = Instant::now() + d;
    let mut got = Vec::new();
    let mut buf = [0u8; 9000];
    while Instant::now() < deadline {
        if let Ok((len, from)) = sock.recv_from(&mut buf) {
            got.push((from, buf[..len].to_vec()));
        }
    }
    got
}

/// Asks from `sock` until an answer naming an instance arrives (or `WAIT` passes); returns it.
fn ask_until_answered(sock: &UdpSocket) -> Option<(SocketAddr, Vec<u8>)> {
    let to = group(sock.local_addr().expect("local addr").ip());
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        sock.send_to(&query(), to).expect("send query");
        if let Some(hit) = received(sock, Duration::from_millis(500))
            .into_iter()
            .find(|(_, p)| names_an_instance(p))
        {
            return Some(hit);
        }
    }
    None
}

#[test]
fn a_one_shot_query_is_answered_by_unicast_on_the_link_and_never_off_it() {
    let test = "a_one_shot_query_is_answered_by_unicast_on_the_link_and_never_off_it";
    if !have_tool(test, "nft", "nft (nftables)") {
        return;
    }
    let Some(mut n) = net(test) else {
        return;
    };
    let l = n.link();
    let a = n.host("a");
    let x = n.host("x");
    n.attach(&a, "eth0", &l, &["10.98.0.1/24"]);
    n.attach(
        &x,
        "eth0",
        &l,
        &["10.98.0.66/24", "10.198.0.66/32", "fd98::66/128"],
    );
    let x_link_local: Ipv6Addr = n.link_local(&x, "eth0").parse().expect("link-local");
    // A can reach X's other addresses through X: an answer sent there would arrive.
    n.ip_in(&a, &["route", "add", "10.198.0.0/24", "via", "10.98.0.66"]);
    n.ip_in(
        &a,
        &[
            "-6",
            "route",
            "add",
            "fd98::/64",
            "via",
            &x_link_local.to_string(),
            "dev",
            "eth0",
        ],
    );
    // Everything A sends from port 5353 to X: to its on-link addresses, and off the link.
    n.nft(
        &a.ns,
        &[
            "add table inet reflect",
            "add counter inet reflect on_link_v4",
            "add counter inet reflect on_link_v6",
            "add counter inet reflect off_link_v4",
            "add counter inet reflect off_link_v6",
            "add chain inet reflect out { type filter hook output priority 0 ; }",
            "add rule inet reflect out ip daddr 10.98.0.66 udp sport 5353 counter name on_link_v4",
            &format!(
                "add rule inet reflect out ip6 daddr {x_link_local} udp sport 5353 counter name on_link_v6"
            ),
            "add rule inet reflect out ip daddr 10.198.0.0/24 udp sport 5353 counter name off_link_v4",
            "add rule inet reflect out ip6 daddr fd98::/64 udp sport 5353 counter name off_link_v6",
        ],
    );
    let aa = n.agent(&a, "agent-a", &[]);
    let _port = n.listen_on(&a, 4001);
    let (ka, _) = n.keygen("a");
    let _ann = n.announce(&aa, &ka, &["/ip4/0.0.0.0/tcp/4001".into()]);

    for (family, on_link, off_link) in [
        (
            "v4",
            IpAddr::V4(Ipv4Addr::new(10, 98, 0, 66)),
            IpAddr::V4(Ipv4Addr::new(10, 198, 0, 66)),
        ),
        (
            "v6",
            IpAddr::V6(x_link_local),
            IpAddr::V6("fd98::66".parse().unwrap()),
        ),
    ] {
        // (a) From X's on-link address: answered by unicast, from A's port 5353.
        let sock = querier(&n, &x, on_link, "eth0");
        let (from, answer) = ask_until_answered(&sock)
            .unwrap_or_else(|| panic!("{family}: the on-link one-shot query was not answered"));
        assert_eq!(from.port(), 5353, "{family}: answered from {from}");
        let answered = n.nft_counter(&a, "reflect", &format!("on_link_{family}"));
        assert!(
            answered.0 >= 1,
            "{family}: the on-link answer was not counted"
        );

        // (b) From X's off-link address: nothing comes back, nothing is sent there.
        let sock = querier(&n, &x, off_link, "eth0");
        let to = group(off_link);
        for _ in 0..OFF_LINK_QUERIES {
            sock.send_to(&query(), to).expect("send query");
            std::thread::sleep(Duration::from_millis(50));
        }
        let got = received(&sock, Duration::from_secs(2));
        let sent = n.nft_counter(&a, "reflect", &format!("off_link_{family}"));
        println!(
            "{family}: one-shot query ({} bytes) from on-link {on_link} answered by unicast \
             ({} bytes; {} answer(s), {} bytes in all counted to it); {OFF_LINK_QUERIES} from \
             off-link {off_link}: {} packet(s), {} bytes sent there, {} received",
            query().len(),
            answer.len(),
            answered.0,
            answered.1,
            sent.0,
            sent.1,
            got.len()
        );
        assert_eq!(
            sent,
            (0, 0),
            "{family}: A answered a query from off-link {off_link}"
        );
        assert!(
            got.is_empty(),
            "{family}: off-link {off_link} received {} packet(s)",
            got.len()
        );
    }
}
