//! The `exo-discovery` command line: run the agent, make a key, announce a node, list and watch
//! peers. Arguments are parsed and checked first; only then is anything touched.

use clap::{Args, Parser, Subcommand};
use exo_discovery::client::Client;
use exo_discovery::config::{self, Config, Overrides};
use exo_discovery::proto::{AgentMsg, EventKind, PeerEvent, PeerInfo};
use exo_discovery::{agent, keyfile, logging, server};
use multiaddr::Multiaddr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

mod cli;
use cli::render;

/// Finds Exo cluster nodes on every interface (mDNS, IPv4 + IPv6), verifies their signed records
/// and hands them to the local node over a Unix socket.
#[derive(Parser, Debug)]
#[command(name = "exo-discovery", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
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
    },
    /// Print the verified peers known now.
    Peers {
        #[command(flatten)]
        socket: SocketArg,
        /// One JSON array (same as --format json).
        #[arg(long)]
        json: bool,
        /// text, json, or csv: every address of every peer, comma-separated on one line (full
        /// /p2p/ multiaddrs, for nodes that take a bootstrap list).
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
    /// Print peer events as they happen.
    Watch {
        #[command(flatten)]
        socket: SocketArg,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Text,
    Json,
    Csv,
}

#[derive(Args, Debug)]
struct SocketArg {
    /// The agent's socket (default: $XDG_RUNTIME_DIR/exo-discovery.sock, else
    /// /tmp/exo-discovery-<uid>.sock).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
}

impl SocketArg {
    fn path(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(config::default_socket_path)
    }
}

#[derive(Args, Debug)]
struct RunArgs {
    /// TOML config file (see config/exo-discovery.toml); flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Socket path for the node.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Use only interfaces matching this glob (repeatable).
    #[arg(long = "interface", value_name = "GLOB")]
    interfaces: Vec<String>,
    /// Never use interfaces matching this glob (repeatable).
    #[arg(long = "exclude-interface", value_name = "GLOB")]
    exclude_interfaces: Vec<String>,
    /// Cluster namespace (default "exo").
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// Use loopback interfaces too.
    #[arg(long)]
    loopback: bool,
    /// Drop a peer not heard on a link for this many seconds (at least 5; default 60). Unless the
    /// config file sets announce_interval_secs, own nodes are then re-announced every 20 s or
    /// every SECS/3 s, whichever is shorter; if it does, that interval must be below SECS.
    #[arg(long, value_name = "SECS")]
    peer_timeout: Option<u64>,
    /// Also hand over stock libp2p-mdns nodes (unsigned).
    #[arg(long)]
    accept_unsigned: bool,
    /// Hand over addresses without checking that they answer a TCP connect.
    #[arg(long)]
    no_verify_reachability: bool,
    /// Ask this host's agent for its records by unicast (repeatable): IP, IP%zone or name.
    #[arg(long = "static-host", value_name = "HOST")]
    static_hosts: Vec<String>,
    /// Where the peer cache is kept.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

impl RunArgs {
    /// What the flags set; the merge with the file and the checks are [`Config::merge`]'s.
    fn overrides(&self) -> Overrides {
        let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        Overrides {
            socket: self.socket.clone(),
            namespace: self.namespace.clone(),
            interfaces: non_empty(&self.interfaces),
            exclude_interfaces: self.exclude_interfaces.clone(),
            loopback: self.loopback.then_some(true),
            peer_timeout_secs: self.peer_timeout,
            accept_unsigned: self.accept_unsigned.then_some(true),
            verify_reachability: self.no_verify_reachability.then_some(false),
            static_hosts: self.static_hosts.clone(),
            state_dir: self.state_dir.clone(),
            ..Overrides::default()
        }
    }
}

/// The configuration in force: the file (if any) with the flags on top.
fn load_config(a: &RunArgs) -> Result<Config, String> {
    let file = match &a.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
            Overrides::from_toml(&text).map_err(|e| format!("config {}: {e}", path.display()))?
        }
        None => Overrides::default(),
    };
    Config::merge(&file, &a.overrides())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Run(a) => run(&a),
        Cmd::Keygen { out } => keygen(&out),
        Cmd::Announce {
            socket,
            key,
            addrs,
            namespace,
        } => announce(&socket.path(), &key, &addrs, namespace.as_deref()),
        Cmd::Peers {
            socket,
            json,
            format,
        } => peers(&socket.path(), if json { Format::Json } else { format }),
        Cmd::Watch { socket, json } => watch(&socket.path(), json),
        Cmd::Status { socket, json } => status(&socket.path(), json),
        Cmd::Doctor {
            json,
            interfaces,
            loopback,
            wait,
        } => return doctor(json, &interfaces, loopback, wait),
        Cmd::AddHost { socket, host } => manage(&socket.path(), |c| c.add_host(&host)),
        Cmd::RemoveHost { socket, host } => manage(&socket.path(), |c| c.remove_host(&host)),
        Cmd::AddPeer { socket, multiaddr } => {
            let text = multiaddr.to_string();
            if !matches!(multiaddr.iter().last(), Some(multiaddr::Protocol::P2p(_))) {
                Err(format!("{text} must end in /p2p/<peer-id>"))
            } else {
                manage(&socket.path(), |c| c.add_peer(&text))
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("exo-discovery: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run(a: &RunArgs) -> Result<(), String> {
    let cfg = load_config(a)?;
    logging::init();
    let path = cfg.socket_path();
    let listener = server::bind(&path).map_err(|e| format!("socket {}: {e}", path.display()))?;
    let signals =
        async_signal::Signals::new([async_signal::Signal::Term, async_signal::Signal::Int])
            .map_err(|e| format!("cannot catch signals: {e}"))?;
    let accept = async_io::Async::new(
        listener
            .inner
            .try_clone()
            .map_err(|e| format!("socket: {e}"))?,
    )
    .map_err(|e| format!("socket: {e}"))?;
    log::info!(
        "listening on {} (namespace {:?})",
        path.display(),
        cfg.namespace
    );
    let ex = Rc::new(smol::LocalExecutor::new());
    let (tx, rx) = async_channel::bounded(1024);
    let namespace = cfg.namespace.clone();
    async_io::block_on(ex.run(async {
        let _server = ex.spawn(server::serve(accept, ex.clone(), tx.clone(), namespace));
        let stop = tx.clone();
        let _signals = ex.spawn(async move {
            use futures_lite::StreamExt;
            let mut signals = signals;
            if let Some(Ok(sig)) = signals.next().await {
                log::info!("received {sig:?}");
                let _ = stop.send(agent::Input::Shutdown).await;
            }
        });
        agent::run(cfg, ex.clone(), tx, rx).await;
    }));
    drop(listener);
    Ok(())
}

fn keygen(out: &Path) -> Result<(), String> {
    let key = keyfile::create(out)?;
    println!("{}", key.public().to_peer_id());
    Ok(())
}

fn announce(
    socket: &Path,
    key: &Path,
    addrs: &[Multiaddr],
    namespace: Option<&str>,
) -> Result<(), String> {
    let key = keyfile::read(key)?;
    // Block the signals in every thread, then wait for them in one: a clean exit on ^C.
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(nix::sys::signal::Signal::SIGINT);
    set.add(nix::sys::signal::Signal::SIGTERM);
    set.thread_block()
        .map_err(|e| format!("cannot block signals: {e}"))?;
    let mut client = Client::connect(socket).map_err(|e| e.to_string())?;
    let ns = namespace.unwrap_or(client.namespace()).to_owned();
    let peer = client
        .register_in(&key, addrs, &ns)
        .map_err(|e| e.to_string())?;
    println!("announcing {peer}");
    let _ = std::io::stdout().flush();
    let (tx, rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        let _ = set.wait();
        let _ = tx2.send(Ok(()));
    });
    std::thread::spawn(move || loop {
        match client.next_message() {
            Ok(_) => continue,
            Err(e) => {
                let _ = tx.send(Err(format!("the agent went away: {e}")));
                return;
            }
        }
    });
    rx.recv().unwrap_or(Ok(()))
}

fn status(socket: &Path, json: bool) -> Result<(), String> {
    let mut client = Client::connect(socket).map_err(|e| e.to_string())?;
    let st = client.status().map_err(|e| e.to_string())?;
    let text = if json {
        render::json(&st).unwrap_or_default()
    } else {
        render::status(&st)
    };
    let _ = writeln!(std::io::stdout().lock(), "{text}");
    Ok(())
}

/// Exit status 0 when at least one interface is fully usable, 1 otherwise.
fn doctor(json: bool, globs: &[String], loopback: bool, wait: u64) -> ExitCode {
    let report = match exo_discovery::doctor::run(globs, loopback, Duration::from_secs(wait)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("exo-discovery: cannot list interfaces: {e}");
            return ExitCode::FAILURE;
        }
    };
    let text = if json {
        render::json(&report).unwrap_or_default()
    } else {
        render::doctor(&report)
    };
    let _ = writeln!(std::io::stdout().lock(), "{text}");
    if report.usable {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn manage(
    socket: &Path,
    f: impl FnOnce(&mut Client) -> Result<String, exo_discovery::client::ClientError>,
) -> Result<(), String> {
    let mut client = Client::connect(socket).map_err(|e| e.to_string())?;
    let message = f(&mut client).map_err(|e| e.to_string())?;
    println!("{message}");
    Ok(())
}

fn peers(socket: &Path, format: Format) -> Result<(), String> {
    let mut client = Client::connect(socket).map_err(|e| e.to_string())?;
    let list = client.list().map_err(|e| e.to_string())?;
    let text = match format {
        Format::Json => render::json(&list)?,
        Format::Csv => render::peers_csv(&list),
        Format::Text => render::peers_text(&list),
    };
    let _ = writeln!(std::io::stdout().lock(), "{text}");
    Ok(())
}

fn watch(socket: &Path, json: bool) -> Result<(), String> {
    let mut client = Client::connect(socket).map_err(|e| e.to_string())?;
    let snapshot = client.subscribe().map_err(|e| e.to_string())?;
    let print = |ev: PeerEvent| {
        let mut out = std::io::stdout().lock();
        let line = render::event(&ev, json);
        // A closed stdout (the reader went away) ends the watch.
        writeln!(out, "{line}").and_then(|_| out.flush()).is_ok()
    };
    let emit_snapshot = |peers: Vec<PeerInfo>| {
        peers.into_iter().all(|peer| {
            print(PeerEvent {
                event: EventKind::Discovered,
                peer,
            })
        })
    };
    if !emit_snapshot(snapshot) {
        return Ok(());
    }
    loop {
        let ok = match client.next_message().map_err(|e| e.to_string())? {
            AgentMsg::Event(ev) => print(ev),
            AgentMsg::Snapshot(peers) => emit_snapshot(peers),
            AgentMsg::Error { message, .. } => return Err(message),
            _ => true,
        };
        if !ok {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

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
    fn peer_timeout_flag_alone_sets_the_announce_interval_to_a_third() {
        let c = Config::merge(&Overrides::default(), &run_flags(&["--peer-timeout", "6"])).unwrap();
        assert_eq!((c.peer_timeout_secs, c.announce_interval_secs), (6, 2));
        let e = Config::merge(&Overrides::default(), &run_flags(&["--namespace", ""])).unwrap_err();
        assert!(e.contains("namespace"), "{e}");
    }

    #[test]
    fn format_flag_takes_csv() {
        let cli = Cli::try_parse_from(["exo-discovery", "peers", "--format", "csv"]).unwrap();
        assert!(matches!(
            cli.cmd,
            Cmd::Peers {
                format: Format::Csv,
                ..
            }
        ));
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
