//! A client that outlives its agent (does I/O): when the agent restarts (an upgrade, a crash,
//! `systemctl restart`), it reconnects with a backoff from 50 ms up to 2 s, registers its node
//! again with a freshly signed record, subscribes again and hands over a `Snapshot`, so the node
//! resynchronises. `exo-discovery announce` and `watch` use it.
//!
//! What a node sees during the gap: its subscription reports [`Update::Lost`], then nothing
//! until [`Update::Back`] and a `Snapshot` that replaces everything it knew. Its peers do not see
//! it leave: the dying agent's goodbyes are confirmed by a probe of the node's port, which still
//! answers, so they keep it until its timeout, and the restarted agent announces it again as
//! soon as this client is back.
//!
//! ```no_run
//! use exo_discovery::client::reconnect::{Reconnecting, Update};
//! let key = libp2p_identity::Keypair::generate_ed25519();
//! let mut s = Reconnecting::connect(exo_discovery::default_socket_path())?;
//! s.register(key, vec!["/ip4/0.0.0.0/tcp/4001".parse()?], None)?;
//! for peer in s.subscribe()? {
//!     println!("dial {:?}", peer.addrs);
//! }
//! loop {
//!     match s.next_update()? {
//!         Update::Msg(msg) => println!("{msg:?}"),
//!         Update::Lost(why) => eprintln!("agent gone ({why}); reconnecting"),
//!         Update::Back => eprintln!("agent back"),
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::client::{clock_micros, Client, ClientError};
use crate::wire::protocol::{AgentMsg, PeerInfo};
use libp2p_identity::{Keypair, PeerId};
use multiaddr::Multiaddr;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// First wait before reconnecting; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Longest wait between two attempts to reconnect.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The waits between attempts to reconnect: [`FIRST_BACKOFF`], doubling up to [`MAX_BACKOFF`].
/// Pure (no clock): the caller sleeps or sets a timer. Shared by [`Reconnecting`] and the libp2p
/// behaviour (the crate `exo-discovery-libp2p`).
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: FIRST_BACKOFF,
        }
    }
}

impl Backoff {
    /// The wait before the next attempt; each call doubles the one after, up to [`MAX_BACKOFF`].
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        wait
    }

    /// Starts again from [`FIRST_BACKOFF`] (after a connection that worked).
    pub fn reset(&mut self) {
        self.next = FIRST_BACKOFF;
    }
}

/// What [`Reconnecting::next_update`] hands back.
#[derive(Debug)]
// One at a time, returned by value: boxing the message would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Update {
    /// A message from the agent (after a reconnection, a `Snapshot` first, if subscribed).
    Msg(AgentMsg),
    /// The connection was lost (why); the next call reconnects.
    Lost(String),
    /// Connected again: the node is registered again, the subscription renewed.
    Back,
}

/// The node this client keeps registered.
struct Node {
    key: Keypair,
    addrs: Vec<Multiaddr>,
    namespace: Option<String>,
}

/// See the module docs.
pub struct Reconnecting {
    path: PathBuf,
    client: Option<Client>,
    node: Option<Node>,
    subscribed: bool,
    /// The last `seq` signed: the next is never lower, whatever this host's clock does meanwhile.
    last_seq: u64,
    /// Count up from the first `seq` given instead of following the clock.
    counter: bool,
    queued: VecDeque<Update>,
}

impl Reconnecting {
    /// Connects to the agent at `path` (an error if none runs there now).
    pub fn connect(path: impl AsRef<Path>) -> Result<Reconnecting, ClientError> {
        let path = path.as_ref().to_owned();
        let client = Client::connect(&path)?;
        Ok(Reconnecting {
            path,
            client: Some(client),
            node: None,
            subscribed: false,
            last_seq: 0,
            counter: false,
            queued: VecDeque::new(),
        })
    }

    /// Signs `first` as the next `seq`, then counts up from it, instead of following this
    /// host's clock (a node that keeps its own counter).
    pub fn counting_from(mut self, first: u64) -> Reconnecting {
        self.counter = true;
        self.last_seq = first.saturating_sub(1);
        self
    }

    /// The namespace the agent serves (empty while disconnected).
    pub fn namespace(&self) -> &str {
        self.client.as_ref().map_or("", |c| c.namespace())
    }

    /// Registers `key`'s node with `addrs` (in `namespace`, or the agent's), now and after every
    /// reconnection.
    pub fn register(
        &mut self,
        key: Keypair,
        addrs: Vec<Multiaddr>,
        namespace: Option<&str>,
    ) -> Result<PeerId, ClientError> {
        let peer = key.public().to_peer_id();
        self.node = Some(Node {
            key,
            addrs,
            namespace: namespace.map(str::to_owned),
        });
        self.register_node()?;
        Ok(peer)
    }

    /// Subscribes to events, now and after every reconnection; returns the current peers.
    pub fn subscribe(&mut self) -> Result<Vec<PeerInfo>, ClientError> {
        self.subscribed = true;
        self.connected()?.subscribe()
    }

    /// Blocks for the next update; reconnects when the connection was lost. Errors only for what
    /// reconnecting cannot mend (the agent refuses the registration, another user serves the
    /// socket).
    pub fn next_update(&mut self) -> Result<Update, ClientError> {
        if let Some(u) = self.queued.pop_front() {
            return Ok(u);
        }
        let Some(client) = self.client.as_mut() else {
            self.reconnect()?;
            return Ok(Update::Back);
        };
        match client.next_message() {
            Ok(msg) => Ok(Update::Msg(msg)),
            Err(e @ (ClientError::Io(_) | ClientError::Protocol(_))) => {
                self.client = None;
                Ok(Update::Lost(e.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    fn connected(&mut self) -> Result<&mut Client, ClientError> {
        match self.client.as_mut() {
            Some(c) => Ok(c),
            None => Err(ClientError::Io(std::io::ErrorKind::NotConnected.into())),
        }
    }

    /// The next `seq`: this host's clock, or one more than the last if the clock went back.
    fn next_seq(&mut self) -> u64 {
        let clock = if self.counter { 0 } else { clock_micros() };
        self.last_seq = clock.max(self.last_seq + 1);
        self.last_seq
    }

    fn register_node(&mut self) -> Result<(), ClientError> {
        let seq = self.next_seq();
        let (Some(node), Some(client)) = (self.node.as_ref(), self.client.as_mut()) else {
            return Ok(());
        };
        let ns = node
            .namespace
            .clone()
            .unwrap_or_else(|| client.namespace().to_owned());
        client.register_seq(&node.key, &node.addrs, &ns, seq)?;
        Ok(())
    }

    /// Connects again, waiting between attempts, then registers and subscribes as before.
    fn reconnect(&mut self) -> Result<(), ClientError> {
        let mut backoff = Backoff::default();
        loop {
            match Client::connect(&self.path) {
                Ok(c) => {
                    self.client = Some(c);
                    match self.renew() {
                        Ok(()) => return Ok(()),
                        Err(ClientError::Io(_)) => self.client = None,
                        Err(e) => return Err(e),
                    }
                }
                Err(ClientError::NotRunning(..) | ClientError::Io(_)) => {}
                Err(e) => return Err(e),
            }
            std::thread::sleep(backoff.next_wait());
        }
    }

    fn renew(&mut self) -> Result<(), ClientError> {
        self.register_node()?;
        if self.subscribed {
            let peers = self.connected()?.subscribe()?;
            self.queued
                .push_back(Update::Msg(AgentMsg::Snapshot(peers)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_bound_and_starts_over_after_a_reset() {
        let mut b = Backoff::default();
        let waits: Vec<u128> = (0..8).map(|_| b.next_wait().as_millis()).collect();
        assert_eq!(waits, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
        b.reset();
        assert_eq!(b.next_wait(), FIRST_BACKOFF);
    }
}
