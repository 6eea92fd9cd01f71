//! Just enough DNS for an mDNS link: build a PTR query, read a packet's questions and records, list
//! the instances they speak of and the signed records they carry. Pure, no I/O. Every read is
//! bounds-checked; a bad packet is an error, never a panic. The dialect of stock rust-libp2p mDNS
//! nodes is built on this in [`crate::wire::stock`].

/// The DNS-SD service type the agent publishes under.
pub const SERVICE: &str = "_p2p._udp.local";

/// PTR record type.
pub const TYPE_PTR: u16 = 12;
/// TXT record type.
pub const TYPE_TXT: u16 = 16;
/// SRV record type.
pub const TYPE_SRV: u16 = 33;
/// Largest packet the parser looks at.
pub const MAX_PACKET: usize = 9000;

/// One resource record, reduced to what the watcher uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rr {
    /// Owner name, without the trailing dot.
    pub name: String,
    /// Record type.
    pub rtype: u16,
    /// Time to live; 0 is a goodbye.
    pub ttl: u32,
    /// For PTR records, the target name.
    pub ptr: Option<String>,
    /// 0 answer, 1 authority, 2 additional.
    pub section: u8,
    /// For TXT records, the character strings.
    pub txt: Vec<Vec<u8>>,
    /// For A and AAAA records, the address.
    pub ip: Option<std::net::IpAddr>,
}

/// Why a packet could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsError {
    /// Shorter than its header or records claim.
    Truncated,
    /// A name with a pointer loop, a bad label or over 255 bytes.
    BadName,
    /// Larger than [`MAX_PACKET`].
    TooLarge,
}

/// Builds a standard (multicast, QM) query for PTR records of `name`.
pub fn ptr_query(name: &str) -> Vec<u8> {
    query(name, TYPE_PTR, false)
}

/// The TC bit of a DNS header's flags: for a query, its known answers continue in the next
/// packets (RFC 6762 §7.2).
pub const FLAG_TC: u16 = 0x0200;

/// Builds a PTR query for `name` carrying known answers (RFC 6762 §7.1): a PTR record `name` →
/// `<label>.<name>` with `ttl` for each label, in order. When they do not all fit in `max_len`
/// bytes, the query goes on in more packets of known answers only (RFC 6762 §7.2): every packet
/// but the last has the TC bit set, so that responders wait for the rest before answering.
pub fn ptr_queries_known<S: AsRef<str>>(
    name: &str,
    known: &[S],
    ttl: u32,
    max_len: usize,
) -> Vec<Vec<u8>> {
    let mut packets = vec![ptr_query(name)];
    let mut listed = 0u16;
    let mut fresh = false;
    for label in known {
        let b = label.as_ref().as_bytes();
        if b.is_empty() || b.len() > 63 {
            continue;
        }
        // Owner: a pointer to `name` at offset 12 (the question's, or in a packet of known
        // answers only, the first record's owner); rdata: the label, then the same.
        let rdlen = 1 + b.len() + 2;
        let p = packets.last_mut().expect("one packet at least");
        if p.len() + 2 + 10 + rdlen > max_len || listed == u16::MAX {
            p[6..8].copy_from_slice(&listed.to_be_bytes());
            p[2] |= (FLAG_TC >> 8) as u8;
            let mut next = vec![0; 12];
            write_name(&mut next, name);
            packets.push(next);
            listed = 0;
            fresh = true;
        }
        let p = packets.last_mut().expect("one packet at least");
        if !std::mem::take(&mut fresh) {
            p.extend_from_slice(&[0xc0, 12]);
        }
        p.extend_from_slice(&TYPE_PTR.to_be_bytes());
        p.extend_from_slice(&1u16.to_be_bytes());
        p.extend_from_slice(&ttl.to_be_bytes());
        p.extend_from_slice(&(rdlen as u16).to_be_bytes());
        p.push(b.len() as u8);
        p.extend_from_slice(b);
        p.extend_from_slice(&[0xc0, 12]);
        listed += 1;
    }
    let p = packets.last_mut().expect("one packet at least");
    p[6..8].copy_from_slice(&listed.to_be_bytes());
    packets
}

/// Whether a DNS packet has the TC bit set (see [`FLAG_TC`]).
pub fn is_truncated(packet: &[u8]) -> bool {
    packet.get(2).is_some_and(|f| u16::from(*f) << 8 & FLAG_TC != 0)
}

/// Builds a one-question query for `name` and type `qtype`; `unicast` sets the QU bit (RFC 6762
/// §5.4: answer me by unicast).
pub fn query(name: &str, qtype: u16, unicast: bool) -> Vec<u8> {
    queries(&[name], qtype, unicast)
}

/// Builds a query with one question per name, all of type `qtype` (see [`query`]).
pub fn queries<S: AsRef<str>>(names: &[S], qtype: u16, unicast: bool) -> Vec<u8> {
    let mut p = vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    p[4..6].copy_from_slice(&(names.len().min(u16::MAX as usize) as u16).to_be_bytes());
    let class: u16 = if unicast { 0x8001 } else { 1 };
    for name in names {
        write_name(&mut p, name.as_ref());
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&class.to_be_bytes());
    }
    p
}

/// The instance label of a name under [`SERVICE`] (`<label>._p2p._udp.local`, any case, with or
/// without the trailing dot), if it is one.
pub fn instance_label(name: &str) -> Option<&str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let n = name.len().checked_sub(SERVICE.len() + 1)?;
    // `get`, not indexing: the cut may fall inside a character of a name a sender chose.
    let (label, rest) = (name.get(..n)?, name.get(n..)?);
    (rest.starts_with('.') && rest[1..].eq_ignore_ascii_case(SERVICE) && !label.is_empty())
        .then_some(label)
}

/// Instance labels a query asks about by name (at most `max`), from its questions (see
/// [`questions`]): what a node's presence query names.
pub fn instances_asked(qs: &[(String, u16)], max: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (name, _) in qs {
        if out.len() >= max {
            break;
        }
        if let Some(l) = instance_label(name) {
            if !out.iter().any(|o| o == l) {
                out.push(l.to_owned());
            }
        }
    }
    out
}

/// Whether a query's first question asks for a unicast answer (the QU bit, RFC 6762 §5.4): how a
/// node's presence query (QU) is told from another agent's re-query for a record it missed (QM).
pub fn wants_unicast(packet: &[u8]) -> bool {
    let Ok((_, next)) = read_name(packet, 12) else {
        return false;
    };
    packet.get(next + 2).is_some_and(|b| b & 0x80 != 0)
}

/// A complete multicast answer for one instance (RFC 6763: PTR, then SRV, TXT and the host's
/// A/AAAA records, all in the answer section, unique records with the cache-flush bit), as mdns-sd
/// announces it: `label` under [`SERVICE`], its host `host` listening on `port`, TXT `txt`, the
/// host's addresses `ips`, every record with `ttl`.
pub fn instance_answer(
    label: &str,
    host: &str,
    port: u16,
    txt: &[(String, Vec<u8>)],
    ips: &[std::net::IpAddr],
    ttl: u32,
) -> Vec<u8> {
    const FLUSH: u16 = 0x8001;
    let full = format!("{label}.{SERVICE}");
    let mut p = vec![0, 0, 0x84, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let count = 3 + ips.len().min(usize::from(u16::MAX) - 3);
    p[6..8].copy_from_slice(&(count as u16).to_be_bytes());
    let rr = |p: &mut Vec<u8>, owner: &str, rtype: u16, class: u16, data: &[u8]| {
        write_name(p, owner);
        p.extend_from_slice(&rtype.to_be_bytes());
        p.extend_from_slice(&class.to_be_bytes());
        p.extend_from_slice(&ttl.to_be_bytes());
        p.extend_from_slice(&(data.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
        p.extend_from_slice(data);
    };
    let mut target = Vec::new();
    write_name(&mut target, &full);
    rr(&mut p, SERVICE, TYPE_PTR, 1, &target);
    let mut srv = vec![0, 0, 0, 0];
    srv.extend_from_slice(&port.to_be_bytes());
    write_name(&mut srv, host);
    rr(&mut p, &full, TYPE_SRV, FLUSH, &srv);
    let mut data = Vec::new();
    for (k, v) in txt {
        let n = (k.len() + 1 + v.len()).min(255);
        data.push(n as u8);
        data.extend(k.bytes().chain([b'=']).chain(v.iter().copied()).take(n));
    }
    rr(&mut p, &full, TYPE_TXT, FLUSH, &data);
    for ip in ips.iter().take(count - 3) {
        match ip {
            std::net::IpAddr::V4(v4) => rr(&mut p, host, 1, FLUSH, &v4.octets()),
            std::net::IpAddr::V6(v6) => rr(&mut p, host, 28, FLUSH, &v6.octets()),
        }
    }
    p
}

/// Appends `name` as uncompressed labels (each cut to 63 bytes) ending with the root label.
pub(crate) fn write_name(p: &mut Vec<u8>, name: &str) {
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        let b = &label.as_bytes()[..label.len().min(63)];
        p.push(b.len() as u8);
        p.extend_from_slice(b);
    }
    p.push(0);
}

/// Whether the packet is a response (QR bit set).
pub fn is_response(packet: &[u8]) -> bool {
    packet.len() >= 12 && packet[2] & 0x80 != 0
}

/// The questions of a packet: (name, type).
pub fn questions(packet: &[u8]) -> Result<Vec<(String, u16)>, DnsError> {
    if packet.len() > MAX_PACKET {
        return Err(DnsError::TooLarge);
    }
    let qd = packet
        .get(4..6)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or(DnsError::Truncated)?;
    let mut pos = 12;
    let mut out = Vec::new();
    for _ in 0..qd {
        let (name, next) = read_name(packet, pos)?;
        let t = packet.get(next..next + 2).ok_or(DnsError::Truncated)?;
        out.push((name, u16::from_be_bytes([t[0], t[1]])));
        pos = next + 4;
    }
    Ok(out)
}

/// All resource records (answers, authority, additional) of a packet.
pub fn records(packet: &[u8]) -> Result<Vec<Rr>, DnsError> {
    if packet.len() > MAX_PACKET {
        return Err(DnsError::TooLarge);
    }
    let qd = u16_at(packet, 4)? as usize;
    let an = u16_at(packet, 6)? as usize;
    let ns = u16_at(packet, 8)? as usize;
    let rr_count = an + ns + u16_at(packet, 10)? as usize;
    let mut pos = 12;
    for _ in 0..qd {
        let (_, next) = read_name(packet, pos)?;
        pos = next + 4;
        if pos > packet.len() {
            return Err(DnsError::Truncated);
        }
    }
    let mut out = Vec::new();
    for i in 0..rr_count {
        let section = if i < an {
            0
        } else if i < an + ns {
            1
        } else {
            2
        };
        let (rr, end) = read_rr(packet, pos, section)?;
        out.push(rr);
        pos = end;
    }
    Ok(out)
}

/// The big-endian `u16` at `i`.
fn u16_at(packet: &[u8], i: usize) -> Result<u16, DnsError> {
    packet
        .get(i..i + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or(DnsError::Truncated)
}

/// Reads the resource record at `pos`, which belongs to `section`; returns it and the position
/// after it.
fn read_rr(packet: &[u8], pos: usize, section: u8) -> Result<(Rr, usize), DnsError> {
    let (name, next) = read_name(packet, pos)?;
    let rtype = u16_at(packet, next)?;
    let ttl_bytes = packet.get(next + 4..next + 8).ok_or(DnsError::Truncated)?;
    let ttl = u32::from_be_bytes([ttl_bytes[0], ttl_bytes[1], ttl_bytes[2], ttl_bytes[3]]);
    let rdlen = u16_at(packet, next + 8)? as usize;
    let rdata = next + 10;
    let end = rdata + rdlen;
    if end > packet.len() {
        return Err(DnsError::Truncated);
    }
    let ptr = if rtype == TYPE_PTR {
        Some(read_name(packet, rdata)?.0)
    } else {
        None
    };
    let txt = if rtype == TYPE_TXT {
        read_txt(packet, rdata, end)?
    } else {
        Vec::new()
    };
    let ip = read_ip(rtype, &packet[rdata..end]);
    let rr = Rr {
        name,
        rtype,
        ttl,
        ptr,
        section,
        txt,
        ip,
    };
    Ok((rr, end))
}

/// The character strings of TXT data from `at` to `end` (at most the packet's length).
fn read_txt(packet: &[u8], mut at: usize, end: usize) -> Result<Vec<Vec<u8>>, DnsError> {
    let mut txt = Vec::new();
    while at < end {
        let n = packet[at] as usize;
        let s = packet.get(at + 1..at + 1 + n).ok_or(DnsError::Truncated)?;
        if at + 1 + n > end {
            return Err(DnsError::Truncated);
        }
        txt.push(s.to_vec());
        at += 1 + n;
    }
    Ok(txt)
}

/// The address of an A (type 1) or AAAA (type 28) record's data `rd`, if it has the right length.
fn read_ip(rtype: u16, rd: &[u8]) -> Option<std::net::IpAddr> {
    match (rtype, rd.len()) {
        (1, 4) => Some(std::net::IpAddr::from([rd[0], rd[1], rd[2], rd[3]])),
        (28, 16) => {
            let mut b = [0u8; 16];
            b.copy_from_slice(rd);
            Some(std::net::IpAddr::from(b))
        }
        _ => None,
    }
}

/// Reads a possibly compressed name at `pos`; returns it (dot-separated, no trailing dot) and the
/// position after it.
fn read_name(packet: &[u8], mut pos: usize) -> Result<(String, usize), DnsError> {
    // Room for an instance's full name at once (it grows past that only for longer names).
    let mut name = String::with_capacity(96);
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *packet.get(pos).ok_or(DnsError::Truncated)? as usize;
        match len {
            0 => {
                return Ok((name, end.unwrap_or(pos + 1)));
            }
            l if l & 0xc0 == 0xc0 => {
                let lo = *packet.get(pos + 1).ok_or(DnsError::Truncated)? as usize;
                end.get_or_insert(pos + 2);
                jumps += 1;
                if jumps > 32 {
                    return Err(DnsError::BadName);
                }
                pos = ((l & 0x3f) << 8) | lo;
            }
            l if l <= 63 => {
                let label = packet
                    .get(pos + 1..pos + 1 + l)
                    .ok_or(DnsError::Truncated)?;
                if !name.is_empty() {
                    name.push('.');
                }
                match std::str::from_utf8(label) {
                    Ok(text) => name.push_str(text),
                    Err(_) => name.push_str(&String::from_utf8_lossy(label)),
                }
                if name.len() > 255 {
                    return Err(DnsError::BadName);
                }
                pos += 1 + l;
            }
            _ => return Err(DnsError::BadName),
        }
    }
}

/// Instance labels under [`SERVICE`] that a packet's records name, with their TTL: the owner of
/// SRV/TXT records `<label>._p2p._udp.local` and targets of PTR records. A label heard with TTL 0
/// (goodbye) is reported with 0.
pub fn instances(records: &[Rr]) -> Vec<(String, u32)> {
    let mut out: Vec<(String, u32)> = Vec::new();
    for rr in records {
        let name = match &rr.ptr {
            Some(target) if rr.name.eq_ignore_ascii_case(SERVICE) => target,
            _ => &rr.name,
        };
        if let Some(label) = instance_label(name) {
            if !out.iter().any(|(l, _)| l == label) {
                out.push((label.to_owned(), rr.ttl));
            }
        }
    }
    out
}

/// Instance labels a packet withdraws: targets of PTR records `_p2p._udp.local` → `<label>`
/// with TTL 0 (a goodbye, RFC 6762 §10.1). Only the PTR says an instance is gone: a TTL-0 SRV,
/// TXT or address record alone withdraws one of its records, not the instance.
pub fn goodbyes(records: &[Rr]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for rr in records
        .iter()
        .filter(|r| r.rtype == TYPE_PTR && r.ttl == 0 && r.name.eq_ignore_ascii_case(SERVICE))
    {
        let Some(label) = rr.ptr.as_deref().and_then(instance_label) else {
            continue;
        };
        if !out.iter().any(|l| l == label) {
            out.push(label.to_owned());
        }
    }
    out
}

/// The signed records in a response, by instance label: each PTR `_p2p._udp.local` → `<label>`
/// with the TXT of `<label>` (anywhere in the packet) reassembled from its `r0`, `r1`, … values.
pub fn signed_records(rrs: &[Rr]) -> Vec<(String, Result<Vec<u8>, crate::wire::record::Reject>)> {
    let mut out = Vec::new();
    for ptr in rrs
        .iter()
        .filter(|r| r.rtype == TYPE_PTR && r.ttl > 0 && r.name.eq_ignore_ascii_case(SERVICE))
    {
        let Some(target) = &ptr.ptr else { continue };
        let Some(label) = instance_label(target) else {
            continue;
        };
        if out.iter().any(|(l, _)| l == label) {
            continue;
        }
        let kv: Vec<(&[u8], &[u8])> = rrs
            .iter()
            .filter(|r| r.rtype == TYPE_TXT && r.name.eq_ignore_ascii_case(target))
            .flat_map(|r| r.txt.iter())
            .map(|s| match s.iter().position(|b| *b == b'=') {
                Some(i) => (&s[..i], &s[i + 1..]),
                None => (&s[..], &s[s.len()..]),
            })
            .collect();
        let get = |key: &str| {
            kv.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key.as_bytes()))
                .map(|(_, v)| *v)
        };
        out.push((label.to_owned(), crate::wire::record::from_txt(get)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An announcement captured from mdns-sd 0.21.7 (PTR, SRV, TXT and A for one instance), with
    /// the instance label shortened.
    fn announcement() -> Vec<u8> {
        let mut p = vec![0, 0, 0x84, 0, 0, 0, 0, 3, 0, 0, 0, 0];
        // PTR _p2p._udp.local -> abc._p2p._udp.local
        write_name(&mut p, SERVICE);
        p.extend_from_slice(&[0, 12, 0, 1, 0, 0, 0x11, 0x94]);
        let target_at = p.len() + 2;
        p.extend_from_slice(&[0, 6, 3, b'a', b'b', b'c', 0xc0, 12]);
        // TXT abc._p2p._udp.local (compressed pointer to the PTR target), TTL 0 (goodbye)
        p.extend_from_slice(&[
            0xc0,
            target_at as u8,
            0,
            16,
            0x80,
            1,
            0,
            0,
            0,
            0,
            0,
            2,
            1,
            b'x',
        ]);
        // A host.local
        write_name(&mut p, "host.local");
        p.extend_from_slice(&[0, 1, 0x80, 1, 0, 0, 0, 120, 0, 4, 10, 0, 0, 1]);
        p
    }

    #[test]
    fn an_instance_answer_reads_back_as_its_instance_record_and_addresses() {
        let txt = vec![
            ("v".to_owned(), b"1".to_vec()),
            ("r0".to_owned(), vec![0, 1, 255]),
        ];
        let ips: Vec<std::net::IpAddr> =
            vec!["10.0.0.2".parse().unwrap(), "fe80::2".parse().unwrap()];
        let p = instance_answer("abc-000001", "exo-1-000001.local.", 4001, &txt, &ips, 120);
        assert!(is_response(&p));
        let rrs = records(&p).unwrap();
        assert_eq!(instances(&rrs), vec![("abc-000001".to_owned(), 120)]);
        assert!(goodbyes(&rrs).is_empty());
        // Its goodbye: the same records with TTL 0, the PTR withdrawing the instance.
        let bye = instance_answer("abc-000001", "exo-1-000001.local.", 4001, &txt, &ips, 0);
        assert_eq!(goodbyes(&records(&bye).unwrap()), vec!["abc-000001".to_owned()]);
        let got: Vec<std::net::IpAddr> = rrs.iter().filter_map(|r| r.ip).collect();
        assert_eq!(got, ips);
        let srv = rrs.iter().find(|r| r.rtype == TYPE_SRV).unwrap();
        assert_eq!(srv.name, "abc-000001._p2p._udp.local");
        let t = rrs.iter().find(|r| r.rtype == TYPE_TXT).unwrap();
        assert_eq!(
            t.txt,
            vec![b"v=1".to_vec(), vec![b'r', b'0', b'=', 0, 1, 255]]
        );
        // A presence query asks for a unicast answer; a re-query does not.
        assert!(wants_unicast(&queries(
            &["x._p2p._udp.local"],
            TYPE_TXT,
            true
        )));
        assert!(!wants_unicast(&queries(
            &["x._p2p._udp.local"],
            TYPE_TXT,
            false
        )));
        assert!(!wants_unicast(&[0; 5]));
    }

    #[test]
    fn a_name_cut_inside_a_character_is_no_instance_and_no_panic() {
        // A PTR whose target is 17 bytes of UTF-8 ("é" and 15 × "a"): cutting off the 16-byte
        // suffix would land inside the "é".
        let mut p = vec![0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        write_name(&mut p, SERVICE);
        p.extend_from_slice(&[0, 12, 0, 1, 0, 0, 0, 120]);
        let mut target = vec![17];
        target.extend_from_slice("é".as_bytes());
        target.extend_from_slice(&[b'a'; 15]);
        target.push(0);
        p.extend_from_slice(&(target.len() as u16).to_be_bytes());
        p.extend_from_slice(&target);
        let rrs = records(&p).unwrap();
        assert_eq!(rrs[0].ptr.as_deref(), Some("éaaaaaaaaaaaaaaa"));
        assert!(signed_records(&rrs).is_empty());
        assert!(instances(&rrs).is_empty());
    }

    #[test]
    fn reads_records_with_compression() {
        let rrs = records(&announcement()).unwrap();
        assert_eq!(rrs.len(), 3);
        assert_eq!(rrs[0].ptr.as_deref(), Some("abc._p2p._udp.local"));
        assert_eq!(rrs[1].name, "abc._p2p._udp.local");
        assert_eq!(rrs[1].ttl, 0);
        assert_eq!(rrs[2].name, "host.local");
        assert_eq!(rrs[2].ip, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(instances(&rrs), vec![("abc".to_string(), 4500)]);
        // A TTL-0 SRV beside a live PTR withdraws no instance.
        assert!(goodbyes(&rrs).is_empty());
    }

    #[test]
    fn a_presence_query_names_its_instance_and_nothing_else_does() {
        let q = query("abc-00002a._p2p._udp.local.", TYPE_TXT, true);
        assert_eq!(q[q.len() - 2..], [0x80, 1], "the QU bit");
        let asked = |p: &[u8]| instances_asked(&questions(p).unwrap(), 4);
        assert_eq!(asked(&q), vec!["abc-00002a".to_owned()]);
        assert!(asked(&ptr_query(SERVICE)).is_empty());
        assert!(asked(&query("x._other._udp.local", TYPE_TXT, false)).is_empty());
        assert_eq!(instance_label("A._P2P._UDP.LOCAL"), Some("A"));
        assert_eq!(instance_label("._p2p._udp.local"), None);
        assert_eq!(instance_label("é_p2p._udp.local"), None);
        assert!(questions(&[1, 2, 3]).is_err(), "garbage is no question");
    }

    #[test]
    fn known_answers_that_do_not_fit_go_on_in_truncated_packets() {
        let labels: Vec<String> = (0..100).map(|i| format!("{i:052}-{i:06x}")).collect();
        let qs = ptr_queries_known(SERVICE, &labels, 4500, 1400);
        assert!(qs.len() > 3 && qs.len() < 10, "{} packets", qs.len());
        let mut named = Vec::new();
        for (i, q) in qs.iter().enumerate() {
            assert!(q.len() <= 1400, "{} bytes", q.len());
            assert!(!is_response(q));
            assert_eq!(is_truncated(q), i + 1 < qs.len(), "TC on all but the last");
            let rrs = records(q).unwrap();
            assert!(!rrs.is_empty() && rrs.iter().all(|r| r.ttl == 4500 && r.section == 0));
            named.extend(instances(&rrs).into_iter().map(|(l, _)| l));
            // The question in the first packet only.
            let asked = questions(q).unwrap();
            assert_eq!(asked.len(), usize::from(i == 0));
        }
        assert_eq!(named, labels, "every label, once, in order");
        assert_eq!(
            questions(&qs[0]).unwrap(),
            vec![(SERVICE.to_owned(), TYPE_PTR)]
        );
        assert_eq!(
            ptr_queries_known::<&str>(SERVICE, &[], 4500, 1400),
            vec![ptr_query(SERVICE)]
        );
        let few = ptr_queries_known(SERVICE, &labels[..5], 4500, 1400);
        assert_eq!(few.len(), 1);
        assert!(!is_truncated(&few[0]));
    }

    #[test]
    fn query_parses_back() {
        let q = ptr_query("_p2p._udp.local.");
        assert!(!is_response(&q));
        assert_eq!(records(&q).unwrap(), vec![]);
        assert_eq!(&q[12..17], &[4, b'_', b'p', b'2', b'p']);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let p = announcement();
        for n in 0..p.len() {
            let _ = records(&p[..n]);
        }
        assert_eq!(records(&p[..5]), Err(DnsError::Truncated));
    }

    #[test]
    fn pointer_loops_are_refused() {
        let mut p = vec![0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        p.extend_from_slice(&[0xc0, 12]);
        assert_eq!(records(&p), Err(DnsError::BadName));
    }
}
