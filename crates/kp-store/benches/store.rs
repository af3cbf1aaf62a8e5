//! Storage benchmark (prints JSON): appends a realistic custody ledger in 100-event blocks
//! to RocksDB with a sync per block, then measures custody-history lookups, bytes on disk per
//! event against the raw signed-event bytes, and the process's peak RSS.
//!
//! `cargo bench -p kp-store --bench store` (or `scripts/bench-store.sh`). Environment:
//! `KP_BENCH_EVENTS` (default 1,000,000), `KP_BENCH_PARTICIPANTS` (default 59),
//! `KP_BENCH_EVENTS_PER_BLOCK` (default 100), `KP_BENCH_DIR` (default: a temporary directory).
//!
//! Append throughput counts `Store::commit` only — the block, its certificate, the state
//! changes, every index, one synced write batch. Building the workload and executing it
//! (signature checks and rules) is the consensus path's cost and is reported separately.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation, clippy::float_arithmetic)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::Workload;
use kp_domain::CertificateNumber;
use kp_store::{RocksBackend, Store};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::path::Path;
use std::time::{Duration, Instant};

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.metadata().map_or(0, |m| if m.is_dir() { dir_bytes(&e.path()) } else { m.len() }))
        .sum()
}

fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// CPU time consumed so far by `clock` (this thread's, or the whole process's).
fn cpu(clock: nix::time::ClockId) -> Duration {
    nix::time::clock_gettime(clock).map_or(Duration::ZERO, Duration::from)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let (target_events, participants, per_block, dir) = common::bench_ledger(tmp.path());
    eprintln!(
        "store bench: {target_events} events, {participants} participants, {per_block} per block, in {}",
        dir.display()
    );

    let w = Workload::new(participants, 1, per_block);
    let (mut store, mut app) = Store::open(RocksBackend::open(&dir).unwrap(), &w.net.genesis).unwrap();
    let mut commit_time = Duration::ZERO;
    let mut commit_cpu = Duration::ZERO;
    let mut build_time = Duration::ZERO;
    let mut commits = Vec::new();
    let mut raw_bytes = 0u64;
    let mut blocks = 0u64;
    let started = Instant::now();
    let process_cpu_before = cpu(nix::time::ClockId::CLOCK_PROCESS_CPUTIME_ID);
    let thread_cpu_before = cpu(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID);
    while store.head().events < target_events {
        let t = Instant::now();
        let (b, c) = w.next_block(&mut app);
        build_time += t.elapsed();
        raw_bytes += b.events().iter().map(|e| e.len() as u64).sum::<u64>();
        let t = Instant::now();
        let c0 = cpu(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID);
        store.commit(&b, &c, &mut app).unwrap();
        commit_cpu += cpu(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).saturating_sub(c0);
        let d = t.elapsed();
        commit_time += d;
        commits.push(d);
        blocks += 1;
        if blocks % 1_000 == 0 {
            eprintln!("  {blocks} blocks, {} events, {:.0} s", store.head().events, started.elapsed().as_secs_f64());
        }
    }
    let events = store.head().events;
    // RocksDB's flush and compaction threads: the process's CPU beyond this thread's.
    let background_cpu = cpu(nix::time::ClockId::CLOCK_PROCESS_CPUTIME_ID)
        .saturating_sub(process_cpu_before)
        .saturating_sub(cpu(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).saturating_sub(thread_cpu_before));
    commits.sort();

    // Settled size on disk: memtables flushed and compacted (the WAL of flushed data is gone).
    drop(store);
    let backend = RocksBackend::open(&dir).unwrap();
    backend.compact().unwrap();
    let disk = dir_bytes(&dir);
    let t = Instant::now();
    let (store, _app) = Store::open(backend, &w.net.genesis).unwrap();
    let open_time = t.elapsed();

    // Custody lookups of random certificates.
    let mut issued: Vec<CertificateNumber> =
        app.ledger().certificates().map(|r| r.certificate.number.clone()).collect();
    // The ledger keeps no order: sorted, the seeded draw picks the same certificates every run.
    issued.sort();
    let mut rng = StdRng::seed_from_u64(7);
    let mut lookups = Vec::with_capacity(20_000);
    let mut steps = 0usize;
    for _ in 0..20_000 {
        let n = &issued[rng.random_range(0..issued.len())];
        let t = Instant::now();
        let custody = store.custody(n).unwrap();
        lookups.push(t.elapsed());
        steps += custody.len();
        assert!(!custody.is_empty());
    }
    lookups.sort();
    let secs = commit_time.as_secs_f64();
    let json = serde_json::json!({
        "benchmark": "kp-store",
        "events": events,
        "blocks": blocks,
        "participants": participants,
        "events_per_block": per_block,
        "append": {
            "measures": "Store::commit only: block, certificate, state changes and every index in one batch, synced",
            "blocks_per_s": blocks as f64 / secs,
            "events_per_s": events as f64 / secs,
            "commit_ms_p50": percentile(&commits, 0.5),
            "commit_ms_p99": percentile(&commits, 0.99),
            "commit_ms_max": percentile(&commits, 1.0),
            "commit_cpu_ms_per_block": commit_cpu.as_secs_f64() * 1e3 / blocks as f64,
            "background_cpu_ms_per_block": background_cpu.as_secs_f64() * 1e3 / blocks as f64,
            "target_events_per_s": 50_000,
        },
        "build_and_execute_events_per_s": events as f64 / build_time.as_secs_f64(),
        "custody_lookup": {
            "certificates": issued.len(),
            "lookups": lookups.len(),
            "mean_steps": steps as f64 / lookups.len() as f64,
            "p50_ms": percentile(&lookups, 0.5),
            "p99_ms": percentile(&lookups, 0.99),
            "max_ms": percentile(&lookups, 1.0),
            "target_p99_ms": 1.0,
        },
        "disk": {
            "bytes_on_disk": disk,
            "raw_signed_event_bytes": raw_bytes,
            "bytes_per_event": disk as f64 / events as f64,
            "raw_bytes_per_event": raw_bytes as f64 / events as f64,
            "ratio_to_raw": disk as f64 / raw_bytes as f64,
            "target_ratio": 1.5,
        },
        "open_with_checks_ms": open_time.as_secs_f64() * 1e3,
        "peak_rss_bytes": peak_rss_bytes(),
        "wall_s": started.elapsed().as_secs_f64(),
    });
    println!("{}", serde_json::to_string_pretty(&json).unwrap());
}
