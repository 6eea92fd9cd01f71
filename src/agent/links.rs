//! The agent's links (does I/O): interfaces followed, per-interface sockets opened and queried,
//! mdns-sd daemons started, adjusted and stopped to match what really works.

use super::*;

/// A repeated error is summarised at most this often.
const ERROR_SUMMARY_INTERVAL: Duration = Duration::from_secs(600);

/// First interval between `_p2p._udp` queries on a link; doubles up to the configured maximum.
const FIRST_QUERY_INTERVAL: Duration = Duration::from_secs(1);

impl Agent<'_> {
    pub(super) fn poll_interfaces(&mut self, now: Instant) {
        let list = match iface::list() {
            Ok(l) => {
                self.list_error = None;
                l
            }
            Err(e) => {
                let msg = e.to_string();
                if self.list_error.as_deref() != Some(&msg) {
                    warn!("cannot list interfaces: {msg}");
                    self.list_error = Some(msg);
                }
                return;
            }
        };
        let wanted: Vec<Iface> = list
            .into_iter()
            .filter(|i| self.cfg.wants_interface(&i.name, i.loopback) && i.can_multicast())
            .collect();
        let gone: Vec<u32> = self
            .links
            .keys()
            .filter(|idx| !wanted.iter().any(|i| i.index == **idx))
            .copied()
            .collect();
        for index in gone {
            self.drop_link(index, "interface gone or down");
        }
        for iface in wanted {
            match self.links.get(&iface.index) {
                None => self.add_link(iface, now),
                Some(l) if l.iface != iface => self.readdress_link(iface, now),
                Some(_) => {}
            }
        }
    }

    pub(super) fn add_link(&mut self, iface: Iface, now: Instant) {
        info!(
            "interface {} (index {}): v4 {:?} v6 {:?}",
            iface.name, iface.index, iface.v4, iface.v6
        );
        let index = iface.index;
        self.links.insert(
            index,
            Link {
                iface,
                socks: BTreeMap::new(),
                open_errors: BTreeMap::new(),
                daemon: None,
                _daemon_events: None,
                next_query: now,
                query_every: FIRST_QUERY_INTERVAL,
                libp2p_seen: false,
            },
        );
        self.query_link(index, now);
    }

    /// Addresses or flags changed: reopen the sockets, re-announce with the new addresses.
    pub(super) fn readdress_link(&mut self, iface: Iface, now: Instant) {
        let Some(link) = self.links.get_mut(&iface.index) else {
            return;
        };
        info!(
            "interface {} changed: v4 {:?} v6 {:?}",
            iface.name, iface.v4, iface.v6
        );
        link.iface = iface;
        link.socks.clear();
        link.open_errors.clear();
        link.next_query = now;
        link.query_every = FIRST_QUERY_INTERVAL;
        let index = link.iface.index;
        self.query_link(index, now);
        self.reannounce_on(index);
    }

    pub(super) fn drop_link(&mut self, index: u32, why: &str) {
        let Some(link) = self.links.remove(&index) else {
            return;
        };
        info!("interface {}: no longer used ({why})", link.iface.name);
        if let Some(d) = link.daemon {
            d.shutdown(Duration::from_millis(500));
        }
        for ev in self.table.remove_iface(&link.iface.name) {
            self.broadcast(ev);
        }
    }

    /// Opens missing sockets, sends a `_p2p._udp` query on each, and brings the mdns-sd daemon in
    /// line with what really works.
    pub(super) fn query_link(&mut self, index: u32, now: Instant) {
        let Some(link) = self.links.get_mut(&index) else {
            return;
        };
        for family in [Family::V4, Family::V6] {
            if !family.present_on(&link.iface) {
                link.socks.remove(&family);
                continue;
            }
            if !link.socks.contains_key(&family) {
                match mcast::open(&link.iface, family) {
                    Ok(sock) => match Async::new(sock) {
                        Ok(sock) => {
                            let sock = Arc::new(sock);
                            let reader = self.ex.spawn(read_link(
                                sock.clone(),
                                index,
                                family,
                                self.input.clone(),
                            ));
                            link.open_errors.remove(&family);
                            link.socks.insert(
                                family,
                                LinkSock {
                                    sock,
                                    usable: false,
                                    last_error: None,
                                    repeats: 0,
                                    logged_at: now,
                                    packets_out: 0,
                                    _reader: reader,
                                },
                            );
                        }
                        Err(e) => warn!("{} {}: {e}", link.iface.name, family.as_str()),
                    },
                    Err(e) => {
                        let msg = e.to_string();
                        if link.open_errors.get(&family) != Some(&msg) {
                            warn!(
                                "{} {}: cannot use mDNS: {msg}{}",
                                link.iface.name,
                                family.as_str(),
                                errno_suffix(&e.error)
                            );
                            link.open_errors.insert(family, msg);
                        }
                    }
                }
            }
            if let Some(ls) = link.socks.get_mut(&family) {
                let dest = mcast::group_addr(family, &link.iface);
                match ls.sock.get_ref().send_to(&self.query, dest) {
                    Ok(_) => {
                        ls.packets_out += 1;
                        if !ls.usable {
                            if ls.repeats > 0 {
                                info!(
                                    "{} {}: mDNS ok again (after {} more refused sends)",
                                    link.iface.name,
                                    family.as_str(),
                                    ls.repeats
                                );
                            } else {
                                info!("{} {}: mDNS ok", link.iface.name, family.as_str());
                            }
                        }
                        ls.usable = true;
                        ls.last_error = None;
                        ls.repeats = 0;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        let msg = e.to_string();
                        if ls.last_error.as_deref() != Some(&msg) {
                            warn!(
                                "{} {}: multicast send refused: {msg}{} ({})",
                                link.iface.name,
                                family.as_str(),
                                errno_suffix(&e),
                                crate::sys::explain_send_error(&e)
                            );
                            ls.last_error = Some(msg);
                            ls.repeats = 0;
                            ls.logged_at = now;
                        } else {
                            // The same error again: counted, and summarised now and then.
                            ls.repeats += 1;
                            if now.saturating_duration_since(ls.logged_at) >= ERROR_SUMMARY_INTERVAL
                            {
                                warn!(
                                    "{} {}: multicast send still refused ({} times in the last {} s): {msg}",
                                    link.iface.name,
                                    family.as_str(),
                                    ls.repeats,
                                    now.saturating_duration_since(ls.logged_at).as_secs()
                                );
                                ls.repeats = 0;
                                ls.logged_at = now;
                            }
                        }
                        ls.usable = false;
                    }
                }
            }
        }
        link.next_query = now + link.query_every;
        link.query_every = (link.query_every * 2).min(self.cfg.query_interval_max());
        self.sync_daemon(index);
    }

    /// Starts, adjusts or stops the link's mdns-sd daemon so that it runs on exactly the families
    /// whose socket works.
    pub(super) fn sync_daemon(&mut self, index: u32) {
        let Some(link) = self.links.get_mut(&index) else {
            return;
        };
        let usable: Vec<Family> = link
            .socks
            .iter()
            .filter(|(_, s)| s.usable)
            .map(|(f, _)| *f)
            .collect();
        let current: Vec<Family> = link
            .daemon
            .as_ref()
            .map(|d| d.families().to_vec())
            .unwrap_or_default();
        if usable == current {
            return;
        }
        if usable.is_empty() {
            if let Some(d) = link.daemon.take() {
                d.shutdown(Duration::from_millis(500));
            }
            link._daemon_events = None;
            let name = link.iface.name.clone();
            for ev in self.table.remove_iface(&name) {
                self.broadcast(ev);
            }
            return;
        }
        match link.daemon.as_mut() {
            Some(d) => {
                if let Err(e) = d.set_families(&usable) {
                    warn!("{}: mdns-sd: {e}", link.iface.name);
                }
            }
            None => match LinkDaemon::start(&link.iface, &usable) {
                Ok((d, events)) => {
                    let n = crate::sys::raise_engine_unicast_ttl();
                    debug!("engine sockets given unicast TTL 255: {n}");
                    let tx = self.input.clone();
                    link._daemon_events = Some(self.ex.spawn(async move {
                        while let Ok(event) = events.recv_async().await {
                            if tx.send(Input::Mdns { index, event }).await.is_err() {
                                break;
                            }
                        }
                    }));
                    link.daemon = Some(d);
                }
                Err(e) => {
                    warn!("{}: cannot start mdns-sd: {e}", link.iface.name);
                    return;
                }
            },
        }
        self.reannounce_on(index);
    }

    pub(super) fn reannounce_on(&self, index: u32) {
        let Some(link) = self.links.get(&index) else {
            return;
        };
        let Some(d) = &link.daemon else { return };
        for r in self.regs.values() {
            if let Err(e) = d.register(&r.announcement, &link.iface) {
                warn!("{}: cannot announce: {e}", link.iface.name);
            }
        }
    }

    pub(super) fn announce(&self, peer: &PeerId) {
        let Some(r) = self.regs.get(peer) else { return };
        for link in self.links.values() {
            if let Some(d) = &link.daemon {
                if let Err(e) = d.register(&r.announcement, &link.iface) {
                    warn!("{}: cannot announce: {e}", link.iface.name);
                }
            }
        }
    }
}

pub(super) fn errno_suffix(e: &std::io::Error) -> String {
    e.raw_os_error()
        .map(|n| format!(" [errno {n}]"))
        .unwrap_or_default()
}

/// Reads one link socket: responses are reduced to the `_p2p._udp` instances they name and the
/// stock libp2p-mdns peers they describe; stock libp2p-mdns queries are flagged for an answer.
pub(super) async fn read_link(
    sock: Arc<Async<UdpSocket>>,
    index: u32,
    family: Family,
    tx: Sender<Input>,
) {
    let mut buf = vec![0u8; dns::MAX_PACKET];
    let mut last_error: Option<String> = None;
    loop {
        let got = sock
            .read_with(|s| crate::sys::recv_with_ifindex(s, &mut buf))
            .await;
        let (n, from, arrived_on) = match got {
            Ok(got) => got,
            Err(e) => {
                let msg = e.to_string();
                if last_error.as_deref() != Some(&msg) {
                    debug!("link socket {index}: receive failed: {msg}");
                    last_error = Some(msg);
                }
                Timer::after(Duration::from_millis(500)).await;
                continue;
            }
        };
        let packet = &buf[..n];
        // Stock libp2p-mdns nodes speak from an ephemeral port; mDNS responders from 5353.
        let stock = from.port() != mcast::MDNS_PORT;
        let libp2p_query = stock && libp2p_mdns::is_service_query(packet);
        let (instances, libp2p_peers) = if dns::is_response(packet) {
            match dns::records(packet) {
                Ok(rrs) => (
                    dns::instances(&rrs),
                    if stock {
                        libp2p_mdns::libp2p_peers(&rrs)
                    } else {
                        Vec::new()
                    },
                ),
                Err(_) => continue,
            }
        } else {
            (Vec::new(), Vec::new())
        };
        // Attribute by where it really arrived (see `sys::recv_with_ifindex`).
        let index = arrived_on.unwrap_or(index);
        let input = Input::Packet {
            index,
            family,
            from,
            instances,
            libp2p_peers,
            libp2p_query,
        };
        if tx.send(input).await.is_err() {
            return;
        }
    }
}
