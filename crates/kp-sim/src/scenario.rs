//! What one simulated run injects, derived entirely from its seed.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// How a Byzantine node misbehaves while faults are on (its engine is the honest one; the
/// simulator rewrites what it sends).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Behaviour {
    /// As leader, sends two different signed proposals for one (height, round).
    Equivocate,
    /// Signs a second vote for another block beside each honest one.
    DoubleVote,
    /// Corrupts the signature of half its proposals and votes.
    BadSignatures,
    /// Never votes (and never hands out what its vote would be in: the certificates it gathers
    /// as leader, the lock and precommit of its NewRound reports).
    Withhold,
    /// Sends random and mangled bytes beside its messages.
    Garbage,
    /// As leader, proposes blocks carrying an invalid event (a duplicate, or bytes that are no
    /// event at all).
    InvalidEvents,
    /// As leader, keeps a commit certificate to itself, then signs votes for any other block
    /// proposed at that height in a later round and, on precommitting one, hands the hidden
    /// certificate to half the nodes: the attack that voters' locks exist to stop.
    HideCommit,
    /// Every 200 ms sends every node a `NewRound` of the height for a round far ahead, half of
    /// them reporting a lock whose certificate does not verify (run by the flood scenario).
    FloodNewRound,
    /// Takes part in everything but one step, which it withholds for good (run by the
    /// withholding scenario).
    WithholdAt(WithholdPoint),
}

/// The step a withholding voter never takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WithholdPoint {
    /// As leader, it never proposes.
    Proposal,
    /// It never sends a prevote.
    Prevote,
    /// As leader, it keeps the prevote certificates it gathers to itself (only it locks).
    PrevoteCertificate,
    /// It never sends a precommit — not to the leader, not in its NewRound reports, not inside a
    /// commit certificate it gathers as leader — after its prevote made the others lock.
    Precommit,
    /// As leader, it keeps the commit certificates it gathers to itself.
    CommitCertificate,
    /// It never sends a NewRound report.
    NewRound,
}

impl WithholdPoint {
    pub const ALL: [WithholdPoint; 6] = [
        WithholdPoint::Proposal,
        WithholdPoint::Prevote,
        WithholdPoint::PrevoteCertificate,
        WithholdPoint::Precommit,
        WithholdPoint::CommitCertificate,
        WithholdPoint::NewRound,
    ];

    pub fn name(self) -> &'static str {
        match self {
            WithholdPoint::Proposal => "proposal",
            WithholdPoint::Prevote => "prevote",
            WithholdPoint::PrevoteCertificate => "prevote-certificate",
            WithholdPoint::Precommit => "precommit",
            WithholdPoint::CommitCertificate => "commit-certificate",
            WithholdPoint::NewRound => "new-round",
        }
    }
}

impl Behaviour {
    pub const ALL: [Behaviour; 7] = [
        Behaviour::Equivocate,
        Behaviour::DoubleVote,
        Behaviour::BadSignatures,
        Behaviour::Withhold,
        Behaviour::Garbage,
        Behaviour::InvalidEvents,
        Behaviour::HideCommit,
    ];
}

/// Faults of the links while faults are on. Probabilities are per mille.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkFaults {
    pub latency_ms: (u64, u64),
    pub loss_permille: u32,
    pub duplicate_permille: u32,
    /// A delivery delayed by up to `spike_ms` more (a stalled connection): reorders heavily.
    pub spike_permille: u32,
    pub spike_ms: u64,
}

/// Nodes in `side` are cut off from the others during `[start_ms, end_ms)`. With `hold`, the
/// messages across the cut are delivered when it heals (a reconnecting stream); otherwise lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub start_ms: u64,
    pub end_ms: u64,
    pub side: Vec<usize>,
    pub hold: bool,
}

/// Node `node` crashes at `at_ms` (with `mid_step`, part-way through carrying out one step's
/// outputs) and restarts from its durable state at `restart_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crash {
    pub node: usize,
    pub at_ms: u64,
    pub restart_ms: u64,
    pub mid_step: bool,
}

/// Everything a run injects. Times are virtual milliseconds from the start of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    pub seed: u64,
    pub nodes: usize,
    pub net: NetworkFaults,
    pub partitions: Vec<Partition>,
    pub crashes: Vec<Crash>,
    pub byzantine: Vec<(usize, Behaviour)>,
    /// When every fault stops: partitions heal, crashed nodes are up, links are clean, Byzantine
    /// nodes behave. Liveness is measured from here.
    pub faults_end_ms: u64,
    /// Certificates of the custody workload (three events each), submitted during the faults.
    pub certificates: usize,
    pub max_block_events: usize,
    /// Heights every node must commit after the faults end, within `liveness_bound_ms`.
    pub liveness_heights: u64,
    pub liveness_bound_ms: u64,
    /// Each node's clock is off by up to this much.
    pub clock_skew_ms: u64,
    /// Each node's pending pool holds at most this many events (the store's cap otherwise).
    pub pool_limit: Option<usize>,
}

impl Scenario {
    /// A clean network: latency only.
    pub fn calm(seed: u64, nodes: usize) -> Scenario {
        Scenario {
            seed,
            nodes,
            net: NetworkFaults {
                latency_ms: (1, 20),
                loss_permille: 0,
                duplicate_permille: 0,
                spike_permille: 0,
                spike_ms: 0,
            },
            partitions: vec![],
            crashes: vec![],
            byzantine: vec![],
            faults_end_ms: 5_000,
            certificates: workload_size(nodes),
            max_block_events: 30,
            liveness_heights: 3,
            liveness_bound_ms: 120_000,
            clock_skew_ms: 200,
            pool_limit: None,
        }
    }

    /// A mix of faults drawn from the seed: lossy, duplicating and delaying links, partitions
    /// (lossy or holding), crashes (some part-way through a step) and Byzantine nodes.
    pub fn random(seed: u64, nodes: usize) -> Scenario {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x6b70_2d73_696d_0001);
        let faults_end_ms = rng.random_range(15_000..=40_000);
        let net = NetworkFaults {
            latency_ms: (rng.random_range(1..=5), rng.random_range(10..=60)),
            loss_permille: *pick(&mut rng, &[0, 0, 10, 30, 80]),
            duplicate_permille: *pick(&mut rng, &[0, 20, 50]),
            spike_permille: *pick(&mut rng, &[0, 5, 20, 50]),
            spike_ms: rng.random_range(1_000..=8_000),
        };
        let mut order: Vec<usize> = (0..nodes).collect();
        order.shuffle(&mut rng);
        let partitions = (0..rng.random_range(0..=2))
            .map(|_| {
                let start_ms = rng.random_range(0..faults_end_ms - 2_000);
                let end_ms = (start_ms + rng.random_range(1_000..=12_000)).min(faults_end_ms);
                let mut side: Vec<usize> = (0..nodes).collect();
                side.shuffle(&mut rng);
                side.truncate(rng.random_range(1..=(nodes / 2).max(1)));
                side.sort_unstable();
                Partition { start_ms, end_ms, side, hold: rng.random_bool(0.5) }
            })
            .collect();
        // Byzantine nodes first from the shuffled order, crashes from the rest (a node may be
        // both only by chance of the draw below).
        let byzantine_count = rng.random_range(0..=2usize).min(nodes - 1);
        let byzantine: Vec<(usize, Behaviour)> =
            order.iter().take(byzantine_count).map(|&i| (i, *pick(&mut rng, &Behaviour::ALL))).collect();
        let crashes = (0..rng.random_range(0..=2usize))
            .map(|_| {
                let node = order[rng.random_range(0..nodes)];
                let at_ms = rng.random_range(0..faults_end_ms - 1_000);
                let restart_ms = (at_ms + rng.random_range(500..=15_000)).min(faults_end_ms);
                Crash { node, at_ms, restart_ms, mid_step: rng.random_bool(0.5) }
            })
            .collect();
        Scenario {
            seed,
            nodes,
            net,
            partitions,
            crashes,
            byzantine,
            faults_end_ms,
            certificates: workload_size(nodes),
            max_block_events: 30,
            liveness_heights: 3,
            liveness_bound_ms: 150_000,
            clock_skew_ms: 200,
            pool_limit: None,
        }
    }
}

fn workload_size(nodes: usize) -> usize {
    match nodes {
        0..=7 => 12,
        8..=19 => 8,
        _ => 5,
    }
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}
