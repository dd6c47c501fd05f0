//! Hash maps keyed by call and connection ids, with a cheap hash.
//!
//! Every delivery looks a call up in the core and its connection and stream
//! up in the driver; SipHash (the std default) costs more than the rest of
//! such a lookup. These keys are integers the driver assigns (connections)
//! or that a client picks within its own connection (HTTP/2 stream ids, at
//! most [`crate::limits::MAX_CALLS_PER_CONNECTION`] at a time), so there is
//! no flooding to defend against with a keyed hash: a multiplicative
//! (Fibonacci) hash spreads them well.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` with [`IdHasher`].
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Multiplicative hashing of integer keys; other input is folded in 8 bytes
/// at a time.
#[derive(Default, Clone, Copy, Debug)]
pub struct IdHasher(u64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        // The high bits of the product depend on every bit of the input;
        // hashbrown takes its control byte from the top and its bucket from
        // the bottom, so fold the top half down as well.
        let x = (self.0.rotate_left(5) ^ n).wrapping_mul(K);
        self.0 = x ^ (x >> 32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::CallId;

    #[test]
    fn stream_ids_of_one_connection_spread_over_buckets() {
        // Client-chosen odd stream ids on one connection: their hashes must
        // differ in the low bits (bucket) and the top 7 bits (control byte).
        let hashes: Vec<u64> = (0..128u64)
            .map(|s| {
                let mut h = IdHasher::default();
                std::hash::Hash::hash(&CallId(7 << 32 | (2 * s + 1)), &mut h);
                h.finish()
            })
            .collect();
        let low: std::collections::HashSet<u64> = hashes.iter().map(|h| h & 0xff).collect();
        let top: std::collections::HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert!(low.len() > 64, "{}", low.len());
        assert!(top.len() > 64, "{}", top.len());
        let mut map: IdMap<CallId, u32> = IdMap::default();
        for s in 0..1000u64 {
            map.insert(CallId(s), s as u32);
        }
        assert!((0..1000u64).all(|s| map[&CallId(s)] == s as u32));
    }
}
