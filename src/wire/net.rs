//! Plain value types every layer shares: an address family and the mDNS groups, an interface as
//! listed, a static host as configured, and what a refused send means (the one errno table).
//! No state and no I/O.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The IPv4 mDNS group.
pub const GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
/// The IPv6 mDNS group (link-local scope).
pub const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xfb);
/// The mDNS port.
pub const MDNS_PORT: u16 = 5353;

/// True for `fe80::/10`.
pub fn is_link_local_v6(ip: &Ipv6Addr) -> bool {
    (ip.segments()[0] & 0xffc0) == 0xfe80
}

/// IPv4 or IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// `"IPv4"` or `"IPv6"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// Whether `iface` has the address this family needs for mDNS (an IPv4 address; an IPv6
    /// link-local address).
    pub fn present_on(self, iface: &Iface) -> bool {
        match self {
            Family::V4 => !iface.v4.is_empty(),
            Family::V6 => iface.link_local_v6().next().is_some(),
        }
    }
}


/// One interface as the agent sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iface {
    /// Name, e.g. `eth0` or `en5`.
    pub name: String,
    /// Kernel interface index.
    pub index: u32,
    /// Administratively up and running.
    pub up: bool,
    /// Multicast-capable.
    pub multicast: bool,
    /// A loopback interface.
    pub loopback: bool,
    /// A point-to-point link (VPN tunnels and the like).
    pub point_to_point: bool,
    /// IPv4 addresses, each with its prefix length (`10.0.0.1/24` is `(10.0.0.1, 24)`).
    pub v4: Vec<(Ipv4Addr, u8)>,
    /// IPv6 addresses (link-local included), each with its prefix length.
    pub v6: Vec<(Ipv6Addr, u8)>,
}

impl Iface {
    /// Whether mDNS can be tried on it at all (up, multicast, not loopback unless allowed).
    pub fn can_multicast(&self) -> bool {
        self.up && (self.multicast || self.loopback)
    }

    /// Its IPv4 addresses, without their prefix lengths.
    pub fn v4_addrs(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.v4.iter().map(|(a, _)| *a)
    }

    /// Its IPv6 addresses, without their prefix lengths.
    pub fn v6_addrs(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.v6.iter().map(|(a, _)| *a)
    }

    /// Whether `ip` is one of its addresses.
    pub fn has_ip(&self, ip: &std::net::IpAddr) -> bool {
        match ip {
            std::net::IpAddr::V4(a) => self.v4_addrs().any(|x| x == *a),
            std::net::IpAddr::V6(a) => self.v6_addrs().any(|x| x == *a),
        }
    }

    /// Its IPv6 link-local addresses.
    pub fn link_local_v6(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.v6_addrs().filter(is_link_local_v6)
    }

    /// Its addresses as `address/prefix`, separated by spaces (`-` for none), for logs.
    pub fn addresses(&self) -> String {
        let all: Vec<String> = self
            .v4
            .iter()
            .map(|(a, p)| format!("{a}/{p}"))
            .chain(self.v6.iter().map(|(a, p)| format!("{a}/{p}")))
            .collect();
        if all.is_empty() {
            "-".to_owned()
        } else {
            all.join(" ")
        }
    }
}


/// A static host as configured: an IP (IPv6 with an optional `%zone`) or a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostSpec {
    /// An address; `zone` is the interface of a link-local IPv6 address.
    Ip {
        /// The address.
        ip: IpAddr,
        /// Interface name for a link-local IPv6 address (`fe80::1%en5`).
        zone: Option<String>,
    },
    /// A name for the system resolver (`/etc/hosts`, DNS, or mDNS where the system has it).
    Name(String),
}

impl HostSpec {
    /// Parses `192.168.0.134`, `fe80::1%en5`, `[fd00::1]` or `mac-studio.local`.
    pub fn parse(s: &str) -> Result<HostSpec, String> {
        let t = s.trim().trim_start_matches('[').trim_end_matches(']');
        if t.is_empty() {
            return Err("empty host".into());
        }
        let (addr, zone) = match t.split_once('%') {
            Some((a, z)) if !z.is_empty() => (a, Some(z.to_owned())),
            Some(_) => return Err(format!("{s:?}: empty zone after %")),
            None => (t, None),
        };
        if let Ok(ip) = addr.parse::<IpAddr>() {
            if zone.is_some() && !ip.is_ipv6() {
                return Err(format!("{s:?}: a zone only goes with an IPv6 address"));
            }
            return Ok(HostSpec::Ip { ip, zone });
        }
        let name_ok = t.len() <= 253
            && t.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if zone.is_none() && name_ok {
            Ok(HostSpec::Name(t.to_owned()))
        } else {
            Err(format!("{s:?} is neither an IP address nor a host name"))
        }
    }
}


/// A refused send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendFailure {
    /// The errno, if the system gave one.
    pub errno: Option<i32>,
    /// The system's message.
    pub message: String,
    /// What it most likely means on this system.
    pub explanation: &'static str,
    /// How lasting it is (see `sys::send_class`).
    pub class: SendClass,
}

/// How lasting a refused send is, by its errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendClass {
    /// A full queue, an interrupted call, a moment without memory: the next send may well go.
    Transient,
    /// A policy (a firewall rule, a permission): lasting if the very first send was refused,
    /// intermittent if sends went before (a rate limit, a rule that drops a share).
    Policy,
    /// Anything else (no route, no address, the interface gone, macOS refusing the process).
    Permanent,
}


/// The operating system an errno is read for: the numbers differ between Linux and macOS, and so,
/// for EHOSTUNREACH, does the meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Os {
    /// Linux.
    Linux,
    /// macOS.
    MacOs,
}

impl Os {
    /// This build's system.
    pub fn current() -> Os {
        if cfg!(target_os = "macos") {
            Os::MacOs
        } else {
            Os::Linux
        }
    }
}

/// What an errno from a socket call means: the one errno table. The agent classes and explains
/// its refused sends by it, `doctor` its refused sends and binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Errno {
    /// A full queue, an interrupted call, a moment without memory (ENOBUFS, EAGAIN, EINTR,
    /// ENOMEM).
    Busy,
    /// A firewall rule or a permission (EPERM, EACCES).
    Firewall,
    /// macOS Local Network privacy refusing this process (EHOSTUNREACH on macOS: for a send
    /// pinned to one interface, the agent takes it for that).
    LocalNetworkPrivacy,
    /// No route for the destination (ENETUNREACH; EHOSTUNREACH on Linux).
    NoRoute,
    /// No usable source address (EADDRNOTAVAIL).
    NoAddress,
    /// The interface is gone (ENODEV, ENXIO).
    InterfaceGone,
    /// The port is held by a socket that does not share it (EADDRINUSE).
    PortInUse,
    /// Anything else, or no errno at all.
    Other,
}

/// The table: each errno's number on Linux and on macOS (`None`: not this meaning there), and
/// what it means.
const ERRNOS: [(&str, Option<i32>, Option<i32>, Errno); 13] = [
    ("ENOBUFS", Some(105), Some(55), Errno::Busy),
    ("EAGAIN", Some(11), Some(35), Errno::Busy),
    ("EINTR", Some(4), Some(4), Errno::Busy),
    ("ENOMEM", Some(12), Some(12), Errno::Busy),
    ("EPERM", Some(1), Some(1), Errno::Firewall),
    ("EACCES", Some(13), Some(13), Errno::Firewall),
    ("ENETUNREACH", Some(101), Some(51), Errno::NoRoute),
    ("EHOSTUNREACH", Some(113), None, Errno::NoRoute),
    ("EHOSTUNREACH", None, Some(65), Errno::LocalNetworkPrivacy),
    ("EADDRNOTAVAIL", Some(99), Some(49), Errno::NoAddress),
    ("ENODEV", Some(19), Some(19), Errno::InterfaceGone),
    ("ENXIO", Some(6), Some(6), Errno::InterfaceGone),
    ("EADDRINUSE", Some(98), Some(48), Errno::PortInUse),
];

impl Errno {
    /// What `errno` means on `os`.
    pub fn of(errno: Option<i32>, os: Os) -> Errno {
        let Some(n) = errno else {
            return Errno::Other;
        };
        let number = |&(_, linux, macos, _): &(&str, Option<i32>, Option<i32>, Errno)| match os {
            Os::Linux => linux,
            Os::MacOs => macos,
        };
        ERRNOS
            .iter()
            .find(|row| number(row) == Some(n))
            .map_or(Errno::Other, |row| row.3)
    }

    /// What `errno` means on this system.
    pub fn here(errno: Option<i32>) -> Errno {
        Errno::of(errno, Os::current())
    }

    /// How lasting a refused send with this errno is.
    pub fn class(self) -> SendClass {
        match self {
            Errno::Busy => SendClass::Transient,
            Errno::Firewall => SendClass::Policy,
            Errno::LocalNetworkPrivacy
            | Errno::NoRoute
            | Errno::NoAddress
            | Errno::InterfaceGone
            | Errno::PortInUse
            | Errno::Other => SendClass::Permanent,
        }
    }

    /// What a refused multicast send with this errno most likely means, for a log line.
    pub fn explanation(self) -> &'static str {
        match self {
            Errno::LocalNetworkPrivacy => {
                "macOS Local Network privacy blocks this process: run the agent as the \
                 LaunchDaemon in config/ or grant it Local Network access"
            }
            Errno::Firewall => "an output firewall rule refuses it",
            Errno::NoRoute => "no route for multicast on it",
            Errno::NoAddress => "it has no usable source address",
            Errno::InterfaceGone => "the interface is gone",
            Errno::Busy | Errno::PortInUse | Errno::Other => "the system refused it",
        }
    }
}

/// How lasting a refused send is, by its errno on this system (see [`Errno`]).
pub fn send_class(errno: Option<i32>) -> SendClass {
    Errno::here(errno).class()
}

/// What a refused multicast send most likely means on this system (see [`Errno`]).
///
/// EHOSTUNREACH differs: on Linux it is a missing route, like ENETUNREACH. On macOS it is also
/// what Local Network privacy is reported to return to a process it has not allowed (os error 65;
/// see the README's macOS section for what is verified), and for a send pinned to one interface
/// the agent takes it for that.
pub fn explain_send_error(err: &io::Error) -> &'static str {
    Errno::here(err.raw_os_error()).explanation()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::libc;

    #[test]
    fn refused_sends_are_classed_by_how_lasting_they_are() {
        for e in [libc::ENOBUFS, libc::EAGAIN, libc::EINTR, libc::ENOMEM] {
            assert_eq!(send_class(Some(e)), SendClass::Transient, "{e}");
        }
        for e in [libc::EPERM, libc::EACCES] {
            assert_eq!(send_class(Some(e)), SendClass::Policy, "{e}");
        }
        for e in [libc::ENETUNREACH, libc::EADDRNOTAVAIL, libc::ENODEV] {
            assert_eq!(send_class(Some(e)), SendClass::Permanent, "{e}");
        }
        assert_eq!(send_class(None), SendClass::Permanent);
    }

    #[test]
    fn the_table_agrees_with_this_systems_errno_numbers() {
        let here = [
            (libc::ENOBUFS, Errno::Busy),
            (libc::EAGAIN, Errno::Busy),
            (libc::EINTR, Errno::Busy),
            (libc::ENOMEM, Errno::Busy),
            (libc::EPERM, Errno::Firewall),
            (libc::EACCES, Errno::Firewall),
            (libc::ENETUNREACH, Errno::NoRoute),
            (libc::EADDRNOTAVAIL, Errno::NoAddress),
            (libc::ENODEV, Errno::InterfaceGone),
            (libc::ENXIO, Errno::InterfaceGone),
            (libc::EADDRINUSE, Errno::PortInUse),
            (libc::ECONNREFUSED, Errno::Other),
        ];
        for (n, meaning) in here {
            assert_eq!(Errno::here(Some(n)), meaning, "errno {n}");
        }
        let unreachable = if cfg!(target_os = "macos") {
            Errno::LocalNetworkPrivacy
        } else {
            Errno::NoRoute
        };
        assert_eq!(Errno::here(Some(libc::EHOSTUNREACH)), unreachable);
        // The other system's numbers.
        assert_eq!(Errno::of(Some(65), Os::MacOs), Errno::LocalNetworkPrivacy);
        assert_eq!(Errno::of(Some(65), Os::Linux), Errno::Other);
        assert_eq!(Errno::of(Some(113), Os::Linux), Errno::NoRoute);
        assert_eq!(Errno::of(Some(51), Os::MacOs), Errno::NoRoute);
        assert_eq!(Errno::of(Some(48), Os::MacOs), Errno::PortInUse);
        assert_eq!(Errno::of(Some(98), Os::Linux), Errno::PortInUse);
        assert_eq!(Errno::of(Some(-1), Os::Linux), Errno::Other);
    }

    #[test]
    fn refused_sends_are_explained() {
        let explain = |n| explain_send_error(&io::Error::from_raw_os_error(n));
        assert_eq!(explain(libc::EPERM), "an output firewall rule refuses it");
        assert_eq!(explain(libc::ENODEV), "the interface is gone");
        assert_eq!(explain(libc::ENOBUFS), "the system refused it");
        assert_eq!(Errno::LocalNetworkPrivacy.class(), SendClass::Permanent);
    }
}
