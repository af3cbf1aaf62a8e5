//! Signatures, hashes and Merkle trees for the ledger.
//!
//! Architecture invariants:
//! - Every signature covers `tag || 0x00 || len(chain_id) || chain_id || bytes`, where `bytes`
//!   are the exact bytes stored; nothing is re-encoded to verify. Each kind of signed thing has
//!   its own [`Tag`], so a signature made for one purpose is never valid for another.
//! - Verification follows the ledger's [`SignatureRule`] (from its genesis): canonical `S` and
//!   encodings, keys in the prime-order subgroup, no small-order `R`; then RFC 8032's
//!   cofactorless equation with `R` in the prime-order subgroup (`Strict`), or the cofactored
//!   equation (`Cofactored`). Under either rule, batch verification accepts exactly what
//!   single verification accepts (but with probability 2⁻¹²⁸), so no two nodes or auditors
//!   disagree about a signature however they group it.
//! - No I/O but the OS random source in [`SecretKey::generate`].

pub mod memo;
mod merkle;

pub use merkle::{InclusionProof, MerkleError, leaf_hash, merkle_root, root_of_hashes};

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
pub use kp_domain::SignatureRule;
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
            Tag::Vote => b"kp-ledger/v2/vote",
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
    /// `R` (the signature's first half) is of small order or has a small-order component: no
    /// honest signer makes one, and batch verification could accept it where single
    /// verification refuses it, so both refuse it.
    #[error(
        "signature by key {key} has R = {r}, which is not in the prime-order subgroup (small order or with a small-order component)"
    )]
    SmallOrderR { key: String, r: String },
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
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
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
        let message = signing_message(tag, chain_id, bytes);
        if !memo::enabled() {
            return Signature(self.0.sign(&message).to_bytes());
        }
        let d = memo::digest(&[&self.0.verifying_key().to_bytes(), &message]);
        if let Some(s) = memo::signed(&d) {
            return Signature(s);
        }
        let s = self.0.sign(&message).to_bytes();
        memo::remember_signed(d, s);
        Signature(s)
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
    // Small-order keys (`is_weak`) and keys with a small-order component: with a key in the
    // prime-order subgroup, `[s]B − [h]A` is in it too, so a signature single verification
    // accepts has its `R` there, and batch verification cannot accept more than it.
    if vk.is_weak() || !in_prime_order_subgroup(&vk.to_edwards()) {
        return Err(CryptoError::BadPublicKey(key.short()));
    }
    // Only keys that passed the checks are kept: a cached key is one this function accepts.
    KEYS.with(|k| {
        let mut k = k.borrow_mut();
        if k.len() >= KEY_CACHE_ENTRIES {
            k.clear();
        }
        k.insert(*key.as_bytes(), vk);
    });
    Ok(vk)
}

/// Whether `point` lies in the prime-order subgroup and is not the identity: `[ℓ]P = 0`
/// (computed in variable time as `[ℓ − 1]P + P`, since `ℓ` itself is no canonical scalar; the
/// same as curve25519-dalek's constant-time `is_torsion_free`, at about half its cost — the
/// points checked are public). A point with no small-order component is of small order only if
/// it is the identity.
fn in_prime_order_subgroup(point: &curve25519_dalek::edwards::EdwardsPoint) -> bool {
    use curve25519_dalek::edwards::EdwardsPoint;
    use curve25519_dalek::scalar::Scalar;
    use curve25519_dalek::traits::IsIdentity as _;
    let l_minus_one = EdwardsPoint::vartime_double_scalar_mul_basepoint(&-Scalar::ONE, point, &Scalar::ZERO);
    !point.is_identity() && (l_minus_one + point).is_identity()
}

fn small_order_r(key: &PublicKey, r: &[u8; 32]) -> CryptoError {
    CryptoError::SmallOrderR { key: key.short(), r: hex_of(r) }
}

fn hex_of(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(2 * bytes.len()), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Whether the 32 bytes encode `y < p = 2²⁵⁵ − 19` (the sign bit aside): curve25519-dalek's
/// decompression reduces `y` modulo `p`, so a non-canonical `R` would otherwise name the same
/// point as a canonical one while its bytes (hashed into `h`) differ. Single verification under
/// the strict rule refuses it by comparing encodings; the other paths check it here.
fn canonical_y(bytes: &[u8; 32]) -> bool {
    let all_ones = bytes[1..31].iter().all(|b| *b == 0xff);
    !(bytes[31] & 0x7f == 0x7f && all_ones && bytes[0] >= 0xed)
}

/// `R` decompressed, if its encoding is canonical and it is not of small order (the identity
/// and the torsion points: no honest signer makes one, and every point with `x = 0`, whose sign
/// bit is not canonical, is among them). `Err(true)` for small order, `Err(false)` for an
/// encoding that is not a point or not canonical.
fn decompress_r(bytes: &[u8; 32]) -> Result<curve25519_dalek::edwards::EdwardsPoint, bool> {
    use curve25519_dalek::edwards::CompressedEdwardsY;
    if !canonical_y(bytes) {
        return Err(false);
    }
    let r = CompressedEdwardsY(*bytes).decompress().ok_or(false)?;
    match r.is_small_order() {
        true => Err(true),
        false => Ok(r),
    }
}

/// `h = H(R || A || M) mod ℓ`, with `M` given as the tag's prefix and the signed bytes.
fn hram(r: &[u8; 32], key: &PublicKey, prefix: &[u8], bytes: &[u8]) -> curve25519_dalek::scalar::Scalar {
    use sha2::Sha512;
    let h: [u8; 64] = Sha512::new()
        .chain_update(r)
        .chain_update(key.as_bytes())
        .chain_update(prefix)
        .chain_update(bytes)
        .finalize()
        .into();
    curve25519_dalek::scalar::Scalar::from_bytes_mod_order_wide(&h)
}

/// Verifies one signature under `rule` (see [`SignatureRule`]): canonical `S` and `R`, the key
/// in the prime-order subgroup, `R` not of small order ([`CryptoError::SmallOrderR`] for an `R`
/// the rule refuses for its order), then the rule's equation.
pub fn verify(
    key: &PublicKey,
    tag: Tag,
    chain_id: &ChainId,
    rule: SignatureRule,
    bytes: &[u8],
    signature: &Signature,
) -> Result<(), CryptoError> {
    let prefix = signing_message(tag, chain_id, &[]);
    let d = memo::enabled().then(|| memo::digest(&[&[rule as u8], key.as_bytes(), &prefix, bytes, &signature.0]));
    if d.as_ref().is_some_and(memo::verified) {
        return Ok(());
    }
    let vk = verifying_key(key)?;
    let result = verify_one(rule, key, &vk, &prefix, bytes, signature);
    if let (Ok(()), Some(d)) = (&result, d) {
        memo::remember_verified(d);
    }
    result
}

/// One signature under `rule`, its key already checked (`vk`), the signed message given as the
/// tag's prefix and the bytes.
///
/// Both rules first compute `[s]B − [h]A` and compare its encoding with `R`'s bytes. Equal is the
/// strict rule's equation exactly (ed25519-dalek's `verify_strict`, which the proptest below
/// compares it with), and every honest signature: such an `R` is canonically encoded and, as the
/// key is, in the prime-order subgroup, so of small order only if it is the identity. `R` is
/// decompressed only when the encodings differ: then the strict rule refuses, naming an `R` that
/// is not in the prime-order subgroup, and the cofactored rule checks `[8]([s]B − [h]A − R) = 0`.
fn verify_one(
    rule: SignatureRule,
    key: &PublicKey,
    vk: &VerifyingKey,
    prefix: &[u8],
    bytes: &[u8],
    signature: &Signature,
) -> Result<(), CryptoError> {
    use curve25519_dalek::edwards::EdwardsPoint;
    use curve25519_dalek::scalar::Scalar;
    use curve25519_dalek::traits::IsIdentity as _;
    let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
    let bad = || CryptoError::BadSignature(key.short());
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(*sig.s_bytes())).ok_or_else(bad)?;
    let h = hram(sig.r_bytes(), key, prefix, bytes);
    let expected = EdwardsPoint::vartime_double_scalar_mul_basepoint(&h, &-vk.to_edwards(), &s);
    if expected.compress().as_bytes() == sig.r_bytes() {
        return match expected.is_identity() {
            true => Err(small_order_r(key, sig.r_bytes())),
            false => Ok(()),
        };
    }
    // A non-canonical R is a bad signature under both rules, whatever point it decodes to.
    let r = decompress_r(sig.r_bytes()).map_err(|small| match small {
        true => small_order_r(key, sig.r_bytes()),
        false => bad(),
    })?;
    let holds = match rule {
        SignatureRule::Strict if !in_prime_order_subgroup(&r) => return Err(small_order_r(key, sig.r_bytes())),
        SignatureRule::Strict => false,
        SignatureRule::Cofactored => (expected - r).mul_by_cofactor().is_identity(),
    };
    match holds {
        true => Ok(()),
        false => Err(bad()),
    }
}

/// What precedes the signed bytes of `tag`, made once per tag of a batch (a batch holds one or
/// two tags).
fn prefix_for<'p>(prefixes: &'p mut Vec<(Tag, Vec<u8>)>, tag: Tag, chain_id: &ChainId) -> &'p [u8] {
    let at = match prefixes.iter().position(|(t, _)| *t == tag) {
        Some(at) => at,
        None => {
            prefixes.push((tag, signing_message(tag, chain_id, &[])));
            prefixes.len() - 1
        }
    };
    &prefixes[at].1
}

/// One item of a batch: who signed what.
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    pub key: &'a PublicKey,
    pub tag: Tag,
    pub bytes: &'a [u8],
    pub signature: &'a Signature,
}

/// Verifies many signatures under `rule`, accepting exactly what [`verify`] accepts of each. On
/// failure, call [`verify`] on each item to find the culprit. Keys that [`verify`] refuses
/// (small order, or with a small-order component) are refused up front. Under the cofactored
/// rule so is any item whose `R` is of small order, with [`CryptoError::SmallOrderR`] naming the
/// first; under the strict rule the items are verified in order and the first that fails
/// decides: [`CryptoError::SmallOrderR`] for an `R` outside the prime-order subgroup,
/// [`CryptoError::BatchFailed`] otherwise.
///
/// Under the cofactored rule the signatures are checked together, at about a third of the cost
/// of checking each (`cargo bench -p kp-crypto --bench verify`). Under the strict rule they are
/// checked one by one: a batch would have to check every `R`'s subgroup membership first (see
/// below), which costs as much as verifying the signature alone, so a strict batch is slower
/// than single verification.
///
/// The cofactored check is ed25519-dalek's batch equation multiplied by the cofactor,
/// `[8]([−Σ zᵢsᵢ]B + Σ [zᵢ]Rᵢ + Σ [zᵢhᵢ]Aᵢ) = 0` with `hᵢ = H(Rᵢ || Aᵢ || Mᵢ)` and 128-bit
/// weights `zᵢ`, with one change: the terms of one signer are summed first,
/// `Σ_A [Σ_{i: Aᵢ = A} zᵢhᵢ]A`. A ledger's events come from a few hundred authority keys at
/// most, so a block of hundreds of events multiplies far fewer points. The weights come from a
/// hash of every `hᵢ` and `sᵢ` in the batch (as ed25519-dalek derives them from a transcript of
/// the same values): no one can choose a signature after seeing them, and verification stays a
/// pure function.
///
/// Why the batch accepts exactly what [`verify`] accepts: every key is in the prime-order
/// subgroup, so each item's term `Rᵢ − [sᵢ]B + [hᵢ]Aᵢ` is `Pᵢ + Tᵢ`, a point of the prime-order
/// subgroup (zero exactly when the item's cofactored equation holds) plus `Rᵢ`'s small-order
/// component. 128-bit weights make `Σ [zᵢ]Pᵢ` vanish only when every `Pᵢ` does (but with
/// probability 2⁻¹²⁸).
/// `[8]` removes every `Tᵢ`, so the batch holds exactly when every `Pᵢ = 0`, which is what
/// [`verify`] checks under the cofactored rule. Without the cofactor (the strict rule's
/// equation), a signer who put a small-order `T` into its own `R` (which strict [`verify`]
/// refuses) would pass whenever `Σ [zᵢ]Tᵢ = 0` — a multiple of 8 for one `T` of order 8 — and
/// could search batch compositions for one: an event committed by nodes that an auditor
/// checking it alone refuses. Excluding that takes a subgroup check of every `R` (`[ℓ]R`, a
/// variable-base scalar multiplication), hence the strict rule's one-by-one path.
pub fn verify_batch(chain_id: &ChainId, rule: SignatureRule, items: &[BatchItem<'_>]) -> Result<(), CryptoError> {
    if items.is_empty() {
        return Ok(());
    }
    let d = memo::enabled().then(|| {
        let rule_byte = [rule as u8];
        let mut parts: Vec<&[u8]> = vec![chain_id.as_str().as_bytes(), &rule_byte];
        for item in items {
            parts.extend([item.tag.bytes(), item.key.as_bytes(), item.bytes, &item.signature.0]);
        }
        memo::digest(&parts)
    });
    if d.as_ref().is_some_and(memo::verified) {
        return Ok(());
    }
    let result = verify_batch_uncached(chain_id, rule, items);
    if let (Ok(()), Some(d)) = (&result, d) {
        memo::remember_verified(d);
    }
    result
}

fn verify_batch_uncached(chain_id: &ChainId, rule: SignatureRule, items: &[BatchItem<'_>]) -> Result<(), CryptoError> {
    if rule == SignatureRule::Strict {
        return verify_strict_each(chain_id, items);
    }
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
    use curve25519_dalek::edwards::EdwardsPoint;
    use curve25519_dalek::scalar::Scalar;
    use curve25519_dalek::traits::{IsIdentity as _, VartimeMultiscalarMul as _};
    use sha2::Sha512;

    let failed = || CryptoError::BatchFailed(items.len());
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
        let r = match decompress_r(signature.r_bytes()) {
            Ok(r) => r,
            Err(true) => return Err(small_order_r(item.key, signature.r_bytes())),
            Err(false) => return Err(failed()),
        };
        let prefix = prefix_for(&mut prefixes, item.tag, chain_id);
        let h = hram(signature.r_bytes(), item.key, prefix, item.bytes);
        seed.update(h.as_bytes());
        seed.update(signature.s_bytes());
        terms.push((signer, r, s, h));
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
    match sum.mul_by_cofactor().is_identity() {
        true => Ok(()),
        false => Err(failed()),
    }
}

/// The strict rule's batch: every key checked first (cached, so cheap), then each item verified
/// alone (see [`verify_batch`]), the first that fails answered as a batch's failure: an `R`
/// outside the prime-order subgroup named, anything else [`CryptoError::BatchFailed`].
fn verify_strict_each(chain_id: &ChainId, items: &[BatchItem<'_>]) -> Result<(), CryptoError> {
    let keys = items.iter().map(|item| verifying_key(item.key)).collect::<Result<Vec<_>, _>>()?;
    let mut prefixes: Vec<(Tag, Vec<u8>)> = Vec::new();
    for (item, vk) in items.iter().zip(keys) {
        let prefix = prefix_for(&mut prefixes, item.tag, chain_id);
        match verify_one(SignatureRule::Strict, item.key, &vk, prefix, item.bytes, item.signature) {
            Ok(()) => {}
            Err(e @ CryptoError::SmallOrderR { .. }) => return Err(e),
            Err(_) => return Err(CryptoError::BatchFailed(items.len())),
        }
    }
    Ok(())
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

    const RULES: [SignatureRule; 2] = [SignatureRule::Strict, SignatureRule::Cofactored];

    #[test]
    fn sign_and_verify() {
        let key = SecretKey::from_seed(&[1; 32]);
        let sig = key.sign(Tag::Event, &chain(), b"payload");
        for rule in RULES {
            verify(&key.public(), Tag::Event, &chain(), rule, b"payload", &sig).unwrap();
            // Another purpose, another chain, other bytes, another key: all refused.
            assert!(verify(&key.public(), Tag::Approval, &chain(), rule, b"payload", &sig).is_err());
            let other_chain = ChainId::new("kp-other").unwrap();
            assert!(verify(&key.public(), Tag::Event, &other_chain, rule, b"payload", &sig).is_err());
            assert!(verify(&key.public(), Tag::Event, &chain(), rule, b"payloae", &sig).is_err());
            let other_key = SecretKey::from_seed(&[2; 32]).public();
            assert!(verify(&other_key, Tag::Event, &chain(), rule, b"payload", &sig).is_err());
            // S + ℓ (the same equation, S not canonical): refused. ℓ little-endian:
            let l: [u8; 32] =
                *b"\xed\xd3\xf5\x5c\x1a\x63\x12\x58\xd6\x9c\xf7\xa2\xde\xf9\xde\x14\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x10";
            let mut malleated = sig;
            let mut carry = 0u16;
            for (i, l) in l.iter().enumerate() {
                let v = u16::from(sig.0[32 + i]) + u16::from(*l) + carry;
                malleated.0[32 + i] = v.to_le_bytes()[0];
                carry = v >> 8;
            }
            // S < ℓ < 2²⁵³, so S + ℓ < 2²⁵⁴ fits the 32 bytes.
            assert_eq!(carry, 0);
            assert_eq!(
                verify(&key.public(), Tag::Event, &chain(), rule, b"payload", &malleated),
                Err(CryptoError::BadSignature(key.public().short()))
            );
        }
    }

    #[test]
    fn weak_and_invalid_keys_are_refused() {
        // The identity point (small order) is a weak key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let sig = Signature([0; 64]);
        for rule in RULES {
            assert_eq!(
                verify(&PublicKey(identity), Tag::Event, &chain(), rule, b"x", &sig),
                Err(CryptoError::BadPublicKey(PublicKey(identity).short()))
            );
        }
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
        for rule in RULES {
            let owned = items(&sigs);
            let batch: Vec<BatchItem<'_>> =
                owned.iter().map(|(k, m, s)| BatchItem { key: k, tag: Tag::Vote, bytes: m, signature: s }).collect();
            verify_batch(&chain(), rule, &batch).unwrap();
        }
        sigs[3].0[40] ^= 1;
        let owned = items(&sigs);
        let batch: Vec<BatchItem<'_>> =
            owned.iter().map(|(k, m, s)| BatchItem { key: k, tag: Tag::Vote, bytes: m, signature: s }).collect();
        for rule in RULES {
            assert_eq!(verify_batch(&chain(), rule, &batch), Err(CryptoError::BatchFailed(10)));
        }
    }

    /// A signature of `message` by `seed`'s key whose `R` carries the small-order component
    /// `EIGHT_TORSION[torsion]`, with the equation kept consistent: `R' = [r]B + T`, `s = r + h·a`
    /// with `h = H(R' || A || M)`. Then `[s]B − [h]A = R' − T`, so the cofactorless single
    /// equation fails, while each batch term is `[z]T`, which vanishes whenever the item's weight
    /// `z` is a multiple of T's order.
    fn small_order_r_signature(seed: &[u8; 32], message: &[u8], torsion: usize) -> Signature {
        use curve25519_dalek::constants::EIGHT_TORSION;
        use curve25519_dalek::edwards::EdwardsPoint;
        use curve25519_dalek::scalar::Scalar;
        use sha2::Sha512;
        let signing = SigningKey::from_bytes(seed);
        let a = signing.to_scalar();
        let public = signing.verifying_key().to_bytes();
        let nonce: [u8; 64] = Sha512::new()
            .chain_update(b"kp small-order R vector")
            .chain_update(seed)
            .chain_update(message)
            .finalize()
            .into();
        let r = Scalar::from_bytes_mod_order_wide(&nonce);
        let big_r = (EdwardsPoint::mul_base(&r) + EIGHT_TORSION[torsion]).compress().to_bytes();
        let hram: [u8; 64] = Sha512::new()
            .chain_update(big_r)
            .chain_update(public)
            .chain_update(signing_message(Tag::Event, &chain(), message))
            .finalize()
            .into();
        let s = r + Scalar::from_bytes_mod_order_wide(&hram) * a;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&big_r);
        sig[32..].copy_from_slice(s.as_bytes());
        Signature(sig)
    }

    /// A signature of `message` by `seed`'s key whose `R` is the small-order point
    /// `EIGHT_TORSION[torsion]` itself, with `s = h·a`, so that `[s]B − [h]A = 0` and both
    /// equations hold up to `R`'s order.
    fn small_order_r_itself(seed: &[u8; 32], message: &[u8], torsion: usize) -> Signature {
        use curve25519_dalek::constants::EIGHT_TORSION;
        use sha2::Sha512;
        let signing = SigningKey::from_bytes(seed);
        let big_r = EIGHT_TORSION[torsion].compress().to_bytes();
        let hram: [u8; 64] = Sha512::new()
            .chain_update(big_r)
            .chain_update(signing.verifying_key().to_bytes())
            .chain_update(signing_message(Tag::Event, &chain(), message))
            .finalize()
            .into();
        let s = curve25519_dalek::scalar::Scalar::from_bytes_mod_order_wide(&hram) * signing.to_scalar();
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&big_r);
        sig[32..].copy_from_slice(s.as_bytes());
        Signature(sig)
    }

    /// The golden vector of a signature with a small-order component in `R` (order 8): the
    /// strict rule refuses it singly and in batches, naming that `R`; the cofactored rule
    /// accepts it singly and in batches (its cofactored equation holds).
    const SMALL_ORDER_R_SEED: [u8; 32] = [7; 32];
    const SMALL_ORDER_R_MESSAGE: &[u8] = b"a signer's own event, R with a small-order component";
    const SMALL_ORDER_R_SIGNATURE: &str = "05acc2b799c652d2c696a8345c6591cbe1b6f378f3b04e446fcd09e05d4924c0f622a78fc98f823dbc73f563206c20bfa710340214bc99629393e089cb66270d";

    #[test]
    fn small_order_r_golden_vector_follows_the_rule_singly_and_in_batches() {
        let key = SecretKey::from_seed(&SMALL_ORDER_R_SEED).public();
        let sig = small_order_r_signature(&SMALL_ORDER_R_SEED, SMALL_ORDER_R_MESSAGE, 1);
        assert_eq!(hex_of(&sig.0), SMALL_ORDER_R_SIGNATURE, "the crafted vector changed");
        let expected = CryptoError::SmallOrderR { key: key.short(), r: SMALL_ORDER_R_SIGNATURE[..64].to_owned() };
        let strict = SignatureRule::Strict;
        assert_eq!(verify(&key, Tag::Event, &chain(), strict, SMALL_ORDER_R_MESSAGE, &sig), Err(expected.clone()));
        let alone = [BatchItem { key: &key, tag: Tag::Event, bytes: SMALL_ORDER_R_MESSAGE, signature: &sig }];
        assert_eq!(verify_batch(&chain(), strict, &alone), Err(expected.clone()));
        assert!(expected.to_string().contains(&SMALL_ORDER_R_SIGNATURE[..64]), "{expected}");
        let cofactored = SignatureRule::Cofactored;
        assert_eq!(verify(&key, Tag::Event, &chain(), cofactored, SMALL_ORDER_R_MESSAGE, &sig), Ok(()));
        assert_eq!(verify_batch(&chain(), cofactored, &alone), Ok(()));
    }

    #[test]
    fn every_batch_composition_agrees_with_single_on_an_r_with_a_small_order_component() {
        // Under the strict rule, before `R` was checked, about one batch in eight (the crafted
        // item's weight a multiple of 8) accepted the crafted signature that single
        // verification refuses: a signer could search compositions for one. Now every
        // composition refuses it; and under the cofactored rule every composition accepts it,
        // as single verification does.
        let seed = [9u8; 32];
        let crafted_key = SecretKey::from_seed(&seed).public();
        let other = SecretKey::from_seed(&[10; 32]);
        let other_key = other.public();
        for torsion in [1usize, 2, 3, 4, 5, 6, 7] {
            let crafted = small_order_r_signature(&seed, b"mine", torsion);
            let r = hex_of(&crafted.0[..32]);
            let refused = CryptoError::SmallOrderR { key: crafted_key.short(), r };
            for rule in RULES {
                let expected = match rule {
                    SignatureRule::Strict => Err(refused.clone()),
                    SignatureRule::Cofactored => Ok(()),
                };
                assert_eq!(verify(&crafted_key, Tag::Event, &chain(), rule, b"mine", &crafted), expected);
                for j in 0..64u32 {
                    let message = j.to_le_bytes();
                    let honest = other.sign(Tag::Event, &chain(), &message);
                    let batch = [
                        BatchItem { key: &other_key, tag: Tag::Event, bytes: &message, signature: &honest },
                        BatchItem { key: &crafted_key, tag: Tag::Event, bytes: b"mine", signature: &crafted },
                    ];
                    assert_eq!(
                        verify_batch(&chain(), rule, &batch),
                        expected,
                        "{rule:?}, torsion {torsion}, batch {j}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_small_order_r_is_refused_under_both_rules() {
        let seed = [11u8; 32];
        let key = SecretKey::from_seed(&seed).public();
        let other = SecretKey::from_seed(&[12; 32]);
        let honest = other.sign(Tag::Event, &chain(), b"theirs");
        for torsion in 0..8 {
            let sig = small_order_r_itself(&seed, b"mine", torsion);
            let expected = Err(CryptoError::SmallOrderR { key: key.short(), r: hex_of(&sig.0[..32]) });
            for rule in RULES {
                assert_eq!(verify(&key, Tag::Event, &chain(), rule, b"mine", &sig), expected, "{rule:?} {torsion}");
                let other_key = other.public();
                let batch = [
                    BatchItem { key: &other_key, tag: Tag::Event, bytes: b"theirs", signature: &honest },
                    BatchItem { key: &key, tag: Tag::Event, bytes: b"mine", signature: &sig },
                ];
                assert_eq!(verify_batch(&chain(), rule, &batch), expected, "{rule:?} {torsion}");
            }
        }
    }

    #[test]
    fn non_canonical_encodings_of_r_are_refused() {
        use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
        use curve25519_dalek::scalar::Scalar;
        use sha2::Sha512;
        // Every y in [p, 2²⁵⁵): p = 2²⁵⁵ − 19, little-endian ed ff .. ff 7f; and with the sign bit.
        for k in 0..19u8 {
            let mut bytes = [0xffu8; 32];
            bytes[0] = 0xed + k;
            bytes[31] = 0x7f;
            assert!(!canonical_y(&bytes), "{k}");
            bytes[31] = 0xff;
            assert!(!canonical_y(&bytes), "{k} with the sign bit");
        }
        // A signature whose equation holds for the point its R decodes to, but whose R is
        // written non-canonically: the identity as y = p + 1 (ee ff .. ff 7f), with s = h·a so
        // that [s]B − [h]A is the identity. Refused as a bad signature under both rules, singly
        // and in a batch (not as a small-order R: its encoding is refused first).
        let seed = [13u8; 32];
        let signing = SigningKey::from_bytes(&seed);
        let key = PublicKey(signing.verifying_key().to_bytes());
        let mut big_r = [0xffu8; 32];
        big_r[0] = 0xee;
        big_r[31] = 0x7f;
        assert!(CompressedEdwardsY(big_r).decompress().is_some_and(|r| r == EdwardsPoint::default()));
        let hram: [u8; 64] = Sha512::new()
            .chain_update(big_r)
            .chain_update(key.as_bytes())
            .chain_update(signing_message(Tag::Event, &chain(), b"x"))
            .finalize()
            .into();
        let s = Scalar::from_bytes_mod_order_wide(&hram) * signing.to_scalar();
        let mut sig = Signature([0; 64]);
        sig.0[..32].copy_from_slice(&big_r);
        sig.0[32..].copy_from_slice(s.as_bytes());
        for rule in RULES {
            assert_eq!(
                verify(&key, Tag::Event, &chain(), rule, b"x", &sig),
                Err(CryptoError::BadSignature(key.short()))
            );
            let batch = [BatchItem { key: &key, tag: Tag::Event, bytes: b"x", signature: &sig }];
            assert_eq!(verify_batch(&chain(), rule, &batch), Err(CryptoError::BatchFailed(1)), "{rule:?}");
        }
        let mut below = [0xffu8; 32];
        below[0] = 0xec;
        below[31] = 0x7f;
        assert!(canonical_y(&below));
        // What passes the check re-encodes to itself: canonical.
        for k in 1..200u64 {
            let bytes = EdwardsPoint::mul_base(&Scalar::from(k * 104_729)).compress().to_bytes();
            let r = decompress_r(&bytes).unwrap();
            assert_eq!(r.compress().to_bytes(), bytes);
            let mut flipped = bytes;
            flipped[31] ^= 0x80;
            if let Ok(r) = decompress_r(&flipped) {
                assert_eq!(r.compress().to_bytes(), flipped);
            }
            assert!(CompressedEdwardsY(bytes).decompress().is_some());
        }
    }

    #[test]
    fn the_subgroup_check_agrees_with_curve25519_dalek() {
        use curve25519_dalek::constants::EIGHT_TORSION;
        use curve25519_dalek::edwards::EdwardsPoint;
        use curve25519_dalek::scalar::Scalar;
        for k in 1..6u64 {
            let p = EdwardsPoint::mul_base(&Scalar::from(k * 7919));
            for (i, t) in EIGHT_TORSION.iter().enumerate() {
                let q = p + t;
                assert_eq!(in_prime_order_subgroup(&q), q.is_torsion_free() && !q.is_small_order(), "{k} {i}");
                assert_eq!(in_prime_order_subgroup(&q), i == 0);
                assert!(!in_prime_order_subgroup(t));
            }
        }
    }

    #[test]
    fn keys_with_a_small_order_component_are_refused() {
        use curve25519_dalek::constants::EIGHT_TORSION;
        use curve25519_dalek::edwards::CompressedEdwardsY;
        let honest = SecretKey::from_seed(&[3; 32]);
        let point = CompressedEdwardsY(honest.public().0).decompress().unwrap();
        let mixed = PublicKey((point + EIGHT_TORSION[1]).compress().to_bytes());
        let sig = honest.sign(Tag::Event, &chain(), b"x");
        let batch = [BatchItem { key: &mixed, tag: Tag::Event, bytes: b"x", signature: &sig }];
        for rule in RULES {
            let expected = Err(CryptoError::BadPublicKey(mixed.short()));
            assert_eq!(verify(&mixed, Tag::Event, &chain(), rule, b"x", &sig), expected);
            assert_eq!(verify_batch(&chain(), rule, &batch), expected);
        }
    }

    proptest::proptest! {
        /// Batches in which signers sign several items (their terms are grouped) are accepted
        /// exactly when every item verifies alone (under the strict rule, exactly when
        /// ed25519-dalek's verify_strict accepts it), and exactly when ed25519-dalek's own batch
        /// verification accepts them, under both rules (honest signers' signatures are valid
        /// under both alike): whether intact, or with one signature byte, one message byte or
        /// one item's key changed.
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
            let ours = verify_batch(&chain(), SignatureRule::Strict, &batch).is_ok();
            let cofactored = verify_batch(&chain(), SignatureRule::Cofactored, &batch).is_ok();
            let singly = items.iter().all(|(k, m, s)| verify(k, Tag::Event, &chain(), SignatureRule::Strict, m, s).is_ok());
            let singly_cofactored =
                items.iter().all(|(k, m, s)| verify(k, Tag::Event, &chain(), SignatureRule::Cofactored, m, s).is_ok());
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
            // The strict rule alone is ed25519-dalek's verify_strict, item by item.
            for (k, m, sig) in &items {
                let message = signing_message(Tag::Event, &chain(), m);
                let dalek = VerifyingKey::from_bytes(&k.0)
                    .is_ok_and(|vk| vk.verify_strict(&message, &ed25519_dalek::Signature::from_bytes(&sig.0)).is_ok());
                let strict = verify(k, Tag::Event, &chain(), SignatureRule::Strict, m, sig).is_ok();
                proptest::prop_assert_eq!(strict, dalek);
            }
            proptest::prop_assert_eq!(cofactored, singly_cofactored);
            proptest::prop_assert_eq!(cofactored, ours);
            if corrupt.is_none() {
                proptest::prop_assert!(ours);
            }
        }
    }
}
