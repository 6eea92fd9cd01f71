//! `run`: the configuration in force (the file read here, merged by [`Config::merge`]), then the
//! agent on a single-threaded executor until SIGINT or SIGTERM.

use crate::cli::args::RunArgs;
use exo_discovery::config::{Config, Overrides};
use exo_discovery::{agent, logging, server};
use std::rc::Rc;

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
