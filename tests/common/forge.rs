//! What a hostile host on the link sends, built byte by byte: complete mDNS announcements of
//! signed records from freshly minted keys, bare goodbyes, repeats of someone else's packets.
//! Sent from a socket created inside one of the test's namespaces (a socket keeps the namespace
//! it was made in), so nothing leaves the test network.

use exo_discovery::{instance, record};
use libp2p_identity::Keypair;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};

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
