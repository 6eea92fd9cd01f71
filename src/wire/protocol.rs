//! The local socket protocol: message types and framing. Pure, no I/O.
//!
//! # Framing
//! Every message is one frame: a 4-byte big-endian length, then that many bytes of postcard. A
//! frame longer than [`MAX_FRAME`] is an error and the connection is closed. (A snapshot that would
//! not fit in one frame is split: see [`encode_reply`].)
//!
//! To read them, push the bytes as they come into a [`FrameDecoder`] (length-prefixed, bound
//! [`MAX_FRAME`]), [`decode`] each frame's body, and hand the agent's messages to a
//! [`SnapshotJoiner`], which gives back a snapshot sent in parts whole.
//!
//! # Conversation
//! 1. The client sends [`ClientMsg::Hello`] with [`PROTOCOL_VERSION`]; the agent answers
//!    [`AgentMsg::Welcome`] (with its namespace, and the version the connection speaks: the
//!    client's, an older one included, see [`negotiate`]) or [`AgentMsg::Error`] and closes.
//! 2. Then, in any order and as often as it likes:
//!    - [`ClientMsg::Register`] → [`AgentMsg::Registered`] or [`AgentMsg::Error`]. The registration
//!      lives exactly as long as the connection: when it closes, the agent withdraws it (goodbye).
//!    - [`ClientMsg::List`] → [`AgentMsg::Snapshot`].
//!    - [`ClientMsg::Subscribe`] → [`AgentMsg::Snapshot`], then [`AgentMsg::Event`] as peers come,
//!      change and go. A client too slow to keep up is sent a fresh [`AgentMsg::Snapshot`] in place
//!      of the events it missed.
//! 3. A frame that does not decode gets [`AgentMsg::Error`] and the connection is closed.
//!
//! A client may speak JSON lines instead: one JSON object per line, the same messages. Every
//! message byte by byte, with the variant indexes, for clients in other languages:
//! `docs/protocol.md`.

use crate::wire::record::Reject;
use serde::{Deserialize, Serialize};

pub use crate::wire::frame::{DecodeError, Frame, FrameDecoder, Framing, Room, Unbounded};

/// Most peers the agent holds, and so hands its node at once.
pub const MAX_PEERS: usize = 1024;
/// Most connections the agent serves at once on its socket; one more is refused with an error.
pub const MAX_CONNECTIONS: usize = 128;

/// Version of this protocol, said in the hello. Version 2 added [`Source::Exchange`]; version 1
/// is the same protocol without it.
pub const PROTOCOL_VERSION: u16 = 2;
/// The oldest version the agent still speaks (see [`negotiate`]).
pub const OLDEST_VERSION: u16 = 1;

/// The version a connection speaks, given the client's hello: the client's own, when it is one
/// the agent speaks ([`OLDEST_VERSION`] to [`PROTOCOL_VERSION`]); `None` refuses the client.
/// The agent's `Welcome` says it.
pub fn negotiate(client: u16) -> Option<u16> {
    (OLDEST_VERSION..=PROTOCOL_VERSION)
        .contains(&client)
        .then_some(client)
}

/// `msg` as a client of `version` can decode it. A version-1 client has no word for
/// [`Source::Exchange`] (its decoder fails on the whole frame): it is told such a peer is
/// [`Source::Static`], which it is one hop away (a signed record a static host's agent relayed,
/// checked here; its `interfaces` still say `exchange:HOST`).
pub fn for_version(msg: AgentMsg, version: u16) -> AgentMsg {
    if version >= 2 {
        return msg;
    }
    let old = |mut p: PeerInfo| {
        if p.source == Source::Exchange {
            p.source = Source::Static;
        }
        p
    };
    match msg {
        AgentMsg::Snapshot(list) => AgentMsg::Snapshot(list.into_iter().map(old).collect()),
        AgentMsg::SnapshotPart(list) => {
            AgentMsg::SnapshotPart(list.into_iter().map(old).collect())
        }
        AgentMsg::Event(PeerEvent { event, peer }) => AgentMsg::Event(PeerEvent {
            event,
            peer: old(peer),
        }),
        msg @ (AgentMsg::Welcome { .. }
        | AgentMsg::Status(_)
        | AgentMsg::Done { .. }
        | AgentMsg::Registered { .. }
        | AgentMsg::Mesh(_)
        | AgentMsg::Error { .. }) => msg,
    }
}
/// Largest frame body, in bytes, in either direction.
pub const MAX_FRAME: usize = 1 << 20;
/// Magic string in the handshake, so a stray client is told plainly.
pub const MAGIC: &str = "exo-discovery";

/// Messages from a client (a node, or the command line) to the agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMsg {
    /// First message. Replies: `Welcome` or `Error`.
    Hello {
        /// Always [`MAGIC`].
        magic: String,
        /// The client's [`PROTOCOL_VERSION`].
        version: u16,
    },
    /// Announce this signed record while the connection lasts. Replies: `Registered` or `Error`.
    /// A later `Register` for the same peer replaces the earlier one.
    Register {
        /// A record produced by [`crate::wire::record::sign`].
        signed_record: Vec<u8>,
    },
    /// The verified peers now known. Reply: `Snapshot`.
    List,
    /// How the agent is doing. Reply: `Status`.
    Status,
    /// Ask this host (IP, `IP%zone` or name) for its agent's records by unicast, from now on.
    /// Replies: `Done` or `Error`.
    AddHost {
        /// The host.
        host: String,
    },
    /// Stop asking this host. Replies: `Done` or `Error`.
    RemoveHost {
        /// The host, as it was added.
        host: String,
    },
    /// Hand over this peer (`…/p2p/<id>`), vouched for by the operator, once it answers.
    /// Replies: `Done` or `Error`.
    AddPeer {
        /// The full multiaddr.
        multiaddr: String,
    },
    /// A snapshot, then events. Reply: `Snapshot`, then `Event`s.
    Subscribe,
    /// The views of the mesh: this agent's, and those of the agents of the hosts of the peers it
    /// knows, asked by peer exchange within a deadline. Reply: `Mesh`. (An agent that predates it
    /// answers `Error` `Malformed` and closes.)
    Mesh,
}

/// Messages from the agent to a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentMsg {
    /// Handshake accepted.
    Welcome {
        /// The version the connection speaks: the client's (see [`negotiate`]).
        version: u16,
        /// The cluster namespace the agent serves; records must carry it.
        namespace: String,
    },
    /// The agent's state and counters.
    Status(Status),
    /// A request other than `Register` succeeded.
    Done {
        /// One line for a human.
        message: String,
    },
    /// A registration was accepted and is being announced.
    Registered {
        /// Base58 peer ID of the registered node.
        peer_id: String,
    },
    /// Every verified peer known now.
    Snapshot(Vec<PeerInfo>),
    /// One change.
    Event(PeerEvent),
    /// A request failed. After a `Malformed` or `Handshake` error the agent closes the connection,
    /// as after a `Limit` error that refuses or closes one (too many, idle, or no room for a
    /// request).
    Error {
        /// What kind of failure.
        kind: ErrorKind,
        /// One line for a human.
        message: String,
    },
    /// The first peers of a snapshot too large for one frame; more parts follow, then the
    /// `Snapshot` with the rest. [`crate::client::Client`] joins them.
    SnapshotPart(Vec<PeerInfo>),
    /// The views of the mesh (the reply to `Mesh`): this agent's first (`asked` = `local`).
    Mesh(Vec<crate::wire::mesh::HostView>),
}

/// Kinds of [`AgentMsg::Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The frame did not decode, or came before the handshake.
    Malformed,
    /// Wrong magic or protocol version.
    Handshake,
    /// The registered record was refused (reason inside).
    Rejected(Reject),
    /// The agent cannot take more of this (registrations, clients, bytes of unfinished
    /// requests), or closes an idle connection.
    Limit,
    /// The request's argument is not valid (a host or multiaddr that does not parse).
    BadRequest,
}

/// Where a peer was learned from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Source {
    /// Heard by multicast DNS on a local link (a signed record).
    Mdns,
    /// A stock rust-libp2p mDNS node (unsigned; handed over only with `accept_unsigned`).
    Libp2pMdns,
    /// A signed record fetched by unicast from a configured static host.
    Static,
    /// A peer the operator added by hand (`add-peer`): unsigned.
    Manual,
    /// The persistent cache of an earlier run (signed; re-checked for reachability).
    Cache,
    /// A signed record relayed by a static host's agent (peer exchange), checked here like any
    /// other; its `interfaces` name the host it came through (`exchange:HOST`).
    Exchange,
}

/// How a peer's information was checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Verification {
    /// The record's signature verified with the key its peer ID names.
    Signature,
    /// Every address handed over answered a TCP connect from this host.
    Reachable,
}

/// One peer as handed to the node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// Base58 peer ID.
    pub peer_id: String,
    /// Dialable multiaddrs, each ending in `/p2p/<peer_id>`.
    pub addrs: Vec<String>,
    /// Names of the interfaces it was heard on.
    pub interfaces: Vec<String>,
    /// Where it was learned.
    pub source: Source,
    /// How it was checked.
    pub verified: Vec<Verification>,
    /// Sequence number of the record in use.
    pub seq: u64,
}

/// What happened to a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// First usable address seen.
    Discovered,
    /// Addresses or interfaces changed.
    Updated,
    /// No longer reachable by any known address (goodbye or timeout).
    Expired,
}

/// A peer change, as sent to subscribers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerEvent {
    /// What happened.
    pub event: EventKind,
    /// The peer as it is now (for `expired`: as it was last).
    pub peer: PeerInfo,
}

impl PeerEvent {
    /// The JSON form: the peer's fields plus `"event"`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.peer).unwrap_or_default();
        if let serde_json::Value::Object(map) = &mut v {
            map.insert(
                "event".into(),
                serde_json::to_value(self.event).unwrap_or_default(),
            );
        }
        v
    }
}

/// What `status` reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The agent's version.
    pub version: String,
    /// Seconds since it started.
    pub uptime_secs: u64,
    /// The namespace it serves.
    pub namespace: String,
    /// Interfaces in use, with their counters.
    pub interfaces: Vec<IfaceStatus>,
    /// Interfaces not in use, and why.
    pub unused_interfaces: Vec<UnusedIface>,
    /// Peers handed to the node now.
    pub peers: usize,
    /// Local socket clients connected.
    pub clients: usize,
    /// Nodes this agent announces.
    pub registrations: usize,
    /// Static hosts and whether they answer.
    pub static_hosts: Vec<StaticHostStatus>,
    /// Records accepted, all sources together.
    pub records_accepted: u64,
    /// Records refused, by reason (`signature`, `peer-id-mismatch`, `replay`, `namespace`,
    /// `oversize`, …), all sources together.
    pub records_rejected: std::collections::BTreeMap<String, u64>,
    /// Peers and packets dropped, by reason (`pending-evicted`, `table-full`, `host-full`,
    /// `foreign-source`, `goodbye-refuted`, …), all sources together.
    pub dropped: std::collections::BTreeMap<String, u64>,
    /// The bounds the agent keeps, and how much of each is in use.
    pub budget: Vec<BudgetUse>,
}

/// One bound and its use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetUse {
    /// What it bounds (`peers`, `pending`, `probe-addresses`, …).
    pub name: String,
    /// In use now.
    pub used: u64,
    /// The bound.
    pub max: u64,
}

/// One interface in use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IfaceStatus {
    /// Name.
    pub name: String,
    /// Index.
    pub index: u32,
    /// Per family.
    pub families: Vec<FamilyStatus>,
    /// Records accepted from this interface.
    pub records_accepted: u64,
    /// Records refused from this interface, by reason.
    pub records_rejected: std::collections::BTreeMap<String, u64>,
    /// Peers and packets from this interface dropped, by reason.
    pub dropped: std::collections::BTreeMap<String, u64>,
}

/// One family of an interface in use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyStatus {
    /// `IPv4` or `IPv6`.
    pub family: String,
    /// mDNS runs on it.
    pub in_use: bool,
    /// Why not, when it does not.
    pub problem: Option<String>,
    /// Datagrams received on the agent's own socket for it.
    pub packets_in: u64,
    /// Queries the agent's own socket sent (the mdns-sd engine's packets are not counted).
    pub packets_out: u64,
}

/// An interface the agent does not use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnusedIface {
    /// Name.
    pub name: String,
    /// Why.
    pub why: String,
}

/// A static host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticHostStatus {
    /// As configured.
    pub host: String,
    /// The last round got an answer.
    pub answering: bool,
    /// The last error, if the last round failed.
    pub last_error: Option<String>,
}

/// Framing or decoding failure.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix exceeds [`MAX_FRAME`].
    TooLarge(usize),
    /// The body does not decode as the expected message (or has trailing bytes).
    Malformed,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLarge(n) => write!(f, "frame of {n} bytes exceeds {MAX_FRAME}"),
            FrameError::Malformed => f.write_str("malformed frame"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Encodes a message as one frame (length prefix included).
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    // Serializing these plain types into a Vec cannot fail.
    let body = postcard::to_stdvec(msg).unwrap_or_default();
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Encodes an agent's message as frames: one frame, except a snapshot too large for one, which
/// goes as [`AgentMsg::SnapshotPart`] frames of at most half [`MAX_FRAME`] and a final
/// [`AgentMsg::Snapshot`].
pub fn encode_reply(msg: &AgentMsg) -> Vec<u8> {
    let whole = encode(msg);
    let AgentMsg::Snapshot(peers) = msg else {
        return whole;
    };
    if whole.len() - 4 <= MAX_FRAME {
        return whole;
    }
    let mut out = Vec::with_capacity(whole.len() + 64);
    let mut part: Vec<PeerInfo> = Vec::new();
    let mut size = 0;
    for p in peers {
        let n = postcard::to_stdvec(p).map_or(0, |b| b.len());
        if !part.is_empty() && size + n > MAX_FRAME / 2 {
            out.extend(encode(&AgentMsg::SnapshotPart(std::mem::take(&mut part))));
            size = 0;
        }
        size += n;
        part.push(p.clone());
    }
    out.extend(encode(&AgentMsg::Snapshot(part)));
    out
}

/// Reads the body length from a 4-byte prefix, refusing anything over [`MAX_FRAME`].
pub fn body_len(prefix: [u8; 4]) -> Result<usize, FrameError> {
    let n = u32::from_be_bytes(prefix) as usize;
    if n > MAX_FRAME {
        return Err(FrameError::TooLarge(n));
    }
    Ok(n)
}

/// Most bytes of one snapshot sent in parts that [`SnapshotJoiner::new`] takes: far more than the
/// agent's bounds allow (1,024 peers of a few KiB), so a server that never ends one is cut off.
pub const MAX_SNAPSHOT_BYTES: usize = 64 * MAX_FRAME;

/// Why a [`SnapshotJoiner`] refused a message. The parts so far are dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JoinError {
    /// Snapshot parts adding up to more than the joiner's bound (in bytes, given).
    TooLarge(usize),
    /// A snapshot part followed by this message, which is no more of the snapshot.
    Unfinished(Box<AgentMsg>),
}

impl std::fmt::Display for JoinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JoinError::TooLarge(max) => write!(f, "snapshot larger than {max} bytes"),
            JoinError::Unfinished(other) => write!(f, "snapshot part followed by {other:?}"),
        }
    }
}

impl std::error::Error for JoinError {}

/// The agent's messages in, the same messages out, except that the [`AgentMsg::SnapshotPart`]s
/// of a snapshot and the [`AgentMsg::Snapshot`] that ends it come out as one `Snapshot`: the
/// inverse of [`encode_reply`].
#[derive(Debug)]
pub struct SnapshotJoiner {
    /// The parts so far, and their frames' bodies' bytes.
    parts: Vec<PeerInfo>,
    bytes: usize,
    /// Most bytes of one snapshot in parts.
    max: usize,
}

impl Default for SnapshotJoiner {
    fn default() -> Self {
        SnapshotJoiner::new()
    }
}

impl SnapshotJoiner {
    /// A joiner of snapshots of at most [`MAX_SNAPSHOT_BYTES`].
    pub fn new() -> SnapshotJoiner {
        SnapshotJoiner::with_max(MAX_SNAPSHOT_BYTES)
    }

    /// A joiner of snapshots whose parts' frames hold at most `max` bytes of body together.
    pub fn with_max(max: usize) -> SnapshotJoiner {
        SnapshotJoiner {
            parts: Vec::new(),
            bytes: 0,
            max,
        }
    }

    /// Takes the next message, `len` the length of the frame body it came in: the message to
    /// hand on, or `None` while a snapshot in parts is still coming.
    pub fn push(&mut self, msg: AgentMsg, len: usize) -> Result<Option<AgentMsg>, JoinError> {
        match msg {
            AgentMsg::SnapshotPart(p) => {
                self.bytes += len;
                if self.bytes > self.max {
                    self.reset();
                    return Err(JoinError::TooLarge(self.max));
                }
                self.parts.extend(p);
                Ok(None)
            }
            AgentMsg::Snapshot(rest) if !self.parts.is_empty() => {
                let mut all = std::mem::take(&mut self.parts);
                self.reset();
                all.extend(rest);
                Ok(Some(AgentMsg::Snapshot(all)))
            }
            other if self.parts.is_empty() => {
                self.reset();
                Ok(Some(other))
            }
            other => {
                self.reset();
                Err(JoinError::Unfinished(Box::new(other)))
            }
        }
    }

    fn reset(&mut self) {
        self.parts = Vec::new();
        self.bytes = 0;
    }
}

/// Decodes one frame body; trailing bytes are an error.
pub fn decode<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, FrameError> {
    match postcard::take_from_bytes(body) {
        Ok((v, [])) => Ok(v),
        _ => Err(FrameError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> PeerInfo {
        PeerInfo {
            peer_id: "12D3KooW".into(),
            addrs: vec!["/ip4/10.0.0.1/tcp/1/p2p/12D3KooW".into()],
            interfaces: vec!["eth0".into()],
            source: Source::Mdns,
            verified: vec![Verification::Signature],
            seq: 3,
        }
    }

    #[test]
    fn frames_round_trip() {
        let msgs = vec![
            AgentMsg::Welcome {
                version: 1,
                namespace: "exo".into(),
            },
            AgentMsg::Snapshot(vec![info()]),
            AgentMsg::Event(PeerEvent {
                event: EventKind::Updated,
                peer: info(),
            }),
            AgentMsg::Error {
                kind: ErrorKind::Rejected(Reject::Namespace),
                message: "x".into(),
            },
        ];
        for m in msgs {
            let f = encode(&m);
            let n = body_len(f[..4].try_into().unwrap()).unwrap();
            assert_eq!(n, f.len() - 4);
            assert_eq!(decode::<AgentMsg>(&f[4..]).unwrap(), m);
        }
    }

    #[test]
    fn oversize_prefix_and_garbage_are_refused() {
        assert_eq!(
            body_len(((MAX_FRAME + 1) as u32).to_be_bytes()),
            Err(FrameError::TooLarge(MAX_FRAME + 1))
        );
        assert_eq!(
            decode::<ClientMsg>(&[0xff, 0xff, 0xff]),
            Err(FrameError::Malformed)
        );
        let mut f = encode(&ClientMsg::List);
        f.push(0);
        assert_eq!(decode::<ClientMsg>(&f[4..]), Err(FrameError::Malformed));
    }

    fn peer(i: usize) -> PeerInfo {
        PeerInfo {
            peer_id: format!("peer-{i}"),
            ..info()
        }
    }

    /// Every message `bytes` holds, through a decoder and a joiner.
    fn read_all(bytes: &[u8], joiner: &mut SnapshotJoiner) -> Vec<Result<AgentMsg, JoinError>> {
        let mut frames = FrameDecoder::new(Framing::LengthPrefixed, MAX_FRAME);
        let mut input = bytes;
        let mut out = Vec::new();
        while let Some(body) = frames.push(&mut input).unwrap() {
            let msg = decode::<AgentMsg>(&body).unwrap();
            match joiner.push(msg, body.len()) {
                Ok(Some(m)) => out.push(Ok(m)),
                Ok(None) => {}
                Err(e) => out.push(Err(e)),
            }
        }
        out
    }

    #[test]
    fn a_snapshot_split_by_encode_reply_comes_out_of_the_joiner_whole() {
        let peers: Vec<PeerInfo> = (0..40_000).map(peer).collect();
        let mut bytes = encode_reply(&AgentMsg::Snapshot(peers.clone()));
        assert!(bytes.len() > 2 * MAX_FRAME, "the case is a real one");
        let done = AgentMsg::Done {
            message: "after".into(),
        };
        bytes.extend(encode(&done));
        let got = read_all(&bytes, &mut SnapshotJoiner::new());
        assert_eq!(got, vec![Ok(AgentMsg::Snapshot(peers)), Ok(done)]);
    }

    #[test]
    fn a_broken_or_endless_snapshot_is_refused() {
        let mut bytes = encode(&AgentMsg::SnapshotPart(vec![peer(1)]));
        bytes.extend(encode(&AgentMsg::Done {
            message: "x".into(),
        }));
        bytes.extend(encode(&AgentMsg::Snapshot(vec![peer(2)])));
        let got = read_all(&bytes, &mut SnapshotJoiner::new());
        let Err(e) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(
            e.to_string(),
            "snapshot part followed by Done { message: \"x\" }"
        );
        // The parts were dropped: what follows comes out as it is.
        assert_eq!(got[1], Ok(AgentMsg::Snapshot(vec![peer(2)])));

        let part = encode(&AgentMsg::SnapshotPart((0..50).map(peer).collect()));
        let bytes: Vec<u8> = (0..10_000 / (part.len() - 4) + 2)
            .flat_map(|_| part.clone())
            .collect();
        let got = read_all(&bytes, &mut SnapshotJoiner::with_max(10_000));
        assert_eq!(got[0], Err(JoinError::TooLarge(10_000)));
        assert_eq!(
            JoinError::TooLarge(MAX_SNAPSHOT_BYTES).to_string(),
            "snapshot larger than 67108864 bytes"
        );
    }

    #[test]
    fn json_shape_of_an_event() {
        let v = PeerEvent {
            event: EventKind::Discovered,
            peer: info(),
        }
        .to_json();
        assert_eq!(v["event"], "discovered");
        assert_eq!(v["peer_id"], "12D3KooW");
        assert_eq!(v["source"], "mdns");
        assert_eq!(v["verified"][0], "signature");
        assert_eq!(v["interfaces"][0], "eth0");
    }
}
