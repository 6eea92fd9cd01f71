//! The command line's flags: one definition each, with its help, and what they mean as values
//! (the `run` flags as [`Overrides`], a checked `add-peer` address). Pure: nothing here touches the
//! environment, apart from [`SocketArg::path`]'s default.

use clap::{Args, Parser, Subcommand};
use crate::wire::config::{self, Overrides, PeersFormat};
use multiaddr::Multiaddr;
use std::path::PathBuf;

/// Finds Exo cluster nodes on every interface (mDNS, IPv4 + IPv6), verifies their signed records
/// and hands them to the local node over a Unix socket.
#[derive(Parser, Debug)]
#[command(name = "exo-discovery", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run the agent (until SIGINT or SIGTERM, which send goodbyes for every announced node).
    Run(RunArgs),
    /// Write a new libp2p ed25519 keypair (protobuf encoding) and print its peer ID.
    Keygen {
        /// Where to write the key; an existing file is never overwritten.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Announce a node through the running agent until interrupted.
    Announce {
        #[command(flatten)]
        socket: SocketArg,
        /// The node's key file (libp2p protobuf encoding, as written by `keygen`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// A listen address of the node, e.g. /ip4/0.0.0.0/tcp/4001 (repeatable).
        #[arg(long = "addr", value_name = "MULTIADDR", required = true)]
        addrs: Vec<Multiaddr>,
        /// Namespace to sign for (default: the agent's; a different one is refused).
        #[arg(long, value_name = "NS")]
        namespace: Option<String>,
        /// Sign the first record with this seq, and count up from it, instead of using this
        /// host's clock in microseconds (for a node that keeps its own counter).
        #[arg(long, value_name = "N")]
        seq: Option<u64>,
    },
    /// Sign a record for a node and print it as one line of hex, as `register` takes it on the
    /// socket in JSON mode (no agent needed).
    Sign {
        /// The node's key file (libp2p protobuf encoding, as written by `keygen`).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// A listen address of the node, e.g. /ip4/0.0.0.0/tcp/4001 (repeatable).
        #[arg(long = "addr", value_name = "MULTIADDR", required = true)]
        addrs: Vec<Multiaddr>,
        /// The cluster namespace the record is for (the agent's, or it is refused).
        #[arg(long, value_name = "NS", default_value = config::DEFAULT_NAMESPACE)]
        namespace: String,
        /// The record's seq (default: this host's clock in microseconds); a node's later record
        /// must have a higher one.
        #[arg(long, value_name = "N")]
        seq: Option<u64>,
    },
    /// Print the verified peers known now.
    Peers {
        #[command(flatten)]
        socket: SocketArg,
        /// One JSON array (same as --format json).
        #[arg(long)]
        json: bool,
        /// text, json, csv: every address of every peer, comma-separated on one line (full
        /// /p2p/ multiaddrs, for nodes that take a bootstrap list), or zenoh: every TCP address
        /// as a zenoh endpoint (tcp/10.0.0.2:52414, tcp/[fe80::2]:52414#iface=eth0),
        /// comma-separated on one line (for a zenoh program's connect/endpoints).
        #[arg(long, value_name = "FORMAT", default_value = "text")]
        format: Format,
    },
    /// Ask the agent to query this host's agent by unicast from now on (where multicast fails).
    AddHost {
        #[command(flatten)]
        socket: SocketArg,
        /// An IP, an IPv6 link-local address with its interface (fe80::1%en5), or a name.
        host: String,
    },
    /// Stop querying a host added with add-host (or --static-host / static_hosts).
    RemoveHost {
        #[command(flatten)]
        socket: SocketArg,
        /// The host, spelled as it was added.
        host: String,
    },
    /// Hand a peer the operator vouches for to the node (unsigned; once it answers a TCP connect).
    AddPeer {
        #[command(flatten)]
        socket: SocketArg,
        /// Its full address, ending in /p2p/<peer-id>.
        multiaddr: Multiaddr,
    },
    /// The running agent's state: interfaces in use and why others are not, counters, peers.
    Status {
        #[command(flatten)]
        socket: SocketArg,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Who sees whom: the views of this agent and of its peers' agents, as a matrix.
    Mesh {
        #[command(flatten)]
        socket: SocketArg,
        /// One JSON object.
        #[arg(long)]
        json: bool,
        /// Also write a picture of the hosts and the missing pairs to this SVG file.
        #[arg(long, value_name = "FILE")]
        svg: Option<std::path::PathBuf>,
    },
    /// Explain, per interface and family, whether mDNS works and why not (no agent needed).
    Doctor {
        /// One JSON object.
        #[arg(long)]
        json: bool,
        /// Only interfaces matching this glob (repeatable).
        #[arg(long = "interface", value_name = "GLOB")]
        interfaces: Vec<String>,
        /// Include loopback interfaces.
        #[arg(long)]
        loopback: bool,
        /// How long to listen for other mDNS speakers, in seconds.
        #[arg(long, value_name = "SECS", default_value_t = 3)]
        wait: u64,
    },
    /// Print peer events as they happen (across restarts of the agent).
    Watch {
        #[command(flatten)]
        socket: SocketArg,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Csv,
    Zenoh,
}

impl Format {
    /// `peers --json` is `--format json`, whatever `--format` says.
    pub fn or_json(self, json: bool) -> Format {
        if json {
            Format::Json
        } else {
            self
        }
    }
}

#[derive(Args, Debug)]
pub struct SocketArg {
    /// The agent's socket (default: $XDG_RUNTIME_DIR/exo-discovery/agent.sock, else
    /// /tmp/exo-discovery-<uid>/agent.sock).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

impl SocketArg {
    pub fn path(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(crate::sys::default_socket_path)
    }
}

/// Declares [`RunArgs`]: `--config`, then a flag for each option of
/// [`crate::wire::config::with_options`] that has one, in the list's order, and what they set.
macro_rules! run_args {
    ($(
        $(#[$doc:meta])+
        $name:ident: $ty:ty = $default:expr;
        file $file_ty:ty, $merge:ident;
        $(flag $(#[$flag_attr:meta])* $flag:ident: $flag_ty:ty => $conv:expr;)?
    )*) => {
        #[derive(Args, Debug)]
        pub struct RunArgs {
            /// TOML config file (see config/exo-discovery.toml); flags override it.
            #[arg(long, value_name = "FILE")]
            pub config: Option<PathBuf>,
            $($($(#[$flag_attr])* pub $flag: $flag_ty,)?)*
        }

        impl RunArgs {
            /// What the flags set; the merge with the file and the checks are
            /// [`crate::wire::config::Config::merge`]'s.
            pub fn overrides(&self) -> Overrides {
                Overrides {
                    $($($name: $conv(&self.$flag),)?)*
                    ..Overrides::default()
                }
            }
        }
    };
}

config::with_options!(run_args);

/// A flag's value, as the layer's.
fn given<T: Clone>(value: &T) -> T {
    value.clone()
}

/// A switch that, when given, sets its option to `value`.
fn switch(value: bool) -> impl Fn(&bool) -> Option<bool> {
    move |given| given.then_some(value)
}

/// A repeatable flag whose list replaces the one below: given none, it sets nothing.
fn non_empty(values: &[String]) -> Option<Vec<String>> {
    (!values.is_empty()).then(|| values.to_vec())
}

/// `--peers-file-format`, one of the values clap lets through.
fn peers_format(format: &Option<String>) -> Option<PeersFormat> {
    format.as_deref().map(|f| match f {
        "csv" => PeersFormat::Csv,
        "zenoh" => PeersFormat::Zenoh,
        _ => PeersFormat::Json,
    })
}

/// The `add-peer` address as text, once it is known to end in `/p2p/<peer-id>`.
pub fn p2p_multiaddr(multiaddr: &Multiaddr) -> Result<String, String> {
    let text = multiaddr.to_string();
    if matches!(multiaddr.iter().last(), Some(multiaddr::Protocol::P2p(_))) {
        Ok(text)
    } else {
        Err(format!("{text} must end in /p2p/<peer-id>"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use crate::wire::config::Config;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    fn run_flags(args: &[&str]) -> Overrides {
        let cli = Cli::try_parse_from(["exo-discovery", "run"].iter().chain(args)).unwrap();
        let Cmd::Run(a) = cli.cmd else { panic!() };
        a.overrides()
    }

    #[test]
    fn sign_takes_a_key_addresses_and_defaults_to_the_default_namespace() {
        let cli = Cli::try_parse_from([
            "exo-discovery",
            "sign",
            "--key",
            "k",
            "--addr",
            "/ip4/0.0.0.0/tcp/4001",
        ])
        .unwrap();
        let Cmd::Sign {
            addrs,
            namespace,
            seq,
            ..
        } = cli.cmd
        else {
            panic!()
        };
        assert_eq!(addrs.len(), 1);
        assert_eq!(namespace, config::DEFAULT_NAMESPACE);
        assert_eq!(seq, None);
        assert!(Cli::try_parse_from(["exo-discovery", "sign", "--key", "k"]).is_err());
    }

    #[test]
    fn no_run_flag_sets_nothing() {
        assert_eq!(run_flags(&[]), Overrides::default());
    }

    #[test]
    fn each_run_flag_sets_its_option() {
        let o = run_flags(&[
            "--socket",
            "/s.sock",
            "--interface",
            "eth*",
            "--interface",
            "en*",
            "--exclude-interface",
            "eth9",
            "--namespace",
            "lab",
            "--loopback",
            "--peer-timeout",
            "6",
            "--accept-unsigned",
            "--no-verify-reachability",
            "--static-host",
            "10.0.0.1",
            "--state-dir",
            "/state",
        ]);
        let expected = Overrides {
            socket: Some("/s.sock".into()),
            namespace: Some("lab".into()),
            interfaces: Some(vec!["eth*".into(), "en*".into()]),
            exclude_interfaces: vec!["eth9".into()],
            loopback: Some(true),
            peer_timeout_secs: Some(6),
            accept_unsigned: Some(true),
            verify_reachability: Some(false),
            static_hosts: vec!["10.0.0.1".into()],
            state_dir: Some("/state".into()),
            ..Overrides::default()
        };
        assert_eq!(o, expected);
    }

    #[test]
    fn peer_timeout_flag_alone_sets_the_announce_interval_to_half() {
        let c = Config::merge(&Overrides::default(), &run_flags(&["--peer-timeout", "6"])).unwrap();
        assert_eq!((c.peer_timeout_secs, c.announce_interval_secs), (6, 3));
        let e = Config::merge(&Overrides::default(), &run_flags(&["--namespace", ""])).unwrap_err();
        assert!(e.contains("namespace"), "{e}");
    }

    fn peers_format(args: &[&str]) -> Format {
        let cli = Cli::try_parse_from(["exo-discovery", "peers"].iter().chain(args)).unwrap();
        let Cmd::Peers { json, format, .. } = cli.cmd else {
            panic!()
        };
        format.or_json(json)
    }

    #[test]
    fn peers_format_is_text_csv_json_or_zenoh() {
        assert_eq!(peers_format(&[]), Format::Text);
        assert_eq!(peers_format(&["--format", "csv"]), Format::Csv);
        assert_eq!(peers_format(&["--format", "json"]), Format::Json);
        assert_eq!(peers_format(&["--format", "zenoh"]), Format::Zenoh);
        assert_eq!(peers_format(&["--json"]), Format::Json);
        assert_eq!(peers_format(&["--json", "--format", "csv"]), Format::Json);
        let e = Cli::try_parse_from(["exo-discovery", "peers", "--format", "xml"])
            .unwrap_err()
            .to_string();
        for accepted in ["text", "json", "csv", "zenoh"] {
            assert!(e.contains(accepted), "{e} does not name {accepted}");
        }
    }

    #[test]
    fn peers_file_format_flag_takes_json_csv_or_zenoh() {
        let format = |f: &str| run_flags(&["--peers-file-format", f]).peers_file_format;
        assert_eq!(format("json"), Some(PeersFormat::Json));
        assert_eq!(format("csv"), Some(PeersFormat::Csv));
        assert_eq!(format("zenoh"), Some(PeersFormat::Zenoh));
        assert_eq!(run_flags(&[]).peers_file_format, None);
        let e = Cli::try_parse_from(["exo-discovery", "run", "--peers-file-format", "xml"])
            .unwrap_err()
            .to_string();
        for accepted in ["json", "csv", "zenoh"] {
            assert!(e.contains(accepted), "{e} does not name {accepted}");
        }
    }

    #[test]
    fn add_peer_needs_a_p2p_suffix() {
        let id = libp2p_identity::PeerId::random();
        let full: Multiaddr = format!("/ip4/10.0.0.1/tcp/4001/p2p/{id}").parse().unwrap();
        assert_eq!(p2p_multiaddr(&full), Ok(full.to_string()));
        let bare: Multiaddr = "/ip4/10.0.0.1/tcp/4001".parse().unwrap();
        assert_eq!(
            p2p_multiaddr(&bare),
            Err("/ip4/10.0.0.1/tcp/4001 must end in /p2p/<peer-id>".to_owned())
        );
    }

    #[test]
    fn bad_multiaddr_is_refused_by_the_parser() {
        let e = Cli::try_parse_from([
            "exo-discovery",
            "announce",
            "--key",
            "k",
            "--addr",
            "not-an-addr",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("not-an-addr"), "{e}");
    }
}
