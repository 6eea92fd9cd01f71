//! Running the binary in the network: agents, `keygen` and `announce`.

use super::bin_path;
use super::network::{Host, Net};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

impl Net {
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
        let mut cmd = self.run_command(host, name, extra, wrapper, dir);
        cmd.arg("--socket").arg(&socket);
        self.start_agent(cmd, name, socket)
    }

    /// Starts an agent in `host` without `--socket`, with `XDG_RUNTIME_DIR` set to `runtime_dir`
    /// for it alone, and waits for its socket at the default path under that directory.
    pub fn agent_default_socket(&mut self, host: &Host, name: &str, runtime_dir: &Path) -> Agent {
        let socket = runtime_dir.join("exo-discovery").join("agent.sock");
        let mut cmd = self.run_command(host, name, &[], &[], &self.dir.clone());
        cmd.env("XDG_RUNTIME_DIR", runtime_dir);
        self.start_agent(cmd, name, socket)
    }

    /// `exo-discovery run` in `host` through `wrapper`, with `extra` flags and its own peer cache
    /// in `dir` unless `extra` chose one; no socket flag, no output set up.
    pub fn run_command(
        &self,
        host: &Host,
        name: &str,
        extra: &[&str],
        wrapper: &[&str],
        dir: &Path,
    ) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &host.ns])
            .args(wrapper)
            .args([bin_path(), "run"])
            .args(extra);
        // Each agent its own peer cache, unless the test chose one.
        if !extra.contains(&"--state-dir") {
            cmd.arg("--state-dir")
                .arg(dir.join(format!("{name}.state")));
        }
        cmd.env(
            "EXO_DISCOVERY_LOG",
            std::env::var("TEST_AGENT_LOG").unwrap_or("debug".into()),
        )
        .stdin(Stdio::null());
        cmd
    }

    /// Starts `cmd` (an agent), its stderr in `<name>.log`, and waits for `socket`.
    fn start_agent(&mut self, mut cmd: Command, name: &str, socket: PathBuf) -> Agent {
        let log = self.dir.join(format!("{name}.log"));
        cmd.stdout(Stdio::null())
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
        let out = Command::new(bin_path())
            .args(["keygen", "--out"])
            .arg(&path)
            .output()
            .expect("keygen");
        assert!(out.status.success(), "keygen: {:?}", out);
        (path, String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Runs `announce` against `agent` until stopped; waits until it is registered.
    pub fn announce(&mut self, agent: &Agent, key: &Path, addrs: &[String]) -> Announce {
        self.announce_with(agent, key, addrs, &[])
    }

    /// As [`Net::announce`], with extra flags (`--seq N`, …).
    pub fn announce_with(
        &mut self,
        agent: &Agent,
        key: &Path,
        addrs: &[String],
        extra: &[&str],
    ) -> Announce {
        let mut cmd = Command::new(bin_path());
        cmd.arg("announce")
            .arg("--socket")
            .arg(&agent.socket)
            .arg("--key")
            .arg(key)
            .args(extra);
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

    /// Kills an agent with SIGKILL (no goodbye, as a host that loses power) and waits for it.
    pub fn kill_agent(&mut self, a: &Agent) {
        if let Some(mut child) = self.children[a.child].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The agent's process ID (the `ip netns exec` process execs the agent).
    pub fn pid(&self, a: &Agent) -> u32 {
        self.children[a.child].as_ref().expect("running").id()
    }
}
