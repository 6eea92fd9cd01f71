//! The local Unix socket's connections (does I/O): checking who connects, and one task per
//! connection translating frames (see [`crate::wire::protocol`]) or JSON lines (see
//! [`crate::wire::protocol_json`]) into agent inputs. Where the socket lives, and binding it
//! safely, is `socket_file`.
//!
//! Its bounds (the decisions are in `limits`, pure): at most [`MAX_CONNECTIONS`] at once, a
//! newcomer beyond them taking the place of the connection idle longest among those that neither
//! registered nor subscribed; a hello within [`HANDSHAKE_TIMEOUT`], then a request every
//! [`IDLE_TIMEOUT`] until the connection registers or subscribes; and the bytes of unfinished
//! requests, beyond [`OWN_BYTES`] a connection, taken from [`SHARED_BYTES`] for all of them.

mod limits;
mod socket_file;

use crate::agent::Incoming;
use crate::engine::{Input, Request};
use crate::wire::protocol::{
    self, AgentMsg, ClientMsg, DecodeError, ErrorKind, FrameDecoder, Framing, Room,
};
use crate::wire::protocol_json::{self, LineError};
use async_channel::{Receiver, Sender};
use async_io::{Async, Timer};
use futures_lite::io::BufReader;
use futures_lite::{AsyncBufReadExt, AsyncWriteExt};
use limits::{Admit, Budget, Hold, Roster};
use log::{debug, info};
use smol::LocalExecutor;
use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

pub use limits::{OWN_BYTES, SHARED_BYTES};
pub use socket_file::{bind, private_dir, Listener};

/// Outgoing queue per connection; a client further behind is resynchronised with a snapshot.
pub const CLIENT_QUEUE: usize = 256;
/// How long a new connection has to say Hello.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection past its hello that neither registered nor subscribed may send nothing
/// before it is closed. The command line asks at once and closes, and a node registers or
/// subscribes at once (`Client`, `Reconnecting`, the libp2p behaviour), so none of them comes near
/// it; a connection that does only holds one of the [`MAX_CONNECTIONS`] places.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
pub use crate::wire::protocol::MAX_CONNECTIONS;

/// What the connection tasks share: who is open, the budget of their unfinished requests, and
/// how to tell one to close.
struct Shared {
    roster: Roster,
    budget: Budget,
    /// Closing a connection's sender tells it to close (to make room for a newcomer).
    kicks: HashMap<u64, Sender<()>>,
}

/// [`Shared`], as each task holds it (they all run on one thread).
type Common = Rc<RefCell<Shared>>;

/// Accepts connections forever, spawning one task each on `ex`.
pub(crate) async fn serve<'ex>(
    listener: Async<UnixListener>,
    ex: Rc<LocalExecutor<'ex>>,
    input: Sender<Incoming>,
    namespace: String,
) {
    let common: Common = Rc::new(RefCell::new(Shared {
        roster: Roster::new(MAX_CONNECTIONS),
        budget: Budget::new(SHARED_BYTES),
        kicks: HashMap::new(),
    }));
    let mut next_id = 0u64;
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                debug!("accept failed: {e}");
                Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        next_id += 1;
        let id = next_id;
        let admit = common.borrow_mut().roster.admit(id, Instant::now());
        match admit {
            Admit::Take => {}
            Admit::InPlaceOf(old) => {
                debug!(
                    "connection {old}: closed to make room for connection {id} (idle longest, \
                     neither registered nor subscribed)"
                );
                let kick = common.borrow_mut().kicks.remove(&old);
                if let Some(kick) = kick {
                    kick.close();
                }
            }
            Admit::Refuse => {
                let refusal = format!(
                    "too many connections: all {MAX_CONNECTIONS} registered a node or subscribed"
                );
                let _ = refuse(&stream, Mode::Binary, ErrorKind::Limit, refusal).await;
                continue;
            }
        }
        let (kick, kicked) = async_channel::bounded::<()>(1);
        common.borrow_mut().kicks.insert(id, kick);
        let input = input.clone();
        let namespace = namespace.clone();
        let common = common.clone();
        ex.spawn(async move {
            if let Err(e) = connection(stream, id, input, namespace, &common, kicked).await {
                debug!("connection {id}: {e}");
            }
            let mut shared = common.borrow_mut();
            shared.roster.leave(id);
            shared.kicks.remove(&id);
        })
        .detach();
    }
}

/// How a connection speaks, chosen by its first byte: a binary frame starts with 0 (the high
/// byte of a length of at most [`protocol::MAX_FRAME`]), a JSON line with `{`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Length-prefixed postcard frames ([`crate::wire::protocol`]).
    Binary,
    /// One JSON object per line ([`crate::wire::protocol_json`]).
    Json,
}

/// How a connection speaks: its form, and its protocol version (an older client is sent what
/// its version can decode, [`protocol::for_version`]).
#[derive(Clone, Copy, Debug)]
struct Speaks {
    mode: Mode,
    version: u16,
}

/// The reading side of a connection. Buffered: the first byte is looked at before it is read,
/// and a JSON client's requests may come in one write with its hello.
type Reader<'a> = BufReader<&'a Async<UnixStream>>;

/// What a client sent next.
enum Got {
    /// A request.
    Msg(ClientMsg),
    /// Something that is no request: answered with a `Malformed` error, then the connection is
    /// closed.
    Malformed(String),
    /// A request whose argument is not valid: answered with a `BadRequest` error.
    BadRequest(String),
    /// A request that found no room in the budget shared by all connections: answered with a
    /// `Limit` error, then the connection is closed.
    NoRoom,
    /// The end of the stream.
    End,
}

/// Where a connection's unfinished request takes its buffer from: beyond the connection's own
/// [`OWN_BYTES`], from the budget shared by all connections, as it grows; given back when the
/// request was decoded or the connection ended.
struct Share {
    common: Common,
    hold: Hold,
}

impl Room for Share {
    fn grow(&mut self, _capacity: usize, needed: usize, cap: usize) -> Option<usize> {
        let grown = self
            .common
            .borrow_mut()
            .budget
            .grow(self.hold, needed, cap);
        self.hold = grown?;
        Some(self.hold.capacity)
    }

    fn release(&mut self) {
        self.common.borrow_mut().budget.release(self.hold);
        self.hold = Hold::default();
    }
}

/// A connection's requests, out of the bytes it sends: a binary frame's body or a JSON line is
/// held as its bytes come (never a frame's declared length before), in a buffer taken from
/// [`Share`].
type Requests = FrameDecoder<Share>;

/// The decoder of a connection speaking `mode`.
fn requests(mode: Mode, common: &Common) -> Requests {
    let framing = match mode {
        Mode::Binary => Framing::LengthPrefixed,
        Mode::Json => Framing::Lines,
    };
    let share = Share {
        common: common.clone(),
        hold: Hold::default(),
    };
    FrameDecoder::with_room(framing, protocol::MAX_FRAME, share)
}

/// One message in the connection's form.
fn encode(mode: Mode, msg: &AgentMsg) -> Vec<u8> {
    match mode {
        Mode::Binary => protocol::encode_reply(msg),
        Mode::Json => protocol_json::agent_line(msg),
    }
}

async fn refuse(
    stream: &Async<UnixStream>,
    mode: Mode,
    kind: ErrorKind,
    message: String,
) -> io::Result<()> {
    let mut w = stream;
    w.write_all(&encode(mode, &AgentMsg::Error { kind, message }))
        .await
}

/// Reads the next request in the connection's form (its framing is its decoder's).
async fn read_request(r: &mut Reader<'_>, requests: &mut Requests) -> io::Result<Got> {
    let framing = requests.framing();
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            let in_body = requests.declared().is_some();
            return Ok(match requests.finish() {
                Ok(Some(last)) => request(framing, &last),
                Ok(None) => Got::End,
                // Cut inside a frame's body: the stream broke off (inside its length prefix,
                // the client just ended).
                Err(DecodeError::Truncated) if in_body => {
                    return Err(io::ErrorKind::UnexpectedEof.into())
                }
                Err(e) => refused(e),
            });
        }
        let mut rest = buf;
        let pushed = requests.push(&mut rest);
        let used = buf.len() - rest.len();
        let got = match pushed {
            Ok(Some(body)) => Some(request(framing, &body)),
            Ok(None) => None,
            Err(e) => Some(refused(e)),
        };
        r.consume(used);
        if let Some(got) = got {
            return Ok(got);
        }
    }
}

/// A whole frame's body as a request.
fn request(framing: Framing, body: &[u8]) -> Got {
    match framing {
        Framing::LengthPrefixed => match protocol::decode(body) {
            Ok(msg) => Got::Msg(msg),
            Err(e) => Got::Malformed(e.to_string()),
        },
        Framing::Lines => match protocol_json::parse_request(body) {
            Ok(msg) => Got::Msg(msg),
            Err(LineError::Malformed(why)) => Got::Malformed(why),
            Err(LineError::BadRequest(why)) => Got::BadRequest(why),
        },
    }
}

/// A request the decoder refused.
fn refused(e: DecodeError) -> Got {
    match e {
        DecodeError::NoRoom => Got::NoRoom,
        DecodeError::TooLarge { .. } | DecodeError::LineTooLong { .. } => {
            Got::Malformed(e.to_string())
        }
        DecodeError::Truncated => Got::End,
    }
}

/// Serves one client: the handshake, then its requests as agent inputs and the agent's replies
/// and events back to it, until either side is done.
async fn connection(
    stream: Async<UnixStream>,
    id: u64,
    input: Sender<Incoming>,
    namespace: String,
    common: &Common,
    kicked: Receiver<()>,
) -> io::Result<()> {
    let mut reader = BufReader::new(&stream);
    // Made room for a newcomer before its hello: closed without a word, as a silent one is.
    let shaken =
        futures_lite::future::or(handshake(&stream, &mut reader, namespace, common), async {
            let _ = kicked.recv().await;
            Ok(None)
        });
    let Some((Speaks { mode, version }, mut requests)) = shaken.await? else {
        return Ok(());
    };
    // The hello was its first request: idle from now.
    common
        .borrow_mut()
        .roster
        .request(id, Instant::now(), false);
    let (tx, rx) = async_channel::bounded::<Box<AgentMsg>>(CLIENT_QUEUE);
    let (done_tx, done_rx) = async_channel::bounded::<()>(1);
    let writer = async {
        let mut w = &stream;
        while let Ok(msg) = rx.recv().await {
            let msg = protocol::for_version(*msg, version);
            if w.write_all(&encode(mode, &msg)).await.is_err() {
                break;
            }
        }
    };
    // Once the reader is done, queued replies (an error frame, say) may still go out, but the
    // connection never waits on a client for long.
    let writer = futures_lite::future::or(writer, async {
        let _ = done_rx.recv().await;
        Timer::after(Duration::from_secs(2)).await;
    });
    let reader = async {
        let _ = input.send(Incoming::Connected { id, tx: tx.clone() }).await;
        // Everything the reader answers itself goes through the agent's loop too, so that
        // replies keep the order of the requests.
        loop {
            let deadline = common.borrow().roster.idle_deadline(id, IDLE_TIMEOUT);
            let closed = async {
                let kick = async {
                    let _ = kicked.recv().await;
                    limit(
                        "closed to make room for a new connection: this one had been idle \
                         longest without registering or subscribing"
                            .into(),
                    )
                };
                let idle = async {
                    match deadline {
                        Some(at) => Timer::at(at).await,
                        None => futures_lite::future::pending().await,
                    };
                    debug!("connection {id}: closing it after {IDLE_TIMEOUT:?} without a request");
                    limit(format!(
                        "no request for {} s, and neither registered nor subscribed: closing \
                         the connection",
                        IDLE_TIMEOUT.as_secs()
                    ))
                };
                futures_lite::future::or(kick, idle).await
            };
            let next =
                futures_lite::future::or(next_request(&mut reader, &mut requests, mode, common), closed)
                    .await;
            if let Next::Request(_) | Next::Answer(_) = &next {
                let settles = matches!(
                    next,
                    Next::Request(Request::Register(_) | Request::Subscribe)
                );
                common
                    .borrow_mut()
                    .roster
                    .request(id, Instant::now(), settles);
            }
            let (incoming, last) = match next {
                Next::Request(request) => {
                    (Some(Incoming::input(Input::Client { id, request })), false)
                }
                Next::Answer(msg) => (Some(Incoming::Reply { id, msg: Box::new(msg) }), false),
                Next::Close(msg) => (
                    msg.map(|msg| Incoming::Reply { id, msg: Box::new(msg) }),
                    true,
                ),
            };
            if let Some(incoming) = incoming {
                if input.send(incoming).await.is_err() {
                    break;
                }
            }
            if last {
                break;
            }
        }
        let gone = Incoming::input(Input::Client {
            id,
            request: Request::Gone,
        });
        let _ = input.send(gone).await;
        drop(tx);
        let _ = done_tx.send(()).await;
    };
    futures_lite::future::zip(reader, writer).await;
    Ok(())
}

/// The handshake: only the agent's own uid may connect, and its first message must be a hello
/// of a protocol version the agent speaks, as a binary frame or a JSON line (which sets the
/// connection's [`Mode`]), answered with `Welcome` in the same form. `Ok(None)` when the connection was
/// refused (with an error) or closed before a hello.
///
/// The uid is checked before anything is read, so that refusal is a binary frame whatever the
/// client speaks (as is the refusal of a connection over [`MAX_CONNECTIONS`]).
async fn handshake(
    stream: &Async<UnixStream>,
    reader: &mut Reader<'_>,
    namespace: String,
    common: &Common,
) -> io::Result<Option<(Speaks, Requests)>> {
    let me = nix::unistd::geteuid().as_raw();
    let them = crate::sys::peer_uid(stream.get_ref())?;
    if them != me {
        info!("refused a connection from uid {them} (the agent runs as uid {me})");
        refuse(
            stream,
            Mode::Binary,
            ErrorKind::Handshake,
            format!("connection refused: uid {them} is not the agent's uid {me}"),
        )
        .await?;
        return Ok(None);
    }
    // A connection that says nothing is closed after a while: idle connections must not use up
    // the connection limit and lock the node out.
    let hello = futures_lite::future::or(
        async {
            let mode = match reader.fill_buf().await?.first() {
                None => return Ok(None),
                Some(&protocol_json::FIRST_BYTE) => Mode::Json,
                Some(_) => Mode::Binary,
            };
            let mut requests = requests(mode, common);
            let got = read_request(reader, &mut requests).await?;
            Ok(Some((mode, requests, got)))
        },
        async {
            Timer::after(HANDSHAKE_TIMEOUT).await;
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no Hello within the handshake timeout",
            ))
        },
    )
    .await;
    let Some((mode, requests, got)) = hello? else {
        return Ok(None);
    };
    let (kind, message) = match got {
        Got::Msg(ClientMsg::Hello { magic, version }) if magic == protocol::MAGIC => {
            if let Some(version) = protocol::negotiate(version) {
                let mut w = stream;
                w.write_all(&encode(mode, &AgentMsg::Welcome { version, namespace }))
                    .await?;
                return Ok(Some((Speaks { mode, version }, requests)));
            }
            (
                ErrorKind::Handshake,
                format!(
                    "protocol version {version} not supported (the agent speaks {} to {})",
                    protocol::OLDEST_VERSION,
                    protocol::PROTOCOL_VERSION
                ),
            )
        }
        Got::Msg(ClientMsg::Hello { magic, .. }) if magic != protocol::MAGIC => (
            ErrorKind::Handshake,
            format!(
                "not an exo-discovery client: magic {magic:?}, expected {:?}",
                protocol::MAGIC
            ),
        ),
        Got::End => return Ok(None),
        Got::NoRoom => (ErrorKind::Limit, no_room()),
        Got::Malformed(why) | Got::BadRequest(why) if mode == Mode::Json => (
            ErrorKind::Malformed,
            format!("expected a hello line first ({why})"),
        ),
        Got::Msg(_) if mode == Mode::Json => {
            (ErrorKind::Malformed, "expected a hello line first".into())
        }
        Got::Msg(_) | Got::Malformed(_) | Got::BadRequest(_) => {
            (ErrorKind::Malformed, "expected a Hello frame first".into())
        }
    };
    refuse(stream, mode, kind, message).await?;
    Ok(None)
}

/// What to do with the next thing the client sent.
enum Next {
    /// Pass a request to the engine.
    Request(Request),
    /// Answer it here (a request with a bad argument), after the replies to the requests before.
    Answer(AgentMsg),
    /// Close the connection, after this error (a malformed message) if there is one.
    Close(Option<AgentMsg>),
}

/// A `Limit` error, then the connection is closed.
fn limit(message: String) -> Next {
    Next::Close(Some(AgentMsg::Error {
        kind: ErrorKind::Limit,
        message,
    }))
}

/// Why a request that found no room in the shared budget is refused.
fn no_room() -> String {
    format!(
        "no room for this request now: unfinished requests of all connections may hold {} MiB \
         beyond {} KiB each; closing the connection",
        SHARED_BYTES >> 20,
        OWN_BYTES >> 10
    )
}

/// Reads the next request from the client. The connection is to close at the end of the stream,
/// on a read error, on a malformed message and on one the budget has no room for.
async fn next_request(
    reader: &mut Reader<'_>,
    requests: &mut Requests,
    mode: Mode,
    common: &Common,
) -> Next {
    let malformed = |why: String| {
        let message = match mode {
            Mode::Binary => "malformed frame: closing the connection".into(),
            Mode::Json => format!("malformed line: {why}; closing the connection"),
        };
        Next::Close(Some(AgentMsg::Error {
            kind: ErrorKind::Malformed,
            message,
        }))
    };
    let msg = match read_request(reader, requests).await {
        Ok(Got::Msg(msg)) => msg,
        Ok(Got::BadRequest(message)) => {
            return Next::Answer(AgentMsg::Error {
                kind: ErrorKind::BadRequest,
                message,
            })
        }
        Ok(Got::Malformed(why)) => return malformed(why),
        Ok(Got::NoRoom) => {
            let used = common.borrow().budget.used();
            debug!("a request found no room ({used} bytes of the shared budget in use)");
            return limit(no_room());
        }
        Ok(Got::End) | Err(_) => return Next::Close(None),
    };
    Next::Request(match msg {
        ClientMsg::Register { signed_record } => Request::Register(signed_record),
        ClientMsg::List => Request::List,
        ClientMsg::Subscribe => Request::Subscribe,
        ClientMsg::Status => Request::Status,
        ClientMsg::Mesh => Request::Mesh,
        msg @ (ClientMsg::AddHost { .. }
        | ClientMsg::RemoveHost { .. }
        | ClientMsg::AddPeer { .. }) => Request::Manage(msg),
        ClientMsg::Hello { .. } => return malformed("a second hello".into()),
    })
}
