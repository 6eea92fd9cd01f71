//! What a hostile host on the link sends, built byte by byte: complete mDNS announcements of
//! signed records from freshly minted keys, bare goodbyes, repeats of someone else's packets.
//! Sent from a socket created inside one of the test's namespaces (a socket keeps the namespace
//! it was made in), so nothing leaves the test network.

use super::network::Net;
use super::proc::{cpu_ticks, peak_rss_kib};
use super::watch::is_event;
use exo_discovery::wire::{instance, record};
use libp2p_identity::Keypair;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use super::packets::{announcement, GROUP};

/// A signed record (namespace `exo`, listening on `/ip4/0.0.0.0/tcp/port`) of a freshly minted
/// key, announced from `ip`.
pub fn fresh_announcement(ip: Ipv4Addr, port: u16) -> Vec<u8> {
    let k = Keypair::generate_ed25519();
    let seq = 1;
    let listen = [format!("/ip4/0.0.0.0/tcp/{port}").parse().unwrap()];
    let signed = record::sign(&k, "exo", seq, &listen).unwrap();
    let label = instance::instance_label(&k.public().to_peer_id(), seq);
    announcement(&label, &signed, ip, port, 4500)
}

/// [`fresh_announcement`] by the host named `host` (`NAME.local.`).
#[allow(dead_code)]
pub fn fresh_announcement_of(host: &str, ip: Ipv4Addr, port: u16) -> Vec<u8> {
    let k = Keypair::generate_ed25519();
    let listen = [format!("/ip4/0.0.0.0/tcp/{port}").parse().unwrap()];
    let signed = record::sign(&k, "exo", 1, &listen).unwrap();
    let label = instance::instance_label(&k.public().to_peer_id(), 1);
    super::packets::announcement_of(host, &label, &signed, ip, port, 4500)
}

/// A UDP socket that multicasts from `ip` (an address of the namespace it is created in), port
/// 5353, as an mDNS responder, or a forger posing as one, sends. (From another port the agent
/// takes a packet as a stock libp2p-mdns node's, and reads no signed record nor goodbye from it.)
pub fn sender(ip: Ipv4Addr) -> UdpSocket {
    let s = UdpSocket::bind((ip, GROUP.port())).expect("bind forger socket");
    s.set_multicast_ttl_v4(255).expect("multicast ttl");
    let sock = socket2::SockRef::from(&s);
    sock.set_multicast_if_v4(&ip).expect("multicast if");
    s
}

/// Sends `packets` from `sock` to the mDNS group at `rate` a second; returns how many were sent.
pub fn send_at(sock: UdpSocket, packets: Vec<Vec<u8>>, rate: u32) -> usize {
    let start = Instant::now();
    let mut sent = 0;
    for (i, p) in packets.iter().enumerate() {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if sock.send_to(p, GROUP).is_ok() {
            sent += 1;
        }
    }
    sent
}

/// What a flood did to the agent that heard it.
pub struct Flood {
    /// Forged records offered, and sent.
    pub offered: usize,
    /// Of those, sent.
    pub sent: usize,
    /// How long the flood lasted.
    pub lasted: Duration,
    /// From the real node's announcement during the flood to its `discovered` event, if any.
    pub during: Option<Duration>,
    /// The same for a real node announced after the flood.
    pub after: Option<Duration>,
    /// The agent's peak RSS, KiB.
    pub peak_rss_kib: u64,
    /// CPU the agent used from the start of the flood to its end, in clock ticks.
    pub cpu_ticks: u64,
    /// Its `status --json` at the end.
    pub status: serde_json::Value,
    /// Peers it hands over at the end.
    pub peers: usize,
}

/// A forger floods a link with complete announcements of validly signed records from fresh
/// keys, all pointing at an open port of its own, at `rate` a second for `secs` seconds; a real
/// node announces `real_at` into the flood, and another after it. `subnet` keeps concurrent
/// tests apart.
pub fn flood(n: &mut Net, subnet: u8, rate: u32, secs: u32, real_at: Duration) -> Flood {
    const WAIT: Duration = Duration::from_secs(30);
    let l = n.link();
    let (a, b, f) = (n.host("a"), n.host("b"), n.host("f"));
    n.attach(&a, "eth0", &l, &[&format!("10.{subnet}.0.1/24")]);
    n.attach(&b, "eth0", &l, &[&format!("10.{subnet}.0.2/24")]);
    n.attach(&f, "eth0", &l, &[&format!("10.{subnet}.0.66/24")]);
    let aa = n.agent(&a, "agent-a", &[]);
    let ab = n.agent(&b, "agent-b", &[]);
    let f_ip = Ipv4Addr::new(10, subnet, 0, 66);
    // The forger's records even answer the probe: only the budget keeps them in bounds.
    let _forger_port = n.listen_on(&f, 4001);
    let packets: Vec<Vec<u8>> = (0..rate * secs)
        .map(|_| fresh_announcement(f_ip, 4001))
        .collect();
    let offered = packets.len();
    let sock = n.in_ns(&f, move || sender(f_ip));
    let mut wb = n.watch(&ab);
    let cpu_before = cpu_ticks(n.pid(&ab));
    let start = Instant::now();
    let flooding = std::thread::spawn(move || send_at(sock, packets, rate));

    std::thread::sleep(real_at);
    let _real_port = n.listen_on(&a, 4002);
    let (ka, ida) = n.keygen("a");
    let announced = Instant::now();
    let _ann = n.announce(&aa, &ka, &["/ip4/0.0.0.0/tcp/4002".into()]);
    let during = wb
        .wait_for(WAIT, |v| is_event(v, "discovered", &ida))
        .map(|(at, _)| at - announced);
    let sent = flooding.join().unwrap();
    let lasted = start.elapsed();
    let cpu_ticks = cpu_ticks(n.pid(&ab)) - cpu_before;

    let (ka2, ida2) = n.keygen("a2");
    let announced = Instant::now();
    let _ann2 = n.announce(&aa, &ka2, &["/ip4/0.0.0.0/tcp/4002".into()]);
    let after = wb
        .wait_for(WAIT, |v| is_event(v, "discovered", &ida2))
        .map(|(at, _)| at - announced);
    Flood {
        offered,
        sent,
        lasted,
        during,
        after,
        peak_rss_kib: peak_rss_kib(n.pid(&ab)),
        cpu_ticks,
        status: n.status(&ab),
        peers: n.peers(&ab).len(),
    }
}

/// A raw socket that sends IPv4 datagrams whose header the caller writes (`IP_HDRINCL`): any
/// source address, as a hostile host with raw sockets can. Made inside the namespace it is called
/// in.
pub fn raw_sender() -> socket2::Socket {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::UDP)).expect("raw socket (root)");
    s.set_header_included_v4(true).expect("IP_HDRINCL");
    s
}

/// A UDP datagram from `from` to `to` carrying `payload`, with its IPv4 header (TTL 255, no UDP
/// checksum), for [`raw_sender`].
pub fn spoofed(from: SocketAddrV4, to: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let total = 20 + udp_len;
    let mut p = Vec::with_capacity(total);
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 255, 17, 0, 0]);
    p.extend_from_slice(&from.ip().octets());
    p.extend_from_slice(&to.ip().octets());
    let mut sum: u32 = p
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p.extend_from_slice(&from.port().to_be_bytes());
    p.extend_from_slice(&to.port().to_be_bytes());
    p.extend_from_slice(&(udp_len as u16).to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

/// Sends `datagram` (from [`spoofed`]) on `sock` to its destination `to`.
pub fn send_spoofed(sock: &socket2::Socket, to: SocketAddrV4, datagram: &[u8]) -> bool {
    sock.send_to(datagram, &std::net::SocketAddr::V4(to).into())
        .is_ok()
}
