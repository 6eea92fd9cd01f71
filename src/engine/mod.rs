//! The agent's state and every decision it makes, without I/O and without a clock of its own
//! (sans-IO, in the manner of quinn-proto and smoltcp).
//!
//! The shell ([`crate::agent`]) feeds [`Input`]s in with [`Engine::handle`], calls
//! [`Engine::handle_timeout`] when [`Engine::poll_timeout`] has passed, and carries out the
//! [`Action`]s it pulls with [`Engine::poll_action`]. Results of actions that report one (a
//! query's send, a daemon's start, a probe, a static host's round, the interface listing) come
//! back as inputs. Time is always the caller's `now`, so a simulator can run many engines on a
//! simulated clock (`tests/sim`).
//!
//! Where each rule lives:
//! - [`table`]: merging records by seq, liveness per link, expiry, the events for the node;
//! - [`prober`]: which addresses to probe for reachability, and when;
//! - [`intake`]: the one way in for a signed record, whatever brought it (multicast, a static
//!   host, peer exchange, the cache): verification, counting, merge; and stock libp2p-mdns peers;
//! - [`links`]: interfaces followed, queries and their schedule, which families of a link carry
//!   mDNS, the mdns-sd daemon's families, answering stock libp2p-mdns nodes;
//! - [`registrations`]: the node's own records: what a registration may replace, the
//!   announcement schedule, goodbyes;
//! - [`statics`]: static hosts (when each is asked) and peers added by hand;
//! - [`exchange`]: peer exchange, answering other agents and taking in what a static host hands;
//! - [`repeat`]: an error that repeats is said once, counted, summarised, and its end reported;
//! - [`resync`]: when a subscriber that fell behind is sent a snapshot;
//! - [`status`]: the `status` report.

pub mod catchup;
pub mod exchange;
pub mod goodbye;
pub mod intake;
mod few;
mod keyed;
mod labels;
pub mod links;
pub mod mesh;
pub mod prober;
pub mod registrations;
pub mod repeat;
pub mod resync;
pub mod rewind;
pub mod silence;
mod stamp;
pub mod statics;
pub mod status;
pub mod table;

use crate::wire::cache::CachedPeer;
use crate::wire::config::Config;
use crate::wire::net::Iface;
use crate::wire::instance::Announcement;
use crate::wire::net::Family;
use crate::wire::protocol::{AgentMsg, ClientMsg, EventKind, PeerEvent, PeerInfo};
use crate::wire::record::{Reject, VerifiedRecord};
use crate::wire::net::{HostSpec, SendFailure};
use libp2p_identity::PeerId;
use log::Level;
use multiaddr::Multiaddr;
use repeat::Repeated;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use table::{PeerTable, Via};

pub use links::{Datagram, Heard};

/// One reply from a static host: the IP and zone it came from, and the packet.
pub type StaticReply = (IpAddr, Option<String>, Vec<u8>);

/// Everything that can happen to the agent.
#[derive(Debug)]
pub enum Input {
    /// The interfaces of the system (every one, used or not), or why they could not be listed.
    Interfaces(Result<Vec<Iface>, String>),
    /// The outcome of an [`Action::SendQuery`].
    QuerySent {
        /// Interface index.
        link: u32,
        /// Family.
        family: Family,
        /// What happened.
        outcome: SendOutcome,
    },
    /// The outcome of an [`Action::SetDaemon`] with families.
    DaemonSet {
        /// Interface index.
        link: u32,
        /// The families asked for.
        families: Vec<Family>,
        /// Whether mdns-sd took them.
        result: Result<(), String>,
    },
    /// mdns-sd resolved an instance on a link.
    Resolved {
        /// Interface index.
        link: u32,
        /// The instance's full name.
        fullname: String,
        /// The signed record its TXT carries (or why it carries none).
        signed: Result<Vec<u8>, Reject>,
        /// The announcer's addresses on the link.
        ips: Vec<IpAddr>,
    },
    /// The link's browsing daemon stopped reporting (mdns-sd drops a subscription whose event
    /// queue is full).
    BrowseEnded {
        /// Interface index.
        link: u32,
    },
    /// mdns-sd says an instance is gone (a goodbye).
    Removed {
        /// Interface index.
        link: u32,
        /// The instance's full name.
        fullname: String,
    },
    /// A link's own socket received a datagram. The engine reads it ([`Datagram::heard`]): which
    /// dialect it speaks (by its source port), what it names and carries; one that is not DNS
    /// changes nothing.
    Datagram {
        /// Interface index: where it really arrived.
        link: u32,
        /// The datagram, its sender and its socket's family (shared: one packet heard by many
        /// engines, as in the simulator, is neither copied nor read again for each).
        datagram: std::sync::Arc<Datagram>,
    },
    /// A datagram already read, on link `link`: lets the engine's tests say what a packet said
    /// without building its bytes. The shell and the simulator hand over [`Input::Datagram`].
    #[cfg(test)]
    Heard {
        /// Interface index.
        link: u32,
        /// What it said.
        heard: Heard,
    },
    /// A reachability probe finished.
    Probed {
        /// The address probed.
        addr: Multiaddr,
        /// Whether it answered.
        ok: bool,
    },
    /// A round of unicast questions to a static host ended.
    StaticReplied {
        /// The host as configured.
        host: String,
        /// The addresses it was asked at (its name resolved, or its IP): its agent may ask this
        /// one for peers (peer exchange).
        resolved: Vec<IpAddr>,
        /// Replies (with the IP and zone they came from), or why there were none.
        result: Result<Vec<StaticReply>, String>,
    },
    /// Another agent opened a peer exchange connection; say whether it may ask with
    /// [`Action::AdmitExchange`] under the same `id` (refused: closed at once).
    ExchangeOpened {
        /// The connection.
        id: u64,
        /// The asker (a link-local IPv6 address with the index of the interface it came in on).
        from: SocketAddr,
        /// Exchange connections open now from the same IP, this one left out.
        same_ip: usize,
        /// Exchange connections open now in all, this one left out.
        open: usize,
    },
    /// Another agent asked for the peers handed over here (peer exchange); answer it with
    /// [`Action::AnswerExchange`] under the same `id`.
    ExchangeAsked {
        /// The connection, for the answer.
        id: u64,
        /// The asker's IP.
        from: IpAddr,
        /// The IP it reached this host at (this host's own nodes are handed over there).
        to: IpAddr,
        /// What it sent.
        ask: crate::wire::exchange::Ask,
    },
    /// The views an [`Action::AskViews`] gathered, in its targets' order after its local one, then
    /// its hosts not asked.
    Viewed {
        /// The local socket client that asked.
        client: u64,
        /// The views.
        hosts: Vec<crate::wire::mesh::HostView>,
    },
    /// A static host's agent answered an [`Action::AskExchange`] (or could not be asked).
    Exchanged {
        /// The host as configured.
        host: String,
        /// Its reply, or why there was none.
        result: Result<crate::wire::exchange::Reply, String>,
    },
    /// The persistent cache, read at start.
    CacheLoaded {
        /// Where it was read from (for the log).
        from: String,
        /// Its peers, or why it could not be used.
        result: Result<Vec<CachedPeer>, String>,
    },
    /// The outcome of an [`Action::WriteCache`].
    CacheWritten(Result<(), String>),
    /// The outcome of an [`Action::WritePeersFile`].
    PeersFileWritten(Result<(), String>),
    /// A local socket client did something.
    Client {
        /// Connection ID.
        id: u64,
        /// What.
        request: Request,
    },
    /// A subscriber's queue was full: it missed an event or a reply, its events are held back,
    /// and it waits for a snapshot in place of what it missed (see [`resync`]).
    Behind,
    /// The outcome of an [`Action::Resync`]: whether some subscriber still waits (its queue is
    /// still full).
    Resynced {
        /// Some subscriber still waits.
        waiting: bool,
    },
    /// SIGINT or SIGTERM: say goodbye and stop.
    Shutdown,
}

/// What a local socket connection asks of the agent.
#[derive(Debug)]
pub enum Request {
    /// It passed the handshake.
    Connected,
    /// `Register`, with the signed record.
    Register(Vec<u8>),
    /// `List`.
    List,
    /// `Status`.
    Status,
    /// `Subscribe`.
    Subscribe,
    /// `Mesh`: answered [`Action::AskViews`], then `Mesh` on [`Input::Viewed`].
    Mesh,
    /// `AddHost`, `RemoveHost` or `AddPeer`.
    Manage(ClientMsg),
    /// The connection closed: its registrations are withdrawn.
    Gone,
}

/// What became of a query sent on a link's socket (opened first if need be).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// It left.
    Sent,
    /// The socket's buffer was full: nothing sent, nothing learned.
    WouldBlock,
    /// The socket could not be opened (the message says which step failed and why).
    OpenFailed(SendFailure),
    /// The system refused the send.
    Refused(SendFailure),
}

/// What the engine asks the shell to do.
#[derive(Debug)]
pub enum Action {
    /// List the interfaces and report [`Input::Interfaces`].
    ListInterfaces,
    /// Start following this interface (no socket yet).
    AddLink(Iface),
    /// The interface's addresses or flags changed: take the new ones and close its sockets (the
    /// next query reopens them).
    UpdateLink(Iface),
    /// Stop following the interface: stop its daemon (goodbyes) and close its sockets.
    RemoveLink {
        /// Interface index.
        link: u32,
    },
    /// Close the link's socket of this family (the family left the interface).
    CloseSocket {
        /// Interface index.
        link: u32,
        /// Family.
        family: Family,
    },
    /// Send a `_p2p._udp` query on the link's socket of this family, opening it first if need
    /// be, and report [`Input::QuerySent`].
    SendQuery {
        /// Interface index.
        link: u32,
        /// Family.
        family: Family,
        /// The query: a PTR question for `_p2p._udp.local` with the peers already held on that
        /// link as known answers (RFC 6762 §7.1); when they do not all fit, the TC bit is set
        /// and an [`Action::SendPackets`] with the rest follows (RFC 6762 §7.2).
        packet: Vec<u8>,
    },
    /// Run the link's mdns-sd daemon on exactly these families: start it, adjust it, or (when
    /// empty) stop it with goodbyes. Unless empty, report [`Input::DaemonSet`].
    SetDaemon {
        /// Interface index.
        link: u32,
        /// Families.
        families: Vec<Family>,
    },
    /// Replace the link's browsing daemon with a fresh one (an empty cache, a new subscription);
    /// nothing announced is touched. Reports nothing.
    RestartBrowser {
        /// Interface index.
        link: u32,
    },
    /// Register (or re-register: announce again) a node on the link's daemon.
    Announce {
        /// Interface index.
        link: u32,
        /// What to announce.
        announcement: Announcement,
    },
    /// Withdraw an instance from the link's daemon (a goodbye).
    Withdraw {
        /// Interface index.
        link: u32,
        /// The instance label.
        label: String,
    },
    /// Multicast these packets on the link's socket of this family (answers to stock
    /// libp2p-mdns nodes, the rest of a query's known answers); failures only matter to the log.
    SendPackets {
        /// Interface index.
        link: u32,
        /// Family.
        family: Family,
        /// The packets.
        packets: Vec<Vec<u8>>,
    },
    /// Try a TCP connect to `addr` within `timeout`, and report [`Input::Probed`].
    Probe {
        /// The address.
        addr: Multiaddr,
        /// How long to wait.
        timeout: Duration,
    },
    /// Ask a static host's agent for its records by unicast, and report
    /// [`Input::StaticReplied`].
    AskStatic {
        /// The host as configured.
        host: String,
        /// It, parsed.
        spec: HostSpec,
        /// How long to wait for replies per port tried.
        wait: Duration,
    },
    /// Ask a static host's agent for its peers (peer exchange, TCP), and report
    /// [`Input::Exchanged`].
    AskExchange {
        /// The host as configured.
        host: String,
        /// It, parsed.
        spec: HostSpec,
        /// How long the whole exchange may take.
        timeout: Duration,
    },
    /// Let the exchange connection `id` ask (see [`Input::ExchangeOpened`]), or close it at once.
    AdmitExchange {
        /// The connection.
        id: u64,
        /// Whether it may ask.
        admit: bool,
    },
    /// Ask these hosts' agents for their views (the exchange's view ask), each at its addresses in
    /// turn, all within `within`, and report [`Input::Viewed`] with `local` first and `unasked`
    /// last.
    AskViews {
        /// The local socket client that asked.
        client: u64,
        /// This agent's own view.
        local: crate::wire::mesh::HostView,
        /// The hosts.
        targets: Vec<mesh::Target>,
        /// The hosts not asked, each with why.
        unasked: Vec<crate::wire::mesh::HostView>,
        /// The deadline for all.
        within: Duration,
    },
    /// Send this reply on the exchange connection `id` (see [`Input::ExchangeAsked`]) and close it.
    AnswerExchange {
        /// The connection.
        id: u64,
        /// The reply.
        reply: crate::wire::exchange::Reply,
    },
    /// Write the persistent cache with these entries, and report [`Input::CacheWritten`].
    WriteCache(Vec<CachedPeer>),
    /// Replace the peers file (`peers_file`) with these peers, and report
    /// [`Input::PeersFileWritten`].
    WritePeersFile(Vec<PeerInfo>),
    /// Send this to one client.
    Reply {
        /// Connection ID.
        client: u64,
        /// The message.
        msg: AgentMsg,
    },
    /// The client subscribed: from now on it gets every event; send it this snapshot first.
    Subscribed {
        /// Connection ID.
        client: u64,
        /// The peers visible now.
        snapshot: Vec<PeerInfo>,
    },
    /// Send this event to every subscriber (report [`Input::Behind`] if one fell behind).
    Broadcast(PeerEvent),
    /// Send this snapshot to every subscriber waiting for one (see [`Input::Behind`]) whose
    /// queue has room, and report [`Input::Resynced`].
    Resync(Vec<PeerInfo>),
    /// Log a line.
    Log {
        /// Its level.
        level: Level,
        /// The line.
        line: String,
    },
    /// Stop every daemon (goodbyes) and end.
    Exit,
}

/// Checks a signed record in a namespace (normally [`crate::wire::record::verify`]; a simulator may
/// memoise it).
pub type Verifier = Box<dyn Fn(&[u8], &str) -> Result<VerifiedRecord, Reject> + Send>;

/// Records accepted and refused through one [`Via`], and addresses heard there but not on it.
#[derive(Default, Debug)]
struct ViaStats {
    accepted: u64,
    rejected: BTreeMap<Reject, u64>,
    /// Packets and peers dropped by the engine's own rules, by reason.
    dropped: BTreeMap<&'static str, u64>,
}

/// Cache writes are at most this frequent.
pub const CACHE_SAVE_INTERVAL: Duration = Duration::from_secs(5);
/// Reachability probes running at once, in all and per peer: enough to check a peer's few
/// addresses in one round trip, few enough that a large cluster coming up is no connection storm.
pub const MAX_PROBES: usize = 8;
/// See [`MAX_PROBES`].
pub const MAX_PROBES_PER_PEER: usize = 2;
/// The peers file is written at most this often while peers change.
pub const PEERS_FILE_INTERVAL: Duration = Duration::from_millis(100);
/// Addresses probed by one round confirming a peer's goodbyes (see `goodbye.rs`).
pub const MAX_CONFIRM_PROBES: usize = 4;

/// The agent's state. See the module docs.
pub struct Engine {
    cfg: Config,
    /// A small generator's state, for the jitter of query schedules (seeded per process).
    rng: u64,
    verifier: Verifier,
    log_level: log::LevelFilter,
    table: PeerTable,
    links: BTreeMap<u32, links::Link>,
    /// The last interface listing (every interface), for `status`.
    listed: Vec<Iface>,
    list_error: Repeated,
    next_list: Instant,
    regs: HashMap<PeerId, registrations::Registration>,
    /// What every input asks of `regs` (see [`registrations::Own`]).
    own: registrations::Own,
    statics: BTreeMap<String, statics::StaticHost>,
    clients: HashSet<u64>,
    /// Records accepted and refused, per way in.
    via_stats: HashMap<Via, ViaStats>,
    /// Datagrams received per (interface index, family) (counted for every datagram: a few
    /// entries, found without hashing).
    packets_in: BTreeMap<(u32, Family), u64>,
    /// The instance label of every peer's newest record, for what the link sockets hear.
    instances: labels::Labels,
    /// Unsigned peers already logged as ignored (accept_unsigned off).
    unsigned_ignored: HashSet<PeerId>,
    /// Unsigned peers ignored past that bound (not remembered).
    unsigned_over: u64,
    /// Probes confirming a goodbye or checking a silence: the address, whose link on which way
    /// it speaks for, and why.
    confirming: HashMap<Multiaddr, (PeerId, Via, silence::Check)>,
    /// Silence checks waiting for a slot.
    silence: silence::Queue,
    /// Rounds of probes confirming goodbyes, per peer.
    goodbyes: goodbye::Goodbyes,
    /// Records missed on a link and asked for again there; own records answered there.
    catchups: catchup::CatchUps,
    /// Agents that asked for the peers handed over here, and when.
    askers: exchange::Askers,
    /// Who asked for this agent's view when (the same rule as `askers`, a table of its own).
    view_askers: exchange::Askers,
    /// Where mDNS packets came from, for the mesh view.
    heard_from: mesh::HeardFrom,
    /// The last probes' outcomes, for the mesh view.
    probes_seen: mesh::ProbesSeen,
    /// Tests of records older than the one held (see `rewind.rs`).
    challenges: rewind::Challenges,
    cache_dirty: bool,
    next_cache_save: Instant,
    /// The peers file is behind what the node was told (it starts so: written once at start).
    peers_file_dirty: bool,
    next_peers_file: Instant,
    peers_file_error: Repeated,
    cache_error: Repeated,
    started: Instant,
    /// The latest `now` the engine was given.
    now: Instant,
    actions: VecDeque<Action>,
    /// When a snapshot is next tried for subscribers that fell behind (see [`resync`]).
    resync_at: Option<Instant>,
    /// What [`Engine::poll_timeout`] last worked out, kept until the engine next changes
    /// (`handle`, `handle_timeout`): the shell asks after every input, and `handle` itself asks
    /// first whether anything is due.
    wake: std::cell::Cell<Option<Option<Instant>>>,
    exited: bool,
}

impl Engine {
    /// A new engine started at `now`; its first actions list the interfaces and ask the
    /// configured static hosts.
    pub fn new(cfg: Config, now: Instant) -> Engine {
        let table = PeerTable::new(cfg.peer_timeout()).with_reachability(cfg.verify_reachability);
        let seed = {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        };
        let mut e = Engine {
            rng: seed | 1,
            table,
            verifier: Box::new(crate::wire::record::verify),
            log_level: log::LevelFilter::Trace,
            links: BTreeMap::new(),
            listed: Vec::new(),
            list_error: Repeated::default(),
            next_list: now,
            regs: HashMap::new(),
            own: Default::default(),
            statics: BTreeMap::new(),
            clients: HashSet::new(),
            via_stats: HashMap::new(),
            packets_in: BTreeMap::new(),
            instances: labels::Labels::default(),
            unsigned_ignored: HashSet::new(),
            unsigned_over: 0,
            confirming: HashMap::new(),
            silence: silence::Queue::default(),
            goodbyes: goodbye::Goodbyes::default(),
            catchups: catchup::CatchUps::default(),
            askers: exchange::Askers::default(),
            view_askers: exchange::Askers::default(),
            heard_from: mesh::HeardFrom::default(),
            probes_seen: mesh::ProbesSeen::default(),
            challenges: rewind::Challenges::default(),
            cache_dirty: false,
            next_cache_save: now,
            peers_file_dirty: true,
            next_peers_file: now,
            peers_file_error: Repeated::default(),
            cache_error: Repeated::default(),
            started: now,
            now,
            actions: VecDeque::new(),
            resync_at: None,
            wake: std::cell::Cell::new(None),
            exited: false,
            cfg,
        };
        for host in e.cfg.static_hosts.clone() {
            if let Err(why) = e.add_host(&host, now) {
                e.log(Level::Warn, || format!("static host {why}"));
            }
        }
        e
    }

    #[cfg(any(test, feature = "internals"))]
    /// Seeds the generator of the query schedules' jitter (a simulation that replays).
    pub fn with_seed(mut self, seed: u64) -> Engine {
        self.rng = seed | 1;
        self
    }

    #[cfg(any(test, feature = "internals"))]
    /// Uses `verifier` to check signed records.
    pub fn with_verifier(mut self, verifier: Verifier) -> Engine {
        self.verifier = verifier;
        self
    }

    /// Emits [`Action::Log`] only for lines at `level` or more important.
    pub fn with_log_level(mut self, level: log::LevelFilter) -> Engine {
        self.log_level = level;
        self
    }

    #[cfg(any(test, feature = "internals"))]
    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Takes in one input at `now`, then does whatever has come due (a datagram that is not DNS
    /// is dropped before either).
    pub fn handle(&mut self, input: Input, now: Instant) {
        self.wake.set(None);
        self.now = self.now.max(now);
        match input {
            Input::Interfaces(list) => self.on_interfaces(list, now),
            Input::QuerySent {
                link,
                family,
                outcome,
            } => self.on_query_sent(link, family, outcome, now),
            Input::DaemonSet {
                link,
                families,
                result,
            } => self.on_daemon_set(link, families, result),
            Input::Resolved {
                link,
                fullname,
                signed,
                ips,
            } => {
                self.on_resolved(link, &fullname, signed, ips, now);
            }
            Input::Removed { link, fullname } => self.on_removed(link, &fullname, now),
            Input::BrowseEnded { link } => self.on_browse_ended(link, now),
            Input::Datagram { link, datagram } => {
                let heard: Option<&Heard> = datagram.heard();
                let Some(heard) = heard else {
                    // Not DNS: nothing to take in, and nothing else runs for it (not even work
                    // that came due; the shell's timer brings that).
                    return;
                };
                self.on_heard(link, heard, datagram.source_print(), now)
            }
            #[cfg(test)]
            Input::Heard { link, heard } => {
                let source = keyed::source_print(heard.from.ip());
                self.on_heard(link, &heard, source, now)
            }
            Input::Probed { addr, ok } => {
                self.table.note_probe_result(&addr, ok);
                self.probes_seen.note(&addr, ok);
                // A goodbye's confirmation, or the test of an older record, is not the
                // prober's business.
                if !self.on_confirm_probe(&addr, ok, now)
                    && !self.on_challenge_probe(&addr, ok, now)
                {
                    if !ok {
                        self.log(Level::Debug, || {
                            format!("{addr} did not answer; withheld, will retry")
                        });
                    }
                    for ev in self.table.probe_result(&addr, ok, now) {
                        self.broadcast(ev);
                    }
                }
            }
            Input::StaticReplied {
                host,
                resolved,
                result,
            } => self.on_static(host, resolved, result, now),
            Input::ExchangeOpened {
                id,
                from,
                same_ip,
                open,
            } => self.on_exchange_opened(id, from, same_ip, open),
            Input::ExchangeAsked { id, from, to, ask } => {
                self.on_exchange_asked(id, from, to, ask, now)
            }
            Input::Exchanged { host, result } => self.on_exchanged(host, result, now),
            Input::Viewed { client, hosts } => self.reply(client, AgentMsg::Mesh(hosts)),
            Input::CacheLoaded { from, result } => self.on_cache_loaded(&from, result, now),
            Input::PeersFileWritten(Ok(())) => {
                if self.peers_file_error.cleared().is_some() {
                    self.log(Level::Info, || "peers file: written again".into());
                }
            }
            Input::PeersFileWritten(Err(e)) => {
                if self.peers_file_error.failed(&e, now, None).is_some() {
                    self.log(Level::Warn, || format!("peers file: cannot write: {e}"));
                }
            }
            Input::CacheWritten(Ok(())) => {
                self.cache_error.cleared();
            }
            Input::CacheWritten(Err(e)) => {
                if self.cache_error.failed(&e, now, None).is_some() {
                    self.log(Level::Warn, || format!("peer cache: cannot write: {e}"));
                }
            }
            Input::Client { id, request } => self.on_client(id, request, now),
            Input::Behind => self.on_behind(now),
            Input::Resynced { waiting } => self.on_resynced(waiting, now),
            Input::Shutdown => self.shutdown(),
        }
        if self.has_work(now) {
            self.handle_timeout(now);
        }
    }

    /// Whether [`Engine::handle_timeout`] has anything to do at `now`: something due by
    /// [`Engine::poll_timeout`], or work an input brings on without a time of its own (a probe due
    /// now or held back by the limits on probes in flight, which a probe's end lets go; a shared
    /// probe answer; a silence check waiting for a slot; the prober's pruning). Most inputs bring
    /// none: on a crowded link, going over all of it after every packet took a tenth of an
    /// engine's instructions.
    fn has_work(&self, now: Instant) -> bool {
        self.poll_timeout().is_none_or(|t| t <= now)
            || self.table.has_work(now)
            || !self.silence.is_idle()
    }

    /// Does whatever has come due by `now`: interface listing, queries, announcements, expiry,
    /// cache writes, static hosts, probes.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.wake.set(None);
        self.now = self.now.max(now);
        if self.exited {
            return;
        }
        if now >= self.next_list {
            self.next_list = now + Duration::from_millis(self.cfg.interface_poll_ms);
            self.actions.push_back(Action::ListInterfaces);
        }
        self.query_due_links(now);
        self.announce_due(now);
        for ev in self.table.expire(now) {
            self.broadcast(ev);
        }
        self.check_silent();
        self.goodbyes_due(now);
        if self.cache_dirty && now >= self.next_cache_save {
            self.save_cache(now);
        }
        if self.peers_file_due().is_some_and(|t| now >= t) {
            self.peers_file_dirty = false;
            self.next_peers_file = now + PEERS_FILE_INTERVAL;
            self.actions
                .push_back(Action::WritePeersFile(self.table.snapshot()));
        }
        self.ask_due_statics(now);
        self.catch_up_due(now);
        let timeout = Duration::from_millis(self.cfg.probe_timeout_ms);
        for (peer, addr) in self.table.due_probes(now, MAX_PROBES, MAX_PROBES_PER_PEER) {
            self.log(Level::Debug, || format!("probing {addr} ({peer})"));
            self.actions.push_back(Action::Probe { addr, timeout });
        }
        for ev in self.table.shared_answers(now) {
            self.broadcast(ev);
        }
        self.resync_due(now);
    }

    /// The next action for the shell, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Engine::handle_timeout`] next has work (`None` after [`Action::Exit`]).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if let Some(wake) = self.wake.get() {
            return wake;
        }
        let wake = self.next_wake();
        self.wake.set(Some(wake));
        wake
    }

    /// [`Engine::poll_timeout`], worked out.
    fn next_wake(&self) -> Option<Instant> {
        if self.exited {
            return None;
        }
        let mut d = self.next_list;
        let mut soonest = |t: Option<Instant>| {
            if let Some(t) = t {
                d = d.min(t);
            }
        };
        soonest(self.links.values().map(|l| l.next_query).min());
        soonest(self.own.due);
        soonest(self.statics.values().filter_map(|h| h.due()).min());
        soonest(self.catchups.next_due());
        soonest(self.goodbyes.next_due());
        soonest(self.cache_dirty.then_some(self.next_cache_save));
        soonest(self.peers_file_due());
        soonest(self.table.next_deadline(self.now));
        soonest(self.resync_at);
        Some(d)
    }

    /// Every peer visible now (what [`Action::Subscribed`] and [`Action::Resync`] carry).
    #[cfg(any(test, feature = "fuzz"))]
    pub fn snapshot(&self) -> Vec<PeerInfo> {
        self.table.snapshot()
    }

    fn log(&mut self, level: Level, line: impl FnOnce() -> String) {
        if level <= self.log_level {
            self.actions.push_back(Action::Log {
                level,
                line: line(),
            });
        }
    }

    fn broadcast(&mut self, ev: PeerEvent) {
        if ev.event != EventKind::Expired {
            self.cache_dirty = true;
        }
        self.peers_file_dirty = true;
        self.log(Level::Debug, || {
            format!(
                "{:?} {} {:?}",
                ev.event, ev.peer.peer_id, ev.peer.interfaces
            )
        });
        self.actions.push_back(Action::Broadcast(ev));
    }

    fn reply(&mut self, client: u64, msg: AgentMsg) {
        self.actions.push_back(Action::Reply { client, msg });
    }

    /// When the peers file is next written, if it is behind and there is one.
    fn peers_file_due(&self) -> Option<Instant> {
        (self.cfg.peers_file.is_some() && self.peers_file_dirty).then_some(self.next_peers_file)
    }

    fn save_cache(&mut self, now: Instant) {
        self.cache_dirty = false;
        self.next_cache_save = now + CACHE_SAVE_INTERVAL;
        self.actions
            .push_back(Action::WriteCache(self.table.cache_entries()));
    }

    fn shutdown(&mut self) {
        if self.cache_dirty {
            self.cache_dirty = false;
            self.actions
                .push_back(Action::WriteCache(self.table.cache_entries()));
        }
        self.log(Level::Info, || "shutting down: sending goodbyes".into());
        self.actions.push_back(Action::Exit);
        self.exited = true;
    }

    fn on_client(&mut self, id: u64, request: Request, now: Instant) {
        match request {
            Request::Connected => {
                self.clients.insert(id);
            }
            Request::Register(signed) => {
                let reply = self.register(id, signed, now);
                self.reply(id, reply);
            }
            Request::Manage(msg) => {
                let reply = match self.manage(msg, now) {
                    Ok(message) => AgentMsg::Done { message },
                    Err(message) => AgentMsg::Error {
                        kind: crate::wire::protocol::ErrorKind::BadRequest,
                        message,
                    },
                };
                self.reply(id, reply);
            }
            Request::Status => {
                let st = self.status(now);
                self.reply(id, AgentMsg::Status(st));
            }
            Request::List => {
                let snap = AgentMsg::Snapshot(self.table.snapshot());
                self.reply(id, snap);
            }
            Request::Mesh => self.on_mesh(id, now),
            Request::Subscribe => {
                let snapshot = self.table.snapshot();
                self.actions.push_back(Action::Subscribed {
                    client: id,
                    snapshot,
                });
            }
            Request::Gone => {
                self.clients.remove(&id);
                self.withdraw_connection(id);
            }
        }
    }
}

/// Makes room in `map` for one more entry when it holds `max`: the oldest quarter (by `at`) goes
/// at once. One packet does not scan the whole map: a full map is scanned once per `max / 4`
/// entries added (it is full on a link of hundreds of hosts, where every packet adds one).
fn make_room<K: Eq + std::hash::Hash, V, S: std::hash::BuildHasher>(
    map: &mut HashMap<K, V, S>,
    max: usize,
    at: impl Fn(&V) -> Instant,
) {
    if map.len() < max {
        return;
    }
    let mut times: Vec<Instant> = map.values().map(&at).collect();
    let keep = max - max / 4 - 1;
    // The newest `keep` stay: those after the cutoff (ties at it go too).
    let cutoff = *times.select_nth_unstable_by(map.len() - keep - 1, |a, b| a.cmp(b)).1;
    map.retain(|_, v| at(v) > cutoff);
}

#[cfg(test)]
mod tests;
