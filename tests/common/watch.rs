//! What an agent reports: the events of `watch --json`, as a test waits for them, and
//! `peers --json`.

use super::agents::Agent;
use super::bin_path;
use super::network::Net;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

impl Net {
    /// `peers --json` against `agent`.
    pub fn peers(&self, agent: &Agent) -> Vec<Value> {
        let out = Command::new(bin_path())
            .arg("peers")
            .arg("--socket")
            .arg(&agent.socket)
            .arg("--json")
            .output()
            .expect("peers");
        assert!(out.status.success(), "peers: {:?}", out);
        serde_json::from_slice(&out.stdout).expect("peers --json is one JSON array")
    }

    /// `status --json` of `agent`.
    pub fn status(&self, agent: &Agent) -> Value {
        let out = Command::new(bin_path())
            .args(["status", "--json", "--socket"])
            .arg(&agent.socket)
            .output()
            .expect("status");
        assert!(out.status.success(), "status: {:?}", out);
        serde_json::from_slice(&out.stdout).expect("status --json is one JSON object")
    }

    /// Starts `watch --json` against `agent`.
    pub fn watch(&mut self, agent: &Agent) -> Watch {
        let mut cmd = Command::new(bin_path());
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

    /// Waits up to `timeout` for `peer`'s `discovered` event, after the one the previous
    /// `wait_for` matched, and asserts that it carries exactly `want`; returns it and when it
    /// arrived. If it never comes, panics with `what` and every event seen.
    #[track_caller]
    pub fn discovered_with(
        &mut self,
        timeout: Duration,
        peer: &str,
        want: &[String],
        what: &str,
    ) -> (Instant, Value) {
        let Some((at, ev)) = self.wait_for(timeout, |v| is_event(v, "discovered", peer)) else {
            panic!("{what}: {:?}", self.seen);
        };
        assert_eq!(addrs(&ev), want);
        (at, ev)
    }

    /// Waits up to `timeout` for an event matching `pred`, among every event seen so far
    /// (whatever earlier waits matched); returns the first such and when it arrived.
    pub fn wait_for_any(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<(Instant, Value)> {
        let deadline = Instant::now() + timeout;
        let mut from = 0;
        loop {
            if let Some(hit) = self.seen[from..].iter().find(|(_, v)| pred(v)) {
                return Some(hit.clone());
            }
            from = self.seen.len();
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

/// The `dropped` counts of a status object (or of one of its interfaces), summed over `reasons`.
pub fn dropped(v: &Value, reasons: &[&str]) -> u64 {
    reasons
        .iter()
        .map(|r| v["dropped"][r].as_u64().unwrap_or(0))
        .sum()
}
