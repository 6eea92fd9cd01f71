//! The network: namespaces for hosts and a switch, bridges for links, veth pairs between them,
//! and running code inside a host. Everything is deleted on drop.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, SocketAddrV6, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

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

/// The network and everything running in it.
pub struct Net {
    id: String,
    /// The switch namespace, where the bridges live.
    pub(super) switch: String,
    namespaces: Vec<String>,
    /// Scratch directory of this test.
    pub dir: PathBuf,
    /// Processes started in the network (`None` once stopped); the rest are stopped on drop.
    pub(super) children: Vec<Option<Child>>,
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

impl Net {
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

    /// A new host with loopback up and IPv6 duplicate address detection off (addresses usable at
    /// once).
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

    /// Starts `cmd`; the network stops it on drop. Returns its index in `children`.
    pub(super) fn spawn(&mut self, mut cmd: Command) -> usize {
        let child = cmd.spawn().expect("spawn");
        self.children.push(Some(child));
        self.children.len() - 1
    }

    /// Starts `program` inside `host`; every line it prints arrives on the receiver with the time
    /// it was read.
    pub fn spawn_lines(
        &mut self,
        host: &Host,
        program: &std::path::Path,
        args: &[&str],
    ) -> std::sync::mpsc::Receiver<(Instant, String)> {
        self.spawn_lines_child(host, program, args).1
    }

    /// Stops a child started by [`Net::spawn_lines_child`] with SIGTERM and waits for it;
    /// returns when the signal was sent.
    pub fn stop_child(&mut self, idx: usize) -> Instant {
        let at = Instant::now();
        if let Some(mut child) = self.children[idx].take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
        at
    }

    /// [`Net::spawn_lines`], also returning the child's index for [`Net::stop_child`].
    pub fn spawn_lines_child(
        &mut self,
        host: &Host,
        program: &std::path::Path,
        args: &[&str],
    ) -> (usize, std::sync::mpsc::Receiver<(Instant, String)>) {
        use std::io::BufRead;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &host.ns])
            .arg(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        let idx = self.spawn(cmd);
        let stdout = self.children[idx]
            .as_mut()
            .and_then(|c| c.stdout.take())
            .expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        (idx, rx)
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

    /// A listener on `port` inside `host` that counts the connections it accepts, until the
    /// returned flag is set.
    pub fn count_connections(
        &self,
        host: &Host,
        port: u16,
    ) -> (
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
        std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::Arc;
        let listener = self.listen_on(host, port);
        listener.set_nonblocking(true).expect("nonblocking");
        let (count, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (c, s) = (count.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok(_) => {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        (count, stop)
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
fn socket_addr(ma: &str) -> Option<SocketAddr> {
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
        let keep = std::env::var("EXO_KEEP_TEST_FILES").is_ok_and(|v| v == "1");
        if !std::thread::panicking() && !keep {
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
