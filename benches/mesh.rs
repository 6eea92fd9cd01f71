//! How long `exo-discovery mesh` takes: N namespace hosts on one bridge, each with an agent and a
//! node; once the first host's agent holds every other node, `mesh --json` runs there a few times
//! (a little over a second apart: an agent answers one view ask a second per asker) and the bench
//! prints the time of each run, their median and maximum, how many hosts answered and how many
//! cells of the matrix are seen.
//!
//! Run with: `sudo cargo bench --bench mesh` (root: it builds network namespaces).
//! `EXO_MESH_HOSTS` (30), `EXO_MESH_RUNS` (5).
//!
//! Linux only; elsewhere it says so and exits.

// Linux only: it builds network namespaces.
#[cfg(target_os = "linux")]
#[path = "mesh/linux.rs"]
mod linux;

#[cfg(target_os = "linux")]
fn main() {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("the mesh bench runs on Linux only: it builds network namespaces");
    std::process::exit(1);
}
