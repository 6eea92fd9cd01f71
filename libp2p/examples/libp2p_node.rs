//! A libp2p node shaped like Exo's (TCP, noise, yamux, ping), fed peers by the exo-discovery agent
//! through `exo_discovery_libp2p::Behaviour` where libp2p's own mDNS behaviour would be.
//!
//! Run with: cargo run -p exo-discovery-libp2p --example libp2p_node -- --socket PATH --key FILE
//!
//! Linux only: libp2p's transports are a dev-dependency on Linux only (see Cargo.toml); elsewhere
//! it says so and exits.

// Linux only: libp2p's transports are a dev-dependency on Linux only (see Cargo.toml).
#[cfg(target_os = "linux")]
#[path = "libp2p_node/linux.rs"]
mod linux;

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() -> std::process::ExitCode {
    eprintln!("the libp2p_node example runs on Linux only: it needs libp2p's transports");
    std::process::ExitCode::FAILURE
}
