//! A deterministic network of engines on a simulated clock.
//!
//! Hosts run a real [`Engine`] each (the agent's every decision) and one node that registers a
//! signed record; links are multicast segments with per-receiver loss, delay, duplicate delivery
//! and partitions. What the shell's I/O would do is modelled here:
//! - an mdns-sd daemon: a registration is multicast at once (a record is never multicast twice
//!   within one second, RFC 6762 §6, as mdns-sd does), answers queries 20–120 ms later (a query
//!   with the TC bit 400–500 ms after its last packet, less the known answers of the packets
//!   that followed: RFC 6762 §7.2, as the vendored mdns-sd does), sends
//!   goodbyes when unregistered or stopped, and sends its own query when it starts browsing;
//!   a receiving daemon reports `Resolved` for an instance it has not resolved yet, `Removed` on a
//!   goodbye;
//! - the agent's own socket: it hands every packet it hears to its engine as bytes
//!   (`Input::Datagram`, from port 5353), which reads them as in the agent; the agents' own
//!   packets (presence queries, re-queries, answers to re-queries) are the bytes their engines
//!   made, and an mdns-sd packet is the instances it names, with their TTL (an SRV record each:
//!   the records it carries are left out, see [`Packet::Records`]);
//! - a goodbye: the receiving daemon reports the instance gone one second later (RFC 6762's
//!   grace, which mdns-sd applies);
//! - probes: a TCP connect answers when the address's host is up, its node listens there, and
//!   no partition lies between (multicast loss does not touch them: they are unicast TCP);
//! - the cache and static hosts: writes succeed; static hosts are not modelled;
//! - queries naming instances (presence queries, re-queries) and the agents' own answers to
//!   re-queries reach other agents' sockets like any multicast packet, and those answers reach
//!   their daemons too; mdns-sd's own TXT-only answers to such queries are not modelled (they
//!   resolve nothing).
//!
//! Time goes in windows as long as the shortest delay of any link (see [`Sim::run_until`]): within
//! one, each host does its share in order, its packets, timers and daemon's answers, apart from
//! the others, as nothing sent in a window arrives in it.
//!
//! Every random choice of the simulator (loss, delays, the hosts' keys, the seeds of the engines'
//! own generators and of each host's own generator, which draws what it loses and the delays of
//! what it sends) comes from one seeded generator. A run still does not replay exactly: the
//! engines' hash maps iterate in an order chosen per process (the DoS-resistant hasher), which
//! moves the order of some sends. Two runs of a scenario differ in detail (packet counts, the last
//! discovery's time), not in what it checks.

use exo_discovery::engine::{Action, Datagram, Engine, Input, Request, SendOutcome};
use exo_discovery::wire::config::Config;
use exo_discovery::wire::net::Family;
use exo_discovery::wire::net::Iface;
use exo_discovery::wire::protocol::{AgentMsg, EventKind, PeerInfo};
use exo_discovery::wire::record::{self, Reject, VerifiedRecord};
use libp2p_identity::{Keypair, PeerId};
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Signature checks by record bytes: every engine checks the same few thousand records.
/// Shared by the engines' threads (see [`Sim::take_in`]), which mostly read it.
type Memo = Arc<std::sync::RwLock<HashMap<Vec<u8>, Result<VerifiedRecord, Reject>, ByTail>>>;

/// Hashes a record by its last 16 bytes (its signature's) and its length, not all of it: the
/// simulator's own records, each signed once, differ there (equal ones are still compared
/// whole). SipHash over every byte of a record, for every engine that takes it, cost 3 % of a
/// run's instructions.
#[derive(Clone, Default)]
struct ByTail;

impl std::hash::BuildHasher for ByTail {
    type Hasher = TailHasher;
    fn build_hasher(&self) -> TailHasher {
        TailHasher(0)
    }
}

struct TailHasher(u64);

impl std::hash::Hasher for TailHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let tail = &bytes[bytes.len().saturating_sub(16)..];
        for b in tail {
            self.0 = (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(0x5851_f42d_4c95_7f2d);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 ^= n as u64;
    }
}

/// The fewest jobs in a window worth a second thread (starting one costs about 40 µs; a job, a
/// packet taken in, several).
const PARALLEL_FROM: usize = 200;

/// The node's listen port on every host.
pub const PORT: u16 = 4001;
const NODE: u64 = 1;
const WATCHER: u64 = 2;

/// A small deterministic generator: xoshiro256++, seeded by SplitMix64. (SplitMix64 alone is a
/// counter run through a mixer: a simulation whose events repeat every period draws at states an
/// equal number of steps apart, which is SplitMix64 with a poor increment, and its outputs there
/// were correlated: one receiver lost 22 announcements in a row from one sender on a link losing
/// half the packets.)
pub struct Rng([u64; 4]);

impl Rng {
    /// The generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut split = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng([split(), split(), split(), split()])
    }

    pub fn next(&mut self) -> u64 {
        let s = &mut self.0;
        let out = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = (hi - lo).as_nanos() as u64;
        lo + Duration::from_nanos(if span == 0 {
            0
        } else {
            self.next() % (span + 1)
        })
    }
}

/// A link's behaviour.
#[derive(Clone, Debug)]
pub struct LinkSpec {
    /// Each receiver loses each packet with this probability.
    pub loss: f64,
    /// Each received packet arrives twice with this probability.
    pub duplicate: f64,
    /// Delivery delay range.
    pub delay: (Duration, Duration),
}

impl Default for LinkSpec {
    fn default() -> Self {
        LinkSpec {
            loss: 0.0,
            duplicate: 0.0,
            delay: (Duration::from_micros(200), Duration::from_millis(2)),
        }
    }
}

/// A peer as one host's node sees it, from the events it was sent. (A large run keeps one per
/// pair of hosts: 40 bytes.)
#[derive(Clone, Debug)]
pub struct View {
    /// When it was first discovered, in nanoseconds of simulated time (`u64::MAX`: not yet; read
    /// through [`View::discovered_at`]).
    discovered: u64,
    /// Whether it is visible now.
    pub visible: bool,
    /// What the node was told last, while it is visible (kept only with `Sim::details`; boxed:
    /// a large run keeps a view per pair of hosts).
    pub current: Option<Box<PeerInfo>>,
    /// `expired` events, with when (most views have none).
    pub expired: Times,
    /// `updated` events.
    pub updates: u32,
    /// The record's seq the node was told last.
    pub seq: u64,
}

const _: () = assert!(std::mem::size_of::<Option<View>>() == 40);

impl Default for View {
    fn default() -> Self {
        View {
            discovered: u64::MAX,
            visible: false,
            current: None,
            expired: Times::default(),
            updates: 0,
            seq: 0,
        }
    }
}

impl View {
    /// When it was first discovered.
    pub fn discovered_at(&self) -> Option<Duration> {
        (self.discovered != u64::MAX).then(|| Duration::from_nanos(self.discovered))
    }
}

/// Times, read as a slice: none in a pointer's room (a boxed slice's pointer takes two).
#[derive(Clone, Debug, Default)]
#[allow(clippy::box_collection)]
pub struct Times(Option<Box<Vec<Duration>>>);

impl std::ops::Deref for Times {
    type Target = [Duration];
    fn deref(&self) -> &[Duration] {
        self.0.as_deref().map_or(&[], |v| &v[..])
    }
}

impl Times {
    fn push(&mut self, t: Duration) {
        self.0.get_or_insert_default().push(t);
    }
}

/// Something per other host on a link, by that host's index: a vector from the lowest index seen
/// (a large run keeps a view per pair of hosts on a link, and a map's slots took twice the room; a
/// vector from index 0 took room for every host of every link: 4 GB of empty slots for 10,000
/// hosts on links of 100).
struct ByHost<T> {
    base: usize,
    slots: Vec<Option<T>>,
}

impl<T> Default for ByHost<T> {
    fn default() -> Self {
        ByHost {
            base: 0,
            slots: Vec::new(),
        }
    }
}

impl<T> ByHost<T> {
    fn get(&self, peer: usize) -> Option<&T> {
        self.slots.get(peer.checked_sub(self.base)?)?.as_ref()
    }

    fn get_mut(&mut self, peer: usize) -> Option<&mut T> {
        self.slots.get_mut(peer.checked_sub(self.base)?)?.as_mut()
    }

    fn remove(&mut self, peer: usize) -> Option<T> {
        self.slots.get_mut(peer.checked_sub(self.base)?)?.take()
    }

    /// The place for `peer`'s value (empty or not).
    fn place(&mut self, peer: usize) -> &mut Option<T> {
        if self.slots.is_empty() {
            self.base = peer;
        }
        // Grown by an eighth past what is needed at most, either way (a link's hosts come in any
        // order; a vector's own growth, doubling, took twice the room).
        if peer < self.base {
            let more = self.base - peer;
            let len = self.slots.len() + more;
            let mut slots = Vec::with_capacity(len + len / 8);
            slots.resize_with(more, || None);
            slots.append(&mut self.slots);
            self.slots = slots;
            self.base = peer;
        }
        let i = peer - self.base;
        if self.slots.len() <= i {
            if self.slots.capacity() < i + 1 {
                self.slots
                    .reserve_exact((i + 1 - self.slots.len()).max(self.slots.len() / 8));
            }
            self.slots.resize_with(i + 1, || None);
        }
        &mut self.slots[i]
    }
}

/// One host's views, by the other host's index.
type Views = ByHost<View>;

impl Views {
    fn entry(&mut self, peer: usize) -> &mut View {
        self.place(peer).get_or_insert_with(View::default)
    }
}

/// A daemon's answer held for a querier: the ids of the instances left to answer, and when it goes
/// (nanoseconds of simulated time).
type Held = (Left, u64);

/// Ids of instances: a daemon holds one or two (kept in place: a large run holds an answer per
/// pair of hosts at once), or more.
enum Left {
    /// Up to two (`NONE` for none).
    Few([u64; 2]),
    More(Box<[u64]>),
}

impl Left {
    const NONE: u64 = u64::MAX;

    fn of(ids: impl Iterator<Item = u64>) -> Left {
        let ids: Vec<u64> = ids.collect();
        match ids[..] {
            [] => Left::Few([Self::NONE; 2]),
            [a] => Left::Few([a, Self::NONE]),
            [a, b] => Left::Few([a, b]),
            _ => Left::More(ids.into()),
        }
    }

    fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        let ids: &[u64] = match self {
            Left::Few(ids) => ids,
            Left::More(ids) => ids,
        };
        ids.iter().copied().filter(|id| *id != Self::NONE)
    }
}

struct Ann {
    /// Unique per announcement, for the daemons' caches.
    id: u64,
    label: String,
    fullname: String,
    signed: Vec<u8>,
}

enum Packet {
    /// A packet of a `_p2p._udp` query: the question (`asks`), or only more known answers (the
    /// packets after one with the TC bit, RFC 6762 §7.2), with the instance labels it lists as
    /// known answers; daemons answer it, and link sockets hand its `datagram` to their engine.
    Query {
        asks: bool,
        known: HashSet<String>,
        truncated: bool,
        datagram: Arc<[u8]>,
    },
    /// An agent's own packet that no daemon takes in: a query naming instances (a presence
    /// query or a re-query), as its engine made it.
    Datagram(Arc<[u8]>),
    /// Announcements or answers (`ttl` 0: goodbyes) as receiving daemons resolve them, and the
    /// `datagram` receiving link sockets hand to their engine: an agent's answer to a re-query
    /// as its engine made it (with its records), or for mdns-sd's packets the instances they
    /// name ([`instance_names`]). mdns-sd's packets carry the records too, but the receiving
    /// daemon resolves those: the engine would take them only while catching up on a record
    /// mdns-sd did not report, which the model leaves out to keep large runs fast.
    Records {
        anns: Vec<Arc<Ann>>,
        ttl: u32,
        datagram: Arc<[u8]>,
    },
}

impl Packet {
    /// The datagram as it goes on the link.
    fn bytes(&self) -> &[u8] {
        match self {
            Packet::Query { datagram, .. }
            | Packet::Datagram(datagram)
            | Packet::Records { datagram, .. } => datagram,
        }
    }
}

/// What a link socket makes of an mdns-sd packet in this model: a response naming each
/// instance by an SRV record with `ttl` (a goodbye at 0), and carrying no signed record.
fn instance_names(anns: &[Arc<Ann>], ttl: u32) -> Vec<u8> {
    fn name(p: &mut Vec<u8>, name: &str) {
        for label in name.split('.').filter(|l| !l.is_empty()) {
            p.push(label.len() as u8);
            p.extend_from_slice(label.as_bytes());
        }
        p.push(0);
    }
    let mut p = vec![0, 0, 0x84, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    p[6..8].copy_from_slice(&(anns.len() as u16).to_be_bytes());
    for a in anns {
        name(&mut p, &a.fullname);
        p.extend_from_slice(&exo_discovery::wire::dns::TYPE_SRV.to_be_bytes());
        p.extend_from_slice(&0x8001u16.to_be_bytes());
        p.extend_from_slice(&ttl.to_be_bytes());
        let mut srv = vec![0, 0, 0, 0];
        srv.extend_from_slice(&PORT.to_be_bytes());
        name(&mut srv, "host.local");
        p.extend_from_slice(&(srv.len() as u16).to_be_bytes());
        p.extend_from_slice(&srv);
    }
    p
}

/// A packet of a `_p2p._udp` query, as the agent or mdns-sd made it.
fn query(datagram: Vec<u8>) -> Packet {
    use exo_discovery::wire::dns;
    let asks = dns::questions(&datagram).is_ok_and(|q| !q.is_empty());
    let known = dns::records(&datagram)
        .map(|rrs| dns::instances(&rrs))
        .unwrap_or_default()
        .into_iter()
        .map(|(label, _)| label)
        .collect();
    Packet::Query {
        asks,
        known,
        truncated: dns::is_truncated(&datagram),
        datagram: datagram.into(),
    }
}

/// An mdns-sd packet: `anns` with `ttl` (see [`Packet::Records`]).
fn mdns_records(anns: Vec<Arc<Ann>>, ttl: u32) -> Packet {
    let datagram = instance_names(&anns, ttl);
    Packet::Records {
        anns,
        ttl,
        datagram: datagram.into(),
    }
}

/// What decides whether a probe answers: a TCP connect answers when the address's host is up, its
/// node listens there, and no partition lies between (multicast loss does not touch it). The
/// engines' threads probe through it, read-only (see [`Sim::take_in`]).
#[derive(Default)]
struct Reach {
    /// Each IP's host and link.
    by_ip: HashMap<Ipv4Addr, (usize, usize)>,
    /// Blocked (link, a, b) pairs with a < b.
    partitions: HashSet<(usize, usize, usize)>,
    /// By host: its node answers a probe (the host is up, its node listens).
    answering: Vec<bool>,
}

impl Reach {
    /// Whether `from`'s probe of `addr` answers.
    fn answers(&self, from: usize, addr: &multiaddr::Multiaddr) -> bool {
        let target = addr.iter().next().and_then(|p| match p {
            multiaddr::Protocol::Ip4(ip) => self.by_ip.get(&ip).copied(),
            _ => None,
        });
        target.is_some_and(|(h, link)| {
            self.answering[h] && !self.partitions.contains(&(link, from.min(h), from.max(h)))
        }) && addr.iter().any(|p| p == multiaddr::Protocol::Tcp(PORT))
    }
}

/// Keeps glibc's allocator to one heap (arena) for every thread, before the engines' second
/// thread first allocates. By default each new thread takes an arena of its own: the engines'
/// state then spreads over two heaps, and what one thread allocated the other frees. Measured at
/// 1,000 agents: 1,085,312 KiB peak RSS and 436 s of CPU (23.1 million engine inputs) with an
/// arena per thread, 954,580 KiB and 319 s (20.6 million) with one.
fn one_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: mallopt only sets an allocator parameter; M_ARENA_MAX is one glibc knows.
        ONCE.call_once(|| unsafe {
            nix::libc::mallopt(nix::libc::M_ARENA_MAX, 1);
        });
    }
}

/// Something one host does at a time within a window (see [`Sim::run_until`]).
enum Job {
    /// The window's `n`th arriving packet reaches the host's port `index`, unless lost on the way.
    Packet { n: u32, index: u32 },
    /// The engine's timer.
    Timer,
    /// The daemon's held answers on port `index` are due.
    Held { index: u32 },
    /// An input due now (mdns-sd's report a second after a goodbye).
    Later(Box<Input>),
}

/// A packet arriving in a window: its link, its sender and the sender's address there, what it
/// is, and the datagram its receivers' engines read (once, by the first to take it in).
struct Arrival {
    link: usize,
    from: usize,
    from_ip: Ipv4Addr,
    packet: Arc<Packet>,
    datagram: Arc<Datagram>,
}

/// Hosts and links are numbered in 32 bits here: a large run queues an event per pair of hosts at
/// once (a daemon's held answer to each querier), and every queued event takes the room of the
/// largest.
enum Event {
    Timer {
        host: u32,
    },
    /// A daemon's held answers are due (see `Port::due`).
    Held {
        host: u32,
        index: u32,
    },
    /// An input for one host, due later (mdns-sd's one second of grace after a goodbye); boxed,
    /// as it is rare and large.
    Later {
        host: u32,
        input: Box<Input>,
    },
    Packet {
        link: u32,
        from: u32,
        packet: Arc<Packet>,
    },
}

/// An event in the queue: ordered so that the max-heap pops the soonest, and of two due at once
/// the one scheduled first.
struct Queued {
    /// When, in nanoseconds of simulated time.
    at: u64,
    seq: u64,
    ev: Event,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// `d` in nanoseconds.
fn nanos(d: Duration) -> u64 {
    d.as_nanos() as u64
}

struct SimLink {
    spec: LinkSpec,
    /// (host, interface index on that host)
    members: Vec<(usize, u32)>,
}

/// One host's interface on a link.
struct Port {
    link: usize,
    iface: Iface,
    daemon: bool,
    socket: bool,
    /// Instances registered on the daemon, with when each was last multicast.
    registered: HashMap<String, (Arc<Ann>, Option<Duration>)>,
    /// Instances the daemon has resolved (their `Ann::id`).
    resolved: HashSet<u64>,
    /// Answers held for truncated queries, by querier.
    held: ByHost<Held>,
    /// When each held answer is due (nanoseconds of simulated time, querier), soonest first: the
    /// queue holds one wake-up per daemon, not one per held answer (a large run holds one per
    /// pair of hosts at once).
    due: BinaryHeap<std::cmp::Reverse<(u64, u32)>>,
    /// The wake-up queued for `due`, if any.
    wake: Option<u64>,
    /// When the last query packet sent here arrives (a query's packets arrive in the order they
    /// were sent: its packets of known answers follow its question, as on a real link).
    last_query: Duration,
}

/// One simulated host.
pub struct Host {
    pub name: String,
    engine: Engine,
    key: Keypair,
    pub peer: PeerId,
    ports: Vec<Port>,
    /// Up: handles inputs, answers probes. A vanished host does nothing at all.
    pub up: bool,
    /// Added to the simulated time for the node's wall clock (the record's seq).
    pub wall_offset: i64,
    timer: Option<Duration>,
    /// The peers its node was told of, by their host's index.
    views: Views,
    /// Warnings the engine logged.
    pub warnings: Vec<String>,
    /// Its own generator, for what it loses and the delays of its daemon and its packets: what
    /// it does in a window depends on nothing another host does in that window.
    rng: Rng,
    /// Announcements its daemon took (see `Ann::id`).
    anns: u64,
    /// What it does in the current window, in order (nanoseconds of simulated time, job).
    jobs: Vec<(u64, Job)>,
    /// What its work did that the rest of the network sees (see [`Sim::absorb`]).
    out: Out,
    /// Room for the inputs a packet brings its engine (kept: a large run takes in millions).
    inputs: Vec<Input>,
}

/// Multicast packets sent, by what they were.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sent {
    /// The agents' `_p2p._udp` queries (with known answers), and the daemons' when they start.
    pub queries: u64,
    /// mdns-sd's announcements (a registration, and each re-announcement).
    pub announcements: u64,
    /// mdns-sd's answers to `_p2p._udp` queries.
    pub answers: u64,
    /// The agents' own packets: presence queries, re-queries and answers to re-queries.
    pub catchup: u64,
    /// Goodbyes (each counted once, though mdns-sd sends it twice).
    pub goodbyes: u64,
}

impl Sent {
    fn add(&mut self, more: &Sent) {
        self.queries += more.queries;
        self.announcements += more.announcements;
        self.answers += more.answers;
        self.catchup += more.catchup;
        self.goodbyes += more.goodbyes;
    }
}

/// The CPU time hosts spent, by what they did (with `Sim::profile`): where a large run's time
/// goes. Each entry is (nanoseconds, how many times).
#[derive(Clone, Copy, Debug, Default)]
pub struct Spent {
    /// The engine's timer.
    pub timers: (u64, u64),
    /// A packet of a `_p2p._udp` query arriving (with its known answers): the daemon's side and
    /// the engine's.
    pub queries: (u64, u64),
    /// A packet of the agents' own queries arriving (presence queries, re-queries).
    pub catchup: (u64, u64),
    /// A packet of records arriving (announcements, answers): the daemon resolving them and the
    /// engine taking them in, probes and the node's events included.
    pub records: (u64, u64),
    /// A daemon's held answers going out.
    pub answers: (u64, u64),
}

impl Spent {
    fn add(&mut self, more: &Spent) {
        for (a, b) in [
            (&mut self.timers, more.timers),
            (&mut self.queries, more.queries),
            (&mut self.catchup, more.catchup),
            (&mut self.records, more.records),
            (&mut self.answers, more.answers),
        ] {
            a.0 += b.0;
            a.1 += b.1;
        }
    }
}

impl std::fmt::Display for Spent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (what, (nanos, n)) in [
            ("timers", self.timers),
            ("queries", self.queries),
            ("catch-up queries", self.catchup),
            ("records", self.records),
            ("daemons' answers", self.answers),
        ] {
            let us = nanos as f64 / 1e3 / n.max(1) as f64;
            writeln!(
                f,
                "{what:>17}: {:7.2} s of CPU, {n:>9} times, {us:6.2} µs each",
                nanos as f64 / 1e9
            )?;
        }
        Ok(())
    }
}

/// Adds the time since `from` (if timed) to `to`.
fn spent(to: &mut (u64, u64), from: Option<Instant>) {
    if let Some(t) = from {
        to.0 += t.elapsed().as_nanos() as u64;
        to.1 += 1;
    }
}

/// What a host's work did that the rest of the network sees, until the network takes it in.
#[derive(Default)]
struct Out {
    /// Events to queue (nanoseconds of simulated time, event).
    events: Vec<(u64, Event)>,
    sent: Sent,
    packets: u64,
    inputs: u64,
    /// When its node was told of a peer for the first time.
    discoveries: Vec<Duration>,
    /// Its agent exited: its node no longer answers probes.
    exited: bool,
    /// The latest simulated time it worked at (its timer may run after the window's last event).
    last: Duration,
    spent: Spent,
}

/// What a host's work reads of the rest of the network (nothing changes it during a window).
struct Ctx<'a> {
    base: Instant,
    links: &'a [SimLink],
    reach: &'a Reach,
    by_peer: &'a HashMap<String, usize>,
    details: bool,
    profile: bool,
    /// The packets arriving in the window.
    arrivals: &'a [Arrival],
    /// When the window ends (nanoseconds of simulated time, exclusive; 0 outside a window):
    /// what a host has due before then is done in the window, not queued.
    until: u64,
}

/// The simulated network.
pub struct Sim {
    pub now: Duration,
    base: Instant,
    pub rng: Rng,
    links: Vec<SimLink>,
    pub hosts: Vec<Host>,
    /// Events due, soonest first (and in the order scheduled at one time).
    queue: BinaryHeap<Queued>,
    next_event: u64,
    /// Hosts by their node's peer ID (base58).
    by_peer: HashMap<String, usize>,
    verified: Memo,
    /// The hosts' IPs, the partitions, and whose node answers probes.
    reach: Reach,
    /// First discoveries seen, over all hosts (for "everyone found everyone").
    pub discoveries: usize,
    /// Time of the latest first discovery.
    pub last_discovery: Duration,
    /// When each first discovery happened, in order.
    pub discovery_times: Vec<Duration>,
    /// Keep what each node was told of each peer (off for large runs: memory).
    pub details: bool,
    /// Time the hosts' work, by what it was ([`Sim::spent`]).
    pub profile: bool,
    /// The CPU time hosts spent, by what they did (with `profile`).
    pub spent: Spent,
    pub config: Config,
    /// Multicast packets sent, and inputs given to engines.
    pub packets: u64,
    /// The packets sent, by what they were.
    pub sent: Sent,
    pub inputs: u64,
    /// Threads the hosts work on in a window (see [`Sim::take_in`]): 1, all on this one, unless
    /// a scenario asks for more.
    pub threads: usize,
}

impl Sim {
    /// An empty network; `seed` fixes every random choice.
    pub fn new(seed: u64) -> Sim {
        let config = Config {
            state_dir: Some("/nonexistent".into()),
            ..Config::default()
        };
        Sim {
            now: Duration::ZERO,
            // Far enough ahead that a clock stepped back stays a valid Instant.
            base: Instant::now() + Duration::from_secs(30 * 86_400),
            rng: Rng::new(seed),
            links: Vec::new(),
            hosts: Vec::new(),
            queue: BinaryHeap::new(),
            next_event: 0,
            by_peer: HashMap::new(),
            verified: Arc::default(),
            threads: 1,
            reach: Reach::default(),
            discoveries: 0,
            last_discovery: Duration::ZERO,
            discovery_times: Vec::new(),
            details: true,
            profile: false,
            spent: Spent::default(),
            config,
            packets: 0,
            inputs: 0,
            sent: Sent::default(),
        }
    }

    /// A new link.
    pub fn link(&mut self, spec: LinkSpec) -> usize {
        self.links.push(SimLink {
            spec,
            members: Vec::new(),
        });
        self.links.len() - 1
    }

    /// A new host with an interface on each of `links`, its agent started now and its node
    /// registered now.
    pub fn host(&mut self, name: &str, links: &[usize]) -> usize {
        let id = self.hosts.len();
        // The host's key from the generator too: the same seed, the same peer IDs.
        let mut secret = [0u8; 32];
        for chunk in secret.chunks_mut(8) {
            chunk.copy_from_slice(&self.rng.next().to_le_bytes());
        }
        let key = Keypair::ed25519_from_bytes(secret).expect("any 32 bytes are an ed25519 secret");
        let peer = key.public().to_peer_id();
        self.by_peer.insert(peer.to_base58(), id);
        let mut ports = Vec::new();
        for (i, &link) in links.iter().enumerate() {
            let n = self.links[link].members.len() as u32 + 1;
            let ip = Ipv4Addr::new(10, link as u8, (n >> 8) as u8, n as u8);
            self.reach.by_ip.insert(ip, (id, link));
            let index = i as u32 + 2;
            self.links[link].members.push((id, index));
            ports.push(Port {
                link,
                iface: Iface {
                    name: format!("eth{i}"),
                    index,
                    up: true,
                    multicast: true,
                    loopback: false,
                    point_to_point: false,
                    v4: vec![(ip, 16)],
                    v6: Vec::new(),
                },
                daemon: false,
                socket: false,
                registered: HashMap::new(),
                resolved: HashSet::new(),
                held: ByHost::default(),
                due: BinaryHeap::new(),
                wake: None,
                last_query: Duration::ZERO,
            });
        }
        let memo = self.verified.clone();
        let verifier = Box::new(move |signed: &[u8], ns: &str| {
            if let Some(known) = memo.read().expect("memo").get(signed) {
                return known.clone();
            }
            let checked = record::verify(signed, ns);
            memo.write()
                .expect("memo")
                .insert(signed.to_vec(), checked.clone());
            checked
        });
        let engine = Engine::new(self.config.clone(), self.base + self.now)
            .with_seed(self.rng.next())
            .with_verifier(verifier)
            .with_log_level(log::LevelFilter::Warn);
        self.reach.answering.push(true);
        let rng = Rng::new(self.rng.next());
        self.hosts.push(Host {
            name: name.to_owned(),
            engine,
            key,
            peer,
            ports,
            up: true,
            wall_offset: 0,
            timer: None,
            views: Views::default(),
            warnings: Vec::new(),
            rng,
            anns: 0,
            jobs: Vec::new(),
            out: Out::default(),
            inputs: Vec::new(),
        });
        self.input(
            id,
            Input::Client {
                id: NODE,
                request: Request::Connected,
            },
        );
        self.input(
            id,
            Input::Client {
                id: WATCHER,
                request: Request::Connected,
            },
        );
        self.input(
            id,
            Input::Client {
                id: WATCHER,
                request: Request::Subscribe,
            },
        );
        self.register(id);
        id
    }

    /// The node (re)registers a record signed now by its wall clock.
    pub fn register(&mut self, host: usize) {
        let h = &self.hosts[host];
        let wall = (self.now.as_micros() as i64 + 1_700_000_000_000_000 + h.wall_offset) as u64;
        let addr = format!("/ip4/0.0.0.0/tcp/{PORT}")
            .parse()
            .expect("multiaddr");
        let signed = record::sign(&h.key, &self.config.namespace, wall, &[addr]).expect("sign");
        self.input(
            host,
            Input::Client {
                id: NODE,
                request: Request::Register(signed),
            },
        );
    }

    /// The node's wall clock (the seq of the records it signs) moves by `micros`.
    pub fn step_clock(&mut self, host: usize, micros: i64) {
        self.hosts[host].wall_offset += micros;
    }

    /// The node restarts: its connection closes, a new one registers a new record at once.
    pub fn node_restarts(&mut self, host: usize) {
        self.input(
            host,
            Input::Client {
                id: NODE,
                request: Request::Gone,
            },
        );
        self.input(
            host,
            Input::Client {
                id: NODE,
                request: Request::Connected,
            },
        );
        self.register(host);
    }

    /// The node's connection closes (the agent withdraws its record at once: goodbyes).
    pub fn node_leaves(&mut self, host: usize) {
        self.reach.answering[host] = false;
        self.input(
            host,
            Input::Client {
                id: NODE,
                request: Request::Gone,
            },
        );
    }

    /// The node that left starts again on the same ports: it connects and registers a record
    /// signed now by its wall clock (it listens only from [`Sim::node_listens`] on).
    pub fn node_returns(&mut self, host: usize) {
        self.input(
            host,
            Input::Client {
                id: NODE,
                request: Request::Connected,
            },
        );
        self.register(host);
    }

    /// The node listens on its port again (probes to it answer).
    pub fn node_listens(&mut self, host: usize) {
        self.reach.answering[host] = self.hosts[host].up;
    }

    /// The host vanishes: no goodbye, no answer, nothing.
    pub fn vanish(&mut self, host: usize) {
        self.hosts[host].up = false;
        self.reach.answering[host] = false;
    }

    /// Packets between `a` and `b` on `link` are lost (both ways) until healed.
    pub fn partition(&mut self, link: usize, a: usize, b: usize, blocked: bool) {
        let key = (link, a.min(b), a.max(b));
        if blocked {
            self.reach.partitions.insert(key);
        } else {
            self.reach.partitions.remove(&key);
        }
    }

    /// Queues `ev` at `at` (nanoseconds of simulated time).
    fn schedule(&mut self, at: u64, ev: Event) {
        self.next_event += 1;
        self.queue.push(Queued {
            at,
            seq: self.next_event,
            ev,
        });
    }

    /// Feeds one input to a host's engine now and carries out what follows.
    pub fn input(&mut self, host: usize, input: Input) {
        let now = self.now;
        let (ctx, hosts) = self.parts(&[], 0);
        let h = &mut hosts[host];
        let mut out = std::mem::take(&mut h.out);
        h.input(host, input, now, &ctx, &mut out);
        let next = h.engine.poll_timeout();
        h.wake(host, next, now, &ctx, &mut out);
        h.out = out;
        self.absorb(host);
    }

    /// What hosts read of the network while they work (`arrivals` and `until`: the window's, if
    /// any), beside the hosts themselves.
    fn parts<'a>(&'a mut self, arrivals: &'a [Arrival], until: u64) -> (Ctx<'a>, &'a mut [Host]) {
        let ctx = Ctx {
            base: self.base,
            links: &self.links,
            reach: &self.reach,
            by_peer: &self.by_peer,
            details: self.details,
            profile: self.profile,
            arrivals,
            until,
        };
        (ctx, &mut self.hosts)
    }

    /// Takes in what `host`'s work did: its events queued, its counts added.
    fn absorb(&mut self, host: usize) {
        let mut out = std::mem::take(&mut self.hosts[host].out);
        // No engine is handed a time before one it already worked at.
        self.now = self.now.max(out.last);
        if out.exited {
            self.reach.answering[host] = false;
        }
        self.sent.add(&out.sent);
        self.spent.add(&out.spent);
        self.packets += out.packets;
        self.inputs += out.inputs;
        for t in out.discoveries.drain(..) {
            self.discoveries += 1;
            self.last_discovery = self.last_discovery.max(t);
            self.discovery_times.push(t);
        }
        for (at, ev) in out.events.drain(..) {
            self.schedule(at, ev);
        }
        // The room of its buffers stays for the next window.
        self.hosts[host].out = Out {
            events: out.events,
            discoveries: out.discoveries,
            ..Out::default()
        };
    }

    /// Runs until `done` holds (checked after every window) or `limit` of simulated time has
    /// passed; returns whether `done` held.
    ///
    /// Time goes in windows as long as the shortest delay of any link: a packet sent in a window
    /// arrives after it, so what one host does in a window depends on nothing another host does
    /// in it. Each host does its share of a window in order (the packets that reach it, its
    /// timer, its daemon's answers), all of it at once: its state is read from memory once per
    /// window, not once per packet (a window of a large run holds dozens of packets).
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let end = nanos(self.now + limit);
        // With no delay (1 ns): a window is the events of one time.
        let ahead = self
            .links
            .iter()
            .map(|l| nanos(l.spec.delay.0))
            .min()
            .unwrap_or(0)
            .max(1);
        loop {
            if done(self) {
                return true;
            }
            let Some(start) = self.queue.peek().map(|q| q.at) else {
                self.now = Duration::from_nanos(end);
                return false;
            };
            if start > end {
                self.now = Duration::from_nanos(end);
                return done(self);
            }
            // Nothing is queued before a time some host already worked at (what a host has due
            // itself within a window is done in it, not queued).
            assert!(start >= nanos(self.now), "an event queued in a host's past");
            self.window((start + ahead).min(end + 1));
        }
    }

    /// Runs for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(d, |_| false);
    }

    /// Hands every event due before `until` (nanoseconds of simulated time) to the hosts it
    /// concerns (a packet to each receiver on its link), then has them do it.
    fn window(&mut self, until: u64) {
        fn give(hosts: &mut [Host], busy: &mut Vec<usize>, host: usize, at: u64, job: Job) {
            let h = &mut hosts[host];
            if h.jobs.is_empty() {
                busy.push(host);
            }
            h.jobs.push((at, job));
        }
        let mut arrivals = Vec::new();
        let mut busy = Vec::new();
        while self.queue.peek().is_some_and(|q| q.at < until) {
            let Queued { at, ev, .. } = self.queue.pop().expect("peeked");
            self.now = Duration::from_nanos(at);
            let hosts = &mut self.hosts;
            match ev {
                Event::Timer { host } => give(hosts, &mut busy, host as usize, at, Job::Timer),
                Event::Held { host, index } => {
                    give(hosts, &mut busy, host as usize, at, Job::Held { index })
                }
                Event::Later { host, input } => {
                    give(hosts, &mut busy, host as usize, at, Job::Later(input))
                }
                Event::Packet { link, from, packet } => {
                    let (link, from) = (link as usize, from as usize);
                    let Some(from_ip) = hosts[from]
                        .ports
                        .iter()
                        .find(|p| p.link == link)
                        .map(|p| p.iface.v4[0].0)
                    else {
                        continue;
                    };
                    let n = arrivals.len() as u32;
                    for &(host, index) in &self.links[link].members {
                        if host == from
                            || !hosts[host].up
                            || self.reach.partitions.contains(&(
                                link,
                                host.min(from),
                                host.max(from),
                            ))
                        {
                            continue;
                        }
                        give(hosts, &mut busy, host, at, Job::Packet { n, index });
                    }
                    // One datagram for every receiving engine: read once, by the first to
                    // take it in.
                    let addr = SocketAddr::new(IpAddr::V4(from_ip), 5353);
                    let datagram = Arc::new(Datagram::new(Family::V4, addr, packet.bytes()));
                    arrivals.push(Arrival {
                        link,
                        from,
                        from_ip,
                        packet,
                        datagram,
                    });
                }
            }
        }
        self.take_in(busy, &arrivals, until);
    }

    /// Has each `busy` host do its jobs of the window ending at `until`: on two threads for
    /// many jobs (a host reads and changes only its own state and reads the network's, which
    /// nothing changes meanwhile: the outcome is the same as one after the other); then takes in
    /// what they did, host by host in order of their numbers.
    fn take_in(&mut self, mut busy: Vec<usize>, arrivals: &[Arrival], until: u64) {
        busy.sort_unstable();
        let threads = self.threads;
        let (ctx, mut rest) = self.parts(arrivals, until);
        let mut hosts: Vec<(usize, &mut Host)> = Vec::with_capacity(busy.len());
        let mut offset = 0;
        for &host in &busy {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(host - offset + 1);
            hosts.push((host, &mut head[host - offset]));
            rest = tail;
            offset = host + 1;
        }
        let jobs: usize = hosts.iter().map(|(_, h)| h.jobs.len()).sum();
        let run = |hosts: &mut [(usize, &mut Host)]| {
            for (me, h) in hosts {
                h.work(*me, &ctx);
            }
        };
        if threads > 1 && jobs >= PARALLEL_FROM {
            one_heap();
            // Each thread takes the next few hosts until none is left: hosts' shares differ
            // (a host that takes in records works far longer than one that hears what it has).
            let next = Mutex::new(hosts.chunks_mut(8));
            let take = || loop {
                let Some(few) = next.lock().expect("hosts").next() else {
                    break;
                };
                run(few);
            };
            std::thread::scope(|s| {
                for _ in 1..threads {
                    s.spawn(take);
                }
                take();
            });
        } else {
            run(&mut hosts);
        }
        let start = self.discovery_times.len();
        for host in busy {
            self.absorb(host);
        }
        self.discovery_times[start..].sort_unstable();
    }

    /// The time by which a fraction `q` (0..=1) of the first discoveries had happened.
    pub fn discovered_by(&self, q: f64) -> Duration {
        let n = self.discovery_times.len();
        if n == 0 {
            return Duration::ZERO;
        }
        self.discovery_times[((n - 1) as f64 * q).round() as usize]
    }

    /// Whether every up host's node sees every other up host's node.
    pub fn everyone_sees_everyone(&self) -> bool {
        let n = self.hosts.len();
        self.discoveries >= n * (n - 1)
    }

    /// What `observer`'s node was told of `peer`'s node.
    pub fn view(&self, observer: usize, peer: usize) -> Option<&View> {
        self.hosts[observer].views.get(peer)
    }
}

/// A host's own work: its engine, its daemon, its sockets, its node's view; what it sends goes to
/// its [`Out`].
impl Host {
    fn port(&mut self, index: u32) -> Option<&mut Port> {
        self.ports.iter_mut().find(|p| p.iface.index == index)
    }

    /// Feeds one input to the engine at `now` and carries out what follows.
    fn input(&mut self, me: usize, input: Input, now: Duration, ctx: &Ctx, out: &mut Out) {
        if !self.up {
            return;
        }
        out.inputs += 1;
        self.engine.handle(input, ctx.base + now);
        self.drain(me, now, ctx, out);
    }

    /// Carries out what the engine asks for at `now`, handing it back what follows.
    fn drain(&mut self, me: usize, now: Duration, ctx: &Ctx, out: &mut Out) {
        while let Some(action) = self.engine.poll_action() {
            if let Some(input) = self.execute(me, now, action, ctx, out) {
                self.engine.handle(input, ctx.base + now);
            }
        }
    }

    /// Queues the engine's timer for when it next has work (`next`, its `poll_timeout`; not
    /// before `now`), unless one at least as soon is queued already. A host that is not up has
    /// none.
    fn wake(&mut self, me: usize, next: Option<Instant>, now: Duration, ctx: &Ctx, out: &mut Out) {
        let Some(at) = next.filter(|_| self.up) else {
            return;
        };
        let at = at.saturating_duration_since(ctx.base).max(now);
        if self.timer.is_none_or(|t| at < t || t < now) {
            self.timer = Some(at);
            out.events
                .push((nanos(at), Event::Timer { host: me as u32 }));
        }
    }

    /// Does its jobs of the window in order, and between them what it has due itself before the
    /// window ends (see [`Host::due_by`]).
    fn work(&mut self, me: usize, ctx: &Ctx) {
        let mut jobs = std::mem::take(&mut self.jobs);
        let mut out = std::mem::take(&mut self.out);
        let mut now = Duration::from_nanos(jobs.first().map_or(ctx.until, |(at, _)| *at));
        // When the engine next has work, asked after each job that reached it (before the first,
        // its timer is queued as a job if it is due in the window).
        let mut next = None;
        for (at, job) in jobs.drain(..) {
            let at = Duration::from_nanos(at);
            self.due_by(me, &mut next, &mut now, at, ctx, &mut out);
            now = now.max(at);
            let engine = !matches!(job, Job::Held { .. });
            self.job(me, job, now, ctx, &mut out);
            if engine {
                next = self.engine.poll_timeout();
            }
        }
        let last = Duration::from_nanos(ctx.until - 1);
        self.due_by(me, &mut next, &mut now, last, ctx, &mut out);
        self.wake(me, next, now, ctx, &mut out);
        out.last = now;
        self.jobs = jobs;
        self.out = out;
    }

    /// Does what the host has due itself by `limit`, soonest first, from `now` on (moved to
    /// each): the engine's timer (`next`, kept up to date) and its daemons' held answers (a
    /// daemon's next wake-up within the window is not queued: it is done here).
    fn due_by(
        &mut self,
        me: usize,
        next: &mut Option<Instant>,
        now: &mut Duration,
        limit: Duration,
        ctx: &Ctx,
        out: &mut Out,
    ) {
        while self.up {
            let timer = next.map(|w| w.saturating_duration_since(ctx.base).max(*now));
            let held = self
                .ports
                .iter()
                .filter_map(|p| Some((p.wake?, p.iface.index)))
                .min()
                .map(|(w, index)| (Duration::from_nanos(w).max(*now), index));
            match (timer, held) {
                (Some(t), _) if t <= limit && held.is_none_or(|(h, _)| t <= h) => {
                    *now = t;
                    let began = ctx.profile.then(Instant::now);
                    self.engine.handle_timeout(ctx.base + t);
                    self.drain(me, t, ctx, out);
                    spent(&mut out.spent.timers, began);
                    *next = self.engine.poll_timeout();
                }
                (_, Some((h, index))) if h <= limit => {
                    *now = h;
                    let began = ctx.profile.then(Instant::now);
                    self.answers_due(me, index, h, ctx, out);
                    spent(&mut out.spent.answers, began);
                }
                _ => return,
            }
        }
    }

    fn job(&mut self, me: usize, job: Job, now: Duration, ctx: &Ctx, out: &mut Out) {
        match job {
            Job::Timer => {
                if self.timer == Some(now) {
                    self.timer = None;
                }
                if self.up {
                    let began = ctx.profile.then(Instant::now);
                    self.engine.handle_timeout(ctx.base + now);
                    self.drain(me, now, ctx, out);
                    spent(&mut out.spent.timers, began);
                }
            }
            Job::Packet { n, index } => {
                let arrival = &ctx.arrivals[n as usize];
                let spec = &ctx.links[arrival.link].spec;
                if !self.up || self.rng.chance(spec.loss) {
                    return;
                }
                let copies = if self.rng.chance(spec.duplicate) {
                    2
                } else {
                    1
                };
                let began = ctx.profile.then(Instant::now);
                let mut inputs = std::mem::take(&mut self.inputs);
                for _ in 0..copies {
                    self.receive(me, index, arrival, (now, ctx.until), &mut inputs, out);
                }
                out.inputs += inputs.len() as u64;
                for input in inputs.drain(..) {
                    self.engine.handle(input, ctx.base + now);
                }
                self.inputs = inputs;
                self.drain(me, now, ctx, out);
                let kind = match &*arrival.packet {
                    Packet::Query { .. } => &mut out.spent.queries,
                    Packet::Datagram(_) => &mut out.spent.catchup,
                    Packet::Records { .. } => &mut out.spent.records,
                };
                spent(kind, began);
            }
            // A vanished host's daemon answers nothing; it wakes again on its next query.
            Job::Held { index } if !self.up => {
                if let Some(port) = self.port(index) {
                    port.wake = None;
                    port.due.clear();
                }
            }
            Job::Held { index } => self.answers_due(me, index, now, ctx, out),
            Job::Later(input) => self.input(me, *input, now, ctx, out),
        }
    }

    fn execute(
        &mut self,
        me: usize,
        now: Duration,
        action: Action,
        ctx: &Ctx,
        out: &mut Out,
    ) -> Option<Input> {
        match action {
            Action::ListInterfaces => Some(Input::Interfaces(Ok(self
                .ports
                .iter()
                .map(|p| p.iface.clone())
                .collect()))),
            Action::SendQuery {
                link,
                family,
                packet,
            } => {
                let port = self.port(link)?;
                port.socket = true;
                let l = port.link;
                out.sent.queries += 1;
                self.multicast(me, l, query(packet), now, ctx, out);
                Some(Input::QuerySent {
                    link,
                    family,
                    outcome: SendOutcome::Sent,
                })
            }
            Action::SetDaemon { link, families } => {
                let port = self.port(link)?;
                let was = port.daemon;
                port.daemon = !families.is_empty();
                let l = port.link;
                if was && !port.daemon {
                    let anns: Vec<Arc<Ann>> =
                        port.registered.drain().map(|(_, (a, _))| a).collect();
                    self.goodbye(me, l, anns, now, ctx, out);
                    return None;
                }
                if !was && port.daemon {
                    out.sent.queries += 1;
                    let packet =
                        exo_discovery::wire::dns::ptr_query(exo_discovery::wire::dns::SERVICE);
                    self.multicast(me, l, query(packet), now, ctx, out);
                }
                (!families.is_empty()).then_some(Input::DaemonSet {
                    link,
                    families,
                    result: Ok(()),
                })
            }
            Action::Announce { link, announcement } => {
                // Ids need not be dense: one is taken per announcement, used or not.
                self.anns += 1;
                let id = (me as u64) << 32 | self.anns;
                let port = self.port(link)?;
                if !port.daemon {
                    return None;
                }
                let txt = announcement.txt.clone();
                let signed = record::from_txt(|k| {
                    txt.iter()
                        .find(|(key, _)| key == k)
                        .map(|(_, v)| v.as_slice())
                })
                .ok()?;
                let label = announcement.label.clone();
                let ann = port.registered.entry(label.clone()).or_insert_with(|| {
                    (
                        Arc::new(Ann {
                            id,
                            fullname: format!("{label}._p2p._udp.local."),
                            label,
                            signed,
                        }),
                        None,
                    )
                });
                if ann.1.is_some_and(|t| now < t + Duration::from_secs(1)) {
                    return None;
                }
                ann.1 = Some(now);
                let a = ann.0.clone();
                let l = port.link;
                out.sent.announcements += 1;
                self.multicast(me, l, mdns_records(vec![a], 120), now, ctx, out);
                None
            }
            Action::RestartBrowser { .. } => None,
            Action::Withdraw { link, label } => {
                let port = self.port(link)?;
                let a = port.registered.remove(&label)?.0;
                let l = port.link;
                self.goodbye(me, l, vec![a], now, ctx, out);
                None
            }
            Action::RemoveLink { link } => {
                let port = self.port(link)?;
                port.socket = false;
                let was = std::mem::replace(&mut port.daemon, false);
                let anns: Vec<Arc<Ann>> = port.registered.drain().map(|(_, (a, _))| a).collect();
                let l = port.link;
                if was {
                    self.goodbye(me, l, anns, now, ctx, out);
                }
                None
            }
            Action::Probe { addr, .. } => {
                let ok = ctx.reach.answers(me, &addr);
                Some(Input::Probed { addr, ok })
            }
            Action::AskStatic { host: name, .. } => Some(Input::StaticReplied {
                host: name,
                resolved: Vec::new(),
                result: Err("static hosts are not simulated".into()),
            }),
            Action::AskExchange { host: name, .. } => Some(Input::Exchanged {
                host: name,
                result: Err("static hosts are not simulated".into()),
            }),
            // Nobody asks: static hosts are not simulated.
            Action::AnswerExchange { .. }
            | Action::AdmitExchange { .. }
            | Action::AskViews { .. } => None,
            Action::WriteCache(_) => Some(Input::CacheWritten(Ok(()))),
            Action::WritePeersFile(_) => Some(Input::PeersFileWritten(Ok(()))),
            Action::Broadcast(ev) => {
                let peer = *ctx
                    .by_peer
                    .get(&ev.peer.peer_id)
                    .expect("only the simulated hosts' nodes register");
                let v = self.views.entry(peer);
                match ev.event {
                    EventKind::Discovered | EventKind::Updated => {
                        v.updates += u32::from(ev.event == EventKind::Updated);
                        v.seq = ev.peer.seq;
                        if v.discovered_at().is_none() {
                            v.discovered = nanos(now);
                            out.discoveries.push(now);
                        }
                        v.visible = true;
                        if ctx.details {
                            v.current = Some(Box::new(ev.peer));
                        }
                    }
                    EventKind::Expired => {
                        v.visible = false;
                        v.current = None;
                        v.expired.push(now);
                    }
                }
                None
            }
            Action::Subscribed { snapshot, .. } => {
                assert!(snapshot.is_empty(), "a new agent sees nobody");
                None
            }
            Action::Reply { msg, .. } => {
                if let AgentMsg::Error { message, .. } = msg {
                    panic!("{}: {message}", self.name);
                }
                None
            }
            Action::Log { line, .. } => {
                self.warnings.push(line);
                None
            }
            Action::Exit => {
                for i in 0..self.ports.len() {
                    let p = &mut self.ports[i];
                    let anns: Vec<Arc<Ann>> = p.registered.drain().map(|(_, (a, _))| a).collect();
                    let l = p.link;
                    self.goodbye(me, l, anns, now, ctx, out);
                }
                self.up = false;
                out.exited = true;
                None
            }
            Action::SendPackets { link, packets, .. } => {
                let l = self.port(link)?.link;
                for p in packets {
                    if !exo_discovery::wire::dns::is_response(&p) {
                        let more =
                            exo_discovery::wire::dns::questions(&p).is_ok_and(|q| q.is_empty());
                        if more {
                            // The rest of a query's known answers.
                            out.sent.queries += 1;
                            self.multicast(me, l, query(p), now, ctx, out);
                        } else {
                            out.sent.catchup += 1;
                            self.multicast(me, l, Packet::Datagram(p.into()), now, ctx, out);
                        }
                        continue;
                    }
                    out.sent.catchup += 1;
                    // An answer to a re-query: receiving daemons resolve the instances it
                    // carries (as registered, so that each resolves an instance once).
                    let rrs = exo_discovery::wire::dns::records(&p).unwrap_or_default();
                    let port = self.port(link)?;
                    let anns: Vec<Arc<Ann>> = exo_discovery::wire::dns::signed_records(&rrs)
                        .into_iter()
                        .filter_map(|(label, _)| {
                            port.registered.get(&label).map(|(a, _)| a.clone())
                        })
                        .collect();
                    let answer = Packet::Records {
                        anns,
                        ttl: 120,
                        datagram: p.into(),
                    };
                    self.multicast(me, l, answer, now, ctx, out);
                }
                None
            }
            // Subscribers read everything here: none falls behind.
            Action::Resync(_) => Some(Input::Resynced { waiting: false }),
            Action::AddLink(_) | Action::UpdateLink(_) | Action::CloseSocket { .. } => None,
        }
    }

    /// mdns-sd sends a goodbye twice (the second 120 ms later).
    fn goodbye(
        &mut self,
        me: usize,
        link: usize,
        anns: Vec<Arc<Ann>>,
        now: Duration,
        ctx: &Ctx,
        out: &mut Out,
    ) {
        if anns.is_empty() {
            return;
        }
        out.sent.goodbyes += 1;
        let p = Arc::new(mdns_records(anns, 0));
        self.send(me, link, p.clone(), now, ctx, out);
        self.send(me, link, p, now + Duration::from_millis(120), ctx, out);
    }

    fn multicast(
        &mut self,
        me: usize,
        link: usize,
        packet: Packet,
        now: Duration,
        ctx: &Ctx,
        out: &mut Out,
    ) {
        self.send(me, link, Arc::new(packet), now, ctx, out);
    }

    /// Multicasts `packet` on `link` at `at`: it arrives after the link's delay (a query's
    /// packets in the order they were sent).
    fn send(
        &mut self,
        me: usize,
        link: usize,
        packet: Arc<Packet>,
        at: Duration,
        ctx: &Ctx,
        out: &mut Out,
    ) {
        out.packets += 1;
        let (lo, hi) = ctx.links[link].spec.delay;
        let mut arrives = at + self.rng.between(lo, hi);
        if matches!(*packet, Packet::Query { .. }) {
            if let Some(port) = self.ports.iter_mut().find(|p| p.link == link) {
                arrives = arrives.max(port.last_query);
                port.last_query = arrives;
            }
        }
        let (link, from) = (link as u32, me as u32);
        out.events
            .push((nanos(arrives), Event::Packet { link, from, packet }));
    }

    /// What its port `index` makes of `arrival` at `now`: its daemon's side here and now, and
    /// the inputs for its engine, added to `inputs`.
    fn receive(
        &mut self,
        me: usize,
        index: u32,
        arrival: &Arrival,
        (now, until): (Duration, u64),
        inputs: &mut Vec<Input>,
        out: &mut Out,
    ) {
        let Some(port) = self.port(index) else {
            return;
        };
        let (daemon, socket) = (port.daemon, port.socket);
        match &*arrival.packet {
            Packet::Query {
                asks,
                known,
                truncated,
                ..
            } => {
                if daemon {
                    let query = (*asks, known, *truncated);
                    self.query_to_daemon(me, index, arrival.from, query, (now, until), out);
                }
            }
            Packet::Datagram(_) => {}
            Packet::Records { anns, ttl, .. } => {
                for a in anns.iter().filter(|_| daemon) {
                    if *ttl == 0 {
                        // A goodbye: mdns-sd reports the instance gone a second later
                        // (RFC 6762 §10.1).
                        if port.resolved.remove(&a.id) {
                            let input = Box::new(Input::Removed {
                                link: index,
                                fullname: a.fullname.clone(),
                            });
                            let at = nanos(now + Duration::from_secs(1));
                            let host = me as u32;
                            out.events.push((at, Event::Later { host, input }));
                        }
                    } else if port.resolved.insert(a.id) {
                        inputs.push(Input::Resolved {
                            link: index,
                            fullname: a.fullname.clone(),
                            signed: Ok(a.signed.clone()),
                            ips: vec![IpAddr::V4(arrival.from_ip)],
                        });
                    }
                }
            }
        }
        // The link socket hears every packet, after mdns-sd reported it (the agent takes either
        // order: a record's addresses are probed once a packet naming it came from there).
        if socket {
            inputs.push(Input::Datagram {
                link: index,
                datagram: arrival.datagram.clone(),
            });
        }
    }

    /// mdns-sd's answer to a packet of `querier`'s `_p2p._udp` query: every registered instance
    /// the query does not list as a known answer (RFC 6762 §7.1), 20-120 ms later, or for a
    /// truncated query 400-500 ms after its last packet, less what its next packets list
    /// (§7.2, as the vendored mdns-sd does).
    fn query_to_daemon(
        &mut self,
        me: usize,
        index: u32,
        querier: usize,
        (asks, known, truncated): (bool, &HashSet<String>, bool),
        (now, until): (Duration, u64),
        out: &mut Out,
    ) {
        let (lo, hi) = if truncated {
            (Duration::from_millis(400), Duration::from_millis(500))
        } else {
            (Duration::from_millis(20), Duration::from_millis(120))
        };
        let at = nanos(now + self.rng.between(lo, hi));
        let Some(port) = self.port(index) else {
            return;
        };
        // When the answer held for this querier was due, if one is.
        let before = port.held.get(querier).map(|(_, at)| *at);
        if asks {
            let left = Left::of(
                port.registered
                    .values()
                    .filter(|(a, _)| !known.contains(&a.label))
                    .map(|(a, _)| a.id),
            );
            *port.held.place(querier) = Some((left, at));
        } else if let Some((left, due)) = port.held.get_mut(querier) {
            let listed = |id: u64| {
                port.registered
                    .values()
                    .any(|(a, _)| a.id == id && known.contains(&a.label))
            };
            *left = Left::of(left.ids().filter(|id| !listed(*id)));
            *due = at;
        } else {
            return;
        }
        // A querier has one entry in `due` no later than its answer's time: a later time (more
        // of its query) is taken up when that entry comes due, so that a query of many packets
        // queues one entry per daemon, not one per packet.
        if before.is_some_and(|b| b <= at) {
            return;
        }
        port.due.push(std::cmp::Reverse((at, querier as u32)));
        if port.wake.is_none_or(|w| w > at) {
            port.wake = Some(at);
            if at >= until {
                let host = me as u32;
                out.events.push((at, Event::Held { host, index }));
            }
        }
    }

    /// A daemon's wake-up: its held answers due by now go, and the next wake-up is queued.
    fn answers_due(&mut self, me: usize, index: u32, now: Duration, ctx: &Ctx, out: &mut Out) {
        let t = nanos(now);
        let Some(port) = self.port(index) else {
            return;
        };
        if port.wake.is_none_or(|w| w > t) {
            return; // done already, and the next is later
        }
        port.wake = None;
        let mut queriers = Vec::new();
        while let Some(std::cmp::Reverse((at, q))) = port.due.peek().copied() {
            if at > t {
                break;
            }
            port.due.pop();
            match port.held.get(q as usize).map(|(_, at)| *at) {
                // Put off by more of its query since: due again then.
                Some(at) if at > t => port.due.push(std::cmp::Reverse((at, q))),
                Some(_) => queriers.push(q as usize),
                None => {}
            }
        }
        for q in queriers {
            self.answer_held(me, index, q, now, ctx, out);
        }
        let Some(port) = self.port(index) else {
            return;
        };
        if let Some(std::cmp::Reverse((at, _))) = port.due.peek().copied() {
            if port.wake.is_none_or(|w| w > at) {
                port.wake = Some(at);
                if at >= ctx.until {
                    let host = me as u32;
                    out.events.push((at, Event::Held { host, index }));
                }
            }
        }
    }

    /// A held answer is due: what is left of it goes, less what was multicast within the last
    /// second.
    fn answer_held(
        &mut self,
        me: usize,
        index: u32,
        querier: usize,
        now: Duration,
        ctx: &Ctx,
        out: &mut Out,
    ) {
        let Some(port) = self.port(index) else {
            return;
        };
        if !port.daemon
            || port
                .held
                .get(querier)
                .is_none_or(|(_, at)| *at > nanos(now))
        {
            return;
        }
        let (left, _) = port.held.remove(querier).expect("checked above");
        let mut anns = Vec::new();
        for (a, last) in port.registered.values_mut() {
            if !left.ids().any(|id| id == a.id) {
                continue;
            }
            if last.is_none_or(|t| now >= t + Duration::from_secs(1)) {
                *last = Some(now);
                anns.push(a.clone());
            }
        }
        if !anns.is_empty() {
            let l = port.link;
            out.sent.answers += 1;
            self.multicast(me, l, mdns_records(anns, 120), now, ctx, out);
        }
    }
}
