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

/// The fingerprint of an instance label, under the process's key for labels: one key for every
/// engine in the process, so that a label a packet names is fingerprinted once where the packet
/// is read, however many engines take it in ([`crate::engine::labels::Label`]).
#[inline(never)]
pub(crate) fn label_print(label: &str) -> u64 {
    static KEY: std::sync::OnceLock<RandomState> = std::sync::OnceLock::new();
    KEY.get_or_init(RandomState::new).hash_one(label)
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
        // Only `write_u64` comes here; anything else is folded in, not lost.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
