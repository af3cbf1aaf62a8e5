//! Events signed, verified and applied per second on one core, beside raw Ed25519
//! verification measured in the same run.
//!
//! Criterion measures each stage; then a final interleaved measurement prints one JSON line
//! with the throughputs and the ratio `pipeline / raw verify` (how much of the verification
//! ceiling the whole edge + rules pipeline keeps). Run: `cargo bench -p kp-rules`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation, clippy::float_arithmetic)]

use criterion::{Criterion, Throughput, criterion_group};
use kp_crypto::Tag;
use kp_domain::*;
use kp_rules::Ledger;
use kp_testkit::{TestNet, at, certificate, receipt, seal};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Certificates in the pool; each gives three events (issue, seal, receipt).
const CERTIFICATES: usize = 4_000;
const EVENTS_PER_BLOCK: usize = 100;

struct Pool {
    net: TestNet,
    /// (envelope, block time), in an order the rules accept.
    events: Vec<(Vec<u8>, Timestamp)>,
}

fn pool() -> Pool {
    let codes = ["BW", "EU", "CA", "AE", "IN", "RU", "ZA", "CD"];
    let net = TestNet::new(&codes, 1);
    let mut events = Vec::with_capacity(3 * CERTIFICATES);
    for i in 0..CERTIFICATES {
        let from = codes[i % codes.len()];
        let to = codes[(i + 1 + i / codes.len()) % codes.len()];
        let to = if to == from { codes[(i + 2) % codes.len()] } else { to };
        let t = at(1, i as u64 * 10);
        let c = certificate(&format!("{from}-{i:06}"), from, to, t);
        events
            .push((net.envelope_with(net.key(from, Role::Exporting), &EventPayload::CertificateIssued(c.clone())), t));
        events.push((
            net.envelope_with(
                net.key(from, Role::Exporting),
                &EventPayload::ShipmentSealed(seal(&c.number.to_string(), t)),
            ),
            t,
        ));
        events.push((
            net.envelope_with(net.key(to, Role::Importing), &EventPayload::ReceiptConfirmed(receipt(&c, t))),
            t,
        ));
    }
    // Issues first, then seals, then receipts, keeping each certificate's order and time order.
    let mut ordered: Vec<_> = (0..3).flat_map(|k| events.iter().skip(k).step_by(3).cloned()).collect();
    let last = ordered.last().map(|(_, t)| *t).unwrap_or_default();
    for (n, e) in ordered.iter_mut().enumerate() {
        e.1 = Timestamp(last.0 + n as u64);
    }
    Pool { net, events: ordered }
}

/// Opens and applies `events` on a fresh ledger, computing the state root once per block.
fn pipeline(net: &TestNet, events: &[(Vec<u8>, Timestamp)]) {
    let mut ledger = Ledger::from_genesis(&net.genesis).unwrap();
    for block in events.chunks(EVENTS_PER_BLOCK) {
        for (bytes, t) in block {
            let event = kp_proto::open_event(net.chain_id(), net.rule(), bytes).unwrap();
            ledger.apply(&event, *t).unwrap();
        }
        black_box(ledger.state_root());
    }
}

fn raw_verify(items: &[(PublicKey, Vec<u8>, kp_crypto::Signature)], chain: &ChainId, rule: SignatureRule) {
    for (k, payload, s) in items {
        kp_crypto::verify(k, Tag::Event, chain, rule, payload, s).unwrap();
    }
}

fn signatures(pool: &Pool) -> Vec<(PublicKey, Vec<u8>, kp_crypto::Signature)> {
    pool.events
        .iter()
        .map(|(bytes, _)| {
            let u = kp_proto::decode_event(bytes).unwrap();
            let item = &u.batch_items()[0];
            (*item.key, item.bytes.to_vec(), *item.signature)
        })
        .collect()
}

fn stages(c: &mut Criterion) {
    let pool = pool();
    let sigs = signatures(&pool);
    let chain = pool.net.chain_id().clone();
    let n = 3_000;
    let mut g = c.benchmark_group("one_core");
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(10);
    g.bench_function("raw_ed25519_verify", |b| b.iter(|| raw_verify(&sigs[..n], &chain, pool.net.rule())));
    g.bench_function("sign_event", |b| {
        let key = pool.net.key("BW", Role::Exporting);
        let payload =
            kp_proto::encode_payload(&EventPayload::CertificateIssued(certificate("BW-1", "BW", "EU", at(1, 0))))
                .unwrap();
        b.iter(|| {
            for _ in 0..n {
                black_box(kp_proto::sign_event(key, &chain, payload.clone()));
            }
        });
    });
    g.bench_function("open_event", |b| {
        b.iter(|| {
            for (bytes, _) in &pool.events[..n] {
                black_box(kp_proto::open_event(&chain, pool.net.rule(), bytes).unwrap());
            }
        });
    });
    g.bench_function("open_and_apply", |b| b.iter(|| pipeline(&pool.net, &pool.events[..n])));
    let opened: Vec<(Event, Timestamp)> =
        pool.events[..n].iter().map(|(b, t)| (kp_proto::open_event(&chain, pool.net.rule(), b).unwrap(), *t)).collect();
    g.bench_function("apply_only", |b| {
        b.iter(|| {
            let mut ledger = Ledger::from_genesis(&pool.net.genesis).unwrap();
            for block in opened.chunks(EVENTS_PER_BLOCK) {
                for (e, t) in block {
                    ledger.apply(e, *t).unwrap();
                }
                black_box(ledger.state_root());
            }
        });
    });
    g.finish();
}

fn per_second(count: usize, d: Duration) -> f64 {
    count as f64 / d.as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Raw verification and the whole pipeline, interleaved, over the whole pool: one JSON line.
fn summary() {
    let pool = pool();
    let sigs = signatures(&pool);
    let chain = pool.net.chain_id().clone();
    let (mut raw, mut full) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let t = Instant::now();
        raw_verify(&sigs, &chain, pool.net.rule());
        raw.push(per_second(sigs.len(), t.elapsed()));
        let t = Instant::now();
        pipeline(&pool.net, &pool.events);
        full.push(per_second(pool.events.len(), t.elapsed()));
    }
    let (raw, full) = (median(raw), median(full));
    let line = serde_json::json!({
        "benchmark": "rules_pipeline_one_core",
        "events": pool.events.len(),
        "events_per_block": EVENTS_PER_BLOCK,
        "raw_ed25519_verify_per_s": raw.round(),
        "open_verify_apply_per_s": full.round(),
        "pipeline_to_raw_verify_ratio": (full / raw * 1000.0).round() / 1000.0,
        "rules_and_edge_overhead_us_per_event": ((1e6 / full - 1e6 / raw) * 100.0).round() / 100.0,
    });
    println!("{line}");
}

criterion_group!(benches, stages);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
