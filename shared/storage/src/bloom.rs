//! The primary-key bloom filter of a segment (stored in its stats log).
//!
//! `k` probe positions come from double hashing of the key's stable 64-bit hash
//! ([`PrimaryKey::hash`]), so the filter is identical on every node and across versions.

use fv_common::PrimaryKey;
use fv_common::hash::mix64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BloomFilter {
    num_bits: u64,
    num_hashes: u32,
    words: Vec<u64>,
}

impl BloomFilter {
    /// A filter sized for `expected_items` keys at false-positive rate `fp_rate`.
    pub fn with_capacity(expected_items: usize, fp_rate: f64) -> BloomFilter {
        let n = expected_items.max(1) as f64;
        let p = fp_rate.clamp(1e-9, 0.5);
        let ln2 = std::f64::consts::LN_2;
        let bits = (-(n * p.ln()) / (ln2 * ln2)).ceil().max(64.0) as u64;
        let hashes = ((bits as f64 / n) * ln2).round().clamp(1.0, 30.0) as u32;
        let words = bits.div_ceil(64) as usize;
        BloomFilter { num_bits: words as u64 * 64, num_hashes: hashes, words: vec![0; words] }
    }

    /// Rebuilds a filter from its stored parts; None when they are inconsistent.
    pub fn from_parts(num_bits: u64, num_hashes: u32, words: Vec<u64>) -> Option<BloomFilter> {
        (num_bits > 0 && num_hashes > 0 && num_bits == words.len() as u64 * 64).then_some(BloomFilter {
            num_bits,
            num_hashes,
            words,
        })
    }

    pub fn num_bits(&self) -> u64 {
        self.num_bits
    }
    pub fn num_hashes(&self) -> u32 {
        self.num_hashes
    }
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    fn probes(&self, key_hash: u64) -> impl Iterator<Item = u64> + '_ {
        let h1 = key_hash;
        let h2 = mix64(key_hash) | 1;
        (0..self.num_hashes as u64).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % self.num_bits)
    }

    pub fn insert(&mut self, key: &PrimaryKey) {
        let h = key.hash();
        let probes: Vec<u64> = self.probes(h).collect();
        for bit in probes {
            self.words[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }

    /// False means the key is certainly absent; true means it may be present.
    pub fn may_contain(&self, key: &PrimaryKey) -> bool {
        self.probes(key.hash()).all(|bit| self.words[(bit / 64) as usize] & (1 << (bit % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_low_false_positive_rate() {
        let mut bf = BloomFilter::with_capacity(10_000, 0.001);
        for i in 0..10_000i64 {
            bf.insert(&PrimaryKey::Int(i * 7));
        }
        for i in 0..10_000i64 {
            assert!(bf.may_contain(&PrimaryKey::Int(i * 7)));
        }
        let fp = (0..100_000i64).filter(|i| bf.may_contain(&PrimaryKey::Int(i * 7 + 3))).count();
        // Expected about 100 (0.1 %); allow some slack but catch a broken filter.
        assert!(fp < 400, "false positives: {fp}");
    }

    #[test]
    fn string_keys_and_parts_round_trip() {
        let mut bf = BloomFilter::with_capacity(100, 0.01);
        bf.insert(&PrimaryKey::Str("alpha".into()));
        let back = BloomFilter::from_parts(bf.num_bits(), bf.num_hashes(), bf.words().to_vec()).expect("consistent");
        assert!(back.may_contain(&PrimaryKey::Str("alpha".into())));
        assert!(BloomFilter::from_parts(65, 3, vec![0]).is_none());
    }
}
