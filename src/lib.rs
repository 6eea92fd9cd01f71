//! exo-discovery: finds the other nodes of an Exo (libp2p) cluster on every network interface,
//! IPv4 and IPv6 at once, accepts only signed and current peer records, and hands
//! `(peer ID, multiaddr)` pairs to its own node over a local Unix socket.
//!
//! What a node needs from this library:
//! - [`client`]: the blocking [`client::Client`] and the reconnecting client
//!   ([`client::reconnect`]), which register the node's record and follow the peers;
//! - [`protocol`]: the local socket's messages ([`protocol::PeerInfo`], [`protocol::Source`], …);
//! - [`record`]: signing and verifying a node's record with its libp2p key;
//! - [`default_socket_path`]: where the agent listens unless told otherwise.
//!
//! A rust-libp2p node can use the crate `exo-discovery-libp2p` instead: a `NetworkBehaviour` fed by
//! the agent, in the place of libp2p-mdns.
//!
//! Inside, the crate is built in layers, each a folder, every import pointing down the list
//! (checked by `tests/layout.rs`):
//! - `cli`: the binary's parts (arguments, rendering, key files, logging);
//! - `agent`: the I/O shell (link sockets, mdns-sd daemons, the socket server, unicast, files);
//! - `client`: the clients above;
//! - `engine`: every decision of the agent, with no I/O and no clock;
//! - `sys`: the few system calls that differ between Linux and macOS;
//! - `wire`: bytes ↔ values and the plain value types, no state and no I/O.
//!
//! With the cargo feature `internals` the layers are public, for the crate's own tests, benches,
//! simulator and fuzz targets; they are not a stable API.

#![warn(missing_docs)]
#![deny(unsafe_code)]

/// Declares a layer: public with the feature `internals`, crate-private without.
macro_rules! layer {
    ($($(#[$attr:meta])* $name:ident;)*) => {$(
        $(#[$attr])*
        #[cfg(feature = "internals")]
        pub mod $name;
        $(#[$attr])*
        #[cfg(not(feature = "internals"))]
        mod $name;
    )*};
}

layer! {
    /// The binary's parts: arguments, rendering, the commands, key files, logging.
    cli;
    /// The I/O shell around the engine.
    agent;
    /// Every decision of the agent; no I/O, no clock.
    engine;
    /// The few socket calls that differ between Linux and macOS.
    sys;
    /// Bytes ↔ values, and the plain value types.
    wire;
}

pub mod client;

/// The fuzz targets' entry points (`fuzz/`), and the corpora's replay in the tests.
#[cfg(any(feature = "fuzz", feature = "internals"))]
pub mod fuzz;

pub use sys::default_socket_path;
pub use wire::protocol;
pub use wire::record;

/// The binary's `main` (`src/main.rs`): parses the arguments, then runs the command.
#[doc(hidden)]
pub fn cli_main() -> std::process::ExitCode {
    cli::main()
}

/// Where the engine's unit tests start their simulated clock (the engine never reads the clock).
#[cfg(test)]
pub(crate) fn test_clock() -> std::time::Instant {
    std::time::Instant::now()
}

/// A fresh peer ID, for unit tests.
#[cfg(test)]
pub(crate) fn test_peer() -> libp2p_identity::PeerId {
    libp2p_identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id()
}
