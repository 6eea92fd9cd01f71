//! Fuzz target: `exo_discovery::fuzz::static_reply` must never panic. Run with: `cargo +nightly fuzz run static_reply`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| exo_discovery::fuzz::static_reply(data));
