//! The running agent (does I/O): interfaces, per-link sockets, one mdns-sd daemon per link, the peer
//! table and the local socket's clients, all owned by one task fed by an [`Input`] channel.
//!
//! This file holds the state, the loop, registrations, reachability probes, the cache and the
//! clients; `links` the interfaces and their sockets and daemons, `interop` stock libp2p-mdns
//! nodes, `statics` static hosts and manual peers, `status` the status report.

use crate::config::Config;
use crate::fanout::Fanout;
use crate::iface::{self, Iface};
use crate::instance::{self, Announcement};
use crate::mcast::{self, Family};
use crate::mdns::LinkDaemon;
use crate::proto::{AgentMsg, ErrorKind, PeerEvent};
use crate::record::{self, Reject};
use crate::table::PeerTable;
use crate::{addrs, cache, dns, libp2p_mdns, unicast};

mod interop;
mod links;
mod statics;
mod status;

use async_channel::{Receiver, Sender};
use async_io::{Async, Timer};
use interop::send_libp2p;
use libp2p_identity::PeerId;
use log::{debug, info, warn};
use mdns_sd::ServiceEvent;
use smol::{LocalExecutor, Task};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most nodes one agent announces at once.
pub const MAX_REGISTRATIONS: usize = 16;
/// Delay of the second announcement of a new registration (RFC 6762 §8.3: at least two, one
/// second apart; mdns-sd 0.21 skips its own second one for mixed-case names such as peer IDs).
/// mdns-sd drops a record multicast again within one second (RFC 6762 §6), and the first
/// announcement leaves the daemon a little after `register` returns: hence the margin.
const SECOND_ANNOUNCEMENT: Duration = Duration::from_millis(1200);

/// One reply from a static host: the IP and zone it came from, and the packet.
pub type StaticReply = (IpAddr, Option<String>, Vec<u8>);

/// Everything that can happen to the agent.
pub enum Input {
    /// An mdns-sd daemon reported something on the link with this index.
    Mdns {
        /// Interface index.
        index: u32,
        /// The event.
        event: ServiceEvent,
    },
    /// A per-link socket heard something that matters.
    Packet {
        /// Interface index.
        index: u32,
        /// The socket's family.
        family: Family,
        /// The sender.
        from: SocketAddr,
        /// `_p2p._udp` instance labels a response named, with their TTLs.
        instances: Vec<(String, u32)>,
        /// Peers a stock libp2p-mdns node described (responses from a port other than 5353).
        libp2p_peers: Vec<libp2p_mdns::Libp2pPeer>,
        /// A stock libp2p-mdns node asked for `_p2p._udp.local` (from a port other than 5353).
        libp2p_query: bool,
    },
    /// A reachability probe finished.
    Probe {
        /// The address probed.
        addr: multiaddr::Multiaddr,
        /// Whether it answered.
        ok: bool,
    },
    /// A round of unicast questions to a static host ended.
    Static {
        /// The host as configured.
        host: String,
        /// Replies (with the IP and zone they came from), or why there were none.
        result: Result<Vec<StaticReply>, String>,
    },
    /// A local socket client did something.
    Client(ClientCmd),
    /// SIGINT or SIGTERM: say goodbye and stop.
    Shutdown,
}

/// What a local socket connection asks of the agent.
pub enum ClientCmd {
    /// A client passed the handshake; replies go to `tx`.
    Connected {
        /// Connection ID.
        id: u64,
        /// The connection's bounded outgoing queue.
        tx: Sender<AgentMsg>,
    },
    /// `Register`.
    Register {
        /// Connection ID.
        id: u64,
        /// The signed record.
        signed: Vec<u8>,
    },
    /// `List`.
    List {
        /// Connection ID.
        id: u64,
    },
    /// `AddHost`, `RemoveHost` or `AddPeer`.
    Manage {
        /// Connection ID.
        id: u64,
        /// The request.
        msg: crate::proto::ClientMsg,
    },
    /// `Status`.
    Status {
        /// Connection ID.
        id: u64,
    },
    /// `Subscribe`.
    Subscribe {
        /// Connection ID.
        id: u64,
    },
    /// The connection closed: its registrations are withdrawn.
    Gone {
        /// Connection ID.
        id: u64,
    },
}

struct LinkSock {
    sock: Arc<Async<UdpSocket>>,
    usable: bool,
    last_error: Option<String>,
    /// Sends refused with the same error since it was last logged, and when that was.
    repeats: u64,
    logged_at: Instant,
    packets_out: u64,
    _reader: Task<()>,
}

/// Per-interface counters.
#[derive(Default)]
struct LinkStats {
    accepted: u64,
    rejected: BTreeMap<Reject, u64>,
}

struct Link {
    iface: Iface,
    socks: BTreeMap<Family, LinkSock>,
    open_errors: BTreeMap<Family, String>,
    daemon: Option<LinkDaemon>,
    _daemon_events: Option<Task<()>>,
    next_query: Instant,
    query_every: Duration,
    /// A stock libp2p-mdns node asked on this link: answer it, and send it goodbyes.
    libp2p_seen: bool,
}

struct StaticHost {
    spec: unicast::HostSpec,
    next_poll: Instant,
    in_flight: bool,
    last_error: Option<String>,
}

struct Registration {
    conn: u64,
    seq: u64,
    addrs: Vec<multiaddr::Multiaddr>,
    announcement: Announcement,
    /// Extra announcements still due (soonest first), before the periodic ones.
    extra: Vec<Instant>,
    next_announce: Instant,
}

impl Registration {
    fn due(&self) -> Instant {
        self.extra.first().copied().unwrap_or(self.next_announce)
    }
}

/// The agent's state. Built by [`run`].
struct Agent<'ex> {
    cfg: Config,
    ex: Rc<LocalExecutor<'ex>>,
    input: Sender<Input>,
    table: PeerTable,
    links: BTreeMap<u32, Link>,
    regs: HashMap<PeerId, Registration>,
    clients: Fanout,
    /// When the agent started.
    started: Instant,
    /// Datagrams received per (interface index, family), by where they arrived.
    packets_in: HashMap<(u32, Family), u64>,
    /// Records accepted and refused per interface name.
    link_stats: HashMap<String, LinkStats>,
    /// The cache has changes not yet written.
    cache_dirty: bool,
    cache_error_logged: bool,
    /// Earliest time of the next cache write.
    next_cache_save: Instant,
    /// Static hosts asked by unicast, by their configured spelling.
    statics: BTreeMap<String, StaticHost>,
    /// Unsigned peers already logged as ignored (accept_unsigned off).
    unsigned_ignored: std::collections::HashSet<PeerId>,
    next_poll: Instant,
    query: Vec<u8>,
    list_error: Option<String>,
}

/// Runs the agent until SIGINT/SIGTERM. `input` carries client and signal inputs from the shells.
pub async fn run<'ex>(
    cfg: Config,
    ex: Rc<LocalExecutor<'ex>>,
    input_tx: Sender<Input>,
    input_rx: Receiver<Input>,
) {
    let now = Instant::now();
    let mut agent = Agent {
        table: PeerTable::new(cfg.peer_timeout()).with_reachability(cfg.verify_reachability),
        cfg,
        ex,
        input: input_tx,
        links: BTreeMap::new(),
        regs: HashMap::new(),
        clients: Fanout::default(),
        unsigned_ignored: Default::default(),
        statics: BTreeMap::new(),
        started: now,
        packets_in: HashMap::new(),
        link_stats: HashMap::new(),
        cache_dirty: false,
        cache_error_logged: false,
        next_cache_save: now,
        next_poll: now,
        query: dns::ptr_query(dns::SERVICE),
        list_error: None,
    };
    agent.load_cache(now);
    for host in agent.cfg.static_hosts.clone() {
        if let Err(e) = agent.add_host(&host, now) {
            warn!("static host {e}");
        }
    }
    agent.tick(now);
    loop {
        let deadline = agent.next_deadline();
        let input = futures_lite::future::or(async { Some(input_rx.recv().await) }, async {
            Timer::at(deadline).await;
            None
        })
        .await;
        match input {
            Some(Ok(Input::Shutdown)) | Some(Err(_)) => break,
            Some(Ok(input)) => agent.handle(input, Instant::now()),
            None => {}
        }
        agent.tick(Instant::now());
        // Never hold the executor: the probes, the socket server and the readers share it.
        futures_lite::future::yield_now().await;
    }
    agent.shutdown();
}

impl<'ex> Agent<'ex> {
    fn next_deadline(&self) -> Instant {
        let mut d = self.next_poll;
        for l in self.links.values() {
            d = d.min(l.next_query);
        }
        for r in self.regs.values() {
            d = d.min(r.due());
        }
        for h in self.statics.values().filter(|h| !h.in_flight) {
            d = d.min(h.next_poll);
        }
        if self.cache_dirty {
            d = d.min(self.next_cache_save);
        }
        if let Some(t) = self.table.next_deadline(Instant::now()) {
            d = d.min(t);
        }
        if self.clients.needs_resync() {
            d = d.min(Instant::now() + Duration::from_millis(200));
        }
        d
    }

    fn tick(&mut self, now: Instant) {
        if now >= self.next_poll {
            self.poll_interfaces(now);
            self.next_poll = now + Duration::from_millis(self.cfg.interface_poll_ms);
        }
        let due: Vec<u32> = self
            .links
            .iter()
            .filter(|(_, l)| now >= l.next_query)
            .map(|(i, _)| *i)
            .collect();
        for index in due {
            self.query_link(index, now);
        }
        let due: Vec<PeerId> = self
            .regs
            .iter()
            .filter(|(_, r)| now >= r.due())
            .map(|(p, _)| *p)
            .collect();
        for peer in due {
            self.announce(&peer);
            if let Some(r) = self.regs.get_mut(&peer) {
                if r.extra.first().is_some_and(|t| now >= *t) {
                    r.extra.retain(|t| *t > now);
                } else {
                    r.next_announce = now + Duration::from_secs(self.cfg.announce_interval_secs);
                }
            }
        }

        for ev in self.table.expire(now) {
            self.broadcast(ev);
        }
        if self.cache_dirty && now >= self.next_cache_save {
            self.save_cache(now);
        }
        let due: Vec<String> = self
            .statics
            .iter()
            .filter(|(_, h)| !h.in_flight && now >= h.next_poll)
            .map(|(k, _)| k.clone())
            .collect();
        for host in due {
            self.poll_static(&host);
        }
        for (peer, addr) in self.table.due_probes(now, MAX_PROBES, MAX_PROBES_PER_PEER) {
            debug!("probing {addr} ({peer})");
            let tx = self.input.clone();
            let timeout = Duration::from_millis(self.cfg.probe_timeout_ms);
            self.ex
                .spawn(async move {
                    let ok = probe(&addr, timeout).await;
                    let _ = tx.send(Input::Probe { addr, ok }).await;
                })
                .detach();
        }
        let table = &self.table;
        self.clients.resync(|| table.snapshot());
    }

    /// Whether `label` is the instance of the newest record known from `peer`.
    fn is_current_instance(&self, peer: &PeerId, label: &str) -> bool {
        self.table
            .seq_of(peer)
            .is_some_and(|seq| instance::instance_label(peer, seq) == label)
    }

    fn handle(&mut self, input: Input, now: Instant) {
        match input {
            Input::Mdns { index, event } => self.on_mdns(index, event, now),
            Input::Packet {
                index,
                family,
                from,
                instances,
                libp2p_peers,
                libp2p_query,
            } => {
                *self.packets_in.entry((index, family)).or_default() += 1;
                let Some(name) = self.links.get(&index).map(|l| l.iface.name.clone()) else {
                    return;
                };
                for (label, ttl) in instances {
                    if ttl == 0 {
                        continue;
                    }
                    let Some((peer, label)) = instance::parse_instance(&label) else {
                        continue;
                    };
                    if !self.is_current_instance(&peer, label) {
                        continue;
                    }
                    if let Some(ev) = self.table.heard(&peer, &name, now) {
                        self.broadcast(ev);
                    }
                }
                for p in libp2p_peers {
                    self.on_libp2p_peer(p, &name, from, now);
                }
                if libp2p_query {
                    self.answer_libp2p(index, family);
                }
            }
            Input::Probe { addr, ok } => {
                if !ok {
                    debug!("{addr} did not answer; withheld, will retry");
                }
                for ev in self.table.probe_result(&addr, ok, now) {
                    self.broadcast(ev);
                }
            }
            Input::Static { host, result } => self.on_static(host, result, now),
            Input::Client(cmd) => self.on_client(cmd, now),
            Input::Shutdown => {}
        }
    }

    // ----- what mdns-sd heard -----

    fn on_mdns(&mut self, index: u32, event: ServiceEvent, now: Instant) {
        let Some(link) = self.links.get(&index) else {
            return;
        };
        let name = link.iface.name.clone();
        match event {
            ServiceEvent::ServiceResolved(r) => {
                let Some((peer, label)) = instance::parse_instance(r.get_fullname()) else {
                    return;
                };
                if self.regs.contains_key(&peer) {
                    return;
                }
                let signed = record::from_txt(|k| r.get_property_val(k).flatten());
                let verified = instance::verify_instance(signed, &self.cfg.namespace, &peer, label);
                let rec = match verified {
                    Ok(rec) => rec,
                    Err(why) => {
                        self.table.count_reject(why);
                        *self
                            .link_stats
                            .entry(name.clone())
                            .or_default()
                            .rejected
                            .entry(why)
                            .or_default() += 1;
                        info!("{name}: record of {peer} refused: {why}");
                        return;
                    }
                };
                let ips: Vec<IpAddr> = r.get_addresses().iter().map(|a| a.to_ip_addr()).collect();
                let dial = addrs::dialable(&peer, &rec.addrs, &ips, &name);
                let seq = rec.seq;
                let stats = self.link_stats.entry(name.clone()).or_default();
                match self.table.observe(rec, &name, dial, now) {
                    Ok(ev) => {
                        stats.accepted += 1;
                        if let Some(ev) = ev {
                            self.broadcast(ev);
                        }
                    }
                    Err(why) => {
                        *stats.rejected.entry(why).or_default() += 1;
                        info!("{name}: record of {peer} (seq {seq}) refused: {why}");
                    }
                }
            }
            ServiceEvent::ServiceRemoved(_, fullname) => {
                let Some((peer, label)) = instance::parse_instance(&fullname) else {
                    return;
                };
                // The goodbye of a replaced record says nothing about the current one.
                if !self.is_current_instance(&peer, label) {
                    return;
                }
                if let Some(ev) = self.table.remove_link(&peer, &name) {
                    self.broadcast(ev);
                }
            }
            _ => {}
        }
    }

    // ----- local clients -----

    fn on_client(&mut self, cmd: ClientCmd, now: Instant) {
        match cmd {
            ClientCmd::Connected { id, tx } => self.clients.connect(id, tx),
            ClientCmd::Register { id, signed } => {
                let reply = self.register(id, signed, now);
                self.send(id, reply);
            }
            ClientCmd::Manage { id, msg } => {
                let reply = match self.manage(msg, now) {
                    Ok(message) => AgentMsg::Done { message },
                    Err(message) => AgentMsg::Error {
                        kind: ErrorKind::BadRequest,
                        message,
                    },
                };
                self.send(id, reply);
            }
            ClientCmd::Status { id } => {
                let st = self.status(now);
                self.send(id, AgentMsg::Status(st));
            }
            ClientCmd::List { id } => {
                let snap = AgentMsg::Snapshot(self.table.snapshot());
                self.send(id, snap);
            }
            ClientCmd::Subscribe { id } => {
                self.clients.subscribe(id);
                let snap = AgentMsg::Snapshot(self.table.snapshot());
                self.send(id, snap);
            }
            ClientCmd::Gone { id } => {
                self.clients.disconnect(id);
                let mine: Vec<PeerId> = self
                    .regs
                    .iter()
                    .filter(|(_, r)| r.conn == id)
                    .map(|(p, _)| *p)
                    .collect();
                for peer in mine {
                    let Some(r) = self.regs.remove(&peer) else {
                        continue;
                    };
                    info!("withdrawing {peer}: its connection closed");
                    self.withdraw(&r);
                }
            }
        }
    }

    fn register(&mut self, id: u64, signed: Vec<u8>, now: Instant) -> AgentMsg {
        let rejected = |why: Reject, message: String| AgentMsg::Error {
            kind: ErrorKind::Rejected(why),
            message,
        };
        let rec = match record::verify(&signed, &self.cfg.namespace) {
            Ok(r) => r,
            Err(Reject::Namespace) => {
                let theirs = record::verify_any_namespace(&signed)
                    .map(|r| r.namespace)
                    .unwrap_or_default();
                return rejected(
                    Reject::Namespace,
                    format!(
                        "wrong namespace: the record says {theirs:?}, the agent serves {:?}",
                        self.cfg.namespace
                    ),
                );
            }
            Err(why) => return rejected(why, format!("record refused: {why}")),
        };
        if let Some(old) = self.regs.get(&rec.peer_id) {
            if rec.seq < old.seq {
                return rejected(
                    Reject::Replay,
                    format!("record refused: seq {} is older than {}", rec.seq, old.seq),
                );
            }
        } else if self.regs.len() >= MAX_REGISTRATIONS {
            return AgentMsg::Error {
                kind: ErrorKind::Limit,
                message: format!("the agent announces at most {MAX_REGISTRATIONS} nodes"),
            };
        }
        let port = rec
            .addrs
            .iter()
            .find_map(|a| {
                a.iter().find_map(|p| match p {
                    multiaddr::Protocol::Tcp(port) => Some(port),
                    _ => None,
                })
            })
            .unwrap_or(0);
        let peer = rec.peer_id;
        let extra = vec![now + SECOND_ANNOUNCEMENT];
        let label = instance::instance_label(&peer, rec.seq);
        if let Some(old) = self.regs.get(&peer) {
            if old.announcement.label != label {
                self.withdraw(old);
            }
        }
        info!(
            "registering {peer} (seq {}): {:?}",
            rec.seq,
            rec.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>()
        );
        self.regs.insert(
            peer,
            Registration {
                conn: id,
                seq: rec.seq,
                addrs: rec.addrs.clone(),
                announcement: Announcement {
                    peer,
                    label,
                    txt: record::to_txt(&signed),
                    port,
                },
                extra,
                next_announce: now + Duration::from_secs(self.cfg.announce_interval_secs),
            },
        );
        self.announce(&peer);
        AgentMsg::Registered {
            peer_id: peer.to_base58(),
        }
    }

    /// Sends goodbyes for one registration on every link (to stock libp2p-mdns nodes too).
    fn withdraw(&self, r: &Registration) {
        let label = &r.announcement.label;
        for link in self.links.values() {
            if let Some(d) = &link.daemon {
                d.unregister(label);
            }
            if link.libp2p_seen {
                for family in [Family::V4, Family::V6] {
                    let addrs = self.libp2p_addrs(link, family, r);
                    if !addrs.is_empty() {
                        send_libp2p(link, family, label, &addrs, 0);
                    }
                }
            }
        }
    }

    fn send(&mut self, id: u64, msg: AgentMsg) {
        self.clients.reply(id, msg);
    }

    fn load_cache(&mut self, now: Instant) {
        let dir = self.cfg.state_dir();
        let cached = match cache::load(&dir) {
            Ok(c) => c,
            Err(e) => {
                warn!("peer cache: {e}");
                return;
            }
        };
        let mut used = 0;
        for c in cached {
            let Ok(rec) = record::verify(&c.signed, &self.cfg.namespace) else {
                continue;
            };
            let addrs: Vec<multiaddr::Multiaddr> =
                c.addrs.iter().filter_map(|a| a.parse().ok()).collect();
            if let Ok(Some(ev)) =
                self.table
                    .observe_from(rec, crate::proto::Source::Cache, "cache", addrs, now)
            {
                self.broadcast(ev);
            }
            used += 1;
        }
        if used > 0 {
            info!(
                "peer cache: {used} peers from {} (handed over once they answer)",
                dir.display()
            );
        }
    }

    fn save_cache(&mut self, now: Instant) {
        self.cache_dirty = false;
        self.next_cache_save = now + CACHE_SAVE_INTERVAL;
        let dir = self.cfg.state_dir();
        if let Err(e) = cache::save(&dir, &self.table.cache_entries()) {
            if !self.cache_error_logged {
                warn!("peer cache: cannot write {}: {e}", dir.display());
                self.cache_error_logged = true;
            }
        }
    }

    fn broadcast(&mut self, ev: PeerEvent) {
        if ev.event != crate::proto::EventKind::Expired {
            self.cache_dirty = true;
        }
        debug!(
            "{:?} {} {:?}",
            ev.event, ev.peer.peer_id, ev.peer.interfaces
        );
        self.clients.broadcast(&ev);
    }

    fn shutdown(mut self) {
        if self.cache_dirty {
            self.save_cache(Instant::now());
        }
        info!("shutting down: sending goodbyes");
        for (_, link) in self.links {
            if let Some(d) = link.daemon {
                d.shutdown(Duration::from_secs(1));
            }
        }
    }
}

/// Cache writes are at most this frequent.
const CACHE_SAVE_INTERVAL: Duration = Duration::from_secs(5);

/// Reachability probes running at once, in all and per peer: enough to check a peer's few
/// addresses in one round trip, few enough that a large cluster coming up is no connection storm.
const MAX_PROBES: usize = 8;
const MAX_PROBES_PER_PEER: usize = 2;

/// Whether a TCP connection to `addr` is accepted within `timeout` (it is closed at once).
async fn probe(addr: &multiaddr::Multiaddr, timeout: Duration) -> bool {
    let zone = |z: &str| nix::net::if_::if_nametoindex(z).ok();
    let Some(sa) = addrs::tcp_socket_addr(addr, zone) else {
        return false;
    };
    futures_lite::future::or(
        async { Async::<std::net::TcpStream>::connect(sa).await.is_ok() },
        async {
            Timer::after(timeout).await;
            false
        },
    )
    .await
}
