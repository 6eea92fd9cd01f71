//! The `exo-discovery` command line: run the agent, make a key, announce a node, list and watch
//! peers. Arguments are parsed and checked first ([`cli::args`]); only then is anything touched.
//! This file only dispatches; the commands are in [`cli`].

mod cli;

use clap::Parser;
use cli::args::{self, Cli, Cmd};
use cli::{doctor, node, query, run};
use std::process::ExitCode;

fn main() -> ExitCode {
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
