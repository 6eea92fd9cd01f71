//! A link's mdns-sd daemon: kept on exactly the families whose socket sends, and what it reports
//! besides records: an instance gone (a goodbye, confirmed before it counts), records of peers
//! that are not established piling up in its cache, its subscription dropped.

use super::{BROWSER_JUNK_LIMIT, BROWSER_RESTART_INTERVAL};
use crate::engine::{Action, Engine};
use crate::wire::instance as mdns;
use crate::wire::net::Family;
use log::Level;
use std::time::Instant;

impl Engine {
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
        if usable == link.daemon {
            return;
        }
        if usable.is_empty() {
            link.daemon.clear();
            let via = link.via.clone();
            self.actions.push_back(Action::SetDaemon {
                link: index,
                families: Vec::new(),
            });
            for ev in self.table.remove_via(&via) {
                self.broadcast(ev);
            }
            return;
        }
        self.actions.push_back(Action::SetDaemon {
            link: index,
            families: usable,
        });
    }

    pub(in crate::engine) fn on_daemon_set(
        &mut self,
        index: u32,
        families: Vec<Family>,
        result: Result<(), String>,
    ) {
        let Some(link) = self.links.get_mut(&index) else {
            return;
        };
        match result {
            Ok(()) => {
                link.daemon = families;
                self.reannounce_on(index);
            }
            Err(e) => {
                let line = if link.daemon.is_empty() {
                    format!("{}: cannot start mdns-sd: {e}", link.iface.name)
                } else {
                    format!("{}: mdns-sd: {e}", link.iface.name)
                };
                self.log(Level::Warn, || line);
            }
        }
    }

    /// mdns-sd reports an instance gone (a goodbye, or its records ran out). A goodbye is a bare
    /// TTL-0 packet anyone on the link can send, so for a peer's current instance it is first
    /// confirmed by probing the peer's addresses on that link, at most once per peer per
    /// interval (see `goodbye.rs`).
    pub(in crate::engine) fn on_removed(&mut self, index: u32, fullname: &str, now: Instant) {
        let Some(link) = self.links.get(&index) else {
            return;
        };
        let via = link.via.clone();
        let Some((peer, label)) = mdns::parse_instance(fullname) else {
            return;
        };
        // The goodbye of a replaced record says nothing about the current one.
        let current = self.instances.get_text(label);
        if current.is_none() || current != self.table.filing_of(&peer) {
            return;
        }
        // The link's socket heard it already, as it arrived (see `heard.rs`).
        if self.goodbye_was_heard(&peer, &via) {
            return;
        }
        self.goodbye(peer, via, now);
    }

    /// mdns-sd reported a record of a peer that is not established on link `index`; once enough
    /// piled up in its cache, its browsing daemon is replaced (see [`BROWSER_JUNK_LIMIT`]).
    pub(in crate::engine) fn note_junk(&mut self, index: u32, now: Instant) {
        let Some(link) = self.links.get_mut(&index) else {
            return;
        };
        link.junk += 1;
        let due = link
            .browser_started
            .is_none_or(|t| now >= t + BROWSER_RESTART_INTERVAL);
        if link.junk >= BROWSER_JUNK_LIMIT && due && !link.daemon.is_empty() {
            let first = link.browser_started.is_none();
            let (name, via, junk) = (link.iface.name.clone(), link.via.clone(), link.junk);
            self.restart_browser(index, now);
            self.count_drops(&via, "browse-reset", 1);
            let level = if first { Level::Warn } else { Level::Debug };
            self.log(level, || {
                format!(
                    "{name}: {junk} records of peers that are not established came through \
                     mdns-sd; its browsing daemon is replaced to drop them (counted as \
                     browse-reset in status)"
                )
            });
        }
    }

    /// The link's browsing daemon stopped reporting: browse again with a fresh one.
    pub(in crate::engine) fn on_browse_ended(&mut self, index: u32, now: Instant) {
        let Some(link) = self.links.get(&index) else {
            return;
        };
        if link.daemon.is_empty() {
            return; // stopped on purpose
        }
        let (name, via) = (link.iface.name.clone(), link.via.clone());
        let first = !self
            .via_stats
            .get(&via)
            .is_some_and(|s| s.dropped.contains_key("browse-overflow"));
        self.count_drops(&via, "browse-overflow", 1);
        self.restart_browser(index, now);
        let level = if first { Level::Warn } else { Level::Debug };
        self.log(level, || {
            format!(
                "{name}: mdns-sd dropped its browse subscription (its event queue overflowed); \
                 browsing again (counted as browse-overflow in status)"
            )
        });
    }

    fn restart_browser(&mut self, index: u32, now: Instant) {
        if let Some(link) = self.links.get_mut(&index) {
            link.junk = 0;
            link.browser_started = Some(now);
            self.actions
                .push_back(Action::RestartBrowser { link: index });
        }
    }

}
