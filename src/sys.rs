//! The few socket calls that differ between Linux and macOS. Does I/O.
//!
//! Everything here uses APIs that socket2, nix and libc provide on both systems. The macOS side is
//! compiled only there and has not been built or run by this project's tests.

use socket2::Socket;
use std::io;
use std::os::fd::AsFd;

/// Keeps a multicast socket to the groups it joined itself, on the interface it joined them on.
///
/// Linux: `IP_MULTICAST_ALL` / `IPV6_MULTICAST_ALL` off (on by default, which delivers groups
/// joined by any socket on any interface). macOS: `IP_BOUND_IF` / `IPV6_BOUND_IF` pin the socket to
/// the interface for receiving and sending.
pub fn pin_multicast(sock: &Socket, index: u32, v6: bool) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let _ = index;
        if v6 {
            sock.set_multicast_all_v6(false)
        } else {
            sock.set_multicast_all_v4(false)
        }
    }
    #[cfg(target_os = "macos")]
    {
        let idx = std::num::NonZeroU32::new(index);
        if v6 {
            sock.bind_device_by_index_v6(idx)
        } else {
            sock.bind_device_by_index_v4(idx)
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        let _ = (sock, index, v6);
        Ok(())
    }
}

/// Joins an IPv4 group on one interface: by index on Linux (exact even when two interfaces share
/// an address), by the interface's address elsewhere.
pub fn join_v4(
    sock: &Socket,
    group: &std::net::Ipv4Addr,
    index: u32,
    addr: std::net::Ipv4Addr,
) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    let iface = {
        let _ = addr;
        socket2::InterfaceIndexOrAddress::Index(index)
    };
    #[cfg(not(target_os = "linux"))]
    let iface = {
        let _ = index;
        socket2::InterfaceIndexOrAddress::Address(addr)
    };
    sock.join_multicast_v4_n(group, &iface)
}

/// The user ID of the process at the other end of a Unix stream socket.
pub fn peer_uid(fd: impl AsFd) -> io::Result<u32> {
    #[cfg(target_os = "linux")]
    {
        let cred = nix::sys::socket::getsockopt(&fd, nix::sys::socket::sockopt::PeerCredentials)?;
        Ok(cred.uid())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let (uid, _) = nix::unistd::getpeereid(fd)?;
        Ok(uid.as_raw())
    }
}

/// What a refused multicast send most likely means on this system.
pub fn explain_send_error(err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        #[cfg(target_os = "macos")]
        Some(nix::libc::EHOSTUNREACH) => {
            "macOS Local Network privacy blocks this process: run the agent as the LaunchDaemon \
             in config/ or grant it Local Network access"
        }
        Some(nix::libc::EPERM) | Some(nix::libc::EACCES) => "an output firewall rule refuses it",
        Some(nix::libc::ENETUNREACH) | Some(nix::libc::EHOSTUNREACH) => {
            "no route for multicast on it"
        }
        Some(nix::libc::EADDRNOTAVAIL) => "it has no usable source address",
        Some(nix::libc::ENODEV) | Some(nix::libc::ENXIO) => "the interface is gone",
        _ => "the system refused it",
    }
}
