//! Agent settings: built-in defaults, the TOML file, interface globs. Pure apart from reading
//! environment variables for the default socket path.

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The namespace used when none is configured.
pub const DEFAULT_NAMESPACE: &str = "exo";

/// Every option of the agent. The TOML file uses the same names; all are optional.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Local socket path; empty means [`default_socket_path`].
    pub socket: Option<PathBuf>,
    /// Cluster namespace; records of other namespaces are ignored.
    pub namespace: String,
    /// Only interfaces whose name matches one of these globs (`*`, `?`); empty means all.
    pub interfaces: Vec<String>,
    /// Interfaces whose name matches one of these globs are never used.
    pub exclude_interfaces: Vec<String>,
    /// Use loopback interfaces too (off: loopback is excluded).
    pub loopback: bool,
    /// A peer not heard on a link for this many seconds is dropped from that link.
    pub peer_timeout_secs: u64,
    /// Own registrations are re-announced this often, in seconds (keeps peers' liveness fresh).
    pub announce_interval_secs: u64,
    /// Upper bound, in seconds, of the interval between `_p2p._udp` queries on each link (also held
    /// to a third of `peer_timeout_secs`).
    pub query_interval_max_secs: u64,
    /// How often interfaces are re-listed, in milliseconds.
    pub interface_poll_ms: u64,
    /// Hand over peers found by stock libp2p-mdns nodes' unsigned answers.
    pub accept_unsigned: bool,
    /// Hand over only addresses that answer a TCP connect from this host.
    pub verify_reachability: bool,
    /// How long a reachability probe waits for the connection, in milliseconds.
    pub probe_timeout_ms: u64,
    /// Hosts (IP, `IP%zone` or name) whose agent is asked for its records by unicast.
    pub static_hosts: Vec<String>,
    /// How often each static host is asked, in seconds.
    pub static_poll_secs: u64,
    /// Where the peer cache is kept; `None` means [`crate::cache::default_state_dir`].
    pub state_dir: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            socket: None,
            namespace: DEFAULT_NAMESPACE.to_owned(),
            interfaces: Vec::new(),
            exclude_interfaces: Vec::new(),
            loopback: false,
            peer_timeout_secs: 60,
            announce_interval_secs: 20,
            query_interval_max_secs: 60,
            interface_poll_ms: 1000,
            accept_unsigned: false,
            verify_reachability: true,
            probe_timeout_ms: 1000,
            static_hosts: Vec::new(),
            static_poll_secs: 5,
            state_dir: None,
        }
    }
}

impl Config {
    /// Parses a TOML file's text and checks the values.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| {
            let msg = e.message().trim().replace('\n', " ");
            let Some(span) = e.span() else {
                return msg;
            };
            let start = span.start.min(text.len());
            let line_no = text[..start].matches('\n').count() + 1;
            let line = text.lines().nth(line_no - 1).unwrap_or_default().trim();
            format!("line {line_no} ({line}): {msg}")
        })?;
        c.validate()?;
        Ok(c)
    }

    /// Checks values that TOML types alone cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.namespace.is_empty() || self.namespace.len() > crate::record::MAX_NAMESPACE {
            return Err(format!(
                "namespace must be 1 to {} bytes",
                crate::record::MAX_NAMESPACE
            ));
        }
        if self.peer_timeout_secs < 5 {
            return Err("peer_timeout_secs must be at least 5".into());
        }
        if self.announce_interval_secs == 0 || self.announce_interval_secs >= self.peer_timeout_secs
        {
            return Err(
                "announce_interval_secs must be at least 1 and below peer_timeout_secs".into(),
            );
        }
        if self.query_interval_max_secs == 0 {
            return Err("query_interval_max_secs must be at least 1".into());
        }
        if self.static_poll_secs == 0 || self.static_poll_secs >= self.peer_timeout_secs {
            return Err("static_poll_secs must be at least 1 and below peer_timeout_secs".into());
        }
        for h in &self.static_hosts {
            crate::unicast::HostSpec::parse(h).map_err(|e| format!("static_hosts: {e}"))?;
        }
        if !(10..=30_000).contains(&self.probe_timeout_ms) {
            return Err("probe_timeout_ms must be between 10 and 30000".into());
        }
        if !(100..=60_000).contains(&self.interface_poll_ms) {
            return Err("interface_poll_ms must be between 100 and 60000".into());
        }
        Ok(())
    }

    /// Whether the interface `name` may be used.
    pub fn wants_interface(&self, name: &str, is_loopback: bool) -> bool {
        if is_loopback && !self.loopback {
            return false;
        }
        let included = self.interfaces.is_empty() || self.interfaces.iter().any(|g| glob(g, name));
        included && !self.exclude_interfaces.iter().any(|g| glob(g, name))
    }

    /// Peer timeout as a duration.
    pub fn peer_timeout(&self) -> Duration {
        Duration::from_secs(self.peer_timeout_secs)
    }

    /// The longest interval between two queries on a link: the configured maximum, and at most a
    /// third of the peer timeout, so that every live peer answers at least twice before it would
    /// expire, whatever interval its own agent re-announces at.
    pub fn query_interval_max(&self) -> Duration {
        Duration::from_secs(
            self.query_interval_max_secs
                .min(self.peer_timeout_secs / 3)
                .max(1),
        )
    }

    /// The state directory in force.
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(crate::cache::default_state_dir)
    }

    /// The socket path in force.
    pub fn socket_path(&self) -> PathBuf {
        self.socket.clone().unwrap_or_else(default_socket_path)
    }
}

/// `$XDG_RUNTIME_DIR/exo-discovery.sock` when that variable is set, else
/// `/tmp/exo-discovery-<uid>.sock`.
pub fn default_socket_path() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("exo-discovery.sock"),
        _ => PathBuf::from(format!(
            "/tmp/exo-discovery-{}.sock",
            nix::unistd::getuid().as_raw()
        )),
    }
}

/// Shell-style glob: `*` any run, `?` one character, everything else literal.
pub fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("eth*", "eth0"));
        assert!(glob("*", "anything"));
        assert!(glob("e?h0", "eth0"));
        assert!(glob("*0", "veth0"));
        assert!(!glob("eth*", "veth0"));
        assert!(!glob("eth?", "eth10"));
        assert!(glob("", ""));
        assert!(!glob("", "x"));
    }

    #[test]
    fn interface_selection() {
        let mut c = Config::default();
        assert!(c.wants_interface("eth0", false));
        assert!(!c.wants_interface("lo", true));
        c.interfaces = vec!["eth*".into(), "en*".into()];
        c.exclude_interfaces = vec!["eth9".into()];
        assert!(c.wants_interface("en5", false));
        assert!(!c.wants_interface("eth9", false));
        assert!(!c.wants_interface("wlan0", false));
        c.loopback = true;
        c.interfaces.clear();
        assert!(c.wants_interface("lo", true));
    }

    #[test]
    fn shipped_config_equals_defaults() {
        let text = include_str!("../config/exo-discovery.toml");
        assert_eq!(Config::from_toml(text).unwrap(), Config::default());
    }

    #[test]
    fn bad_config_is_a_clear_error() {
        let e = Config::from_toml("peer_timeout_secs = \"x\"").unwrap_err();
        assert!(e.contains("peer_timeout_secs"), "{e}");
        let e = Config::from_toml("no_such_option = 1").unwrap_err();
        assert!(e.contains("no_such_option"), "{e}");
        let e = Config::from_toml("namespace = \"\"").unwrap_err();
        assert!(e.contains("namespace"), "{e}");
    }
}
