//! Fuzz target: `exo_discovery::fuzz::instance_name` must never panic. Run with: `cargo +nightly fuzz run instance_name`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| exo_discovery::fuzz::instance_name(data));
