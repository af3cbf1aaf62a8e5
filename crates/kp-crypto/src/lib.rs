//! Signatures, hashes and Merkle trees for the ledger.
//!
//! Architecture invariants:
//! - Every signature covers `tag || 0x00 || len(chain_id) || chain_id || bytes`, where `bytes`
//!   are the exact bytes stored; nothing is re-encoded to verify. Each kind of signed thing has
//!   its own [`Tag`], so a signature made for one purpose is never valid for another.
//! - Verification is strict (RFC 8032 with canonical `S`, small-order keys and `R` refused) so
//!   that one message has one valid signature per key.
//! - No I/O but the OS random source in [`SecretKey::generate`].

mod merkle;

pub use merkle::{InclusionProof, MerkleError, merkle_root};

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use kp_domain::{ChainId, EventId, Hash32, PublicKey};
use sha2::{Digest, Sha256};
use std::fmt;

/// The purpose of a signature. The tag is the first thing signed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Tag {
    /// A custody event's payload, signed by a national authority.
    Event,
    /// A governance act, signed by each approving participant's authority.
    Approval,
    /// A consensus vote (reserved for the consensus crate).
    Vote,
    /// A block proposal (reserved for the consensus crate).
    Proposal,
}

impl Tag {
    pub fn bytes(self) -> &'static [u8] {
        match self {
            Tag::Event => b"kp-ledger/v1/event",
            Tag::Approval => b"kp-ledger/v1/governance-approval",
            Tag::Vote => b"kp-ledger/v1/vote",
            Tag::Proposal => b"kp-ledger/v1/proposal",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("public key {0} is not a valid Ed25519 point")]
    BadPublicKey(String),
    #[error("signature must be 64 bytes, got {0}")]
    BadSignatureLength(usize),
    #[error("signature does not verify for key {0}")]
    BadSignature(String),
    #[error("a batch of {0} signatures failed to verify")]
    BatchFailed(usize),
    #[error("the operating system's random source failed: {0}")]
    Random(String),
}

/// The exact bytes a signature of `tag` covers.
pub fn signing_message(tag: Tag, chain_id: &ChainId, bytes: &[u8]) -> Vec<u8> {
    let tag = tag.bytes();
    let chain = chain_id.as_str().as_bytes();
    let mut message = Vec::with_capacity(tag.len() + 2 + chain.len() + bytes.len());
    message.extend_from_slice(tag);
    message.push(0);
    // ChainId::MAX_BYTES is 64, so the length fits one byte.
    message.push(u8::try_from(chain.len()).unwrap_or(u8::MAX));
    message.extend_from_slice(chain);
    message.extend_from_slice(bytes);
    message
}

/// A 64-byte Ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        <[u8; 64]>::try_from(bytes).map(Signature).map_err(|_| CryptoError::BadSignatureLength(bytes.len()))
    }
}
impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({:02x}{:02x}{:02x}{:02x}…)", self.0[0], self.0[1], self.0[2], self.0[3])
    }
}

/// An Ed25519 signing key. Its bytes never leave the process that holds it but through
/// [`SecretKey::to_seed`], for writing a key file.
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| CryptoError::Random(e.to_string()))?;
        Ok(Self::from_seed(&seed))
    }
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        SecretKey(SigningKey::from_bytes(seed))
    }
    pub fn to_seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }
    /// Signs `bytes` for `tag` on `chain_id`.
    pub fn sign(&self, tag: Tag, chain_id: &ChainId, bytes: &[u8]) -> Signature {
        Signature(self.0.sign(&signing_message(tag, chain_id, bytes)).to_bytes())
    }
}
impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(public {})", self.public().short())
    }
}

/// Keys decompressed per thread, at most this many (then the cache starts again): a ledger's
/// signers are few (voters' node keys, authorities' keys), and decompressing a key costs about
/// as much as half a batched verification.
const KEY_CACHE_ENTRIES: usize = 4096;

thread_local! {
    static KEYS: std::cell::RefCell<std::collections::HashMap<[u8; 32], VerifyingKey>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

fn verifying_key(key: &PublicKey) -> Result<VerifyingKey, CryptoError> {
    if let Some(vk) = KEYS.with(|k| k.borrow().get(key.as_bytes()).copied()) {
        return Ok(vk);
    }
    let vk = VerifyingKey::from_bytes(key.as_bytes()).map_err(|_| CryptoError::BadPublicKey(key.short()))?;
    if vk.is_weak() {
        return Err(CryptoError::BadPublicKey(key.short()));
    }
    // Only keys that passed both checks are kept: a cached key is one this function accepts.
    KEYS.with(|k| {
        let mut k = k.borrow_mut();
        if k.len() >= KEY_CACHE_ENTRIES {
            k.clear();
        }
        k.insert(*key.as_bytes(), vk);
    });
    Ok(vk)
}

/// Verifies one signature, strictly.
pub fn verify(
    key: &PublicKey,
    tag: Tag,
    chain_id: &ChainId,
    bytes: &[u8],
    signature: &Signature,
) -> Result<(), CryptoError> {
    let vk = verifying_key(key)?;
    let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
    vk.verify_strict(&signing_message(tag, chain_id, bytes), &sig).map_err(|_| CryptoError::BadSignature(key.short()))
}

/// One item of a batch: who signed what.
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    pub key: &'a PublicKey,
    pub tag: Tag,
    pub bytes: &'a [u8],
    pub signature: &'a Signature,
}

/// Verifies many signatures at once (about twice as fast per signature as one by one). On
/// failure, call [`verify`] on each item to find the culprit. Weak keys are refused up front, as
/// [`verify`] refuses them.
///
/// Known gap, as in ed25519-dalek's batch verification: the batch equation is cofactorless with
/// weights derived from the batch, so a signer who puts a small-order component into its own
/// signature's `R` (which [`verify`] refuses) passes whenever that item's weight is a multiple
/// of 8, and can search batch compositions for one. No one can forge another's signature this
/// way; the signer gets a second encoding of its own event, which an auditor batching other
/// chunks may refuse. Closing it (the cofactored equation for single and batch verification
/// alike, or a torsion check on `R`) is a format decision left to its own issue.
///
/// The check is ed25519-dalek's batch equation, `[−Σ zᵢsᵢ]B + Σ [zᵢ]Rᵢ + Σ [zᵢhᵢ]Aᵢ = 0` with
/// `hᵢ = H(Rᵢ || Aᵢ || Mᵢ)` and 128-bit weights `zᵢ`, with one change: the terms of one signer
/// are summed first, `Σ_A [Σ_{i: Aᵢ = A} zᵢhᵢ]A`. A ledger's events come from a few hundred
/// authority keys at most, so a block of hundreds of events multiplies far fewer points. The
/// weights come from a hash of every `hᵢ` and `sᵢ` in the batch (as ed25519-dalek derives them
/// from a transcript of the same values): no one can choose a signature after seeing them, and
/// verification stays a pure function.
pub fn verify_batch(chain_id: &ChainId, items: &[BatchItem<'_>]) -> Result<(), CryptoError> {
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
    use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
    use curve25519_dalek::scalar::Scalar;
    use curve25519_dalek::traits::{IsIdentity as _, VartimeMultiscalarMul as _};
    use sha2::Sha512;

    if items.is_empty() {
        return Ok(());
    }
    let failed = || CryptoError::BatchFailed(items.len());
    // What precedes the signed bytes, per tag (a batch holds one or two tags).
    let mut prefixes: Vec<(Tag, Vec<u8>)> = Vec::new();
    // Each distinct key: checked (and decompressed) once, its point multiplied once.
    let mut signers: std::collections::HashMap<[u8; 32], usize> = std::collections::HashMap::new();
    let mut signer_points: Vec<EdwardsPoint> = Vec::new();
    // Per item: its signer, R, s and h = H(R || A || M).
    let mut terms: Vec<(usize, EdwardsPoint, Scalar, Scalar)> = Vec::with_capacity(items.len());
    let mut seed = Sha512::new().chain_update(b"kp batch verification weights");
    for item in items {
        let signer = match signers.entry(*item.key.as_bytes()) {
            std::collections::hash_map::Entry::Occupied(e) => *e.get(),
            std::collections::hash_map::Entry::Vacant(e) => {
                signer_points.push(verifying_key(item.key)?.to_edwards());
                *e.insert(signer_points.len() - 1)
            }
        };
        let signature = ed25519_dalek::Signature::from_bytes(&item.signature.0);
        // Canonical s only, as ed25519-dalek requires.
        let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(*signature.s_bytes())).ok_or_else(failed)?;
        let r = CompressedEdwardsY(*signature.r_bytes()).decompress().ok_or_else(failed)?;
        let prefix = match prefixes.iter().position(|(t, _)| *t == item.tag) {
            Some(p) => &prefixes[p].1,
            None => {
                prefixes.push((item.tag, signing_message(item.tag, chain_id, &[])));
                &prefixes[prefixes.len() - 1].1
            }
        };
        let hram: [u8; 64] = Sha512::new()
            .chain_update(signature.r_bytes())
            .chain_update(item.key.as_bytes())
            .chain_update(prefix)
            .chain_update(item.bytes)
            .finalize()
            .into();
        seed.update(hram);
        seed.update(signature.s_bytes());
        terms.push((signer, r, s, Scalar::from_bytes_mod_order_wide(&hram)));
    }
    let seed: [u8; 64] = seed.finalize().into();
    // Four 128-bit weights from each hash of the seed and a counter.
    let mut weights = Vec::with_capacity(items.len() + 3);
    for block in 0..items.len().div_ceil(4) {
        let out: [u8; 64] =
            Sha512::new().chain_update(seed).chain_update((block as u64).to_le_bytes()).finalize().into();
        for w in out.chunks_exact(16) {
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(w);
            weights.push(Scalar::from(u128::from_le_bytes(bytes)));
        }
    }
    let mut basepoint = Scalar::ZERO;
    let mut signer_weights = vec![Scalar::ZERO; signer_points.len()];
    for ((signer, _, s, h), z) in terms.iter().zip(&weights) {
        basepoint += s * z;
        signer_weights[*signer] += h * z;
    }
    let sum = EdwardsPoint::vartime_multiscalar_mul(
        std::iter::once(-basepoint).chain(weights.iter().take(items.len()).copied()).chain(signer_weights),
        std::iter::once(ED25519_BASEPOINT_POINT).chain(terms.iter().map(|t| t.1)).chain(signer_points),
    );
    match sum.is_identity() {
        true => Ok(()),
        false => Err(failed()),
    }
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> Hash32 {
    Hash32(Sha256::digest(bytes).into())
}

/// SHA-256 over several pieces, as if concatenated.
pub fn sha256_parts(parts: &[&[u8]]) -> Hash32 {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    Hash32(h.finalize().into())
}

/// The id of an event: SHA-256 of its signed envelope, exactly as stored.
pub fn event_id(envelope_bytes: &[u8]) -> EventId {
    EventId(sha256(envelope_bytes).0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain() -> ChainId {
        ChainId::new("kp-test").unwrap()
    }

    #[test]
    fn sign_and_verify() {
        let key = SecretKey::from_seed(&[1; 32]);
        let sig = key.sign(Tag::Event, &chain(), b"payload");
        verify(&key.public(), Tag::Event, &chain(), b"payload", &sig).unwrap();
        // Another purpose, another chain, other bytes, another key: all refused.
        assert!(verify(&key.public(), Tag::Approval, &chain(), b"payload", &sig).is_err());
        assert!(verify(&key.public(), Tag::Event, &ChainId::new("kp-other").unwrap(), b"payload", &sig).is_err());
        assert!(verify(&key.public(), Tag::Event, &chain(), b"payloae", &sig).is_err());
        assert!(verify(&SecretKey::from_seed(&[2; 32]).public(), Tag::Event, &chain(), b"payload", &sig).is_err());
    }

    #[test]
    fn weak_and_invalid_keys_are_refused() {
        // The identity point (small order) is a weak key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let sig = Signature([0; 64]);
        assert_eq!(
            verify(&PublicKey(identity), Tag::Event, &chain(), b"x", &sig),
            Err(CryptoError::BadPublicKey(PublicKey(identity).short()))
        );
        assert!(Signature::from_slice(&[0; 63]).is_err());
    }

    #[test]
    fn batch_agrees_with_single() {
        let keys: Vec<SecretKey> = (0..10u8).map(|i| SecretKey::from_seed(&[i; 32])).collect();
        let publics: Vec<PublicKey> = keys.iter().map(SecretKey::public).collect();
        let msgs: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 40]).collect();
        let mut sigs: Vec<Signature> = keys.iter().zip(&msgs).map(|(k, m)| k.sign(Tag::Vote, &chain(), m)).collect();
        let items = |sigs: &[Signature]| -> Vec<(PublicKey, Vec<u8>, Signature)> {
            publics.iter().zip(&msgs).zip(sigs).map(|((k, m), s)| (*k, m.clone(), *s)).collect()
        };
        let owned = items(&sigs);
        let batch: Vec<BatchItem<'_>> =
            owned.iter().map(|(k, m, s)| BatchItem { key: k, tag: Tag::Vote, bytes: m, signature: s }).collect();
        verify_batch(&chain(), &batch).unwrap();
        sigs[3].0[5] ^= 1;
        let owned = items(&sigs);
        let batch: Vec<BatchItem<'_>> =
            owned.iter().map(|(k, m, s)| BatchItem { key: k, tag: Tag::Vote, bytes: m, signature: s }).collect();
        assert_eq!(verify_batch(&chain(), &batch), Err(CryptoError::BatchFailed(10)));
    }

    proptest::proptest! {
        /// Batches in which signers sign several items (their terms are grouped) are accepted
        /// exactly when every item verifies alone, and exactly when ed25519-dalek's own batch
        /// verification accepts them: whether intact, or with one signature byte, one message
        /// byte or one item's key changed.
        #[test]
        fn grouped_batch_agrees_with_single_and_with_ed25519_dalek(
            n in 1usize..24,
            signers in 1u8..5,
            corrupt in proptest::option::of((0usize..24, 0u8..3, 0usize..64, 1u8..=255)),
        ) {
            let keys: Vec<SecretKey> = (0..signers).map(|i| SecretKey::from_seed(&[i + 1; 32])).collect();
            let mut items: Vec<(PublicKey, Vec<u8>, Signature)> = (0..n)
                .map(|j| {
                    let key = &keys[j % keys.len()];
                    let message = vec![u8::try_from(j).unwrap_or(0); 10 + j];
                    let sig = key.sign(Tag::Event, &chain(), &message);
                    (key.public(), message, sig)
                })
                .collect();
            if let Some((at, what, byte, flip)) = corrupt {
                let item = &mut items[at % n];
                match what {
                    0 => item.2.0[byte] ^= flip,
                    1 => {
                        let len = item.1.len();
                        item.1[byte % len] ^= flip;
                    }
                    _ => item.0 = SecretKey::from_seed(&[flip; 32]).public(),
                }
            }
            let batch: Vec<BatchItem<'_>> =
                items.iter().map(|(k, m, s)| BatchItem { key: k, tag: Tag::Event, bytes: m, signature: s }).collect();
            let ours = verify_batch(&chain(), &batch).is_ok();
            let singly = items.iter().all(|(k, m, s)| verify(k, Tag::Event, &chain(), m, s).is_ok());
            let messages: Vec<Vec<u8>> = items.iter().map(|(_, m, _)| signing_message(Tag::Event, &chain(), m)).collect();
            let message_refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
            let sigs: Vec<ed25519_dalek::Signature> =
                items.iter().map(|(_, _, s)| ed25519_dalek::Signature::from_bytes(&s.0)).collect();
            let theirs = match items.iter().map(|(k, _, _)| verifying_key(k)).collect::<Result<Vec<_>, _>>() {
                Ok(vks) => ed25519_dalek::verify_batch(&message_refs, &sigs, &vks).is_ok(),
                Err(_) => false,
            };
            proptest::prop_assert_eq!(ours, singly);
            proptest::prop_assert_eq!(ours, theirs);
            if corrupt.is_none() {
                proptest::prop_assert!(ours);
            }
        }
    }
}
