//! Agent settings: built-in defaults, the TOML file and the `run` flags merged into one
//! [`Config`], interface globs. Pure apart from reading environment variables for the default
//! socket path; the caller reads the file.

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Most static hosts configured (and asked at once).
pub const MAX_STATIC_HOSTS: usize = 256;

/// Longest peer timeout (and query interval), in seconds: a day. Longer is no use, and far longer
/// would overflow the clock arithmetic.
pub const MAX_PEER_TIMEOUT_SECS: u64 = 86_400;

/// Most address ranges in `exchange_allow`.
pub const MAX_EXCHANGE_ALLOW: usize = 256;

/// The namespace used when none is configured.
pub const DEFAULT_NAMESPACE: &str = "exo";

/// The announce interval, in seconds, when none is configured and the peer timeout allows it (see
/// [`derived_announce_interval_secs`]).
pub const DEFAULT_ANNOUNCE_INTERVAL_SECS: u64 = 30;

/// Every option of the agent, as in force. The TOML file and the flags are [`Overrides`] with the
/// same names, merged by [`Config::merge`].
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Local socket path; empty means the default (`sys::default_socket_path`), whose directory the agent makes
    /// owner-only and checks. A path set here is used as given.
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
    /// When no layer sets it, [`derived_announce_interval_secs`] of the peer timeout.
    pub announce_interval_secs: u64,
    /// Upper bound, in seconds, of the interval between `_p2p._udp` queries on each link (also held
    /// to `peer_timeout_secs`). Queries find peers whose announcements were missed; they carry the
    /// peers already held as known answers, so a settled link answers them with nothing.
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
    /// Peer exchange (see [`crate::wire::exchange`]): answer other agents' asks on TCP port 5353 with
    /// the peers handed over here, and ask each static host's agent for its peers too. Asking
    /// needs `verify_reachability` (what a host hands over is checked from here before use).
    pub peer_exchange: bool,
    /// Address ranges (`10.1.0.0/16`, `fd00::/8`, or one address) whose agents may ask this one
    /// for its peers by peer exchange although they are not on one of its links nor among its
    /// static hosts (a routed subnet, say). Everyone else off the link is refused.
    pub exchange_allow: Vec<String>,
    /// Where the peer cache is kept; `None` means the system's default (`sys::default_state_dir`).
    pub state_dir: Option<PathBuf>,
    /// A file kept equal to `peers --json` (or its CSV form) for programs that do not speak the
    /// socket; `None`: no file.
    pub peers_file: Option<PathBuf>,
    /// The form of `peers_file`.
    pub peers_file_format: PeersFormat,
}

/// The form of the peers file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeersFormat {
    /// What `peers --json` prints.
    #[default]
    Json,
    /// What `peers --format csv` prints: every address of every peer on one line.
    Csv,
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
            announce_interval_secs: DEFAULT_ANNOUNCE_INTERVAL_SECS,
            query_interval_max_secs: 60,
            interface_poll_ms: 1000,
            accept_unsigned: false,
            verify_reachability: true,
            probe_timeout_ms: 1000,
            static_hosts: Vec::new(),
            static_poll_secs: 5,
            peer_exchange: true,
            exchange_allow: Vec::new(),
            state_dir: None,
            peers_file: None,
            peers_file_format: PeersFormat::Json,
        }
    }
}

/// What one source of settings sets: the TOML config file, or the `run` flags. Every field is
/// optional and named as in [`Config`]; an unset field leaves what the layer below set.
/// `exclude_interfaces`, `static_hosts` and `exchange_allow` add to the layer below; everything
/// else replaces it.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Overrides {
    /// See [`Config::socket`].
    pub socket: Option<PathBuf>,
    /// See [`Config::namespace`].
    pub namespace: Option<String>,
    /// See [`Config::interfaces`]; replaces the list below (an empty list means all interfaces).
    pub interfaces: Option<Vec<String>>,
    /// See [`Config::exclude_interfaces`]; added to the list below.
    pub exclude_interfaces: Vec<String>,
    /// See [`Config::loopback`].
    pub loopback: Option<bool>,
    /// See [`Config::peer_timeout_secs`].
    pub peer_timeout_secs: Option<u64>,
    /// See [`Config::announce_interval_secs`]; when no layer sets it, it is derived from the peer
    /// timeout.
    pub announce_interval_secs: Option<u64>,
    /// See [`Config::query_interval_max_secs`].
    pub query_interval_max_secs: Option<u64>,
    /// See [`Config::interface_poll_ms`].
    pub interface_poll_ms: Option<u64>,
    /// See [`Config::accept_unsigned`].
    pub accept_unsigned: Option<bool>,
    /// See [`Config::verify_reachability`].
    pub verify_reachability: Option<bool>,
    /// See [`Config::probe_timeout_ms`].
    pub probe_timeout_ms: Option<u64>,
    /// See [`Config::static_hosts`]; added to the list below.
    pub static_hosts: Vec<String>,
    /// See [`Config::static_poll_secs`].
    pub static_poll_secs: Option<u64>,
    /// See [`Config::peer_exchange`].
    pub peer_exchange: Option<bool>,
    /// See [`Config::exchange_allow`]; added to the list below.
    pub exchange_allow: Vec<String>,
    /// See [`Config::state_dir`].
    pub state_dir: Option<PathBuf>,
    /// See [`Config::peers_file`].
    pub peers_file: Option<PathBuf>,
    /// See [`Config::peers_file_format`].
    pub peers_file_format: Option<PeersFormat>,
}

impl Overrides {
    /// Parses a config file's text (errors name the line at fault) and checks that it is a valid
    /// configuration on its own, over the built-in defaults.
    pub fn from_toml(text: &str) -> Result<Overrides, String> {
        let o: Overrides = toml::from_str(text).map_err(|e| {
            let msg = e.message().trim().replace('\n', " ");
            let Some(span) = e.span() else {
                return msg;
            };
            let start = span.start.min(text.len());
            let line_no = text[..start].matches('\n').count() + 1;
            let line = text.lines().nth(line_no - 1).unwrap_or_default().trim();
            format!("line {line_no} ({line}): {msg}")
        })?;
        Config::merge(&o, &Overrides::default())?;
        Ok(o)
    }
}

/// The announce interval used when no layer sets one: [`DEFAULT_ANNOUNCE_INTERVAL_SECS`], but at
/// most half the peer timeout (and at least 1 s), so that peers hear every registration before
/// their silence check (two thirds of the timeout) even if one announcement is lost to half of
/// them; a peer that missed more probes the node before it would drop it.
pub fn derived_announce_interval_secs(peer_timeout_secs: u64) -> u64 {
    DEFAULT_ANNOUNCE_INTERVAL_SECS
        .min(peer_timeout_secs / 2)
        .max(1)
}

impl Config {
    #[cfg(any(test, feature = "fuzz"))]
    /// Parses a TOML file's text and checks the values: the file over the built-in defaults.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        Config::merge(&Overrides::from_toml(text)?, &Overrides::default())
    }

    /// The configuration in force: the built-in defaults, `file` on top, `flags` on top of that,
    /// checked. An announce interval that no layer sets is
    /// [`derived_announce_interval_secs`] of the peer timeout in force; one that a layer sets is
    /// kept as it is, and must be below the peer timeout.
    pub fn merge(file: &Overrides, flags: &Overrides) -> Result<Config, String> {
        let mut c = Config::default();
        c.apply(file);
        c.apply(flags);
        if file.announce_interval_secs.is_none() && flags.announce_interval_secs.is_none() {
            c.announce_interval_secs = derived_announce_interval_secs(c.peer_timeout_secs);
        }
        c.validate()?;
        Ok(c)
    }

    fn apply(&mut self, o: &Overrides) {
        fn set<T: Clone>(field: &mut T, value: &Option<T>) {
            if let Some(v) = value {
                *field = v.clone();
            }
        }
        if let Some(s) = &o.socket {
            self.socket = Some(s.clone());
        }
        set(&mut self.namespace, &o.namespace);
        set(&mut self.interfaces, &o.interfaces);
        self.exclude_interfaces
            .extend(o.exclude_interfaces.iter().cloned());
        set(&mut self.loopback, &o.loopback);
        set(&mut self.peer_timeout_secs, &o.peer_timeout_secs);
        set(&mut self.announce_interval_secs, &o.announce_interval_secs);
        set(
            &mut self.query_interval_max_secs,
            &o.query_interval_max_secs,
        );
        set(&mut self.interface_poll_ms, &o.interface_poll_ms);
        set(&mut self.accept_unsigned, &o.accept_unsigned);
        set(&mut self.verify_reachability, &o.verify_reachability);
        set(&mut self.probe_timeout_ms, &o.probe_timeout_ms);
        self.static_hosts.extend(o.static_hosts.iter().cloned());
        set(&mut self.static_poll_secs, &o.static_poll_secs);
        set(&mut self.peer_exchange, &o.peer_exchange);
        self.exchange_allow.extend(o.exchange_allow.iter().cloned());
        if let Some(f) = &o.peers_file {
            self.peers_file = Some(f.clone());
        }
        set(&mut self.peers_file_format, &o.peers_file_format);
        if let Some(d) = &o.state_dir {
            self.state_dir = Some(d.clone());
        }
    }

    /// Checks values that TOML types alone cannot; each error names the option and its value.
    pub fn validate(&self) -> Result<(), String> {
        let max_ns = crate::wire::record::MAX_NAMESPACE;
        if self.namespace.is_empty() || self.namespace.len() > max_ns {
            return Err(format!(
                "namespace {:?} must be 1 to {max_ns} bytes",
                self.namespace
            ));
        }
        let timeout = self.peer_timeout_secs;
        if !(5..=MAX_PEER_TIMEOUT_SECS).contains(&timeout) {
            return Err(format!(
                "peer_timeout_secs ({timeout}) must be between 5 and {MAX_PEER_TIMEOUT_SECS}"
            ));
        }
        let announce = self.announce_interval_secs;
        if announce == 0 {
            return Err("announce_interval_secs (0) must be at least 1".into());
        }
        if announce >= timeout {
            return Err(format!(
                "announce_interval_secs ({announce}) must be below peer_timeout_secs ({timeout}): \
                 lower it, or leave it unset to have it derived from the peer timeout"
            ));
        }
        if !(1..=MAX_PEER_TIMEOUT_SECS).contains(&self.query_interval_max_secs) {
            return Err(format!(
                "query_interval_max_secs ({}) must be between 1 and {MAX_PEER_TIMEOUT_SECS}",
                self.query_interval_max_secs
            ));
        }
        let poll = self.static_poll_secs;
        if poll == 0 || poll >= timeout {
            return Err(format!(
                "static_poll_secs ({poll}) must be at least 1 and below peer_timeout_secs ({timeout})"
            ));
        }
        let max_hosts = MAX_STATIC_HOSTS;
        if self.static_hosts.len() > max_hosts {
            return Err(format!(
                "static_hosts lists {} hosts; at most {max_hosts}",
                self.static_hosts.len()
            ));
        }
        for h in &self.static_hosts {
            crate::wire::net::HostSpec::parse(h).map_err(|e| format!("static_hosts: {e}"))?;
        }
        if self.exchange_allow.len() > MAX_EXCHANGE_ALLOW {
            return Err(format!(
                "exchange_allow lists {} ranges; at most {MAX_EXCHANGE_ALLOW}",
                self.exchange_allow.len()
            ));
        }
        for r in &self.exchange_allow {
            crate::wire::addrs::Cidr::parse(r).map_err(|e| format!("exchange_allow: {e}"))?;
        }
        if !(10..=30_000).contains(&self.probe_timeout_ms) {
            return Err(format!(
                "probe_timeout_ms ({}) must be between 10 and 30000",
                self.probe_timeout_ms
            ));
        }
        if !(100..=60_000).contains(&self.interface_poll_ms) {
            return Err(format!(
                "interface_poll_ms ({}) must be between 100 and 60000",
                self.interface_poll_ms
            ));
        }
        Ok(())
    }

    /// The ranges of `exchange_allow`, parsed (the ones that do not parse were refused by
    /// [`Config::validate`]).
    pub fn exchange_allow_ranges(&self) -> Vec<crate::wire::addrs::Cidr> {
        self.exchange_allow
            .iter()
            .filter_map(|r| crate::wire::addrs::Cidr::parse(r).ok())
            .collect()
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

    /// The longest interval between two queries on a link: the configured maximum, at most the
    /// peer timeout. (Liveness does not rest on the answers: a peer not heard for two thirds of
    /// the timeout is probed before it is dropped.)
    pub fn query_interval_max(&self) -> Duration {
        Duration::from_secs(
            self.query_interval_max_secs
                .min(self.peer_timeout_secs)
                .max(1),
        )
    }
}

/// The default socket path for this value of `XDG_RUNTIME_DIR` (unset or empty: none) and this
/// uid.
pub fn socket_path_for(runtime_dir: Option<&std::ffi::OsStr>, uid: u32) -> PathBuf {
    let dir = match runtime_dir {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("exo-discovery"),
        _ => PathBuf::from(format!("/tmp/exo-discovery-{uid}")),
    };
    dir.join("agent.sock")
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
    fn default_socket_path_lives_in_its_own_directory() {
        use std::ffi::OsStr;
        assert_eq!(
            socket_path_for(Some(OsStr::new("/run/user/1000")), 1000),
            PathBuf::from("/run/user/1000/exo-discovery/agent.sock")
        );
        assert_eq!(
            socket_path_for(None, 1000),
            PathBuf::from("/tmp/exo-discovery-1000/agent.sock")
        );
        assert_eq!(
            socket_path_for(Some(OsStr::new("")), 0),
            PathBuf::from("/tmp/exo-discovery-0/agent.sock")
        );
    }

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
    fn the_peers_file_and_its_form_are_read_and_a_bad_form_named() {
        let c =
            Config::from_toml("peers_file = \"/run/p.csv\"\npeers_file_format = \"csv\"").unwrap();
        assert_eq!(c.peers_file, Some("/run/p.csv".into()));
        assert_eq!(c.peers_file_format, PeersFormat::Csv);
        let e = Config::from_toml("peers_file_format = \"xml\"").unwrap_err();
        assert!(e.contains("line 1") && e.contains("xml"), "{e}");
    }

    #[test]
    fn shipped_config_equals_defaults() {
        let text = include_str!("../../config/exo-discovery.toml");
        assert_eq!(Config::from_toml(text).unwrap(), Config::default());
    }

    #[test]
    fn shipped_config_leaves_the_announce_interval_to_the_peer_timeout() {
        let file = Overrides::from_toml(include_str!("../../config/exo-discovery.toml")).unwrap();
        assert_eq!(file.announce_interval_secs, None);
        let flags = Overrides {
            peer_timeout_secs: Some(6),
            ..Overrides::default()
        };
        assert_eq!(
            Config::merge(&file, &flags).unwrap().announce_interval_secs,
            3
        );
    }

    #[test]
    fn bad_config_is_a_clear_error() {
        let e = Config::from_toml("peer_timeout_secs = \"x\"").unwrap_err();
        assert!(e.contains("line 1 (peer_timeout_secs"), "{e}");
        let e = Config::from_toml("\nno_such_option = 1").unwrap_err();
        assert!(e.contains("line 2") && e.contains("no_such_option"), "{e}");
        let e = Config::from_toml("namespace = \"\"").unwrap_err();
        assert!(e.contains("namespace"), "{e}");
    }

    #[test]
    fn huge_values_are_refused_by_name_not_overflowed() {
        let e = Config::from_toml("peer_timeout_secs = 1000000000000").unwrap_err();
        assert!(
            e.contains("peer_timeout_secs") && e.contains("86400"),
            "{e}"
        );
        let e = Config::from_toml("query_interval_max_secs = 100000000000").unwrap_err();
        assert!(e.contains("query_interval_max_secs"), "{e}");
        let hosts: Vec<String> = (0..300)
            .map(|i| format!("\"10.0.{}.{}\"", i / 250, i % 250))
            .collect();
        let e = Config::from_toml(&format!("static_hosts = [{}]", hosts.join(","))).unwrap_err();
        assert!(e.contains("static_hosts lists 300 hosts"), "{e}");
        assert!(Config::from_toml("peer_timeout_secs = 86400").is_ok());
    }

    /// A file that sets most options, for the merge tests.
    fn file() -> Overrides {
        Overrides::from_toml(
            r#"
            socket = "/run/file.sock"
            namespace = "file"
            interfaces = ["eth*"]
            exclude_interfaces = ["eth9"]
            loopback = false
            peer_timeout_secs = 90
            accept_unsigned = false
            verify_reachability = true
            static_hosts = ["10.0.0.1"]
            state_dir = "/var/lib/file"
            probe_timeout_ms = 500
            "#,
        )
        .unwrap()
    }

    #[test]
    fn flags_override_the_file() {
        let flags = Overrides {
            socket: Some("/run/flag.sock".into()),
            namespace: Some("flag".into()),
            interfaces: Some(vec!["en*".into()]),
            exclude_interfaces: vec!["en9".into()],
            loopback: Some(true),
            peer_timeout_secs: Some(30),
            accept_unsigned: Some(true),
            verify_reachability: Some(false),
            static_hosts: vec!["10.0.0.2".into()],
            state_dir: Some("/tmp/flag".into()),
            ..Overrides::default()
        };
        let c = Config::merge(&file(), &flags).unwrap();
        assert_eq!(c.socket, Some("/run/flag.sock".into()));
        assert_eq!(c.namespace, "flag");
        assert_eq!(c.interfaces, vec!["en*"]);
        assert!(c.loopback && c.accept_unsigned && !c.verify_reachability);
        assert_eq!(c.peer_timeout_secs, 30);
        assert_eq!(c.state_dir, Some("/tmp/flag".into()));
        // Exclusions and static hosts add up.
        assert_eq!(c.exclude_interfaces, vec!["eth9", "en9"]);
        assert_eq!(c.static_hosts, vec!["10.0.0.1", "10.0.0.2"]);
        // Untouched by the flags: the file's value.
        assert_eq!(c.probe_timeout_ms, 500);
    }

    #[test]
    fn unset_flags_keep_the_files_values() {
        let c = Config::merge(&file(), &Overrides::default()).unwrap();
        let expected = Config {
            socket: Some("/run/file.sock".into()),
            namespace: "file".into(),
            interfaces: vec!["eth*".into()],
            exclude_interfaces: vec!["eth9".into()],
            peer_timeout_secs: 90,
            static_hosts: vec!["10.0.0.1".into()],
            state_dir: Some("/var/lib/file".into()),
            probe_timeout_ms: 500,
            ..Config::default()
        };
        assert_eq!(c, expected);
        // No file and no flags: the built-in defaults.
        let none = Overrides::default();
        assert_eq!(Config::merge(&none, &none).unwrap(), Config::default());
    }

    #[test]
    fn validation_errors_name_the_option_and_its_value() {
        let err = |flags: Overrides| Config::merge(&Overrides::default(), &flags).unwrap_err();
        let e = err(Overrides {
            namespace: Some(String::new()),
            ..Overrides::default()
        });
        assert!(e.starts_with("namespace \"\" must be 1 to"), "{e}");
        let e = err(Overrides {
            peer_timeout_secs: Some(3),
            ..Overrides::default()
        });
        assert_eq!(e, "peer_timeout_secs (3) must be between 5 and 86400");
        let e = err(Overrides {
            static_poll_secs: Some(60),
            ..Overrides::default()
        });
        assert_eq!(
            e,
            "static_poll_secs (60) must be at least 1 and below peer_timeout_secs (60)"
        );
        let e = err(Overrides {
            probe_timeout_ms: Some(5),
            ..Overrides::default()
        });
        assert_eq!(e, "probe_timeout_ms (5) must be between 10 and 30000");
        let e = err(Overrides {
            static_hosts: vec!["not a host".into()],
            ..Overrides::default()
        });
        assert!(e.starts_with("static_hosts: "), "{e}");
        let e = err(Overrides {
            exchange_allow: vec!["10.0.0.0/40".into()],
            ..Overrides::default()
        });
        assert_eq!(
            e,
            "exchange_allow: \"10.0.0.0/40\": the prefix length must be 0 to 32"
        );
        let ok = Config::from_toml("exchange_allow = [\"10.1.0.0/16\", \"fd00::/8\"]").unwrap();
        assert_eq!(ok.exchange_allow_ranges().len(), 2);
        // A file is checked on its own, before any flag is applied.
        let e = Overrides::from_toml("peer_timeout_secs = 4").unwrap_err();
        assert!(e.contains("peer_timeout_secs (4)"), "{e}");
    }

    #[test]
    fn an_unset_announce_interval_follows_the_peer_timeout() {
        let with_timeout = |t: u64| {
            let flags = Overrides {
                peer_timeout_secs: Some(t),
                ..Overrides::default()
            };
            Config::merge(&Overrides::default(), &flags)
                .unwrap()
                .announce_interval_secs
        };
        // 30 s, but at most half the timeout.
        assert_eq!(derived_announce_interval_secs(1), 1);
        assert_eq!(with_timeout(6), 3);
        assert_eq!(with_timeout(9), 4);
        assert_eq!(with_timeout(45), 22);
        assert_eq!(with_timeout(60), 30);
        assert_eq!(with_timeout(600), 30);
        assert_eq!(
            Config::default().announce_interval_secs,
            derived_announce_interval_secs(Config::default().peer_timeout_secs)
        );
        // The same when the file sets the timeout.
        let c = Config::from_toml("peer_timeout_secs = 9").unwrap();
        assert_eq!(c.announce_interval_secs, 4);
    }

    #[test]
    fn a_set_announce_interval_is_kept_or_refused_never_changed() {
        let file = Overrides::from_toml("announce_interval_secs = 30").unwrap();
        let timeout = |t: u64| Overrides {
            peer_timeout_secs: Some(t),
            ..Overrides::default()
        };
        // Below the timeout: kept as set, even above half of it.
        let c = Config::merge(&file, &timeout(40)).unwrap();
        assert_eq!((c.announce_interval_secs, c.peer_timeout_secs), (30, 40));
        // Not below it: refused, naming both values.
        let e = Config::merge(&file, &timeout(20)).unwrap_err();
        assert!(
            e.starts_with("announce_interval_secs (30) must be below peer_timeout_secs (20)"),
            "{e}"
        );
        let e = Config::from_toml("announce_interval_secs = 0").unwrap_err();
        assert_eq!(e, "announce_interval_secs (0) must be at least 1");
        let e =
            Config::from_toml("peer_timeout_secs = 20\nannounce_interval_secs = 20").unwrap_err();
        assert!(
            e.contains("(20)") && e.contains("peer_timeout_secs (20)"),
            "{e}"
        );
    }
}
