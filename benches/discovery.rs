//! Discovery latency, departure time, memory and idle CPU of the agent on a namespace pair, then
//! stock libp2p-mdns nodes on the same pair.
//!
//! Run with: `cargo build --release -p exo-discovery-libp2p --examples && sudo cargo bench
//! --bench discovery` (root: it builds network namespaces; the first command builds the stock
//! node, the example `stock_mdns_node` of the workspace's libp2p crate, into the shared target
//! directory; `EXO_BENCH_STOCK_NODE=FILE` names another build of it; without one that part is
//! skipped). `EXO_BENCH_RUNS=N` sets the number of runs (default 25).
//!
//! Linux only (it builds network namespaces); elsewhere it says so and exits.

// Linux only: it builds network namespaces.
#[cfg(target_os = "linux")]
#[path = "discovery/linux.rs"]
mod linux;

#[cfg(target_os = "linux")]
fn main() {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("the discovery bench runs on Linux only: it builds network namespaces");
    std::process::exit(1);
}
