//! The peers file: a file kept equal to what `peers --json` (or `peers --format csv`) prints, for
//! programs that do not speak the socket. [`render`] is pure; [`write_atomic`] replaces the file
//! so that a reader sees the old whole or the new whole, never a torn one: a temporary file in the
//! same directory, written, fsynced and renamed over it.

use crate::config::PeersFormat;
use crate::proto::PeerInfo;
use std::io::Write;
use std::path::Path;

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

/// Replaces `path` with `text` atomically (temporary file beside it, fsync, rename).
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "peers".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Source;

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

    #[test]
    fn the_file_is_replaced_whole_and_no_temporary_file_is_left() {
        let dir = std::env::temp_dir().join(format!("exo-peers-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("peers.json");
        write_atomic(&f, "[]\n").unwrap();
        write_atomic(&f, "[1]\n").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "[1]\n");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let e = write_atomic(&dir.join("missing/peers.json"), "[]").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
