//! One followed interface's I/O: its per-family multicast sockets and their readers, and its
//! mdns-sd daemon with the task that turns the daemon's events into engine inputs.

use super::Incoming;
use crate::engine::repeat::Repeated;
use crate::engine::{Datagram, Input, SendOutcome};
use crate::wire::net::SendFailure;
use crate::wire::net::Iface;
use crate::wire::instance::Announcement;
use crate::agent::link_socket;
use crate::wire::net::Family;
use crate::agent::daemons::LinkDaemon;
use crate::wire::{dns, record};
use async_channel::Sender;
use async_io::{Async, Timer};
use log::{debug, warn};
use mdns_sd::ServiceEvent;
use smol::{LocalExecutor, Task};
use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct LinkSock {
    sock: Arc<Async<UdpSocket>>,
    _reader: Task<()>,
}

/// See the module docs.
pub(super) struct ShellLink {
    iface: Iface,
    socks: BTreeMap<Family, LinkSock>,
    daemon: Option<LinkDaemon>,
    _daemon_events: Option<Task<()>>,
}

fn failure(e: &std::io::Error) -> SendFailure {
    SendFailure {
        errno: e.raw_os_error(),
        message: e.to_string(),
        explanation: crate::wire::net::explain_send_error(e),
        class: crate::wire::net::send_class(e.raw_os_error()),
    }
}

impl ShellLink {
    pub fn new(iface: Iface) -> ShellLink {
        ShellLink {
            iface,
            socks: BTreeMap::new(),
            daemon: None,
            _daemon_events: None,
        }
    }

    /// New addresses or flags: the sockets are closed (the next query reopens them).
    pub fn update(&mut self, iface: Iface) {
        self.iface = iface;
        self.socks.clear();
    }

    pub fn close(&mut self, family: Family) {
        self.socks.remove(&family);
    }

    /// Stops the daemon (goodbyes), waiting at most `wait`.
    pub fn stop(self, wait: Duration) {
        if let Some(d) = self.daemon {
            d.shutdown(wait);
        }
    }

    /// Sends `query` on the family's socket, opening it (and its reader) first if need be.
    pub fn send_query<'ex>(
        &mut self,
        family: Family,
        query: &[u8],
        ex: &LocalExecutor<'ex>,
        tx: &Sender<Incoming>,
    ) -> SendOutcome {
        if !self.socks.contains_key(&family) {
            let opened = link_socket::open(&self.iface, family)
                .map_err(|e| (e.to_string(), e.error.raw_os_error()))
                .and_then(|s| Async::new(s).map_err(|e| (e.to_string(), e.raw_os_error())));
            let sock = match opened {
                Ok(sock) => Arc::new(sock),
                Err((message, errno)) => {
                    return SendOutcome::OpenFailed(SendFailure {
                        errno,
                        message,
                        explanation: "",
                        class: crate::wire::net::send_class(errno),
                    })
                }
            };
            let reader = ex.spawn(read_link(
                sock.clone(),
                self.iface.index,
                family,
                tx.clone(),
            ));
            self.socks.insert(
                family,
                LinkSock {
                    sock,
                    _reader: reader,
                },
            );
        }
        let Some(ls) = self.socks.get(&family) else {
            return SendOutcome::WouldBlock;
        };
        match ls
            .sock
            .get_ref()
            .send_to(query, link_socket::group_addr(family, &self.iface))
        {
            Ok(_) => SendOutcome::Sent,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => SendOutcome::WouldBlock,
            Err(e) => SendOutcome::Refused(failure(&e)),
        }
    }

    /// Runs the daemon on exactly `families` (stops it when empty: nothing to report then).
    pub fn set_daemon<'ex>(
        &mut self,
        families: &[Family],
        ex: &LocalExecutor<'ex>,
        tx: &Sender<Incoming>,
    ) -> Option<Result<(), String>> {
        if families.is_empty() {
            if let Some(d) = self.daemon.take() {
                d.shutdown(Duration::from_millis(500));
            }
            self._daemon_events = None;
            return None;
        }
        if let Some(d) = self.daemon.as_mut() {
            return Some(d.set_families(families).map_err(|e| e.to_string()));
        }
        let (daemon, events) = match LinkDaemon::start(&self.iface, families) {
            Ok(started) => started,
            Err(e) => return Some(Err(e.to_string())),
        };
        let n = crate::sys::raise_daemon_unicast_ttl();
        debug!("engine sockets given unicast TTL 255: {n}");
        self._daemon_events = Some(forward(ex, tx, self.iface.index, events));
        self.daemon = Some(daemon);
        Some(Ok(()))
    }

    /// Replaces the browsing daemon (see [`LinkDaemon::restart_browser`]).
    pub fn restart_browser<'ex>(&mut self, ex: &LocalExecutor<'ex>, tx: &Sender<Incoming>) {
        let Some(d) = self.daemon.as_mut() else {
            return;
        };
        match d.restart_browser() {
            // The old forwarding task is dropped (cancelled) before it can see its channel close.
            Ok(events) => {
                self._daemon_events = Some(forward(ex, tx, self.iface.index, events));
                crate::sys::raise_daemon_unicast_ttl();
            }
            Err(e) => warn!("{}: cannot restart mdns-sd browsing: {e}", self.iface.name),
        }
    }

    pub fn announce(&self, a: &Announcement) {
        if let Some(d) = &self.daemon {
            if let Err(e) = d.register(a, &self.iface) {
                warn!("{}: cannot announce: {e}", self.iface.name);
            }
        }
    }

    pub fn withdraw(&self, label: &str) {
        if let Some(d) = &self.daemon {
            d.unregister(label);
        }
    }

    pub fn send_packets(&self, family: Family, packets: &[Vec<u8>]) {
        let Some(ls) = self.socks.get(&family) else {
            return;
        };
        let dest = link_socket::group_addr(family, &self.iface);
        for packet in packets {
            if let Err(e) = ls.sock.get_ref().send_to(packet, dest) {
                debug!(
                    "{} {}: packet not sent: {e}",
                    self.iface.name,
                    family.as_str()
                );
            }
        }
    }
}

/// Hands what a browsing daemon reports to the engine; when the daemon drops the subscription
/// (its queue overflowed), says so.
fn forward<'ex>(
    ex: &LocalExecutor<'ex>,
    tx: &Sender<Incoming>,
    link: u32,
    events: mdns_sd::Receiver<ServiceEvent>,
) -> Task<()> {
    let tx = tx.clone();
    ex.spawn(async move {
        while let Ok(event) = events.recv_async().await {
            let input = match event {
                ServiceEvent::ServiceResolved(r) => Input::Resolved {
                    link,
                    fullname: r.get_fullname().to_owned(),
                    signed: record::from_txt(|k| r.get_property_val(k).flatten()),
                    ips: r.get_addresses().iter().map(|a| a.to_ip_addr()).collect(),
                },
                ServiceEvent::ServiceRemoved(_, fullname) => Input::Removed { link, fullname },
                ServiceEvent::SearchStarted(_)
                | ServiceEvent::ServiceFound(..)
                | ServiceEvent::SearchStopped(_) => continue,
                // mdns-sd's enum is non-exhaustive: what a later version adds is reported only
                // once the engine has an input for it.
                _ => continue,
            };
            if tx.send(Incoming::input(input)).await.is_err() {
                return;
            }
        }
        let _ = tx.send(Incoming::input(Input::BrowseEnded { link })).await;
    })
}

/// The link actions, one method each, called from the shell's one match on
/// [`crate::engine::Action`].
impl super::Shell<'_> {
    pub(super) fn add_link(&mut self, iface: Iface) {
        self.links.insert(iface.index, ShellLink::new(iface));
    }

    pub(super) fn update_link(&mut self, iface: Iface) {
        if let Some(l) = self.links.get_mut(&iface.index) {
            l.update(iface);
        }
    }

    pub(super) fn remove_link(&mut self, link: u32) {
        if let Some(l) = self.links.remove(&link) {
            l.stop(Duration::from_millis(500));
        }
    }

    pub(super) fn close_socket(&mut self, link: u32, family: Family) {
        if let Some(l) = self.links.get_mut(&link) {
            l.close(family);
        }
    }

    /// Sends a query; returns its outcome for the engine.
    pub(super) fn send_query(&mut self, link: u32, family: Family, packet: &[u8]) -> Option<Input> {
        let l = self.links.get_mut(&link)?;
        let outcome = l.send_query(family, packet, &self.ex, &self.tx);
        Some(Input::QuerySent {
            link,
            family,
            outcome,
        })
    }

    /// Runs the link's daemon on `families`; returns the result for the engine (none when
    /// stopped).
    pub(super) fn set_daemon(&mut self, link: u32, families: Vec<Family>) -> Option<Input> {
        let l = self.links.get_mut(&link)?;
        let result = l.set_daemon(&families, &self.ex, &self.tx)?;
        Some(Input::DaemonSet {
            link,
            families,
            result,
        })
    }

    pub(super) fn restart_browser(&mut self, link: u32) {
        if let Some(l) = self.links.get_mut(&link) {
            l.restart_browser(&self.ex, &self.tx);
        }
    }

    pub(super) fn announce(&self, link: u32, announcement: &Announcement) {
        if let Some(l) = self.links.get(&link) {
            l.announce(announcement);
        }
    }

    pub(super) fn withdraw(&self, link: u32, label: &str) {
        if let Some(l) = self.links.get(&link) {
            l.withdraw(label);
        }
    }

    pub(super) fn send_packets(&self, link: u32, family: Family, packets: &[Vec<u8>]) {
        if let Some(l) = self.links.get(&link) {
            l.send_packets(family, packets);
        }
    }
}

/// Reads one link socket and hands each datagram to the engine as it came (the engine reads it).
async fn read_link(sock: Arc<Async<UdpSocket>>, index: u32, family: Family, tx: Sender<Incoming>) {
    let mut buf = vec![0u8; dns::MAX_PACKET];
    let mut errors = Repeated::default();
    loop {
        let got = sock
            .read_with(|s| crate::sys::recv_with_ifindex(s, &mut buf))
            .await;
        let (n, from, arrived_on) = match got {
            Ok(got) => got,
            Err(e) => {
                let msg = e.to_string();
                if errors.failed(&msg, Instant::now(), None).is_some() {
                    debug!("link socket {index}: receive failed: {msg}");
                }
                Timer::after(Duration::from_millis(500)).await;
                continue;
            }
        };
        // Attribute by where it really arrived (see `sys::recv_with_ifindex`).
        let link = arrived_on.unwrap_or(index);
        let input = Input::Datagram {
            link,
            datagram: Datagram::new(family, from, &buf[..n]).into(),
        };
        if tx.send(Incoming::input(input)).await.is_err() {
            return;
        }
    }
}
