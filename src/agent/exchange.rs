//! Peer exchange over TCP (does I/O; the format is [`crate::wire::exchange`], the decisions the
//! engine's): the listener that answers other agents, and the ask sent to a static host.

use super::Incoming;
use crate::engine::exchange::{ASK_WITHIN, SERVE_TIMEOUT};
use crate::engine::mesh::Target;
use crate::wire::exchange::{self, Ask, Reply};
use crate::wire::mesh::{HostView, View};
use crate::wire::protocol::{self, DecodeError, FrameDecoder, Framing};
use crate::agent::unicast;
use crate::wire::net::HostSpec;
use async_channel::Sender;
use async_io::{Async, Timer};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use smol::LocalExecutor;
use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::time::Duration;

/// The exchange connections open now, by the asker's IP.
#[derive(Default)]
struct Open {
    by_ip: HashMap<IpAddr, usize>,
    total: usize,
}

/// One open connection's place in [`Open`], given back when it ends.
struct Slot {
    open: Rc<RefCell<Open>>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut o = self.open.borrow_mut();
        o.total = o.total.saturating_sub(1);
        if let Some(n) = o.by_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                o.by_ip.remove(&self.ip);
            }
        }
    }
}

/// Listens on TCP port [`exchange::PORT`] of every address (IPv6 and IPv4 on one socket where
/// the system allows, else IPv4 only), or says why it cannot.
pub(super) fn listen() -> io::Result<Async<TcpListener>> {
    use socket2::{Domain, Protocol, Socket, Type};
    let open = |v6: bool| -> io::Result<TcpListener> {
        let (domain, addr) = if v6 {
            (Domain::IPV6, SocketAddr::from(([0u16; 8], exchange::PORT)))
        } else {
            (Domain::IPV4, SocketAddr::from(([0u8; 4], exchange::PORT)))
        };
        let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
        if v6 {
            s.set_only_v6(false)?;
        }
        // A restarted agent binds again at once, past connections in TIME_WAIT.
        s.set_reuse_address(true)?;
        s.bind(&addr.into())?;
        s.listen(64)?;
        Ok(s.into())
    };
    let listener = open(true).or_else(|_| open(false))?;
    Async::new(listener)
}

/// Answers other agents' asks on `listener` until the agent stops. Each connection is first
/// shown to the engine, which admits it or has it closed at once (see
/// `engine/exchange.rs`); an admitted one must send its ask within [`ASK_WITHIN`], and the whole
/// exchange ends within [`SERVE_TIMEOUT`].
pub(super) async fn serve(
    listener: Async<TcpListener>,
    ex: Rc<LocalExecutor<'_>>,
    tx: Sender<Incoming>,
) {
    let open = Rc::new(RefCell::new(Open::default()));
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors, most likely: wait rather than spin.
                log::debug!("peer exchange: accept: {e}");
                Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        // An IPv4 asker on the dual-stack socket appears as `::ffff:a.b.c.d`.
        let from = match from {
            SocketAddr::V6(v6) if v6.ip().to_ipv4_mapped().is_some() => {
                SocketAddr::new(v6.ip().to_canonical(), v6.port())
            }
            other => other,
        };
        let ip = from.ip();
        let (same_ip, total) = {
            let o = open.borrow();
            (o.by_ip.get(&ip).copied().unwrap_or(0), o.total)
        };
        let (admit_tx, admit_rx) = async_channel::bounded(1);
        let asked = tx.send(Incoming::ExchangeOpened {
            from,
            same_ip,
            open: total,
            admit: admit_tx,
        });
        if asked.await.is_err() {
            return;
        }
        if !admit_rx.recv().await.unwrap_or(false) {
            continue; // dropped: closed at once
        }
        {
            let mut o = open.borrow_mut();
            o.total += 1;
            *o.by_ip.entry(ip).or_default() += 1;
        }
        let slot = Slot {
            open: open.clone(),
            ip,
        };
        let tx = tx.clone();
        ex.spawn(async move {
            let _slot = slot;
            let _ = futures_lite::future::or(answer(stream, from, tx), async {
                Timer::after(SERVE_TIMEOUT).await;
                Ok(())
            })
            .await;
        })
        .detach();
    }
}

/// One asker: its ask in (within [`ASK_WITHIN`]), the engine's reply out.
async fn answer(
    mut stream: Async<TcpStream>,
    from: SocketAddr,
    tx: Sender<Incoming>,
) -> io::Result<()> {
    let decode_ask = |body: &[u8]| protocol::decode::<Ask>(body).map_err(|e| e.to_string());
    let read = futures_lite::future::or(
        read_frame(&mut stream, exchange::MAX_ASK, decode_ask),
        async {
            Timer::after(ASK_WITHIN).await;
            Err(io::Error::new(io::ErrorKind::TimedOut, "no ask in time"))
        },
    );
    let ask = read.await?;
    let reply = match ask {
        Ok(ask) => {
            let (reply_tx, reply_rx) = async_channel::bounded(1);
            let to = stream.get_ref().local_addr()?.ip().to_canonical();
            let sent = tx.send(Incoming::Exchange {
                from: from.ip(),
                to,
                ask: Box::new(ask),
                reply: reply_tx,
            });
            if sent.await.is_err() {
                return Ok(());
            }
            match reply_rx.recv().await {
                Ok(r) => r,
                Err(_) => return Ok(()),
            }
        }
        Err(why) => Reply::Refused { why },
    };
    stream.write_all(&protocol::encode(&reply)).await?;
    stream.flush().await
}

/// Most bytes read from a connection at once.
const READ_CHUNK: usize = 8 * 1024;

/// Reads one frame of at most `max` bytes, never a byte past it, and decodes its body: the
/// value, or (inner `Err`) why it is refused.
async fn read_frame<T>(
    stream: &mut Async<TcpStream>,
    max: usize,
    decode: impl FnOnce(&[u8]) -> Result<T, String>,
) -> io::Result<Result<T, String>> {
    let mut frames = FrameDecoder::new(Framing::LengthPrefixed, max);
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        let n = frames.wants().min(READ_CHUNK);
        stream.read_exact(&mut chunk[..n]).await?;
        let mut input = &chunk[..n];
        match frames.push(&mut input) {
            Ok(Some(body)) => return Ok(decode(&body)),
            Ok(None) => {}
            Err(DecodeError::TooLarge { len, max }) => {
                return Ok(Err(format!("a frame of {len} bytes (at most {max})")))
            }
            Err(
                e @ (DecodeError::LineTooLong { .. } | DecodeError::NoRoom | DecodeError::Truncated),
            ) => return Ok(Err(e.to_string())),
        }
    }
}

/// Asks the agent of a static host for its peers: the first of its addresses that takes the
/// connection answers; the whole takes at most `timeout`.
pub(super) fn ask(
    ex: &LocalExecutor<'_>,
    tx: Sender<Incoming>,
    host: String,
    spec: HostSpec,
    namespace: String,
    timeout: Duration,
) {
    ex.spawn(async move {
        let result = futures_lite::future::or(ask_host(&spec, &namespace), async {
            Timer::after(timeout).await;
            Err(format!("no answer within {} ms", timeout.as_millis()))
        })
        .await;
        let input = crate::engine::Input::Exchanged { host, result };
        let _ = tx.send(Incoming::input(input)).await;
    })
    .detach();
}

async fn ask_host(spec: &HostSpec, namespace: &str) -> Result<Reply, String> {
    let mut errors = Vec::new();
    for (target, _zone) in unicast::resolve(spec).await? {
        let mut target = target;
        target.set_port(exchange::PORT);
        match ask_at(target, &Ask::new(namespace)).await {
            Ok(reply) => return Ok(reply),
            Err(e) => errors.push(format!("{target}: {e}")),
        }
    }
    Err(errors.join("; "))
}

async fn ask_at(target: SocketAddr, ask: &Ask) -> Result<Reply, String> {
    let mut stream = Async::<TcpStream>::connect(target)
        .await
        .map_err(|e| e.to_string())?;
    stream
        .write_all(&protocol::encode(ask))
        .await
        .map_err(|e| e.to_string())?;
    read_frame(&mut stream, exchange::MAX_REPLY, exchange::decode_reply)
        .await
        .map_err(|e| e.to_string())?
}

/// Asks every target's agent for its view at once (each at its addresses in turn), and reports
/// them all, `local` first and `unasked` last, once every one answered or `within` passed (those
/// still out then "did not answer").
pub(super) fn ask_views(
    ex: &LocalExecutor<'_>,
    tx: Sender<Incoming>,
    client: u64,
    (local, unasked): (HostView, Vec<HostView>),
    targets: Vec<Target>,
    namespace: String,
    within: Duration,
) {
    let ask = Ask::view(&namespace);
    let asks: Vec<_> = targets
        .into_iter()
        .map(|t| {
            let ask = ask.clone();
            let expected = t.expected.clone();
            let asked = t.ips.first().map(|ip| ip.to_string()).unwrap_or_default();
            let task = ex.spawn(async move {
                futures_lite::future::or(view_of(t.ips, ask), async {
                    Timer::after(within).await;
                    Err(format!(
                        "did not answer within {} ms",
                        within.as_millis()
                    ))
                })
                .await
            });
            (asked, expected, task)
        })
        .collect();
    ex.spawn(async move {
        let mut hosts = vec![local];
        for (asked, expected, task) in asks {
            hosts.push(HostView {
                asked,
                expected,
                view: task.await,
            });
        }
        hosts.extend(unasked);
        let input = crate::engine::Input::Viewed { client, hosts };
        let _ = tx.send(Incoming::input(input)).await;
    })
    .detach();
}

async fn view_of(ips: Vec<IpAddr>, ask: Ask) -> Result<View, String> {
    let mut errors = Vec::new();
    for ip in ips {
        let target = SocketAddr::new(ip, exchange::PORT);
        match ask_at(target, &ask).await {
            Ok(Reply::View(v)) => return Ok(v),
            Ok(Reply::Refused { why }) => return Err(format!("did not answer: refused: {why}")),
            Ok(Reply::Peers { .. }) => return Err("did not answer: peers, not a view".into()),
            Err(e) => errors.push(format!("{target}: {e}")),
        }
    }
    Err(format!("did not answer: {}", errors.join("; ")))
}
