//! The body of the libp2p_node example, Linux only: see `../libp2p_node.rs`.

// Listens on `/ip4/0.0.0.0/tcp/0` and `/ip6/::/tcp/0`; the behaviour registers the listen
// addresses with the agent and reports its peers; a peer discovered is dialled by its peer ID
// alone (the behaviour hands the swarm its addresses) unless connected or being dialled. Prints
// one flushed line per happening: `peer-id`, `listening`, `registered`, `agent-connected`,
// `agent-lost`, `update`, `dialing`, `connected`, `closed`, `expired`.

use exo_discovery_libp2p::{AgentStatus, Event as Discovery};
use libp2p::futures::StreamExt;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{noise, ping, tcp, yamux, Multiaddr, PeerId, Swarm};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// Connections are kept open by this long idle timeout (ping alone does not keep them alive).
const IDLE: Duration = Duration::from_secs(24 * 3600);

const USAGE: &str = "usage: libp2p_node --socket PATH --key FILE";

/// Prints one line on stdout and flushes it (a closed stdout is ignored).
macro_rules! say {
    ($($arg:tt)*) => {{
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, $($arg)*);
        let _ = out.flush();
    }};
}

#[derive(NetworkBehaviour)]
struct Node {
    discovery: exo_discovery_libp2p::Behaviour,
    ping: ping::Behaviour,
}

struct Args {
    socket: PathBuf,
    key: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let (mut socket, mut key) = (None, None);
    let mut it = std::env::args_os().skip(1);
    while let Some(a) = it.next() {
        let slot = match a.to_str() {
            Some("--socket") => &mut socket,
            Some("--key") => &mut key,
            Some("--help" | "-h") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(format!("unexpected argument {a:?}; {USAGE}")),
        };
        let v = it.next().ok_or(format!("{a:?} needs a value; {USAGE}"))?;
        *slot = Some(PathBuf::from(v));
    }
    Ok(Args {
        socket: socket.ok_or(format!("--socket is required; {USAGE}"))?,
        key: key.ok_or(format!("--key is required; {USAGE}"))?,
    })
}

/// The peers `pairs` name, each once.
fn by_peer(pairs: &[(PeerId, Multiaddr)]) -> BTreeSet<PeerId> {
    pairs.iter().map(|(p, _)| *p).collect()
}

fn joined(addrs: &[Multiaddr]) -> String {
    let all: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    all.join(",")
}

fn on_event(swarm: &mut Swarm<Node>, ev: SwarmEvent<NodeEvent>) {
    match ev {
        SwarmEvent::NewListenAddr { address, .. } => say!("listening {address}"),
        SwarmEvent::Behaviour(NodeEvent::Discovery(Discovery::Discovered(pairs))) => {
            for peer in by_peer(&pairs) {
                let addrs = swarm
                    .behaviour()
                    .discovery
                    .addresses_of_peer(&peer)
                    .to_vec();
                say!("update {peer} {}", joined(&addrs));
                let opts = DialOpts::peer_id(peer)
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build();
                if swarm.dial(opts).is_ok() {
                    addrs.iter().for_each(|a| say!("dialing {a}"));
                }
            }
        }
        SwarmEvent::Behaviour(NodeEvent::Discovery(Discovery::Expired(pairs))) => {
            for peer in by_peer(&pairs) {
                let gone: Vec<Multiaddr> = pairs
                    .iter()
                    .filter(|(p, _)| *p == peer)
                    .map(|(_, a)| a.clone())
                    .collect();
                say!("expired {peer} {}", joined(&gone));
            }
        }
        SwarmEvent::ConnectionEstablished {
            peer_id, endpoint, ..
        } => {
            say!("connected {peer_id} {}", endpoint.get_remote_address());
        }
        SwarmEvent::ConnectionClosed { peer_id, cause, .. } => say!("closed {peer_id} {cause:?}"),
        SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
            eprintln!("dial to {peer_id:?} failed: {error}");
        }
        SwarmEvent::ListenerError { error, .. } => eprintln!("listener error: {error}"),
        _ => {}
    }
}

#[tokio::main(flavor = "current_thread")]
pub async fn main() -> ExitCode {
    exo_discovery::cli::logging::init();
    match parse_args() {
        Ok(args) => match run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let keypair = exo_discovery::cli::keyfile::read_or_create(&args.key)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT: {e}"))?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| format!("cannot set up noise: {e}"))?
        .with_behaviour(|key| Node {
            discovery: exo_discovery_libp2p::Behaviour::new(key, &args.socket),
            ping: ping::Behaviour::new(ping::Config::new()),
        })
        .map_err(|e| format!("cannot set up the behaviour: {e}"))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE))
        .build();
    say!("peer-id {}", swarm.local_peer_id());
    let agent = swarm.behaviour_mut().discovery.agent_status();
    let mut listening = 0;
    for a in ["/ip4/0.0.0.0/tcp/0", "/ip6/::/tcp/0"] {
        match swarm.listen_on(a.parse().expect("valid multiaddr")) {
            Ok(_) => listening += 1,
            Err(e) => eprintln!("cannot listen on {a}: {e}"),
        }
    }
    if listening == 0 {
        return Err("cannot listen on any address".into());
    }
    loop {
        tokio::select! {
            ev = swarm.select_next_some() => on_event(&mut swarm, ev),
            Ok(status) = agent.recv() => match status {
                AgentStatus::Registered { .. } => say!("registered"),
                AgentStatus::Connected { peers, .. } => say!("agent-connected {peers}"),
                AgentStatus::Disconnected(why) => say!("agent-lost {why}"),
                other => eprintln!("agent: {other:?}"),
            },
            _ = sigint.recv() => return Ok(()),
            _ = sigterm.recv() => return Ok(()),
        }
    }
}
