//! Work that waits on the network, run as tasks whose result comes back as an engine input:
//! reachability probes (a TCP connect) and rounds of unicast questions to a static host.

use super::Incoming;
use crate::engine::Input;
use crate::agent::unicast;
use crate::wire::net::HostSpec;
use async_channel::Sender;
use async_io::{Async, Timer};
use multiaddr::Multiaddr;
use smol::LocalExecutor;
use std::time::Duration;

/// Tries a TCP connect to `addr` within `timeout` (closed at once) and reports it.
pub(super) fn probe(
    ex: &LocalExecutor<'_>,
    tx: Sender<Incoming>,
    addr: Multiaddr,
    timeout: Duration,
) {
    ex.spawn(async move {
        let zone = |z: &str| nix::net::if_::if_nametoindex(z).ok();
        let ok = match crate::wire::addrs::tcp_socket_addr(&addr, zone) {
            Some(sa) => {
                futures_lite::future::or(
                    async { Async::<std::net::TcpStream>::connect(sa).await.is_ok() },
                    async {
                        Timer::after(timeout).await;
                        false
                    },
                )
                .await
            }
            None => false,
        };
        let _ = tx.send(Incoming::input(Input::Probed { addr, ok })).await;
    })
    .detach();
}

/// Asks a static host's agent for its records from a few ports and reports the replies.
pub(super) fn ask_static(
    ex: &LocalExecutor<'_>,
    tx: Sender<Incoming>,
    host: String,
    spec: HostSpec,
    query: Vec<u8>,
    wait: Duration,
) {
    ex.spawn(async move {
        let mut resolved = Vec::new();
        let result = async {
            let mut out = Vec::new();
            let mut errors = Vec::new();
            let targets = unicast::resolve(&spec).await?;
            resolved = targets.iter().map(|(t, _)| t.ip()).collect();
            for (target, zone) in targets {
                match unicast::ask(target, &query, wait).await {
                    Ok(replies) => {
                        out.extend(replies.into_iter().map(|p| (target.ip(), zone.clone(), p)))
                    }
                    Err(e) => errors.push(format!("{target}: {e}")),
                }
            }
            if out.is_empty() {
                Err(if errors.is_empty() {
                    "no answer".to_owned()
                } else {
                    errors.join("; ")
                })
            } else {
                Ok(out)
            }
        }
        .await;
        let _ = tx
            .send(Incoming::input(Input::StaticReplied {
                host,
                resolved,
                result,
            }))
            .await;
    })
    .detach();
}
