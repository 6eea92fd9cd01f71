//! The connection to the agent (does I/O): connecting to its socket, the handshake, the
//! subscription, registering the listen addresses, reading what the agent says, and, when the
//! connection is lost, connecting again with the backoff of
//! [`exo_discovery::client::reconnect`]. The [`Behaviour`] drives it from its `poll`, a step at
//! a time.

use crate::{frames, listen, AgentStatus, Behaviour};
use async_io::Async;
use exo_discovery::protocol::{self, AgentMsg, ClientMsg, ErrorKind};
use futures_lite::{AsyncRead, AsyncWrite};
use libp2p_core::Multiaddr;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

type Connecting = Pin<Box<dyn Future<Output = io::Result<Async<UnixStream>>> + Send>>;

/// The connection to the agent.
pub(crate) enum Conn {
    /// None; the next attempt at `retry_at`.
    Down,
    /// Connecting.
    Connecting(Connecting),
    /// Connected.
    Up(Box<Up>),
}

/// A live connection.
pub(crate) struct Up {
    stream: Async<UnixStream>,
    frames: frames::Frames,
    /// Bytes to send, from `sent` on.
    out: Vec<u8>,
    sent: usize,
    /// The agent's namespace, once it said `Welcome`.
    namespace: Option<String>,
    /// Whether the subscription's first snapshot came.
    synced: bool,
    /// The addresses last registered on this connection.
    registered: Option<Vec<Multiaddr>>,
    /// Registrations sent and not answered yet (answers come in order).
    in_flight: VecDeque<(u64, Vec<Multiaddr>)>,
}

impl Up {
    fn send(&mut self, msg: &ClientMsg) {
        self.out.extend_from_slice(&protocol::encode(msg));
    }
}

/// What one step of the connection did.
pub(crate) enum Step {
    /// Nothing more to do until woken.
    Idle,
    /// Something happened; go round again.
    Progress,
    /// The connection is gone (why).
    Lost(String),
}

impl Behaviour {
    fn socket(&self) -> &Path {
        &self.cfg.socket
    }

    /// One step of the connection: connect, send, receive, take in what came.
    pub(crate) fn step(&mut self, cx: &mut Context<'_>, now: Instant) -> Step {
        match &mut self.conn {
            Conn::Down if now >= self.retry_at => {
                let path = self.cfg.socket.clone();
                self.conn = Conn::Connecting(Box::pin(Async::<UnixStream>::connect(path)));
                Step::Progress
            }
            Conn::Down => Step::Idle,
            Conn::Connecting(fut) => match fut.as_mut().poll(cx) {
                Poll::Pending => Step::Idle,
                Poll::Ready(Err(e)) => Step::Lost(format!(
                    "agent not running: cannot connect to {} ({e})",
                    self.cfg.socket.display()
                )),
                Poll::Ready(Ok(stream)) => {
                    if let Err(why) = exo_discovery::client::served_by_me(stream.get_ref()) {
                        return Step::Lost(format!(
                            "socket {} refused: {why}",
                            self.socket().display()
                        ));
                    }
                    let mut up = Up {
                        stream,
                        frames: frames::Frames::default(),
                        out: Vec::new(),
                        sent: 0,
                        namespace: None,
                        synced: false,
                        registered: None,
                        in_flight: VecDeque::new(),
                    };
                    up.send(&ClientMsg::Hello {
                        magic: protocol::MAGIC.into(),
                        version: protocol::PROTOCOL_VERSION,
                    });
                    self.conn = Conn::Up(Box::new(up));
                    Step::Progress
                }
            },
            Conn::Up(up) => {
                let mut progress = false;
                while up.sent < up.out.len() {
                    match Pin::new(&mut up.stream).poll_write(cx, &up.out[up.sent..]) {
                        Poll::Ready(Ok(0)) => {
                            return Step::Lost("the agent closed the connection".into())
                        }
                        Poll::Ready(Ok(n)) => {
                            up.sent += n;
                            progress = true;
                        }
                        Poll::Ready(Err(e)) => return Step::Lost(format!("socket error: {e}")),
                        Poll::Pending => break,
                    }
                }
                if up.sent == up.out.len() {
                    up.out.clear();
                    up.sent = 0;
                }
                let mut buf = [0u8; READ_CHUNK];
                let mut msgs = Vec::new();
                match Pin::new(&mut up.stream).poll_read(cx, &mut buf) {
                    Poll::Ready(Ok(0)) => {
                        return Step::Lost("the agent closed the connection".into())
                    }
                    Poll::Ready(Ok(n)) => {
                        match up.frames.push(&buf[..n]) {
                            Ok(m) => msgs = m,
                            Err(e) => {
                                return Step::Lost(format!("unexpected bytes from the agent: {e}"))
                            }
                        }
                        progress = true;
                    }
                    Poll::Ready(Err(e)) => return Step::Lost(format!("socket error: {e}")),
                    Poll::Pending => {}
                }
                for msg in msgs {
                    progress = true;
                    if let Err(why) = self.on_msg(msg, now) {
                        return Step::Lost(why);
                    }
                }
                if progress {
                    Step::Progress
                } else {
                    Step::Idle
                }
            }
        }
    }

    /// Takes in one message from the agent; `Err` closes the connection.
    fn on_msg(&mut self, msg: AgentMsg, now: Instant) -> Result<(), String> {
        let Conn::Up(up) = &mut self.conn else {
            return Ok(());
        };
        if up.namespace.is_none() {
            return match msg {
                AgentMsg::Welcome { namespace, .. } => {
                    log::info!(
                        "connected to the agent at {} (namespace {namespace})",
                        self.cfg.socket.display()
                    );
                    up.namespace = Some(namespace);
                    up.send(&ClientMsg::Subscribe);
                    self.outage = None;
                    if !self.listen.pending() {
                        self.register();
                    }
                    Ok(())
                }
                AgentMsg::Error { message, .. } => {
                    Err(format!("the agent refused the connection: {message}"))
                }
                other => Err(format!("unexpected reply from the agent: {other:?}")),
            };
        }
        match msg {
            AgentMsg::Snapshot(list) => {
                let n = list.len();
                let first = !up.synced;
                up.synced = true;
                let namespace = up.namespace.clone().unwrap_or_default();
                let changes = self.peers.snapshot(list, now);
                self.emit(changes);
                if first {
                    self.backoff.reset();
                    self.report(AgentStatus::Connected {
                        namespace,
                        peers: n,
                    });
                }
            }
            AgentMsg::Event(ev) => {
                let changes = self.peers.event(ev, now);
                self.emit(changes);
            }
            AgentMsg::Registered { .. } => {
                if let Some((seq, addrs)) = up.in_flight.pop_front() {
                    log::info!(
                        "registered {} listen addresses with the agent (seq {seq})",
                        addrs.len()
                    );
                    self.report(AgentStatus::Registered { seq, addrs });
                }
            }
            AgentMsg::Error {
                kind: ErrorKind::Malformed | ErrorKind::Handshake,
                message,
            } => {
                return Err(format!("the agent closed the connection: {message}"));
            }
            AgentMsg::Error { message, .. } => {
                if up.in_flight.pop_front().is_some() {
                    log::warn!("the agent refused the registration: {message}");
                    self.report(AgentStatus::Refused(message));
                } else {
                    log::warn!("the agent said: {message}");
                }
            }
            other => log::debug!("ignoring a message from the agent: {other:?}"),
        }
        Ok(())
    }

    /// Registers the listen addresses on the live connection, if they changed since the last
    /// registration on it. With none left, withdraws the registration: the agent ties it to the
    /// connection, so the connection is made again, without one.
    pub(crate) fn register(&mut self) {
        let Conn::Up(up) = &mut self.conn else {
            return;
        };
        let Some(agent_ns) = &up.namespace else {
            return;
        };
        let addrs = self.listen.addrs();
        if up.registered.as_deref() == Some(addrs) || (addrs.is_empty() && up.registered.is_none())
        {
            return;
        }
        if addrs.is_empty() {
            log::info!("no listen addresses left: withdrawing the registration");
            self.conn = Conn::Down;
            self.retry_at = Instant::now();
            self.peers.disconnected();
            return;
        }
        let ns = self.cfg.namespace.as_deref().unwrap_or(agent_ns);
        let seq = listen::next_seq(self.last_seq, exo_discovery::client::clock_micros());
        up.registered = Some(addrs.to_vec());
        match listen::signed_record(&self.key, ns, seq, addrs) {
            Ok((signed_record, carried)) => {
                self.last_seq = seq;
                if carried != addrs {
                    log::info!(
                        "{} listen addresses do not fit in a record: registering {carried:?}",
                        addrs.len()
                    );
                }
                up.send(&ClientMsg::Register { signed_record });
                up.in_flight.push_back((seq, carried));
            }
            Err(e) => log::warn!("cannot register the listen addresses: {e}"),
        }
    }

    pub(crate) fn lost(&mut self, why: String, now: Instant) {
        self.conn = Conn::Down;
        self.retry_at = now + self.backoff.next_wait();
        self.peers.disconnected();
        if self.outage.is_none() {
            log::warn!("{why}; the swarm runs on, and the agent is tried again every 2 s at most");
            self.report(AgentStatus::Disconnected(why.clone()));
            self.outage = Some(why);
        } else {
            log::debug!("{why}");
        }
    }
}
