//! The local Unix socket (does I/O): binding safely, checking who connects, and one task per
//! connection translating frames (see [`crate::wire::protocol`]) or JSON lines (see
//! [`crate::wire::protocol_json`]) into agent inputs.
//!
//! Its bounds (the decisions are in `limits`, pure): at most [`MAX_CONNECTIONS`] at once, a
//! newcomer beyond them taking the place of the connection idle longest among those that neither
//! registered nor subscribed; a hello within [`HANDSHAKE_TIMEOUT`], then a request every
//! [`IDLE_TIMEOUT`] until the connection registers or subscribes; and the bytes of unfinished
//! requests, beyond [`OWN_BYTES`] a connection, taken from [`SHARED_BYTES`] for all of them.

mod limits;

use crate::agent::Incoming;
use crate::engine::{Input, Request};
use crate::wire::protocol::{self, AgentMsg, ClientMsg, ErrorKind};
use crate::wire::protocol_json::{self, LineError};
use async_channel::{Receiver, Sender};
use async_io::{Async, Timer};
use futures_lite::io::BufReader;
use futures_lite::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use limits::{Admit, Budget, Hold, Roster};
use log::{debug, info};
use smol::LocalExecutor;
use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

pub use limits::{OWN_BYTES, SHARED_BYTES};

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

/// The bound socket; the file is removed when this is dropped.
pub struct Listener {
    inner: UnixListener,
    path: PathBuf,
}

impl Listener {
    /// A non-blocking handle on the same socket, for the accept loop.
    pub fn accept_async(&self) -> io::Result<Async<UnixListener>> {
        Async::new(self.inner.try_clone()?)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds the socket at `path`, owner-only (0600) before it accepts anything. A stale socket file
/// left by a dead agent is removed; a live agent or a file that is not a socket is an error.
pub fn bind(path: &Path) -> io::Result<Listener> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("another agent is already listening on {}", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ))
        }
        Err(_) => {}
    }
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::create_dir_all(dir)?;
        }
    }
    // Bind under a temporary name, restrict it, then move it into place: nobody can connect
    // before the permissions are set.
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let inner = UnixListener::bind(&tmp)?;
    let placed = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(Listener {
        inner,
        path: path.to_owned(),
    })
}

/// Why the default socket's directory cannot be used. Its `Display` is one line naming the
/// directory, what is wrong with it, and what to do.
#[derive(Debug)]
#[non_exhaustive]
pub enum SocketDirError {
    /// It is missing and could not be created, or could not be examined.
    Io(PathBuf, io::Error),
    /// It is a symbolic link, which could lead anywhere.
    Symlink(PathBuf),
    /// It is something other than a directory.
    NotDirectory(PathBuf),
    /// Another user owns it, and so decides what is in it.
    Owner {
        /// The directory.
        dir: PathBuf,
        /// Its owner.
        owner: u32,
        /// The agent's (effective) uid.
        me: u32,
    },
    /// Its group or others have some permission on it.
    Mode {
        /// The directory.
        dir: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

impl std::fmt::Display for SocketDirError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const FIX: &str = "remove it or set socket = \"...\" in the config";
        match self {
            SocketDirError::Io(d, e) => write!(
                f,
                "cannot create socket directory {}: {e}; set socket = \"...\" in the config",
                d.display()
            ),
            SocketDirError::Symlink(d) => write!(
                f,
                "socket directory {} is a symbolic link, not a directory: {FIX}",
                d.display()
            ),
            SocketDirError::NotDirectory(d) => {
                write!(f, "socket directory {} is not a directory: {FIX}", d.display())
            }
            SocketDirError::Owner { dir, owner, me } => write!(
                f,
                "socket directory {} is owned by uid {owner}, not {me}: {FIX}",
                dir.display()
            ),
            SocketDirError::Mode { dir, mode } => write!(
                f,
                "socket directory {} has mode {mode:04o}, open to group or others (want 0700): {FIX}",
                dir.display()
            ),
        }
    }
}

impl std::error::Error for SocketDirError {}

/// What a directory entry is, as far as [`dir_verdict`] cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EntryKind {
    Directory,
    Symlink,
    Other,
}

/// Whether an entry of `kind`, owned by `owner` with permission bits `mode`, may hold the socket
/// of an agent running as `me`: a real directory of its own that nobody else may use.
fn dir_verdict(
    dir: &Path,
    kind: EntryKind,
    owner: u32,
    mode: u32,
    me: u32,
) -> Result<(), SocketDirError> {
    match kind {
        EntryKind::Symlink => return Err(SocketDirError::Symlink(dir.to_owned())),
        EntryKind::Other => return Err(SocketDirError::NotDirectory(dir.to_owned())),
        EntryKind::Directory => {}
    }
    if owner != me {
        return Err(SocketDirError::Owner {
            dir: dir.to_owned(),
            owner,
            me,
        });
    }
    if mode & 0o077 != 0 {
        return Err(SocketDirError::Mode {
            dir: dir.to_owned(),
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

/// Makes `dir` (the default socket's directory) owner-only (0700) if it is missing, then checks
/// that it is a real directory (not a symbolic link), owned by this user, with no permission for
/// group or others. In a shared parent such as `/tmp`, anyone may have made the name first.
pub fn private_dir(dir: &Path) -> Result<(), SocketDirError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    // Created with its mode: there is no moment when it is open to others. An existing entry is
    // judged below, whatever it is.
    let created = std::fs::DirBuilder::new().mode(0o700).create(dir);
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| SocketDirError::Io(dir.to_owned(), created.err().unwrap_or(e)))?;
    let kind = if meta.file_type().is_symlink() {
        EntryKind::Symlink
    } else if meta.is_dir() {
        EntryKind::Directory
    } else {
        EntryKind::Other
    };
    dir_verdict(
        dir,
        kind,
        meta.uid(),
        meta.mode(),
        nix::unistd::geteuid().as_raw(),
    )
}

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

/// The buffer of one unfinished request: bytes beyond the connection's own [`OWN_BYTES`] are
/// taken from the shared budget as it grows, and given back when it is dropped (the request was
/// decoded, or the connection ended).
struct Held<'a> {
    buf: Vec<u8>,
    hold: Hold,
    /// The most this request may hold.
    cap: usize,
    common: &'a Common,
}

impl<'a> Held<'a> {
    fn new(common: &'a Common, cap: usize) -> Held<'a> {
        Held {
            buf: Vec::new(),
            hold: Hold::default(),
            cap,
            common,
        }
    }

    /// Appends `bytes`, growing the buffer if the budget has room; `false` (nothing appended)
    /// if it has not.
    fn extend(&mut self, bytes: &[u8]) -> bool {
        let needed = self.buf.len() + bytes.len();
        if needed > self.buf.capacity() {
            let grown = self
                .common
                .borrow_mut()
                .budget
                .grow(self.hold, needed, self.cap);
            let Some(hold) = grown else {
                return false;
            };
            self.hold = hold;
            self.buf.reserve_exact(hold.capacity - self.buf.len());
        }
        self.buf.extend_from_slice(bytes);
        true
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.common.borrow_mut().budget.release(self.hold);
    }
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

/// Reads one frame, its body taken from the budget as its bytes come (never the declared
/// length before).
async fn read_frame(r: &mut Reader<'_>, common: &Common) -> io::Result<Got> {
    let mut prefix = [0u8; 4];
    match r.read_exact(&mut prefix).await {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Got::End),
        Err(e) => return Err(e),
    }
    let len = match protocol::body_len(prefix) {
        Ok(n) => n,
        Err(e) => return Ok(Got::Malformed(e.to_string())),
    };
    let mut body = Held::new(common, len);
    while body.buf.len() < len {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let n = buf.len().min(len - body.buf.len());
        if !body.extend(&buf[..n]) {
            return Ok(Got::NoRoom);
        }
        r.consume(n);
    }
    Ok(match protocol::decode(&body.buf) {
        Ok(msg) => Got::Msg(msg),
        Err(e) => Got::Malformed(e.to_string()),
    })
}

/// Reads one line that is not blank, without its `\n`, refusing one longer than
/// [`protocol::MAX_FRAME`] before holding more than that, and one the budget has no room for. A last
/// line without `\n` counts. `Ok(Err(got))`: the refusal, as [`Got::Malformed`] or
/// [`Got::NoRoom`].
async fn read_line<'a>(
    r: &mut Reader<'_>,
    common: &'a Common,
) -> io::Result<Result<Option<Held<'a>>, Got>> {
    let mut line = Held::new(common, protocol::MAX_FRAME);
    loop {
        let buf = r.fill_buf().await?;
        let (chunk, end) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        let eof = buf.is_empty();
        if line.buf.len() + chunk.len() > protocol::MAX_FRAME {
            return Ok(Err(Got::Malformed(format!(
                "line longer than {} bytes",
                protocol::MAX_FRAME
            ))));
        }
        if !line.extend(chunk) {
            return Ok(Err(Got::NoRoom));
        }
        let used = end.unwrap_or(chunk.len());
        r.consume(used);
        if end.is_some() || eof {
            let blank = line.buf.iter().all(|b| b.is_ascii_whitespace());
            if !blank {
                return Ok(Ok(Some(line)));
            }
            if eof {
                return Ok(Ok(None));
            }
            line.buf.clear();
        }
    }
}

/// Reads one JSON line as a request.
async fn read_json(r: &mut Reader<'_>, common: &Common) -> io::Result<Got> {
    Ok(match read_line(r, common).await? {
        Ok(None) => Got::End,
        Ok(Some(line)) => match protocol_json::parse_request(&line.buf) {
            Ok(msg) => Got::Msg(msg),
            Err(LineError::Malformed(why)) => Got::Malformed(why),
            Err(LineError::BadRequest(why)) => Got::BadRequest(why),
        },
        Err(refused) => refused,
    })
}

/// Reads the next request in the connection's form.
async fn read_request(r: &mut Reader<'_>, mode: Mode, common: &Common) -> io::Result<Got> {
    match mode {
        Mode::Binary => read_frame(r, common).await,
        Mode::Json => read_json(r, common).await,
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
    let Some(mode) = shaken.await? else {
        return Ok(());
    };
    // The hello was its first request: idle from now.
    common
        .borrow_mut()
        .roster
        .request(id, Instant::now(), false);
    let (tx, rx) = async_channel::bounded::<AgentMsg>(CLIENT_QUEUE);
    let (done_tx, done_rx) = async_channel::bounded::<()>(1);
    let writer = async {
        let mut w = &stream;
        while let Ok(msg) = rx.recv().await {
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
                futures_lite::future::or(next_request(&mut reader, mode, common), closed).await;
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
                    (Some(Incoming::Input(Input::Client { id, request })), false)
                }
                Next::Answer(msg) => (Some(Incoming::Reply { id, msg }), false),
                Next::Close(msg) => (msg.map(|msg| Incoming::Reply { id, msg }), true),
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
        let gone = Incoming::Input(Input::Client {
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
/// of this protocol version, as a binary frame or a JSON line (which sets the connection's
/// [`Mode`]), answered with `Welcome` in the same form. `Ok(None)` when the connection was
/// refused (with an error) or closed before a hello.
///
/// The uid is checked before anything is read, so that refusal is a binary frame whatever the
/// client speaks (as is the refusal of a connection over [`MAX_CONNECTIONS`]).
async fn handshake(
    stream: &Async<UnixStream>,
    reader: &mut Reader<'_>,
    namespace: String,
    common: &Common,
) -> io::Result<Option<Mode>> {
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
                None => return Ok((Mode::Binary, Got::End)),
                Some(&protocol_json::FIRST_BYTE) => Mode::Json,
                Some(_) => Mode::Binary,
            };
            Ok((mode, read_request(reader, mode, common).await?))
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
    let (mode, got) = hello?;
    let (kind, message) = match got {
        Got::Msg(ClientMsg::Hello { magic, version })
            if magic == protocol::MAGIC && version == protocol::PROTOCOL_VERSION =>
        {
            let mut w = stream;
            w.write_all(&encode(
                mode,
                &AgentMsg::Welcome {
                    version: protocol::PROTOCOL_VERSION,
                    namespace,
                },
            ))
            .await?;
            return Ok(Some(mode));
        }
        Got::Msg(ClientMsg::Hello { magic, .. }) if magic != protocol::MAGIC => (
            ErrorKind::Handshake,
            format!(
                "not an exo-discovery client: magic {magic:?}, expected {:?}",
                protocol::MAGIC
            ),
        ),
        Got::Msg(ClientMsg::Hello { version, .. }) => (
            ErrorKind::Handshake,
            format!(
                "protocol version {version} not supported (the agent speaks {})",
                protocol::PROTOCOL_VERSION
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
async fn next_request(reader: &mut Reader<'_>, mode: Mode, common: &Common) -> Next {
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
    let msg = match read_request(reader, mode, common).await {
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
        msg @ (ClientMsg::AddHost { .. }
        | ClientMsg::RemoveHost { .. }
        | ClientMsg::AddPeer { .. }) => Request::Manage(msg),
        ClientMsg::Hello { .. } => return malformed("a second hello".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_own_owner_only_directory_may_hold_the_socket() {
        let d = Path::new("/tmp/exo-discovery-1000");
        assert!(dir_verdict(d, EntryKind::Directory, 1000, 0o40700, 1000).is_ok());
        assert!(dir_verdict(d, EntryKind::Directory, 1000, 0o40500, 1000).is_ok());

        let e = dir_verdict(d, EntryKind::Directory, 65534, 0o40700, 1000).unwrap_err();
        assert!(matches!(
            e,
            SocketDirError::Owner {
                owner: 65534,
                me: 1000,
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "socket directory /tmp/exo-discovery-1000 is owned by uid 65534, not 1000: \
             remove it or set socket = \"...\" in the config"
        );
        for mode in [0o40750, 0o40701, 0o40777, 0o41777] {
            let e = dir_verdict(d, EntryKind::Directory, 1000, mode, 1000).unwrap_err();
            assert!(matches!(e, SocketDirError::Mode { .. }), "{mode:o}");
            assert!(
                e.to_string()
                    .contains(&format!("mode {:04o}", mode & 0o7777)),
                "{e}"
            );
        }
        let e = dir_verdict(d, EntryKind::Symlink, 1000, 0o120777, 1000).unwrap_err();
        assert!(e.to_string().contains("is a symbolic link"), "{e}");
        let e = dir_verdict(d, EntryKind::Other, 1000, 0o100600, 1000).unwrap_err();
        assert!(e.to_string().contains("is not a directory"), "{e}");
        // The kind is judged first: someone else's symbolic link is reported as a link.
        let e = dir_verdict(d, EntryKind::Symlink, 65534, 0o120777, 1000).unwrap_err();
        assert!(matches!(e, SocketDirError::Symlink(_)));
    }

    #[test]
    fn every_refusal_is_one_line_naming_the_directory() {
        let d = PathBuf::from("/run/user/7/exo-discovery");
        let errors = [
            SocketDirError::Io(d.clone(), io::Error::from(io::ErrorKind::NotFound)),
            SocketDirError::Symlink(d.clone()),
            SocketDirError::NotDirectory(d.clone()),
            SocketDirError::Owner {
                dir: d.clone(),
                owner: 0,
                me: 7,
            },
            SocketDirError::Mode {
                dir: d.clone(),
                mode: 0o755,
            },
        ];
        for e in errors {
            let line = e.to_string();
            assert!(!line.contains('\n'), "{line:?}");
            assert!(line.contains("/run/user/7/exo-discovery"), "{line}");
        }
    }
}
