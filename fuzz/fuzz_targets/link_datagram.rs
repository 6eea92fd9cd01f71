//! Fuzz target: `exo_discovery::fuzz::link_datagram` must never panic. Run with: `cargo +nightly fuzz run link_datagram`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| exo_discovery::fuzz::link_datagram(data));
