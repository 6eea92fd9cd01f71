//! exo-discovery: finds the other nodes of an Exo (libp2p) cluster on every network interface,
//! IPv4 and IPv6 at once, accepts only signed and current peer records, and hands
//! `(peer ID, multiaddr)` pairs to its own node over a local Unix socket.
//!
//! The crate is split into a pure core and thin shells:
//! - pure (no I/O, clock passed in): [`engine`] (every decision of the agent: peer table, prober,
//!   links, registrations, static hosts), [`record`], [`addrs`], [`proto`] (and
//!   [`proto_json`], its JSON line mode), [`exchange`] (peer exchange's wire format), [`dns`],
//!   [`libp2p_mdns`] (the stock libp2p-mdns dialect), [`instance`] (instance names and their
//!   records), [`config`], [`fanout`], [`fuzz`] (the fuzz targets' entry points);
//! - shells: [`iface`] (interface listing), [`mcast`] (per-interface multicast sockets),
//!   [`mdns`] (the mdns-sd daemons), [`server`] (local socket), [`unicast`] (static hosts),
//!   [`agent`] (the loop that feeds the engine and carries out its actions), [`client`] (for nodes
//!   and the command line), `libp2p` (with the cargo feature `libp2p`: a rust-libp2p
//!   `NetworkBehaviour` fed by the agent, in place of libp2p-mdns), [`keyfile`], and `sys` (the
//!   Linux/macOS differences).

#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod addrs;
pub mod agent;
pub mod cache;
pub mod client;
pub mod config;
pub mod dns;
pub mod doctor;
pub mod engine;
pub mod exchange;
pub mod fanout;
pub mod fuzz;
pub mod iface;
pub mod instance;
pub mod keyfile;
#[cfg(feature = "libp2p")]
pub mod libp2p;
pub mod libp2p_mdns;
pub mod logging;
pub mod mcast;
pub mod mdns;
pub mod peers_file;
pub mod proto;
pub mod proto_json;
pub mod reconnect;
pub mod record;
pub mod server;
mod sys;
pub mod unicast;

pub use sys::{explain_send_error, recv_with_ifindex};

/// Where the engine's unit tests start their simulated clock (the engine never reads the clock).
#[cfg(test)]
pub(crate) fn test_clock() -> std::time::Instant {
    std::time::Instant::now()
}
