//! Fuzz target: `exo_discovery::fuzz::signed_record` must never panic. Run with: `cargo +nightly fuzz run signed_record`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| exo_discovery::fuzz::signed_record(data));
