//! The mdns-sd engine, one daemon per interface (does I/O: each daemon owns a thread and sockets).
//!
//! One daemon per interface, with every interface disabled but its own, and registrations carrying
//! only that interface's addresses: each link then hears exactly the addresses that work on it
//! (a single daemon announces every interface's link-local address on every link).

use crate::iface::Iface;
use crate::mcast::Family;
use libp2p_identity::PeerId;
use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo, TxtProperty};
use std::net::IpAddr;
use std::time::Duration;

/// The DNS-SD service type, fully qualified.
pub const SERVICE_TYPE: &str = "_p2p._udp.local.";

/// The instance label of `peer`'s record with sequence number `seq`: `<peer-id>-<tag>`, where
/// the tag is the low 24 bits of `seq` in hex.
///
/// Each record gets its own instance name, so the goodbye of a node's previous record (which
/// mdns-sd repeats 120 ms later) can never remove the record of the node that replaced it, and the
/// PTR of the new record is never rate-limited as a repeat of the old one.
pub fn instance_label(peer: &PeerId, seq: u64) -> String {
    format!("{}-{:06x}", peer.to_base58(), seq & 0xff_ffff)
}

/// The instance's full name.
pub fn fullname(label: &str) -> String {
    format!("{label}.{SERVICE_TYPE}")
}

/// The peer an instance full name (`<peer-id>-<tag>._p2p._udp.local.`) or bare label names, and
/// the label itself.
pub fn parse_instance(name: &str) -> Option<(PeerId, &str)> {
    let label = name
        .strip_suffix(SERVICE_TYPE)
        .map(|l| l.trim_end_matches('.'))
        .unwrap_or(name);
    let (peer, _tag) = label.split_once('-')?;
    Some((peer.parse().ok()?, label))
}

/// Verifies a signed record published as instance `label` of `peer`: the record must verify in
/// `namespace`, be `peer`'s, and be the record that instance name stands for (its seq's tag).
pub fn verify_instance(
    signed: Result<Vec<u8>, crate::record::Reject>,
    namespace: &str,
    peer: &PeerId,
    label: &str,
) -> Result<crate::record::VerifiedRecord, crate::record::Reject> {
    let rec = crate::record::verify(&signed?, namespace)?;
    if rec.peer_id == *peer && instance_label(peer, rec.seq) == label {
        Ok(rec)
    } else {
        Err(crate::record::Reject::PeerIdMismatch)
    }
}

/// Host name registered for an instance: unique per node and record, lower-case. Per record, like
/// the instance name, so the goodbye of a replaced record never takes the new one's addresses.
pub fn host_name(peer: &PeerId, label: &str) -> String {
    let bytes = peer.to_bytes();
    let tail = &bytes[bytes.len().saturating_sub(8)..];
    let hex: String = tail.iter().map(|b| format!("{b:02x}")).collect();
    let tag = label
        .rsplit('-')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    format!("exo-{hex}-{tag}.local.")
}

/// What to announce for one node.
#[derive(Clone, Debug)]
pub struct Announcement {
    /// The node.
    pub peer: PeerId,
    /// Its instance label ([`instance_label`]).
    pub label: String,
    /// The signed record split into TXT values.
    pub txt: Vec<(String, Vec<u8>)>,
    /// SRV port (the first TCP port of the record), for DNS-SD browsers.
    pub port: u16,
}

/// The mdns-sd daemon of one interface.
pub struct LinkDaemon {
    daemon: ServiceDaemon,
    families: Vec<Family>,
    index: u32,
}

impl LinkDaemon {
    /// Starts a daemon that speaks only on `iface`, for `families`, and browses `_p2p._udp`.
    pub fn start(
        iface: &Iface,
        families: &[Family],
    ) -> Result<(Self, mdns_sd::Receiver<ServiceEvent>), mdns_sd::Error> {
        let daemon = ServiceDaemon::new()?;
        daemon.disable_interface(IfKind::All)?;
        daemon.disable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6])?;
        let mut link = LinkDaemon {
            daemon,
            families: Vec::new(),
            index: iface.index,
        };
        link.set_families(families)?;
        let events = link.daemon.browse(SERVICE_TYPE)?;
        // A round trip through the daemon thread: once it answers, its sockets exist.
        if let Ok(rx) = link.daemon.status() {
            let _ = rx.recv_timeout(Duration::from_secs(1));
        }
        Ok((link, events))
    }

    /// Enables exactly `families` on the interface.
    pub fn set_families(&mut self, families: &[Family]) -> Result<(), mdns_sd::Error> {
        for f in [Family::V4, Family::V6] {
            let kind = match f {
                Family::V4 => IfKind::IndexV4(self.index),
                Family::V6 => IfKind::IndexV6(self.index),
            };
            match (self.families.contains(&f), families.contains(&f)) {
                (false, true) => self.daemon.enable_interface(kind)?,
                (true, false) => self.daemon.disable_interface(kind)?,
                _ => {}
            }
        }
        self.families = families.to_vec();
        Ok(())
    }

    /// The families enabled now.
    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// Announces (or re-announces) `a` with the interface's addresses of the enabled families.
    pub fn register(&self, a: &Announcement, iface: &Iface) -> Result<(), mdns_sd::Error> {
        let mut ips: Vec<IpAddr> = Vec::new();
        if self.families.contains(&Family::V4) {
            ips.extend(iface.v4.iter().map(|a| IpAddr::V4(*a)));
        }
        if self.families.contains(&Family::V6) {
            ips.extend(iface.v6.iter().map(|a| IpAddr::V6(*a)));
        }
        let txt: Vec<TxtProperty> = a
            .txt
            .iter()
            .map(|(k, v)| TxtProperty::from((k.as_str(), v.as_slice())))
            .collect();
        let mut info = ServiceInfo::new(
            SERVICE_TYPE,
            &a.label,
            &host_name(&a.peer, &a.label),
            &ips[..],
            a.port,
            txt,
        )?;
        info.set_requires_probe(false);
        self.daemon.register(info)
    }

    /// Withdraws an instance (sends a goodbye).
    pub fn unregister(&self, label: &str) {
        let _ = self.daemon.unregister(&fullname(label));
    }

    /// Sends goodbyes for everything registered and stops the daemon, waiting at most `wait`.
    pub fn shutdown(self, wait: Duration) {
        if let Ok(rx) = self.daemon.shutdown() {
            let _ = rx.recv_timeout(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names_round_trip_and_fit_a_label() {
        let p = libp2p_identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        let label = instance_label(&p, 0x1234_5678_9abc);
        assert!(label.len() <= 63, "{label}");
        assert!(label.ends_with("-789abc"));
        assert_eq!(parse_instance(&fullname(&label)), Some((p, label.as_str())));
        assert_eq!(parse_instance(&label), Some((p, label.as_str())));
        assert_eq!(parse_instance("random-label._p2p._udp.local."), None);
        assert_eq!(parse_instance(&p.to_base58()), None);
    }

    #[test]
    fn a_record_must_match_the_instance_it_is_published_under() {
        use crate::record::{sign, Reject};
        let k = libp2p_identity::Keypair::generate_ed25519();
        let p = k.public().to_peer_id();
        let signed = sign(&k, "exo", 7, &[]).unwrap();
        let ok = verify_instance(Ok(signed.clone()), "exo", &p, &instance_label(&p, 7));
        assert_eq!(ok.unwrap().seq, 7);
        // Another seq's name (an old instance replaying a new record, or the reverse).
        assert_eq!(
            verify_instance(Ok(signed.clone()), "exo", &p, &instance_label(&p, 8)),
            Err(Reject::PeerIdMismatch)
        );
        // Another peer's name.
        let other = libp2p_identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        assert_eq!(
            verify_instance(
                Ok(signed.clone()),
                "exo",
                &other,
                &instance_label(&other, 7)
            ),
            Err(Reject::PeerIdMismatch)
        );
        assert_eq!(
            verify_instance(Ok(signed), "lab", &p, &instance_label(&p, 7)),
            Err(Reject::Namespace)
        );
        assert_eq!(
            verify_instance(Err(Reject::Malformed), "exo", &p, "x"),
            Err(Reject::Malformed)
        );
    }
}
