//! The few socket and process calls that differ between Linux and macOS. Does I/O.
//!
//! Everything here uses APIs that socket2, nix and libc provide on both systems. The macOS side is
//! compiled only there: it is type-checked for both Apple targets (see the README), never run.

use socket2::Socket;
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;

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

/// Asks the kernel to say, with every datagram, which interface it came in on (IP_PKTINFO /
/// IPV6_RECVPKTINFO).
pub fn enable_pktinfo(sock: &Socket, v6: bool) -> io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    if v6 {
        setsockopt(sock, sockopt::Ipv6RecvPacketInfo, &true)?;
    } else {
        setsockopt(sock, sockopt::Ipv4PacketInfo, &true)?;
    }
    Ok(())
}

/// Receives one datagram with its sender and the index of the interface it arrived on.
///
/// The interface comes from the packet, not from the socket: when many sockets share port 5353
/// (several responders, several network namespaces), Linux may hand a multicast datagram to a
/// socket of the same reuse-port group that joined the group on another interface.
pub fn recv_with_ifindex(
    sock: &std::net::UdpSocket,
    buf: &mut [u8],
) -> io::Result<(usize, std::net::SocketAddr, Option<u32>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrStorage};
    use std::os::fd::AsRawFd;
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!(nix::libc::in6_pktinfo, nix::libc::in_pktinfo);
    let msg = recvmsg::<SockaddrStorage>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )?;
    let mut ifindex = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            match c {
                // `ipi_ifindex` is a C int on Linux, an unsigned int on macOS.
                #[cfg(target_os = "linux")]
                ControlMessageOwned::Ipv4PacketInfo(i) => {
                    ifindex = u32::try_from(i.ipi_ifindex).ok()
                }
                #[cfg(not(target_os = "linux"))]
                ControlMessageOwned::Ipv4PacketInfo(i) => ifindex = Some(i.ipi_ifindex),
                ControlMessageOwned::Ipv6PacketInfo(i) => ifindex = Some(i.ipi6_ifindex),
                _ => {}
            }
        }
    }
    let from = msg
        .address
        .and_then(|a| {
            a.as_sockaddr_in()
                .map(|s| std::net::SocketAddr::V4((*s).into()))
                .or_else(|| {
                    a.as_sockaddr_in6()
                        .map(|s| std::net::SocketAddr::V6((*s).into()))
                })
        })
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no sender address"))?;
    Ok((msg.bytes, from, ifindex))
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

/// Raises the unicast TTL / hop limit to 255 on the mdns-sd daemons' sockets: this process's UDP
/// sockets bound to port 5353 on the unspecified address. mdns-sd sets the multicast TTL but
/// leaves the unicast one at the system default (64), which its legacy unicast replies
/// (RFC 6762 §6.7) then carry, while RFC 6762 §11 wants 255 on every response. The agent's own
/// link sockets are bound to the group address and set their TTLs when opened. Returns how many
/// sockets were changed.
///
/// Linux only (it reads `/proc/self/fd`); elsewhere it does nothing.
#[allow(unsafe_code)]
pub fn raise_daemon_unicast_ttl() -> usize {
    #[cfg(target_os = "linux")]
    {
        use nix::libc;
        let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
            return 0;
        };
        let mut changed = 0;
        for entry in dir.flatten() {
            let Some(fd) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<libc::c_int>().ok())
            else {
                continue;
            };
            let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            // SAFETY: getsockname writes at most `len` bytes into `addr`, which is that large. A
            // descriptor that is not a socket, or was closed meanwhile, makes it fail (ENOTSOCK,
            // EBADF) and is skipped; nothing is kept beyond this call.
            let rc = unsafe {
                libc::getsockname(fd, &mut addr as *mut _ as *mut libc::sockaddr, &mut len)
            };
            if rc != 0 {
                continue;
            }
            let one_ttl: libc::c_int = 255;
            let (level, name) = match addr.ss_family as libc::c_int {
                libc::AF_INET => {
                    // SAFETY: the family says the storage holds a sockaddr_in.
                    let sin = unsafe { &*(&addr as *const _ as *const libc::sockaddr_in) };
                    if u16::from_be(sin.sin_port) != 5353 || sin.sin_addr.s_addr != 0 {
                        continue;
                    }
                    (libc::IPPROTO_IP, libc::IP_TTL)
                }
                libc::AF_INET6 => {
                    // SAFETY: the family says the storage holds a sockaddr_in6.
                    let sin6 = unsafe { &*(&addr as *const _ as *const libc::sockaddr_in6) };
                    if u16::from_be(sin6.sin6_port) != 5353 || sin6.sin6_addr.s6_addr != [0; 16] {
                        continue;
                    }
                    (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS)
                }
                _ => continue,
            };
            // SAFETY: a plain integer option of the size given; on a descriptor reused by
            // something else in the meantime the call fails or sets TTL 255 on another of this
            // process's sockets, which all want 255.
            let rc = unsafe {
                libc::setsockopt(
                    fd,
                    level,
                    name,
                    &one_ttl as *const _ as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                changed += 1;
            }
        }
        changed
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

/// Where the agent listens unless told otherwise: `$XDG_RUNTIME_DIR/exo-discovery/agent.sock`
/// when that variable is set, else `/tmp/exo-discovery-<uid>/agent.sock`. The agent creates that
/// directory owner-only and checks it before binding.
pub fn default_socket_path() -> PathBuf {
    crate::wire::config::socket_path_for(
        std::env::var_os("XDG_RUNTIME_DIR").as_deref(),
        nix::unistd::getuid().as_raw(),
    )
}

/// The default state directory: `$STATE_DIRECTORY` (systemd), `/var/lib/exo-discovery` for
/// root, else `$XDG_STATE_HOME/exo-discovery` or `~/.local/state/exo-discovery`.
pub fn default_state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("STATE_DIRECTORY").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/exo-discovery");
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("exo-discovery");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(h) => PathBuf::from(h).join(".local/state/exo-discovery"),
        None => PathBuf::from("/tmp/exo-discovery-state"),
    }
}

/// One malloc arena for the whole process (glibc), unless `MALLOC_ARENA_MAX` chose otherwise.
/// glibc gives each thread that allocates its own arena (the mdns-sd daemons run two), and
/// memory freed in one is reused only there (docs/measured.md, one agent holding 1,000 peers).
/// The agent's threads allocate little at once, so they hardly ever wait for each other.
/// Elsewhere (musl, macOS) it does nothing: their allocators have no per-thread arenas.
#[allow(unsafe_code)]
pub fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a tunable of the allocator; called before the agent starts
        // its threads.
        unsafe {
            nix::libc::mallopt(nix::libc::M_ARENA_MAX, 1);
        }
    }
}
