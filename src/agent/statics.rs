//! Static hosts asked by unicast, and peers added by hand (does I/O through `unicast`).

use super::*;

/// Most static hosts asked at once.
const MAX_STATIC_HOSTS: usize = 256;

impl Agent<'_> {
    pub(super) fn add_host(&mut self, host: &str, now: Instant) -> Result<String, String> {
        let spec = unicast::HostSpec::parse(host)?;
        if self.statics.len() >= MAX_STATIC_HOSTS && !self.statics.contains_key(host) {
            return Err(format!("at most {MAX_STATIC_HOSTS} static hosts"));
        }
        info!(
            "static host {host}: asking it by unicast every {} s",
            self.cfg.static_poll_secs
        );
        self.statics.insert(
            host.to_owned(),
            StaticHost {
                spec,
                next_poll: now,
                in_flight: false,
                last_error: None,
            },
        );
        Ok(format!("asking {host} for its agent's records"))
    }

    pub(super) fn poll_static(&mut self, host: &str) {
        let Some(h) = self.statics.get_mut(host) else {
            return;
        };
        h.in_flight = true;
        let spec = h.spec.clone();
        let host = host.to_owned();
        let tx = self.input.clone();
        let query = self.query.clone();
        // Per port tried: a LAN answers in well under a millisecond, a VPN in tens.
        let wait = Duration::from_millis(self.cfg.probe_timeout_ms.clamp(100, 300));
        self.ex
            .spawn(async move {
                let result = async {
                    let mut out = Vec::new();
                    let mut errors = Vec::new();
                    for (target, zone) in unicast::resolve(&spec).await? {
                        match unicast::ask(target, &query, wait).await {
                            Ok(replies) => out.extend(
                                replies.into_iter().map(|p| (target.ip(), zone.clone(), p)),
                            ),
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
                let _ = tx.send(Input::Static { host, result }).await;
            })
            .detach();
    }

    pub(super) fn on_static(
        &mut self,
        host: String,
        result: Result<Vec<StaticReply>, String>,
        now: Instant,
    ) {
        let Some(h) = self.statics.get_mut(&host) else {
            return; // removed meanwhile
        };
        h.in_flight = false;
        h.next_poll = now + Duration::from_secs(self.cfg.static_poll_secs);
        let replies = match result {
            Ok(r) => {
                if h.last_error.take().is_some() {
                    info!("static host {host}: answering again");
                }
                r
            }
            Err(e) => {
                if h.last_error.as_deref() != Some(&e) {
                    warn!("static host {host}: {e}");
                    h.last_error = Some(e);
                }
                return;
            }
        };
        let link = format!("static:{host}");
        for (ip, zone, packet) in replies {
            let Ok(rrs) = dns::records(&packet) else {
                continue;
            };
            for (label, signed) in dns::signed_records(&rrs) {
                let Some((peer, label)) = instance::parse_instance(&label) else {
                    continue;
                };
                if self.regs.contains_key(&peer) {
                    continue;
                }
                let verified = instance::verify_instance(signed, &self.cfg.namespace, &peer, label);
                let rec = match verified {
                    Ok(rec) => rec,
                    Err(why) => {
                        self.table.count_reject(why);
                        info!("{link}: record of {peer} refused: {why}");
                        continue;
                    }
                };
                let dial = addrs::dialable(&peer, &rec.addrs, &[ip], zone.as_deref().unwrap_or(""));
                match self
                    .table
                    .observe_from(rec, crate::proto::Source::Static, &link, dial, now)
                {
                    Ok(Some(ev)) => self.broadcast(ev),
                    Ok(None) => {}
                    Err(why) => info!("{link}: record of {peer} refused: {why}"),
                }
            }
        }
    }

    pub(super) fn manage(
        &mut self,
        msg: crate::proto::ClientMsg,
        now: Instant,
    ) -> Result<String, String> {
        use crate::proto::ClientMsg;
        match msg {
            ClientMsg::AddHost { host } => self.add_host(&host, now),
            ClientMsg::RemoveHost { host } => {
                if self.statics.remove(&host).is_none() {
                    return Err(format!("{host} is not a static host"));
                }
                for ev in self.table.remove_iface(&format!("static:{host}")) {
                    self.broadcast(ev);
                }
                info!("static host {host}: removed");
                Ok(format!("no longer asking {host}"))
            }
            ClientMsg::AddPeer { multiaddr } => {
                let mut ma: multiaddr::Multiaddr = multiaddr
                    .parse()
                    .map_err(|e| format!("bad multiaddr {multiaddr:?}: {e}"))?;
                let Some(multiaddr::Protocol::P2p(peer)) = ma.pop() else {
                    return Err(format!("{multiaddr:?} must end in /p2p/<peer-id>"));
                };
                let full = ma.with(multiaddr::Protocol::P2p(peer));
                info!("manual peer {peer} at {full}");
                if let Some(ev) = self.table.observe_unsigned(
                    peer,
                    crate::proto::Source::Manual,
                    "manual",
                    vec![full],
                    now,
                ) {
                    self.broadcast(ev);
                }
                Ok(format!("added {peer}"))
            }
            other => Err(format!("not a management request: {other:?}")),
        }
    }
}
