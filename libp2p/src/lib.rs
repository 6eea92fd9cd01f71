//! A rust-libp2p `NetworkBehaviour` fed by the agent (does I/O), in the place of
//! `libp2p::mdns::tokio::Behaviour`.
//!
//! It registers the swarm's listen addresses with the agent (again after every burst of
//! changes, and after every reconnection to a restarted agent), subscribes to the agent's peers,
//! and reports them as libp2p-mdns does: [`Event::Discovered`] for addresses new to the node,
//! [`Event::Expired`] for addresses no longer valid, every address ending in `/p2p/<peer>`. It
//! also answers the swarm's question for a peer's addresses, so `swarm.dial(peer_id)` works with
//! no address given.
//!
//! ```no_run
//! use libp2p::swarm::NetworkBehaviour;
//! #[derive(NetworkBehaviour)]
//! struct Node {
//!     discovery: exo_discovery_libp2p::Behaviour, // was libp2p::mdns::tokio::Behaviour
//!     ping: libp2p::ping::Behaviour,
//! }
//! let key = libp2p_identity::Keypair::generate_ed25519();
//! let discovery =
//!     exo_discovery_libp2p::Behaviour::new(&key, exo_discovery::default_socket_path());
//! ```
//!
//! It never blocks the swarm: the socket is an `async_io::Async<UnixStream>` and the timers are
//! `async_io::Timer`s, woken through the `Context` the swarm polls it with (async-io runs its own
//! reactor thread, so the swarm may run on tokio, async-std or smol). When the agent is not
//! running it says so in one log line (the `log` crate), keeps trying with the backoff of
//! [`exo_discovery::client::reconnect`], and the swarm runs on with the peers it knew.
//!
//! The connection to the agent (connecting, the handshake, registering, reading, reconnecting
//! with backoff) is `connection`, the one part besides this facade that does I/O. The pure parts:
//! `frames` (bytes to messages), `peers` (what the agent says to `Discovered` / `Expired`),
//! `listen` (listen addresses, when to register them, the record).
//!
//! It speaks to the agent through the public API of the crate `exo-discovery` (the socket
//! protocol, records, the client's backoff and socket check) and nothing else.

#![warn(missing_docs)]
#![deny(unsafe_code)]

mod connection;
mod frames;
mod listen;
mod peers;

use async_io::Timer;
use connection::{Conn, Step};
use exo_discovery::client::reconnect::Backoff;
use libp2p_core::transport::PortUse;
use libp2p_core::{Endpoint, Multiaddr};
use libp2p_identity::{Keypair, PeerId};
use libp2p_swarm::behaviour::FromSwarm;
use libp2p_swarm::{
    dummy, ConnectionDenied, ConnectionId, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// What the behaviour reports to the swarm, with libp2p-mdns's meaning: a node switching from
/// `libp2p::mdns::Event` matches the same two variants.
#[derive(Debug, Clone)]
pub enum Event {
    /// Addresses of peers, new to this node (each ending in `/p2p/<peer>`).
    Discovered(Vec<(PeerId, Multiaddr)>),
    /// Addresses no longer valid: the agent no longer hands them over.
    Expired(Vec<(PeerId, Multiaddr)>),
}

/// How the link with the agent is doing (see [`Behaviour::agent_status`]): for a node's logs,
/// health checks and tests. Discovery does not need it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AgentStatus {
    /// Connected and subscribed; the agent listed `peers` peers.
    Connected {
        /// The namespace the agent serves.
        namespace: String,
        /// How many peers its first snapshot listed.
        peers: usize,
    },
    /// The agent accepted a registration of these listen addresses.
    Registered {
        /// The record's sequence number.
        seq: u64,
        /// The addresses the record carries.
        addrs: Vec<Multiaddr>,
    },
    /// The agent refused a registration (why).
    Refused(String),
    /// The agent is not running or the connection was lost (why); retrying.
    Disconnected(String),
}

/// Settings of a [`Behaviour`].
#[derive(Debug, Clone)]
pub struct Config {
    socket: PathBuf,
    namespace: Option<String>,
    register_delay: Duration,
    resync_grace: Duration,
}

impl Default for Config {
    /// The agent's default socket ([`exo_discovery::default_socket_path`]), the agent's namespace,
    /// registration 150 ms after the last change of listen addresses, a grace of 10 s for the
    /// addresses a restarted agent has not found again yet.
    fn default() -> Self {
        Config {
            socket: exo_discovery::default_socket_path(),
            namespace: None,
            register_delay: Duration::from_millis(150),
            resync_grace: Duration::from_secs(10),
        }
    }
}

impl Config {
    /// The agent's socket.
    pub fn with_socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.socket = path.into();
        self
    }

    /// The cluster namespace to register in (the agent refuses another than its own). Default:
    /// whichever the agent serves.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// How long the listen addresses must stay unchanged before they are registered (at the
    /// latest, eight times this after the first change of a burst).
    pub fn with_register_delay(mut self, delay: Duration) -> Self {
        self.register_delay = delay;
        self
    }

    /// How long, after a reconnection, an address the agent does not name is still held before
    /// it expires (a restarted agent needs a moment to hear everyone again, on every family).
    pub fn with_resync_grace(mut self, grace: Duration) -> Self {
        self.resync_grace = grace;
        self
    }
}

/// Rounds of work in one `poll` before yielding to the swarm (and asking to be polled again).
const ROUNDS_PER_POLL: usize = 64;

/// See the module docs.
pub struct Behaviour {
    key: Keypair,
    cfg: Config,
    peers: peers::Peers,
    listen: listen::Listen,
    /// The last `seq` signed.
    last_seq: u64,
    conn: Conn,
    backoff: Backoff,
    /// When to connect again (while down).
    retry_at: Instant,
    /// Why the agent is unreachable, once said (one log line per outage).
    outage: Option<String>,
    timer: Timer,
    events: VecDeque<ToSwarm<Event, Infallible>>,
    status: Option<async_channel::Sender<AgentStatus>>,
    waker: Option<Waker>,
}

impl Behaviour {
    /// A behaviour for the node of `keypair`, fed by the agent at `socket` (usually
    /// [`exo_discovery::default_socket_path`]).
    pub fn new(keypair: &Keypair, socket: impl Into<PathBuf>) -> Behaviour {
        Behaviour::with_config(keypair, Config::default().with_socket(socket))
    }

    /// As [`Behaviour::new`], with every setting.
    pub fn with_config(keypair: &Keypair, cfg: Config) -> Behaviour {
        Behaviour {
            key: keypair.clone(),
            peers: peers::Peers::new(keypair.public().to_peer_id(), cfg.resync_grace),
            listen: listen::Listen::new(cfg.register_delay, cfg.register_delay * 8),
            cfg,
            last_seq: 0,
            conn: Conn::Down,
            backoff: Backoff::default(),
            retry_at: Instant::now(),
            outage: None,
            timer: Timer::never(),
            events: VecDeque::new(),
            status: None,
            waker: None,
        }
    }

    /// The peers known now, each with its addresses (libp2p-mdns's `discovered_nodes`, with
    /// the addresses).
    pub fn discovered_nodes(&self) -> impl Iterator<Item = (&PeerId, &[Multiaddr])> {
        self.peers.iter()
    }

    /// The addresses known for `peer`: what `swarm.dial(peer)` is given.
    pub fn addresses_of_peer(&self, peer: &PeerId) -> &[Multiaddr] {
        self.peers.addresses(peer)
    }

    /// A channel of what happens to the link with the agent, from now on (a later call replaces
    /// it). A reader too slow loses the oldest news, never holds up the behaviour.
    pub fn agent_status(&mut self) -> async_channel::Receiver<AgentStatus> {
        let (tx, rx) = async_channel::bounded(32);
        self.status = Some(tx);
        rx
    }

    fn report(&self, status: AgentStatus) {
        if let Some(tx) = &self.status {
            let _ = tx.force_send(status);
        }
    }

    fn emit(&mut self, changes: peers::Changes) {
        if !changes.discovered.is_empty() {
            for (peer, addr) in &changes.discovered {
                log::debug!("discovered {peer} at {addr}");
            }
            let new = changes.discovered.clone();
            self.events
                .push_back(ToSwarm::GenerateEvent(Event::Discovered(new)));
            for (peer_id, address) in changes.discovered {
                self.events
                    .push_back(ToSwarm::NewExternalAddrOfPeer { peer_id, address });
            }
        }
        if !changes.expired.is_empty() {
            for (peer, addr) in &changes.expired {
                log::debug!("expired {peer} at {addr}");
            }
            self.events
                .push_back(ToSwarm::GenerateEvent(Event::Expired(changes.expired)));
        }
    }

    /// The earliest of the deadlines of the connection, the listen addresses and the peers.
    fn next_deadline(&self) -> Option<Instant> {
        let retry = matches!(self.conn, Conn::Down).then_some(self.retry_at);
        [
            retry,
            self.listen.next_deadline(),
            self.peers.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Event;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        _: ConnectionId,
        maybe_peer: Option<PeerId>,
        _: &[Multiaddr],
        _: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        Ok(maybe_peer.map_or_else(Vec::new, |p| self.peers.addresses(&p).to_vec()))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        ev: THandlerOutEvent<Self>,
    ) {
        match ev {}
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        let now = Instant::now();
        match event {
            FromSwarm::NewListenAddr(e) => self.listen.add(e.addr, now),
            FromSwarm::ExpiredListenAddr(e) => self.listen.remove(e.addr, now),
            _ => return,
        }
        self.wake();
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            self.waker = Some(cx.waker().clone());
        }
        for _ in 0..ROUNDS_PER_POLL {
            if let Some(ev) = self.events.pop_front() {
                return Poll::Ready(ev);
            }
            let now = Instant::now();
            let mut progress = match self.step(cx, now) {
                Step::Idle => false,
                Step::Progress => true,
                Step::Lost(why) => {
                    self.lost(why, now);
                    true
                }
            };
            if self.listen.settle(now) {
                self.register();
                progress = true;
            }
            let expired = self.peers.on_timeout(now);
            if !expired.expired.is_empty() {
                self.emit(expired);
                progress = true;
            }
            if progress {
                continue;
            }
            match self.next_deadline() {
                Some(at) => {
                    self.timer.set_at(at);
                    if Pin::new(&mut self.timer).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
                None => return Poll::Pending,
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Where the unit tests start their simulated clock (the pure parts never read the clock).
#[cfg(test)]
fn test_clock() -> Instant {
    Instant::now()
}
