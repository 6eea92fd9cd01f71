//! Test network made of Linux network namespaces: hosts, links (bridges in a private "switch"
//! namespace), agents, announcers and watchers running the real binary. Nothing leaves the
//! namespaces this harness creates; all of them are deleted on drop.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, SocketAddrV6, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_exo-discovery");

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One simulated host: a network namespace.
#[derive(Clone, Debug)]
pub struct Host {
    /// The namespace name.
    pub ns: String,
}

/// A running agent.
pub struct Agent {
    /// Its socket.
    pub socket: PathBuf,
    /// Its stderr log file.
    pub log: PathBuf,
    child: usize,
}

/// A running `announce`.
pub struct Announce {
    child: usize,
}

/// The network and everything running in it.
pub struct Net {
    id: String,
    switch: String,
    namespaces: Vec<String>,
    /// Scratch directory of this test.
    pub dir: PathBuf,
    children: Vec<Option<Child>>,
    veths: u32,
    bridges: u32,
}

/// A fresh network, or `None` (after printing why) where namespaces cannot be made. With
/// `EXO_DISCOVERY_REQUIRE_NETNS=1` (as in CI) a machine that cannot make them fails instead.
pub fn net(test: &str) -> Option<Net> {
    let required = std::env::var("EXO_DISCOVERY_REQUIRE_NETNS").is_ok_and(|v| v == "1");
    let skip = |why: String| {
        assert!(!required, "{test}: {why}");
        eprintln!("SKIPPED {test}: {why}");
        None
    };
    if !nix::unistd::geteuid().is_root() {
        return skip("network namespace tests need root".into());
    }
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let id = format!("x{:x}{n}", std::process::id() & 0xfff);
    let switch = format!("{id}sw");
    match Command::new("ip").args(["netns", "add", &switch]).output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return skip(format!(
                "cannot create a network namespace: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
        Err(e) => return skip(format!("cannot run `ip` (iproute2): {e}")),
    }
    let dir = std::env::temp_dir().join(format!("exo-discovery-test-{id}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    Some(Net {
        id,
        switch: switch.clone(),
        namespaces: vec![switch],
        dir,
        children: Vec::new(),
        veths: 0,
        bridges: 0,
    })
}

/// Whether `tool` runs here; if not, prints the one `SKIPPED` line for `test` (`what` names the
/// package).
pub fn have_tool(test: &str, tool: &str, what: &str) -> bool {
    if Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
    {
        return true;
    }
    eprintln!("SKIPPED {test}: {what} is not installed");
    false
}

impl Net {
    /// Applies nftables commands inside the namespace `ns` (a host's, or [`Net::switch_ns`]).
    pub fn nft(&self, ns: &str, rules: &[&str]) {
        for rule in rules {
            let out = Command::new("ip")
                .args(["netns", "exec", ns, "nft", rule])
                .output()
                .expect("ip netns exec nft");
            assert!(out.status.success(), "nft {rule}: {out:?}");
        }
    }

    /// Makes every link drop mDNS multicast frames (IPv4 and IPv6) at the switch, as an isolating
    /// access point does.
    pub fn block_multicast(&self) {
        self.nft(
            &self.switch,
            &[
                "add table bridge iso",
                "add chain bridge iso pass { type filter hook forward priority 0 ; }",
                "add rule bridge iso pass ether daddr 01:00:5e:00:00:fb drop",
                "add rule bridge iso pass ether daddr 33:33:00:00:00:fb drop",
            ],
        );
    }

    /// A new link (an L2 segment): a bridge in the switch namespace, multicast snooping off.
    pub fn link(&mut self) -> String {
        self.bridges += 1;
        let br = format!("br{}", self.bridges);
        ip(&["-n", &self.switch, "link", "add", &br, "type", "bridge"]);
        ip(&[
            "-n",
            &self.switch,
            "link",
            "set",
            &br,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        ip(&["-n", &self.switch, "link", "set", &br, "up"]);
        br
    }

    /// A new host with loopback up and IPv6 duplicate address detection off (addresses usable at once).
    pub fn host(&mut self, name: &str) -> Host {
        let ns = format!("{}{name}", self.id);
        ip(&["netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        for key in ["all", "default"] {
            let out = Command::new("ip")
                .args(["netns", "exec", &ns, "sysctl", "-qw"])
                .arg(format!("net.ipv6.conf.{key}.accept_dad=0"))
                .output()
                .expect("sysctl");
            assert!(out.status.success(), "sysctl: {:?}", out);
        }
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        Host { ns }
    }

    /// Plugs `host` into `link` as interface `ifname`, with these addresses (CIDR). The interface
    /// always gets an IPv6 link-local address.
    pub fn attach(&mut self, host: &Host, ifname: &str, link: &str, addrs: &[&str]) {
        self.veths += 1;
        let veth = format!("{}v{}", self.id, self.veths);
        ip(&[
            "-n",
            &self.switch,
            "link",
            "add",
            &veth,
            "type",
            "veth",
            "peer",
            "name",
            ifname,
            "netns",
            &host.ns,
        ]);
        ip(&[
            "-n",
            &self.switch,
            "link",
            "set",
            &veth,
            "master",
            link,
            "up",
        ]);
        ip(&["-n", &host.ns, "link", "set", ifname, "up"]);
        for a in addrs {
            ip(&["-n", &host.ns, "addr", "add", a, "dev", ifname]);
        }
    }

    /// The switch namespace, where the bridges live.
    pub fn switch_ns(&self) -> String {
        self.switch.clone()
    }

    /// Runs `ip` inside the host.
    pub fn ip_in(&self, host: &Host, args: &[&str]) {
        let mut all = vec!["-n", host.ns.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// Runs a command inside the host and returns its output.
    pub fn exec(&self, host: &Host, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &host.ns])
            .args(args)
            .output()
            .expect("ip netns exec")
    }

    /// The IPv6 link-local address of `ifname` in `host`.
    pub fn link_local(&self, host: &Host, ifname: &str) -> String {
        let out = Command::new("ip")
            .args([
                "-n", &host.ns, "-6", "-o", "addr", "show", "dev", ifname, "scope", "link",
            ])
            .output()
            .expect("ip addr");
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .skip_while(|w| *w != "inet6")
            .nth(1)
            .and_then(|a| a.split('/').next())
            .unwrap_or_else(|| panic!("no link-local address on {ifname}: {text}"))
            .to_owned()
    }

    fn spawn(&mut self, mut cmd: Command) -> usize {
        let child = cmd.spawn().expect("spawn");
        self.children.push(Some(child));
        self.children.len() - 1
    }

    /// Starts an agent in `host` with extra flags, and waits for its socket.
    pub fn agent(&mut self, host: &Host, name: &str, extra: &[&str]) -> Agent {
        self.agent_via(host, name, extra, &[], &self.dir.clone())
    }

    /// Starts an agent in `host` through `wrapper` (e.g. `setpriv --reuid …`), its socket in `dir`.
    pub fn agent_via(
        &mut self,
        host: &Host,
        name: &str,
        extra: &[&str],
        wrapper: &[&str],
        dir: &Path,
    ) -> Agent {
        let socket = dir.join(format!("{name}.sock"));
        let log = self.dir.join(format!("{name}.log"));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &host.ns])
            .args(wrapper)
            .args([BIN, "run", "--socket"])
            .arg(&socket)
            .args(extra);
        // Each agent its own peer cache, unless the test chose one.
        if !extra.contains(&"--state-dir") {
            cmd.arg("--state-dir")
                .arg(dir.join(format!("{name}.state")));
        }
        cmd.env("EXO_DISCOVERY_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        let child = self.spawn(cmd);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !socket.exists() {
            if let Some(Some(c)) = self.children.get_mut(child) {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!(
                        "agent {name} exited ({status}): {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
            assert!(Instant::now() < deadline, "agent {name}: no socket");
            std::thread::sleep(Duration::from_millis(20));
        }
        Agent { socket, log, child }
    }

    /// Writes a fresh key; returns its path and peer ID.
    pub fn keygen(&self, name: &str) -> (PathBuf, String) {
        let path = self.dir.join(format!("{name}.key"));
        let out = Command::new(BIN)
            .args(["keygen", "--out"])
            .arg(&path)
            .output()
            .expect("keygen");
        assert!(out.status.success(), "keygen: {:?}", out);
        (path, String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Runs `announce` against `agent` until stopped; waits until it is registered.
    pub fn announce(&mut self, agent: &Agent, key: &Path, addrs: &[String]) -> Announce {
        let mut cmd = Command::new(BIN);
        cmd.arg("announce")
            .arg("--socket")
            .arg(&agent.socket)
            .arg("--key")
            .arg(key);
        for a in addrs {
            cmd.args(["--addr", a]);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let idx = self.spawn(cmd);
        let child = self.children[idx].as_mut().expect("child");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("announce output");
        if !line.starts_with("announcing") {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(child.stderr.as_mut().expect("stderr"), &mut err);
            panic!("announce failed: {line}{err}");
        }
        Announce { child: idx }
    }

    /// Stops an announce with SIGINT (as ^C would) and waits for it.
    pub fn stop(&mut self, a: Announce) -> Instant {
        let child = self.children[a.child].as_mut().expect("child");
        let at = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .expect("kill");
        let _ = child.wait();
        at
    }

    /// Stops an agent with SIGTERM and waits for it.
    pub fn stop_agent(&mut self, a: &Agent) {
        if let Some(mut child) = self.children[a.child].take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
    }

    /// The agent's process ID (the `ip netns exec` process execs the agent).
    pub fn pid(&self, a: &Agent) -> u32 {
        self.children[a.child].as_ref().expect("running").id()
    }

    /// `peers --json` against `agent`.
    pub fn peers(&self, agent: &Agent) -> Vec<Value> {
        let out = Command::new(BIN)
            .arg("peers")
            .arg("--socket")
            .arg(&agent.socket)
            .arg("--json")
            .output()
            .expect("peers");
        assert!(out.status.success(), "peers: {:?}", out);
        serde_json::from_slice(&out.stdout).expect("peers --json is one JSON array")
    }

    /// Starts `watch --json` against `agent`.
    pub fn watch(&mut self, agent: &Agent) -> Watch {
        let mut cmd = Command::new(BIN);
        cmd.arg("watch")
            .arg("--socket")
            .arg(&agent.socket)
            .arg("--json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let idx = self.spawn(cmd);
        let stdout = self.children[idx]
            .as_mut()
            .and_then(|c| c.stdout.take())
            .expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("watch --json line is not JSON ({e}): {line}"));
                if tx.send((Instant::now(), v)).is_err() {
                    break;
                }
            }
        });
        Watch {
            rx,
            seen: Vec::new(),
            cursor: 0,
        }
    }

    /// Runs `f` on a thread inside `host`'s network namespace.
    pub fn in_ns<T: Send + 'static>(
        &self,
        host: &Host,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let path = format!("/var/run/netns/{}", host.ns);
        std::thread::spawn(move || {
            let fd = std::fs::File::open(&path).expect("open netns");
            nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("thread in namespace")
    }

    /// A TCP listener on `[::]:0` (IPv4 too) inside `host`; keep it alive while it must answer.
    pub fn listen(&self, host: &Host) -> TcpListener {
        self.in_ns(host, || TcpListener::bind("[::]:0").expect("listen"))
    }

    /// A TCP listener on `[::]:port` (IPv4 too) inside `host`.
    pub fn listen_on(&self, host: &Host, port: u16) -> TcpListener {
        self.in_ns(host, move || {
            TcpListener::bind(("::", port)).unwrap_or_else(|e| panic!("listen on {port}: {e}"))
        })
    }

    /// Whether a TCP connection from `host` to `multiaddr` succeeds (zone resolved in `host`).
    pub fn dials(&self, host: &Host, multiaddr: &str) -> bool {
        let ma = multiaddr.to_owned();
        self.in_ns(host, move || {
            let Some(addr) = socket_addr(&ma) else {
                return false;
            };
            TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_ok()
        })
    }
}

/// `/ip4/A/tcp/P/…` or `/ip6zone/Z/ip6/A/tcp/P/…` as a socket address (zone looked up here).
pub fn socket_addr(ma: &str) -> Option<SocketAddr> {
    let parts: Vec<&str> = ma.split('/').collect();
    let (zone, rest) = if parts.get(1) == Some(&"ip6zone") {
        (Some(parts[2]), &parts[3..])
    } else {
        (None, &parts[1..])
    };
    let ip: IpAddr = rest.get(1)?.parse().ok()?;
    if rest.get(2) != Some(&"tcp") {
        return None;
    }
    let port: u16 = rest.get(3)?.parse().ok()?;
    Some(match (ip, zone) {
        (IpAddr::V6(v6), Some(z)) => {
            let idx = nix::net::if_::if_nametoindex(z).ok()?;
            SocketAddr::V6(SocketAddrV6::new(v6, port, 0, idx))
        }
        _ => SocketAddr::new(ip, port),
    })
}

impl Drop for Net {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        for c in self.children.iter_mut().flatten() {
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            let _ = writeln!(
                std::io::stderr(),
                "test files (logs) kept in {}",
                self.dir.display()
            );
        }
    }
}

/// Events from a running `watch --json`.
pub struct Watch {
    rx: mpsc::Receiver<(Instant, Value)>,
    /// Every event so far, with its arrival time.
    pub seen: Vec<(Instant, Value)>,
    /// Events before this index were matched by an earlier `wait_for`.
    cursor: usize,
}

impl Watch {
    /// Waits up to `timeout` for an event matching `pred`, after the one the previous
    /// `wait_for` matched; returns it and when it arrived.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<(Instant, Value)> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = (self.cursor..self.seen.len()).find(|i| pred(&self.seen[*i].1)) {
                self.cursor = i + 1;
                return Some(self.seen[i].clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.rx.recv_timeout(left) {
                Ok(ev) => self.seen.push(ev),
                Err(_) => return None,
            }
        }
    }

    /// Collects whatever arrives within `d`.
    pub fn drain(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(ev) => self.seen.push(ev),
                Err(_) => break,
            }
        }
    }

    /// The newest state of `peer` as events told it (None if never seen or last expired).
    pub fn current(&self, peer: &str) -> Option<Value> {
        let last = self.seen.iter().rev().find(|(_, v)| v["peer_id"] == peer)?;
        (last.1["event"] != "expired").then(|| last.1.clone())
    }
}

/// `{"event": e, "peer_id": p, …}` with addresses satisfying `f`.
pub fn is_event(v: &Value, event: &str, peer: &str) -> bool {
    v["event"] == event && v["peer_id"] == peer
}

/// The `addrs` strings of a peer object.
pub fn addrs(v: &Value) -> Vec<String> {
    v["addrs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
