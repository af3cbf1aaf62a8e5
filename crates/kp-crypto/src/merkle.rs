//! Merkle trees as in RFC 6962 (Certificate Transparency), section 2.1: leaf hash
//! `SHA-256(0x00 || leaf)`, node hash `SHA-256(0x01 || left || right)`, the split at the largest
//! power of two smaller than n. The root of an empty tree is `SHA-256()`. Inclusion proofs are
//! logarithmic in the number of leaves; a verifier needs only the leaf, the proof and the root.

use kp_domain::Hash32;
use sha2::{Digest, Sha256};

/// The RFC 6962 leaf hash of `leaf`: what a redacted event carries in its place.
pub fn leaf_hash(leaf: &[u8]) -> Hash32 {
    Hash32(Sha256::new().chain_update([0u8]).chain_update(leaf).finalize().into())
}

fn node_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    Hash32(Sha256::new().chain_update([1u8]).chain_update(left.0).chain_update(right.0).finalize().into())
}

fn split(n: usize) -> usize {
    // Largest power of two strictly smaller than n (n >= 2).
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The RFC 6962 Merkle tree hash of leaves given by their leaf hashes ([`leaf_hash`]): a block's
/// events root checked without the events' bytes.
pub fn root_of_hashes(hashes: &[Hash32]) -> Hash32 {
    match hashes.len() {
        0 => Hash32(Sha256::digest([]).into()),
        1 => hashes[0],
        n => {
            let k = split(n);
            node_hash(&root_of_hashes(&hashes[..k]), &root_of_hashes(&hashes[k..]))
        }
    }
}

/// The RFC 6962 Merkle tree hash of `leaves`.
pub fn merkle_root<L: AsRef<[u8]>>(leaves: &[L]) -> Hash32 {
    let hashes: Vec<Hash32> = leaves.iter().map(|l| leaf_hash(l.as_ref())).collect();
    root_of_hashes(&hashes)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    #[error("leaf index {index} is outside a tree of {size} leaves")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("proof has {got} hashes, a tree of {size} leaves needs {expected} for leaf {index}")]
    WrongLength { index: u64, size: u64, got: usize, expected: usize },
    #[error("proof does not lead to the expected root")]
    RootMismatch,
}

/// An audit path (RFC 6962 section 2.1.1) for one leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    pub index: u64,
    pub size: u64,
    /// Sibling hashes from the leaf up.
    pub path: Vec<Hash32>,
}

impl InclusionProof {
    /// The proof that `leaves[index]` is in the tree of `leaves`.
    pub fn build<L: AsRef<[u8]>>(leaves: &[L], index: usize) -> Result<Self, MerkleError> {
        let size = leaves.len();
        if index >= size {
            return Err(MerkleError::IndexOutOfRange { index: index as u64, size: size as u64 });
        }
        let hashes: Vec<Hash32> = leaves.iter().map(|l| leaf_hash(l.as_ref())).collect();
        let mut path = Vec::new();
        let (mut lo, mut hi, mut m) = (0usize, size, index);
        // Walk down, collecting siblings top-down, then reverse.
        while hi - lo > 1 {
            let k = split(hi - lo);
            if m < k {
                path.push(root_of_hashes(&hashes[lo + k..hi]));
                hi = lo + k;
            } else {
                path.push(root_of_hashes(&hashes[lo..lo + k]));
                lo += k;
                m -= k;
            }
        }
        path.reverse();
        Ok(InclusionProof { index: index as u64, size: size as u64, path })
    }

    /// Checks that `leaf` is at `self.index` in a tree of `self.size` leaves with root `root`.
    pub fn verify(&self, leaf: &[u8], root: &Hash32) -> Result<(), MerkleError> {
        if self.index >= self.size {
            return Err(MerkleError::IndexOutOfRange { index: self.index, size: self.size });
        }
        // RFC 9162 section 2.1.3.2.
        let (mut fn_, mut sn) = (self.index, self.size - 1);
        let mut r = leaf_hash(leaf);
        let expected = expected_len(self.index, self.size);
        if self.path.len() != expected {
            return Err(MerkleError::WrongLength {
                index: self.index,
                size: self.size,
                got: self.path.len(),
                expected,
            });
        }
        for p in &self.path {
            if sn == 0 {
                return Err(MerkleError::RootMismatch);
            }
            if fn_ & 1 == 1 || fn_ == sn {
                r = node_hash(p, &r);
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            } else {
                r = node_hash(&r, p);
            }
            fn_ >>= 1;
            sn >>= 1;
        }
        if sn == 0 && r == *root { Ok(()) } else { Err(MerkleError::RootMismatch) }
    }
}

fn expected_len(index: u64, size: u64) -> usize {
    let (mut lo, mut hi, mut m, mut n) = (0u64, size, index, 0usize);
    while hi - lo > 1 {
        let k = split(usize::try_from(hi - lo).unwrap_or(usize::MAX)) as u64;
        if m < k {
            hi = lo + k;
        } else {
            lo += k;
            m -= k;
        }
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc6962_known_roots() {
        // Empty tree: SHA-256 of the empty string.
        assert_eq!(
            merkle_root::<&[u8]>(&[]).to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // One empty leaf: SHA-256(0x00) (RFC 6962 test vectors, certificate-transparency-go).
        assert_eq!(merkle_root(&[b""]).to_hex(), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    }

    proptest! {
        #[test]
        fn every_leaf_has_a_verifying_proof(n in 1usize..40, pick in 0usize..40, flip in 0usize..64) {
            let leaves: Vec<Vec<u8>> = (0..n).map(|i| vec![u8::try_from(i).unwrap(); i % 5 + 1]).collect();
            let root = merkle_root(&leaves);
            let index = pick % n;
            let proof = InclusionProof::build(&leaves, index).unwrap();
            prop_assert!(proof.path.len() <= 6);
            prop_assert_eq!(proof.verify(&leaves[index], &root), Ok(()));
            // Another leaf, another index or a damaged path does not verify.
            prop_assert!(proof.verify(b"not a leaf", &root).is_err());
            if n > 1 {
                let other = InclusionProof { index: ((index + 1) % n) as u64, ..proof.clone() };
                prop_assert!(other.verify(&leaves[index], &root).is_err());
            }
            if !proof.path.is_empty() {
                let mut bad = proof.clone();
                let at = flip % bad.path.len();
                bad.path[at].0[0] ^= 1;
                prop_assert!(bad.verify(&leaves[index], &root).is_err());
            }
        }
    }
}
