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

/// Every option of the agent, once: its doc, `name: type = default` in force (the name is its
/// TOML key), `file` with its type in an [`Overrides`] layer and how a layer merges into the one
/// below ([`replace`], [`replace_some`] or [`add`]), and, for those the `run` command takes as a
/// flag, `flag` with the flag's help and clap attributes, its field, and the function (in
/// `cli::args`) that turns the flag's value into the layer's.
///
/// Invokes `$m!` with the list. Here it declares [`Config`], its defaults, [`Overrides`],
/// [`Config::apply`] and [`OPTION_KEYS`]; the command line declares its `run` flags from it.
macro_rules! with_options {
    ($m:ident) => {
        $m! {
            /// Local socket path; empty means the default (`sys::default_socket_path`), whose
            /// directory the agent makes owner-only and checks. A path set here is used as given.
            socket: Option<std::path::PathBuf> = None;
            file Option<std::path::PathBuf>, replace_some;
            flag
            /// Socket path for the node (default: $XDG_RUNTIME_DIR/exo-discovery/agent.sock, else
            /// /tmp/exo-discovery-<uid>/agent.sock; the agent creates that directory owner-only and
            /// refuses to start if it belongs to someone else or is open to others).
            #[arg(long, value_name = "PATH")]
            socket: Option<std::path::PathBuf> => given;

            /// Only interfaces whose name matches one of these globs (`*`, `?`); empty means all.
            /// A layer's list replaces the one below (an empty list means all interfaces).
            interfaces: Vec<String> = Vec::new();
            file Option<Vec<String>>, replace;
            flag
            /// Use only interfaces matching this glob (repeatable).
            #[arg(long = "interface", value_name = "GLOB")]
            interfaces: Vec<String> => non_empty;

            /// Interfaces whose name matches one of these globs are never used. A layer's list
            /// adds to the one below.
            exclude_interfaces: Vec<String> = Vec::new();
            file Vec<String>, add;
            flag
            /// Never use interfaces matching this glob (repeatable).
            #[arg(long = "exclude-interface", value_name = "GLOB")]
            exclude_interfaces: Vec<String> => given;

            /// Cluster namespace; records of other namespaces are ignored.
            namespace: String = $crate::wire::config::DEFAULT_NAMESPACE.to_owned();
            file Option<String>, replace;
            flag
            /// Cluster namespace (default "exo").
            #[arg(long, value_name = "NS")]
            namespace: Option<String> => given;

            /// Use loopback interfaces too (off: loopback is excluded).
            loopback: bool = false;
            file Option<bool>, replace;
            flag
            /// Use loopback interfaces too.
            #[arg(long)]
            loopback: bool => switch(true);

            /// A peer not heard on a link for this many seconds is dropped from that link.
            peer_timeout_secs: u64 = 60;
            file Option<u64>, replace;
            flag
            /// Drop a peer not heard on a link for this many seconds (at least 5; default 60).
            /// Unless the config file sets announce_interval_secs, own nodes are then re-announced
            /// every 30 s or every SECS/2 s, whichever is shorter; if it does, that interval must
            /// be below SECS.
            #[arg(long, value_name = "SECS")]
            peer_timeout: Option<u64> => given;

            /// Own registrations are re-announced this often, in seconds (keeps peers' liveness
            /// fresh). When no layer sets it, [`derived_announce_interval_secs`] of the peer
            /// timeout.
            announce_interval_secs: u64 = $crate::wire::config::DEFAULT_ANNOUNCE_INTERVAL_SECS;
            file Option<u64>, replace;

            /// Upper bound, in seconds, of the interval between `_p2p._udp` queries on each link
            /// (also held to `peer_timeout_secs`). Queries find peers whose announcements were
            /// missed; they carry the peers already held as known answers, so a settled link
            /// answers them with nothing.
            query_interval_max_secs: u64 = 60;
            file Option<u64>, replace;

            /// How often interfaces are re-listed, in milliseconds.
            interface_poll_ms: u64 = 1000;
            file Option<u64>, replace;

            /// Hand over peers found by stock libp2p-mdns nodes' unsigned answers.
            accept_unsigned: bool = false;
            file Option<bool>, replace;
            flag
            /// Also hand over stock libp2p-mdns nodes (unsigned).
            #[arg(long)]
            accept_unsigned: bool => switch(true);

            /// Hand over only addresses that answer a TCP connect from this host.
            verify_reachability: bool = true;
            file Option<bool>, replace;
            flag
            /// Hand over addresses without checking that they answer a TCP connect.
            #[arg(long)]
            no_verify_reachability: bool => switch(false);

            /// How long a reachability probe waits for the connection, in milliseconds.
            probe_timeout_ms: u64 = 1000;
            file Option<u64>, replace;

            /// Hosts (IP, `IP%zone` or name) whose agent is asked for its records by unicast. A
            /// layer's list adds to the one below.
            static_hosts: Vec<String> = Vec::new();
            file Vec<String>, add;
            flag
            /// Ask this host's agent for its records by unicast (repeatable): IP, IP%zone or name.
            #[arg(long = "static-host", value_name = "HOST")]
            static_hosts: Vec<String> => given;

            /// How often each static host is asked, in seconds.
            static_poll_secs: u64 = 5;
            file Option<u64>, replace;

            /// Peer exchange (see [`crate::wire::exchange`]): answer other agents' asks on TCP port
            /// 5353 with the peers handed over here, and ask each static host's agent for its
            /// peers too. Asking needs `verify_reachability` (what a host hands over is checked
            /// from here before use).
            peer_exchange: bool = true;
            file Option<bool>, replace;
            flag
            /// Neither answer other agents' peer exchange (TCP port 5353) nor ask static hosts for
            /// their peers.
            #[arg(long)]
            no_peer_exchange: bool => switch(false);

            /// Address ranges (`10.1.0.0/16`, `fd00::/8`, or one address) whose agents may ask this
            /// one for its peers by peer exchange although they are not on one of its links nor
            /// among its static hosts (a routed subnet, say). Everyone else off the link is
            /// refused. A layer's list adds to the one below.
            exchange_allow: Vec<String> = Vec::new();
            file Vec<String>, add;
            flag
            /// Also answer peer exchange from agents in this address range (repeatable):
            /// `10.1.0.0/16`, `fd00::/8` or one address. Agents on this host's links and its static
            /// hosts are always answered; anyone else is refused.
            #[arg(long = "exchange-allow", value_name = "CIDR")]
            exchange_allow: Vec<String> => given;

            /// Where the peer cache is kept; `None` means the system's default
            /// (`sys::default_state_dir`).
            state_dir: Option<std::path::PathBuf> = None;
            file Option<std::path::PathBuf>, replace_some;
            flag
            /// Where the peer cache is kept.
            #[arg(long, value_name = "DIR")]
            state_dir: Option<std::path::PathBuf> => given;

            /// A file kept equal to `peers --json` (or its CSV or zenoh form) for programs that do
            /// not speak the socket; `None`: no file.
            peers_file: Option<std::path::PathBuf> = None;
            file Option<std::path::PathBuf>, replace_some;
            flag
            /// Keep this file equal to `peers --json` (replaced whole, at most every 100 ms while
            /// peers change), for programs that do not speak the socket.
            #[arg(long, value_name = "PATH")]
            peers_file: Option<std::path::PathBuf> => given;

            /// The form of `peers_file`.
            peers_file_format: $crate::wire::config::PeersFormat =
                $crate::wire::config::PeersFormat::Json;
            file Option<$crate::wire::config::PeersFormat>, replace;
            flag
            /// The peers file's form: json (as `peers --json`), csv (every address on one line, as
            /// `peers --format csv`) or zenoh (every TCP address as a zenoh endpoint on one line,
            /// as `peers --format zenoh`).
            #[arg(long, value_name = "FORMAT", value_parser = ["json", "csv", "zenoh"])]
            peers_file_format: Option<String> => peers_format;
        }
    };
}
pub(crate) use with_options;

/// Declares [`Config`], its defaults, [`Overrides`], [`Config::apply`] and [`OPTION_KEYS`] from
/// the list of [`with_options`].
macro_rules! config_types {
    ($(
        $(#[$doc:meta])+
        $name:ident: $ty:ty = $default:expr;
        file $file_ty:ty, $merge:ident;
        $(flag $(#[$flag_attr:meta])* $flag:ident: $flag_ty:ty => $conv:expr;)?
    )*) => {
        /// Every option of the agent, as in force. The TOML file and the flags are [`Overrides`]
        /// with the same names, merged by [`Config::merge`].
        #[derive(Clone, Debug, PartialEq)]
        pub struct Config {
            $($(#[$doc])+ pub $name: $ty,)*
        }

        impl Default for Config {
            fn default() -> Self {
                Config {
                    $($name: $default,)*
                }
            }
        }

        /// What one source of settings sets: the TOML config file, or the `run` flags. Every
        /// field is optional and named as in [`Config`]; an unset field leaves what the layer
        /// below set. `exclude_interfaces`, `static_hosts` and `exchange_allow` add to the layer
        /// below; everything else replaces it.
        #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Overrides {
            $(
                #[doc = concat!("See [`Config::", stringify!($name), "`].")]
                pub $name: $file_ty,
            )*
        }

        impl Config {
            /// `o` over this: each option merged by its rule.
            fn apply(&mut self, o: &Overrides) {
                $($merge(&mut self.$name, &o.$name);)*
            }
        }

        /// Every option's TOML key, in the order of [`Config`].
        #[cfg(any(test, feature = "internals"))]
        pub const OPTION_KEYS: &[&str] = &[$(stringify!($name)),*];
    };
}

with_options!(config_types);

/// A layer's value, when it sets one, replaces the one below.
fn replace<T: Clone>(field: &mut T, value: &Option<T>) {
    if let Some(v) = value {
        *field = v.clone();
    }
}

/// A layer's value, when it sets one, replaces the one below (an option unset by default).
fn replace_some<T: Clone>(field: &mut Option<T>, value: &Option<T>) {
    if let Some(v) = value {
        *field = Some(v.clone());
    }
}

/// A layer's list adds to the one below.
fn add<T: Clone>(field: &mut Vec<T>, value: &[T]) {
    field.extend(value.iter().cloned());
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
    /// What `peers --format zenoh` prints: every TCP address of every peer as a zenoh endpoint
    /// (`tcp/10.0.0.2:52414`), on one line.
    Zenoh,
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
        let c = Config::from_toml("peers_file_format = \"zenoh\"").unwrap();
        assert_eq!(c.peers_file_format, PeersFormat::Zenoh);
        let e = Config::from_toml("peers_file_format = \"xml\"").unwrap_err();
        assert!(e.contains("line 1") && e.contains("xml"), "{e}");
        for accepted in ["json", "csv", "zenoh"] {
            assert!(e.contains(accepted), "{e} does not name {accepted}");
        }
    }

    #[test]
    fn shipped_config_equals_defaults() {
        let text = include_str!("../../config/exo-discovery.toml");
        assert_eq!(Config::from_toml(text).unwrap(), Config::default());
    }

    #[test]
    fn shipped_config_shows_every_option() {
        let text = include_str!("../../config/exo-discovery.toml");
        for key in OPTION_KEYS {
            let shown = text.lines().any(|l| {
                let l = l.trim_start_matches("# ");
                l.strip_prefix(key)
                    .is_some_and(|rest| rest.starts_with(" = "))
            });
            assert!(shown, "{key} is not in config/exo-discovery.toml");
        }
        assert_eq!(OPTION_KEYS.len(), 19);
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
