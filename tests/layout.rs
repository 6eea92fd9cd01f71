//! The architecture, checked.
//!
//! - The crate is built in layers, each a folder under `src/`, and every import points down:
//!   `cli` → `agent` → `engine` → `wire`, `cli` → `client` → `wire`, and `sys` (the system calls)
//!   under `agent` and `client`. Every path a file names through `crate::` or `super::` is read, in
//!   `use` lines and in code alike, and resolved to the layer it lands in.
//! - The engine and the wire layer do no I/O and read no clock, so that every rule in them can be
//!   tested on a simulated clock; nor do the pure parts of the libp2p behaviour (the workspace's
//!   crate `exo-discovery-libp2p`, in `libp2p/`).

use std::path::{Path, PathBuf};

/// The layers, each with the layers it may name (its own included).
const LAYERS: [(&str, &[&str]); 6] = [
    ("cli", &["cli", "agent", "client", "engine", "sys", "wire"]),
    ("agent", &["agent", "engine", "sys", "wire"]),
    ("client", &["client", "sys", "wire"]),
    ("engine", &["engine", "wire"]),
    ("sys", &["sys", "wire"]),
    ("wire", &["wire"]),
];

/// What nothing under `src/engine/` or `src/wire/` may name: sockets, files, threads, the async
/// runtime, mdns-sd's daemon, system calls (errno constants, `nix::libc`, are values), the clock.
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

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file under `src/`: `agent/server/mod.rs` is `["agent", "server"]`.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_owned());
    }
    parts
}

/// The code of a line: without its comment (doc comments and intra-doc links are not imports),
/// and with its string literals emptied.
fn code_of(line: &str) -> String {
    let mut out = String::new();
    let mut in_str = false;
    let mut prev = ' ';
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if prev != '\\' => {
                in_str = !in_str;
                out.push(c);
            }
            '/' if !in_str && chars.peek() == Some(&'/') => break,
            _ if in_str => {}
            _ => out.push(c),
        }
        prev = c;
    }
    out
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first module each path names in `code`, resolved from `module` (the file's module path):
/// `crate::engine::Input` names `engine`; in `agent/server/mod.rs`, `super::super::wire` names
/// `wire`; `crate::{agent, wire::dns}` names both.
fn targets(module: &[String], code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(['c', 's']) {
        let here = &rest[i..];
        let before = rest[..i].chars().next_back();
        let boundary = !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        if boundary && here.starts_with("crate::") {
            let after = &here["crate::".len()..];
            push_names(after, &mut out);
            rest = after;
        } else if boundary && here.starts_with("super::") {
            let mut path = module.to_vec();
            let mut after = here;
            while let Some(r) = after.strip_prefix("super::") {
                path.pop();
                after = r;
            }
            match path.first() {
                // Still inside a layer: that layer.
                Some(first) => out.push(first.clone()),
                // Up to the crate root: whatever comes next.
                None => push_names(after, &mut out),
            }
            rest = after;
        } else {
            rest = &here[1..];
        }
    }
    out
}

/// The first segment of a path after `crate::`, or of each item of a `{…}` group.
fn push_names(after: &str, out: &mut Vec<String>) {
    if let Some(group) = after.strip_prefix('{') {
        let inner = group.split('}').next().unwrap_or("");
        for item in inner.split(',') {
            let name = ident_at(item.trim());
            if !name.is_empty() && name != "self" {
                out.push(name.to_owned());
            }
        }
    } else {
        out.push(ident_at(after).to_owned());
    }
}

/// Every import or path in `text` (the file `rel` under `src/`) that points to a layer its own
/// layer may not name: `file:line: from → to: the line`.
fn upward(rel: &Path, text: &str) -> Vec<String> {
    let module = module_of(rel);
    let Some(layer) = module.first() else {
        return Vec::new(); // lib.rs, main.rs: the crate root names every layer
    };
    let Some((_, allowed)) = LAYERS.iter().find(|(l, _)| l == layer) else {
        return Vec::new(); // not a layer (the fuzz entry points)
    };
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for target in targets(&module, &code_of(line)) {
            let is_layer = LAYERS.iter().any(|(l, _)| *l == target);
            if is_layer && !allowed.contains(&target.as_str()) {
                found.push(format!(
                    "src/{}:{}: {layer} → {target}: {}",
                    rel.display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    found
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn every_import_points_down_the_layers() {
    let root = src();
    for (layer, _) in LAYERS {
        let dir = root.join(layer);
        assert!(
            dir.is_dir() || root.join(format!("{layer}.rs")).is_file(),
            "layer {layer} not found under {}",
            root.display()
        );
    }
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() >= 40, "the sources were not found");
    let mut found = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&root).expect("under src");
        let text = std::fs::read_to_string(file).expect("readable source");
        found.extend(upward(rel, &text));
    }
    assert!(
        found.is_empty(),
        "imports must point down the layers (cli → agent → engine → wire, cli → client → wire, \
         agent and client → sys → wire):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_finds_an_upward_import_and_passes_a_downward_one() {
    let engine = Path::new("engine/links.rs");
    assert_eq!(
        upward(engine, "use crate::wire::net::Family;"),
        Vec::<String>::new()
    );
    assert_eq!(
        upward(engine, "use super::table::PeerTable;"),
        Vec::<String>::new()
    );
    assert_eq!(
        upward(engine, "/// Fed by [`crate::agent`]."),
        Vec::<String>::new()
    );
    assert_eq!(
        upward(engine, "let s = \"crate::agent\"; // crate::agent"),
        Vec::<String>::new()
    );
    for bad in [
        "use crate::agent::link_socket::MDNS_PORT;",
        "    let n = crate::agent::server::MAX_CONNECTIONS;",
        "use crate::{wire::dns, agent};",
        "use super::super::agent::Incoming;",
    ] {
        let found = upward(engine, bad);
        assert_eq!(found.len(), 1, "{bad}: {found:?}");
        assert!(found[0].contains("engine → agent"), "{found:?}");
    }
    // A layer beside, not below: the client never names the engine, nor the wire layer the sys one.
    assert_eq!(
        upward(Path::new("client/mod.rs"), "use crate::engine::Input;").len(),
        1
    );
    assert_eq!(
        upward(Path::new("wire/net.rs"), "crate::sys::peer_uid(s)").len(),
        1
    );
    // Deeper files resolve `super::` from where they are.
    let limits = Path::new("agent/server/limits.rs");
    assert_eq!(
        upward(limits, "use super::super::fanout::Fanout;"),
        Vec::<String>::new()
    );
    assert_eq!(
        upward(limits, "use super::super::super::cli::args;").len(),
        1
    );
}

#[test]
fn the_engine_and_the_wire_layer_do_no_io_and_read_no_clock() {
    let mut found = Vec::new();
    let mut files = Vec::new();
    for layer in ["engine", "wire"] {
        rust_files(&src().join(layer), &mut files);
    }
    assert!(
        files.len() >= 20,
        "the engine's and wire layer's files were not found"
    );
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable source");
        for (n, line) in text.lines().enumerate() {
            let code = code_of(line).replace("nix::libc", "libc");
            for bad in FORBIDDEN {
                if code.contains(bad) {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "the engine and the wire layer must stay free of I/O and clocks:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_libp2p_behaviours_pure_parts_do_no_io_and_read_no_clock() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("libp2p/src");
    let mut found = Vec::new();
    for name in ["frames.rs", "listen.rs", "peers.rs"] {
        let file = root.join(name);
        let text = std::fs::read_to_string(&file).expect("readable source");
        for (n, line) in text.lines().enumerate() {
            for bad in FORBIDDEN.iter().chain(&["UnixStream", "std::io::Read"]) {
                if code_of(line).contains(bad) {
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
