//! What a hostile host on the link sends, built byte by byte: complete mDNS announcements of
//! signed records from freshly minted keys, bare goodbyes, repeats of someone else's packets.
//! Sent from a socket created inside one of the test's namespaces (a socket keeps the namespace
//! it was made in), so nothing leaves the test network.

use super::network::Net;
use super::watch::is_event;
use exo_discovery::{instance, record};
use libp2p_identity::Keypair;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

/// The IPv4 mDNS group and port.
pub const GROUP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(224, 0, 0, 251), 5353);

const PTR: u16 = 12;
const SRV: u16 = 33;
const TXT: u16 = 16;
const A: u16 = 1;

fn name(p: &mut Vec<u8>, n: &str) {
    for label in n.trim_end_matches('.').split('.') {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.push(0);
}

fn rr(p: &mut Vec<u8>, owner: &str, ty: u16, class: u16, ttl: u32, data: &[u8]) {
    name(p, owner);
    p.extend_from_slice(&ty.to_be_bytes());
    p.extend_from_slice(&class.to_be_bytes());
    p.extend_from_slice(&ttl.to_be_bytes());
    p.extend_from_slice(&(data.len() as u16).to_be_bytes());
    p.extend_from_slice(data);
}

fn header(answers: u16) -> Vec<u8> {
    let mut p = vec![0, 0, 0x84, 0, 0, 0];
    p.extend_from_slice(&answers.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0]);
    p
}

/// A complete unsolicited announcement (PTR, SRV, TXT, A) of `signed` under `label`, with the
/// host at `ip` listening on `port`, as an agent multicasts it.
pub fn announcement(label: &str, signed: &[u8], ip: Ipv4Addr, port: u16, ttl: u32) -> Vec<u8> {
    let full = instance::fullname(label);
    let host = format!("h{}.local.", &label[label.len() - 6..]);
    let mut p = header(4);
    let mut target = Vec::new();
    name(&mut target, &full);
    rr(&mut p, instance::SERVICE_TYPE, PTR, 1, ttl, &target);
    let mut srv = vec![0, 0, 0, 0];
    srv.extend_from_slice(&port.to_be_bytes());
    name(&mut srv, &host);
    rr(&mut p, &full, SRV, 0x8001, ttl, &srv);
    let mut txt = Vec::new();
    for (k, v) in record::to_txt(signed) {
        let mut s = k.into_bytes();
        s.push(b'=');
        s.extend_from_slice(&v);
        txt.push(s.len() as u8);
        txt.extend_from_slice(&s);
    }
    rr(&mut p, &full, TXT, 0x8001, ttl, &txt);
    rr(&mut p, &host, A, 0x8001, ttl, &ip.octets());
    p
}

/// A bare goodbye (TTL-0 PTR) for `label`: what anyone on the link can send.
pub fn goodbye(label: &str) -> Vec<u8> {
    let mut p = header(1);
    let mut target = Vec::new();
    name(&mut target, &instance::fullname(label));
    rr(&mut p, instance::SERVICE_TYPE, PTR, 1, 0, &target);
    p
}

/// A PTR naming `label` with a normal TTL: a repeat that says nothing but the name.
pub fn mention(label: &str) -> Vec<u8> {
    let mut p = header(1);
    let mut target = Vec::new();
    name(&mut target, &instance::fullname(label));
    rr(&mut p, instance::SERVICE_TYPE, PTR, 1, 120, &target);
    p
}

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

/// A UDP socket that multicasts from `ip` (an address of the namespace it is created in).
pub fn sender(ip: Ipv4Addr) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).expect("bind forger socket");
    s.set_multicast_ttl_v4(255).expect("multicast ttl");
    let sock = socket2::SockRef::from(&s);
    sock.set_multicast_if_v4(&ip).expect("multicast if");
    s
}

/// `VmHWM` (peak resident memory) of a process, in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
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
        status: n.status(&ab),
        peers: n.peers(&ab).len(),
    }
}
