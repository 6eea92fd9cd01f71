//! Keyed 64-bit fingerprints, where the engine files something by a value it need not keep whole
//! (an 80-byte peer ID, a 60-byte instance label). The key is chosen at random per index (per
//! process for instance labels, [`label_print`]), so nobody outside this process can make two
//! values that share a fingerprint: an index may take equal fingerprints for equal values.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};

/// A random key, and the fingerprints it makes.
#[derive(Debug, Default)]
pub(crate) struct Keys(RandomState);

impl Keys {
    /// The fingerprint of `value`.
    pub(crate) fn of<T: Hash + ?Sized>(&self, value: &T) -> u64 {
        self.0.hash_one(value)
    }
}

/// The process's key, for what a packet names: one for every engine in the process, so that what
/// a packet names is fingerprinted once where the packet is read, however many engines take it in.
fn process_key() -> &'static RandomState {
    static KEY: std::sync::OnceLock<RandomState> = std::sync::OnceLock::new();
    KEY.get_or_init(RandomState::new)
}

/// The fingerprint of an instance label, under the process's key
/// ([`crate::engine::labels::Label`]).
#[inline(never)]
pub(crate) fn label_print(label: &str) -> u64 {
    process_key().hash_one(label)
}

/// The fingerprint of a packet's source address (as [`IpAddr::to_canonical`] gives it), under
/// the process's key ([`crate::engine::links::heard::Datagram`]).
pub(crate) fn source_print(ip: std::net::IpAddr) -> u64 {
    process_key().hash_one(ip.to_canonical())
}

/// Folds bytes into a hasher's state: only `write_u64` is meant to reach the hashers here, and
/// anything else is folded in, not lost.
fn fold(state: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(state, |s, b| s.rotate_left(8) ^ u64::from(*b))
}

/// The hashing of a map by fingerprint whose order is its own: each fingerprint mixed with a key
/// chosen at random for the map (SplitMix64's finaliser), so two maps holding the same
/// fingerprints go over them in different orders, as maps under keys of their own do.
#[derive(Clone, Debug)]
pub(crate) struct Shuffled(u64);

impl Default for Shuffled {
    fn default() -> Self {
        Shuffled(RandomState::new().hash_one(0u8))
    }
}

impl BuildHasher for Shuffled {
    type Hasher = Mixed;
    fn build_hasher(&self) -> Mixed {
        Mixed(self.0)
    }
}

/// The hasher of [`Shuffled`].
pub(crate) struct Mixed(u64);

impl Hasher for Mixed {
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = fold(self.0, bytes);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

/// A map by fingerprint: its keys are hashed already, and are not hashed again.
pub(crate) type ByFingerprint<V> = HashMap<u64, V, BuildHasherDefault<Fingerprinted>>;

/// The hasher of [`ByFingerprint`]: the key as it is.
#[derive(Default)]
pub(crate) struct Fingerprinted(u64);

impl Hasher for Fingerprinted {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = fold(self.0, bytes);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_under_shuffled_keys_go_over_the_same_fingerprints_in_orders_of_their_own() {
        let prints: Vec<(u32, u64)> = (0..64u64).map(|i| (1, label_print(&format!("a-{i}")))).collect();
        let order = || {
            let map: HashMap<(u32, u64), (), Shuffled> = prints.iter().map(|k| (*k, ())).collect();
            map.into_keys().collect::<Vec<_>>()
        };
        let first = order();
        let mut sorted = first.clone();
        sorted.sort_unstable();
        let mut all = prints.clone();
        all.sort_unstable();
        assert_eq!(sorted, all, "every key is there");
        // Two agents following the same 64 instances: the same order would be one chance in 64!.
        assert_ne!(first, order());
    }
}
