//! Signature verification per signature under the two [`SignatureRule`]s, measured in the same
//! run, interleaved, and printed as one JSON line with the ratio `cofactored / strict` per shape:
//! - `single`: one signature alone (`verify`), as a leader checks each vote;
//! - `certificate`: 59 signatures by 59 keys in one batch, as a commit certificate;
//! - `block`: 256 signatures by 16 keys in one batch, as a block of events.
//!
//! `cargo bench -p kp-crypto --bench verify` (release). `KP_BENCH_ROUNDS` (default 20) sets how
//! many interleaved rounds are timed; each figure is the median over the rounds.

#![allow(clippy::unwrap_used, clippy::cast_precision_loss, clippy::float_arithmetic)]

use kp_crypto::{BatchItem, SecretKey, Signature, SignatureRule, Tag};
use kp_domain::{ChainId, PublicKey};
use std::hint::black_box;
use std::time::Instant;

struct Shape {
    name: &'static str,
    items: Vec<(PublicKey, Vec<u8>, Signature)>,
}

fn shape(name: &'static str, signatures: usize, keys: usize, chain: &ChainId) -> Shape {
    let keys: Vec<SecretKey> = (0..keys).map(|i| SecretKey::from_seed(&[u8::try_from(i + 1).unwrap(); 32])).collect();
    let items = (0..signatures)
        .map(|i| {
            let key = &keys[i % keys.len()];
            let bytes = format!("event {i} of the benchmark, about as long as a vote's signed bytes").into_bytes();
            let sig = key.sign(Tag::Event, chain, &bytes);
            (key.public(), bytes, sig)
        })
        .collect();
    Shape { name, items }
}

/// Microseconds per signature for one pass over the shape.
fn pass(shape: &Shape, chain: &ChainId, rule: SignatureRule) -> f64 {
    let start = Instant::now();
    if shape.items.len() == 1 {
        // One signature is too short to time alone: 200 in a row.
        let (k, m, s) = &shape.items[0];
        for _ in 0..200 {
            kp_crypto::verify(k, Tag::Event, chain, rule, black_box(m), s).unwrap();
        }
        return start.elapsed().as_secs_f64() * 1e6 / 200.0;
    }
    let batch: Vec<BatchItem<'_>> =
        shape.items.iter().map(|(k, m, s)| BatchItem { key: k, tag: Tag::Event, bytes: m, signature: s }).collect();
    for _ in 0..4 {
        kp_crypto::verify_batch(chain, rule, black_box(&batch)).unwrap();
    }
    start.elapsed().as_secs_f64() * 1e6 / (4 * shape.items.len()) as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let chain = ChainId::new("kp-bench").unwrap();
    let rounds: usize = std::env::var("KP_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let shapes = [shape("single", 1, 1, &chain), shape("certificate", 59, 59, &chain), shape("block", 256, 16, &chain)];
    let mut out = serde_json::Map::new();
    for s in &shapes {
        // Warm the key cache and the CPU.
        pass(s, &chain, SignatureRule::Strict);
        pass(s, &chain, SignatureRule::Cofactored);
        let (mut strict, mut cofactored) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            strict.push(pass(s, &chain, SignatureRule::Strict));
            cofactored.push(pass(s, &chain, SignatureRule::Cofactored));
        }
        let (st, co) = (median(strict), median(cofactored));
        out.insert(
            s.name.to_owned(),
            serde_json::json!({
                "signatures": s.items.len(),
                "strict_us_per_signature": (st * 100.0).round() / 100.0,
                "cofactored_us_per_signature": (co * 100.0).round() / 100.0,
                "ratio_cofactored_to_strict": (co / st * 1000.0).round() / 1000.0,
            }),
        );
    }
    println!("{}", serde_json::Value::Object(out));
}
