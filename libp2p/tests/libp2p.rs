//! Real libp2p nodes on namespace hosts: nodes fed by their agents through
//! `exo_discovery_libp2p::Behaviour` (the `libp2p_node` example, and a swarm in this process) find
//! and connect to each other, outlive a restart of their agent, follow a node's restart on a new
//! port, and dial a peer by its peer ID alone; a stock libp2p-mdns node (`stock_mdns_node`) and an
//! agent's node see each other. Needs root, the agent's binary and the example binaries (`cargo
//! test` at the workspace root builds them all before it runs a test; `cargo test -p
//! exo-discovery-libp2p` builds the examples, not the agent); skips with one line where
//! namespaces cannot be made. One test needs neither: the behaviour against a scripted agent on a
//! Unix socket, with a swarm on loopback. The namespace harness is the agent's (`tests/common`).

// Linux only: it needs network namespaces and libp2p's transports (a Linux-only dev-dependency).
#![cfg(target_os = "linux")]

#[path = "../../tests/common/mod.rs"]
mod common;

use common::network::{net, Host, Net};
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long to wait for one expected line.
const WAIT: Duration = Duration::from_secs(30);

/// The path of an example binary built next to this test (target/<profile>/examples/<name>).
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test binary> → target/<profile>/examples/<name>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.is_file(),
        "example binary {} is missing: run `cargo build -p exo-discovery-libp2p --examples` first \
         (`cargo test --test libp2p` alone does not build examples)",
        path.display()
    );
    // `cargo test --test libp2p` rebuilds neither the agent nor the examples, and a build of the
    // agent alone leaves the examples as they were: say so when an example is older than the
    // agent (it may speak an older protocol).
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let agent = common::bin_path();
    if let (Some(ex), Some(agent_at)) = (mtime(&path), mtime(Path::new(agent))) {
        if ex < agent_at {
            eprintln!(
                "warning: {} is older than {agent}; if nodes misbehave, run `cargo build \
                 -p exo-discovery-libp2p --examples`",
                path.display(),
            );
        }
    }
    path
}

/// A running example node inside a host, its stdout lines collected with their arrival times.
struct Node {
    name: String,
    child: Option<Child>,
    rx: mpsc::Receiver<(Instant, String)>,
    /// Every stdout line so far.
    lines: Vec<(Instant, String)>,
    /// The node's stderr, kept in a file.
    err: PathBuf,
}

impl Node {
    /// Starts `ip netns exec <host> <bin> args…`.
    fn start(n: &Net, host: &Host, name: &str, bin: &Path, args: &[&OsStr]) -> Node {
        let err = unique(n.dir.join(format!("{name}.stderr")));
        let mut child = Command::new("ip")
            .args(["netns", "exec", &host.ns])
            .arg(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .spawn()
            .expect("spawn example node");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Node {
            name: name.to_owned(),
            child: Some(child),
            rx,
            lines: Vec::new(),
            err,
        }
    }

    /// Takes in whatever lines have arrived.
    fn pump(&mut self) {
        while let Ok(l) = self.rx.try_recv() {
            self.lines.push(l);
        }
    }

    /// Collects lines for `d`.
    fn drain(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(l) => self.lines.push(l),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(left);
                    break;
                }
            }
        }
    }

    /// Waits up to `timeout` for a line at index `from` or later matching `pred`; its index.
    fn wait_from(
        &mut self,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        let mut i = from;
        loop {
            while i < self.lines.len() {
                if pred(&self.lines[i].1) {
                    return Some(i);
                }
                i += 1;
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.rx.recv_timeout(left) {
                Ok(l) => self.lines.push(l),
                Err(mpsc::RecvTimeoutError::Timeout) => return None,
                // The node exited: nothing more will come.
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// As [`Node::wait_from`], panicking with the node's output when nothing matches.
    fn expect_from(&mut self, from: usize, what: &str, pred: impl Fn(&str) -> bool) -> usize {
        match self.wait_from(from, WAIT, pred) {
            Some(i) => i,
            None => {
                let dump = self.dump();
                panic!("{}: no {what} within {WAIT:?}\n{dump}", self.name)
            }
        }
    }

    /// The value after `prefix ` on the first line starting with it (waits for it).
    fn value(&mut self, prefix: &str) -> String {
        let p = format!("{prefix} ");
        let i = self.expect_from(0, prefix, |l| l.starts_with(&p));
        self.lines[i].1[p.len()..].to_owned()
    }

    /// Ports of this node's `listening` lines.
    fn listen_ports(&mut self) -> BTreeSet<u16> {
        self.pump();
        self.lines
            .iter()
            .filter_map(|(_, l)| l.strip_prefix("listening "))
            .filter_map(tcp_port)
            .collect()
    }

    /// Stdout and stderr so far, for failure messages.
    fn dump(&mut self) -> String {
        self.pump();
        let out: Vec<&str> = self.lines.iter().map(|(_, l)| l.as_str()).collect();
        let err = std::fs::read_to_string(&self.err).unwrap_or_default();
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{err}",
            self.name,
            out.join("\n"),
            self.name
        )
    }

    /// SIGINT (as ^C would), then a kill after 5 s; waits for the exit and returns its status.
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `path`, or `path.N` when a file of that name exists already.
fn unique(path: PathBuf) -> PathBuf {
    let mut p = path.clone();
    let mut i = 1;
    while p.exists() {
        p = PathBuf::from(format!("{}.{i}", path.display()));
        i += 1;
    }
    p
}

/// The TCP port of a multiaddr string (`…/tcp/<port>…`).
fn tcp_port(ma: &str) -> Option<u16> {
    let mut parts = ma.split('/');
    parts.find(|p| *p == "tcp")?;
    parts.next()?.parse().ok()
}

/// Whether `line` names TCP port `port` (`/tcp/<port>/` or at the end of the line).
fn has_port(line: &str, port: u16) -> bool {
    format!("{line}/").contains(&format!("/tcp/{port}/"))
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

#[test]
fn three_nodes_fed_by_their_agents_connect_outlive_an_agent_restart_and_follow_a_node_restart() {
    let test = "three_nodes_fed_by_their_agents_connect_outlive_an_agent_restart_and_follow_a_node_restart";
    let Some(mut n) = net(test) else {
        return;
    };
    let bin = example("libp2p_node");
    let l = n.link();
    let mut hosts = Vec::new();
    let mut agents = Vec::new();
    for i in 1..=3 {
        let h = n.host(&format!("h{i}"));
        n.attach(
            &h,
            "eth0",
            &l,
            &[&format!("10.80.0.{i}/24"), &format!("fd80::{i}/64")],
        );
        agents.push(n.agent(&h, &format!("agent-{i}"), &[]));
        hosts.push(h);
    }
    // Nodes 1 and 2 get keys from `keygen`; node 3 makes its own key file.
    let (key1, kid1) = n.keygen("node-1");
    let (key2, kid2) = n.keygen("node-2");
    let key3 = n.dir.join("node-3.key");
    let keys = [key1, key2, key3];

    let start = |n: &Net, i: usize| {
        Node::start(
            n,
            &hosts[i],
            &format!("node-{}", i + 1),
            &bin,
            &[
                os("--socket"),
                agents[i].socket.as_os_str(),
                os("--key"),
                keys[i].as_os_str(),
            ],
        )
    };
    let t0 = Instant::now();
    let mut nodes: Vec<Node> = (0..3).map(|i| start(&n, i)).collect();
    let ids: Vec<String> = nodes.iter_mut().map(|x| x.value("peer-id")).collect();
    assert_eq!(ids[0], kid1, "node 1 does not use its key file");
    assert_eq!(ids[1], kid2, "node 2 does not use its key file");
    assert!(keys[2].exists(), "node 3 did not write its key file");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&keys[2]).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "node 3's new key file is not owner-only");
    }
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 3, "peer IDs are not distinct: {ids:?}");
    let mut all_registered = t0;
    for node in nodes.iter_mut() {
        let k = node.expect_from(0, "`registered`", |l| l == "registered");
        all_registered = all_registered.max(node.lines[k].0);
    }

    // Everyone connects to everyone.
    let mut all_connected = t0;
    for (i, node) in nodes.iter_mut().enumerate() {
        for (j, id) in ids.iter().enumerate() {
            if i == j {
                continue;
            }
            let p = format!("connected {id} ");
            let k = node.expect_from(0, &format!("connection to node-{}", j + 1), |l| {
                l.starts_with(&p)
            });
            all_connected = all_connected.max(node.lines[k].0);
        }
    }
    println!(
        "three libp2p nodes: first node started → all connected: {:?} (all registered: {:?})",
        all_connected - t0,
        all_registered - t0
    );
    // The peer ID on `connected` is the noise-authenticated one: always one of the others.
    for (i, node) in nodes.iter_mut().enumerate() {
        node.drain(Duration::from_millis(500));
        let dump = node.dump();
        for (_, line) in &node.lines {
            if let Some(rest) = line.strip_prefix("connected ") {
                let peer = rest.split(' ').next().unwrap_or_default();
                assert!(
                    ids.iter().enumerate().any(|(j, id)| j != i && id == peer),
                    "node-{} connected to {peer}, not one of the other nodes {ids:?}\n{dump}",
                    i + 1
                );
            }
        }
    }

    // Host 1's agent is killed (no goodbye; its socket file stays behind) and, a moment later,
    // started again. Meanwhile node 4 starts on host 1, with no agent to register with.
    let marks = lines_so_far(&mut nodes);
    let t_kill = Instant::now();
    n.kill_agent(&agents[0]);
    let k = nodes[0].expect_from(marks[0], "`agent-lost`", |l| l.starts_with("agent-lost "));
    let noticed = nodes[0].lines[k].0 - t_kill;
    let key4 = n.dir.join("node-4.key");
    let mut node4 = Node::start(
        &n,
        &hosts[0],
        "node-4",
        &bin,
        &[
            os("--socket"),
            agents[0].socket.as_os_str(),
            os("--key"),
            key4.as_os_str(),
        ],
    );
    let id4 = node4.value("peer-id");
    node4.expect_from(0, "`listening`", |l| l.starts_with("listening "));
    node4.drain(Duration::from_millis(500));
    assert!(
        !node4.lines.iter().any(|(_, l)| l == "registered"),
        "node 4 registered with no agent running\n{}",
        node4.dump()
    );
    let t_start = Instant::now();
    let agent1 = n.agent(&hosts[0], "agent-1", &[]);
    wait_for_agent(&agent1.socket);
    let t_up = Instant::now();
    // Node 1 reconnects and registers again; node 4 registers for the first time.
    let k = nodes[0].expect_from(marks[0], "`agent-connected` after the restart", |l| {
        l.starts_with("agent-connected ")
    });
    let (reconnected, first_listed) = (nodes[0].lines[k].0, nodes[0].lines[k].1.clone());
    let k = nodes[0].expect_from(k, "`registered` after the agent's restart", |l| {
        l == "registered"
    });
    let reregistered = nodes[0].lines[k].0;
    let k = node4.expect_from(0, "`registered` once the agent is back", |l| {
        l == "registered"
    });
    let registered4 = node4.lines[k].0;
    // The restarted agent has nodes 2 and 3 again: node 1 is told of them.
    let peers_back = loop {
        let listed: Vec<String> = n
            .peers(&agent1)
            .iter()
            .filter_map(|v| v["peer_id"].as_str().map(str::to_owned))
            .collect();
        if ids[1..].iter().all(|id| listed.contains(id)) {
            break Instant::now();
        }
        assert!(
            t_start.elapsed() < WAIT,
            "the restarted agent never found nodes 2 and 3 again: {listed:?}\n{}",
            std::fs::read_to_string(&agent1.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // Nodes 2 and 3 find node 4, started while the agent was away.
    let mut found4 = Vec::new();
    for (i, node) in nodes.iter_mut().enumerate().skip(1) {
        let p = format!("connected {id4} ");
        let k = node.expect_from(marks[i], "connection to node-4", |l| l.starts_with(&p));
        found4.push(node.lines[k].0 - t_start);
    }
    // The connections among nodes 1-3 stayed up, and node 1 forgot none of its peers.
    for (i, node) in nodes.iter_mut().enumerate() {
        node.drain(Duration::from_millis(300));
        let dump = node.dump();
        for (_, line) in &node.lines[marks[i]..] {
            let closed =
                line.starts_with("closed ") && ids.iter().any(|id| line.contains(id.as_str()));
            let expired =
                line.starts_with("expired ") && ids.iter().any(|id| line.contains(id.as_str()));
            assert!(
                !closed && !expired,
                "node-{} across the agent's restart: {line}\n{dump}",
                i + 1
            );
        }
    }
    println!(
        "agent of host 1 killed: node 1 noticed after {noticed:?}; agent started again {:?} after \
         the kill, answering {:?} later; node 1 reconnected {:?} after the start ({first_listed}) \
         and registered {:?} after it; the agent listed nodes 2 and 3 again {:?} after the kill \
         ({:?} after the start); node 4 (started during the outage) registered {:?} and was \
         connected to by nodes 2 and 3 {found4:?} after the start; no connection among nodes 1-3 \
         closed, nothing expired",
        t_start - t_kill,
        t_up - t_start,
        reconnected - t_start,
        reregistered - t_start,
        peers_back - t_kill,
        peers_back - t_start,
        registered4 - t_start,
    );

    // Restart node 1 with the same key: it comes back on new ports.
    let old_ports = nodes[0].listen_ports();
    assert!(!old_ports.is_empty(), "{}", nodes[0].dump());
    let marks = lines_so_far(&mut nodes);
    let status = nodes[0].stop().expect("node 1 was running");
    assert!(status.success(), "node 1 exited with {status} on SIGINT");
    let t_restart = Instant::now();
    nodes[0] = start(&n, 0);
    assert_eq!(nodes[0].value("peer-id"), ids[0], "node 1 changed identity");
    nodes[0].expect_from(0, "`registered` after the restart", |l| l == "registered");
    let new_ports = nodes[0].listen_ports();
    assert!(
        new_ports.is_disjoint(&old_ports),
        "node 1 got an old port again ({old_ports:?} → {new_ports:?}); this run proves nothing"
    );
    let id1 = ids[0].clone();
    for (i, node) in nodes.iter_mut().enumerate().skip(1) {
        // Either side may dial first (the restarted node learns of the others before they learn
        // its new ports): any connection after the mark is to the new process, the old one
        // having exited.
        let p = format!("connected {id1} ");
        let k = node.expect_from(marks[i], "connection to the restarted node-1", |l| {
            l.starts_with(&p) && !old_ports.iter().any(|port| has_port(l, *port))
        });
        println!(
            "node-{} connected to the restarted node-1 {:?} after its restart",
            i + 1,
            node.lines[k].0 - t_restart
        );
        // The first update naming only new ports; after it, nothing dials an old port.
        let u = format!("update {id1} ");
        let first_new = node.expect_from(marks[i], "update with only the new ports", |l| {
            l.starts_with(&u)
                && new_ports.iter().any(|port| has_port(l, *port))
                && !old_ports.iter().any(|port| has_port(l, *port))
        });
        node.drain(Duration::from_secs(2));
        let dump = node.dump();
        for (_, line) in &node.lines[first_new + 1..] {
            if line.starts_with("dialing ") {
                assert!(
                    !old_ports.iter().any(|port| has_port(line, *port)),
                    "node-{} dialed an old port of node-1 after the update: {line}\n{dump}",
                    i + 1
                );
            }
        }
    }
    // EXO_LIBP2P_DUMP=1 (with --nocapture) shows what the nodes printed.
    if std::env::var_os("EXO_LIBP2P_DUMP").is_some() {
        for node in nodes.iter_mut() {
            println!("{}", node.dump());
        }
    }
    nodes.push(node4);
    for node in nodes.iter_mut() {
        let name = node.name.clone();
        let status = node.stop().expect("running");
        assert!(status.success(), "{name} exited with {status} on SIGINT");
    }
}

/// How many lines each node has printed so far.
fn lines_so_far(nodes: &mut [Node]) -> Vec<usize> {
    nodes
        .iter_mut()
        .map(|x| {
            x.pump();
            x.lines.len()
        })
        .collect()
}

/// Waits until an agent answers at `socket` (a killed agent's socket file may still be there).
fn wait_for_agent(socket: &Path) {
    let deadline = Instant::now() + WAIT;
    while let Err(e) = exo_discovery::client::Client::connect(socket) {
        assert!(
            Instant::now() < deadline,
            "no agent answers at {}: {e}",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn stock_libp2p_mdns_node_sees_agent_node_and_agent_sees_it() {
    let Some(mut n) = net("stock_libp2p_mdns_node_sees_agent_node_and_agent_sees_it") else {
        return;
    };
    let agent_node = example("libp2p_node");
    let stock_node = example("stock_mdns_node");
    let l = n.link();
    let a = n.host("a");
    let b = n.host("b");
    n.attach(&a, "eth0", &l, &["10.80.0.1/24", "fd80::1/64"]);
    n.attach(&b, "eth0", &l, &["10.80.0.2/24", "fd80::2/64"]);
    let agent = n.agent(&a, "agent-a", &["--accept-unsigned"]);
    let key_a = n.dir.join("node-a.key");
    let key_b = n.dir.join("node-b.key");
    let mut na = Node::start(
        &n,
        &a,
        "node-a",
        &agent_node,
        &[
            os("--socket"),
            agent.socket.as_os_str(),
            os("--key"),
            key_a.as_os_str(),
        ],
    );
    let mut nb = Node::start(
        &n,
        &b,
        "stock-b",
        &stock_node,
        &[os("--key"), key_b.as_os_str()],
    );
    let id_a = na.value("peer-id");
    let id_b = nb.value("peer-id");
    na.expect_from(0, "`registered`", |l| l == "registered");

    // B's stock libp2p mDNS finds A's node, at one of A's addresses.
    let p = format!("discovered {id_a} ");
    let k = nb.expect_from(0, "discovery of the agent's node", |l| {
        l.starts_with(&p) && (l.contains("/10.80.0.1/") || l.contains("/fd80::1/"))
    });
    println!("stock node B: {}", nb.lines[k].1);

    // A's agent hears B's stock node: unsigned, marked as libp2p-mdns.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let peers = n.peers(&agent);
        if let Some(v) = peers.iter().find(|v| v["peer_id"] == id_b.as_str()) {
            assert_eq!(v["source"], "libp2p-mdns", "{v}");
            let verified = v["verified"].as_array().cloned().unwrap_or_default();
            assert!(
                !verified.iter().any(|x| x == "signature"),
                "an unsigned peer claims a signature: {v}"
            );
            println!("agent on A lists B: {v}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "agent on A never listed the stock node {id_b}: {peers:?}\n{}\n{}",
            std::fs::read_to_string(&agent.log).unwrap_or_default(),
            nb.dump()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    drop((na, nb));
}

#[test]
fn a_swarm_dials_a_peer_by_its_peer_id_alone() {
    let Some(mut n) = net("a_swarm_dials_a_peer_by_its_peer_id_alone") else {
        return;
    };
    let bin = example("libp2p_node");
    let l = n.link();
    let (a, b) = (n.host("a"), n.host("b"));
    n.attach(&a, "eth0", &l, &["10.80.0.1/24", "fd80::1/64"]);
    n.attach(&b, "eth0", &l, &["10.80.0.2/24", "fd80::2/64"]);
    let agent_a = n.agent(&a, "agent-a", &[]);
    let agent_b = n.agent(&b, "agent-b", &[]);
    let key_b = n.dir.join("node-b.key");
    let mut nb = Node::start(
        &n,
        &b,
        "node-b",
        &bin,
        &[
            os("--socket"),
            agent_b.socket.as_os_str(),
            os("--key"),
            key_b.as_os_str(),
        ],
    );
    let id_b = nb.value("peer-id");
    nb.expect_from(0, "`registered`", |l| l == "registered");
    let socket = agent_a.socket.clone();
    match n.in_ns(&a, move || dial_by_peer_id(&socket, &id_b)) {
        Ok(report) => println!("swarm on host a: {report}"),
        Err(e) => panic!(
            "{e}\n{}\n{}",
            nb.dump(),
            std::fs::read_to_string(&agent_a.log).unwrap_or_default()
        ),
    }
}

/// A swarm in this thread's namespace, fed by the agent at `socket`, and not listening (so no
/// agent announces it and nobody dials it): it dials `peer` by its peer ID alone, once before the
/// agent names it (no address: refused) and once after.
fn dial_by_peer_id(socket: &Path, peer: &str) -> Result<String, String> {
    use ::libp2p::futures::StreamExt;
    use ::libp2p::swarm::{DialError, SwarmEvent};
    use ::libp2p::{noise, tcp, yamux, PeerId};
    use exo_discovery_libp2p::{Behaviour, Event};

    let peer: PeerId = peer.parse().map_err(|e| format!("peer ID {peer}: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async move {
        let mut swarm = ::libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| format!("noise: {e}"))?
            .with_behaviour(|key| Behaviour::new(key, socket))
            .map_err(|e| format!("behaviour: {e}"))?
            .build();
        match swarm.dial(peer) {
            Err(DialError::NoAddresses) => {}
            other => return Err(format!("dial before discovery: {other:?}, not NoAddresses")),
        }
        let t0 = Instant::now();
        let timeout = tokio::time::sleep(WAIT);
        tokio::pin!(timeout);
        let mut discovered = None;
        loop {
            tokio::select! {
                ev = swarm.select_next_some() => match ev {
                    SwarmEvent::Behaviour(Event::Discovered(pairs))
                        if discovered.is_none() && pairs.iter().any(|(p, _)| *p == peer) =>
                    {
                        discovered = Some(t0.elapsed());
                        // No address given: the swarm asks the behaviour.
                        swarm.dial(peer).map_err(|e| format!("dial({peer}): {e}"))?;
                    }
                    SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } if peer_id == peer => {
                        if !endpoint.is_dialer() {
                            return Err(format!("{peer} dialled this swarm, not the other way"));
                        }
                        return Ok(format!(
                            "{peer} discovered after {discovered:?}, dialled by peer ID and \
                             connected at {} after {:?}",
                            endpoint.get_remote_address(),
                            t0.elapsed()
                        ));
                    }
                    SwarmEvent::OutgoingConnectionError { error, .. } => {
                        return Err(format!("the dial by peer ID failed: {error}"));
                    }
                    _ => {}
                },
                _ = &mut timeout => {
                    return Err(format!("no connection to {peer} within {WAIT:?} (discovered: {discovered:?})"));
                }
            }
        }
    })
}

/// What the scripted agent of [`the_behaviour_against_a_scripted_agent`] saw.
#[derive(Debug)]
enum Seen {
    /// A connection passed the handshake (how many so far).
    Connected(usize),
    /// A registration: its seq and addresses.
    Registered(u64, Vec<String>),
}

/// A scripted agent on a local socket: it welcomes every connection, answers `Subscribe` with
/// `snapshot`, verifies and accepts registrations, and writes whatever `inject` is given on the
/// latest connection.
struct ScriptedAgent {
    seen: mpsc::Receiver<Seen>,
    inject: std::sync::Arc<std::sync::Mutex<Option<std::os::unix::net::UnixStream>>>,
}

impl ScriptedAgent {
    fn start(path: &Path, snapshot: Vec<exo_discovery::protocol::PeerInfo>) -> ScriptedAgent {
        use exo_discovery::protocol::{self, AgentMsg, ClientMsg};
        use std::io::{Read, Write};
        let listener = std::os::unix::net::UnixListener::bind(path).expect("bind");
        let (tx, seen) = mpsc::channel();
        let inject = std::sync::Arc::new(std::sync::Mutex::new(None));
        let latest = inject.clone();
        std::thread::spawn(move || {
            for (n, conn) in listener.incoming().enumerate() {
                let Ok(mut conn) = conn else { return };
                *latest.lock().unwrap() = conn.try_clone().ok();
                let (tx, snapshot) = (tx.clone(), snapshot.clone());
                std::thread::spawn(move || loop {
                    let mut prefix = [0u8; 4];
                    if conn.read_exact(&mut prefix).is_err() {
                        return;
                    }
                    let mut body = vec![0; protocol::body_len(prefix).expect("frame size")];
                    conn.read_exact(&mut body).expect("frame body");
                    let reply =
                        match protocol::decode::<ClientMsg>(&body).expect("a client message") {
                            ClientMsg::Hello { .. } => {
                                let _ = tx.send(Seen::Connected(n + 1));
                                AgentMsg::Welcome {
                                    version: protocol::PROTOCOL_VERSION,
                                    namespace: "exo".into(),
                                }
                            }
                            ClientMsg::Subscribe => AgentMsg::Snapshot(snapshot.clone()),
                            ClientMsg::Register { signed_record } => {
                                let rec = exo_discovery::record::verify(&signed_record, "exo")
                                    .expect("a valid record");
                                let addrs = rec.addrs.iter().map(|a| a.to_string()).collect();
                                let _ = tx.send(Seen::Registered(rec.seq, addrs));
                                AgentMsg::Registered {
                                    peer_id: rec.peer_id.to_string(),
                                }
                            }
                            other => panic!("unexpected {other:?}"),
                        };
                    if conn.write_all(&protocol::encode(&reply)).is_err() {
                        return;
                    }
                });
            }
        });
        ScriptedAgent { seen, inject }
    }

    /// Writes `bytes` on the latest connection.
    fn send(&self, bytes: &[u8]) {
        use std::io::Write;
        let mut conn = self.inject.lock().unwrap();
        conn.as_mut()
            .expect("a connection")
            .write_all(bytes)
            .expect("write");
    }
}

/// The behaviour against a scripted agent on a Unix socket and a swarm on loopback (no root, no
/// namespace): one registration per burst of listen addresses, `Discovered` / `Expired` from a
/// snapshot and an update, the swarm's addresses for a peer, garbage from the agent survived by
/// reconnecting and registering again with a higher seq, and a removed listener registered.
#[test]
fn the_behaviour_against_a_scripted_agent() {
    use ::libp2p::futures::StreamExt;
    use ::libp2p::swarm::SwarmEvent;
    use ::libp2p::{noise, tcp, yamux, Multiaddr, PeerId};
    use exo_discovery::protocol::{self, AgentMsg, EventKind, PeerEvent, PeerInfo, Source};
    use exo_discovery_libp2p::{Behaviour, Config, Event};

    let dir = std::env::temp_dir().join(format!("exo-discovery-scripted-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let path = dir.join("agent.sock");
    let b = PeerId::random();
    let info = |port: u16| PeerInfo {
        peer_id: b.to_string(),
        addrs: vec![format!("/ip4/127.0.0.1/tcp/{port}")],
        interfaces: vec!["lo".into()],
        source: Source::Mdns,
        verified: vec![],
        seq: u64::from(port),
    };
    let on = |port: u16| -> Multiaddr {
        format!("/ip4/127.0.0.1/tcp/{port}/p2p/{b}")
            .parse()
            .unwrap()
    };
    let agent = ScriptedAgent::start(&path, vec![info(9)]);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut swarm = ::libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .expect("noise")
            .with_behaviour(|key| {
                Behaviour::with_config(
                    key,
                    Config::default()
                        .with_socket(&path)
                        .with_register_delay(Duration::from_millis(100)),
                )
            })
            .expect("behaviour")
            .build();
        let mut seen = Vec::new();
        let mut events = Vec::new();
        // Runs the swarm until `done` holds for what the agent saw and what the swarm reported.
        macro_rules! until {
            ($what:expr, $done:expr) => {{
                let deadline = Instant::now() + WAIT;
                loop {
                    while let Ok(s) = agent.seen.try_recv() {
                        seen.push(s);
                    }
                    if $done(&seen, &events) {
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "{}: agent saw {seen:?}, swarm reported {events:?}",
                        $what
                    );
                    tokio::select! {
                        ev = swarm.select_next_some() => {
                            if let SwarmEvent::Behaviour(e) = ev {
                                events.push(e);
                            }
                        }
                        _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                    }
                }
            }};
        }
        let registrations = |seen: &Vec<Seen>| -> Vec<(u64, Vec<String>)> {
            seen.iter()
                .filter_map(|s| match s {
                    Seen::Registered(seq, a) => Some((*seq, a.clone())),
                    _ => None,
                })
                .collect()
        };

        // Two listeners at once: one registration of both addresses.
        let first = swarm
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .unwrap();
        swarm
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .unwrap();
        until!("the first registration", |s: &Vec<Seen>, _: &Vec<Event>| {
            !registrations(s).is_empty()
        });
        let t = Instant::now();
        until!("nothing more", |_: &Vec<Seen>, _: &Vec<Event>| t.elapsed()
            > Duration::from_millis(500));
        let regs = registrations(&seen);
        assert_eq!(regs.len(), 1, "one registration per burst: {regs:?}");
        assert_eq!(regs[0].1.len(), 2, "both addresses: {regs:?}");

        // The snapshot's peer, its address with /p2p/ added, and the swarm's addresses for it.
        until!("the snapshot's peer", |_: &Vec<Seen>, e: &Vec<Event>| !e
            .is_empty());
        assert!(
            matches!(&events[0], Event::Discovered(p) if *p == [(b, on(9))]),
            "{events:?}"
        );
        assert_eq!(swarm.behaviour().addresses_of_peer(&b), [on(9)]);

        // An update to a new port of the same family: the new discovered, the old expired.
        agent.send(&protocol::encode(&AgentMsg::Event(PeerEvent {
            event: EventKind::Updated,
            peer: info(10),
        })));
        until!("the update", |_: &Vec<Seen>, e: &Vec<Event>| e.len() >= 3);
        assert!(
            matches!(&events[1], Event::Discovered(p) if *p == [(b, on(10))]),
            "{events:?}"
        );
        assert!(
            matches!(&events[2], Event::Expired(p) if *p == [(b, on(9))]),
            "{events:?}"
        );

        // Garbage: a frame larger than allowed. The behaviour reconnects and registers again.
        agent.send(&u32::MAX.to_be_bytes());
        until!(
            "a second connection and registration",
            |s: &Vec<Seen>, _: &Vec<Event>| {
                s.iter().any(|x| matches!(x, Seen::Connected(2))) && registrations(s).len() == 2
            }
        );
        let regs = registrations(&seen);
        assert!(regs[1].0 > regs[0].0, "the seq did not grow: {regs:?}");
        assert_eq!(regs[1].1, regs[0].1);

        // A listener closed: registered again without its address. The snapshot after the
        // reconnection (port 9 again) holds port 10 for the grace instead of expiring it.
        swarm.remove_listener(first);
        until!("the registration after a listener closed", |s: &Vec<
            Seen,
        >,
                                                            _: &Vec<
            Event,
        >| {
            registrations(s).len() == 3
        });
        assert_eq!(registrations(&seen)[2].1.len(), 1);
        assert!(
            !events[3..].iter().any(|e| matches!(e, Event::Expired(_))),
            "{events:?}"
        );
    });
    let _ = std::fs::remove_dir_all(&dir);
}
