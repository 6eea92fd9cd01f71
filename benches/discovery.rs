//! Discovery latency, departure time, memory and idle CPU of the agent on a namespace pair.
//!
//! Run with: `sudo cargo bench --bench discovery` (root: it builds network namespaces).
//! `EXO_BENCH_RUNS=N` sets the number of runs (default 25).
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
