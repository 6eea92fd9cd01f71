//! Peer exchange between agents: the wire format. Pure, no I/O (the agent's `exchange` shell does
//! the TCP).
//!
//! An agent asked as a static host also hands the asking agent the signed records of the other
//! peers it hands its own node now, with the IPs it verified them at. So a machine whose multicast
//! is blocked lists one static host and gets the whole cluster.
//!
//! # How records travel
//! The asker opens a TCP connection to the static host's port 5353 (mDNS itself is UDP, so the
//! TCP port is free) and sends one frame, an [`Ask`]; the host's agent answers one frame, a
//! [`Reply`], and closes. Frames are those of the local socket: a 4-byte big-endian length, then
//! postcard. TCP, and not a DNS answer by UDP: the answer can be large (up to [`MAX_PEERS`]
//! records), it arrives whole or not at all under loss, and a spoofed source address cannot turn
//! a small question into a large answer sent to someone else.
//!
//! # What is trusted
//! Nothing but the signatures. The asker checks every record like one heard by multicast
//! (signature, namespace, replays), builds addresses only from the record's own ports and the IPs
//! the host gives, and hands a peer over only once one of them answers a probe from the asker's
//! own host. The host's word that a peer exists is a hint for where to look, no more.
//!
//! # One hop
//! A host hands over only peers it learned first-hand (by multicast on a link, or from its own
//! static hosts), never those it got by exchange. A record therefore travels at most one hop from
//! where it was heard, and a peer's presence at the asker rests on a host that hears the peer
//! itself: when the peer leaves, the host drops it, its next reply leaves it out, and the asker
//! drops it too. Records relayed from relay to relay would outlive their peer in a loop of agents
//! each vouching for the others.
//!
//! # The view ask
//! An [`Ask`] whose magic is [`VIEW_MAGIC`] (see [`Ask::view`]) asks for the host's view of the
//! mesh instead ([`crate::wire::mesh::View`]), answered [`Reply::View`] under the same rules of who
//! may ask. The frame is the same; only the magic differs, so an agent that predates the view ask
//! answers it `Refused` ("not a peer exchange"), which the asker reports as not answered, and a
//! reply variant it has no word for is never sent to it.

use serde::{Deserialize, Serialize};

/// The TCP port asked (the same number as mDNS's UDP port).
pub const PORT: u16 = 5353;
/// Version of the exchange; an asker of another version is answered [`Reply::Refused`].
pub const VERSION: u16 = 1;
/// Magic string opening an [`Ask`] for peers.
pub const MAGIC: &str = "exo-discovery-exchange";
/// Magic string opening an [`Ask`] for the host's view of the mesh.
pub const VIEW_MAGIC: &str = "exo-discovery-view";
/// Largest [`Ask`] frame body taken, in bytes.
pub const MAX_ASK: usize = 512;
/// Largest [`Reply`] frame body taken, in bytes.
pub const MAX_REPLY: usize = 1 << 20;
/// Most peers in one reply (the asker's pending budget: more would only be dropped there).
pub const MAX_PEERS: usize = 256;
/// Most IPs given for one peer.
pub const MAX_IPS: usize = 8;

/// What the asker sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ask {
    /// Always [`MAGIC`].
    pub magic: String,
    /// The asker's [`VERSION`].
    pub version: u16,
    /// The asker's namespace: a host serving another one refuses.
    pub namespace: String,
}

impl Ask {
    /// An ask for `namespace`.
    pub fn new(namespace: &str) -> Ask {
        Ask {
            magic: MAGIC.to_owned(),
            version: VERSION,
            namespace: namespace.to_owned(),
        }
    }

    /// An ask for the host's view of the mesh, in `namespace`.
    pub fn view(namespace: &str) -> Ask {
        Ask {
            magic: VIEW_MAGIC.to_owned(),
            ..Ask::new(namespace)
        }
    }

    /// Whether it asks for the view (else for peers).
    pub fn is_view(&self) -> bool {
        self.magic == VIEW_MAGIC
    }
}

/// One peer handed over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// The signed record, as the host received it.
    pub signed: Vec<u8>,
    /// The IPs at which the host reached the peer (at most [`MAX_IPS`]).
    pub ips: Vec<std::net::IpAddr>,
}

/// What the host answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The peers it hands its own node now, learned first-hand.
    Peers {
        /// At most [`MAX_PEERS`].
        peers: Vec<Peer>,
        /// Every such peer is in the list (none was left out for room): a peer the asker got
        /// through this host before and that is missing now has left.
        complete: bool,
    },
    /// Not answered: another namespace or version, or asked too often.
    Refused {
        /// One line for a human.
        why: String,
    },
    /// The host's view of the mesh (the answer to [`Ask::view`]).
    View(crate::wire::mesh::View),
}

/// Why an ask is refused, or `None` when it is answered.
pub fn refusal(ask: &Ask, namespace: &str) -> Option<String> {
    if ask.magic != MAGIC && ask.magic != VIEW_MAGIC {
        return Some("not a peer exchange".into());
    }
    if ask.version != VERSION {
        return Some(format!("exchange version {} is not {VERSION}", ask.version));
    }
    if ask.namespace != namespace {
        return Some(format!(
            "this agent serves namespace {namespace:?}, not {:?}",
            ask.namespace
        ));
    }
    None
}

/// Decodes a reply body, keeping at most [`MAX_PEERS`] peers of [`MAX_IPS`] IPs each (a host
/// that sends more is cut, and its reply is then not complete).
pub fn decode_reply(body: &[u8]) -> Result<Reply, String> {
    let reply: Reply = crate::wire::protocol::decode(body).map_err(|e| e.to_string())?;
    Ok(match reply {
        Reply::Peers {
            mut peers,
            mut complete,
        } => {
            if peers.len() > MAX_PEERS {
                peers.truncate(MAX_PEERS);
                complete = false;
            }
            for p in &mut peers {
                p.ips.truncate(MAX_IPS);
            }
            Reply::Peers { peers, complete }
        }
        Reply::View(v) => Reply::View(v.bounded()),
        refused @ Reply::Refused { .. } => refused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ask_of_another_namespace_or_version_is_refused() {
        assert_eq!(refusal(&Ask::new("exo"), "exo"), None);
        let other = refusal(&Ask::new("lab"), "exo").unwrap();
        assert!(
            other.contains("\"exo\"") && other.contains("\"lab\""),
            "{other}"
        );
        let mut old = Ask::new("exo");
        old.version = 9;
        assert!(refusal(&old, "exo").unwrap().contains("version 9"));
        let mut stray = Ask::new("exo");
        stray.magic = "GET / HTTP/1.1".into();
        assert_eq!(refusal(&stray, "exo").unwrap(), "not a peer exchange");
        assert_eq!(refusal(&Ask::view("exo"), "exo"), None);
        assert!(refusal(&Ask::view("lab"), "exo").is_some());
    }

    /// What an agent without the view ask does with one: its ask decodes (same frame), and its
    /// magic check refuses it; the refusal it sends decodes here as `Refused`.
    #[test]
    fn an_older_agent_refuses_the_view_ask_and_the_refusal_reads_back() {
        let old_refusal = |ask: &Ask| (ask.magic != MAGIC).then(|| "not a peer exchange".to_owned());
        let frame = crate::wire::protocol::encode(&Ask::view("exo"));
        let ask: Ask = crate::wire::protocol::decode(&frame[4..]).unwrap();
        let why = old_refusal(&ask).unwrap();
        let reply = crate::wire::protocol::encode(&Reply::Refused { why: why.clone() });
        assert_eq!(decode_reply(&reply[4..]).unwrap(), Reply::Refused { why });
        // Reply variant indexes are unchanged: Peers 0, Refused 1, View 2.
        assert_eq!(reply[4], 1);
        let view = crate::wire::protocol::encode(&Reply::View(Default::default()));
        assert_eq!(view[4], 2);
    }

    #[test]
    fn a_reply_over_the_bounds_is_cut_and_marked_incomplete() {
        let peer = Peer {
            signed: vec![1, 2, 3],
            ips: (0..20)
                .map(|i| std::net::IpAddr::from([10, 0, 0, i]))
                .collect(),
        };
        let big = Reply::Peers {
            peers: vec![peer; MAX_PEERS + 5],
            complete: true,
        };
        let frame = crate::wire::protocol::encode(&big);
        let Reply::Peers { peers, complete } = decode_reply(&frame[4..]).unwrap() else {
            panic!("peers expected");
        };
        assert_eq!(peers.len(), MAX_PEERS);
        assert!(peers.iter().all(|p| p.ips.len() == MAX_IPS));
        assert!(!complete);
        assert!(decode_reply(&[0xff, 0xff]).is_err());
        let within = Reply::Peers {
            peers: vec![],
            complete: true,
        };
        let f = crate::wire::protocol::encode(&within);
        assert_eq!(decode_reply(&f[4..]).unwrap(), within);
    }
}
