//! Fuzz target: `exo_discovery::fuzz::json_line` must never panic. Run with: `cargo +nightly fuzz run json_line`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| exo_discovery::fuzz::json_line(data));
