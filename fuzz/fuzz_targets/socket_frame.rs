//! Fuzz target: `exo_discovery::fuzz::socket_frame` must never panic. Run with: `cargo +nightly fuzz run socket_frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| exo_discovery::fuzz::socket_frame(data));
