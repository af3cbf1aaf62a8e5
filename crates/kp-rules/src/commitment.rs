//! The state commitment: a deterministic root over every record of the ledger state, updated
//! incrementally.
//!
//! Layout (format version 1): each record is a (key, value) pair of bytes. Its leaf is
//! `SHA-256(0x00 || u32be(len key) || key || value)`, placed by `SHA-256(key)`. The leaves fall
//! into 2^16 buckets by the first two bytes of that key hash; a bucket's hash is
//! `SHA-256(0x01 || (key hash || leaf)*)` over its leaves in key-hash order. A complete binary
//! tree over the buckets, node = `SHA-256(0x02 || left || right)`, gives the root. An update
//! costs two hashes for the leaf, one bucket hash (about 15 leaves per million records) and 16
//! node hashes per dirty bucket, once per block. A proof of one record is its bucket's leaves
//! plus 16 sibling hashes.

use kp_domain::Hash32;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

const BUCKET_BITS: u32 = 16;
const BUCKETS: usize = 1 << BUCKET_BITS;

#[derive(Clone, Debug)]
pub struct Commitment {
    /// Per bucket, its records' (key hash, leaf hash) in key-hash order. A bucket holds about
    /// 15 leaves per million records: a binary search over a few cache lines finds a key, where
    /// one ordered map of every leaf chased a pointer per level, and a bucket hash reads its
    /// vector straight.
    buckets: Vec<Vec<(Hash32, Hash32)>>,
    /// Heap-ordered tree: nodes[1] is the root, nodes[BUCKETS + b] is bucket b.
    nodes: Vec<Hash32>,
    dirty: BTreeSet<usize>,
}

fn bucket_of(key_hash: &Hash32) -> usize {
    usize::from(key_hash.0[0]) << 8 | usize::from(key_hash.0[1])
}

fn node(left: &Hash32, right: &Hash32) -> Hash32 {
    Hash32(Sha256::new().chain_update([2u8]).chain_update(left.0).chain_update(right.0).finalize().into())
}

impl Default for Commitment {
    fn default() -> Self {
        Self::new()
    }
}

impl Commitment {
    pub fn new() -> Self {
        let mut nodes = vec![Hash32::default(); 2 * BUCKETS];
        // Every bucket is empty: each level holds one repeated hash.
        let mut level_hash = Hash32(Sha256::digest([1u8]).into());
        let mut width = BUCKETS;
        while width >= 1 {
            nodes[width..2 * width].fill(level_hash);
            level_hash = node(&level_hash, &level_hash);
            width /= 2;
        }
        Commitment { buckets: vec![Vec::new(); BUCKETS], nodes, dirty: BTreeSet::new() }
    }

    /// Sets (or with `None` removes) the record under `key`.
    pub fn set(&mut self, key: &[u8], value: Option<&[u8]>) {
        let key_hash = Hash32(Sha256::digest(key).into());
        let bucket = bucket_of(&key_hash);
        let leaves = &mut self.buckets[bucket];
        let at = leaves.binary_search_by(|(k, _)| k.cmp(&key_hash));
        match (value, at) {
            (Some(value), at) => {
                let len = u32::try_from(key.len()).unwrap_or(u32::MAX).to_be_bytes();
                let leaf = Hash32(
                    Sha256::new()
                        .chain_update([0u8])
                        .chain_update(len)
                        .chain_update(key)
                        .chain_update(value)
                        .finalize()
                        .into(),
                );
                match at {
                    Ok(i) => leaves[i].1 = leaf,
                    Err(i) => leaves.insert(i, (key_hash, leaf)),
                }
            }
            (None, Ok(i)) => {
                leaves.remove(i);
            }
            (None, Err(_)) => {}
        }
        self.dirty.insert(bucket);
    }

    /// Records over all buckets (a count of the buckets' leaves: for tests, not a hot path).
    pub fn len(&self) -> usize {
        self.buckets.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.iter().all(Vec::is_empty)
    }

    /// The root over every record set so far.
    pub fn root(&mut self) -> Hash32 {
        let mut parents = BTreeSet::new();
        for bucket in std::mem::take(&mut self.dirty) {
            let mut h = Sha256::new().chain_update([1u8]);
            for (k, leaf) in &self.buckets[bucket] {
                h.update(k.0);
                h.update(leaf.0);
            }
            self.nodes[BUCKETS + bucket] = Hash32(h.finalize().into());
            parents.insert((BUCKETS + bucket) / 2);
        }
        while !parents.is_empty() {
            let mut next = BTreeSet::new();
            for i in parents {
                self.nodes[i] = node(&self.nodes[2 * i], &self.nodes[2 * i + 1]);
                if i > 1 {
                    next.insert(i / 2);
                }
            }
            parents = next;
        }
        self.nodes[1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The root depends only on the final set of records, not on the order or history of
        /// updates, nor on when the root was computed.
        #[test]
        fn root_is_a_function_of_the_records(ops in proptest::collection::vec((0u8..20, proptest::option::of(0u8..4)), 0..60), split in 0usize..60) {
            let mut incremental = Commitment::new();
            let mut model = std::collections::BTreeMap::new();
            for (i, (k, v)) in ops.iter().enumerate() {
                incremental.set(&[*k], v.as_ref().map(std::slice::from_ref));
                match v { Some(v) => { model.insert(*k, *v); } None => { model.remove(k); } }
                if i == split { incremental.root(); }
            }
            let mut fresh = Commitment::new();
            for (k, v) in model.iter().rev() {
                fresh.set(&[*k], Some(&[*v]));
            }
            prop_assert_eq!(incremental.root(), fresh.root());
            prop_assert_eq!(incremental.len(), model.len());
        }
    }

    #[test]
    fn distinct_states_have_distinct_roots() {
        let mut a = Commitment::new();
        let empty = a.root();
        a.set(b"k", Some(b"v"));
        let one = a.root();
        a.set(b"k", Some(b"w"));
        let other = a.root();
        a.set(b"k", None);
        assert_ne!(empty, one);
        assert_ne!(one, other);
        assert_eq!(a.root(), empty);
    }

    /// The layout is a format (block headers commit to the root): a root computed by the
    /// first implementation, pinned.
    #[test]
    fn root_of_known_records_is_pinned() {
        let mut c = Commitment::new();
        for i in 0..3000u32 {
            c.set(format!("key-{i}").as_bytes(), Some(format!("value-{i}").as_bytes()));
        }
        for i in (0..3000u32).step_by(7) {
            c.set(format!("key-{i}").as_bytes(), None);
        }
        c.root();
        for i in (0..3000u32).step_by(5) {
            c.set(format!("key-{i}").as_bytes(), Some(b"again"));
        }
        assert_eq!(c.root().to_hex(), "8f349044fa9cc9b46d3869ba2337bdeb8d87bab5683c55c37ede671e56f62e56");
        assert_eq!(c.len(), 3000 - 3000usize.div_ceil(7) + (0..3000u32).step_by(35).count());
    }
}
