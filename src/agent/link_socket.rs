//! Explicit per-interface mDNS sockets (does I/O). One socket per interface and family, joined to
//! the mDNS group on that interface only, sending pinned to it with TTL / hop limit 255, port 5353
//! shared with other responders (SO_REUSEADDR + SO_REUSEPORT). These sockets tell whether a link
//! can really carry mDNS (the errno of a real send) and hear what is said on it.

use crate::wire::net::{Family, Iface, GROUP_V4, GROUP_V6, MDNS_PORT};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};

/// Which step of opening a link socket failed.
#[derive(Debug)]
pub struct OpenError {
    /// `socket`, `bind`, `join`, `multicast-if`, …
    pub step: &'static str,
    /// The system's error.
    pub error: io::Error,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed: {}", self.step, self.error)
    }
}

fn step<T>(step: &'static str, r: io::Result<T>) -> Result<T, OpenError> {
    r.map_err(|error| OpenError { step, error })
}

/// The group address to send to on `iface`.
pub fn group_addr(family: Family, iface: &Iface) -> SocketAddr {
    match family {
        Family::V4 => SocketAddr::V4(SocketAddrV4::new(GROUP_V4, MDNS_PORT)),
        Family::V6 => SocketAddr::V6(SocketAddrV6::new(GROUP_V6, MDNS_PORT, 0, iface.index)),
    }
}

/// Opens the socket for `family` on `iface`: bound to the group on port 5353, joined on that
/// interface only, multicast sends pinned to it, TTL / hop limit 255, loopback of own packets on.
pub fn open(iface: &Iface, family: Family) -> Result<UdpSocket, OpenError> {
    let domain = match family {
        Family::V4 => Domain::IPV4,
        Family::V6 => Domain::IPV6,
    };
    let sock = step(
        "socket",
        Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)),
    )?;
    step("SO_REUSEADDR", sock.set_reuse_address(true))?;
    step("SO_REUSEPORT", sock.set_reuse_port(true))?;
    step("non-blocking", sock.set_nonblocking(true))?;
    step(
        "pin to interface",
        crate::sys::pin_multicast(&sock, iface.index, family == Family::V6),
    )?;
    step(
        "packet info",
        crate::sys::enable_pktinfo(&sock, family == Family::V6),
    )?;
    match family {
        Family::V4 => {
            let src = iface.v4_addrs().next().ok_or(OpenError {
                step: "address",
                error: io::Error::from_raw_os_error(nix::libc::EADDRNOTAVAIL),
            })?;
            // Bound to the group address: this socket never takes unicast meant for another
            // responder sharing the port.
            let bind = SocketAddr::V4(SocketAddrV4::new(GROUP_V4, MDNS_PORT));
            step("bind", sock.bind(&SockAddr::from(bind)))?;
            step(
                "join",
                crate::sys::join_v4(&sock, &GROUP_V4, iface.index, src),
            )?;
            step("IP_MULTICAST_IF", sock.set_multicast_if_v4(&src))?;
            step("IP_MULTICAST_TTL", sock.set_multicast_ttl_v4(255))?;
            step("IP_TTL", sock.set_ttl_v4(255))?;
            step("IP_MULTICAST_LOOP", sock.set_multicast_loop_v4(true))?;
        }
        Family::V6 => {
            step("IPV6_V6ONLY", sock.set_only_v6(true))?;
            let bind = SocketAddr::V6(SocketAddrV6::new(GROUP_V6, MDNS_PORT, 0, iface.index));
            step("bind", sock.bind(&SockAddr::from(bind)))?;
            step("join", sock.join_multicast_v6(&GROUP_V6, iface.index))?;
            step("IPV6_MULTICAST_IF", sock.set_multicast_if_v6(iface.index))?;
            step("IPV6_MULTICAST_HOPS", sock.set_multicast_hops_v6(255))?;
            step("IPV6_UNICAST_HOPS", sock.set_unicast_hops_v6(255))?;
            step("IPV6_MULTICAST_LOOP", sock.set_multicast_loop_v6(true))?;
        }
    }
    Ok(sock.into())
}
