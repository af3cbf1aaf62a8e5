//! `kp-model`: model-checks the consensus engine over every configuration of its set (see the
//! crate documentation), printing per configuration the states explored, the depth and the
//! time, and for any property that fails its shortest counterexample as a readable trace.
//! Exit status 1 if a property fails (or, with `--expect-violation`, if none does).

use clap::Parser;
use kp_model::{ConsensusModel, Setup, trace};
use stateright::report::{ReportData, ReportDiscovery, Reporter};
use stateright::{Checker, HasDiscoveries, Model};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Progress every ten seconds on stderr; the discoveries are printed as traces instead.
struct Progress {
    last: Duration,
}

impl Reporter<ConsensusModel> for Progress {
    fn report_checking(&mut self, d: ReportData) {
        if !d.done && d.duration >= self.last + Duration::from_secs(10) {
            self.last = d.duration;
            eprintln!("   … {} distinct states, depth {}, {} s", d.unique_states, d.max_depth, d.duration.as_secs());
        }
    }
    fn report_discoveries(&mut self, _: &ConsensusModel, _: BTreeMap<&'static str, ReportDiscovery<ConsensusModel>>) {}
    fn delay(&self) -> Duration {
        Duration::from_millis(100)
    }
}

#[derive(Parser, Debug)]
#[command(about = "Exhaustive model check of the kp-consensus engine")]
struct Args {
    /// The deeper set: every configuration at the full bounds (heights 1–2, rounds
    /// 0–2, more faults); the default is the bounded set CI runs.
    #[arg(long)]
    deep: bool,
    /// Only the configuration of this name (see --list).
    #[arg(long)]
    only: Option<String>,
    /// Checker threads (default: the cores available).
    #[arg(long)]
    threads: Option<usize>,
    /// Succeed only if this property fails somewhere (the broken-lock mutant must break
    /// agreement); stops at the first counterexample.
    #[arg(long)]
    expect_violation: Option<String>,
    /// Stop a configuration after this many distinct states (reported as incomplete: not a
    /// pass). Breadth-first holds kilobytes a state (1,000,000 states ≈ 10 GB); the deep set
    /// (depth-first) defaults to 50,000,000.
    #[arg(long)]
    max_states: Option<usize>,
    /// Depth-first instead of breadth-first: as exhaustive, holding only fingerprints (a few
    /// dozen bytes a state, against kilobytes for the breadth-first frontier), but a
    /// counterexample found is not the shortest (rerun that configuration breadth-first). The
    /// deep set's default.
    #[arg(long)]
    dfs: Option<bool>,
    /// Stop a configuration after this many seconds (reported as incomplete: not a pass).
    #[arg(long)]
    seconds: Option<u64>,
    /// Override: no Byzantine voter.
    #[arg(long)]
    honest: bool,
    /// List the configurations and exit.
    #[arg(long)]
    list: bool,
    /// Override every configuration's budgets: losses,duplicates,Byzantine acts,timeouts.
    #[arg(long, value_parser = parse_faults)]
    faults: Option<(u8, u8, u8, u8)>,
    /// Override every configuration's round limits per height (e.g. 2,2).
    #[arg(long, value_delimiter = ',')]
    rounds: Option<Vec<u32>>,
    /// Override: honest channels deliver in order (true) or in any order (false).
    #[arg(long)]
    fifo: Option<bool>,
}

fn parse_faults(s: &str) -> Result<(u8, u8, u8, u8), String> {
    let v: Vec<u8> =
        s.split(',').map(|x| x.trim().parse::<u8>().map_err(|e| format!("{x}: {e}"))).collect::<Result<_, _>>()?;
    match v.as_slice() {
        [l, d, b, t] => Ok((*l, *d, *b, *t)),
        _ => Err("four numbers: losses,duplicates,Byzantine acts,timeouts".to_owned()),
    }
}

fn setup(
    name: &str,
    voters: usize,
    suspension: Option<u64>,
    synchronous: bool,
    rounds: &[u32],
    faults: (u8, u8, u8, u8),
) -> Setup {
    Setup {
        name: name.to_owned(),
        voters,
        // Voter AB: the leader of height 1's first round (leader = voters[(h + r) mod n]).
        byzantine: Some(1),
        suspension,
        synchronous,
        max_height: u64::try_from(rounds.len()).unwrap_or(1),
        rounds: rounds.to_vec(),
        losses: faults.0,
        duplicates: faults.1,
        byzantine_acts: faults.2,
        fifo: true,
        timeouts: faults.3,
    }
}

/// The configurations. Three voters are checked with ordinary blocks only: with a block that
/// needs every voter but one at the same height as a withheld commit, safety needs an honest
/// voter outside both (n − 3 Byzantine at most, docs/consensus.md), none is left at n = 3 with
/// one Byzantine voter, and the checker duly finds that split. Four voters are checked with the
/// act suspending the Byzantine voter pending.
fn configurations(deep: bool) -> Vec<Setup> {
    // (losses, duplicates, Byzantine acts, timeouts): each fault class has its own
    // configurations, since their budgets multiply the states.
    let none = (0, 0, 0, 9);
    if deep {
        vec![
            setup("async-3", 3, None, false, &[2, 2], none),
            setup("async-3-network", 3, None, false, &[2, 1], (1, 1, 0, 9)),
            setup("async-3-equivocation", 3, None, false, &[2, 1], (0, 0, 2, 9)),
            setup("async-4-suspension", 4, Some(1), false, &[1, 1], none),
            setup("async-4-suspension-equivocation", 4, Some(1), false, &[1], (0, 0, 1, 9)),
            setup("sync-3-suspension-equivocation", 3, Some(1), true, &[2, 0], (0, 0, 2, 9)),
            setup("sync-4-suspension", 4, Some(1), true, &[2, 0], none),
            setup("sync-4-suspension-equivocation", 4, Some(1), true, &[2, 0], (0, 0, 1, 9)),
            setup("sync-4-suspension-from-2", 4, Some(2), true, &[2, 1, 0], none),
        ]
    } else {
        vec![
            setup("async-3", 3, None, false, &[1, 0], none),
            setup("async-3-network", 3, None, false, &[1], (1, 1, 0, 2)),
            setup("async-3-equivocation", 3, None, false, &[1], (0, 0, 1, 2)),
            setup("async-4-suspension", 4, Some(1), false, &[0, 0], none),
            setup("sync-3-suspension", 3, Some(1), true, &[2, 0], none),
        ]
    }
}

fn describe(s: &Setup) -> String {
    let rounds: Vec<String> = s.rounds.iter().map(|r| format!("0–{r}")).collect();
    format!(
        "{} voters, Byzantine {}, heights 1–{}, rounds {} per height, losses {}, duplicates {}, Byzantine acts {}, timeouts {}, {}",
        s.voters,
        s.byzantine.map_or("none".to_owned(), |b| format!("#{b}")),
        s.max_height,
        rounds.join("/"),
        s.losses,
        s.duplicates,
        s.byzantine_acts,
        s.timeouts,
        if s.fifo { "ordered channels" } else { "any order" }
    )
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The engine verifies the same signatures on every state it is run on.
    kp_crypto::memo::enable();
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let broken = cfg!(feature = "broken-lock");
    let set: Vec<Setup> = configurations(args.deep)
        .into_iter()
        .filter(|s| args.only.as_ref().is_none_or(|o| s.name == *o))
        .map(|mut s| {
            if let Some((l, d, b, t)) = args.faults {
                (s.losses, s.duplicates, s.byzantine_acts, s.timeouts) = (l, d, b, t);
            }
            if args.honest {
                s.byzantine = None;
            }
            if let Some(f) = args.fifo {
                s.fifo = f;
            }
            if let Some(r) = &args.rounds {
                s.max_height = u64::try_from(r.len()).unwrap_or(1);
                s.rounds = r.clone();
            }
            s
        })
        .collect();
    anyhow::ensure!(!set.is_empty(), "no configuration matches");
    if args.list {
        for s in &set {
            println!("{}: {}", s.name, describe(s));
        }
        return Ok(());
    }
    println!(
        "kp-model: {} set, {} configuration(s), {threads} thread(s){}",
        if args.deep { "deep" } else { "bounded" },
        set.len(),
        if broken { ", engine built with the BROKEN locking rule" } else { "" }
    );
    let started = Instant::now();
    let mut failed = Vec::new();
    let mut found_expected = false;
    for s in set {
        let name = s.name.clone();
        println!("== {name}: {}", describe(&s));
        let model = ConsensusModel::new(s)?;
        let properties = model.properties();
        let t = Instant::now();
        let mut builder = model.checker().threads(threads);
        if args.expect_violation.is_some() {
            builder = builder.finish_when(HasDiscoveries::AnyFailures);
        }
        if let Some(secs) = args.seconds {
            builder = builder.timeout(Duration::from_secs(secs));
        }
        let cap = args.max_states.or(args.deep.then_some(50_000_000));
        if let Some(cap) = cap {
            builder = builder.target_state_count(cap.max(1));
        }
        let dfs = args.dfs.unwrap_or(args.deep);
        let mut progress = Progress { last: Duration::ZERO };
        let checker = if dfs {
            println!("   depth-first");
            Box::new(builder.spawn_dfs().join_and_report(&mut progress)) as Box<dyn Checker<ConsensusModel>>
        } else {
            Box::new(builder.spawn_bfs().join_and_report(&mut progress))
        };
        let secs = t.elapsed().as_secs_f64();
        println!(
            "   {} distinct states ({} generated), depth {}, {secs:.1} s",
            checker.unique_state_count(),
            checker.state_count(),
            checker.max_depth()
        );
        let out_of_time = args.seconds.is_some_and(|secs| t.elapsed() >= Duration::from_secs(secs));
        let complete = cap.is_none_or(|cap| checker.unique_state_count() < cap) && !out_of_time;
        if out_of_time {
            println!(
                "   INCOMPLETE: stopped after {} s; what follows holds only for the states explored",
                args.seconds.unwrap_or(0)
            );
            failed.push(format!("{name}: incomplete"));
        } else if !complete {
            println!(
                "   INCOMPLETE: stopped at the cap of {} states; what follows holds only for those",
                cap.unwrap_or(0)
            );
            failed.push(format!("{name}: incomplete"));
        }
        let model = checker.model();
        for p in &properties {
            let discovery = checker.discovery(p.name);
            let always = matches!(p.expectation, stateright::Expectation::Always);
            match (always, discovery) {
                (true, None) => println!("   holds: {}", p.name),
                (false, Some(_)) => println!("   reached: {}", p.name),
                (false, None) => {
                    println!("   NOT REACHED: {} (the bounds leave the protocol no room to act)", p.name);
                    if args.expect_violation.is_none() {
                        failed.push(format!("{name}: {} never reached", p.name));
                    }
                }
                (true, Some(path)) => {
                    let steps = path.clone().into_actions().len();
                    let shortest = if dfs {
                        "a counterexample (depth-first: not the shortest)"
                    } else {
                        "shortest counterexample"
                    };
                    println!("   FAILS: {} — {shortest}, {steps} steps:", p.name);
                    println!("{}", trace(model, path));
                    if args.expect_violation.as_deref() == Some(p.name) {
                        found_expected = true;
                    } else {
                        failed.push(format!("{name}: {} fails", p.name));
                    }
                }
            }
        }
        if found_expected {
            break;
        }
    }
    println!("kp-model: {:.1} s in all", started.elapsed().as_secs_f64());
    if let Some(expected) = &args.expect_violation {
        let names: BTreeSet<&str> = failed.iter().map(String::as_str).collect();
        if !found_expected {
            anyhow::bail!("expected `{expected}` to fail, and it held everywhere (other failures: {names:?})");
        }
        println!("kp-model: `{expected}` fails, as expected");
        return Ok(());
    }
    if !failed.is_empty() {
        anyhow::bail!("{}", failed.join("; "));
    }
    println!("kp-model: every property holds in every configuration");
    Ok(())
}
