//! Every input the fuzzers kept (`fuzz/corpus/<target>/`, minimised) replayed through the same
//! entry points (`exo_discovery::fuzz`), so that a decoder that once panicked, or a path the
//! fuzzers reached, is checked on every change without a fuzzer.

use std::path::Path;

fn replay(target: &str, entry: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    assert!(!files.is_empty(), "{} holds no corpus", dir.display());
    for file in files {
        let bytes = std::fs::read(&file).expect("corpus file");
        // A panic names the file, which `cargo +nightly fuzz run <target> <file>` reproduces.
        eprintln!("{}", file.display());
        entry(&bytes);
    }
}

#[test]
fn dns_packets() {
    replay("dns_packet", exo_discovery::fuzz::dns_packet);
}

#[test]
fn signed_records() {
    replay("signed_record", exo_discovery::fuzz::signed_record);
}

#[test]
fn socket_frames() {
    replay("socket_frame", exo_discovery::fuzz::socket_frame);
}

#[test]
fn json_lines() {
    replay("json_line", exo_discovery::fuzz::json_line);
}

#[test]
fn cache_files() {
    replay("cache_file", exo_discovery::fuzz::cache_file);
}

#[test]
fn config_files() {
    replay("config_file", exo_discovery::fuzz::config_file);
}

#[test]
fn instance_names() {
    replay("instance_name", exo_discovery::fuzz::instance_name);
}

#[test]
fn static_replies() {
    replay("static_reply", exo_discovery::fuzz::static_reply);
}

#[test]
fn exchange_frames() {
    replay("exchange_frame", exo_discovery::fuzz::exchange_frame);
}

#[test]
fn link_datagrams() {
    replay("link_datagram", exo_discovery::fuzz::link_datagram);
}
