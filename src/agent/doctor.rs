//! `exo-discovery doctor`: what each interface and family can do for mDNS, and why not.
//!
//! [`verdict`] is pure: facts in, cause and advice out. [`run`] gathers the facts (does I/O): it
//! opens the same per-interface sockets the agent uses, sends a real `_p2p._udp.local` query on
//! each, listens for a few seconds, and reads a few kernel settings. It may run beside an agent.

use crate::agent::iface;
use crate::wire::net::{Errno, Family, Iface};
use crate::agent::link_socket;
use crate::wire::{config, dns, stock as libp2p_mdns};
use serde::Serialize;
use std::collections::HashSet;
use std::net::{IpAddr, UdpSocket};
use std::time::{Duration, Instant};

/// The likely cause of what a row shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// Sends work and other mDNS speakers are heard.
    Ok,
    /// The interface is down.
    Down,
    /// The interface has no multicast flag.
    NoMulticast,
    /// No IPv4 address (IPv4 row) or no IPv6 link-local address (IPv6 row).
    NoAddress,
    /// Port 5353 is held by a program that does not share it (SO_REUSEPORT).
    PortHeld,
    /// Joining the group or setting up the socket failed otherwise.
    SocketFailed,
    /// macOS Local Network privacy refused the send (EHOSTUNREACH).
    LocalNetworkPrivacy,
    /// An output firewall rule refused the send (EPERM / EACCES).
    OutputFirewall,
    /// No route for multicast (ENETUNREACH / EHOSTUNREACH on Linux).
    NoRoute,
    /// The send failed for another reason.
    SendFailed,
    /// Sends work but strict reverse-path filtering dropped what came back.
    RpFilter,
    /// Sends work but nothing at all is heard.
    NothingHeard,
}

/// Everything [`verdict`] looks at for one interface and family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// Interface up.
    pub up: bool,
    /// Interface multicast-capable.
    pub multicast: bool,
    /// The family has the address mDNS needs on this interface.
    pub has_address: bool,
    /// Opening the socket failed: (step, errno, message).
    pub open_error: Option<(String, Option<i32>, String)>,
    /// Programs holding UDP port 5353, when the bind failed.
    pub port_holders: Vec<String>,
    /// The query send failed: (errno, message).
    pub send_error: Option<(Option<i32>, String)>,
    /// Distinct other hosts heard speaking mDNS.
    pub speakers: usize,
    /// Distinct `_p2p._udp` instances heard.
    pub instances: usize,
    /// Strict reverse-path filtering (rp_filter = 1) is in force on this IPv4 interface.
    pub rp_filter_strict: bool,
    /// The host has more than one interface with an IPv4 address.
    pub multi_homed: bool,
    /// The kernel counted reverse-path drops while listening.
    pub rp_drops: u64,
}

pub use crate::wire::net::Os;

/// The cause and a one-line explanation with the fix.
pub fn verdict(f: &Facts, family: Family, iface: &str, os: Os) -> (Cause, String) {
    link_verdict(f, family, iface)
        .or_else(|| open_verdict(f, family, iface, os))
        .or_else(|| send_verdict(f, family, iface, os))
        .unwrap_or_else(|| heard_verdict(f, family, iface))
}

/// What the interface itself lacks: it is down, has no multicast flag, or has no address of the
/// family.
fn link_verdict(f: &Facts, family: Family, iface: &str) -> Option<(Cause, String)> {
    if !f.up {
        return Some((
            Cause::Down,
            format!("{iface} is down: bring it up (ip link set {iface} up)"),
        ));
    }
    if !f.multicast {
        return Some((
            Cause::NoMulticast,
            format!("{iface} has no MULTICAST flag: mDNS cannot run on it (ip link set {iface} multicast on, if the link allows)"),
        ));
    }
    if !f.has_address {
        return Some((
            Cause::NoAddress,
            match family {
                Family::V4 => format!("no IPv4 address on {iface}: mDNS over IPv4 needs one (DHCP or a static address); IPv6 may still work"),
                Family::V6 => format!("no IPv6 link-local address on {iface}: enable IPv6 on it (sysctl net.ipv6.conf.{iface}.disable_ipv6=0)"),
            },
        ));
    }
    None
}

/// Why opening the socket failed, if it did: the port is held by a program that does not share
/// it, or another step failed.
fn open_verdict(f: &Facts, family: Family, iface: &str, os: Os) -> Option<(Cause, String)> {
    let (step, errno, msg) = f.open_error.as_ref()?;
    if Errno::of(*errno, os) == Errno::PortInUse {
        let who = if f.port_holders.is_empty() {
            "another program".to_owned()
        } else {
            f.port_holders.join(", ")
        };
        return Some((
            Cause::PortHeld,
            format!("UDP port 5353 is held by {who} without SO_REUSEPORT: stop it, or configure it to share the port (avahi-daemon and mDNSResponder do)"),
        ));
    }
    Some((
        Cause::SocketFailed,
        format!(
            "{} socket on {iface}: {step} failed: {msg}",
            family.as_str()
        ),
    ))
}

/// Why the query send failed, if it did, by errno on this system.
fn send_verdict(f: &Facts, family: Family, iface: &str, os: Os) -> Option<(Cause, String)> {
    let (errno, msg) = f.send_error.as_ref()?;
    Some(match Errno::of(*errno, os) {
        Errno::LocalNetworkPrivacy => (
            Cause::LocalNetworkPrivacy,
            format!("multicast send refused ({msg}): macOS Local Network privacy blocks this process; run the agent as the LaunchDaemon in config/, or allow it under System Settings > Privacy & Security > Local Network"),
        ),
        Errno::Firewall => (
            Cause::OutputFirewall,
            format!("multicast send refused ({msg}): an output firewall rule drops UDP 5353 on {iface}; allow it (nft list ruleset / iptables -S OUTPUT)"),
        ),
        Errno::NoRoute => (
            Cause::NoRoute,
            format!("multicast send refused ({msg}): no route for {} on {iface}", match family {
                Family::V4 => "224.0.0.251",
                Family::V6 => "ff02::fb",
            }),
        ),
        Errno::Busy
        | Errno::NoAddress
        | Errno::InterfaceGone
        | Errno::PortInUse
        | Errno::Other => (Cause::SendFailed, format!("multicast send failed: {msg}")),
    })
}

/// Sends work: whether anything was heard, and if not, the likeliest reason.
fn heard_verdict(f: &Facts, family: Family, iface: &str) -> (Cause, String) {
    if f.speakers > 0 {
        return (
            Cause::Ok,
            format!(
                "usable: {} other mDNS speaker(s), {} _p2p._udp instance(s) heard",
                f.speakers, f.instances
            ),
        );
    }
    if family == Family::V4 && f.rp_filter_strict && (f.multi_homed || f.rp_drops > 0) {
        return (
            Cause::RpFilter,
            format!("sends work but nothing came back, and strict reverse-path filtering is on ({} drop(s) counted while listening): answers from addresses routed via another interface are dropped; use loose mode: sysctl -w net.ipv4.conf.{iface}.rp_filter=2 net.ipv4.conf.all.rp_filter=2", f.rp_drops),
        );
    }
    (
        Cause::NothingHeard,
        format!("sends work but no other mDNS speaker was heard: no other node on this link, or an inbound firewall (allow UDP 5353 in), Wi-Fi client isolation, or IGMP/MLD snooping without a querier drops multicast; check with `tcpdump -ni {iface} udp port 5353` here while another host runs `exo-discovery doctor`"),
    )
}

/// One row of the report.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Interface name.
    pub interface: String,
    /// Interface index.
    pub index: u32,
    /// `IPv4` or `IPv6`.
    pub family: &'static str,
    /// Flags: up, multicast, loopback, point-to-point.
    pub flags: Vec<&'static str>,
    /// The family's addresses on the interface.
    pub addresses: Vec<String>,
    /// `ok`, or what failed while opening and joining.
    pub join: String,
    /// `ok`, `not tried`, or the error of a real query send.
    pub send: String,
    /// Other hosts heard speaking mDNS.
    pub speakers: usize,
    /// `_p2p._udp` instances heard.
    pub instances: usize,
    /// The likely cause.
    pub cause: Cause,
    /// What it means and what to do.
    pub verdict: String,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// One row per interface and family.
    pub rows: Vec<Row>,
    /// Whether at least one row is fully usable.
    pub usable: bool,
}

/// Gathers the facts for every wanted interface and family, listening `wait` for answers.
pub fn run(globs: &[String], loopback: bool, wait: Duration) -> std::io::Result<Report> {
    let cfg = config::Config {
        interfaces: globs.to_vec(),
        loopback,
        ..config::Config::default()
    };
    let ifaces: Vec<Iface> = iface::list()?
        .into_iter()
        .filter(|i| cfg.wants_interface(&i.name, i.loopback))
        .collect();
    let (mut facts, mut open) = query_all(&ifaces);
    listen(&mut facts, &mut open, wait);
    let rows: Vec<Row> = facts
        .iter()
        .map(|(i, family, f)| row(i, *family, f))
        .collect();
    let usable = rows.iter().any(|r| r.cause == Cause::Ok);
    Ok(Report { rows, usable })
}

/// One interface and family, with the facts gathered for it so far.
type Probe = (Iface, Family, Facts);

/// A socket whose query went out, and what it has heard since.
struct Open {
    /// Where its facts are in the list of [`Probe`]s.
    row: usize,
    sock: UdpSocket,
    /// This host's addresses: its own packets (looped back) are no speakers.
    own: Vec<IpAddr>,
    speakers: HashSet<IpAddr>,
    instances: HashSet<String>,
}

impl Open {
    /// Takes note of a datagram from `from`, unless this host sent it: its sender as a speaker,
    /// and the instances it names.
    fn hear(&mut self, from: IpAddr, packet: &[u8]) {
        if self.own.contains(&from) {
            return;
        }
        self.speakers.insert(from);
        if let Ok(rrs) = dns::records(packet) {
            for (label, _) in dns::instances(&rrs) {
                self.instances.insert(label);
            }
            for p in libp2p_mdns::libp2p_peers(&rrs) {
                self.instances.insert(p.peer.to_base58());
            }
        }
    }
}

/// The facts of every interface and family, after opening a socket and sending a real query on
/// each that can have one; and the sockets whose query went out.
fn query_all(ifaces: &[Iface]) -> (Vec<Probe>, Vec<Open>) {
    let multi_homed = ifaces
        .iter()
        .filter(|i| !i.loopback && !i.v4.is_empty())
        .count()
        > 1;
    let query = dns::ptr_query(dns::SERVICE);
    let mut facts: Vec<Probe> = Vec::new();
    let mut open: Vec<Open> = Vec::new();
    for i in ifaces {
        for family in [Family::V4, Family::V6] {
            let mut f = Facts {
                up: i.up,
                multicast: i.multicast || i.loopback,
                has_address: family.present_on(i),
                multi_homed,
                rp_filter_strict: family == Family::V4 && rp_filter(&i.name) == Some(1),
                ..Facts::default()
            };
            if f.up && f.multicast && f.has_address {
                if let Some(sock) = send_query(i, family, &query, &mut f) {
                    open.push(Open {
                        row: facts.len(),
                        sock,
                        own: own_addresses(ifaces),
                        speakers: HashSet::new(),
                        instances: HashSet::new(),
                    });
                }
            }
            facts.push((i.clone(), family, f));
        }
    }
    (facts, open)
}

/// Opens the family's socket on `i` and sends `query` to the group: the socket if both worked,
/// else `None` with the failure written into `f`.
fn send_query(i: &Iface, family: Family, query: &[u8], f: &mut Facts) -> Option<UdpSocket> {
    match link_socket::open(i, family) {
        Ok(sock) => {
            if let Err(e) = sock.send_to(query, link_socket::group_addr(family, i)) {
                f.send_error = Some((e.raw_os_error(), e.to_string()));
                return None;
            }
            Some(sock)
        }
        Err(e) => {
            if e.step == "bind" {
                f.port_holders = port_holders();
            }
            f.open_error = Some((
                e.step.to_owned(),
                e.error.raw_os_error(),
                e.error.to_string(),
            ));
            None
        }
    }
}

/// Every address of the interfaces looked at.
fn own_addresses(ifaces: &[Iface]) -> Vec<IpAddr> {
    ifaces
        .iter()
        .flat_map(|j| {
            j.v4_addrs()
                .map(IpAddr::V4)
                .chain(j.v6_addrs().map(IpAddr::V6))
        })
        .collect()
}

/// Listens on the open sockets until `wait` has passed, each datagram counted for the row of the
/// interface it arrived on; then writes into `facts` what each row heard and the reverse-path
/// drops the kernel counted meanwhile.
fn listen(facts: &mut [Probe], open: &mut [Open], wait: Duration) {
    let drops_before = rp_filter_drops();
    let deadline = Instant::now() + wait;
    let mut buf = vec![0u8; dns::MAX_PACKET];
    // (interface index, family) of each open socket's row, to attribute a datagram by where it
    // really arrived: a socket may be handed one that came in on another interface.
    let keys: Vec<(u32, Family)> = open
        .iter()
        .map(|o| (facts[o.row].0.index, facts[o.row].1))
        .collect();
    while Instant::now() < deadline {
        let mut idle = true;
        for k in 0..open.len() {
            while let Ok((n, from, ifindex)) =
                crate::sys::recv_with_ifindex(&open[k].sock, &mut buf)
            {
                idle = false;
                let family = if from.is_ipv4() {
                    Family::V4
                } else {
                    Family::V6
                };
                let at = ifindex
                    .and_then(|i| keys.iter().position(|key| *key == (i, family)))
                    .unwrap_or(k);
                open[at].hear(from.ip(), &buf[..n]);
            }
        }
        if idle {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let rp_drops = rp_filter_drops().saturating_sub(drops_before);
    for o in open.iter() {
        let f = &mut facts[o.row].2;
        f.speakers = o.speakers.len();
        f.instances = o.instances.len();
        f.rp_drops = rp_drops;
    }
}

/// The report's row for interface `i` and `family`, from the facts gathered for them.
fn row(i: &Iface, family: Family, f: &Facts) -> Row {
    let (cause, verdict) = verdict(f, family, &i.name, Os::current());
    let addresses = match family {
        Family::V4 => i.v4_addrs().map(|a| a.to_string()).collect(),
        Family::V6 => i.v6_addrs().map(|a| a.to_string()).collect(),
    };
    let join = match &f.open_error {
        Some((step, _, msg)) => format!("{step}: {msg}"),
        None if f.up && f.multicast && f.has_address => "ok".into(),
        None => "not tried".into(),
    };
    let send = match (&f.send_error, join.as_str()) {
        (Some((_, msg)), _) => msg.clone(),
        (None, "ok") => "ok".into(),
        _ => "not tried".into(),
    };
    Row {
        interface: i.name.clone(),
        index: i.index,
        family: family.as_str(),
        flags: flags(i),
        addresses,
        join,
        send,
        speakers: f.speakers,
        instances: f.instances,
        cause,
        verdict,
    }
}

/// The interface's flags, as the report names them.
fn flags(i: &Iface) -> Vec<&'static str> {
    let mut flags = Vec::new();
    if i.up {
        flags.push("up");
    }
    if i.multicast {
        flags.push("multicast");
    }
    if i.loopback {
        flags.push("loopback");
    }
    if i.point_to_point {
        flags.push("point-to-point");
    }
    flags
}

/// `net.ipv4.conf.<iface>.rp_filter` in force (the larger of the interface's and `all`).
fn rp_filter(iface: &str) -> Option<u8> {
    let read = |name: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{name}/rp_filter"))
            .ok()
            .and_then(|s| s.trim().parse::<u8>().ok())
    };
    match (read(iface), read("all")) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The kernel's count of packets dropped by reverse-path filtering (`IPReversePathFilter`).
fn rp_filter_drops() -> u64 {
    let text = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        if let [names, values] = pair {
            let n: Vec<&str> = names.split_whitespace().collect();
            let v: Vec<&str> = values.split_whitespace().collect();
            if let Some(i) = n.iter().position(|x| *x == "IPReversePathFilter") {
                return v.get(i).and_then(|x| x.parse().ok()).unwrap_or(0);
            }
        }
    }
    0
}

/// Programs (`name (pid N)`) holding a UDP socket on port 5353, from `/proc` (Linux).
fn port_holders() -> Vec<String> {
    let mut inodes = HashSet::new();
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let port = f
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if port == Some(5353) {
                if let Some(inode) = f.get(9) {
                    inodes.insert(format!("socket:[{inode}]"));
                }
            }
        }
    }
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let pid = p.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) || pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .map(|t| inodes.contains(&t.to_string_lossy().into_owned()))
                .unwrap_or(false)
        });
        if holds {
            let name = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
            let entry = format!("{} (pid {pid})", name.trim());
            if !out.contains(&entry) {
                out.push(entry);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Facts {
        Facts {
            up: true,
            multicast: true,
            has_address: true,
            ..Facts::default()
        }
    }

    #[test]
    fn causes_are_told_apart() {
        let v = |f: &Facts, fam, os| verdict(f, fam, "en0", os).0;
        let mut f = healthy();
        f.speakers = 2;
        f.instances = 1;
        assert_eq!(v(&f, Family::V4, Os::Linux), Cause::Ok);
        assert_eq!(v(&healthy(), Family::V4, Os::Linux), Cause::NothingHeard);
        let mut f = healthy();
        f.send_error = Some((Some(65), "No route to host (os error 65)".into()));
        assert_eq!(v(&f, Family::V4, Os::MacOs), Cause::LocalNetworkPrivacy);
        assert!(verdict(&f, Family::V4, "en0", Os::MacOs)
            .1
            .contains("LaunchDaemon"));
        f.send_error = Some((Some(1), "Operation not permitted (os error 1)".into()));
        assert_eq!(v(&f, Family::V4, Os::Linux), Cause::OutputFirewall);
        f.send_error = Some((Some(101), "Network is unreachable".into()));
        assert_eq!(v(&f, Family::V6, Os::Linux), Cause::NoRoute);
        let mut f = healthy();
        f.open_error = Some(("bind".into(), Some(98), "Address in use".into()));
        f.port_holders = vec!["mdnsd (pid 7)".into()];
        let (c, text) = verdict(&f, Family::V4, "eth0", Os::Linux);
        assert_eq!(c, Cause::PortHeld);
        assert!(text.contains("mdnsd (pid 7)"), "{text}");
        let mut f = healthy();
        f.has_address = false;
        assert!(verdict(&f, Family::V6, "eth0", Os::Linux)
            .1
            .contains("link-local"));
        assert!(verdict(&f, Family::V4, "eth0", Os::Linux)
            .1
            .contains("no IPv4 address"));
        let mut f = healthy();
        f.rp_filter_strict = true;
        f.multi_homed = true;
        assert_eq!(v(&f, Family::V4, Os::Linux), Cause::RpFilter);
        assert_eq!(
            v(&f, Family::V6, Os::Linux),
            Cause::NothingHeard,
            "rp_filter is IPv4 only"
        );
        f.up = false;
        assert_eq!(v(&f, Family::V4, Os::Linux), Cause::Down);
    }
}
