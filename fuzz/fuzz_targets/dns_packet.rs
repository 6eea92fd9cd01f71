//! Fuzz target: `exo_discovery::fuzz::dns_packet` must never panic. Run with: `cargo +nightly fuzz run dns_packet`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| exo_discovery::fuzz::dns_packet(data));
