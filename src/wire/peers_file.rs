//! The peers file: a file kept equal to what `peers --json` (or `peers --format csv`) prints, for
//! programs that do not speak the socket. This is its text, pure; the agent's `files` module
//! replaces the file atomically, so that a reader sees the old whole or the new whole.

use crate::wire::config::PeersFormat;
use crate::wire::protocol::PeerInfo;

/// The file's text for `list`: `peers --json`'s output, or `peers --format csv`'s, with a newline.
pub fn render(list: &[PeerInfo], format: PeersFormat) -> String {
    let mut s = match format {
        PeersFormat::Json => serde_json::to_string_pretty(list).unwrap_or_else(|_| "[]".into()),
        PeersFormat::Csv => csv(list),
    };
    s.push('\n');
    s
}

/// Every address of every peer, comma-separated (`peers --format csv`).
pub fn csv(list: &[PeerInfo]) -> String {
    list.iter()
        .flat_map(|p| p.addrs.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::protocol::Source;

    fn p(id: &str, addrs: &[&str]) -> PeerInfo {
        PeerInfo {
            peer_id: id.into(),
            addrs: addrs.iter().map(|a| a.to_string()).collect(),
            interfaces: vec!["eth0".into()],
            source: Source::Mdns,
            seq: 1,
            verified: Vec::new(),
        }
    }

    #[test]
    fn json_reads_back_and_csv_is_one_line() {
        let list = vec![p("a", &["/ip4/10.0.0.1/tcp/1/p2p/a"]), p("b", &["x", "y"])];
        let text = render(&list, PeersFormat::Json);
        let back: Vec<PeerInfo> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, list);
        assert_eq!(render(&[], PeersFormat::Json), "[]\n");
        assert_eq!(
            render(&list, PeersFormat::Csv),
            "/ip4/10.0.0.1/tcp/1/p2p/a,x,y\n"
        );
    }
}
