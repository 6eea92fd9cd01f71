//! The architecture, checked: the engine (`src/engine/`) does no I/O and reads no clock, so that
//! every rule in it can be tested on a simulated clock; nor do the pure parts of the libp2p
//! behaviour (`src/libp2p/`: frames, listen addresses, peers).

use std::path::Path;

/// What nothing under `src/engine/` may name: sockets, files, threads, the async runtime,
/// mdns-sd's daemon, system calls, the clock.
const FORBIDDEN: [&str; 9] = [
    "std::net::UdpSocket",
    "std::fs",
    "std::thread",
    "async_io",
    "smol::",
    "ServiceDaemon",
    "nix::",
    "Instant::now()",
    "SystemTime::now()",
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_engine_does_no_io_and_reads_no_clock() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/engine");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(
        files.len() >= 5,
        "the engine's files were not found under {}",
        root.display()
    );
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable source");
        for (n, line) in text.lines().enumerate() {
            for bad in FORBIDDEN {
                if line.contains(bad) {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "the engine must stay free of I/O and clocks:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_libp2p_behaviours_pure_parts_do_no_io_and_read_no_clock() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/libp2p");
    let mut found = Vec::new();
    for name in ["frames.rs", "listen.rs", "peers.rs"] {
        let file = root.join(name);
        let text = std::fs::read_to_string(&file).expect("readable source");
        for (n, line) in text.lines().enumerate() {
            for bad in FORBIDDEN.iter().chain(&["UnixStream", "std::io::Read"]) {
                if line.contains(bad) {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "the behaviour's frames, listen addresses and peers stay free of I/O and clocks:\n{}",
        found.join("\n")
    );
}
