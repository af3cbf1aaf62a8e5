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
/// failure, call [`verify`] on each item to find the culprit. Weak keys are refused up front, so
/// that batch and single verification accept the same set.
pub fn verify_batch(chain_id: &ChainId, items: &[BatchItem<'_>]) -> Result<(), CryptoError> {
    if items.is_empty() {
        return Ok(());
    }
    let messages: Vec<Vec<u8>> = items.iter().map(|i| signing_message(i.tag, chain_id, i.bytes)).collect();
    let message_refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let signatures: Vec<ed25519_dalek::Signature> =
        items.iter().map(|i| ed25519_dalek::Signature::from_bytes(&i.signature.0)).collect();
    let keys = items.iter().map(|i| verifying_key(i.key)).collect::<Result<Vec<_>, _>>()?;
    ed25519_dalek::verify_batch(&message_refs, &signatures, &keys).map_err(|_| CryptoError::BatchFailed(items.len()))
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
}
