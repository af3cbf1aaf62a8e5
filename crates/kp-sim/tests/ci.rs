//! The simulator's CI set: seeded runs of the node's own core across 4, 7, 19 and 59 nodes —
//! each with a mix of faults drawn from its seed, except every tenth seed (the
//! consensus-minus-one governance scenario), and some with a node's disk failing or clients
//! beyond the pool's cap (see `kp_sim::run_seed`) — the long runs (a voter away for 36 hours,
//! a voter flooding NewRounds for an hour) and the determinism check. A failing run prints its
//! seed and the command that reruns it. `scripts/sim.sh --seeds N` runs a longer soak;
//! `scripts/sim.sh --broken-lock` shows that these checks catch a broken locking rule.

#![allow(clippy::panic)]

use kp_sim::{CLOCK_CASES, OFFLINE_MS, Report, WITHHOLD_KINDS, run_clock, run_flood, run_kind, run_offline, run_seed};
use std::ops::Range;
use std::time::Instant;

fn run_set(nodes: usize, seeds: Range<u64>) {
    run_reports(nodes, seeds, |seed| run_seed(seed, nodes));
}

fn run_reports(nodes: usize, seeds: Range<u64>, mut run: impl FnMut(u64) -> Report) {
    let began = Instant::now();
    let count = seeds.end - seeds.start;
    let seeds_shown = format!("{}..{}", seeds.start, seeds.end);
    let mut failures = vec![];
    let (mut heights, mut crashes, mut dropped, mut decode_errors) = (0, 0, 0, 0);
    for seed in seeds {
        let r = run(seed);
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
        "kp-sim {nodes} nodes, seeds {seeds_shown}: {count} runs, {} failed; {heights} blocks committed, {crashes} crashes, {dropped} messages lost, {decode_errors} undecodable messages refused; {:.1} s",
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

/// A voter away for 36 hours of virtual time (thousands of rounds) while clients go on
/// submitting: the others stay up and keep voting; back, it catches up and the chain resumes.
#[test]
fn sim_a_voter_away_36_hours() {
    run_reports(4, 4_000..4_003, |seed| run_offline(seed, 4, OFFLINE_MS));
    run_reports(7, 4_100..4_101, |seed| run_offline(seed, 7, OFFLINE_MS));
}

/// A voter flooding NewRounds (rounds far ahead, locks whose certificates do not verify) for an
/// hour of virtual time: no honest node fails, each strikes the flooder, the chain resumes.
#[test]
fn sim_a_voter_flooding_new_rounds_for_an_hour() {
    run_reports(4, 5_000..5_002, |seed| run_flood(seed, 4));
    run_reports(7, 5_100..5_101, |seed| run_flood(seed, 7));
}

/// Wrong clocks (one a minute or an hour off, a third drifting apart, a proposer's clock
/// jumping an hour) for twenty minutes of virtual time: agreement, liveness, block times where
/// the design puts them, each node's offset measured; and the network commits at the pace of
/// the same seed without the fault (at least 90% of its blocks).
#[test]
fn sim_wrong_clocks() {
    for (nodes, seeds) in [(4, 6_000..6_002), (7, 6_100..6_101)] {
        for seed in seeds {
            let baseline = run_clock(seed, nodes, "none");
            for case in CLOCK_CASES {
                let r = if case == "none" { baseline.clone() } else { run_clock(seed, nodes, case) };
                println!(
                    "kp-sim clock-{case} seed {seed}, {nodes} nodes: {} blocks ({} without the fault){}",
                    r.heights.0,
                    baseline.heights.0,
                    if r.ok() { "" } else { ", FAILED" }
                );
                assert!(r.ok(), "seed {seed} clock-{case}: {}\n  rerun: {}", r.violations.join("\n  "), r.rerun());
                assert!(
                    r.heights.0 * 10 >= baseline.heights.0 * 9,
                    "seed {seed} clock-{case}: {} blocks against {} without the fault\n  rerun: {}",
                    r.heights.0,
                    baseline.heights.0,
                    r.rerun()
                );
            }
        }
    }
}

/// A participant withholding, for good, each step in turn (its proposals, prevotes, prevote
/// certificates, precommits, commit certificates, NewRound reports), at a height where its
/// suspension is pending and at one where it is not: agreement, no honest node fails, the act
/// suspending it commits within the bound (`WITHHOLD_BOUND_MS`), the chain goes on without it.
#[test]
fn sim_a_voter_withholding_each_step() {
    let mut longest = (0, "");
    for (nodes, seeds) in [(4, 7_000..7_002), (7, 7_100..7_101)] {
        for kind in WITHHOLD_KINDS {
            run_reports(nodes, seeds.clone(), |seed| {
                let r = run_kind(kind, seed, nodes).unwrap_or_else(|| panic!("no kind {kind}"));
                if r.stats.suspension_ms > longest.0 {
                    longest = (r.stats.suspension_ms, kind);
                }
                r
            });
        }
    }
    println!(
        "kp-sim withholding: the longest from the act's submission to its commit: {} ms ({})",
        longest.0, longest.1
    );
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    for (seed, nodes) in [(5, 4), (1_003, 7), (2_001, 19), (9, 7), (24, 4), (44, 4)] {
        let a = run_seed(seed, nodes);
        let b = run_seed(seed, nodes);
        assert_eq!(a.digest, b.digest, "seed {seed}: two runs of one seed differ");
        assert_eq!(a.heights, b.heights, "seed {seed}");
        let other = run_seed(seed + 1, nodes);
        assert_ne!(a.digest, other.digest, "seeds {seed} and {} gave one trace", seed + 1);
    }
}
