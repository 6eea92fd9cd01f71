//! The socket protocol's messages as version 1 had them, before `Source::Exchange`: what a client
//! built then decodes. Kept here, never changed, so that the agent is checked against the old
//! decoder itself (the same serde derives, postcard and JSON), not against a description of it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientMsg {
    Hello { magic: String, version: u16 },
    Register { signed_record: Vec<u8> },
    List,
    Status,
    AddHost { host: String },
    RemoveHost { host: String },
    AddPeer { multiaddr: String },
    Subscribe,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentMsg {
    Welcome { version: u16, namespace: String },
    Status(Status),
    Done { message: String },
    Registered { peer_id: String },
    Snapshot(Vec<PeerInfo>),
    Event(PeerEvent),
    Error { kind: ErrorKind, message: String },
    SnapshotPart(Vec<PeerInfo>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    Malformed,
    Handshake,
    Rejected(Reject),
    Limit,
    BadRequest,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reject {
    Oversize,
    Malformed,
    Version,
    Signature,
    PeerIdMismatch,
    Namespace,
    Replay,
}

/// Version 1's sources: no `Exchange`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    Mdns,
    Libp2pMdns,
    Static,
    Manual,
    Cache,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verification {
    Signature,
    Reachable,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub peer_id: String,
    pub addrs: Vec<String>,
    pub interfaces: Vec<String>,
    pub source: Source,
    pub verified: Vec<Verification>,
    pub seq: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Discovered,
    Updated,
    Expired,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerEvent {
    pub event: EventKind,
    pub peer: PeerInfo,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub uptime_secs: u64,
    pub namespace: String,
    pub interfaces: Vec<IfaceStatus>,
    pub unused_interfaces: Vec<UnusedIface>,
    pub peers: usize,
    pub clients: usize,
    pub registrations: usize,
    pub static_hosts: Vec<StaticHostStatus>,
    pub records_accepted: u64,
    pub records_rejected: BTreeMap<String, u64>,
    pub dropped: BTreeMap<String, u64>,
    pub budget: Vec<BudgetUse>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetUse {
    pub name: String,
    pub used: u64,
    pub max: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IfaceStatus {
    pub name: String,
    pub index: u32,
    pub families: Vec<FamilyStatus>,
    pub records_accepted: u64,
    pub records_rejected: BTreeMap<String, u64>,
    pub dropped: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyStatus {
    pub family: String,
    pub in_use: bool,
    pub problem: Option<String>,
    pub packets_in: u64,
    pub packets_out: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnusedIface {
    pub name: String,
    pub why: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticHostStatus {
    pub host: String,
    pub answering: bool,
    pub last_error: Option<String>,
}

/// A version-1 client's request as a frame: the 4-byte big-endian length, then postcard.
pub fn frame(msg: &ClientMsg) -> Vec<u8> {
    let body = postcard::to_allocvec(msg).expect("encodes");
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

/// A frame's body, as a version-1 client decodes it.
pub fn decode(body: &[u8]) -> Result<AgentMsg, postcard::Error> {
    postcard::from_bytes(body)
}

/// Reads one frame from `r` and decodes it as a version-1 client does.
pub fn read(r: &mut impl std::io::Read) -> Result<AgentMsg, String> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).map_err(|e| e.to_string())?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    r.read_exact(&mut body).map_err(|e| e.to_string())?;
    decode(&body).map_err(|e| format!("a version-1 client cannot decode it: {e}"))
}
