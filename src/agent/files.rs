//! The agent's files (does I/O): one atomic replace, used for the peer cache and the peers file,
//! so that a reader (or the next start) sees the old whole or the new whole, never a torn file.

use crate::wire::cache::{self, CachedPeer};
use std::io::{self, Write};
use std::path::Path;

/// Replaces `path` with `bytes`: a temporary file beside it (created with `mode`), written,
/// fsynced, renamed over it, and the directory fsynced so that the rename survives a power cut.
/// The temporary file is removed if any step fails.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    std::fs::File::open(dir)?.sync_all()
}

/// Reads the peer cache in `dir`. A missing file is an empty cache; anything wrong with it is an
/// error the caller reports and moves past.
pub fn load_cache(dir: &Path) -> Result<Vec<CachedPeer>, String> {
    let path = dir.join(cache::FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    cache::decode(&bytes).map_err(|e| format!("{} is {e}; ignoring it", path.display()))
}

/// Writes the peer cache in `dir` (owner-only), creating the directory (0700) if needed.
pub fn save_cache(dir: &Path, peers: &[CachedPeer]) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    write_atomic(&dir.join(cache::FILE_NAME), &cache::encode(peers), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers() -> Vec<CachedPeer> {
        vec![CachedPeer {
            signed: vec![1, 2, 3],
            addrs: vec!["/ip4/10.0.0.1/tcp/1/p2p/x".into()],
        }]
    }

    #[test]
    fn the_cache_is_saved_then_loaded_and_a_corrupt_file_is_reported_and_a_corrupt_file_is_reported() {
        let dir = std::env::temp_dir().join(format!("exo-cache-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(load_cache(&dir).unwrap(), vec![], "missing is empty");
        save_cache(&dir, &peers()).unwrap();
        assert_eq!(load_cache(&dir).unwrap(), peers());
        std::fs::write(dir.join(cache::FILE_NAME), b"garbage").unwrap();
        let e = load_cache(&dir).unwrap_err();
        assert!(e.contains("corrupt"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_file_is_replaced_whole_and_no_temporary_file_is_left() {
        let dir = std::env::temp_dir().join(format!("exo-peers-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("peers.json");
        write_atomic(&f, b"[]\n", 0o644).unwrap();
        write_atomic(&f, b"[1]\n", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "[1]\n");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let e = write_atomic(&dir.join("missing/peers.json"), b"[]", 0o644).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
