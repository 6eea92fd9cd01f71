//! What the agent costs holding a crowd: N namespace hosts on one link (80), each multicasting
//! complete announcements of validly signed records (from freshly minted keys) that point at an
//! open port of its own, 1,000 records in all, repeated until the agent hands all of them to its
//! node. Then, with the crowd still there, it prints the agent's memory (`VmRSS`, `RssAnon`,
//! `VmHWM` from `/proc/PID/status`, `Pss` from `smaps_rollup`) beside the same figures at idle,
//! and how much of the growth is per peer.
//!
//! Run with: `sudo cargo bench --bench crowd` (root: it builds network namespaces).
//! `EXO_CROWD_HOSTS` (80), `EXO_CROWD_PEERS` (1000), `EXO_CROWD_SETTLE_SECS` (20: how long the
//! crowd stays once all are held, before the figures are read), `EXO_CROWD_ROUNDS` (1: at least
//! this many rounds of announcements, as a crowd whose agents keep announcing sends).
//!
//! Linux only; elsewhere it says so and exits.

// Linux only: it builds network namespaces.
#[cfg(target_os = "linux")]
#[path = "crowd/linux.rs"]
mod linux;

#[cfg(target_os = "linux")]
fn main() {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("the crowd bench runs on Linux only: it builds network namespaces");
    std::process::exit(1);
}
