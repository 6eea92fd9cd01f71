//! The commands that talk to the running agent over its socket: `peers`, `status`, `watch`,
//! `add-host`, `remove-host` and `add-peer`. What they print is [`render`]'s.

use crate::cli::args::Format;
use crate::cli::render;
use crate::client::{Client, ClientError};
use crate::wire::protocol::{AgentMsg, EventKind, PeerEvent, PeerInfo};
use crate::client::reconnect::{Reconnecting, Update};
use std::io::Write;
use std::path::Path;

/// Prints the peers known now.
pub fn peers(socket: &Path, format: Format) -> Result<(), String> {
    let mut client = Client::connect(socket).map_err(|e| e.to_string())?;
    let list = client.list().map_err(|e| e.to_string())?;
    let text = match format {
        Format::Json => render::json(&list)?,
        Format::Csv => render::peers_csv(&list),
        Format::Zenoh => render::peers_zenoh(&list),
        Format::Text => render::peers_text(&list),
    };
    let _ = writeln!(std::io::stdout().lock(), "{text}");
    Ok(())
}

/// Prints the agent's state.
pub fn status(socket: &Path, json: bool) -> Result<(), String> {
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

/// Prints the mesh matrix (or its JSON), and writes its picture to `svg` if given.
pub fn mesh(socket: &Path, json: bool, svg: Option<&Path>) -> Result<(), String> {
    let mut client = Client::connect(socket).map_err(|e| e.to_string())?;
    let hosts = client.mesh().map_err(|e| match e {
        ClientError::Agent(crate::wire::protocol::ErrorKind::Malformed, m) => {
            format!("the agent does not know `mesh` (an older version?): {m}")
        }
        e => e.to_string(),
    })?;
    let m = crate::cli::mesh::Matrix::build(&hosts);
    if let Some(path) = svg {
        std::fs::write(path, crate::cli::mesh::svg(&m))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let text = if json {
        render::json(&m)?
    } else {
        crate::cli::mesh::text(&m)
    };
    let _ = writeln!(std::io::stdout().lock(), "{text}");
    Ok(())
}

/// Prints the current peers as `discovered`, then every event, until stdout goes away; across
/// restarts of the agent (it reconnects, and prints the peers again as `discovered`).
pub fn watch(socket: &Path, json: bool) -> Result<(), String> {
    let mut agent = Reconnecting::connect(socket).map_err(|e| e.to_string())?;
    let snapshot = agent.subscribe().map_err(|e| e.to_string())?;
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
        let ok = match agent.next_update().map_err(|e| e.to_string())? {
            Update::Msg(AgentMsg::Event(ev)) => print(ev),
            Update::Msg(AgentMsg::Snapshot(peers)) => emit_snapshot(peers),
            Update::Msg(AgentMsg::Error { message, .. }) => return Err(message),
            Update::Msg(_) => true,
            Update::Lost(why) => {
                eprintln!("exo-discovery: the agent went away ({why}); reconnecting");
                true
            }
            Update::Back => true,
        };
        if !ok {
            return Ok(());
        }
    }
}

/// Sends one request and prints the agent's answer.
pub fn manage(
    socket: &Path,
    f: impl FnOnce(&mut Client) -> Result<String, ClientError>,
) -> Result<(), String> {
    let mut client = Client::connect(socket).map_err(|e| e.to_string())?;
    let message = f(&mut client).map_err(|e| e.to_string())?;
    println!("{message}");
    Ok(())
}
