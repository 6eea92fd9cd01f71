//! Fuzz target: `exo_discovery::fuzz::exchange_frame` must never panic. Run with: `cargo +nightly fuzz run exchange_frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| exo_discovery::fuzz::exchange_frame(data));
