//! `kp-sim`: rerun one seed, soak many, or measure the cost per block.

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};
use kp_sim::{KINDS, Report, Scenario, bench, run_kind};
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(name = "kp-sim", about = "Deterministic simulation of the KP ledger's full-consensus network")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs one seed (the scenario is drawn from it) and prints what it injected and found.
    Run {
        #[arg(long)]
        seed: u64,
        #[arg(long, default_value_t = 4)]
        nodes: usize,
        /// The scenario: faults (a random mix drawn from the seed), governance (a withholding
        /// voter suspended, then readmitted), offline (a voter away 36 hours), flood (a voter
        /// flooding NewRounds with bad locks for an hour), pool-flood (clients beyond the pool's
        /// cap, with reads), disk-failure (a node's pool writes failing), clock-none,
        /// clock-minute, clock-hour, clock-drift, clock-jump (wrong clocks for twenty minutes;
        /// `none` is the baseline), withhold-<point>[-pending] (a voter withholding its
        /// proposal, prevote, prevote-certificate, precommit, commit-certificate or new-round
        /// for good, and suspended; with -pending, its suspension was pending first).
        #[arg(long, default_value = "faults")]
        kind: String,
        /// The same as `--kind governance`.
        #[arg(long)]
        governance: bool,
        /// Also prints the injected scenario.
        #[arg(long)]
        verbose: bool,
    },
    /// Runs `seeds` seeds from `start`, cycling through the node counts and, as the CI set does,
    /// through the scenario kinds (see `kp_sim::run_seed`); prints each failure
    /// with the command that reruns it. Exit status 1 if any failed.
    Soak {
        #[arg(long)]
        seeds: u64,
        #[arg(long, default_value_t = 0)]
        start: u64,
        #[arg(long, value_delimiter = ',', default_value = "4,7,19,59")]
        nodes: Vec<usize>,
    },
    /// Fault-free networks of each size: CPU time, messages and bytes per committed block (JSON).
    Bench {
        #[arg(long, value_delimiter = ',', default_value = "4,7,19,59")]
        nodes: Vec<usize>,
        #[arg(long, default_value_t = 20)]
        blocks: u64,
        #[arg(long, default_value_t = 30)]
        events_per_block: usize,
    },
}

fn print_report(r: &Report) {
    let verdict = if r.ok() { "ok" } else { "FAILED" };
    println!(
        "seed {} nodes {} {}: {verdict}; heights {}..{}, {} events, {} virtual ms, {} messages, {} dropped, {} decode errors, {} crashes; digest {}",
        r.seed,
        r.nodes,
        r.kind,
        r.heights.0,
        r.heights.1,
        r.events_committed,
        r.virtual_ms,
        r.stats.messages,
        r.stats.dropped,
        r.stats.decode_errors,
        r.stats.crashes,
        r.digest.short()
    );
    for v in &r.violations {
        println!("  {v}");
    }
    if !r.ok() {
        println!("  rerun: {}", r.rerun());
    }
}

// Benchmark figures are reported as floating-point ratios; nothing decided here depends on them.
#[allow(clippy::float_arithmetic, clippy::cast_precision_loss)]
fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Run { seed, nodes, kind, governance, verbose } => {
            if !(4..=59).contains(&nodes) {
                bail!("--nodes must be from 4 to 59, got {nodes}");
            }
            let kind = if governance { "governance".to_owned() } else { kind };
            if verbose && kind == "faults" {
                println!("{:#?}", Scenario::random(seed, nodes));
            }
            let Some(r) = run_kind(&kind, seed, nodes) else {
                bail!(
                    "--kind must be one of {}, {}, got {kind:?}",
                    KINDS.join(", "),
                    kp_sim::WITHHOLD_KINDS.join(", ")
                );
            };
            print_report(&r);
            if !r.ok() {
                std::process::exit(1);
            }
        }
        Command::Soak { seeds, start, nodes } => {
            if nodes.is_empty() || nodes.iter().any(|n| !(4..=59).contains(n)) {
                bail!("--nodes takes sizes from 4 to 59");
            }
            let began = Instant::now();
            let mut failed = 0u64;
            for seed in start..start.saturating_add(seeds) {
                let n = nodes[usize::try_from(seed).unwrap_or(0) % nodes.len()];
                let r = kp_sim::run_seed(seed, n);
                if !r.ok() {
                    failed += 1;
                }
                print_report(&r);
            }
            println!("soak: {seeds} runs, {failed} failed, {:.0} s", began.elapsed().as_secs_f64());
            if failed > 0 {
                std::process::exit(1);
            }
        }
        Command::Bench { nodes, blocks, events_per_block } => {
            let mut rows = vec![];
            for n in nodes {
                if !(1..=59).contains(&n) {
                    bail!("--nodes takes sizes from 1 to 59");
                }
                for events in [0, events_per_block] {
                    let f = bench(1, n, blocks, events);
                    let row = serde_json::json!({
                        "nodes": f.nodes,
                        "events_per_block": events,
                        "blocks": f.blocks,
                        "cpu_ms_per_block_all_nodes": round2(f.cpu_ms_per_block),
                        "cpu_ms_per_block_per_node": round2(f.cpu_ms_per_block / f.nodes as f64),
                        "messages_per_block": round2(f.messages_per_block),
                        "messages_per_block_over_n": round2(f.messages_per_block / f.nodes as f64),
                        "bytes_per_block": f.bytes_per_block.round(),
                        "virtual_ms_per_block": round2(f.virtual_ms_per_block),
                    });
                    eprintln!("{row}");
                    rows.push(row);
                }
            }
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "consensus_bench": rows }))?);
        }
    }
    Ok(())
}

#[allow(clippy::float_arithmetic)]
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
