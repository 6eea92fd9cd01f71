//! The command line as a user first meets it, with no agent, no root and no network but
//! loopback: help, version, keygen, sign, the error lines for a bad config, bad arguments and a
//! missing agent, and doctor on loopback.
//!
//! The same tests smoke-test other builds of the binary: `EXO_DISCOVERY_TEST_BIN` names one (the
//! static musl build, an ARM release build) and `EXO_DISCOVERY_TEST_RUNNER` the emulator that runs
//! it (`qemu-aarch64 -L /usr/aarch64-linux-gnu`). `.ci/run` runs them so for every target.

mod common;

use exo_discovery::cli::keyfile;
use exo_discovery::wire::{config, protocol_json, record};
use std::path::{Path, PathBuf};
use std::process::Output;

fn run(args: &[&str]) -> Output {
    common::bin()
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", common::bin_path()))
}

/// A fresh directory of this test's own, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(test: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("exo-cli-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn file(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// A failure a user can read: the given exit code, nothing on stdout and one line on stderr that
/// contains every `needle`.
fn one_line_failure(out: &Output, code: i32, needles: &[&str]) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
    for n in needles {
        assert!(err.contains(n), "{n:?} is not in {err:?}");
    }
}

#[test]
fn help_names_every_command() {
    let out = run(&["--help"]);
    assert!(out.status.success(), "{out:?}");
    let help = text(&out.stdout);
    for cmd in [
        "run",
        "keygen",
        "announce",
        "sign",
        "peers",
        "add-host",
        "remove-host",
        "add-peer",
        "status",
        "doctor",
        "watch",
    ] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{cmd} "))),
            "{cmd} is not in the help:\n{help}"
        );
    }
    let out = run(&["run", "--help"]);
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out.stdout).contains("--config"));
}

#[test]
fn version_is_the_crate_version() {
    let out = run(&["--version"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        format!("exo-discovery {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn keygen_writes_an_owner_only_key_and_never_overwrites_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Dir::new("keygen");
    let key = dir.file("node.key");
    let out = run(&["keygen", "--out", &key]);
    assert!(out.status.success(), "{out:?}");
    let printed = text(&out.stdout);
    let written = keyfile::read(Path::new(&key)).unwrap();
    assert_eq!(printed, format!("{}\n", written.public().to_peer_id()));
    let meta = std::fs::metadata(&key).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let before = std::fs::read(&key).unwrap();
    one_line_failure(
        &run(&["keygen", "--out", &key]),
        1,
        &[&key, "already exists"],
    );
    assert_eq!(
        std::fs::read(&key).unwrap(),
        before,
        "the key was overwritten"
    );
}

#[test]
fn sign_prints_a_record_that_verifies_for_the_key() {
    let dir = Dir::new("sign");
    let key = dir.file("node.key");
    assert!(run(&["keygen", "--out", &key]).status.success());
    let out = run(&[
        "sign",
        "--key",
        &key,
        "--addr",
        "/ip4/0.0.0.0/tcp/4001",
        "--addr",
        "/ip6/::/udp/4001/quic-v1",
        "--seq",
        "7",
    ]);
    assert!(out.status.success(), "{out:?}");
    let hex = text(&out.stdout);
    let signed = protocol_json::from_hex(hex.trim_end()).expect("sign printed no hex");
    let rec = record::verify(&signed, config::DEFAULT_NAMESPACE).unwrap();
    let kp = keyfile::read(Path::new(&key)).unwrap();
    assert_eq!(rec.peer_id, kp.public().to_peer_id());
    assert_eq!(rec.seq, 7);
    let addrs: Vec<String> = rec.addrs.iter().map(|a| a.to_string()).collect();
    assert_eq!(addrs, ["/ip4/0.0.0.0/tcp/4001", "/ip6/::/udp/4001/quic-v1"]);

    one_line_failure(
        &run(&[
            "sign",
            "--key",
            &dir.file("none.key"),
            "--addr",
            "/ip4/0.0.0.0/tcp/1",
        ]),
        1,
        &["cannot read key", "none.key"],
    );
}

#[test]
fn a_bad_config_is_one_line_naming_the_file_line_and_option() {
    let dir = Dir::new("config");
    let cfg = dir.file("bad.toml");
    std::fs::write(&cfg, "namespace = \"exo\"\npeer_timeout_secs = \"soon\"\n").unwrap();
    // The config is read before anything else: no socket, no interface is touched.
    let socket = dir.file("agent.sock");
    one_line_failure(
        &run(&["run", "--config", &cfg, "--socket", &socket]),
        1,
        &[&cfg, "line 2", "peer_timeout_secs"],
    );
    assert!(!Path::new(&socket).exists());

    std::fs::write(&cfg, "no_such_option = 1\n").unwrap();
    one_line_failure(
        &run(&["run", "--config", &cfg, "--socket", &socket]),
        1,
        &[&cfg, "no_such_option"],
    );
    one_line_failure(
        &run(&[
            "run",
            "--config",
            &dir.file("missing.toml"),
            "--socket",
            &socket,
        ]),
        1,
        &["missing.toml"],
    );
}

#[test]
fn bad_arguments_are_usage_errors() {
    let out = run(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("unrecognized subcommand 'frobnicate'"));
    let out = run(&["sign", "--key", "k", "--addr", "not-a-multiaddr"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("not-a-multiaddr"), "{out:?}");
}

#[test]
fn no_agent_is_one_line_saying_how_to_start_it() {
    let dir = Dir::new("noagent");
    let socket = dir.file("agent.sock");
    for cmd in ["peers", "status"] {
        one_line_failure(
            &run(&[cmd, "--socket", &socket]),
            1,
            &["agent not running", &socket, "exo-discovery run"],
        );
    }
}

#[test]
fn doctor_joins_and_sends_on_loopback() {
    if common::runner().is_some() {
        // qemu-user does not translate every socket option (pinning a socket to an interface
        // fails with ENOPROTOOPT), so doctor cannot be judged under an emulator.
        eprintln!("doctor not run: the binary runs under an emulator, which lacks socket options");
        return;
    }
    let out = run(&[
        "doctor",
        "--json",
        "--loopback",
        "--interface",
        "lo*",
        "--wait",
        "1",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor --json printed no JSON ({e}): {out:?}"));
    let rows = report["rows"].as_array().expect("no rows");
    let v4 = rows
        .iter()
        .find(|r| r["family"] == "IPv4" && r["addresses"][0] == "127.0.0.1")
        .unwrap_or_else(|| panic!("no IPv4 loopback row: {report}"));
    assert_eq!(v4["join"], "ok", "{v4}");
    assert_eq!(v4["send"], "ok", "{v4}");
}
