//! Signed peer records: encode, sign, decode and verify. Pure, no I/O.
//!
//! A [`Record`] says who a node is (peer ID), which cluster it belongs to (namespace), how new the
//! statement is (`seq`) and where it listens (multiaddrs, unspecified IPs allowed). The node signs
//! it with its libp2p key over a domain-separated byte string; anyone can check the result with
//! nothing but the bytes, because the envelope carries the public key and the peer ID is derived
//! from it.
//!
//! Wire form (postcard): `Envelope { record: bytes, public_key: bytes, signature: bytes }`, where
//! `record` is the postcard encoding of [`Record`], `public_key` the libp2p protobuf encoding and
//! `signature` is over [`SIGNING_CONTEXT`] followed by `record`.

use libp2p_identity::{Keypair, PeerId, PublicKey};
use multiaddr::Multiaddr;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Format version written into every record.
pub const RECORD_VERSION: u8 = 1;
/// Largest signed record (envelope) accepted or produced, in bytes. Keeps one mDNS packet below
/// the usual 1,500-byte MTU with room for the PTR, SRV and address records.
pub const MAX_SIGNED_RECORD: usize = 900;
/// Most listen addresses one record may carry.
pub const MAX_ADDRS: usize = 24;
/// Longest namespace, in bytes.
pub const MAX_NAMESPACE: usize = 64;
/// Domain separation: a signature over a record can never be mistaken for any other libp2p
/// signature.
pub const SIGNING_CONTEXT: &[u8] = b"exo-discovery/peer-record/v1\0";

/// What a node says about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Format version, [`RECORD_VERSION`].
    pub version: u8,
    /// Cluster namespace; receivers drop records of other namespaces.
    pub namespace: String,
    /// The node's peer ID, as bytes (a multihash).
    pub peer_id: Vec<u8>,
    /// Strictly increasing across restarts of one node (wall-clock microseconds at signing).
    pub seq: u64,
    /// Listen multiaddrs as bytes, without a `/p2p/` suffix.
    pub addrs: Vec<Vec<u8>>,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    record: Vec<u8>,
    public_key: Vec<u8>,
    signature: Vec<u8>,
}

/// Why a record was not accepted. Each variant is counted separately by the agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Reject {
    /// Larger than [`MAX_SIGNED_RECORD`] or carrying too many addresses.
    Oversize,
    /// Bytes that do not decode (bad postcard, bad multiaddr, bad peer ID, trailing bytes).
    Malformed,
    /// A record format version this build does not know.
    Version,
    /// The signature does not verify with the enclosed key.
    Signature,
    /// The peer ID in the record (or the instance name it was published under) is not the key's.
    PeerIdMismatch,
    /// The record belongs to another cluster namespace.
    Namespace,
    /// Older than a record already accepted from the same peer.
    Replay,
}

impl Reject {
    /// Every reason, in a stable order (for counters and status output).
    pub const ALL: [Reject; 7] = [
        Reject::Oversize,
        Reject::Malformed,
        Reject::Version,
        Reject::Signature,
        Reject::PeerIdMismatch,
        Reject::Namespace,
        Reject::Replay,
    ];

    /// Short lower-case name, used in logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::Oversize => "oversize",
            Reject::Malformed => "malformed",
            Reject::Version => "version",
            Reject::Signature => "signature",
            Reject::PeerIdMismatch => "peer-id-mismatch",
            Reject::Namespace => "namespace",
            Reject::Replay => "replay",
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Reject::Oversize => "record too large",
            Reject::Malformed => "record malformed",
            Reject::Version => "unknown record version",
            Reject::Signature => "bad signature",
            Reject::PeerIdMismatch => "peer ID does not match the signing key",
            Reject::Namespace => "wrong namespace",
            Reject::Replay => "older than a record already seen (replay)",
        };
        f.write_str(text)
    }
}

impl std::error::Error for Reject {}

/// A record whose signature, key binding and format were checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedRecord {
    /// The signer, equal to the record's peer ID.
    pub peer_id: PeerId,
    /// The record's namespace.
    pub namespace: String,
    /// The record's sequence number.
    pub seq: u64,
    /// Listen addresses as the node stated them.
    pub addrs: Vec<Multiaddr>,
    /// The signed bytes, to be forwarded unchanged (shared: whoever holds the record holds them
    /// without a copy of their own).
    pub signed: std::sync::Arc<[u8]>,
}

/// Builds and signs a record for `keypair`. `addrs` must not carry `/p2p/`; it is stripped if
/// present.
pub fn sign(
    keypair: &Keypair,
    namespace: &str,
    seq: u64,
    addrs: &[Multiaddr],
) -> Result<Vec<u8>, SignError> {
    if namespace.is_empty() || namespace.len() > MAX_NAMESPACE {
        return Err(SignError::Namespace);
    }
    if addrs.len() > MAX_ADDRS {
        return Err(SignError::TooLarge);
    }
    let record = Record {
        version: RECORD_VERSION,
        namespace: namespace.to_owned(),
        peer_id: keypair.public().to_peer_id().to_bytes(),
        seq,
        addrs: addrs.iter().map(|a| strip_p2p(a).to_vec()).collect(),
    };
    let record = postcard::to_stdvec(&record).map_err(|_| SignError::TooLarge)?;
    let mut msg = Vec::with_capacity(SIGNING_CONTEXT.len() + record.len());
    msg.extend_from_slice(SIGNING_CONTEXT);
    msg.extend_from_slice(&record);
    let signature = keypair.sign(&msg).map_err(|_| SignError::Key)?;
    let env = Envelope {
        record,
        public_key: keypair.public().encode_protobuf(),
        signature,
    };
    let out = postcard::to_stdvec(&env).map_err(|_| SignError::TooLarge)?;
    if out.len() > MAX_SIGNED_RECORD {
        return Err(SignError::TooLarge);
    }
    Ok(out)
}

/// Why a record could not be signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignError {
    /// The namespace is empty or longer than [`MAX_NAMESPACE`] bytes.
    Namespace,
    /// Too many addresses: the signed record would exceed [`MAX_SIGNED_RECORD`].
    TooLarge,
    /// The key cannot sign.
    Key,
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignError::Namespace => write!(f, "namespace must be 1 to {MAX_NAMESPACE} bytes"),
            SignError::TooLarge => write!(
                f,
                "too many addresses: a signed record holds at most {MAX_SIGNED_RECORD} bytes"
            ),
            SignError::Key => f.write_str("the key cannot sign"),
        }
    }
}

impl std::error::Error for SignError {}

/// Decodes and verifies a signed record, and checks it belongs to `namespace`.
///
/// Replays are not judged here (that needs memory of earlier records: see the peer table).
pub fn verify(signed: &[u8], namespace: &str) -> Result<VerifiedRecord, Reject> {
    let rec = verify_any_namespace(signed)?;
    if rec.namespace != namespace {
        return Err(Reject::Namespace);
    }
    Ok(rec)
}

/// Decodes and verifies a signed record without looking at its namespace.
pub fn verify_any_namespace(signed: &[u8]) -> Result<VerifiedRecord, Reject> {
    if signed.len() > MAX_SIGNED_RECORD {
        return Err(Reject::Oversize);
    }
    let env: Envelope = decode_exact(signed)?;
    let record: Record = decode_exact(&env.record)?;
    if record.version != RECORD_VERSION {
        return Err(Reject::Version);
    }
    if record.addrs.len() > MAX_ADDRS || record.namespace.len() > MAX_NAMESPACE {
        return Err(Reject::Oversize);
    }
    let key = PublicKey::try_decode_protobuf(&env.public_key).map_err(|_| Reject::Malformed)?;
    let claimed = PeerId::from_bytes(&record.peer_id).map_err(|_| Reject::Malformed)?;
    if key.to_peer_id() != claimed {
        return Err(Reject::PeerIdMismatch);
    }
    let mut msg = Vec::with_capacity(SIGNING_CONTEXT.len() + env.record.len());
    msg.extend_from_slice(SIGNING_CONTEXT);
    msg.extend_from_slice(&env.record);
    if !key.verify(&msg, &env.signature) {
        return Err(Reject::Signature);
    }
    let addrs = record
        .addrs
        .into_iter()
        .map(|b| Multiaddr::try_from(b).map_err(|_| Reject::Malformed))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(VerifiedRecord {
        peer_id: claimed,
        namespace: record.namespace,
        seq: record.seq,
        addrs,
        signed: signed.into(),
    })
}

fn decode_exact<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Reject> {
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Ok(value),
        _ => Err(Reject::Malformed),
    }
}

/// The address without a trailing `/p2p/<id>` component.
pub fn strip_p2p(addr: &Multiaddr) -> Multiaddr {
    addr.iter()
        .filter(|p| !matches!(p, multiaddr::Protocol::P2p(_)))
        .collect()
}

/// TXT keys carrying the signed record: `r0`, `r1`, … each value at most [`TXT_CHUNK`] bytes.
pub const TXT_CHUNK: usize = 240;
/// TXT key announcing the record format, `v=1`.
pub const TXT_VERSION_KEY: &str = "v";

/// Splits a signed record into TXT `(key, value)` pairs.
pub fn to_txt(signed: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![(TXT_VERSION_KEY.to_owned(), b"1".to_vec())];
    for (i, chunk) in signed.chunks(TXT_CHUNK).enumerate() {
        out.push((format!("r{i}"), chunk.to_vec()));
    }
    out
}

/// Joins the `r0`, `r1`, … TXT values back into the signed record. `get` looks a key up.
pub fn from_txt<'a>(get: impl Fn(&str) -> Option<&'a [u8]>) -> Result<Vec<u8>, Reject> {
    let mut out = Vec::new();
    for i in 0.. {
        let Some(chunk) = get(&format!("r{i}")) else {
            break;
        };
        if out.len() + chunk.len() > MAX_SIGNED_RECORD {
            return Err(Reject::Oversize);
        }
        out.extend_from_slice(chunk);
    }
    if out.is_empty() {
        return Err(Reject::Malformed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> Vec<Multiaddr> {
        vec![
            "/ip4/0.0.0.0/tcp/4001".parse().unwrap(),
            "/ip6/::/tcp/4002".parse().unwrap(),
        ]
    }

    fn envelope(signed: &[u8]) -> Envelope {
        postcard::from_bytes(signed).unwrap()
    }

    #[test]
    fn round_trip() {
        let k = Keypair::generate_ed25519();
        let signed = sign(&k, "exo", 42, &addrs()).unwrap();
        let rec = verify(&signed, "exo").unwrap();
        assert_eq!(rec.peer_id, k.public().to_peer_id());
        assert_eq!(rec.seq, 42);
        assert_eq!(rec.addrs, addrs());
        assert_eq!(*rec.signed, *signed);
        assert!(
            signed.len() < 200,
            "a two-address record is small: {}",
            signed.len()
        );
    }

    #[test]
    fn p2p_suffix_is_stripped_when_signing() {
        let k = Keypair::generate_ed25519();
        let with: Multiaddr = format!("/ip4/0.0.0.0/tcp/1/p2p/{}", k.public().to_peer_id())
            .parse()
            .unwrap();
        let rec = verify(&sign(&k, "exo", 1, &[with]).unwrap(), "exo").unwrap();
        assert_eq!(rec.addrs, vec!["/ip4/0.0.0.0/tcp/1".parse().unwrap()]);
    }

    #[test]
    fn wrong_namespace_is_rejected() {
        let k = Keypair::generate_ed25519();
        let signed = sign(&k, "exo", 1, &addrs()).unwrap();
        assert_eq!(verify(&signed, "other"), Err(Reject::Namespace));
    }

    #[test]
    fn tampered_record_fails_signature() {
        let k = Keypair::generate_ed25519();
        let signed = sign(&k, "exo", 1, &addrs()).unwrap();
        let mut env = envelope(&signed);
        let mut rec: Record = postcard::from_bytes(&env.record).unwrap();
        rec.seq += 1;
        env.record = postcard::to_stdvec(&rec).unwrap();
        let forged = postcard::to_stdvec(&env).unwrap();
        assert_eq!(verify(&forged, "exo"), Err(Reject::Signature));
    }

    #[test]
    fn flipped_signature_bit_fails() {
        let k = Keypair::generate_ed25519();
        let mut env = envelope(&sign(&k, "exo", 1, &addrs()).unwrap());
        env.signature[0] ^= 1;
        let forged = postcard::to_stdvec(&env).unwrap();
        assert_eq!(verify(&forged, "exo"), Err(Reject::Signature));
    }

    #[test]
    fn key_of_another_peer_is_a_mismatch() {
        let victim = Keypair::generate_ed25519();
        let attacker = Keypair::generate_ed25519();
        let signed = sign(&attacker, "exo", 1, &addrs()).unwrap();
        let mut env = envelope(&signed);
        let mut rec: Record = postcard::from_bytes(&env.record).unwrap();
        rec.peer_id = victim.public().to_peer_id().to_bytes();
        env.record = postcard::to_stdvec(&rec).unwrap();
        let mut msg = SIGNING_CONTEXT.to_vec();
        msg.extend_from_slice(&env.record);
        env.signature = attacker.sign(&msg).unwrap();
        let forged = postcard::to_stdvec(&env).unwrap();
        assert_eq!(verify(&forged, "exo"), Err(Reject::PeerIdMismatch));
    }

    #[test]
    fn garbage_trailing_and_oversize_are_rejected() {
        assert_eq!(verify(&[], "exo"), Err(Reject::Malformed));
        assert_eq!(verify(&[0xff; 10], "exo"), Err(Reject::Malformed));
        let k = Keypair::generate_ed25519();
        let mut signed = sign(&k, "exo", 1, &addrs()).unwrap();
        signed.push(0);
        assert_eq!(verify(&signed, "exo"), Err(Reject::Malformed));
        assert_eq!(
            verify(&vec![0; MAX_SIGNED_RECORD + 1], "exo"),
            Err(Reject::Oversize)
        );
    }

    #[test]
    fn unknown_version_is_rejected() {
        let k = Keypair::generate_ed25519();
        let rec = Record {
            version: 9,
            namespace: "exo".into(),
            peer_id: k.public().to_peer_id().to_bytes(),
            seq: 1,
            addrs: vec![],
        };
        let record = postcard::to_stdvec(&rec).unwrap();
        let mut msg = SIGNING_CONTEXT.to_vec();
        msg.extend_from_slice(&record);
        let env = Envelope {
            signature: k.sign(&msg).unwrap(),
            record,
            public_key: k.public().encode_protobuf(),
        };
        let bytes = postcard::to_stdvec(&env).unwrap();
        assert_eq!(verify(&bytes, "exo"), Err(Reject::Version));
    }

    #[test]
    fn too_many_addresses_cannot_be_signed() {
        let k = Keypair::generate_ed25519();
        let many: Vec<Multiaddr> = (0..MAX_ADDRS as u16 + 1)
            .map(|p| format!("/ip4/10.0.0.1/tcp/{p}").parse().unwrap())
            .collect();
        assert_eq!(sign(&k, "exo", 1, &many), Err(SignError::TooLarge));
        assert_eq!(sign(&k, "", 1, &[]), Err(SignError::Namespace));
    }

    #[test]
    fn txt_chunks_round_trip() {
        let k = Keypair::generate_ed25519();
        let many: Vec<Multiaddr> = (0..MAX_ADDRS as u16)
            .map(|p| format!("/ip6/fd00::{p}/tcp/{p}").parse().unwrap())
            .collect();
        let signed = sign(&k, "exo", 7, &many).unwrap();
        let txt = to_txt(&signed);
        assert!(txt.len() > 2, "a large record spans several TXT values");
        assert!(txt.iter().all(|(k, v)| k.len() + 1 + v.len() <= 255));
        let get = |key: &str| {
            txt.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_slice())
        };
        assert_eq!(from_txt(get).unwrap(), signed);
        assert_eq!(from_txt(|_| None), Err(Reject::Malformed));
    }
}
