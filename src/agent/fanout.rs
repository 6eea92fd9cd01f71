//! Delivering replies and events to local clients without ever waiting on one. Pure: no I/O, only
//! non-blocking sends into each client's bounded queue.
//!
//! A subscriber whose queue is full misses events; it is marked out of sync and, once its queue
//! has room, is sent a fresh snapshot in place of everything it missed. Events that were already
//! queued stay in order before that snapshot, so the client's view is always right after the
//! snapshot arrives. The fan-out keeps no clock: a send that leaves a subscriber behind says so
//! (the shell tells the engine, `Input::Behind`), and the engine says when to try the snapshot
//! (`Action::Resync`, again while one is still waiting).

use crate::wire::protocol::{AgentMsg, PeerEvent, PeerInfo};
use async_channel::Sender;
use std::collections::HashMap;

/// A client's queue: boxed messages, as its [`crate::agent::server::CLIENT_QUEUE`] slots are all
/// in memory from the start.
pub type ToClient = Sender<Box<AgentMsg>>;

struct Client {
    tx: ToClient,
    subscribed: bool,
    desynced: bool,
}

/// The connected clients.
#[derive(Default)]
pub struct Fanout {
    clients: HashMap<u64, Client>,
}

impl Fanout {
    /// A client passed the handshake.
    pub fn connect(&mut self, id: u64, tx: ToClient) {
        self.clients.insert(
            id,
            Client {
                tx,
                subscribed: false,
                desynced: false,
            },
        );
    }

    /// A client went away.
    pub fn disconnect(&mut self, id: u64) {
        self.clients.remove(&id);
    }

    /// From now on `id` gets events.
    pub fn subscribe(&mut self, id: u64) {
        if let Some(c) = self.clients.get_mut(&id) {
            c.subscribed = true;
        }
    }

    /// A reply to one client. If its queue is full, a subscriber is resynchronised later; any
    /// other client simply misses the reply (it is not reading). Returns whether a subscriber
    /// fell out of sync.
    pub fn reply(&mut self, id: u64, msg: AgentMsg) -> bool {
        let Some(c) = self.clients.get_mut(&id) else {
            return false;
        };
        if c.tx.try_send(Box::new(msg)).is_ok() || c.desynced {
            return false;
        }
        c.desynced = c.subscribed;
        c.desynced
    }

    /// An event to every subscriber that is in sync. Returns whether one fell out of sync.
    pub fn broadcast(&mut self, ev: &PeerEvent) -> bool {
        let mut fell = false;
        for c in self
            .clients
            .values_mut()
            .filter(|c| c.subscribed && !c.desynced)
        {
            if c.tx.try_send(Box::new(AgentMsg::Event(ev.clone()))).is_err() {
                c.desynced = true;
                fell = true;
            }
        }
        fell
    }

    /// Clients connected.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// No client connected.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Whether some subscriber waits for a snapshot.
    pub fn needs_resync(&self) -> bool {
        self.clients.values().any(|c| c.desynced)
    }

    /// Sends `snapshot()` to every out-of-sync subscriber whose queue has room.
    pub fn resync(&mut self, snapshot: impl FnOnce() -> Vec<PeerInfo>) {
        if !self.needs_resync() {
            return;
        }
        let snap = snapshot();
        for c in self.clients.values_mut().filter(|c| c.desynced) {
            if c.tx.try_send(Box::new(AgentMsg::Snapshot(snap.clone()))).is_ok() {
                c.desynced = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::protocol::{EventKind, Source, Verification};

    fn ev(n: u64) -> PeerEvent {
        PeerEvent {
            event: EventKind::Discovered,
            peer: PeerInfo {
                peer_id: format!("p{n}"),
                addrs: vec![],
                interfaces: vec![],
                source: Source::Mdns,
                verified: vec![Verification::Signature],
                seq: n,
            },
        }
    }

    #[test]
    fn a_slow_subscriber_never_blocks_and_is_resynchronised() {
        let mut f = Fanout::default();
        let (slow_tx, slow_rx) = async_channel::bounded(2);
        let (fast_tx, fast_rx) = async_channel::bounded(100);
        f.connect(1, slow_tx);
        f.connect(2, fast_tx);
        f.subscribe(1);
        f.subscribe(2);
        for n in 0..10 {
            f.broadcast(&ev(n));
        }
        assert_eq!(fast_rx.len(), 10, "the fast client got everything");
        assert_eq!(slow_rx.len(), 2, "the slow one got what fit");
        assert!(f.needs_resync());
        f.resync(|| vec![ev(99).peer]);
        assert!(f.needs_resync(), "no room yet: still waiting");
        assert!(matches!(slow_rx.try_recv().map(|m| *m), Ok(AgentMsg::Event(_))));
        f.broadcast(&ev(10));
        assert_eq!(slow_rx.len(), 1, "no events while out of sync");
        f.resync(|| vec![ev(99).peer]);
        assert!(!f.needs_resync());
        assert!(matches!(slow_rx.try_recv().map(|m| *m), Ok(AgentMsg::Event(_))));
        match slow_rx.try_recv().map(|m| *m) {
            Ok(AgentMsg::Snapshot(s)) => assert_eq!(s[0].peer_id, "p99"),
            other => panic!("{other:?}"),
        }
        f.broadcast(&ev(11));
        assert!(
            matches!(slow_rx.try_recv().map(|m| *m), Ok(AgentMsg::Event(_))),
            "back in sync"
        );
    }

    #[test]
    fn unsubscribed_clients_get_replies_only() {
        let mut f = Fanout::default();
        let (tx, rx) = async_channel::bounded(4);
        f.connect(7, tx);
        f.broadcast(&ev(1));
        assert!(rx.is_empty());
        f.reply(7, AgentMsg::Snapshot(vec![]));
        assert_eq!(rx.len(), 1);
        f.disconnect(7);
        f.reply(7, AgentMsg::Snapshot(vec![]));
        assert_eq!(rx.len(), 1);
    }
}
