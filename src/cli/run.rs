//! `run`: the configuration in force (the file read here, merged by [`Config::merge`]), then the
//! agent until SIGINT or SIGTERM.

use crate::cli::args::RunArgs;
use crate::wire::config::{Config, Overrides};
use crate::agent::{self, server};
use crate::cli::logging;

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

/// Runs the agent with the configuration in force until SIGINT or SIGTERM.
pub fn run(a: &RunArgs) -> Result<(), String> {
    let cfg = load_config(a)?;
    crate::sys::one_malloc_arena();
    logging::init();
    let path = cfg
        .socket
        .clone()
        .unwrap_or_else(crate::sys::default_socket_path);
    if cfg.socket.is_none() {
        // The default path's directory belongs to the agent: made owner-only and checked. A
        // configured path's directory is the operator's choice.
        if let Some(dir) = path.parent() {
            server::private_dir(dir).map_err(|e| e.to_string())?;
        }
    }
    let listener = server::bind(&path).map_err(|e| format!("socket {}: {e}", path.display()))?;
    log::info!(
        "listening on {} (namespace {:?})",
        path.display(),
        cfg.namespace
    );
    agent::run(cfg, listener)
}
