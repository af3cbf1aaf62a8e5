//! The simulator's CI set: 300 seeded runs across 4, 7, 19 and 59 nodes, each with a mix of
//! faults drawn from its seed (every tenth seed runs the consensus-minus-one governance
//! scenario instead), and the determinism check. A failing run prints its seed and the command
//! that reruns it. `scripts/sim.sh --seeds N` runs a longer soak; `scripts/sim.sh --broken-lock`
//! shows that these checks catch a broken locking rule.

#![allow(clippy::panic)]

use kp_sim::{Report, Scenario, run, run_governance};
use std::ops::Range;
use std::time::Instant;

/// The run of `seed`: the governance scenario for every tenth seed, a random fault mix otherwise.
fn run_seed(seed: u64, nodes: usize) -> Report {
    if seed % 10 == 9 { run_governance(seed, nodes) } else { run(Scenario::random(seed, nodes)) }
}

fn run_set(nodes: usize, seeds: Range<u64>) {
    let began = Instant::now();
    let count = seeds.end - seeds.start;
    let mut failures = vec![];
    let (mut heights, mut crashes, mut dropped, mut decode_errors) = (0, 0, 0, 0);
    for seed in seeds {
        let r = run_seed(seed, nodes);
        heights += r.heights.0;
        crashes += r.stats.crashes;
        dropped += r.stats.dropped;
        decode_errors += r.stats.decode_errors;
        if !r.ok() {
            failures.push(format!(
                "seed {seed} ({} nodes, {}): {}\n  rerun: {}",
                nodes,
                r.kind,
                r.violations.join("\n  "),
                r.rerun()
            ));
        }
    }
    println!(
        "kp-sim {nodes} nodes: {count} runs, {} failed; {heights} blocks committed, {crashes} crashes, {dropped} messages lost, {decode_errors} undecodable messages refused; {:.1} s",
        failures.len(),
        began.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{} of {count} runs failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn sim_4_nodes() {
    run_set(4, 0..110);
}

#[test]
fn sim_7_nodes() {
    run_set(7, 1_000..1_100);
}

#[test]
fn sim_19_nodes() {
    run_set(19, 2_000..2_060);
}

#[test]
fn sim_59_nodes() {
    run_set(59, 3_000..3_030);
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    for (seed, nodes) in [(5, 4), (1_003, 7), (2_001, 19), (9, 7)] {
        let a = run_seed(seed, nodes);
        let b = run_seed(seed, nodes);
        assert_eq!(a.digest, b.digest, "seed {seed}: two runs of one seed differ");
        assert_eq!(a.heights, b.heights, "seed {seed}");
        let other = run_seed(seed + 1, nodes);
        assert_ne!(a.digest, other.digest, "seeds {seed} and {} gave one trace", seed + 1);
    }
}
