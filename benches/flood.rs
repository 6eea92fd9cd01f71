//! The flood case of a hostile LAN: a host multicasts complete announcements of validly signed
//! records from freshly minted keys, 2,000 a second for 8 seconds, all pointing at an open port
//! of its own; a real node announces 3 seconds in, another after the flood. Reports records
//! offered and verified per second, when the real nodes were found, and the agent's peak RSS.
//!
//! Run with: `sudo cargo bench --bench flood` (root: it builds network namespaces).
//! `EXO_FLOOD_RATE=N` and `EXO_FLOOD_SECS=N` change the flood.
//!
//! Linux only (it builds network namespaces); elsewhere it says so and exits.

// Linux only: it builds network namespaces.
#[cfg(target_os = "linux")]
#[path = "flood/linux.rs"]
mod linux;

#[cfg(target_os = "linux")]
fn main() {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("the flood bench runs on Linux only: it builds network namespaces");
    std::process::exit(1);
}
