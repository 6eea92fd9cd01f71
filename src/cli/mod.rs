//! The `exo-discovery` command line: [`main`] parses the arguments and dispatches. Its parts:
//! [`args`] (the flags; pure), [`render`] (how results are shown; pure), and the shells that run
//! the commands: [`run`] (the agent), [`node`] (`keygen`, `announce`), [`query`] (the commands that
//! ask the running agent) and [`doctor`].

// clap derives: a flag's doc comment is its help text, and some flags take theirs from `help =`.
#[allow(missing_docs)]
pub mod args;
pub mod doctor;
pub mod keyfile;
pub mod logging;
pub mod mesh;
pub mod node;
pub mod query;
pub mod render;
pub mod run;

use clap::Parser;
use args::{Cli, Cmd};
use std::process::ExitCode;

/// The binary's `main`: parses the arguments, then runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Run(a) => run::run(&a),
        Cmd::Keygen { out } => node::keygen(&out),
        Cmd::Announce {
            socket,
            key,
            addrs,
            namespace,
            seq,
        } => node::announce(&socket.path(), &key, &addrs, namespace.as_deref(), seq),
        Cmd::Sign {
            key,
            addrs,
            namespace,
            seq,
        } => node::sign(&key, &addrs, &namespace, seq),
        Cmd::Peers {
            socket,
            json,
            format,
        } => query::peers(&socket.path(), format.or_json(json)),
        Cmd::Watch { socket, json } => query::watch(&socket.path(), json),
        Cmd::Status { socket, json } => query::status(&socket.path(), json),
        Cmd::Mesh { socket, json, svg } => query::mesh(&socket.path(), json, svg.as_deref()),
        Cmd::Doctor {
            json,
            interfaces,
            loopback,
            wait,
        } => return doctor::doctor(json, &interfaces, loopback, wait),
        Cmd::AddHost { socket, host } => query::manage(&socket.path(), |c| c.add_host(&host)),
        Cmd::RemoveHost { socket, host } => query::manage(&socket.path(), |c| c.remove_host(&host)),
        Cmd::AddPeer { socket, multiaddr } => args::p2p_multiaddr(&multiaddr)
            .and_then(|text| query::manage(&socket.path(), |c| c.add_peer(&text))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("exo-discovery: {msg}");
            ExitCode::FAILURE
        }
    }
}
