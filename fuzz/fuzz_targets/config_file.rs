//! Fuzz target: `exo_discovery::fuzz::config_file` must never panic. Run with: `cargo +nightly fuzz run config_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| exo_discovery::fuzz::config_file(data));
