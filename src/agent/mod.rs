//! The running agent (does I/O): the shell around [`crate::engine`]. It owns the sockets, the
//! mdns-sd daemons, the spawned tasks and the local socket's clients; it feeds what happens into
//! the engine and carries out the engine's actions. It decides nothing.
//!
//! ```text
//!  link sockets ─┐ Datagram                               Action ┌─▶ sockets, daemons (links.rs)
//!  mdns-sd ──────┤ Resolved/Removed  ┌────────────────┐         ├─▶ probes, static hosts (tasks.rs)
//!  probes ───────┤ Probed ─────────▶ │     Engine     │ ───────▶├─▶ cache file
//!  static hosts ─┤ StaticReplied     │ (no I/O, no    │         ├─▶ clients (Fanout)
//!  exchange ─────┤ Exchange…         │  clock)        │         ├─▶ exchange replies
//!  Unix socket ──┤ Client            │                │         └─▶ log
//!  signals ──────┘ Shutdown          └────────────────┘
//! ```
//!
//! `links` carries out the link actions (sockets, readers, daemons); `tasks` runs probes and
//! static-host rounds; `exchange` answers other agents' peer exchange and asks static hosts'.

pub mod daemons;
pub mod doctor;
mod exchange;
pub mod fanout;
pub mod files;
pub mod iface;
pub mod link_socket;
mod links;
pub mod server;
mod tasks;
pub mod unicast;

use crate::wire::config::Config;
use crate::engine::{Action, Engine, Input, Request};
use crate::agent::fanout::Fanout;
use crate::wire::protocol::AgentMsg;
use server::Listener;
use async_channel::{Receiver, Sender};
use async_io::Timer;
use links::ShellLink;
use smol::LocalExecutor;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// What reaches the agent's loop from its tasks.
pub(crate) enum Incoming {
    /// An input for the engine (boxed: the queue's every slot is as large as its largest
    /// message, and its [`QUEUE`] slots are all in memory from the start).
    Input(Box<Input>),
    /// A client passed the handshake; replies go to `tx`.
    Connected {
        /// Connection ID.
        id: u64,
        /// The connection's bounded outgoing queue.
        tx: fanout::ToClient,
    },
    /// Another agent opened a peer exchange connection; whether it may ask goes to `admit`.
    ExchangeOpened {
        /// The asker.
        from: std::net::SocketAddr,
        /// Connections open from its IP now.
        same_ip: usize,
        /// Connections open in all now.
        open: usize,
        /// Where the verdict goes.
        admit: Sender<bool>,
    },
    /// Another agent asked for our peers (peer exchange); the reply goes to `reply`.
    Exchange {
        /// The asker's IP.
        from: std::net::IpAddr,
        /// The IP it reached this host at.
        to: std::net::IpAddr,
        /// What it sent.
        ask: Box<crate::wire::exchange::Ask>,
        /// Where the reply goes.
        reply: Sender<crate::wire::exchange::Reply>,
    },
    /// A reply the connection's task made itself (to a request it could not pass on), queued
    /// after the replies to the requests before it.
    Reply {
        /// Connection ID.
        id: u64,
        /// The reply.
        msg: Box<AgentMsg>,
    },
}

// Every slot of the queue is in memory from the start: large messages are boxed.
const _: () = assert!(std::mem::size_of::<Incoming>() <= 64);

impl Incoming {
    /// An input for the engine.
    pub(crate) fn input(input: Input) -> Self {
        Incoming::Input(Box::new(input))
    }
}

/// Inputs waiting for the loop: enough for bursts, bounded so a flood cannot grow memory.
const QUEUE: usize = 1024;

/// Runs the agent on `listener` until SIGINT or SIGTERM (goodbyes are sent before it returns).
pub fn run(cfg: Config, listener: Listener) -> Result<(), String> {
    let signals =
        async_signal::Signals::new([async_signal::Signal::Term, async_signal::Signal::Int])
            .map_err(|e| format!("cannot catch signals: {e}"))?;
    let accept = listener
        .accept_async()
        .map_err(|e| format!("socket: {e}"))?;
    let ex = Rc::new(LocalExecutor::new());
    let (tx, rx) = async_channel::bounded(QUEUE);
    let namespace = cfg.namespace.clone();
    async_io::block_on(ex.run(async {
        let _server = ex.spawn(server::serve(accept, ex.clone(), tx.clone(), namespace));
        let _exchange = cfg.peer_exchange.then(|| match exchange::listen() {
            Ok(l) => Some(ex.spawn(exchange::serve(l, ex.clone(), tx.clone()))),
            Err(e) => {
                log::warn!(
                    "peer exchange: cannot listen on TCP port {}: {e}; other agents cannot get \
                     peers through this one",
                    crate::wire::exchange::PORT
                );
                None
            }
        });
        let stop = tx.clone();
        let _signals = ex.spawn(async move {
            use futures_lite::StreamExt;
            let mut signals = signals;
            if let Some(Ok(sig)) = signals.next().await {
                log::info!("received {sig:?}");
                let _ = stop.send(Incoming::input(Input::Shutdown)).await;
            }
        });
        Shell::new(&cfg, ex.clone(), tx).run(cfg, rx).await;
    }));
    drop(listener);
    Ok(())
}

/// Everything the shell owns.
struct Shell<'ex> {
    ex: Rc<LocalExecutor<'ex>>,
    tx: Sender<Incoming>,
    links: BTreeMap<u32, ShellLink>,
    clients: Fanout,
    state_dir: PathBuf,
    /// The peers file and its form, if there is one.
    peers_file: Option<(PathBuf, crate::wire::config::PeersFormat)>,
    query: Vec<u8>,
    namespace: String,
    /// Exchange connections waiting for the engine's reply.
    exchanges: std::collections::HashMap<u64, Sender<crate::wire::exchange::Reply>>,
    /// Exchange connections waiting to be admitted.
    admissions: std::collections::HashMap<u64, Sender<bool>>,
    next_exchange: u64,
    exit: bool,
}

impl<'ex> Shell<'ex> {
    fn new(cfg: &Config, ex: Rc<LocalExecutor<'ex>>, tx: Sender<Incoming>) -> Shell<'ex> {
        Shell {
            ex,
            tx,
            links: BTreeMap::new(),
            clients: Fanout::default(),
            state_dir: cfg
                .state_dir
                .clone()
                .unwrap_or_else(crate::sys::default_state_dir),
            peers_file: cfg.peers_file.clone().map(|p| (p, cfg.peers_file_format)),
            query: crate::wire::dns::ptr_query(crate::wire::dns::SERVICE),
            namespace: cfg.namespace.clone(),
            exchanges: std::collections::HashMap::new(),
            admissions: std::collections::HashMap::new(),
            next_exchange: 0,
            exit: false,
        }
    }

    async fn run(mut self, cfg: Config, rx: Receiver<Incoming>) {
        let now = Instant::now();
        let mut engine = Engine::new(cfg, now).with_log_level(log::max_level());
        let loaded = Input::CacheLoaded {
            from: self.state_dir.display().to_string(),
            result: files::load_cache(&self.state_dir),
        };
        engine.handle(loaded, now);
        loop {
            while let Some(action) = engine.poll_action() {
                if let Some(input) = self.execute(action) {
                    engine.handle(input, Instant::now());
                }
            }
            if self.exit {
                return;
            }
            // The loop's one timer: everything that waits (retrying a subscriber's snapshot
            // too) is the engine's.
            let deadline = engine
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let got = futures_lite::future::or(async { Some(rx.recv().await) }, async {
                Timer::at(deadline).await;
                None
            })
            .await;
            let now = Instant::now();
            match got {
                Some(Ok(Incoming::Input(input))) => {
                    let input = *input;
                    if let Input::Client {
                        id,
                        request: Request::Gone,
                    } = &input
                    {
                        // Its queue goes with it: a closed connection is never sent more (a
                        // subscriber's failed send would otherwise keep it waiting for a
                        // resynchronisation, every 200 ms, for ever), and its writer ends as
                        // soon as what was queued is out.
                        self.clients.disconnect(*id);
                    }
                    engine.handle(input, now)
                }
                Some(Ok(Incoming::Connected { id, tx })) => {
                    self.clients.connect(id, tx);
                    engine.handle(
                        Input::Client {
                            id,
                            request: Request::Connected,
                        },
                        now,
                    );
                }
                Some(Ok(Incoming::ExchangeOpened {
                    from,
                    same_ip,
                    open,
                    admit,
                })) => {
                    let id = self.next_exchange;
                    self.next_exchange += 1;
                    self.admissions.insert(id, admit);
                    let opened = Input::ExchangeOpened {
                        id,
                        from,
                        same_ip,
                        open,
                    };
                    engine.handle(opened, now);
                }
                Some(Ok(Incoming::Exchange {
                    from,
                    to,
                    ask,
                    reply,
                })) => {
                    let id = self.next_exchange;
                    self.next_exchange += 1;
                    self.exchanges.insert(id, reply);
                    let ask = *ask;
                    engine.handle(Input::ExchangeAsked { id, from, to, ask }, now);
                }
                Some(Ok(Incoming::Reply { id, msg })) => {
                    if self.clients.reply(id, *msg) {
                        engine.handle(Input::Behind, now);
                    }
                }
                Some(Err(_)) => engine.handle(Input::Shutdown, now),
                None => engine.handle_timeout(now),
            }
            // Never hold the executor: the probes, the socket server and the readers share it.
            futures_lite::future::yield_now().await;
        }
    }

    /// Carries out one action; returns the input that reports its result, if it has one now.
    /// Every action is named here (no catch-all): a new one does not build until it is carried
    /// out. The link actions are `links.rs`'s.
    fn execute(&mut self, action: Action) -> Option<Input> {
        match action {
            Action::ListInterfaces => Some(Input::Interfaces(
                crate::agent::iface::list().map_err(|e| e.to_string()),
            )),
            Action::Probe { addr, timeout } => {
                tasks::probe(&self.ex, self.tx.clone(), addr, timeout);
                None
            }
            Action::AskStatic { host, spec, wait } => {
                tasks::ask_static(
                    &self.ex,
                    self.tx.clone(),
                    host,
                    spec,
                    self.query.clone(),
                    wait,
                );
                None
            }
            Action::AskExchange {
                host,
                spec,
                timeout,
            } => {
                exchange::ask(
                    &self.ex,
                    self.tx.clone(),
                    host,
                    spec,
                    self.namespace.clone(),
                    timeout,
                );
                None
            }
            Action::AskViews {
                client,
                local,
                targets,
                unasked,
                within,
            } => {
                exchange::ask_views(
                    &self.ex,
                    self.tx.clone(),
                    client,
                    (local, unasked),
                    targets,
                    self.namespace.clone(),
                    within,
                );
                None
            }
            Action::AdmitExchange { id, admit } => {
                if let Some(tx) = self.admissions.remove(&id) {
                    let _ = tx.try_send(admit);
                }
                None
            }
            Action::AnswerExchange { id, reply } => {
                if let Some(tx) = self.exchanges.remove(&id) {
                    let _ = tx.try_send(reply);
                }
                None
            }
            Action::WritePeersFile(list) => {
                let result = match &self.peers_file {
                    Some((path, format)) => files::write_atomic(
                        path,
                        crate::wire::peers_file::render(&list, *format).as_bytes(),
                        0o644,
                    )
                    .map_err(|e| format!("{}: {e}", path.display())),
                    None => Ok(()),
                };
                Some(Input::PeersFileWritten(result))
            }
            Action::WriteCache(entries) => Some(Input::CacheWritten(
                files::save_cache(&self.state_dir, &entries)
                    .map_err(|e| format!("{}: {e}", self.state_dir.display())),
            )),
            Action::Reply { client, msg } => {
                let behind = self.clients.reply(client, msg);
                behind.then_some(Input::Behind)
            }
            Action::Subscribed { client, snapshot } => {
                self.clients.subscribe(client);
                let behind = self.clients.reply(client, AgentMsg::Snapshot(snapshot));
                behind.then_some(Input::Behind)
            }
            Action::Broadcast(ev) => self.clients.broadcast(&ev).then_some(Input::Behind),
            Action::Resync(snapshot) => {
                self.clients.resync(|| snapshot);
                Some(Input::Resynced {
                    waiting: self.clients.needs_resync(),
                })
            }
            Action::Log { level, line } => {
                log::log!(level, "{line}");
                None
            }
            Action::Exit => {
                for (_, l) in std::mem::take(&mut self.links) {
                    l.stop(Duration::from_secs(1));
                }
                self.exit = true;
                None
            }
            Action::AddLink(iface) => {
                self.add_link(iface);
                None
            }
            Action::UpdateLink(iface) => {
                self.update_link(iface);
                None
            }
            Action::RemoveLink { link } => {
                self.remove_link(link);
                None
            }
            Action::CloseSocket { link, family } => {
                self.close_socket(link, family);
                None
            }
            Action::SendQuery {
                link,
                family,
                packet,
            } => self.send_query(link, family, &packet),
            Action::SetDaemon { link, families } => self.set_daemon(link, families),
            Action::RestartBrowser { link } => {
                self.restart_browser(link);
                None
            }
            Action::Announce { link, announcement } => {
                self.announce(link, &announcement);
                None
            }
            Action::Withdraw { link, label } => {
                self.withdraw(link, &label);
                None
            }
            Action::SendPackets {
                link,
                family,
                packets,
            } => {
                self.send_packets(link, family, &packets);
                None
            }
        }
    }
}
