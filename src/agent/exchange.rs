//! Peer exchange over TCP (does I/O; the format is [`crate::exchange`], the decisions the
//! engine's): the listener that answers other agents, and the ask sent to a static host.

use super::Incoming;
use crate::exchange::{self, Ask, Reply};
use crate::proto;
use crate::unicast::{self, HostSpec};
use async_channel::Sender;
use async_io::{Async, Timer};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use smol::LocalExecutor;
use std::cell::Cell;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::time::Duration;

/// Exchange connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 16;
/// How long an asker has to send its ask and take the reply.
pub const SERVE_TIMEOUT: Duration = Duration::from_secs(2);

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

/// Answers other agents' asks on `listener` until the agent stops.
pub(super) async fn serve(
    listener: Async<TcpListener>,
    ex: Rc<LocalExecutor<'_>>,
    tx: Sender<Incoming>,
) {
    let active = Rc::new(Cell::new(0usize));
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
        if active.get() >= MAX_CONNECTIONS {
            continue; // dropped: closed at once
        }
        active.set(active.get() + 1);
        let (active, tx) = (active.clone(), tx.clone());
        ex.spawn(async move {
            let _ = futures_lite::future::or(answer(stream, from, tx), async {
                Timer::after(SERVE_TIMEOUT).await;
                Ok(())
            })
            .await;
            active.set(active.get() - 1);
        })
        .detach();
    }
}

/// One asker: its ask in, the engine's reply out.
async fn answer(
    mut stream: Async<TcpStream>,
    from: SocketAddr,
    tx: Sender<Incoming>,
) -> io::Result<()> {
    let ask = match read_frame(&mut stream, exchange::MAX_ASK).await? {
        Ok(body) => proto::decode::<Ask>(&body).map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    let reply = match ask {
        Ok(ask) => {
            let (reply_tx, reply_rx) = async_channel::bounded(1);
            // An IPv4 asker on the dual-stack socket appears as `::ffff:a.b.c.d`.
            let from = from.ip().to_canonical();
            let sent = tx.send(Incoming::Exchange {
                from,
                ask,
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
    stream.write_all(&proto::encode(&reply)).await?;
    stream.flush().await
}

/// Reads one frame of at most `max` bytes: its body, or (inner `Err`) why it is refused.
async fn read_frame(
    stream: &mut Async<TcpStream>,
    max: usize,
) -> io::Result<Result<Vec<u8>, String>> {
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).await?;
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max {
        return Ok(Err(format!("a frame of {len} bytes (at most {max})")));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    Ok(Ok(body))
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
        let _ = tx.send(Incoming::Input(input)).await;
    })
    .detach();
}

async fn ask_host(spec: &HostSpec, namespace: &str) -> Result<Reply, String> {
    let mut errors = Vec::new();
    for (target, _zone) in unicast::resolve(spec).await? {
        let mut target = target;
        target.set_port(exchange::PORT);
        match ask_at(target, namespace).await {
            Ok(reply) => return Ok(reply),
            Err(e) => errors.push(format!("{target}: {e}")),
        }
    }
    Err(errors.join("; "))
}

async fn ask_at(target: SocketAddr, namespace: &str) -> Result<Reply, String> {
    let mut stream = Async::<TcpStream>::connect(target)
        .await
        .map_err(|e| e.to_string())?;
    stream
        .write_all(&proto::encode(&Ask::new(namespace)))
        .await
        .map_err(|e| e.to_string())?;
    let body = read_frame(&mut stream, exchange::MAX_REPLY)
        .await
        .map_err(|e| e.to_string())??;
    exchange::decode_reply(&body)
}
