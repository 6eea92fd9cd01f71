//! The body of the stock_mdns_node example, Linux only: see `../stock_mdns_node.rs`.

// Listens on `/ip4/0.0.0.0/tcp/0`, runs `libp2p::mdns::tokio::Behaviour` with its default
// configuration and dials what it discovers. Prints one flushed line per happening: `peer-id`,
// `listening`, `discovered`, `connected`.

use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{mdns, noise, ping, tcp, yamux, Multiaddr, PeerId};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// Connections are kept open by this long idle timeout (ping alone does not keep them alive).
const IDLE: Duration = Duration::from_secs(24 * 3600);

const USAGE: &str = "usage: stock_mdns_node [--key FILE]";

/// Prints one line on stdout and flushes it (a closed stdout is ignored).
macro_rules! say {
    ($($arg:tt)*) => {{
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, $($arg)*);
        let _ = out.flush();
    }};
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    ping: ping::Behaviour,
    mdns: mdns::tokio::Behaviour,
}

fn parse_args() -> Result<Option<PathBuf>, String> {
    let mut key = None;
    let mut it = std::env::args_os().skip(1);
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("--key") => {
                let v = it.next().ok_or(format!("--key needs a value; {USAGE}"))?;
                key = Some(PathBuf::from(v));
            }
            Some("--help" | "-h") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(format!("unexpected argument {a:?}; {USAGE}")),
        }
    }
    Ok(key)
}

#[tokio::main(flavor = "current_thread")]
pub async fn main() -> ExitCode {
    let key = match parse_args() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(key.as_deref()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(key: Option<&Path>) -> Result<(), String> {
    let keypair = match key {
        Some(path) => exo_discovery::cli::keyfile::read_or_create(path)?,
        None => Keypair::generate_ed25519(),
    };
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT: {e}"))?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?;

    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| format!("cannot set up noise: {e}"))?
        .with_behaviour(|key| {
            Ok(Behaviour {
                ping: ping::Behaviour::new(ping::Config::new()),
                mdns: mdns::tokio::Behaviour::new(
                    mdns::Config::default(),
                    key.public().to_peer_id(),
                )?,
            })
        })
        .map_err(|e| format!("cannot set up the behaviour: {e}"))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE))
        .build();
    say!("peer-id {}", swarm.local_peer_id());
    swarm
        .listen_on("/ip4/0.0.0.0/tcp/0".parse().expect("valid multiaddr"))
        .map_err(|e| format!("cannot listen on /ip4/0.0.0.0/tcp/0: {e}"))?;

    loop {
        tokio::select! {
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::NewListenAddr { address, .. } => say!("listening {address}"),
                SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(list))) => {
                    let mut by_peer: BTreeMap<PeerId, Vec<Multiaddr>> = BTreeMap::new();
                    for (peer, addr) in list {
                        say!("discovered {peer} {addr}");
                        by_peer.entry(peer).or_default().push(addr);
                    }
                    for (peer, addrs) in by_peer {
                        if swarm.is_connected(&peer) {
                            continue;
                        }
                        let opts = DialOpts::peer_id(peer).addresses(addrs).build();
                        if let Err(e) = swarm.dial(opts) {
                            eprintln!("dial {peer}: {e}");
                        }
                    }
                }
                SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                    say!("connected {peer_id} {}", endpoint.get_remote_address());
                }
                SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                    let who = peer_id.map(|p| p.to_string()).unwrap_or_default();
                    eprintln!("dial to {who} failed: {error}");
                }
                _ => {}
            },
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
    }
    Ok(())
}
