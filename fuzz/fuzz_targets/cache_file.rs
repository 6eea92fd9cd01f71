//! Fuzz target: `exo_discovery::fuzz::cache_file` must never panic. Run with: `cargo +nightly fuzz run cache_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| exo_discovery::fuzz::cache_file(data));
