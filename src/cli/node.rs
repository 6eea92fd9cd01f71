//! The node's side: `keygen` writes a key, `sign` prints a signed record, `announce` holds a
//! registration with the running agent until interrupted.

use crate::client::reconnect::{Reconnecting, Update};
use crate::cli::keyfile;
use crate::wire::record;
use multiaddr::Multiaddr;
use std::io::Write;
use std::path::Path;

/// Writes a new key to `out` (never over an existing file) and prints its peer ID.
pub fn keygen(out: &Path) -> Result<(), String> {
    let key = keyfile::create(out)?;
    println!("{}", key.public().to_peer_id());
    Ok(())
}

/// Prints a record signed with the key, for these addresses, namespace and seq (default: the
/// clock in microseconds), as one line of hex: what `register` takes in the socket's JSON mode.
pub fn sign(
    key: &Path,
    addrs: &[Multiaddr],
    namespace: &str,
    seq: Option<u64>,
) -> Result<(), String> {
    let key = keyfile::read(key)?;
    let seq = seq.unwrap_or_else(crate::client::clock_micros);
    let signed = record::sign(&key, namespace, seq, addrs)
        .map_err(|e| format!("cannot sign the record: {e}"))?;
    println!("{}", crate::wire::protocol_json::to_hex(&signed));
    Ok(())
}

/// Registers the key's node with its addresses and holds the registration until SIGINT or
/// SIGTERM, across restarts of the agent (it reconnects and registers again).
pub fn announce(
    socket: &Path,
    key: &Path,
    addrs: &[Multiaddr],
    namespace: Option<&str>,
    seq: Option<u64>,
) -> Result<(), String> {
    let key = keyfile::read(key)?;
    // Block the signals in every thread, then wait for them in one: a clean exit on ^C.
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(nix::sys::signal::Signal::SIGINT);
    set.add(nix::sys::signal::Signal::SIGTERM);
    set.thread_block()
        .map_err(|e| format!("cannot block signals: {e}"))?;
    let mut agent = Reconnecting::connect(socket).map_err(|e| e.to_string())?;
    if let Some(first) = seq {
        agent = agent.counting_from(first);
    }
    let peer = agent
        .register(key, addrs.to_vec(), namespace)
        .map_err(|e| e.to_string())?;
    println!("announcing {peer}");
    let _ = std::io::stdout().flush();
    let (tx, rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        let _ = set.wait();
        let _ = tx2.send(Ok(()));
    });
    // The registration outlives agent restarts: the client reconnects and registers again.
    std::thread::spawn(move || loop {
        match agent.next_update() {
            Ok(Update::Lost(why)) => {
                eprintln!("exo-discovery: the agent went away ({why}); reconnecting");
            }
            Ok(Update::Back) => eprintln!("exo-discovery: announcing {peer} again"),
            Ok(Update::Msg(_)) => {}
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
                return;
            }
        }
    });
    rx.recv().unwrap_or(Ok(()))
}
