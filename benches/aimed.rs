//! Can a forged packet aim the agents at someone else? Three agents with a node each share a link
//! with a hostile host X (which also holds an address of another subnet, routed through it: to
//! the agents, a forged off-link source) and a bystander V listening on TCP port 22. X sends, in
//! turn: presence queries naming made-up instances, re-queries for a real node's record, one-shot
//! (legacy unicast) queries and peer exchange asks, each from the off-link address and from its
//! on-link one; then records of freshly minted keys naming V's port 22, from its own address and
//! with V's address forged as the source (a raw socket). Reports the packets the agents sent per
//! forged packet, to the forged address, to the link's multicast group and by unicast on the
//! link, and the connections V received per minute.
//!
//! Run with: `sudo cargo bench --bench aimed` (root: it builds network namespaces).
//! `EXO_AIMED_FORGED=N` (default 100) forged packets per case, `EXO_AIMED_SECS=N` (default 60)
//! seconds of each minted-record flood.
//!
//! Linux only (it builds network namespaces); elsewhere it says so and exits.

// Linux only: it builds network namespaces.
#[cfg(target_os = "linux")]
#[path = "aimed/linux.rs"]
mod linux;

#[cfg(target_os = "linux")]
fn main() {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("the aimed bench runs on Linux only: it builds network namespaces");
    std::process::exit(1);
}
