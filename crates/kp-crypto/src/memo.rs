//! Remembered results for a process that checks the same few signatures millions of times:
//! the model checker (`kp-model`), which re-runs the consensus engine on every state it
//! explores. Off unless [`enable`] is called; no node, tool or test of the ledger calls it.
//!
//! Only what the functions compute is remembered — a signature verifying is remembered under a
//! SHA-256 of everything it was checked against (tag, chain, key, bytes, signature), a signature
//! made under one of the key and the message — so with the memo on, every call returns what it
//! would have returned without it. Per thread, and at most [`ENTRIES`] of each kind (then it
//! starts again).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

/// Most results remembered per thread and kind.
pub const ENTRIES: usize = 1 << 20;

static ENABLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    static VERIFIED: RefCell<HashSet<[u8; 32]>> = RefCell::new(HashSet::new());
    static SIGNED: RefCell<HashMap<[u8; 32], [u8; 64]>> = RefCell::new(HashMap::new());
}

/// Turns the memo on for the whole process, for good.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

pub(crate) fn digest(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

pub(crate) fn verified(d: &[u8; 32]) -> bool {
    VERIFIED.with(|v| v.borrow().contains(d))
}

pub(crate) fn remember_verified(d: [u8; 32]) {
    VERIFIED.with(|v| {
        let mut v = v.borrow_mut();
        if v.len() >= ENTRIES {
            v.clear();
        }
        v.insert(d);
    });
}

pub(crate) fn signed(d: &[u8; 32]) -> Option<[u8; 64]> {
    SIGNED.with(|s| s.borrow().get(d).copied())
}

pub(crate) fn remember_signed(d: [u8; 32], signature: [u8; 64]) {
    SIGNED.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() >= ENTRIES {
            s.clear();
        }
        s.insert(d, signature);
    });
}

#[cfg(test)]
mod tests {
    use crate::{BatchItem, SecretKey, Signature, SignatureRule, Tag, verify, verify_batch};
    use kp_domain::ChainId;

    #[test]
    fn with_the_memo_on_every_answer_is_the_one_computed() {
        let chain = ChainId::new("kp-memo-test").unwrap();
        let key = SecretKey::from_seed(&[9; 32]);
        let public = key.public();
        let plain = key.sign(Tag::Vote, &chain, b"vote");
        super::enable();
        for rule in [SignatureRule::Strict, SignatureRule::Cofactored, SignatureRule::Strict] {
            assert_eq!(key.sign(Tag::Vote, &chain, b"vote"), plain);
            assert!(verify(&public, Tag::Vote, &chain, rule, b"vote", &plain).is_ok());
            // What failed is never remembered as verified, nor what verified under other bytes,
            // another tag or another chain.
            assert!(verify(&public, Tag::Vote, &chain, rule, b"other", &plain).is_err());
            assert!(verify(&public, Tag::Proposal, &chain, rule, b"vote", &plain).is_err());
            let elsewhere = ChainId::new("kp-memo-other").unwrap();
            assert!(verify(&public, Tag::Vote, &elsewhere, rule, b"vote", &plain).is_err());
            let mut bad = plain;
            bad.0[0] ^= 1;
            assert!(verify(&public, Tag::Vote, &chain, rule, b"vote", &Signature(bad.0)).is_err());
            let good = BatchItem { key: &public, tag: Tag::Vote, bytes: b"vote", signature: &plain };
            let wrong = BatchItem { bytes: b"other", ..good };
            assert!(verify_batch(&chain, rule, &[good, good]).is_ok());
            assert!(verify_batch(&chain, rule, &[good, wrong]).is_err());
        }
    }
}
