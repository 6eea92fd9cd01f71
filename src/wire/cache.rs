//! The persistent peer cache: the last verified record of every peer and the addresses it was
//! reachable at, so a restarted agent hands its node peers before any packet is heard.
//! This is its encoding, pure; the agent's `files` module reads and writes the file.

use serde::{Deserialize, Serialize};

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
}
