//! A stock rust-libp2p node as in pre-agent Exo: TCP, noise, yamux, ping and libp2p's own mDNS.
//!
//! Run with: cargo run -p exo-discovery-libp2p --example stock_mdns_node -- [--key FILE]
//!
//! Linux only: libp2p's transports are a dev-dependency on Linux only (see Cargo.toml); elsewhere
//! it says so and exits.

// Linux only: libp2p's transports are a dev-dependency on Linux only (see Cargo.toml).
#[cfg(target_os = "linux")]
#[path = "stock_mdns_node/linux.rs"]
mod linux;

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() -> std::process::ExitCode {
    eprintln!("the stock_mdns_node example runs on Linux only: it needs libp2p's transports");
    std::process::ExitCode::FAILURE
}
