//! A libp2p node shaped like Exo's (TCP, noise, yamux, ping), fed peers by the exo-discovery agent.
//!
//! Run with: cargo run --example libp2p_node -- --socket PATH --key FILE

// Listens on `/ip4/0.0.0.0/tcp/0` and `/ip6/::/tcp/0` (no libp2p mDNS), registers the listen
// addresses the swarm reports with the agent (the registration lives as long as that connection),
// subscribes on a second connection, and dials every address of every peer handed over unless it
// is already connected to that peer (or still dialing that address). Prints one flushed line per
// happening: `peer-id`, `listening`, `registered`, `update`, `dialing`, `connected`, `expired`.

use exo_discovery::client::{Client, ClientError};
use exo_discovery::proto::{AgentMsg, EventKind, PeerInfo};
use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{noise, ping, tcp, yamux, Multiaddr, PeerId, Swarm};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

/// How long to keep collecting listen addresses after the first one, so both families are in.
const COLLECT: Duration = Duration::from_millis(300);
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

struct Args {
    socket: PathBuf,
    key: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut socket = None;
    let mut key = None;
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
        let v = it
            .next()
            .ok_or_else(|| format!("{} needs a value; {USAGE}", a.to_string_lossy()))?;
        *slot = Some(PathBuf::from(v));
    }
    Ok(Args {
        socket: socket.ok_or(format!("--socket is required; {USAGE}"))?,
        key: key.ok_or(format!("--key is required; {USAGE}"))?,
    })
}

/// What the subscription thread hands to the swarm task.
enum FromAgent {
    /// A peer to dial (snapshot entry, `discovered` or `updated`).
    Peer(PeerInfo),
    /// An `expired` event.
    Expired(String),
    /// The subscription connection failed.
    Failed(ClientError),
}

/// Reads the subscription forever (on its own thread: the client is blocking).
fn forward(mut events: Client, snapshot: Vec<PeerInfo>, tx: mpsc::UnboundedSender<FromAgent>) {
    for p in snapshot {
        if tx.send(FromAgent::Peer(p)).is_err() {
            return;
        }
    }
    loop {
        let msg = match events.next_message() {
            Ok(AgentMsg::Snapshot(peers)) => peers.into_iter().map(FromAgent::Peer).collect(),
            Ok(AgentMsg::Event(ev)) => match ev.event {
                EventKind::Expired => vec![FromAgent::Expired(ev.peer.peer_id)],
                _ => vec![FromAgent::Peer(ev.peer)],
            },
            Ok(_) => Vec::new(),
            Err(e) => vec![FromAgent::Failed(e)],
        };
        let failed = msg.iter().any(|m| matches!(m, FromAgent::Failed(_)));
        for m in msg {
            if tx.send(m).is_err() {
                return;
            }
        }
        if failed {
            return;
        }
    }
}

/// Dials in flight: the agent may hand a peer over several times before a dial completes (an
/// address per family as it hears them), and each address needs dialing only once.
type Pending = HashMap<ConnectionId, Multiaddr>;

/// Dials every address of `peer` unless it is already connected (or that address is being dialed).
fn hand_over(swarm: &mut Swarm<ping::Behaviour>, pending: &mut Pending, peer: &PeerInfo) {
    say!("update {} {}", peer.peer_id, peer.addrs.join(","));
    let id: PeerId = match peer.peer_id.parse() {
        Ok(id) => id,
        Err(e) => {
            eprintln!("agent handed over a bad peer ID {}: {e}", peer.peer_id);
            return;
        }
    };
    if id == *swarm.local_peer_id() || swarm.is_connected(&id) {
        return;
    }
    for a in &peer.addrs {
        let addr: Multiaddr = match a.parse() {
            Ok(addr) => addr,
            Err(e) => {
                eprintln!("agent handed over a bad multiaddr {a}: {e}");
                continue;
            }
        };
        if pending.values().any(|p| *p == addr) {
            continue;
        }
        say!("dialing {addr}");
        let opts = DialOpts::from(addr.clone());
        let id = opts.connection_id();
        match swarm.dial(opts) {
            Ok(()) => {
                pending.insert(id, addr);
            }
            Err(e) => eprintln!("dial {a}: {e}"),
        }
    }
}

/// Reports swarm events other than listen addresses, and forgets finished dials.
fn on_swarm_event(ev: SwarmEvent<ping::Event>, pending: &mut Pending) {
    match ev {
        SwarmEvent::ConnectionEstablished {
            peer_id,
            endpoint,
            connection_id,
            ..
        } => {
            pending.remove(&connection_id);
            say!("connected {peer_id} {}", endpoint.get_remote_address());
        }
        SwarmEvent::OutgoingConnectionError {
            peer_id,
            error,
            connection_id,
        } => {
            pending.remove(&connection_id);
            let who = peer_id.map(|p| p.to_string()).unwrap_or_default();
            eprintln!("dial to {who} failed: {error}");
        }
        SwarmEvent::ConnectionClosed { peer_id, cause, .. } => {
            eprintln!("connection to {peer_id} closed ({cause:?})");
        }
        SwarmEvent::ListenerError { error, .. } => eprintln!("listener error: {error}"),
        _ => {}
    }
}

/// Registers the changed listen addresses (a new record replaces the previous one).
fn reregister(agent: &mut Client, keypair: &Keypair, addrs: &[Multiaddr]) -> Result<(), String> {
    agent
        .register(keypair, addrs)
        .map_err(|e| format!("re-registration refused: {e}"))?;
    say!("registered");
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let keypair = exo_discovery::keyfile::read_or_create(&args.key)?;
    // Connect first, so a missing agent is reported at once; register once the addresses are known.
    let mut agent = Client::connect(&args.socket).map_err(|e| e.to_string())?;
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
        .with_behaviour(|_| ping::Behaviour::new(ping::Config::new()))
        .map_err(|e| format!("cannot set up the behaviour: {e}"))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE))
        .build();
    say!("peer-id {}", swarm.local_peer_id());

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

    // Collect listen addresses: until the first, then for COLLECT more.
    let mut addrs: Vec<Multiaddr> = Vec::new();
    let mut pending = Pending::new();
    let collect = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(collect);
    loop {
        tokio::select! {
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::NewListenAddr { address, .. } => {
                    say!("listening {address}");
                    if addrs.is_empty() {
                        collect.as_mut().reset(tokio::time::Instant::now() + COLLECT);
                    }
                    addrs.push(address);
                }
                other => on_swarm_event(other, &mut pending),
            },
            _ = &mut collect => break,
            _ = sigint.recv() => return Ok(()),
            _ = sigterm.recv() => return Ok(()),
        }
    }

    // Register (kept for the life of the process), then subscribe on a second connection.
    agent
        .register(&keypair, &addrs)
        .map_err(|e| format!("registration refused: {e}"))?;
    say!("registered");
    let mut events = Client::connect(&args.socket).map_err(|e| e.to_string())?;
    let snapshot = events.subscribe().map_err(|e| e.to_string())?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || forward(events, snapshot, tx));

    loop {
        tokio::select! {
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::NewListenAddr { address, .. } => {
                    say!("listening {address}");
                    addrs.push(address);
                    reregister(&mut agent, &keypair, &addrs)?;
                }
                SwarmEvent::ExpiredListenAddr { address, .. } => {
                    addrs.retain(|a| *a != address);
                    if !addrs.is_empty() {
                        reregister(&mut agent, &keypair, &addrs)?;
                    }
                }
                other => on_swarm_event(other, &mut pending),
            },
            msg = rx.recv() => match msg {
                Some(FromAgent::Peer(p)) => hand_over(&mut swarm, &mut pending, &p),
                Some(FromAgent::Expired(id)) => say!("expired {id}"),
                Some(FromAgent::Failed(e)) => return Err(format!("agent subscription failed: {e}")),
                None => return Err("agent subscription ended".into()),
            },
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
    }
    // Closing the registration's connection withdraws it (the agent sends goodbyes).
    drop(agent);
    Ok(())
}
