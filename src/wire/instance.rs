//! Instance naming and verification for `_p2p._udp` records (pure: no I/O).
//!
//! Each signed record is published as its own DNS-SD instance, `<peer-id>-<tag>._p2p._udp.local.`,
//! with its own host name; a record heard under an instance must be the record that name stands
//! for.

use libp2p_identity::PeerId;

/// The DNS-SD service type, fully qualified.
pub const SERVICE_TYPE: &str = "_p2p._udp.local.";

/// The instance label of `peer`'s record with sequence number `seq`: `<peer-id>-<tag>`, where
/// the tag is the low 24 bits of `seq` in hex.
///
/// Each record gets its own instance name, so the goodbye of a node's previous record (which
/// mdns-sd repeats 120 ms later) can never remove the record of the node that replaced it, and the
/// PTR of the new record is never rate-limited as a repeat of the old one.
pub fn instance_label(peer: &PeerId, seq: u64) -> String {
    // In one allocation: a label is made for every known answer of every query this host sends.
    let mut label = super::base58::peer_with_room(peer, 7);
    label.push('-');
    label.extend(seq_tag(seq).map(char::from));
    label
}

/// The tag of `seq` in an instance label: its low 24 bits in six lowercase hex digits.
fn seq_tag(seq: u64) -> [u8; 6] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    std::array::from_fn(|i| HEX[((seq >> (20 - 4 * i)) & 0xf) as usize])
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
    Some((super::base58::parse_peer(peer)?, label))
}

/// The check a record published under an instance name must pass once its signature holds: the
/// record is `peer`'s and the one its instance name stands for, so an old instance cannot replay a
/// new record, nor the reverse. `peer` and `label` are what [`parse_instance`] read from the name.
pub fn check_instance(
    rec: crate::wire::record::VerifiedRecord,
    peer: &PeerId,
    label: &str,
) -> Result<crate::wire::record::VerifiedRecord, crate::wire::record::Reject> {
    // The label's peer part decoded to `peer` (base58 has one spelling per value), so comparing the
    // peer and the tag is comparing the whole label, without encoding the peer again.
    let tag = label.split_once('-').map(|(_, t)| t);
    if rec.peer_id == *peer && tag.map(str::as_bytes) == Some(&seq_tag(rec.seq)[..]) {
        Ok(rec)
    } else {
        Err(crate::wire::record::Reject::PeerIdMismatch)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Verifies a signed record published as instance `label` of `peer`: the record must verify in
    /// `namespace`, be `peer`'s, and be the record that instance name stands for (its seq's tag).
    fn verify_instance(
        signed: Result<Vec<u8>, crate::wire::record::Reject>,
        namespace: &str,
        peer: &PeerId,
        label: &str,
    ) -> Result<crate::wire::record::VerifiedRecord, crate::wire::record::Reject> {
        check_instance(crate::wire::record::verify(&signed?, namespace)?, peer, label)
    }

    #[test]
    fn instance_names_round_trip_and_fit_a_label() {
        let p = libp2p_identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        let label = instance_label(&p, 0x1234_5678_9abc);
        assert!(label.len() <= 63, "{label}");
        assert!(label.ends_with("-789abc"));
        for seq in [0, 1, 0xa, 0xabcdef, 0x100_0000, 0x1234_5678, u64::MAX] {
            let text = format!("{}-{:06x}", p.to_base58(), seq & 0xff_ffff);
            assert_eq!(instance_label(&p, seq), text);
        }
        assert_eq!(parse_instance(&fullname(&label)), Some((p, label.as_str())));
        assert_eq!(parse_instance(&label), Some((p, label.as_str())));
        assert_eq!(parse_instance("random-label._p2p._udp.local."), None);
        assert_eq!(parse_instance(&p.to_base58()), None);
    }

    #[test]
    fn a_record_must_match_the_instance_it_is_published_under() {
        use crate::wire::record::{sign, Reject};
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
