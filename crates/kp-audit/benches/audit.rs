//! Audit benchmark (prints JSON): generates a realistic ledger of 1,000,000 events (59
//! participants, 100-event blocks, commit certificates signed by every voter), writes it as an
//! export file and into a RocksDB store, then measures, in the same run:
//! - the raw batch Ed25519 verification throughput of this machine's cores (the baseline:
//!   batches of one block's event signatures, verified in parallel on every core);
//! - the full audit of the export file (`kp_audit::audit`, as `kpledger audit --file` runs it):
//!   events/s and signatures/s, and their ratio to the baseline;
//! - a proof bundle of one certificate: its size, and the time to verify it.
//!
//! `cargo bench -p kp-audit --bench audit` (or `scripts/bench-audit.sh`). Environment:
//! `KP_BENCH_EVENTS` (default 1,000,000), `KP_BENCH_PARTICIPANTS` (default 59),
//! `KP_BENCH_EVENTS_PER_BLOCK` (default 100), `KP_BENCH_DIR` (keep the generated ledger there,
//! and reuse it on the next run; default: a temporary directory).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::float_arithmetic
)]

// As in the `kpledger` binary: blocks are read, verified and replayed on different threads,
// and glibc's allocator spends a tenth of the audit on memory freed by another thread.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../../kp-store/tests/common/mod.rs"]
mod common;

use common::Workload;
use kp_audit::{ExportReader, ExportWriter, proof};
use kp_consensus::wire;
use kp_crypto::{BatchItem, Tag};
use kp_store::{RocksBackend, Store};
use rayon::prelude::*;
use std::io::{BufReader, BufWriter};
use std::time::{Duration, Instant};

/// One signature to verify, owned.
struct Sig {
    key: kp_domain::PublicKey,
    bytes: Vec<u8>,
    signature: kp_crypto::Signature,
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let (target_events, participants, per_block, dir) = common::bench_ledger(tmp.path());
    let file = dir.join("ledger.kpx");
    let cores = rayon::current_num_threads();
    eprintln!("audit bench: {target_events} events, {participants} participants, {per_block} per block, {cores} cores");

    // ----- the ledger (kept in KP_BENCH_DIR and reused from there, if given) -----
    let w = Workload::new(participants, 1, per_block);
    let chain_id = w.net.chain_id().clone();
    let rule = w.net.rule();
    if file.is_file() {
        eprintln!("reusing the ledger in {}", dir.display());
    } else {
        generate(&w, &dir, target_events);
    }
    let file_bytes = std::fs::metadata(&file).unwrap().len();
    // The baseline's sample: the event signatures of the first 200 blocks, block by block.
    let reader = ExportReader::new(BufReader::new(std::fs::File::open(&file).unwrap())).unwrap();
    let sample: Vec<Vec<Sig>> = reader
        .take(200)
        .map(|b| {
            b.unwrap()
                .events
                .iter()
                .map(|e| {
                    let u = kp_proto::decode_event(e).unwrap();
                    let i = &u.batch_items()[0];
                    Sig { key: *i.key, bytes: i.bytes.to_vec(), signature: *i.signature }
                })
                .collect()
        })
        .collect();

    // ----- baseline: raw batch verification on every core -----
    let baseline = |rounds: usize| {
        let t = Instant::now();
        let mut n = 0usize;
        for _ in 0..rounds {
            n += sample
                .par_iter()
                .map(|block| {
                    let items: Vec<BatchItem<'_>> = block
                        .iter()
                        .map(|s| BatchItem { key: &s.key, tag: Tag::Event, bytes: &s.bytes, signature: &s.signature })
                        .collect();
                    kp_crypto::verify_batch(&chain_id, rule, &items).unwrap();
                    items.len()
                })
                .sum::<usize>();
        }
        n as f64 / t.elapsed().as_secs_f64()
    };
    baseline(3); // warm up: every thread's caches, the CPU's clock
    let raw_before = baseline(5);

    // ----- the audit of the export file -----
    let t = Instant::now();
    let input = BufReader::with_capacity(1 << 20, std::fs::File::open(&file).unwrap());
    let reader = ExportReader::new(input).unwrap();
    let genesis = reader.genesis().clone();
    let report = kp_audit::audit(&genesis, Box::new(reader.map(|b| b.map_err(|e| e.to_string()))), &mut |_, _| {});
    let audit_s = t.elapsed().as_secs_f64();
    assert!(report.verified(), "{report}");
    let (blocks, events) = (report.blocks, report.events);
    let raw_after = baseline(5);
    let raw = (raw_before + raw_after) / 2.0;
    let sigs = report.signatures.total();
    let audit_sigs_per_s = sigs as f64 / audit_s;

    // ----- a proof bundle -----
    let store = Store::open_for_audit(RocksBackend::open(&dir.join("store")).unwrap(), &w.net.genesis).unwrap();
    let number = w.certificate_number(blocks / 2, 0);
    let bundle = proof::build(&store, &number).unwrap();
    let mut times: Vec<Duration> = (0..50)
        .map(|_| {
            let t = Instant::now();
            let r = proof::verify(&bundle, &w.net.genesis).unwrap();
            let d = t.elapsed();
            assert_eq!(r.steps.len(), 3);
            d
        })
        .collect();
    times.sort();

    let json = serde_json::json!({
        "benchmark": "kp-audit",
        "cores": cores,
        "ledger": {
            "events": events,
            "blocks": blocks,
            "participants": participants,
            "events_per_block": per_block,
            "export_bytes": file_bytes,
        },
        "raw_batch_verification": {
            "measures": "Ed25519 batch verification of one block's event signatures per batch, batches in parallel on every core",
            "signatures_per_s": raw,
            "before_audit": raw_before,
            "after_audit": raw_after,
        },
        "audit": {
            "measures": "kp_audit::audit of the export file: read, decode, every signature (events, approvals, votes), rules re-executed, state roots, certificates",
            "seconds": audit_s,
            "events_per_s": events as f64 / audit_s,
            "signatures": sigs,
            "signatures_per_s": audit_sigs_per_s,
            "ratio_to_raw": audit_sigs_per_s / raw,
            "target": "ratio >= 0.8 and 1,000,000 events in < 60 s",
        },
        "proof": {
            "certificate": number.to_string(),
            "bundle_bytes": bundle.len(),
            "verify_ms_p50": times[times.len() / 2].as_secs_f64() * 1e3,
            "verify_ms_max": times[times.len() - 1].as_secs_f64() * 1e3,
        },
    });
    println!("{}", serde_json::to_string_pretty(&json).unwrap());
}

/// Generates the ledger into `dir`: its export file and a node's store.
fn generate(w: &Workload, dir: &std::path::Path, target_events: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let (mut store, mut app) = Store::open(RocksBackend::open(&dir.join("store")).unwrap(), &w.net.genesis).unwrap();
    let partial = dir.join("ledger.kpx.partial");
    let out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&partial).unwrap());
    let mut writer = ExportWriter::new(out, &kp_proto::encode_genesis(&w.net.genesis)).unwrap();
    let started = Instant::now();
    while store.head().events < target_events {
        let (b, c) = w.next_block(&mut app);
        writer.block(b.header_bytes().to_vec(), b.events().to_vec(), wire::encode_certificate(&c)).unwrap();
        store.commit(&b, &c, &mut app).unwrap();
        if store.head().height % 1_000 == 0 {
            eprintln!(
                "  generated {} blocks, {} events, {:.0} s",
                store.head().height,
                store.head().events,
                started.elapsed().as_secs_f64()
            );
        }
    }
    // On disk before anything is measured: the kernel's write-back of a quarter of a gigabyte
    // would otherwise run beside the first measurements. The store is closed, so that no flush
    // or compaction of RocksDB runs beside them either.
    writer.finish().unwrap().into_inner().map_err(|e| e.into_error()).unwrap().sync_all().unwrap();
    std::fs::rename(&partial, dir.join("ledger.kpx")).unwrap();
    eprintln!("generated in {:.0} s", started.elapsed().as_secs_f64());
}
