//! A cluster on a lossy link, agents and stock libp2p-mdns side by side: N namespace hosts on one
//! bridge, each dropping a share of the mDNS datagrams it receives (nftables `numgen random` on
//! input, so senders see no error). Every host runs an agent and a node; all nodes register at
//! once. (The loss applies to unicast mDNS too: queries to a host's port 5353, and its answers.)
//! Then the same hosts run stock rust-libp2p nodes with libp2p's own mDNS (Exo's setting
//! before the agent) for the same time. Prints directed discoveries within the time, median / p99
//! / last discovery after registration, false `expired` events, mDNS packets per agent per minute
//! (counted on each host's output) while they start and in a quiet window after, and the agents'
//! RSS.
//!
//! Run with: `cargo build --release --examples && sudo cargo bench --bench lossy`
//! (root: it builds network namespaces; the first command builds the stock node, the example
//! `stock_mdns_node` of the workspace's libp2p crate, into the shared target directory).
//! `EXO_LOSSY_HOSTS` (10), `EXO_LOSSY_LOSS` (percent, 30), `EXO_LOSSY_SECS` (how long each side
//! runs, 30), `EXO_LOSSY_IDLE_SECS` (the quiet window in which the agents' idle traffic is
//! counted, 60), `EXO_LOSSY_STOCK=0` to skip the stock nodes, `EXO_LOSSY_PCAP=FILE` to capture
//! what h0 sends in that window (tcpdump), `EXO_LOSSY_SETTLE_SECS` (0) to wait that long before
//! it.
//!
//! Linux only (it builds network namespaces and runs the libp2p crate's stock node); elsewhere it
//! says so and exits.

// Linux only: it builds network namespaces and runs the libp2p crate's stock node.
#[cfg(target_os = "linux")]
#[path = "lossy/linux.rs"]
mod linux;

#[cfg(target_os = "linux")]
fn main() {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!(
        "the lossy bench runs on Linux only: it builds network namespaces and runs the libp2p \
         examples"
    );
    std::process::exit(1);
}
