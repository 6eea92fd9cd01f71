//! A small blocking client for the agent's local socket (does I/O), for nodes and the command line.
//!
//! ```no_run
//! use exo_discovery::client::Client;
//! let key = libp2p_identity::Keypair::generate_ed25519();
//! let mut agent = Client::connect(exo_discovery::default_socket_path())?;
//! agent.register(&key, &["/ip4/0.0.0.0/tcp/4001".parse()?])?;
//! // Keep `agent` open: the registration lives as long as the connection.
//! let mut events = Client::connect(exo_discovery::default_socket_path())?;
//! for peer in events.subscribe()? {
//!     println!("dial {:?}", peer.addrs);
//! }
//! while let Ok(msg) = events.next_message() {
//!     println!("{msg:?}");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod reconnect;

use crate::wire::protocol::{
    self, AgentMsg, ClientMsg, ErrorKind, FrameDecoder, Framing, PeerInfo, SnapshotJoiner,
};
use crate::wire::record;
use libp2p_identity::{Keypair, PeerId};
use multiaddr::Multiaddr;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Why a client call failed. Its `Display` is one line fit for a user.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// No agent listens at the path.
    NotRunning(PathBuf, io::Error),
    /// The socket exists but this user may not use it.
    Refused(PathBuf, String),
    /// The agent answered with an error.
    Agent(ErrorKind, String),
    /// The record could not be signed.
    Sign(record::SignError),
    /// Reading or writing the socket failed, or the agent closed it.
    Io(io::Error),
    /// The agent sent something this client does not understand.
    Protocol(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::NotRunning(p, e) => write!(
                f,
                "agent not running: cannot connect to {} ({e}); start it with `exo-discovery run`",
                p.display()
            ),
            ClientError::Refused(p, why) => write!(f, "socket {} refused: {why}", p.display()),
            ClientError::Agent(_, m) => f.write_str(m),
            ClientError::Sign(e) => write!(f, "cannot sign the record: {e}"),
            ClientError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                f.write_str("the agent closed the connection")
            }
            ClientError::Io(e) => write!(f, "socket error: {e}"),
            ClientError::Protocol(m) => write!(f, "unexpected reply from the agent: {m}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

/// This host's clock in microseconds since the epoch (a record's default `seq`).
pub fn clock_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1)
}

/// Whether the socket is served by this user. Trust no byte from a socket another user serves:
/// in a shared directory such as /tmp, anyone may have bound the path first. [`Client::connect`]
/// checks it; a client of its own (such as the crate `exo-discovery-libp2p`, which connects
/// without blocking) calls it on a freshly connected stream. The error says why, in one line.
pub fn served_by_me(stream: &UnixStream) -> Result<(), String> {
    let me = nix::unistd::geteuid().as_raw();
    let owner =
        crate::sys::peer_uid(stream).map_err(|e| format!("cannot tell who serves it: {e}"))?;
    if owner != me {
        return Err(format!(
            "it is served by uid {owner}, not by this user (uid {me}), so not by this user's agent"
        ));
    }
    Ok(())
}

/// A connection to the agent, past the handshake.
pub struct Client {
    stream: UnixStream,
    namespace: String,
}

pub use crate::wire::protocol::MAX_SNAPSHOT_BYTES;

/// Most bytes read from the socket at once.
const READ_CHUNK: usize = 8 * 1024;

impl Client {
    /// Connects to the agent at `path` and does the handshake.
    pub fn connect(path: impl AsRef<Path>) -> Result<Client, ClientError> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path).map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => {
                ClientError::Refused(path.to_owned(), format!("{e} (it is owner-only)"))
            }
            _ => ClientError::NotRunning(path.to_owned(), e),
        })?;
        served_by_me(&stream).map_err(|why| ClientError::Refused(path.to_owned(), why))?;
        let mut c = Client {
            stream,
            namespace: String::new(),
        };
        c.send(&ClientMsg::Hello {
            magic: protocol::MAGIC.into(),
            version: protocol::PROTOCOL_VERSION,
        })?;
        match c.next_message() {
            Ok(AgentMsg::Welcome { namespace, .. }) => {
                c.namespace = namespace;
                Ok(c)
            }
            Ok(AgentMsg::Error { message, .. }) => {
                Err(ClientError::Refused(path.to_owned(), message))
            }
            Ok(other) => Err(ClientError::Protocol(format!("{other:?}"))),
            Err(ClientError::Io(e)) => Err(ClientError::Refused(
                path.to_owned(),
                format!("the agent closed the connection ({e})"),
            )),
            Err(e) => Err(e),
        }
    }

    /// The namespace the agent serves.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Signs a record for `keypair` and `listen_addrs` in the agent's namespace (seq: wall-clock
    /// microseconds) and registers it. The registration lasts while this client is open.
    pub fn register(
        &mut self,
        keypair: &Keypair,
        listen_addrs: &[Multiaddr],
    ) -> Result<PeerId, ClientError> {
        let ns = self.namespace.clone();
        self.register_in(keypair, listen_addrs, &ns)
    }

    /// As [`Client::register`], with an explicit namespace (the agent refuses a wrong one).
    pub fn register_in(
        &mut self,
        keypair: &Keypair,
        listen_addrs: &[Multiaddr],
        namespace: &str,
    ) -> Result<PeerId, ClientError> {
        self.register_seq(keypair, listen_addrs, namespace, clock_micros())
    }

    /// As [`Client::register_in`], with the record's `seq` given.
    pub fn register_seq(
        &mut self,
        keypair: &Keypair,
        listen_addrs: &[Multiaddr],
        namespace: &str,
        seq: u64,
    ) -> Result<PeerId, ClientError> {
        let signed =
            record::sign(keypair, namespace, seq, listen_addrs).map_err(ClientError::Sign)?;
        self.register_signed(signed)?;
        Ok(keypair.public().to_peer_id())
    }

    /// Registers an already signed record.
    pub fn register_signed(&mut self, signed_record: Vec<u8>) -> Result<(), ClientError> {
        self.send(&ClientMsg::Register { signed_record })?;
        match self.next_message()? {
            AgentMsg::Registered { .. } => Ok(()),
            AgentMsg::Error { kind, message } => Err(ClientError::Agent(kind, message)),
            other => Err(ClientError::Protocol(format!("{other:?}"))),
        }
    }

    /// Asks the agent to query `host` (IP, `IP%zone` or name) for records by unicast from now on.
    pub fn add_host(&mut self, host: &str) -> Result<String, ClientError> {
        self.manage(ClientMsg::AddHost { host: host.into() })
    }

    /// Stops querying `host`.
    pub fn remove_host(&mut self, host: &str) -> Result<String, ClientError> {
        self.manage(ClientMsg::RemoveHost { host: host.into() })
    }

    /// Hands over a peer the operator vouches for (`…/p2p/<id>`), once it answers.
    pub fn add_peer(&mut self, multiaddr: &str) -> Result<String, ClientError> {
        self.manage(ClientMsg::AddPeer {
            multiaddr: multiaddr.into(),
        })
    }

    fn manage(&mut self, msg: ClientMsg) -> Result<String, ClientError> {
        self.send(&msg)?;
        match self.next_message()? {
            AgentMsg::Done { message } => Ok(message),
            AgentMsg::Error { kind, message } => Err(ClientError::Agent(kind, message)),
            other => Err(ClientError::Protocol(format!("{other:?}"))),
        }
    }

    /// The agent's state and counters.
    pub fn status(&mut self) -> Result<crate::wire::protocol::Status, ClientError> {
        self.send(&ClientMsg::Status)?;
        match self.next_message()? {
            AgentMsg::Status(s) => Ok(s),
            AgentMsg::Error { kind, message } => Err(ClientError::Agent(kind, message)),
            other => Err(ClientError::Protocol(format!("{other:?}"))),
        }
    }

    /// The views of the mesh: the agent's own, then those of its peers' agents (see
    /// [`ClientMsg::Mesh`]); takes up to the agent's deadline for the other agents.
    pub fn mesh(&mut self) -> Result<Vec<crate::wire::mesh::HostView>, ClientError> {
        self.send(&ClientMsg::Mesh)?;
        match self.next_message()? {
            AgentMsg::Mesh(hosts) => Ok(hosts),
            AgentMsg::Error { kind, message } => Err(ClientError::Agent(kind, message)),
            other => Err(ClientError::Protocol(format!("{other:?}"))),
        }
    }

    /// The verified peers the agent knows now.
    pub fn list(&mut self) -> Result<Vec<PeerInfo>, ClientError> {
        self.send(&ClientMsg::List)?;
        self.expect_snapshot()
    }

    /// Subscribes to events; returns the current peers. Then call [`Client::next_message`].
    pub fn subscribe(&mut self) -> Result<Vec<PeerInfo>, ClientError> {
        self.send(&ClientMsg::Subscribe)?;
        self.expect_snapshot()
    }

    fn expect_snapshot(&mut self) -> Result<Vec<PeerInfo>, ClientError> {
        match self.next_message()? {
            AgentMsg::Snapshot(p) => Ok(p),
            AgentMsg::Error { kind, message } => Err(ClientError::Agent(kind, message)),
            other => Err(ClientError::Protocol(format!("{other:?}"))),
        }
    }

    /// Blocks for the next message (events after [`Client::subscribe`]; a `Snapshot` replaces
    /// everything known before it). A snapshot sent in parts comes back whole.
    pub fn next_message(&mut self) -> Result<AgentMsg, ClientError> {
        let mut joiner = SnapshotJoiner::new();
        loop {
            let (msg, len) = self.next_frame()?;
            let joined = joiner
                .push(msg, len)
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            if let Some(msg) = joined {
                return Ok(msg);
            }
        }
    }

    /// Reads one frame, never a byte past it (a caller waiting on [`Client::stream`] finds
    /// nothing held back here), and decodes it: the message and its body's length.
    fn next_frame(&mut self) -> Result<(AgentMsg, usize), ClientError> {
        let mut frames = FrameDecoder::new(Framing::LengthPrefixed, protocol::MAX_FRAME);
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            let n = frames.wants().min(READ_CHUNK);
            self.stream.read_exact(&mut chunk[..n])?;
            let mut input = &chunk[..n];
            let frame = frames
                .push(&mut input)
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            if let Some(body) = frame {
                let msg =
                    protocol::decode(&body).map_err(|e| ClientError::Protocol(e.to_string()))?;
                return Ok((msg, body.len()));
            }
        }
    }

    /// The underlying stream (to wait on it, or to shut it down from another thread).
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    fn send(&mut self, msg: &ClientMsg) -> Result<(), ClientError> {
        self.stream.write_all(&protocol::encode(msg))?;
        Ok(())
    }
}

#[cfg(test)]
mod snapshot_tests {
    use super::*;
    use crate::wire::protocol::{Source, Verification};

    /// A peer as large as the agent's bounds allow: 32 long addresses, 16 ways in.
    fn big(i: usize) -> PeerInfo {
        let id = format!("12D3KooW{i:044}");
        PeerInfo {
            peer_id: id.clone(),
            addrs: (0..32)
                .map(|a| {
                    format!(
                        "/ip6zone/eth0123456789/ip6/fe80::1234:5678:9abc:{a:x}/tcp/65535/p2p/{id}"
                    )
                })
                .collect(),
            interfaces: (0..16)
                .map(|v| format!("static:host-{v}.example.internal"))
                .collect(),
            source: Source::Mdns,
            verified: vec![Verification::Signature, Verification::Reachable],
            seq: i as u64,
        }
    }

    #[test]
    fn a_snapshot_of_a_full_table_goes_in_frames_and_comes_back_whole() {
        let peers: Vec<PeerInfo> = (0..crate::wire::protocol::MAX_PEERS).map(big).collect();
        let bytes = protocol::encode_reply(&AgentMsg::Snapshot(peers.clone()));
        assert!(
            bytes.len() > 4 * protocol::MAX_FRAME,
            "the case is a real one"
        );
        let (mut a, b) = UnixStream::pair().unwrap();
        let writer = std::thread::spawn(move || {
            a.write_all(&bytes).unwrap();
            a.write_all(&protocol::encode(&AgentMsg::Done {
                message: "after".into(),
            }))
            .unwrap();
        });
        let mut c = Client {
            stream: b,
            namespace: "exo".into(),
        };
        match c.next_message().unwrap() {
            AgentMsg::Snapshot(got) => assert_eq!(got, peers),
            other => panic!("{other:?}"),
        }
        assert!(matches!(c.next_message().unwrap(), AgentMsg::Done { .. }));
        writer.join().unwrap();
        // A small snapshot is one frame, as ever.
        let one = protocol::encode_reply(&AgentMsg::Snapshot(vec![big(1)]));
        assert_eq!(one, protocol::encode(&AgentMsg::Snapshot(vec![big(1)])));
    }
}
