//! Test network made of Linux network namespaces: hosts, links (bridges in a private "switch"
//! namespace), agents, announcers and watchers running the real binary. Nothing leaves the
//! namespaces this harness creates; all of them are deleted on drop.
//!
//! By concern: `network` the namespaces, hosts and links and running code inside a host; `agents`
//! agents, `keygen` and `announce`; `forge` what a hostile host on the link sends (`packets` the
//! bytes); `watch` what an agent reports (`watch --json`, `peers --json`); `proc` what a process
//! costs (memory, CPU time); `tools` nftables and the check for a tool a test needs.

// Each test binary uses only part of the harness: what one leaves unused, another needs.
// Linux only: all but `packets` stand on network namespaces (`network`).
#[cfg(target_os = "linux")]
#[allow(dead_code)]
pub mod agents;
#[cfg(target_os = "linux")]
#[allow(dead_code)]
pub mod forge;
#[cfg(target_os = "linux")]
#[allow(dead_code)]
pub mod network;
#[allow(dead_code)]
pub mod packets;
#[cfg(target_os = "linux")]
#[allow(dead_code)]
pub mod proc;
#[cfg(target_os = "linux")]
#[allow(dead_code)]
pub mod tools;
#[cfg(target_os = "linux")]
#[allow(dead_code)]
pub mod watch;

/// The number in the environment variable `name`, or `default` when it is unset or not a number
/// (the benches' and the simulator's knobs).
#[allow(dead_code)]
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The agent's binary of this build. Cargo names it to the agent's own tests
/// (`CARGO_BIN_EXE_exo-discovery`); the tests of the workspace's other crate (the libp2p
/// behaviour's, which share this harness) find it in the workspace's target directory, beside
/// their own executable: `target/<profile>/deps/<test>` → `target/<profile>/exo-discovery`.
/// Nothing here builds it: `cargo test` at the workspace root builds it before any test runs,
/// `cargo build -p exo-discovery` alone. A missing binary fails the test that needs it, saying so.
pub fn built_bin() -> String {
    if let Some(path) = option_env!("CARGO_BIN_EXE_exo-discovery") {
        return path.to_owned();
    }
    let exe = std::env::current_exe().expect("the test's own executable");
    let path = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("the test executable lives in target/<profile>/deps")
        .join("exo-discovery");
    assert!(
        path.is_file(),
        "the agent's binary {} is missing: `cargo test` at the workspace root builds it with the \
         tests, `cargo build -p exo-discovery` alone; or set EXO_DISCOVERY_TEST_BIN to a build of it",
        path.display()
    );
    path.into_os_string()
        .into_string()
        .unwrap_or_else(|p| panic!("the agent's binary {p:?}: not a UTF-8 path"))
}

/// The binary the tests run: `EXO_DISCOVERY_TEST_BIN` when set (a build for another target, such
/// as the static musl binary or an ARM release build), else [`built_bin`].
#[allow(dead_code)]
pub fn bin_path() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| match std::env::var("EXO_DISCOVERY_TEST_BIN") {
        Ok(p) if !p.is_empty() => p,
        Ok(_) | Err(std::env::VarError::NotPresent) => built_bin(),
        Err(e) => panic!("EXO_DISCOVERY_TEST_BIN: {e}"),
    })
}

/// The emulator that runs a binary built for another architecture, from
/// `EXO_DISCOVERY_TEST_RUNNER` (a command and its arguments, such as `qemu-aarch64 -L
/// /usr/aarch64-linux-gnu`), or `None` to run it directly.
#[allow(dead_code)]
pub fn runner() -> Option<Vec<String>> {
    let words: Vec<String> = std::env::var("EXO_DISCOVERY_TEST_RUNNER")
        .ok()?
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    (!words.is_empty()).then_some(words)
}

/// A command that runs [`bin_path`], through [`runner`] when one is set.
#[allow(dead_code)]
pub fn bin() -> std::process::Command {
    match runner() {
        Some(words) => {
            let mut cmd = std::process::Command::new(&words[0]);
            cmd.args(&words[1..]).arg(bin_path());
            cmd
        }
        None => std::process::Command::new(bin_path()),
    }
}
