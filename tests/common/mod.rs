//! Test network made of Linux network namespaces: hosts, links (bridges in a private "switch"
//! namespace), agents, announcers and watchers running the real binary. Nothing leaves the
//! namespaces this harness creates; all of them are deleted on drop.
//!
//! By concern: `network` the namespaces, hosts and links and running code inside a host; `agents`
//! agents, `keygen` and `announce`; `forge` what a hostile host on the link sends (`packets` the bytes); `watch` what an agent reports (`watch --json`, `peers
//! --json`); `tools` nftables and the check for a tool a test needs.

// Each test binary uses only part of the harness: what one leaves unused, another needs.
// Linux only: all but `packets` stand on network namespaces (`network`).
#[cfg(target_os = "linux")]
#[allow(dead_code)]
pub mod agents;
#[cfg(target_os = "linux")]
#[allow(dead_code)]
pub mod forge;
#[cfg(target_os = "linux")]
#[allow(dead_code)]
pub mod network;
#[allow(dead_code)]
pub mod packets;
#[cfg(target_os = "linux")]
#[allow(dead_code)]
pub mod tools;
#[cfg(target_os = "linux")]
#[allow(dead_code)]
pub mod watch;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_exo-discovery");
