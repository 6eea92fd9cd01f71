//! A real zenoh cluster (Python eclipse-zenoh sessions, as today's Exo nodes use zenoh) fed by the
//! agents' peers files in zenoh form. Runs in network namespaces (root; see `common::network`) with
//! nftables, and needs `python3 -c "import zenoh"` (`pip install eclipse-zenoh`): without it the
//! test says so in one line and skips, or fails with `EXO_DISCOVERY_REQUIRE_ZENOH=1`.
//!
//! Hosts A, B and C share one link. C's input drops multicast mDNS (as behind an access point that
//! does not deliver multicast to it), and C lists A as its only static host. Each host runs an
//! agent writing a zenoh-form peers file, a zenoh session in peer mode with multicast scouting and
//! gossip off that reads its `connect/endpoints` from that file once, at its start, and an
//! `announce` of the host's key with unspecified addresses on the zenoh port. The hosts start one
//! after another, each once its agent's file lists the hosts started before it, as a rolling start
//! of a cluster goes: the later sessions connect to the earlier ones, which accept them, and every
//! session ends up connected to both others.

// Linux only: it runs the agent in Linux network namespaces (`tests/common/network.rs`).
#![cfg(target_os = "linux")]

mod common;

use common::network::{net, Host, Net};
use common::tools::have_tool;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// The zenoh port of today's Exo.
const PORT: u16 = 52414;

/// Whether Python's eclipse-zenoh can be imported; if not, prints the one `SKIPPED` line, or fails
/// when `EXO_DISCOVERY_REQUIRE_ZENOH=1`.
fn have_zenoh(test: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import zenoh"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let why = "the Python package eclipse-zenoh is not installed (pip install eclipse-zenoh)";
        assert!(
            std::env::var("EXO_DISCOVERY_REQUIRE_ZENOH").map_or(true, |v| v != "1"),
            "{test}: {why}"
        );
        eprintln!("SKIPPED {test}: {why}");
    }
    ok
}

/// A zenoh session's printed lines, as the test waits for them.
struct Session {
    name: &'static str,
    rx: Receiver<(Instant, String)>,
    seen: Vec<String>,
}

impl Session {
    /// Starts `tests/tools/zenoh_node.py` in `host`, reading `peers_file`.
    fn start(n: &mut Net, host: &Host, name: &'static str, peers_file: &Path) -> Session {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/zenoh_node.py");
        let args = [
            script.to_str().expect("UTF-8 path"),
            peers_file.to_str().expect("UTF-8 path"),
            &PORT.to_string(),
        ];
        let rx = n.spawn_lines(host, Path::new("python3"), &args);
        Session {
            name,
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a line starting with `word `, and returns the rest of it.
    fn wait(&mut self, word: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let line = deadline
                .checked_duration_since(Instant::now())
                .and_then(|left| self.rx.recv_timeout(left).ok())
                .map(|(_, line)| line)
                .unwrap_or_else(|| {
                    panic!(
                        "zenoh session {}: no {word} line: {:?}",
                        self.name, self.seen
                    )
                });
            self.seen.push(line.clone());
            assert!(
                !line.starts_with("error "),
                "zenoh session {}: {line}",
                self.name
            );
            if let Some(rest) = line.strip_prefix(word).and_then(|l| l.strip_prefix(' ')) {
                if pred(rest) {
                    return rest.to_owned();
                }
            } else if line == word && pred("") {
                return String::new();
            }
        }
    }
}

/// Waits until the peers file at `path` exists and holds every endpoint in `want`.
fn file_listing(path: &Path, want: &[String]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let endpoints: Vec<&str> = text.trim().split(',').collect();
        if text.ends_with('\n') && want.iter().all(|w| endpoints.contains(&w.as_str())) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never listed {want:?}: {text:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn zenoh_sessions_started_one_after_another_connect_through_the_peers_files() {
    let test = "zenoh_sessions_started_one_after_another_connect_through_the_peers_files";
    if !have_zenoh(test) {
        return;
    }
    if !have_tool(test, "nft", "nft (nftables)") {
        assert!(
            std::env::var_os("EXO_DISCOVERY_REQUIRE_NETNS").is_none(),
            "{test}: nft missing"
        );
        return;
    }
    let Some(mut n) = net(test) else {
        return;
    };
    let l = n.link();
    let names = ["a", "b", "c"];
    let hosts: Vec<Host> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let h = n.host(name);
            n.attach(&h, "eth0", &l, &[&format!("10.57.0.{}/24", i + 1)]);
            h
        })
        .collect();
    let link_locals: Vec<String> = hosts.iter().map(|h| n.link_local(h, "eth0")).collect();
    // C hears no multicast mDNS: only what it asks A, its static host, by unicast.
    n.nft(
        &hosts[2].ns,
        &[
            "add table inet mute",
            "add chain inet mute in { type filter hook input priority 0 ; }",
            "add rule inet mute in meta pkttype multicast udp dport 5353 drop",
        ],
    );

    let start = Instant::now();
    let mut agents = Vec::new();
    let mut sessions = Vec::new();
    let mut zids = Vec::new();
    let mut files: Vec<PathBuf> = Vec::new();
    let mut _announcers = Vec::new();
    for (i, (host, name)) in hosts.iter().zip(names).enumerate() {
        let file = n.dir.join(format!("peers-{name}.txt"));
        let file_arg = file.to_str().expect("UTF-8 path").to_owned();
        let mut flags = vec!["--peers-file", &file_arg, "--peers-file-format", "zenoh"];
        if name == "c" {
            flags.extend(["--static-host", "10.57.0.1"]);
        }
        let agent = n.agent(host, &format!("agent-{name}"), &flags);
        // The hosts started before this one, as zenoh endpoints.
        let earlier: Vec<String> = (0..i)
            .map(|j| format!("tcp/10.57.0.{}:{PORT}", j + 1))
            .collect();
        file_listing(&file, &earlier);
        let mut session = Session::start(&mut n, host, name, &file);
        let endpoints = session.wait("endpoints", |_| true);
        let endpoints: Vec<&str> = endpoints.split(',').collect();
        assert!(
            earlier.iter().all(|e| endpoints.contains(&e.as_str())),
            "session {name} started with {endpoints:?}, not {earlier:?}"
        );
        let zid = session.wait("zid", |z| !z.is_empty());
        // The host's own key: the zenoh id changes at every start, the host's key does not.
        let (key, _) = n.keygen(&format!("host-{name}"));
        _announcers.push(n.announce(
            &agent,
            &key,
            &[
                format!("/ip4/0.0.0.0/tcp/{PORT}"),
                format!("/ip6/::/tcp/{PORT}"),
            ],
        ));
        agents.push(agent);
        sessions.push(session);
        zids.push(zid);
        files.push(file);
    }

    // Every session lists the two others: the later ones dialled the earlier ones.
    for (i, session) in sessions.iter_mut().enumerate() {
        let others: Vec<&String> = zids
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, z)| z)
            .collect();
        session.wait("peers", |list| {
            let list: Vec<&str> = list.split(',').collect();
            others.iter().all(|z| list.contains(&z.as_str()))
        });
    }
    eprintln!(
        "{test}: three zenoh sessions connected {} ms after the first agent started",
        start.elapsed().as_millis()
    );

    // What a user checks: each file names the other hosts by IPv4 and, where the agent hands out
    // their link-local address (A and B hear each other by mDNS), by that address with the
    // interface as zenoh takes it. (C's session dialled A and B itself: their agents may list C
    // a moment later.)
    for (i, file) in files.iter().enumerate() {
        let mut want: Vec<String> = (0..3)
            .filter(|j| *j != i)
            .map(|j| format!("tcp/10.57.0.{}:{PORT}", j + 1))
            .collect();
        if i < 2 {
            want.push(format!("tcp/[{}]:{PORT}#iface=eth0", link_locals[1 - i]));
        }
        file_listing(file, &want);
        let text = std::fs::read_to_string(file).expect("peers file");
        println!("{}: {}", file.display(), text.trim());
    }
    // `peers --format zenoh` prints what the file holds (once both have the latest change: the
    // file is written just after it).
    for (agent, file) in agents.iter().zip(&files) {
        let deadline = Instant::now() + WAIT;
        loop {
            let out = Command::new(common::bin_path())
                .args(["peers", "--format", "zenoh", "--socket"])
                .arg(&agent.socket)
                .output()
                .expect("peers --format zenoh");
            assert!(out.status.success(), "{out:?}");
            let printed = String::from_utf8_lossy(&out.stdout).into_owned();
            let text = std::fs::read_to_string(file).expect("peers file");
            if printed == text {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "peers --format zenoh printed {printed:?}, {} holds {text:?}",
                file.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // And multicast really was dropped at C: its agent had everything by unicast from A.
    for p in n.peers(&agents[2]) {
        assert_ne!(p["source"], "mdns", "multicast got through to C: {p}");
    }
}
