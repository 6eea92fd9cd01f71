//! mDNS packets built byte by byte (pure: no I/O, no test network): complete announcements of
//! signed records, bare goodbyes, bare mentions. Shared by the namespace tests (`forge`) and the
//! simulator.

use exo_discovery::wire::{instance, record};
use std::net::{Ipv4Addr, SocketAddrV4};

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
    let host = format!("h{}.local.", &label[label.len() - 6..]);
    announcement_of(&host, label, signed, ip, port, ttl)
}

/// [`announcement`] with the host name `host` (`NAME.local.`) in its SRV and A records: a host
/// that announces several records names itself the same in all.
pub fn announcement_of(
    host: &str,
    label: &str,
    signed: &[u8],
    ip: Ipv4Addr,
    port: u16,
    ttl: u32,
) -> Vec<u8> {
    let full = instance::fullname(label);
    let mut p = header(4);
    let mut target = Vec::new();
    name(&mut target, &full);
    rr(&mut p, instance::SERVICE_TYPE, PTR, 1, ttl, &target);
    let mut srv = vec![0, 0, 0, 0];
    srv.extend_from_slice(&port.to_be_bytes());
    name(&mut srv, host);
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
    rr(&mut p, host, A, 0x8001, ttl, &ip.octets());
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
