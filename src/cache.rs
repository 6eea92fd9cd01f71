//! The persistent peer cache: the last verified record of every peer and the addresses it was
//! reachable at, so a restarted agent hands its node peers before any packet is heard.
//! Encoding and decoding are pure; [`load`] and [`save`] do the file I/O (atomic: write, fsync,
//! rename, fsync the directory).

use serde::{Deserialize, Serialize};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Format version of the cache file.
pub const CACHE_VERSION: u8 = 1;
/// Most peers kept.
pub const MAX_ENTRIES: usize = 1024;
/// Largest cache file read, in bytes.
pub const MAX_FILE: usize = 4 << 20;
/// The file's name inside the state directory.
pub const FILE_NAME: &str = "peers.cache";

/// One cached peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedPeer {
    /// The signed record, as received (verified again on load).
    pub signed: Vec<u8>,
    /// The addresses it was handed over at (re-checked for reachability on load).
    pub addrs: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    version: u8,
    peers: Vec<CachedPeer>,
}

/// Why a cache file was not used.
#[derive(Debug, PartialEq, Eq)]
pub enum CacheError {
    /// Larger than [`MAX_FILE`].
    TooLarge,
    /// Not a cache file of this version (truncated, corrupt, or another version).
    Corrupt,
}

impl std::fmt::Display for CacheError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheError::TooLarge => write!(f, "larger than {MAX_FILE} bytes"),
            CacheError::Corrupt => f.write_str("truncated or corrupt"),
        }
    }
}

/// Encodes peers (at most [`MAX_ENTRIES`]).
pub fn encode(peers: &[CachedPeer]) -> Vec<u8> {
    let file = CacheFile {
        version: CACHE_VERSION,
        peers: peers.iter().take(MAX_ENTRIES).cloned().collect(),
    };
    postcard::to_stdvec(&file).unwrap_or_default()
}

/// Decodes a cache file; trailing bytes, another version or too many entries are corruption.
pub fn decode(bytes: &[u8]) -> Result<Vec<CachedPeer>, CacheError> {
    if bytes.len() > MAX_FILE {
        return Err(CacheError::TooLarge);
    }
    match postcard::take_from_bytes::<CacheFile>(bytes) {
        Ok((f, [])) if f.version == CACHE_VERSION && f.peers.len() <= MAX_ENTRIES => Ok(f.peers),
        _ => Err(CacheError::Corrupt),
    }
}

/// The default state directory: `$STATE_DIRECTORY` (systemd), `/var/lib/exo-discovery` for
/// root, else `$XDG_STATE_HOME/exo-discovery` or `~/.local/state/exo-discovery`.
pub fn default_state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("STATE_DIRECTORY").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/exo-discovery");
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("exo-discovery");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(h) => PathBuf::from(h).join(".local/state/exo-discovery"),
        None => PathBuf::from("/tmp/exo-discovery-state"),
    }
}

/// Reads the cache in `dir`. A missing file is an empty cache; anything wrong with it is an
/// error the caller reports and moves past.
pub fn load(dir: &Path) -> Result<Vec<CachedPeer>, String> {
    let path = dir.join(FILE_NAME);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    decode(&bytes).map_err(|e| format!("{} is {e}; ignoring it", path.display()))
}

/// Writes the cache in `dir` atomically: a temporary file, fsync, rename over the old one, fsync
/// the directory. The directory is created (0700) if needed.
pub fn save(dir: &Path, peers: &[CachedPeer]) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let path = dir.join(FILE_NAME);
    let tmp = dir.join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&encode(peers))?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers() -> Vec<CachedPeer> {
        vec![
            CachedPeer {
                signed: vec![1, 2, 3],
                addrs: vec!["/ip4/10.0.0.1/tcp/1/p2p/x".into()],
            },
            CachedPeer {
                signed: vec![4; 300],
                addrs: vec![],
            },
        ]
    }

    #[test]
    fn round_trip() {
        assert_eq!(decode(&encode(&peers())).unwrap(), peers());
        assert_eq!(decode(&encode(&[])).unwrap(), vec![]);
    }

    #[test]
    fn every_truncation_and_flip_is_corrupt_or_harmless() {
        let bytes = encode(&peers());
        for n in 0..bytes.len() {
            assert_eq!(
                decode(&bytes[..n]),
                Err(CacheError::Corrupt),
                "truncated at {n}"
            );
        }
        let mut other = bytes.clone();
        other[0] = 9;
        assert_eq!(decode(&other), Err(CacheError::Corrupt));
        let mut long = bytes;
        long.push(0);
        assert_eq!(decode(&long), Err(CacheError::Corrupt));
        assert_eq!(decode(&vec![0; MAX_FILE + 1]), Err(CacheError::TooLarge));
    }

    #[test]
    fn save_then_load_and_a_corrupt_file_is_reported() {
        let dir = std::env::temp_dir().join(format!("exo-cache-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(load(&dir).unwrap(), vec![], "missing is empty");
        save(&dir, &peers()).unwrap();
        assert_eq!(load(&dir).unwrap(), peers());
        std::fs::write(dir.join(FILE_NAME), b"garbage").unwrap();
        let e = load(&dir).unwrap_err();
        assert!(e.contains("corrupt"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
