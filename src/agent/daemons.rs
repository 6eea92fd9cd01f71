//! The mdns-sd engine, one daemon per interface (does I/O: each daemon owns a thread and sockets).
//!
//! One daemon per interface, with every interface disabled but its own, and registrations carrying
//! only that interface's addresses: each link then hears exactly the addresses that work on it
//! (a single daemon announces every interface's link-local address on every link).
//!
//! Each link has two daemons: one announces, one browses. mdns-sd keeps every instance it hears
//! for a browsed type in a cache it scans on every packet, with no bound: a host multicasting
//! thousands of made-up instances slows it to a crawl and grows it without limit. The browsing
//! daemon holds no registration, so the agent can replace it (dropping that cache) at any time
//! without a goodbye; the announcing daemon browses nothing and caches none of it.

use crate::wire::net::Iface;
use crate::wire::instance::{fullname, host_name, Announcement, SERVICE_TYPE};
use crate::wire::net::Family;
use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo, TxtProperty};
use std::net::IpAddr;
use std::time::Duration;

/// The mdns-sd daemon of one interface.
pub struct LinkDaemon {
    daemon: ServiceDaemon,
    browser: ServiceDaemon,
    families: Vec<Family>,
    index: u32,
}

/// A daemon that speaks only on interface `index`, for `families`.
fn daemon_on(index: u32, families: &[Family]) -> Result<ServiceDaemon, mdns_sd::Error> {
    let daemon = ServiceDaemon::new()?;
    daemon.disable_interface(IfKind::All)?;
    daemon.disable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6])?;
    for f in families {
        daemon.enable_interface(kind(index, *f))?;
    }
    Ok(daemon)
}

fn kind(index: u32, f: Family) -> IfKind {
    match f {
        Family::V4 => IfKind::IndexV4(index),
        Family::V6 => IfKind::IndexV6(index),
    }
}

/// Waits (at most a second) for a round trip through the daemon thread: once it answers, its
/// sockets exist.
fn settled(d: &ServiceDaemon) {
    if let Ok(rx) = d.status() {
        let _ = rx.recv_timeout(Duration::from_secs(1));
    }
}

impl LinkDaemon {
    /// Starts a daemon that speaks only on `iface`, for `families`, and browses `_p2p._udp`.
    pub fn start(
        iface: &Iface,
        families: &[Family],
    ) -> Result<(Self, mdns_sd::Receiver<ServiceEvent>), mdns_sd::Error> {
        let daemon = daemon_on(iface.index, families)?;
        let browser = daemon_on(iface.index, families)?;
        let events = browser.browse(SERVICE_TYPE)?;
        settled(&daemon);
        settled(&browser);
        let link = LinkDaemon {
            daemon,
            browser,
            families: families.to_vec(),
            index: iface.index,
        };
        Ok((link, events))
    }

    /// Replaces the browsing daemon with a fresh one (an empty cache, a new subscription); the
    /// old one stops in the background. Nothing announced is touched.
    pub fn restart_browser(&mut self) -> Result<mdns_sd::Receiver<ServiceEvent>, mdns_sd::Error> {
        let browser = daemon_on(self.index, &self.families)?;
        let events = browser.browse(SERVICE_TYPE)?;
        let old = std::mem::replace(&mut self.browser, browser);
        let _ = old.shutdown();
        Ok(events)
    }

    /// Enables exactly `families` on the interface.
    pub fn set_families(&mut self, families: &[Family]) -> Result<(), mdns_sd::Error> {
        for f in [Family::V4, Family::V6] {
            let k = kind(self.index, f);
            for d in [&self.daemon, &self.browser] {
                match (self.families.contains(&f), families.contains(&f)) {
                    (false, true) => d.enable_interface(k.clone())?,
                    (true, false) => d.disable_interface(k.clone())?,
                    _ => {}
                }
            }
        }
        self.families = families.to_vec();
        Ok(())
    }

    /// Announces (or re-announces) `a` with the interface's addresses of the enabled families.
    pub fn register(&self, a: &Announcement, iface: &Iface) -> Result<(), mdns_sd::Error> {
        let mut ips: Vec<IpAddr> = Vec::new();
        if self.families.contains(&Family::V4) {
            ips.extend(iface.v4_addrs().map(IpAddr::V4));
        }
        if self.families.contains(&Family::V6) {
            ips.extend(iface.v6_addrs().map(IpAddr::V6));
        }
        let txt: Vec<TxtProperty> = a
            .txt
            .iter()
            .map(|(k, v)| TxtProperty::from((k.as_str(), v.as_slice())))
            .collect();
        let mut info = ServiceInfo::new(
            SERVICE_TYPE,
            &a.label,
            &host_name(&a.peer, &a.label),
            &ips[..],
            a.port,
            txt,
        )?;
        info.set_requires_probe(false);
        self.daemon.register(info)
    }

    /// Withdraws an instance (sends a goodbye).
    pub fn unregister(&self, label: &str) {
        let _ = self.daemon.unregister(&fullname(label));
    }

    /// Sends goodbyes for everything registered and stops the daemon, waiting at most `wait`.
    pub fn shutdown(self, wait: Duration) {
        let _ = self.browser.shutdown();
        if let Ok(rx) = self.daemon.shutdown() {
            let _ = rx.recv_timeout(wait);
        }
    }
}
