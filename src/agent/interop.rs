//! Stock rust-libp2p mDNS nodes (does I/O): answering their queries in their dialect, and taking
//! their answers as unsigned peers.

use super::*;

impl Agent<'_> {
    pub(super) fn on_libp2p_peer(
        &mut self,
        p: libp2p_mdns::Libp2pPeer,
        iface: &str,
        from: SocketAddr,
        now: Instant,
    ) {
        if self.regs.contains_key(&p.peer) || p.ttl == 0 {
            return;
        }
        if !self.cfg.accept_unsigned {
            if self.unsigned_ignored.insert(p.peer) {
                info!(
                    "{iface}: unsigned libp2p-mdns peer {} from {} ignored (accept_unsigned is off)",
                    p.peer,
                    from.ip()
                );
            }
            return;
        }
        let dial = addrs::dialable(&p.peer, &p.addrs, &[from.ip()], iface);
        if let Some(ev) =
            self.table
                .observe_unsigned(p.peer, crate::proto::Source::Libp2pMdns, iface, dial, now)
        {
            self.broadcast(ev);
        }
    }

    /// What a stock libp2p-mdns node on this link and family should dial for each registration:
    /// concrete addresses of this interface (IPv6 link-local left out: such nodes take no zone).
    pub(super) fn libp2p_addrs(
        &self,
        link: &Link,
        family: Family,
        r: &Registration,
    ) -> Vec<String> {
        let ips: Vec<IpAddr> = match family {
            Family::V4 => link.iface.v4.iter().map(|a| IpAddr::V4(*a)).collect(),
            Family::V6 => link
                .iface
                .v6
                .iter()
                .filter(|a| !addrs::is_link_local_v6(a))
                .map(|a| IpAddr::V6(*a))
                .collect(),
        };
        addrs::dialable(&r.announcement.peer, &r.addrs, &ips, &link.iface.name)
            .iter()
            .map(|a| a.to_string())
            .collect()
    }

    /// Answers a stock libp2p-mdns query in the form it parses, by multicast on the link.
    pub(super) fn answer_libp2p(&mut self, index: u32, family: Family) {
        let Some(link) = self.links.get_mut(&index) else {
            return;
        };
        if !link.libp2p_seen {
            info!(
                "{}: a stock libp2p-mdns node is asking; answering it",
                link.iface.name
            );
            link.libp2p_seen = true;
        }
        let Some(link) = self.links.get(&index) else {
            return;
        };
        for r in self.regs.values() {
            let addrs = self.libp2p_addrs(link, family, r);
            if addrs.is_empty() {
                continue;
            }
            send_libp2p(link, family, &r.announcement.label, &addrs, LIBP2P_TTL);
        }
    }
}

/// TTL of answers to stock libp2p-mdns nodes: theirs (6 minutes), as they re-query every 5.
pub(super) const LIBP2P_TTL: u32 = 360;

pub(super) fn send_libp2p(link: &Link, family: Family, label: &str, addrs: &[String], ttl: u32) {
    let Some(ls) = link.socks.get(&family).filter(|s| s.usable) else {
        return;
    };
    let dest = mcast::group_addr(family, &link.iface);
    for packet in libp2p_mdns::libp2p_response(label, addrs, ttl) {
        if let Err(e) = ls.sock.get_ref().send_to(&packet, dest) {
            debug!(
                "{} {}: libp2p-mdns answer not sent: {e}",
                link.iface.name,
                family.as_str()
            );
        }
    }
}
