//! The running agent (does I/O): interfaces, per-link sockets, one mdns-sd daemon per link, the peer
//! table and the local socket's clients, all owned by one task fed by an [`Input`] channel.

use crate::config::Config;
use crate::fanout::Fanout;
use crate::iface::{self, Iface};
use crate::mcast::{self, Family};
use crate::mdns::{self, Announcement, LinkDaemon};
use crate::proto::{AgentMsg, ErrorKind, PeerEvent};
use crate::record::{self, Reject};
use crate::table::PeerTable;
use crate::{addrs, cache, dns, unicast};
use async_channel::{Receiver, Sender};
use async_io::{Async, Timer};
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
/// First interval between `_p2p._udp` queries on a link; doubles up to the configured maximum.
const FIRST_QUERY_INTERVAL: Duration = Duration::from_secs(1);

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
        libp2p_peers: Vec<dns::Libp2pPeer>,
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

/// A repeated error is summarised at most this often.
const ERROR_SUMMARY_INTERVAL: Duration = Duration::from_secs(600);

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
            .is_some_and(|seq| mdns::instance_label(peer, seq) == label)
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
                    let Some((peer, label)) = mdns::parse_instance(&label) else {
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

    // ----- interfaces and links -----

    fn poll_interfaces(&mut self, now: Instant) {
        let list = match iface::list() {
            Ok(l) => {
                self.list_error = None;
                l
            }
            Err(e) => {
                let msg = e.to_string();
                if self.list_error.as_deref() != Some(&msg) {
                    warn!("cannot list interfaces: {msg}");
                    self.list_error = Some(msg);
                }
                return;
            }
        };
        let wanted: Vec<Iface> = list
            .into_iter()
            .filter(|i| self.cfg.wants_interface(&i.name, i.loopback) && i.can_multicast())
            .collect();
        let gone: Vec<u32> = self
            .links
            .keys()
            .filter(|idx| !wanted.iter().any(|i| i.index == **idx))
            .copied()
            .collect();
        for index in gone {
            self.drop_link(index, "interface gone or down");
        }
        for iface in wanted {
            match self.links.get(&iface.index) {
                None => self.add_link(iface, now),
                Some(l) if l.iface != iface => self.readdress_link(iface, now),
                Some(_) => {}
            }
        }
    }

    fn add_link(&mut self, iface: Iface, now: Instant) {
        info!(
            "interface {} (index {}): v4 {:?} v6 {:?}",
            iface.name, iface.index, iface.v4, iface.v6
        );
        let index = iface.index;
        self.links.insert(
            index,
            Link {
                iface,
                socks: BTreeMap::new(),
                open_errors: BTreeMap::new(),
                daemon: None,
                _daemon_events: None,
                next_query: now,
                query_every: FIRST_QUERY_INTERVAL,
                libp2p_seen: false,
            },
        );
        self.query_link(index, now);
    }

    /// Addresses or flags changed: reopen the sockets, re-announce with the new addresses.
    fn readdress_link(&mut self, iface: Iface, now: Instant) {
        let Some(link) = self.links.get_mut(&iface.index) else {
            return;
        };
        info!(
            "interface {} changed: v4 {:?} v6 {:?}",
            iface.name, iface.v4, iface.v6
        );
        link.iface = iface;
        link.socks.clear();
        link.open_errors.clear();
        link.next_query = now;
        link.query_every = FIRST_QUERY_INTERVAL;
        let index = link.iface.index;
        self.query_link(index, now);
        self.reannounce_on(index);
    }

    fn drop_link(&mut self, index: u32, why: &str) {
        let Some(link) = self.links.remove(&index) else {
            return;
        };
        info!("interface {}: no longer used ({why})", link.iface.name);
        if let Some(d) = link.daemon {
            d.shutdown(Duration::from_millis(500));
        }
        for ev in self.table.remove_iface(&link.iface.name) {
            self.broadcast(ev);
        }
    }

    /// Opens missing sockets, sends a `_p2p._udp` query on each, and brings the mdns-sd daemon in
    /// line with what really works.
    fn query_link(&mut self, index: u32, now: Instant) {
        let Some(link) = self.links.get_mut(&index) else {
            return;
        };
        for family in [Family::V4, Family::V6] {
            if !family.present_on(&link.iface) {
                link.socks.remove(&family);
                continue;
            }
            if !link.socks.contains_key(&family) {
                match mcast::open(&link.iface, family) {
                    Ok(sock) => match Async::new(sock) {
                        Ok(sock) => {
                            let sock = Arc::new(sock);
                            let reader = self.ex.spawn(read_link(
                                sock.clone(),
                                index,
                                family,
                                self.input.clone(),
                            ));
                            link.open_errors.remove(&family);
                            link.socks.insert(
                                family,
                                LinkSock {
                                    sock,
                                    usable: false,
                                    last_error: None,
                                    repeats: 0,
                                    logged_at: now,
                                    packets_out: 0,
                                    _reader: reader,
                                },
                            );
                        }
                        Err(e) => warn!("{} {}: {e}", link.iface.name, family.as_str()),
                    },
                    Err(e) => {
                        let msg = e.to_string();
                        if link.open_errors.get(&family) != Some(&msg) {
                            warn!(
                                "{} {}: cannot use mDNS: {msg}{}",
                                link.iface.name,
                                family.as_str(),
                                errno_suffix(&e.error)
                            );
                            link.open_errors.insert(family, msg);
                        }
                    }
                }
            }
            if let Some(ls) = link.socks.get_mut(&family) {
                let dest = mcast::group_addr(family, &link.iface);
                match ls.sock.get_ref().send_to(&self.query, dest) {
                    Ok(_) => {
                        ls.packets_out += 1;
                        if !ls.usable {
                            if ls.repeats > 0 {
                                info!(
                                    "{} {}: mDNS ok again (after {} more refused sends)",
                                    link.iface.name,
                                    family.as_str(),
                                    ls.repeats
                                );
                            } else {
                                info!("{} {}: mDNS ok", link.iface.name, family.as_str());
                            }
                        }
                        ls.usable = true;
                        ls.last_error = None;
                        ls.repeats = 0;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        let msg = e.to_string();
                        if ls.last_error.as_deref() != Some(&msg) {
                            warn!(
                                "{} {}: multicast send refused: {msg}{} ({})",
                                link.iface.name,
                                family.as_str(),
                                errno_suffix(&e),
                                crate::sys::explain_send_error(&e)
                            );
                            ls.last_error = Some(msg);
                            ls.repeats = 0;
                            ls.logged_at = now;
                        } else {
                            // The same error again: counted, and summarised now and then.
                            ls.repeats += 1;
                            if now.saturating_duration_since(ls.logged_at) >= ERROR_SUMMARY_INTERVAL
                            {
                                warn!(
                                    "{} {}: multicast send still refused ({} times in the last {} s): {msg}",
                                    link.iface.name,
                                    family.as_str(),
                                    ls.repeats,
                                    now.saturating_duration_since(ls.logged_at).as_secs()
                                );
                                ls.repeats = 0;
                                ls.logged_at = now;
                            }
                        }
                        ls.usable = false;
                    }
                }
            }
        }
        link.next_query = now + link.query_every;
        link.query_every = (link.query_every * 2).min(self.cfg.query_interval_max());
        self.sync_daemon(index);
    }

    /// Starts, adjusts or stops the link's mdns-sd daemon so that it runs on exactly the families
    /// whose socket works.
    fn sync_daemon(&mut self, index: u32) {
        let Some(link) = self.links.get_mut(&index) else {
            return;
        };
        let usable: Vec<Family> = link
            .socks
            .iter()
            .filter(|(_, s)| s.usable)
            .map(|(f, _)| *f)
            .collect();
        let current: Vec<Family> = link
            .daemon
            .as_ref()
            .map(|d| d.families().to_vec())
            .unwrap_or_default();
        if usable == current {
            return;
        }
        if usable.is_empty() {
            if let Some(d) = link.daemon.take() {
                d.shutdown(Duration::from_millis(500));
            }
            link._daemon_events = None;
            let name = link.iface.name.clone();
            for ev in self.table.remove_iface(&name) {
                self.broadcast(ev);
            }
            return;
        }
        match link.daemon.as_mut() {
            Some(d) => {
                if let Err(e) = d.set_families(&usable) {
                    warn!("{}: mdns-sd: {e}", link.iface.name);
                }
            }
            None => match LinkDaemon::start(&link.iface, &usable) {
                Ok((d, events)) => {
                    let n = crate::sys::raise_engine_unicast_ttl();
                    debug!("engine sockets given unicast TTL 255: {n}");
                    let tx = self.input.clone();
                    link._daemon_events = Some(self.ex.spawn(async move {
                        while let Ok(event) = events.recv_async().await {
                            if tx.send(Input::Mdns { index, event }).await.is_err() {
                                break;
                            }
                        }
                    }));
                    link.daemon = Some(d);
                }
                Err(e) => {
                    warn!("{}: cannot start mdns-sd: {e}", link.iface.name);
                    return;
                }
            },
        }
        self.reannounce_on(index);
    }

    fn reannounce_on(&self, index: u32) {
        let Some(link) = self.links.get(&index) else {
            return;
        };
        let Some(d) = &link.daemon else { return };
        for r in self.regs.values() {
            if let Err(e) = d.register(&r.announcement, &link.iface) {
                warn!("{}: cannot announce: {e}", link.iface.name);
            }
        }
    }

    fn announce(&self, peer: &PeerId) {
        let Some(r) = self.regs.get(peer) else { return };
        for link in self.links.values() {
            if let Some(d) = &link.daemon {
                if let Err(e) = d.register(&r.announcement, &link.iface) {
                    warn!("{}: cannot announce: {e}", link.iface.name);
                }
            }
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
                let Some((peer, label)) = mdns::parse_instance(r.get_fullname()) else {
                    return;
                };
                if self.regs.contains_key(&peer) {
                    return;
                }
                let signed = record::from_txt(|k| r.get_property_val(k).flatten());
                let verified = mdns::verify_instance(signed, &self.cfg.namespace, &peer, label);
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
                let Some((peer, label)) = mdns::parse_instance(&fullname) else {
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

    // ----- stock libp2p-mdns nodes -----

    fn on_libp2p_peer(&mut self, p: dns::Libp2pPeer, iface: &str, from: SocketAddr, now: Instant) {
        if self.regs.contains_key(&p.peer) || p.ttl == 0 {
            return;
        }
        if !self.cfg.accept_unsigned {
            if self.unsigned_ignored.insert(p.peer) {
                info!(
                    "{iface}: unsigned libp2p-mdns peer {} from {} ignored (accept_unsigned is off)",
                    p.peer,
                    from.ip()
                );
            }
            return;
        }
        let dial = addrs::dialable(&p.peer, &p.addrs, &[from.ip()], iface);
        if let Some(ev) =
            self.table
                .observe_unsigned(p.peer, crate::proto::Source::Libp2pMdns, iface, dial, now)
        {
            self.broadcast(ev);
        }
    }

    /// What a stock libp2p-mdns node on this link and family should dial for each registration:
    /// concrete addresses of this interface (IPv6 link-local left out: such nodes take no zone).
    fn libp2p_addrs(&self, link: &Link, family: Family, r: &Registration) -> Vec<String> {
        let ips: Vec<IpAddr> = match family {
            Family::V4 => link.iface.v4.iter().map(|a| IpAddr::V4(*a)).collect(),
            Family::V6 => link
                .iface
                .v6
                .iter()
                .filter(|a| !addrs::is_link_local_v6(a))
                .map(|a| IpAddr::V6(*a))
                .collect(),
        };
        addrs::dialable(&r.announcement.peer, &r.addrs, &ips, &link.iface.name)
            .iter()
            .map(|a| a.to_string())
            .collect()
    }

    /// Answers a stock libp2p-mdns query in the form it parses, by multicast on the link.
    fn answer_libp2p(&mut self, index: u32, family: Family) {
        let Some(link) = self.links.get_mut(&index) else {
            return;
        };
        if !link.libp2p_seen {
            info!(
                "{}: a stock libp2p-mdns node is asking; answering it",
                link.iface.name
            );
            link.libp2p_seen = true;
        }
        let Some(link) = self.links.get(&index) else {
            return;
        };
        for r in self.regs.values() {
            let addrs = self.libp2p_addrs(link, family, r);
            if addrs.is_empty() {
                continue;
            }
            send_libp2p(link, family, &r.announcement.label, &addrs, LIBP2P_TTL);
        }
    }

    // ----- static hosts and manual peers -----

    fn add_host(&mut self, host: &str, now: Instant) -> Result<String, String> {
        let spec = unicast::HostSpec::parse(host)?;
        if self.statics.len() >= MAX_STATIC_HOSTS && !self.statics.contains_key(host) {
            return Err(format!("at most {MAX_STATIC_HOSTS} static hosts"));
        }
        info!(
            "static host {host}: asking it by unicast every {} s",
            self.cfg.static_poll_secs
        );
        self.statics.insert(
            host.to_owned(),
            StaticHost {
                spec,
                next_poll: now,
                in_flight: false,
                last_error: None,
            },
        );
        Ok(format!("asking {host} for its agent's records"))
    }

    fn poll_static(&mut self, host: &str) {
        let Some(h) = self.statics.get_mut(host) else {
            return;
        };
        h.in_flight = true;
        let spec = h.spec.clone();
        let host = host.to_owned();
        let tx = self.input.clone();
        let query = self.query.clone();
        // Per port tried: a LAN answers in well under a millisecond, a VPN in tens.
        let wait = Duration::from_millis(self.cfg.probe_timeout_ms.clamp(100, 300));
        self.ex
            .spawn(async move {
                let result = async {
                    let mut out = Vec::new();
                    let mut errors = Vec::new();
                    for (target, zone) in unicast::resolve(&spec).await? {
                        match unicast::ask(target, &query, wait).await {
                            Ok(replies) => out.extend(
                                replies.into_iter().map(|p| (target.ip(), zone.clone(), p)),
                            ),
                            Err(e) => errors.push(format!("{target}: {e}")),
                        }
                    }
                    if out.is_empty() {
                        Err(if errors.is_empty() {
                            "no answer".to_owned()
                        } else {
                            errors.join("; ")
                        })
                    } else {
                        Ok(out)
                    }
                }
                .await;
                let _ = tx.send(Input::Static { host, result }).await;
            })
            .detach();
    }

    fn on_static(&mut self, host: String, result: Result<Vec<StaticReply>, String>, now: Instant) {
        let Some(h) = self.statics.get_mut(&host) else {
            return; // removed meanwhile
        };
        h.in_flight = false;
        h.next_poll = now + Duration::from_secs(self.cfg.static_poll_secs);
        let replies = match result {
            Ok(r) => {
                if h.last_error.take().is_some() {
                    info!("static host {host}: answering again");
                }
                r
            }
            Err(e) => {
                if h.last_error.as_deref() != Some(&e) {
                    warn!("static host {host}: {e}");
                    h.last_error = Some(e);
                }
                return;
            }
        };
        let link = format!("static:{host}");
        for (ip, zone, packet) in replies {
            let Ok(rrs) = dns::records(&packet) else {
                continue;
            };
            for (label, signed) in dns::signed_records(&rrs) {
                let Some((peer, label)) = mdns::parse_instance(&label) else {
                    continue;
                };
                if self.regs.contains_key(&peer) {
                    continue;
                }
                let verified = mdns::verify_instance(signed, &self.cfg.namespace, &peer, label);
                let rec = match verified {
                    Ok(rec) => rec,
                    Err(why) => {
                        self.table.count_reject(why);
                        info!("{link}: record of {peer} refused: {why}");
                        continue;
                    }
                };
                let dial = addrs::dialable(&peer, &rec.addrs, &[ip], zone.as_deref().unwrap_or(""));
                match self
                    .table
                    .observe_from(rec, crate::proto::Source::Static, &link, dial, now)
                {
                    Ok(Some(ev)) => self.broadcast(ev),
                    Ok(None) => {}
                    Err(why) => info!("{link}: record of {peer} refused: {why}"),
                }
            }
        }
    }

    fn manage(&mut self, msg: crate::proto::ClientMsg, now: Instant) -> Result<String, String> {
        use crate::proto::ClientMsg;
        match msg {
            ClientMsg::AddHost { host } => self.add_host(&host, now),
            ClientMsg::RemoveHost { host } => {
                if self.statics.remove(&host).is_none() {
                    return Err(format!("{host} is not a static host"));
                }
                for ev in self.table.remove_iface(&format!("static:{host}")) {
                    self.broadcast(ev);
                }
                info!("static host {host}: removed");
                Ok(format!("no longer asking {host}"))
            }
            ClientMsg::AddPeer { multiaddr } => {
                let mut ma: multiaddr::Multiaddr = multiaddr
                    .parse()
                    .map_err(|e| format!("bad multiaddr {multiaddr:?}: {e}"))?;
                let Some(multiaddr::Protocol::P2p(peer)) = ma.pop() else {
                    return Err(format!("{multiaddr:?} must end in /p2p/<peer-id>"));
                };
                let full = ma.with(multiaddr::Protocol::P2p(peer));
                info!("manual peer {peer} at {full}");
                if let Some(ev) = self.table.observe_unsigned(
                    peer,
                    crate::proto::Source::Manual,
                    "manual",
                    vec![full],
                    now,
                ) {
                    self.broadcast(ev);
                }
                Ok(format!("added {peer}"))
            }
            other => Err(format!("not a management request: {other:?}")),
        }
    }

    fn status(&self, now: Instant) -> crate::proto::Status {
        use crate::proto::{FamilyStatus, IfaceStatus, StaticHostStatus, Status, UnusedIface};
        let names = |m: &BTreeMap<Reject, u64>| {
            m.iter()
                .map(|(k, v)| (k.as_str().to_owned(), *v))
                .collect::<BTreeMap<_, _>>()
        };
        let interfaces = self
            .links
            .values()
            .map(|l| {
                let stats = self.link_stats.get(&l.iface.name);
                let families = [Family::V4, Family::V6]
                    .into_iter()
                    .map(|f| {
                        let sock = l.socks.get(&f);
                        let problem = if !f.present_on(&l.iface) {
                            Some(match f {
                                Family::V4 => "no IPv4 address".to_owned(),
                                Family::V6 => "no IPv6 link-local address".to_owned(),
                            })
                        } else if let Some(e) = l.open_errors.get(&f) {
                            Some(e.clone())
                        } else {
                            sock.and_then(|s| {
                                s.last_error
                                    .as_ref()
                                    .map(|e| format!("multicast send refused: {e}"))
                            })
                        };
                        FamilyStatus {
                            family: f.as_str().to_owned(),
                            in_use: sock.is_some_and(|s| s.usable),
                            problem,
                            packets_in: self
                                .packets_in
                                .get(&(l.iface.index, f))
                                .copied()
                                .unwrap_or(0),
                            packets_out: sock.map_or(0, |s| s.packets_out),
                        }
                    })
                    .collect();
                IfaceStatus {
                    name: l.iface.name.clone(),
                    index: l.iface.index,
                    families,
                    records_accepted: stats.map_or(0, |s| s.accepted),
                    records_rejected: stats.map(|s| names(&s.rejected)).unwrap_or_default(),
                }
            })
            .collect();
        let unused_interfaces = iface::list()
            .unwrap_or_default()
            .into_iter()
            .filter(|i| !self.links.contains_key(&i.index))
            .map(|i| {
                let why = if i.loopback && !self.cfg.loopback {
                    "loopback (not used unless loopback = true)"
                } else if !self.cfg.wants_interface(&i.name, i.loopback) {
                    "excluded by the interfaces / exclude_interfaces globs"
                } else if !i.up {
                    "down"
                } else if !i.multicast {
                    "no MULTICAST flag"
                } else {
                    "not yet picked up"
                };
                UnusedIface {
                    name: i.name,
                    why: why.to_owned(),
                }
            })
            .collect();
        let counters = self.table.counters();
        Status {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_secs: now.saturating_duration_since(self.started).as_secs(),
            namespace: self.cfg.namespace.clone(),
            interfaces,
            unused_interfaces,
            peers: self.table.snapshot().len(),
            clients: self.clients.len(),
            registrations: self.regs.len(),
            static_hosts: self
                .statics
                .iter()
                .map(|(h, s)| StaticHostStatus {
                    host: h.clone(),
                    answering: s.last_error.is_none(),
                    last_error: s.last_error.clone(),
                })
                .collect(),
            records_accepted: counters.accepted,
            records_rejected: names(&counters.rejected),
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
        let label = mdns::instance_label(&peer, rec.seq);
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

/// Most static hosts asked at once.
const MAX_STATIC_HOSTS: usize = 256;

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

/// TTL of answers to stock libp2p-mdns nodes: theirs (6 minutes), as they re-query every 5.
const LIBP2P_TTL: u32 = 360;

fn send_libp2p(link: &Link, family: Family, label: &str, addrs: &[String], ttl: u32) {
    let Some(ls) = link.socks.get(&family).filter(|s| s.usable) else {
        return;
    };
    let dest = mcast::group_addr(family, &link.iface);
    for packet in dns::libp2p_response(label, addrs, ttl) {
        if let Err(e) = ls.sock.get_ref().send_to(&packet, dest) {
            debug!(
                "{} {}: libp2p-mdns answer not sent: {e}",
                link.iface.name,
                family.as_str()
            );
        }
    }
}

fn errno_suffix(e: &std::io::Error) -> String {
    e.raw_os_error()
        .map(|n| format!(" [errno {n}]"))
        .unwrap_or_default()
}

/// Reads one link socket: responses are reduced to the `_p2p._udp` instances they name and the
/// stock libp2p-mdns peers they describe; stock libp2p-mdns queries are flagged for an answer.
async fn read_link(sock: Arc<Async<UdpSocket>>, index: u32, family: Family, tx: Sender<Input>) {
    let mut buf = vec![0u8; dns::MAX_PACKET];
    let mut last_error: Option<String> = None;
    loop {
        let got = sock
            .read_with(|s| crate::sys::recv_with_ifindex(s, &mut buf))
            .await;
        let (n, from, arrived_on) = match got {
            Ok(got) => got,
            Err(e) => {
                let msg = e.to_string();
                if last_error.as_deref() != Some(&msg) {
                    debug!("link socket {index}: receive failed: {msg}");
                    last_error = Some(msg);
                }
                Timer::after(Duration::from_millis(500)).await;
                continue;
            }
        };
        let packet = &buf[..n];
        // Stock libp2p-mdns nodes speak from an ephemeral port; mDNS responders from 5353.
        let stock = from.port() != mcast::MDNS_PORT;
        let libp2p_query = stock && dns::is_service_query(packet);
        let (instances, libp2p_peers) = if dns::is_response(packet) {
            match dns::records(packet) {
                Ok(rrs) => (
                    dns::instances(&rrs),
                    if stock {
                        dns::libp2p_peers(&rrs)
                    } else {
                        Vec::new()
                    },
                ),
                Err(_) => continue,
            }
        } else {
            (Vec::new(), Vec::new())
        };
        // Attribute by where it really arrived (see `sys::recv_with_ifindex`).
        let index = arrived_on.unwrap_or(index);
        let input = Input::Packet {
            index,
            family,
            from,
            instances,
            libp2p_peers,
            libp2p_query,
        };
        if tx.send(input).await.is_err() {
            return;
        }
    }
}
